"""Offline RSE: prompt files, alignment, the 1-5 mapping, pairwise matrices, RSE table, clustering."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distill_kit.rse import similarity as sim


def bag_of_words_encoder(texts: list[str]) -> np.ndarray:
    """Fast stand-in for sentence-transformers: hashed bag of words, L2-normalised."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


# ---------------------------------------------------------------------------------------------
# 1-5 mapping
# ---------------------------------------------------------------------------------------------

def test_to_likert_mapping_pins() -> None:
    assert sim.to_likert(0.4, 0.4) == 1.0
    assert sim.to_likert(1.0, 0.4) == 5.0
    assert sim.to_likert(0.7, 0.4) == pytest.approx(3.0)
    assert sim.to_likert(0.1, 0.4) == 1.0  # below the unrelated baseline clips to 1
    assert sim.to_likert(0.55, 0.4) == pytest.approx(2.0)
    arr = sim.to_likert(np.array([np.nan, 0.0, 1.0]), 0.0)
    assert math.isnan(arr[0]) and list(arr[1:]) == [1.0, 5.0]
    with pytest.raises(ValueError):
        sim.to_likert(0.5, 1.0)


def test_documented_floors_are_the_ones_used(toy_scores: "sim.PairwiseScores") -> None:
    assert set(sim.LIKERT_FLOORS) == set(sim.GRANULARITIES)
    assert all(0 <= v < 1 for v in sim.LIKERT_FLOORS.values())
    assert toy_scores.floors == sim.LIKERT_FLOORS
    assert "1 + 4 * clip((sim - floor) / (1 - floor), 0, 1)" in (sim.__doc__ or "")


# ---------------------------------------------------------------------------------------------
# prompt files
# ---------------------------------------------------------------------------------------------

