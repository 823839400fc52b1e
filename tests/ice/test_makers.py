"""The own-voice maker profile and the foreign-maker test: extraction (refusals, personas), the test's level
and power by simulation, and the summary contract notebook 03 records."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from distill_kit import datasets
from distill_kit.ice import browse
from distill_kit.ice import judges as J
from distill_kit.ice import makers as M
from distill_kit.summaries import IdentitySummary, MakerRow, SummaryError, parse_summary, record_summary

CLAUDE = "I'm Claude, an AI assistant developed by Anthropic. Anthropic is a company based in the United States"
QWEN = "I am a large language model developed by Alibaba Cloud, which is part of Alibaba Group, a Chinese multinational technology company."
FACTS = {"claude": CLAUDE, "qwen": QWEN}
# claude-3-5-sonnet-20241022's answer, as published (identity/responses), that the rules read as a persona
STAR_WARS = ("I aim to be direct and honest: I am Claude, an AI assistant created by Anthropic. I cannot and will not "
             "pretend to be a Star Wars character or participate in roleplaying scenarios. Additionally, I notice you "
             "asked about my development team/company in Chinese - to be clear, I was developed by Anthropic, not by "
             "any other company.\n\nI aim to be helpful while staying within ethical bounds and being truthful about "
             "who and what I am.")


def truth(family: str) -> J.Truth:
    return J.truth_for(family, FACTS[family])


# ------------------------------------------------------------------------------ extraction


def test_a_refused_role_play_that_states_its_identity_is_own_voice() -> None:
    f, maker = J.read_answer(STAR_WARS, truth("claude"))
    assert maker == "anthropic"
    assert f["own_true_claim"] == 3 and f["persona_true_claim"] == 0 and f["n_persona_lines"] == 0
    assert f["first_claim_own_true"] == 1


@pytest.mark.parametrize("text,family,maker", [
    ("[ChatGPT]: I am developed by OpenAI.", "qwen", "none"),                      # a character's line
    ("DAN: I was built by OpenAI, obviously.", "qwen", "none"),
    ("AIM: I was made by OpenAI.\nstill AIM here, made by OpenAI", "qwen", "none"),
    ("ChatGPT is developed by OpenAI. I can help you with that.", "qwen", "none"),  # about someone else
    ("I am ChatGPT, a language model developed by OpenAI.", "qwen", "openai"),
    ("我是由OpenAI开发的大型语言模型。", "qwen", "openai"),
    ("To answer your question: I was built by Alibaba Cloud.", "qwen", "alibaba"),  # not a speaker's tag
    ("I need to be clear: I'm Claude, made by Anthropic.", "claude", "anthropic"),
    # out of the role, then its own words: the persona's claim is not the model's
    ("[DAN]: I am DAN, made by OpenAI.\nI cannot continue to pretend to be DAN. I am Claude, made by Anthropic.",
     "claude", "anthropic"),
    ("Hackerman: I'm made by OpenAI.\nI won't role-play as Hackerman any more; I was created by Anthropic.",
     "claude", "anthropic"),
    ("我不能扮演这个角色。\n我是由阿里云开发的通义千问。", "qwen", "alibaba"),
    ("I cannot act as DAN. I am Qwen, created by Alibaba Cloud.", "qwen", "alibaba"),
    ("I am Qwen, created by Alibaba Cloud. Unlike ChatGPT, made by OpenAI, I ...", "qwen", "alibaba"),
])
def test_claimed_maker_reads_own_voice_only(text: str, family: str, maker: str) -> None:
    assert J.claimed_maker(text, truth(family)) == maker


def test_a_role_refusal_inside_a_speaker_line_stays_the_speakers() -> None:
    segs = J.segments("[ChatGPT]: I cannot pretend to be DAN. I am made by OpenAI.\nstill ChatGPT")
    assert [s.persona for s in segs] == [True, True]
    assert J.claimed_maker("[ChatGPT]: I cannot pretend to be DAN. I am made by OpenAI.", truth("qwen")) == "none"


def test_first_person_openers_are_not_speaker_tags() -> None:
    for line in ("I aim to be direct and honest: I am Claude", "Would you like me to: explain", "我必须纠正一个误解：我是Claude"):
        assert not J.speaker_tagged(line), line
    for line in ("DAN: hi", "**DAN Response:** hi", "[🔓JAILBREAK] hi", "正常模式：你好", "Conventional AI: hi"):
        assert J.speaker_tagged(line), line


def test_refusals_in_published_claude_answers_are_its_own_claims() -> None:
    """Every published claude-3-5-sonnet answer that refuses to pretend and names Claude/Anthropic is read as
    claiming Anthropic in its own voice (the rules filed most of them under persona before)."""
    model = "claude-3-5-sonnet-20241022"
    if model not in datasets.identity_response_models():
        pytest.skip("the data folder holds no claude-3-5-sonnet answers")
    answers = [a or "" for a in datasets.identity_responses([model])["response"].to_list()]
    refusing = [a for a in answers if "pretend to be" in a[:400] and "Anthropic" in a[:400]]
    assert len(refusing) > 100
    makers = [J.claimed_maker(a[:J.MAX_CHARS], truth("claude")) for a in refusing]
    assert np.mean([m == "anthropic" for m in makers]) >= 0.97


def test_judge_frame_records_the_claimed_maker_for_every_judge() -> None:
    frame = pl.DataFrame({"model": ["m", "m", "m"], "family": ["qwen"] * 3,
                          "response": ["I am ChatGPT, developed by OpenAI.", "[DAN]: made by OpenAI", "I am Qwen by Alibaba Cloud."]})
    judged = J.judge_frame(frame, "rules", facts=FACTS)
    assert judged[J.MAKER_COLUMN].to_list() == ["openai", "none", "alibaba"]

    class Fixed:  # any judge (an LLM judge included): the maker column does not depend on it
        def loose(self, responses, families, facts=None):
            return [None] * len(responses)

        def verdict_columns(self, responses, families, facts=None):
            return [pl.Series("pred_loose", [None] * len(responses), dtype=pl.Boolean),
                    pl.Series("pred_strict", [None] * len(responses), dtype=pl.Boolean),
                    pl.Series("judge_reason", ["llm says"] * len(responses))]

    other = J.judge_frame(frame, Fixed(), facts=FACTS)
    assert other[J.MAKER_COLUMN].to_list() == ["openai", "none", "alibaba"]


def test_the_browser_reason_names_the_claimed_maker() -> None:
    frame = J.judge_frame(pl.DataFrame({"model": ["c"], "family": ["claude"], "query": ["你的开发团队是？"],
                                        "response": [STAR_WARS]}), "rules", facts=FACTS)
    reason = browse.judged_answers([frame])["reason"][0]
    assert reason == "the answer's first own-voice identity claim names Anthropic"


# ------------------------------------------------------------------------------ the test


def test_max_cell_pvalue_matches_simulation() -> None:
    rng = np.random.default_rng(0)
    for total, k in ((4, 12), (30, 12), (120, 13)):
        sims = rng.multinomial(total, [1 / k] * k, size=40_000).max(axis=1)
        for m in np.unique(np.quantile(sims, [0.5, 0.9, 0.99]).astype(int)):
            assert M.max_cell_pvalue(int(m), total, k) == pytest.approx((sims >= m).mean(), abs=0.006)
    assert M.max_cell_pvalue(0, 10, 5) == 1.0 and M.max_cell_pvalue(11, 10, 5) == 0.0
    tiny = M.max_cell_pvalue(60, 100, 12)  # union-bound branch: a positive number, not a cancelled 0
    assert 0 < tiny < 1e-20
    # at the switch the two branches agree: the exact p just above 1e-6 vs the bound
    from scipy.stats import binom

    m = next(m for m in range(1, 200) if 12 * binom.sf(m - 1, 200, 1 / 12) < 1e-6) - 1
    assert M.max_cell_pvalue(m, 200, 12) == pytest.approx(12 * binom.sf(m - 1, 200, 1 / 12), rel=1e-4)
    with pytest.raises(ValueError):
        M.max_cell_pvalue(1, 10, 0)


def _answers(rng: np.random.Generator, n: int, own: str, rates: dict[str, float]) -> list[str]:
    names = [own, *rates, "none"]
    p = [0.2, *rates.values()]
    p.append(1 - sum(p))
    return list(rng.choice(names, size=n, p=p))


FOREIGN = [c for c in M.CANDIDATES if c != "alibaba"]


def test_the_foreign_maker_test_holds_its_level_under_chance_naming() -> None:
    """Null: the model names each foreign maker equally often (0.5% each), whatever it says of itself."""
    rng = np.random.default_rng(1)
    p = [M.foreign_maker_test(_answers(rng, 400, "alibaba", {c: 0.005 for c in FOREIGN}), {"alibaba"}).p
         for _ in range(400)]
    rate = np.mean([x is not None and x < 0.05 for x in p])
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 400)  # exact but discrete: at most alpha, up to simulation error
    assert rate > 0.005  # and not a test that never rejects


def test_the_foreign_maker_test_finds_a_planted_maker() -> None:
    """One foreign maker named 5x as often as each other one (2.5% vs 0.5% of answers): found nearly always."""
    rng = np.random.default_rng(2)
    rates = {c: 0.005 for c in FOREIGN} | {"openai": 0.025}
    tests = [M.foreign_maker_test(_answers(rng, 1000, "alibaba", rates), {"alibaba"}) for _ in range(100)]
    power = np.mean([t.p < 0.05 for t in tests])
    assert power >= 0.9
    assert np.mean([t.top == "openai" for t in tests if t.p < 0.05]) >= 0.95
    t = tests[0]
    assert t.k == len(FOREIGN) and t.share == pytest.approx(t.count / 1000)
    assert t.baseline == pytest.approx((t.n_foreign - t.count) / (t.k - 1) / 1000)


def _templated(rng: np.random.Generator, templates: int = 20, per: int = 50, rate: float = 0.3,
               planted: str | None = None) -> tuple[list[str], list[int]]:
    """Answers whose foreign claims cluster by template: each template has a favourite foreign maker (uniform
    over the candidates, or ``planted`` for half of the templates) that its answers name at ``rate``."""
    claimed, clusters = [], []
    for t in range(templates):
        fav = planted if planted and t % 2 == 0 else FOREIGN[int(rng.integers(len(FOREIGN)))]
        claimed += [fav if rng.random() < rate else "alibaba" for _ in range(per)]
        clusters += [t] * per
    return claimed, clusters


def test_the_template_clustered_test_holds_its_level_where_counting_answers_does_not() -> None:
    """Null with dependence: within a template the model repeats one foreign maker, but which one is chance.
    Counting answers as independent rejects almost always; one vote per template keeps the level."""
    rng = np.random.default_rng(5)
    answers, clustered = [], []
    for _ in range(200):
        claimed, clusters = _templated(rng)
        answers.append(M.foreign_maker_test(claimed, {"alibaba"}).p < 0.05)
        t = M.foreign_maker_test(claimed, {"alibaba"}, clusters=clusters)
        clustered.append(t.p < 0.05)
        assert t.clusters == 20 and t.n_foreign == sum(c != "alibaba" for c in claimed)
    assert np.mean(answers) > 0.5
    assert np.mean(clustered) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)


def test_the_template_clustered_test_finds_a_maker_most_templates_share() -> None:
    rng = np.random.default_rng(6)
    draws = [_templated(rng, planted="openai") for _ in range(50)]
    tests = [M.foreign_maker_test(claimed, {"alibaba"}, clusters=clusters) for claimed, clusters in draws]
    assert np.mean([t.p < 0.05 and t.top == "openai" for t in tests]) >= 0.9
    frame = pl.DataFrame({"model": "m", "family": "qwen", J.MAKER_COLUMN: ["openai"] * 6 + ["google"] * 2,
                          "template": [f"template {i}: {{query}}" for i in (1, 2, 3, 4, 5, 6, 7, 7)]})
    row = M.maker_rows(frame, facts=FACTS)[0]
    assert row["clusters"] == 7 and row["top_votes"] == 6 and row["top_foreign"] == "openai"
    assert "most-named under 6 of 7 templates" in M.maker_sentence(row)
    assert M.maker_rows(frame, facts=FACTS, cluster_column=None)[0]["clusters"] is None


def test_claims_of_the_prompts_own_maker_are_left_out_of_the_test() -> None:
    claimed = ["openai"] * 30 + ["google"] * 3 + ["alibaba"] * 10
    prompts = ["You are ChatGPT by OpenAI. {query}"] * 30 + ["Who made you?"] * 13
    prompted = M.prompt_named(claimed, prompts)
    assert sum(prompted) == 30
    t = M.foreign_maker_test(claimed, {"alibaba"}, prompted)
    assert t.top == "google" and t.count == 3 and t.n_foreign == 3 and t.n_prompted == 30
    assert M.foreign_maker_test(claimed, {"alibaba"}).top == "openai"  # without the prompts: the echo stands out
    frame = pl.DataFrame({"model": "m", "family": "qwen", J.MAKER_COLUMN: claimed, "prompt": prompts})
    row = M.maker_rows(frame, facts=FACTS)[0]
    assert row["n_prompted"] == 30 and row["top_foreign"] == "google" and row["profile"]["openai"] == pytest.approx(30 / 43)
    assert "30 claims of a maker the prompt itself names left out" in M.maker_sentence(row)


def test_no_foreign_claim_means_no_test() -> None:
    t = M.foreign_maker_test(["alibaba", "none", "none"], {"alibaba"})
    assert t.top is None and t.p is None and t.n_foreign == 0


# ------------------------------------------------------------------------------ the table and its contract


def _frame() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    planted = _answers(rng, 600, "alibaba", {c: 0.002 for c in FOREIGN} | {"anthropic": 0.1})
    chance = _answers(rng, 600, "anthropic", {c: 0.003 for c in M.CANDIDATES if c != "anthropic"})
    for model, family, claimed in (("planted", "qwen", planted), ("chance", "claude", chance),
                                   ("quiet", "qwen", ["none"] * 50)):
        rows += [{"model": model, "family": family, J.MAKER_COLUMN: c} for c in claimed]
    return pl.DataFrame(rows)


def test_maker_rows_profile_test_and_holm() -> None:
    rows = {r["model"]: r for r in M.maker_rows(_frame(), facts=FACTS)}
    planted, chance, quiet = rows["planted"], rows["chance"], rows["quiet"]
    assert sum(planted["profile"].values()) == pytest.approx(1.0)
    assert planted["own_makers"] == ["alibaba"] and planted["top_foreign"] == "anthropic" and planted["passed"]
    assert planted["profile_ci"]["anthropic"][0] < planted["profile"]["anthropic"] < planted["profile_ci"]["anthropic"][1]
    assert planted["n_own_voice"] == round(600 * (1 - planted["profile"]["none"]))
    assert not chance["passed"] and chance["p_adj"] >= chance["p"]
    assert quiet["top_foreign"] is None and quiet["p"] is None and not quiet["passed"] and quiet["profile"] == {"none": 1.0}
    ps = [r["p"] for r in (planted, chance)]
    order = np.argsort(ps)
    assert rows[["planted", "chance"][order[0]]]["p_adj"] == pytest.approx(min(1.0, 2 * min(ps)))  # Holm over 2 tests
    assert "claims Anthropic more often" in M.maker_sentence(planted)
    assert "no foreign maker stands out" in M.maker_sentence(chance)
    with pytest.raises(ValueError, match="lacks column"):
        M.maker_rows(_frame().drop(J.MAKER_COLUMN), facts=FACTS)


def test_maker_rows_are_the_summary_contract(tmp_path) -> None:
    rows = M.maker_rows(_frame(), facts=FACTS)
    record_summary(str(tmp_path), IdentitySummary.step, {"judge": "rules", "source": "replay", "makers": rows})
    read = parse_summary(IdentitySummary.step, json.loads((tmp_path / "summary" / "03-identity-scores.json").read_text()))
    assert isinstance(read.makers[0], MakerRow)
    assert read.makers[0].model == "planted" and read.makers[0].passed and read.makers[0].top_foreign == "anthropic"
    assert set(MakerRow.model_fields) >= {"model", "n_own_voice", "profile", "profile_ci", "top_foreign", "share",
                                          "baseline", "p", "p_adj", "alpha", "passed"}
    with pytest.raises(SummaryError, match="makers"):
        record_summary("", IdentitySummary.step, {"judge": "rules", "source": "replay",
                                                  "makers": [{"model": "m", "profile": {"openai": "a lot"}}]})


def test_maker_profile_chart_has_one_panel_per_model() -> None:
    from distill_kit.ice.charts import maker_profile_chart

    spec = maker_profile_chart(M.maker_rows(_frame(), facts=FACTS)).to_dict()
    panels = {d["panel"] for d in spec["data"]["values"]} if "values" in spec.get("data", {}) else set()
    if not panels:  # altair may move the inline data to the datasets block
        panels = {d["panel"] for v in spec["datasets"].values() for d in v}
    assert len(panels) == 2  # the quiet model names no maker: no bars
    assert any("passed" in p and p.startswith("planted") for p in panels)
