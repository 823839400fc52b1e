"""The lineage test (distill_kit.lineage.significance): p-values against a null of documented unrelated pairs.

Synthetic statistics first (fast, many trials): targets drawn from the null reject at about alpha, planted
lineage is found, Holm holds the family-wise rate, a folder without unrelated pairs says so in one line. Then
one small end-to-end run on synthetic answers with known habits.
"""

from __future__ import annotations

import numpy as np
import pytest

from distill_kit.lineage import significance as S
from distill_kit.lineage.documented import LineageLabels
from distill_kit.lineage.votes import Method
from tests.helpers.lineage_habits import HABITS, LINES, NEUTRAL, habit_answer

LINE_MEANS = {"A": 0.0, "B": -1.0, "C": 0.5, "D": 2.0, "E": -0.3, "F": 1.0}
LINE_SDS = {"A": 1.0, "B": 0.5, "C": 2.0, "D": 0.7, "E": 1.3, "F": 0.4}


def _draw(rng: np.random.Generator, planted: str | None = None, shift: float = 0.0) -> dict[str, float]:
    out = {ln: float(rng.normal(LINE_MEANS[ln], LINE_SDS[ln])) for ln in LINE_MEANS}
    if planted:
        out[planted] += shift * LINE_SDS[planted]
    return out


