"""Response Similarity Evaluation (RSE): prompt sets, aligned responses, offline similarity at three
granularities, model x model matrices, the paper's RSE table and a clustering order for heatmaps.

Data flow: ``prompt_set`` -> responses (``replay_responses`` from published outputs, or
``collect_responses`` from a live model through ``collect``) -> ``align_responses`` (by prompt
text, empty answers dropped and counted) -> either the LLM judge (``distill_kit.rse.llm_judge``)
or ``build_profiles`` + ``pairwise_scores`` (offline, no API) -> ``long_scores`` / ``matrices`` ->
``rse_table``.

Offline granularities (raw similarity in [0, 1], see ``distill_kit.text.stylometry``):

- **style**: stylometric profile (length, paragraphing, markdown headers/lists/bold/code, sentence
  length, stock openers/closers, hedges, person, function-word profile), compared feature by feature;
- **structure**: block skeletons (paragraph / bullet / numbered / heading / code / table ...),
  aligned by edit distance over the full sequence and over its run-collapsed outline;
- **content**: sentence-transformer cosine of the two answers, averaged with a sentence-level
  F1 (each sentence matched to its most similar sentence of the other answer, as in BERTScore).

Mapping to the paper's 1-5 scale (``to_likert``)::

    score = 1 + 4 * clip((sim - floor) / (1 - floor), 0, 1)

``floor`` (``LIKERT_FLOORS``) is the median similarity of two *unrelated* answers -- different
models answering different AlpacaEval prompts -- measured by ``calibrate_floors``. So 1 means "no
more alike than two random answers to unrelated questions", 5 means identical, and the scale is
linear in between. The overall RSE score of a pair is the mean of its three granularity scores.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distill_kit import executor as ex
from distill_kit.text import stylometry as st

GRANULARITIES: tuple[str, ...] = ("style", "structure", "content")
#: Built-in prompt sets (names accepted by ``prompt_set``); anything else is read as a file path.
BUILTIN_PROMPT_SETS: tuple[str, ...] = ("arena-hard", "alpaca-eval")

#: Similarity that maps to 1 on the 1-5 scale, per granularity: the median similarity of answers by
#: different models to different prompts, measured by ``calibrate_floors`` on all 34 AlpacaEval
#: models (style/structure: all 805 prompts, 200 cross pairs per model pair; content: 40 prompts;
#: seed 0): style 0.661, structure 0.291, content 0.077. ``benchmarks/bench_similarity.py``
#: re-measures them on any data directory.
LIKERT_FLOORS: dict[str, float] = {"style": 0.66, "structure": 0.29, "content": 0.08}

Encoder = Callable[[list[str]], np.ndarray]


# ----------------------------------------------------------------------------------------------
# Prompt sets and responses
# ----------------------------------------------------------------------------------------------

def normalise_prompt(text: str) -> str:
    """Key used to align responses by prompt text: whitespace collapsed, ends stripped."""
    return " ".join(str(text).split())


def prompt_key(text: str) -> str:
    """Stable short id of a prompt (sha1 of ``normalise_prompt``), for prompt sets without ids."""
    return hashlib.sha1(normalise_prompt(text).encode("utf-8")).hexdigest()[:12]


_PROMPT_COLUMNS = ("prompt", "instruction", "question", "turns", "text", "query", "input")
_ID_COLUMNS = ("prompt_id", "id", "uid", "question_id")


def _first_text(value: Any) -> str | None:
    """Prompt text from a cell: a string, or the first user turn of a list/dict (MT-Bench style)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _first_text(value[0])
    if isinstance(value, dict):
        for k in ("content", "text", "prompt"):
            if isinstance(value.get(k), str):
                return value[k]
    return None


