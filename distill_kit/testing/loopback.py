"""The fault-injecting loopback server (in-process, or in its own process): HTTP errors with Retry-After, stalls,
connection resets, truncated or non-UTF-8 bodies, odd JSON shapes, a fixed-window rate limit.

Why asyncio + h11 rather than ``http.server``: a ``ThreadingHTTPServer`` has a listen backlog of 5 and a thread
per connection, so above ~32 concurrent clients it reset connections and measured itself, not the client. Here
one event loop serves every connection (a stall costs a timer, not a thread) and the listen backlog is
:data:`~distill_kit.testing.wire.BACKLOG`; h11 (the HTTP/1.1 state machine under httpx) does the parsing."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import h11

from distill_kit.processes import stop_process
from distill_kit.testing.wire import (
    BACKLOG,
    BoundSocket,
    answer_for,
    anthropic_reply,
    error_body,
    openai_reply,
    prompt_of,
)


def _presented_key(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    return auth.removeprefix("Bearer ").strip() or headers.get("x-api-key", "")



@dataclass
class Fault:
    """One scripted reply: an HTTP status (200 = answer normally), optional headers, optional stall.

    The other fields break a 200 answer the ways real servers and proxies do: ``reset`` closes the
    connection without a reply (TCP RST), ``truncate`` sends only the first N bytes of the answer's
    JSON (with a matching content-length, so HTTP is fine and JSON is not), ``body`` sends these exact
    bytes (e.g. not UTF-8), ``payload`` sends this JSON object instead of the normal answer (odd shapes:
    ``content: null``, no ``usage``, unknown blocks; see :func:`openai_reply` / :func:`anthropic_reply`).
    ``echo_key`` repeats the key the client presented in the error message (status != 200) or the answer.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    truncate: int | None = None
    body: bytes | None = None
    payload: Any = None
    echo_key: bool = False  # put the presented API key in the reply (error message or answer), as leaky proxies do

    @classmethod
    def truncated(cls, keep: int = 40) -> "Fault":
        return cls(truncate=keep)

    @classmethod
    def not_utf8(cls) -> "Fault":
        return cls(body=b'{"id": "x", "choices": [{"message": {"content": "\xff\xfe caf\xe9"}}]}')

    @classmethod
    def connection_reset(cls) -> "Fault":
        return cls(reset=True)


@dataclass
class RateLimit:
    """At most ``requests`` per ``window`` seconds (fixed windows); the rest get 429.

    Every answer carries ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and
    ``x-ratelimit-reset-requests`` (OpenAI's names and duration format, e.g. ``"850ms"``); a 429 adds
    ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``. The limit is per minute, as OpenAI's
    (and the zoo's) is and as :mod:`distill_kit.ratelimit` paces by: 4 per 0.5 s is advertised as 480; the
    remaining count and the reset are the current window's.
    """

    requests: int
    window: float = 1.0
    _start: float = 0.0
    _used: int = 0

    def take(self, now: float) -> tuple[bool, dict[str, str]]:
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        allowed = self._used < self.requests
        if allowed:
            self._used += 1
        reset = max(0.0, self._start + self.window - now)
        headers = {"x-ratelimit-limit-requests": str(round(self.requests * 60 / self.window)),
                   "x-ratelimit-remaining-requests": str(self.requests - self._used),
                   "x-ratelimit-reset-requests": _duration(reset)}
        if not allowed:
            headers |= {"retry-after": str(max(1, math.ceil(reset))), "retry-after-ms": str(int(reset * 1000))}
        return allowed, headers


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``"20ms"``, ``"1.5s"``, ``"1m0s"``."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


@dataclass
class ServerState:
    latency: float = 0.0
    faults: deque[Fault] = field(default_factory=deque)
    prompt_faults: dict[str, deque[Fault]] = field(default_factory=dict)
    sticky_faults: dict[str, Fault] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)
    rate_limited: int = 0
    resets: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    reply: Any = None  # optional callable(prompt) -> reply text, e.g. a scripted judge; default answer_for

    def next_fault(self, prompt: str) -> Fault:
        """A fault scripted for this prompt first, then the next one in the global queue, else none."""
        if prompt in self.sticky_faults:
            return self.sticky_faults[prompt]
        queue = self.prompt_faults.get(prompt)
        if queue:
            return queue.popleft()
        return self.faults.popleft() if self.faults else Fault()


def _normal_answer(path: str, body: dict[str, Any], prompt: str, reply: Any = None) -> dict[str, Any]:
    """The answer to ``prompt`` in the API the path names, with one token per word as usage."""
    text = (reply or answer_for)(prompt)
    model, n_in, n_out = body.get("model") or "loopback", len(prompt.split()), len(text.split())
    if path.rstrip("/").endswith("/messages"):
        return anthropic_reply(text, model=model, usage={"input_tokens": n_in, "output_tokens": n_out})
    return openai_reply(text, model=model, usage=(n_in, n_out))


