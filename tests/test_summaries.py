"""distill_kit.summaries: what record_summary writes and checks, and the typed summaries read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distill_kit import summaries as S
from distill_kit.summaries import record_summary, to_jsonable


def test_record_summary_writes_json_safe_values(tmp_path: Path):
    payload = {
        "lis": np.float32(0.25),
        "n": np.int64(7),
        "arr": np.array([1.0, np.nan]),
        "frame": pl.DataFrame({"model": ["a"], "score": [1.5]}),
        "series": pl.Series("x", [1, 2]),
        "inf": float("inf"),
    }
    record_summary(str(tmp_path), "03-mine", payload)  # a name no model describes: stored as given
    data = json.loads((tmp_path / "summary" / "03-mine.json").read_text())
    assert data == {"lis": 0.25, "n": 7, "arr": [1.0, None], "frame": [{"model": "a", "score": 1.5}], "series": [1, 2],
                    "inf": None}
    assert not list((tmp_path / "summary").glob("*.tmp"))


def test_record_summary_noop_without_run_dir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record_summary("", "03-mine", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_record_summary_rejects_bad_step(tmp_path: Path):
    with pytest.raises(ValueError, match="plain name"):
        record_summary(str(tmp_path), "../evil", {"a": 1})


def test_to_jsonable_numpy_bool_and_nested():
    assert to_jsonable({"b": np.bool_(True), "t": (np.int32(1), {"x": np.float16(2)})}) == {"b": True, "t": [1, {"x": 2.0}]}


def test_a_step_summary_is_checked_against_its_model_with_one_line(tmp_path: Path):
    with pytest.raises(S.SummaryError) as err:
        record_summary(str(tmp_path), "06-report", {"report": "report.html", "section": ["ice"]})  # typo
    assert "\n" not in str(err.value) and "section" in str(err.value) and "06-report" in str(err.value)
    with pytest.raises(S.SummaryError, match="lis"):
        record_summary("", "identity_scores", {"judge": "offline", "source": "replay", "replay": [{"model": "m", "lis": "high"}]})
    assert not (tmp_path / "summary").exists()


def test_the_file_is_what_the_notebook_handed_over_and_reads_back_typed(tmp_path: Path):
    payload = {"judge": "offline", "source": "replay", "n_flagged": 3,
               "replay": [{"model": "m", "n": 40, "lis": 0.1, "lis_lo": 0.0, "lis_hi": 0.2, "loose_kappa": 0.5}]}
    record_summary(str(tmp_path), S.IdentitySummary.step, payload)
    assert json.loads((tmp_path / "summary" / "identity_scores.json").read_text()) == payload  # no field added
    (ice,) = S.load_summaries(tmp_path).values()
    assert isinstance(ice, S.IdentitySummary) and ice.replay[0].lis == 0.1 and ice.replay[0].extra() == {"loose_kappa": 0.5}
    assert ice.live == [] and ice.paired_lis == []


def test_finished_summaries_follow_the_run_state(tmp_path: Path):
    record_summary(str(tmp_path), "probes", S.ProbesSummary(n_probes=2, n_templates=1))
    record_summary(str(tmp_path), "06-report", {"report": "report.html"})
    (tmp_path / "state.json").write_text(json.dumps({"steps": {
        "01-probe-identity": {"status": "ok", "summaries": ["probes"]},
        "06-report": {"status": "running"}}}))
    assert list(S.finished_summaries(tmp_path)) == ["probes"] and list(S.finished_payloads(tmp_path)) == ["probes"]
    assert S.step_summaries(tmp_path) == {"01-probe-identity": ["probes"]}
    run = S.run_summaries(tmp_path)
    assert run.identity is None and run.written_by == {"01-probe-identity": ["probes"]}
    assert S.run_summaries(None).all == {}
