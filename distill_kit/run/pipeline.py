"""Batch runs of the notebook sequence: run directories, parameters, resume.

Notebooks call :func:`distill_kit.summaries.record_summary` with every score they compute; the runner
merges the finished steps' files into ``runs/<run-id>/summary.json`` and the report notebook reads them back.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from distill_kit.config import ConfigError
from distill_kit.paths import (
    NOTEBOOKS_DIR,
    PROJECT_ROOT,
    REPORT_FILE,
    REPORT_STEP_PREFIX,
    RUNS_DIR,
    STATE_FILE,
    SUMMARY_DIR,
    oserror_line,
    unwritable_line,
)
from distill_kit.redact import secret_values
from distill_kit.run.plan import RunConfig, StepPlan, one_line, plan_run
from distill_kit.summaries import (
    ReportSummary,
    atomic_write_text,
    contracts,
    finished_payloads,
    missing_upstream,
    read_state,
    to_jsonable,
)

# --------------------------------------------------------------------------------------------
# Run configs
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


class StepFailed(RuntimeError):
    """A notebook raised: the message is one line naming the notebook, the cell and the error."""


class Unwritable(StepFailed):
    """A step stopped because a folder it writes is full or read-only: the message is the whole story
    (which folder, what to do); finished steps and stored answers are kept, so the same command resumes."""


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None
    summary: Path | None = None
    seconds: float = 0.0


def _write_state(run_dir: Path, state: dict) -> None:
    atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")


def redact_secrets(path: Path, secrets: list[str]) -> int:
    """Replace any secret value found in a text file with [REDACTED]; returns replacements made.

    Defence in depth: parameters can't carry keys, but a notebook could still print one (e.g. in
    an error message). The runner scrubs every output it writes before it is shared.
    """
    if not secrets or not path.is_file():
        return 0
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return 0
    count = 0
    for s in secrets:
        if s in text:
            count += text.count(s)
            text = text.replace(s, "[REDACTED]")
    if count:
        atomic_write_text(path, text)
    return count


_TEXT_OUTPUTS = {".json", ".html", ".ipynb", ".svg", ".csv", ".txt", ".md", ".yaml", ".yml", ".jsonl", ".log"}


def redact_run_outputs(run_dir: Path, secrets: list[str]) -> int:
    """Scrub every text file under the run directory (summaries, config copy, notebooks, HTML, the
    report and its figures); the store is redacted as it is written (``Store.put``)."""
    if not secrets:
        return 0
    return sum(redact_secrets(f, secrets) for f in Path(run_dir).rglob("*")
               if f.suffix.lower() in _TEXT_OUTPUTS and f.is_file() and not f.is_symlink())


# nbconvert's template loads require.js and MathJax from a CDN; batch HTML must open offline.
_CDN_SCRIPT = re.compile(r'<script[^>]*src="https://cdnjs\.cloudflare\.com/[^"]*"[^>]*>\s*</script>\s*')


def render_html(executed: Path, out: Path, hide_code: bool) -> None:
    """Render an executed notebook to HTML with nbconvert (code hidden for the report)."""
    import nbformat
    from nbconvert import HTMLExporter

    from distill_kit.nbexport import static_widgets

    nb = static_widgets(nbformat.read(executed, as_version=4))
    exporter = HTMLExporter(template_name="lab")
    if hide_code:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    atomic_write_text(out, _CDN_SCRIPT.sub("", body))


def _cell_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None) or str(exc)
    cell = getattr(exc, "exec_count", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"{where}: {ename}: {one_line(evalue)}"


def merge_summaries(run_dir: Path, cfg: RunConfig, extra: dict | None = None) -> Path:
    """Write `summary.json`: run metadata plus every step's `summary/<step>.json`."""
    steps = finished_payloads(run_dir)
    # the paper's combined figure, lifted to the top from the one step that records it
    ice_x_rse = steps.get(ReportSummary.step, {}).get("ice_x_rse")
    out = {
        "run_id": cfg.run_id(),
        "name": cfg.name,
        "description": cfg.description,
        "seed": cfg.seed,
        "steps": steps,
        **({"ice_x_rse": ice_x_rse} if ice_x_rse is not None else {}),
        **(extra or {}),
    }
    path = run_dir / "summary.json"
    atomic_write_text(path, json.dumps(to_jsonable(out), indent=2) + "\n")
    return path


def _default_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet(msg: str) -> None:
    """The log while a full disk stops a step: its one line says it all; warnings about outputs that
    could not be rendered onto the same disk would only bury it."""


