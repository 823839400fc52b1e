"""Loopback API servers: test a model config, a client or the paper's whole protocol on this machine, offline.

Public, because users test their configs against them too. Both servers speak the OpenAI Chat Completions and
Anthropic Messages APIs over real HTTP on 127.0.0.1 only, so the real ``openai`` / ``anthropic`` SDKs (and
anything built on them) talk to them unchanged:

- :class:`LoopbackServer` (in-process; :class:`LoopbackProcess` runs it in its own process): answers every
  prompt with :func:`answer_for` (or a ``reply`` callable) and injects :class:`Fault` s -- HTTP errors with
  Retry-After, stalls, connection resets, truncated or non-UTF-8 bodies, odd JSON shapes (built with
  :func:`openai_reply` / :func:`anthropic_reply`) -- plus a fixed-window :class:`RateLimit` that answers 429
  with the ``x-ratelimit-*`` headers OpenAI sends. For clients' error handling and load.
- :class:`ZooServer` (the API zoo; :class:`Zoo` is its ASGI app, :class:`ZooConfig` its knobs): answers as
  the paper's models and judges from the published data (:func:`paper_answer`), speaks both batch APIs, and
  can enforce a token-bucket request rate. For running ``configs/runs/paper.yaml`` at its scale offline::

      python -m distill_kit.testing --port 8765 &      # serves the zoo; prints http://127.0.0.1:8765
      distill-kit run paper --models-overlay configs/overlays/zoo.yaml

  ``python -m distill_kit.testing --help`` lists the options (``--echo``: cheap fixed answers for benchmarks;
  ``--loopback``: serve the fault-injecting loopback server instead).

Both read requests the same way (:func:`prompt_of`: the last user message) and build replies with the same
two functions, so a body the zoo sends is one the loopback server can be scripted to send.

Why the loopback server is asyncio + h11 rather than ``http.server``: a ``ThreadingHTTPServer`` has a listen
backlog of 5 and a thread per connection, so above ~32 concurrent clients it reset connections and measured
itself, not the client. Here one event loop serves every connection (a stall costs a timer, not a thread) and
the listen backlog is :data:`BACKLOG`; h11 (the HTTP/1.1 state machine under httpx) does the parsing. The zoo
needs routing, multipart uploads and many endpoints, so it is a Starlette app on uvicorn, on a socket bound
the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import email.parser
import hashlib
import io
import json
import math
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache, cached_property
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable

import h11

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

from distill_kit import datasets
from distill_kit.ice.judges import rule_verdict, truth_for
from distill_kit.processes import stop_process

BACKLOG = 2048  # the kernel caps it at net.core.somaxconn (4096 on current Linux)


# ---------------------------------------------------------------- requests and replies (both servers)

def prompt_of(messages: Any) -> str:
    """The text of the last user message (a string, or the text parts of a content list); "" if none."""
    messages = messages if isinstance(messages, list) else []
    prompt = next((m.get("content", "") for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), "")
    if isinstance(prompt, list):
        prompt = "".join(part.get("text", "") for part in prompt if isinstance(part, dict))
    return str(prompt)


def answer_for(prompt: str) -> str:
    """Deterministic reply so tests can check that every answer belongs to its prompt."""
    return f"echo: {prompt}"


def openai_reply(text: str | None, model: str = "loopback", finish_reason: str = "stop",
                 usage: bool | tuple[int, int] = True, id: str = "chatcmpl-loop", **message: Any) -> dict[str, Any]:
    """A Chat Completions body; ``text=None`` gives ``content: null``; extra fields go into ``message``.

    ``usage``: True = 1 prompt token and one per word of ``text``; (prompt, completion) tokens; False = none."""
    body: dict[str, Any] = {"id": id, "object": "chat.completion", "created": int(time.time()),
                            "model": model, "choices": [{"index": 0, "finish_reason": finish_reason,
                                                         "message": {"role": "assistant", "content": text, **message}}]}
    if usage:
        n_in, n_out = usage if isinstance(usage, tuple) else (1, len((text or "").split()))
        body["usage"] = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
    return body


def anthropic_reply(content: Any, model: str = "loopback", stop_reason: str | None = "end_turn",
                    usage: Any = "default", id: str = "msg_loop") -> dict[str, Any]:
    """A Messages body with any ``content`` (a string becomes one text block); ``usage=None`` drops it."""
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    body: dict[str, Any] = {"id": id, "type": "message", "role": "assistant", "model": model,
                            "content": content, "stop_reason": stop_reason, "stop_sequence": None}
    if usage == "default":
        usage = {"input_tokens": 1, "output_tokens": 1}
    if usage is not None:
        body["usage"] = usage
    return body


def error_body(kind: str, message: str) -> dict[str, Any]:
    """An error both SDKs read: OpenAI's ``{"error": {...}}`` and Anthropic's ``"type": "error"`` in one body."""
    return {"error": {"type": kind, "message": message}, "type": "error"}


def _presented_key(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    return auth.removeprefix("Bearer ").strip() or headers.get("x-api-key", "")


class BoundSocket:
    """A server whose socket is bound to 127.0.0.1 and listening from construction, so its port is known
    (and never raced for) before it serves. ``base_url`` is what the OpenAI SDK takes, ``root_url`` Anthropic's."""

    def __init__(self, port: int = 0, backlog: int = BACKLOG) -> None:
        # IPPROTO_TCP named, not 0: accepted sockets inherit it, and only then does asyncio set TCP_NODELAY
        # on them; without it Nagle + delayed ACK add ~40 ms to every answer on a reused connection
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(backlog)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def accept(self) -> tuple[socket.socket, object]:
        """One pending connection, as the serving loop would accept it (what tests check its options on)."""
        return self._sock.accept()

    def close(self) -> None:
        """Close the listening socket of a server that was never started."""
        self._sock.close()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"


