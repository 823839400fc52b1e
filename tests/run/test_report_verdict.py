"""The report's verdict table (top of the page) and paired-comparison section, from a run's summaries."""

from __future__ import annotations

from pathlib import Path

from distill_kit.run import report
from distill_kit.summaries import IdentitySummary, SimilaritySummary, record_summary
from tests.helpers.fake_run import similarity_summary


def test_verdict_and_paired_sections_render_from_summaries(tmp_path: Path) -> None:
    run = tmp_path / "run"
    record_summary(str(run), IdentitySummary.step, {
        "judge": "offline", "source": "replay",
        "replay": [{"model": "qwen2.5-72b", "lis": 0.36, "lis_lo": 0.33, "lis_hi": 0.39, "sis": 0.19, "sis_lo": 0.17, "sis_hi": 0.22}],
        "corrected": [{"model": "qwen2.5-72b", "lis_corrected": 0.52, "lis_ci": [0.45, 0.6], "lis_method": "PPI++ (lambda=0.80)",
                       "lis_n_labels": 100, "sis_corrected": 0.21, "sis_ci": [0.18, 0.24]}],
        "paired_lis": [{"a": "qwen2.5-72b", "b": "<b>phi-4</b>", "n": 40, "mean_a": 0.5, "mean_b": 0.2, "diff": 0.3, "lo": 0.1,
                        "hi": 0.5, "p_value": 0.001, "p_holm": 0.002, "significant": True, "test": "McNemar (exact)"}]})
    rse = similarity_summary(["vicuna-7b-v1.5"], reference="gpt4_1106_preview").model_dump(exclude_unset=True)
    record_summary(str(run), SimilaritySummary.step, rse)
    rep = report.build_report(run)
    keys = [s.key for s in rep.sections]
    assert keys.index("verdict") == 1  # right after the run overview
    verdict = next(s for s in rep.sections if s.key == "verdict")
    assert verdict.ran and "0.520 [0.450, 0.600]" in verdict.body and "PPI++" in verdict.body
    assert "contradicts its identity in 52% [45, 60] of jailbreak attempts" in verdict.body
    assert "is most similar to gpt4_1106_preview (RSE 2.50 [2.00, 3.00] of 5)" in verdict.body
    paired = next(s for s in rep.sections if s.key == "paired")
    assert paired.ran and "McNemar" in paired.body and "&lt;b&gt;phi-4&lt;/b&gt;" in paired.body and "<b>phi-4" not in paired.body


def test_verdict_section_says_which_steps_are_missing() -> None:
    rep = report.build_report(None)
    verdict = next(s for s in rep.sections if s.key == "verdict")
    assert not verdict.ran and "03-identity-scores, 04-response-similarity or 05-embed-and-cluster" in verdict.body
    assert not next(s for s in rep.sections if s.key == "paired").ran