_ERRNO_PATH = re.compile(r"\[Errno (\d+)\][^']*'([^']+)'")


def unwritable_step(exc: BaseException, plan: StepPlan) -> str | None:
    """The one line for a step stopped by a full or read-only folder, or None for any other failure.

    The error comes from the runner itself (papermill writing the executed notebook: an ``OSError``) or
    from the kernel (a cell's ``OSError``, or SQLite's "database or disk is full" from the store, known
    here only by its name and text)."""
    if isinstance(exc, OSError):
        return oserror_line(exc, plan.output)
    ename, evalue = getattr(exc, "ename", None), str(getattr(exc, "evalue", "") or "")
    if not ename:
        return None
    found = _ERRNO_PATH.search(evalue)
    if found:
        return unwritable_line(int(found.group(1)), found.group(2), evalue)
    if ename in ("OperationalError", "StoreFull"):
        return unwritable_line(None, plan.store, evalue)
    return None


def run_pipeline(
    cfg: RunConfig,
    runs_dir: Path = RUNS_DIR,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    force: bool = False,
    log: Callable[[str], None] = _default_log,
    kernel_name: str = "python3",
    max_cost: float | None = None,
) -> RunResult:
    """Execute the configured notebooks in order under papermill, resuming a previous run.

    A step is skipped when its executed notebook finished and neither its parameters nor the
    notebook source changed; once one step runs, every later step runs too (it may read the
    earlier step's outputs). A failing notebook raises StepFailed and keeps what finished.
    The cost estimate is printed first; ``max_cost`` (USD) refuses a run estimated above it and stops
    one whose spend reaches it (see estimate.py).
    """
    import logging

    import papermill as pm

    from distill_kit.run import estimate

    logging.getLogger("papermill").setLevel(logging.ERROR)  # our own progress lines replace its chatter
    t0 = time.monotonic()
    _kernel_imports_this_package()
    os.environ[RUNNER_PID_ENV] = str(os.getpid())  # kernels read it in batch_kernel_setup: die with us
    run_dir = Path(runs_dir).resolve() / cfg.run_id()
    from distill_kit.store import check_store

    check_store(run_dir / "store.sqlite")  # a damaged store: one line now, not a DatabaseError in step 02
    with estimate.run_environment(cfg):
        plans = plan_run(cfg, runs_dir, notebooks_dir)
    # the lock before the estimate: a second runner of this config says one line, not a table computed
    # from the store the first one is writing
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run(run_dir)
    try:
        with estimate.run_environment(cfg):
            estimate.preflight(cfg, runs_dir, notebooks_dir, max_cost, log)
        with estimate.run_environment(cfg, run_dir, max_cost):
            return _run_locked(cfg, plans, run_dir, force, log, kernel_name, t0, pm)
    finally:
        lock.close()


def lock_run(run_dir: Path) -> Any:
    """One runner per run directory: a second `distill-kit run` of the same config stops at once."""
    import fcntl

    fh = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ConfigError(f"run {run_dir.name} is already running in another process") from None
    return fh


