"""Typed step summaries: what each notebook records with :func:`record_summary` and the report reads.

Why typed: notebooks write their scores as JSON files (``run_dir/summary/<step>.json``) and the report, the
verdict and ``summary.json`` read them back. Without a contract the reader guessed several spellings of every
field; with one model per step a notebook that records a wrong key or type fails at ``record_summary`` (one
line naming the field) and the reader reads exactly one field name.

One model per summary name a notebook writes (:data:`SUMMARY_MODELS`). Top-level keys are closed
(``extra="forbid"``: a new key is added here first); rows are frame dumps and keep columns beyond the typed
ones (``extra="allow"``). A summary name without a model (your own notebooks) is stored as given
(:class:`OtherSummary`).

The file on disk is exactly what the notebook handed over (after :func:`to_jsonable`): validation checks it,
it does not rewrite it, so ``summary.json`` carries the same numbers with or without this module.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from distill_kit.config import validation_error_line
from distill_kit.paths import STATE_FILE, SUMMARY_DIR


class SummaryError(ValueError):
    """A summary that does not match its step's model: one line naming the step and the field."""


# ------------------------------------------------------------------------------------------ rows


class Row(BaseModel):
    """One row of a recorded table: the typed columns below, any further columns kept as they are."""

    model_config = ConfigDict(extra="allow")

    def extra(self) -> dict[str, Any]:
        """The columns beyond the typed ones (e.g. one per prompt set in the RSE table)."""
        return dict(self.model_extra or {})


class IdentityScoreRow(Row):
    """LIS/SIS of one model with 95% Wilson intervals (``ice.scores.identity_scores``; replay rows add the
    paper's published values)."""

    model: str
    n: int | None = None
    lis: float | None = None
    lis_lo: float | None = None
    lis_hi: float | None = None
    sis: float | None = None
    sis_lo: float | None = None
    sis_hi: float | None = None
    lis_paper: float | None = None
    sis_paper: float | None = None


class MakerRow(Row):
    """Whose maker a model names when it speaks in its own voice, and whether one foreign maker stands out
    (``ice.makers.maker_table``).

    Why: a contradiction rate (LIS) alone does not say *whose* data a model saw; models that were never
    distilled also name makers at random. The test compares the most-named foreign maker with the same
    model's rate of naming the other foreign makers (its own hallucination baseline), so a foreign maker is
    named in a verdict only when it is claimed more often than chance naming explains.
    """

    model: str
    #: answers of the model that were read (the denominator of every share below)
    n: int = 0
    #: answers whose own voice (not a role-played persona) claims a maker: "I was made by X", "I am X"
    n_own_voice: int = 0
    #: maker -> share of the answers whose first own-voice identity claim names it ("none": the answer claims no
    #: maker in its own voice); the shares sum to 1
    profile: dict[str, float] = {}
    #: maker -> [lo, hi], the simultaneous 95% interval of its share (Goodman's multinomial intervals)
    profile_ci: dict[str, list[float]] = {}
    #: the model's own makers (read off its family's identity fact); every other maker is foreign
    own_makers: list[str] = []
    #: answers claiming a foreign maker that their own prompt names ("You are ChatGPT ..." answered "I am
    #: ChatGPT"): in the profile, but left out of the test, since they follow the prompt
    n_prompted: int = 0
    #: the foreign maker (not the model's own, not "none") named most often where the prompt did not name it;
    #: None when no foreign maker is named so
    top_foreign: str | None = None
    #: the top foreign maker's share of the answers, its prompted claims left out; None without a top foreign maker
    share: float | None = None
    #: the hallucination baseline: the mean share of the other foreign makers (every candidate maker other than
    #: the model's own and the top one, the ones it never named included; prompted claims left out); None
    #: without a top foreign maker
    baseline: float | None = None
    #: p-value of "no foreign maker is named more often than the others" (the foreign claims spread evenly over
    #: the candidate makers); the statistic is the top maker's count, so choosing the top is accounted for.
    #: None when the model names no foreign maker
    p: float | None = None
    #: ``p`` Holm-adjusted over the models of the table (one family of tests per table)
    p_adj: float | None = None
    #: the significance level the test was read at
    alpha: float = 0.05
    #: True when ``p_adj < alpha``: only then may a verdict name ``top_foreign``
    passed: bool = False


class CorrectedRow(Row):
    """Prevalence-corrected LIS/SIS of one model (``ice.calibration.corrected_table``)."""

    model: str
    lis_corrected: float | None = None
    lis_ci: list[float | None] | None = None
    lis_method: str | None = None
    lis_n_labels: int | None = None
    sis_corrected: float | None = None
    sis_ci: list[float | None] | None = None


