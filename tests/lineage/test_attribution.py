"""Teacher attribution by similarity signals on a constructed case with a known answer; calibration."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit.lineage import attribution as lineage
from tests.helpers.lineage_habits import HABITS, LINES


@pytest.mark.parametrize("signals", [("paired",), ("ngram",), ("paired", "style")])
def test_attribution_finds_known_teacher(echo_frame: pl.DataFrame, signals: tuple[str, ...]) -> None:
    res = lineage.attribute(echo_frame, ["student", "control"], list(HABITS), lines=LINES, signals=signals)
    top = res.table(top_k=3)
    assert top["top1"][0] == "teacher-a"
    assert res.probabilities[0].sum() == pytest.approx(1.0)
    assert res.probabilities[0, res.candidates.index("teacher-a")] > 0.5
    m = lineage.attribution_metrics(res, {"student": "teacher-a"}, LINES)
    assert m["top1"] == 1.0 and m["n"] == 1.0
    assert res.calibration["sibling_n"] == 6  # every reference has a same-line sibling
    assert res.distillation_score[0] > res.distillation_score[1]  # student closer to a reference than control


def test_attribution_rejects_bad_input(echo_frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="both student and candidate"):
        lineage.attribute(echo_frame, ["teacher-a"], list(HABITS))
    with pytest.raises(ValueError, match="no responses"):
        lineage.attribute(echo_frame, ["nobody"], list(HABITS))
    with pytest.raises(ValueError, match="unknown signals"):
        lineage.attribute(echo_frame, ["student"], list(HABITS), signals=("magic",))
    with pytest.raises(ValueError, match="columns"):
        lineage.attribute(pl.DataFrame({"model": ["a"], "text": ["b"]}), ["a"], list(HABITS))


def test_style_signal_averages_stylometry_surface_features(echo_frame: pl.DataFrame) -> None:
    from distill_kit.lineage.prompts import common_prompts, split_prompts
    from distill_kit.text.stylometry import surface_features

    fit, score = split_prompts(common_prompts(echo_frame), 0.5, 0)
    feats = lineage.build_features(echo_frame, ["teacher-a", "ref-b"], fit, score)
    own = echo_frame.filter((pl.col("model") == "ref-b") & pl.col("prompt").is_in(fit))
    assert np.allclose(feats.style_fit["ref-b"], surface_features(own["text"].to_list()).mean(axis=0))
    plain = lineage.build_features(echo_frame, ["teacher-a", "ref-b"], fit, score, with_style=False)
    with pytest.raises(ValueError, match="with_style"):
        lineage.signal_matrix(plain, "style", ["ref-b"], ["teacher-a"])


def test_auroc() -> None:
    assert lineage.auroc([3, 4], [1, 2]) == 1.0
    assert lineage.auroc([1], [2]) == 0.0
    assert lineage.auroc([1, 2], [2]) == 0.25


def _sampled_task(n: int, k: int, temperature: float, seed: int) -> tuple[np.ndarray, list[list[int]]]:
    """Scores and answers drawn from softmax(scores / temperature): the right temperature is known."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, k))
    p = lineage.softmax(scores, temperature)
    return scores, [[int(rng.choice(k, p=row))] for row in p]


def test_fit_temperature_recovers_known_temperature() -> None:
    for true_t in (0.3, 1.5):
        scores, correct = _sampled_task(1500, 6, true_t, seed=1)
        assert lineage.fit_temperature(scores, correct) == pytest.approx(true_t, rel=0.15)


def test_held_out_temperatures_leave_the_row_out() -> None:
    scores, correct = _sampled_task(30, 5, 0.5, seed=2)
    correct[3] = []  # a row without a known answer (a control) gets the all-rows temperature
    temps = lineage.held_out_temperatures(scores, correct)
    assert temps[3] == lineage.fit_temperature(scores, correct)
    for i in (0, 7, 29):
        others = [c if k != i else [] for k, c in enumerate(correct)]
        assert temps[i] == lineage.fit_temperature(scores, others)
    with pytest.raises(ValueError, match="at least 2"):
        lineage.held_out_temperatures(scores, [[0]] + [[]] * 29)


