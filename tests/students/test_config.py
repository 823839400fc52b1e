"""The transformers provider's config: keys, cache identity, registration."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_kit.config import ConfigError, ModelConfig, _parse_models


def _cfg(adapter: str | None = None) -> ModelConfig:
    return ModelConfig(name="mine", provider="transformers", path=None, adapter=adapter)


def test_adapter_weights_are_part_of_the_cache_key(tmp_path: Path) -> None:
    (tmp_path / "adapter_model.safetensors").write_bytes(b"one")
    first = _cfg(str(tmp_path)).cache_identity()
    (tmp_path / "adapter_model.safetensors").write_bytes(b"two!")  # retrained in the same folder
    second = _cfg(str(tmp_path)).cache_identity()
    assert first["adapter_digest"] and first["adapter_digest"] != second["adapter_digest"]
    assert _cfg().cache_identity()["adapter_digest"] is None


def test_other_providers_keep_their_cache_identity() -> None:
    """Stored answers of every other provider stay valid: their keys gain no field."""
    ident = ModelConfig(name="x", provider="openai", model="gpt-4o").cache_identity()
    assert set(ident) == {"provider", "model", "base_url", "gguf", "replay", "params"}


def test_models_yaml_accepts_the_provider_and_rejects_typos() -> None:
    models = _parse_models({"models": [{"name": "s", "provider": "transformers", "path": "/m", "adapter": "/a"}]},
                           "test")
    assert models["s"].adapter == "/a"
    with pytest.raises(ConfigError, match="adaptor"):
        _parse_models({"models": [{"name": "s", "provider": "transformers", "adaptor": "/a"}]}, "test")


def test_a_bad_path_is_one_line(tmp_path: Path) -> None:
    from distill_kit.providers.transformers import resolve_base

    with pytest.raises(ConfigError, match="config.json"):
        resolve_base(tmp_path)
