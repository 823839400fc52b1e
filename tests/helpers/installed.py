"""Skip markers for optional packages that do not import the package at collection.

``pytest.importorskip`` at module level imports the package while pytest collects, in every run that collects
the file, the fast loop included (``-m "not slow"`` deselects after collecting) and once per xdist worker;
torch, transformers or peft cost seconds each. ``needs`` asks the import system whether the package is there
(``importlib.util.find_spec``) and leaves the import to the tests that use it.
"""

from __future__ import annotations

import importlib.util

import pytest


def missing(*packages: str) -> list[str]:
    """The packages of ``packages`` that are not installed (their top-level module cannot be found)."""
    return [p for p in packages if importlib.util.find_spec(p) is None]


def needs(*packages: str) -> pytest.MarkDecorator:
    """Skip the test (or, as ``pytestmark``, the module) when any of ``packages`` is not installed."""
    absent = missing(*packages)
    return pytest.mark.skipif(bool(absent), reason=f"not installed: {', '.join(absent)}")
