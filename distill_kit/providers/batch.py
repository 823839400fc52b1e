"""Provider batch APIs: OpenAI's Batch API and Anthropic's Message Batches, at about half the price.

``collect`` hands the requests it has not stored yet to :func:`collect_batch` when a model has
``batch: true`` (or the run was started with ``--batch``). What makes it safe to kill at any moment:

1. Every request of a batch job -- its store key, ``custom_id``, messages, sample and meta -- is written to
   the store (tables ``batch_jobs`` / ``batch_requests``, next to ``responses``) *before* anything is
   sent, together with a local job id that is also attached to the provider's batch (OpenAI ``metadata``).
2. The provider's batch id is written the moment the create call returns. A run killed in between finds
   its batch again on resume (OpenAI: by the job id in the batch metadata; Anthropic: the batch created
   after the job was prepared with the same number of requests) and never submits it twice.
3. A later run of the same requests collects the open job it already paid for instead of resubmitting.
4. Answers are written to ``responses`` as they are read from the result file. Requests that failed
   inside the batch, expired with it (24 h window) or were cancelled are returned as not answered, and
   ``collect`` sends them as ordinary requests (with its retries, timeouts and persistence).
5. A provider without a batch API (an OpenAI-compatible server answering 404) falls back to ordinary
   requests, with one warning line.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from distill_kit.config import ModelConfig
from distill_kit.providers.base import sdk_http_client
from distill_kit.store import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_jobs (
    job TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    remote_id TEXT,
    input_file_id TEXT,
    status TEXT NOT NULL,         -- prepared | submitted | collected | unsupported
    n INTEGER NOT NULL,
    answered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    remote_status TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_requests (
    job TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    key TEXT NOT NULL,
    messages TEXT NOT NULL,
    sample INTEGER NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (job, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests(key);
"""

#: Provider limits per batch (requests, bytes of the JSONL / request body); we stay below both.
LIMITS = {"openai": (50_000, 190_000_000), "anthropic": (100_000, 240_000_000)}
OPEN = ("prepared", "submitted")
#: A batch that has not ended this long after submission is given up (the providers' window is 24 h).
MAX_WAIT = 26 * 3600.0


@dataclass
class Job:
    job: str
    model: str
    provider: str
    remote_id: str | None
    input_file_id: str | None
    status: str
    n: int
    created_at: float