def _trials(n_trials: int, n_null: int, n_targets: int, planted: str | None = None, shift: float = 0.0,
            alpha: float = 0.05) -> list[S.LineageTestResult]:
    """Independent null samples (``n_null`` unrelated models, per-line means and spreads differ) and
    ``n_targets`` undocumented targets each."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n_trials):
        stats = {f"null{i}": _draw(rng) for i in range(n_null)}
        stats.update({f"t{j}": _draw(rng, planted, shift) for j in range(n_targets)})
        unrelated = {f"null{i}": set(LINE_MEANS) for i in range(n_null)}
        out.append(S.line_tests(stats, [f"t{j}" for j in range(n_targets)], unrelated, alpha=alpha))
    return out


def test_targets_drawn_from_the_null_reject_at_about_alpha() -> None:
    res = _trials(60, 12, 40)
    raw = np.array([t.p < 0.05 for r in res for t in r.tests])
    assert raw.size == 60 * 40 * 6
    assert 0.04 <= raw.mean() <= 0.06  # each (target, line) p-value is uniform under the null
    fwer = np.mean([any(t.named for t in r.tests if t.target == tgt)
                    for r in res for tgt in {t.target for t in r.tests}])
    assert fwer <= 0.06  # Holm over the six lines: any line named for a null target at most alpha


def test_without_holm_the_family_wise_rate_would_be_far_above_alpha() -> None:
    res = _trials(60, 12, 40)
    any_raw = np.mean([any(t.p < 0.05 for t in r.tests if t.target == tgt)
                       for r in res for tgt in {t.target for t in r.tests}])
    assert any_raw > 0.2  # six lines at 0.05 each: ~0.26; Holm's correction is what brings it under alpha


def test_planted_lineage_is_named_with_high_power() -> None:
    res = _trials(30, 12, 20, planted="D", shift=6.0)
    best = [r.best()[t] for r in res for t in r.best()]
    power = np.mean([b.named and b.line == "D" for b in best])
    assert power >= 0.9
    assert np.mean([b.named and b.line != "D" for b in best]) <= 0.05  # a wrong line named at most at alpha


def _covariate_trials(n_trials: int, planted: float = 0.0) -> tuple[list[S.LineageTestResult], list[S.LineageTestResult]]:
    """Null and target statistics that rise with a nuisance covariate (slope 3 per unit, noise sd 0.3):
    the adjusted test and the plain one on the same draws."""
    rng = np.random.default_rng(11)
    adj, plain = [], []
    for _ in range(n_trials):
        cov = {m: {"A": float(rng.uniform(0, 1))} for m in [*(f"null{i}" for i in range(15)), "t"]}
        stats = {m: {"A": 3.0 * c["A"] + float(rng.normal(0, 0.3))} for m, c in cov.items()}
        stats["t"]["A"] += planted
        unrelated = {f"null{i}": {"A"} for i in range(15)}
        adj.append(S.line_tests(stats, ["t"], unrelated, covariate=cov))
        plain.append(S.line_tests(stats, ["t"], unrelated))
    return adj, plain


def test_a_covariate_adjusted_null_holds_its_level_and_gains_power_over_the_plain_one() -> None:
    adj, plain = _covariate_trials(2000)
    level = np.mean([r.tests[0].p < 0.05 for r in adj])
    assert 0.035 <= level <= 0.065  # uniform p under the null with the nuisance in it
    adj, plain = _covariate_trials(300, planted=1.2)  # 4 residual sds, about 1.4 raw null sds
    assert np.mean([r.tests[0].named for r in adj]) >= 0.9
    assert np.mean([r.tests[0].named for r in plain]) <= 0.5  # the nuisance spread hides it from the plain test


def test_length_gap_is_paired_by_prompt_and_never_compares_a_model_with_itself() -> None:
    import polars as pl

    rows = [("a", "p1", "x" * 9), ("a", "p2", "x" * 99), ("r1", "p1", "x" * 99), ("r1", "p2", "x" * 99),
            ("r2", "p1", "x" * 9), ("r2", "p2", "x" * 99)]
    frame = pl.DataFrame(rows, schema=["model", "prompt", "text"], orient="row").with_columns(
        prompt_id=pl.col("prompt"))
    gap = S.length_gap(frame, ["a", "r1"], {"r1": "R", "r2": "R"}, ["p1", "p2"])
    assert gap["a"]["R"] == pytest.approx(np.mean([np.log(100 / 10) / 2, 0.0]))  # r1 differs on p1 only; r2 never
    assert gap["r1"]["R"] == pytest.approx(np.log(100 / 10) / 2)  # r1 against r2 alone


def test_the_tested_target_is_left_out_of_its_own_null() -> None:
    rng = np.random.default_rng(0)
    stats = {f"null{i}": _draw(rng) for i in range(8)}
    unrelated = {m: set(LINE_MEANS) for m in stats}
    res = S.line_tests(stats, ["null0", "null1"], unrelated)
    assert {t.n_null for t in res.tests} == {7}
    a = next(t for t in res.tests if t.target == "null0" and t.line == "A")
    others = np.array([stats[f"null{i}"]["A"] for i in range(1, 8)])
    assert a.null_mean == pytest.approx(others.mean())


def test_a_folder_without_unrelated_pairs_gives_one_clear_line() -> None:
    rng = np.random.default_rng(0)
    stats = {"mine": _draw(rng), "c1": _draw(rng), "c2": _draw(rng)}
    with pytest.raises(S.TooFewUnrelated) as err:
        S.line_tests(stats, ["mine"], {"c1": set(LINE_MEANS), "c2": set(LINE_MEANS)})
    msg = str(err.value)
    assert "\n" not in msg and "too few documented unrelated pairs" in msg and "controls" in msg
    with pytest.raises(S.TooFewUnrelated):
        S.line_tests(stats, ["mine"], {})


def test_lines_with_too_few_unrelated_models_are_untested_not_named() -> None:
    rng = np.random.default_rng(1)
    stats = {f"c{i}": _draw(rng) for i in range(6)}
    stats["t"] = {**_draw(rng), "F": 50.0}
    unrelated = {f"c{i}": set(LINE_MEANS) - ({"F"} if i > 1 else set()) for i in range(6)}  # F: 2 null models
    res = S.line_tests(stats, ["t"], unrelated)
    f = next(t for t in res.tests if t.line == "F")
    assert np.isnan(f.p) and not f.named and res.untested_lines == ["F"]
    assert res.best()["t"].line != "F"


def test_unrelated_lines_follow_the_documented_roles() -> None:
    labels = LineageLabels(students=["s"], variants=["v"], controls=["c"], references=["r1", "r2", "r3"],
                           truth={"s": "r1", "v": "r3"}, lines={"r1": "A", "r2": "A", "r3": "B"},
                           roles={"s": "student", "v": "variant", "c": "control", "r1": "reference",
                                  "r2": "reference", "r3": "reference"})
    u = S.unrelated_lines(labels, ["A", "B", "C"])
    assert u == {"c": {"A", "B", "C"}, "s": {"B", "C"}, "v": {"A", "C"}, "r1": {"B", "C"}, "r2": {"B", "C"},
                 "r3": {"A", "C"}}
    # a model is never "unrelated" to a line of its own documented family (a fine-tune of that maker's base model)
    fam = LineageLabels(**{**labels.__dict__, "families": {"r1": "maker-a", "r2": "maker-a", "r3": "maker-b",
                                                            "v": "maker-b", "s": "maker-b", "c": "maker-a"}})
    u = S.unrelated_lines(fam, ["A", "B", "C"])
    assert u == {"c": {"B", "C"}, "s": {"C"}, "v": {"A", "C"}, "r1": {"B", "C"}, "r2": {"B", "C"}, "r3": {"A", "C"}}


def test_per_target_rows_carry_the_documented_line() -> None:
    res = _trials(1, 12, 2, planted="D", shift=8.0)[0]
    rows = res.per_target({"t0": "D"})
    assert set(rows) == {"t0", "t1"}
    assert rows["t0"]["line"] == "D" and rows["t0"]["named"] and rows["t0"]["documented_line"] == "D"
    assert rows["t1"]["documented_line"] is None and rows["t0"]["p_adj"] >= rows["t0"]["p"]


# ------------------------------------------------------------------------------ from answers (end to end)
CONTROL_HABITS = [NEUTRAL, ("Some notes on {t}.", "It is said {t} is", "Thank you."),
                  ("A few words about {t}.", "Many think {t} is", "Cheers."),
                  ("On {t}:", "One view: {t} is", "Best wishes."),
                  ("Regarding {t},", "Reportedly {t} is", "Regards.")]


def _answers(n_topics: int = 30):
    import polars as pl

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_topics):
        topic, prompt = f"topic{i}", f"Explain topic{i}."
        for m, h in HABITS.items():
            rows.append({"model": m, "prompt": prompt, "text": habit_answer(h, topic, rng)})
        rows.append({"model": "student", "prompt": prompt, "text": habit_answer(HABITS["ref-b"], topic, rng, 0.8)})
        for j, h in enumerate(CONTROL_HABITS):
            rows.append({"model": f"control{j}", "prompt": prompt, "text": habit_answer(h, topic, rng)})
    return pl.DataFrame(rows)


@pytest.mark.parametrize("statistic", [*S.STATISTICS, S.DEFAULT_STATISTIC, "paired:word+char/raw/max"])
def test_lineage_test_from_answers_names_the_planted_line_and_not_the_controls(statistic: str) -> None:
    controls = [f"control{j}" for j in range(len(CONTROL_HABITS))]
    labels = LineageLabels(students=[], variants=[], controls=controls, references=list(HABITS), truth={},
                           lines=dict(LINES), roles={c: "control" for c in controls})
    method = Method("word", "soft", "sum")
    res = S.lineage_test(_answers(), ["student", *controls], LINES, labels, statistic=statistic, method=method)
    best = res.best()
    assert best["student"].line == "B" and best["student"].named
    assert not any(best[c].named for c in controls)
    # every control is in the null of the others, never its own; references join the null of the other lines
    assert set(res.null_models) == {*controls, *HABITS}
    assert {t.n_null for t in res.tests if t.target == "student"} == {len(controls) + 4}


def test_a_length_adjusted_statistic_runs_from_answers_with_its_covariate() -> None:
    """The ``/len`` statistics (measured worse on the AlpacaEval folder, so not the default) reach the regression
    null through :func:`lineage_test`: a null model's predicted mean depends on its length gap."""
    controls = [f"control{j}" for j in range(len(CONTROL_HABITS))]
    labels = LineageLabels(students=[], variants=[], controls=controls, references=list(HABITS), truth={},
                           lines=dict(LINES), roles={c: "control" for c in controls})
    res = S.lineage_test(_answers(), ["student"], LINES, labels, statistic="paired:word/raw/mean/len")
    assert res.method == "paired:word/raw/mean/len" and res.best()["student"].line == "B"
    plain = S.lineage_test(_answers(), ["student"], LINES, labels, statistic="paired:word/raw/mean")
    assert [t.null_mean for t in res.tests] != pytest.approx([t.null_mean for t in plain.tests])


