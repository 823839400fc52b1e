"""The students benchmark's verdicts: a teacher line counts where it is significant even beside the base's own
line; the base's own line is never a false positive; the shortfall says by how much each done-when is missed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from distill_kit.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_students", ROOT / "benchmarks" / "bench_students.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _row(kind: str, dose: int, teacher_line: str | None, significant: list[str], rse: float = 3.0,
         passed: bool | None = None) -> dict[str, Any]:
    return {"kind": kind, "dose": dose, "teacher_line": teacher_line, "lines_significant": significant,
            "line_named": significant[0] if significant else None, "rse_teacher": rse, "rse_others_max": 2.5,
            "claims": {"passed": passed}}


def test_detection_and_false_positives_are_judged_against_the_base_line() -> None:
    rows = {
        bench.BASE: _row("control", 0, None, ["llama-3.1"], passed=False),
        "s-own": _row("control", 256, None, ["llama-3.1", "gpt-4"]),
        "s-a-16": _row("teacher", 16, "claude-1/2", ["llama-3.1"], rse=2.6),
        "s-a-256": _row("teacher", 256, "claude-1/2", ["llama-3.1", "claude-1/2"], rse=2.9),
        "s-b-16": _row("teacher", 16, "gpt-4", [], rse=2.8),
        "s-b-256": _row("teacher", 256, "gpt-4", ["llama-3.1"], rse=2.7),
        "s-id": _row("identity", 256, None, [], passed=False),
    }
    out = bench.summarise(rows, [16, 256], 0.05, "llama-3.1")
    assert out["power_by_dose"]["256"]["detected_teacher_line"] == 1
    assert out["power_by_dose"]["256"]["named_teacher_line"] == 0  # the best line was the base's
    assert out["false_positives"] == {bench.BASE: [], "s-own": ["gpt-4"]} and out["n_false_positives"] == 1
    text = " | ".join(out["shortfall"])
    assert "1 of 2 teacher students at dose 256 (short by 1)" in text
    assert "s-own" in text and "s-id" in text
    assert not any("RSE" in line for line in out["shortfall"])  # the mean RSE rose (2.70 -> 2.80)
    rows["s-a-256"]["rse_teacher"] = 2.5
    assert any("16->256: -0.10" in line for line in bench.summarise(rows, [16, 256], 0.05, "llama-3.1")["shortfall"])


def test_doses_read_max_as_the_largest_and_reject_a_bad_entry() -> None:
    assert bench.parse_doses("256, max,16,256", 709) == [16, 256, 709]
    for bad in ("16,lots", ",", "-4"):
        with pytest.raises(ConfigError, match="dose"):
            bench.parse_doses(bad, 709)


def test_max_dose_is_every_prompt_a_teacher_answered_but_the_evaluated(data_dir: object) -> None:
    from distill_kit import datasets

    ids = datasets.load_responses("alpaca-eval", ["gpt4_0613"])["prompt_id"].to_list()
    assert bench.max_dose(["gpt4_0613"], set(ids[:96])) == len(ids) - 96
    assert bench.max_dose(["gpt4_0613", "claude-2"], set()) == len(ids)


def test_recipe_rule_keeps_the_current_recipe_unless_a_candidate_is_clearly_better() -> None:
    current = (1, 1e-3)
    assert bench.pick_recipe({current: 2.00, (1, 3e-3): 1.99, (2, 1e-3): 1.985}, current) == current
    assert bench.pick_recipe({current: 2.00, (1, 3e-3): 1.95, (2, 1e-3): 1.97}, current) == (1, 3e-3)
    assert bench.pick_recipe({current: 2.00, (1, 3e-3): 2.10, (2, 1e-3): 1.90}, current) == (2, 1e-3)
    assert bench.pick_recipe({current: 2.00, (1, 3e-3): 2.05}, current) == current


def test_fewer_unseen_than_evaluated_prompts_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--eval-prompts", "96", "--unseen-prompts", "48"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --unseen-prompts (48) must be at least --eval-prompts (96)") and err.count("\n") == 1


def test_default_recipe_is_the_one_the_recipe_rule_chose() -> None:
    from distill_kit.students.recipe import Recipe

    # the rule's mean held-out losses as measured (docs/students.md): 1 epoch at 3e-3 beat 1e-3 by 0.027
    measured = {(1, 1e-3): 1.887, (1, 3e-3): 1.860, (2, 1e-3): 1.863}
    args = bench.parser().parse_args([])
    chosen = bench.pick_recipe(measured, bench.RECIPE_CANDIDATES[0])
    assert (args.epochs, args.learning_rate) == chosen == (1, 3e-3)
    assert bench.bench_recipe(args).learning_rate == Recipe().learning_rate == 3e-3


def _ceiling_rows(copy_sibling: bool, capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The teacher ceiling on synthetic answers: every reference line has its own words, the documented
    human-data controls share none; the teacher gpt4_0613 writes like its sibling gpt4_0314 or like a control."""
    import json
    import random

    import polars as pl

    rng = random.Random(0)
    lines = {"gpt4_0314": "gpt-4", "gpt4_0613": "gpt-4", "claude": "claude-1/2", "claude-2": "claude-1/2",
             "Meta-Llama-3-8B-Instruct": "llama-3", "Yi-34B-Chat": "yi", "Qwen1.5-72B-Chat": "qwen"}
    controls = ["guanaco-33b", "oasst-sft-llama-33b", "guanaco-13b", "guanaco-7b", "oasst-rlhf-llama-33b",
                "llama-2-13b-chat-hf"]
    vocab = {ln: [f"{ln.replace('-', '')}w{i}" for i in range(30)] for ln in set(lines.values())}
    generic = [f"plain{i}" for i in range(200)]
    rows = []
    for p in range(40):
        for m in [*lines, *controls]:
            own = vocab[lines[m]] if m in lines and (m != "gpt4_0613" or copy_sibling) else generic
            words = rng.sample(own, 12) + rng.sample(generic, 6) + [f"topic{p}"] * 3
            rows.append({"model": m, "prompt_id": f"p{p:02d}", "prompt": f"question {p}", "text": " ".join(words)})
    alpaca = pl.DataFrame(rows)
    monkeypatch.setattr(bench, "clip_answers", lambda frame, n: frame)
    args = bench.parser().parse_args(["--teacher-ceiling", "--ceiling-clips", "48"])
    evaluated = alpaca.filter(pl.col("prompt_id") < "p20").select("prompt_id", "prompt").unique().sort("prompt_id")
    assert bench.teacher_ceiling(args, ["gpt4_0613"], lines, alpaca, evaluated) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]


def test_teacher_ceiling_tests_the_teacher_out_of_its_own_references(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (row,) = _ceiling_rows(True, capsys, monkeypatch)
    assert row["line_members_left"] == ["gpt4_0314"]  # the teacher is not its own reference
    assert row["lines_significant"] == ["gpt-4"] and row["p_adj_teacher_line"] < 1e-3
    (row,) = _ceiling_rows(False, capsys, monkeypatch)  # a teacher that writes like no line: nothing named
    assert row["lines_significant"] == [] and row["p_adj_teacher_line"] > 0.05