class BatchLedger:
    """The batch tables, on their own connection to the store's SQLite file (WAL: readers never block)."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def prepare(self, model: ModelConfig, items: list[tuple[str, Any]]) -> Job:
        """Record a job and all its requests in one transaction; nothing has been sent yet."""
        job = Job(job=f"dk-{uuid.uuid4().hex[:16]}", model=model.name, provider=model.provider, remote_id=None,
                  input_file_id=None, status="prepared", n=len(items), created_at=time.time())
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO batch_jobs (job, model, provider, status, n, created_at, updated_at) "
                              "VALUES (?, ?, ?, 'prepared', ?, ?, ?)",
                              (job.job, job.model, job.provider, job.n, job.created_at, job.created_at))
            self.conn.executemany(
                "INSERT INTO batch_requests (job, custom_id, key, messages, sample, meta) VALUES (?, ?, ?, ?, ?, ?)",
                [(job.job, custom_id(key), key, json.dumps(req.messages, ensure_ascii=False), req.sample,
                  json.dumps(req.meta, ensure_ascii=False, default=str)) for key, req in items])
        return job

    def update(self, job: Job, **fields: Any) -> None:
        for k, v in fields.items():
            if hasattr(job, k):
                setattr(job, k, v)
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE batch_jobs SET {cols}, updated_at = ? WHERE job = ?",
                          (*fields.values(), time.time(), job.job))

    def open_jobs(self, model: str) -> list[Job]:
        rows = self.conn.execute(
            "SELECT job, model, provider, remote_id, input_file_id, status, n, created_at FROM batch_jobs "
            "WHERE model = ? AND status IN ('prepared', 'submitted') ORDER BY created_at", (model,)).fetchall()
        return [Job(*r) for r in rows]

    def jobs_of(self, keys: Iterable[str]) -> dict[str, str]:
        """key -> the status of the most recent job holding it."""
        keys = list(keys)
        out: dict[str, tuple[float, str]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.conn.execute(
                f"SELECT r.key, j.status, j.created_at FROM batch_requests r JOIN batch_jobs j ON r.job = j.job "
                f"WHERE r.key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for key, status, created in rows:
                if key not in out or created > out[key][0]:
                    out[key] = (created, status)
        return {k: v[1] for k, v in out.items()}

    def requests(self, job: Job) -> dict[str, dict[str, Any]]:
        rows = self.conn.execute("SELECT custom_id, key, messages, sample, meta FROM batch_requests WHERE job = ?",
                                 (job.job,)).fetchall()
        return {cid: {"key": key, "messages": json.loads(m), "sample": s, "meta": json.loads(meta)}
                for cid, key, m, s, meta in rows}

    def claimed_remote_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT remote_id FROM batch_jobs WHERE remote_id IS NOT NULL")}

    def stats(self, model: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT job, model, provider, remote_id, status, n, answered, failed, remote_status FROM batch_jobs"
        rows = self.conn.execute(sql + (" WHERE model = ?" if model else "") + " ORDER BY created_at",
                                 (model,) if model else ()).fetchall()
        names = ["job", "model", "provider", "remote_id", "status", "n", "answered", "failed", "remote_status"]
        return [dict(zip(names, r)) for r in rows]


def custom_id(key: str) -> str:
    """The store key (64 hex chars) fits both providers' custom_id rules (Anthropic: [A-Za-z0-9_-]{1,64})."""
    return key[:64]


# ---------------------------------------------------------------- provider adapters

class BatchUnsupported(Exception):
    """The endpoint has no batch API (404/405 on create): send these requests one by one."""


@contextmanager
def _unsupported_if_absent(sdk: Any) -> Iterator[None]:
    """An HTTP 404/405/501 from a batch endpoint means the server has no batch API (BatchUnsupported);
    any other error is left as it is."""
    try:
        yield
    except sdk.APIStatusError as exc:
        if exc.status_code in (404, 405, 501):
            raise BatchUnsupported(f"HTTP {exc.status_code}") from None
        raise


