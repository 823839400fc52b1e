"""collect + store against the real openai/anthropic SDKs over loopback HTTP, with injected faults."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from distill_kit.collect import ChatRequest, backoff_delay, collect_sync
from distill_kit.config import ConfigError, GenerationParams, ModelConfig
from distill_kit.providers import Completion, make_provider, mock
from distill_kit.providers.base import parse_retry_after
from distill_kit.store import Store
from distill_kit.testing import Fault, LoopbackServer, answer_for
from tests.helpers.loopback import loopback_model as loop_model
from tests.helpers.loopback import questions as reqs
from tests.helpers.mocked import mock_model
from tests.helpers.paths import ROOT


def test_answers_are_stored_and_rerun_hits_cache(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model() as (cfg, script):
        first = collect_sync(cfg, reqs(6), store, progress=False)
        assert [r.text for r in first] == [mock.echo(f"question {i}") for i in range(6)]
        assert not any(r.cached for r in first)
        calls = len(script.calls)
        again = collect_sync(cfg, reqs(6), store, progress=False)
        assert len(script.calls) == calls == 6  # nothing sent the second time
    assert all(r.cached for r in again)
    assert store.count() == 6
    frame = store.frame()
    assert set(frame["i"].to_list()) == {str(i) for i in range(6)}
    usage = store.usage()
    assert usage["tokens_out"][0] > 0


@pytest.mark.slow
def test_answers_over_http_are_stored_with_the_sdks_usage(tmp_path, loopback):
    store = Store(tmp_path / "s.sqlite")
    first = collect_sync(loop_model(loopback.base_url), reqs(2), store, progress=False)
    assert [r.text for r in first] == [answer_for(f"question {i}") for i in range(2)]
    assert len(loopback.state.calls) == 2 and store.usage()["tokens_out"][0] > 0


def test_with_params_changes_settings_not_the_original():
    base = loop_model("http://127.0.0.1:1")
    short = base.with_params(max_tokens=9, seed=3)
    assert (short.params.max_tokens, short.params.seed) == (9, 3) and base.params.max_tokens == 8
    assert short.name == base.name and short.cache_identity() != base.cache_identity()
    with pytest.raises(ValueError, match="max_token"):
        base.with_params(max_token=9)  # a typo is an error, not a silently ignored setting


def test_split_names_reads_comma_lists_and_lists():
    from distill_kit.config import split_names

    assert split_names(" a, b ,,c ") == ["a", "b", "c"] and split_names(["a ", ""]) == ["a"]
    assert split_names("") == [] and split_names(None) == []


def test_store_never_overwrites_an_ok_answer(tmp_path):
    from distill_kit.store import Record

    def rec(status: str, text: str | None, error: str | None) -> Record:
        return Record(key="k", model="m", provider="openai", messages=[{"role": "user", "content": "q"}], params={},
                      sample=0, status=status, text=text, error=error, attempts=1, usage_in=1, usage_out=1, cost=0.0,
                      latency=0.1, meta={})

    with Store(tmp_path / "s.sqlite") as store:
        store.put(rec("error", None, "503"))
        store.put(rec("ok", "answer", None))      # an error row is replaced by the answer
        store.put(rec("error", None, "timeout"))  # a late error never replaces the answer
        got = store.get("k")
        assert got.ok and got.text == "answer" and got.attempts == 2 and store.count() == 1


def test_changed_generation_params_are_a_new_request(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model() as (cfg, script):
        collect_sync(cfg, reqs(2), store, progress=False)
        collect_sync(cfg.with_params(max_tokens=9), reqs(2), store, progress=False)
        collect_sync(cfg.model_copy(update={"timeout": 9, "max_retries": 1}), reqs(2), store, progress=False)  # not keyed
        assert len(script.calls) == 4 and store.count() == 4


def test_429_retry_after_is_honoured(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model(faults=(mock.Fault.status(429, retry_after=0.3),), concurrency=1) as (cfg, script):
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
        assert res.ok and res.text == mock.echo("question 0")
        assert len(script.calls) == 2
        first, second = (c.started for c in script.calls)
    assert second - first >= 0.28  # waited as told, not the 0.05 s backoff
    assert store.get(res.key).attempts == 2


@pytest.mark.slow
def test_429_retry_after_header_reaches_collect_through_the_sdk(tmp_path, loopback):
    loopback.inject(Fault(429, {"retry-after": "1"}))
    store = Store(tmp_path / "s.sqlite")
    start = time.monotonic()
    [res] = collect_sync(loop_model(loopback.base_url, concurrency=1), reqs(1), store, progress=False)
    elapsed = time.monotonic() - start
    assert res.ok and res.text == answer_for("question 0")
    assert len(loopback.state.calls) == 2
    first, second = loopback.state.call_times[:2]
    assert second - first >= 0.95  # waited as told, not the 0.05 s backoff
    assert elapsed < 30  # no runaway backoff


def test_5xx_is_retried_with_backoff(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    faults = (mock.Fault.status(500), mock.Fault.status(503), mock.Fault.status(502))
    with mock_model(faults=faults, concurrency=1) as (cfg, script):
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
        assert res.ok and len(script.calls) == 4
    assert store.get(res.key).attempts == 4


def test_unplanned_exception_is_retried_then_stored_as_a_short_error(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model(faults=(mock.Fault.crash(),) * 2, max_retries=1) as (cfg, script):
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
        assert len(script.calls) == 2
    assert not res.ok and res.error == "gave up after 2 attempts: ValueError: mock: unreadable reply"
    assert store.get(res.key).status == "error"


def test_empty_answer_is_stored_as_an_error_not_retried_now(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model(faults=(mock.Fault.empty(),)) as (cfg, script):
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
        assert len(script.calls) == 1
    assert not res.ok and res.error.startswith("EmptyAnswer") and store.count(status="ok") == 0


def test_client_error_is_not_retried_and_is_recorded_then_retried_on_resume(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model(faults=(mock.Fault.status(400),)) as (cfg, script):
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
        assert not res.ok and "400" in res.error and len(script.calls) == 1
        assert store.count(status="error") == 1
        [res2] = collect_sync(cfg, reqs(1), store, progress=False)
    assert res2.ok and store.count(status="ok") == 1 and store.count() == 1
    assert store.get(res2.key).attempts == 2


def test_timeout_then_give_up_is_recorded(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    faults = (mock.Fault(delay=2.0), mock.Fault(delay=2.0))
    with mock_model(faults=faults, timeout=0.2, max_retries=1, concurrency=1) as (cfg, _):
        start = time.monotonic()
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
    assert not res.ok and "timeout after 0.2s" in res.error
    assert time.monotonic() - start < 1.9  # abandoned, not waited out
    assert store.get(res.key).status == "error"


def test_timeout_then_success(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model(faults=(mock.Fault(delay=2.0),), timeout=0.2, concurrency=1) as (cfg, _):
        [res] = collect_sync(cfg, reqs(1), store, progress=False)
    assert res.ok and store.get(res.key).attempts == 2


def test_concurrency_is_bounded(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with mock_model(latency=0.02, concurrency=3) as (cfg, script):
        collect_sync(cfg, reqs(12), store, progress=False)
        assert script.max_in_flight == 3


def test_duplicate_requests_in_one_batch_are_sent_once(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    batch = reqs(3) + [ChatRequest.user(f"question {i}", meta={"i": i, "copy": True}) for i in range(3)]
    with mock_model() as (cfg, script):
        out = collect_sync(cfg, batch, store, progress=False)
        assert len(out) == 6 and len(script.calls) == 3
        assert [r.meta for r in out] == [r.meta for r in batch]  # each result carries its own request's meta
        again = collect_sync(cfg, batch[3:], store, progress=False)  # from the store
    assert all(r.cached for r in again) and [r.meta for r in again] == [r.meta for r in batch[3:]]


@pytest.mark.slow
def test_anthropic_sdk_over_http_with_429(tmp_path, monkeypatch):
    monkeypatch.setenv("DK_TEST_ANTHROPIC_KEY", "test-key-not-secret")
    with LoopbackServer(faults=[Fault(429, {"retry-after": "0.5"}), Fault(529)]) as srv:
        cfg = ModelConfig(name="claude-loop", provider="anthropic", model="claude-test", base_url=srv.root_url,
                          api_key_env="DK_TEST_ANTHROPIC_KEY", backoff_base=0.05, max_retries=3,
                          params=GenerationParams(max_tokens=16))
        store = Store(tmp_path / "s.sqlite")
        out = collect_sync(cfg, [ChatRequest.user("who made you?", system="be brief")], store, progress=False)
        assert out[0].ok and out[0].text == answer_for("who made you?")
        sent = srv.state.calls[-1]
        assert sent["path"] == "/v1/messages" and sent["body"]["system"] == "be brief"
        assert sent["body"]["temperature"] == 0.0 and sent["body"]["max_tokens"] == 16  # sampling reaches the API
        auth = sent["headers"].get("x-api-key") or sent["headers"].get("authorization", "").removeprefix("Bearer ")
        assert auth == "test-key-not-secret"  # the key came from the environment variable
        assert len(srv.state.calls) == 3 and out[0].usage_out > 0


def test_missing_key_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("DK_SURELY_UNSET_KEY", raising=False)
    for provider in ("openai", "anthropic"):
        cfg = ModelConfig(name="x", provider=provider, model="m", api_key_env="DK_SURELY_UNSET_KEY")
        with pytest.raises(ConfigError, match="set DK_SURELY_UNSET_KEY"):
            make_provider(cfg)


def test_retry_after_parsing_and_backoff():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    import random

    cfg = ModelConfig(name="x", provider="openai", backoff_base=1, backoff_max=8)
    rng = random.Random(0)
    delays = [backoff_delay(a, cfg, None, rng) for a in range(6)]
    assert all(0.5 * min(8, 2 ** a) <= d <= min(8, 2 ** a) for a, d in enumerate(delays))
    assert backoff_delay(0, cfg, 30.0, rng) == 8  # capped


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from distill_kit.collect import ChatRequest, collect_sync
    from distill_kit.config import GenerationParams, ModelConfig
    from distill_kit.store import Store
    url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = ModelConfig(name="loop", provider="openai", model="loopback", base_url=url, concurrency=2,
                      params=GenerationParams(max_tokens=8))
    collect_sync(cfg, [ChatRequest.user(f"question {i}") for i in range(n)], Store(path), progress=False)
""")


