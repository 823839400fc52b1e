"""Child processes the package starts (llama.cpp server, JupyterLab, loopback servers): one way to stop them."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Ask ``proc`` to exit (SIGTERM), wait ``grace`` seconds, then kill it; a finished process is left alone.

    Why: a server that ignores SIGTERM (stuck in a request, or a child holding a port) must not keep a test
    run, a notebook or a CI job waiting forever, nor outlive it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
