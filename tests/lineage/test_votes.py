"""Vote attribution (distill_kit.lineage.votes): a candidates-only author classifier votes on a student.

Synthetic references with known verbal habits; a student that echoes one reference's style must be
attributed to it, and neither the method choice nor a target's confidence may depend on that target.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit.lineage import votes as A
from tests.helpers.lineage_habits import HABITS, LINES, habits_frame

N_TOPICS = 40


def _frame(student_habits: tuple[str, ...]) -> pl.DataFrame:
    return habits_frame(student_habits, N_TOPICS)


@pytest.fixture(scope="module")
def echo_a() -> tuple[A.VoteAttribution, dict]:
    return A.attribute_by_vote(_frame(HABITS["teacher-a"]), ["student", "control"], list(HABITS), LINES,
                               methods=[m for m in A.METHODS if m.features in ("word", "template")])


def test_student_echoing_a_reference_is_attributed_to_it(echo_a: tuple[A.VoteAttribution, dict]) -> None:
    res, table = echo_a
    r = res.rankings["student"]
    assert r.candidates[0] == "teacher-a" and r.lines[0] == "A"
    assert r.line_scores[0] > 0.5 and r.n_answers == N_TOPICS  # every answer voted (cross-fitted)
    assert 0.0 < res.confidence["student"] <= 1.0
    # the references-only task is solvable here: every held-out reference lands in its line
    assert table[res.method.name]["top1_line"] == 1.0 and table[res.method.name]["n"] == 6
    assert res.selected_on.startswith("references-only")
    # the control (neutral style) gets a flatter vote than the echoing student
    assert res.rankings["control"].line_scores[0] < r.line_scores[0]
    assert set(res.table()["target"].to_list()) == {"student", "control"}


def test_method_selection_never_sees_the_targets(echo_a: tuple[A.VoteAttribution, dict]) -> None:
    """The choice is a function of the references alone: a student echoing another reference (or no
    target at all) leaves the chosen method and the whole references-only table unchanged."""
    res_a, table_a = echo_a
    methods = [m for m in A.METHODS if m.features in ("word", "template")]
    res_b, table_b = A.attribute_by_vote(_frame(HABITS["ref-b2"]), ["student", "control"], list(HABITS), LINES,
                                         methods=methods)
    assert res_b.method == res_a.method and table_b == table_a
    assert res_b.rankings["student"].lines[0] == "B"  # ... while the student's attribution follows it
    # the held-out-reference votes are identical with and without targets in the data
    frame = _frame(HABITS["teacher-a"])
    rounds = A.sibling_rounds(list(HABITS), LINES)
    with_targets = A.vote_matrix(frame, list(HABITS), [], features="word", held_out=rounds)
    refs_only = A.vote_matrix(frame.filter(pl.col("model").is_in(list(HABITS))), list(HABITS), [], features="word",
                              held_out=rounds)
    assert set(with_targets.probs) == set(HABITS)  # voters are the held-out references, never a target
    for v in with_targets.probs:
        assert np.allclose(with_targets.probs[v], refs_only.probs[v])
    with pytest.raises(ValueError, match="both voter and candidate"):
        A.vote_matrix(frame, list(HABITS), ["teacher-a"], features="word")


def test_sibling_rounds_keep_a_sibling_in_training() -> None:
    lines = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c": "C"}
    rounds = A.sibling_rounds(list(lines), lines)
    assert rounds == {"round0": ["a1", "b1"], "round1": ["a2", "b2"], "round2": ["a3"]}
    assert A.sibling_rounds(["x", "y"], {"x": "X", "y": "Y"}) == {}


def _ranking(voter: str, line_scores: dict[str, float]) -> A.Ranking:
    order = sorted(line_scores, key=lambda k: -line_scores[k])
    return A.Ranking(voter, order, [line_scores[k] for k in order], order, [line_scores[k] for k in order], 10)


def test_nested_selection_never_uses_the_scored_targets_label() -> None:
    rng = np.random.default_rng(0)
    lines = ["A", "B", "C"]
    targets = [f"t{i}" for i in range(10)]
    truth = {t: lines[i % 3] for i, t in enumerate(targets)}
    rankings: dict[str, dict[str, A.Ranking]] = {}
    for m, skill in (("good", 0.8), ("bad", 0.2)):
        rankings[m] = {}
        for t in targets:
            win = truth[t] if rng.random() < skill else lines[(lines.index(truth[t]) + 1) % 3]
            s = {ln: float(rng.uniform(0.05, 0.3)) for ln in lines}
            s[win] = 0.6
            total = sum(s.values())
            rankings[m][t] = _ranking(t, {k: v / total for k, v in s.items()})
    base = A.nested_attribution(rankings, truth, ["bad", "good"], lines)
    assert {p.method for p in base.values()} == {"good"}
    for t in targets:  # relabel t (even to a line that would flip the method choice): t's result stays
        for moved in lines:
            out = A.nested_attribution(rankings, {**truth, t: moved}, ["bad", "good"], lines)
            assert out[t].method == base[t].method and out[t].confidence == base[t].confidence
            assert out[t].ranking is base[t].ranking
    # relabelling the *other* targets so that "bad" wins on them does move t's choice
    flipped = {k: (rankings["bad"][k].lines[0] if k != "t0" else truth[k]) for k in targets}
    assert A.nested_attribution(rankings, flipped, ["good", "bad"], lines)["t0"].method == "bad"


def test_held_out_confidence_ignores_own_label() -> None:
    rng = np.random.default_rng(1)
    lines = ["A", "B", "C", "D"]
    ranks = []
    for i in range(12):
        s = rng.dirichlet(np.ones(4) * 0.5)
        ranks.append(_ranking(f"t{i}", dict(zip(lines, s.tolist()))))
    truth = {r.voter: r.lines[0] if i % 3 else r.lines[1] for i, r in enumerate(ranks[:10])}  # t10, t11 unlabelled
    conf, temps = A.held_out_line_confidence(ranks, truth, lines)
    assert conf.shape == (12,) and np.all((conf > 0.25 - 1e-9) & (conf <= 1.0))
    moved = {**truth, "t0": "D" if truth["t0"] != "D" else "A"}
    conf2, temps2 = A.held_out_line_confidence(ranks, moved, lines)
    assert conf2[0] == conf[0] and temps2[0] == temps[0]
    assert temps[10] == temps[11]  # unlabelled targets share the all-labels temperature
    with pytest.raises(ValueError, match=">= 2 labelled"):
        A.held_out_line_confidence(ranks, {"t0": "A"}, lines)


def test_fit_line_temperature_sharpens_when_votes_are_reliable() -> None:
    rng = np.random.default_rng(2)
    Q = rng.dirichlet(np.ones(5), size=200)
    right = A.fit_line_temperature(Q, Q.argmax(axis=1).tolist())  # the top line is always right
    noisy = A.fit_line_temperature(Q, rng.integers(0, 5, size=200).tolist())  # truth unrelated to votes
    assert right < 0.5 < 5.0 < noisy


def test_aggregate_and_line_scores() -> None:
    P = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    assert np.allclose(A.aggregate(P, "soft"), P.mean(axis=0))
    hard = A.aggregate(P, "hard")
    assert hard.argmax() == 0 and hard.sum() == pytest.approx(1.0)
    assert A.aggregate(P, "log").sum() == pytest.approx(1.0)
    s = np.array([0.3, 0.25, 0.45])
    assert A.line_scores(s, ["x1", "x2", "y"], {"x1": "X", "x2": "X", "y": "Y"}, "sum") == pytest.approx(
        {"X": 0.55, "Y": 0.45})
    mx = A.line_scores(s, ["x1", "x2", "y"], {"x1": "X", "x2": "X", "y": "Y"}, "max")
    assert max(mx, key=mx.get) == "Y"
    with pytest.raises(ValueError):
        A.aggregate(P, "magic")
    with pytest.raises(ValueError):
        A.line_scores(s, ["a", "b", "c"], {}, "magic")


def test_templates_keep_function_words_and_shapes() -> None:
    t = A.templates("Certainly! The dog is running quickly.\n- 42 items")
    assert t == "certainly ! the <W> is <ING> <LY> . <NL> - <NUM> <S>"


def test_brier_and_ece() -> None:
    assert A.brier([1.0, 0.0], [True, False]) == 0.0
    assert A.brier([0.5, 0.5], [True, False]) == 0.25
    assert A.ece([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert A.ece([0.9] * 10, [False] * 10) == pytest.approx(0.9)
    assert A.ece([0.1, 0.9], [True, False], bins=5) == pytest.approx(0.9)


def test_prompt_folds_partition() -> None:
    folds = A.prompt_folds([f"p{i}" for i in range(11)], 3, seed=1)
    assert sorted(p for f in folds for p in f) == sorted(f"p{i}" for i in range(11))
    assert folds == A.prompt_folds([f"p{i}" for i in range(11)], 3, seed=1)
    with pytest.raises(ValueError):
        A.prompt_folds(["a", "b"], 2)


def test_hub_background_demotes_a_candidate_everyone_votes_for() -> None:
    """Held-out references of other lines all vote for 'hub'; a target voting hub 0.45 / teacher 0.35
    is then attributed to the teacher, and a reference's own line never counts towards the background."""
    cands = ["hub", "teacher", "x1", "x2", "y1", "y2"]
    lines = {"hub": "H", "teacher": "T", "x1": "X", "x2": "X", "y1": "Y", "y2": "Y"}

    def P(row: list[float]) -> np.ndarray:
        return np.tile(np.array(row) / sum(row), (4, 1))

    sib = A.VoteMatrix("word", cands, {
        "x1": P([0.5, 0.05, 0.0, 0.3, 0.1, 0.05]), "x2": P([0.5, 0.05, 0.3, 0.0, 0.1, 0.05]),
        "y1": P([0.5, 0.05, 0.1, 0.05, 0.0, 0.3]), "y2": P([0.5, 0.05, 0.1, 0.05, 0.3, 0.0]),
    }, {})
    bg = A.hub_background(sib, "soft", lines)
    assert bg[0] == pytest.approx(0.5) and bg[0] > 5 * bg[1]
    # x1's vote for its sibling x2 is not in x2's background; y1's and y2's votes are
    assert bg[3] == pytest.approx(np.exp(np.mean(np.log([0.05, 0.05]))))
    target = A.VoteMatrix("word", cands, {"t": P([0.45, 0.35, 0.05, 0.05, 0.05, 0.05])}, {})
    plain = A.rank(target, "t", A.Method("word", "soft", "sum"), lines)
    fixed = A.rank(target, "t", A.Method("word", "soft", "sum", hub=True), lines, bg)
    assert plain.lines[0] == "H" and fixed.lines[0] == "T"
    with pytest.raises(ValueError, match="hub background"):
        A.rank(target, "t", A.Method("word", "soft", "sum", hub=True), lines)


