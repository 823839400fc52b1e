"""Adaptive concurrency for rate-limited APIs: read the server's rate-limit headers, back off together.

Real APIs limit requests (and tokens) per minute and say so: ``x-ratelimit-limit-requests`` (per minute),
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` on every answer, ``Retry-After`` on a
429. Left alone, ``collect``'s N requests in flight would all hit the limit, all sleep ``Retry-After``, and
all come back at once: a retry storm that wastes most calls. The limiter in front of every attempt:

- **paces** sends at the advertised rate (``limit-requests / 60`` per second, spaced evenly) once the
  server has advertised one, so the limit is approached from below instead of hit;
- **pauses everyone** until the advertised reset when ``remaining`` reaches 0, and for ``Retry-After``
  after a 429 (one pause for all requests, not one per request);
- **AIMD on concurrency** for servers that send no headers: each 429 halves the allowed requests in
  flight (at most once per pause), each success adds ``1/limit`` back, up to the model's ``concurrency``.

One limiter per model name per process, so consecutive ``collect`` calls keep what was learned.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from distill_kit.providers.base import parse_retry_after, within

#: Pace at this share of the advertised rate: timer jitter then eats the bucket's slack, not a 429.
PACE_SHARE = 0.95
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s") or plain seconds -> seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    m = _DURATION.match(value)
    if not m or not any(m.groups()):
        return None
    h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


@dataclass
class LimiterStats:
    sent: int = 0
    rate_limited: int = 0
    paused_s: float = 0.0
    limits: list[float] = field(default_factory=list)


class AdaptiveLimiter:
    """Gate for one model's attempts: ``async with limiter: ...`` around each call."""

    def __init__(self, max_concurrency: int) -> None:
        self.max = max(1, max_concurrency)
        self.limit = float(self.max)
        self.in_flight = 0
        self.resume_at = 0.0
        self.interval = 0.0  # seconds between sends once the server advertised a rate
        self.next_send = 0.0
        self._cooldown_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: Any = None
        self.stats = LimiterStats()

    async def __aenter__(self) -> "AdaptiveLimiter":
        # single-threaded asyncio: a counter and a queue of waiters, no lock (this runs per attempt)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (asyncio.run per collect_sync call): fresh counts
            self._loop, self.in_flight, self._waiters = loop, 0, deque()
        while self.in_flight >= max(1, int(self.limit)):
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                self._wake()
                raise
        self.in_flight += 1
        now = time.monotonic()
        wait = max(0.0, self.resume_at - now)
        if self.interval:  # pacing slots are claimed in order, then slept
            slot = max(now + wait, self.next_send)
            self.next_send = slot + self.interval
            wait = slot - now
        if wait > 0:
            self.stats.paused_s += wait
            await asyncio.sleep(wait)
        self.stats.sent += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = max(1, int(self.limit)) - self.in_flight
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    def observe(self, status: int, headers: Any) -> None:
        """Learn from one HTTP answer (status and headers)."""
        get = getattr(headers, "get", lambda _k, _d=None: None)
        per_minute = _number(get("x-ratelimit-limit-requests"))
        if per_minute is None and status != 429:  # a server without rate-limit headers: AIMD only
            if self.limit < self.max:
                self.limit = min(float(self.max), self.limit + 1.0 / self.limit)
                self._wake()
            return
        now = time.monotonic()
        if per_minute:
            self.interval = 60.0 / (per_minute * PACE_SHARE)
        remaining = _number(get("x-ratelimit-remaining-requests"))
        reset = parse_duration(get("x-ratelimit-reset-requests"))
        if status == 429:
            self.stats.rate_limited += 1
            pause = parse_retry_after(headers)
            pause = reset if pause is None else pause
            self.resume_at = max(self.resume_at, now + (pause if pause is not None else 1.0))
            if now >= self._cooldown_until:  # one decrease per pause, however many requests saw the 429
                self.limit = max(1.0, self.limit / 2)
                self._cooldown_until = self.resume_at
                self.stats.limits.append(self.limit)
            return
        if remaining is not None and remaining < 1 and reset:
            self.resume_at = max(self.resume_at, now + reset)
        if status < 400 and self.limit < self.max:
            self.limit = min(float(self.max), self.limit + 1.0 / self.limit)
            self._wake()


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


_limiters: dict[tuple[str, str], AdaptiveLimiter] = {}


def limiter_for(model: Any) -> AdaptiveLimiter:
    """The process's limiter for a model (keyed by name and endpoint)."""
    key = (model.name, model.base_url or "")
    lim = _limiters.get(key)
    if lim is None or lim.max != model.concurrency:
        lim = _limiters[key] = AdaptiveLimiter(model.concurrency)
    return lim


class Paced:
    """A provider whose every attempt passes the model's limiter, which also sees every HTTP answer."""

    def __init__(self, inner: Any, limiter: AdaptiveLimiter) -> None:
        self.inner, self.limiter = inner, limiter
        http = getattr(getattr(inner, "client", None), "_client", None)  # the SDK's httpx.AsyncClient
        hooks = getattr(http, "event_hooks", None)
        if isinstance(hooks, dict):
            async def on_response(response: Any) -> None:
                limiter.observe(response.status_code, response.headers)

            hooks.setdefault("response", []).append(on_response)
            http.event_hooks = hooks

    async def chat(self, messages: Any, params: Any) -> Any:
        async with self.limiter:
            return await self.inner.chat(messages, params)

    async def timed_chat(self, messages: Any, params: Any, timeout: float | None) -> Any:
        """``chat`` whose timeout starts when the limiter lets the attempt go: time spent waiting for a
        turn (a pause after a 429, pacing) is not the server's fault and must not burn an attempt that
        never reached it."""
        async with self.limiter:
            return await within(timeout, self.inner.chat(messages, params))

    async def aclose(self) -> None:
        await self.inner.aclose()


def pace(provider: Any, model: Any) -> Any:
    """``collect``'s hook: API providers get the limiter; local and replay providers are left alone."""
    if model.provider not in ("openai", "anthropic"):
        return provider
    return Paced(provider, limiter_for(model))
