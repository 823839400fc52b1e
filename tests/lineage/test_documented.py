"""Documented lineage: labels from the lineage table, the report's lookups, a data folder of one's own."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from distill_kit import datasets
from distill_kit.lineage import documented

TABLE = pl.DataFrame({
    "model": ["s1", "s2", "v1", "c1", "r1", "r2", "r3"],
    "role": ["student", "student", "variant", "control", "reference", "reference", "reference"],
    "line": ["", "", "", "", "R", "R", "Q"],
    "teacher": ["r1", "r3", "r2", "", "", "", ""],
})


def test_labels_roles_teachers_lines_and_sets() -> None:
    labels = documented.lineage_labels(rows=TABLE)
    assert labels.targets == ["s1", "s2", "v1", "c1"] and labels.references == ["r1", "r2", "r3"]
    assert labels.truth == {"s1": "r1", "s2": "r3", "v1": "r2"}
    assert labels.teacher_lines == {"s1": "R", "s2": "Q", "v1": "R"}
    assert labels.model_sets() == {"references": ["r1", "r2", "r3"], "students + variants": ["s1", "s2", "v1"],
                                   "students + controls": ["s1", "s2", "c1"]}
    only = documented.lineage_labels(["s1", "r1", "r3"], rows=TABLE)
    assert only.truth == {"s1": "r1"} and only.references == ["r1", "r3"] and only.controls == []


def test_by_family_tests_makers_instead_of_lines() -> None:
    rows = TABLE.with_columns(pl.Series("family", ["x", "x", "x", "x", "maker-a", "maker-a", ""]))
    fam = documented.lineage_labels(rows=rows).by_family()
    assert {r: fam.lines[r] for r in fam.references} == {"r1": "maker-a", "r2": "maker-a", "r3": "Q"}
    assert fam.teacher_lines == {"s1": "maker-a", "s2": "Q", "v1": "maker-a"}
    assert fam.truth == {"s1": "r1", "s2": "r3", "v1": "r2"} and fam.families["r1"] == "maker-a"


def test_labels_only_for_the_documented_source(data_dir: Path) -> None:
    assert documented.source_labels("store", ["alpaca-7b"]) is None
    assert documented.source_labels("alpaca_eval", ["alpaca-7b"]) is not None  # the old spelling still reads
    labels = documented.source_labels("alpaca-eval", ["alpaca-7b", "text_davinci_003"])
    assert labels is not None and labels.truth == {"alpaca-7b": "text_davinci_003"}


def test_documented_teachers_and_reference_lines(data_dir: Path) -> None:
    labels = documented.lineage_labels()
    teachers = documented.documented_teachers()
    assert {c: teachers[c] for c in labels.controls} == {c: "none" for c in labels.controls} and labels.controls
    assert all(teachers[s] == t for s, t in labels.truth.items())
    assert documented.reference_lines() == labels.lines and labels.lines


def test_documented_lookups_are_empty_without_lineage_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data() -> documented.LineageLabels:
        raise datasets.DataError("no lineage file")

    monkeypatch.setattr(documented, "lineage_labels", no_data)
    assert documented.documented_teachers() == {} and documented.reference_lines() == {}


def test_label_columns_fill_unknown_rows_with_empty() -> None:
    table = pl.DataFrame({"student": ["s1", "x"], "top1": ["r1", "r2"]})
    out = documented.label_columns(table, "student", role={"s1": "student"}, documented_teacher={"s1": "r1"})
    assert out.columns == ["student", "top1", "role", "documented_teacher"]
    assert out["role"].to_list() == ["student", ""] and out["documented_teacher"].to_list() == ["r1", ""]


def _fake_model_file(folder: Path, name: str) -> None:
    raw = json.dumps([{"instruction": f"q{i}", "output": f"answer {i} from {name}", "generator": name}
                      for i in range(5)]).encode()
    (folder / "alpaca_eval" / "outputs").mkdir(parents=True, exist_ok=True)
    (folder / "alpaca_eval" / "outputs" / f"{name}.json.gz").write_bytes(gzip.compress(raw))


def test_data_folder_with_unregistered_models_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           data_dir: Path) -> None:
    """A folder holding a model the registry does not list: listed and loaded as the user's own data (one
    notice, no checksum); a registered file that was edited fails its checksum; without
    lineage_extended.csv the labels fall back to lineage.csv."""
    _fake_model_file(tmp_path, "new-model")
    shutil.copy(data_dir / "alpaca_eval" / "lineage.csv", tmp_path / "alpaca_eval" / "lineage.csv")
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(tmp_path))
    datasets.clear_caches()
    assert datasets.alpaca_models() == ["new-model"]
    frame = datasets.load_responses("alpaca-eval", ["new-model"])
    assert {"model", "prompt", "text"} <= set(frame.columns) and frame.height == 5
    rows, source = documented.lineage_rows()
    assert source == "lineage.csv" and rows.height == datasets.lineage().height
    # a registered model's file that is not the published one fails its checksum with one clear line
    _fake_model_file(tmp_path, "zephyr-7b-beta")
    datasets.clear_caches()
    with pytest.raises(datasets.DataError, match="sha256"):
        datasets.load_responses("alpaca-eval", ["zephyr-7b-beta"])
    with pytest.raises(datasets.DataError, match="unknown AlpacaEval model: absent-model"):
        datasets.load_responses("alpaca-eval", ["absent-model"])
    (tmp_path / "alpaca_eval" / "outputs" / "zephyr-7b-beta.json.gz").unlink()
    datasets.clear_caches()
    # with the extended file present it is preferred
    (tmp_path / "alpaca_eval" / "lineage_extended.csv").write_text(
        "model,role,family,line,teacher,training_data_note\nnew-model,student,x,,ref,\nref,reference,x,R,,\n")
    rows, source = documented.lineage_rows()
    assert source == "lineage_extended.csv" and rows["model"].to_list() == ["new-model", "ref"]
    labels = documented.lineage_labels(rows=rows)
    assert labels.truth == {"new-model": "ref"} and labels.lines == {"ref": "R"}
    datasets.clear_caches()
