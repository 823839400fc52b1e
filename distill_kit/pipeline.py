"""Batch runs of the notebook sequence: run directories, per-step summaries, resume.

Notebooks call :func:`record_summary` with every score they compute; the runner merges the
per-step files into ``runs/<run-id>/summary.json`` and the report notebook reads them back.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

SUMMARY_DIR = "summary"


def to_jsonable(value: Any) -> Any:
    """Convert numpy / polars / pandas / dataclass / path values into plain JSON types.

    Why: notebooks hand over whatever their scoring code returns; the summary must stay valid
    JSON (NaN/inf become ``null``) so the report and external tools can read it.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    type_name = type(value).__module__ + "." + type(value).__name__
    if type_name.startswith("polars.") and hasattr(value, "to_dicts"):  # polars DataFrame
        return to_jsonable(value.to_dicts())
    if type_name.startswith("polars.") and hasattr(value, "to_list"):  # polars Series
        return to_jsonable(value.to_list())
    if type_name.startswith("pandas.") and hasattr(value, "to_dict"):
        if hasattr(value, "columns"):
            return to_jsonable(value.to_dict(orient="records"))
        return to_jsonable(value.to_list())
    if hasattr(value, "model_dump"):  # pydantic
        return to_jsonable(value.model_dump())
    if hasattr(value, "tolist"):  # numpy arrays and numpy scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + rename so a killed run never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record_summary(run_dir: str, step: str, payload: dict) -> None:
    """Save one step's scores as ``run_dir/summary/<step>.json`` (no-op when ``run_dir`` is "").

    Called from every notebook; interactive runs pass ``run_dir=""`` and write nothing.
    Calling twice for the same step replaces the earlier file.
    """
    if not run_dir:
        return
    if not isinstance(payload, dict):
        raise ValueError(f"record_summary payload must be a dict, got {type(payload).__name__}")
    if not step or any(c in step for c in "/\\") or step.startswith("."):
        raise ValueError(f"record_summary step must be a plain name like '03-ice', got {step!r}")
    text = json.dumps(to_jsonable(payload), indent=2, sort_keys=False, allow_nan=False)
    _atomic_write_text(Path(run_dir) / SUMMARY_DIR / f"{step}.json", text + "\n")


def load_summaries(run_dir: str | Path) -> dict[str, dict]:
    """Read every ``summary/<step>.json`` of a run into ``{step: payload}`` (sorted by step)."""
    folder = Path(run_dir) / SUMMARY_DIR
    if not folder.is_dir():
        return {}
    out: dict[str, dict] = {}
    for f in sorted(folder.glob("*.json")):
        out[f.stem] = json.loads(f.read_text(encoding="utf-8"))
    return out
