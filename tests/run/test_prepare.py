"""`distill-kit prepare` (run by `make setup`): builds the offline models once, says what it does, one error line."""

from __future__ import annotations

from distill_kit.datasets import DataError
from distill_kit.run import cli, prepare


def test_prepare_builds_every_model_in_order_and_times_it(monkeypatch) -> None:
    built: list[str] = []
    monkeypatch.setattr(prepare, "STEPS", (("judge", lambda: built.append("judge")),
                                           ("embedder", lambda: built.append("embedder"))))
    lines: list[str] = []
    done = prepare.prepare(lines.append)
    assert built == ["judge", "embedder"] and [d.name for d in done] == ["judge", "embedder"]
    assert all(d.seconds >= 0 for d in done)
    assert lines[0] == "preparing judge ..." and lines[1].startswith("  ready (") and len(lines) == 4


def test_the_steps_are_what_the_notebooks_reuse() -> None:
    names = [name for name, _ in prepare.STEPS]
    assert any("identity judge" in n for n in names) and any("calibration pool" in n for n in names)
    assert any("ONNX" in n for n in names)


def test_missing_data_is_one_error_line(monkeypatch, capsys) -> None:
    def no_data() -> None:
        raise DataError("could not fetch 1 file(s): identity/responses.parquet")

    monkeypatch.setattr(prepare, "STEPS", (("judge", no_data),))
    assert cli.main(["prepare"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: could not fetch 1 file(s): identity/responses.parquet"]


def test_prepare_says_how_long_it_took(monkeypatch, capsys) -> None:
    monkeypatch.setattr(prepare, "STEPS", (("judge", lambda: None),))
    assert cli.main(["prepare"]) == 0
    out = capsys.readouterr().out
    assert "preparing judge ..." in out and "prepared 1 offline models in" in out
