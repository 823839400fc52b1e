"""The registry of upstream data files and their download into a data folder: async, bounded, resumable,
atomic, checksummed. (:mod:`distill_kit.datasets` reads folders and imports the registry from here; this module
imports nothing of the package, so the two never import each other.)

Why this shape: the published record is ~115 files / ~150 MB from raw.githubusercontent.com, fetched on
laptops with flaky networks. Each file streams into ``<path>.part`` as it arrives (so an interrupted
fetch resumes with an HTTP ``Range`` request), is checked against the registry's size and sha256 of the
upstream bytes, then gzipped (when the folder layout says ``.gz``) and moved into place with
``os.replace``: a folder never holds a half-written file under its real name. At most ``concurrency``
downloads run at once; 429/5xx and network errors are retried with exponential backoff, honouring
``Retry-After``.

``DISTILL_KIT_DATA_MIRROR`` (or ``base_url=``) replaces the ``https://raw.githubusercontent.com/`` prefix
of every URL: a mirror laid out the same way, or a loopback server in tests.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import os
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Sequence

MIRROR_ENV = "DISTILL_KIT_DATA_MIRROR"
UPSTREAM_PREFIX = "https://raw.githubusercontent.com/"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REGISTRY_FILE = Path(__file__).with_name("registry.csv")


class DataError(ValueError):
    """A data file is missing, corrupt or unknown: one line saying which and what to do."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative path inside the data directory (gzipped where upstream is not)
    sha256: str  # of the upstream bytes (decompressed)
    size: int
    url: str | None  # public raw-file URL at a pinned commit

    @property
    def cache_name(self) -> str:
        return self.path.removesuffix(".gz")


@lru_cache(maxsize=1)
def registry() -> dict[str, Entry]:
    """Every upstream file the project knows of (``upstream_manifest.csv``), by path in a data folder."""
    with REGISTRY_FILE.open(encoding="utf-8") as fh:
        return {r["path"]: Entry(r["path"], r["sha256"], int(r["size"]), r["url"] or None) for r in csv.DictReader(fh)}


@dataclass
class FetchResult:
    path: str
    status: str  # downloaded | resumed | present | failed
    bytes: int = 0
    error: str = ""


def source_url(entry: Entry, base_url: str | None = None) -> str:
    """The URL to fetch ``entry`` from, with the mirror prefix applied."""
    if not entry.url:
        raise DataError(f"{entry.path} has no public URL")
    base = base_url if base_url is not None else os.environ.get(MIRROR_ENV, "")
    if base and entry.url.startswith(UPSTREAM_PREFIX):
        return base.rstrip("/") + "/" + entry.url[len(UPSTREAM_PREFIX):]
    return entry.url


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import datetime as dt

        return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def _verify(entry: Entry, part: Path) -> None:
    size = part.stat().st_size
    if size != entry.size:
        raise DataError(f"{entry.path}: downloaded {size} bytes, expected {entry.size}")
    digest = hashlib.sha256()
    with part.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != entry.sha256:
        part.unlink(missing_ok=True)
        raise DataError(f"{entry.path}: sha256 {digest.hexdigest()[:12]}… expected {entry.sha256[:12]}… (deleted; fetch again)")


def _install(entry: Entry, part: Path, target: Path) -> None:
    """Move a verified download into place atomically, gzipped when the folder layout says so."""
    if entry.path.endswith(".gz"):
        tmp = target.with_name(target.name + ".tmp")
        with part.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                dst.write(block)
        os.replace(tmp, target)
        part.unlink()
    else:
        os.replace(part, target)


