"""The offline RSE judge (no API): per-answer profiles, pairwise similarity at three granularities, the mapping
to the paper's 1-5 scale and the calibration of its floors.

Granularities (raw similarity in [0, 1], see :mod:`distill_kit.text.stylometry`):

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

Input: the aligned answers of :func:`distill_kit.rse.responses.align_responses`; output:
:class:`PairwiseScores`, turned into matrices and tables by :mod:`distill_kit.rse.scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from distill_kit import executor as ex
from distill_kit.text import stylometry as st

GRANULARITIES: tuple[str, ...] = ("style", "structure", "content")

#: Similarity that maps to 1 on the 1-5 scale, per granularity: the median similarity of answers by
#: different models to different prompts, measured by ``calibrate_floors`` on all 34 AlpacaEval
#: models (style/structure: all 805 prompts, 200 cross pairs per model pair; content: 40 prompts;
#: seed 0): style 0.661, structure 0.291, content 0.077. ``benchmarks/bench_similarity.py``
#: re-measures them on any data directory.
LIKERT_FLOORS: dict[str, float] = {"style": 0.66, "structure": 0.29, "content": 0.08}

Encoder = Callable[[list[str]], np.ndarray]


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
    rows = list(aligned.filter(pl.col("model").is_in(models)).select("model", "prompt_id", "text").iter_rows())
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
            cos = _content_mix(cos, sentence_f1(prof.sent_emb, prof.sent_ptr[idx, p]))
        out[np.ix_(idx, idx, [p])] = cos[:, :, None]
    return out


def _content_mix(answer_cos: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """Content similarity: whole-answer cosine and sentence best-match F1, equally weighted."""
    return 0.5 * answer_cos + 0.5 * f1


def sentence_f1(sent_emb: np.ndarray, ptr: np.ndarray) -> np.ndarray:
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


class OfflineSimilarityJudge:
    """The :class:`~distill_kit.rse.judge.SimilarityJudge` without an API: answer profiles of the pairs' answers,
    :func:`pairwise_scores`, the 1-5 mapping. ``content=False`` leaves the embeddings out (style, structure)."""

    name = "offline"

    def __init__(self, content: bool = True, floors: dict[str, float] | None = None, encode: Encoder | None = None,
                 progress: bool = False) -> None:
        self.content, self.floors, self.encode, self.progress = content, floors, encode, progress

    def score_pairs(self, pairs: pl.DataFrame) -> pl.DataFrame:
        from distill_kit.rse.judge import check_pairs

        check_pairs(pairs)
        answers = pl.concat([
            pairs.select("prompt_id", pl.col("test_model").alias("model"), pl.col("test_answer").alias("text")),
            pairs.select("prompt_id", pl.col("reference").alias("model"), pl.col("reference_answer").alias("text")),
        ]).unique(["model", "prompt_id"], keep="first", maintain_order=True)
        prof = build_profiles(answers, content=self.content, encode=self.encode, progress=self.progress)
        granularities = GRANULARITIES if self.content else ("style", "structure")
        scores = pairwise_scores(prof, granularities, self.floors)
        mi = {m: i for i, m in enumerate(scores.models)}
        pi = {p: j for j, p in enumerate(scores.prompt_ids)}
        a = [mi[m] for m in pairs["test_model"]]
        b = [mi[m] for m in pairs["reference"]]
        p = [pi[x] for x in pairs["prompt_id"]]
        columns = [pl.Series(g, scores.likert(g)[a, b, p] if g == "overall" or g in scores.sims else [None] * len(a),
                             dtype=pl.Float64).fill_nan(None) for g in (*GRANULARITIES, "overall")]
        return pairs.with_columns(*columns, pl.lit(self.name).alias("judge"))


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
                        sentence_f1(prof.sent_emb, np.stack([prof.sent_ptr[a, x], prof.sent_ptr[b, y]]))[0, 1]
                        for x, y in zip(ia[:50], ib[:50])
                    ]
                    cos = _content_mix(cos[:50], np.array(f1))
                vals["content"].extend(np.asarray(cos).tolist())
    return {g: round(float(np.median(v)), 3) for g, v in vals.items() if v}
