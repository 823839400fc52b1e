"""Collection throughput against a loopback server with fixed latency, as a share of the ideal N / latency.

The ideal for concurrency bound N and per-request latency L is N / L requests per second; the ratio
shows what the client, retries bookkeeping and the per-answer SQLite commit cost on top.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from distill_kit.collect import ChatRequest, collect_sync
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.loopback import LoopbackProcess
from distill_kit.store import Store

LATENCY = float(os.environ.get("BENCH_LATENCY", "0.2"))
CASES = [(1, 20), (4, 80), (16, 320), (32, 480)]


def run_case(concurrency: int, n: int) -> dict[str, float]:
    with LoopbackProcess(latency=LATENCY) as srv, tempfile.TemporaryDirectory() as tmp:
        cfg = ModelConfig(name="bench", provider="openai", model="loopback", base_url=srv.base_url,
                          concurrency=concurrency, params=GenerationParams(max_tokens=8))
        store = Store(Path(tmp) / "bench.sqlite")
        reqs = [ChatRequest.user(f"q{i}") for i in range(n)]
        start = time.perf_counter()
        out = collect_sync(cfg, reqs, store, progress=False)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        collect_sync(cfg, reqs, store, progress=False)
        warm = time.perf_counter() - start
        assert all(r.ok for r in out) and store.count() == n
        ideal = concurrency / LATENCY
        rate = n / cold
        return {"concurrency": concurrency, "requests": n, "latency_s": LATENCY, "seconds": round(cold, 3),
                "req_per_s": round(rate, 2), "ideal_req_per_s": round(ideal, 2), "ratio": round(rate / ideal, 3),
                "rerun_from_store_s": round(warm, 3)}


def main() -> None:
    import openai  # noqa: F401  (import cost is not collection cost)

    rows = [run_case(c, n) for c, n in CASES]
    print(f"{'N':>4} {'requests':>8} {'seconds':>8} {'req/s':>8} {'ideal':>8} {'ratio':>6} {'rerun s':>8}")
    for r in rows:
        print(f"{r['concurrency']:>4} {r['requests']:>8} {r['seconds']:>8} {r['req_per_s']:>8} "
              f"{r['ideal_req_per_s']:>8} {r['ratio']:>6} {r['rerun_from_store_s']:>8}")
    print(json.dumps({"benchmark": "collect_throughput", "latency_s": LATENCY, "cases": rows}))


if __name__ == "__main__":
    main()