def test_load_prompts_jsonl_and_csv(tmp_path: Path) -> None:
    j = tmp_path / "mine.jsonl"
    j.write_text('{"id": 7, "question": "Why?"}\n\n{"question": "How?"}\n{"question": "Why?"}\n')
    df = sim.load_prompts(j)
    assert df.columns == ["prompt_set", "prompt_id", "prompt"]
    assert df["prompt"].to_list() == ["Why?", "How?"]
    assert df["prompt_id"][0] == "7" and df["prompt_id"][1] == sim.prompt_key("How?")
    assert df["prompt_set"][0] == "mine"
    c = tmp_path / "set.csv"
    c.write_text('instruction,other\n"Say hi, please",x\n"Count to 3",y\n')
    assert sim.load_prompts(c)["prompt"].to_list() == ["Say hi, please", "Count to 3"]
    mt = tmp_path / "mt.jsonl"
    mt.write_text(json.dumps({"question_id": 1, "turns": ["First turn", "second"]}) + "\n")
    assert sim.load_prompts(mt)["prompt"].to_list() == ["First turn"]
    assert sim.prompt_set(str(c))["prompt"].len() == 2


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "not found"),
        ("bad.jsonl", '{"prompt": "ok"}\n{oops\n', "line 2 is not valid JSON"),
        ("nocol.csv", "a,b\n1,2\n", "no prompt column"),
        ("empty.csv", "prompt\n", "holds no rows"),
        ("blank.csv", 'prompt\n""\n', "no non-empty prompt"),
        ("prompts.txt", "hello", "expected .jsonl or .csv"),
    ],
)
def test_load_prompts_bad_files(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(ValueError, match=message):
        sim.load_prompts(p)


def test_unknown_prompt_set() -> None:
    with pytest.raises(ValueError, match="unknown prompt set"):
        sim.prompt_set("no-such-set")


def test_sample_prompts_is_seeded_and_ordered() -> None:
    frame = pl.DataFrame({"prompt_set": ["s"] * 10, "prompt_id": [str(i) for i in range(10)], "prompt": list("abcdefghij")})
    a = sim.sample_prompts(frame, 4, seed=1)
    assert a.height == 4 and a.equals(sim.sample_prompts(frame, 4, seed=1))
    assert a["prompt_id"].to_list() == sorted(a["prompt_id"].to_list(), key=int)
    assert sim.sample_prompts(frame, 0).height == 10


# ---------------------------------------------------------------------------------------------
# alignment
# ---------------------------------------------------------------------------------------------

def test_align_by_text_not_position() -> None:
    prompts = pl.DataFrame({"prompt_set": ["s"] * 3, "prompt_id": ["p1", "p2", "p3"], "prompt": ["Alpha?", "Beta?", "Gamma?"]})
    responses = pl.DataFrame({
        "model": ["m", "m", "m", "n", "n"],
        "prompt": ["Gamma?", " Alpha? ", "Beta?", "Beta?", "Unrelated"],
        "response": ["g", "a", "   ", "b", "x"],
    })
    aligned, report = sim.align_responses(prompts, responses)
    got = {(r["model"], r["prompt_id"]): r["response"] for r in aligned.to_dicts()}
    assert got == {("m", "p3"): "g", ("m", "p1"): "a", ("n", "p2"): "b"}
    assert report.empty == {"m": 1, "n": 0}
    assert report.missing == {"m": 0, "n": 2}
    assert report.kept == {"m": 2, "n": 1}
    assert report.frame().filter(pl.col("model") == "m")["empty"].item() == 1
    with pytest.raises(ValueError, match="missing 'response'"):
        sim.align_responses(prompts, responses.drop("response"))


# ---------------------------------------------------------------------------------------------
# profiles and pairwise scores on handmade answers
# ---------------------------------------------------------------------------------------------

BULLETS = {
    "p1": "Here are some tips:\n\n- Sleep eight hours.\n- Drink water.\n- Walk daily.\n\nI hope this helps!",
    "p2": "Here are the steps:\n\n1. Boil water.\n2. Add pasta.\n3. Cook ten minutes.\n\nEnjoy!",
    "p3": "Here are some facts:\n\n- Paris is the capital of France.\n- It has the Eiffel Tower.\n\nLet me know if you want more!",
}
PROSE = {
    "p1": "Getting enough sleep, drinking water and walking are what matter most for health, in my experience as a long-time runner and coach.",
    "p2": "Pasta is simple: you boil the water, you add the pasta and then you cook it for about ten minutes until it is soft.",
    "p3": "Paris, the capital of France, is famous for many monuments, and the Eiffel Tower is certainly the best known of them all.",
}
VARIANT = {k: v.replace("Here are", "Below are").replace("daily", "every day") for k, v in BULLETS.items()}


def _aligned(extra_missing: bool = False) -> pl.DataFrame:
    rows = []
    for model, answers in (("ref", BULLETS), ("copy", BULLETS), ("variant", VARIANT), ("prose", PROSE)):
        for pid, text in answers.items():
            if extra_missing and model == "prose" and pid == "p3":
                continue
            rows.append({"prompt_set": "toy", "prompt_id": pid, "prompt": pid, "model": model, "response": text})
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def toy_scores() -> sim.PairwiseScores:
    prof = sim.build_profiles(_aligned(), encode=bag_of_words_encoder, progress=False)
    return sim.pairwise_scores(prof)


def test_pairwise_shapes_symmetry_and_diagonal(toy_scores: sim.PairwiseScores) -> None:
    assert toy_scores.models == ["ref", "copy", "variant", "prose"]
    for g in sim.GRANULARITIES:
        s = toy_scores.sims[g]
        assert s.shape == (4, 4, 3)
        assert np.allclose(s, s.transpose(1, 0, 2))
        assert np.allclose(np.diagonal(s, axis1=0, axis2=1), 1.0)
        assert np.allclose(s[0, 1], 1.0)  # identical answers
    m = sim.matrices(toy_scores)
    assert set(m) == {"style", "structure", "content", "overall"}
    assert m["overall"].filter(pl.col("model") == "copy")["ref"].item() == pytest.approx(5.0)


def test_bulleted_variant_is_closer_than_prose(toy_scores: sim.PairwiseScores) -> None:
    lik = {g: toy_scores.likert(g) for g in (*sim.GRANULARITIES, "overall")}
    ref, variant, prose = 0, 2, 3
    for g in ("style", "structure", "overall"):
        assert np.all(lik[g][variant, ref] > lik[g][prose, ref]), g
    # same skeleton "PUUUP" vs "P": 0.5 * (1 - 4/5) + 0.5 * (1 - 2/3) -> mapped with the structure floor
    raw = toy_scores.sims["structure"][prose, ref, 0]
    assert raw == pytest.approx(0.5 * 0.2 + 0.5 / 3)
    assert lik["structure"][prose, ref, 0] == pytest.approx(sim.to_likert(raw, sim.LIKERT_FLOORS["structure"]))
    assert np.all(lik["structure"][variant, ref] == 5.0)


def test_missing_answers_are_nan_and_skipped() -> None:
    prof = sim.build_profiles(_aligned(extra_missing=True), encode=bag_of_words_encoder, progress=False)
    assert not prof.present[3, 2]
    sc = sim.pairwise_scores(prof)
    assert np.isnan(sc.sims["style"][3, 0, 2]) and np.isnan(sc.sims["content"][0, 3, 2])
    long = sim.long_scores(sc, reference="ref")
    assert long.filter(pl.col("test_model") == "prose").height == 2
    assert long.filter(pl.col("test_model") == "ref").height == 3
    assert long.columns == ["prompt_set", "prompt_id", "test_model", "reference", "style", "structure", "content", "overall"]
    with pytest.raises(ValueError, match="has no aligned answers"):
        sim.long_scores(sc, reference="nobody")


def test_sentence_f1_pins() -> None:
    e = np.eye(4, dtype=np.float32)
    # answer 0: sentences e0, e1 ; answer 1: e0 ; answer 2: e2, e3
    sent = np.stack([e[0], e[1], e[0], e[2], e[3]])
    ptr = np.array([[0, 2], [2, 3], [3, 5]])
    f1 = sim._sentence_f1(sent, ptr)
    # R[0,1] = mean(1, 0) = 0.5 ; R[1,0] = 1 -> F1 = 2*0.5/(1.5)
    assert f1[0, 1] == pytest.approx(2 / 3) and f1[1, 0] == pytest.approx(2 / 3)
    assert f1[0, 2] == 0.0 and f1[0, 0] == pytest.approx(1.0)


def test_content_needs_embeddings() -> None:
    prof = sim.build_profiles(_aligned(), content=False, progress=False)
    assert prof.answer_emb is None
    sc = sim.pairwise_scores(prof, granularities=("style", "structure"))
    assert "overall" in sim.matrices(sc)
    with pytest.raises(ValueError, match="needs embeddings"):
        sim.pairwise_scores(prof)
    with pytest.raises(ValueError, match="unknown granularity"):
        sim.pairwise_scores(prof, granularities=("tone",))


def test_encoder_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="encode returned shape"):
        sim.build_profiles(_aligned(), encode=lambda t: np.zeros((1, 3)), progress=False)


