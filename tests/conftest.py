"""Shared fixtures: data directory, isolated cache, executing notebooks with papermill."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read the published data from ../shared/data unless the caller chose another folder.
if not os.environ.get("DISTILL_KIT_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["DISTILL_KIT_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("DISTILL_KIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("no data directory: set DISTILL_KIT_DATA_DIR to a folder laid out like ../shared/data")
    return Path(value)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = ROOT / "tests" / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def run_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Execute ``notebooks/<name>`` with papermill (kernel python3, cwd notebooks/) and return the output path."""
    import papermill as pm

    def run(name: str, parameters: dict[str, Any] | None = None, timeout: int = 600) -> Path:
        src = NOTEBOOKS / name
        assert src.exists(), f"no notebook {src}"
        out = tmp_path / f"executed-{name}"
        pm.execute_notebook(str(src), str(out), parameters=parameters or {}, kernel_name="python3",
                            cwd=str(NOTEBOOKS), progress_bar=False, execution_timeout=timeout)
        return out

    return run
