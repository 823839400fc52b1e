"""The OpenAI provider reads a reply from its JSON (the SDK's raw-response API) and keeps the SDK's request,
auth and status errors: no server, the SDK's own client over an in-memory transport."""

from __future__ import annotations

import asyncio
import json
import platform

import httpx2
import openai
import pytest

from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers.base import EmptyAnswer, FatalError, Refusal, RetryableError
from distill_kit.providers.openai_compat import OpenAICompatProvider, completion_from

# the SDK's platform headers read platform.platform(), which runs `uname -p` once per process: read here, at
# import, so that the test itself starts no subprocess
platform.platform(), platform.processor()

REPLY = {"id": "c", "object": "chat.completion", "model": "m",
         "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
         "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}


def test_a_reply_is_read_from_its_json_field_by_field():
    assert completion_from(REPLY) == completion_from({"choices": [{"message": {"content": "hello"}}],
                                                      "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
    got = completion_from(REPLY)
    assert (got.text, got.usage_in, got.usage_out) == ("hello", 7, 2)
    odd_usage = completion_from(REPLY | {"usage": {"prompt_tokens": "7", "completion_tokens": -1}})
    assert (odd_usage.usage_in, odd_usage.usage_out) == (0, 0)
    assert completion_from(REPLY | {"usage": None}).usage_in == 0
    for broken in ([1, 2], "hello", None, {"choices": []}, {"choices": None}, {"id": "x"},
                   {"choices": [{"message": {"content": 42}}]}):
        with pytest.raises(RetryableError, match="MalformedResponse"):
            completion_from(broken)
    for empty in ({"choices": [{"message": {"content": None}}]}, {"choices": [{"message": None}]},
                  {"choices": ["x"]}, {"choices": [{"message": {"content": "  "}}]}):
        with pytest.raises(EmptyAnswer) as exc:
            completion_from(empty)
        assert not isinstance(exc.value, Refusal)
    with pytest.raises(Refusal, match="no can do"):
        completion_from({"choices": [{"finish_reason": "stop", "message": {"content": None, "refusal": "no can do"}}]})
    with pytest.raises(Refusal, match="content_filter"):
        completion_from({"choices": [{"finish_reason": "content_filter", "message": {"content": ""}}]})


def _provider(monkeypatch, handler) -> OpenAICompatProvider:
    monkeypatch.setenv("DK_TEST_OPENAI_KEY", "sk-test")
    cfg = ModelConfig(name="m", provider="openai", model="m", base_url="http://mock.invalid/v1",
                      api_key_env="DK_TEST_OPENAI_KEY", params=GenerationParams(max_tokens=8, seed=3))
    provider = OpenAICompatProvider(cfg)
    provider.client = openai.AsyncOpenAI(api_key="sk-test", base_url=cfg.base_url, max_retries=0,
                                         http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    return provider


def test_the_sdk_sends_the_request_and_its_status_errors_still_map(monkeypatch):
    sent: list[httpx2.Request] = []
    replies = iter([httpx2.Response(200, json=REPLY),
                    httpx2.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "3"}),
                    httpx2.Response(401, json={"error": {"message": "bad key"}}),
                    httpx2.Response(200, content=json.dumps(REPLY).encode()[:40],
                                    headers={"content-type": "application/json"})])

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return next(replies)

    provider = _provider(monkeypatch, handler)
    messages = [{"role": "user", "content": "hi"}]

    async def run() -> list:
        out = []
        for _ in range(4):
            try:
                out.append(await provider.chat(messages, provider.cfg.params))
            except Exception as exc:  # noqa: BLE001 - each outcome is checked below
                out.append(exc)
        await provider.aclose()
        return out

    ok, limited, denied, truncated = asyncio.run(run())
    assert (ok.text, ok.usage_in, ok.usage_out) == ("hello", 7, 2)
    assert isinstance(limited, RetryableError) and limited.retry_after == 3.0 and "HTTP 429" in str(limited)
    assert isinstance(denied, FatalError) and "HTTP 401" in str(denied)
    assert isinstance(truncated, RetryableError) and "MalformedResponse: JSONDecodeError" in str(truncated)
    body = json.loads(sent[0].content)
    assert body == {"model": "m", "messages": messages, "temperature": 0.0, "max_tokens": 8, "top_p": 1.0, "seed": 3}
    assert sent[0].headers["authorization"] == "Bearer sk-test" and sent[0].url.path == "/v1/chat/completions"
