"""Anthropic's Messages API through the official SDK."""

from __future__ import annotations

import json
from typing import Any

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import (Completion, Message, Provider, RetryableError, empty_answer, json_object,
                                         sdk_errors, sdk_http_client, token_count)


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
            # the raw-response API, the reply read from its JSON, as for OpenAI (openai_compat.py)
            raw = await self.client.messages.with_raw_response.create(
                model=self.cfg.model or self.cfg.name, messages=turns, max_tokens=params.max_tokens,
                extra_body=sampling, **extra)
            reply = json.loads(raw.http_response.content)  # not JSON, not UTF-8: malformed (sdk_errors)
        return completion_from(reply)

    async def aclose(self) -> None:
        await self.client.close()


def completion_from(reply: Any) -> Completion:
    """Text and usage of a Messages reply (its JSON), read defensively: ``content`` may be null or not a
    list, blocks may be of unknown types or lack ``text``, ``usage`` may be missing. Only ``text`` blocks
    with string text count; no text at all is an empty answer (a refusal if ``stop_reason`` says so)."""
    if not isinstance(reply, dict):
        raise RetryableError(f"MalformedResponse: reply is {type(reply).__name__}, not a message")
    content = reply.get("content")
    if content is not None and not isinstance(content, list):
        raise RetryableError(f"MalformedResponse: content is {type(content).__name__}, not a list of blocks")
    parts = [json_object(b).get("text") for b in content or [] if json_object(b).get("type") == "text"]
    text = "".join(p for p in parts if isinstance(p, str))
    stop = reply.get("stop_reason")
    if not text.strip():
        raise empty_answer(f"stop_reason={stop}", stop == "refusal")
    usage = json_object(reply.get("usage"))
    return Completion(text=text, usage_in=token_count(usage.get("input_tokens")),
                      usage_out=token_count(usage.get("output_tokens")))
