"""Put the demo run's executed notebooks and report into ``docs/demo/`` for the docs site (``make docs``).

Why a copy: mkdocs renders what is under ``docs/``; a run keeps its executed notebooks in
``runs/<run-id>/notebooks/``. Each notebook is copied without widget state (``nbexport.static_widgets``, the
pipeline's own rule for its offline HTML copies), so no page loads a widget manager from a CDN. Without a demo run
the page says so in one line and the site builds without the notebooks.

    python scripts/docs_demo.py [--run runs/<run-id>] [--out docs/demo]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill_kit.paths import REPORT_FILE, RUNS_DIR  # noqa: E402
from distill_kit.nbexport import static_widgets  # noqa: E402
from distill_kit.run.plan import load_run_config  # noqa: E402

HEAD = "# The demo run\n\n"
MISSING = ("No demo run was found when this site was built (`{run}`): run `make demo`, then `make docs`, and its "
           "executed notebooks and report appear here.\n")


def demo_run_dir() -> Path:
    """Where ``distill-kit run demo`` keeps its run (the id is a hash of the config, so it is stable)."""
    return RUNS_DIR / load_run_config(ROOT / "configs" / "runs" / "demo.yaml").run_id()


def publish(run_dir: Path, out: Path) -> list[str]:
    """Fill ``out`` from ``run_dir``; returns the notebook files copied (none when the run has none)."""
    import nbformat

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    notebooks = sorted((run_dir / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    for src in notebooks:
        nbformat.write(static_widgets(nbformat.read(src, as_version=4)), out / src.name)
    report = run_dir / REPORT_FILE
    has_report = report.is_file()
    if has_report:
        shutil.copyfile(report, out / REPORT_FILE)
    rel = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
    if not notebooks:
        (out / "index.md").write_text(HEAD + MISSING.format(run=rel), encoding="utf-8")
        return []
    lines = [HEAD, f"The executed notebooks of `distill-kit run demo` (`{rel}`), as the run left them: every "
             "number below was computed by that run. Widgets show as static tables or a note; open the notebook "
             "in JupyterLab (`make lab`) to use them.\n\n"]
    if has_report:
        lines.append(f"The run's report: [{REPORT_FILE}]({REPORT_FILE}) (one self-contained page).\n\n")
    lines += [f"- [{src.stem}]({src.name})\n" for src in notebooks]
    (out / "index.md").write_text("".join(lines), encoding="utf-8")
    return [src.name for src in notebooks]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="the run directory (default: the demo config's)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "demo")
    args = ap.parse_args(argv)
    run_dir = (args.run or demo_run_dir()).resolve()
    copied = publish(run_dir, args.out)
    print(f"docs/demo: {len(copied)} executed notebook(s) from {run_dir}" if copied
          else f"docs/demo: no demo run at {run_dir}; the site builds without its notebooks (make demo first)")


if __name__ == "__main__":
    main()
