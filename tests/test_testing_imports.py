"""``distill_kit.testing`` on a plain install: starlette and uvicorn (the ``zoo`` extra) are imported only when a
zoo is built, so the module, its loopback server and ``python -m distill_kit.testing --help`` work without them."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.fixture
def without_zoo_packages(monkeypatch):
    """``import starlette``/``import uvicorn`` (and their submodules) fail, as on an install without the extra;
    ``distill_kit.testing`` is imported afresh (the real module is put back afterwards)."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("starlette", "uvicorn")] + ["starlette", "uvicorn"]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in [n for n in sys.modules if n == "distill_kit.testing" or n.startswith("distill_kit.testing.")]:
        monkeypatch.delitem(sys.modules, name)  # the package and its submodules (zoo, cli ...), however it was imported before
    return importlib.import_module("distill_kit.testing")


def test_the_module_and_its_help_need_neither_starlette_nor_uvicorn(without_zoo_packages, capsys):
    testing = without_zoo_packages
    assert testing.answer_for("hi") == "echo: hi" and testing.LoopbackServer  # the loopback server's module loads
    with pytest.raises(SystemExit) as done:
        testing.main(["--help"])
    assert done.value.code == 0 and "--loopback" in capsys.readouterr().out


def test_serving_the_zoo_without_them_is_one_line_naming_the_extra(without_zoo_packages):
    with pytest.raises(SystemExit) as done:
        without_zoo_packages.main(["--port", "0"])
    assert str(done.value) == "error: the API zoo needs starlette and uvicorn: pip install 'distill-kit[zoo]'"
    with pytest.raises(ImportError, match=r"distill-kit\[zoo\]"):
        without_zoo_packages.Zoo()
