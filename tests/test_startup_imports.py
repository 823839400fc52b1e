"""What every process of a run imports stays cheap to import: nbformat (papermill, the runner, every kernel's
validation), jupyter-events (JupyterLab) and altair (every chart) all import jsonschema, whose releases from 4.24
compile rfc3987-syntax's Earley grammars at import (1.8 s a process; constraints.txt pins 4.23). QuaPy (which
imports torch) is the test suite's reference, not something a run imports."""

from __future__ import annotations

import importlib
import sys


def test_jsonschema_does_not_compile_iri_grammars_at_import() -> None:
    for name in ("jsonschema", "nbformat", "altair"):
        importlib.import_module(name)
    assert "rfc3987_syntax" not in sys.modules


def test_the_quantifiers_run_without_quapy(monkeypatch) -> None:
    """Every quantification method works where ``import quapy`` fails (and so never tries it)."""
    from distill_kit import stats

    for name in [n for n in sys.modules if n.split(".")[0] == "quapy"] + ["quapy"]:
        monkeypatch.setitem(sys.modules, name, None)
    for method in stats.QUANTIFICATION_METHODS:
        value = stats.quantify_prevalence(method, [0.2, 0.9, 0.7, 0.4], [False, True, True, False], [0.6, 0.1, 0.8])
        assert 0.0 <= value <= 1.0
