"""One reader of a notebook's parameters cell, and the requests a step sends planned once.

The runner (which names a notebook declares, their types) and the cost estimate (the defaults a step runs with)
read the cell through :func:`distill_kit.run.parameters.read_parameters`; the estimate plans a step with the
same package functions its notebook calls, on the notebook's own defaults.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from distill_kit.config import ConfigError
from distill_kit.paths import NOTEBOOKS_DIR
from distill_kit.run import estimate, plan
from distill_kit.run.parameters import ParametersCell, parse_parameters, read_parameters
from tests.helpers.notebook_files import write_notebook

NB02 = NOTEBOOKS_DIR / "02-collect-responses.ipynb"


def _with_parameters(source: Path, target: Path, edit: dict[str, str | None]) -> Path:
    """A copy of ``source`` whose parameters cell has each ``name``'s line replaced (None: removed)."""
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = []
    for line in cell.source.splitlines():
        name = line.split(":")[0].split("=")[0].strip()
        if name in edit:
            if edit[name] is not None:
                lines.append(edit[name])
        else:
            lines.append(line)
    cell.source = "\n".join(lines) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def test_one_reader_gives_names_literal_defaults_and_types() -> None:
    cell = parse_parameters("# a comment\na: int = 1  # one\nb = 'x'\nc: list[str] = ['p']\nd = some_call()\n"
                            "e: float = f()\nx = y = 2\nn: 'Custom' = None\n", "01-x.ipynb")
    assert cell.names == ("a", "b", "c", "d", "e", "x", "y", "n")
    assert cell.values == {"a": 1, "b": "x", "c": ["p"], "x": 2, "y": 2, "n": None}  # literals only
    assert cell.types == {"a": "int", "b": "str", "c": "list", "e": "float", "x": "int", "y": "int"}


def test_a_notebook_without_a_parameters_cell_declares_nothing(tmp_path: Path) -> None:
    path = tmp_path / "01-x.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1")]
    nbformat.write(nb, path)
    assert read_parameters(path) == ParametersCell()


def test_a_syntax_error_is_one_line_for_the_runner_and_the_estimate(tmp_path: Path) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "02-x.ipynb", "a = 1\nb = (\n", "pass")
    with pytest.raises(ConfigError, match=r"^02-x\.ipynb: parameters cell is not valid Python \(.*line 2\)$"):
        read_parameters(nb_dir / "02-x.ipynb")
    cfg = plan.RunConfig.model_validate({"name": "t", "steps": [{"notebook": "02"}]})
    for attempt in (lambda: plan.plan_run(cfg, tmp_path / "runs", nb_dir),
                    lambda: estimate.estimate_run(cfg, tmp_path / "runs", nb_dir, estimate.TokenCounter(False))):
        with pytest.raises(ConfigError, match=r"^02-x\.ipynb: parameters cell is not valid Python"):
            attempt()


def test_an_unreadable_notebook_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "02-x.ipynb"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^02-x\.ipynb: cannot read the notebook"):
        read_parameters(bad)


def test_the_estimate_plans_with_the_notebooks_own_defaults(tmp_path: Path, data_dir: Path) -> None:
    """No copy of a default in the estimate: the cell's value is used, and a parameter the cell lacks is named."""
    nb_dir = tmp_path / "nb"
    _with_parameters(NB02, nb_dir / NB02.name, {"probe_sample_size": "probe_sample_size: int = 1",
                                                 "seed_templates": "seed_templates: int = 0"})
    cfg = plan.RunConfig.model_validate({"name": "t", "steps": [
        {"notebook": "02", "parameters": {"live_models": ["smollm2-local"], "prompt_sets": []}}]})
    est = estimate.estimate_run(cfg, tmp_path / "runs", nb_dir, estimate.TokenCounter(False))
    [probes] = [ln for ln in est.lines if ln.purpose == "identity probes"]
    assert probes.requests == 2  # one probe per language (en, zh), asked bare only
    _with_parameters(NB02, nb_dir / NB02.name, {"fuzz_queries": None})
    with pytest.raises(ConfigError, match="^cannot estimate step 02-collect-responses: its parameters cell "
                                          "declares no 'fuzz_queries'$"):
        estimate.estimate_run(cfg, tmp_path / "runs", nb_dir, estimate.TokenCounter(False))


def test_notebook_02_builds_exactly_the_requests_the_estimate_prices(tmp_path: Path, data_dir: Path) -> None:
    """The notebook's own parameters and request-building cells, run in-process (no kernel), against the
    estimate's plan of the same step: the same store keys, so the estimate prices what the notebook sends."""
    nb = nbformat.read(NB02, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    scope: dict = {}
    exec(code[0], scope)  # the parameters cell: its defaults
    prompts = tmp_path / "prompts.jsonl"  # a prompt file of one's own: the same sampling, no large data set read
    prompts.write_text("".join(f'{{"prompt": "question {i}?"}}\n' for i in range(9)), encoding="utf-8")
    scope.update(store_path=str(tmp_path / "store.sqlite"), live_models=["smollm2-local"], prompt_sets=[str(prompts)],
                 sample_size=4)
    exec(code[1], scope)  # what the notebook builds before it sends anything
    scope["store"].close()
    sent = {r.key(m) for m in scope["models"] for r in scope["identity_requests"]}
    from distill_kit.rse.responses import answer_requests

    sent_rse = {r.key(m) for m in scope["models"] for r in answer_requests(scope["rse_set"])}
    params = {k: scope[k] for k in read_parameters(NB02).names}
    items = estimate.PLANNERS["02"]("02-collect-responses", params)
    priced = {p: {r.key(i.model) for i in items if i.purpose == p for r in i.requests}
              for p in ("identity probes", "RSE answers")}
    assert sent and sent == priced["identity probes"]
    assert len(sent_rse) == 4 and sent_rse == priced["RSE answers"]
