"""Models and requests for tests that talk to :mod:`distill_kit.testing`'s loopback servers.

The servers themselves come from the ``loopback`` fixture (tests/conftest.py) or ``LoopbackServer(...)`` /
``ZooServer(...)`` directly; a test that starts one is ``@pytest.mark.slow`` (the slow guard checks).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from distill_kit.collect import ChatRequest
from distill_kit.config import GenerationParams, ModelConfig
from tests.helpers.paths import ROOT

ANTHROPIC_KEY_ENV = "LOOP_ANTHROPIC_KEY"  # the anthropic SDK insists on a key; set it with monkeypatch


def loopback_model(url: str, provider: str = "openai", **overrides: Any) -> ModelConfig:
    """A model at the loopback server's ``base_url`` (…/v1), quick to retry and to give up.

    For ``provider="anthropic"`` the SDK takes the root URL and a key from :data:`ANTHROPIC_KEY_ENV`."""
    fields: dict[str, Any] = dict(name="loop", provider=provider, model="loopback", base_url=url, concurrency=4,
                                  timeout=5, max_retries=4, backoff_base=0.05, backoff_max=5,
                                  params=GenerationParams(max_tokens=8))
    if provider == "anthropic":
        fields |= {"api_key_env": ANTHROPIC_KEY_ENV, "base_url": url.removesuffix("/v1")}
    return ModelConfig(**(fields | overrides))


def questions(n: int) -> list[ChatRequest]:
    """``question 0`` … ``question n-1``, each carrying its index as ``meta["i"]``."""
    return [ChatRequest.user(f"question {i}", meta={"i": i}) for i in range(n)]


def run_cli(*args: str, timeout: int = 180, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m distill_kit ARGS`` from the project root, output captured (the test is slow: a subprocess)."""
    return subprocess.run([sys.executable, "-m", "distill_kit", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kwargs)
