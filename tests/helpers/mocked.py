"""Models on the in-process ``mock`` provider (:mod:`distill_kit.providers.mock`): no sockets, so fast tests."""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers import mock

_names = itertools.count()


@contextmanager
def mock_model(reply: Callable[[str], str] = mock.echo, latency: float = 0.0, faults: tuple[mock.Fault, ...] = (),
               **overrides: Any) -> Iterator[tuple[ModelConfig, mock.Script]]:
    """A mock model with its own script (forgotten afterwards), quick to retry and to give up like the
    loopback tests' models; ``overrides`` set ModelConfig fields (``name``: a fresh one unless given)."""
    name = overrides.pop("name", None) or f"mock-{next(_names)}"
    script = mock.script(name, reply=reply, latency=latency, faults=faults)
    fields: dict[str, Any] = dict(name=name, provider="mock", concurrency=4, timeout=5, max_retries=4,
                                  backoff_base=0.05, backoff_max=5, params=GenerationParams(max_tokens=8))
    try:
        yield ModelConfig(**(fields | overrides)), script
    finally:
        mock.forget(name)
