"""What both loopback servers share: reading a request's prompt, building OpenAI and Anthropic reply bodies,
and a socket bound before serving (so its port is known and never raced for)."""

from __future__ import annotations

import socket
import time
from typing import Any


BACKLOG = 2048  # the kernel caps it at net.core.somaxconn (4096 on current Linux)


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

