"""The providers' shared pieces: the attempt timer and the SDK client's connection pool."""

from __future__ import annotations

import asyncio

import importlib

import httpx2
import pytest

from distill_kit.config import ModelConfig
from distill_kit.providers import make_provider
from distill_kit.providers.base import pool_limits, sdk_http_client, within


def test_within_times_the_call_in_the_callers_own_task():
    async def whose_task() -> asyncio.Task | None:
        return asyncio.current_task()

    async def main() -> bool:
        return await within(1.0, whose_task()) is asyncio.current_task()

    assert asyncio.run(main())  # no task of its own (asyncio.wait_for on 3.11 makes one per call)


def test_within_abandons_a_slow_call_and_leaves_outer_cancellation_alone():
    async def slow() -> None:
        await within(0.05, asyncio.sleep(5))

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(slow(), 2))

    async def cancelled_from_outside() -> None:
        task = asyncio.ensure_future(within(5, asyncio.sleep(5)))
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):  # a cancel is a cancel, not a timeout
        asyncio.run(cancelled_from_outside())


def _pool(client: object) -> object:
    return client._transport._pool  # type: ignore[attr-defined]  (httpx2 -> httpcore2's pool)


@pytest.mark.parametrize("sdk_name", ["openai", "anthropic"])
def test_the_pool_holds_a_connection_per_request_in_flight(sdk_name):
    sdk = importlib.import_module(sdk_name)  # imported by the test, not at collection (seconds per worker)
    defaults = sdk._constants.DEFAULT_CONNECTION_LIMITS
    assert pool_limits(httpx2, sdk._constants, 8) == defaults  # below the SDK's defaults: its defaults
    assert pool_limits(httpx2, sdk._constants, 256) == httpx2.Limits(
        max_connections=defaults.max_connections, max_keepalive_connections=256,
        keepalive_expiry=defaults.keepalive_expiry)
    assert pool_limits(httpx2, sdk._constants, 5000).max_connections == 5000
    assert pool_limits(httpx2, None, 256) is None  # an SDK without the constant: its client as it is
    assert _pool(sdk_http_client(sdk))._max_keepalive_connections == defaults.max_keepalive_connections


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_providers_size_their_pool_from_the_models_concurrency(provider, monkeypatch):
    monkeypatch.setenv("DK_POOL_TEST_KEY", "k")
    cfg = ModelConfig(name="m", provider=provider, model="m", base_url="http://127.0.0.1:1/v1",
                      api_key_env="DK_POOL_TEST_KEY", concurrency=300)
    pool = _pool(make_provider(cfg).client._client)
    assert pool._max_keepalive_connections == 300 and pool._max_connections == 1000
