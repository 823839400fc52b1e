"""Typed step contracts: what each notebook records with :func:`record_summary` and the report reads.

Why typed: notebooks write their scores as JSON files (``run_dir/summary/<step>.json``) and the report, the
verdict and ``summary.json`` read them back. Without a contract the reader guessed several spellings of every
field; with one model per step a notebook that records a wrong key or type fails at ``record_summary`` (one
line naming the field) and the reader reads exactly one field name.

One contract per step (:class:`StepSummary` subclasses, :func:`contracts`), named by the notebook's stem like
the run config and the run state name it. A contract carries its layout version (written into each file as
``version``; older files are migrated on reading, newer ones refused in one line) and its upstream steps.
Top-level keys are closed (``extra="forbid"``: a new key is added here first, with a version bump when readers
must know); rows are frame dumps and keep columns beyond the typed ones (``extra="allow"``). A summary name no
contract declares is an error when written. ``docs/contracts.md`` describes each contract for people.

The file on disk is the typed summary with the fields the notebook set (``model_dump(exclude_unset=True)``),
so it holds the notebook's numbers and nothing the notebook did not record.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


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
    #: templates that cast a vote in the clustered test (one vote each, for the foreign maker a template's
    #: answers name most); None when the answers carried no template and each answer was the unit
    clusters: int | None = None
    #: templates whose vote went to ``top_foreign``; the p-value is of this count among ``clusters`` votes
    top_votes: int | None = None


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

#: step name -> its contract; filled by declaring a :class:`StepSummary` subclass with a ``step``
_CONTRACTS: dict[str, type[StepSummary]] = {}

#: names the summaries had before the contracts took the notebook stems; a run folder written then (version 1
#: files) is read under the step's name, and writing one of these names says what it is called now
LEGACY_NAMES: dict[str, str] = {"probes": "01-probe-identity", "collect": "02-collect-responses",
                                "identity_scores": "03-identity-scores"}

#: version 1 summaries whose content another step now records: left unread. Notebook 06 wrote the combined
#: figure's rows apart (``06-ice-x-rse``); they are its ``06-report`` summary's ``ice_x_rse`` now.
SUPERSEDED: dict[str, str] = {"06-ice-x-rse": "06-report"}

#: where the step contracts are described for people (names, versions, upstream steps, writers and readers)
CONTRACTS_DOC = "docs/contracts.md"


class StepSummary(BaseModel):
    """The contract of one notebook step: what the notebook records and what the report and the verdict read.

    ``step`` names the summary: the notebook's stem (``03-identity-scores``), the name the run config, the run
    state and the rendered notebook already use, so one name means one step everywhere. ``schema_version`` is
    the layout the class describes, written into every file as ``version``; a file written before versions
    existed reads as version 1 and :meth:`migrate` brings it up to date. ``upstream`` names the steps whose
    outputs this step reads when they ran (the pipeline and the report say which are missing).

    Subclassing with a ``step`` declares a contract; this is how a new notebook step is added (see
    ``docs/contracts.md``). A name no class declares is an error when written, never an unchecked dict.
    """

    model_config = ConfigDict(extra="forbid")
    step: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ()
    #: the layout version the summary was written at (its contract's ``schema_version`` when built by code)
    version: int = 0

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.step:
            declare(cls)

    @model_validator(mode="before")
    @classmethod
    def _migrated(cls, data: Any) -> Any:
        """Stamp the current version on a summary built by code; migrate an older file's payload."""
        if not isinstance(data, dict):
            return data
        version = data.get("version", cls.schema_version)
        if type(version) is not int or not 1 <= version <= cls.schema_version:
            raise ValueError(f"version must be a whole number from 1 to {cls.schema_version}, got {version!r}")
        data = dict(data)
        for v in range(version, cls.schema_version):
            data = cls.migrate(data, v)
        data["version"] = cls.schema_version
        return data

    @classmethod
    def migrate(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        """``payload``, written at ``version``, as version ``version + 1`` (by default the fields are the same)."""
        return payload

    @classmethod
    def build(cls, payload: Mapping[str, Any]) -> Self:
        """The summary a notebook assembled (numpy, polars, ... values welcome) as this contract.

        A wrong key or type is one :class:`SummaryError` line naming the step and the field."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"summary {cls.step}: expected a dict of fields, got {type(payload).__name__}")
        try:
            return cls.model_validate(to_jsonable(dict(payload)))
        except ValidationError as exc:
            raise SummaryError(validation_error_line(exc, f"summary {cls.step}")) from None


def _plain_name(step: str) -> bool:
    return bool(step) and not any(c in step for c in "/\\") and not step.startswith(".")


def declare(model: type[StepSummary]) -> None:
    """Register ``model`` as the contract of ``model.step`` (done by subclassing :class:`StepSummary`).

    Declaring the same class again (a notebook cell run twice) replaces it; a second class claiming a step
    another module declared is an error, so two readers never disagree on one file."""
    if not _plain_name(model.step):
        raise ValueError(f"a step name is a plain file name like '03-identity-scores', got {model.step!r}")
    old = _CONTRACTS.get(model.step)
    if old is not None and (old.__module__, old.__qualname__) != (model.__module__, model.__qualname__):
        raise SummaryError(f"step {model.step!r} is declared twice: {old.__module__}.{old.__qualname__} and "
                           f"{model.__module__}.{model.__qualname__}")
    _CONTRACTS[model.step] = model


def unknown_step_line(step: str) -> str:
    """The one line for a summary name no contract declares (a legacy name says what it is called now)."""
    if step in LEGACY_NAMES:
        return (f"summary {step!r} is called {LEGACY_NAMES[step]!r} now (the notebook's stem); record "
                f"{_CONTRACTS[LEGACY_NAMES[step]].__name__}.build(...)")
    if step in SUPERSEDED:
        return (f"summary {step!r} is part of {SUPERSEDED[step]!r} now: record "
                f"{_CONTRACTS[SUPERSEDED[step]].__name__}.build(...) with its ice_x_rse")
    close = difflib.get_close_matches(step, list(_CONTRACTS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"summary {step!r}: no step contract has this name; {hint}declared: {', '.join(sorted(_CONTRACTS))} "
            f"(a new step declares a StepSummary subclass with step = {step!r}; see {CONTRACTS_DOC})")


def contracts() -> dict[str, type[StepSummary]]:
    """Every declared step contract, by step name."""
    return dict(sorted(_CONTRACTS.items()))


def missing_upstream(step: str, present: Iterable[str]) -> list[str]:
    """The upstream steps of ``step`` that are not among ``present`` (steps of the run, or finished ones)."""
    have = set(present)
    return [u for u in summary_model(step).upstream if u not in have]


class ProbesSummary(StepSummary):
    """Notebook 01: the probe set and templates."""

    step: ClassVar[str] = "01-probe-identity"
    schema_version: ClassVar[int] = 2
    n_probes: int
    n_templates: int
    by_language: dict[str, int] = {}
    by_category: dict[str, int] = {}
    problems: list[Any] = []


class CollectSummary(StepSummary):
    """Notebook 02: what was asked live and what it cost."""

    step: ClassVar[str] = "02-collect-responses"
    schema_version: ClassVar[int] = 2
    store: str
    live_models: list[str] = []
    identity_prompts_per_model: int = 0
    prompt_sets: list[str] = []
    rse_prompts_per_model: int = 0
    usage: list[Row] = []
    fuzz: dict[str, list[Row]] = {}


def _without_ice_x_rse(payload: dict[str, Any], version: int) -> dict[str, Any]:
    """Version 1 to 2 of notebooks 03 and 04: their copies of the combined figure's rows are dropped (notebook
    06 records the figure now, from these two steps' scores)."""
    return {k: v for k, v in payload.items() if k != "ice_x_rse"} if version == 1 else payload


class IdentitySummary(StepSummary):
    """Notebook 03: identity scores (ICE) of replayed and live models."""

    step: ClassVar[str] = "03-identity-scores"
    schema_version: ClassVar[int] = 2
    upstream: ClassVar[tuple[str, ...]] = ("02-collect-responses",)
    judge: str
    source: str
    replay: list[IdentityScoreRow] = []
    corrected: list[CorrectedRow] = []
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

    @classmethod
    def migrate(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        return _without_ice_x_rse(payload, version)


class SimilaritySummary(StepSummary):
    """Notebook 04: response similarity (RSE) against the reference."""

    step: ClassVar[str] = "04-response-similarity"
    schema_version: ClassVar[int] = 2
    #: 02: live models' answers in the store; 03: the identity scores its ICE x RSE preview joins (not recorded)
    upstream: ClassVar[tuple[str, ...]] = ("02-collect-responses", "03-identity-scores")
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
    seconds: float | None = None

    @classmethod
    def migrate(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        return _without_ice_x_rse(payload, version)


class LineageSummary(StepSummary):
    """Notebook 05: embedding map, homogenisation, lineage tree and teacher attribution."""

    step: ClassVar[str] = "05-embed-and-cluster"
    schema_version: ClassVar[int] = 2
    upstream: ClassVar[tuple[str, ...]] = ("02-collect-responses",)
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
    """Notebook 06: which sections of the report had data, and the paper's combined figure as rows.

    The combined ICE x RSE figure joins notebook 03's and 04's scores, so the step that reads both records it,
    once; ``summary.json`` lifts its ``ice_x_rse`` to the top."""

    step: ClassVar[str] = "06-report"
    schema_version: ClassVar[int] = 2
    #: 02's store (usage, example answers, fuzzing) and the three scoring steps' summaries
    upstream: ClassVar[tuple[str, ...]] = ("02-collect-responses", "03-identity-scores", "04-response-similarity",
                                           "05-embed-and-cluster")
    report: str
    #: the report sections that had data, and those that did not (``Section.key``)
    sections: list[str] = []
    missing_sections: list[str] = []
    #: the upstream steps that did not finish in this run
    missing_steps: list[str] = []
    figures: list[str] = []
    ice_x_rse: list[IceXRseRow] = []

    @classmethod
    def migrate(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 to 2: ``missing_steps`` held the keys of the sections without data (``missing_sections``
        now); the rows of the combined figure were a summary of their own (``06-ice-x-rse``, left unread)."""
        if version == 1 and "missing_steps" in payload:
            payload = {**payload, "missing_sections": payload["missing_steps"]}
            del payload["missing_steps"]
        return payload


def summary_model(step: str) -> type[StepSummary]:
    """The contract of summary ``step``; a name no contract declares is one :class:`SummaryError` line."""
    try:
        return _CONTRACTS[step]
    except KeyError:
        raise SummaryError(unknown_step_line(step)) from None


def parse_summary(step: str, payload: dict[str, Any]) -> StepSummary:
    """``payload`` as its step's contract; an unknown step or a mismatch is one :class:`SummaryError` line."""
    try:
        return summary_model(step).model_validate(payload)
    except ValidationError as exc:
        raise SummaryError(validation_error_line(exc, f"summary {step}")) from None


def read_summary(step: str, payload: dict[str, Any]) -> StepSummary:
    """A stored summary as its contract: a file without ``version`` was written before versions existed
    (version 1) and is migrated; one written by a newer distill-kit is one :class:`SummaryError` line."""
    model = summary_model(step)
    version = payload.get("version", 1)
    if isinstance(version, int) and version > model.schema_version:
        raise SummaryError(f"summary {step} was written at version {version} by a newer distill-kit; this one reads "
                           f"up to version {model.schema_version} (upgrade distill-kit to read this run)")
    return parse_summary(step, {**payload, "version": version})


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
    """Write via a temp file + rename so a killed run never leaves half a JSON file.

    A full or read-only disk raises ``OSError`` naming ``path`` (a failed ``write`` names no file, and the
    runner turns the error into one line naming the folder); the temp file is removed, the old file kept."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        os.chmod(tmp, _file_mode())  # mkstemp makes 0600 files; outputs are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def record_summary(run_dir: str, summary: StepSummary | str, payload: Mapping[str, Any] | None = None) -> None:
    """Save one step's typed summary as ``run_dir/summary/<step>.json`` (no-op when ``run_dir`` is "").

    Notebooks build their step's contract and hand it over: ``record_summary(run_dir,
    IdentitySummary.build(summary))``. ``record_summary(run_dir, "<step>", payload)`` does the same for a
    declared step name; a name no contract declares is one :class:`SummaryError` line. Interactive runs pass
    ``run_dir=""`` and write nothing (the summary is still checked, so a notebook run by hand finds a wrong
    key too). Calling twice for the same step replaces the earlier file.
    """
    if isinstance(summary, str):
        if payload is None:
            raise ValueError(f"record_summary(run_dir, {summary!r}, payload): the payload is missing")
        summary = summary_model(summary).build(payload)
    elif payload is not None:
        raise ValueError("record_summary(run_dir, summary): a typed summary carries its own fields; pass no payload")
    if not isinstance(summary, StepSummary) or not summary.step:
        raise ValueError(f"record_summary takes a step's summary (a StepSummary subclass), got {type(summary).__name__}")
    if not run_dir:
        return
    text = json.dumps(to_jsonable(summary.model_dump(exclude_unset=True)), indent=2, allow_nan=False)
    atomic_write_text(Path(run_dir) / SUMMARY_DIR / f"{summary.step}.json", text + "\n")


# ------------------------------------------------------------------------------------------ reading


def read_payloads(run_dir: str | Path) -> dict[str, dict]:
    """Every ``summary/<step>.json`` of a run as written, ``{step: payload}`` sorted by step.

    A version 1 file under a legacy name (:data:`LEGACY_NAMES`) is read under its step's name (a file under
    the current name wins); a superseded one (:data:`SUPERSEDED`) is left unread."""
    folder = Path(run_dir) / SUMMARY_DIR
    if not folder.is_dir():
        return {}
    found: dict[str, dict] = {}
    for f in sorted(folder.glob("*.json")):
        try:
            found[f.stem] = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SummaryError(f"{f}: not a JSON summary ({exc.msg}, line {exc.lineno}); run its step again") from None
    out = {name: p for name, p in found.items() if name not in LEGACY_NAMES and name not in SUPERSEDED}
    for old, new in LEGACY_NAMES.items():
        if old in found and new not in out:
            out[new] = found[old]
    return dict(sorted(out.items()))


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
            keep.update(LEGACY_NAMES.get(k, k) for k in st.get("summaries", [name]))
    return {k: v for k, v in payloads.items() if k in keep}


def finished_payloads(run_dir: str | Path) -> dict[str, dict]:
    """The finished steps' summaries as written (what ``summary.json`` copies)."""
    return _finished(run_dir, read_payloads(run_dir))


def _typed(payloads: dict[str, dict]) -> dict[str, StepSummary]:
    """The payloads whose step has a contract, typed (migrated from older versions)."""
    return {k: read_summary(k, v) for k, v in payloads.items() if k in _CONTRACTS}


def load_summaries(run_dir: str | Path) -> dict[str, StepSummary]:
    """Every declared summary of a run, typed (finished or not; see :func:`finished_summaries`).

    A summary whose step no contract in this process declares (another project's notebook) is not read;
    :func:`undeclared` names them."""
    return _typed(read_payloads(run_dir))


def finished_summaries(run_dir: str | Path) -> dict[str, StepSummary]:
    """The finished steps' declared summaries, typed."""
    return _typed(finished_payloads(run_dir))


def undeclared(payloads: Mapping[str, Any]) -> list[str]:
    """The summary names among ``payloads`` that no contract declares (not read as typed summaries)."""
    return [k for k in payloads if k not in _CONTRACTS]


def step_summaries(run_dir: str | Path) -> dict[str, list[str]]:
    """``{notebook stem: [summary names it wrote]}`` for the finished steps of a run (legacy names mapped)."""
    state = read_state(run_dir)
    return {name: [LEGACY_NAMES.get(k, k) for k in st.get("summaries", []) if k not in SUPERSEDED]
            for name, st in state.get("steps", {}).items() if st.get("status") == "ok"}


@dataclasses.dataclass
class RunSummaries:
    """A run's finished summaries, by step: what the report and the verdict read."""

    all: dict[str, StepSummary] = dataclasses.field(default_factory=dict)
    written_by: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    #: finished summaries no contract declares (not read; the report names them)
    undeclared: list[str] = dataclasses.field(default_factory=list)

    def get(self, model: type[StepSummary]) -> Any:
        """The summary ``model`` describes, or None when its step did not run (or did not finish)."""
        found = self.all.get(model.step)
        return found if isinstance(found, model) else None

    def missing(self, step: str) -> list[str]:
        """The upstream steps of ``step`` that did not finish in this run."""
        return missing_upstream(step, self.all)

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
    payloads = finished_payloads(run_dir)
    return RunSummaries(_typed(payloads), step_summaries(run_dir), undeclared(payloads))