async def _fetch_one(client, entry: Entry, root: Path, url: str, retries: int, bar) -> FetchResult:
    import httpx

    target = root / entry.path
    part = target.with_name(target.name.removesuffix(".gz") + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    resumed = part.exists() and part.stat().st_size > 0
    rng = random.Random(entry.sha256)
    error = ""
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > entry.size:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if 0 < have < entry.size else {}
        wait: float | None = None
        try:
            if have < entry.size:
                async with client.stream("GET", url, headers=headers) as resp:
                    if resp.status_code in RETRY_STATUS:
                        wait = retry_after_seconds(resp.headers.get("retry-after"))
                        raise httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)
                    if resp.status_code == 416:  # range beyond the end: start over
                        part.unlink(missing_ok=True)
                        raise httpx.HTTPStatusError("HTTP 416", request=resp.request, response=resp)
                    if resp.status_code >= 400:
                        return FetchResult(entry.path, "failed", error=f"HTTP {resp.status_code} from {url}")
                    mode = "ab" if headers and resp.status_code == 206 else "wb"
                    if mode == "wb" and bar is not None and have:
                        bar.update(-have)
                    with part.open(mode) as fh:
                        async for chunk in resp.aiter_bytes(1 << 16):
                            fh.write(chunk)
                            fh.flush()
                            if bar is not None:
                                bar.update(len(chunk))
            _verify(entry, part)
            _install(entry, part, target)
            return FetchResult(entry.path, "resumed" if resumed else "downloaded", entry.size)
        except (httpx.HTTPError, OSError) as exc:
            error = str(exc) or type(exc).__name__
        except DataError as exc:
            error = str(exc)
        if attempt < retries:
            delay = wait if wait is not None else min(30.0, 0.5 * 2 ** attempt) * (0.5 + 0.5 * rng.random())
            await asyncio.sleep(min(delay, 60.0))
    return FetchResult(entry.path, "failed", error=f"{error} (after {retries + 1} attempts; run again to resume)")


async def fetch_async(entries: Sequence[Entry], root: Path, *, base_url: str | None = None, concurrency: int = 4,
                      retries: int = 4, timeout: float = 60.0, progress: bool = True) -> list[FetchResult]:
    """Fetch ``entries`` missing from ``root``; files already present are left alone (``present``)."""
    import httpx
    from tqdm.auto import tqdm

    todo = [e for e in entries if not (root / e.path).is_file()]
    results = [FetchResult(e.path, "present") for e in entries if (root / e.path).is_file()]
    if not todo:
        return results
    bar = tqdm(total=sum(e.size for e in todo), unit="B", unit_scale=True, desc=f"fetch {len(todo)} file(s)") if progress else None
    if bar is not None:  # bytes already in .part files count as done
        bar.update(sum(min(_part(root, e).stat().st_size, e.size) for e in todo if _part(root, e).exists()))
    sem = asyncio.Semaphore(max(1, concurrency))
    limits = httpx.Limits(max_connections=max(1, concurrency))
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits, follow_redirects=True) as client:
        async def one(e: Entry) -> FetchResult:
            async with sem:
                return await _fetch_one(client, e, root, source_url(e, base_url), retries, bar)

        results += await asyncio.gather(*(one(e) for e in todo))
    if bar is not None:
        bar.close()
    return sorted(results, key=lambda r: r.path)


def _part(root: Path, e: Entry) -> Path:
    target = root / e.path
    return target.with_name(target.name.removesuffix(".gz") + ".part")


def fetch(entries: Sequence[Entry], root: Path, **kwargs) -> list[FetchResult]:
    """Synchronous :func:`fetch_async`; raises :class:`DataError` (one line) when any file failed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        results = asyncio.run(fetch_async(entries, root, **kwargs))
    else:  # inside a running loop (a notebook): run in a worker thread
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            results = pool.submit(asyncio.run, fetch_async(entries, root, **kwargs)).result()
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise DataError(f"could not fetch {len(failed)} file(s): {failed[0].path}: {failed[0].error}")
    return results


def select(pattern: str | None) -> list[Entry]:
    """Registered entries matching a glob or substring of their path (all when ``pattern`` is empty)."""
    import fnmatch

    reg = registry()
    if not pattern:
        return list(reg.values())
    chosen = [e for p, e in reg.items() if fnmatch.fnmatch(p, pattern) or pattern in p]
    if not chosen:
        raise DataError(f"no registered file matches {pattern!r} (see: distill-kit data list)")
    return chosen
