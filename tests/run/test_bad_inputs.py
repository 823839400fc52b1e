"""Bad input is one line from the CLI before anything runs (issue #15, items 4 and 6): parameter types
checked against each notebook's parameters cell, a damaged store refused (and left untouched), and
notebooks only from the notebooks folder."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from distill_kit.config import ConfigError
from distill_kit.paths import PROJECT_ROOT
from distill_kit.run import plan
from distill_kit.run.parameters import check_parameter_types, read_parameters
from distill_kit.run.plan import RunConfig, load_run_config
from distill_kit.store import Store, StoreError, check_store
from tests.helpers.fake_run import stored_record
from tests.helpers.notebook_files import write_notebook


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill_kit", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def write_config(tmp: Path, text: str) -> Path:
    path = tmp / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- parameter types (item 4)


@pytest.mark.parametrize("step,param,value,want", [
    ("03", "sample_size", "'10'", "int"),          # the case: polars ComputeError inside notebook 03
    ("02", "live_models", "smollm2-local", "list"),
    ("04", "content", "'yes'", "bool"),
    ("05", "fit_fraction", "'half'", "float"),
    ("03", "flagged_limit", "true", "int"),        # a bool is not a count
])
@pytest.mark.slow  # the CLI in a subprocess
def test_wrong_parameter_type_is_one_line_before_anything_runs(tmp_path, step, param, value, want):
    cfg = write_config(tmp_path, f"name: t\nsteps:\n  - notebook: '{step}'\n    parameters: {{{param}: {value}}}\n")
    proc = cli("run", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert f"parameter {param} must be {want}" in line and step in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ipynb"))


@pytest.mark.slow
def test_run_wide_parameters_are_type_checked_too(tmp_path):
    cfg = write_config(tmp_path, "name: t\nparameters: {sample_size: 'ten'}\nsteps:\n  - notebook: '04'\n")
    proc = cli("plan", str(cfg))
    assert proc.returncode == 2 and "parameter sample_size must be int" in one_error_line(proc)


def test_right_types_pass_and_ints_are_fine_floats(tmp_path):
    cfg = RunConfig.model_validate({"name": "t", "steps": [
        {"notebook": "05", "parameters": {"fit_fraction": 1, "sample_size": 10}},
        {"notebook": "02", "parameters": {"live_models": ["x"]}}]})
    plans = plan.plan_run(cfg, tmp_path)
    assert plans[0].parameters["fit_fraction"] == 1


def test_list_parameters_take_yaml_lists_of_names(tmp_path):
    write_notebook(tmp_path / "nb" / "01-x.ipynb", "models: list = []\nsets: list[str] = ['a']\n", "pass")
    declared = read_parameters(tmp_path / "nb" / "01-x.ipynb").types
    assert declared == {"models": "list", "sets": "list"}
    check_parameter_types({"models": ["a", "b"], "sets": []}, declared, "step 01")
    with pytest.raises(ConfigError, match=r"parameter models must be list \(a YAML list: \[a, b\]\).*got str 'a,b'"):
        check_parameter_types({"models": "a,b"}, declared, "step 01")
    with pytest.raises(ConfigError, match="parameter sets must be list"):
        check_parameter_types({"sets": [{"name": "a"}]}, declared, "step 01")  # names, not mappings


def test_types_come_from_annotations_or_literal_defaults(tmp_path):
    path = write_notebook(tmp_path / "01-x.ipynb", "a: int = 1\nb = 'x'\nc = [1]\nd = some_call()\ne: 'Custom' = None\n", "pass")
    assert read_parameters(path).types == {"a": "int", "b": "str", "c": "list"}


# ---------------------------------------------------------------- damaged store (item 4)


def _good_store(path: Path, n: int = 300) -> None:
    with Store(path) as store:
        for i in range(n):
            store.put(stored_record(f"k{i}", "m", "answer " * 50, f"q{i}" * 20))
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"this is not a database at all\n" * 100)
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "header":
        path.write_bytes(b"\x00" * 100 + data[100:])


@pytest.mark.parametrize("how", ["garbage", "truncated", "header"])
@pytest.mark.slow
def test_damaged_store_is_one_line_naming_the_file_and_is_never_modified(tmp_path, how):
    write = tmp_path / "nb"
    write.mkdir()
    shutil.copy(PROJECT_ROOT / "notebooks" / "06-report.ipynb", write / "06-report.ipynb")
    cfg = write_config(tmp_path, "name: dmg\nsteps:\n  - notebook: '06'\n")
    run_dir = tmp_path / "runs" / load_run_config(cfg).run_id()
    run_dir.mkdir(parents=True)
    store = run_dir / "store.sqlite"
    _good_store(store)
    _damage(store, how)
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    proc = cli("run", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--notebooks-dir", str(write))
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(store) in line and "move it aside" in line  # every damaged-store message says what to do
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not (run_dir / "notebooks").exists()  # nothing ran
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == ["store.sqlite"]


def test_store_class_refuses_damaged_and_foreign_files_read_only(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(StoreError, match="bad.sqlite"):
        Store(bad)
    assert bad.read_bytes() == b"garbage" * 50
    foreign = tmp_path / "other.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not a distill-kit response store"):
        Store(foreign)
    assert foreign.read_bytes() == before  # no responses table was added
    assert isinstance(StoreError("x"), ConfigError)  # the CLI prints it as one line
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    check_store(empty)  # an empty file is a new store
    check_store(tmp_path / "missing.sqlite")


# ---------------------------------------------------------------- notebooks outside notebooks/ (item 6)


@pytest.mark.parametrize("spec", ["{evil}", "../outside/07-evil.ipynb", "sub/07-evil", "./07-evil.ipynb", "07-evil"])
@pytest.mark.slow
def test_a_step_cannot_run_a_notebook_outside_the_notebooks_folder(tmp_path, spec):
    nb_dir = tmp_path / "nb"
    outside = tmp_path / "outside"
    for folder in (nb_dir / "sub", outside):
        folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    evil = nbformat.v4.new_notebook()
    evil.cells = [nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w').close()")]
    for path in (outside / "07-evil.ipynb", nb_dir / "sub" / "07-evil.ipynb"):
        nbformat.write(evil, path)
    (nb_dir / "07-evil.ipynb").symlink_to(outside / "07-evil.ipynb")  # a link out of the folder
    spec = spec.format(evil=outside / "07-evil.ipynb")
    cfg = write_config(tmp_path, f"name: evil\nsteps:\n  - notebook: '{spec}'\n")
    proc = cli("run", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--notebooks-dir", str(nb_dir))
    assert proc.returncode == 2
    assert "notebook" in one_error_line(proc)
    assert not marker.exists()


def test_only_numbered_notebooks_run(tmp_path):
    nb = nbformat.v4.new_notebook()
    nbformat.write(nb, tmp_path / "scratch.ipynb")
    nbformat.write(nb, tmp_path / "01-mine.ipynb")
    with pytest.raises(ConfigError, match="numbered"):
        plan.resolve_notebook("scratch.ipynb", tmp_path)
    assert plan.resolve_notebook("01", tmp_path).name == "01-mine.ipynb"  # a user folder's numbered notebook