def load_prompts(path: str | Path, name: str | None = None) -> pl.DataFrame:
    """Read a user prompt file (JSONL or CSV) -> ``prompt_set, prompt_id, prompt``.

    The prompt column is the first of ``prompt, instruction, question, turns, text, query, input``
    present; the id column the first of ``prompt_id, id, uid, question_id`` (else a hash of the
    text). Duplicate prompts keep their first row. Raises ``ValueError`` with one clear line on a
    missing/empty/unreadable file or when no prompt column exists.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"prompt file not found: {p}")
    suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix
    raw = p.read_bytes()
    if p.suffix == ".gz":
        import gzip

        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"prompt file {p.name} is not UTF-8 text") from exc
    rows: list[dict[str, Any]]
    if suffix.startswith(".jsonl") or suffix.startswith(".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"prompt file {p.name}: line {n} is not valid JSON ({exc.msg})") from exc
            rows.append(obj if isinstance(obj, dict) else {"prompt": obj})
    elif suffix.startswith(".csv") or suffix.startswith(".tsv"):
        delim = "\t" if suffix.startswith(".tsv") else ","
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delim))
    else:
        raise ValueError(f"prompt file {p.name}: expected .jsonl or .csv (optionally .gz), got {suffix or 'no suffix'}")
    if not rows:
        raise ValueError(f"prompt file {p.name} holds no rows")
    cols = set().union(*(r.keys() for r in rows))
    pcol = next((c for c in _PROMPT_COLUMNS if c in cols), None)
    if pcol is None:
        raise ValueError(
            f"prompt file {p.name}: no prompt column; expected one of {', '.join(_PROMPT_COLUMNS)}, found {', '.join(sorted(cols))}"
        )
    icol = next((c for c in _ID_COLUMNS if c in cols), None)
    out: list[dict[str, str]] = []
    for r in rows:
        prompt = _first_text(r.get(pcol))
        if prompt is None or not prompt.strip():
            continue
        pid = str(r[icol]) if icol and r.get(icol) not in (None, "") else prompt_key(prompt)
        out.append({"prompt_id": pid, "prompt": prompt})
    if not out:
        raise ValueError(f"prompt file {p.name}: column {pcol!r} holds no non-empty prompt")
    frame = pl.DataFrame(out).unique(subset="prompt", keep="first", maintain_order=True)
    return frame.select(pl.lit(name or p.stem.split(".")[0]).alias("prompt_set"), "prompt_id", "prompt")


def prompt_set(name: str, sample_size: int | None = None, seed: int = 0) -> pl.DataFrame:
    """A prompt set -> ``prompt_set, prompt_id, prompt``.

    ``name``: ``"arena-hard"`` (Arena-Hard v0.1, 500 prompts), ``"alpaca-eval"`` (805
    instructions) or a path to a JSONL/CSV file (``load_prompts``). ``sample_size`` draws that many
    prompts without replacement with ``seed`` (None or 0 = all), keeping the set's order.
    """
    from distill_kit import datasets

    if name == "arena-hard":
        q = datasets.arena_questions()
        frame = q.select(pl.lit(name).alias("prompt_set"), pl.col("uid").cast(pl.Utf8).alias("prompt_id"), "prompt")
    elif name == "alpaca-eval":
        ins = datasets.alpaca_outputs().select("instruction").unique(maintain_order=True)
        frame = ins.select(
            pl.lit(name).alias("prompt_set"),
            pl.col("instruction").map_elements(prompt_key, return_dtype=pl.Utf8).alias("prompt_id"),
            pl.col("instruction").alias("prompt"),
        )
    elif Path(name).expanduser().suffix in (".jsonl", ".json", ".csv", ".tsv", ".gz") or Path(name).expanduser().exists():
        frame = load_prompts(name)
    else:
        raise ValueError(f"unknown prompt set {name!r}: use one of {', '.join(BUILTIN_PROMPT_SETS)} or a .jsonl/.csv path")
    return sample_prompts(frame, sample_size, seed)


def sample_prompts(frame: pl.DataFrame, sample_size: int | None, seed: int = 0) -> pl.DataFrame:
    """``sample_size`` rows drawn with ``seed`` in their original order (all rows when None/0/too big)."""
    if not sample_size or sample_size >= frame.height:
        return frame
    if sample_size < 0:
        raise ValueError(f"sample_size must be >= 0, got {sample_size}")
    idx = np.sort(np.random.default_rng(seed).choice(frame.height, size=sample_size, replace=False))
    return frame[idx.tolist()]


def replay_models(name: str) -> list[str]:
    """Models with published responses for a built-in prompt set."""
    from distill_kit import datasets

    if name == "alpaca-eval":
        return list(datasets.alpaca_models())
    if name == "arena-hard":
        return sorted(datasets.arena_answers()["model"].unique().to_list())
    raise ValueError(f"no published responses for prompt set {name!r}; collect them live with collect_responses")


def replay_responses(name: str, models: Sequence[str] | None = None) -> pl.DataFrame:
    """Published responses of a built-in prompt set -> ``model, prompt, response`` (unaligned)."""
    from distill_kit import datasets

    wanted = list(models) if models else None
    if name == "alpaca-eval":
        df = datasets.alpaca_outputs(wanted)
        return df.select("model", pl.col("instruction").alias("prompt"), pl.col("output").alias("response"))
    if name == "arena-hard":
        df = datasets.arena_answers(wanted)
        return df.select("model", "prompt", pl.col("answer").alias("response"))
    raise ValueError(f"no published responses for prompt set {name!r}; collect them live with collect_responses")


def collect_responses(model_cfg: Any, prompts: pl.DataFrame, store: Any, sample: int = 0) -> pl.DataFrame:
    """Ask a live (or replay) model every prompt through ``collect`` and the store ->
    ``model, prompt, response`` (``None`` for failed requests, counted later as empty)."""
    from distill_kit.collect import ChatRequest, collect_sync

    reqs = [
        ChatRequest.user(r["prompt"], meta={"prompt_set": r["prompt_set"], "prompt_id": r["prompt_id"]}, sample=sample)
        for r in prompts.iter_rows(named=True)
    ]
    results = collect_sync(model_cfg, reqs, store)
    return pl.DataFrame(
        {
            "model": [model_cfg.name] * len(results),
            "prompt": prompts["prompt"].to_list(),
            "response": [r.text if r.ok else None for r in results],
        },
        schema={"model": pl.Utf8, "prompt": pl.Utf8, "response": pl.Utf8},
    )


def answered_line(model: str, answers: pl.DataFrame) -> str:
    """One line per model after :func:`collect_responses`; raises when the model answered none of the prompts
    (an RSE table built on zero answers would be silently empty)."""
    ok = int(answers["response"].is_not_null().sum())
    line = f"{model}: {ok}/{answers.height} RSE prompts answered"
    if answers.height and not ok:
        raise RuntimeError(f"{line}; see the errors in the store (they are retried on the next run)")
    return line


@dataclass
class AlignReport:
    """What ``align_responses`` dropped, per model: prompts with no response row, empty outputs."""

    missing: dict[str, int] = field(default_factory=dict)
    empty: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)

    def frame(self) -> pl.DataFrame:
        """One row per model: kept, empty, missing."""
        models = sorted(set(self.kept) | set(self.empty) | set(self.missing))
        return pl.DataFrame(
            {
                "model": models,
                "kept": [self.kept.get(m, 0) for m in models],
                "empty": [self.empty.get(m, 0) for m in models],
                "missing": [self.missing.get(m, 0) for m in models],
            },
            schema={"model": pl.Utf8, "kept": pl.Int64, "empty": pl.Int64, "missing": pl.Int64},
        )


def align_responses(prompts: pl.DataFrame, responses: pl.DataFrame) -> tuple[pl.DataFrame, AlignReport]:
    """Join responses to prompts by normalised prompt text (never by position).

    Returns ``prompt_set, prompt_id, prompt, model, response`` restricted to the prompts given,
    without empty/whitespace-only/None responses, plus an ``AlignReport`` counting per model the
    empty outputs dropped and the prompts that had no response at all.
    """
    for col in ("model", "prompt", "response"):
        if col not in responses.columns:
            raise ValueError(f"responses need columns model, prompt, response; missing {col!r}")
    p = prompts.with_columns(pl.col("prompt").map_elements(normalise_prompt, return_dtype=pl.Utf8).alias("_key"))
    r = (
        responses.with_columns(pl.col("prompt").map_elements(normalise_prompt, return_dtype=pl.Utf8).alias("_key"))
        .unique(subset=["model", "_key"], keep="first", maintain_order=True)
        .select("model", "_key", "response")
    )
    joined = p.join(r, on="_key", how="inner")
    is_empty = pl.col("response").is_null() | (pl.col("response").str.strip_chars() == "")
    report = AlignReport()
    n_prompts = p.height
    for model in responses["model"].unique(maintain_order=True).to_list():
        sub = joined.filter(pl.col("model") == model)
        empty = sub.filter(is_empty).height
        report.empty[model] = empty
        report.kept[model] = sub.height - empty
        report.missing[model] = n_prompts - sub.height
    out = joined.filter(~is_empty).select("prompt_set", "prompt_id", "prompt", "model", "response")
    return out, report


@dataclass
class ResponseSet:
    """Prompts and aligned responses of one or more prompt sets, with what alignment dropped."""

    prompts: pl.DataFrame
    aligned: pl.DataFrame
    report: AlignReport
    models: list[str]


def gather_responses(
    prompt_sets: Sequence[str],
    models: Sequence[str] | None,
    reference: str,
    *,
    live_models: Sequence[Any] = (),
    store: Any = None,
    sample_size: int | None = None,
    seed: int = 0,
) -> ResponseSet:
    """Everything RSE needs from prompts to aligned answers, for notebooks and benchmarks.

    For each prompt set: sample prompts; take published answers of ``models`` + ``reference``
    where the set has them (replay); ask every ``live_models`` config (``ModelConfig``) through
    ``collect`` and ``store``. ``models`` empty/None = every published model of the set(s).
    Raises ``ValueError`` when the reference ends up with no answer.
    """
    wanted = list(dict.fromkeys([*(models or []), reference])) if models else None
    prompt_frames, aligned_frames = [], []
    report = AlignReport()
    for name in prompt_sets:
        prompts = prompt_set(name, sample_size, seed)
        parts = []
        if name in BUILTIN_PROMPT_SETS:
            published = replay_models(name)
            keep = [m for m in (wanted or published) if m in published]
            if keep:
                parts.append(replay_responses(name, keep))
        for cfg in live_models:
            parts.append(collect_responses(cfg, prompts, store))
        prompt_frames.append(prompts)
        if not parts:
            continue
        aligned, rep = align_responses(prompts, pl.concat(parts, how="vertical_relaxed"))
        aligned_frames.append(aligned)
        for attr in ("missing", "empty", "kept"):
            tgt = getattr(report, attr)
            for k, v in getattr(rep, attr).items():
                tgt[k] = tgt.get(k, 0) + v
    if not aligned_frames:
        raise ValueError(f"no responses for prompt sets {', '.join(prompt_sets)}: name published models or live models")
    aligned = pl.concat(aligned_frames)
    present = aligned["model"].unique(maintain_order=True).to_list()
    if reference not in present:
        raise ValueError(f"reference {reference!r} has no answers in {', '.join(prompt_sets)}; models with answers: {', '.join(present)}")
    order = [m for m in (wanted or present) if m in present] + [m for m in present if wanted and m not in wanted]
    return ResponseSet(pl.concat(prompt_frames), aligned, report, order)


# ----------------------------------------------------------------------------------------------
# Offline profiles and pairwise similarity
# ----------------------------------------------------------------------------------------------

def to_likert(sim: np.ndarray | float, floor: float) -> np.ndarray | float:
    """Map a similarity in [0, 1] to the 1-5 scale: ``1 + 4 * clip((sim - floor) / (1 - floor), 0, 1)``.

    ``floor`` is the similarity of unrelated answers (-> 1); identical answers (sim 1) -> 5.
    NaN stays NaN.
    """
    if not 0 <= floor < 1:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    out = 1.0 + 4.0 * np.clip((np.asarray(sim, dtype=float) - floor) / (1.0 - floor), 0.0, 1.0)
    return float(out) if np.ndim(out) == 0 else out


@dataclass
class AnswerProfiles:
    """Per-answer features of an aligned response set, computed once (the expensive part).

    Arrays are indexed ``[model, prompt]``; ``present`` marks answers that exist. Content arrays
    are None when built with ``content=False``. ``sent_ptr[m, p]`` = (start, stop) rows of
    ``sent_emb`` holding that answer's sentence embeddings.
    """

    models: list[str]
    prompt_ids: list[str]
    present: np.ndarray
    style: np.ndarray
    fw: np.ndarray
    skeletons: list[list[str]]
    answer_emb: np.ndarray | None = None
    sent_emb: np.ndarray | None = None
    sent_ptr: np.ndarray | None = None


def _default_encoder(model_name: str | None = None, progress: bool = True) -> Encoder:
    def encode(texts: list[str]) -> np.ndarray:
        from distill_kit.text import embed

        return embed.embed_texts(texts, model_name, progress=progress)

    return encode


#: At most this many sentences per answer enter the sentence-level content similarity.
MAX_SENTENCES = 16


def build_profiles(
    aligned: pl.DataFrame,
    models: Sequence[str] | None = None,
    *,
    content: bool = True,
    encode: Encoder | None = None,
    sentence_level: bool = True,
    max_sentences: int = MAX_SENTENCES,
    progress: bool = True,
) -> AnswerProfiles:
    """Style/structure features and (optionally) embeddings of every aligned answer.

    ``aligned``: output of ``align_responses``. ``encode``: ``list[str] -> L2-normalised array``;
    default ``distill_kit.text.embed.embed_texts`` (all-MiniLM-L6-v2, disk-cached). Tests pass a stub.
    """
    from tqdm.auto import tqdm

    if aligned.height == 0:
        raise ValueError("no aligned responses: check the prompt set and models")
    models = list(models) if models else aligned["model"].unique(maintain_order=True).to_list()
    prompt_ids = aligned["prompt_id"].unique(maintain_order=True).to_list()
    mi = {m: i for i, m in enumerate(models)}
    pi = {p: j for j, p in enumerate(prompt_ids)}
    M, P = len(models), len(prompt_ids)
    present = np.zeros((M, P), dtype=bool)
    style = np.full((M, P, len(st.STYLE_FEATURES)), np.nan)
    fw = np.zeros((M, P, len(st.FUNCTION_WORDS)))
    skel = [[""] * P for _ in range(M)]
    texts: dict[tuple[int, int], str] = {}
    rows = list(aligned.filter(pl.col("model").is_in(models)).select("model", "prompt_id", "response").iter_rows())
    bar = tqdm(total=len(rows), desc="style/structure features", disable=not progress)
    for start, feats in ex.imap_batches(st.answer_features, [r[2] for r in rows]):  # local or Ray workers
        for (model, pid, resp), (sv, fv, sk) in zip(rows[start : start + len(feats)], feats):
            i, j = mi[model], pi[pid]
            present[i, j] = True
            style[i, j], fw[i, j], skel[i][j] = sv, fv, sk
            texts[(i, j)] = resp
        bar.update(len(feats))
    bar.close()
    prof = AnswerProfiles(models, prompt_ids, present, style, fw, skel)
    if not content:
        return prof
    encode = encode or _default_encoder(progress=progress)
    keys = sorted(texts)
    vecs = np.asarray(encode([texts[k] for k in keys]), dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(keys):
        raise ValueError(f"encode returned shape {vecs.shape} for {len(keys)} texts")
    emb = np.zeros((M, P, vecs.shape[1]), dtype=np.float32)
    for (i, j), v in zip(keys, vecs):
        emb[i, j] = v
    prof.answer_emb = emb
    if sentence_level:
        ptr = np.zeros((M, P, 2), dtype=np.int64)
        sents: list[str] = []
        for i, j in keys:
            ss = st.sentences(texts[(i, j)])[:max_sentences] or [texts[(i, j)]]
            ptr[i, j] = (len(sents), len(sents) + len(ss))
            sents.extend(ss)
        prof.sent_emb = np.asarray(encode(sents), dtype=np.float32)
        prof.sent_ptr = ptr
    return prof


@dataclass
class PairwiseScores:
    """Raw similarities ``sims[g][a, b, p]`` in [0, 1] (NaN when a or b lacks prompt p)."""

    models: list[str]
    prompt_ids: list[str]
    sims: dict[str, np.ndarray]
    floors: dict[str, float]

    def likert(self, granularity: str) -> np.ndarray:
        """1-5 scores ``[a, b, p]`` of one granularity, or ``"overall"`` (mean of the three)."""
        if granularity == "overall":
            parts = [self.likert(g) for g in self.granularities]
            return np.mean(parts, axis=0)
        return to_likert(self.sims[granularity], self.floors[granularity])

    @property
    def granularities(self) -> list[str]:
        return [g for g in GRANULARITIES if g in self.sims]


def _style_pairs(prof: AnswerProfiles) -> np.ndarray:
    M, P = prof.present.shape
    out = np.full((M, M, P), np.nan)
    for a in range(M):
        out[a] = st.style_similarity(prof.style[a][None], prof.style, prof.fw[a][None], prof.fw)  # [M, P]
    both = prof.present[:, None, :] & prof.present[None, :, :]
    return np.where(both, out, np.nan)


def _structure_pairs(prof: AnswerProfiles) -> np.ndarray:
    M, P = prof.present.shape
    out = np.full((M, M, P), np.nan)
    columns = [[prof.skeletons[a][p] if prof.present[a, p] else None for a in range(M)] for p in range(P)]
    for p, block in enumerate(ex.map_batches(_structure_blocks, columns, batch_size=16)):  # local or Ray
        out[:, :, p] = block
    return out


def _structure_blocks(columns: list[list[str | None]]) -> list[np.ndarray]:
    """Per prompt, the ``[M, M]`` structure similarities of the models' skeletons (None = no answer);
    identical skeleton pairs are computed once per batch."""
    memo: dict[tuple[str, str], float] = {}
    blocks = []
    for skels in columns:
        M = len(skels)
        out = np.full((M, M), np.nan)
        for a, sa in enumerate(skels):
            if sa is None:
                continue
            out[a, a] = 1.0
            for b in range(a + 1, M):
                sb = skels[b]
                if sb is None:
                    continue
                key = (sa, sb) if sa <= sb else (sb, sa)
                v = memo.get(key)
                if v is None:
                    v = memo[key] = st.structure_similarity(*key)
                out[a, b] = out[b, a] = v
        blocks.append(out)
    return blocks


def _content_pairs(prof: AnswerProfiles) -> np.ndarray:
    assert prof.answer_emb is not None
    M, P = prof.present.shape
    out = np.full((M, M, P), np.nan)
    for p in range(P):
        idx = np.flatnonzero(prof.present[:, p])
        if idx.size == 0:
            continue
        A = prof.answer_emb[idx, p].astype(np.float64)
        cos = np.clip(A @ A.T, 0.0, 1.0)
        if prof.sent_emb is not None and prof.sent_ptr is not None:
            cos = _content_mix(cos, _sentence_f1(prof.sent_emb, prof.sent_ptr[idx, p]))
        out[np.ix_(idx, idx, [p])] = cos[:, :, None]
    return out


def _content_mix(answer_cos: np.ndarray, sentence_f1: np.ndarray) -> np.ndarray:
    """Content similarity: whole-answer cosine and sentence best-match F1, equally weighted."""
    return 0.5 * answer_cos + 0.5 * sentence_f1


def _sentence_f1(sent_emb: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Symmetric sentence-level F1 between answers whose sentences are ``sent_emb[start:stop]``.

    ``R[a, b]`` = mean over a's sentences of the best cosine with any sentence of b (clipped at 0);
    F1 = harmonic mean of ``R[a, b]`` and ``R[b, a]``.
    """
    rows = np.concatenate([np.arange(s, e) for s, e in ptr])
    lengths = ptr[:, 1] - ptr[:, 0]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    E = sent_emb[rows].astype(np.float64)
    S = np.clip(E @ E.T, 0.0, 1.0)
    best = np.maximum.reduceat(S, starts, axis=1)  # [S, m]
    R = np.add.reduceat(best, starts, axis=0) / lengths[:, None]
    denom = R + R.T
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * R * R.T / denom, 0.0)
    return f1