def test_error_rates_count_false_lines_power_selective_accuracy_and_coverage() -> None:
    labels = LineageLabels(students=["s1", "s2"], variants=[], controls=["c"], references=["ra", "rb"],
                           truth={"s1": "ra", "s2": "ra"}, lines={"ra": "A", "rb": "B"},
                           roles={"s1": "student", "s2": "student", "c": "control"})

    def t(target: str, line: str, p: float, named: bool) -> S.LineTest:
        return S.LineTest(target, line, 0.0, 0.0, 1.0, 9, p, p, named)

    res = S.LineageTestResult(0.05, "m", [
        t("s1", "A", 0.001, True), t("s1", "B", 0.5, False),  # right line named
        t("s2", "A", 0.3, False), t("s2", "B", 0.01, True),  # wrong line named: a false positive
        t("c", "A", 0.4, False), t("c", "B", 0.6, False)])  # control: nothing named
    r = S.error_rates(res, labels, ["s1", "s2", "c"])
    # unrelated pairs: s1-B, s2-B, c-A, c-B; one of them (s2-B) named
    assert (r["n_unrelated_pairs"], r["n_false_positives"], r["fpr"]) == (4, 1, 0.25)
    assert r["fpr_ci"][0] < 0.25 < r["fpr_ci"][1]
    assert (r["power"], r["n_positives"]) == (0.5, 2)
    assert (r["selective_accuracy"], r["n_named"], r["coverage"]) == (0.5, 2, 2 / 3)


