"""Batch APIs through the real openai / anthropic SDKs against the zoo's batch endpoints over loopback HTTP:
submit, partial failure, expiry, kill and resume (never resubmitting), fallback, and the spending cap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from distill_kit.collect import ChatRequest, collect_sync
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.providers import batch
from distill_kit.spend import BATCH_ENV, LEDGER_ENV, MAX_COST_ENV, BudgetExceeded
from distill_kit.store import Store
from distill_kit.testing import ZooConfig, ZooServer, echo_answer
from tests.helpers.paths import subprocess_env

KEY_ENV = "DISTILL_KIT_TEST_ZOO_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "zoo-test-key")
    for var in (BATCH_ENV, MAX_COST_ENV, LEDGER_ENV):
        monkeypatch.delenv(var, raising=False)


def model(provider: str, zoo: ZooServer, **kw) -> ModelConfig:
    url = zoo.base_url if provider == "openai" else zoo.root_url
    return ModelConfig(name=f"b-{provider}", provider=provider, model="m", base_url=url, api_key_env=KEY_ENV,
                       batch=kw.pop("batch", True), batch_poll=0.05, cost_per_mtok_in=1.0, cost_per_mtok_out=2.0,
                       backoff_base=0.01, params=GenerationParams(max_tokens=16), **kw)


def reqs(n: int, tag: str = "q") -> list[ChatRequest]:
    return [ChatRequest.user(f"{tag}{i}", meta={"i": i}) for i in range(n)]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.slow  # a zoo server
def test_batch_answers_everything_and_retries_partial_failures_one_by_one(provider: str, tmp_path: Path) -> None:
    with ZooServer(ZooConfig(batch_fail_every=3, answer=echo_answer)) as zoo, Store(tmp_path / "s.sqlite") as store:
        cfg = model(provider, zoo)
        out = collect_sync(cfg, reqs(9), store, progress=False)
        assert [r.text for r in out] == [f"echo: q{i}" for i in range(9)]
        assert [r.meta["i"] for r in out] == list(range(9))
        assert zoo.stats.batches_created == 1 and zoo.stats.batch_requests == 9
        assert zoo.stats.chat == 3  # requests 3, 6, 9 failed inside the batch and went one by one
        jobs = batch.batch_status(store.path)
        assert [(j["status"], j["n"], j["answered"], j["failed"]) for j in jobs] == [("collected", 9, 6, 3)]
        rows = store.frame(model=cfg.name)
        via_batch = rows.filter(rows["batch"].is_not_null())
        assert via_batch.height == 6
        # batch answers cost half: the same tokens one by one cost twice as much per token
        b = via_batch.row(0, named=True)
        assert b["cost"] == pytest.approx((b["usage_in"] * 1 + b["usage_out"] * 2) / 1e6 * 0.5)
        # a re-run is free: nothing new is sent
        collect_sync(cfg, reqs(9), store, progress=False)
        assert zoo.stats.batches_created == 1 and zoo.stats.chat == 3


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.slow  # a zoo server
def test_expired_batch_keeps_what_finished_and_sends_the_rest(provider: str, tmp_path: Path) -> None:
    with ZooServer(ZooConfig(batch_expire_after=4, answer=echo_answer)) as zoo, Store(tmp_path / "s.sqlite") as store:
        out = collect_sync(model(provider, zoo), reqs(10), store, progress=False)
        assert all(r.ok for r in out)
        assert zoo.stats.batch_requests == 10 and zoo.stats.chat == 6
        (job,) = batch.batch_status(store.path)
        assert job["answered"] == 4 and job["remote_status"] in ("expired", "ended")


@pytest.mark.slow  # a zoo server
def test_endpoint_without_batch_api_falls_back_to_ordinary_requests(tmp_path: Path) -> None:
    with ZooServer(ZooConfig(batch_api=False, answer=echo_answer)) as zoo, Store(tmp_path / "s.sqlite") as store:
        out = collect_sync(model("openai", zoo), reqs(4), store, progress=False)
        assert all(r.ok for r in out) and zoo.stats.chat == 4
        assert batch.batch_status(store.path)[0]["status"] == "unsupported"


@pytest.mark.slow  # a zoo server
def test_per_run_batch_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ZooServer(ZooConfig(answer=echo_answer)) as zoo, Store(tmp_path / "s.sqlite") as store:
        cfg = model("openai", zoo, batch=False)
        monkeypatch.setenv(BATCH_ENV, "1")
        collect_sync(cfg, reqs(3), store, progress=False)
        assert zoo.stats.batches_created == 1 and zoo.stats.chat == 0


CHILD = textwrap.dedent("""
    import sys
    from distill_kit.collect import ChatRequest, collect_sync
    from distill_kit.config import GenerationParams, ModelConfig
    from distill_kit.store import Store
    provider, url, store_path = sys.argv[1:4]
    cfg = ModelConfig(name="b-" + provider, provider=provider, model="m", base_url=url,
                      api_key_env="DISTILL_KIT_TEST_ZOO_KEY", batch=True, batch_poll=0.05,
                      params=GenerationParams(max_tokens=16))
    collect_sync(cfg, [ChatRequest.user(f"q{i}", meta={"i": i}) for i in range(12)], Store(store_path), progress=False)
