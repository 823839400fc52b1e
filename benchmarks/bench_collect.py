"""Collection throughput: distill-kit's ``collect`` beside a bare ``openai.AsyncOpenAI`` + semaphore, in one run.

The server is the API zoo in its own process (uvicorn, asyncio, listen backlog 2048, fixed latency,
answers ``echo: <prompt>``), so it holds N = 128 connections and the client does not share its GIL.
For concurrency bound N and latency L the ideal is N / L requests per second. Each case warms both
clients up on one server, then runs them in pairs -- one run of each, alternately first by default;
``--order bare-first`` runs the bare client first in every pair, as a user's own client would have gone
before trying distill-kit -- 9 pairs below 1 s latency and 3 at 1 s or more. The figure is the median
over the pairs of bare seconds / distill-kit seconds, with its range and a distribution-free 95%
interval (from 6 pairs); req/s are each side's median run. Every timed run starts after a
``gc.collect()``, so neither inherits the other's garbage. Both check every answer. The bare client's
time starts after its construction (the SDK builds an SSL context per client, ~0.1 s) and stops before
its close; distill-kit's is its whole ``collect`` call (keys, store look-up, client, persistence,
close), which counts against it. Both sides' CPU per request (the client process's) is printed too.
Then a server-side rate limit (token bucket, 429 + Retry-After + x-ratelimit-* headers): throughput
against the limit and the number of 429s, for distill-kit (adaptive, ratelimit.py) and for the bare
SDK with its own retries.

    python benchmarks/bench_collect.py [--latencies 0.2,2] [--ns 1,4,16,32,64,128] [--order bare-first]
                                       [--reps 9] [--reps-long 3] [--quick] [--no-rate-limit]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from distill_kit.collect import ChatRequest, collect_sync
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.store import Store

KEY_ENV = "BENCH_COLLECT_KEY"


@contextmanager
def zoo(latency: float, rate: float | None = None, burst: int | None = None) -> Iterator[str]:
    cmd = [sys.executable, "-m", "distill_kit.testing", "--echo", "--latency", str(latency)]
    if rate:
        cmd += ["--rate-limit", str(rate), "--burst", str(burst or 1)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("zoo did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(url: str) -> dict:
    return httpx.get(f"{url}/zoo/stats", timeout=10).json()


async def _bare(url: str, n_conc: int, prompts: list[str], max_retries: int = 0) -> tuple[float, int, float]:
    """Seconds for all prompts, how many failed (the SDK gave up after its own retries), and the
    process's CPU seconds meanwhile."""
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=f"{url}/v1", max_retries=max_retries, timeout=120)
    sem = asyncio.Semaphore(n_conc)

    async def one(p: str) -> None:
        async with sem:
            r = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": p}],
                                                     temperature=0.0, max_tokens=8, top_p=1.0)
            assert r.choices[0].message.content == f"echo: {p}"

    t0, c0 = time.perf_counter(), time.process_time()
    done = await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.close()
    failed = [d for d in done if isinstance(d, BaseException)]
    if failed and not max_retries:
        raise failed[0]
    return secs, len(failed), cpu


def bare(url: str, n_conc: int, prompts: list[str], max_retries: int = 0) -> tuple[float, float]:
    """Seconds and CPU seconds of the bare client's run."""
    secs, _, cpu = asyncio.run(_bare(url, n_conc, prompts, max_retries))
    return secs, cpu