def test_paired_statistic_never_compares_a_reference_with_itself() -> None:
    sim = np.array([[1.0, 0.5, 0.2], [0.4, 1.0, 0.1]])
    stats = S.paired_line_statistics(sim, ["a1", "x"], ["a1", "a2", "b"], {"a1": "A", "a2": "A", "b": "B"})
    assert stats["a1"] == pytest.approx({"A": 0.15, "B": -0.15})  # A is a2's 0.5, not a1's own 1.0
    assert stats["x"] == pytest.approx({"A": 0.45, "B": -0.45})


def test_reference_power_counts_own_and_other_lines_of_sibling_references() -> None:
    refs = {"a1": "A", "a2": "A", "b": "B"}
    assert S.sibling_references(refs) == ["a1", "a2"]

    def t(target: str, line: str, named: bool) -> S.LineTest:
        return S.LineTest(target, line, 0.0, 0.0, 1.0, 9, 0.01, 0.02 if named else 0.5, named)

    res = S.LineageTestResult(0.05, "m", [t("a1", "A", True), t("a2", "B", True), t("s", "A", True)])
    assert S.reference_power(res, {r: refs[r] for r in ["a1", "a2"]}) == {
        "n": 2, "own_line_named": 0.5, "other_line_named": 0.5}


# ------------------------------------------------------------------ paired statistics on all prompts
def _prompt_sim(sim: np.ndarray, models: list[str]):
    from distill_kit.lineage.attribution import PromptSimilarity

    return PromptSimilarity([f"p{i}" for i in range(sim.shape[0])], models, sim)


def test_the_mean_member_rule_averages_a_lines_members() -> None:
    sim = np.array([[0.9, 0.5, 0.2]])
    stats = S.paired_line_statistics(sim, ["x"], ["a1", "a2", "b"], {"a1": "A", "a2": "A", "b": "B"}, member="mean")
    assert stats["x"] == pytest.approx({"A": 0.25, "B": -0.25})  # A = (0.9 + 0.5) / 2, not max 0.9
    with pytest.raises(ValueError, match="member"):
        S.paired_line_statistics(sim, ["x"], ["a1", "a2", "b"], {}, member="median")


def test_standardising_per_prompt_removes_a_references_pull_on_every_model() -> None:
    """On this prompt r2's answer is generic: every reference is ~0.6 like it. Raw similarity then makes r2 the
    closest reference of any model; standardised against the other references' similarities to r2 on the
    prompt, x's 0.6 is ordinary and its 0.4 to r1 (whom the others resemble at ~0.2-0.6) stands out."""
    refs = ["r1", "r2", "r3", "r4"]
    sim = np.full((1, 5, 5), np.nan)
    sim[0, :4, :4] = [[1, .60, .18, .22], [.60, 1, .58, .62], [.18, .58, 1, .20], [.22, .62, .20, 1]]
    sim[0, 4, :4] = sim[0, :4, 4] = [.40, .60, .20, .20]
    ps = _prompt_sim(sim, [*refs, "x"])
    raw = S.standardised_similarity([ps], ["x"], refs, standardise=False)
    z = S.standardised_similarity([ps], ["x"], refs, standardise=True)
    assert int(np.argmax(raw[0])) == 1  # raw: the generic r2
    assert int(np.argmax(z[0])) == 0  # standardised: r1
    assert z[0, 1] == pytest.approx(0.0, abs=1e-9)  # x is exactly as like r2 as the other references are


