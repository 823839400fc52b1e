"""Every path, environment-variable name and cache directory of distill-kit, in one place.

Why a module of its own: paths were defined in five modules and ``config`` and ``datasets`` imported each
other for them. This module imports nothing from the package, so any layer may use it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
MODELS_FILE = CONFIG_DIR / "models.yaml"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "runs"
JUPYTER_DIR = PROJECT_ROOT / "jupyter"  # Jupyter config: settings overrides, offline HTML export

DATA_DIR_ENV = "DISTILL_KIT_DATA_DIR"  # the published-data folder (laid out like ../shared/data)
CACHE_DIR_ENV = "DISTILL_KIT_CACHE_DIR"  # downloads, unpacked models, embeddings, the default store
MODELS_OVERLAY_ENV = "DISTILL_KIT_MODELS_OVERLAY"  # a models.yaml overlay (e.g. configs/overlays/zoo.yaml)

# inside a run directory
SUMMARY_DIR = "summary"
STATE_FILE = "state.json"
REPORT_FILE = "report.html"
REPORT_STEP_PREFIX = "06"


def cache_dir() -> Path:
    """Git-ignored cache for downloads, unpacked models and embeddings."""
    path = Path(os.environ.get(CACHE_DIR_ENV) or PROJECT_ROOT / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_store_path() -> Path:
    """The response store used when a notebook is run by hand (a run uses ``<run dir>/store.sqlite``)."""
    return cache_dir() / "store.sqlite"


# ------------------------------------------------------------------ a place that cannot be written
# errno values that mean "this place cannot take the write": no space (28), quota (122), read-only file
# system (30), permission (13, 1). Anything else is a bug or a bad input with its own message.
_NO_SPACE = {28, 122}
_READ_ONLY = {30}
_DENIED = {13, 1}
# SQLite reports the same conditions as OperationalError texts, without errno or path
SQLITE_NO_SPACE = ("database or disk is full",)
SQLITE_READ_ONLY = ("attempt to write a readonly database", "unable to open database file")


def unwritable_line(errno: int | None, where: str | Path, text: str = "") -> str | None:
    """The one line a user sees when ``where`` (a file or folder) cannot be written, or None if ``errno`` /
    ``text`` is not such a failure.

    Why one helper: the runner, the store and the report write into the run directory, the cache and the
    store's folder; a full disk or a read-only mount must read the same everywhere -- the directory, and
    what to do -- and never as a traceback."""
    folder = Path(where)
    folder = folder if folder.is_dir() else folder.parent
    low = text.lower()
    if errno in _NO_SPACE or any(s in low for s in SQLITE_NO_SPACE):
        return f"no space left on the device holding {folder}: free space there and run the same command again"
    if errno in _READ_ONLY or "read-only file system" in low or any(s in low for s in SQLITE_READ_ONLY):
        return (f"{folder} is on a read-only file system: make it writable (or choose another folder) "
                "and run the same command again")
    if errno in _DENIED:
        return f"{folder} is not writable (permission denied): make it writable and run the same command again"
    return None


def oserror_line(exc: BaseException, where: str | Path | None = None) -> str | None:
    """:func:`unwritable_line` for a raised error: its own filename when it names one, else ``where``."""
    errno = getattr(exc, "errno", None)
    path = getattr(exc, "filename", None) or where
    if path is None:
        return None
    return unwritable_line(errno if isinstance(errno, int) else None, path, str(exc))
