"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp) through the official SDK."""

from __future__ import annotations

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import (Completion, FatalError, Message, RetryableError, parse_retry_after,
                                        sdk_http_client)


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
        if not resp.choices:
            raise RetryableError("response had no choices")
        usage = resp.usage
        return Completion(text=resp.choices[0].message.content or "",
                          usage_in=getattr(usage, "prompt_tokens", 0) or 0,
                          usage_out=getattr(usage, "completion_tokens", 0) or 0)

    async def aclose(self) -> None:
        await self.client.close()
