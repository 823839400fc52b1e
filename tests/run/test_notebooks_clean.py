"""The committed notebooks: no outputs or execution counts, one papermill `parameters` cell, logic in the
package (a notebook that grows a `def` has logic that belongs in distill_kit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_numbered_sequence_is_there() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_clean_with_one_parameters_cell(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one papermill parameters cell"
    assert all(c.get("id") for c in nb["cells"]), "every cell has an id"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "\ndef " not in "\n" + source and "api_key" not in source.lower(), "logic and secrets stay out of notebooks"
