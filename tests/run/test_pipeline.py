"""Batch runner: config validation, secrets, resume, failure handling (tiny synthetic notebooks)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import string
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from distill_kit.config import ConfigError
from distill_kit.paths import PROJECT_ROOT
from distill_kit.run import pipeline, plan
from distill_kit.run.parameters import read_parameters
from distill_kit.run.pipeline import run_pipeline
from distill_kit.run.plan import RunConfig, load_run_config
from tests.helpers.notebook_files import write_notebook

# ---------------------------------------------------------------- helpers


COMMON = 'run_dir = ""\nstore_path = ""\nseed = 0\n'


def make_notebooks(nb_dir: Path) -> None:
    write_notebook(
        nb_dir / "01-first.ipynb",
        COMMON + "n = 3\n",
        "from tests.helpers.contracts import record_open\nimport numpy as np\n"
        "record_open(run_dir, '01-first', {'n': n, 'mean': np.float64(0.5), 'seed': seed})\nprint('first done')",
    )
    write_notebook(
        nb_dir / "02-second.ipynb",
        COMMON + 'flag = ""\n',
        "import os, time\nfrom tests.helpers.contracts import record_open\n"
        "open(os.path.join(run_dir, 'second-started'), 'w').close()\n"
        "if flag and os.path.exists(flag):\n    time.sleep(120)\n"
        "record_open(run_dir, '02-second', {'ok': True})",
    )


def write_chart_notebook(nb_dir: Path) -> None:
    write_notebook(nb_dir / "05-chart.ipynb", COMMON,
                   "import altair as alt\nalt.Chart(alt.Data(values=[{'x': 1}])).mark_point().encode(x='x:Q')")


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def workspace(tmp_path: Path):
    nb_dir = tmp_path / "nb"
    make_notebooks(nb_dir)
    return tmp_path, nb_dir


# ---------------------------------------------------------------- config


def test_config_errors_are_one_line(tmp_path: Path):
    bad = write_config(tmp_path / "bad.yaml", "name: x\nsteps: []\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(bad)
    assert "steps" in str(err.value) and "\n" not in str(err.value)
    typo = write_config(tmp_path / "typo.yaml", "name: x\nsetps: [{notebook: '01'}]\n")
    with pytest.raises(ConfigError, match="setps"):
        load_run_config(typo)
    yaml_err = write_config(tmp_path / "y.yaml", "name: [x\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_run_config(yaml_err)
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "params",
    [
        "{api_key: abc}",
        "{openai_api_key: abcdefgh}",
        "{judge: {access_token: x}}",
        "{note: 'sk-" + "abcdefghijklmnopqrstuvwxyz123456'}",  # split so no key-shaped literal is committed
        "{models: ['ghp_abcdefghijklmnopqrstuvwxyz0123']}",
    ],
)
def test_config_rejects_secret_parameters(tmp_path: Path, params: str):
    cfg = write_config(tmp_path / "s.yaml", f"name: x\nsteps:\n  - notebook: '01'\n    parameters: {params}\n")
    with pytest.raises(ConfigError, match="secret|API key"):
        load_run_config(cfg)


def test_config_rejects_value_equal_to_secret_env(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plain-looking-value-123")
    cfg = write_config(tmp_path / "s.yaml", "name: x\nparameters: {judge: plain-looking-value-123}\nsteps: [{notebook: '01'}]\n")
    with pytest.raises(ConfigError, match="API key"):
        load_run_config(cfg)


def test_config_allows_key_env_names_and_token_counts(tmp_path: Path):
    cfg = write_config(
        tmp_path / "ok.yaml",
        "name: ok\nparameters: {api_key_env: OPENAI_API_KEY, max_tokens: 64}\nsteps: [{notebook: '01'}]\n",
    )
    assert load_run_config(cfg).parameters["max_tokens"] == 64


def test_run_id_is_stable_and_tracks_parameters():
    a = RunConfig.model_validate({"name": "r", "steps": [{"notebook": "01", "parameters": {"n": 1}}]})
    b = RunConfig.model_validate({"name": "r", "description": "other", "steps": [{"notebook": "01", "parameters": {"n": 1}}]})
    c = RunConfig.model_validate({"name": "r", "steps": [{"notebook": "01", "parameters": {"n": 2}}]})
    assert a.run_id() == b.run_id() and a.run_id().startswith("r-")
    assert a.run_id() != c.run_id()


def test_notebook_resolution(workspace):
    _, nb_dir = workspace
    assert plan.resolve_notebook("01", nb_dir).name == "01-first.ipynb"
    assert plan.resolve_notebook("02-second", nb_dir).name == "02-second.ipynb"
    with pytest.raises(ConfigError, match="no such notebook"):
        plan.resolve_notebook("09", nb_dir)


def test_shipped_configs_validate_and_match_notebook_parameters(tmp_path: Path):
    for name in ("demo", "paper", "ci-small"):
        cfg = load_run_config(name)  # a bare name resolves to configs/runs/<name>.yaml
        assert cfg.steps[-1].notebook.startswith("06"), f"{name} should end with the report"
        plans = plan.plan_run(cfg, tmp_path)  # resolves notebooks, rejects unknown parameters and wrong types
        for p in plans:
            assert set(p.parameters) <= set(read_parameters(p.source).names), p.name
            assert p.parameters.get("store_path", "store.sqlite").endswith("store.sqlite")


# ---------------------------------------------------------------- running


@pytest.mark.slow
def test_run_skip_and_rerun_on_change(workspace):
    tmp, nb_dir = workspace
    write_chart_notebook(nb_dir)
    cfg = RunConfig.model_validate({"name": "t", "seed": 5, "steps": [{"notebook": "01", "parameters": {"n": 4}},
                                                                     {"notebook": "05"}, {"notebook": "02"}]})
    logs: list[str] = []
    res = run_pipeline(cfg, tmp / "runs", nb_dir, log=logs.append)
    assert res.ran == ["01-first", "05-chart", "02-second"]
    summary = json.loads(res.summary.read_text())
    assert summary["steps"]["01-first"] == {"version": 1, "n": 4, "mean": 0.5, "seed": 5}
    page = (res.run_dir / "html" / "05-chart.html").read_text()
    assert "data:image/svg+xml" in page  # batch kernels render Altair as static SVG
    assert not re.search(r'<script[^>]*src="https?://', page), "rendered notebook loads scripts from the network"
    executed = nbformat.read(res.run_dir / "notebooks" / "01-first.ipynb", as_version=4)
    injected = "".join(c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "run_dir" in injected and "store.sqlite" in injected

    res2 = run_pipeline(cfg, tmp / "runs", nb_dir, log=logs.append)
    assert res2.ran == [] and res2.skipped == ["01-first", "05-chart", "02-second"]

    # editing a notebook reruns it (and any step after it, which may read its outputs)
    nb = nbformat.read(nb_dir / "02-second.ipynb", as_version=4)
    nb.cells[1].source += "\nprint('edited')"
    nbformat.write(nb, nb_dir / "02-second.ipynb")
    res3 = run_pipeline(cfg, tmp / "runs", nb_dir, log=logs.append)
    assert res3.skipped == ["01-first", "05-chart"] and res3.ran == ["02-second"]


@pytest.mark.slow
def test_failed_notebook_stops_with_one_line_error(workspace):
    tmp, nb_dir = workspace
    write_notebook(nb_dir / "03-broken.ipynb", COMMON, "raise ValueError('model zzz is not in the store')")
    cfg = RunConfig.model_validate({"name": "f", "steps": [{"notebook": "01"}, {"notebook": "03"}, {"notebook": "02"}]})
    with pytest.raises(pipeline.StepFailed) as err:
        run_pipeline(cfg, tmp / "runs", nb_dir, log=lambda m: None)
    msg = str(err.value)
    assert "\n" not in msg
    assert "03-broken.ipynb" in msg and "ValueError: model zzz is not in the store" in msg
    run_dir = tmp / "runs" / cfg.run_id()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["steps"]["01-first"]["status"] == "ok"
    assert state["steps"]["03-broken"]["status"] == "failed"
    assert "02-second" not in state["steps"]
    assert (run_dir / "notebooks" / "03-broken.ipynb").is_file()  # kept for inspection
    assert json.loads((run_dir / "summary.json").read_text())["steps"]["01-first"]["n"] == 3


def _cli(args: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distill_kit", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


@pytest.mark.slow
def test_cli_bad_config_exit_code(tmp_path: Path):
    cfg = write_config(tmp_path / "bad.yaml", "name: 'bad name!'\nsteps: [{notebook: '01'}]\n")
    proc = _cli(["run", str(cfg)])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = [line for line in out.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:") and "name" in lines[0]


@pytest.mark.slow
def test_kill_mid_run_then_resume(workspace):
    tmp, nb_dir = workspace
    flag = tmp / "slow.flag"
    flag.touch()
    cfg = write_config(
        tmp / "k.yaml",
        f"name: kill\nsteps:\n  - notebook: '01'\n  - notebook: '02'\n    parameters: {{flag: '{flag}'}}\n",
    )
    args = ["run", str(cfg), "--runs-dir", str(tmp / "runs"), "--notebooks-dir", str(nb_dir)]
    proc = _cli(args)
    run_dir = tmp / "runs" / load_run_config(cfg).run_id()
    deadline = time.monotonic() + 90
    while not (run_dir / "second-started").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "second step never started"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, like a lost terminal
    proc.wait(timeout=30)
    first_nb = run_dir / "notebooks" / "01-first.ipynb"
    mtime = first_nb.stat().st_mtime_ns
    state = json.loads((run_dir / "state.json").read_text())
    assert state["steps"]["01-first"]["status"] == "ok"
    assert state["steps"]["02-second"]["status"] == "running"

    flag.unlink()
    proc2 = _cli(args)
    out, _ = proc2.communicate(timeout=120)
    assert proc2.returncode == 0, out
    assert "01-first: done earlier, skipped" in out
    assert "02-second: ok" in out
    assert "IPKernelApp" not in out and "WARNING" not in out  # kernel log noise stays out of batch output
    assert first_nb.stat().st_mtime_ns == mtime
    assert json.loads((run_dir / "summary.json").read_text())["steps"]["02-second"] == {"version": 1, "ok": True}


@pytest.mark.slow
def test_secret_printed_by_notebook_is_redacted(workspace, monkeypatch):
    tmp, nb_dir = workspace
    key = "sk-test-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30))
    monkeypatch.setenv("OPENAI_API_KEY", key)
    write_notebook(
        nb_dir / "04-leaky.ipynb",
        COMMON,
        "import os\nfrom tests.helpers.contracts import record_open\nprint('oops', os.environ['OPENAI_API_KEY'])\n"
        "record_open(run_dir, '04-leaky', {'echo': os.environ['OPENAI_API_KEY']})",
    )
    cfg = RunConfig.model_validate({"name": "leak", "steps": [{"notebook": "01"}, {"notebook": "04"}]})
    res = run_pipeline(cfg, tmp / "runs", nb_dir, log=lambda m: None)
    files = [p for p in res.run_dir.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for p in files:
        assert key.encode() not in p.read_bytes(), f"key leaked into {p}"
    assert "[REDACTED]" in (res.run_dir / "notebooks" / "04-leaky.ipynb").read_text()


@pytest.mark.slow
def test_secret_in_a_failing_step_is_redacted(workspace, monkeypatch):
    tmp, nb_dir = workspace
    key = "sk-test-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30))
    monkeypatch.setenv("OPENAI_API_KEY", key)
    write_notebook(nb_dir / "04-fails.ipynb", COMMON, "import os\nraise ValueError(os.environ['OPENAI_API_KEY'])")
    cfg = RunConfig.model_validate({"name": "leak-fail", "steps": [{"notebook": "04"}]})
    with pytest.raises(pipeline.StepFailed) as err:
        run_pipeline(cfg, tmp / "runs", nb_dir, log=lambda m: None)
    assert key not in str(err.value) and "ValueError" in str(err.value)
    run_dir = tmp / "runs" / cfg.run_id()
    for p in (p for p in run_dir.rglob("*") if p.is_file()):
        assert key.encode() not in p.read_bytes(), f"key leaked into {p}"


def test_unknown_step_parameter_is_an_error_but_run_wide_ones_are_filtered(workspace):
    tmp, nb_dir = workspace
    typo = RunConfig.model_validate({"name": "t", "steps": [{"notebook": "01", "parameters": {"nn": 4}}]})
    with pytest.raises(ConfigError, match="unknown parameter.*nn.*declares: n, run_dir"):
        plan.plan_run(typo, tmp / "runs", nb_dir)
    shared = RunConfig.model_validate({"name": "t", "parameters": {"n": 9, "flag": "x"}, "steps": [{"notebook": "01"}, {"notebook": "02"}]})
    p1, p2 = plan.plan_run(shared, tmp / "runs", nb_dir)
    assert p1.parameters["n"] == 9 and "flag" not in p1.parameters
    assert p2.parameters["flag"] == "x" and "n" not in p2.parameters


def test_a_notebook_gets_only_the_parameters_it_declares(tmp_path: Path):
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01-bare.ipynb", "n: int = 1\n", "print(n)")
    write_notebook(nb_dir / "02-all.ipynb", COMMON + 'executor: str = "local"\n', "print(run_dir)")
    cfg = RunConfig.model_validate({"name": "t", "seed": 3, "parameters": {"n": 2}, "steps": [{"notebook": "01"}, {"notebook": "02"}]})
    bare, full = plan.plan_run(cfg, tmp_path / "runs", nb_dir)
    assert bare.parameters == {"n": 2}  # no run_dir, store_path, seed or executor it would not read
    assert set(full.parameters) == {"run_dir", "store_path", "seed", "executor"} and full.parameters["seed"] == 3


def test_second_runner_on_same_run_is_refused(workspace):
    tmp, nb_dir = workspace
    cfg = RunConfig.model_validate({"name": "lock", "steps": [{"notebook": "01"}]})
    run_dir = tmp / "runs" / cfg.run_id()
    run_dir.mkdir(parents=True)
    held = pipeline.lock_run(run_dir)
    try:
        with pytest.raises(ConfigError, match="already running"):
            run_pipeline(cfg, tmp / "runs", nb_dir, log=lambda m: None)
    finally:
        held.close()


def test_config_rejects_secret_env_value_inside_longer_string(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "zz-unusual-key-98765")
    cfg = write_config(tmp_path / "s.yaml", "name: x\nsteps:\n  - notebook: '01'\n    parameters: {hdr: 'X zz-unusual-key-98765'}\n")
    with pytest.raises(ConfigError, match="API key"):
        load_run_config(cfg)


@pytest.mark.slow
def test_cli_plan_lists_steps(workspace):
    tmp, nb_dir = workspace
    cfg = write_config(tmp / "p.yaml", "name: plan\nsteps: [{notebook: '02'}, {notebook: '01'}]\n")
    proc = _cli(["plan", str(cfg), "--notebooks-dir", str(nb_dir), "--runs-dir", str(tmp / "runs")])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"run id: {load_run_config(cfg).run_id()}" in out
    assert out.index("02-second.ipynb") < out.index("01-first.ipynb")
    assert not (tmp / "runs").exists()  # planning writes nothing


@pytest.mark.slow
def test_batch_kernels_render_altair_as_svg_even_after_a_find_spec_probe():
    """Libraries probe ``find_spec("altair")`` before anything imports it (notebook 05's imports do);
    the hook must still catch the real import, or executed notebooks load Vega from a CDN."""
    import subprocess
    import sys as _sys

    code = ("from distill_kit.run.pipeline import batch_kernel_setup; batch_kernel_setup()\n"
            "import importlib.util; assert importlib.util.find_spec('altair') is not None\n"
            "import altair as alt; print(alt.renderers.active, alt.theme.active)\n"
            "from distill_kit.display import waiting; print(int(waiting('svg')))\n")
    out = subprocess.run([_sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["svg", "distill_kit_static", "0"]


def test_the_runner_notes_upstream_steps_a_run_leaves_out():
    """Each step's upstream steps are declared once (its contract); the runner names those a run leaves out,
    unless an earlier run in the same folder finished them."""
    steps = ["03-identity-scores", "04-response-similarity", "06-report", "01-first"]  # 01-first: no contract
    assert pipeline.upstream_notes(steps, {"steps": {}}) == [
        "note: 03-identity-scores also reads the output of 02-collect-responses, which this run does not include",
        "note: 04-response-similarity also reads the output of 02-collect-responses, which this run does not include",
        "note: 06-report also reads the output of 02-collect-responses, 05-embed-and-cluster, which this run does "
        "not include"]
    done = {"steps": {"02-collect-responses": {"status": "ok"}, "05-embed-and-cluster": {"status": "failed"}}}
    assert pipeline.upstream_notes(steps, done) == [
        "note: 06-report also reads the output of 05-embed-and-cluster, which this run does not include"]
