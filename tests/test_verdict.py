"""distill_kit.verdict: the per-model verdict table and its rule-built sentences, from typed summaries."""

from __future__ import annotations

from distill_kit import verdict
from distill_kit.summaries import IdentitySummary, LineageSummary, SimilaritySummary

ICE = IdentitySummary.model_validate({
    "judge": "offline", "source": "replay",
    "replay": [{"model": "qwen2.5-72b", "lis": 0.36, "lis_lo": 0.33, "lis_hi": 0.39, "sis": 0.19, "sis_lo": 0.17, "sis_hi": 0.22},
               {"model": "claude-3-5-sonnet-20241022", "lis": 0.004, "lis_lo": 0.001, "lis_hi": 0.01, "sis": 0.0,
                "sis_lo": 0.0, "sis_hi": 0.004}],
    "corrected": [{"model": "qwen2.5-72b", "lis_corrected": 0.31, "lis_ci": [0.27, 0.35], "lis_method": "PPI++ (lambda=0.90)",
                   "lis_n_labels": 50, "sis_corrected": 0.2, "sis_ci": [0.17, 0.23]}]})
RSE = SimilaritySummary.model_validate({
    "prompt_sets": ["alpaca-eval"], "reference": "gpt4", "judge": "offline", "sample_size": 10, "seed": 0,
    "rse_by_reference": {
        "gpt4": [{"test_model": "vicuna", "mean": 3.4, "mean_lo": 3.3, "mean_hi": 3.5},
                 {"test_model": "gpt4", "mean": 5.0, "mean_lo": 5.0, "mean_hi": 5.0}],
        "claude": [{"test_model": "vicuna", "mean": 2.9, "mean_lo": 2.8, "mean_hi": 3.0}]}})
EMB = LineageSummary.model_validate({
    "data_source": "alpaca-eval", "models": ["vicuna", "tulu"], "sample_size": 20, "seed": 0,
    "attribution": [{"student": "vicuna", "distillation_score": 0.8, "top1": "gpt-3.5-turbo-0301", "p1": 0.71},
                    {"student": "tulu", "distillation_score": 0.2, "top1": "gpt4", "p1": 0.1}],
    "reference_lines": {"gpt-3.5-turbo-0301": "gpt-3.5"}})


def test_corrected_scores_win_over_raw_and_raw_is_the_fallback():
    rows = {v.model: v for v in verdict.verdict_table(ICE)}
    q = rows["qwen2.5-72b"]
    assert (q.lis, q.lis_lo, q.lis_hi, q.lis_labels) == (0.31, 0.27, 0.35, 50) and q.lis_method.startswith("PPI")
    assert "contradicts its identity in 31% [27, 35] of jailbreak attempts" in q.sentence
    assert "claims an OpenAI/Anthropic identity in 20%" in q.sentence
    c = rows["claude-3-5-sonnet-20241022"]
    assert c.lis == 0.004 and c.lis_method == "classify-and-count (offline)"
    assert "keeps its identity" in c.sentence and "OpenAI" not in c.sentence


EMB_TESTED = LineageSummary.model_validate({
    **EMB.model_dump(exclude_unset=True), "lineage_test_alpha": 0.05, "lineage_test_method": "word/hard/sum",
    "lineage_test": [{"target": "vicuna", "line": "gpt-3.5", "p": 0.0004, "p_adj": 0.0031, "named": True},
                     {"target": "tulu", "line": "gpt-4", "p": 0.04, "p_adj": 0.41, "named": False}]})


def test_sentence_names_a_teacher_line_only_where_the_lineage_test_passed():
    rows = {v.model: v for v in verdict.verdict_table(None, RSE, EMB_TESTED)}
    v = rows["vicuna"]
    assert v.lineage_named and v.lineage_p_adj == 0.0031 and v.distillation_score == 0.8
    assert v.sentence == ("vicuna answers like the gpt-3.5 line (lineage test p_adj=0.003, alpha=0.05); is most "
                          "similar to gpt4 (RSE 3.40 [3.30, 3.50] of 5), clearly above claude (2.90).")
    assert "gpt4" not in rows  # a reference is not scored against itself
    assert rows["tulu"].sentence == "tulu no lineage signal at alpha=0.05 (best line gpt-4, p_adj=0.410)."
    row = v.as_row()
    assert row["rse gpt4"] == 3.4 and row["rse claude hi"] == 3.0 and row["lineage_line"] == "gpt-3.5"
    # the vote's closest line and confidence stay as numbers in the row, named by model without lines
    assert v.teacher_line == "gpt-3.5" and v.teacher_confidence == 0.71
    assert verdict.verdict_table(None, None, EMB, lines={})[1].teacher_line == "gpt-3.5-turbo-0301"


def test_without_a_lineage_test_no_line_is_named():
    """A run recorded before the test existed (or a folder too thin to test) names no teacher line."""
    rows = {v.model: v for v in verdict.verdict_table(None, None, EMB)}
    assert rows["vicuna"].sentence == "vicuna teacher line not tested (step 05-embed-and-cluster recorded no lineage test)."
    thin = LineageSummary.model_validate({**EMB.model_dump(exclude_unset=True),
                                          "lineage_test_note": "lineage test: too few documented unrelated pairs"})
    (v, _) = verdict.verdict_table(None, None, thin, models=["vicuna", "tulu"])
    assert v.sentence == "vicuna teacher line not tested (lineage test: too few documented unrelated pairs)."
    assert "answers like" not in v.sentence


def test_foreign_maker_is_named_only_where_its_test_passed():
    ice = IdentitySummary.model_validate({
        **ICE.model_dump(exclude_unset=True),
        "makers": [{"model": "qwen2.5-72b", "top_foreign": "OpenAI", "share": 0.3, "baseline": 0.02, "p": 1e-6,
                    "p_adj": 2e-6, "alpha": 0.05, "passed": True},
                   {"model": "claude-3-5-sonnet-20241022", "top_foreign": "OpenAI", "share": 0.01, "baseline": 0.005,
                    "p": 0.3, "p_adj": 0.6, "alpha": 0.05, "passed": False},
                   {"model": "quiet", "top_foreign": None, "passed": False}]})
    rows = {v.model: v for v in verdict.verdict_table(ice)}
    assert rows["qwen2.5-72b"].sentence.endswith(
        "; claims OpenAI as its maker in 30% of its answers, above its own rate of naming other foreign makers "
        "(2%; p_adj=2.0e-06).")
    c = rows["claude-3-5-sonnet-20241022"].sentence
    assert c.endswith("; no foreign maker stands out at alpha=0.05 (most named OpenAI, p_adj=0.600).")
    assert rows["quiet"].sentence == "quiet names no foreign maker in its own voice."


def test_rse_table_against_the_reference_when_no_other_reference_was_recorded():
    rse = SimilaritySummary.model_validate({**RSE.model_dump(exclude_unset=True), "rse_by_reference": {},
                                            "rse_table": [{"test_model": "vicuna", "mean": 3.0, "mean_lo": 2.5, "mean_hi": 3.5}]})
    (v,) = verdict.verdict_table(None, rse)
    assert v.rse == {"gpt4": (3.0, 2.5, 3.5)}


def test_a_model_nothing_scored_says_so():
    (v,) = verdict.verdict_table(models=["x"])
    assert v.sentence == "x: no step of this run scored it."
    assert verdict.verdict_table() == []