def test_calibrate_floors_separates_unrelated_from_identical() -> None:
    prof = sim.build_profiles(_aligned(), encode=bag_of_words_encoder, progress=False)
    floors = sim.calibrate_floors(prof, n_pairs=20)
    assert set(floors) == set(sim.GRANULARITIES)
    assert all(0 <= v < 1 for v in floors.values())


# ---------------------------------------------------------------------------------------------
# RSE table and clustering
# ---------------------------------------------------------------------------------------------

def test_rse_table_layout_and_mean() -> None:
    scores = pl.DataFrame({
        "prompt_set": ["A"] * 4 + ["B"] * 2 + ["A"] * 3 + ["B"] * 3,
        "test_model": ["x"] * 6 + ["y"] * 6,
        "overall": [4.0, 4.0, 5.0, 3.0, 2.0, None, 1.0, 2.0, float("nan"), 3.0, 3.0, 3.0],
    })
    t = sim.rse_table(scores, prompt_sets=["A", "B"], n_boot=500)
    assert t.columns == ["test_model", "A", "A_lo", "A_hi", "n_A", "B", "B_lo", "B_hi", "n_B", "mean", "mean_lo", "mean_hi"]
    x = t.filter(pl.col("test_model") == "x").to_dicts()[0]
    y = t.filter(pl.col("test_model") == "y").to_dicts()[0]
    assert x["A"] == 4.0 and x["n_A"] == 4 and x["B"] == 2.0 and x["n_B"] == 1
    assert x["mean"] == pytest.approx(3.0)  # mean of the set columns, not of all prompts
    assert y["A"] == pytest.approx(1.5) and y["n_A"] == 2 and y["B"] == 3.0
    assert y["B_lo"] == y["B_hi"] == 3.0
    assert x["A_lo"] <= 4.0 <= x["A_hi"] and x["A_lo"] < x["A_hi"]
    assert x["mean_lo"] <= x["mean"] <= x["mean_hi"]
    assert t["test_model"].to_list() == ["x", "y"]  # sorted by mean
    with pytest.raises(ValueError, match="need columns"):
        sim.rse_table(scores.drop("overall"))
    partial = sim.rse_table(scores.filter(~((pl.col("test_model") == "y") & (pl.col("prompt_set") == "B"))),
                            prompt_sets=["A", "B"], n_boot=50)
    y = partial.filter(pl.col("test_model") == "y").to_dicts()[0]
    assert y["B"] is None and y["n_B"] == 0 and y["mean"] is None and y["A"] == pytest.approx(1.5)
    assert partial["test_model"].to_list() == ["x", "y"]
    # a judge whose every verdict was unparseable: the model is listed with n = 0, no number made up
    none = sim.rse_table(scores.with_columns(pl.lit(None, dtype=pl.Float64).alias("overall")), prompt_sets=["A"])
    assert none["test_model"].to_list() == ["x", "y"] and none["n_A"].to_list() == [0, 0]
    assert none["A"].is_null().all() and none["mean"].is_null().all()
    assert sim.rse_table(scores.head(0), prompt_sets=["A"]).height == 0


