"""Issue 15, item 5: a refused save of invalid probes fails step 01 with one line and leaves the file alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill_kit.ice import probes as P
from distill_kit.ice.widgets import ProbeEditor

ROOT = Path(__file__).resolve().parents[2]


def duplicate_probes(path: Path) -> Path:
    first = P.load_probes()[:3]
    return P.save_probes([*first, first[0]], path, check=False)  # en-001 twice


def test_editor_save_can_raise(tmp_path: Path) -> None:
    ed = ProbeEditor(duplicate_probes(tmp_path / "dup.yaml"))
    target = tmp_path / "keep.yaml"
    target.write_text("original\n")
    assert ed.save(target) is None and "duplicate id" in ed.out_message.value  # the widget: message only
    with pytest.raises(ValueError, match="duplicate id"):
        ed.save(target, raise_errors=True)
    assert target.read_text() == "original\n"


@pytest.mark.slow
def test_step_01_fails_on_duplicate_ids_with_one_line(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "saved.yaml"
    target.write_text("# an earlier save\n")
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(yaml.safe_dump({"name": "dup-probes", "steps": [{"notebook": "01", "parameters": {
        "probes_path": str(duplicate_probes(tmp_path / "probes.yaml")), "save_to": str(target)}}]}))
    out = subprocess.run([sys.executable, "-m", "distill_kit", "run", str(cfg), "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "saved to None" not in out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "duplicate id" in errors[0] and "en-001" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert target.read_text() == "# an earlier save\n"  # untouched
