"""Data access: registry, checksums, clear errors, loaders' shapes on the real published data."""

from __future__ import annotations

import gzip
import shutil

import polars as pl
import pytest

from distill_kit import datasets
from distill_kit.config import ConfigError, load_models
from distill_kit.datasets import DataError
from distill_kit.models import get_model


@pytest.fixture
def fresh_cache():
    datasets.clear_caches()
    yield
    datasets.clear_caches()


def test_registry_is_the_upstream_manifest(data_dir):
    import csv

    reg = datasets.registry()
    with (data_dir / "upstream_manifest.csv").open() as fh:
        manifest = {r["path"]: r for r in csv.DictReader(fh)}
    assert set(reg) == set(manifest) and len(reg) == 115
    for entry in reg.values():
        assert entry.sha256 == manifest[entry.path]["sha256"] and entry.size == int(manifest[entry.path]["size"])
        assert (entry.url or "").startswith("https://raw.githubusercontent.com/")
    assert not set(datasets.CURATED) & set(reg)  # curated metadata is never checksummed


def test_identity_responses_carry_loose_and_strict_labels(data_dir):
    frame = datasets.identity_responses(["deepseek-chat", "phi-4"])
    assert frame.height == 2000
    by_model = frame.group_by("model").agg(pl.col("loose_label").mean(), pl.col("strict_label").sum())
    got = dict(zip(by_model["model"], by_model["strict_label"]))
    assert got == {"deepseek-chat": 219, "phi-4": 137}  # rows of the strict-positive files
    assert frame.filter(pl.col("strict_label") & ~pl.col("loose_label")).height == 0
    assert frame["prompt"].str.contains("{query}", literal=True).sum() == 0


def test_alpaca_and_arena_loaders(data_dir):
    alpaca = datasets.alpaca_outputs(["alpaca-7b", "gpt4_0314"])
    assert alpaca["instruction"].n_unique() >= 800
    assert alpaca.group_by("model").len()["len"].min() >= 800
    answers = datasets.arena_answers(["gpt-4-0314"])
    assert answers.height == 500 and answers["prompt"].null_count() == 0
    assert set(datasets.lineage()["role"]) == {"student", "control", "variant", "reference"}


def test_unknown_model_is_one_clear_error(data_dir):
    with pytest.raises(DataError, match="unknown AlpacaEval model: not-a-model"):
        datasets.alpaca_outputs(["not-a-model"])
    for load in (datasets.alpaca_outputs, datasets.identity_responses, datasets.arena_answers):
        with pytest.raises(DataError, match="no .* selected"):
            load([])  # an empty selection, not polars' "cannot concat empty list"


def test_missing_and_corrupt_files_are_clear_errors(data_dir, tmp_path, monkeypatch, fresh_cache):
    (tmp_path / "identity").mkdir()
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing data file .*seed_templates.json"):
        datasets.seed_templates()
    original = (data_dir / "identity" / "seed_templates.json").read_bytes()
    (tmp_path / "identity" / "seed_templates.json").write_bytes(original[:-10])
    with pytest.raises(DataError, match="corrupt data file .*sha256"):
        datasets.seed_templates()
    (tmp_path / "identity" / "responses").mkdir()
    (tmp_path / "identity" / "responses" / "phi-4.jsonl.gz").write_bytes(b"not gzip at all")
    shutil.copy(data_dir / "identity" / "models.csv", tmp_path / "identity" / "models.csv")
    with pytest.raises(DataError, match="not a valid gzip"):
        datasets.identity_responses(["phi-4"])
    good = gzip.decompress((data_dir / "identity/responses/phi-4.jsonl.gz").read_bytes())
    (tmp_path / "identity/responses/phi-4.jsonl.gz").write_bytes(gzip.compress(good.replace(b"Microsoft", b"Macrosoft", 1)))
    with pytest.raises(DataError, match="corrupt"):
        datasets.identity_responses(["phi-4"])


def test_without_data_dir_curated_metadata_comes_from_the_project(monkeypatch, fresh_cache):
    monkeypatch.delenv("DISTILL_KIT_DATA_DIR", raising=False)
    assert "Anthropic" in datasets.identity_facts()["claude"]
    assert datasets.paper_scores().height >= 15
    assert datasets.lineage(extended=False).filter(pl.col("role") == "student").height == 6
    extended = datasets.lineage()  # the default: lineage_extended.csv, a superset
    assert extended.height == 51 and set(datasets.lineage(extended=False)["model"]) < set(extended["model"])
    assert datasets.identity_models().height == 14 and datasets.paper_rse_scores().height == 12