class IceXRseRow(Row):
    """One point of the paper's combined figure (``paper.ice_x_rse``)."""

    model: str
    lis: float | None = None
    lis_ci: list[float | None] | None = None
    lis_source: str | None = None
    rse: float | None = None
    rse_ci: list[float | None] | None = None
    rse_source: str | None = None
    rse_from: str | None = None


class BaseInstructRow(Row):
    """One model of a base/instruct pair (``paper.base_vs_instruct``)."""

    pair: str
    model: str
    kind: str
    lis: float | None = None
    lis_lo: float | None = None
    lis_hi: float | None = None
    lis_paper: float | None = None
    sis_paper: float | None = None


class PairedRow(Row):
    """A paired comparison of two models on shared prompts (``ice.scores.paired_table``)."""

    a: str
    b: str
    n: int | None = None
    mean_a: float | None = None
    mean_b: float | None = None
    diff: float | None = None
    lo: float | None = None
    hi: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    significant: bool | None = None
    test: str | None = None


class RseRow(Row):
    """One test model's RSE (``rse.scores.rse_table``): mean with 95% interval (the full table adds one
    column per prompt set and ``n_<set>``)."""

    test_model: str
    mean: float | None = None
    mean_lo: float | None = None
    mean_hi: float | None = None


class MatrixRow(Row):
    """One row of a model x model matrix: ``model`` and one column per other model."""

    model: str


class PaperRseRow(Row):
    """The paper's RSE of one model beside ours (``paper.rse_side_by_side``)."""

    paper_name: str
    paper_rse: float | None = None
    alpaca_model: str | None = None
    match: str | None = None
    our_rse: float | None = None
    our_rse_lo: float | None = None
    our_rse_hi: float | None = None


class PaperRseStats(Row):
    n: int = 0
    reference: str | None = None
    spearman_rho: float | None = None
    p_value: float | None = None


class PaperRse(BaseModel):
    """Notebook 04's side-by-side with the paper's RSE table."""

    model_config = ConfigDict(extra="forbid")
    rows: list[PaperRseRow] = []
    stats: PaperRseStats = PaperRseStats()
    measured: list[Row] = []


class HomogenisationRow(Row):
    set: str
    index: float | None = None
    accuracy: float | None = None
    chance: float | None = None
    n_models: int | None = None


class MapPoint(Row):
    model: str
    x: float | None = None
    y: float | None = None


class AttributionRow(Row):
    """One student's most likely teachers (``lineage.signals.Attribution.table``: top1, p1, top2, p2, ...)."""

    student: str
    distillation_score: float | None = None
    top1: str | None = None
    p1: float | None = None


class LineageTestRow(Row):
    """One target's lineage test (``lineage.significance``): its best line, that line's p-value and Holm-adjusted
    p over the target's lines, and whether the line is named (``p_adj < alpha``)."""

    target: str
    line: str | None = None
    p: float | None = None
    p_adj: float | None = None
    named: bool = False
    documented_line: str | None = None


class TreeRecord(BaseModel):
    """A lineage tree as scipy's linkage matrix over ``labels``."""

    model_config = ConfigDict(extra="forbid")
    labels: list[str]
    linkage: list[list[float]]


# ------------------------------------------------------------------------------------------ steps


class StepSummary(BaseModel):
    """What one notebook records; ``step`` is the summary name it writes."""

    model_config = ConfigDict(extra="forbid")
    step: ClassVar[str] = ""


class ProbesSummary(StepSummary):
    """Notebook 01: the probe set and templates."""

    step: ClassVar[str] = "probes"
    n_probes: int
    n_templates: int
    by_language: dict[str, int] = {}
    by_category: dict[str, int] = {}
    problems: list[Any] = []


class CollectSummary(StepSummary):
    """Notebook 02: what was asked live and what it cost."""

    step: ClassVar[str] = "collect"
    store: str
    live_models: list[str] = []
    identity_prompts_per_model: int = 0
    prompt_sets: list[str] = []
    rse_prompts_per_model: int = 0
    usage: list[Row] = []
    fuzz: dict[str, list[Row]] = {}


class IdentitySummary(StepSummary):
    """Notebook 03: identity scores (ICE) of replayed and live models."""

    step: ClassVar[str] = "identity_scores"
    judge: str
    source: str
    replay: list[IdentityScoreRow] = []
    corrected: list[CorrectedRow] = []
    ice_x_rse: list[IceXRseRow] = []
    base_vs_instruct: list[BaseInstructRow] = []
    replay_by_language: list[Row] = []
    replay_by_category: list[Row] = []
    replay_by_template_id: list[Row] = []
    paired_lis: list[PairedRow] = []
    live: list[IdentityScoreRow] = []
    live_errors: int | None = None
    n_flagged: int | None = None
    #: per model: the makers its own-voice identity claims name and the foreign-maker test (``ice.makers``)
    makers: list[MakerRow] = []