class _Engine:
    """The asyncio side: one task per connection, HTTP/1.1 keep-alive through h11."""

    def __init__(self, state: ServerState):
        self.state = state
        self.tasks: set[asyncio.Task] = set()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        with self.state.lock:
            self.state.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                if not await self._respond(conn, writer, request, body):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:  # server shutdown; ending quietly keeps asyncio from logging it
            pass
        finally:
            if task is not None:
                self.tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request | None, bytes]:
        request, body = None, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:  # ConnectionClosed or PAUSED
                return None, b""

    async def _respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request,
                       raw: bytes) -> bool:
        """Answer one request; False when the connection was dropped on purpose."""
        state = self.state
        path = request.target.decode("latin-1")
        if request.method == b"GET":
            await self._send(conn, writer, 200, json.dumps({"object": "list", "data": [
                {"id": "loopback", "object": "model"}]}).encode())
            return True
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            await self._send(conn, writer, 400, json.dumps(error_body("invalid_request", "body is not JSON")).encode())
            return True
        prompt = prompt_of(body.get("messages") if isinstance(body, dict) else None)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        now = time.monotonic()
        with state.lock:
            state.calls.append({"path": path, "body": body, "headers": headers, "time": now})
            state.call_times.append(now)
            fault = state.next_fault(prompt)
            limited, limit_headers = (False, {})
            if state.rate_limit is not None:
                allowed, limit_headers = state.rate_limit.take(now)
                limited = not allowed
                state.rate_limited += limited
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.latency + fault.delay)
            if limited:
                await self._send(conn, writer, 429, json.dumps(
                    error_body("rate_limit_error", "rate limit reached (loopback)")).encode(), limit_headers)
                return True
            if fault.reset:
                with state.lock:
                    state.resets += 1
                _reset(writer)
                return False
            key = _presented_key(headers) if fault.echo_key else ""
            if fault.status != 200:
                message = f"injected {fault.status}" + (f": incorrect API key provided: {key}" if key else "")
                await self._send(conn, writer, fault.status, json.dumps(error_body("injected", message)).encode(),
                                 {**limit_headers, **fault.headers})
                return True
            if fault.body is not None:
                data = fault.body
            else:
                payload = fault.payload if fault.payload is not None else _normal_answer(
                    path, body, prompt + (f" (your key is {key})" if key else ""), self.state.reply)
                data = json.dumps(payload).encode()
                if fault.truncate is not None:
                    data = data[: fault.truncate]
            await self._send(conn, writer, 200, data, {**limit_headers, **fault.headers})
            return True
        finally:
            with state.lock:
                state.in_flight -= 1

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, data: bytes,
                    headers: dict[str, str] | None = None) -> None:
        head = [("content-type", "application/json"), ("content-length", str(len(data)))]
        head += [(k, v) for k, v in (headers or {}).items() if k.lower() not in ("content-type", "content-length")]
        out = conn.send(h11.Response(status_code=status, headers=head))
        out += conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the client sees a connection reset, as from a crashed proxy."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class LoopbackServer(BoundSocket):
    """``with LoopbackServer(latency=0.1) as srv: srv.base_url`` — serves until the block ends.

    The socket is bound (with a :data:`BACKLOG`-deep listen queue) when the object is made; an
    event loop on a daemon thread serves it inside the ``with`` block.
    """

    def __init__(self, latency: float = 0.0, faults: list[Fault] | None = None, *,
                 rate_limit: RateLimit | None = None, backlog: int = BACKLOG, reply: Any = None):
        super().__init__(0, backlog)
        self.state = ServerState(latency=latency, faults=deque(faults or []), rate_limit=rate_limit, reply=reply)
        self._engine = _Engine(self.state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next requests, whatever their prompt."""
        with self.state.lock:
            self.state.faults.extend(faults)

    def inject_for(self, prompt: str, *faults: Fault, always: bool = False) -> None:
        """Faults for the requests whose last user message is ``prompt`` (in order), so a fault hits
        the same prompt whatever the arrival order; ``always`` repeats the (single) fault forever."""
        with self.state.lock:
            if always:
                if len(faults) != 1:
                    raise ValueError("always=True takes exactly one fault")
                self.state.sticky_faults[prompt] = faults[0]
            else:
                self.state.prompt_faults.setdefault(prompt, deque()).extend(faults)

    def __enter__(self) -> "LoopbackServer":
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._engine.connection, sock=self._sock, backlog=BACKLOG)
            started.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="loopback-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("loopback server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in list(self._engine.tasks):
                task.cancel()
            await asyncio.gather(*self._engine.tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        self._sock.close()
        self._loop = None



class LoopbackProcess:
    """The loopback server in its own process (``python -m distill_kit.testing --loopback``), so a benchmark's
    client does not share a GIL with it. Faults cannot be scripted across the process boundary."""

    def __init__(self, latency: float = 0.0, rate_limit: RateLimit | None = None):
        self.latency = latency
        self.rate_limit = rate_limit
        self.proc: Any = None
        self.root_url = ""
        self.base_url = ""

    def __enter__(self) -> "LoopbackProcess":
        args = [sys.executable, "-m", "distill_kit.testing", "--loopback", "--latency", str(self.latency)]
        if self.rate_limit is not None:
            args += ["--rate-limit", str(self.rate_limit.requests), "--window", str(self.rate_limit.window)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.root_url = self.proc.stdout.readline().strip()
        self.base_url = f"{self.root_url}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)

