"""The fast loop's rule, enforced: a test not marked ``slow`` may not start a subprocess, a server, a kernel or a browser.

``pytest -m "not slow"`` is the developer's fast loop (about a minute). It stays fast only if every test that
starts something heavy carries ``@pytest.mark.slow``; this guard makes forgetting the marker a failure with one
clear line instead of a fast loop that quietly grows. What counts:

- a subprocess: anything through ``subprocess.Popen`` (``run``, ``check_output``, asyncio subprocesses,
  Jupyter kernels, Playwright's browser driver), ``os.system``, ``os.posix_spawn*``, ``os.fork*``;
- a server: any socket put into listening state (``socket.listen``: ``http.server``, ``asyncio.start_server``,
  uvicorn, the in-process loopback servers of :mod:`distill_kit.testing`);
- torch: its first import in the process (2 s alone, 7 s through sentence-transformers).

Connecting to a server is allowed (a refused connection is a fast test). The patches are installed once and
are inert unless a not-slow test is in one of its phases (setup, call, teardown).
"""

from __future__ import annotations

import asyncio
import importlib.abc
import os
import sys
import socket
import subprocess
from typing import Any, Callable

import pytest

MESSAGE = "starts a subprocess/server/kernel/browser or imports torch: mark it @pytest.mark.slow"


class Guard:
    """Which not-slow test is running now, and what it started that it should not have."""

    def __init__(self) -> None:
        self.active: str | None = None  # node id of the running not-slow test, None when unguarded
        self.caught: list[str] = []  # caught in the current phase, not reported yet
        self.stopped: list[str] = []  # caught in the current test and reported

    def check(self, what: str) -> None:
        if self.active is None:
            return
        self.caught.append(what)
        # Failed is a BaseException: an ``except Exception`` in the code under test does not swallow it
        raise pytest.fail.Exception(f"{MESSAGE} (it started {what})", pytrace=False)

    def message(self) -> str:
        return f"{MESSAGE} (it started {self.caught[0]})"


GUARD = Guard()


def contain() -> None:
    """After a test the guard stopped: an event loop that the stopped start left marked as running in this
    thread (Playwright's sync API does) is unmarked, so the one failure does not break later ``asyncio.run``s."""
    if GUARD.stopped and asyncio._get_running_loop() is not None:
        asyncio._set_running_loop(None)
    GUARD.stopped = []


class OneLine:
    """A failure report that is one line, in the failures section and in ``-q``'s short summary alike."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.reprcrash = self  # the short summary reads ``longrepr.reprcrash.message``
        self.message = text

    def toterminal(self, tw: Any) -> None:
        tw.line(self.text)

    def __str__(self) -> str:
        return self.text


def _short(args: Any, limit: int = 80) -> str:
    text = " ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _wrap(owner: Any, name: str, describe: Callable[..., str]) -> None:
    original = getattr(owner, name)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        GUARD.check(describe(*args, **kwargs))
        return original(*args, **kwargs)

    guarded.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, guarded)


class _TorchImport(importlib.abc.MetaPathFinder):
    """Sees the first ``import torch`` of the process (later ones are read from ``sys.modules``); finds nothing."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "torch":
            GUARD.check("an import of torch")
        return None


def install() -> None:
    """Patch the process- and server-starting calls once per test session."""
    sys.meta_path.insert(0, _TorchImport())
    _wrap(subprocess.Popen, "_execute_child", lambda self, args, *a, **k: f"a subprocess: {_short(args)}")
    _wrap(socket.socket, "listen", lambda self, *a, **k: f"a server listening on {self.getsockname()}")
    _wrap(os, "system", lambda command, *a, **k: f"a subprocess: {_short(command)}")
    for name in ("posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            _wrap(os, name, lambda path, argv, *a, **k: f"a subprocess: {_short(argv)}")
    for name in ("fork", "forkpty"):
        if hasattr(os, name):
            _wrap(os, name, lambda *a, **k: "a forked process")
