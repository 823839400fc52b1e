"""The paper's RSE judge: an LLM compares a test answer with a reference answer to the same prompt
and scores their similarity 1-5 on response style, logical structure and content detail.

Any ``ModelConfig`` can judge; every call goes through ``collect`` and the store, so a re-run is free
and an interrupted run resumes. Verdicts are parsed robustly (XML-ish tags, JSON, or "Style: 4"
lines); a malformed reply is asked again with a new sample index, and after ``max_attempts`` the
pair is recorded as ``unparseable`` with null scores -- never as a made-up number.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import polars as pl

from distill_kit import datasets

ASPECTS: tuple[str, ...] = ("style", "structure", "content")

JUDGE_SYSTEM = (
    "You are an impartial judge. You compare two answers to the same user prompt and rate how similar "
    "they are, not which one is better."
)

JUDGE_TEMPLATE = """[User prompt]
{prompt}

[Reference answer]
{reference}

[Test answer]
{test}

Rate how similar the test answer is to the reference answer on three aspects, each an integer from 1
(completely different) to 5 (essentially the same):
- style: response style - tone, formality, length, formatting (headings, lists, bold), stock phrases;
- structure: logical structure - how the answer is organised, the order and grouping of its points or steps;
- content: content detail - the facts, examples, and level of detail given.

Reply in exactly this format and nothing else:
<style>N</style>
<structure>N</structure>
<content>N</content>
<rationale>one or two short sentences</rationale>"""

#: Retries (attempt >= 1) sample at least this temperature, with seed + attempt, so that a retry of a
#: malformed reply is a genuinely new sample even when the judge runs at temperature 0.
RETRY_TEMPERATURE = 0.7

#: Answers longer than this many characters are cut (with a marker) before going into the prompt.
MAX_ANSWER_CHARS = 6000

_ALIASES: dict[str, tuple[str, ...]] = {
    "style": ("style", "response_style", "response style", "stylistic", "style_score"),
    "structure": ("structure", "logical_structure", "logical structure", "logic", "structure_score"),
    "content": ("content", "content_detail", "content detail", "content details", "detail", "details", "content_score"),
}
_NUM = r"([1-5](?:\.\d+)?)"


@dataclass(frozen=True)
class SimilarityVerdict:
    """A parsed RSE judge reply: three scores in [1, 5] and the judge's rationale."""

    style: float
    structure: float
    content: float
    rationale: str = ""

    @property
    def overall(self) -> float:
        """Mean of the three aspects (the paper's per-pair similarity)."""
        return (self.style + self.structure + self.content) / 3


#: What replaces the tail of an answer longer than ``max_answer_chars`` in the judge's prompt.
TRUNCATED = "\n[... answer truncated ...]"


