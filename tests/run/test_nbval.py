"""nbval on the notebooks, as the design card has it: ``pytest --nbval-lax`` runs every cell of 01, 03 and 06 in
one kernel each, on small parameters, and every cell passes.

Small parameters the papermill way: the committed notebooks keep their literal ``parameters`` cell; each is
copied with papermill's injected-parameters cell after it (``parameterize_notebook``), exactly what a run
does, so the notebook under nbval is the one users open. Outputs that change from run to run (times, dates,
addresses, temporary paths, float noise) are sanitised by ``tests/nbval_sanitize.cfg`` for any cell marked
``# NBVAL_CHECK_OUTPUT``; lax mode compares no other cell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_kit.ice import probes as P
from tests.helpers.paths import NOTEBOOKS, ROOT

SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def small_parameters(work: Path) -> dict[str, dict]:
    run, store = str(work / "run"), str(work / "store.sqlite")
    return {
        "01": {"probes_path": str(work / "probes.yaml"), "save_to": "", "run_dir": run},
        "03": {"models": ["phi-4", "qwen2.5-14b-instruct"], "judge": "rules", "sample_size": 20, "live_probes": 1,
               "max_tokens": 8, "store_path": store, "run_dir": run},
        "06": {"run_dir": run, "store_path": store, "static_formats": []},
    }


@pytest.mark.slow
def test_nbval_lax_passes_on_01_03_06_with_small_parameters(tmp_path: Path, data_dir: Path) -> None:
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    P.save_probes(P.load_probes()[:4], tmp_path / "probes.yaml")
    copies = []
    for num, params in small_parameters(tmp_path).items():
        src = next(NOTEBOOKS.glob(f"{num}-*.ipynb"))
        nb = parameterize_notebook(load_notebook_node(str(src)), params)
        nbformat.write(nb, tmp_path / src.name)
        copies.append(str(tmp_path / src.name))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's config (its conftest guards tests/)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
         "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600", f"--nbval-sanitize-with={SANITIZE}",
         *copies],
        cwd=tmp_path, capture_output=True, text=True, timeout=1500, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)})
    tail = out.stdout[-4000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    assert " passed" in out.stdout and "failed" not in out.stdout, tail
