"""Collection throughput: distill-kit's ``collect`` beside a bare ``openai.AsyncOpenAI`` + semaphore, in one run.

The server is the API zoo in its own process (uvicorn, asyncio, listen backlog 2048, fixed latency,
answers ``echo: <prompt>``), so it holds N = 128 connections and the client does not share its GIL.
For concurrency bound N and latency L the ideal is N / L requests per second. Each case warms both
clients up, runs them alternately (each goes first in turn), twice, and keeps each one's best (the
machine is shared); ``--order bare-first`` runs the bare client first in every repetition instead, as a
user's own client would have gone before trying distill-kit. Both check every answer. The bare client's time starts after its construction (the
SDK builds an SSL context per client, ~0.1 s); distill-kit's is its whole ``collect`` call (store
look-up, client, persistence, close), which counts against it. Then a server-side rate
limit (token bucket, 429 + Retry-After + x-ratelimit-* headers): throughput against the limit and the
number of 429s, for distill-kit (adaptive, ratelimit.py) and for the bare SDK with its own retries.

    python benchmarks/bench_collect.py [--latencies 0.2,2] [--ns 1,4,16,32,64,128] [--order bare-first] [--quick]
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


async def _bare(url: str, n_conc: int, prompts: list[str], max_retries: int = 0) -> tuple[float, int]:
    """Seconds for all prompts, and how many failed (the SDK gave up after its own retries)."""
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=f"{url}/v1", max_retries=max_retries, timeout=120)
    sem = asyncio.Semaphore(n_conc)

    async def one(p: str) -> None:
        async with sem:
            r = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": p}],
                                                     temperature=0.0, max_tokens=8, top_p=1.0)
            assert r.choices[0].message.content == f"echo: {p}"

    t0 = time.perf_counter()
    done = await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)
    secs = time.perf_counter() - t0
    await client.close()
    failed = [d for d in done if isinstance(d, BaseException)]
    if failed and not max_retries:
        raise failed[0]
    return secs, len(failed)


def bare(url: str, n_conc: int, prompts: list[str], max_retries: int = 0) -> float:
    return asyncio.run(_bare(url, n_conc, prompts, max_retries))[0]


def dk(url: str, n_conc: int, prompts: list[str], **kw) -> tuple[float, Store, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    cfg = ModelConfig(name="bench", provider="openai", model="bench", base_url=f"{url}/v1", api_key_env=KEY_ENV,
                      concurrency=n_conc, params=GenerationParams(max_tokens=8), **kw)
    store = Store(tmp / "bench.sqlite")
    t0 = time.perf_counter()
    out = collect_sync(cfg, [ChatRequest.user(p) for p in prompts], store, progress=False)
    secs = time.perf_counter() - t0
    assert all(r.ok for r in out) and [r.text for r in out] == [f"echo: {p}" for p in prompts]
    return secs, store, tmp


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


def throughput_case(latency: float, n: int, rounds: int, reps: int, order: str = "alternate",
                    pause: float = 0.0) -> dict:
    count = max(n * rounds, 8)
    ideal = n / latency
    best_bare = best_dk = float("inf")
    with zoo(latency) as url:
        # the server's first requests and each side's first-use imports are not collection
        bare(url, n, [f"bwarm{i}" for i in range(n)])
        _, store, tmp = dk(url, n, [f"dwarm{i}" for i in range(n)])
        store.close()
        shutil.rmtree(tmp)
        for rep in range(reps):
            prompts = [f"r{rep}-q{i}" for i in range(count)]
            for side in sides(rep, order):
                if pause >= 0:
                    settle(pause)
                if side == "bare":
                    best_bare = min(best_bare, bare(url, n, [f"b-{p}" for p in prompts]))
                else:
                    secs, store, tmp = dk(url, n, [f"d-{p}" for p in prompts])
                    store.close()
                    shutil.rmtree(tmp)
                    best_dk = min(best_dk, secs)
    rate_bare, rate_dk = count / best_bare, count / best_dk
    return {"latency_s": latency, "N": n, "requests": count, "ideal_rps": round(ideal, 1),
            "bare_rps": round(rate_bare, 1), "dk_rps": round(rate_dk, 1),
            "dk_vs_bare": round(rate_dk / rate_bare, 3), "dk_vs_ideal": round(rate_dk / ideal, 3),
            "bare_vs_ideal": round(rate_bare / ideal, 3), "order": order}


def rate_limit_case(rate: float, n: int, count: int, latency: float) -> dict:
    out: dict = {"limit_rps": rate, "N": n, "requests": count, "latency_s": latency}
    with zoo(latency, rate=rate, burst=max(1, int(rate // 4))) as url:
        secs, store, tmp = dk(url, n, [f"rl{i}" for i in range(count)], max_retries=8, backoff_base=0.5)
        attempts = int(store.usage()["attempts"].sum())
        store.close()
        shutil.rmtree(tmp)
        s = stats(url)
        out["dk"] = {"seconds": round(secs, 2), "rps": round(count / secs, 2), "share_of_limit": round(count / secs / rate, 3),
                     "http_429": s["rejected"], "retries": attempts - count}
    with zoo(latency, rate=rate, burst=max(1, int(rate // 4))) as url:
        secs, failed = asyncio.run(_bare(url, n, [f"rl{i}" for i in range(count)], max_retries=10))
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
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--order", choices=("alternate", "bare-first", "dk-first"), default="alternate",
                    help="who goes first in each repetition (bare-first: the bare SDK client, every time)")
    ap.add_argument("--settle", type=float, default=-1.0,
                    help="seconds to pause (after a gc.collect) before each timed run; negative: neither")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--no-rate-limit", action="store_true")
    args = ap.parse_args()
    import openai  # noqa: F401  (import cost is not collection cost)

    load_start = round(os.getloadavg()[0], 2)
    print(f"load average {load_start} at the start; order: {args.order}")
    rows = []
    print(f"{'L s':>4} {'N':>4} {'reqs':>5} {'ideal':>7} {'bare':>7} {'dk':>7} {'dk/bare':>8} {'dk/ideal':>8} {'bare/ideal':>10}")
    for latency in (float(x) for x in args.latencies.split(",")):
        for n in (int(x) for x in args.ns.split(",")):
            rounds = (2 if args.quick else 3) if latency >= 1 else (3 if args.quick else 10)
            r = throughput_case(latency, n, rounds, 1 if args.quick else args.reps, args.order, args.settle)
            rows.append(r)
            print(f"{r['latency_s']:>4} {r['N']:>4} {r['requests']:>5} {r['ideal_rps']:>7} {r['bare_rps']:>7} "
                  f"{r['dk_rps']:>7} {r['dk_vs_bare']:>8} {r['dk_vs_ideal']:>8} {r['bare_vs_ideal']:>10}", flush=True)
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
