"""The fast loop's guard (tests/helpers/slow_guard.py): while a not-slow test runs, starting a subprocess or
a server fails it in one line; nothing is started (the check comes first), so this test itself is fast."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers.slow_guard import GUARD, MESSAGE


@contextmanager
def guarded() -> Iterator[list[str]]:
    """What the guard catches in the block; cleared on leaving it, so this test's own report stays a pass."""
    try:
        yield GUARD.caught
    finally:
        GUARD.caught.clear()


def test_a_subprocess_fails_a_not_slow_test_before_it_starts() -> None:
    with guarded() as caught:
        with pytest.raises(pytest.fail.Exception, match="mark it @pytest.mark.slow") as info:
            subprocess.run([sys.executable, "-c", "raise SystemExit(3)"])
        assert str(info.value).startswith(MESSAGE) and "a subprocess: " in str(info.value)
        with pytest.raises(pytest.fail.Exception):
            os.system("true")
        assert len(caught) == 2


def test_listening_fails_but_connecting_does_not() -> None:
    with guarded() as caught, socket.socket() as sock, socket.socket() as client:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(pytest.fail.Exception, match="a server listening on"):
            sock.listen()
        assert client.connect_ex(sock.getsockname()) != 0  # connecting is allowed (refused: nobody listens)
        assert len(caught) == 1


def test_an_asyncio_server_is_a_server() -> None:
    async def serve() -> None:
        await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)

    with guarded() as caught:
        with pytest.raises(pytest.fail.Exception):
            asyncio.run(serve())
        assert len(caught) == 1


def test_the_guard_is_off_outside_a_not_slow_test() -> None:
    active, GUARD.active = GUARD.active, None
    try:
        GUARD.check("anything")  # no test running: nothing to enforce
    finally:
        GUARD.active = active
    assert active is not None and not GUARD.caught


def test_the_first_import_of_torch_is_caught_and_other_imports_are_not() -> None:
    from tests.helpers.slow_guard import _TorchImport

    finder = next(f for f in sys.meta_path if isinstance(f, _TorchImport))  # installed ahead of the real finders
    with guarded() as caught:
        assert finder.find_spec("numpy", None) is None and finder.find_spec("torchvision", None) is None
        with pytest.raises(pytest.fail.Exception, match="an import of torch"):
            finder.find_spec("torch", None)
        assert len(caught) == 1
