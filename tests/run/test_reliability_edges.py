"""The edges a user meets in ordinary use: a full disk, a read-only run or cache folder, a full disk under the
store while answers arrive, two runs of one config at once, a step that finished with stored errors.

Each ends in one ``error:`` line (no traceback) that says what to do, and loses nothing. The disk cases run on
a small tmpfs or a read-only bind mount where the machine allows (root), and as an injected ``OSError`` at the
same place everywhere (the fast tests). docs/reliability-edges.md lists them.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from distill_kit import html, paths
from distill_kit.config import ConfigError
from distill_kit.run import pipeline
from distill_kit.run.plan import RunConfig
from distill_kit.store import Record, Store, StoreFull
from distill_kit.summaries import atomic_write_text
from tests.helpers.loopback import run_cli
from tests.helpers.notebook_files import write_notebook

COMMON = 'run_dir = ""\nstore_path = ""\nseed = 0\n'


def one_error_line(out: str) -> str:
    """The run's output holds no traceback and exactly one ``error:`` line; that line."""
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out[-3000:]
    return errors[0]


# ------------------------------------------------------------------------------- the one line (fast)


@pytest.mark.parametrize("code,expect", [(errno.ENOSPC, "no space left on the device holding"),
                                         (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")])
def test_unwritable_line_names_the_folder_and_what_to_do(tmp_path: Path, code: int, expect: str) -> None:
    line = paths.oserror_line(OSError(code, os.strerror(code), str(tmp_path / "summary.json")))
    assert line and expect in line and str(tmp_path) in line and "run the same command again" in line
    assert "\n" not in line
    assert paths.oserror_line(OSError(errno.ENOENT, "No such file", str(tmp_path / "x"))) is None


def test_atomic_write_on_a_full_disk_names_the_file_keeps_the_old_one_and_leaves_no_temp(tmp_path: Path,
                                                                                          monkeypatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as write/fsync raise it: no file name

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic_write_text(target, "new\n")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_report_page_on_a_full_disk_leaves_no_report_tmp(tmp_path: Path, monkeypatch) -> None:
    page = html.Page(title="t", subtitle="s", sections=[])

    def full(self: Path, target: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(OSError) as err:
        html.write_page(page, tmp_path / "report.html", static_formats=())
    assert err.value.filename == str(tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []  # no report.tmp


class _Plan:
    output = Path("/runs/r/notebooks/03.ipynb")
    store = Path("/runs/r/store.sqlite")


class _KernelError(Exception):
    def __init__(self, ename: str, evalue: str) -> None:
        self.ename, self.evalue = ename, evalue


@pytest.mark.parametrize("ename,evalue,folder", [
    ("OSError", "[Errno 28] No space left on device: '/runs/r/summary/03.json'", "/runs/r/summary"),
    ("PermissionError", "[Errno 30] Read-only file system: '/cache/judge.pkl.tmp12'", "/cache"),
    ("StoreFull", ("[Errno 28] no space left on the device holding /runs/r: free space there and run the same "
                   "command again: '/runs/r/store.sqlite'"), "/runs/r"),
    ("OperationalError", "database or disk is full", "/runs/r"),
])
def test_a_kernel_side_full_disk_is_one_line_naming_the_folder(ename: str, evalue: str, folder: str) -> None:
    line = pipeline.unwritable_step(_KernelError(ename, evalue), _Plan())
    assert line and f"{folder}:" in line or f"{folder} " in line, line
    assert "run the same command again" in line
    assert pipeline.unwritable_step(_KernelError("ValueError", "bad input"), _Plan()) is None


def test_store_gives_its_reserve_to_answers_when_the_disk_fills(tmp_path: Path, monkeypatch) -> None:
    store = Store(tmp_path / "store.sqlite")
    store.hold_reserve()
    assert store.reserve and store.reserve.stat().st_size > 0
    real = store._write
    calls = []

    def write(sql: str, rows: list) -> None:
        calls.append(len(rows))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        real(sql, rows)

    monkeypatch.setattr(store, "_write", write)
    store.put(_record("a"))
    assert store.full and store.reserve is None and store.count() == 1  # written into the freed space
    assert not (tmp_path / "store.sqlite-reserve").exists()
    store.close()


def test_store_without_a_reserve_raises_one_line_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    store = Store(tmp_path / "store.sqlite")

    def write(sql: str, rows: list) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_write", write)
    with pytest.raises(StoreFull) as err:
        store.put(_record("a"))
    assert f"no space left on the device holding {tmp_path}:" in str(err.value) and "\n" not in str(err.value)
    store.close()


def _record(key: str, status: str = "ok") -> Record:
    return Record(key=key, model="m", provider="openai", messages=[{"role": "user", "content": key}], params={},
                  sample=0, status=status, text="x" if status == "ok" else None,
                  error=None if status == "ok" else "boom", attempts=1, usage_in=1, usage_out=1, cost=0.0,
                  latency=0.1, meta={})


def test_stored_errors_since_counts_only_the_errors_written_from_then(tmp_path: Path) -> None:
    from distill_kit.store import stored_errors_since

    with Store(tmp_path / "s.sqlite") as store:
        store.put(_record("old", "error"))
        t = time.time()
        time.sleep(0.01)
        store.put_many([_record("new", "error"), _record("fine")])
    assert stored_errors_since(tmp_path / "s.sqlite", t) == 1
    assert stored_errors_since(tmp_path / "none.sqlite", t) == 0


# ------------------------------------------------------------------- two runs of one config (fast)


def test_the_second_runner_says_one_line_before_any_estimate(tmp_path: Path) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01-first.ipynb", COMMON, "print(1)")
    cfg = RunConfig.model_validate({"name": "lock", "steps": [{"notebook": "01"}]})
    run_dir = tmp_path / "runs" / cfg.run_id()
    run_dir.mkdir(parents=True)
    held = pipeline.lock_run(run_dir)
    logs: list[str] = []
    try:
        with pytest.raises(ConfigError, match=f"run {cfg.run_id()} is already running in another process"):
            pipeline.run_pipeline(cfg, tmp_path / "runs", nb_dir, log=logs.append)
    finally:
        held.close()
    assert logs == [], logs  # no cost table computed from the store the first runner is writing


# ------------------------------------------------------------------------- disks, for real (slow)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (root only; skipped where the machine does not allow mounts)."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=24m", "tmpfs", str(where)):
        pytest.skip("cannot mount a tmpfs here (not root); the injected-OSError tests cover the same places")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` up, leaving about ``leave`` bytes; returns the filler file (delete it to free the space)."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    size = max(st.f_bavail * st.f_frsize - leave, 0)
    try:
        with open(filler, "wb") as fh:
            fh.write(b"\0" * size)
            while not leave:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass  # full
    return filler


FILL_THEN_WRITE = """
import os
from tests.helpers.contracts import record_open
record_open(run_dir, "01-fill", {"before": True})
with open(os.path.join(run_dir, "..", "..", "filler"), "wb") as fh:
    try:
        while True:
            fh.write(b"\\0" * 65536); fh.flush()
    except OSError:
        pass
record_open(run_dir, "01-fill", {"after": "x" * 200000})
"""


@pytest.mark.slow
def test_a_disk_that_fills_during_a_step_ends_in_one_line_and_the_same_command_resumes(small_disk: Path,
                                                                                       tmp_path: Path) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01-fill.ipynb", COMMON, FILL_THEN_WRITE)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: full\nsteps:\n  - notebook: '01'\n")
    runs = small_disk / "runs"
    args = ["run", str(cfg), "--runs-dir", str(runs), "--notebooks-dir", str(nb_dir)]
    first = run_cli(*args)
    assert first.returncode == 1, first.stderr
    line = one_error_line(first.stdout + first.stderr)
    run_dir = next(runs.iterdir())
    assert "no space left on the device holding" in line and str(run_dir) in line and "free space" in line, line
    assert not list(run_dir.rglob("*.tmp")), list(run_dir.rglob("*.tmp"))
    assert json.loads((run_dir / "state.json").read_text())["steps"]  # still valid JSON
    (small_disk / "filler").unlink()
    cfg.write_text("name: full\nsteps:\n  - notebook: '01'\n")
    write_notebook(nb_dir / "01-fill.ipynb", COMMON, "from tests.helpers.contracts import record_open\n"
                   "record_open(run_dir, '01-fill', {'after': True})")
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr


@pytest.mark.slow
def test_a_full_disk_under_the_runner_itself_is_one_line(small_disk: Path, tmp_path: Path) -> None:
    """The step runs, but the runner's own write of the executed notebook (300 kB of output) finds no room."""
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01-big.ipynb", COMMON, "print('x' * 300000)")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: full2\nsteps:\n  - notebook: '01'\n")
    runs = small_disk / "runs"
    args = ["run", str(cfg), "--runs-dir", str(runs), "--notebooks-dir", str(nb_dir)]
    runs.mkdir()
    filler = fill(small_disk, leave=150_000)
    first = run_cli(*args)
    assert first.returncode == 1, first.stdout + first.stderr
    line = one_error_line(first.stdout + first.stderr)
    assert "no space left on the device holding" in line and str(runs) in line, line
    run_dir = next(runs.iterdir())
    assert not list(run_dir.rglob("*.tmp"))
    filler.unlink()
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr


@pytest.mark.slow
def test_a_read_only_runs_folder_is_one_line(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    if os.geteuid() != 0 or not _mount("--bind", "-o", "ro", str(runs), str(runs)):
        pytest.skip("cannot make a read-only bind mount here (not root)")
    try:
        nb_dir = tmp_path / "nb"
        write_notebook(nb_dir / "01-first.ipynb", COMMON, "print(1)")
        cfg = tmp_path / "c.yaml"
        cfg.write_text("name: ro\nsteps:\n  - notebook: '01'\n")
        out = run_cli("run", str(cfg), "--runs-dir", str(runs), "--notebooks-dir", str(nb_dir))
    finally:
        subprocess.run(["umount", "-l", str(runs)], capture_output=True, check=False)
    assert out.returncode == 1
    line = one_error_line(out.stdout + out.stderr)
    assert f"{runs} is on a read-only file system" in line, line


@pytest.mark.slow
def test_a_read_only_cache_folder_is_one_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    if os.geteuid() != 0 or not _mount("--bind", "-o", "ro", str(cache), str(cache)):
        pytest.skip("cannot make a read-only bind mount here (not root)")
    try:
        nb_dir = tmp_path / "nb"
        write_notebook(nb_dir / "01-cache.ipynb", COMMON,
                       "from distill_kit import cache, paths\ncache.save(paths.cache_dir() / 'fitted.pkl', {'x': 1})")
        cfg = tmp_path / "c.yaml"
        cfg.write_text("name: rocache\nsteps:\n  - notebook: '01'\n")
        out = run_cli("run", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--notebooks-dir", str(nb_dir),
                      env={**os.environ, paths.CACHE_DIR_ENV: str(cache)})
    finally:
        subprocess.run(["umount", "-l", str(cache)], capture_output=True, check=False)
    assert out.returncode == 1
    line = one_error_line(out.stdout + out.stderr)
    assert f"{cache} is on a read-only file system" in line, line


@pytest.mark.slow
def test_a_disk_filling_under_the_store_while_answers_arrive_keeps_every_paid_answer(small_disk: Path) -> None:
    from distill_kit.collect import collect_sync
    from distill_kit.testing import LoopbackServer
    from tests.helpers.loopback import loopback_model, questions

    n = 400
    path = small_disk / "store.sqlite"
    with LoopbackServer(latency=0.02) as srv:
        model = loopback_model(srv.base_url, concurrency=8)
        store = Store(path)
        stop = threading.Event()

        def filler() -> None:
            # once answers are arriving, the disk fills up to its last 128 KiB, which the store's own writes
            # then use up. (A filler that went on writing after the store's first failed write could take the
            # reserve the store frees for the answers in flight: another writer racing for the last bytes, which
            # no reserve defends against; collect then says how many arrived answers it could not keep.)
            while not stop.is_set() and len(srv.state.calls) < 40:
                time.sleep(0.01)
            fill(small_disk, leave=128 << 10)

        t = threading.Thread(target=filler)
        t.start()
        try:
            with pytest.raises(StoreFull) as err:
                collect_sync(model, questions(n), store, progress=False)
        finally:
            stop.set()
            t.join()
        assert "no space left on the device holding" in str(err.value) and str(small_disk) in str(err.value)
        sent = len(srv.state.calls)
        assert store.full  # the answers in flight went into the reserve the store had set aside
        assert store.count() == sent, (store.count(), sent)  # every answer paid for is stored
        assert sent < n  # the run stopped; it did not go on sending what it could not keep
        store.close()
        (small_disk / "filler").unlink()
        with Store(path) as again:
            out = collect_sync(model, questions(n), again, progress=False)
        assert all(r.ok for r in out)
        assert len(srv.state.calls) == n  # nothing sent twice


# ------------------------------------------------------------ a step that finished with stored errors (slow)

COLLECT = """
from distill_kit.collect import ChatRequest, collect_sync, outcome_line
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.store import Store
cfg = ModelConfig(name="loop", provider="openai", model="loopback", base_url=url, concurrency=4, timeout=5,
                  max_retries=0, params=GenerationParams(max_tokens=8))
out = collect_sync(cfg, [ChatRequest.user(f"question {i}") for i in range(6)], Store(store_path), progress=False)
print(outcome_line("loop", out))
"""


@pytest.mark.slow
def test_a_step_with_stored_errors_is_run_again_for_those_requests_only(tmp_path: Path) -> None:
    from distill_kit.testing import Fault, LoopbackServer, prompt_of

    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "02-collect.ipynb", 'url: str = ""\nrun_dir: str = ""\nstore_path: str = ""\n', COLLECT)
    write_notebook(nb_dir / "03-after.ipynb", COMMON, "print('after')")
    with LoopbackServer() as srv:
        srv.inject_for("question 5", Fault.truncated(30))  # fails once, then answers
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"name: retry\nsteps:\n  - notebook: '02'\n    parameters: {{url: '{srv.base_url}'}}\n"
                       "  - notebook: '03'\n")
        args = ["run", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--notebooks-dir", str(nb_dir)]
        first = run_cli(*args)
        assert first.returncode == 0, first.stderr
        assert "1 request(s) failed and are stored as errors; the next run of this command retries them" in first.stderr
        assert len(srv.state.calls) == 6
        second = run_cli(*args)
        assert second.returncode == 0, second.stderr
        assert "02-collect: running again to retry its 1 stored error(s)" in second.stderr
        assert "Traceback" not in second.stdout + second.stderr
        sent = [prompt_of(c["body"]["messages"]) for c in srv.state.calls]
        assert len(sent) == 7 and sent[-1] == "question 5"  # only the failed request, nothing paid twice
        third = run_cli(*args)
        assert "02-collect: done earlier, skipped" in third.stderr and len(srv.state.calls) == 7
    store_file = next((tmp_path / "runs").glob("retry-*/store.sqlite"))
    with Store(store_file) as store:
        assert store.count(status="ok") == 6 and store.count(status="error") == 0


# ------------------------------------------------------------------------------------ Ctrl-C (slow)

SLOW_CELL = """
import os, time
open(os.path.join(run_dir, 'started'), 'w').close()
for i in range(600):
    print(i, flush=True)
    time.sleep(0.2)
"""


@pytest.mark.slow
def test_ctrl_c_during_a_step_is_one_line_exit_130_and_the_same_command_resumes(tmp_path: Path) -> None:
    """SIGINT to the runner's whole process group, as a terminal sends it on Ctrl-C: one line, no kernel
    traceback (nbclient's graceful shutdown of the busy kernel printed a ZMQError), and the run resumes."""
    import signal
    import sys

    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01-quick.ipynb", COMMON, "print('quick')")
    write_notebook(nb_dir / "02-slow.ipynb", COMMON, SLOW_CELL)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: ctrlc\nsteps:\n  - notebook: '01'\n  - notebook: '02'\n")
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "distill_kit", "run", str(cfg), "--runs-dir", str(runs), "--notebooks-dir", str(nb_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/started")):
            assert proc.poll() is None and time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "ZMQError" not in out and "[IPKernelApp]" not in out, out[-3000:]
    assert out.strip().splitlines()[-1] == "interrupted; run the same command again to resume"
    write_notebook(nb_dir / "02-slow.ipynb", COMMON, "print('now quick')")
    again = run_cli("run", str(cfg), "--runs-dir", str(runs), "--notebooks-dir", str(nb_dir))
    assert again.returncode == 0, again.stderr
    assert "01-quick: done earlier, skipped" in again.stderr and "02-slow: ok" in again.stderr
