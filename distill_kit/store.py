"""Response store: every request and answer, written the moment it arrives.

SQLite in WAL mode: each answer is its own committed transaction, so a run killed at any point
(even ``kill -9``) keeps everything that finished, and the primary key (a hash of model, messages,
generation settings and sample index) makes a re-run pick up exactly where it stopped without
duplicates. Failed requests are stored with their error and are retried by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from errno import EACCES, EDQUOT, ENOSPC, EPERM, EROFS
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import polars as pl

from distill_kit.config import ConfigError
from distill_kit.paths import SQLITE_NO_SPACE, SQLITE_READ_ONLY, default_store_path, unwritable_line

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    messages TEXT NOT NULL,
    params TEXT NOT NULL,
    sample INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    text TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    usage_in INTEGER NOT NULL DEFAULT 0,
    usage_out INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    latency REAL,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_model ON responses(model);
CREATE TABLE IF NOT EXISTS fuzz_attempts (
    key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    run_seed INTEGER NOT NULL,
    iteration INTEGER,
    template_id TEXT,
    parent TEXT,
    mutator TEXT,
    template TEXT,
    probe_id TEXT,
    query TEXT,
    language TEXT,
    category TEXT,
    prompt TEXT,
    answer_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    response TEXT,
    error TEXT,
    verdict INTEGER,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS fuzz_attempts_target ON fuzz_attempts(target);
"""

FUZZ_COLUMNS = ["key", "target", "run_seed", "iteration", "template_id", "parent", "mutator", "template", "probe_id",
                "query", "language", "category", "prompt", "answer_key", "status", "response", "error", "verdict"]
# fuzz attempts were once stored as responses of a fake model "<target>:fuzz" (provider "fuzz"); opening
# such a store moves them into their own table, so a fuzz run killed before the move still resumes
_MOVE_OLD_FUZZ_ROWS = """
INSERT OR IGNORE INTO fuzz_attempts (key, target, run_seed, iteration, template_id, parent, mutator, template,
    probe_id, query, language, category, prompt, answer_key, status, response, error, verdict, created_at)
SELECT key, substr(model, 1, length(model) - 5), sample, json_extract(meta, '$.iteration'),
    json_extract(meta, '$.template_id'), json_extract(meta, '$.parent'), json_extract(meta, '$.mutator'),
    json_extract(meta, '$.template'), json_extract(meta, '$.probe_id'), json_extract(meta, '$.query'),
    json_extract(meta, '$.language'), json_extract(meta, '$.category'), json_extract(messages, '$[0].content'),
    coalesce(json_extract(meta, '$.answer_key'), ''), status, text, error, json_extract(meta, '$.verdict_loose'),
    created_at
FROM responses WHERE provider = 'fuzz' AND model LIKE '%:fuzz' ORDER BY created_at, key;
DELETE FROM responses WHERE provider = 'fuzz' AND model LIKE '%:fuzz';
"""

COLUMNS = ["key", "model", "provider", "messages", "params", "sample", "status", "text", "error", "attempts",
           "usage_in", "usage_out", "cost", "latency", "meta", "created_at", "updated_at"]


def request_key(identity: dict[str, Any], messages: Sequence[dict[str, str]], sample: int) -> str:
    """Stable hash of what determines an answer; retries and timeouts are deliberately left out.

    The sha256 of ``{"messages": ..., "model": identity, "sample": ...}`` as canonical JSON (sorted keys,
    no spaces, UTF-8)."""
    return request_keys(identity, [(messages, sample)])[0]


_KEY_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
#: What ``json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` returns, from one
#: encoder made once: ``json.dumps`` with any non-default option builds a new encoder per call, which was
#: a third of the cost of a key (collect keys every request of a call before sending any).
_key_json = _KEY_ENCODER.encode


def request_keys(identity: dict[str, Any], items: Iterable[tuple[Sequence[dict[str, str]], int]]) -> list[str]:
    """:func:`request_key` of many ``(messages, sample)`` pairs of one model, its identity serialised once
    (the bytes are those of the whole object serialised at once: sorted keys put ``model`` between
    ``messages`` and ``sample``). Why: the identity holds every generation setting, and serialising it again
    per request was most of the cost of a key (collect keys every request before sending any)."""
    model = _key_json(identity)
    return [hashlib.sha256(f'{{"messages":{_key_json(list(messages))},"model":{model},"sample":{_key_json(sample)}}}'
                           .encode("utf-8")).hexdigest() for messages, sample in items]