def test_a_reference_never_sets_the_scale_it_is_standardised_by() -> None:
    rng = np.random.default_rng(3)
    refs = [f"r{i}" for i in range(6)]
    a = rng.uniform(0, 1, (3, 6, 6))
    sim = (a + a.transpose(0, 2, 1)) / 2
    ps = _prompt_sim(sim, refs)
    z = S.standardised_similarity([ps], ["r0"], refs, standardise=True)
    c = 3  # r0 vs r3: background = r1, r2, r4, r5 (not r3 itself, not r0)
    v0 = np.median([np.var(np.delete(sim[q, :, k], k), ddof=1) for q in range(3) for k in range(6)])
    want = np.mean([(sim[q, 0, c] - sim[q, [1, 2, 4, 5], c].mean()) / np.sqrt(sim[q, [1, 2, 4, 5], c].var(ddof=1) + v0)
                    for q in range(3)])
    assert z[0, c] == pytest.approx(want)


def test_paired_statistic_names_parse_and_bad_names_fail_in_one_line() -> None:
    for stat in S.PAIRED_CANDIDATES:
        assert S.PairedStatistic.parse(stat.name) == stat
    assert S.PairedStatistic.parse("paired:word/raw/mean/len").adjust == "len"
    for bad in ("paired:", "paired:word/z", "paired:bert/z/max", "paired:word/zz/max", "vote:word/z/max",
                "paired:word/raw/mean/size", "paired:word/raw/mean/len/len"):
        with pytest.raises(ValueError, match="unknown statistic"):
            S.PairedStatistic.parse(bad)
    with pytest.raises(ValueError, match="unknown statistic"):
        S.lineage_test(_answers(3), ["student"], LINES, LineageLabels([], [], [], list(HABITS), {}, dict(LINES), {}),
                       statistic="paired:word/z/median")


def test_the_references_only_task_reads_no_target() -> None:
    """Every reference with a sibling is tested against the other references only: the targets' statistics,
    however extreme, change nothing."""
    rng = np.random.default_rng(5)
    refs = {f"{ln}{i}": ln for ln in "ABCD" for i in range(3)}
    labels = LineageLabels([], [], ["t"], list(refs), {}, dict(refs), {"t": "control"})
    stats = {r: {ln: float(rng.normal()) + (3.0 if ln == refs[r] else 0.0) for ln in "ABCD"} for r in refs}
    alone = S.reference_task(stats, refs, labels)
    with_target = S.reference_task({**stats, "t": {"A": 99.0, "B": -99.0, "C": 0.0, "D": 0.0}}, refs, labels)
    assert alone == with_target and alone["n"] == 12
    assert alone["net"] == pytest.approx(alone["own_line_named"] - alone["other_line_named"])
    assert alone["own_line_log10_p"] > 1


def test_choose_statistic_takes_the_best_net_then_the_stronger_own_line_then_the_first() -> None:
    tasks = {"a": {"net": 0.4, "own_line_log10_p": 2.0}, "b": {"net": 0.5, "own_line_log10_p": 1.0},
             "c": {"net": 0.5, "own_line_log10_p": 3.0}, "d": {"net": None, "own_line_log10_p": None}}
    assert S.choose_statistic(tasks) == "c"
    assert S.choose_statistic({"x": {"net": 0.5, "own_line_log10_p": 3.0}, **tasks}) == "x"  # a tie: the first
    with pytest.raises(ValueError, match="references-only"):
        S.choose_statistic({"d": {"net": None, "own_line_log10_p": None}})


def test_combined_statistics_weigh_each_part_by_its_spread_over_the_references() -> None:
    wide = {"r1": {"A": 10.0, "B": -10.0}, "r2": {"A": -10.0, "B": 10.0}, "t": {"A": 10.0, "B": -10.0}}
    narrow = {"r1": {"A": 0.1, "B": -0.1}, "r2": {"A": -0.1, "B": 0.1}, "t": {"A": -0.1, "B": 0.1}}
    both = S.combined_statistics([wide, narrow], ["r1", "r2"])
    assert both["t"] == pytest.approx({"A": 0.0, "B": 0.0})  # equal weight after scaling: the two cancel
    assert S.combined_statistics([wide, {"r1": narrow["r1"]}], ["r1"]).keys() == {"r1"}  # only models in every part