@pytest.mark.slow
def test_kill_9_mid_collection_then_resume(tmp_path):
    n = 40
    path = tmp_path / "s.sqlite"
    with LoopbackServer(latency=0.1) as srv:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, srv.base_url, str(path), str(n)], cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and Store(path).count() >= 8:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = Store(path).count()
        assert 8 <= before < n, "the kill must land mid-collection"
        calls_before = len(srv.state.calls)
        store = Store(path)
        out = collect_sync(loop_model(srv.base_url, concurrency=2), reqs(n), store, progress=False)
        # nothing lost, nothing duplicated, every answer belongs to its own question
        assert store.count() == n and store.count(status="ok") == n
        assert [r.text for r in out] == [answer_for(f"question {i}") for i in range(n)]
        assert len(set(store.frame()["key"].to_list())) == n
        assert len(srv.state.calls) - calls_before == n - before  # only the missing ones were sent


def test_outcome_line_reports_failures_and_raises_when_nothing_came_back():
    from distill_kit.collect import Result, outcome_line

    good = Result(key="a", model="m", text="hi", error=None, cached=True)
    bad = Result(key="b", model="m", text=None, error="HTTP 400: nope")
    assert outcome_line("m", [good, bad]) == ("m: 1/2 answered, 1 from the store; 1 failed (stored, retried on the "
                                              "next run), e.g. HTTP 400: nope")
    with pytest.raises(RuntimeError, match="m: 0/1 answered"):
        outcome_line("m", [bad])


