"""Tiny notebooks for pipeline tests: one tagged ``parameters`` cell and one body cell."""

from __future__ import annotations

from pathlib import Path

import nbformat


def write_notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    pcell = nbformat.v4.new_code_cell(params)
    pcell.metadata["tags"] = ["parameters"]
    nb.cells = [pcell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
