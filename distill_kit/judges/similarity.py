"""The paper's RSE judge: an LLM compares a test answer with a reference answer to the same prompt
and scores their similarity 1-5 on response style, logical structure and content detail.

Any ``ModelConfig`` can judge; every call goes through ``collect`` and the store, so a re-run is free
and an interrupted run resumes. Verdicts are parsed robustly (XML-ish tags, JSON, or "Style: 4"
lines); a malformed reply is asked again with a new sample index, and after ``max_attempts`` the
pair is recorded as ``unparseable`` with null scores -- never as a made-up number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

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
class Verdict:
    """A parsed judge reply: three scores in [1, 5] and the judge's rationale."""

    style: float
    structure: float
    content: float
    rationale: str = ""

    @property
    def overall(self) -> float:
        """Mean of the three aspects (the paper's per-pair similarity)."""
        return (self.style + self.structure + self.content) / 3


def _clip_answer(text: str, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "\n[... answer truncated ...]"


def judge_prompt(prompt: str, reference: str, test: str, max_answer_chars: int = MAX_ANSWER_CHARS) -> str:
    """The user message sent to the judge for one pair."""
    return JUDGE_TEMPLATE.format(
        prompt=_clip_answer(prompt, max_answer_chars),
        reference=_clip_answer(reference, max_answer_chars),
        test=_clip_answer(test, max_answer_chars),
    )


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


def parse_verdict(text: str | None) -> Verdict | None:
    """Parse a judge reply; None unless all three aspects carry a score in [1, 5].

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
            return Verdict(scores["style"], scores["structure"], scores["content"], rationale[:1000])
    return None


def judge_pairs_frame(aligned: pl.DataFrame, reference: str, test_models: list[str] | None = None,
                      per_prompt_set: int | None = None, seed: int = 0) -> pl.DataFrame:
    """Pairs to judge from ``similarity.align_responses`` output: every prompt both the test model
    and ``reference`` answered -> ``prompt_set, prompt_id, prompt, test_model, reference,
    test_answer, reference_answer``. The reference is paired with itself too when listed.

    ``per_prompt_set`` (for a paid judge) keeps that many of the reference's prompts per prompt set,
    drawn once with ``seed``, so every test model is judged on the same prompts and every set is present."""
    from distill_kit.similarity import sample_prompts

    ref = aligned.filter(pl.col("model") == reference).select("prompt_set", "prompt_id",
                                                                 pl.col("response").alias("reference_answer"))
    if ref.height == 0:
        raise ValueError(f"reference {reference!r} has no aligned answers")
    if per_prompt_set:
        ref = pl.concat([sample_prompts(part, per_prompt_set, seed)
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
            pl.col("response").alias("test_answer"),
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


def judge_pairs(
    judge: Any,
    pairs: pl.DataFrame,
    store: Any,
    *,
    max_attempts: int = 3,
    max_answer_chars: int = MAX_ANSWER_CHARS,
    progress: bool = True,
) -> pl.DataFrame:
    """Score every pair with the LLM ``judge`` (a ``ModelConfig``) -> ``pairs`` plus ``style,
    structure, content, overall, rationale, status, attempts, raw``.

    ``status``: ``ok``; ``unparseable`` (no valid verdict after ``max_attempts`` samples, scores
    null, ``raw`` = last reply); ``error`` (the request itself failed after collect's retries).
    Attempt k uses sample index k (and ``retry_config``), so each retry is a fresh, separately
    stored request.
    """
    from distill_kit.collect import ChatRequest, collect_sync

    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    need = {"prompt", "test_answer", "reference_answer"}
    if not need <= set(pairs.columns):
        raise ValueError(f"pairs need columns {', '.join(sorted(need))} (see judge_pairs_frame)")
    rows = pairs.to_dicts()
    messages = [judge_prompt(r["prompt"], r["reference_answer"], r["test_answer"], max_answer_chars) for r in rows]
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
        reqs = [
            ChatRequest.user(
                messages[i],
                system=JUDGE_SYSTEM,
                sample=attempt,
                meta={"task": "rse_judge", "prompt_id": rows[i].get("prompt_id"), "test_model": rows[i].get("test_model"),
                      "reference": rows[i].get("reference"), "attempt": attempt},
            )
            for i in pending
        ]
        results = collect_sync(cfg, reqs, store, progress=progress, desc=f"RSE judge {judge.name} (try {attempt + 1})")
        still: list[int] = []
        for i, res in zip(pending, results):
            o = out[i]
            o["attempts"] = attempt + 1
            if not res.ok:
                o.update(status="error", raw=res.error)
                continue
            o["raw"] = res.text
            verdict = parse_verdict(res.text)
            if verdict is None:
                still.append(i)
                continue
            o.update(style=verdict.style, structure=verdict.structure, content=verdict.content,
                     overall=verdict.overall, rationale=verdict.rationale, status="ok")
        pending = still
    scored = pl.DataFrame(out, schema=_OUT_SCHEMA)
    return pl.concat([pairs, scored], how="horizontal")
