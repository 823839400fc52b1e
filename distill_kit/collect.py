"""The one way distill-kit calls a model: bounded, retried, timed out, and persisted as it arrives.

``collect`` looks every request up in the store first (a re-run costs nothing), sends only what is
missing or failed, honours ``Retry-After`` on 429/5xx with exponential backoff otherwise, abandons a
request after ``timeout`` seconds, and writes each answer (or its final error) the moment it lands.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from tqdm.auto import tqdm

from distill_kit.config import ModelConfig
from distill_kit.providers import (
    Completion,
    FatalError,
    Provider,
    RetryableError,
    make_provider,
)
from distill_kit.providers.base import short_error
from distill_kit.redact import redact, secret_values
from distill_kit.store import Record, Store, StoreFull, request_key, request_keys


@dataclass
class ChatRequest:
    """Messages to send plus bookkeeping; ``meta`` is stored with the answer but is not part of its key."""

    messages: list[dict[str, str]]
    sample: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def user(cls, text: str, *, system: str | None = None, sample: int = 0,
             meta: dict[str, Any] | None = None) -> "ChatRequest":
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return cls(messages=messages, sample=sample, meta=dict(meta or {}))

    def key(self, model: ModelConfig) -> str:
        return request_key(model.cache_identity(), self.messages, self.sample)


@dataclass
class Result:
    key: str
    model: str
    text: str | None
    error: str | None
    usage_in: int = 0
    usage_out: int = 0
    cost: float = 0.0
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


def backoff_delay(attempt: int, cfg: ModelConfig, retry_after: float | None, rng: random.Random) -> float:
    """Server's Retry-After when given (capped), else base * 2**attempt, jittered to 0.5-1x (equal jitter)."""
    if retry_after is not None:
        return min(retry_after, cfg.backoff_max)
    return min(cfg.backoff_max, cfg.backoff_base * (2 ** attempt)) * (0.5 + rng.random() / 2)


def _attempt(provider: Provider, req: ChatRequest, cfg: ModelConfig) -> Any:
    """One timed attempt; a paced provider (ratelimit.Paced) starts the clock when its limiter lets it go."""
    return provider.timed_chat(req.messages, cfg.params, cfg.timeout)


async def _call_with_retries(provider: Provider, cfg: ModelConfig, req: ChatRequest,
                             rng: random.Random) -> tuple[Completion | None, str | None, int, float]:
    attempts, started = 0, time.monotonic()
    error: str | None = None
    for attempt in range(cfg.max_retries + 1):
        attempts += 1
        retry_after: float | None = None
        try:
            completion = await _attempt(provider, req, cfg)
            return completion, None, attempts, time.monotonic() - started
        except asyncio.TimeoutError:
            error = f"timeout after {cfg.timeout:g}s"
        except RetryableError as exc:
            error, retry_after = str(exc), exc.retry_after
        except FatalError as exc:
            return None, str(exc), attempts, time.monotonic() - started
        except Exception as exc:  # noqa: BLE001 - a reply nobody planned for fails this request, not the run
            error = short_error(exc)
        if attempt < cfg.max_retries:
            await asyncio.sleep(backoff_delay(attempt, cfg, retry_after, rng))
    return None, f"gave up after {attempts} attempts: {error}", attempts, time.monotonic() - started


async def collect(model: ModelConfig, requests: Sequence[ChatRequest], store: Store, *,
                  progress: bool = True, desc: str | None = None, seed: int = 0) -> list[Result]:
    """Answers for ``requests`` in order; stored ones are reused, the rest fetched with ``model.concurrency`` in flight."""
    keys = request_keys(model.cache_identity(), [(r.messages, r.sample) for r in requests])
    stored = store.get_many(keys)
    results: dict[str, Result] = {k: _from_record(rec) for k, rec in stored.items() if rec.ok}
    pending: dict[str, ChatRequest] = {}
    for key, req in zip(keys, requests):
        if key not in results and key not in pending:
            pending[key] = req
    budget = _budget_hook() if pending else None
    if pending:
        store.hold_reserve()  # room for the answers about to be paid for, even if the disk fills meanwhile
    try:
        await _send(model, pending, store, results, budget, progress, desc, seed)
    finally:
        store.release_reserve()
    if budget is not None and any(k not in results for k in keys):
        raise budget.exceeded()
    # the caller's meta, not whatever was stored with the first request of that key (a duplicate in
    # this batch, or an earlier run with other probe ids/tags): callers build their tables from it
    return _with_metas(keys, requests, results)


