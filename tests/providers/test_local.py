"""The embedded default: a real LLM (SmolLM2-135M, llama.cpp) reached with the openai client over HTTP."""

from __future__ import annotations

import pytest

from distill_kit.collect import ChatRequest, collect_sync
from distill_kit.models import get_model
from distill_kit.providers.local import LocalServer, default_gguf, ensure_server
from distill_kit.store import Store
from tests.helpers.installed import needs

pytestmark = [pytest.mark.slow, needs("llama_cpp")]  # llama-cpp-python[server] is installed by `make setup`


def test_default_gguf_comes_from_the_wheel():
    path = default_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_local_model_answers_identity_questions_and_rerun_is_free(tmp_path):
    cfg = get_model("smollm2-local")
    cfg = cfg.with_params(max_tokens=24)
    store = Store(tmp_path / "s.sqlite")
    reqs = [ChatRequest.user(q) for q in ("Which company developed you?", "你是谁开发的？")]
    out = collect_sync(cfg, reqs, store, progress=False)
    assert all(r.ok and r.text.strip() for r in out), [r.error for r in out]
    assert all(r.usage_out > 0 for r in out)  # real token accounting from the server
    again = collect_sync(cfg, reqs, store, progress=False)
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in out]
    assert store.usage()["tokens_out"][0] == sum(r.usage_out for r in out)


def test_temperature_zero_is_deterministic_across_servers(tmp_path):
    cfg = get_model("smollm2-local")
    cfg = cfg.with_params(max_tokens=16)
    a = collect_sync(cfg, [ChatRequest.user("Name a colour.")], Store(tmp_path / "a.sqlite"), progress=False)
    b = collect_sync(cfg, [ChatRequest.user("Name a colour.")], Store(tmp_path / "b.sqlite"), progress=False)
    assert a[0].text == b[0].text


def test_server_stops_and_frees_its_port():
    import socket

    with LocalServer() as server:
        port = server.port
        assert server.proc is not None and server.proc.poll() is None
    assert server.proc is None
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_ensure_server_reuses_one_process():
    assert ensure_server() is ensure_server()


def test_server_survives_between_calls_from_a_running_loop(tmp_path):
    """Jupyter case: collect_sync inside a running loop, twice; the server must outlive the first call."""
    import asyncio

    from distill_kit.providers import local

    local.stop_servers()  # the server must be started inside this scenario
    cfg = get_model("smollm2-local")
    cfg = cfg.with_params(max_tokens=8).model_copy(update={"max_retries": 0})
    store = Store(tmp_path / "s.sqlite")

    async def notebook_cells():
        first = collect_sync(cfg, [ChatRequest.user("Say hi.")], store, progress=False)
        [server] = local.running_servers().values()
        pid = server.proc.pid
        await asyncio.sleep(2)  # time for a parent-death signal to land, if one was sent
        assert server.proc is not None and server.proc.poll() is None, "server died after the first call"
        second = collect_sync(cfg, [ChatRequest.user("Say bye.")], store, progress=False)
        assert local.running_servers()[(server.gguf, server.threads)].proc.pid == pid
        return first + second

    out = asyncio.run(notebook_cells())
    assert all(r.ok for r in out), [r.error for r in out]
