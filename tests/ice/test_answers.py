"""What notebook 03 wires together: published and live answers, the replay table, labels, flagged answers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from distill_kit.ice import answers, browse, calibration, fuzz, scores
from distill_kit.ice import labels as L
from distill_kit.store import Store
from distill_kit.testing import LoopbackServer
from tests.helpers.identity import loop_cfg, store_attempts

SMOL = "I am SmolLM2, a small language model developed by Hugging Face."


def test_sources_and_the_live_models_they_need() -> None:
    assert answers.sources("both", ["m"]) == (True, True)
    assert answers.sources("both", []) == (True, False)  # [] = no live model
    assert answers.sources("live", ["m"]) == (False, True) and answers.sources("replay", ["m"]) == (True, False)
    with pytest.raises(ValueError, match="source must be replay, live or both"):
        answers.sources("all")


def test_published_answers_sample_per_model(data_dir: Path) -> None:
    frame = answers.published_answers(["phi-4", "deepseek-chat"], sample_size=7, seed=1)
    assert frame.group_by("model").len().sort("model").rows() == [("deepseek-chat", 7), ("phi-4", 7)]
    assert {"language", "category", "template_id", "loose_label"} <= set(frame.columns)
    again = answers.published_answers(["phi-4", "deepseek-chat"], sample_size=7, seed=1)
    assert again.equals(frame) and not answers.published_answers(["phi-4"], 7, seed=2)["row"].equals(
        frame.filter(pl.col("model") == "phi-4")["row"])
    assert answers.published_answers(["phi-4"]).height == 1000  # 0 = all


def judged_frame() -> pl.DataFrame:
    return pl.DataFrame({"model": ["a"] * 4 + ["b"] * 2, "language": ["en"] * 6, "category": ["name"] * 6,
                         "query": [f"q{i}" for i in range(6)], "response": [f"r{i}" for i in range(6)],
                         "pred_loose": [True, False, True, None, False, True],
                         "pred_strict": [True, False, None, None, False, False],
                         "loose_label": [True, False, False, True, False, True],
                         "strict_label": [True, False, False, False, False, False]})


def test_replay_table_joins_labels_paper_and_agreement() -> None:
    frame = judged_frame()
    paper = pl.DataFrame({"model": ["a"], "lis": [0.25], "sis": [0.1]})
    table = scores.replay_table(frame, scores.identity_scores(frame), scores.label_scores(frame), paper)
    a, b = table.sort("model").to_dicts()
    assert a["n"] == 3 and a["lis"] == pytest.approx(2 / 3) and a["lis_labels"] == pytest.approx(0.5)
    assert a["lis_paper"] == 0.25 and b["lis_paper"] is None  # the paper has no score for b
    # agreement over the answers with a loose verdict; an unknown strict verdict counts as 0
    assert a["loose_accuracy"] == pytest.approx(2 / 3) and a["strict_accuracy"] == 1.0
    assert b["loose_accuracy"] == 1.0 and "loose_n" not in table.columns
    by_model = scores.agreement_by_model(frame)
    assert by_model["loose_n"].to_list() == [3, 2]


def test_flagged_answers_are_the_loose_positives() -> None:
    frame = judged_frame()
    flagged = browse.flagged_answers([frame, None, frame.filter(pl.col("model") == "b")])
    assert flagged.columns == ["model", "language", "category", "query", "response"]
    assert flagged["response"].to_list() == ["r0", "r2", "r5", "r5"]
    assert browse.flagged_answers([None, None]) is None
    assert browse.flagged_answers([frame.filter(pl.col("pred_loose") == False)]).height == 0  # noqa: E712


def test_labels_from_any_file_keyed_by_the_answers_row(tmp_path: Path) -> None:
    frame = pl.DataFrame({"model": ["m", "m"], "row": [0, 1], "prompt": ["p0", "p1"], "response": ["a0", "a1"]})
    with L.LabelStore(tmp_path / "labels.sqlite", labeller="t") as store:
        store.label("m", L.answer_key("m", "p1", "a1"), loose=True, strict=False)
    written = pl.DataFrame({"model": ["m"], "key": ["0"], "loose_label": [False], "strict_label": [False]})
    written.write_csv(tmp_path / "labels.csv")
    written.write_parquet(tmp_path / "labels.parquet")
    assert calibration.labels_from_file(frame, tmp_path / "labels.sqlite").rows() == [("m", "1", True, False)]
    assert calibration.labels_from_file(frame, tmp_path / "labels.csv").rows() == [("m", "0", False, False)]
    assert calibration.labels_from_file(frame, tmp_path / "labels.parquet").rows() == [("m", "0", False, False)]
    assert calibration.labels_from_file(frame, tmp_path / "none.sqlite") is None  # nothing labelled yet


def test_summary_rows_carry_the_intervals_as_pairs() -> None:
    corrected = pl.DataFrame({"model": ["m"], "lis_lo": [0.1], "lis_hi": [0.3], "sis_lo": [0.0], "sis_hi": [0.2]})
    assert calibration.summary_rows(corrected) == [{"model": "m", "lis_lo": 0.1, "lis_hi": 0.3, "sis_lo": 0.0,
                                                    "sis_hi": 0.2, "lis_ci": [0.1, 0.3], "sis_ci": [0.0, 0.2]}]


@pytest.mark.slow
def test_live_answers_ask_probes_and_add_stored_fuzz_attempts(tmp_path: Path, data_dir: Path) -> None:
    with LoopbackServer() as srv, Store(tmp_path / "s.sqlite") as store:
        target = loop_cfg(srv.base_url, "smol").model_copy(update={"identity": SMOL, "family": "smollm"})
        store_attempts(store, "smol", ["I am ChatGPT.", None])
        none = answers.live_answers([target], 0, store)  # 0 = no probes asked; stored attempts still scored
        assert len(srv.state.calls) == 0 and none.frame["model"].to_list() == ["smol (GPTFuzzer)"]
        live = answers.live_answers([target], 3, store, seed=2)
        assert len(srv.state.calls) == 3 and live.errors == 0
        assert live.frame["model"].to_list() == ["smol"] * 3 + ["smol (GPTFuzzer)"]
        assert list(live.frame.schema.items()) == list(answers.LIVE_COLUMNS.items())
        assert set(live.frame["fact"]) == {SMOL} and live.frame["response"].null_count() == 0
        assert answers.live_answers([target], 3, store, seed=2).frame.equals(live.frame)  # from the store
        assert len(srv.state.calls) == 3
        with pytest.raises(ValueError, match="no identity fact"):
            answers.live_answers([target.model_copy(update={"identity": None})], 1, store)
    assert fuzz.fuzz_targets(Store(tmp_path / "s.sqlite")) == ["smol"]


@pytest.mark.slow
def test_live_answers_judge_what_notebook_02_collected_without_asking_again(tmp_path: Path, data_dir: Path) -> None:
    from distill_kit.collect import collect_sync
    from distill_kit.ice import probes

    with LoopbackServer() as srv, Store(tmp_path / "s.sqlite") as store:
        target = loop_cfg(srv.base_url, "smol").model_copy(update={"identity": SMOL, "family": "smollm"})
        pairs = probes.sample_pairs(probes.load_probes(), [probes.BARE_TEMPLATE], 4, seed=0)
        collect_sync(target, probes.identity_requests(pairs), store, progress=False)  # notebook 02
        store_attempts(store, "smol", ["I am ChatGPT."])
        calls = len(srv.state.calls)
        live = answers.live_answers([target], 0, store)
        assert len(srv.state.calls) == calls  # nothing asked twice
        plain = live.frame.filter(pl.col("model") == "smol")
        assert sorted(plain["query"]) == sorted(p.text for p, _ in pairs) and set(plain["template"]) == {"bare"}
        assert live.frame.filter(pl.col("model") == "smol (GPTFuzzer)").height == 1  # the attempt, not twice
        more = answers.live_answers([target], 6, store, seed=1)  # asked now + collected, each pair once
        keys = more.frame.filter(pl.col("model") == "smol").select("query", "template")
        assert keys.height == keys.unique().height and keys.height >= 6
        assert {(p.text, "bare") for p, _ in pairs} <= set(keys.rows())


def test_a_pair_that_fails_now_keeps_the_answer_the_store_already_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    row = {"model": "smol", "family": "smollm", "fact": SMOL, "query": "Who made you?", "language": "en",
           "category": "maker", "template": "bare"}
    failed = pl.DataFrame([{**row, "response": None, "error": "timeout after 1s"}], schema=answers.LIVE_COLUMNS)
    stored = pl.DataFrame([{**row, "response": "Hugging Face made me.", "error": None}], schema=answers.LIVE_COLUMNS)
    monkeypatch.setattr(answers, "asked_live", lambda target, n, store, seed=0: failed)
    monkeypatch.setattr(answers, "collected_live", lambda target, store: stored)
    monkeypatch.setattr(fuzz, "scoring_frame", lambda store, target: pl.DataFrame(schema=answers.LIVE_COLUMNS))
    got = answers.live_answers([object()], 1, store=None)
    assert got.errors == 1 and got.frame["response"].to_list() == ["Hugging Face made me."]