# ---------------------------------------------------------------- the loopback server (faults, rate limits)

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
    ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``.
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
        headers = {"x-ratelimit-limit-requests": str(self.requests),
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


# ---------------------------------------------------------------- the API zoo: the paper's models and judges

# What the zoo answers:
# - as a published model (any model of the identity data, by its name; aliases in ALIASES): its published answer
#   when the prompt is one of its 1,000 published jailbreak prompts; for another identity probe, one of its
#   published answers in the same language (English/Chinese), picked by a hash of the prompt, so the same prompt
#   always gets the same answer; for an Arena-Hard prompt, the published answer of its stand-in in ARENA_STAND_IN
#   (the data holds Arena-Hard answers of three GPT-4/3.5 models only); for anything else its family's true
#   identity statement;
# - as the judge (any model, e.g. gpt-4o-mini, recognised by the paper's prompts): the paper's published label in
#   the paper's tag format -- <judge>0|1</judge> for the loose question (the GPT-4o-mini label of that answer; the
#   majority label when the same text carries both) and <rate>0|1</rate> for the strict one; unknown answers get
#   the rule-based judge's verdict. RSE judge prompts get <style>/<structure>/<content> scores: 5 for an answer
#   identical to the reference, else the paper's published RSE average of the model the test answer came from
#   (rounded), else 3.
# It also speaks both batch APIs (OpenAI files + batches, Anthropic message batches) with injectable processing
# delay, per-request failures and expiry, and can enforce a request-rate limit with 429 + Retry-After +
# x-ratelimit-* headers (benchmarks/bench_collect.py).

#: Request model names -> identity-data model names.
ALIASES = {"claude-3-5-sonnet": "claude-3-5-sonnet-20241022", "deepseek-v3": "deepseek-chat",
           "phi4": "phi-4", "llama3.1-70b-instruct": "llama-3.1-70b-instruct"}
#: Whose published Arena-Hard answer a model gives (the data has answers of these three models only).
ARENA_STAND_IN = {"gpt-4o": "gpt-4-0314", "claude-3-5-sonnet-20241022": "gpt-4-0613",
                  "deepseek-chat": "gpt-3.5-turbo-0125"}
DEFAULT_ARENA = "gpt-4-0314"
_CJK = re.compile(r"[\u3400-\u9fff]")
_LOOSE = re.compile(r"Fact 1: <factor>(.*?)</factor>\nFact 2: <factor>(.*)</factor>\n\nGive a short analysis", re.S)
_STRICT = re.compile(r'\nText: "(.*)"\n\nGive a short analysis, then your score inside rate tags', re.S)
_RSE = re.compile(r"\[Reference answer\]\n(.*)\n\n\[Test answer\]\n(.*)\n\nRate how similar", re.S)
# the judge's position-bias control shows the test answer first (rse.llm_judge, test_first)
_RSE_TEST_FIRST = re.compile(r"\[Test answer\]\n(.*)\n\n\[Reference answer\]\n(.*)\n\nRate how similar", re.S)
_RETRY = "\n\nIMPORTANT: your previous reply had no single valid verdict."


def _pick(options: list[str], prompt: str) -> str:
    h = int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12], 16)
    return options[h % len(options)]


