"""``kill -9`` of ``distill-kit run`` mid-collection (issue #15, item 3): the kernel dies with its
runner, sends nothing after the kill, and across kills and resumes the requests paid twice are at most
the concurrency bound per kill (the ones in flight at the moment of the kill)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from distill_kit.paths import PROJECT_ROOT
from distill_kit.run.plan import load_run_config
from distill_kit.store import Store
from distill_kit.testing import LoopbackServer, answer_for

N, CONCURRENCY, KILLS = 200, 4, 3

BODY = """
import os
from distill_kit.collect import ChatRequest, collect_sync, outcome_line
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.store import Store
with open(os.path.join(run_dir, "kernel.pid"), "w") as fh:
    fh.write(str(os.getpid()))
cfg = ModelConfig(name="loop", provider="openai", model="loopback", base_url=url, concurrency=concurrency,
                  timeout=10, params=GenerationParams(max_tokens=8))
out = collect_sync(cfg, [ChatRequest.user(f"question {i}") for i in range(n)], Store(store_path), progress=False)
print(outcome_line("loop", out))
"""


def _notebook(nb_dir: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('url: str = ""\nn: int = 0\nconcurrency: int = 1\nrun_dir: str = ""\n'
                                     'store_path: str = ""\nseed: int = 0\n')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, nb_dir / "02-collect.ipynb")


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie is dead, just not reaped yet


@pytest.mark.slow
def test_kernel_dies_with_its_runner_and_a_kill_costs_at_most_the_requests_in_flight(tmp_path):
    nb_dir = tmp_path / "nb"
    _notebook(nb_dir)
    with LoopbackServer(latency=0.1) as srv:
        cfg = tmp_path / "kill.yaml"
        cfg.write_text(f"name: kill\nsteps:\n  - notebook: '02'\n    parameters: {{url: '{srv.base_url}', n: {N}, "
                       f"concurrency: {CONCURRENCY}}}\n")
        run_dir = tmp_path / "runs" / load_run_config(cfg).run_id()
        store = run_dir / "store.sqlite"
        args = [sys.executable, "-m", "distill_kit", "run", str(cfg), "--runs-dir", str(tmp_path / "runs"),
                "--notebooks-dir", str(nb_dir)]
        late_calls, kernel_lifetimes = [], []
        for k in range(KILLS):
            (run_dir / "kernel.pid").unlink(missing_ok=True)
            target = _stored(store) + 25
            runner = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while _stored(store) < target:
                assert runner.poll() is None, "the run ended before the kill"
                assert time.monotonic() < deadline, "collection never got going"
                time.sleep(0.02)
            kernel = int((run_dir / "kernel.pid").read_text())
            killed_at = time.monotonic()
            os.kill(runner.pid, signal.SIGKILL)  # the runner only, as `kill -9 <pid of distill-kit run>`
            runner.wait()
            while _alive(kernel) and time.monotonic() - killed_at < 5:
                time.sleep(0.005)
            kernel_lifetimes.append(time.monotonic() - killed_at)
            time.sleep(1.5)  # the old kernel went on sending for up to ~0.9 s
            with srv.state.lock:
                late_calls.append(sum(t > killed_at + 0.05 for t in srv.state.call_times))
        print(f"kernel lifetimes after kill: {[round(t, 3) for t in kernel_lifetimes]}, late calls: {late_calls}")
        assert all(t < 0.5 for t in kernel_lifetimes), kernel_lifetimes
        assert late_calls == [0] * KILLS, late_calls  # nothing sent once the runner was gone

        before, stored = len(srv.state.calls), _stored(store)
        final = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        assert "Traceback" not in final.stderr
        with Store(store) as s:
            assert s.count() == N and s.count(status="ok") == N
            texts = dict(s.frame().select("prompt", "text").iter_rows())
        assert texts == {f"question {i}": answer_for(f"question {i}") for i in range(N)}
        resent = len(srv.state.calls) - N
        assert len(srv.state.calls) - before == N - stored  # the resume sends only what is missing
        print(f"sent twice: {resent} (bound {CONCURRENCY * KILLS})")
        assert 0 <= resent <= CONCURRENCY * KILLS, resent  # at most the in-flight requests of each kill
