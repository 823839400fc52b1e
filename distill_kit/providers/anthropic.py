"""Anthropic's Messages API through the official SDK."""

from __future__ import annotations

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import Completion, Message, RetryableError, sdk_http_client
from distill_kit.providers.openai_compat import status_error


class AnthropicProvider:
    def __init__(self, cfg: ModelConfig):
        import anthropic

        self._anthropic = anthropic
        self.cfg = cfg
        self.client = anthropic.AsyncAnthropic(api_key=cfg.api_key(), base_url=cfg.base_url, max_retries=0,
                                               timeout=cfg.timeout, http_client=sdk_http_client(anthropic))

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        anthropic = self._anthropic
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        extra = {"system": system} if system else {}
        # recent SDKs no longer type sampling knobs; the API still takes them, so send them in the body
        sampling = {"temperature": params.temperature} | ({"top_p": params.top_p} if params.top_p < 1 else {})
        try:
            resp = await self.client.messages.create(
                model=self.cfg.model or self.cfg.name, messages=turns, max_tokens=params.max_tokens,
                extra_body=sampling, **extra)
        except anthropic.APIStatusError as exc:
            raise status_error(exc.status_code, str(exc.message)[:300], exc.response.headers) from None
        except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        text = "".join(getattr(block, "text", "") for block in resp.content)
        return Completion(text=text, usage_in=resp.usage.input_tokens, usage_out=resp.usage.output_tokens)

    async def aclose(self) -> None:
        await self.client.close()
