"""The API zoo: a Starlette app on uvicorn that answers as the paper's models and judges (:mod:`.answers`), speaks
both batch APIs (OpenAI files + batches, Anthropic message batches, with injectable processing delay, per-request
failures and expiry) and can enforce a request-rate limit with 429 + Retry-After + x-ratelimit-* headers
(``benchmarks/bench_collect.py``). It needs routing, multipart uploads and many
endpoints, so unlike the loopback server it is a web framework's app, on a socket bound the same way."""

from __future__ import annotations

import asyncio
import email.parser
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

from distill_kit.testing.answers import known_models, paper_answer
from distill_kit.testing.wire import BACKLOG, BoundSocket, anthropic_reply, error_body, openai_reply


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
                                                        for m in known_models()]})

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