""")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.slow  # a zoo server
def test_killed_run_collects_the_batch_it_paid_for_and_never_resubmits(provider: str, tmp_path: Path) -> None:
    store_path = tmp_path / "s.sqlite"
    with ZooServer(ZooConfig(batch_delay=3600, answer=echo_answer)) as zoo:
        url = zoo.base_url if provider == "openai" else zoo.root_url
        child = subprocess.Popen([sys.executable, "-c", CHILD, provider, url, str(store_path)], env=subprocess_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if store_path.exists() and any(j["status"] == "submitted" for j in batch.batch_status(store_path)):
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the child never submitted its batch")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        assert zoo.stats.batches_created == 1
        zoo.zoo.config.batch_delay = 0  # the provider finishes the batch while nobody is watching
        with Store(store_path) as store:
            out = collect_sync(model(provider, zoo), reqs(12), store, progress=False)
        assert [r.text for r in out] == [f"echo: q{i}" for i in range(12)]
        assert zoo.stats.batches_created == 1 and zoo.stats.batch_requests == 12 and zoo.stats.chat == 0


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.slow  # a zoo server
def test_kill_between_create_and_recording_the_id_finds_the_batch(provider: str, tmp_path: Path) -> None:
    """The job was prepared and the provider created the batch, but the run died before writing its id."""
    import asyncio

    with ZooServer(ZooConfig(answer=echo_answer)) as zoo, Store(tmp_path / "s.sqlite") as store:
        cfg = model(provider, zoo)
        items = [(r.key(cfg), r) for r in reqs(5)]
        ledger = batch.BatchLedger(store.path)
        job = ledger.prepare(cfg, items)

        class Forgetful(batch.BatchLedger):  # records nothing: as if killed right after the create call
            def update(self, job, **fields):  # type: ignore[override]
                if "input_file_id" in fields:
                    super().update(job, input_file_id=fields["input_file_id"])

        adapter = batch.batch_adapter(cfg)
        lines = [adapter.line(batch.custom_id(k), r) for k, r in items]

        async def create() -> None:
            await adapter.submit(job, lines, Forgetful(store.path))
            await adapter.aclose()

        asyncio.run(create())
        ledger.close()
        assert zoo.stats.batches_created == 1
        out = collect_sync(cfg, [r for _, r in items], store, progress=False)
        assert all(r.ok for r in out)
        assert zoo.stats.batches_created == 1 and zoo.stats.chat == 0


@pytest.mark.slow  # a zoo server
def test_spending_cap_stops_sending_and_keeps_stored_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = tmp_path / "spend.json"
    with ZooServer(ZooConfig(answer=echo_answer)) as zoo, Store(tmp_path / "s.sqlite") as store:
        cfg = model("openai", zoo, batch=False, concurrency=1).model_copy(update={"cost_per_mtok_in": 1e6})
        monkeypatch.setenv(MAX_COST_ENV, "10")  # each request costs a few dollars of "input"
        monkeypatch.setenv(LEDGER_ENV, str(ledger))
        with pytest.raises(BudgetExceeded, match="spending cap reached"):
            collect_sync(cfg, reqs(20), store, progress=False)
        sent = zoo.stats.chat
        assert 0 < sent < 20 and store.count(model=cfg.name, status="ok") == sent
        assert json.loads(ledger.read_text())["spent"] >= 10
        with pytest.raises(BudgetExceeded):  # a later step of the same run sends nothing
            collect_sync(cfg, reqs(20, "other"), store, progress=False)
        assert zoo.stats.chat == sent
        # what is stored stays free under the cap
        stored = collect_sync(cfg, reqs(sent), store, progress=False)
        assert all(r.cached for r in stored)


def test_put_many_keeps_puts_rules_in_one_transaction(tmp_path: Path) -> None:
    from distill_kit.store import Record

    def rec(key: str, status: str, text: str | None) -> Record:
        return Record(key=key, model="m", provider="openai", messages=[{"role": "user", "content": key}], params={},
                      sample=0, status=status, text=text, error=None if status == "ok" else "boom", attempts=1,
                      usage_in=1, usage_out=1, cost=0.5, latency=0.1, meta={})

    with Store(tmp_path / "s.sqlite") as store:
        store.put_many([rec("a", "ok", "first"), rec("b", "error", None)])
        store.put_many([rec("a", "error", None), rec("b", "ok", "second"), rec("c", "ok", "third")])
        got = store.get_many(["a", "b", "c"])
        assert got["a"].text == "first" and got["a"].attempts == 1  # an ok answer is never overwritten
        assert got["b"].text == "second" and got["b"].attempts == 2 and got["b"].cost == 1.0
        assert got["c"].ok
