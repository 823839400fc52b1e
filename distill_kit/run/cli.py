"""The `distill-kit` command: `distill-kit run CONFIG` executes a run config's notebook sequence;
`distill-kit lab` opens the notebooks in JupyterLab; `distill-kit prepare` builds the offline models once;
`distill-kit student make|list` trains LoRA students of known teachers (distill_kit/students/).

User errors (bad config, failed notebook) print one `error:` line and exit 2 / 1, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distill_kit.config import ConfigError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill-kit", description="Distillation quantification workbench.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the notebooks listed in a YAML run config (resumes a previous run)")
    run.add_argument("config", help="path to a run config, or a name in configs/runs/ (e.g. demo)")
    run.add_argument("--runs-dir", default=None, help="parent folder of run directories (default: runs/)")
    run.add_argument("--notebooks-dir", default=None, help="folder holding the notebooks (default: notebooks/)")
    run.add_argument("--force", action="store_true", help="re-run every step even if it finished before")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    run.add_argument("--max-cost", type=float, default=None, metavar="USD",
                     help="refuse a run estimated above USD, and stop one whose spend reaches it (answers kept)")
    est = sub.add_parser("estimate", help="print requests, tokens and cost per step and model before spending")
    est.add_argument("config")
    est.add_argument("--runs-dir", default=None)
    est.add_argument("--notebooks-dir", default=None)
    est.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    for p in (run, est):
        p.add_argument("--models-overlay", default=None, metavar="YAML",
                       help="model entries merged over configs/models.yaml (e.g. configs/overlays/zoo.yaml)")
        p.add_argument("--batch", action="store_true", help="send OpenAI/Anthropic models through their batch APIs")
    plan = sub.add_parser("plan", help="validate a run config and print its run id and steps")
    plan.add_argument("config")
    plan.add_argument("--runs-dir", default=None)
    plan.add_argument("--notebooks-dir", default=None)
    lab = sub.add_parser("lab", help="start JupyterLab on the notebooks (loopback; prints the URL with its token)")
    lab.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: first free from 8888)")
    lab.add_argument("--notebooks-dir", default=None, help="folder to open (default: notebooks/)")
    sub.add_parser("prepare", help="fit and export, once, the offline models runs reuse (run by `make setup`)")
    _add_data_parser(sub)
    _add_student_parser(sub)
    return parser


def _add_student_parser(sub: argparse._SubParsersAction) -> None:
    """`distill-kit student make|list`: students distilled from a known teacher at a known dose."""
    st = sub.add_parser("student", help="train a LoRA student on a teacher's answers, or list trained students")
    ssub = st.add_subparsers(dest="student_command", required=True)
    mk = ssub.add_parser("make", help="train (or load from the cache) a student; prints its models.yaml entry")
    mk.add_argument("--teacher", required=True, help="<source>/<model>: alpaca-eval/gpt4_0613, arena-hard/..., "
                                                     "identity/phi-4, store/<model> (answers in a response store)")
    mk.add_argument("--dose", type=int, required=True, help="training pairs (prompt, answer)")
    mk.add_argument("--base", default="", help="Hugging Face model folder or .gguf file (default: bundled SmolLM2)")
    mk.add_argument("--name", default=None, help="model name (default: student-<teacher model>-<dose>)")
    mk.add_argument("--store", default=None, help="response store for store/<model> teachers (default: the cache's)")
    mk.add_argument("--top-layers", type=int, default=None, help="LoRA on the last N layers only (0 = all)")
    mk.add_argument("--epochs", type=int, default=None)
    mk.add_argument("--seed", type=int, default=None)
    mk.add_argument("--overlay", default=None, metavar="YAML",
                    help="add the student's entry to this models overlay (created if absent; a name already there "
                         "is an error)")
    ssub.add_parser("list", help="the students in the cache: name, teacher, dose, device, adapter")


def _student_main(args: argparse.Namespace) -> int:
    from distill_kit import datasets
    from distill_kit.students import catalog

    try:
        if args.student_command == "list":
            for line in catalog.student_lines():
                print(line)
            return 0
        changes = {k: v for k, v in (("top_layers", args.top_layers), ("epochs", args.epochs), ("seed", args.seed))
                   if v is not None}
        student = catalog.make_from_cli(args.teacher, args.dose, base=args.base, name=args.name,
                                        store_path=args.store, recipe_changes=changes)
        print(catalog.describe(student))
        if args.overlay:
            catalog.add_to_overlay(student, Path(args.overlay))
            print(f"added {student.name!r} to {args.overlay} (use it with --models-overlay {args.overlay})")
        else:
            print(catalog.overlay_yaml([student]))
    except (ConfigError, datasets.DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    """`distill-kit data list|fetch`: what a data folder holds, and downloading registered files into it."""
    data = sub.add_parser("data", help="list or fetch the published data files (see distill_kit/registry.csv)")
    dsub = data.add_subparsers(dest="data_command", required=True)
    ls = dsub.add_parser("list", help="every registered file: present / absent / unverified (not registered) / curated")
    ls.add_argument("pattern", nargs="?", default=None, help="glob or substring of the path, e.g. 'identity/*'")
    ls.add_argument("--dir", default=None, help="data folder (default: $DISTILL_KIT_DATA_DIR, else the download cache)")
    ls.add_argument("--missing", action="store_true", help="only the registered files the folder lacks")
    fe = dsub.add_parser("fetch", help="download registered files (resumes, checks sha256)")
    fe.add_argument("pattern", nargs="?", default=None, help="glob or substring of the path (default: every file)")
    fe.add_argument("--dir", default=None, help="destination folder (default: $DISTILL_KIT_DATA_DIR, else the cache)")
    fe.add_argument("--base-url", default=None, help="mirror replacing https://raw.githubusercontent.com/ "
                                                     "(default: $DISTILL_KIT_DATA_MIRROR)")
    fe.add_argument("--concurrency", type=int, default=4)
    fe.add_argument("--quiet", action="store_true", help="no progress bar")


def _data_main(args: argparse.Namespace) -> int:
    from distill_kit import datafetch, datasets

    try:
        root = Path(args.dir) if args.dir else datasets.data_root()[0]
        if args.data_command == "list":
            status = datasets.folder_status(root, args.pattern)
            rows = status.filter(status["status"] == "absent") if args.missing else status
            for r in rows.iter_rows(named=True):
                print(f"{r['status']:<13} {r['path']}")
            counts = dict(status.group_by("status").len().iter_rows())
            print(f"{root}: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("present", "absent", "unverified", "curated"))
                  + f" (registry: {len(datasets.registry())} files)")
            return 0
        if not root.exists():
            root.mkdir(parents=True)
        results = datafetch.fetch(datafetch.select(args.pattern), root, base_url=args.base_url,
                                  concurrency=args.concurrency, progress=not args.quiet)
    except (datasets.DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    done = {k: sum(r.status == k for r in results) for k in ("downloaded", "resumed", "present")}
    print(f"{root}: {done['downloaded']} downloaded, {done['resumed']} resumed, {done['present']} already present")
    return 0


def _prepare() -> int:
    from distill_kit import datasets
    from distill_kit.run.prepare import prepare

    try:
        done = prepare()
    except (datasets.DataError, ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"prepared {len(done)} offline models in {sum(d.seconds for d in done):.0f} s (cached for every later run)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for `distill-kit` and `python -m distill_kit`; returns the exit status."""
    args = _build_parser().parse_args(argv)
    if args.command == "data":
        return _data_main(args)
    if args.command == "prepare":
        return _prepare()
    if args.command == "student":
        return _student_main(args)
    from distill_kit.paths import NOTEBOOKS_DIR, RUNS_DIR
    from distill_kit.run import pipeline, plan

    if args.command == "lab":
        from distill_kit.run.lab import run_lab

        return run_lab(Path(args.notebooks_dir or NOTEBOOKS_DIR).resolve(), args.port)
    runs_dir = Path(args.runs_dir) if args.runs_dir else RUNS_DIR
    notebooks_dir = Path(args.notebooks_dir) if args.notebooks_dir else NOTEBOOKS_DIR
    try:
        cfg = plan.load_run_config(args.config)
        if getattr(args, "models_overlay", None) or getattr(args, "batch", False):
            cfg = cfg.model_copy(update={k: v for k, v in (("models_overlay", args.models_overlay),
                                                            ("batch", args.batch or cfg.batch)) if v})
        if args.command == "estimate":
            return _estimate(cfg, runs_dir, notebooks_dir, args.json)
        if args.command == "plan":
            plans = plan.plan_run(cfg, runs_dir, notebooks_dir)
            print(f"run id: {cfg.run_id()}")
            for p in plans:
                print(f"  {p.source.name}")
            return 0
        if args.max_cost is not None and args.max_cost < 0:
            raise ConfigError("--max-cost must be >= 0 (USD)")
        result = pipeline.run_pipeline(cfg, runs_dir, notebooks_dir, force=args.force, kernel_name=args.kernel,
                                       max_cost=args.max_cost)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except pipeline.Unwritable as exc:  # names the folder and says what to do: one line is the whole story
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except pipeline.StepFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("finished steps are kept; fix the problem and run the same command again to resume", file=sys.stderr)
        return 1
    except OSError as exc:  # the runner's own writes: a full disk, a read-only run or cache folder
        from distill_kit.paths import oserror_line

        print(f"error: {oserror_line(exc) or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"done in {result.seconds:.0f}s: {len(result.ran)} step(s) ran, {len(result.skipped)} skipped")
    print(f"summary: {result.summary}")
    if result.report:
        print(f"report: {result.report}")
    else:
        print(f"no report (add the 06 report step); outputs in {result.run_dir}")
    return 0


def _estimate(cfg: object, runs_dir: Path, notebooks_dir: Path, as_json: bool) -> int:
    import json

    from distill_kit.run import estimate

    with estimate.run_environment(cfg):
        est = estimate.estimate_run(cfg, runs_dir, notebooks_dir)
    if as_json:
        print(json.dumps({"tokenizer": est.tokenizer, "total_usd": est.total, "total_usd_no_batch": est.total_no_batch,
                          "total_usd_all_batch": est.total_all_batch, "lines": est.to_dicts(), "notes": est.notes}))
    else:
        print(est.table())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
