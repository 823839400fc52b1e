"""The provider registry: one table of names, config fields and factories, checked against the config's literal."""

from __future__ import annotations

import asyncio
import re
import typing

import pytest

from distill_kit import config
from distill_kit.config import ConfigError, GenerationParams, ModelConfig
from distill_kit.providers import Completion, Provider, make_provider, registry
from distill_kit.store import Store


def test_the_config_literal_is_the_registry():
    assert typing.get_args(config.Provider) == registry.names()


def test_an_unknown_provider_is_one_line_naming_the_registered_ones():
    cfg = ModelConfig.model_construct(name="m", provider="nope")
    with pytest.raises(ConfigError) as err:
        make_provider(cfg)
    message = str(err.value)
    assert "\n" not in message and "'nope'" in message
    assert all(name in message for name in registry.names())


def test_a_models_file_with_an_unknown_provider_names_the_known_ones(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: x, provider: nope}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mock") as err:
        config.load_models(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", registry.names())
def test_every_factory_imports_to_a_provider_that_declares_the_protocol(name):
    factory = registry.spec(name).load()
    assert Provider in factory.__mro__  # so collect's timed_chat is there without probing for it


def test_each_provider_specific_field_belongs_to_the_provider_its_description_names():
    """``ModelConfig`` documents a provider-only field as "<provider> provider: ..."; the registry lists it there."""
    for field, info in ModelConfig.model_fields.items():
        m = re.match(r"(\w+) provider:", info.description or "")
        if m:
            assert field in registry.spec(m.group(1)).fields, field
    listed = {f for name in registry.names() for f in registry.spec(name).fields}
    assert listed <= set(ModelConfig.model_fields)


def test_registering_twice_or_an_unknown_field_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.ProviderSpec("mock", "distill_kit.providers.mock:MockProvider"))
    with pytest.raises(ValueError, match="not ModelConfig fields"):
        registry.register(registry.ProviderSpec("other", "x:Y", ("no_such_field",)))
    assert "other" not in registry.names()


class _Slow(Provider):
    def __init__(self, cfg: ModelConfig) -> None:
        self.timeouts: list[float | None] = []

    async def chat(self, messages, params) -> Completion:
        await asyncio.sleep(1.0)
        return Completion(text="late")

    async def timed_chat(self, messages, params, timeout):
        self.timeouts.append(timeout)
        return await super().timed_chat(messages, params, timeout)

    async def aclose(self) -> None:
        return None


def test_the_protocol_times_an_attempt_and_collect_calls_it(tmp_path):
    from distill_kit.collect import ChatRequest, collect_sync

    made: list[_Slow] = []

    def factory(cfg: ModelConfig) -> _Slow:
        made.append(_Slow(cfg))
        return made[-1]

    original = registry.spec("mock")
    registry.register(registry.ProviderSpec("mock", factory), replace=True)
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(_Slow(ModelConfig(name="m", provider="mock")).timed_chat([], GenerationParams(), 0.01))
        cfg = ModelConfig(name="slow", provider="mock", timeout=0.01, max_retries=0)
        with Store(tmp_path / "s.sqlite") as store:
            [res] = collect_sync(cfg, [ChatRequest.user("hi")], store, progress=False)
        assert res.error is not None and "timeout" in res.error
        assert made and made[0].timeouts == [0.01]
    finally:
        registry.register(original, replace=True)
