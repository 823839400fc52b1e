"""distill-kit: distillation quantification for LLMs (ICE identity scores, RSE similarity, lineage).

The notebook-facing API. Every name below is imported on first use (Altair, sentence-transformers and the
judges take seconds to import, so a notebook pays only for what it touches)::

    import distill_kit as dk
    frame = dk.datasets.identity_responses(["phi-4"])
    judged = dk.ice.judges.judge_frame(frame, "offline")
    dk.record_summary(run_dir, dk.summaries.IdentitySummary.build({...}))   # step 03-identity-scores

Layers, bottom to top (``tests/test_layering.py`` enforces them; ``docs/architecture.md`` draws them):
``paths`` < ``config``, ``stats``, ``html``, ``charts``, ... < ``datasets``, ``models``, ``store``, ``collect``,
``providers``, ``text`` < ``ice``, ``rse``, ``students`` < ``lineage`` < ``paper``, ``verdict``, ``summaries``, ``testing``
< ``run``.

Importing the package in a Jupyter kernel also makes Altair charts render offline (``distill_kit.display``);
every notebook imports it, so this is the one place that choice is made.
"""

from __future__ import annotations

import importlib
from typing import Any

from distill_kit.display import setup_kernel as _setup_kernel

#: submodules reachable as attributes of the package
_MODULES = ("paths", "config", "datasets", "datafetch", "models", "store", "collect", "stats", "html", "charts",
            "executor", "display", "providers", "text", "ice", "rse", "students", "lineage", "paper", "verdict", "summaries",
            "testing", "run")
#: modules the package's own modules use (a fitted-model cache, pacing, the spending cap, secrets, child
#: processes, notebook export): importable by path, but not attributes of the package and not the notebooks' API
_INTERNAL = ("cache", "nbexport", "processes", "ratelimit", "redact", "spend")
#: the handful of functions every notebook calls, by the module that is their one home
_FUNCTIONS = {
    "get_model": "models", "record_summary": "summaries", "run_summaries": "summaries", "Store": "store",
    "collect_sync": "collect", "ChatRequest": "collect", "prompt_set": "datasets", "load_responses": "datasets",
}
__all__ = [*_MODULES, *_FUNCTIONS]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"distill_kit.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"distill_kit.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'distill_kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_setup_kernel()
del _setup_kernel
