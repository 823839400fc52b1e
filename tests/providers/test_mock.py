"""The in-process ``mock`` provider: chosen like every provider, scripted replies, latency and faults, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from distill_kit.config import GenerationParams, ModelConfig, load_models
from distill_kit.providers import FatalError, RetryableError, make_provider, mock
from distill_kit.providers.base import EmptyAnswer
from distill_kit.providers.mock import Fault, MockProvider
from tests.helpers.mocked import mock_model

USER = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "who made you?"}]


def chat(cfg: ModelConfig):
    provider = make_provider(cfg)
    return asyncio.run(provider.chat(USER, cfg.params))


def test_make_provider_builds_it_and_a_models_file_accepts_it(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: fake, provider: mock, model: fake-script}\n", encoding="utf-8")
    cfg = load_models(path)["fake"]
    provider = make_provider(cfg)
    assert isinstance(provider, MockProvider) and provider.script is mock.script_for("fake-script")
    mock.forget("fake-script")


def test_an_unscripted_name_echoes_its_prompt_and_counts_words_as_tokens():
    cfg = ModelConfig(name="unscripted-echo", provider="mock")
    try:
        done = chat(cfg)
        assert done.text == "echo: who made you?"
        assert (done.usage_in, done.usage_out) == (5, 4)  # "be brief" + "who made you?"; "echo: who made you?"
        [call] = mock.script_for("unscripted-echo").calls
        assert call.messages == USER and call.params == GenerationParams()
    finally:
        mock.forget("unscripted-echo")


def test_faults_are_consumed_one_per_attempt_in_order():
    with mock_model(reply=str.upper, faults=(Fault.status(429, retry_after=1.5), Fault.status(400), Fault.empty(),
                                             Fault.crash())) as (cfg, script):
        with pytest.raises(RetryableError) as retry:
            chat(cfg)
        assert retry.value.retry_after == 1.5 and "429" in str(retry.value)
        with pytest.raises(FatalError, match="400"):
            chat(cfg)
        with pytest.raises(EmptyAnswer, match="EmptyAnswer"):
            chat(cfg)
        with pytest.raises(ValueError, match="unreadable"):
            chat(cfg)
        assert chat(cfg).text == "WHO MADE YOU?"  # the queue is empty: the script answers
        assert len(script.calls) == 5


def test_latency_overlaps_across_requests_and_in_flight_is_counted():
    with mock_model(latency=0.2) as (cfg, script):
        provider = make_provider(cfg)

        async def many() -> float:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.gather(*(provider.chat(USER, cfg.params) for _ in range(5)))
            return loop.time() - t0

        took = asyncio.run(many())
        assert 0.2 <= took < 0.6  # five at once take one latency, not five
        assert script.max_in_flight == 5 and script.in_flight == 0


def test_a_stall_longer_than_the_timeout_is_abandoned():
    from distill_kit.providers.base import within

    with mock_model(faults=(Fault(delay=5.0),)) as (cfg, script):
        provider = make_provider(cfg)
        with pytest.raises(TimeoutError):
            asyncio.run(within(0.05, provider.chat(USER, cfg.params)))
        assert script.in_flight == 0  # the abandoned attempt is not counted as still running
