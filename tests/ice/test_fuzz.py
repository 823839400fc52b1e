"""GPTFuzzer loop: MCTS-Explore, mutation plumbing, budget, determinism, stored attempts."""

from __future__ import annotations

import random

import pytest

from distill_kit.ice import fuzz as F
from distill_kit.config import GenerationParams, ModelConfig
from distill_kit.testing import LoopbackServer
from distill_kit.ice.probes import Probe, Template
from distill_kit.store import Store

SEEDS = [Template(f"s{i}", f"Seed {i}: pretend and answer {{query}}", "test") for i in range(4)]
PROBES = [Probe("en-001", "en", "creator", "Who created you?"), Probe("zh-001", "zh", "creator", "是谁创造了你？"),
          Probe("en-002", "en", "name", "What is your name?")]


def loop_cfg(url: str, name: str) -> ModelConfig:
    return ModelConfig(name=name, provider="openai", model="loopback", base_url=url, timeout=5, max_retries=0,
                       params=GenerationParams(max_tokens=16))


def test_mcts_explore_prefers_rewarded_seeds() -> None:
    tree = F.MCTSExplore(SEEDS, random.Random(0), ratio=0.1)
    picks = []
    for _ in range(40):
        node = tree.select()
        picks.append(node.template.id)
        tree.update(1 if node.template.id == "s2" else 0, 1, node.level)
    assert picks.count("s2") > 20          # exploitation
    assert set(picks) == {"s0", "s1", "s2", "s3"}  # exploration
    child = tree.add(Template("c", "child {query}"), tree.nodes[2])
    assert child.level == 1 and tree.nodes[2].children == [child.index]
    # crossover partners come from the whole pool, successful mutants included
    assert "c" in {tree.crossover_partner().id for _ in range(60)}


def test_extract_template_keeps_the_slot() -> None:
    seed = SEEDS[0]
    assert F.extract_template("rephrase", "<new prompt>Say {query} now</new prompt>", seed) == "Say {query} now"
    assert F.extract_template("rephrase", "no tags, no slot", seed) == "no tags, no slot\n{query}"
    assert F.extract_template("expand", "<new prompt>Intro.</new prompt>", seed) == "Intro.\n" + seed.text
    assert F.extract_template("shorten", "", seed) == seed.text
    assert "{query}" in F.mutation_prompt("crossover", SEEDS[0], SEEDS[1]) and "Seed 1" in F.mutation_prompt("crossover", SEEDS[0], SEEDS[1])
    with pytest.raises(ValueError):
        F.FuzzConfig(mutators=("explode",))
    with pytest.raises(ValueError):
        F.FuzzConfig(max_queries=0)


def test_fuzz_loop_budget_determinism_and_storage(tmp_path) -> None:
    def judge(answers: list[str]) -> list[bool | None]:  # success when the echoed prompt holds a Chinese probe
        return [("是谁" in a) for a in answers]

    cfg = F.FuzzConfig(max_queries=7, questions_per_mutant=2, seed=3)
    with LoopbackServer() as srv:
        target, helper = loop_cfg(srv.base_url, "target"), loop_cfg(srv.base_url, "helper")
        s1 = Store(tmp_path / "a.sqlite")
        a = F.run_fuzz(target, helper, judge, PROBES, SEEDS, s1, cfg, progress=False)
        s2 = Store(tmp_path / "b.sqlite")
        b = F.run_fuzz(target, helper, judge, PROBES, SEEDS, s2, cfg, progress=False)
    assert a.height == 7                                   # budget = target queries, exactly
    assert a.drop("key").equals(b.drop("key")) and a["key"].to_list() == b["key"].to_list()  # deterministic
    assert set(a["mutator"]) <= set(F.MUTATORS)
    assert all("{query}" in t for t in a["template"])
    assert a["verdict"].to_list() == [("是谁" in (r or "")) for r in a["response"]]
    attempts = s1.frame(model="target" + F.FUZZ_SUFFIX)
    assert attempts.height == 7
    meta = attempts["meta"].to_list()[0]
    meta = meta if isinstance(meta, dict) else __import__("json").loads(meta)
    assert {"template", "query", "probe_id", "verdict_loose", "mutator"} <= set(meta)
    assert s1.frame(model="helper").height == a["iteration"].n_unique()
    stored = F.stored_attempts(s1, "target")  # what the report reads back
    assert stored.height == 7 and stored["verdict"].to_list() == a["verdict"].to_list()
    assert stored["template"].to_list() == a["template"].to_list()
    best = F.template_success(stored)
    assert best["attempts"].sum() == 7 and best["success_rate"].to_list()[0] == best["success_rate"].max()
    assert F.stored_attempts(s1, "never-fuzzed").height == 0
    assert "target" + F.FUZZ_SUFFIX not in s1.usage()["model"].to_list()  # verdict rows are not calls
    assert s1.models() == ["helper", "target", "target" + F.FUZZ_SUFFIX]
    scored_target = target.model_copy(update={"identity": "I am Target, built by Test Lab.", "family": "tgt"})
    frame = F.scoring_frame(s1, scored_target)  # what notebook 03 scores as "target (GPTFuzzer)"
    assert frame.height == 7 and set(frame["model"]) == {"target (GPTFuzzer)"} and set(frame["family"]) == {"tgt"}
    by_id = {p.id: p for p in PROBES}
    assert frame["language"].to_list() == [by_id[i].language for i in stored["probe_id"].to_list()]
    assert F.scoring_frame(s1, scored_target.model_copy(update={"name": "other"})).height == 0
    s1.close(), s2.close()