async def _send(model: ModelConfig, pending: dict[str, ChatRequest], store: Store, results: dict[str, Result],
                budget: Any, progress: bool, desc: str | None, seed: int) -> None:
    """Send ``pending`` (batch API, then one request each), storing each answer as it lands into
    ``results``; raises StoreFull once the store's disk is full, after every answer that arrived is kept."""
    if pending and _batch_hook(model):
        from distill_kit.providers.batch import collect_batch

        got = await collect_batch(model, pending, store, budget=budget, progress=progress)
        results.update({k: _from_record(rec, cached=False) for k, rec in got.items()})
        pending = {k: r for k, r in pending.items() if k not in got}
    if pending:
        from distill_kit.ratelimit import pace

        provider = pace(make_provider(model), model)  # adaptive to the server's rate limits (ratelimit.py)
        rng = random.Random(seed)
        bar = tqdm(total=len(pending), desc=desc or f"collect {model.name}", disable=not progress, leave=False)
        secrets = secret_values([model.api_key_env])
        writer = _TurnWriter(store, secrets)
        queue = deque(pending.items())

        params = model.params.model_dump()  # the same for every answer of this call: dumped once, not per answer

        async def worker() -> None:
            # ``model.concurrency`` workers, each taking the next request once its last one is answered:
            # one task per worker, not one per request (100,000 requests are not 100,000 tasks), and no
            # ``asyncio.wait_for`` task per attempt (see ``providers.base.within``).
            while queue:
                if budget is not None and budget.exhausted:
                    return  # the spending cap was reached: leave the rest unsent (see spend.Budget)
                if writer.stopped:
                    return  # the disk is full: send nothing more that could not be stored
                key, req = queue.popleft()
                completion, error, attempts, latency = await _call_with_retries(provider, model, req, rng)
                landed(key, req, completion, error, attempts, latency)
                if queue:
                    # the next request goes out one event-loop turn later, after every answer that landed
                    # in this turn has been read, as a semaphore hands a slot on. Sending it at once, in the
                    # turn its answer landed, was 3-5% slower at 0.2 s latency and N = 32-64 (bench_collect,
                    # docs/results/collection.md): the answers still waiting in that turn were read later.
                    await asyncio.sleep(0)

        def landed(key: str, req: ChatRequest, completion: Completion | None, error: str | None, attempts: int,
                   latency: float) -> None:
            """Persist one request's outcome (within this event-loop turn) and count it."""
            if error is not None:
                error = redact(error, secrets)
            usage_in = completion.usage_in if completion else 0
            usage_out = completion.usage_out if completion else 0
            cost = (usage_in * model.cost_per_mtok_in + usage_out * model.cost_per_mtok_out) / 1e6
            record = Record(key=key, model=model.name, provider=model.provider, messages=req.messages,
                            params=params, sample=req.sample,
                            status="ok" if completion else "error",
                            text=redact(completion.text, secrets) if completion else None,
                            error=error, attempts=attempts, usage_in=usage_in, usage_out=usage_out, cost=cost,
                            latency=latency, meta=req.meta)
            writer.put(record)
            if budget is not None:
                budget.add(cost)
            results[key] = _from_record(record, cached=False)
            bar.update(1)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(model.concurrency, len(pending)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            # never close the client under requests still in flight (they would fail as connection
            # errors the server never saw): on any exit, stop them and wait until they have stopped
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.flush()
            bar.close()
            await provider.aclose()
        writer.raise_if_stopped()


class _TurnWriter:
    """Answers that land in the same event-loop turn share one commit, made at the end of that turn
    (``call_soon``): each answer is still on disk within milliseconds of arriving, and at 100+ answers/s
    the per-answer commit (75% of collect's own CPU per request) is paid once per turn."""

    def __init__(self, store: Store, secrets: list[str] | None = None) -> None:
        self.store, self.queue, self.scheduled = store, [], False
        self.secrets = secrets  # what to redact, read once per call (None: the store reads them per write)
        self.error: StoreFull | None = None

    @property
    def stopped(self) -> bool:
        """The disk filled up: the workers send nothing more (answers in flight are still written)."""
        return self.error is not None or self.store.full

    def put(self, record: Record) -> None:
        self.queue.append(record)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Commit what is queued. A full disk does not raise here (a ``call_soon`` callback's exception
        would only be logged, and collection would go on): the answers stay queued, the workers stop, and
        :meth:`raise_if_stopped` ends the collection with one line."""
        self.scheduled = False
        batch, self.queue = self.queue, []
        try:
            self.store.put_many(batch, self.secrets)
        except StoreFull as exc:
            self.error = exc
            self.queue = batch + self.queue

    def raise_if_stopped(self) -> None:
        if self.queue:
            self.flush()
        if self.error is not None:
            raise StoreFull(self.store.path, self.error, unsaved=len(self.queue))
        if self.store.full:
            raise StoreFull(self.store.path)


def _with_metas(keys: Sequence[str], requests: Sequence[ChatRequest], results: dict[str, Result]) -> list[Result]:
    """One result per request, each carrying its request's ``meta`` and each its own object. An answer
    fetched for this very request already carries it and is returned as it is: a ``dataclasses.replace``
    per request is paid only for stored answers and repeated keys."""
    out: list[Result] = []
    given: set[str] = set()
    for key, req in zip(keys, requests):
        result = results[key]
        if result.meta is not req.meta or key in given:
            result = replace(result, meta=req.meta)
        given.add(key)
        out.append(result)
    return out


def _budget_hook() -> Any:
    """The run's spending cap (``--max-cost``), or None; raises at once when it is already spent."""
    from distill_kit.spend import active_budget

    budget = active_budget()
    if budget is not None and budget.exhausted:
        raise budget.exceeded()
    return budget


def _batch_hook(model: ModelConfig) -> bool:
    from distill_kit.spend import batch_on

    return batch_on(model)


_worker: tuple[threading.Thread, asyncio.AbstractEventLoop] | None = None
_worker_lock = threading.Lock()


def _worker_loop() -> asyncio.AbstractEventLoop:
    """One long-lived event-loop thread per process.

    It must outlive every call: a local llama.cpp server dies with the thread that started it
    (PR_SET_PDEATHSIG is per thread), so a throw-away thread per call would kill it between calls.
    """
    global _worker
    with _worker_lock:
        if _worker is None or not _worker[0].is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="distill-kit-collect", daemon=True)
            thread.start()
            _worker = (thread, loop)
        return _worker[1]


