"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp) through the official SDK."""

from __future__ import annotations

from typing import Any

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import (Completion, Message, Provider, RetryableError, empty_answer, sdk_errors,
                                         sdk_http_client)


class OpenAICompatProvider(Provider):
    def __init__(self, cfg: ModelConfig, base_url: str | None = None, api_key: str | None = None):
        import openai

        self._openai = openai
        self.cfg = cfg
        key = api_key or (cfg.api_key() if cfg.api_key_env or not (base_url or cfg.base_url) else "not-needed")
        # the SDK's own retries are off: collect() owns retries so that they are counted and persisted
        self.client = openai.AsyncOpenAI(api_key=key, base_url=base_url or cfg.base_url, max_retries=0,
                                         timeout=cfg.timeout, http_client=sdk_http_client(openai, cfg.concurrency))

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        extra = {"seed": params.seed} if params.seed is not None else {}
        with sdk_errors(self._openai):
            resp = await self.client.chat.completions.create(
                model=self.cfg.model or self.cfg.name, messages=messages, temperature=params.temperature,
                max_tokens=params.max_tokens, top_p=params.top_p, **extra)
        return completion_from(resp)

    async def aclose(self) -> None:
        await self.client.close()


def completion_from(resp: Any) -> Completion:
    """Text and usage of a Chat Completions reply, checked field by field: a proxy or a compatible
    server may send ``choices: []``, ``content: null``, no ``usage`` or odd types, and each of those
    must become this request's error, never an exception out of the collection or an empty "answer"."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise RetryableError("MalformedResponse: reply had no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    finish = getattr(choice, "finish_reason", None)
    text = getattr(message, "content", None)
    if text is not None and not isinstance(text, str):
        raise RetryableError(f"MalformedResponse: message.content is {type(text).__name__}, not text")
    refusal = getattr(message, "refusal", None)
    if not text or not text.strip():
        refused = finish == "content_filter" or bool(refusal)
        raise empty_answer(f"finish_reason={finish}", refused, refusal if isinstance(refusal, str) else None)
    usage = getattr(resp, "usage", None)
    return Completion(text=text, usage_in=_count(getattr(usage, "prompt_tokens", 0)),
                      usage_out=_count(getattr(usage, "completion_tokens", 0)))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
