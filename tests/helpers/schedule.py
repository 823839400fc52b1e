"""Longest files first: the order ``tests/conftest.py`` gives the collected tests, so xdist's workers finish together.

``--dist loadfile`` hands each worker one file at a time, in collection order (``--no-loadscope-reorder``; xdist's
own reorder puts the files with the most tests first, which sent the one-JupyterLab file, nine long tests, to a
worker near the end). Handing out the longest file first and the shortest last is longest-processing-time
scheduling: the last file to start is a short one, so no worker waits long for another at the end.

The seconds come from ``tests/durations.json`` (each test's measured span, setup and teardown included; written by
``python -m tests.helpers.timeline <timeline> --write-durations``). A file's weight is the sum over its *selected*
tests, so ``-m "not slow"`` and ``-k`` order by what will run; a test not in the file counts as the mean of those
that are. Tests inside a file keep their order (a module fixture is set up once; some tests build on the previous
one).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence, TypeVar

DURATIONS = Path(__file__).resolve().parents[1] / "durations.json"

T = TypeVar("T")


def duration_key(nodeid: str) -> str:
    """A node id without its parameter id: the key of ``tests/durations.json``. Why: parameter ids carry test
    data (fake API keys, paths), which a committed file must not repeat; a parametrised test is timed by the mean
    over its cases."""
    return nodeid.split("[", 1)[0]


def load_durations(path: Path = DURATIONS) -> dict[str, float]:
    """Seconds per test (:func:`duration_key`); empty (collection order kept) when the file is missing or unreadable."""
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def longest_files_first(nodeids: Sequence[str], durations: dict[str, float]) -> list[int]:
    """Indexes of ``nodeids`` reordered: whole files by descending total seconds, each file's tests in order.

    Ties keep collection order, so the result is the same in every xdist worker (xdist checks that)."""
    if not durations:
        return list(range(len(nodeids)))
    unknown = sum(durations.values()) / len(durations)
    files: dict[str, list[int]] = defaultdict(list)  # insertion order: first appearance
    for i, nodeid in enumerate(nodeids):
        files[nodeid.split("::", 1)[0]].append(i)
    weight = {f: sum(durations.get(duration_key(nodeids[i]), unknown) for i in idx) for f, idx in files.items()}
    order = sorted(files, key=lambda f: -weight[f])  # stable: ties in collection order
    return [i for f in order for i in files[f]]


def reorder(items: list[T], nodeids: Sequence[str], durations: dict[str, float]) -> None:
    """Put ``items`` (in place) in :func:`longest_files_first` order."""
    items[:] = [items[i] for i in longest_files_first(nodeids, durations)]
