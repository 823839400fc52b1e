"""Model providers behind one async chat interface (:class:`~distill_kit.providers.base.Provider`).

Which provider serves a config is looked up in :mod:`~distill_kit.providers.registry` (name, the config fields
it reads, its factory); adding one is described in ``docs/extending.md``.
"""

from __future__ import annotations

from distill_kit.providers.base import (
    Completion,
    FatalError,
    Provider,
    ProviderError,
    RetryableError,
)
from distill_kit.providers.registry import ProviderSpec, make_provider, register

__all__ = [
    # the interface, its errors, the registry
    "Completion", "FatalError", "Provider", "ProviderError", "ProviderSpec", "RetryableError", "make_provider",
    "register",
    # the modules: one per provider, the shared helpers (base), batch APIs, the registry
    "anthropic", "base", "batch", "local", "mock", "openai_compat", "registry", "replay", "transformers",
]