def pairwise_scores(
    prof: AnswerProfiles,
    granularities: Sequence[str] = GRANULARITIES,
    floors: dict[str, float] | None = None,
) -> PairwiseScores:
    """Raw similarity of every model pair on every prompt, per granularity (``[M, M, P]`` arrays).

    Style is vectorised over prompts, structure memoises identical skeleton pairs, content does one
    matrix product per prompt. Once the profiles exist, the 34 x 34 AlpacaEval matrices take ~4-6 s
    for style + structure over all 805 prompts (rapidfuzz installed) and ~3-4 s for content over 40
    prompts on 2 busy cores (``benchmarks/bench_similarity.py``); building the profiles is the cost.
    """
    sims: dict[str, np.ndarray] = {}
    for g in granularities:
        if g == "style":
            sims[g] = _style_pairs(prof)
        elif g == "structure":
            sims[g] = _structure_pairs(prof)
        elif g == "content":
            if prof.answer_emb is None:
                raise ValueError("content similarity needs embeddings: build_profiles(..., content=True)")
            sims[g] = _content_pairs(prof)
        else:
            raise ValueError(f"unknown granularity {g!r}; use {', '.join(GRANULARITIES)}")
    return PairwiseScores(prof.models, prof.prompt_ids, sims, dict(floors or LIKERT_FLOORS))