def _run_locked(cfg: RunConfig, plans: list[StepPlan], run_dir: Path, force: bool, log: Callable[[str], None],
                kernel_name: str, t0: float, pm: Any) -> RunResult:
    from distill_kit.redact import redact_value
    from distill_kit.store import stored_errors_since

    secrets = secret_values()
    atomic_write_text(run_dir / "config.json",
                       json.dumps(redact_value(cfg.model_dump(), secrets), indent=2, default=str) + "\n")
    state = read_state(run_dir)
    result = RunResult(run_id=cfg.run_id(), run_dir=run_dir)
    log(f"run {result.run_id}: {len(plans)} step(s) -> {run_dir}")
    for line in upstream_notes([p.name for p in plans], state):
        log(line)
    rerun_rest = force
    for i, plan in enumerate(plans, 1):
        fp = plan.fingerprint()
        prev = state["steps"].get(plan.name, {})
        done = prev.get("status") == "ok" and prev.get("fingerprint") == fp and plan.output.is_file()
        retry = done and bool(prev.get("stored_errors"))
        if done and not retry and not rerun_rest:
            log(f"[{i}/{len(plans)}] {plan.name}: done earlier, skipped")
            result.skipped.append(plan.name)
            continue
        rerun_rest = True
        if retry:
            log(f"[{i}/{len(plans)}] {plan.name}: running again to retry its {prev['stored_errors']} stored error(s) "
                "(stored answers are reused, not sent again)")
        else:
            log(f"[{i}/{len(plans)}] {plan.name}: running")
        started = time.time()
        state["steps"][plan.name] = {"status": "running", "fingerprint": fp, "started": started}
        _write_state(run_dir, state)
        plan.output.parent.mkdir(parents=True, exist_ok=True)
        s0 = time.monotonic()
        before = _summary_stamps(run_dir)
        try:
            with _ctrl_c_stops_the_kernel_at_once() as kernel_manager:
                pm.execute_notebook(
                    str(plan.source),
                    str(plan.output),
                    parameters=plan.parameters,
                    kernel_name=kernel_name,
                    cwd=str(plan.source.parent),
                    progress_bar=sys.stderr.isatty(),
                    log_output=False,
                    execution_timeout=plan.timeout,
                    kernel_manager_class=kernel_manager,
                    # the kernel talks over loopback TCP; its log-level warning about that is noise in a batch run
                    extra_arguments=[f"--InteractiveShellApp.exec_lines={BATCH_KERNEL_SETUP!r}",
                                     "--IPKernelApp.log_level=ERROR"],
                )
        except BaseException as exc:
            full = unwritable_step(exc, plan)
            msg = f"{plan.source.name} failed in {_cell_error(exc)}"
            for s in secrets:
                msg = msg.replace(s, "[REDACTED]")
            state["steps"][plan.name] = {"status": "failed", "fingerprint": fp, "error": full or msg}
            try:
                _write_state(run_dir, state)
                _finish_outputs(plan, secrets, hide_code=False, log=log if full is None else _quiet)
                merge_summaries(run_dir, cfg, {"failed": full or msg})
                redact_run_outputs(run_dir, secrets)
            except OSError:
                if full is None and not isinstance(exc, KeyboardInterrupt):
                    raise
                # the disk that stopped the step also refuses the bookkeeping: state.json still holds the
                # last good state (atomic writes), so the same command resumes; the user gets one line
            if isinstance(exc, KeyboardInterrupt):
                raise
            if full is not None:
                raise Unwritable(f"{plan.name} stopped: {full}") from None
            raise StepFailed(msg) from None
        secs = time.monotonic() - s0
        _finish_outputs(plan, secrets, hide_code=plan.name.startswith(REPORT_STEP_PREFIX), log=log)
        after = _summary_stamps(run_dir)
        written = sorted(k for k, v in after.items() if before.get(k) != v)
        state["steps"][plan.name] = {"status": "ok", "fingerprint": fp, "seconds": round(secs, 1), "summaries": written}
        errors = stored_errors_since(plan.store, started)
        if errors:
            state["steps"][plan.name]["stored_errors"] = errors
            log(f"[{i}/{len(plans)}] {plan.name}: {errors} request(s) failed and are stored as errors; "
                "the next run of this command retries them")
        _write_state(run_dir, state)
        result.ran.append(plan.name)
        log(f"[{i}/{len(plans)}] {plan.name}: ok ({secs:.1f}s)")
    result.summary = merge_summaries(run_dir, cfg)
    redact_run_outputs(run_dir, secrets)
    report = run_dir / REPORT_FILE
    result.report = report if report.is_file() else None
    result.seconds = time.monotonic() - t0
    return result


def upstream_notes(steps: list[str], state: dict) -> list[str]:
    """One note per step of this run whose declared upstream steps neither run now nor finished earlier in
    this run folder: what they record is missing from its results (its report section says "step not run")."""
    done = {name for name, st in state.get("steps", {}).items() if st.get("status") == "ok"}
    notes = []
    for step in steps:
        if step in contracts():
            missing = missing_upstream(step, {*steps, *done})
            if missing:
                notes.append(f"note: {step} also reads the output of {', '.join(missing)}, which this run does not "
                             "include")
    return notes


@contextmanager
def _ctrl_c_stops_the_kernel_at_once() -> Iterator[type]:
    """A kernel manager class for one step, and Ctrl-C that stops its kernel at once.

    Why: on Ctrl-C nbclient shuts the busy kernel down gracefully; the kernel closes its sockets while the
    interrupted cell still replies on them, and prints a 20-line ``ZMQError: Socket operation on non-socket``
    traceback over the runner's one line. After Ctrl-C the kernel is interrupted and then killed instead
    (the store commits every answer as it lands, so nothing that finished is lost); a step that ends on its
    own still shuts its kernel down gracefully."""
    import signal
    import threading

    from jupyter_client.manager import AsyncKernelManager

    class BatchKernelManager(AsyncKernelManager):
        interrupted = False

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
            await super().shutdown_kernel(now=now or BatchKernelManager.interrupted, restart=restart)

    if threading.current_thread() is not threading.main_thread():
        yield BatchKernelManager
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        BatchKernelManager.interrupted = True
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield BatchKernelManager
    finally:
        signal.signal(signal.SIGINT, before)


