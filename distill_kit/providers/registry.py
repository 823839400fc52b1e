"""Which providers exist: each one's name, the ``ModelConfig`` fields it reads beyond the common ones, and its factory.

Why a table rather than an ``if`` per provider: the names a config may use, the fields each provider reads and
the class that serves it are then one fact each, readable without running anything (``distill-kit`` lists them;
``docs/extending.md`` says how to add one). Factories are ``"module:Class"`` strings, imported on first use, so
listing the providers imports no SDK and no torch.

The closed ``config.Provider`` literal (a config layer cannot import this one) must equal :func:`names`;
``tests/providers/test_registry.py`` checks it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill_kit.config import ConfigError, ModelConfig

if TYPE_CHECKING:
    from distill_kit.providers.base import Provider


@dataclass(frozen=True)
class ProviderSpec:
    """One provider as a config names it."""

    name: str  # the value of ``ModelConfig.provider``
    factory: str | Callable[[ModelConfig], Any]  # "package.module:Class", or a callable taking the config
    fields: tuple[str, ...] = ()  # the ModelConfig fields it reads beyond those every provider has (name, model, params...)
    summary: str = ""  # one line for listings and docs

    def load(self) -> Callable[[ModelConfig], Any]:
        """The factory itself (imports its module on first use)."""
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec, *, replace: bool = False) -> ProviderSpec:
    """Add a provider. Registering a name twice is an error unless ``replace`` (a test's stand-in)."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"provider {spec.name!r} is already registered ({_REGISTRY[spec.name].factory})")
    unknown = [f for f in spec.fields if f not in ModelConfig.model_fields]
    if unknown:
        raise ValueError(f"provider {spec.name!r}: {', '.join(unknown)} not ModelConfig fields")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a provider (tests clean up after themselves)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered provider names, in registration order."""
    return tuple(_REGISTRY)


def spec(name: str) -> ProviderSpec:
    """The provider registered under ``name``; one line listing the registered ones when there is none."""
    found = _REGISTRY.get(name)
    if found is None:
        raise ConfigError(f"unknown provider {name!r}; registered providers: {', '.join(_REGISTRY)}")
    return found


def make_provider(cfg: ModelConfig) -> Provider:
    """Build the provider for a model; SDKs are imported only when their provider is used."""
    return spec(cfg.provider).load()(cfg)


_API_FIELDS = ("base_url", "api_key_env", "batch", "batch_price", "batch_poll")  # an API: endpoint, key, batch API

for _spec in (
    ProviderSpec("openai", "distill_kit.providers.openai_compat:OpenAICompatProvider", _API_FIELDS,
                 "OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp) through the openai SDK"),
    ProviderSpec("anthropic", "distill_kit.providers.anthropic:AnthropicProvider", _API_FIELDS,
                 "Anthropic's Messages API through the anthropic SDK"),
    ProviderSpec("local", "distill_kit.providers.local:LocalProvider", ("gguf", "threads"),
                 "a GGUF model on an embedded llama.cpp server (the bundled SmolLM2 when gguf is empty)"),
    ProviderSpec("replay", "distill_kit.providers.replay:ReplayProvider", ("replay",),
                 "published answers from the data folder, served as a chat model"),
    ProviderSpec("mock", "distill_kit.providers.mock:MockProvider", (),
                 "in-process scripted replies, latency and faults, for tests"),
    ProviderSpec("transformers", "distill_kit.providers.transformers:TransformersProvider", ("path", "adapter"),
                 "a local Hugging Face model, optionally with a LoRA adapter"),
):
    register(_spec)
del _spec
