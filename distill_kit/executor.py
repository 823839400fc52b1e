"""Where the CPU-heavy steps run: in this process (default) or on a Ray cluster, as the same functions.

Why: embedding, stylometric feature extraction and the offline judges are pure functions of their
input rows. On one laptop they run in-process; over hundreds of thousands of answers they can be fanned
out to a Ray cluster without a second code path. The package calls :func:`map_batches` (or
:func:`imap_batches` when results should be persisted as they arrive) with a module-level function
``fn(batch) -> list`` or ``fn(batch, context) -> list``; the items are cut into the *same* batches
whichever executor runs them, so the results are equal, not just close.

Choosing the executor, first match wins:

1. ``executor=`` passed to the call;
2. :func:`use` (notebooks call ``use(executor)`` with their ``executor`` parameter, which a run config's
   ``executor: local | ray`` sets);
3. the ``DISTILL_KIT_EXECUTOR`` environment variable;
4. ``"local"``.

Ray is imported only when the ray executor is used (``pip install 'distill-kit[cluster]'``). The driver
joins the cluster named by Ray's own ``RAY_ADDRESS`` variable (``auto``, ``ray://head:10001``), or starts
a private local one when it is unset. Every node needs the same distill-kit installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from distill_kit.config import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS: tuple[str, ...] = ("local", "ray")
ENV_VAR = "DISTILL_KIT_EXECUTOR"
DEFAULT_BATCH_SIZE = 256
"""Items per batch (one Ray task) unless the caller says otherwise."""

_current: str | None = None


def check(name: str | None) -> str:
    """A valid executor name (lower-cased) or one clear ConfigError line."""
    value = (name or "local").strip().lower()
    if value not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
    return value


def resolve(executor: str | None = None) -> str:
    """The executor a call uses: explicit argument, then :func:`use`, then ``$DISTILL_KIT_EXECUTOR``."""
    if executor:
        return check(executor)
    if _current:
        return _current
    return check(os.environ.get(ENV_VAR) or "local")


def use(executor: str | None) -> str:
    """Set this process's default executor (``None`` or ``""`` resets it); returns the one now in force.

    Notebooks call this once with their ``executor`` parameter so every package call below routes there.
    """
    global _current
    _current = check(executor) if executor else None
    return resolve()


@contextmanager
def using(executor: str | None) -> Iterator[str]:
    """``with using("ray"): ...`` -- the default executor inside the block, restored afterwards."""
    global _current
    before = _current
    try:
        yield use(executor)
    finally:
        _current = before


def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of ``n`` items; the same cut for every executor."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _call(fn: Callable[..., Sequence[R]], batch: list[Any], context: Any, has_context: bool) -> list[R]:
    out = fn(batch, context) if has_context else fn(batch)
    out = list(out)
    if len(out) != len(batch):
        name = getattr(fn, "__qualname__", repr(fn))
        raise ValueError(f"{name} returned {len(out)} results for a batch of {len(batch)} items")
    return out


_NO_CONTEXT = object()


def imap_batches(
    fn: Callable[..., Sequence[R]],
    items: Sequence[T],
    *,
    executor: str | None = None,
    batch_size: int | None = None,
    context: Any = _NO_CONTEXT,
    max_in_flight: int | None = None,
) -> Iterator[tuple[int, list[R]]]:
    """Yield ``(start, results)`` per batch as each finishes (in order for local, completion order for ray).

    ``fn`` must be a module-level function (Ray ships it by reference). ``context`` (e.g. a fitted judge)
    is handed to every call as the second argument; on Ray it is put in the object store once, not
    once per task. At most ``max_in_flight`` Ray tasks are outstanding (default: twice the cluster's
    CPUs), so a huge input does not flood the object store.
    """
    items = list(items)
    spans = batches(len(items), DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
    has_context = context is not _NO_CONTEXT
    name = resolve(executor)
    if name == "local":
        for start, stop in spans:
            yield start, _call(fn, items[start:stop], context if has_context else None, has_context)
        return
    yield from _ray_imap(fn, items, spans, context if has_context else None, has_context, max_in_flight)


class BatchOptions(TypedDict, total=False):
    """:func:`map_batches`' keyword arguments: those of :func:`imap_batches`, which it calls."""

    executor: str | None
    batch_size: int | None
    context: Any
    max_in_flight: int | None


def map_batches(fn: Callable[..., Sequence[R]], items: Sequence[T], **options: Unpack[BatchOptions]) -> list[R]:
    """``fn`` over ``items`` in batches -> one result per item, in input order (see :func:`imap_batches`)."""
    items = list(items)
    out: list[Any] = [None] * len(items)
    for start, part in imap_batches(fn, items, **options):
        out[start : start + len(part)] = part
    return out


# ---------------------------------------------------------------------------------------------- Ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs the ray package: pip install 'distill-kit[cluster]'") from None
    return ray


def ray_init(**kwargs: Any) -> Any:
    """Join the cluster at ``$RAY_ADDRESS`` or start a local one, once per process; returns the ray module.

    Tests and callers with their own cluster may call ``ray.init`` themselves first; this then reuses it.
    Workers of a local cluster inherit this process's environment (data and cache directories); nodes of
    a remote cluster read their own ``DISTILL_KIT_*`` variables.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    opts.update(kwargs)
    address = os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, **opts)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at RAY_ADDRESS={address!r}: {exc}") from None
    return ray


def _ray_run(fn: Callable[..., Sequence[Any]], batch: list[Any], context: Any, has_context: bool) -> list[Any]:
    """Body of every Ray task: the very function the local path calls. Workers never fan out again."""
    global _current
    _current = "local"
    return _call(fn, batch, context, has_context)


_remote: Any = None


def _ray_imap(fn: Callable[..., Sequence[R]], items: list[Any], spans: list[tuple[int, int]], context: Any,
              has_context: bool, max_in_flight: int | None) -> Iterator[tuple[int, list[R]]]:
    global _remote
    ray = ray_init()
    if _remote is None:
        _remote = ray.remote(_ray_run)
    ctx_ref = ray.put(context) if has_context else None
    limit = max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, int] = {}
    todo = iter(spans)
    try:
        while True:
            while len(pending) < limit:
                span = next(todo, None)
                if span is None:
                    break
                start, stop = span
                pending[_remote.remote(fn, items[start:stop], ctx_ref, has_context)] = start
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                start = pending.pop(ref)
                yield start, list(ray.get(ref))
    finally:
        for ref in pending:  # an error or an abandoned generator: do not leave work running
            ray.cancel(ref)