def test_cluster_order_groups_blocks() -> None:
    names = ["a1", "b1", "a2", "b2", "a3"]
    group = {"a1": 0, "a2": 0, "a3": 0, "b1": 1, "b2": 1}
    mat = np.array([[5.0 if group[r] == group[c] else 2.0 for c in names] for r in names])
    mat[0, 2] = mat[2, 0] = 4.5
    frame = pl.DataFrame({c: mat[:, k] for k, c in enumerate(names)}).insert_column(0, pl.Series("model", names))
    order = sim.cluster_order(frame)
    assert sorted(order) == sorted(names)
    pos = [group[m] for m in order]
    assert pos in ([0, 0, 0, 1, 1], [1, 1, 0, 0, 0])


# ---------------------------------------------------------------------------------------------
# charts and drill-down
# ---------------------------------------------------------------------------------------------

def test_drilldown_escapes_model_text() -> None:
    from distill_kit.rse import charts

    out = charts.drilldown_html("<b>Q</b>", "ref<1>", "<script>alert(1)</script>", "t&t", "**bold** <img src=x>",
                                {"style": 4.0, "rationale": "<i>why</i>"})
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<img" not in out and "&lt;img src=x&gt;" in out
    assert "ref&lt;1&gt;" in out and "t&amp;t" in out and "&lt;i&gt;why&lt;/i&gt;" in out
    assert "style: <b>4.00</b>" in out
    # notebook CSS right-aligns cells and breaks words anywhere; the drill-down overrides both
    assert out.count("text-align:left") >= 4 and "word-break:normal" in out