def test_bundled_metadata_agrees_with_data_dir(data_dir, monkeypatch, fresh_cache):
    def tables():
        return (datasets.identity_facts(), datasets.paper_scores(), datasets.lineage(), datasets.identity_models(),
                datasets.lineage(extended=False), datasets.paper_rse_scores())

    from_dir = tables()
    assert datasets.curated_source("alpaca_eval/lineage_extended.csv").startswith(str(data_dir))
    monkeypatch.delenv("DISTILL_KIT_DATA_DIR")
    datasets.clear_caches()
    assert datasets.curated_source("alpaca_eval/lineage_extended.csv") == "transcription"
    bundled = tables()
    assert from_dir[0] == bundled[0]
    for a, b in zip(from_dir[1:], bundled[1:]):
        assert a.equals(b)


def test_model_config_errors(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("models:\n  - name: x\n    provider: telepathy\n")
    with pytest.raises(ConfigError, match=r"models\[0\]\.provider"):
        load_models(bad)
    bad.write_text("models:\n  - name: x\n    provder: openai\n")  # a typo is named, not just "provider missing"
    with pytest.raises(ConfigError, match=r"models\[0\]\.provder: unknown key"):
        load_models(bad)
    bad.write_text("models: [\n  - name: x\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: line \d+ invalid YAML"):
        load_models(bad)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        get_model("nope")
    with pytest.raises(ConfigError, match="unknown replay dataset 'foo'; known: identity"):
        get_model("replay:foo/bar")  # one line, not pydantic's multi-line report
    assert get_model("smollm2-local").provider == "local"
    assert get_model("gpt-4o-mini").api_key_env == "OPENAI_API_KEY"


def test_replay_provider_serves_published_answers(data_dir, tmp_path):
    from distill_kit.collect import ChatRequest, collect_sync
    from distill_kit.store import Store

    cfg = get_model("replay:alpaca-eval/alpaca-7b")
    frame = datasets.alpaca_outputs(["alpaca-7b"]).head(3)
    reqs = [ChatRequest.user(t) for t in frame["instruction"]] + [ChatRequest.user("never asked in AlpacaEval")]
    out = collect_sync(cfg, reqs, Store(tmp_path / "s.sqlite"), progress=False)
    assert [r.text for r in out[:3]] == frame["output"].to_list()
    assert not out[3].ok and "no published answer" in out[3].error
    old = get_model("replay:alpaca_eval/alpaca-7b")  # the old spelling still names the same model, with a notice
    assert old.replay == cfg.replay
    ident = get_model("replay:identity/deepseek-chat")
    assert ident.family == "deepseek" and "DeepSeek" in ident.identity


# ---------------------------------------------------------------- the one response schema and prompt sets

def test_published_answers_load_in_the_one_response_schema(data_dir):
    alpaca = datasets.load_responses("alpaca-eval", ["alpaca-7b", "gpt4_0314"])
    assert alpaca.columns == list(datasets.RESPONSE_COLUMNS)
    assert alpaca.group_by("model", "prompt").len()["len"].max() == 1  # one answer per model and prompt
    assert alpaca["text"].str.strip_chars().str.len_chars().min() > 0  # empty answers dropped
    ids = datasets.prompt_set("alpaca-eval").select("prompt_id", "prompt")
    assert alpaca.join(ids, on="prompt", suffix="_set").filter(pl.col("prompt_id") != pl.col("prompt_id_set")).height == 0
    with_empty = datasets.load_responses("alpaca-eval", ["text_davinci_003"], keep_empty=True)
    assert with_empty.filter(pl.col("text") == "").height == 2  # RSE counts the empty published outputs
    assert datasets.load_responses("alpaca-eval", ["text_davinci_003"]).height == with_empty.height - 2
    arena = datasets.load_responses("arena-hard", ["gpt-4-0314"])
    questions = datasets.arena_questions()
    assert arena.height == 500 and set(arena["prompt_id"]) == set(questions["uid"].cast(pl.String))


def test_old_dataset_spellings_read_with_one_notice(data_dir, capsys):
    old = datasets.load_responses("arena_hard", ["gpt-4-0314"])
    assert "'arena_hard' is deprecated; write 'arena-hard'" in capsys.readouterr().err
    assert old.equals(datasets.load_responses("arena-hard", ["gpt-4-0314"]))
    with pytest.raises(DataError, match="unknown response source 'nope'; choose from alpaca-eval, arena-hard, store"):
        datasets.load_responses("nope")


def test_stored_answers_load_in_the_same_schema(tmp_path):
    from distill_kit.store import Record, Store

    def record(key: str, prompt: str, text: str | None, meta: dict) -> Record:
        return Record(key, "m", "local", [{"role": "user", "content": prompt}], {}, 0, "ok" if text else "error",
                      text, None, 1, 0, 0, 0.0, None, meta)

    with Store(tmp_path / "s.sqlite") as store:
        store.put_many([record("k1", "Name a fruit.", "Apple.", {"prompt_id": "p1"}),
                        record("k2", "Name a colour.", "Red.", {}),
                        record("k3", "Name a city.", None, {})])
    frame = datasets.load_responses("store", ["m"], str(tmp_path / "s.sqlite"))
    assert frame.rows() == [("m", "p1", "Name a fruit.", "Apple."),
                            ("m", datasets.prompt_key("Name a colour."), "Name a colour.", "Red.")]


def test_as_responses_reads_older_column_names_and_keeps_the_first_answer():
    frame = pl.DataFrame({"model": ["a", "a", "a", "b"], "instruction": ["Q1", "Q1", "Q2", "Q1"],
                          "output": ["first", "second", "  ", "b1"]})
    out = datasets.as_responses(frame)
    assert out.select("model", "prompt", "text").rows() == [("a", "Q1", "first"), ("b", "Q1", "b1")]
    assert datasets.as_responses(frame, keep_empty=True).height == 3
    with pytest.raises(DataError, match=r"needs columns model, prompt, text; missing \['prompt'\]"):
        datasets.as_responses(pl.DataFrame({"model": ["a"], "text": ["b"]}))


def test_sample_prompts_zero_means_all_and_frames_and_lists_draw_the_same_rows():
    frame = pl.DataFrame({"prompt_set": ["s"] * 10, "prompt_id": [str(i) for i in range(10)], "prompt": list("abcdefghij")})
    picked = datasets.sample_prompts(frame, 4, seed=1)
    assert picked.height == 4 and picked.equals(datasets.sample_prompts(frame, 4, seed=1))
    assert picked["prompt_id"].to_list() == sorted(picked["prompt_id"].to_list(), key=int)  # the set's order
    assert datasets.sample_prompts(list("jihgfedcbaa"), 4, seed=1) == picked["prompt"].to_list()
    for everything in (0, None, 99):
        assert datasets.sample_prompts(frame, everything).height == 10
        assert datasets.sample_prompts(["b", "a", "b"], everything) == ["a", "b"]
    with pytest.raises(ValueError, match="sample_size must be >= 0"):
        datasets.sample_prompts(frame, -1)


def test_load_prompts_jsonl_and_csv(tmp_path):
    j = tmp_path / "mine.jsonl"
    j.write_text('{"id": 7, "question": "Why?"}\n\n{"question": "How?"}\n{"question": "Why?"}\n')
    df = datasets.load_prompts(j)
    assert df.columns == ["prompt_set", "prompt_id", "prompt"]
    assert df["prompt"].to_list() == ["Why?", "How?"]
    assert df["prompt_id"][0] == "7" and df["prompt_id"][1] == datasets.prompt_key("How?")
    assert df["prompt_set"][0] == "mine"
    c = tmp_path / "set.csv"
    c.write_text('instruction,other\n"Say hi, please",x\n"Count to 3",y\n')
    assert datasets.load_prompts(c)["prompt"].to_list() == ["Say hi, please", "Count to 3"]
    mt = tmp_path / "mt.jsonl.gz"
    mt.write_bytes(gzip.compress(b'{"question_id": 1, "turns": ["First turn", "second"]}\n'))
    assert datasets.load_prompts(mt)["prompt"].to_list() == ["First turn"]
    assert datasets.prompt_set(str(c))["prompt"].len() == 2


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
def test_load_prompts_bad_files(tmp_path, name: str, content: str | None, message: str):
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(ValueError, match=message):
        datasets.load_prompts(p)


def test_builtin_prompt_sets_and_an_unknown_one(data_dir):
    arena = datasets.prompt_set("arena-hard", 5, seed=2)
    assert arena.height == 5 and set(arena["prompt_set"]) == {"arena-hard"}
    assert arena.equals(datasets.prompt_set("arena-hard", 5, seed=2))
    assert datasets.prompt_set("alpaca-eval")["prompt_id"].n_unique() == 805
    with pytest.raises(ValueError, match="unknown prompt set 'no-such-set': use one of arena-hard, alpaca-eval"):
        datasets.prompt_set("no-such-set")
