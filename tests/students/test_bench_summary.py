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