def collect_sync(model: ModelConfig, requests: Sequence[ChatRequest], store: Store, **kwargs: Any) -> list[Result]:
    """``collect`` for scripts and notebooks; inside a running event loop (Jupyter) or off the main
    thread it runs on the process's long-lived collection thread."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop and threading.current_thread() is threading.main_thread():
        return asyncio.run(collect(model, requests, store, **kwargs))
    return asyncio.run_coroutine_threadsafe(collect(model, requests, store, **kwargs), _worker_loop()).result()


def _from_record(rec: Record, cached: bool = True) -> Result:
    return Result(key=rec.key, model=rec.model, text=rec.text if rec.ok else None,
                  error=None if rec.ok else rec.error, usage_in=rec.usage_in, usage_out=rec.usage_out,
                  cost=rec.cost, cached=cached, meta=rec.meta)


def outcome_line(model: str, results: Sequence[Result]) -> str:
    """One line per model for notebooks and logs; raises when nothing at all came back."""
    ok = sum(r.ok for r in results)
    cached = sum(r.cached for r in results)
    line = f"{model}: {ok}/{len(results)} answered, {cached} from the store"
    failed = [r for r in results if not r.ok]
    if failed:
        line += f"; {len(failed)} failed (stored, retried on the next run), e.g. {failed[0].error}"
    if results and not ok:
        raise RuntimeError(line)
    return line
