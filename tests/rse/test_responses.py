"""RSE answers: alignment by prompt text, published and live answers through collect + the store, gathering
several prompt sets into one response set."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from distill_kit import datasets
from distill_kit.rse import responses as rsp


def test_align_by_text_not_position() -> None:
    prompts = pl.DataFrame({"prompt_set": ["s"] * 3, "prompt_id": ["p1", "p2", "p3"], "prompt": ["Alpha?", "Beta?", "Gamma?"]})
    answers = pl.DataFrame({
        "model": ["m", "m", "m", "n", "n"],
        "prompt": ["Gamma?", " Alpha? ", "Beta?", "Beta?", "Unrelated"],
        "text": ["g", "a", "   ", "b", "x"],
    })
    aligned, report = rsp.align_responses(prompts, answers)
    assert aligned.columns == ["prompt_set", "prompt_id", "prompt", "model", "text"]
    got = {(r["model"], r["prompt_id"]): r["text"] for r in aligned.to_dicts()}
    assert got == {("m", "p3"): "g", ("m", "p1"): "a", ("n", "p2"): "b"}
    assert report.empty == {"m": 1, "n": 0}
    assert report.missing == {"m": 0, "n": 2}
    assert report.kept == {"m": 2, "n": 1}
    assert report.frame().filter(pl.col("model") == "m")["empty"].item() == 1
    report.merge(report)
    assert report.kept == {"m": 4, "n": 2} and report.missing == {"m": 0, "n": 4}
    with pytest.raises(ValueError, match="missing 'text'"):
        rsp.align_responses(prompts, answers.drop("text"))


def test_live_path_through_collect_matches_replay(data_dir: Path, tmp_path: Path) -> None:
    """Answers collected through collect + store (replay provider) align exactly like the published ones
    read directly; an unknown prompt becomes a counted missing answer."""
    from distill_kit.models import get_model
    from distill_kit.store import Store

    prompts = datasets.prompt_set("alpaca-eval", 4, seed=3)
    extra = pl.DataFrame({"prompt_set": ["alpaca-eval"], "prompt_id": ["mine"], "prompt": ["A prompt nobody answered"]})
    prompts_plus = pl.concat([prompts, extra])
    cfg = get_model("replay:alpaca-eval/zephyr-7b-beta")
    with Store(tmp_path / "s.sqlite") as store:
        rs = rsp.gather_responses(["alpaca-eval"], ["gpt4_0613"], "gpt4_0613", store=store, sample_size=4, seed=3)
        live = rsp.collect_responses(cfg, prompts_plus, store)
    assert live.columns == list(datasets.RESPONSE_COLUMNS)
    assert live.height == 5 and live["text"][4] is None and live["prompt_id"][4] == "mine"
    assert rsp.answered_line(cfg.name, live) == f"{cfg.name}: 4/5 RSE prompts answered"
    with Store(tmp_path / "s.sqlite") as store:
        nothing = rsp.collect_responses(cfg, extra, store)
        stored = datasets.load_responses("store", [cfg.name], str(tmp_path / "s.sqlite"))
    with pytest.raises(RuntimeError, match="0/1 RSE prompts answered"):  # notebook 02 stops here, not later
        rsp.answered_line(cfg.name, nothing)
    assert set(stored["prompt_id"]) == set(prompts["prompt_id"])  # the ids travel through the store
    aligned, report = rsp.align_responses(prompts_plus, live)
    assert report.empty[cfg.name] == 1 and report.kept[cfg.name] == 4
    published = datasets.load_responses("alpaca-eval", ["zephyr-7b-beta"], keep_empty=True)
    want, _ = rsp.align_responses(prompts, published)
    assert sorted(aligned["text"].to_list()) == sorted(want["text"].to_list())
    assert rs.models == ["gpt4_0613"] and rs.aligned.height == 4


def test_gather_two_prompt_sets_and_its_errors(data_dir: Path, tmp_path: Path) -> None:
    own = tmp_path / "own-set.jsonl"
    own.write_text('{"prompt": "Nobody published answers to this."}\n')
    rs = rsp.gather_responses(["alpaca-eval", "arena_hard", str(own)], ["gpt-4-0314", "gpt4_0613"], "gpt-4-0314",
                              sample_size=3, seed=0)
    assert rs.prompt_sets == ["alpaca-eval", "arena-hard", "own-set"]  # one spelling; a file's set named after it
    assert rs.models == ["gpt-4-0314", "gpt4_0613"]
    by_set = rs.aligned.group_by("prompt_set", maintain_order=True).agg(pl.col("model").unique())
    assert by_set.rows() == [("alpaca-eval", ["gpt4_0613"]), ("arena-hard", ["gpt-4-0314"])]
    assert rs.report.kept == {"gpt4_0613": 3, "gpt-4-0314": 3}
    with pytest.raises(ValueError, match="reference 'gpt4_0613' has no answers in arena-hard"):
        rsp.gather_responses(["arena-hard"], ["gpt-4-0314"], "gpt4_0613", sample_size=2)
    with pytest.raises(ValueError, match="no responses for prompt sets"):
        rsp.gather_responses([str(own)], None, "gpt4_0613")
    with pytest.raises(ValueError, match="models must be a list of names, got the string 'a,b'"):
        rsp.gather_responses(["alpaca-eval"], "a,b", "gpt4_0613")
