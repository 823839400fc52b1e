"""A loopback chat server that speaks the OpenAI Chat Completions and Anthropic Messages APIs.

It lets tests and benchmarks drive the real ``openai``/``anthropic`` SDKs over real HTTP while injecting
faults (429 with Retry-After, 5xx, stalls) and fixed latency. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """One scripted reply: an HTTP status (200 = answer normally), optional headers, optional stall."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class ServerState:
    latency: float = 0.0
    faults: deque[Fault] = field(default_factory=deque)
    calls: list[dict[str, Any]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    reply: Any = None  # optional callable(prompt) -> reply text, e.g. a scripted judge; default answer_for


def answer_for(prompt: str) -> str:
    """Deterministic reply so tests can check that every answer belongs to its prompt."""
    return f"echo: {prompt}"


class _Handler(BaseHTTPRequestHandler):
    server: "LoopbackServer._Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "loopback", "object": "model"}]})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with state.lock:
            state.calls.append({"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
            state.call_times.append(time.monotonic())
            fault = state.faults.popleft() if state.faults else Fault()
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            time.sleep(state.latency + fault.delay)
            if fault.status != 200:
                self._send(fault.status, {"error": {"type": "injected", "message": f"injected {fault.status}"},
                                          "type": "error"}, fault.headers)
                return
            prompt = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
            if isinstance(prompt, list):
                prompt = "".join(part.get("text", "") for part in prompt)
            text = (state.reply or answer_for)(prompt)
            if self.path.rstrip("/").endswith("/messages"):
                self._send(200, {"id": "msg_loop", "type": "message", "role": "assistant", "model": body.get("model"),
                                 "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                 "stop_sequence": None, "usage": {"input_tokens": len(prompt.split()),
                                                                  "output_tokens": len(text.split())}})
            else:
                self._send(200, {"id": "chatcmpl-loop", "object": "chat.completion", "created": int(time.time()),
                                 "model": body.get("model"), "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                                           "total_tokens": len(prompt.split()) + len(text.split())}})
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with state.lock:
                state.in_flight -= 1

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class LoopbackServer:
    """``with LoopbackServer(latency=0.1) as srv: srv.base_url`` — serves until the block ends."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        state: ServerState

    def __init__(self, latency: float = 0.0, faults: list[Fault] | None = None, reply: Any = None):
        self.state = ServerState(latency=latency, faults=deque(faults or []), reply=reply)
        self._server = self._Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class LoopbackProcess:
    """The same server in its own process, so a benchmark's client does not share a GIL with it."""

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.proc: Any = None
        self.base_url = ""

    def __enter__(self) -> "LoopbackProcess":
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-m", "distill_kit.loopback", str(self.latency)],
                                     stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


if __name__ == "__main__":
    import sys

    with LoopbackServer(latency=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0) as _srv:
        print(_srv.base_url, flush=True)
        threading.Event().wait()
