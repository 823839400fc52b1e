"""Model providers behind one async chat interface (see base.Provider)."""

from __future__ import annotations

from distill_kit.config import ModelConfig
from distill_kit.providers.base import (
    Completion,
    FatalError,
    Provider,
    ProviderError,
    RetryableError,
)


def make_provider(cfg: ModelConfig) -> Provider:
    """Build the provider for a model; SDKs are imported only when their provider is used."""
    if cfg.provider == "openai":
        from distill_kit.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(cfg)
    if cfg.provider == "anthropic":
        from distill_kit.providers.anthropic import AnthropicProvider

        return AnthropicProvider(cfg)
    if cfg.provider == "local":
        from distill_kit.providers.local import LocalProvider

        return LocalProvider(cfg)
    if cfg.provider == "replay":
        from distill_kit.providers.replay import ReplayProvider

        return ReplayProvider(cfg)
    if cfg.provider == "mock":
        from distill_kit.providers.mock import MockProvider

        return MockProvider(cfg)
    if cfg.provider == "transformers":
        from distill_kit.providers.transformers import TransformersProvider

        return TransformersProvider(cfg)
    raise ValueError(f"unknown provider {cfg.provider!r}")


__all__ = ["Completion", "FatalError", "Provider", "ProviderError", "RetryableError", "make_provider"]