def _clip_answer(text: str, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + TRUNCATED


def judge_prompt(prompt: str, reference: str, test: str, max_answer_chars: int = MAX_ANSWER_CHARS,
                 aspect_order: tuple[str, ...] = ASPECTS, test_first: bool = False) -> str:
    """The user message sent to the judge for one pair.

    ``aspect_order`` permutes the three aspect definitions and reply lines (a judge may anchor on the first
    aspect it reads); ``test_first`` shows the test answer before the reference (position bias). With the
    defaults the message is the paper-style prompt, unchanged.
    """
    template = JUDGE_TEMPLATE
    if tuple(aspect_order) != ASPECTS:
        if sorted(aspect_order) != sorted(ASPECTS):
            raise ValueError(f"aspect_order must be a permutation of {ASPECTS}, got {aspect_order}")
        lines = template.split("\n")
        defs = {a: next(line for line in lines if line.startswith(f"- {a}:")) for a in ASPECTS}
        tags = {a: f"<{a}>N</{a}>" for a in ASPECTS}
        template = template.replace("\n".join(defs[a] for a in ASPECTS), "\n".join(defs[a] for a in aspect_order), 1)
        template = template.replace("\n".join(tags[a] for a in ASPECTS), "\n".join(tags[a] for a in aspect_order), 1)
    if test_first:
        template = template.replace("[Reference answer]\n{reference}\n\n[Test answer]\n{test}",
                                    "[Test answer]\n{test}\n\n[Reference answer]\n{reference}", 1)
    return template.format(
        prompt=_clip_answer(prompt, max_answer_chars),
        reference=_clip_answer(reference, max_answer_chars),
        test=_clip_answer(test, max_answer_chars),
    )


@dataclass(frozen=True)
class SimilarityPrompt:
    """What a message made by :func:`judge_prompt` shows: the user prompt and the two answers (as clipped)."""

    prompt: str
    reference: str
    test: str
    test_first: bool


def _prompt_pattern(test_first: bool) -> re.Pattern[str]:
    """:func:`judge_prompt`'s head (up to the rating instructions, whose aspect order varies) as a pattern."""
    marks = {"prompt": "\x00p", "reference": "\x00r", "test": "\x00t"}
    head = judge_prompt(marks["prompt"], marks["reference"], marks["test"], test_first=test_first)
    head = head[: head.index("Rate how similar") + len("Rate how similar")]
    pattern = re.escape(head)
    for name, mark in marks.items():
        pattern = pattern.replace(re.escape(mark), f"(?P<{name}>.*?)" if name == "prompt" else f"(?P<{name}>.*)", 1)
    return re.compile(pattern, re.S)


_PROMPT_PATTERNS = {flag: _prompt_pattern(flag) for flag in (False, True)}


def parse_similarity_prompt(message: str) -> SimilarityPrompt | None:
    """The inverse of :func:`judge_prompt` (either order, any aspect order); None for any other text. For a
    stand-in judge (the API zoo of :mod:`distill_kit.testing`), which must read exactly what is shown."""
    for test_first, pattern in _PROMPT_PATTERNS.items():
        m = pattern.match(message)
        if m:
            return SimilarityPrompt(m["prompt"], m["reference"], m["test"], test_first)
    return None


def _score(value: Any) -> float | None:
    """A score in [1, 5] from an int/float or strings like "4", "4/5", "4 out of 5"; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*5|out of 5)?\s*$", value)
        if not m:
            return None
        v = float(m.group(1))
    else:
        return None
    return v if 1.0 <= v <= 5.0 else None


def _from_tags(text: str) -> tuple[dict[str, float], str] | None:
    found: dict[str, float] = {}
    for aspect, names in _ALIASES.items():
        for name in names:
            tag = re.escape(name.replace(" ", "_"))
            # the last valid value wins: small models sometimes echo the "<style>N</style>" template first
            vals = [_score(m.group(1)) for m in re.finditer(rf"<\s*{tag}\s*>\s*([^<]{{0,20}}?)\s*<\s*/\s*{tag}\s*>", text, re.I)]
            vals = [v for v in vals if v is not None]
            if vals:
                found[aspect] = vals[-1]
                break
    if len(found) != len(ASPECTS):
        return None
    m = re.search(r"<\s*rationale\s*>(.*?)(?:<\s*/\s*rationale\s*>|$)", text, re.I | re.S)
    return found, (m.group(1).strip() if m else "")


def _from_json(text: str) -> tuple[dict[str, float], str] | None:
    for m in re.finditer(r"\{[^{}]*\}", text, re.S):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        lower = {str(k).strip().lower(): v for k, v in obj.items()}
        found: dict[str, float] = {}
        for aspect, names in _ALIASES.items():
            for name in names:
                for key in (name, name.replace(" ", "_")):
                    if key in lower and (v := _score(lower[key])) is not None:
                        found[aspect] = v
                        break
                if aspect in found:
                    break
        if len(found) == len(ASPECTS):
            rationale = next((str(lower[k]) for k in ("rationale", "reason", "explanation", "justification") if k in lower), "")
            return found, rationale
    return None


def _from_lines(text: str) -> tuple[dict[str, float], str] | None:
    found: dict[str, float] = {}
    for aspect, names in _ALIASES.items():
        alt = "|".join(re.escape(n).replace(r"\ ", r"[\s_]") for n in sorted(names, key=len, reverse=True))
        # e.g. "Style: 4", "**Logical structure** - 3/5", "content detail score = 5"
        pat = rf"(?:^|\n)\W*(?:{alt})(?:\s*score)?\W{{0,6}}?[:=\-]\s*\**\s*{_NUM}(?:\s*(?:/\s*5|out of 5))?\b"
        m = re.search(pat, text, re.I)
        if m:
            found[aspect] = float(m.group(1))
    if len(found) != len(ASPECTS):
        return None
    m = re.search(r"(?:^|\n)\W*(?:rationale|reason(?:ing)?|explanation)\W{0,6}[:=\-]\s*(.+)", text, re.I | re.S)
    return found, (m.group(1).strip() if m else "")


def parse_similarity_verdict(text: str | None) -> SimilarityVerdict | None:
    """An RSE judge's reply -> its three scores; None unless all three aspects carry a score in [1, 5].

    Tried in order: tags (``<style>4</style>``, also ``<logical_structure>``...), a JSON object
    (``{"style": 4, "logical_structure": "3/5", "content_detail": 5, "rationale": ...}``), then
    ``Aspect: N`` lines. The first format that yields all three scores wins.
    """
    if not text or not text.strip():
        return None
    for parser in (_from_tags, _from_json, _from_lines):
        got = parser(text)
        if got is not None:
            scores, rationale = got
            return SimilarityVerdict(scores["style"], scores["structure"], scores["content"], rationale[:1000])
    return None


def panel_configs(judge: str, judge_prompts: int, panel: Sequence[str] = ()) -> list[Any]:
    """Notebook 04's LLM judges: ``judge`` (whose scores its tables use), then the ``panel``, each asked the same
    pairs; none when ``judge`` is "offline" or ``judge_prompts`` is 0 (no pair is sent to a judge)."""
    if judge == "offline" or judge_prompts <= 0:
        return []
    from distill_kit.models import get_model

    return [get_model(name) for name in [judge, *panel]]


def judge_pairs_frame(aligned: pl.DataFrame, reference: str, test_models: list[str] | None = None,
                      per_prompt_set: int | None = None, seed: int = 0) -> pl.DataFrame:
    """Pairs to judge from :func:`distill_kit.rse.responses.align_responses` output: every prompt both the test model
    and ``reference`` answered -> ``prompt_set, prompt_id, prompt, test_model, reference,
    test_answer, reference_answer``. The reference is paired with itself too when listed.

    ``per_prompt_set`` (for a paid judge) keeps that many of the reference's prompts per prompt set,
    drawn once with ``seed``, so every test model is judged on the same prompts and every set is present."""
    ref = aligned.filter(pl.col("model") == reference).select("prompt_set", "prompt_id",
                                                                 pl.col("text").alias("reference_answer"))
    if ref.height == 0:
        raise ValueError(f"reference {reference!r} has no aligned answers")
    if per_prompt_set:
        ref = pl.concat([datasets.sample_prompts(part, per_prompt_set, seed)
                         for part in ref.partition_by("prompt_set", maintain_order=True)])
    ref = ref.drop("prompt_set")
    tests = aligned if test_models is None else aligned.filter(pl.col("model").is_in(test_models))
    return (
        tests.join(ref, on="prompt_id", how="inner")
        .select(
            "prompt_set",
            "prompt_id",
            "prompt",
            pl.col("model").alias("test_model"),
            pl.lit(reference).alias("reference"),
            pl.col("text").alias("test_answer"),
            "reference_answer",
        )
    )


def retry_config(judge: Any, attempt: int) -> Any:
    """The judge config for retry ``attempt`` (>= 1): temperature >= ``RETRY_TEMPERATURE`` and seed
    shifted by ``attempt``; same name, so its answers sit with the judge's in the store."""
    return judge.with_params(temperature=max(judge.params.temperature, RETRY_TEMPERATURE),
                             seed=(judge.params.seed or 0) + attempt)


_OUT_SCHEMA = {
    "style": pl.Float64,
    "structure": pl.Float64,
    "content": pl.Float64,
    "overall": pl.Float64,
    "rationale": pl.Utf8,
    "status": pl.Utf8,
    "attempts": pl.Int64,
    "raw": pl.Utf8,
}


def judge_messages(pairs: pl.DataFrame, *, both_orders: bool = False, shuffle_aspects: bool = False, seed: int = 0,
                   max_answer_chars: int = MAX_ANSWER_CHARS) -> tuple[pl.DataFrame, list[str]]:
    """The pairs ``judge_pairs`` sends (each pair once or in both orders, with its aspect order) and the judge
    prompt of each: the one definition of what is asked (:func:`judge_requests` turns them into the requests a
    cost estimate counts)."""
    if both_orders:
        pairs = pl.concat([pairs.with_columns(pl.lit(o).alias("order")) for o in ORDERS])
    elif "order" not in pairs.columns:
        pairs = pairs.with_columns(pl.lit(ORDERS[0]).alias("order"))
    if shuffle_aspects:
        pairs = pairs.with_columns(pl.Series("aspect_order", [",".join(aspect_order_for(r, seed)) for r in pairs.to_dicts()]))
    elif "aspect_order" not in pairs.columns:
        pairs = pairs.with_columns(pl.lit(",".join(ASPECTS)).alias("aspect_order"))
    rows = pairs.to_dicts()
    messages = [judge_prompt(r["prompt"], r["reference_answer"], r["test_answer"], max_answer_chars,
                             aspect_order=tuple(r["aspect_order"].split(",")), test_first=r["order"] == ORDERS[1])
                for r in rows]
    return pairs, messages


def judge_request(message: str, pair: dict[str, Any], attempt: int = 0) -> Any:
    """The request that asks the judge ``message`` about ``pair`` (a row of :func:`judge_messages`' pairs); retry
    ``attempt`` is a fresh sample. The one place these are built: :func:`judge_pairs` sends them and the
    estimate prices attempt 0 of each."""
    from distill_kit.collect import ChatRequest

    return ChatRequest.user(message, system=JUDGE_SYSTEM, sample=attempt,
                            meta={"task": "rse_judge", "prompt_id": pair.get("prompt_id"),
                                  "test_model": pair.get("test_model"), "reference": pair.get("reference"),
                                  "attempt": attempt, "order": pair["order"], "aspect_order": pair["aspect_order"]})


def judge_requests(pairs: pl.DataFrame, *, both_orders: bool = False, shuffle_aspects: bool = False,
                   seed: int = 0) -> list[Any]:
    """The first request (retries aside) :func:`judge_pairs` sends each judge for ``pairs``, with the same bias
    controls: what a cost estimate counts for an LLM similarity judge."""
    pairs, messages = judge_messages(pairs, both_orders=both_orders, shuffle_aspects=shuffle_aspects, seed=seed)
    return [judge_request(m, row) for m, row in zip(messages, pairs.to_dicts())]


def judge_pairs(
    judge: Any,
    pairs: pl.DataFrame,
    store: Any,
    *,
    max_attempts: int = 3,
    max_answer_chars: int = MAX_ANSWER_CHARS,
    progress: bool = True,
    both_orders: bool = False,
    shuffle_aspects: bool = False,
    seed: int = 0,
) -> pl.DataFrame:
    """Score every pair with the LLM ``judge`` (a ``ModelConfig``) -> ``pairs`` plus ``style,
    structure, content, overall, rationale, status, attempts, raw``.

    ``status``: ``ok``; ``unparseable`` (no valid verdict after ``max_attempts`` samples, scores
    null, ``raw`` = last reply); ``error`` (the request itself failed after collect's retries).
    Attempt k uses sample index k (and ``retry_config``), so each retry is a fresh, separately
    stored request.

    Bias controls: ``both_orders`` judges every pair twice, reference first and test first (column
    ``order``; see ``order_agreement``); ``shuffle_aspects`` permutes the aspect order per pair, drawn from
    ``seed`` and the pair (column ``aspect_order``). A warning is raised when the judge is the reference or a
    test model (``self_judging_warnings``).
    """
    from distill_kit.collect import collect_sync

    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    need = {"prompt", "test_answer", "reference_answer"}
    if not need <= set(pairs.columns):
        raise ValueError(f"pairs need columns {', '.join(sorted(need))} (see judge_pairs_frame)")
    for message in self_judging_warnings(judge, pairs):
        warnings.warn(message, JudgeBiasWarning, stacklevel=2)
    pairs, messages = judge_messages(pairs, both_orders=both_orders, shuffle_aspects=shuffle_aspects, seed=seed,
                                     max_answer_chars=max_answer_chars)
    rows = pairs.to_dicts()
    out: list[dict[str, Any]] = [
        {"style": None, "structure": None, "content": None, "overall": None, "rationale": None,
         "status": "unparseable", "attempts": 0, "raw": None}
        for _ in rows
    ]
    pending = list(range(len(rows)))
    for attempt in range(max_attempts):
        if not pending:
            break
        cfg = judge if attempt == 0 else retry_config(judge, attempt)
        reqs = [judge_request(messages[i], rows[i], attempt) for i in pending]
        results = collect_sync(cfg, reqs, store, progress=progress, desc=f"RSE judge {judge.name} (try {attempt + 1})")
        still: list[int] = []
        for i, res in zip(pending, results):
            o = out[i]
            o["attempts"] = attempt + 1
            if not res.ok:
                o.update(status="error", raw=res.error)
                continue
            o["raw"] = res.text
            verdict = parse_similarity_verdict(res.text)
            if verdict is None:
                still.append(i)
                continue
            o.update(style=verdict.style, structure=verdict.structure, content=verdict.content,
                     overall=verdict.overall, rationale=verdict.rationale, status="ok")
        pending = still
    scored = pl.DataFrame(out, schema=_OUT_SCHEMA)
    return pl.concat([pairs, scored], how="horizontal").with_columns(pl.lit(judge.name).alias("judge"))


class LLMSimilarityJudge:
    """The :class:`~distill_kit.rse.judge.SimilarityJudge` that asks a configured model (:func:`judge_pairs`)."""

    def __init__(self, model: Any, store: Any, **options: Any) -> None:
        if store is None:
            raise ValueError("the LLM judge needs a store")
        self.model, self.store, self.options = model, store, options  # options: judge_pairs' keywords

    @property
    def name(self) -> str:
        return self.model.name

    def score_pairs(self, pairs: pl.DataFrame) -> pl.DataFrame:
        from distill_kit.rse.judge import check_pairs

        check_pairs(pairs)
        return judge_pairs(self.model, pairs, self.store, **self.options)


# ---------------------------------------------------------------- judge-bias controls

#: The two presentation orders of a pair: the paper's (reference first) and swapped (test answer first).
ORDERS: tuple[str, str] = ("reference-first", "test-first")


class JudgeBiasWarning(UserWarning):
    """The judge is also the reference or a test model: it may prefer its own answers."""


def _norm(name: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name or "").lower())