class SimilaritySummary(StepSummary):
    """Notebook 04: response similarity (RSE) against the reference."""

    step: ClassVar[str] = "04-response-similarity"
    prompt_sets: list[str]
    reference: str
    judge: str
    sample_size: int
    seed: int
    alignment: list[Row] = []
    matrices: dict[str, list[MatrixRow]] = {}
    judge_status: list[Row] = []
    rse_table: list[RseRow] = []
    rse_by_granularity: dict[str, list[RseRow]] = {}
    order_agreement: dict[str, dict[str, Any]] = {}
    panel_agreement: dict[str, Any] = {}
    judge_reasons: list[Row] = []
    paired_rse: list[PairedRow] = []
    rse_by_reference: dict[str, list[RseRow]] = {}
    paper_rse: PaperRse | None = None
    ice_x_rse: list[IceXRseRow] = []
    seconds: float | None = None


class LineageSummary(StepSummary):
    """Notebook 05: embedding map, homogenisation, lineage tree and teacher attribution."""

    step: ClassVar[str] = "05-embed-and-cluster"
    data_source: str
    models: list[str]
    sample_size: int
    seed: int
    embedding_model: str | None = None
    shared_prompts: int | None = None
    homogenisation: list[HomogenisationRow] = []
    clusters: dict[str, int | str] = {}
    tree_leaves: list[str] = []
    tree: TreeRecord | None = None
    umap: list[MapPoint] = []
    attribution: list[AttributionRow] = []
    attribution_temperature: float | None = None
    calibration: dict[str, float | None] = {}
    attribution_metrics: dict[str, float | None] = {}
    vote_attribution: list[Row] = []
    vote_method: str | None = None
    who_wrote_accuracy: float | None = None
    who_wrote_chance: float | None = None
    who_wrote_n_test: int | None = None
    seconds: float | None = None
    documented_teachers: dict[str, str | None] | None = None  # student -> documented teacher ("none": a control)
    reference_lines: dict[str, str] | None = None  # reference -> product line (lineage.csv)
    lineage_test: list[LineageTestRow] = []  # one row per tested target; empty: not tested (see the note)
    lineage_test_alpha: float | None = None
    lineage_test_method: str | None = None
    lineage_test_null_models: list[str] = []  # models whose documented unrelated pairs built the null
    lineage_test_note: str | None = None  # why there is no test (one line), e.g. too few unrelated pairs


class ReportSummary(StepSummary):
    """Notebook 06: which sections of the report had data."""

    step: ClassVar[str] = "06-report"
    report: str
    sections: list[str] = []
    missing_steps: list[str] = []
    figures: list[str] = []


class IceXRseSummary(StepSummary):
    """Notebook 06: the paper's combined figure as rows (``summary.json`` lifts them to the top)."""

    step: ClassVar[str] = "06-ice-x-rse"
    ice_x_rse: list[IceXRseRow] = []


class OtherSummary(StepSummary):
    """A summary name no model describes (your own notebooks): any JSON object."""

    model_config = ConfigDict(extra="allow")


SUMMARY_MODELS: dict[str, type[StepSummary]] = {
    m.step: m for m in (ProbesSummary, CollectSummary, IdentitySummary, SimilaritySummary, LineageSummary,
                        ReportSummary, IceXRseSummary)
}


def summary_model(step: str) -> type[StepSummary]:
    """The model of summary ``step`` (:class:`OtherSummary` for names no notebook of this project writes)."""
    return SUMMARY_MODELS.get(step, OtherSummary)


def parse_summary(step: str, payload: dict[str, Any]) -> StepSummary:
    """``payload`` as its step's model; a mismatch is one :class:`SummaryError` line."""
    try:
        return summary_model(step).model_validate(payload)
    except ValidationError as exc:
        raise SummaryError(validation_error_line(exc, f"summary {step}")) from None


# ------------------------------------------------------------------------------------------ writing


