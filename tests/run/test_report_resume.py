"""The report of a resumed run equals an uninterrupted run's (issue #15, items 9 and 10): only finished
steps' summaries are read, and the example answers are picked by seeded key order, not arrival order."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from distill_kit import html
from distill_kit.run import report
from distill_kit.store import Store
from distill_kit.summaries import (
    ProbesSummary,
    finished_payloads,
    finished_summaries,
    record_summary,
)
from tests.helpers.fake_run import make_fake_run, set_state, stored_record
from tests.helpers.notebook_files import write_notebook


def _section(page: str, key: str) -> str:
    found = re.search(rf'<section id="{key}" class="(?:ran|missing)">(.*?)</section>', page, re.S)
    assert found, key
    return found.group(1)


def _page(run_dir: Path) -> str:
    return html.render_page(report.build_report(run_dir), static_dir=None)


def test_a_killed_report_steps_leftover_summary_does_not_change_the_overview(tmp_path):
    clean = make_fake_run(tmp_path / "clean", steps=("03",))
    set_state(clean, **{"06-report": {"status": "running"}})  # the report step building this report
    killed = tmp_path / "killed"
    shutil.copytree(clean, killed)
    # the killed attempt got as far as its summary; the resumed attempt is now running again
    record_summary(str(killed), "06-report", {"report": "report.html", "sections": ["ice"]})
    overview = _section(_page(killed), "overview").replace("killed", "clean")
    assert overview == _section(_page(clean), "overview")


def test_a_killed_scoring_steps_summary_is_not_shown_as_a_result(tmp_path):
    run_dir = make_fake_run(tmp_path / "run", steps=("03", "04"))
    set_state(run_dir, **{"04-response-similarity": {"status": "running"}})  # killed after writing its summary
    assert (run_dir / "summary" / "04-response-similarity.json").is_file()
    assert "04-response-similarity" not in finished_summaries(run_dir)
    assert "04-response-similarity" not in finished_payloads(run_dir)  # nor in summary.json
    page = _page(run_dir)
    assert '<section id="rse" class="missing">' in page and "Step not run" in _section(page, "rse")
    assert '<section id="ice" class="ran">' in page
    set_state(run_dir, **{"04-response-similarity": {"status": "failed"}})
    assert '<section id="rse" class="missing">' in _page(run_dir)


def test_without_a_run_state_every_summary_counts(tmp_path):
    record_summary(str(tmp_path), ProbesSummary(n_probes=1, n_templates=0))
    assert finished_summaries(tmp_path) == {"01-probe-identity": ProbesSummary(n_probes=1, n_templates=0)}


def _records(n: int) -> list:
    return [stored_record(f"{i:04d}-key", f"m{i % 3}", f"answer {i}", f"prompt {i}") for i in range(n)]


def test_example_answers_do_not_depend_on_arrival_order(tmp_path):
    recs = _records(40)
    bodies = []
    for name, order in (("a", recs), ("b", recs[::-1]), ("c", recs[13:] + recs[:13])):
        path = tmp_path / f"{name}.sqlite"
        with Store(path) as store:
            for r in order:
                store.put(r)
        bodies.append(report.examples_section(str(path), seed=0).body)
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0].count('class="answer prompt"') == 6
    other_seed = report.examples_section(str(tmp_path / "a.sqlite"), seed=1).body
    assert other_seed != bodies[0]  # the seed picks the sample; the order of arrival does not


def test_example_order_is_a_seeded_permutation():
    keys = [f"k{i}" for i in range(10)]
    order = report.example_order(keys, seed=3)
    assert sorted(order) == list(range(10)) and order == report.example_order(keys, seed=3)
    assert order != list(range(10))


# ---------------------------------------------------------------- the same, through the CLI with a real kill


def _cli_notebooks(nb_dir: Path, flag: Path) -> None:
    """01: a tiny scoring step; 06: the project's report notebook, pausing after its summary while ``flag``
    exists (the moment the issue's kill hit)."""
    import nbformat

    from distill_kit.paths import PROJECT_ROOT

    write_notebook(nb_dir / "01-first.ipynb", 'run_dir: str = ""\n',
                   "from tests.helpers.contracts import record_open\nrecord_open(run_dir, '01-first', {'n': 3})")
    report_nb = nbformat.read(PROJECT_ROOT / "notebooks" / "06-report.ipynb", as_version=4)
    report_nb.cells.append(nbformat.v4.new_code_cell(
        f"import os, time\nwhile os.path.exists({str(flag)!r}):\n    time.sleep(0.1)"))
    nbformat.write(report_nb, nb_dir / "06-report.ipynb")


def _overview(run_dir: Path) -> str:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    return re.sub(r"<td[^>]*>\s*[\d.]+\s*</td>", "<td>#</td>", _section(page, "overview"))  # step seconds differ


@pytest.mark.slow
def test_resumed_report_after_a_kill_in_step_06_equals_an_uninterrupted_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from distill_kit.paths import PROJECT_ROOT
    from distill_kit.run.plan import load_run_config

    flag = tmp_path / "pause"
    nb_dir = tmp_path / "nb"
    _cli_notebooks(nb_dir, flag)
    cfg = tmp_path / "r.yaml"
    cfg.write_text("name: resumed\nsteps:\n  - notebook: '01'\n  - notebook: '06'\n    parameters: {static_formats: []}\n")
    run_id = load_run_config(cfg).run_id()

    def run(runs: Path, wait: bool = True) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "distill_kit", "run", str(cfg), "--runs-dir", str(runs),
                                 "--notebooks-dir", str(nb_dir)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if wait:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out
        return proc

    run(tmp_path / "clean")
    flag.touch()
    killed = run(tmp_path / "killed", wait=False)
    leftover = tmp_path / "killed" / run_id / "summary" / "06-report.json"
    deadline = time.monotonic() + 300
    while not leftover.exists():
        assert killed.poll() is None and time.monotonic() < deadline, "step 06 never wrote its summary"
        time.sleep(0.1)
    time.sleep(0.3)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    flag.unlink()
    run(tmp_path / "killed")
    assert _overview(tmp_path / "killed" / run_id) == _overview(tmp_path / "clean" / run_id)