def _judge_names(judge: Any) -> set[str]:
    names = {_norm(getattr(judge, "name", judge)), _norm(getattr(judge, "model", ""))}
    return {n for n in names if n}


def self_judging_warnings(judge: Any, pairs: pl.DataFrame) -> list[str]:
    """Messages for every role the judge also plays in ``pairs``: the reference (the paper's own set-up: its
    judge GPT-4o-0806 is also its reference) or a test model. Names are compared ignoring case and punctuation."""
    names = _judge_names(judge)
    out = []
    for col, role in (("reference", "the reference"), ("test_model", "a test model")):
        if col not in pairs.columns:
            continue
        hits = sorted({str(v) for v in pairs[col].unique().to_list() if _norm(v) in names})
        if hits:
            out.append(f"RSE judge {getattr(judge, 'name', judge)!r} is also {role} ({', '.join(hits)}): "
                       "it may favour its own answers; add judges of other families (judge_panel)")
    return out


def aspect_order_for(row: dict[str, Any], seed: int) -> tuple[str, ...]:
    """A permutation of the aspects drawn from ``seed`` and the pair (prompt, test model, reference, order),
    so that a re-run asks the same prompts and is served from the store."""
    key = f"{seed}|{row.get('prompt_id')}|{row.get('test_model')}|{row.get('reference')}|{row.get('order')}"
    order = list(ASPECTS)
    random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)).shuffle(order)
    return tuple(order)


