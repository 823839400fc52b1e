"""The package's notebook-facing API: every name in ``__all__`` resolves, lazily (importing distill_kit stays cheap)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import distill_kit


@pytest.mark.parametrize("name", distill_kit.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(distill_kit, name) is not None


def test_unknown_names_are_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        distill_kit.nope  # noqa: B018


@pytest.mark.slow
def test_importing_the_package_imports_no_heavy_library() -> None:
    code = ("import sys, distill_kit; heavy = [m for m in ('altair', 'polars', 'sentence_transformers', 'sklearn', "
            "'torch') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
