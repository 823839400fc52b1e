"""distill_kit.summaries: the step contracts -- what record_summary writes and checks, and what reads back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import nbformat
import numpy as np
import polars as pl
import pytest

from distill_kit import summaries as S
from distill_kit.paths import NOTEBOOKS_DIR, PROJECT_ROOT
from distill_kit.summaries import record_summary, to_jsonable

ICE = {"judge": "offline", "source": "replay"}


def test_record_summary_writes_json_safe_values(tmp_path: Path):
    summary = S.IdentitySummary.build({
        **ICE, "n_flagged": np.int64(7), "live_errors": None,
        "replay": pl.DataFrame({"model": ["a"], "lis": [np.float32(0.25)], "n": [3], "spread": [float("inf")]}),
        "replay_by_language": [{"model": "a", "share": np.array([1.0, np.nan])}]})
    record_summary(str(tmp_path), summary)
    data = json.loads((tmp_path / "summary" / "03-identity-scores.json").read_text())
    assert data == {"version": 2, **ICE, "n_flagged": 7, "live_errors": None,
                    "replay": [{"model": "a", "lis": 0.25, "n": 3, "spread": None}],
                    "replay_by_language": [{"model": "a", "share": [1.0, None]}]}
    assert not list((tmp_path / "summary").glob("*.tmp"))


def test_record_summary_noop_without_run_dir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record_summary("", S.ProbesSummary(n_probes=1, n_templates=1))
    record_summary("", "01-probe-identity", {"n_probes": 1, "n_templates": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_step_name_must_be_a_plain_file_name():
    with pytest.raises(ValueError, match="plain file name"):
        class Evil(S.StepSummary):
            step: ClassVar[str] = "../evil"


def test_to_jsonable_numpy_bool_and_nested():
    assert to_jsonable({"b": np.bool_(True), "t": (np.int32(1), {"x": np.float16(2)})}) == {"b": True, "t": [1, {"x": 2.0}]}


def test_a_step_summary_is_checked_against_its_contract_with_one_line(tmp_path: Path):
    with pytest.raises(S.SummaryError) as err:
        record_summary(str(tmp_path), "06-report", {"report": "report.html", "section": ["ice"]})  # typo
    assert "\n" not in str(err.value) and "section" in str(err.value) and "06-report" in str(err.value)
    with pytest.raises(S.SummaryError, match="lis"):
        S.IdentitySummary.build({**ICE, "replay": [{"model": "m", "lis": "high"}]})
    assert not (tmp_path / "summary").exists()


def test_an_unknown_step_name_is_one_line_and_writes_nothing(tmp_path: Path):
    with pytest.raises(S.SummaryError) as err:
        record_summary(str(tmp_path), "03-identity-score", {**ICE})  # misspelt: no silent free-form summary
    line = str(err.value)
    assert "\n" not in line and "no step contract" in line and "did you mean '03-identity-scores'" in line
    with pytest.raises(S.SummaryError, match="is called '03-identity-scores' now"):
        record_summary(str(tmp_path), "identity_scores", {**ICE})  # the name before the contracts took the stems
    with pytest.raises(S.SummaryError, match="part of '06-report' now"):
        record_summary(str(tmp_path), "06-ice-x-rse", {"ice_x_rse": []})
    with pytest.raises(S.SummaryError, match="no step contract"):
        S.parse_summary("03-mine", {"scores": []})
    assert not (tmp_path / "summary").exists()


def test_the_file_is_the_typed_summary_with_a_version_and_reads_back_typed(tmp_path: Path):
    payload = {**ICE, "n_flagged": 3,
               "replay": [{"model": "m", "n": 40, "lis": 0.1, "lis_lo": 0.0, "lis_hi": 0.2, "loose_kappa": 0.5}]}
    record_summary(str(tmp_path), S.IdentitySummary.build(payload))
    assert json.loads((tmp_path / "summary" / "03-identity-scores.json").read_text()) == {"version": 2, **payload}
    (ice,) = S.load_summaries(tmp_path).values()
    assert isinstance(ice, S.IdentitySummary) and ice.replay[0].lis == 0.1 and ice.replay[0].extra() == {"loose_kappa": 0.5}
    assert ice.live == [] and ice.paired_lis == [] and ice.version == S.IdentitySummary.schema_version


def test_a_newer_version_is_one_line_and_an_older_one_is_migrated(tmp_path: Path):
    with pytest.raises(S.SummaryError) as err:
        S.read_summary("03-identity-scores", {"version": 3, **ICE})
    assert "\n" not in str(err.value) and "newer distill-kit" in str(err.value) and "up to version 2" in str(err.value)
    # version 1 (no version field): notebook 03 carried the combined figure, notebook 06 called its section keys
    # missing_steps
    old = S.read_summary("03-identity-scores", {**ICE, "ice_x_rse": [{"model": "m", "lis": 0.1}]})
    assert old.version == 2 and "ice_x_rse" not in old.model_dump()
    rep = S.read_summary("06-report", {"report": "report.html", "missing_steps": ["fuzz"]})
    assert (rep.missing_sections, rep.missing_steps) == (["fuzz"], [])


def test_a_run_folder_written_under_the_old_names_reads_under_the_stems(tmp_path: Path):
    folder = tmp_path / "summary"
    folder.mkdir()
    (folder / "identity_scores.json").write_text(json.dumps({**ICE, "ice_x_rse": [{"model": "m"}],
                                                             "replay": [{"model": "m", "lis": 0.2}]}))
    (folder / "probes.json").write_text(json.dumps({"n_probes": 2, "n_templates": 1}))
    (folder / "06-ice-x-rse.json").write_text(json.dumps({"ice_x_rse": [{"model": "m"}]}))
    (tmp_path / "state.json").write_text(json.dumps({"steps": {
        "01-probe-identity": {"status": "ok", "summaries": ["probes"]},
        "03-identity-scores": {"status": "ok", "summaries": ["identity_scores"]},
        "06-report": {"status": "ok", "summaries": ["06-ice-x-rse"]}}}))
    run = S.run_summaries(tmp_path)
    assert list(run.all) == ["01-probe-identity", "03-identity-scores"] and run.identity.replay[0].lis == 0.2
    assert run.written_by == {"01-probe-identity": ["01-probe-identity"], "03-identity-scores": ["03-identity-scores"],
                              "06-report": []}
    (folder / "03-identity-scores.json").write_text(json.dumps({"version": 2, **ICE}))  # a rerun wrote the new name
    assert S.load_summaries(tmp_path)["03-identity-scores"].replay == []


def test_finished_summaries_follow_the_run_state(tmp_path: Path):
    record_summary(str(tmp_path), S.ProbesSummary(n_probes=2, n_templates=1))
    record_summary(str(tmp_path), "06-report", {"report": "report.html"})
    (tmp_path / "state.json").write_text(json.dumps({"steps": {
        "01-probe-identity": {"status": "ok", "summaries": ["01-probe-identity"]},
        "06-report": {"status": "running"}}}))
    assert list(S.finished_summaries(tmp_path)) == ["01-probe-identity"]
    assert list(S.finished_payloads(tmp_path)) == ["01-probe-identity"]
    assert S.step_summaries(tmp_path) == {"01-probe-identity": ["01-probe-identity"]}
    run = S.run_summaries(tmp_path)
    assert run.identity is None and run.written_by == {"01-probe-identity": ["01-probe-identity"]}
    assert run.missing("06-report") == ["02-collect-responses", "03-identity-scores", "04-response-similarity",
                                        "05-embed-and-cluster"]
    assert S.run_summaries(None).all == {}


def test_a_new_step_declares_its_contract_by_subclassing(tmp_path: Path):
    class Tally(S.StepSummary):
        step: ClassVar[str] = "90-tally"
        upstream: ClassVar[tuple[str, ...]] = ("03-identity-scores",)
        n: int

    record_summary(str(tmp_path), Tally(n=3))
    assert S.summary_model("90-tally") is Tally and S.load_summaries(tmp_path)["90-tally"] == Tally(n=3)
    assert S.missing_upstream("90-tally", ["01-probe-identity"]) == ["03-identity-scores"]
    with pytest.raises(S.SummaryError, match="declared twice"):
        type("OtherTally", (S.StepSummary,), {"__annotations__": {"step": ClassVar[str]}, "step": "90-tally"})


def test_every_upstream_step_is_declared_and_every_contract_is_a_notebook():
    stems = {p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb")}
    for name, model in S.contracts().items():
        if model.__module__ == S.__name__:
            assert name in stems and set(model.upstream) <= set(S.contracts()), name


def test_each_notebook_records_its_own_contract_built_directly():
    """A notebook hands over ``<Its>Summary.build(...)`` whose step is the notebook's stem (one name per step)."""
    by_class = {m.__name__: name for name, m in S.contracts().items()}
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        calls = re.findall(r"record_summary\([^,]+,\s*(\w+)\.build\(", code)
        assert code.count("record_summary(") == len(calls), path.name
        assert [by_class[c] for c in calls] in ([], [path.stem]), path.name


def test_the_contracts_page_lists_every_contract_with_its_version_and_upstream():
    page = (PROJECT_ROOT / S.CONTRACTS_DOC).read_text(encoding="utf-8")
    for name, model in S.contracts().items():
        if model.__module__ != S.__name__:
            continue
        row = next((line for line in page.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, name
        cells = [c.strip() for c in row.strip("|").split("|")]
        upstream = ", ".join(f"`{u}`" for u in model.upstream) or "none"
        assert cells[1:4] == [f"`{model.__name__}`", str(model.schema_version), upstream], row
