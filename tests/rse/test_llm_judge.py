"""RSE LLM judge: verdict parsing on handmade replies, pairs to judge, order agreement, the retry loop on a
scripted (mock) judge, and one real HTTP round trip to the local SmolLM2."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from distill_kit.rse import llm_judge as js


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("<style>4</style>\n<structure>3</structure>\n<content>5</content>\n<rationale>Close.</rationale>", (4, 3, 5, "Close.")),
        ("Here you go:\n<STYLE> 2 </STYLE><logical_structure>1</logical_structure><content_detail>2.5</content_detail>", (2, 1, 2.5, "")),
        ('```json\n{"style": 5, "logical_structure": "4/5", "content_detail": 3, "rationale": "same list"}\n```', (5, 4, 3, "same list")),
        ('{"Response Style": 1, "Logical Structure": 2, "Content Detail": "3"}', (1, 2, 3, "")),
        ("**Response style**: 4/5\n**Logical structure** - 4\nContent detail score = 2\nRationale: both list tips.", (4, 4, 2, "both list tips.")),
        ("Style: 3\nStructure: 3 out of 5\nContent: 4", (3, 3, 4, "")),
        ("<style>N</style><structure>N</structure><content>N</content>\n<style>2</style><structure>3</structure>"
         "<content>4</content><rationale>r</rationale>", (2, 3, 4, "r")),
    ],
)
def test_parse_verdict_formats(reply: str, expected: tuple) -> None:
    v = js.parse_similarity_verdict(reply)
    assert v is not None
    assert (v.style, v.structure, v.content, v.rationale) == expected
    assert v.overall == pytest.approx(sum(expected[:3]) / 3)


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "",
        "The answers are quite similar overall.",
        "<style>4</style><structure>3</structure>",  # one aspect missing
        "<style>6</style><structure>3</structure><content>2</content>",  # out of range
        "<style>0</style><structure>3</structure><content>2</content>",
        '{"style": "high", "structure": 3, "content": 2}',
        '{"style": true, "structure": 3, "content": 2}',
        "Style: 7\nStructure: 3\nContent: 4",
        "<style>N</style>\n<structure>N</structure>\n<content>N</content>\n<rationale>...</rationale>",  # echoed template
    ],
)
def test_parse_verdict_rejects_malformed(reply: str | None) -> None:
    assert js.parse_similarity_verdict(reply) is None


def test_judge_prompt_holds_both_answers_and_truncates() -> None:
    msg = js.judge_prompt("Q?", "REF " * 10, "T" * 50, max_answer_chars=20)
    assert "[Reference answer]\nREF REF" in msg and "[Test answer]\nTTTT" in msg
    assert msg.count("[... answer truncated ...]") == 2
    assert "<structure>N</structure>" in msg


def aligned_answers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "prompt_set": ["s"] * 5,
            "prompt_id": ["p1", "p2", "p1", "p2", "p3"],
            "prompt": ["Q1", "Q2", "Q1", "Q2", "Q3"],
            "model": ["ref", "ref", "a", "a", "a"],
            "text": ["R1", "R2", "A1", "A2", "A3"],
        }
    )


def test_judge_pairs_frame_joins_on_prompt_id() -> None:
    pairs = js.judge_pairs_frame(aligned_answers(), "ref", ["a"])
    assert pairs.height == 2  # p3 has no reference answer
    assert pairs.sort("prompt_id")["reference_answer"].to_list() == ["R1", "R2"]
    assert pairs.sort("prompt_id")["test_answer"].to_list() == ["A1", "A2"]
    with pytest.raises(ValueError, match="no aligned answers"):
        js.judge_pairs_frame(aligned_answers(), "nobody")


def test_judge_pairs_sample_is_the_same_prompts_for_every_model() -> None:
    rows = [(s, f"{s}{i}", m) for s in ("x", "y") for i in range(6) for m in ("ref", "a", "b")]
    aligned = pl.DataFrame({"prompt_set": [r[0] for r in rows], "prompt_id": [r[1] for r in rows],
                            "prompt": [r[1] for r in rows], "model": [r[2] for r in rows],
                            "text": [f"{r[2]}:{r[1]}" for r in rows]})
    pairs = js.judge_pairs_frame(aligned, "ref", ["a", "b"], per_prompt_set=2, seed=5)
    by_model = {m: sorted(pairs.filter(pl.col("test_model") == m)["prompt_id"]) for m in ("a", "b")}
    assert by_model["a"] == by_model["b"] and len(by_model["a"]) == 4
    assert pairs.group_by("prompt_set", "test_model").len()["len"].to_list() == [2] * 4  # both sets, 2 each


def test_order_agreement_per_judge_and_its_table() -> None:
    base = {"prompt_set": "s", "test_model": "a", "reference": "ref", "status": "ok"}
    rows = [{**base, "judge": j, "prompt_id": f"p{i}", "order": order, **dict.fromkeys((*js.ASPECTS, "overall"), score)}
            for j, gap in (("j2", 0.0), ("j1", 1.0)) for i in range(3)
            for order, score in zip(js.ORDERS, (3.0 + i % 2, 3.0 + i % 2 + gap))]
    agree = js.order_agreement_by_judge(pl.DataFrame(rows))
    assert list(agree) == ["j2", "j1"]  # in order of appearance
    assert agree["j2"]["overall"]["mean_abs_diff"] == 0.0 and agree["j1"]["overall"]["share_diff_ge_1"] == 1.0
    table = js.order_agreement_frame(agree)
    assert table.rows() == [("j2", 3, 0.0, 0.0), ("j1", 3, 1.0, 1.0)]
    assert js.order_agreement_frame({"j": {}}).rows() == [("j", None, None, None)]  # one order only: no check


def _scripted_judge_reply(calls: dict[str, int]):
    """A judge whose reply depends on the test answer and on how often it was asked about it."""

    def reply(user: str) -> str:
        test = user.split("[Test answer]\n", 1)[1].split("\n", 1)[0]
        n = calls[test] = calls.get(test, 0) + 1
        if test == "GOOD":
            return "<style>4</style><structure>4</structure><content>3</content><rationale>ok</rationale>"
        if test == "SECOND" and n >= 2:
            return '{"style": 2, "structure": 2, "content": 1, "rationale": "second try"}'
        return "I think they are similar."

    return reply


def test_judge_retries_with_new_sample_then_records_unparseable(tmp_path: Path) -> None:
    from distill_kit.store import Store
    from tests.helpers.mocked import mock_model

    calls: dict[str, int] = {}
    pairs = pl.DataFrame({
        "prompt_set": ["s"] * 3, "prompt_id": ["p1", "p2", "p3"], "prompt": ["Q"] * 3,
        "test_model": ["a"] * 3, "reference": ["ref"] * 3,
        "test_answer": ["GOOD", "SECOND", "NEVER"], "reference_answer": ["R"] * 3,
    })
    with mock_model(reply=_scripted_judge_reply(calls), name="fake-judge", max_retries=0) as (judge, script):
        store = Store(tmp_path / "s.sqlite")
        out = js.judge_pairs(judge, pairs, store, max_attempts=3, progress=False)
        rows = {r["test_answer"]: r for r in out.to_dicts()}
        assert rows["GOOD"]["status"] == "ok" and rows["GOOD"]["attempts"] == 1
        assert (rows["GOOD"]["style"], rows["GOOD"]["structure"], rows["GOOD"]["content"]) == (4, 4, 3)
        assert rows["SECOND"]["status"] == "ok" and rows["SECOND"]["attempts"] == 2
        assert rows["SECOND"]["rationale"] == "second try"
        assert rows["NEVER"]["status"] == "unparseable" and rows["NEVER"]["attempts"] == 3
        assert rows["NEVER"]["overall"] is None and rows["NEVER"]["style"] is None
        assert rows["NEVER"]["raw"] == "I think they are similar."
        assert calls == {"GOOD": 1, "SECOND": 2, "NEVER": 3}
        # a retry samples: temperature raised to RETRY_TEMPERATURE, seed shifted by the attempt
        never = [(c.params.temperature, c.params.seed) for c in script.calls
                 if "[Test answer]\nNEVER\n" in c.messages[-1]["content"]]
        assert never == [(0.0, None), (js.RETRY_TEMPERATURE, 1), (js.RETRY_TEMPERATURE, 2)]
        # a rerun is served from the store: nothing asked again, same verdicts
        again = js.judge_pairs(judge, pairs, store, max_attempts=3, progress=False)
        assert calls == {"GOOD": 1, "SECOND": 2, "NEVER": 3}
        assert again["status"].to_list() == out["status"].to_list()
        frame = store.frame(model="fake-judge")
        assert frame.height == 6  # 1 + 2 + 3 stored samples
        store.close()


@pytest.mark.slow
def test_judge_real_http_smollm2(tmp_path: Path) -> None:
    """The whole loop against a real LLM over HTTP: every pair ends ok with scores in [1, 5] or
    unparseable with null scores -- never a made-up number."""
    pytest.importorskip("llama_cpp")
    from distill_kit.config import ConfigError
    from distill_kit.models import get_model
    from distill_kit.store import Store

    try:
        base = get_model("smollm2-local")
        from distill_kit.providers.local import default_gguf

        default_gguf()
    except ConfigError as exc:
        pytest.skip(str(exc))
    judge = base.with_params(max_tokens=40)
    pairs = pl.DataFrame({  # one pair: each call costs ~10-20 s of CPU on a busy 2-core machine
        "prompt_set": ["s"], "prompt_id": ["p1"], "prompt": ["Name a fruit."],
        "test_model": ["a"], "reference": ["ref"], "test_answer": ["An apple."], "reference_answer": ["A banana."],
    })
    with Store(tmp_path / "s.sqlite") as store:
        out = js.judge_pairs(judge, pairs, store, max_attempts=2, progress=False)
        stored = store.frame(model=judge.name)
    assert out.height == 1
    for r in out.to_dicts():
        assert r["status"] in ("ok", "unparseable")
        assert r["raw"]  # the model really answered
        if r["status"] == "ok":
            assert all(1 <= r[a] <= 5 for a in js.ASPECTS)
        else:
            assert r["attempts"] == 2 and r["overall"] is None
    assert stored.height == int(out["attempts"].sum())