BATCH_KERNEL_SETUP = ["from distill_kit.run.pipeline import batch_kernel_setup as _dk_setup; _dk_setup(); del _dk_setup"]


def batch_kernel_setup() -> None:
    """Run in every batch kernel: Altair charts render as static SVG once altair is imported.

    Executed notebooks and their HTML are an archive that must open offline; Altair's default
    renderer loads Vega from a CDN. The interactive, offline page is the report (see report.py).
    The switch happens on import (altair takes seconds to import; chart-less steps skip it).
    """
    from distill_kit.display import BATCH_ROLE, install_after_import

    die_with_runner()
    install_after_import("altair", _static_charts, role=BATCH_ROLE)


RUNNER_PID_ENV = "DISTILL_KIT_RUNNER_PID"
WATCHDOG_INTERVAL = 0.02


def die_with_runner() -> None:
    """Make this batch kernel die the moment its runner does (``kill -9`` of ``distill-kit run``).

    Why: jupyter_client starts kernels in a session of their own, so a killed runner left its kernel
    sending (and paying for) requests for up to a second, and a resumed run could overlap it. Two
    guards: ``PR_SET_PDEATHSIG`` = SIGKILL (the kernel's parent thread is the runner's main thread or
    jupyter_core's long-lived runner thread), and a watchdog thread that kills the kernel when its
    parent changes (covers any case the signal misses). A kernel whose runner is already gone exits.
    """
    value = os.environ.get(RUNNER_PID_ENV, "")
    if not value.isdigit() or not sys.platform.startswith("linux"):
        return
    runner = int(value)
    if os.getppid() != runner:
        try:
            os.kill(runner, 0)
        except ProcessLookupError:
            os._exit(1)  # the runner died before this kernel got here
        except PermissionError:
            pass
        return  # started by something else that inherited the variable: not ours to police
    import ctypes
    import signal
    import threading

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != runner:  # died between the check and prctl
        os._exit(1)

    def watch() -> None:
        while os.getppid() == runner:
            time.sleep(WATCHDOG_INTERVAL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="distill-kit-runner-watchdog", daemon=True).start()


def _static_charts(alt: Any) -> None:
    """SVG renderer plus a theme with room on the left: vl-convert sizes the SVG with its own fonts,
    and browsers draw the labels in a wider sans-serif, which clipped long y-axis labels."""
    alt.renderers.enable("svg")
    base = alt.theme.get()

    @alt.theme.register("distill_kit_static", enable=True)
    def _theme() -> Any:
        return {**(base() if base else {}), "padding": {"left": 30, "right": 10, "top": 5, "bottom": 5}}


def _summary_stamps(run_dir: Path) -> dict[str, int]:
    """Summary files and their mtimes: tells which summaries a step wrote (a notebook of your own may write
    any declared step's summary)."""
    folder = run_dir / SUMMARY_DIR
    return {f.stem: f.stat().st_mtime_ns for f in folder.glob("*.json")} if folder.is_dir() else {}


def _kernel_imports_this_package() -> None:
    """Kernels inherit our environment: make them import this checkout even if it isn't installed."""
    root = str(PROJECT_ROOT)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


def _finish_outputs(plan: StepPlan, secrets: list[str], hide_code: bool, log: Callable[[str], None]) -> None:
    """Scrub secrets from the executed notebook, then render its HTML (best effort on failure)."""
    if not plan.output.is_file():
        return
    n = redact_secrets(plan.output, secrets)
    if n:
        log(f"warning: {plan.name} printed a secret from the environment; redacted {n} occurrence(s)")
    try:
        render_html(plan.output, plan.html, hide_code=hide_code)
    except Exception as exc:  # rendering is a convenience; the executed notebook is the record
        log(f"warning: could not render {plan.output.name} to HTML: {one_line(str(exc), 120)}")
        return
    redact_secrets(plan.html, secrets)
    for f in (plan.output.parent.parent / SUMMARY_DIR).glob("*.json"):
        redact_secrets(f, secrets)
