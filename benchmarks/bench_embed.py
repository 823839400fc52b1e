"""Embedding throughput, side by side in one run: raw ``SentenceTransformer.encode`` (torch) vs the kit's
``embed_texts`` on torch, ONNX fp32 and ONNX int8, on AlpacaEval answers from ``DISTILL_KIT_DATA_DIR``.

Each repeat draws fresh texts (a per-repeat nonce is appended, so the kit's disk cache really misses and
its cost -- hashing, look-up, writes -- is included) and runs the four variants on the same texts, in a
rotated order so that load drift on a shared machine does not favour one of them. Ratios are taken within
a repeat, then the median over repeats is reported, with the machine's load average before and after.
Quality: the minimum (and mean) cosine of each variant's vectors to the raw torch vectors, over all texts.
CPU seconds per text are reported beside wall time: on a shared machine wall ratios mostly measure how each
runtime's threads cope with contention, CPU time the work each does. Then the limits (``--no-limits`` skips
them): FLOPs per text from the exported graph and the texts' token counts, onnxruntime's measured fp32 and
int8 GEMM rates on one core, the share of the int8 graph that stays fp32, and the instruction sets present.

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


_ISA = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "amx_tile")


def cpu_flags() -> dict[str, bool]:
    """The instruction sets that decide which GEMM kernels onnxruntime's MLAS dispatches to here."""
    try:
        flags = set(next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")).split())
    except (OSError, StopIteration):
        flags = set()
    return {f: f in flags for f in _ISA}


def gemm_rate(int8: bool, m: int = 4096, k: int = 384, n: int = 1536, threads: int = 1, repeats: int = 7) -> dict:
    """GOP/s of one onnxruntime GEMM shaped like the model's feed-forward layer (a constant weight, as in the
    model): fp32 ``MatMul`` or the ``MatMulInteger`` (uint8 x int8) that dynamic quantization emits. Best of
    ``repeats`` by wall and by CPU time (CPU time is what a loaded machine does not distort much)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        a = rng.integers(0, 255, size=(m, k), dtype=np.uint8)
        w = rng.integers(-127, 127, size=(k, n), dtype=np.int8)
        node, a_t, y_t = helper.make_node("MatMulInteger", ["A", "W"], ["Y"]), TensorProto.UINT8, TensorProto.INT32
    else:
        a, w = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
        node, a_t, y_t = helper.make_node("MatMul", ["A", "W"], ["Y"]), TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_t, [m, k])],
                              [helper.make_tensor_value_info("Y", y_t, [m, n])],
                              initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"A": a})
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        sess.run(None, {"A": a})
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    ops = 2 * m * k * n
    return {"gops_wall": ops / min(walls) / 1e9, "gops_per_cpu_s": ops / min(cpus) / 1e9}


def graph_macs_per_token(path: Path) -> dict[str, int]:
    """Multiply-accumulates per token of the weight GEMMs in an exported graph, split by precision: fp32
    ``MatMul`` vs int8 ``MatMulInteger`` / ``QAttention`` (read from the weight shapes)."""
    import onnx

    g = onnx.load(str(path)).graph
    shapes = {i.name: list(i.dims) for i in g.initializer}
    out = {"fp32": 0, "int8": 0}
    for node in g.node:
        dims = next((shapes[x] for x in node.input[1:2] if x in shapes and len(shapes[x]) == 2), None)
        if node.op_type == "QAttention" or (node.op_type == "MatMulInteger" and dims):
            out["int8"] += int(np.prod(shapes[node.input[1]]))
        elif node.op_type in ("MatMul", "Attention") and dims:
            out["fp32"] += int(np.prod(dims))
    return out


def compute_limits(texts: list[str], cpu_ms: dict[str, float]) -> dict:
    """How far int8 can go here: FLOPs per text (from the graph and the texts' token counts) against the
    measured fp32 and int8 GEMM rates of one core, and the best int8-over-raw ratio they allow."""
    import json as _json

    from distill_kit.text import embed

    folder = embed.onnx_model_dir()
    enc = embed.load_model(None, "onnx-int8")
    tokens = np.array([len(e.ids) for e in enc.tokenizer.encode_batch(texts)], dtype=float)
    cfg = _json.loads((folder / "config.json").read_text())
    layers, hidden = int(cfg["num_hidden_layers"]), int(cfg["hidden_size"])
    macs = graph_macs_per_token(folder / "model_int8.onnx")
    fp32_macs = graph_macs_per_token(folder / "model.onnx")["fp32"]
    attention = 2 * layers * hidden * tokens  # QK^T and AV, per token (they run fp32 in both graphs)
    flops = {"linear": float(2 * fp32_macs * tokens.mean()), "attention": float(2 * (attention * tokens).mean())}
    flops["total"] = flops["linear"] + flops["attention"]
    fp32_share = (macs["fp32"] * tokens.mean() + (attention * tokens).mean()) / (fp32_macs * tokens.mean() + (attention * tokens).mean())
    rates = {"fp32_1core": gemm_rate(False), "int8_1core": gemm_rate(True),
             "fp32_all": gemm_rate(False, threads=os.cpu_count() or 1), "int8_all": gemm_rate(True, threads=os.cpu_count() or 1)}
    peak32, peak8 = rates["fp32_1core"]["gops_per_cpu_s"], rates["int8_1core"]["gops_per_cpu_s"]
    achieved = {v: flops["total"] / (ms / 1000) / 1e9 for v, ms in cpu_ms.items()}
    # the int8 graph at best: its fp32 part at the fp32 GEMM rate, its int8 part at the int8 rate (no other cost)
    floor_ms = 1000 * flops["total"] * (fp32_share / peak32 + (1 - fp32_share) / peak8) / 1e9
    amdahl = 1 / (fp32_share + (1 - fp32_share) / (peak8 / peak32))
    out = {"tokens_mean": float(tokens.mean()), "gflop_per_text": {k: v / 1e9 for k, v in flops.items()},
           "macs_per_token": {**macs, "fp32_graph": fp32_macs}, "fp32_share_of_flops_in_int8_graph": fp32_share,
           "gemm_rates": rates, "int8_over_fp32_gemm": peak8 / peak32,
           "achieved_gflops_per_cpu_s": achieved, "int8_graph_floor_cpu_ms": floor_ms,
           "int8_over_fp32_best_amdahl": amdahl,
           "int8_over_raw_best": cpu_ms["raw_st_torch"] / floor_ms, "cpu_flags": cpu_flags()}
    print(f"\nlimits: {tokens.mean():.0f} tokens per text, {flops['total'] / 1e9:.2f} GFLOP per text "
          f"({flops['attention'] / flops['total']:.0%} attention); int8 graph keeps {fp32_share:.0%} of them in fp32")
    print(f"one core, onnxruntime GEMM {4096}x{384}x{1536}: fp32 {peak32:.0f} GFLOP/CPU-s, int8 {peak8:.0f} GOP/CPU-s "
          f"({peak8 / peak32:.2f}x); all {os.cpu_count()} cores by wall: fp32 {rates['fp32_all']['gops_wall']:.0f}, "
          f"int8 {rates['int8_all']['gops_wall']:.0f}")
    print("achieved GFLOP per CPU-second: " + ", ".join(f"{v} {a:.0f}" for v, a in achieved.items()))
    print(f"int8 graph at best {floor_ms:.1f} CPU ms/text (GEMMs only, at the measured rates) -> at most "
          f"{out['int8_over_raw_best']:.2f}x raw; Amdahl over fp32 ONNX: at most {amdahl:.2f}x")
    print("instruction sets: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in out["cpu_flags"].items()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="texts per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32, help="the same for every variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-limits", dest="limits", action="store_false",
                    help="skip the FLOPs-per-text and GEMM-peak measurements")
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
        secs, cpu, vecs = {}, {}, {}
        for v in order:
            t, c = time.perf_counter(), time.process_time()
            if v == "raw_st_torch":
                out = st.encode(texts, batch_size=args.batch_size, show_progress_bar=False, normalize_embeddings=True)
            else:
                out = embed.embed_texts(texts, batch_size=args.batch_size, progress=False, backend=_BACKEND[v])
            secs[v], cpu[v] = time.perf_counter() - t, time.process_time() - c
            vecs[v] = np.asarray(out, dtype=np.float32)
        ref = vecs["raw_st_torch"]
        cos = {v: (vecs[v] * ref).sum(axis=1) for v in VARIANTS}
        repeats.append({
            "order": list(order), "load_before": load_before, "load_after": os.getloadavg()[0],
            "texts_per_s": {v: len(texts) / secs[v] for v in VARIANTS},
            "over_raw": {v: secs["raw_st_torch"] / secs[v] for v in VARIANTS},
            "cpu_ms_per_text": {v: 1000 * cpu[v] / len(texts) for v in VARIANTS},
            "cpu_over_raw": {v: cpu["raw_st_torch"] / cpu[v] for v in VARIANTS},
            "min_cos_to_torch": {v: float(cos[v].min()) for v in VARIANTS},
            "mean_cos_to_torch": {v: float(cos[v].mean()) for v in VARIANTS},
        })

    med = {v: statistics.median(r["over_raw"][v] for r in repeats) for v in VARIANTS}
    cpu_med = {v: statistics.median(r["cpu_over_raw"][v] for r in repeats) for v in VARIANTS}
    cpu_ms = {v: statistics.median(r["cpu_ms_per_text"][v] for r in repeats) for v in VARIANTS}
    tps = {v: statistics.median(r["texts_per_s"][v] for r in repeats) for v in VARIANTS}
    min_cos = {v: min(r["min_cos_to_torch"][v] for r in repeats) for v in VARIANTS}
    mean_cos = {v: statistics.mean(r["mean_cos_to_torch"][v] for r in repeats) for v in VARIANTS}
    lengths = [len(x) for x in base]
    print(f"{len(base)} AlpacaEval answers per repeat (mean {np.mean(lengths):.0f} chars), {args.repeats} repeats, "
          f"batch size {args.batch_size}, {os.cpu_count()} CPUs; ONNX model {onnx_dir.name} "
          f"({export_s:.1f} s to export or find)")
    print("load average per repeat: " + ", ".join(f"{r['load_before']:.1f}->{r['load_after']:.1f}" for r in repeats))
    print(f"{'variant':<16}{'texts/s':>9}{'x raw':>8}{'per repeat':>22}{'CPU ms/text':>12}{'CPU x raw':>10}"
          f"{'min cos':>9}{'mean cos':>10}")
    for v in VARIANTS:
        per = " ".join(f"{r['over_raw'][v]:.2f}" for r in repeats)
        print(f"{v:<16}{tps[v]:>9.1f}{med[v]:>8.2f}{per:>22}{cpu_ms[v]:>12.1f}{cpu_med[v]:>10.2f}"
              f"{min_cos[v]:>9.4f}{mean_cos[v]:>10.4f}")
    limits = compute_limits(base, cpu_ms) if args.limits else None
    result = {
        "bench": "embed", "n_texts": len(base), "mean_chars": float(np.mean(lengths)), "repeats": args.repeats,
        "batch_size": args.batch_size, "cpus": os.cpu_count(), "onnx_model": onnx_dir.name,
        "export_or_lookup_s": export_s, "int8_min_tokens": embed.INT8_MIN_TOKENS,
        "median_over_raw": med, "median_texts_per_s": tps, "median_cpu_over_raw": cpu_med,
        "median_cpu_ms_per_text": cpu_ms, "limits": limits, "min_cos_to_torch": min_cos,
        "mean_cos_to_torch": mean_cos, "per_repeat": repeats,
        "env": {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), **_blas()},
        "target": {"int8_over_raw>=2": med["kit_onnx_int8"] >= 2, "int8_min_cos>=0.99": min_cos["kit_onnx_int8"] >= 0.99},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
