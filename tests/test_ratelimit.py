"""Adaptive concurrency against a rate-limited loopback server (429 + Retry-After + x-ratelimit-* headers)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from distill_kit import ratelimit
from distill_kit.collect import ChatRequest, collect_sync
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.store import Store


def test_parse_duration_reads_openai_reset_formats() -> None:
    assert ratelimit.parse_duration("1s") == 1.0
    assert ratelimit.parse_duration("6m0s") == 360.0
    assert ratelimit.parse_duration("20ms") == pytest.approx(0.02)
    assert ratelimit.parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert ratelimit.parse_duration("0.25") == 0.25
    assert ratelimit.parse_duration("soon") is None and ratelimit.parse_duration(None) is None


def test_a_429_halves_concurrency_once_and_pauses_everyone() -> None:
    lim = ratelimit.AdaptiveLimiter(16)
    for _ in range(10):  # ten requests see the same 429
        lim.observe(429, {"retry-after": "0.3"})
    assert lim.limit == 8 and lim.stats.rate_limited == 10

    async def one() -> float:
        async with lim:
            return time.monotonic()

    async def run() -> list[float]:
        t0 = time.monotonic()
        return [t - t0 for t in await asyncio.gather(*(one() for _ in range(4)))]

    assert min(asyncio.run(run())) >= 0.25
    for _ in range(200):
        lim.observe(200, {})
    assert lim.limit == 16  # additive increase back to the model's concurrency


@pytest.mark.slow
def test_collect_stays_near_the_servers_rate_limit_without_a_retry_storm(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_KIT_TEST_RL_KEY", "k")
    import subprocess
    import sys

    import httpx
    import openai  # noqa: F401  (a second of import is not throughput)

    rate, n = 20.0, 150
    # the server in its own process, as a real API is: it must not share this process's GIL
    proc = subprocess.Popen([sys.executable, "-m", "distill_kit.testing", "--echo", "--latency", "0.1",
                             "--rate-limit", str(rate), "--burst", "5"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        cfg = ModelConfig(name="rl", provider="openai", model="m", base_url=f"{url}/v1",
                          api_key_env="DISTILL_KIT_TEST_RL_KEY", concurrency=32, max_retries=8, backoff_base=0.2,
                          params=GenerationParams(max_tokens=8))
        with Store(tmp_path / "s.sqlite") as store:
            t0 = time.perf_counter()
            out = collect_sync(cfg, [ChatRequest.user(f"q{i}") for i in range(n)], store, progress=False)
            secs = time.perf_counter() - t0
        rejected = httpx.get(f"{url}/zoo/stats").json()["rejected"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert all(r.ok for r in out)
    assert n / secs >= 0.9 * rate, (n / secs, rejected)  # within 10% of the limit
    assert rejected <= 32, rejected  # the first 32 in flight before any header was seen; then paced, no storm


class _Instant:
    """A provider that answers after ``delay`` seconds, without a network."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def chat(self, messages: object, params: object) -> str:
        await asyncio.sleep(self.delay)
        return "answer"

    async def aclose(self) -> None:
        pass


def test_the_attempts_timeout_starts_when_the_limiter_lets_it_go() -> None:
    lim = ratelimit.AdaptiveLimiter(4)
    lim.observe(429, {"retry-after": "0.3"})  # everyone waits 0.3 s

    async def run(delay: float) -> str:
        return await ratelimit.Paced(_Instant(delay), lim).timed_chat([], None, 0.2)

    assert asyncio.run(run(0.05)) == "answer"  # waited 0.35 s in all, but only 0.05 s of it at the server
    with pytest.raises(TimeoutError):
        asyncio.run(run(0.5))