def test_calibrate_on_labels_never_uses_a_students_own_label() -> None:
    rng = np.random.default_rng(3)
    cands = [f"c{j}" for j in range(6)]
    students = [f"s{i}" for i in range(8)] + ["control"]
    combined = rng.normal(size=(len(students), len(cands)))
    res = lineage.Attribution(students=students, candidates=cands, signals={"x": combined}, combined=combined,
                              probabilities=lineage.softmax(combined, 0.05), temperature=0.05)
    truth = {s: cands[int(np.argmax(combined[i]))] if i % 2 else cands[i % 6] for i, s in enumerate(students[:8])}
    cal = lineage.calibrate_on_labels(res, truth)
    assert np.allclose(cal.probabilities.sum(axis=1), 1.0) and cal.calibration["labelled_n"] == 8
    assert np.array_equal(cal.combined, res.combined)  # rankings unchanged
    for i in range(8):  # student i's confidence is fitted on the other 7 labels only
        others = {s: t for s, t in truth.items() if s != students[i]}
        t_i = lineage.fit_temperature(combined, [[cands.index(others[s])] if s in others else [] for s in students])
        assert cal.temperatures[i] == t_i
        assert np.allclose(cal.probabilities[i], lineage.softmax(combined[i : i + 1], t_i)[0])
    # changing student 0's own label leaves its probabilities untouched but moves the others'
    moved = dict(truth, s0=cands[(cands.index(truth["s0"]) + 1) % 6])
    cal2 = lineage.calibrate_on_labels(res, moved)
    assert np.array_equal(cal2.probabilities[0], cal.probabilities[0])
    assert not np.allclose(cal2.probabilities[1:], cal.probabilities[1:])
    # the unlabelled control and new students use the temperature fitted on all labels
    assert cal.temperatures[-1] == cal.temperature
    m = lineage.attribution_metrics(cal, truth)
    assert 0.0 <= m["brier_top1"] <= 1.0 and 0.0 < m["p_teacher"] < 1.0
    with pytest.raises(ValueError, match="at least 2"):
        lineage.calibrate_on_labels(res, {"s0": "c0"})
    # below min_labelled the sibling-task calibration is kept as it is
    assert lineage.calibrate_on_labels(res, {"s0": "c0", "s1": "c1"}, fallback_below=3) is res


def test_hubness_correction_demotes_a_candidate_close_to_everyone() -> None:
    # candidate 0 is a hub (0.8 to every other candidate); the query's true match is candidate 1
    cc = np.full((4, 4), 0.1)
    cc[0, :] = cc[:, 0] = 0.8
    np.fill_diagonal(cc, 1.0)
    qc = np.array([[0.62, 0.60, 0.2, 0.1]])
    assert int(np.argmax(qc)) == 0  # raw similarity picks the hub
    fixed = lineage.hubness_correct(qc, cc, k=2)
    assert int(np.argmax(fixed)) == 1
    # r_c: the hub's two nearest other candidates average 0.8; candidate 1's are (0.8 + 0.1) / 2
    assert fixed[0, 0] == pytest.approx(2 * 0.62 - 0.8) and fixed[0, 1] == pytest.approx(2 * 0.60 - 0.45)


def test_prompt_similarity_keeps_the_cosine_of_each_prompts_two_answers() -> None:
    frame = pl.DataFrame({
        "model": ["a", "b", "c", "a", "b", "a", "b", "c"],
        "prompt": ["p1", "p1", "p1", "p2", "p2", "p3", "p3", "p3"],
        "text": ["Sure! Here it is.", "Sure! Here it is.", "No idea, sorry.", "Sure! Here you go.",
                 "Well, here it is.", "Sure! Here.", "Sure! Here.", "Sure! sorry."]})
    ps = lineage.prompt_similarity(frame, ["a", "b", "c"], ["p1", "p2", "p3"], features="word")
    assert ps.sim.shape == (3, 3, 3)
    assert ps.sim[0, 0, 1] == pytest.approx(1.0, abs=1e-6)  # identical answers to p1
    assert np.isnan(ps.sim[1, 0, 2]) and np.isnan(ps.sim[1, 2, 2])  # c did not answer p2
    assert np.allclose(ps.sim[0], ps.sim[0].T) and ps.sim[0, 0, 2] < 0.5
    assert ps.block(["c"], ["a", "b"]).shape == (3, 1, 2)
    chars = lineage.prompt_similarity(frame, ["a", "b", "c"], ["p1", "p2", "p3"], features="char")
    assert 0 < chars.sim[1, 0, 1] < 1 and chars.features == "char"
    with pytest.raises(ValueError, match="no paired similarity"):
        ps.block(["z"], ["a"])
    with pytest.raises(ValueError, match="unknown paired features"):
        lineage.prompt_similarity(frame, ["a", "b"], ["p1"], features="bert")


def test_paired_signal_is_the_mean_over_score_prompts_of_each_pairs_cosine(echo_frame: pl.DataFrame) -> None:
    from distill_kit.lineage.prompts import common_prompts, split_prompts

    models = sorted(echo_frame["model"].unique().to_list())
    fit, score = split_prompts(common_prompts(echo_frame, models), 0.5, 0)
    feats = lineage.build_features(echo_frame, models, fit, score, with_style=False)
    got = lineage.signal_matrix(feats, "paired", ["student"], ["teacher-a", "ref-b"])
    M = feats.matrix
    for j, c in enumerate(["teacher-a", "ref-b"]):
        want = np.mean([float(M[feats.rows[("student", p)]].multiply(M[feats.rows[(c, p)]]).sum()) for p in score])
        assert got[0, j] == pytest.approx(want, abs=1e-6)
