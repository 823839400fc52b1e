"""An in-process provider: scripted replies, latency and faults, without sockets or servers.

What it is for: the logic above the wire -- ``collect``'s retries, backoff, timeouts, store and resume,
the judges and the estimate that read what ``collect`` returns -- tested in milliseconds, in the fast
loop. What it is not for: how an SDK maps HTTP to answers and errors (status codes, headers, odd JSON);
that stays with the loopback servers of :mod:`distill_kit.testing`.

A model with ``provider: mock`` answers from the :class:`Script` registered under its ``model`` (else its
``name``)::

    script = mock.script("m", reply=lambda prompt: prompt.upper(), latency=0.01)
    script.inject(mock.Fault.status(429, retry_after=0.2), mock.Fault(delay=1.0))  # the next two attempts
    cfg = ModelConfig(name="m", provider="mock")
    collect_sync(cfg, requests, store)
    script.calls                                     # every attempt, in the order it started

A name nobody scripted answers :func:`echo` (so ``provider: mock`` in a models file runs offline).
Faults are consumed one per attempt, in order, the way :class:`distill_kit.testing.Fault` is on the
loopback server; an HTTP status becomes the error the SDK providers raise for it
(:func:`distill_kit.providers.base.status_error`), so ``collect`` sees what it sees in production.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import Completion, Message, Provider, empty_answer, status_error
from distill_kit.store import last_user


def echo(prompt: str) -> str:
    """The reply of an unscripted model: names its prompt, so every answer can be checked against it."""
    return f"echo: {prompt}"


@dataclass(frozen=True)
class Fault:
    """One scripted attempt that does not simply answer: a stall of ``delay`` seconds first, then ``error``
    raised (None: answer normally after the stall, as a slow server does)."""

    delay: float = 0.0
    error: BaseException | None = None

    @classmethod
    def status(cls, code: int, retry_after: float | None = None, delay: float = 0.0) -> "Fault":
        """An HTTP failure as the SDK providers report it (408/409/429/5xx retryable, other 4xx fatal)."""
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        return cls(delay=delay, error=status_error(code, f"mock {code}", headers))

    @classmethod
    def empty(cls, reason: str = "length") -> "Fault":
        """A reply without text (``EmptyAnswer``): never stored as an answer."""
        return cls(error=empty_answer(reason, refused=False))

    @classmethod
    def crash(cls, exc: BaseException | None = None) -> "Fault":
        """An exception nobody planned for (a reply the provider could not read)."""
        return cls(error=exc or ValueError("mock: unreadable reply"))


@dataclass
class Call:
    """One attempt as the provider saw it."""

    messages: list[Message]
    params: GenerationParams
    started: float  # time.monotonic()


@dataclass
class Script:
    """How one mock model behaves, and what was asked of it."""

    reply: Callable[[str], str] = echo  # last user message -> answer text
    latency: float = 0.0  # seconds every attempt takes (asyncio.sleep: other requests go on meanwhile)
    faults: deque[Fault] = field(default_factory=deque)
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def inject(self, *faults: Fault) -> "Script":
        """Queue faults for the next attempts (one each, in order)."""
        self.faults.extend(faults)
        return self


_scripts: dict[str, Script] = {}


def script(name: str, reply: Callable[[str], str] = echo, latency: float = 0.0, faults: tuple[Fault, ...] = ()) -> Script:
    """Register (or replace) the script of the mock model ``name`` and return it."""
    _scripts[name] = Script(reply=reply, latency=latency, faults=deque(faults))
    return _scripts[name]


def script_for(name: str) -> Script:
    """The script registered under ``name``; a fresh :func:`echo` script when there is none."""
    return _scripts.setdefault(name, Script())


def forget(name: str) -> None:
    """Drop a registered script (tests clean up after themselves)."""
    _scripts.pop(name, None)


def tokens(text: str) -> int:
    """Whitespace-separated words: a stand-in token count, so cost accounting has numbers to add."""
    return len(text.split())


class MockProvider(Provider):
    def __init__(self, cfg: ModelConfig):
        self.script = script_for(cfg.model or cfg.name)

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        s = self.script
        s.calls.append(Call(messages=messages, params=params, started=time.monotonic()))
        fault = s.faults.popleft() if s.faults else Fault()
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            await asyncio.sleep(s.latency + fault.delay)
        finally:
            s.in_flight -= 1
        if fault.error is not None:
            raise fault.error
        prompt = last_user(messages)
        text = s.reply(prompt)
        return Completion(text=text, usage_in=sum(tokens(m["content"]) for m in messages), usage_out=tokens(text))

    async def aclose(self) -> None:
        return None