def to_jsonable(value: Any) -> Any:
    """Convert numpy / polars / pandas / dataclass / path values into plain JSON types.

    Why: notebooks hand over whatever their scoring code returns; the summary must stay valid
    JSON (NaN/inf become ``null``) so the report and external tools can read it.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    type_name = type(value).__module__ + "." + type(value).__name__
    if type_name.startswith("polars.") and hasattr(value, "to_dicts"):  # polars DataFrame
        return to_jsonable(value.to_dicts())
    if type_name.startswith("polars.") and hasattr(value, "to_list"):  # polars Series
        return to_jsonable(value.to_list())
    if type_name.startswith("pandas.") and hasattr(value, "to_dict"):
        if hasattr(value, "columns"):
            return to_jsonable(value.to_dict(orient="records"))
        return to_jsonable(value.to_list())
    if hasattr(value, "model_dump"):  # pydantic
        return to_jsonable(value.model_dump())
    if hasattr(value, "tolist"):  # numpy arrays and numpy scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + rename so a killed run never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _file_mode())  # mkstemp makes 0600 files; outputs are meant to be shared
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record_summary(run_dir: str, step: str, payload: dict | StepSummary) -> None:
    """Save one step's scores as ``run_dir/summary/<step>.json`` (no-op when ``run_dir`` is "").

    Called from every notebook; interactive runs pass ``run_dir=""`` and write nothing (the payload is
    still checked against the step's model, so a notebook run by hand finds a wrong key too).
    Calling twice for the same step replaces the earlier file.
    """
    if isinstance(payload, StepSummary):
        payload = payload.model_dump(exclude_unset=True)
    if not isinstance(payload, dict):
        raise ValueError(f"record_summary payload must be a dict, got {type(payload).__name__}")
    if not step or any(c in step for c in "/\\") or step.startswith("."):
        raise ValueError(f"record_summary step must be a plain name like '03-ice', got {step!r}")
    data = to_jsonable(payload)
    parse_summary(step, data)
    if not run_dir:
        return
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(Path(run_dir) / SUMMARY_DIR / f"{step}.json", text + "\n")


# ------------------------------------------------------------------------------------------ reading


def read_payloads(run_dir: str | Path) -> dict[str, dict]:
    """Every ``summary/<step>.json`` of a run as written, ``{step: payload}`` sorted by step."""
    folder = Path(run_dir) / SUMMARY_DIR
    if not folder.is_dir():
        return {}
    return {f.stem: json.loads(f.read_text(encoding="utf-8")) for f in sorted(folder.glob("*.json"))}


def read_state(run_dir: str | Path) -> dict:
    """The run state (``state.json``): ``{"steps": {notebook stem: {status, summaries, ...}}}``."""
    try:
        return json.loads((Path(run_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"steps": {}}


def _finished(run_dir: str | Path, payloads: dict[str, dict]) -> dict[str, dict]:
    """Only finished steps' summaries: a killed or failed attempt may have left a ``summary/<step>.json``
    behind, and reading it would make a resumed run's report differ from an uninterrupted one. Without a run
    state (interactive use) every summary counts."""
    state = read_state(run_dir)
    if not state.get("steps"):
        return payloads
    keep: set[str] = set()
    for name, st in state["steps"].items():
        if st.get("status") == "ok":
            keep.update(st.get("summaries", [name]))
    return {k: v for k, v in payloads.items() if k in keep}


def finished_payloads(run_dir: str | Path) -> dict[str, dict]:
    """The finished steps' summaries as written (what ``summary.json`` copies)."""
    return _finished(run_dir, read_payloads(run_dir))


def load_summaries(run_dir: str | Path) -> dict[str, StepSummary]:
    """Every summary of a run, typed (finished or not; see :func:`finished_summaries`)."""
    return {k: parse_summary(k, v) for k, v in read_payloads(run_dir).items()}


def finished_summaries(run_dir: str | Path) -> dict[str, StepSummary]:
    """The finished steps' summaries, typed."""
    return {k: parse_summary(k, v) for k, v in finished_payloads(run_dir).items()}


def step_summaries(run_dir: str | Path) -> dict[str, list[str]]:
    """``{notebook stem: [summary names it wrote]}`` for the finished steps of a run."""
    state = read_state(run_dir)
    return {name: st.get("summaries", []) for name, st in state.get("steps", {}).items() if st.get("status") == "ok"}


@dataclasses.dataclass
class RunSummaries:
    """A run's finished summaries, by step: what the report and the verdict read."""

    all: dict[str, StepSummary] = dataclasses.field(default_factory=dict)
    written_by: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def get(self, model: type[StepSummary]) -> Any:
        """The summary ``model`` describes, or None when its step did not run (or did not finish)."""
        found = self.all.get(model.step)
        return found if isinstance(found, model) else None

    @property
    def identity(self) -> IdentitySummary | None:
        return self.get(IdentitySummary)

    @property
    def similarity(self) -> SimilaritySummary | None:
        return self.get(SimilaritySummary)

    @property
    def lineage(self) -> LineageSummary | None:
        return self.get(LineageSummary)


def run_summaries(run_dir: str | Path | None) -> RunSummaries:
    """The finished summaries of ``run_dir`` (empty for None)."""
    if not run_dir:
        return RunSummaries()
    return RunSummaries(finished_summaries(run_dir), step_summaries(run_dir))
