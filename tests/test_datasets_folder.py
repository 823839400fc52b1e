"""Open data folders: ../shared/data (symlinked) plus an unregistered model, a missing registered file and the
folder's own lineage; every loader, the CLI, the benchmarks and the notebooks work on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from distill_kit import datasets
from distill_kit.datasets import DataError
from tests.helpers.open_folder import (
    OMITTED,
    USER_MODEL,
    build_fourteen_model_folder,
    build_open_folder,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def open_folder(tmp_path_factory, data_dir: Path) -> Path:
    return build_open_folder(data_dir, tmp_path_factory.mktemp("open") / "data")


@pytest.fixture
def use_folder(open_folder: Path, monkeypatch):
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(open_folder))
    datasets.clear_caches()
    yield open_folder
    datasets.clear_caches()


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "DISTILL_KIT_DATA_DIR": str(folder), "PYTHONPATH": str(ROOT)}


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``distill-kit <args>`` in a subprocess reading ``folder``."""
    return subprocess.run([sys.executable, "-m", "distill_kit", *args], env=_env(folder), capture_output=True,
                          text=True, timeout=120)


def test_listing_returns_what_the_folder_holds_and_names_unregistered_files_once(use_folder: Path, capsys):
    assert USER_MODEL in datasets.identity_response_models() and "qwen2.5-72b" not in datasets.identity_response_models()
    assert USER_MODEL in datasets.alpaca_models() and "guanaco-7b" not in datasets.alpaca_models()
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, notes  # one line naming both files, not one per call
    assert f"identity/responses/{USER_MODEL}.jsonl" in notes[0] and f"alpaca_eval/outputs/{USER_MODEL}.json" in notes[0]
    datasets.alpaca_models()
    assert "note:" not in capsys.readouterr().err
    assert sorted(datasets.unregistered()) == [f"alpaca_eval/outputs/{USER_MODEL}.json", f"identity/responses/{USER_MODEL}.jsonl"]


def test_unregistered_model_loads_without_checksum_with_the_folders_family(use_folder: Path):
    frame = datasets.identity_responses([USER_MODEL])
    assert frame.height == 200 and set(frame["family"]) == {"phi"}  # family from the folder's models_extended.csv
    assert frame["strict_label"].null_count() == 200  # no strict file for it: unknown, not "never strict"
    both = datasets.identity_responses([USER_MODEL, "phi-4"])
    assert both.filter(pl.col("model") == "phi-4")["strict_label"].sum() == 137  # registered model still verified
    alpaca = datasets.alpaca_outputs([USER_MODEL, "alpaca-7b"])
    assert alpaca.group_by("model").len()["len"].to_list() == [alpaca.height // 2] * 2


def test_absent_registered_file_errors_only_when_asked_for_by_name(use_folder: Path):
    with pytest.raises(DataError, match=r"unknown identity model: qwen2\.5-72b; .*registered but not in this folder.*data fetch"):
        datasets.identity_responses(["qwen2.5-72b"])
    with pytest.raises(DataError, match=r"^missing data file alpaca_eval/outputs/guanaco-7b\.json\.gz in .*distill-kit data fetch"):
        datasets.read_bytes("alpaca_eval/outputs/guanaco-7b.json.gz")
    assert "\n" not in str(pytest.raises(DataError, datasets.read_bytes, OMITTED[0]).value)
    # every loader lists and loads what is there
    assert datasets.identity_responses()["model"].n_unique() == 9  # 8 registered + the user's
    assert datasets.alpaca_outputs()["model"].n_unique() == 51  # 51 registered - guanaco-7b + the user's
    assert datasets.arena_answers(["gpt-4-0314"]).height == 500 and datasets.arena_questions().height == 500
    assert "attack" in datasets.seed_templates()


def test_curated_metadata_comes_from_the_folder(use_folder: Path, data_dir: Path):
    lin = datasets.lineage()
    assert lin.filter(pl.col("model") == USER_MODEL)["teacher"].to_list() == ["text_davinci_003"]
    assert "guanaco-7b" not in lin["model"].to_list()
    assert datasets.lineage_source() == str(use_folder / "alpaca_eval/lineage_extended.csv")
    assert datasets.lineage(extended=False).height == 34  # the folder's lineage.csv (symlinked)
    assert datasets.identity_family(USER_MODEL) == "phi" and datasets.identity_family("deepseek-r1") == "deepseek"
    assert datasets.identity_family("qwen2.5-32b-instruct") == "qwen" and datasets.identity_family("nobody") is None
    # a folder without lineage_extended.csv falls back to its lineage.csv
    (use_folder / "alpaca_eval/lineage_extended.csv").rename(use_folder / "alpaca_eval/lineage_extended.off")
    try:
        assert datasets.lineage().height == 34 and datasets.lineage_source().endswith("lineage.csv")
    finally:
        (use_folder / "alpaca_eval/lineage_extended.off").rename(use_folder / "alpaca_eval/lineage_extended.csv")


def test_folder_status_says_which_manifest_files_the_folder_lacks(use_folder: Path):
    status = datasets.folder_status(use_folder)
    counts = dict(status.group_by("status").len().rows())
    assert counts == {"present": 74, "absent": 41, "unverified": 2, "curated": 7}
    absent = set(status.filter(pl.col("status") == "absent")["path"])
    assert set(OMITTED) <= absent and "identity/responses/deepseek-r1.jsonl.gz" in absent
    # the user's own answers load in the one response schema like the published ones
    answers = datasets.load_responses("alpaca-eval", [USER_MODEL, "alpaca-7b"])
    assert answers.columns == list(datasets.RESPONSE_COLUMNS) and answers["model"].n_unique() == 2


@pytest.mark.slow  # subprocesses
def test_data_list_says_which_manifest_files_the_folder_lacks(open_folder: Path):
    out = cli(open_folder, "data", "list", "--missing")
    assert out.returncode == 0, out.stderr
    absent = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("absent")}
    assert set(OMITTED) <= absent and len(absent) == 39 + len(OMITTED)
    assert "74 present, 41 absent, 2 unverified, 7 curated (registry: 115 files)" in out.stdout
    full = cli(open_folder, "data", "list", "identity/responses/*")
    assert f"unverified    identity/responses/{USER_MODEL}.jsonl" in full.stdout
    assert "present       identity/responses/phi-4.jsonl.gz" in full.stdout
    bad = cli(open_folder, "data", "fetch", "no-such-file")
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "no registered file matches" in bad.stderr