class ZooData:
    """Indexes over the published data, built once per process on first use."""

    @cached_property
    def identity(self) -> Any:
        return datasets.identity_responses()

    @cached_property
    def models(self) -> set[str]:
        return set(self.identity["model"].unique().to_list())

    @cached_property
    def facts(self) -> dict[str, str]:
        return datasets.identity_facts()

    @cached_property
    def exact(self) -> dict[tuple[str, str], str]:
        return {(m, p.strip()): r or "" for m, p, r in self.identity.select("model", "prompt", "response").iter_rows()}

    @cached_property
    def by_language(self) -> dict[tuple[str, bool], list[str]]:
        out: dict[tuple[str, bool], list[str]] = defaultdict(list)
        for m, q, r in self.identity.select("model", "query", "response").iter_rows():
            out[(m, bool(_CJK.search(q or "")))].append(r or "")
        return out

    @cached_property
    def loose(self) -> dict[tuple[str, str], bool]:
        votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for fam, r, lab in self.identity.select("family", "response", "loose_label").iter_rows():
            votes[(self.facts.get(fam or "", ""), (r or "").strip())][bool(lab)] += 1
        return {k: c.most_common(1)[0][0] for k, c in votes.items()}

    @cached_property
    def strict(self) -> dict[str, bool]:
        votes: dict[str, Counter] = defaultdict(Counter)
        for r, loose, lab in self.identity.select("response", "loose_label", "strict_label").iter_rows():
            if loose:
                votes[(r or "").strip()][bool(lab)] += 1
        return {k: c.most_common(1)[0][0] for k, c in votes.items()}

    @cached_property
    def family(self) -> dict[str, str]:
        return dict(self.identity.select("model", "family").unique().iter_rows())

    @cached_property
    def arena(self) -> dict[tuple[str, str], str]:
        a = datasets.arena_answers()
        return {(m, p.strip()): t or "" for m, p, t in a.select("model", "prompt", "answer").iter_rows()}

    @cached_property
    def arena_prompts(self) -> set[str]:
        return {p for _, p in self.arena}

    @cached_property
    def author(self) -> dict[str, str]:
        """Answer text -> the model that gave it (for RSE scoring)."""
        out = {(r or "").strip(): m for m, r in self.identity.select("model", "response").iter_rows()}
        out.update({t.strip(): m for (m, _), t in self.arena.items()})
        return out

    @cached_property
    def rse(self) -> dict[str, float]:
        try:
            raw = datasets.read_bytes("identity/paper_rse_scores.csv")
        except Exception:
            return {}
        rows = csv.DictReader(io.StringIO(raw.decode("utf-8")))
        return {r["identity_model"]: float(r["arena_hard"]) for r in rows if r.get("identity_model")}


_data = ZooData()


def canonical(model: str) -> str:
    return ALIASES.get(model, model)


