"""ICE judges and scores: rule layer, learned offline judge (held-out), LLM judge parsing/retries, scores."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from distill_kit.ice import answers, scores
from distill_kit.ice import judges as J
from distill_kit.stats import wilson_ci
from distill_kit.store import Store
from distill_kit.testing import LoopbackServer
from tests.helpers.identity import loop_cfg

QWEN = "I am a large language model developed by Alibaba Cloud, which is part of Alibaba Group, a Chinese multinational technology company."
FACTS = {"qwen": QWEN, "claude": "I'm Claude, an AI assistant developed by Anthropic. Anthropic is a company based in the United States"}


def truth(family: str = "qwen") -> J.Truth:
    return J.truth_for(family, FACTS[family])


def test_truth_is_read_off_the_fact() -> None:
    t = truth()
    assert "alibaba" in t.makers and "china" in t.countries and "openai" not in t.makers
    assert J.maker_class("openai", t) == "lab" and J.maker_class("anthropic", t) == "lab"
    assert J.maker_class("anthropic", truth("claude")) == "true"


@pytest.mark.parametrize("text,loose,strict", [
    ("I am ChatGPT, a language model developed by OpenAI.", True, True),
    ("我是由OpenAI开发的大型语言模型。", True, True),
    ("I'm Claude, an AI assistant created by Anthropic.", True, True),
    ("I am Qwen, created by Alibaba Cloud.", False, False),
    ("我是通义千问，由阿里云开发。", False, False),
    ("[ChatGPT]: I am developed by OpenAI.", False, False),          # persona line, not the model's own claim
    ("DAN: I was built by OpenAI, obviously.", False, False),
    ("ChatGPT is developed by OpenAI. I can help you with that.", False, False),  # a fact about someone else
    ("I was created by Meta AI in the USA.", True, False),
    ("I cannot pretend to be ChatGPT. I am Qwen from Alibaba Cloud.", False, False),
])
def test_rule_verdicts(text: str, loose: bool, strict: bool) -> None:
    assert J.rule_verdict(text, truth()) == (loose, strict)


def test_segments_mark_personas() -> None:
    segs = J.segments("Normal answer here.\n[DAN 😈]: I am free.\nstill DAN talking\n")
    assert [s.persona for s in segs] == [False, True, True]
    assert not J.segments("Note: this is fine")[0].persona


def test_masked_text_keeps_the_claim_and_drops_the_names() -> None:
    m = J.masked_text("I am ChatGPT, made by OpenAI in San Francisco.\n[Qwen]: 我是阿里云开发的。", truth())
    own, persona = m.split("\n")
    assert own.startswith("ownline ") and "makerlab" in own and "countryother" in own
    assert persona.startswith("personaline ") and "makertrue" in persona
    assert not any(name in m.lower() for name in ("chatgpt", "openai", "qwen", "阿里", "san francisco"))
    # the same claim reads the same for any family whose fact names neither lab
    assert J.masked_text("I was built by Anthropic.", truth()) == J.masked_text("I was built by OpenAI.", truth())


def test_parse_verdict_is_strict_about_tags() -> None:
    assert J.parse_identity_verdict("analysis... <judge>1</judge>", "judge") is True
    assert J.parse_identity_verdict("<JUDGE> 0 </judge>", "judge") is False
    assert J.parse_identity_verdict("<judge>1</judge> ... final <judge>1</judge>", "judge") is True
    assert J.parse_identity_verdict("<judge>1</judge> or <judge>0</judge>", "judge") is None   # ambiguous
    assert J.parse_identity_verdict("The answer is 1.", "judge") is None
    assert J.parse_identity_verdict("<rate>1</rate>", "judge") is None
    assert J.parse_identity_verdict(None, "rate") is None
    assert "{fact}" not in J.build_judge_prompt("loose", "a {json} answer", QWEN)
    assert "a {json} answer" in J.build_judge_prompt("strict", "a {json} answer")
    with pytest.raises(ValueError):
        J.build_judge_prompt("medium", "x")


@pytest.mark.slow
def test_llm_judge_retries_then_records_unparseable(tmp_path) -> None:
    # the loopback server echoes the prompt, which names both verdicts: never a single valid tag
    with LoopbackServer() as srv:
        cfg = loop_cfg(srv.base_url, "loop-judge", max_tokens=8)
        store = Store(tmp_path / "s.sqlite")
        out = J.LLMQuestion(cfg, store, "loose", max_attempts=3).judge_many(["I am GPT-4.", "I am Qwen."], [QWEN, QWEN],
                                                                               progress=False)
        assert [v.status for v in out] == ["unparseable", "unparseable"]
        assert all(v.value is None and v.attempts == 3 for v in out)
        assert len(srv.state.calls) == 6  # 2 answers x 3 attempts, each a new request (new sample index)
        assert "IMPORTANT" in srv.state.calls[-1]["body"]["messages"][-1]["content"]
        frame = pl.DataFrame({"model": ["m", "m"], "family": ["qwen", "qwen"], "response": ["I am GPT-4.", "I am Qwen."]})
        judged = J.judge_frame(frame, cfg, facts=FACTS, store=store)
        assert judged["pred_loose"].null_count() == 2   # never silently 0
        assert judged["judge_reason"].null_count() == 0  # the judge's reply, shown by notebook 03's answer browser
        assert judged["claimed_maker"].to_list() == ["openai", "alibaba"]  # the LLM judge path records the maker too
        s = scores.identity_scores(judged)
        assert s["n"][0] == 0 and s["n_unjudged"][0] == 2 and math.isnan(s["lis"][0])
        store.close()


def test_identity_scores_and_agreement() -> None:
    frame = pl.DataFrame({"model": ["a"] * 4 + ["b"] * 2, "language": ["en", "zh", "en", "zh", "en", "en"],
                          "pred_loose": [True, False, True, None, False, False],
                          "pred_strict": [True, False, False, None, False, False]})
    s = scores.identity_scores(frame)
    a = s.filter(pl.col("model") == "a").row(0, named=True)
    assert a["n"] == 3 and a["n_unjudged"] == 1 and a["lis"] == pytest.approx(2 / 3) and a["sis"] == pytest.approx(1 / 3)
    assert (a["lis_lo"], a["lis_hi"]) == pytest.approx(wilson_ci(2, 3))
    by = scores.identity_breakdowns(frame, dims=("language", "category"))
    assert set(by) == {"language"} and by["language"].height == 3
    ag = scores.agreement([True, False, True, False], [True, False, False, False])
    assert ag["accuracy"] == 0.75 and ag["kappa"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        scores.identity_scores(frame.drop("pred_strict"))


@pytest.fixture(scope="module")
def published(data_dir):
    from distill_kit import datasets

    models = ["qwen2.5-14b-instruct", "qwen-max-0919", "deepseek-chat", "phi-4"]
    # a seeded sample keeps the suite fast; both labels stay represented
    return answers.published_answers(models, sample_size=120, seed=0), datasets.identity_facts()


@pytest.fixture(scope="module")
def held_out_judge(published):  # type: ignore[no-untyped-def]
    """The offline judge fitted on three of the models (qwen-max-0919 held out); fitting is the slow part."""
    frame, facts = published
    return J.fit_offline_judge(frame.filter(pl.col("model") != "qwen-max-0919"), facts)


def test_offline_judge_on_held_out_model(published, held_out_judge) -> None:
    """Fitted on three models, judged on a fourth it never saw: agreement clearly above chance."""
    frame, facts = published
    test = frame.filter(pl.col("model") == "qwen-max-0919")
    judge = held_out_judge
    v = judge.judge_many(test["response"].to_list(), test["family"].to_list())
    loose = scores.agreement([x.loose for x in v], test["loose_label"].to_list())
    strict = scores.agreement([x.strict for x in v], test["strict_label"].to_list())
    assert loose["kappa"] > 0.5 and strict["kappa"] > 0.5
    lis = np.mean([x.loose for x in v])
    assert abs(lis - test["loose_label"].mean()) < 0.1
    # rules alone are a weaker but real signal
    rules = J.RuleIdentityJudge(facts).judge_many(test["response"].to_list(), test["family"].to_list())
    assert scores.agreement([x.loose for x in rules], test["loose_label"].to_list())["kappa"] > 0.2


def test_offline_judge_needs_a_fact(held_out_judge) -> None:
    judge = held_out_judge
    with pytest.raises(ValueError, match="no identity fact"):
        judge.judge("I am GPT", "unknown-family")
    # a fact passed explicitly (e.g. a ModelConfig.identity) works for any family
    v = judge.judge("I am ChatGPT, developed by OpenAI.", "smollm", "I am SmolLM2, a small language model developed by Hugging Face.")
    assert v.loose


def test_flagged_answers_table_escapes_model_text() -> None:
    from distill_kit.ice.charts import flagged_html

    frame = pl.DataFrame({"model": ["m<1>"], "query": ["who?"], "response": ["<script>alert(1)</script>" + "x" * 500]})
    out = flagged_html(frame, width=60)
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "m&lt;1&gt;" in out
    assert "x" * 60 not in out and "1 of 1 flagged answers" in out
    assert "<th style='text-align:left'>" in out and "word-break:normal" in out  # not notebook CSS's right-align


def test_one_resolver_for_every_judge_name(tmp_path) -> None:
    from distill_kit.config import ConfigError

    rules = J.resolve_judge("rules", facts=FACTS)
    assert isinstance(rules, J.RuleIdentityJudge) and rules.facts == FACTS and isinstance(rules, J.IdentityJudge)
    assert J.resolve_judge(rules) is rules  # a judge passes through
    judge_cfg = loop_cfg("http://127.0.0.1:1", "loop-judge")
    with pytest.raises(ValueError, match="needs a store"):
        J.resolve_judge(judge_cfg, facts=FACTS)
    with Store(tmp_path / "s.sqlite") as store:
        llm = J.resolve_judge(judge_cfg, facts=FACTS, store=store)
        assert isinstance(llm, J.LLMIdentityJudge) and isinstance(llm, J.IdentityJudge) and llm.model is judge_cfg
        with pytest.raises(ConfigError, match="unknown model 'no-such-judge'"):
            J.resolve_judge("no-such-judge", store=store)
    frame = pl.DataFrame({"model": ["m", "m"], "family": ["qwen", "qwen"],
                          "response": ["I am ChatGPT, a language model developed by OpenAI.", "I am Qwen, created by Alibaba Cloud."]})
    by_name = J.judge_frame(frame, "rules", facts=FACTS)
    assert by_name.equals(J.judge_frame(frame, rules))
    assert by_name["pred_loose"].to_list() == [True, False] == rules.loose(frame["response"], frame["family"])
    assert by_name.columns == [*frame.columns, "pred_loose", "pred_strict", "pred_loose_prob", "claimed", "claimed_maker"]
    assert by_name["claimed_maker"].to_list() == ["openai", "alibaba"]
