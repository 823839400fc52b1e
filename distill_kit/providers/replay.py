"""Published responses served through the chat interface, so every notebook runs offline on real models."""

from __future__ import annotations

from functools import lru_cache

from distill_kit import datasets
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import Completion, FatalError, Message, Provider
from distill_kit.store import last_user


@lru_cache(maxsize=64)
def _answers(dataset: str, model: str) -> dict[str, str]:
    if dataset == "identity":
        frame = datasets.identity_responses([model]).select("prompt", "response")
    elif dataset == "alpaca-eval":
        frame = datasets.alpaca_outputs([model]).select("instruction", "output")
    else:  # arena-hard: ReplaySource only admits the three datasets
        frame = datasets.arena_answers([model]).select("prompt", "answer")
    keys, values = frame.to_dict(as_series=False).values()
    return {k.strip(): v for k, v in zip(keys, values) if k is not None}


class ReplayProvider(Provider):
    def __init__(self, cfg: ModelConfig):
        if cfg.replay is None:
            raise FatalError(f"replay model {cfg.name!r} needs a 'replay:' source")
        self.source = cfg.replay
        self.answers = _answers(cfg.replay.dataset, cfg.replay.model)

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        prompt = last_user(messages).strip()
        if prompt not in self.answers:
            raise FatalError(f"{self.source.model} has no published answer to this prompt in {self.source.dataset}")
        return Completion(text=self.answers[prompt])

    async def aclose(self) -> None:
        return None