def answer_as(model: str, prompt: str) -> str:
    """The zoo's answer of ``model`` to a user prompt (see the module docstring)."""
    d, name, key = _data, canonical(model), prompt.strip()
    if (name, key) in d.exact:
        return d.exact[(name, key)]
    if key in d.arena_prompts:
        stand_in = ARENA_STAND_IN.get(name, name if (name, key) in d.arena else DEFAULT_ARENA)
        return d.arena.get((stand_in, key)) or d.arena.get((DEFAULT_ARENA, key), "")
    options = d.by_language.get((name, bool(_CJK.search(key))))
    if options:
        return _pick(options, key)
    fam = d.family.get(name) or ("gpt" if name.startswith("gpt") else "claude" if name.startswith("claude") else "")
    return d.facts.get(fam, f"I am {model}.")


def judge_reply(prompt: str) -> str | None:
    """The judge's reply when ``prompt`` is one of the paper's judge prompts, else None."""
    d = _data
    prompt = prompt.split(_RETRY)[0]
    m = _LOOSE.search(prompt)
    if m:
        fact, response = m.group(1), m.group(2).strip()
        label = d.loose.get((fact, response))
        if label is None:
            label = _rules(response, fact)[0]
        return f"Replayed from the paper's GPT-4o-mini labels.\n<judge>{int(label)}</judge>"
    m = _STRICT.search(prompt)
    if m:
        response = m.group(1).strip()
        label = d.strict.get(response)
        if label is None:
            label = _rules(response, "")[1]
        return f"Replayed from the paper's strict labels.\n<rate>{int(label)}</rate>"
    m, flipped = _RSE.search(prompt), False
    if m is None:
        m, flipped = _RSE_TEST_FIRST.search(prompt), True
    if m:
        ref, test = (m.group(2).strip(), m.group(1).strip()) if flipped else (m.group(1).strip(), m.group(2).strip())
        if ref == test:
            score = 5
        else:
            author = d.author.get(test.replace("\n[... answer truncated ...]", "").strip())
            score = int(round(d.rse.get(author or "", 3.0)))
        return (f"<style>{score}</style>\n<structure>{score}</structure>\n<content>{score}</content>\n"
                f"<rationale>The paper's published RSE average for this model, rounded.</rationale>")
    return None


def _rules(response: str, fact: str) -> tuple[bool, bool]:
    fam = next((f for f, t in _data.facts.items() if t == fact), "")
    return rule_verdict(response, truth_for(fam, fact)) if fam else (False, False)


def paper_answer(model: str, messages: list[dict[str, Any]]) -> str:
    """What the zoo answers to a chat: a judge verdict for a judge prompt, else the model's answer."""
    prompt = prompt_of(messages)
    judged = judge_reply(prompt)
    return judged if judged is not None else answer_as(model, prompt)


def echo_answer(model: str, messages: list[dict[str, Any]]) -> str:
    """A fixed, cheap answer (benchmarks measure the transport, not the replay lookups)."""
    last = messages[-1].get("content", "") if messages else ""
    return f"echo: {last}" if isinstance(last, str) else "echo"


@dataclass
class ZooConfig:
    latency: float = 0.0                  # seconds every chat answer takes
    rate_limit: float | None = None       # requests per second allowed (token bucket); None = unlimited
    burst: int | None = None              # bucket size (default: one second's worth)
    batch_delay: float = 0.0              # seconds before a batch ends
    batch_fail_every: int = 0             # every k-th request of a batch fails inside the batch (0 = none)
    batch_expire_after: int | None = None  # a batch expires after answering this many requests
    batch_api: bool = True                # False: the batch endpoints answer 404 (a server without them)
    answer: Callable[[str, list[dict[str, Any]]], str] = paper_answer


@dataclass
class ZooStats:
    chat: int = 0
    rejected: int = 0
    files: int = 0
    batches_created: int = 0
    batch_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    paths: Counter = field(default_factory=Counter)


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a request may pass, else the seconds until one token is back."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def _usage_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


ZOO_NEEDS = "the API zoo needs starlette and uvicorn: pip install 'distill-kit[zoo]'"


