"""The one small interface every provider implements, and the errors `collect` knows how to treat."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from distill_kit.config import GenerationParams

Message = dict[str, str]
T = TypeVar("T")


@dataclass
class Completion:
    text: str
    usage_in: int = 0
    usage_out: int = 0


class ProviderError(Exception):
    """Base for errors a provider raises; the message is stored with the failed request."""


class RetryableError(ProviderError):
    """Rate limits, overload, 5xx, timeouts, dropped connections: worth another try after a pause."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(ProviderError):
    """Bad request, auth failure, unknown prompt: retrying would give the same answer."""


class EmptyAnswer(FatalError):
    """The API answered without any text. Not an answer (it must not enter LIS/RSE as one); retried by
    the next run like every stored error, not within this one (the same request gives the same reply)."""


class Refusal(EmptyAnswer):
    """The API itself says it declined (``finish_reason: content_filter``, a ``refusal`` field,
    ``stop_reason: refusal``); stored as an error whose message starts with ``Refusal``."""


def short_error(exc: BaseException, limit: int = 200) -> str:
    """``ExceptionClass: first line of the message`` (clipped): what a stored error says about a
    failure nobody planned for."""
    text = clip(str(exc), limit)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def clip(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def malformed(exc: BaseException) -> RetryableError:
    """A 200 reply that could not be read (truncated JSON, not UTF-8): a broken transfer or proxy is
    often transient, so it is retried."""
    return RetryableError(f"MalformedResponse: {short_error(exc)}")


def empty_answer(reason: str, refused: bool, refusal: str | None = None) -> EmptyAnswer:
    """The error for a reply without text; ``reason`` names the API's finish/stop reason."""
    if refused:
        return Refusal(f"Refusal ({reason})" + (f": {clip(refusal)}" if refusal else ""))
    return EmptyAnswer(f"EmptyAnswer: the reply had no text ({reason})")


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object of a reply, or an empty one in place of anything else (null, a list, a string, a
    number): a field of an odd shape reads as absent, and the reader decides what absent means."""
    return value if isinstance(value, dict) else {}


def token_count(value: Any) -> int:
    """A reply's token count, or 0 for anything that is not a non-negative integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def status_error(status: int, message: str, headers: object) -> Exception:
    """Map an HTTP failure to retry-or-not; 408/409/429 and 5xx are transient, other 4xx are not."""
    if status in (408, 409, 429) or status >= 500:
        return RetryableError(f"HTTP {status}: {message}", parse_retry_after(headers))
    return FatalError(f"HTTP {status}: {message}")


@contextmanager
def sdk_errors(sdk: Any) -> Iterator[None]:
    """Turn an SDK call's exceptions into ours: HTTP status by :func:`status_error`, timeouts and dropped
    connections retryable, unreadable replies (JSONDecodeError, UnicodeDecodeError, shapes the SDK rejects)
    :func:`malformed`. One mapping for ``openai`` and ``anthropic``: their exception classes share names."""
    try:
        yield
    except sdk.APIStatusError as exc:
        raise status_error(exc.status_code, str(exc.message)[:300], exc.response.headers) from None
    except (sdk.APITimeoutError, sdk.APIConnectionError) as exc:
        raise RetryableError(f"{type(exc).__name__}: {exc}") from None
    except (ValueError, sdk.APIResponseValidationError) as exc:
        raise malformed(exc) from None


async def within(timeout: float | None, call: Awaitable[T]) -> T:
    """``await call``, abandoned (``TimeoutError``) after ``timeout`` seconds.

    ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` runs the call in a task of
    its own, which starts one event-loop turn late and hands its result back one turn late. Per attempt
    that is two turns in which the connection pool holds idle connections it checks on every operation
    (see ``collect``'s workers); ``asyncio.timeout`` times the call in the caller's own task."""
    async with asyncio.timeout(timeout):
        return await call


@runtime_checkable
class Provider(Protocol):
    """What ``collect`` asks of a provider. A class subclassing it explicitly inherits :meth:`timed_chat`;
    the registry (:mod:`distill_kit.providers.registry`) says which provider a config's name means."""

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        """One answer to ``messages``; failures raise :class:`RetryableError` or :class:`FatalError`."""
        ...

    async def timed_chat(self, messages: list[Message], params: GenerationParams,
                         timeout: float | None) -> Completion:
        """One attempt as ``collect`` times it: :meth:`chat` abandoned (``TimeoutError``) after ``timeout``
        seconds. A provider that waits for its turn first (``ratelimit.Paced``) starts the clock when its
        turn comes, so time spent queueing does not burn an attempt that never reached the server."""
        return await within(timeout, self.chat(messages, params))

    async def aclose(self) -> None:
        """Release connections, servers, models."""
        ...


def parse_retry_after(headers: object) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header; None when absent or unparseable."""
    if headers is None:
        return None
    get = getattr(headers, "get", None)
    if get is None:
        return None
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import time
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


_ssl_contexts: dict[str, object] = {}


def sdk_http_client(sdk: object, concurrency: int | None = None) -> object:
    """The SDK's default async httpx client, built on the process's one SSL context, with a connection
    pool that holds ``concurrency`` connections.

    Why the context: the SDK builds a fresh SSL context per client (loading the CA bundle: ~80 ms here),
    and ``collect`` makes a client per call, so judge retries and fuzz iterations (two calls each) paid
    it every time. The context is the one the SDK's own httpx would build (``create_ssl_context()``).

    Why the limits: the SDK's pool keeps at most 100 idle connections (``DEFAULT_CONNECTION_LIMITS``),
    so a model run with more requests in flight closes the surplus whenever a burst of answers leaves
    them idle together, and opens them again for the next requests. The SDK's limits are kept and only
    raised to ``concurrency``."""
    import importlib

    cls = sdk.DefaultAsyncHttpxClient  # type: ignore[attr-defined]
    http = importlib.import_module(next(c for c in cls.__mro__ if c.__name__ == "AsyncClient").__module__.split(".")[0])
    ctx = _ssl_contexts.get(http.__name__)
    if ctx is None:
        ctx = _ssl_contexts[http.__name__] = http.create_ssl_context()
    limits = pool_limits(http, getattr(sdk, "_constants", None), concurrency) if concurrency else None
    return cls(verify=ctx) if limits is None else cls(verify=ctx, limits=limits)


def pool_limits(http: Any, constants: Any, concurrency: int) -> Any:
    """The SDK's default pool limits (its ``_constants.DEFAULT_CONNECTION_LIMITS``) with each raised to
    at least ``concurrency`` connections; None (keep the SDK's client as it is) when it has no such constant."""
    base = getattr(constants, "DEFAULT_CONNECTION_LIMITS", None)
    if base is None:
        return None

    def at_least(n: int | None) -> int | None:
        return None if n is None else max(n, concurrency)  # None: unbounded already

    return http.Limits(max_connections=at_least(base.max_connections),
                       max_keepalive_connections=at_least(base.max_keepalive_connections),
                       keepalive_expiry=base.keepalive_expiry)
