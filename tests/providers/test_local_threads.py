"""How many threads the embedded llama.cpp server gets (no server is started here)."""

from __future__ import annotations

import os

import pytest

from distill_kit.models import get_model
from distill_kit.providers import local


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (8, 7)])
def test_default_threads_leave_one_core_free(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert local.default_threads() == expected


@pytest.mark.parametrize(("idle", "cores", "expected"), [
    (2.0, 2, 2), (1.75, 2, 2),  # quiet: every core
    (1.0, 2, 1), (1.5, 2, 1),   # one CPU-bound job beside it (or most of one): one thread, no barrier stalls
    (0.0, 2, 1), (7.9, 8, 8), (4.2, 8, 4), (None, 2, 1), (None, 8, 7),  # unknown: one core fewer
])
def test_threads_follow_the_idle_cores(idle, cores, expected):
    assert local.threads_for(idle, cores) == expected


def test_idle_cores_are_sampled_from_proc_stat(monkeypatch):
    """Two snapshots of /proc/stat's cpu line: 150 of 300 jiffies idle or in iowait on 2 cores -> 1 idle core."""
    snapshots = iter([(1000, 5000), (1150, 5300)])
    monkeypatch.setattr(local, "cpu_times", lambda: next(snapshots))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert local.idle_cores(window_s=0) == pytest.approx(1.0)
    monkeypatch.setattr(local, "cpu_times", lambda: None)
    assert local.idle_cores(window_s=0) is None


def test_proc_stat_gives_idle_and_total_jiffies():
    times = local.cpu_times()
    if times is None:
        pytest.skip("no /proc/stat here")
    idle, total = times
    assert 0 <= idle <= total


def test_the_command_line_uses_the_thread_count_for_prompts_and_generation(monkeypatch):
    server = local.LocalServer(threads=3)
    cmd = server.command()
    assert cmd[cmd.index("--n_threads") + 1] == "3" and cmd[cmd.index("--n_threads_batch") + 1] == "3"
    assert not server.auto_threads
    # prompt logits only for the last token (the server's default computes the output layer for every one)
    assert cmd[cmd.index("--logits_all") + 1] == "false" and cmd[cmd.index("--flash_attn") + 1] == "true"
    monkeypatch.setattr(local, "idle_cores", lambda: 1.0)
    monkeypatch.setattr(local, "usable_cores", lambda: 2)
    auto = local.LocalServer()
    assert auto.auto_threads and auto.threads == 1 and auto.idle_at_start == 1.0


def test_a_model_config_names_its_threads():
    cfg = get_model("smollm2-local")
    assert cfg.threads is None  # the shipped config leaves it to the idle CPU at start
    assert cfg.model_copy(update={"threads": 2}).threads == 2


def test_ensure_server_starts_one_server_per_gguf_and_thread_count(monkeypatch):
    started: list[local.LocalServer] = []
    idle = iter([2.0, 1.0])  # the CPU gets busy after the first automatic server started
    monkeypatch.setattr(local, "idle_cores", lambda: next(idle))
    monkeypatch.setattr(local, "usable_cores", lambda: 2)

    def fake_start(self):  # no process: only what the server would be started with
        self.proc = type("Running", (), {"poll": staticmethod(lambda: None)})()
        started.append(self)
        return self

    monkeypatch.setattr(local.LocalServer, "start", fake_start)
    monkeypatch.setattr(local, "_servers", {})
    a = local.ensure_server(None, 3)
    assert local.ensure_server(None, 3) is a and len(started) == 1
    assert a.threads == 3 and a.n_ctx == 4096  # the thread count is not mistaken for another setting
    b = local.ensure_server()
    assert b.threads == 2 and b.n_ctx == 4096 and len(started) == 2
    assert local.ensure_server() is b and len(started) == 2  # reused, not sampled again: no second model
    assert local.ensure_server(None, 2) is b and local.ensure_server(None, 1) is not a  # named counts: by count