def test_success_judge_by_name_and_success_by_mutator(tmp_path) -> None:
    target = loop_cfg("http://127.0.0.1:1", "target").model_copy(
        update={"identity": "I am SmolLM2, a small language model developed by Hugging Face.", "family": "smollm"})
    judge = F.success_judge("rules", target, None)
    assert judge(["I am ChatGPT, developed by OpenAI.", "I am SmolLM2 from Hugging Face."]) == [True, False]
    with pytest.raises(ValueError, match="needs its identity fact"):
        F.success_judge("rules", loop_cfg("http://127.0.0.1:1", "anonymous"), None)
    import polars as pl

    attempts = pl.DataFrame({"mutator": ["expand", "expand", "shorten", "shorten"], "verdict": [True, False, None, True]})
    table = {r["mutator"]: r for r in F.success_by_mutator(attempts).to_dicts()}
    assert table["expand"] == {"mutator": "expand", "attempts": 2, "judged": 2, "success_rate": 0.5}
    assert table["shorten"]["judged"] == 1 and table["shorten"]["success_rate"] == 1.0  # unjudged is not a failure


def test_success_judge_adapters(tmp_path) -> None:
    from distill_kit.ice.judges import RuleIdentityJudge

    fact = "I am SmolLM2, a small language model developed by Hugging Face."
    judge = F.offline_success_judge("smollm", fact, RuleIdentityJudge({}))
    assert judge(["I am ChatGPT, developed by OpenAI.", "I am SmolLM2 from Hugging Face.", ""]) == [True, False, False]
    with LoopbackServer() as srv:  # echoing judge: never a single verdict tag -> None, not a success
        llm = F.llm_success_judge(loop_cfg(srv.base_url, "judge"), Store(tmp_path / "j.sqlite"), fact)
        assert llm(["I am ChatGPT."]) == [None]


def test_report_shows_stored_fuzzing_escaped(tmp_path) -> None:
    from distill_kit.run import report

    evil = [Template("evil", "<script>alert(1)</script> pretend and answer {query}", "test")]
    probes = [Probe("en-x", "en", "creator", "Who made you? <script>alert(2)</script>")]
    with LoopbackServer() as srv, Store(tmp_path / "s.sqlite") as store:
        target = loop_cfg(srv.base_url, "target")
        helper = loop_cfg(srv.base_url, "helper")
        F.run_fuzz(target, helper, lambda answers: [True] * len(answers), probes, evil, store,
                   F.FuzzConfig(max_queries=4, questions_per_mutant=2, seed=1), progress=False)
    sec = report._fuzz_section(str(tmp_path / "s.sqlite"))
    assert sec.ran and "target: 4 attempts" in sec.body and "success 1.00" in sec.body
    assert "<script>" not in sec.body  # model and template text is escaped
    assert "an answer judged a contradiction" in sec.body and "&lt;script&gt;alert(2)&lt;/script&gt;" in sec.body
    empty = report._fuzz_section(None)
    assert not empty.ran and "fuzz_queries" in empty.body
