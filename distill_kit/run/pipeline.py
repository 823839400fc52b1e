"""Batch runs of the notebook sequence: run directories, parameters, resume.

Notebooks call :func:`distill_kit.summaries.record_summary` with every score they compute; the runner
merges the finished steps' files into ``runs/<run-id>/summary.json`` and the report notebook reads them back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill_kit.config import ConfigError, read_yaml, validation_error_line
from distill_kit.paths import (
    NOTEBOOKS_DIR,
    PROJECT_ROOT,
    REPORT_FILE,
    REPORT_STEP_PREFIX,
    RUNS_DIR,
    STATE_FILE,
    SUMMARY_DIR,
)
from distill_kit.redact import ENV_VAR_NAME, SECRET_NAME, SECRET_VALUE, secret_values
from distill_kit.summaries import atomic_write_text, finished_payloads, read_state, to_jsonable


# --------------------------------------------------------------------------------------------
# Run configs
# --------------------------------------------------------------------------------------------


def check_no_secrets(params: dict[str, Any], where: str) -> None:
    """Refuse parameters that carry keys: by name, by key-like value, or equal to a secret env value.

    Parameters are written verbatim into executed notebooks, so a key there would leak into every
    output. Keys reach code only through the environment variable a model config names.
    """
    env_secrets = set(secret_values())

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                name = str(k)
                sub = f"{path}.{name}" if path else name
                if SECRET_NAME.search(name) and not (
                    name.lower().endswith("_env") and (v is None or (isinstance(v, str) and ENV_VAR_NAME.match(v)))
                ):
                    raise ConfigError(
                        f"{where}: parameter {sub!r} looks like it carries a secret; put keys in environment "
                        "variables and name the variable in the model config (api_key_env)"
                    )
                walk(v, sub)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        elif isinstance(value, str) and (SECRET_VALUE.search(value) or any(s in value for s in env_secrets)):
            raise ConfigError(
                f"{where}: parameter {path!r} holds a value that looks like an API key; keys may only "
                "come from environment variables"
            )

    walk(params, "")


class StepConfig(BaseModel):
    """One notebook of the sequence and the parameters papermill injects into it."""

    model_config = ConfigDict(extra="forbid")
    notebook: str = Field(description="File name in notebooks/ ('03-ice.ipynb') or its number prefix ('03').")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Values for the parameters cell.")
    timeout: int | None = Field(None, ge=1, description="Seconds allowed per cell (None: no limit).")


class RunConfig(BaseModel):
    """A batch run: which notebooks, with which parameters, one seed. Validated before anything runs."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Short run name; the run id is name + a hash of the config.")
    description: str = Field("", description="Shown at the top of the report.")
    seed: int = Field(0, description="Passed to every notebook as `seed`.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Parameters passed to every step (a step's own values win)."
    )
    steps: list[StepConfig] = Field(min_length=1, description="Notebooks to run, in order.")
    models_overlay: str | None = Field(
        None, description="YAML merged over configs/models.yaml for this run (other endpoints, e.g. the API zoo).")
    batch: bool = Field(False, description="Send every OpenAI/Anthropic model through its batch API (half price).")
    executor: Literal["local", "ray"] = Field(
        "local", description="Where the CPU-heavy steps run (distill_kit.executor); passed to notebooks as `executor`."
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", v):
            raise ValueError("name must be letters, digits, '-', '_' or '.' (max 64 chars)")
        return v

    def run_id(self) -> str:
        """`<name>-<sha8>`: the same config always maps to the same run directory (so it resumes)."""
        # batch changes price, not answers; the executor changes where work runs, not its results; no
        # overlay keeps the run ids of configs written before overlays
        skip = {"description", "batch", "executor"} | ({"models_overlay"} if self.models_overlay is None else set())
        canon = json.dumps(self.model_dump(exclude=skip), sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(canon.encode()).hexdigest()[:8]}"


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config; every problem becomes one ConfigError line."""
    path = Path(path)
    if not path.is_file():
        candidate = PROJECT_ROOT / "configs" / "runs" / f"{path.name.removesuffix('.yaml')}.yaml"
        if candidate.is_file() and path.parent == Path("."):
            path = candidate
        else:
            raise ConfigError(f"run config not found: {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'name' and 'steps'")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_error_line(exc, str(path))) from None
    check_no_secrets(cfg.parameters, f"{path}: parameters")
    for step in cfg.steps:
        check_no_secrets(step.parameters, f"{path}: step {step.notebook}")
    return cfg


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


class StepFailed(RuntimeError):
    """A notebook raised: the message is one line naming the notebook, the cell and the error."""


@dataclass
class StepPlan:
    """A resolved step: the notebook file, the output paths and the exact parameters injected."""

    name: str  # notebook stem, e.g. "03-ice"
    source: Path
    output: Path
    html: Path
    parameters: dict[str, Any]
    timeout: int | None = None

    def fingerprint(self) -> str:
        """Hash of the parameters and the notebook source: unchanged fingerprint = skippable step."""
        params = {k: v for k, v in self.parameters.items() if k != "executor"}  # same results on either executor
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(self.source.read_bytes())
        return h.hexdigest()


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None
    summary: Path | None = None
    seconds: float = 0.0


_NUMBERED_NOTEBOOK = re.compile(r"\d{2}-[^/\\]+\.ipynb")


def resolve_notebook(spec: str, notebooks_dir: Path) -> Path:
    """Find a notebook by exact file name, stem, or number prefix ('03' -> '03-*.ipynb').

    Only the numbered notebooks (``NN-name.ipynb``) directly inside ``notebooks_dir`` can run: a run
    config is data, and a path in it must not execute code from elsewhere on the machine. Your own
    notebooks run from a folder you name with ``--notebooks-dir`` (see README, "Your own notebooks").
    """
    if not spec or "/" in spec or "\\" in spec or spec.startswith(".") or Path(spec).is_absolute():
        raise ConfigError(f"step {spec!r}: a step names a notebook in {notebooks_dir} by number or file name, "
                          "not a path (run your own notebooks with --notebooks-dir FOLDER)")
    for cand in (notebooks_dir / spec, notebooks_dir / f"{spec}.ipynb"):
        if cand.is_file():
            if not _NUMBERED_NOTEBOOK.fullmatch(cand.name) or cand.resolve().parent != notebooks_dir.resolve():
                raise ConfigError(f"step {spec!r}: only the numbered notebooks (NN-name.ipynb) in {notebooks_dir} can run")
            return cand
    matches = sorted(notebooks_dir.glob(f"{spec}-*.ipynb"))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches)
        raise ConfigError(f"step {spec!r} matches several notebooks ({names}); use the full file name")
    raise ConfigError(f"step {spec!r}: no such notebook in {notebooks_dir}")


def notebook_parameters(path: Path) -> set[str]:
    """Names assigned in a notebook's `parameters`-tagged cell (empty when it has none).

    Parsed with `ast` rather than papermill's line parser, which gives up on some comments.
    """
    import ast

    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError as exc:
                raise ConfigError(f"{path.name}: parameters cell is not valid Python ({exc.msg}, line {exc.lineno})") from None
            names: set[str] = set()
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            return names
    return set()


_PARAM_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                              "list": (list,), "dict": (dict,)}


def _annotation_type(node: Any) -> str | None:
    """``int`` -> "int", ``list`` / ``list[str]`` -> "list"; None for anything else."""
    import ast

    base = node.value if isinstance(node, ast.Subscript) else node
    name = base.id if isinstance(base, ast.Name) else None
    return name if name in _PARAM_TYPES else None


def notebook_parameter_types(path: Path) -> dict[str, str]:
    """``{name: type}`` for the `parameters` cell's assignments: the annotation (``n: int = 3``,
    ``models: list = []``), else the type of the literal default (``n = 3``); names whose type cannot be
    told are left out."""
    import ast

    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return {}
            types: dict[str, str] = {}
            for node in tree.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    ann = _annotation_type(node.annotation)
                    if ann:
                        types[node.target.id] = ann
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        name = type(ast.literal_eval(node.value)).__name__
                    except (ValueError, SyntaxError):
                        continue
                    if name in _PARAM_TYPES:
                        types[node.targets[0].id] = name
            return types
    return {}


def check_parameter_types(params: dict[str, Any], declared: dict[str, str], where: str) -> None:
    """One ConfigError line for the first value whose type the notebook does not declare.

    Why here: papermill injects any value, and a string where an int is declared fails deep inside
    the notebook (a polars error in a cell) instead of naming the parameter. ``True`` is not an int,
    an int is a fine float; a ``list`` (names of models, prompt sets, ...) holds plain values, so a run
    config writes ``models: [a, b]``, never ``models: "a,b"``.
    """
    for name, value in params.items():
        want = declared.get(name)
        if want is None:
            continue
        ok = isinstance(value, _PARAM_TYPES[want]) and not (want in ("int", "float") and isinstance(value, bool))
        if ok and want == "list":
            ok = all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
        if not ok:
            hint = " (a YAML list: [a, b])" if want == "list" else ""
            raise ConfigError(f"{where}: parameter {name} must be {want}{hint} (declared in the notebook's parameters "
                              f"cell), got {type(value).__name__} {_one_line(repr(value), 60)}")


def plan_run(cfg: RunConfig, runs_dir: Path = RUNS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[StepPlan]:
    """Resolve notebooks and merge parameters: run-wide < step < (run_dir, store_path, seed, executor).

    A notebook is passed only the parameters its `parameters` cell declares: run-wide values and the
    runner's own (run_dir, store_path, seed, executor) go to the notebooks that declare them; a step's own
    parameters must be declared by its notebook (a typo is an error, not a silently ignored value).
    """
    run_dir = Path(runs_dir).resolve() / cfg.run_id()
    plans = []
    seen: set[str] = set()
    for step in cfg.steps:
        src = resolve_notebook(step.notebook, Path(notebooks_dir))
        if src.stem in seen:
            raise ConfigError(f"notebook {src.name} is listed twice")
        seen.add(src.stem)
        declared = notebook_parameters(src)
        unknown = sorted(set(step.parameters) - declared)
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"step {src.name}: unknown parameter(s) {', '.join(unknown)} (the notebook declares: {known})")
        params = {k: v for k, v in cfg.parameters.items() if k in declared}
        params.update(step.parameters)
        if "executor" in declared:
            params.setdefault("executor", cfg.executor)
        check_parameter_types(params, notebook_parameter_types(src), f"step {src.name}")
        runner = {"run_dir": str(run_dir), "store_path": str(run_dir / "store.sqlite"), "seed": cfg.seed}
        params.update({k: v for k, v in runner.items() if k in declared})
        plans.append(
            StepPlan(
                name=src.stem,
                source=src,
                output=run_dir / "notebooks" / src.name,
                html=run_dir / "html" / f"{src.stem}.html",
                parameters=params,
                timeout=step.timeout,
            )
        )
    return plans


def _write_state(run_dir: Path, state: dict) -> None:
    atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")


def _one_line(text: str, limit: int = 500) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))  # ANSI colours from tracebacks
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

    nb = static_widgets(nbformat.read(executed, as_version=4))
    exporter = HTMLExporter(template_name="lab")
    if hide_code:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    atomic_write_text(out, _CDN_SCRIPT.sub("", body))


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="dk-widget-note"><em>Interactive widget: not part of this static page '
               '(it needs a running kernel). Open the executed notebook in JupyterLab to use it.</em></p>')


def static_widgets(nb: Any) -> Any:
    """The notebook without widget state, each widget view replaced by its static output or a note.

    Why: with widget state saved, nbconvert adds ``<script src="https://unpkg.com/@jupyter-widgets/
    html-manager...">`` so a shared page reaches out to a CDN and is incomplete offline. A widget
    output's own HTML or text fallback (when it is more than the widget's repr) is kept; otherwise
    the note says where the widget lives.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") if out.get("output_type") in ("display_data", "execute_result") else None
            if not data or WIDGET_MIME not in data:
                continue
            data.pop(WIDGET_MIME)
            plain = str(data.get("text/plain", ""))
            if "text/html" not in data and (not plain or re.match(r"^[A-Za-z]+\(", plain)):
                data.pop("text/plain", None)
                data["text/html"] = WIDGET_NOTE
    return nb


