"""Where the tests find the project: one home for the paths every test folder used to compute itself."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots and pages a person can look at after a run
SHARED_DATA = ROOT.parent / "shared" / "data"


def artifacts_dir() -> Path:
    """tests/artifacts/, made on first use."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment with the work tree first on PYTHONPATH, so a child Python imports this checkout."""
    import os

    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
