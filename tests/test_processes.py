"""Stopping child processes: polite first, then firm."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from distill_kit.processes import stop_process

pytestmark = pytest.mark.slow  # each test starts a child process


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    t0 = time.monotonic()
    stop_process(proc, grace=0.5)
    assert proc.returncode == -9 and time.monotonic() - t0 < 5


def test_sigterm_suffices_and_a_finished_process_is_left_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(proc)
    assert proc.returncode == -15
    stop_process(proc)  # already finished: nothing to do
    stop_process(None)
