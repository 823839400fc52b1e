"""Embedding throughput, side by side in one run: raw ``SentenceTransformer.encode`` (torch) vs the kit's
``embed_texts`` on torch, ONNX fp32 and ONNX int8, on AlpacaEval answers from ``DISTILL_KIT_DATA_DIR``.

Each repeat draws fresh texts (a per-repeat nonce is appended, so the kit's disk cache really misses and
its cost -- hashing, look-up, writes -- is included) and runs the four variants on the same texts, in a
rotated order so that load drift on a shared machine does not favour one of them. Ratios are taken within
a repeat, then the median over repeats is reported, with the machine's load average before and after.
Quality: the minimum (and mean) cosine of each variant's vectors to the raw torch vectors, over all texts.

    python benchmarks/bench_embed.py [--n 300] [--repeats 3] [--batch-size 32]

Prints a table, then one JSON line with every number. The kit's vectors go to a temporary cache (the
exported ONNX model is shared with the real cache, so the one-time export is not re-timed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

VARIANTS = ("raw_st_torch", "kit_torch", "kit_onnx_fp32", "kit_onnx_int8")
_BACKEND = {"kit_torch": "torch", "kit_onnx_fp32": "onnx", "kit_onnx_int8": "onnx-int8"}


def _texts(n: int, seed: int) -> list[str]:
    from distill_kit import datasets

    frame = datasets.load_responses("alpaca-eval")
    texts = [t for t in frame["text"].to_list() if t and t.strip()]
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]


def _blas() -> dict:
    try:
        from threadpoolctl import threadpool_info

        return {"threadpools": [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")}
                                for p in threadpool_info()]}
    except ImportError:  # pragma: no cover - optional
        return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="texts per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32, help="the same for every variant")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from distill_kit.paths import cache_dir
    from distill_kit.text import embed

    real_models = embed.embeddings_cache_dir() / "models"
    t = time.perf_counter()
    onnx_dir = embed.onnx_model_dir()  # the one-time export (or the cached one)
    export_s = time.perf_counter() - t
    tmp = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    (tmp / "embeddings").mkdir()
    (tmp / "embeddings" / "models").symlink_to(real_models)
    os.environ["DISTILL_KIT_CACHE_DIR"] = str(tmp)
    assert cache_dir() == tmp

    base = _texts(args.n, args.seed)
    st = embed.load_model(None, "torch")
    for b in _BACKEND.values():  # load every model and warm threads before any timing
        embed.load_model(None, b).encode(base[:8], batch_size=8)
    st.encode(base[:8], batch_size=8)

    repeats = []
    for r in range(args.repeats):
        nonce = uuid.uuid4().hex[:8]
        texts = [f"{x}\n[{nonce}]" for x in base]
        order = VARIANTS[r % 4:] + VARIANTS[: r % 4]
        load_before = os.getloadavg()[0]
        secs, vecs = {}, {}
        for v in order:
            t = time.perf_counter()
            if v == "raw_st_torch":
                out = st.encode(texts, batch_size=args.batch_size, show_progress_bar=False, normalize_embeddings=True)
            else:
                out = embed.embed_texts(texts, batch_size=args.batch_size, progress=False, backend=_BACKEND[v])
            secs[v] = time.perf_counter() - t
            vecs[v] = np.asarray(out, dtype=np.float32)
        ref = vecs["raw_st_torch"]
        cos = {v: (vecs[v] * ref).sum(axis=1) for v in VARIANTS}
        repeats.append({
            "order": list(order), "load_before": load_before, "load_after": os.getloadavg()[0],
            "texts_per_s": {v: len(texts) / secs[v] for v in VARIANTS},
            "over_raw": {v: secs["raw_st_torch"] / secs[v] for v in VARIANTS},
            "min_cos_to_torch": {v: float(cos[v].min()) for v in VARIANTS},
            "mean_cos_to_torch": {v: float(cos[v].mean()) for v in VARIANTS},
        })

    med = {v: statistics.median(r["over_raw"][v] for r in repeats) for v in VARIANTS}
    tps = {v: statistics.median(r["texts_per_s"][v] for r in repeats) for v in VARIANTS}
    min_cos = {v: min(r["min_cos_to_torch"][v] for r in repeats) for v in VARIANTS}
    mean_cos = {v: statistics.mean(r["mean_cos_to_torch"][v] for r in repeats) for v in VARIANTS}
    lengths = [len(x) for x in base]
    print(f"{len(base)} AlpacaEval answers per repeat (mean {np.mean(lengths):.0f} chars), {args.repeats} repeats, "
          f"batch size {args.batch_size}, {os.cpu_count()} CPUs; ONNX model {onnx_dir.name} "
          f"({export_s:.1f} s to export or find)")
    print("load average per repeat: " + ", ".join(f"{r['load_before']:.1f}->{r['load_after']:.1f}" for r in repeats))
    print(f"{'variant':<16}{'texts/s':>9}{'x raw':>8}{'per repeat':>22}{'min cos':>9}{'mean cos':>10}")
    for v in VARIANTS:
        per = " ".join(f"{r['over_raw'][v]:.2f}" for r in repeats)
        print(f"{v:<16}{tps[v]:>9.1f}{med[v]:>8.2f}{per:>22}{min_cos[v]:>9.4f}{mean_cos[v]:>10.4f}")
    result = {
        "bench": "embed", "n_texts": len(base), "mean_chars": float(np.mean(lengths)), "repeats": args.repeats,
        "batch_size": args.batch_size, "cpus": os.cpu_count(), "onnx_model": onnx_dir.name,
        "export_or_lookup_s": export_s, "int8_min_tokens": embed.INT8_MIN_TOKENS,
        "median_over_raw": med, "median_texts_per_s": tps, "min_cos_to_torch": min_cos,
        "mean_cos_to_torch": mean_cos, "per_repeat": repeats,
        "env": {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), **_blas()},
        "target": {"int8_over_raw>=2.5": med["kit_onnx_int8"] >= 2.5, "int8_min_cos>=0.99": min_cos["kit_onnx_int8"] >= 0.99},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