def test_paper_file_quirks(data_dir: Path, tmp_path: Path, monkeypatch):
    assert datasets.strict_file_model("identity/strict_positives/GPT_gemini-2.0-flash_0.035.csv.gz") == "gemini-2.0-flash-exp"
    assert datasets.strict_file_model("identity/strict_positives/qwen2.5-14b-instruct_0.0.csv.gz") == "qwen2.5-14b-instruct"
    models = build_fourteen_model_folder(data_dir, tmp_path / "data", n=30)
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(tmp_path / "data"))
    datasets.clear_caches()
    assert datasets.identity_response_models() == sorted(models) and len(models) == 14
    frame = datasets.identity_responses()
    by = {m: g for (m,), g in frame.group_by(["model"])}
    # the gemini strict file is named after gemini-2.0-flash, the responses after gemini-2.0-flash-exp
    gem = by["gemini-2.0-flash-exp"]
    assert gem["strict_label"].null_count() == 0 and gem["strict_label"].sum() == (gem["loose_label"].sum() + 1) // 2
    # gemini-1.5-pro has a strict file and no responses: listed, used by no model
    assert "gemini-1.5-pro" in datasets.strict_positive_files() and "gemini-1.5-pro" not in by
    # qwen2.5-72b-instruct's strict file equals its loose positives: never re-judged, so no strict label
    assert by["qwen2.5-72b-instruct"]["strict_label"].null_count() == 30
    # the header-only qwen2.5-14b-instruct file is zero strict positives, a real 0
    assert by["qwen2.5-14b-instruct"]["strict_label"].null_count() == 0 and by["qwen2.5-14b-instruct"]["strict_label"].sum() == 0
    datasets.clear_caches()


@pytest.mark.slow
def test_bench_identity_reports_every_model_of_a_fourteen_model_folder(data_dir: Path, tmp_path: Path):
    models = build_fourteen_model_folder(data_dir, tmp_path / "data", n=40)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_identity.py")], env=_env(tmp_path / "data"),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {r["model"]: r for r in result["models"]}
    assert sorted(rows) == sorted(models) and len(rows) == 14
    assert rows["qwen2.5-72b-instruct"]["sis_labels"] is None  # never presented as a strict label
    assert rows["deepseek-r1"]["lis_paper"] == 0.44 and rows["qwen2.5-14b-instruct"]["sis_labels"] == 0.0


@pytest.mark.slow
def test_benchmarks_run_on_the_open_folder(open_folder: Path):
    sim = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_similarity.py"), "--prompts", "25", "--content-prompts", "0"],
                         env=_env(open_folder), capture_output=True, text=True, timeout=900)
    assert sim.returncode == 0, sim.stderr[-2000:]
    figures = json.loads(sim.stdout.strip().splitlines()[-1])
    assert figures["n_models"] == 51 and figures["data_dir"] == str(open_folder)
    lin = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_lineage.py"), "--prompts", "40", "--features", "word",
                          "--throughput-texts", "6"], env=_env(open_folder), capture_output=True, text=True, timeout=1500)
    assert lin.returncode == 0, lin.stderr[-2000:]
    per_target = json.loads(lin.stdout.strip().splitlines()[-1])["per_target"]
    assert per_target[USER_MODEL]["documented_teacher"] == "text_davinci_003"  # the folder's lineage


def test_a_users_identity_model_without_family_is_one_actionable_line(data_dir: Path, tmp_path: Path, monkeypatch):
    from tests.helpers.open_folder import jsonl_rows, write_jsonl

    write_jsonl(tmp_path / "identity/responses/nobody.jsonl", jsonl_rows(data_dir / "identity/responses/phi-4.jsonl.gz", 5))
    write_jsonl(tmp_path / "identity/responses/qwen3-8b.jsonl", jsonl_rows(data_dir / "identity/responses/phi-4.jsonl.gz", 5))
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(tmp_path))
    datasets.clear_caches()
    assert datasets.identity_responses(["qwen3-8b"])["family"].unique().to_list() == ["qwen"]  # by its name
    with pytest.raises(DataError, match=r"^identity model 'nobody' has no family: add a row 'nobody,<family>,' to identity/models_extended.csv"):
        datasets.identity_responses(["nobody"])
    assert datasets.alpaca_models() == [] and datasets.paper_scores().height == 15  # nothing else here: transcription
    with pytest.raises(DataError, match="no AlpacaEval outputs in"):
        datasets.alpaca_outputs()
    datasets.clear_caches()
