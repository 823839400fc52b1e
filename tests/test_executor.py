"""The executor: local by default, Ray on request, and the same results from both.

The fast tests pin the local path, the selection rules and the run-config plumbing. The slow test
starts a private two-CPU Ray cluster on this machine (no dashboard, no network) and runs the package's
heavy steps -- stylometric features, structure similarities, the offline identity judge and embeddings
(torch and ONNX int8) -- through it, comparing every result with the in-process run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from distill_kit import executor as ex
from distill_kit.config import ConfigError


def _lengths(batch: list[str]) -> list[int]:
    return [len(x) for x in batch]


def _scaled(batch: list[int], context: int) -> list[int]:
    return [x * context for x in batch]


def _drops_one(batch: list[int]) -> list[int]:
    return batch[1:]


_calls: list[int] = []


def _recording(batch: list[int]) -> list[int]:
    _calls.append(len(batch))
    return batch


def test_local_map_batches_keeps_order_and_batches() -> None:
    items = [f"x{'y' * i}" for i in range(10)]
    assert ex.map_batches(_lengths, items, executor="local", batch_size=3) == [len(x) for x in items]
    assert ex.map_batches(_scaled, list(range(5)), executor="local", batch_size=2, context=10) == [0, 10, 20, 30, 40]
    assert ex.map_batches(_lengths, [], executor="local") == []
    _calls.clear()
    ex.map_batches(_recording, list(range(7)), executor="local", batch_size=3)
    assert _calls == [3, 3, 1]  # the cut the Ray path uses too
    assert ex.batches(7, 3) == [(0, 3), (3, 6), (6, 7)]
    starts = [s for s, _ in ex.imap_batches(_lengths, items, executor="local", batch_size=4)]
    assert starts == [0, 4, 8]


def test_bad_functions_and_names_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="returned 1 results for a batch of 2"):
        ex.map_batches(_drops_one, [1, 2], executor="local")
    with pytest.raises(ConfigError, match="unknown executor 'spark'; use one of: local, ray"):
        ex.map_batches(_lengths, ["a"], executor="spark")
    with pytest.raises(ValueError, match="batch_size"):
        ex.map_batches(_lengths, ["a"], executor="local", batch_size=0)


def test_selection_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ex.ENV_VAR, raising=False)
    ex.use(None)
    assert ex.resolve() == "local"
    monkeypatch.setenv(ex.ENV_VAR, "ray")
    assert ex.resolve() == "ray"  # the environment variable when nothing else says
    assert ex.use("LOCAL") == "local"  # use() (a notebook parameter) beats the environment
    with ex.using("ray"):
        assert ex.resolve() == "ray"
        assert ex.resolve("local") == "local"  # an explicit argument beats everything
    assert ex.resolve() == "local"
    ex.use(None)
    monkeypatch.setenv(ex.ENV_VAR, "dask")
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        ex.resolve()


def test_ray_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'distill-kit\[cluster\]'"):
        ex.map_batches(_lengths, ["a"], executor="ray")


def test_run_config_passes_executor_to_notebooks_that_declare_it(tmp_path: Path) -> None:
    from distill_kit.run.plan import RunConfig, load_run_config, plan_run

    steps = [{"notebook": "03"}, {"notebook": "05"}, {"notebook": "06"}]
    local = RunConfig(name="r", steps=steps)
    ray = RunConfig(name="r", steps=steps, executor="ray")
    assert local.executor == "local" and local.run_id() == ray.run_id()  # same results, same run directory
    plans = {p.name: p for p in plan_run(ray, tmp_path)}
    assert plans["03-identity-scores"].parameters["executor"] == "ray"
    assert plans["05-embed-and-cluster"].parameters["executor"] == "ray"
    assert "executor" not in plans["06-report"].parameters  # the report declares no executor
    assert [p.fingerprint() for p in plan_run(local, tmp_path)] == [p.fingerprint() for p in plans.values()]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: r\nexecutor: spark\nsteps:\n  - notebook: '03'\n")
    with pytest.raises(ConfigError, match="executor"):
        load_run_config(bad)


# ------------------------------------------------------------------------------ a real Ray cluster

ray_missing = importlib.util.find_spec("ray") is None


@pytest.fixture(scope="module")
def ray_cluster():  # type: ignore[no-untyped-def]
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(ray_missing, reason="ray is not installed (pip install 'distill-kit[cluster]'; make setup installs it)")
def test_heavy_steps_on_ray_equal_local(ray_cluster, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    from distill_kit import datasets
    from distill_kit.ice import judges as J
    from distill_kit.rse import offline_judge, responses
    from distill_kit.text import embed
    from distill_kit.text import stylometry as st

    # stylometric features and the structure similarities (the offline RSE judge's heavy parts)
    prompts = datasets.prompt_set("alpaca-eval", sample_size=24, seed=0)
    answers = datasets.load_responses("alpaca-eval", ["gpt4_1106_preview", "zephyr-7b-beta", "claude-2.1"], keep_empty=True)
    aligned, _ = responses.align_responses(prompts, answers)
    texts = aligned["text"].to_list()
    with ex.using("local"):
        prof_local = offline_judge.build_profiles(aligned, content=False, progress=False)
        pairs_local = offline_judge.pairwise_scores(prof_local, ("style", "structure"))
    with ex.using("ray"):
        prof_ray = offline_judge.build_profiles(aligned, content=False, progress=False)
        pairs_ray = offline_judge.pairwise_scores(prof_ray, ("style", "structure"))
    assert ray_cluster.is_initialized() and ray_cluster.cluster_resources().get("CPU") == 2
    assert np.array_equal(prof_local.style, prof_ray.style, equal_nan=True)
    assert np.array_equal(prof_local.fw, prof_ray.fw) and prof_local.skeletons == prof_ray.skeletons
    for g in ("style", "structure"):
        assert np.array_equal(pairs_local.sims[g], pairs_ray.sims[g], equal_nan=True)
    feats = ex.map_batches(st.answer_features, texts, executor="ray", batch_size=10)
    assert [f[2] for f in feats] == [f[2] for f in st.answer_features(texts)]

    # the offline identity judge: fitted here, shipped to the workers once, identical verdicts
    frame = datasets.identity_responses(["qwen2.5-14b-instruct", "deepseek-chat"])
    frame = frame.filter(pl.int_range(pl.len()).shuffle(0).over("model") < 150)
    judge = J.fit_offline_judge(frame.head(200), datasets.identity_facts())
    held = frame.tail(100)
    with ex.using("local"):
        local_v = judge.judge_many(held["response"].to_list(), held["family"].to_list())
        local_rules = J.RuleIdentityJudge(datasets.identity_facts()).judge_many(held["response"].to_list(), held["family"].to_list())
    with ex.using("ray"):
        ray_v = judge.judge_many(held["response"].to_list(), held["family"].to_list())
        ray_frame = J.judge_frame(held, judge)
        ray_rules = J.RuleIdentityJudge(datasets.identity_facts()).judge_many(held["response"].to_list(), held["family"].to_list())
    assert ray_v == local_v and ray_rules == local_rules and len(ray_v) == 100
    assert ray_frame["pred_loose"].to_list() == [v.loose for v in local_v]

    # embeddings, torch and ONNX int8; the cache is bypassed so both really compute
    sample = texts[:40]
    for backend in ("torch", "onnx-int8"):
        local_e = embed.embed_texts(sample, backend=backend, executor="local", cache=False, progress=False)
        ray_e = embed.embed_texts(sample, backend=backend, executor="ray", cache=False, progress=False)
        assert ray_e.shape == (40, 384)
        # workers run torch/onnxruntime with their own thread counts: float sums may differ in the last bits
        np.testing.assert_allclose(ray_e, local_e, atol=2e-6)