def dk(url: str, n_conc: int, prompts: list[str], **kw) -> tuple[float, Store, Path, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    cfg = ModelConfig(name="bench", provider="openai", model="bench", base_url=f"{url}/v1", api_key_env=KEY_ENV,
                      concurrency=n_conc, params=GenerationParams(max_tokens=8), **kw)
    store = Store(tmp / "bench.sqlite")
    t0, c0 = time.perf_counter(), time.process_time()
    out = collect_sync(cfg, [ChatRequest.user(p) for p in prompts], store, progress=False)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert all(r.ok for r in out) and [r.text for r in out] == [f"echo: {p}" for p in prompts]
    return secs, store, tmp, cpu


def sides(rep: int, order: str) -> tuple[str, str]:
    """Who goes first in repetition ``rep``: alternately (neither always first), or one side always."""
    if order == "alternate":
        return ("bare", "dk") if rep % 2 == 0 else ("dk", "bare")
    return ("bare", "dk") if order == "bare-first" else ("dk", "bare")


def settle(seconds: float) -> None:
    """Between two timed runs: collect the last run's garbage and let the server finish closing its
    connections, so neither run pays for the one before it."""
    import gc

    gc.collect()
    if seconds:
        time.sleep(seconds)


def paired(ratios: list[float]) -> dict:
    """Median of the paired ratios (one per repetition), their range, and a distribution-free 95%
    interval for the median (order statistics, ``scipy.stats.quantile_test``; None below 6 pairs,
    where no pair of order statistics covers 95%).

    Why pairs and a median, not each side's best: the two runs of one repetition share the machine's
    state of that moment, and on a shared 2-core machine one run in a few is several per cent off;
    a best-of-k keeps exactly those outliers (whichever side drew the luckier one wins)."""
    import math

    import numpy as np
    from scipy.stats import quantile_test

    arr = np.asarray(ratios, dtype=float)
    med = float(np.median(arr))
    ci = quantile_test(arr, q=med, p=0.5).confidence_interval(0.95)
    interval = None if math.isnan(ci.low) or math.isnan(ci.high) else [round(float(ci.low), 3), round(float(ci.high), 3)]
    return {"median": round(med, 3), "range": [round(float(arr.min()), 3), round(float(arr.max()), 3)],
            "ci95": interval, "pairs": [round(float(r), 3) for r in arr]}


def throughput_case(latency: float, n: int, rounds: int, reps: int, order: str = "alternate",
                    pause: float = 0.0) -> dict:
    import statistics

    count = max(n * rounds, 8)
    ideal = n / latency
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "dk": []}  # (seconds, CPU seconds) per repetition
    with zoo(latency) as url:
        # the server's first requests and each side's first-use imports are not collection
        bare(url, n, [f"bwarm{i}" for i in range(n)])
        _, store, tmp, _ = dk(url, n, [f"dwarm{i}" for i in range(n)])
        store.close()
        shutil.rmtree(tmp)
        for rep in range(reps):
            prompts = [f"r{rep}-q{i}" for i in range(count)]
            for side in sides(rep, order):
                if pause >= 0:
                    settle(pause)
                if side == "bare":
                    runs["bare"].append(bare(url, n, [f"b-{p}" for p in prompts]))
                else:
                    secs, store, tmp, cpu = dk(url, n, [f"d-{p}" for p in prompts])
                    store.close()
                    shutil.rmtree(tmp)
                    runs["dk"].append((secs, cpu))
    ratio = paired([b[0] / d[0] for b, d in zip(runs["bare"], runs["dk"])])
    rate_bare = count / statistics.median(s for s, _ in runs["bare"])
    rate_dk = count / statistics.median(s for s, _ in runs["dk"])
    cpu_ms = {side: round(statistics.median(c for _, c in runs[side]) / count * 1000, 3) for side in runs}
    return {"latency_s": latency, "N": n, "requests": count, "ideal_rps": round(ideal, 1),
            "bare_rps": round(rate_bare, 1), "dk_rps": round(rate_dk, 1),
            "dk_vs_bare": ratio["median"], "dk_vs_bare_ci95": ratio["ci95"], "dk_vs_bare_range": ratio["range"],
            "dk_vs_bare_pairs": ratio["pairs"], "dk_vs_ideal": round(rate_dk / ideal, 3),
            "bare_vs_ideal": round(rate_bare / ideal, 3), "cpu_ms_per_request": cpu_ms, "order": order}