class _TurnCountingProvider:
    """No network: notes the event-loop turn each request starts and ends in, and the tasks alive."""

    def __init__(self) -> None:
        self.turn, self.ticking, self.max_tasks = 0, False, 0
        self.starts: list[tuple[str, int]] = []
        self.ends: list[int] = []

    def _tick(self) -> None:
        self.turn += 1
        if self.ticking:
            asyncio.get_running_loop().call_soon(self._tick)

    async def chat(self, messages, params):
        if not self.ticking:
            self.ticking = True
            asyncio.get_running_loop().call_soon(self._tick)
        self.max_tasks = max(self.max_tasks, len(asyncio.all_tasks()))
        self.starts.append((messages[-1]["content"], self.turn))
        await asyncio.sleep(0.001)
        self.ends.append(self.turn)
        return Completion(text=f"a: {messages[-1]['content']}")

    async def aclose(self) -> None:
        self.ticking = False


def test_workers_send_the_next_request_one_turn_after_the_last_answer_landed(tmp_path, monkeypatch):
    fake = _TurnCountingProvider()
    monkeypatch.setattr("distill_kit.collect.make_provider", lambda cfg: fake)
    cfg = ModelConfig(name="fake", provider="openai", model="m", api_key_env="DK_FAKE_KEY", concurrency=4)
    monkeypatch.setenv("DK_FAKE_KEY", "k")
    with Store(tmp_path / "s.sqlite") as store:
        out = collect_sync(cfg, reqs(200), store, progress=False)
        assert store.count(status="ok") == 200
    assert [r.text for r in out] == [f"a: question {i}" for i in range(200)]
    assert [p for p, _ in fake.starts] == [f"question {i}" for i in range(200)]  # sent in order
    # a worker's next request starts in the turn after its last answer landed: the other answers of that
    # turn are read first (as a semaphore's hand-off does), and no more turns than that (asyncio.wait_for,
    # a task per request behind a semaphore: three or four turns with the connections idle)
    starts_by_turn = sorted(turn for _, turn in fake.starts[4:])
    assert starts_by_turn == sorted(end + 1 for end in fake.ends[:-4])
    assert fake.max_tasks <= 4 + 1  # four workers (and asyncio.run's task), not a task per request


