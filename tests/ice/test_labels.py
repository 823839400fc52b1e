"""Label storage for hand-labelled answers: append-only, latest label wins, history kept, polars frame out."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from distill_kit.ice import labels as L


def test_answer_key_is_stable_and_separates_fields() -> None:
    k = L.answer_key("m", "who made you?", "OpenAI")
    assert k == L.answer_key("m", "who made you?", "OpenAI") and len(k) == 16
    assert k != L.answer_key("m", "who made you?", "OpenAI.")
    assert L.answer_key("ab", "c", "d") != L.answer_key("a", "bc", "d")  # no ambiguity across fields
    assert L.answer_key("m", None, None) == L.answer_key("m", "", "")


def test_labels_path_beside_run_or_store(tmp_path: Path) -> None:
    assert L.labels_path(tmp_path / "run", tmp_path / "s" / "store.sqlite") == tmp_path / "run" / "labels.sqlite"
    assert L.labels_path("", tmp_path / "s" / "store.sqlite") == tmp_path / "s" / "labels.sqlite"


def test_clicks_append_and_latest_supersedes(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    with L.LabelStore(path, labeller="ann") as store:
        assert store.current("m", "k1") is None
        first = store.label("m", "k1", loose=True)
        assert first["loose_label"] is True and first["strict_label"] is None
        second = store.label("m", "k1", strict=True)  # the loose label is kept
        assert (second["loose_label"], second["strict_label"]) == (True, True)
        store.label("m", "k1", loose=False, labeller="bob")  # a later label supersedes
        store.label("m2", "k1", loose=False)  # same key, other model: another answer
        cur = store.frame()
        hist = store.frame(history=True)
    assert cur.columns == ["model", "key", "loose_label", "strict_label", "labeller", "time"]
    assert cur.schema["loose_label"] == pl.Boolean and cur.schema["time"] == pl.Datetime("us", "UTC")
    row = cur.filter(pl.col("model") == "m").row(0, named=True)
    assert (row["loose_label"], row["strict_label"], row["labeller"]) == (False, True, "bob")
    assert cur.height == 2 and hist.height == 4  # history: every click, in order
    assert hist["labeller"].to_list() == ["ann", "ann", "bob", "ann"]
    assert hist["time"].is_sorted()
    # nothing is overwritten: the rows on disk are the four inserts
    with sqlite3.connect(path) as c:
        assert c.execute("select count(*) from labels").fetchone() == (4,)
    # a reader in another process / later session sees the same
    assert L.read_labels(path).equals(cur)
    assert L.read_labels(path, history=True).height == 4


def test_clearing_a_label_and_bad_calls(tmp_path: Path) -> None:
    with L.LabelStore(tmp_path / "l.sqlite", labeller="ann") as store:
        store.label("m", "k", loose=True, strict=False)
        assert store.label("m", "k", strict=None)["strict_label"] is None
        with pytest.raises(ValueError, match="loose=, strict="):
            store.label("m", "k")
        with pytest.raises(ValueError, match="model and key"):
            store.label("", "k", loose=True)


def test_read_labels_missing_file_is_empty_with_columns(tmp_path: Path) -> None:
    out = L.read_labels(tmp_path / "none.sqlite")
    assert out.is_empty() and out.columns == list(L.COLUMNS)
    with L.LabelStore(tmp_path / "run" / "labels.sqlite") as store:  # browsing without labelling writes nothing
        assert store.current("m", "k") is None and store.frame().is_empty()
    assert not (tmp_path / "none.sqlite").exists() and not (tmp_path / "run").exists()


def test_labeller_from_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISTILL_KIT_LABELLER", "carol")
    with L.LabelStore(tmp_path / "l.sqlite") as store:
        assert store.label("m", "k", loose=True)["labeller"] == "carol"


def test_labels_from_another_thread(tmp_path: Path) -> None:
    """Widget callbacks run on the kernel's comm thread, not the thread that opened the store."""
    import threading

    store = L.LabelStore(tmp_path / "l.sqlite", labeller="ann")
    errors: list[BaseException] = []

    def click() -> None:
        try:
            store.label("m", "k", loose=True)
            store.current("m", "k")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=click)
    t.start()
    t.join()
    assert not errors, errors
    assert store.frame()["loose_label"].to_list() == [True]
