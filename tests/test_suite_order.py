"""The suite's own scheduling (tests/helpers/schedule.py): longest files first, each file's tests in order, and
the per-test timeline it is measured from (tests/helpers/timeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import schedule, timeline

NODES = ["a.py::t1", "a.py::t2", "b.py::t1", "c.py::t1", "c.py::t2", "c.py::t3"]


def test_files_go_longest_first_and_keep_their_tests_in_order() -> None:
    durations = {"a.py::t1": 1.0, "a.py::t2": 2.0, "b.py::t1": 10.0, "c.py::t1": 0.5, "c.py::t2": 0.5, "c.py::t3": 9.5}
    order = [NODES[i] for i in schedule.longest_files_first(NODES, durations)]
    assert order == ["c.py::t1", "c.py::t2", "c.py::t3", "b.py::t1", "a.py::t1", "a.py::t2"]


def test_a_file_weighs_only_its_selected_tests_and_unknown_tests_count_as_the_mean() -> None:
    durations = {"a.py::t1": 1.0, "a.py::t2": 2.0, "b.py::t1": 10.0, "c.py::t3": 9.0}  # mean 5.5
    selected = ["a.py::t1", "a.py::t2", "b.py::t1", "c.py::t1", "d.py::new"]
    order = [selected[i] for i in schedule.longest_files_first(selected, durations)]
    assert order == ["b.py::t1", "c.py::t1", "d.py::new", "a.py::t1", "a.py::t2"]  # c and d tie at 5.5: collected order


def test_without_durations_the_collection_order_stays(tmp_path: Path) -> None:
    assert schedule.load_durations(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("[1, 2")
    assert schedule.load_durations(tmp_path / "bad.json") == {}
    assert schedule.longest_files_first(NODES, {}) == list(range(len(NODES)))


def test_the_committed_durations_name_tests_of_this_suite() -> None:
    durations = schedule.load_durations()
    assert durations, f"{schedule.DURATIONS} is missing: the suite would run in collection order"
    assert all("::" in k and k.startswith("tests/") and v >= 0 for k, v in durations.items())
    assert any(k.startswith("tests/run/test_lab.py::") for k in durations)


def test_timeline_lines_become_file_spans_and_per_test_durations(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(timeline.ENV, str(target))
    for worker, nodeid, start, end in (("gw0", "a.py::t1", 100.0, 101.5), ("gw0", "a.py::t2", 101.5, 104.0),
                                       ("gw1", "b.py::t1", 100.0, 102.0)):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        timeline.record(nodeid, start, end)
    lines = timeline.read(target)
    spans = timeline.file_spans(lines)
    assert [(s.path, s.worker, s.seconds, s.tests) for s in spans] == [("a.py", "gw0", 4.0, 2), ("b.py", "gw1", 2.0, 1)]
    assert timeline.durations(lines) == {"a.py::t1": 1.5, "a.py::t2": 2.5, "b.py::t1": 2.0}
    text = timeline.report(spans, top=5)
    assert "gw1: 1 files, 2.0 s in tests" in text and "idle 2.0 s at the end" in text
    assert json.loads(target.read_text().splitlines()[0])["worker"] == "gw0"


def test_no_timeline_is_written_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(timeline.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    timeline.record("a.py::t1", 0.0, 1.0)
    assert list(tmp_path.iterdir()) == []


def test_parametrised_tests_are_timed_without_their_parameter_ids() -> None:
    # parameter ids carry test data (fake API keys, paths): the committed durations file must not repeat them
    lines = [{"worker": "gw0", "nodeid": "a.py::t[sk-secret-one]", "start": 0.0, "end": 1.0},
             {"worker": "gw0", "nodeid": "a.py::t[two]", "start": 1.0, "end": 4.0},
             {"worker": "gw1", "nodeid": "b.py::u", "start": 0.0, "end": 2.5}]
    assert timeline.durations(lines) == {"a.py::t": 2.0, "b.py::u": 2.5}
    nodes = ["b.py::u", "a.py::t[sk-secret-one]", "a.py::t[two]"]
    assert [nodes[i] for i in schedule.longest_files_first(nodes, timeline.durations(lines))] == [
        "a.py::t[sk-secret-one]", "a.py::t[two]", "b.py::u"]
    assert not any("[" in k for k in schedule.load_durations())