class _OpenAIBatches:
    def __init__(self, cfg: ModelConfig) -> None:
        import openai

        self.openai, self.cfg = openai, cfg
        key = cfg.api_key() if cfg.api_key_env or not cfg.base_url else "not-needed"
        self.client = openai.AsyncOpenAI(api_key=key, base_url=cfg.base_url, max_retries=3, timeout=max(cfg.timeout, 300),
                                         http_client=sdk_http_client(openai))

    def line(self, cid: str, req: Any) -> dict[str, Any]:
        p = self.cfg.params
        body: dict[str, Any] = {"model": self.cfg.model or self.cfg.name, "messages": req.messages,
                                "temperature": p.temperature, "max_tokens": p.max_tokens, "top_p": p.top_p}
        if p.seed is not None:
            body["seed"] = p.seed
        return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}

    async def submit(self, job: Job, lines: list[dict[str, Any]], ledger: BatchLedger) -> None:
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
        with _unsupported_if_absent(self.openai):
            if not job.input_file_id:
                f = await self.client.files.create(file=(f"{job.job}.jsonl", io.BytesIO(data), "application/jsonl"),
                                                   purpose="batch")
                ledger.update(job, input_file_id=f.id)
            batch = await self.client.batches.create(input_file_id=job.input_file_id, endpoint="/v1/chat/completions",
                                                     completion_window="24h", metadata={"distill_kit_job": job.job})
        ledger.update(job, remote_id=batch.id, status="submitted", remote_status=batch.status)

    async def find(self, job: Job) -> str | None:
        """The batch a killed run created for ``job`` before it could record the id (by its metadata)."""
        with _unsupported_if_absent(self.openai):
            async for b in self.client.batches.list(limit=100):
                if (b.metadata or {}).get("distill_kit_job") == job.job:
                    return b.id
                if b.created_at < job.created_at - 3600:
                    break
        return None

    async def poll(self, job: Job) -> tuple[bool, str, int]:
        b = await self.client.batches.retrieve(job.remote_id)
        done = b.status in ("completed", "expired", "cancelled", "failed")
        counts = b.request_counts
        return done, b.status, (counts.completed + counts.failed) if counts else 0

    async def results(self, job: Job) -> list[tuple[str, dict[str, Any] | None, str | None]]:
        """(custom_id, chat.completion body or None, error) for every line of the output and error files."""
        b = await self.client.batches.retrieve(job.remote_id)
        out: list[tuple[str, dict[str, Any] | None, str | None]] = []
        for file_id in (b.output_file_id, b.error_file_id):
            if not file_id:
                continue
            content = await self.client.files.content(file_id)
            for raw in content.text.splitlines():
                if not raw.strip():
                    continue
                row = json.loads(raw)
                resp, err = row.get("response") or {}, row.get("error")
                if resp.get("status_code") == 200 and not err:
                    out.append((row["custom_id"], resp.get("body"), None))
                else:
                    msg = (err or {}).get("message") or json.dumps(resp.get("body"))[:200]
                    out.append((row["custom_id"], None, f"batch: {(err or {}).get('code') or resp.get('status_code')}: {msg}"))
        return out

    @staticmethod
    def parse(body: Mapping[str, Any]) -> tuple[str, int, int]:
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        return ((choice.get("message") or {}).get("content") or "", int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0))

    async def aclose(self) -> None:
        await self.client.close()


class _AnthropicBatches:
    def __init__(self, cfg: ModelConfig) -> None:
        import anthropic

        self.anthropic, self.cfg = anthropic, cfg
        self.claimed: set[str] = set()  # batch ids other jobs already own (see find)
        self.client = anthropic.AsyncAnthropic(api_key=cfg.api_key(), base_url=cfg.base_url, max_retries=3,
                                               timeout=max(cfg.timeout, 300), http_client=sdk_http_client(anthropic))

    def line(self, cid: str, req: Any) -> dict[str, Any]:
        p = self.cfg.params
        system = "\n\n".join(m["content"] for m in req.messages if m["role"] == "system")
        params: dict[str, Any] = {"model": self.cfg.model or self.cfg.name, "max_tokens": p.max_tokens,
                                  "messages": [m for m in req.messages if m["role"] != "system"],
                                  "temperature": p.temperature}
        if p.top_p < 1:
            params["top_p"] = p.top_p
        if system:
            params["system"] = system
        return {"custom_id": cid, "params": params}

    async def submit(self, job: Job, lines: list[dict[str, Any]], ledger: BatchLedger) -> None:
        with _unsupported_if_absent(self.anthropic):
            batch = await self.client.messages.batches.create(requests=lines)
        ledger.update(job, remote_id=batch.id, status="submitted", remote_status=batch.processing_status)

    async def find(self, job: Job) -> str | None:
        """Message batches carry no metadata: the unclaimed batch created after the job was prepared with
        exactly its number of requests."""
        with _unsupported_if_absent(self.anthropic):
            async for b in self.client.messages.batches.list(limit=100):
                if b.created_at.timestamp() < job.created_at - 5:
                    break
                c = b.request_counts
                total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
                if total == job.n and b.id not in self.claimed:
                    return b.id
        return None

    async def poll(self, job: Job) -> tuple[bool, str, int]:
        b = await self.client.messages.batches.retrieve(job.remote_id)
        c = b.request_counts
        return b.processing_status == "ended", b.processing_status, c.succeeded + c.errored + c.canceled + c.expired

    async def results(self, job: Job) -> list[tuple[str, dict[str, Any] | None, str | None]]:
        out: list[tuple[str, dict[str, Any] | None, str | None]] = []
        async for row in await self.client.messages.batches.results(job.remote_id):
            result = row.result
            if result.type == "succeeded":
                out.append((row.custom_id, result.message.model_dump(), None))
            elif result.type == "errored":
                err = getattr(result.error, "error", None)
                out.append((row.custom_id, None, f"batch: errored: {getattr(err, 'message', '') or result.error}"))
            else:
                out.append((row.custom_id, None, f"batch: {result.type}"))
        return out

    @staticmethod
    def parse(body: Mapping[str, Any]) -> tuple[str, int, int]:
        text = "".join(block.get("text", "") for block in body.get("content") or [] if isinstance(block, dict))
        usage = body.get("usage") or {}
        return text, int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)

    async def aclose(self) -> None:
        await self.client.close()


