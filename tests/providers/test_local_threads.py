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


def test_the_command_line_uses_the_thread_count_for_prompts_and_generation():
    server = local.LocalServer(threads=3)
    cmd = server.command()
    assert cmd[cmd.index("--n_threads") + 1] == "3" and cmd[cmd.index("--n_threads_batch") + 1] == "3"
    assert local.LocalServer().threads == local.default_threads()


def test_a_model_config_names_its_threads():
    cfg = get_model("smollm2-local")
    assert cfg.threads is None  # the shipped config leaves it to default_threads
    assert cfg.model_copy(update={"threads": 2}).threads == 2


def test_ensure_server_starts_one_server_per_gguf_and_thread_count(monkeypatch):
    started: list[local.LocalServer] = []

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
    assert b.threads == local.default_threads() and b.n_ctx == 4096
    assert len(started) == (1 if local.default_threads() == 3 else 2)