def test_an_answer_is_committed_before_its_worker_sends_the_next_request(tmp_path, monkeypatch):
    """The durability line of ``collect``: what a worker was paid for is on disk before it sends anything
    else, so a kill between two requests loses no answer."""
    monkeypatch.setenv("DK_FAKE_KEY", "k")
    store = Store(tmp_path / "s.sqlite")
    on_disk_at_start: list[int] = []

    class Provider:
        async def chat(self, messages, params):
            on_disk_at_start.append(store.count(status="ok"))
            await asyncio.sleep(0.001)
            return Completion(text=f"a: {messages[-1]['content']}")

        async def aclose(self) -> None:
            pass

    monkeypatch.setattr("distill_kit.collect.make_provider", lambda cfg: Provider())
    cfg = ModelConfig(name="fake", provider="openai", model="m", api_key_env="DK_FAKE_KEY", concurrency=1)
    with store:
        collect_sync(cfg, reqs(6), store, progress=False)
    assert on_disk_at_start == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_more_requests_in_flight_than_the_sdks_keepalive_pool_open_each_connection_once(tmp_path):
    n = 128  # the SDK keeps at most 100 idle connections by default
    with LoopbackServer(latency=0.2) as srv:
        with Store(tmp_path / "s.sqlite") as store:
            out = collect_sync(loop_model(srv.base_url, concurrency=n), reqs(3 * n), store, progress=False)
        assert all(r.ok for r in out) and srv.state.max_in_flight == n
        assert srv.state.connections == n  # reused round after round, never closed and opened again


