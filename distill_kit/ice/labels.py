"""Human labels of judged answers, stored as they are clicked (append-only SQLite beside the run or store).

Why: the offline judge disagrees with GPT-4o-mini on a measurable share of answers (README, ICE section); an
analyst who labels a small random sample by hand lets a prediction-powered estimate correct LIS/SIS. This
module only stores the labels: every click appends one row (nothing is ever updated or deleted), and the
*current* label of an answer is its latest row, so earlier labels stay as history.

A row carries the answer's full label state after the click (``loose_label`` and ``strict_label``, each
True/False/None = not labelled yet): clicking "claims OpenAI/Anthropic: yes" after "contradicts identity"
keeps the loose label, so the latest row alone says everything.

``key`` is the answer's stable id, :func:`answer_key` (a hash of model, prompt and answer text), which is what
the notebook-03 answer browser shows and labels; it is the same in every run that sees the same answer.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import polars as pl

LABELS_FILE = "labels.sqlite"
COLUMNS = ("model", "key", "loose_label", "strict_label", "labeller", "time")
_UNSET: Any = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    loose_label INTEGER,
    strict_label INTEGER,
    labeller TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_answer ON labels (model, key, id);
"""

_SCHEMA_PL = {"model": pl.String, "key": pl.String, "loose_label": pl.Boolean, "strict_label": pl.Boolean,
              "labeller": pl.String, "time": pl.Datetime("us", "UTC")}


def answer_key(model: str, prompt: str | None, answer: str | None) -> str:
    """Stable id of one answer: the same model, prompt and text give the same key in every run."""
    h = hashlib.sha256()
    for part in (model, prompt or "", answer or ""):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def labels_path(run_dir: str | Path | None = None, store_path: str | Path | None = None) -> Path:
    """Where labels go: ``<run_dir>/labels.sqlite`` for a pipeline run, else beside the response store."""
    if run_dir:
        return Path(run_dir) / LABELS_FILE
    if store_path:
        return Path(store_path).parent / LABELS_FILE
    from distill_kit.paths import default_store_path

    return default_store_path().parent / LABELS_FILE


def default_labeller() -> str:
    """The analyst's name: ``DISTILL_KIT_LABELLER`` if set, else the login name."""
    name = os.environ.get("DISTILL_KIT_LABELLER", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still label, anonymously
        return "unknown"


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


class LabelStore:
    """Append-only label log in one SQLite file (WAL, so a notebook and a script can label at once)."""

    def __init__(self, path: str | Path, labeller: str | None = None) -> None:
        self.path = Path(path)
        self.labeller = labeller or default_labeller()
        # widget callbacks run on the kernel's comm thread, not the thread that made the store: one
        # connection shared across threads, serialised by a lock; opened on first use, and the file is only
        # created by the first label (a run nobody labels gets no labels file)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self, create: bool) -> sqlite3.Connection | None:
        """The connection (caller holds the lock); None when the file does not exist and ``create`` is False."""
        if self._conn is None:
            if not create and not self.path.is_file():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def current(self, model: str, key: str) -> dict[str, Any] | None:
        """The latest label row of one answer (any labeller), or None when it was never labelled."""
        with self._lock:
            db = self._db(create=False)
            row = None if db is None else db.execute(
                "SELECT model, key, loose_label, strict_label, labeller, time FROM labels "
                "WHERE model = ? AND key = ? ORDER BY id DESC LIMIT 1", (model, key)).fetchone()
        if row is None:
            return None
        return {"model": row[0], "key": row[1], "loose_label": _bool(row[2]), "strict_label": _bool(row[3]),
                "labeller": row[4], "time": row[5]}

    def label(self, model: str, key: str, *, loose: bool | None = _UNSET, strict: bool | None = _UNSET,
              labeller: str | None = None) -> dict[str, Any]:
        """Record one click: set the loose and/or strict label of an answer (``None`` clears one).

        A label not given keeps its current value, so the new row is the answer's whole state. Returns it.
        """
        if not model or not key:
            raise ValueError("a label needs the answer's model and key")
        if loose is _UNSET and strict is _UNSET:
            raise ValueError("give loose=, strict= or both")
        before = self.current(model, key) or {}
        new_loose = before.get("loose_label") if loose is _UNSET else _bool(loose)
        new_strict = before.get("strict_label") if strict is _UNSET else _bool(strict)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
        who = labeller or self.labeller
        with self._lock:
            self._db(create=True).execute(  # type: ignore[union-attr]
                "INSERT INTO labels (model, key, loose_label, strict_label, labeller, time) VALUES (?, ?, ?, ?, ?, ?)",
                (model, key, None if new_loose is None else int(new_loose),
                 None if new_strict is None else int(new_strict), who, now))
        return {"model": model, "key": key, "loose_label": new_loose, "strict_label": new_strict,
                "labeller": who, "time": now}

    def frame(self, history: bool = False) -> pl.DataFrame:
        """Labels as a polars frame (``model, key, loose_label, strict_label, labeller, time``).

        By default one row per answer, its latest label; ``history=True`` gives every click in order.
        """
        with self._lock:
            db = self._db(create=False)
            rows = [] if db is None else db.execute(
                "SELECT model, key, loose_label, strict_label, labeller, time FROM labels ORDER BY id").fetchall()
        data = {c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}
        out = pl.DataFrame(
            {**data, "time": [_dt.datetime.fromisoformat(t) for t in data["time"]],
             "loose_label": [_bool(v) for v in data["loose_label"]],
             "strict_label": [_bool(v) for v in data["strict_label"]]},
            schema=_SCHEMA_PL)
        if history:
            return out
        return out.unique(subset=["model", "key"], keep="last", maintain_order=True)


def read_labels(path: str | Path, history: bool = False) -> pl.DataFrame:
    """Labels stored at ``path`` as a frame (empty, with the columns, when the file does not exist)."""
    p = Path(path)
    if not p.is_file():
        return pl.DataFrame(schema=_SCHEMA_PL)
    with LabelStore(p) as store:
        return store.frame(history=history)


def load_labels(path: str | Path) -> pl.DataFrame:
    """Labelled answers from ``path``: a labels.sqlite of the answer browser, or a csv/parquet a user wrote
    (columns model, key, loose_label, strict_label; key = the answer's row or :func:`answer_key`)."""
    p = str(path)
    if p.endswith(".sqlite"):
        return read_labels(p)
    return pl.read_parquet(p) if p.endswith(".parquet") else pl.read_csv(p, schema_overrides={"key": pl.String})