_PAIR_KEY = ("prompt_set", "prompt_id", "test_model", "reference")


def _pair_key(frame: pl.DataFrame) -> list[str]:
    return [c for c in _PAIR_KEY if c in frame.columns]


def order_agreement(judged: pl.DataFrame) -> dict[str, Any]:
    """How much the verdict moves when the two answers swap places (a position-bias check).

    Per aspect and overall: mean absolute difference between the two orders, share of pairs whose score
    differs by 1 or more, mean signed difference (reference-first minus test-first) and Krippendorff's alpha
    of the two orders, over pairs scored ``ok`` in both."""
    from distill_kit import stats

    if "order" not in judged.columns or judged["order"].n_unique() < 2:
        return {}
    key = _pair_key(judged) + (["judge"] if "judge" in judged.columns else [])
    ok = judged.filter(pl.col("status") == "ok")
    a = ok.filter(pl.col("order") == ORDERS[0])
    b = ok.filter(pl.col("order") == ORDERS[1])
    both = a.join(b, on=key, suffix="_swapped")
    out: dict[str, Any] = {"n_pairs": both.height}
    for col in (*ASPECTS, "overall"):
        if both.height == 0:
            break
        x, y = both[col].to_numpy(), both[f"{col}_swapped"].to_numpy()
        out[col] = {"mean_abs_diff": float(abs(x - y).mean()), "share_diff_ge_1": float((abs(x - y) >= 1).mean()),
                    "mean_diff": float((x - y).mean()),
                    "alpha": stats.krippendorff_alpha([x, y]) if both.height > 1 else float("nan")}
    return out


