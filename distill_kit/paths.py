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
