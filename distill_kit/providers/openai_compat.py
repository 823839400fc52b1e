"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp) through the official SDK."""

from __future__ import annotations

from typing import Any

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import (
    Completion,
    FatalError,
    Message,
    RetryableError,
    empty_answer,
    malformed,
    parse_retry_after,
    sdk_http_client,
)


def status_error(status: int, message: str, headers: object) -> Exception:
    """Map an HTTP failure to retry-or-not; 408/409/429 and 5xx are transient, other 4xx are not."""
    if status in (408, 409, 429) or status >= 500:
        return RetryableError(f"HTTP {status}: {message}", parse_retry_after(headers))
    return FatalError(f"HTTP {status}: {message}")


class OpenAICompatProvider:
    def __init__(self, cfg: ModelConfig, base_url: str | None = None, api_key: str | None = None):
        import openai

        self._openai = openai
        self.cfg = cfg
        key = api_key or (cfg.api_key() if cfg.api_key_env or not (base_url or cfg.base_url) else "not-needed")
        # the SDK's own retries are off: collect() owns retries so that they are counted and persisted
        self.client = openai.AsyncOpenAI(api_key=key, base_url=base_url or cfg.base_url, max_retries=0,
                                         timeout=cfg.timeout, http_client=sdk_http_client(openai))

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        openai = self._openai
        extra = {"seed": params.seed} if params.seed is not None else {}
        try:
            resp = await self.client.chat.completions.create(
                model=self.cfg.model or self.cfg.name, messages=messages, temperature=params.temperature,
                max_tokens=params.max_tokens, top_p=params.top_p, **extra)
        except openai.APIStatusError as exc:
            raise status_error(exc.status_code, str(exc.message)[:300], exc.response.headers) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        except (ValueError, openai.APIResponseValidationError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise malformed(exc) from None
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