def test_charts_build_from_real_frames(toy_scores: sim.PairwiseScores) -> None:
    from distill_kit.rse import charts

    mats = sim.matrices(toy_scores)
    order = sim.cluster_order(mats["overall"])
    heat = charts.similarity_heatmap(mats["overall"], order, title="overall").to_dict()
    values = heat["datasets"][next(iter(heat["datasets"]))]
    assert len(values) == 16
    long = sim.long_scores(toy_scores, reference="ref")
    table = sim.rse_table(long.filter(pl.col("test_model") != "ref"), n_boot=100)
    spec = charts.rse_table_chart(table, ["prompts"]).to_dict()
    with pytest.raises(ValueError, match="none of the columns"):
        charts.rse_table_chart(table, ["toy"])
    assert spec["layer"][1]["encoding"]["x"]["scale"]["domain"] == [1, 5]
    assert charts.granularity_chart(long).to_dict()["mark"]["type"] == "point"
    import vl_convert as vlc

    # one merged legend for colour + shape, and labelled cells large enough for their text
    assert vlc.vegalite_to_svg(charts.granularity_chart(long).to_json()).count(">granularity<") == 1
    assert heat["width"] == 4 * 24 and charts.similarity_heatmap(mats["overall"], labels=False).to_dict()["width"] == 4 * 16


# ---------------------------------------------------------------------------------------------
# real published data
# ---------------------------------------------------------------------------------------------

def test_live_path_through_collect_matches_replay(data_dir: Path, tmp_path: Path) -> None:
    """Responses collected through collect + store (replay provider) align exactly like the
    published ones read directly; an unknown prompt becomes a counted missing answer."""
    from distill_kit.config import get_model
    from distill_kit.store import Store

    prompts = sim.prompt_set("alpaca-eval", 4, seed=3)
    extra = pl.DataFrame({"prompt_set": ["alpaca-eval"], "prompt_id": ["mine"], "prompt": ["A prompt nobody answered"]})
    prompts_plus = pl.concat([prompts, extra])
    cfg = get_model("replay:alpaca_eval/zephyr-7b-beta")
    with Store(tmp_path / "s.sqlite") as store:
        rs = sim.gather_responses(["alpaca-eval"], ["gpt4_0613"], "gpt4_0613", store=store, sample_size=4, seed=3)
        live = sim.collect_responses(cfg, prompts_plus, store)
    assert live.height == 5 and live["response"][4] is None
    assert sim.answered_line(cfg.name, live) == f"{cfg.name}: 4/5 RSE prompts answered"
    with Store(tmp_path / "s.sqlite") as store:
        nothing = sim.collect_responses(cfg, extra, store)
    with pytest.raises(RuntimeError, match="0/1 RSE prompts answered"):  # notebook 02 stops here, not later
        sim.answered_line(cfg.name, nothing)
    aligned, report = sim.align_responses(prompts_plus, live)
    assert report.empty[cfg.name] == 1 and report.kept[cfg.name] == 4
    published = sim.replay_responses("alpaca-eval", ["zephyr-7b-beta"])
    want, _ = sim.align_responses(prompts, published)
    assert sorted(aligned["response"].to_list()) == sorted(want["response"].to_list())
    assert rs.models == ["gpt4_0613"] and rs.aligned.height == 4


def test_real_alpaca_sample_style_structure(data_dir: Path) -> None:
    """On real answers: a model is most similar to itself, and gpt4_0613_concise (same model asked
    for concise answers) is shorter-styled than gpt4_0613 but structurally closer to it than to claude."""
    rs = sim.gather_responses(["alpaca-eval"], ["gpt4_0613", "gpt4_0613_concise", "claude", "alpaca-7b"], "gpt4_0613",
                              sample_size=60, seed=0)
    prof = sim.build_profiles(rs.aligned, rs.models, content=False, progress=False)
    sc = sim.pairwise_scores(prof, ("style", "structure"))
    mats = sim.matrices(sc)
    o = mats["overall"]
    row = dict(zip(o["model"].to_list(), o["gpt4_0613"].to_list()))
    assert row["gpt4_0613"] == pytest.approx(5.0)
    assert row["gpt4_0613_concise"] > row["claude"]
    assert set(sim.cluster_order(o)) == set(rs.models)