def _cell_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None) or str(exc)
    cell = getattr(exc, "exec_count", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"{where}: {ename}: {_one_line(evalue)}"


def merge_summaries(run_dir: Path, cfg: RunConfig, extra: dict | None = None) -> Path:
    """Write `summary.json`: run metadata plus every step's `summary/<step>.json`."""
    steps = finished_payloads(run_dir)
    # the paper's combined figure, lifted to the top: the step summary with the most ICE x RSE rows
    ice_x_rse = max((p["ice_x_rse"] for p in steps.values() if isinstance(p, dict) and isinstance(p.get("ice_x_rse"), list)),
                    key=len, default=None)
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
        estimate.preflight(cfg, runs_dir, notebooks_dir, max_cost, log)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run(run_dir)
    try:
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

    secrets = secret_values()
    atomic_write_text(run_dir / "config.json",
                       json.dumps(redact_value(cfg.model_dump(), secrets), indent=2, default=str) + "\n")
    state = read_state(run_dir)
    result = RunResult(run_id=cfg.run_id(), run_dir=run_dir)
    log(f"run {result.run_id}: {len(plans)} step(s) -> {run_dir}")
    rerun_rest = force
    for i, plan in enumerate(plans, 1):
        fp = plan.fingerprint()
        prev = state["steps"].get(plan.name, {})
        done = prev.get("status") == "ok" and prev.get("fingerprint") == fp and plan.output.is_file()
        if done and not rerun_rest:
            log(f"[{i}/{len(plans)}] {plan.name}: done earlier, skipped")
            result.skipped.append(plan.name)
            continue
        rerun_rest = True
        log(f"[{i}/{len(plans)}] {plan.name}: running")
        state["steps"][plan.name] = {"status": "running", "fingerprint": fp, "started": time.time()}
        _write_state(run_dir, state)
        plan.output.parent.mkdir(parents=True, exist_ok=True)
        s0 = time.monotonic()
        before = _summary_stamps(run_dir)
        try:
            pm.execute_notebook(
                str(plan.source),
                str(plan.output),
                parameters=plan.parameters,
                kernel_name=kernel_name,
                cwd=str(plan.source.parent),
                progress_bar=sys.stderr.isatty(),
                log_output=False,
                execution_timeout=plan.timeout,
                # the kernel talks over loopback TCP; its log-level warning about that is noise in a batch run
                extra_arguments=[f"--InteractiveShellApp.exec_lines={BATCH_KERNEL_SETUP!r}", "--IPKernelApp.log_level=ERROR"],
            )
        except BaseException as exc:
            msg = f"{plan.source.name} failed in {_cell_error(exc)}"
            for s in secrets:
                msg = msg.replace(s, "[REDACTED]")
            state["steps"][plan.name] = {"status": "failed", "fingerprint": fp, "error": msg}
            _write_state(run_dir, state)
            _finish_outputs(plan, secrets, hide_code=False, log=log)
            merge_summaries(run_dir, cfg, {"failed": msg})
            redact_run_outputs(run_dir, secrets)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise StepFailed(msg) from None
        secs = time.monotonic() - s0
        _finish_outputs(plan, secrets, hide_code=plan.name.startswith(REPORT_STEP_PREFIX), log=log)
        after = _summary_stamps(run_dir)
        written = sorted(k for k, v in after.items() if before.get(k) != v)
        state["steps"][plan.name] = {"status": "ok", "fingerprint": fp, "seconds": round(secs, 1), "summaries": written}
        _write_state(run_dir, state)
        result.ran.append(plan.name)
        log(f"[{i}/{len(plans)}] {plan.name}: ok ({secs:.1f}s)")
    result.summary = merge_summaries(run_dir, cfg)
    redact_run_outputs(run_dir, secrets)
    report = run_dir / REPORT_FILE
    result.report = report if report.is_file() else None
    result.seconds = time.monotonic() - t0
    return result


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
    """Summary files and their mtimes: tells which summaries a step wrote (names are free-form)."""
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
        log(f"warning: could not render {plan.output.name} to HTML: {_one_line(str(exc), 120)}")
        return
    redact_secrets(plan.html, secrets)
    for f in (plan.output.parent.parent / SUMMARY_DIR).glob("*.json"):
        redact_secrets(f, secrets)