def batch_adapter(cfg: ModelConfig) -> Any:
    """The batch API client of the model's provider: ``line``, ``submit``, ``find``, ``poll``, ``results``,
    ``parse``, ``aclose`` (a model whose provider has no batch API is a ValueError)."""
    if cfg.provider == "openai":
        return _OpenAIBatches(cfg)
    if cfg.provider == "anthropic":
        return _AnthropicBatches(cfg)
    raise ValueError(f"model {cfg.name!r}: provider {cfg.provider!r} has no batch API")


# ---------------------------------------------------------------- the collect hook

def _chunks(items: list[tuple[str, Any]], provider: str, adapter: Any) -> list[list[tuple[str, Any]]]:
    max_n, max_bytes = LIMITS[provider]
    out: list[list[tuple[str, Any]]] = [[]]
    size = 0
    for key, req in items:
        n_bytes = len(json.dumps(adapter.line(custom_id(key), req), ensure_ascii=False).encode("utf-8")) + 1
        if out[-1] and (len(out[-1]) >= max_n or size + n_bytes > max_bytes):
            out.append([])
            size = 0
        out[-1].append((key, req))
        size += n_bytes
    return [c for c in out if c]


async def _retrying(call: Callable[[], Any], what: str, attempts: int = 8) -> Any:
    """Control-plane calls (upload, create, poll, download) retried on transient failures; the SDK has
    already retried 429/5xx three times with its own backoff."""
    delay = 1.0
    for attempt in range(attempts):
        try:
            return await call()
        except BatchUnsupported:
            raise
        except Exception as exc:  # connection resets, 5xx after the SDK's retries
            status = getattr(exc, "status_code", None)
            if status is not None and 400 <= status < 500 and status not in (408, 409, 429):
                raise
            if attempt == attempts - 1:
                raise
            print(f"batch: {what} failed ({type(exc).__name__}), retrying in {delay:.0f}s", file=sys.stderr)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