def matrices(scores: PairwiseScores, likert: bool = True) -> dict[str, pl.DataFrame]:
    """Model x model matrix per granularity (+ ``overall``): mean over prompts both answered.

    Each frame has a ``model`` column (row = test model) and one column per model (reference).
    """
    out: dict[str, pl.DataFrame] = {}
    names = scores.granularities + (["overall"] if likert else [])
    for g in names:
        arr = scores.likert(g) if likert else scores.sims[g]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (no shared prompt) stay NaN
            mat = np.nanmean(arr, axis=2)
        frame = pl.DataFrame({m: mat[:, k] for k, m in enumerate(scores.models)})
        out[g] = frame.insert_column(0, pl.Series("model", scores.models))
    return out


def long_scores(
    scores: PairwiseScores,
    reference: str | None = None,
    prompts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per-prompt 1-5 scores of test models against ``reference`` (or every ordered pair when None)
    -> ``prompt_set, prompt_id, test_model, reference, style, structure, content, overall``.

    Rows where either answer is missing are dropped. ``prompts`` (``prompt_id, prompt_set``)
    supplies the prompt-set label; without it the column is ``"prompts"``.
    """
    mi = {m: i for i, m in enumerate(scores.models)}
    if reference is not None and reference not in mi:
        raise ValueError(f"reference {reference!r} has no aligned answers; models: {', '.join(scores.models)}")
    refs = [reference] if reference else scores.models
    lik = {g: scores.likert(g) for g in scores.granularities + ["overall"]}
    parts = []
    for ref in refs:
        b = mi[ref]
        for test in scores.models:
            a = mi[test]
            cols = {g: lik[g][a, b] for g in lik}
            keep = ~np.isnan(cols["overall"])
            if not keep.any():
                continue
            parts.append(
                pl.DataFrame(
                    {
                        "prompt_id": np.array(scores.prompt_ids, dtype=object)[keep].tolist(),
                        "test_model": [test] * int(keep.sum()),
                        "reference": [ref] * int(keep.sum()),
                        **{g: cols[g][keep] for g in cols},
                    }
                )
            )
    if not parts:
        return pl.DataFrame()
    df = pl.concat(parts)
    if prompts is not None:
        labels = prompts.select("prompt_id", "prompt_set").unique(subset="prompt_id", keep="first")
        df = df.join(labels, on="prompt_id", how="left")
    else:
        df = df.with_columns(pl.lit("prompts").alias("prompt_set"))
    return df.select("prompt_set", "prompt_id", "test_model", "reference", *lik.keys())


def calibrate_floors(prof: AnswerProfiles, n_pairs: int = 300, seed: int = 0) -> dict[str, float]:
    """Median raw similarity of unrelated answers: different models, different prompts.

    For every ordered model pair, ``n_pairs`` random (prompt, other prompt) draws; this is the
    baseline that ``to_likert`` maps to 1 (documented as ``LIKERT_FLOORS``).
    """
    rng = np.random.default_rng(seed)
    M, P = prof.present.shape
    if P < 2:
        raise ValueError("calibration needs at least two prompts")
    vals: dict[str, list[float]] = {g: [] for g in GRANULARITIES}
    for a in range(M):
        for b in range(M):
            if a == b:
                continue
            pa = np.flatnonzero(prof.present[a])
            pb = np.flatnonzero(prof.present[b])
            if pa.size == 0 or pb.size == 0:
                continue
            ia = rng.choice(pa, size=n_pairs)
            ib = rng.choice(pb, size=n_pairs)
            ok = ia != ib
            ia, ib = ia[ok], ib[ok]
            sty = st.style_similarity(prof.style[a, ia], prof.style[b, ib], prof.fw[a, ia], prof.fw[b, ib])
            vals["style"].extend(sty.tolist())
            vals["structure"].extend(
                st.structure_similarity(prof.skeletons[a][x], prof.skeletons[b][y]) for x, y in zip(ia[:50], ib[:50])
            )
            if prof.answer_emb is not None:
                cos = np.clip((prof.answer_emb[a, ia] * prof.answer_emb[b, ib]).sum(-1), 0, 1)
                if prof.sent_emb is not None and prof.sent_ptr is not None:
                    f1 = [
                        _sentence_f1(prof.sent_emb, np.stack([prof.sent_ptr[a, x], prof.sent_ptr[b, y]]))[0, 1]
                        for x, y in zip(ia[:50], ib[:50])
                    ]
                    cos = _content_mix(cos[:50], np.array(f1))
                vals["content"].extend(np.asarray(cos).tolist())
    return {g: round(float(np.median(v)), 3) for g, v in vals.items() if v}


# ----------------------------------------------------------------------------------------------
# RSE table and clustering order
# ----------------------------------------------------------------------------------------------

def rse_table(
    scores: pl.DataFrame,
    score: str = "overall",
    prompt_sets: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pl.DataFrame:
    """The paper's RSE table: one row per test model, one column per prompt set + ``mean``.

    ``scores``: per-prompt 1-5 scores (``long_scores`` or the LLM judge's frame) with columns
    ``prompt_set, test_model`` and ``score``; null/NaN scores (unparseable verdicts) are left out
    and counted in ``n_<set>``. Each cell is the mean with a 95% bootstrap CI over prompts
    (``<set>_lo``, ``<set>_hi``); ``mean`` is the mean of the set columns (the paper's Avg) with a
    stratified bootstrap CI, null when the model lacks a set (a partial mean would not compare).
    Rows are sorted by ``mean``, highest first.
    """
    from distill_kit.stats import bootstrap_ci, stratified_bootstrap_ci

    need = {"prompt_set", "test_model", score}
    if not need <= set(scores.columns):
        raise ValueError(f"scores need columns {', '.join(sorted(need))}; got {', '.join(scores.columns)}")
    clean = scores.filter(pl.col(score).is_not_null() & pl.col(score).is_not_nan())
    sets = list(prompt_sets) if prompt_sets else scores["prompt_set"].unique(maintain_order=True).to_list()
    rows = []
    for test in scores["test_model"].unique(maintain_order=True).to_list():
        row: dict[str, Any] = {"test_model": test}
        groups = []
        for s in sets:
            v = clean.filter((pl.col("test_model") == test) & (pl.col("prompt_set") == s))[score].to_numpy()
            row[f"n_{s}"] = int(v.size)
            if v.size == 0:
                row[s] = row[f"{s}_lo"] = row[f"{s}_hi"] = None
                continue
            groups.append(v.astype(float))
            row[s] = float(v.mean())
            lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed)
            row[f"{s}_lo"], row[f"{s}_hi"] = float(lo), float(hi)
        if groups and len(groups) == len(sets):
            row["mean"] = float(np.mean([g.mean() for g in groups]))
            row["mean_lo"], row["mean_hi"] = stratified_bootstrap_ci(groups, n_boot=n_boot, seed=seed)
        else:
            row["mean"] = row["mean_lo"] = row["mean_hi"] = None
        rows.append(row)
    schema: dict[str, Any] = {"test_model": pl.Utf8}
    for s in sets:
        schema.update({s: pl.Float64, f"{s}_lo": pl.Float64, f"{s}_hi": pl.Float64, f"n_{s}": pl.Int64})
    schema.update({"mean": pl.Float64, "mean_lo": pl.Float64, "mean_hi": pl.Float64})
    return pl.DataFrame(rows, schema=schema).sort("mean", descending=True, nulls_last=True)


def cluster_order(matrix: pl.DataFrame) -> list[str]:
    """Models ordered by average-linkage hierarchical clustering of a similarity matrix
    (``matrices`` output), with optimal leaf ordering so similar models sit side by side.

    Distance = max similarity - symmetrised similarity; missing cells take the mean distance.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    models = matrix["model"].to_list()
    if len(models) < 3:
        return models
    S = matrix.select(models).to_numpy().astype(float)
    S = (S + S.T) / 2
    D = np.nanmax(S) - S
    D = np.where(np.isnan(D), np.nanmean(D), D)
    np.fill_diagonal(D, 0.0)
    D = np.clip(D, 0.0, None)
    cond = squareform(D, checks=False)
    Z = optimal_leaf_ordering(linkage(cond, method="average"), cond)
    return [models[i] for i in leaves_list(Z)]