def test_rank_combined_is_a_product_of_experts() -> None:
    """Two sources: the combined ranking follows where they agree; one source twice is that source."""
    cands, lines = ["a", "b", "c"], {"a": "A", "b": "B", "c": "C"}
    m = A.Method("word", "soft", "sum")
    one = A.VoteMatrix("word", cands, {"t": np.array([[0.5, 0.4, 0.1]] * 6)}, {"t": [f"p{i}" for i in range(6)]})
    two = A.VoteMatrix("minilm", cands, {"t": np.array([[0.1, 0.5, 0.4]] * 2)}, {"t": ["p0", "p1"]})
    assert A.rank(one, "t", m, lines).candidates[0] == "a" and A.rank(two, "t", m, lines).candidates[0] == "b"
    both = A.rank_combined([(one, None), (two, None)], "t", m, lines)
    assert both.candidates[0] == "b" and both.n_answers == 6  # sqrt(.4*.5) > sqrt(.5*.1)
    assert np.allclose(A.rank_combined([(one, None), (one, None)], "t", m, lines).candidate_scores,
                       A.rank(one, "t", m, lines).candidate_scores)
    hub = A.Method("word", "soft", "sum", hub=True)
    demoted = A.rank_combined([(one, np.array([0.8, 0.1, 0.1])), (two, None)], "t",
                              A.Method("word", "soft", "sum"), lines)
    assert demoted.candidates == both.candidates  # backgrounds only apply to hub methods
    with pytest.raises(ValueError, match="hub background"):
        A.rank_combined([(one, None), (two, None)], "t", hub, lines)
    with pytest.raises(ValueError, match="same candidates"):
        A.rank_combined([(one, None), (A.VoteMatrix("x", ["c", "b", "a"], two.probs, two.prompts), None)], "t", m,
                        lines)