async def collect_batch(model: ModelConfig, pending: Mapping[str, Any], store: Any, *, budget: Any = None,
                        progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Answer ``pending`` (key -> ChatRequest) through the model's batch API; returns key -> stored Record for
    the answered ones. Unanswered keys are left for ``collect``'s ordinary path (which turns records into
    results, so this module never imports ``collect``)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    ledger = BatchLedger(store.path)
    adapter = batch_adapter(model)
    answered: dict[str, Record] = {}
    try:
        status_of = ledger.jobs_of(pending)
        open_jobs = [j for j in ledger.open_jobs(model.name)]
        fresh = [(k, r) for k, r in pending.items() if status_of.get(k) is None]
        retry_plain = sum(1 for k in pending if status_of.get(k) in ("collected", "unsupported"))
        if retry_plain:
            log(f"batch {model.name}: {retry_plain} request(s) failed in an earlier batch; sending them one by one")
        for chunk in _chunks(fresh, model.provider, adapter) if fresh else []:
            open_jobs.append(ledger.prepare(model, chunk))
        if not open_jobs:
            return answered
        if isinstance(adapter, _AnthropicBatches):
            adapter.claimed = ledger.claimed_remote_ids()
        for job in open_jobs:
            if job.status == "prepared":
                try:
                    found = await _retrying(lambda: adapter.find(job), "list batches")
                except BatchUnsupported:
                    found = None  # the submit below says so too, and falls back
                if found:
                    ledger.update(job, remote_id=found, status="submitted")
                    log(f"batch {model.name}: found batch {found} submitted by an interrupted run")
                    continue
                reqs = ledger.requests(job)
                lines = [adapter.line(cid, _Req(r)) for cid, r in reqs.items()]
                try:
                    await _retrying(lambda: adapter.submit(job, lines, ledger), "submit")
                except BatchUnsupported as exc:
                    ledger.update(job, status="unsupported", remote_status=str(exc))
                    log(f"batch {model.name}: the endpoint has no batch API ({exc}); sending one by one")
                    continue
                log(f"batch {model.name}: submitted {job.remote_id} with {job.n} request(s) (job {job.job})")
        live = [j for j in open_jobs if j.status == "submitted"]
        await asyncio.gather(*(_finish(job, adapter, ledger, model, store, budget, answered, progress, log)
                               for job in live))
    finally:
        await adapter.aclose()
        ledger.close()
    return {k: v for k, v in answered.items() if k in pending}


class _Req:
    """A stored batch request in ChatRequest's shape."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.messages, self.sample, self.meta = row["messages"], row["sample"], row["meta"]


async def _finish(job: Job, adapter: Any, ledger: BatchLedger, model: ModelConfig, store: Any, budget: Any,
                  answered: dict[str, Record], progress: bool, log: Callable[[str], None]) -> None:
    """Poll one submitted batch until it ends, then store every answer it holds."""
    from tqdm.auto import tqdm

    started = time.monotonic()
    bar = tqdm(total=job.n, desc=f"batch {model.name}", disable=not progress, leave=False)
    try:
        while True:
            done, remote_status, finished = await _retrying(lambda: adapter.poll(job), "poll")
            bar.n = finished
            bar.refresh()
            if done:
                break
            if time.monotonic() - started > MAX_WAIT:
                remote_status = "timeout"
                break
            await asyncio.sleep(model.batch_poll)
    finally:
        bar.close()
    rows = await _retrying(lambda: adapter.results(job), "download results") if remote_status != "timeout" else []
    reqs = ledger.requests(job)
    ok = failed = 0
    latency = time.monotonic() - started
    records = []
    for cid, body, error in rows:
        req = reqs.get(cid)
        if req is None:
            continue
        if body is None:
            failed += 1
            continue
        text, usage_in, usage_out = adapter.parse(body)
        cost = (usage_in * model.cost_per_mtok_in + usage_out * model.cost_per_mtok_out) / 1e6 * model.batch_price
        record = Record(key=req["key"], model=model.name, provider=model.provider, messages=req["messages"],
                        params=model.params.model_dump(), sample=req["sample"], status="ok", text=text, error=None,
                        attempts=1, usage_in=usage_in, usage_out=usage_out, cost=cost, latency=latency,
                        meta={**req["meta"], "batch": job.remote_id})
        records.append(record)
        if len(records) >= 1000:  # a result file holds up to 50,000 answers: commit them in chunks
            store.put_many(records)
            records = []
        if budget is not None:
            budget.add(cost)
        answered[req["key"]] = record
        ok += 1
    store.put_many(records)
    missing = job.n - ok
    ledger.update(job, status="collected", answered=ok, failed=missing, remote_status=remote_status)
    msg = f"batch {model.name}: {job.remote_id} {remote_status}: {ok}/{job.n} answered"
    if missing:
        msg += f"; {missing} failed or expired, sent one by one next"
    log(msg)


def batch_status(store_path: str | Path, model: str | None = None) -> list[dict[str, Any]]:
    """Every batch job recorded in a store (for notebooks and the CLI)."""
    ledger = BatchLedger(store_path)
    try:
        return ledger.stats(model)
    finally:
        ledger.close()
