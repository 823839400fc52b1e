"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp) through the official SDK."""

from __future__ import annotations

import json
from typing import Any

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import (Completion, Message, Provider, RetryableError, empty_answer, json_object,
                                         sdk_errors, sdk_http_client, token_count)


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
            # the SDK's documented raw-response API: the same request, auth, timeout and status errors, but
            # the reply is not built into the SDK's pydantic objects (0.23 of the SDK's 2.4 ms of CPU per
            # request, docs/results/collection.md); only the fields that are stored are read from its JSON
            raw = await self.client.chat.completions.with_raw_response.create(
                model=self.cfg.model or self.cfg.name, messages=messages, temperature=params.temperature,
                max_tokens=params.max_tokens, top_p=params.top_p, **extra)
            reply = json.loads(raw.http_response.content)  # not JSON, not UTF-8: malformed (sdk_errors)
        return completion_from(reply)

    async def aclose(self) -> None:
        await self.client.close()


def completion_from(reply: Any) -> Completion:
    """Text and usage of a Chat Completions reply (its JSON), checked field by field: a proxy or a
    compatible server may send ``choices: []``, ``content: null``, no ``usage``, odd types or not an object
    at all, and each of those must become this request's error, never an exception out of the collection
    or an empty "answer"."""
    if not isinstance(reply, dict):
        raise RetryableError(f"MalformedResponse: reply is {type(reply).__name__}, not an object")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise RetryableError("MalformedResponse: reply had no choices")
    choice = json_object(choices[0])
    message = json_object(choice.get("message"))
    finish = choice.get("finish_reason")
    text = message.get("content")
    if text is not None and not isinstance(text, str):
        raise RetryableError(f"MalformedResponse: message.content is {type(text).__name__}, not text")
    refusal = message.get("refusal")
    if not text or not text.strip():
        refused = finish == "content_filter" or bool(refusal)
        raise empty_answer(f"finish_reason={finish}", refused, refusal if isinstance(refusal, str) else None)
    usage = json_object(reply.get("usage"))
    return Completion(text=text, usage_in=token_count(usage.get("prompt_tokens")),
                      usage_out=token_count(usage.get("completion_tokens")))
