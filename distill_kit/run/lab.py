"""`distill-kit lab` (and `make lab`): JupyterLab on the notebooks, on loopback, with a fresh token.

The kernels import this checkout (PYTHONPATH) and inherit ``DISTILL_KIT_DATA_DIR``, so a notebook opened here
reads the same data as ``distill-kit run``. Charts render offline in it (``distill_kit.display``). Nothing is
fetched from outside the machine: the project's Jupyter config folder (``jupyter/``: settings overrides that turn
off the news prompt and update check, and an HTML export that opens offline) is put on ``JUPYTER_CONFIG_PATH``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from distill_kit.processes import stop_process

HOST = "127.0.0.1"
DEFAULT_PORT = 8888


@dataclass(frozen=True)
class LabCommand:
    argv: list[str]
    env: dict[str, str]
    url: str
    port: int
    token: str


def free_port(start: int = DEFAULT_PORT, tries: int = 50) -> int:
    """The first port from ``start`` that nothing listens on (loopback); 0 means any free port."""
    for port in ([0] if start == 0 else range(start, start + tries)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port in {start}-{start + tries - 1}; pass --port")


def lab_command(notebooks_dir: Path, port: int | None = None, token: str | None = None,
                extra: list[str] | None = None) -> LabCommand:
    """The JupyterLab command line: loopback only, fixed port (no silent retry, so the URL printed is right)."""
    from distill_kit.paths import JUPYTER_DIR, PROJECT_ROOT

    port = free_port() if port is None else port
    token = token or secrets.token_hex(24)
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.ip={HOST}",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={notebooks_dir}",
            # nothing fetched from outside the machine: no news feed, no update check (the settings
            # overrides in jupyter/labconfig also turn off the prompt asking about them)
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers run as root; JupyterLab refuses without this
        argv.append("--allow-root")
    argv += list(extra or [])
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PROJECT_ROOT) not in parts:
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *parts])
    configs = [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    if str(JUPYTER_DIR) not in configs:  # settings overrides and the offline HTML export (jupyter/)
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(JUPYTER_DIR), *configs])
    return LabCommand(argv, env, f"http://{HOST}:{port}/lab?token={token}", port, token)


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """True once something accepts connections on ``port``; False if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.25)
    return False


def run_lab(notebooks_dir: Path, port: int | None = None, timeout: float = 120.0) -> int:
    """Start JupyterLab, print its URL with the token once it listens, and wait for it (Ctrl-C stops it)."""
    if not notebooks_dir.is_dir():
        print(f"error: no notebooks folder {notebooks_dir}", file=sys.stderr)
        return 2
    try:
        cmd = lab_command(notebooks_dir, port)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = os.environ.get("DISTILL_KIT_DATA_DIR")
    print(f"data: {data or 'not set (published files are downloaded into .cache/)'}", flush=True)
    proc = subprocess.Popen(cmd.argv, env=cmd.env)
    try:
        if not wait_listening(cmd.port, proc, timeout):
            code = proc.poll()
            stop_process(proc)
            print(f"error: JupyterLab did not start on {HOST}:{cmd.port}"
                  + (f" (exit {code})" if code is not None else f" within {timeout:.0f}s"), file=sys.stderr)
            return 1
        print(f"\nJupyterLab is running on the notebooks in {notebooks_dir}:\n    {cmd.url}\n"
              "Open that URL in a browser on this machine; Ctrl-C stops JupyterLab.\n", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        stop_process(proc, grace=15)
        return 130