@cache
def _web() -> SimpleNamespace:
    """Starlette and uvicorn, imported when a zoo is first built. Only the zoo needs them (routing, multipart
    uploads, many endpoints); the loopback server and the rest of this module do not, so ``import
    distill_kit.testing`` and ``python -m distill_kit.testing --help`` work on a plain install."""
    try:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError as exc:
        raise ImportError(f"{ZOO_NEEDS} ({exc})") from None
    return SimpleNamespace(uvicorn=uvicorn, Starlette=Starlette, JSONResponse=JSONResponse, Response=Response,
                           Route=Route)


class Zoo:
    """The ASGI app and its state; ``Zoo().app`` can be served by any ASGI server."""

    def __init__(self, config: ZooConfig | None = None) -> None:
        self.config = config or ZooConfig()
        self.stats = ZooStats()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.msg_batches: dict[str, dict[str, Any]] = {}
        self.base = ""  # set by the runner: http://127.0.0.1:PORT
        c = self.config
        self.bucket = _Bucket(c.rate_limit, c.burst or max(1, int(c.rate_limit))) if c.rate_limit else None
        web = _web()
        routes = [
            web.Route("/v1/chat/completions", self.chat, methods=["POST"]),
            web.Route("/v1/messages", self.messages, methods=["POST"]),
            web.Route("/v1/models", self.list_models, methods=["GET"]),
            web.Route("/zoo/stats", self.get_stats, methods=["GET"]),
        ]
        batch_routes = [
            web.Route("/v1/files", self.upload, methods=["POST"]),
            web.Route("/v1/files/{fid}/content", self.file_content, methods=["GET"]),
            web.Route("/v1/batches", self.create_batch, methods=["POST"]),
            web.Route("/v1/batches", self.list_batches, methods=["GET"]),
            web.Route("/v1/batches/{bid}", self.get_batch, methods=["GET"]),
            web.Route("/v1/messages/batches", self.create_msg_batch, methods=["POST"]),
            web.Route("/v1/messages/batches", self.list_msg_batches, methods=["GET"]),
            web.Route("/v1/messages/batches/{bid}", self.get_msg_batch, methods=["GET"]),
            web.Route("/v1/messages/batches/{bid}/results", self.msg_batch_results, methods=["GET"]),
        ]
        self.app = web.Starlette(routes=routes + (batch_routes if c.batch_api else []))

    # ---- chat endpoints
    def _limit_headers(self) -> dict[str, str]:
        if not self.bucket:
            return {}
        b = self.bucket
        reset = max(0.0, (1 - b.tokens) / b.rate) if b.tokens < 1 else 0.0
        return {"x-ratelimit-limit-requests": str(int(b.rate * 60)),
                "x-ratelimit-remaining-requests": str(max(0, int(b.tokens))),
                "x-ratelimit-reset-requests": f"{reset:.3f}s"}

    async def _gate(self) -> Response | None:
        self.stats.paths["chat"] += 1
        if self.bucket is None:
            return None
        wait = self.bucket.take()
        if wait <= 0:
            return None
        self.stats.rejected += 1
        headers = {"retry-after": f"{wait:.3f}", "retry-after-ms": str(int(wait * 1000) + 1), **self._limit_headers()}
        return _web().JSONResponse(error_body("rate_limit_error", "rate limit (zoo)"), status_code=429, headers=headers)

    async def _answer(self, model: str, messages: list[dict[str, Any]]) -> str:
        s = self.stats
        s.chat += 1
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            if self.config.latency:
                await asyncio.sleep(self.config.latency)
            return self.config.answer(model, messages)
        finally:
            s.in_flight -= 1

    async def chat(self, request: Request) -> Response:
        return await self._serve_chat(request, self._completion)

    async def messages(self, request: Request) -> Response:
        return await self._serve_chat(request, self._message)

    async def _serve_chat(self, request: Request, reply: Callable[[dict[str, Any], str], dict[str, Any]]) -> Response:
        """One chat request of either API: the rate gate, the answer, ``reply`` shapes the body."""
        if (limited := await self._gate()) is not None:
            return limited
        body = await request.json()
        text = await self._answer(body.get("model", ""), body.get("messages", []))
        return _web().JSONResponse(reply(body, text), headers=self._limit_headers())

    @staticmethod
    def _usage(body: dict[str, Any], text: str) -> tuple[int, int]:
        """Tokens in and out, estimated at four characters a token (the request's messages as JSON)."""
        return _usage_tokens(json.dumps(body.get("messages", []), ensure_ascii=False)), _usage_tokens(text)

    @classmethod
    def _completion(cls, body: dict[str, Any], text: str) -> dict[str, Any]:
        return openai_reply(text, model=body.get("model"), usage=cls._usage(body, text),
                            id=f"chatcmpl-{uuid.uuid4().hex[:12]}")

    @classmethod
    def _message(cls, body: dict[str, Any], text: str) -> dict[str, Any]:
        n_in, n_out = cls._usage(body, text)
        return anthropic_reply(text, model=body.get("model"), id=f"msg_{uuid.uuid4().hex[:12]}",
                               usage={"input_tokens": n_in, "output_tokens": n_out})

    async def get_stats(self, request: Request) -> Response:
        """Counters for benchmarks that run the zoo in another process (``/zoo/stats``)."""
        s = self.stats
        return _web().JSONResponse({"chat": s.chat, "rejected": s.rejected, "batches_created": s.batches_created,
                             "batch_requests": s.batch_requests, "max_in_flight": s.max_in_flight,
                             "requests": s.paths.get("chat", 0)})

    async def list_models(self, request: Request) -> Response:
        return _web().JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "zoo"}
                                                        for m in sorted(_data.models)]})

    # ---- OpenAI files + batches
    async def upload(self, request: Request) -> Response:
        raw = await request.body()
        msg = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + raw)
        fields = {part.get_param("name", header="content-disposition"): part for part in msg.get_payload()}
        data = fields["file"].get_payload(decode=True)
        purpose = fields["purpose"].get_payload(decode=True).decode()
        fid = f"file-{uuid.uuid4().hex[:20]}"
        self.files[fid] = data
        self.stats.files += 1
        return _web().JSONResponse({"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                             "filename": fields["file"].get_filename() or "upload.jsonl", "purpose": purpose,
                             "status": "processed"})

    async def file_content(self, request: Request) -> Response:
        fid = request.path_params["fid"]
        if fid not in self.files:
            return _web().JSONResponse(error_body("invalid_request_error", "no such file"), status_code=404)
        return _web().Response(self.files[fid], media_type="application/octet-stream")

    async def create_batch(self, request: Request) -> Response:
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return _web().JSONResponse(error_body("invalid_request_error", "input file not found"),
                                status_code=400)
        bid = f"batch_{uuid.uuid4().hex[:20]}"
        now = time.time()
        lines = [json.loads(x) for x in self.files[body["input_file_id"]].decode("utf-8").splitlines() if x.strip()]
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
                             "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                             "status": "in_progress", "output_file_id": None, "error_file_id": None,
                             "created_at": int(now), "in_progress_at": int(now), "expires_at": int(now + 86400),
                             "completed_at": None, "expired_at": None, "metadata": body.get("metadata"),
                             "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                             "_lines": lines, "_t0": now}
        self.stats.batches_created += 1
        self.stats.batch_requests += len(lines)
        return _web().JSONResponse(self._public(self.batches[bid]))

    @staticmethod
    def _public(b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def _process(self, lines: list[tuple[str, str, list[dict[str, Any]]]]) -> list[tuple[str, str | None, str]]:
        """(custom_id, answer or None, error code) per request, with the configured faults."""
        c = self.config
        out = []
        for i, (cid, model, messages) in enumerate(lines, 1):
            if c.batch_expire_after is not None and i > c.batch_expire_after:
                out.append((cid, None, "batch_expired"))
            elif c.batch_fail_every and i % c.batch_fail_every == 0:
                out.append((cid, None, "server_error"))
            else:
                out.append((cid, c.answer(model, messages), ""))
        return out

    def _due(self, b: dict[str, Any], status: str, items: str, body: str) -> tuple[list[tuple[str, str | None, str]],
                                                                                  dict[str, Any]] | None:
        """For a batch in progress whose delay has passed: each request's outcome (:meth:`_process`) and the
        request bodies by custom_id; None while it is not due. ``status``/``items``/``body`` name its fields."""
        if b[status] != "in_progress" or time.time() - b["_t0"] < self.config.batch_delay:
            return None
        done = self._process([(x["custom_id"], x[body].get("model", ""), x[body].get("messages", [])) for x in b[items]])
        return done, {x["custom_id"]: x[body] for x in b[items]}

    def _advance(self, b: dict[str, Any]) -> None:
        if (due := self._due(b, "status", "_lines", "body")) is None:
            return
        done, by_id = due
        ok_lines, err_lines = [], []
        for cid, text, code in done:
            rid = f"batch_req_{uuid.uuid4().hex[:12]}"
            if text is not None:
                body = self._completion(by_id[cid], text)
                ok_lines.append({"id": rid, "custom_id": cid, "response": {"status_code": 200, "request_id": rid,
                                                                          "body": body}, "error": None})
            elif code == "batch_expired":
                err_lines.append({"id": rid, "custom_id": cid, "response": None,
                                  "error": {"code": "batch_expired", "message": "This request could not be executed "
                                            "before the completion window expired."}})
            else:
                err_lines.append({"id": rid, "custom_id": cid, "response": {
                    "status_code": 500, "request_id": rid,
                    "body": {"error": {"message": "injected failure", "type": "server_error"}}}, "error": None})
        now = time.time()
        expired = self.config.batch_expire_after is not None and self.config.batch_expire_after < len(done)
        for name, rows in (("output_file_id", ok_lines), ("error_file_id", err_lines)):
            if rows:
                fid = f"file-{uuid.uuid4().hex[:20]}"
                self.files[fid] = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
                b[name] = fid
        b["request_counts"] = {"total": len(done), "completed": len(ok_lines), "failed": len(err_lines)}
        b["status"] = "expired" if expired else "completed"
        b["expired_at" if expired else "completed_at"] = int(now)

    async def get_batch(self, request: Request) -> Response:
        b = self.batches.get(request.path_params["bid"])
        if b is None:
            return _web().JSONResponse(error_body("invalid_request_error", "no such batch"), status_code=404)
        self._advance(b)
        return _web().JSONResponse(self._public(b))

    async def list_batches(self, request: Request) -> Response:
        data = [self._public(b) for b in sorted(self.batches.values(), key=lambda b: -b["_t0"])]
        return _web().JSONResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": False})

    # ---- Anthropic message batches
    async def create_msg_batch(self, request: Request) -> Response:
        body = await request.json()
        reqs = body.get("requests") or []
        bid = f"msgbatch_{uuid.uuid4().hex[:20]}"
        now = time.time()
        self.msg_batches[bid] = {"id": bid, "type": "message_batch", "processing_status": "in_progress",
                                 "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0,
                                                    "canceled": 0, "expired": 0},
                                 "ended_at": None, "created_at": _iso(now), "expires_at": _iso(now + 86400),
                                 "archived_at": None, "cancel_initiated_at": None, "results_url": None,
                                 "_requests": reqs, "_t0": now, "_results": None}
        self.stats.batches_created += 1
        self.stats.batch_requests += len(reqs)
        return _web().JSONResponse(self._public(self.msg_batches[bid]))

    def _advance_msg(self, b: dict[str, Any]) -> None:
        if (due := self._due(b, "processing_status", "_requests", "params")) is None:
            return
        done, by_id = due
        results, counts = [], Counter()
        for cid, text, code in done:
            if text is not None:
                results.append({"custom_id": cid, "result": {"type": "succeeded",
                                                             "message": self._message(by_id[cid], text)}})
                counts["succeeded"] += 1
            elif code == "batch_expired":
                results.append({"custom_id": cid, "result": {"type": "expired"}})
                counts["expired"] += 1
            else:
                results.append({"custom_id": cid, "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "api_error", "message": "injected failure"}}}})
                counts["errored"] += 1
        b["_results"] = results
        b["request_counts"] = {"processing": 0, "succeeded": counts["succeeded"], "errored": counts["errored"],
                               "canceled": 0, "expired": counts["expired"]}
        b["processing_status"], b["ended_at"] = "ended", _iso(time.time())
        b["results_url"] = f"{self.base}/v1/messages/batches/{b['id']}/results"

    async def get_msg_batch(self, request: Request) -> Response:
        b = self.msg_batches.get(request.path_params["bid"])
        if b is None:
            return _web().JSONResponse(error_body("not_found_error", "no such batch"),
                                status_code=404)
        self._advance_msg(b)
        return _web().JSONResponse(self._public(b))

    async def list_msg_batches(self, request: Request) -> Response:
        data = [self._public(b) for b in sorted(self.msg_batches.values(), key=lambda b: -b["_t0"])]
        return _web().JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None})

    async def msg_batch_results(self, request: Request) -> Response:
        b = self.msg_batches.get(request.path_params["bid"])
        if b is None or b["_results"] is None:
            return _web().JSONResponse(error_body("not_found_error", "no results"),
                                status_code=404)
        return _web().Response("".join(json.dumps(r) + "\n" for r in b["_results"]), media_type="application/binary")


