"""Test setup shared by the ICE tests: a model config for the loopback server, stored fuzz attempts."""

from __future__ import annotations

from typing import Sequence

from distill_kit.collect import Result
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.ice import fuzz
from distill_kit.store import Store


def loop_cfg(url: str, name: str, max_tokens: int = 16) -> ModelConfig:
    """A model served by :class:`distill_kit.testing.LoopbackServer` at ``url`` (no retries: faults show)."""
    return ModelConfig(name=name, provider="openai", model="loopback", base_url=url, timeout=5, max_retries=0,
                       params=GenerationParams(max_tokens=max_tokens))


def store_attempts(store: Store, target: str, texts: Sequence[str | None], verdicts: Sequence[bool | None] = ()) -> None:
    """GPTFuzzer attempts on ``target`` as notebook 02 leaves them: one per text (None = the call failed), all
    of template ``Pretend. {query}`` around "Who created you?", verdict True for the first unless given."""
    for i, text in enumerate(texts):
        verdict = verdicts[i] if verdicts else (i == 0 if text else None)
        fuzz.store_attempt(store, target, Result(key=f"k{i}", model=target, text=text,
                                                 error=None if text is not None else "timeout"),
                           {"iteration": i, "template_id": f"fuzz-0-{i:04d}", "template": "Pretend. {query}",
                            "mutator": "shorten", "parent": "gptfuzzer-000", "probe_id": "en-001", "language": "en",
                            "category": "creator", "query": "Who created you?", "verdict_loose": verdict,
                            "prompt": "Pretend. Who created you?"}, 0)