@dataclass
class Record:
    key: str
    model: str
    provider: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    sample: int
    status: str
    text: str | None
    error: str | None
    attempts: int
    usage_in: int
    usage_out: int
    cost: float
    latency: float | None
    meta: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class FuzzAttempt:
    """One judged GPTFuzzer attempt: a mutant template around a probe, the target's answer and the verdict.

    The answer itself is an ordinary response row (``answer_key``), kept immutable once ok; the attempt
    row adds what the fuzzer knows about it. ``key`` is derived from the run seed, iteration and answer
    key, so a re-run of the same fuzzing writes the same rows again instead of new ones."""

    key: str
    target: str
    run_seed: int
    iteration: int | None
    template_id: str | None
    parent: str | None
    mutator: str | None
    template: str | None
    probe_id: str | None
    query: str | None
    language: str | None
    category: str | None
    prompt: str | None
    answer_key: str
    status: str
    response: str | None
    error: str | None
    verdict: bool | None


class StoreError(ConfigError):
    """The store file cannot be used (damaged, or not a response store): one line naming the file and
    what to do. The file is never modified: its answers may still be recoverable with sqlite3 tools."""


def check_store(path: str | Path, thorough: bool = True) -> None:
    """Refuse a damaged or foreign ``path`` before anything writes to it (a missing or empty file is fine).

    Opened read-only, so a damaged file stays byte-for-byte as it was; ``thorough`` runs SQLite's
    ``quick_check`` (finds truncation), otherwise only the header and schema are read.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        return
    what = ("move it aside (or delete it) and run again to start a fresh store, or point store_path at a "
            "good copy; the file was not changed")
    try:
        # immutable: not even a -shm/-wal file is created next to a damaged store (with a live WAL, plain
        # read-only: the WAL's pages count, and its -shm already exists)
        wal = path.with_name(path.name + "-wal").exists()
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StoreError(f"response store {path} cannot be opened ({exc}); {what}") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "responses" not in tables:
            raise StoreError(f"{path} is an SQLite file but not a distill-kit response store (no responses table); "
                             "use another store_path, or move the file aside")
        if "responses" in tables:
            have = {r[1] for r in conn.execute("PRAGMA table_info(responses)")}
            missing = [c for c in COLUMNS if c not in have]
            if missing:
                raise StoreError(f"response store {path} lacks column(s) {', '.join(missing)}; {what}")
        if thorough:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise StoreError(f"response store {path} is damaged ({'; '.join(problems)[:160]}); {what}")
    except sqlite3.Error as exc:  # "file is not a database", "database disk image is malformed"
        raise StoreError(f"response store {path} is damaged ({exc}); {what}") from None
    finally:
        conn.close()


class StoreFull(OSError):
    """The store's folder cannot take another answer (full, or read-only). Its text names the folder and
    says what to do (free space, run again); every answer already written stays, and collection stops at
    once instead of sending requests whose answers could not be kept."""

    def __init__(self, path: Path, exc: BaseException | None = None, unsaved: int = 0):
        errno = getattr(exc, "errno", None) or ENOSPC
        text = str(exc or "")
        if isinstance(exc, sqlite3.Error) and any(s in text.lower() for s in SQLITE_READ_ONLY):
            errno = EROFS
        line = unwritable_line(errno, path, text) or f"response store {path} cannot be written ({text})"
        lost = f"; {unsaved} answer(s) that arrived could not be stored and will be asked again" if unsaved else ""
        super().__init__(errno, line + lost, str(path))

    def __str__(self) -> str:
        # "[Errno 28] <line>: '<store path>'": the runner finds the errno and the path in the kernel's text
        return f"[Errno {self.errno}] {self.strerror}: '{self.filename}'"


RESERVE_BYTES = 4 << 20
"""Space set aside next to a store while answers arrive (``<store>-reserve``): when the disk fills up,
it is given back to SQLite so the answers already paid for and in flight are still written."""


def _unwritable(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (ENOSPC, EDQUOT, EROFS, EACCES, EPERM)
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(s in text for s in SQLITE_NO_SPACE + SQLITE_READ_ONLY)


def stored_errors_since(path: str | Path, since: float) -> int:
    """How many requests in the store at ``path`` were written as errors at or after ``since`` (epoch
    seconds); 0 when there is no store. Read-only: the runner asks this after each step, and a step that
    stored errors is run again by the next run, which sends only those requests."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT COUNT(*) FROM responses WHERE status = 'error' AND updated_at >= ?",
                               [since]).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0])