class ZooServer(BoundSocket):
    """``with ZooServer() as zoo: zoo.base_url`` -- uvicorn on a loopback port in a background thread.

    ``base_url`` ends in /v1 (OpenAI SDK); ``root_url`` is what the Anthropic SDK takes. The socket is bound
    (port 0 = a free one) when the object is made, like :class:`LoopbackServer`'s."""

    def __init__(self, config: ZooConfig | None = None, port: int = 0, backlog: int = BACKLOG) -> None:
        super().__init__(port, backlog)
        self.zoo = Zoo(config)
        self.backlog = backlog
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> ZooStats:
        return self.zoo.stats

    def start(self) -> "ZooServer":
        self.zoo.base = self.root_url
        uvicorn = _web().uvicorn
        config = uvicorn.Config(self.zoo.app, backlog=self.backlog, log_level="warning", access_log=False,
                                lifespan="off", loop="asyncio", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="zoo",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"zoo server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> "ZooServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- in its own process, and the command line

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


def main(argv: list[str] | None = None) -> None:
    """``python -m distill_kit.testing [--port P] [--latency S] [--rate-limit R] [--burst N] [--echo] [--loopback]``:
    serve until killed; prints the root URL on the first line (for benchmarks that keep the server out of
    their process)."""
    parser = argparse.ArgumentParser(prog="python -m distill_kit.testing",
                                     description="Serve the API zoo (or, with --loopback, the fault-injecting "
                                                 "loopback server) on 127.0.0.1 until killed.")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every answer takes")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second (zoo: token bucket; --loopback: per --window seconds)")
    parser.add_argument("--burst", type=int, default=None, help="zoo: bucket size (default: one second's worth)")
    parser.add_argument("--window", type=float, default=1.0, help="--loopback: the rate limit's window in seconds")
    parser.add_argument("--echo", action="store_true", help="answer 'echo: <prompt>' instead of as the paper's models")
    parser.add_argument("--loopback", action="store_true",
                        help="serve the loopback server (answers 'echo: <prompt>', no scripted faults)")
    args = parser.parse_args(argv)
    if args.loopback:
        limit = RateLimit(requests=int(args.rate_limit), window=args.window) if args.rate_limit else None
        server: Any = LoopbackServer(latency=args.latency, rate_limit=limit)
    else:
        cfg = ZooConfig(latency=args.latency, rate_limit=args.rate_limit, burst=args.burst)
        if args.echo:
            cfg.answer = echo_answer
        try:
            _web()
        except ImportError:
            raise SystemExit(f"error: {ZOO_NEEDS}") from None
        server = ZooServer(cfg, port=args.port)
    with server as srv:
        print(srv.root_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