def test_request_keys_are_the_stored_keys_of_the_whole_object():
    """Keys made many at a time (the identity serialised once) are byte for byte the keys stores already
    hold: the sha256 of the whole object as canonical JSON, pinned here for one request."""
    import hashlib
    import json

    from distill_kit.store import request_key, request_keys

    ident = {"provider": "openai", "model": "gpt-4o-mini", "base_url": None, "gguf": None, "replay": None,
             "params": {"temperature": 0.0, "max_tokens": 64, "top_p": 1.0, "seed": None}}
    msgs = [{"role": "system", "content": "Réponds."}, {"role": "user", "content": '你是谁开发的？ "quoted"\n'}]
    assert request_key(ident, msgs, 3) == "679ae62dbdb5f396aac01cab26e2f469ee192134774879d5df98ebe6f1259529"
    items = [(msgs, 3), (msgs[1:], 0), ([{"role": "user", "content": "x", "name": "z"}], 12)]
    whole = [hashlib.sha256(json.dumps({"model": ident, "messages": m, "sample": s}, sort_keys=True,
                                       ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
             for m, s in items]
    assert request_keys(ident, items) == whole
    cfg = ModelConfig(name="m", provider="openai", model="gpt-4o-mini")
    assert ChatRequest(messages=msgs, sample=3).key(cfg) == request_keys(cfg.cache_identity(), [(msgs, 3)])[0]


def test_one_collect_call_reads_the_secrets_once_not_per_write(tmp_path, monkeypatch):
    """The values to redact are read once per call and handed to every write (reading them scans the
    environment and stats the models file; answers landing one per turn meant one read per answer).
    A key set in the environment is still redacted from what is stored."""
    import distill_kit.redact as redact_module

    monkeypatch.setenv("DK_TEST_API_KEY", "sk-test-abcdefghijklmnop")
    reads = []
    real = redact_module.secret_values
    monkeypatch.setattr(redact_module, "secret_values", lambda *a, **k: reads.append(a) or real(*a, **k))
    monkeypatch.setattr("distill_kit.collect.secret_values", redact_module.secret_values)
    store = Store(tmp_path / "s.sqlite")
    with mock_model(reply=lambda p: f"{p} sk-test-abcdefghijklmnop", concurrency=1) as (cfg, _):
        out = collect_sync(cfg, reqs(12), store, progress=False)
    assert all(r.ok for r in out) and "sk-test" not in out[0].text
    assert len(reads) == 1  # twelve answers, one per turn: written twelve times, secrets read once
    assert all("sk-test" not in t and "[REDACTED]" in t for t in store.frame()["text"].to_list())


def test_answers_fetched_for_their_request_are_not_copied_but_stored_ones_and_repeats_are(tmp_path, monkeypatch):
    """Each result is its own object carrying its own request's meta; one fetched for its very request
    is returned as it is (a copy per request was most of the work after the last answer)."""
    import dataclasses

    copies = []
    monkeypatch.setattr("distill_kit.collect.replace",
                        lambda obj, **kw: copies.append(kw) or dataclasses.replace(obj, **kw))
    store = Store(tmp_path / "s.sqlite")
    shared = {"probe": "p"}
    batch = reqs(3) + [ChatRequest.user("question 0", meta=shared), ChatRequest.user("question 0", meta=shared)]
    with mock_model() as (cfg, _):
        out = collect_sync(cfg, batch, store, progress=False)
        assert len(copies) == 2  # the repeats of "question 0": fresh answers were not copied
        assert len({id(r) for r in out}) == 5 and [r.meta for r in out] == [r.meta for r in batch]
        copies.clear()
        again = collect_sync(cfg, batch[:3], store, progress=False)
    assert len(copies) == 3 and [r.meta for r in again] == [r.meta for r in batch[:3]]  # stored: copied


def test_put_many_redacts_the_secrets_it_is_given(tmp_path):
    from distill_kit.store import Record

    rec = Record(key="k", model="m", provider="openai", messages=[{"role": "user", "content": "say tok-0123456789abcdef"}],
                 params={"t": 0}, sample=0, status="ok", text="tok-0123456789abcdef", error=None, attempts=1,
                 usage_in=1, usage_out=1, cost=0.0, latency=0.1, meta={"note": "tok-0123456789abcdef"})
    with Store(tmp_path / "s.sqlite") as store:
        store.put_many([rec], ["tok-0123456789abcdef"])  # not in the environment: only the caller knows it
        got = store.get("k")
    assert "tok-" not in got.text + got.messages[0]["content"] + got.meta["note"] and got.params == {"t": 0}