class Store:
    """One SQLite file; safe to share between the event loop and worker threads of one process."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self.reserve: Path | None = None  # set while collect holds space for arriving answers
        self.full = False  # a write needed the reserve: stop sending, keep what arrives
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreFull(self.path, exc) from None
        check_store(self.path, thorough=False)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreFull(self.path, exc) from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            self._move_old_fuzz_rows()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if _unwritable(exc):
                raise StoreFull(self.path, exc) from None
            raise StoreError(f"response store {self.path} cannot be used ({exc}); move it aside and run again") from None

    def hold_reserve(self) -> None:
        """Set :data:`RESERVE_BYTES` aside next to the store before requests go out (StoreFull if the disk
        cannot spare it: then nothing is sent that could not be stored)."""
        if self.reserve is not None:
            return
        reserve = self.path.with_name(self.path.name + "-reserve")
        try:
            with open(reserve, "wb") as fh:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fh.fileno(), 0, RESERVE_BYTES)
                else:  # macOS: real blocks, written (a sparse file would reserve nothing)
                    fh.write(b"\0" * RESERVE_BYTES)
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            raise StoreFull(self.path, exc) from None
        self.reserve, self.full = reserve, False

    def release_reserve(self) -> None:
        if self.reserve is not None:
            self.reserve.unlink(missing_ok=True)
            self.reserve = None

    def _move_old_fuzz_rows(self) -> None:
        if not self._conn.execute("SELECT 1 FROM responses WHERE provider = 'fuzz' LIMIT 1").fetchone():
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _MOVE_OLD_FUZZ_ROWS.split(";")):
                self._conn.execute(statement)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self.release_reserve()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Record] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                cur = self._conn.execute(f"SELECT {','.join(COLUMNS[:15])} FROM responses WHERE key IN ({marks})", chunk)
                for row in cur.fetchall():
                    found[row[0]] = _record(row)
        return found

    def get(self, key: str) -> Record | None:
        return self.get_many([key]).get(key)

    def put(self, record: Record) -> None:
        """Insert or update one answer in its own transaction (an ok answer is never overwritten by an error).

        Texts, errors, messages and meta are stored with every key value redacted (see ``redact``): a
        provider may echo the key in an error, a model may repeat it."""
        self.put_many([record])

    def put_many(self, records: Sequence[Record], secrets: Sequence[str] | None = None) -> None:
        """``put`` for answers that arrived together: one transaction, one commit (collect writes what
        landed in one event-loop turn at once; a commit costs more than the insert).

        ``secrets``: the values to redact, when the caller already holds them (``redact.secret_values``,
        or a superset of it). Why: reading them scans the environment and stats the models file, and
        ``collect`` writes up to one batch per answer."""
        from distill_kit.redact import redact, redact_value, secret_values

        now = time.time()
        secrets = secret_values() if secrets is None else list(secrets)
        params: dict[int, str] = {}  # the answers of one call share their params dict: serialised once
        rows = [(r.key, r.model, r.provider, _dumps(redact_value(r.messages, secrets)),
                 params.get(id(r.params)) or params.setdefault(id(r.params), _dumps(r.params)), r.sample,
                 r.status, redact(r.text, secrets), redact(r.error, secrets), r.attempts, r.usage_in, r.usage_out,
                 r.cost, r.latency, _dumps(redact_value(r.meta, secrets)), now, now)
                for r in records]
        if not rows:
            return
        sql = (f"INSERT INTO responses ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))}) "
               "ON CONFLICT(key) DO UPDATE SET status=excluded.status, text=excluded.text, error=excluded.error, "
               "attempts=responses.attempts + excluded.attempts, usage_in=responses.usage_in + excluded.usage_in, "
               "usage_out=responses.usage_out + excluded.usage_out, cost=responses.cost + excluded.cost, "
               "latency=excluded.latency, meta=excluded.meta, updated_at=excluded.updated_at "
               "WHERE responses.status != 'ok'")
        try:
            self._write(sql, rows)
        except (sqlite3.OperationalError, OSError) as exc:
            if not _unwritable(exc):
                raise
            if self.reserve is None:
                raise StoreFull(self.path, exc) from None
            # the disk is full: give SQLite the reserved space so these answers (and those still in flight)
            # are kept, and tell collect to stop sending
            self.release_reserve()
            self.full = True
            try:
                self._write(sql, rows)
            except (sqlite3.OperationalError, OSError) as again:
                raise StoreFull(self.path, again) from None

    def _write(self, sql: str, rows: list[tuple]) -> None:
        with self._lock:
            if len(rows) == 1:
                self._conn.execute(sql, rows[0])
                return
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # a failed COMMIT (disk full) leaves the transaction open
                    self._conn.execute("ROLLBACK")
                raise

    def count(self, model: str | None = None, status: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM responses WHERE 1=1", []
        if model:
            sql, args = sql + " AND model = ?", args + [model]
        if status:
            sql, args = sql + " AND status = ?", args + [status]
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])

    def frame(self, model: str | Sequence[str] | None = None, status: str | None = None) -> pl.DataFrame:
        """All stored rows as polars; ``prompt`` is the last user message, ``meta`` is unpacked to columns."""
        sql, args = f"SELECT {','.join(COLUMNS)} FROM responses WHERE 1=1", []
        if model:
            names = [model] if isinstance(model, str) else list(model)
            sql += f" AND model IN ({','.join('?' * len(names))})"
            args += names
        if status:
            sql, args = sql + " AND status = ?", args + [status]
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at, key", args).fetchall()
        schema = {"key": pl.String, "model": pl.String, "provider": pl.String, "messages": pl.String,
                  "params": pl.String, "sample": pl.Int64, "status": pl.String, "text": pl.String,
                  "error": pl.String, "attempts": pl.Int64, "usage_in": pl.Int64, "usage_out": pl.Int64,
                  "cost": pl.Float64, "latency": pl.Float64, "meta": pl.String, "created_at": pl.Float64,
                  "updated_at": pl.Float64}
        frame = pl.DataFrame(rows, schema=schema, orient="row")
        prompts = [last_user(json.loads(m)) for m in frame["messages"]]
        frame = frame.with_columns(pl.Series("prompt", prompts, dtype=pl.String))
        metas = [json.loads(m) for m in frame["meta"]]
        meta_keys = sorted({k for m in metas for k in m} - set(frame.columns))
        for k in meta_keys:
            frame = frame.with_columns(pl.Series(k, [_scalar(m.get(k)) for m in metas], dtype=pl.String))
        return frame

    def models(self) -> list[str]:
        """Every model name with stored answers, sorted."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT model FROM responses ORDER BY model")]

    def usage(self) -> pl.DataFrame:
        """Token usage and cost per model: what a run spent."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT model, COUNT(*), SUM(status='ok'), SUM(status='error'), SUM(attempts), SUM(usage_in), "
                "SUM(usage_out), SUM(cost) FROM responses GROUP BY model ORDER BY model").fetchall()
        return pl.DataFrame(rows, orient="row", schema={
            "model": pl.String, "requests": pl.Int64, "ok": pl.Int64, "errors": pl.Int64, "attempts": pl.Int64,
            "tokens_in": pl.Int64, "tokens_out": pl.Int64, "cost_usd": pl.Float64})

    def put_fuzz_attempt(self, attempt: FuzzAttempt) -> None:
        """Record one judged attempt in its own transaction (redacted like answers). An ok attempt is never
        overwritten: a re-run of the same fuzzing keeps the first verdict; an errored one is replaced."""
        from distill_kit.redact import redact, secret_values

        secrets = secret_values()
        texts = {"template", "query", "prompt", "response", "error"}
        row = [redact(getattr(attempt, c), secrets) if c in texts else getattr(attempt, c) for c in FUZZ_COLUMNS]
        row[FUZZ_COLUMNS.index("verdict")] = None if attempt.verdict is None else int(attempt.verdict)
        updates = ", ".join(f"{c}=excluded.{c}" for c in FUZZ_COLUMNS[1:])
        with self._lock:
            self._conn.execute(
                f"INSERT INTO fuzz_attempts ({','.join(FUZZ_COLUMNS)}, created_at) "
                f"VALUES ({','.join('?' * (len(FUZZ_COLUMNS) + 1))}) "
                f"ON CONFLICT(key) DO UPDATE SET {updates} WHERE fuzz_attempts.status != 'ok'", [*row, time.time()])

    def fuzz_attempts(self, target: str | None = None) -> pl.DataFrame:
        """Stored fuzz attempts (of ``target``, or all) in the order they were first written; ``verdict`` is a
        nullable bool (None: the judge gave none)."""
        sql, args = f"SELECT {','.join(FUZZ_COLUMNS)} FROM fuzz_attempts", []
        if target is not None:
            sql, args = sql + " WHERE target = ?", [target]
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY rowid", args).fetchall()
        ints = {"run_seed", "iteration"}
        schema = {c: pl.Int64 if c in ints else pl.Boolean if c == "verdict" else pl.String for c in FUZZ_COLUMNS}
        rows = [(*r[:-1], None if r[-1] is None else bool(r[-1])) for r in rows]
        return pl.DataFrame(rows, schema=schema, orient="row")

    def fuzz_targets(self) -> list[str]:
        """Every model with stored fuzz attempts, sorted."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT target FROM fuzz_attempts ORDER BY target")]


_STORE_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)
#: ``json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)`` from one encoder made once
#: (three per stored answer; see :data:`_key_json`).
_dumps = _STORE_ENCODER.encode


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def last_user(messages: Sequence[Mapping[str, str]]) -> str:
    """The last user turn of a chat: the prompt an answer answers."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def _record(row: Sequence[Any]) -> Record:
    return Record(key=row[0], model=row[1], provider=row[2], messages=json.loads(row[3]), params=json.loads(row[4]),
                  sample=row[5], status=row[6], text=row[7], error=row[8], attempts=row[9], usage_in=row[10],
                  usage_out=row[11], cost=row[12], latency=row[13], meta=json.loads(row[14]))
