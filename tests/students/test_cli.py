"""`distill-kit student`: bad input is one line; the package's student modules import no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distill_kit.run.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--teacher", "gpt4", "--dose", "4"], "<source>/<model>"),
    (["--teacher", "alpaca-eval/gpt4_0613", "--dose", "4", "--epochs", "0"], "bad recipe option"),
    (["--teacher", "alpaca-eval/gpt4_0613", "--dose", "4", "--base", "/no/such/model"], "base model not found"),
])
def test_bad_input_is_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["student", "make", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_list_without_students(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DISTILL_KIT_CACHE_DIR", str(tmp_path))
    assert main(["student", "list"]) == 0
    assert "no students in" in capsys.readouterr().out


@pytest.mark.slow
def test_student_modules_import_no_torch() -> None:
    code = ("import sys; import distill_kit.students.catalog, distill_kit.students.probe, "
            "distill_kit.providers.transformers; from distill_kit.config import ModelConfig; "
            "ModelConfig(name='s', provider='transformers').cache_identity(); "
            "print(','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
