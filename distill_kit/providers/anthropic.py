"""Anthropic's Messages API through the official SDK."""

from __future__ import annotations

from typing import Any

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import (Completion, Message, Provider, RetryableError, empty_answer, sdk_errors,
                                         sdk_http_client)


class AnthropicProvider(Provider):
    def __init__(self, cfg: ModelConfig):
        import anthropic

        self._anthropic = anthropic
        self.cfg = cfg
        self.client = anthropic.AsyncAnthropic(api_key=cfg.api_key(), base_url=cfg.base_url, max_retries=0,
                                               timeout=cfg.timeout,
                                               http_client=sdk_http_client(anthropic, cfg.concurrency))

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        extra = {"system": system} if system else {}
        # recent SDKs no longer type sampling knobs; the API still takes them, so send them in the body
        sampling = {"temperature": params.temperature} | ({"top_p": params.top_p} if params.top_p < 1 else {})
        with sdk_errors(self._anthropic):
            resp = await self.client.messages.create(
                model=self.cfg.model or self.cfg.name, messages=turns, max_tokens=params.max_tokens,
                extra_body=sampling, **extra)
        return completion_from(resp)

    async def aclose(self) -> None:
        await self.client.close()


def _field(obj: Any, name: str) -> Any:
    """An attribute of an SDK object or a key of a raw dict (the SDK keeps unknown shapes as dicts)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def completion_from(resp: Any) -> Completion:
    """Text and usage of a Messages reply, read defensively: ``content`` may be null or not a list,
    blocks may be of unknown types or lack ``text``, ``usage`` may be missing. Only ``text`` blocks
    with string text count; no text at all is an empty answer (a refusal if ``stop_reason`` says so)."""
    if not (isinstance(resp, dict) or hasattr(resp, "content")):
        raise RetryableError(f"MalformedResponse: reply is {type(resp).__name__}, not a message")
    content = _field(resp, "content")
    if content is not None and not isinstance(content, list):
        raise RetryableError(f"MalformedResponse: content is {type(content).__name__}, not a list of blocks")
    parts = [_field(b, "text") for b in content or [] if _field(b, "type") == "text"]
    text = "".join(p for p in parts if isinstance(p, str))
    stop = _field(resp, "stop_reason")
    if not text.strip():
        raise empty_answer(f"stop_reason={stop}", stop == "refusal")
    usage = _field(resp, "usage")
    return Completion(text=text, usage_in=_count(_field(usage, "input_tokens")),
                      usage_out=_count(_field(usage, "output_tokens")))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
