"""On-disk pickle caches of fitted judges, held-out predictions and vote matrices.

Why one home: a cache file outlives the code that wrote it. A pickle names the module of every class in it, so
a file written before a module moved (``distill_kit.judges.identity`` -> ``distill_kit.ice.judges``) cannot be
read by the new code; nor can a file cut short by a killed run. Both are a cache *miss* here (the caller refits
and overwrites), never a crash. Writes are atomic (a temporary file, then a rename), so a reader never sees half a
file. Only files distill-kit wrote itself are read (the cache directory is the project's own).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

#: what reading a stale or damaged pickle raises (a moved class, a truncated file, a changed class layout)
STALE = (ModuleNotFoundError, AttributeError, ImportError, EOFError, pickle.UnpicklingError, TypeError, ValueError)


def load(path: Path) -> Any | None:
    """The object pickled at ``path``, or None when there is none or it cannot be read by this version."""
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 (our own cache file)
    except FileNotFoundError:
        return None
    except STALE:
        return None


def save(path: Path, obj: object) -> None:
    """Pickle ``obj`` to ``path`` atomically (concurrent writers each write their own temporary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        pickle.dump(obj, fh)
    tmp.replace(path)