def test_answer_certainty_is_the_mean_top_probability() -> None:
    vm = A.VoteMatrix("word", ["a", "b"], {"s": np.array([[0.9, 0.1], [0.3, 0.7]]), "c": np.full((2, 2), 0.5)}, {})
    assert A.answer_certainty(vm, "s") == pytest.approx(0.8) and A.answer_certainty(vm, "c") == pytest.approx(0.5)


def test_nested_auroc_chooses_without_the_scored_target() -> None:
    rng = np.random.default_rng(3)
    pos, neg = [f"s{i}" for i in range(8)], [f"c{i}" for i in range(5)]
    good = {**{p: 1.0 + rng.random() for p in pos}, **{n: rng.random() for n in neg}}  # separates perfectly
    noise = {t: float(rng.random()) for t in [*pos, *neg]}
    auc, chosen, pct = A.nested_auroc({"noise": noise, "good": good}, pos, neg)
    assert set(chosen.values()) == {"good"} and auc == 1.0 and all(0.0 <= v <= 1.0 for v in pct.values())
    # moving a target between positives and negatives never changes its own choice or held-out value
    for t in ("s0", "c0"):
        p2 = [p for p in pos if p != t] + ([t] if t.startswith("c") else [])
        n2 = [n for n in neg if n != t] + ([t] if t.startswith("s") else [])
        _, chosen2, pct2 = A.nested_auroc({"noise": noise, "good": good}, p2, n2)
        assert chosen2[t] == chosen[t] and pct2[t] == pct[t]


def test_the_author_classifier_fits_classes_on_every_core_with_one_cores_coefficients():
    from scipy import sparse

    from distill_kit.lineage.votes import _classifier

    rng = np.random.default_rng(0)
    X = sparse.random(300, 500, density=0.05, format="csr", random_state=1)
    y = rng.integers(0, 6, size=300)
    clf = _classifier(0)
    assert clf.n_jobs == -1
    one = _classifier(0).set_params(n_jobs=1).fit(X, y)
    assert np.array_equal(clf.fit(X, y).coef_, one.coef_) and np.array_equal(clf.intercept_, one.intercept_)
