"""RSE judge-bias controls: scripted judges on the in-process ``mock`` provider (no sockets: the fast loop)."""

from __future__ import annotations

import re
import warnings

import polars as pl
import pytest

from distill_kit.providers import mock
from distill_kit.rse import llm_judge as js


def scripted_judge(bias: int = 1, offset: int = 0):
    """A judge whose scores fall with the length gap of the two answers, +``bias`` when the test answer is shown
    first (a position bias), +``offset`` overall; it replies with the tags in the order the prompt asks."""

    def reply(prompt: str) -> str:
        ref = re.search(r"\[Reference answer\]\n(.*?)\n\n", prompt, re.S).group(1)
        test = re.search(r"\[Test answer\]\n(.*?)\n\n", prompt, re.S).group(1)
        test_first = prompt.index("[Test answer]") < prompt.index("[Reference answer]")
        base = 5 - min(4, abs(len(ref) - len(test)) // 4)
        score = max(1, min(5, base - 1 + offset + (bias if test_first else 0)))
        order = sorted(js.ASPECTS, key=lambda a: prompt.index(f"<{a}>N</{a}>"))
        tags = "".join(f"<{a}>{score}</{a}>" for a in order)
        return f"{tags}<rationale>length gap {abs(len(ref) - len(test))}, {'test' if test_first else 'ref'} first</rationale>"

    return reply


def pairs_to_judge(n: int = 8, reference: str = "ref-model") -> pl.DataFrame:
    return pl.DataFrame({
        "prompt_set": ["s"] * n, "prompt_id": [f"p{i}" for i in range(n)], "prompt": [f"Question {i}?" for i in range(n)],
        "test_model": ["student"] * n, "reference": [reference] * n,
        "test_answer": ["x" * (4 * i + 1) for i in range(n)], "reference_answer": ["x"] * n})


_registered: list[str] = []


def judge_config(name: str, reply, family: str | None = None):
    """A mock judge ``name`` answering with ``reply``; its script is ``mock.script_for(name)``."""
    from distill_kit.config import ModelConfig

    mock.script(name, reply=reply)
    _registered.append(name)
    return ModelConfig(name=name, provider="mock", model=name, max_retries=0, family=family)


@pytest.fixture(autouse=True)
def forget_scripts():
    yield
    while _registered:
        mock.forget(_registered.pop())


def test_warns_when_the_judge_is_the_reference_or_a_test_model(tmp_path) -> None:
    from distill_kit.store import Store

    reply = scripted_judge()
    store = Store(tmp_path / "s.sqlite")
    judge = judge_config("Ref-Model", reply)
    with pytest.warns(js.JudgeBiasWarning, match="also the reference"):
        js.judge_pairs(judge, pairs_to_judge(2), store, progress=False)
    with pytest.warns(js.JudgeBiasWarning, match="also a test model"):
        js.judge_pairs(judge_config("student", reply), pairs_to_judge(2), store, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        js.judge_pairs(judge_config("other", reply), pairs_to_judge(2), store, progress=False)
    store.close()


def test_both_orders_and_shuffled_aspects_expose_a_position_bias(tmp_path) -> None:
    from distill_kit.store import Store

    judge = judge_config("judge-a", scripted_judge(bias=1))
    store = Store(tmp_path / "s.sqlite")
    out = js.judge_pairs(judge, pairs_to_judge(8), store, progress=False,
                         both_orders=True, shuffle_aspects=True, seed=3)
    assert out.height == 16 and set(out["order"]) == set(js.ORDERS) and (out["status"] == "ok").all()
    assert out["aspect_order"].n_unique() > 1  # the order really varies...
    again = js.judge_pairs(judge, pairs_to_judge(8), store, progress=False,
                           both_orders=True, shuffle_aspects=True, seed=3)
    assert again["aspect_order"].to_list() == out["aspect_order"].to_list()  # ...and is reproducible
    calls = len(mock.script_for("judge-a").calls)
    assert calls == 16  # the re-run was served from the store
    # every asked order was parsed right: the three aspects of one verdict are equal by construction
    assert (out["style"] == out["content"]).all() and (out["structure"] == out["content"]).all()
    agree = js.order_agreement(out)
    # the scripted judge adds one point when the test answer comes first (capped at 5)
    assert agree["n_pairs"] == 8 and agree["overall"]["mean_diff"] <= -0.5
    assert agree["overall"]["share_diff_ge_1"] >= 0.5
    comb = js.combine_orders(out)
    assert comb.height == 8 and comb["n_orders"].to_list() == [2] * 8 and comb["order_gap"].max() == 1.0
    reasons = js.reasons_frame(out)
    assert {"judge", "order", "aspect_order", "rationale"} <= set(reasons.columns)
    assert reasons["rationale"].str.contains("first").all()
    sent = mock.script_for("judge-a").calls[0].messages[-1]["content"]
    assert "[Reference answer]" in sent and "[Test answer]" in sent
    store.close()


def test_panel_keeps_per_judge_scores_and_reports_agreement_and_offline_agreement(tmp_path) -> None:
    from distill_kit.store import Store

    a, b = scripted_judge(bias=0), scripted_judge(bias=0, offset=1)
    store = Store(tmp_path / "s.sqlite")
    judges = [judge_config("judge-a", a, family="fam-a"), judge_config("judge-b", b, family="fam-b")]
    out = js.judge_panel(judges, pairs_to_judge(8), store, seed=1, progress=False)
    assert out.height == 32 and sorted(out["judge"].unique()) == ["judge-a", "judge-b"]
    wide = js.panel_scores(out)
    assert wide.height == 8 and {"judge-a", "judge-b", "panel_mean"} <= set(wide.columns)
    offline = pairs_to_judge(8).select("prompt_id", "test_model", "reference").with_columns(
        pl.Series("overall", [5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0]))
    agree = js.panel_agreement(out, offline)
    assert agree["judges"] == ["judge-a", "judge-b"]
    assert agree["judge_means"]["judge-b"] > agree["judge_means"]["judge-a"]  # the offset judge is kept apart
    assert 0.5 < agree["overall"]["alpha"] < 1.0  # same ranking, shifted scale
    assert agree["overall"]["kendall_w"] > 0.9
    assert agree["offline_agreement"]["judge-a"]["spearman"] > 0.8 and agree["offline_agreement"]["judge-a"]["n_pairs"] == 8
    with pytest.warns(js.JudgeBiasWarning, match="same family"):
        js.judge_panel([judge_config("judge-a", a, "fam"), judge_config("judge-c", b, "fam")], pairs_to_judge(2), store,
                       progress=False)
    with pytest.raises(ValueError, match="distinct"):
        js.judge_panel([judges[0], judges[0]], pairs_to_judge(2), store, progress=False)
    store.close()
