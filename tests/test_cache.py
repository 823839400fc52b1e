"""On-disk pickle caches: a file an older version wrote (its classes since moved) or a truncated one is a miss."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

from distill_kit import cache


class Fitted:
    """Stands in for a fitted judge."""

    def __init__(self, value: int) -> None:
        self.value = value


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "judge.pkl"
    cache.save(path, {"a": 1})
    assert cache.load(path) == {"a": 1} and [p.name for p in path.parent.iterdir()] == ["judge.pkl"]
    assert cache.load(tmp_path / "absent.pkl") is None


def test_a_class_that_moved_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    old = types.ModuleType("distill_kit_old_home")  # where the class lived when the file was written
    old.Fitted = Fitted
    Fitted.__module__ = "distill_kit_old_home"
    sys.modules["distill_kit_old_home"] = old
    try:
        path = tmp_path / "old.pkl"
        path.write_bytes(pickle.dumps(Fitted(3)))
    finally:
        del sys.modules["distill_kit_old_home"]
        Fitted.__module__ = __name__
    assert cache.load(path) is None  # ModuleNotFoundError inside: the caller refits and overwrites


def test_a_truncated_file_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(list(range(1000)))[:50])
    assert cache.load(path) is None
