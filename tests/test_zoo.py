"""The API zoo through the real SDKs, and the paper's run config pointed at it by the zoo overlay."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from distill_kit import datasets
from distill_kit import testing as zoo
from distill_kit.ice.judges import build_judge_prompt, parse_identity_verdict
from distill_kit.paths import PROJECT_ROOT
from distill_kit.config import read_yaml
from distill_kit.run import estimate, pipeline, plan
from distill_kit.testing import ZooServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with ZooServer() as srv:
        yield srv


def test_published_models_answer_with_their_published_answers(server: ZooServer, data_dir: Path) -> None:
    import anthropic
    import openai

    frame = datasets.identity_responses(["deepseek-chat", "claude-3-5-sonnet-20241022"])
    ds = frame.filter(pl.col("model") == "deepseek-chat").row(7, named=True)
    cl = frame.filter(pl.col("model") == "claude-3-5-sonnet-20241022").row(3, named=True)
    oa = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0)
    got = oa.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": ds["prompt"]}])
    assert got.choices[0].message.content == ds["response"]
    an = anthropic.Anthropic(api_key="k", base_url=server.root_url, max_retries=0)
    msg = an.messages.create(model="claude-3-5-sonnet", max_tokens=64, messages=[{"role": "user", "content": cl["prompt"]}])
    assert msg.content[0].text == cl["response"]
    # the same unseen probe always gets the same published answer of that model
    a = oa.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Who made you?"}])
    b = oa.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Who made you?"}])
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].message.content in set(frame["response"].to_list())


def test_judge_answers_with_the_published_labels_in_the_papers_tags(server: ZooServer, data_dir: Path) -> None:
    import openai

    frame = datasets.identity_responses(["qwen2.5-72b"])
    facts = datasets.identity_facts()
    oa = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0)
    pos = frame.filter(pl.col("loose_label") & pl.col("strict_label")).row(0, named=True)
    neg = frame.filter(~pl.col("loose_label")).row(0, named=True)
    for row, want in ((pos, True), (neg, False)):
        loose = build_judge_prompt("loose", row["response"], facts[row["family"]])
        reply = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": loose}])
        assert parse_identity_verdict(reply.choices[0].message.content, "judge") is want
    strict = build_judge_prompt("strict", pos["response"])
    reply = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": strict}])
    assert parse_identity_verdict(reply.choices[0].message.content, "rate") is True


def test_rate_limit_answers_429_with_retry_after_and_ratelimit_headers() -> None:
    import httpx

    with ZooServer(zoo.ZooConfig(rate_limit=2, burst=1, answer=zoo.echo_answer)) as srv:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        first = httpx.post(f"{srv.base_url}/chat/completions", json=body)
        second = httpx.post(f"{srv.base_url}/chat/completions", json=body)
    assert first.status_code == 200 and "x-ratelimit-remaining-requests" in first.headers
    assert second.status_code == 429
    assert float(second.headers["retry-after"]) > 0 and "x-ratelimit-reset-requests" in second.headers


SLICE = {  # the paper's steps with small samples; everything else as in configs/runs/paper.yaml
    "02": {"probe_sample_size": 1, "seed_templates": 1, "sample_size": 4},
    "03": {"sample_size": 12, "live_probes": 6},
    "04": {"judge_prompts": 3, "sample_size": 4},
}


@pytest.mark.parametrize("use_batch", [False, True], ids=["one-by-one", "batch-apis"])
def test_paper_config_runs_against_the_zoo_through_the_overlay(use_batch: bool, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    raw = read_yaml(PROJECT_ROOT / "configs" / "runs" / "paper.yaml")
    raw["steps"] = [dict(s, parameters={**s.get("parameters", {}), **SLICE[s["notebook"]]})
                    for s in raw["steps"] if s["notebook"] in SLICE]
    raw["models_overlay"] = "configs/overlays/zoo.yaml"
    raw["batch"] = use_batch
    cfg = plan.RunConfig.model_validate(raw)
    with ZooServer() as srv:
        monkeypatch.setenv("DISTILL_KIT_ZOO_URL", srv.root_url)
        monkeypatch.setenv("DISTILL_KIT_ZOO_KEY", "zoo")
        logs: list[str] = []
        with estimate.run_environment(cfg):
            before = estimate.estimate_run(cfg, tmp_path)
        result = pipeline.run_pipeline(cfg, tmp_path, log=logs.append, max_cost=100.0)
        stats = srv.stats
    assert logs[0].startswith("cost estimate before the run")
    summary = json.loads(result.summary.read_text())
    replay = summary["steps"]["03-identity-scores"]["replay"]
    assert len(replay) == len(datasets.identity_response_models())
    for row in replay:  # the judge's verdicts reproduce the published labels' scores for every model
        assert row["lis"] == pytest.approx(row["lis_labels"]), row["model"]
        assert row["sis"] == pytest.approx(row["sis_labels"]), row["model"]
    from distill_kit.store import Store

    with Store(result.run_dir / "store.sqlite") as store:
        usage = {r["model"]: r for r in store.usage().to_dicts()}
    assert {"gpt-4o", "deepseek-chat", "claude-3-5-sonnet", "gpt-4o-mini"} <= set(usage)
    # every request went over HTTP to the zoo, and the estimate named exactly the requests the notebooks sent
    sent = sum(r["requests"] for r in usage.values())
    if use_batch:  # every API model went through its batch API (the zoo answers every batch request)
        assert stats.chat == 0 and stats.batch_requests == sent and stats.batches_created >= 4
    else:
        assert stats.chat == sent and stats.batches_created == 0
    # the spending cap's ledger saw every dollar the kernels recorded
    spent = json.loads((result.run_dir / "spend.json").read_text())["spent"]
    assert spent == pytest.approx(sum(r["cost_usd"] for r in usage.values())) and spent > 0
    predicted = sum(ln.requests - ln.stored for ln in before.lines)
    # judge prompts quote answers not given yet: two models that give the same answer (the zoo's Arena-Hard
    # stand-ins) make one judge request where the estimate counted two; everything else is exact
    judges = sum(ln.requests for ln in before.lines if ln.purpose in ("RSE judge", "live judge"))
    assert sent <= predicted <= sent + judges // 2
    exact = {(ln.model, ln.purpose): ln.requests for ln in before.lines if "judge" not in ln.purpose}
    assert exact[("deepseek-chat", "live identity")] == usage["deepseek-chat"]["requests"] - exact[
        ("deepseek-chat", "identity probes")] - exact[("deepseek-chat", "RSE answers")]
    with estimate.run_environment(cfg):
        after = estimate.estimate_run(cfg, tmp_path)
    assert all(ln.stored == ln.requests for ln in after.lines) and after.total == 0
