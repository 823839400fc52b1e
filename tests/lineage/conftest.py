"""Fixtures of the lineage tests: one synthetic answers frame with a known teacher, built once."""

from __future__ import annotations

import polars as pl
import pytest

from tests.helpers.lineage_habits import HABITS, habits_frame


@pytest.fixture(scope="session")
def echo_frame() -> pl.DataFrame:
    """60 prompts answered by the six references, a ``student`` echoing teacher-a and a neutral ``control``."""
    return habits_frame(HABITS["teacher-a"], 60, filler=("alpha", "beta", "gamma", "delta", "omega", "sigma"),
                        n_filler=8)