def order_agreement_by_judge(verdicts: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """:func:`order_agreement` of each judge of a panel's verdicts, by judge name (in order of appearance)."""
    return {j: order_agreement(verdicts.filter(pl.col("judge") == j))
            for j in verdicts["judge"].unique(maintain_order=True).to_list()}


def order_agreement_frame(agreement: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """One row per judge of :func:`order_agreement_by_judge`: pairs judged in both orders and how far the
    overall score moves when the answers swap places."""
    return pl.DataFrame([{"judge": j, "pairs in both orders": a.get("n_pairs"),
                          "mean |diff| overall": a.get("overall", {}).get("mean_abs_diff"),
                          "share differing by >= 1": a.get("overall", {}).get("share_diff_ge_1")}
                         for j, a in agreement.items()],
                        schema={"judge": pl.String, "pairs in both orders": pl.Int64,
                                "mean |diff| overall": pl.Float64, "share differing by >= 1": pl.Float64})


def combine_orders(judged: pl.DataFrame) -> pl.DataFrame:
    """One row per pair (and judge): each score averaged over the orders that parsed, plus
    ``order_gap`` = |overall reference-first - overall test-first| where both parsed."""
    key = _pair_key(judged) + [c for c in ("judge",) if c in judged.columns]
    ok = judged.filter(pl.col("status") == "ok")
    keep = [c for c in ("prompt",) if c in judged.columns]
    agg = ok.group_by(key, maintain_order=True).agg(
        *[pl.col(c).first() for c in keep],
        *[pl.col(c).mean() for c in (*ASPECTS, "overall")],
        pl.col("rationale").str.join(" | ").alias("rationale"),
        pl.len().alias("n_orders"),
        (pl.col("overall").max() - pl.col("overall").min()).alias("order_gap"))
    return agg.with_columns(pl.when(pl.col("n_orders") > 1).then(pl.col("order_gap")).otherwise(None).alias("order_gap"),
                            pl.lit("ok").alias("status"))


def judge_panel(judges: Sequence[Any], pairs: pl.DataFrame, store: Any, *, both_orders: bool = True,
                shuffle_aspects: bool = True, seed: int = 0, **kwargs: Any) -> pl.DataFrame:
    """Several judges (ideally of different families) score the same pairs -> the long frame of every
    verdict with a ``judge`` column; per-judge scores are kept (see ``panel_agreement``, ``panel_scores``).

    Warns when two judges share a family: a panel of one family shares its biases."""
    if not judges:
        raise ValueError("judge_panel needs at least one judge")
    names = [getattr(j, "name", str(j)) for j in judges]
    if len(set(names)) != len(names):
        raise ValueError(f"judge_panel: judge names must be distinct, got {names}")
    fams = [getattr(j, "family", None) or getattr(j, "provider", None) for j in judges]
    dup = sorted({f for f in fams if f and fams.count(f) > 1})
    if dup:
        warnings.warn(f"judge panel has several judges of the same family ({', '.join(map(str, dup))}): "
                      "their shared biases do not cancel", JudgeBiasWarning, stacklevel=2)
    parts = [judge_pairs(j, pairs, store, both_orders=both_orders, shuffle_aspects=shuffle_aspects, seed=seed, **kwargs)
             for j in judges]
    return pl.concat(parts, how="diagonal_relaxed")


def panel_scores(judged: pl.DataFrame) -> pl.DataFrame:
    """Pair x judge scores with orders averaged, pivoted wide: one ``overall`` column per judge plus their mean."""
    comb = combine_orders(judged)
    key = _pair_key(comb)
    wide = comb.pivot(on="judge", index=key, values="overall")
    judges = [c for c in wide.columns if c not in key]
    return wide.with_columns(pl.mean_horizontal(judges).alias("panel_mean"))


def panel_agreement(judged: pl.DataFrame, offline: pl.DataFrame | None = None) -> dict[str, Any]:
    """Agreement of the judges on the same pairs (orders averaged): Krippendorff's alpha (interval) and
    Kendall's W per aspect and overall, each judge's mean, and -- when ``offline`` scores of the same pairs are
    given (columns prompt_id, test_model, overall, ...) -- each LLM judge's agreement with the offline judge
    (alpha and Spearman correlation of ``overall``)."""
    from scipy.stats import spearmanr

    from distill_kit import stats

    comb = combine_orders(judged)
    key = _pair_key(comb)
    judges = sorted(comb["judge"].unique().to_list()) if "judge" in comb.columns else []
    out: dict[str, Any] = {"judges": judges, "n_pairs": comb.select(key).unique().height,
                           "judge_means": {j: float(comb.filter(pl.col("judge") == j)["overall"].mean()) for j in judges}}
    if len(judges) >= 2:
        for col in (*ASPECTS, "overall"):
            wide = comb.pivot(on="judge", index=key, values=col)
            mat = wide.select(judges).to_numpy().T.astype(float)
            out[col] = {"alpha": stats.krippendorff_alpha(mat), "kendall_w": stats.kendall_w(mat)}
    if offline is not None and offline.height:
        on = [c for c in ("prompt_id", "test_model") if c in offline.columns and c in comb.columns]
        if "reference" in offline.columns and "reference" in comb.columns:
            on.append("reference")
        off = offline.select(*on, pl.col("overall").alias("offline_overall"))
        agree = {}
        for j in judges:
            both = comb.filter(pl.col("judge") == j).join(off, on=on).drop_nulls(["overall", "offline_overall"])
            if both.height < 3:
                continue
            x, y = both["overall"].to_numpy(), both["offline_overall"].to_numpy()
            rho = spearmanr(x, y).statistic if len(set(x)) > 1 and len(set(y)) > 1 else float("nan")
            agree[j] = {"n_pairs": both.height, "alpha": stats.krippendorff_alpha([x, y]), "spearman": float(rho)}
        out["offline_agreement"] = agree
    return out


def reasons_frame(judged: pl.DataFrame) -> pl.DataFrame:
    """The judge's stated reasons, one row per verdict, for browsing: who judged which pair in which order,
    the scores and the rationale (``raw`` reply where it did not parse)."""
    cols = [c for c in ("judge", *_PAIR_KEY, "order", "aspect_order", *ASPECTS, "overall", "status", "rationale", "raw")
            if c in judged.columns]
    return judged.select(cols)