def rate_limit_case(rate: float, n: int, count: int, latency: float) -> dict:
    out: dict = {"limit_rps": rate, "N": n, "requests": count, "latency_s": latency}
    with zoo(latency, rate=rate, burst=max(1, int(rate // 4))) as url:
        secs, store, tmp, _ = dk(url, n, [f"rl{i}" for i in range(count)], max_retries=8, backoff_base=0.5)
        attempts = int(store.usage()["attempts"].sum())
        store.close()
        shutil.rmtree(tmp)
        s = stats(url)
        out["dk"] = {"seconds": round(secs, 2), "rps": round(count / secs, 2), "share_of_limit": round(count / secs / rate, 3),
                     "http_429": s["rejected"], "retries": attempts - count}
    with zoo(latency, rate=rate, burst=max(1, int(rate // 4))) as url:
        secs, failed, _ = asyncio.run(_bare(url, n, [f"rl{i}" for i in range(count)], max_retries=10))
        s = stats(url)
        ok = count - failed
        out["bare_sdk_own_retries"] = {"seconds": round(secs, 2), "rps": round(ok / secs, 2),
                                       "share_of_limit": round(ok / secs / rate, 3), "http_429": s["rejected"],
                                       "gave_up": failed}
    return out


def main() -> None:
    import os

    os.environ.setdefault(KEY_ENV, "bench")
    ap = argparse.ArgumentParser()
    ap.add_argument("--latencies", default="0.2,2")
    ap.add_argument("--ns", default="1,4,16,32,64,128")
    ap.add_argument("--reps", type=int, default=9,
                    help="paired repetitions (one run of each side) per case below 1 s latency")
    ap.add_argument("--reps-long", type=int, default=3,
                    help="paired repetitions per case at 1 s latency or more (each run takes 6-16 s)")
    ap.add_argument("--order", choices=("alternate", "bare-first", "dk-first"), default="alternate",
                    help="who goes first in each repetition (bare-first: the bare SDK client, every time)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to pause after the gc.collect() that precedes each timed run; negative: "
                         "neither (then a full collection of the process's heap, tens of ms, falls into "
                         "whichever run crosses the collector's threshold)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--no-rate-limit", action="store_true")
    args = ap.parse_args()
    import openai  # noqa: F401  (import cost is not collection cost)

    load_start = round(os.getloadavg()[0], 2)
    print(f"load average {load_start} at the start; order: {args.order}")
    rows = []
    print(f"{'L s':>4} {'N':>4} {'reqs':>5} {'pairs':>5} {'ideal':>7} {'bare':>7} {'dk':>7} {'dk/bare':>8} "
          f"{'95% CI':>13} {'range':>13} {'dk/ideal':>8} {'bare/ideal':>10} {'CPU ms/req bare, dk':>19} {'load':>5}")
    for latency in (float(x) for x in args.latencies.split(",")):
        for n in (int(x) for x in args.ns.split(",")):
            rounds = (2 if args.quick else 3) if latency >= 1 else (3 if args.quick else 10)
            reps = 1 if args.quick else args.reps_long if latency >= 1 else args.reps
            r = throughput_case(latency, n, rounds, reps, args.order, args.settle)
            rows.append(r)
            ci = "-" if r["dk_vs_bare_ci95"] is None else "{:.3f}-{:.3f}".format(*r["dk_vs_bare_ci95"])
            rng = "{:.3f}-{:.3f}".format(*r["dk_vs_bare_range"])
            cpu = "{bare:.2f}, {dk:.2f}".format(**r["cpu_ms_per_request"])
            r["load"] = round(os.getloadavg()[0], 2)
            print(f"{r['latency_s']:>4} {r['N']:>4} {r['requests']:>5} {reps:>5} {r['ideal_rps']:>7} {r['bare_rps']:>7} "
                  f"{r['dk_rps']:>7} {r['dk_vs_bare']:>8} {ci:>13} {rng:>13} {r['dk_vs_ideal']:>8} "
                  f"{r['bare_vs_ideal']:>10} {cpu:>19} {r['load']:>5}", flush=True)
    limited = None
    if not args.no_rate_limit:
        limited = rate_limit_case(rate=20.0, n=32, count=200 if args.quick else 400, latency=0.2)
        d, b = limited["dk"], limited["bare_sdk_own_retries"]
        print(f"rate limit {limited['limit_rps']} rps, N={limited['N']}, {limited['requests']} requests:")
        print(f"  distill-kit: {d['rps']} rps ({d['share_of_limit']:.0%} of the limit), {d['http_429']} x 429, "
              f"{d['retries']} retries")
        print(f"  bare SDK, its own retries (max_retries=10): {b['rps']} rps ({b['share_of_limit']:.0%}), "
              f"{b['http_429']} x 429, {b['gave_up']} requests given up")
    load_end = round(os.getloadavg()[0], 2)
    print(f"load average {load_end} at the end")
    print(json.dumps({"benchmark": "collect_throughput", "cases": rows, "rate_limit": limited, "order": args.order,
                      "load_start": load_start, "load_end": load_end}))


if __name__ == "__main__":
    main()
