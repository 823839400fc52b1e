"""A run config and the step plans it resolves to: which notebooks, with exactly which parameters.

Why a module of its own: the runner (:mod:`distill_kit.run.pipeline`) executes the plans and the cost estimate
(:mod:`distill_kit.run.estimate`) prices them before anything is sent; both read the same plans, neither
imports the other's work. A notebook is passed only the parameters its ``parameters`` cell declares (read by
:mod:`distill_kit.run.parameters`), type-checked against the cell's annotations; secrets are refused as parameter
values (they would be written into the executed notebook).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill_kit.config import ConfigError, read_yaml, validation_error_line
from distill_kit.paths import (
    NOTEBOOKS_DIR,
    PROJECT_ROOT,
    RUNS_DIR,
)
from distill_kit.providers.base import clip
from distill_kit.redact import ENV_VAR_NAME, SECRET_NAME, SECRET_VALUE, secret_values
from distill_kit.run.parameters import check_parameter_types, read_parameters

def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (ANSI colours dropped, whitespace collapsed), clipped to ``limit`` characters."""
    return clip(re.sub(r"\x1b\[[0-9;]*m", "", str(text)), limit)  # ANSI colours come from tracebacks


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
@dataclass
class StepPlan:
    """A resolved step: the notebook file, the output paths and the exact parameters injected."""

    name: str  # notebook stem, e.g. "03-ice"
    source: Path
    output: Path
    html: Path
    parameters: dict[str, Any]
    store: Path  # the run's response store (what `store_path` means for every step that declares it)
    timeout: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # the parameters cell's literal values

    def values(self) -> dict[str, Any]:
        """Every parameter as the notebook will see it: its own defaults under the injected values."""
        return {**self.defaults, **self.parameters}

    def fingerprint(self) -> str:
        """Hash of the parameters and the notebook source: unchanged fingerprint = skippable step."""
        params = {k: v for k, v in self.parameters.items() if k != "executor"}  # same results on either executor
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(self.source.read_bytes())
        return h.hexdigest()
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
        cell = read_parameters(src)
        declared = set(cell.names)
        unknown = sorted(set(step.parameters) - declared)
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"step {src.name}: unknown parameter(s) {', '.join(unknown)} (the notebook declares: {known})")
        params = {k: v for k, v in cfg.parameters.items() if k in declared}
        params.update(step.parameters)
        if "executor" in declared:
            params.setdefault("executor", cfg.executor)
        check_parameter_types(params, cell.types, f"step {src.name}")
        store = run_dir / "store.sqlite"
        runner = {"run_dir": str(run_dir), "store_path": str(store), "seed": cfg.seed}
        params.update({k: v for k, v in runner.items() if k in declared})
        plans.append(
            StepPlan(
                name=src.stem,
                source=src,
                output=run_dir / "notebooks" / src.name,
                html=run_dir / "html" / f"{src.stem}.html",
                parameters=params,
                store=store,
                timeout=step.timeout,
                defaults=cell.values,
            )
        )
    return plans
