"""Published data this project analyses: open data folders, checksums, uniform polars loaders, the one
response schema and the prompt sets.

Every answers loader ends in ONE schema, :data:`RESPONSE_COLUMNS` = ``model, prompt_id, prompt, text``
(:func:`load_responses` for the published datasets and the response store, :func:`as_responses` for a frame
of one's own); RSE and lineage read only that. Prompt sets (:func:`prompt_set`: ``alpaca-eval``,
``arena-hard`` or a user's JSONL/CSV file) are ``prompt_set, prompt_id, prompt`` frames, sampled by the one
:func:`sample_prompts` (0 = all). Each dataset has one spelling (:data:`DATASETS`); the registry of upstream
files and their download live in :mod:`distill_kit.datafetch`.

Where data comes from. With ``DISTILL_KIT_DATA_DIR`` set, that folder (laid out like ``../shared/data``:
upstream files gzipped byte for byte) is the whole world: listing functions return the models whose files
it holds, nothing is downloaded. Without it, the git-ignored download cache (same layout) is used and a
registered file is downloaded from its public URL the first time a step asks for it
(``distill-kit data fetch`` fetches many at once).

Three kinds of file, and why they are treated differently:

* **registered** (``distill_kit/registry.csv``, regenerated from the data folder's ``upstream_manifest.csv``):
  the sha256 of the (decompressed) bytes is checked, so a truncated or edited copy is one clear error instead
  of a wrong number later;
* **unregistered** files in a data folder's data places (``identity/responses/``, ``alpaca_eval/outputs/``,
  ...; gzipped or not): the user's own data, e.g. another model's published answers. They load without a
  checksum, with one notice line naming them;
* **curated metadata** (lineage, model families, facts, the paper's tables): read from the folder when it has
  them (a user may curate their own lineage), else from the project's transcription
  ``distill_kit/data/published_meta.yaml``. Never checksummed.

A registered file a folder lacks is simply absent; only a step that asks for it by name errors (one line,
naming ``distill-kit data fetch``).

The paper's file quirks (upstream ``identity_jailbreak/data/strict_score/``), handled here:

* ``GPT_gemini-2.0-flash_0.035.csv`` holds the strict positives of ``gemini-2.0-flash-exp`` (the responses'
  name): :data:`STRICT_FILE_ALIASES` maps it;
* ``GPT_gemini-1.5-pro_0.029.csv`` has no responses file upstream: it is listed by ``data list`` but no model
  uses it (:data:`STRICT_WITHOUT_RESPONSES`);
* ``GPT_qwen2.5-72b-instruct_0.00.csv`` holds exactly that model's *loose* positives: it was never re-judged,
  so its ``strict_label`` is null (unknown), never presented as a strict label (:data:`STRICT_NOT_REJUDGED`);
  the paper's published SIS for it (0.00) stays in :func:`paper_scores`;
* ``qwen2.5-14b-instruct_0.0.csv`` is a header-only file: zero strict positives, a real 0, not missing.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import polars as pl
import yaml

from distill_kit.config import DATASETS, dataset_name

# the registry of upstream files (and DataError) lives in datafetch; read here as datasets.registry() etc. too
from distill_kit.datafetch import DataError, Entry, fetch, registry
from distill_kit.paths import DATA_DIR_ENV, cache_dir

TRANSCRIPTION = Path(__file__).with_name("data") / "published_meta.yaml"
PAPER_RSE_ALPACA = Path(__file__).with_name("data") / "paper_rse_alpaca.csv"

# curated metadata: path in a data folder -> key in the transcription
CURATED: dict[str, str] = {
    "identity/facts.json": "identity_facts",
    "identity/models.csv": "identity_models",
    "identity/models_extended.csv": "identity_models_extended",
    "identity/paper_scores.csv": "paper_scores",
    "identity/paper_rse_scores.csv": "paper_rse_scores",
    "alpaca_eval/lineage.csv": "alpaca_lineage",
    "alpaca_eval/lineage_extended.csv": "alpaca_lineage_extended",
}
# where data files live in a folder (each may also be gzipped: name + ".gz")
DATA_PLACES: tuple[tuple[str, str], ...] = (
    ("identity/responses/", ".jsonl"), ("identity/strict_positives/", ".csv"), ("alpaca_eval/outputs/", ".json"),
    ("arena_hard/answers/", ".jsonl"), ("arena_hard/", "question.jsonl"), ("identity/", "seed_templates.json"),
    ("identity/", "queries_reference.csv"),
)
# the strict-positive file is named after a shorter model name than the responses
STRICT_FILE_ALIASES: dict[str, str] = {"gemini-2.0-flash": "gemini-2.0-flash-exp"}
# strict files whose model has no responses file upstream (kept in the registry, used by no model)
STRICT_WITHOUT_RESPONSES: frozenset[str] = frozenset({"gemini-1.5-pro"})
# strict files that are the model's loose positives, never re-judged: strict_label is unknown (null)
STRICT_NOT_REJUDGED: dict[str, str] = {
    "qwen2.5-72b-instruct": "upstream strict file equals its loose positives (never re-judged); "
                            "the paper publishes SIS 0.00",
}


def data_dir() -> Path | None:
    """The folder named by ``DISTILL_KIT_DATA_DIR``, or None (then the download cache is used)."""
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    if not path.is_dir():
        raise DataError(f"{DATA_DIR_ENV}={value} is not a directory")
    return path


def download_dir() -> Path:
    """The download cache, laid out like a data folder."""
    return cache_dir() / "data"


def data_root() -> tuple[Path, bool]:
    """(folder read from, whether registered files it lacks are downloaded on demand)."""
    root = data_dir()
    return (root, False) if root is not None else (download_dir(), True)


def _is_data_file(rel: str) -> bool:
    name = rel.removesuffix(".gz")
    for prefix, tail in DATA_PLACES:
        if name.startswith(prefix):
            rest = name[len(prefix):]
            if ("/" not in rest and rest.endswith(tail) and len(rest) > len(tail)) if tail.startswith(".") else rest == tail:
                return True
    return False


def scan(root: Path) -> list[str]:
    """Data files a folder holds (relative posix paths), curated metadata excluded."""
    found: set[str] = set()
    for prefix, _ in DATA_PLACES:
        folder = root / prefix
        if folder.is_dir():
            for p in folder.iterdir():
                rel = f"{prefix}{p.name}"
                if p.is_file() and _is_data_file(rel):
                    found.add(rel)
    return sorted(found)


_NOTICED: set[str] = set()


def unregistered(root: Path | None = None) -> list[str]:
    """Files of a folder that the registry does not know: the user's own data (no checksum)."""
    root = root or data_root()[0]
    return [p for p in scan(root) if p not in registry()]


def _notice(root: Path, paths: Sequence[str]) -> None:
    """One notice line per folder naming all its unregistered files (not repeated within a process)."""
    if paths and str(root) not in _NOTICED:
        _NOTICED.add(str(root))
        print(f"note: {len(paths)} file(s) in {root} are not in the registry and load as your own data "
              f"(no checksum): {', '.join(paths)}", file=sys.stderr)


def files(prefix: str) -> list[str]:
    """Data files under a folder, e.g. ``files("alpaca_eval/outputs/")``: what the data folder holds
    (plus, with no folder configured, every registered file, downloaded when read)."""
    root, downloads = data_root()
    present = scan(root)
    _notice(root, [p for p in present if p not in registry()])  # the user's own data: named once
    chosen = {p for p in present if p.startswith(prefix)}
    if downloads:
        chosen |= {p for p in registry() if p.startswith(prefix)}
    return sorted(chosen)


def _check(entry: Entry, data: bytes, where: Path | str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise DataError(f"corrupt data file {where}: sha256 {digest[:12]}… expected {entry.sha256[:12]}…; "
                        "delete it and fetch it again (distill-kit data fetch)")
    return data


def read_bytes(path: str) -> bytes:
    """The bytes of one data file (upstream bytes, decompressed); registered files are verified."""
    root, downloads = data_root()
    return _read(str(root), downloads, path)


@lru_cache(maxsize=128)
def _read(root_s: str, downloads: bool, path: str) -> bytes:
    root = Path(root_s)
    file = root / path
    entry = registry().get(path)
    if not file.is_file():
        if entry is not None and downloads:
            fetch([entry], root, progress=False)
        elif entry is not None:
            raise DataError(f"missing data file {path} in {DATA_DIR_ENV}={root}; "
                            f"get it with: distill-kit data fetch {path}")
        else:
            raise DataError(f"unknown data file {path!r}: not in {root} and not in distill_kit/registry.csv")
    raw = file.read_bytes()
    if path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"corrupt data file {file}: not a valid gzip ({exc})") from None
    if entry is None:
        _notice(root, unregistered(root))
        return raw
    return _check(entry, raw, file)


def clear_caches() -> None:
    """Forget cached file contents and frames (tests that rewrite a folder in place call this)."""
    _read.cache_clear()
    _identity_frame.cache_clear()
    _alpaca_frame.cache_clear()
    _NOTICED.clear()


read_bytes.cache_clear = clear_caches  # type: ignore[attr-defined]  # older callers


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for suffix in (".gz", ".jsonl", ".json", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _stems(prefix: str) -> dict[str, str]:
    """stem -> path under ``prefix`` (a registered ``.gz`` wins over a user's plain copy of the same name)."""
    out: dict[str, str] = {}
    for p in files(prefix):
        s = _stem(p)
        if s not in out or p in registry():
            out[s] = p
    return out


def _path_of(prefix: str, stem: str, what: str) -> str:
    path = _stems(prefix).get(stem)
    if path is None:
        raise DataError(f"no {what} {stem!r} in {data_root()[0]}")
    return path


def _jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@lru_cache(maxsize=1)
def _transcription() -> dict[str, Any]:
    return yaml.safe_load(TRANSCRIPTION.read_text(encoding="utf-8"))


def curated_source(path: str) -> str:
    """Where a curated table comes from: the folder's file, or ``transcription``."""
    root, _ = data_root()
    return str(root / path) if (root / path).is_file() else "transcription"


def _curated(path: str, key: str | None = None) -> Any:
    """Curated metadata: the data folder's copy when it has one (not checksummed), else the transcription."""
    root, _ = data_root()
    file = root / path
    if file.is_file():
        raw = file.read_bytes()
        try:
            return json.loads(raw) if path.endswith(".json") else _csv_rows(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"unreadable curated file {file}: {exc}") from None
    return _transcription()[key or CURATED[path]]


def _select(names: Iterable[str], wanted: Sequence[str] | None, what: str, prefix: str = "") -> list[str]:
    names = list(names)
    if wanted is None:
        return names
    if not wanted:
        raise DataError(f"no {what}s selected")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        registered = {_stem(p) for p in registry() if prefix and p.startswith(prefix)}
        absent = [u for u in unknown if u in registered]
        hint = (f" ({', '.join(absent)}: registered but not in this folder; get with: distill-kit data fetch "
                f"'{prefix}{absent[0]}*')") if absent else ""
        raise DataError(f"unknown {what}: {', '.join(unknown)}; available: {', '.join(names)}{hint}")
    return [n for n in names if n in set(wanted)]


# ---------------------------------------------------------------- identity (ICE)

def identity_facts() -> dict[str, str]:
    """Family -> the true identity statement the paper's judge compares with."""
    return dict(_curated("identity/facts.json"))


def identity_models() -> pl.DataFrame:
    """Model -> family for the paper's 14 identity models (``models_extended.csv``, falling back to ``models.csv``),
    the folder's rows first, then the transcription's for models the folder's tables do not name."""
    rows: dict[str, dict[str, str]] = {}
    root, _ = data_root()
    for path in ("identity/models_extended.csv", "identity/models.csv"):
        if (root / path).is_file():
            for r in _curated(path):
                rows.setdefault(r["model"], r)
    for r in _transcription()["identity_models_extended"]:
        rows.setdefault(r["model"], r)
    return pl.DataFrame([{k: r.get(k) or None for k in ("model", "family", "upstream_file")} for r in rows.values()],
                        schema={"model": pl.String, "family": pl.String, "upstream_file": pl.String})


def identity_family(model: str) -> str | None:
    """The model's family from the model tables, else the family whose name starts the model's name
    (``qwen2.5-32b`` -> ``qwen``), else None."""
    match = identity_models().filter(pl.col("model") == model)
    if match.height and match["family"][0]:
        return match["family"][0]
    return next((f for f in sorted(identity_facts(), key=len, reverse=True) if model.lower().startswith(f)), None)


def paper_scores() -> pl.DataFrame:
    """The paper's published Loose/Strict Identity Scores (its tables and strict-file names)."""
    rows = _curated("identity/paper_scores.csv")
    return pl.DataFrame(rows).select(
        pl.col("model").cast(pl.String),
        pl.col("loose_identity_score").cast(pl.Float64),
        pl.col("strict_identity_score").cast(pl.Float64),
    )


def paper_rse_scores() -> pl.DataFrame:
    """The paper's RSE table: 1-5 similarity to GPT-4o-0806 per prompt set and the average;
    ``identity_model`` names the corresponding identity model (null where there is none)."""
    rows = _curated("identity/paper_rse_scores.csv")
    nums = ("arena_hard", "numina", "sharegpt", "average")
    return pl.DataFrame([{"paper_name": r["paper_name"], "identity_model": r.get("identity_model") or None,
                          **{k: float(r[k]) for k in nums}} for r in rows],
                        schema={"paper_name": pl.String, "identity_model": pl.String, **{k: pl.Float64 for k in nums}})


def paper_rse_alpaca() -> pl.DataFrame:
    """The project's mapping of the paper's RSE rows to AlpacaEval models (``distill_kit/data/``): ``match``
    says how close (``same model``, ``same line`` = an earlier release of the product line, ``same developer``)."""
    rows = _csv_rows(PAPER_RSE_ALPACA.read_bytes())
    return pl.DataFrame([{k: r.get(k) or None for k in ("paper_name", "alpaca_model", "match", "note")} for r in rows],
                        schema={"paper_name": pl.String, "alpaca_model": pl.String, "match": pl.String, "note": pl.String})


def seed_templates() -> dict[str, Any]:
    """GPTFuzzer/EasyJailbreak seed file: {'attack': {name: [template, ...]}, 'judge': {...}}."""
    return json.loads(read_bytes("identity/seed_templates.json"))


def identity_response_models() -> list[str]:
    """Identity models whose jailbreak answers the data folder holds."""
    return sorted(_stems("identity/responses/"))


def strict_file_model(path: str) -> str:
    """The responses' model name a strict-positive file belongs to (``GPT_<model>_<score>.csv``, aliases applied)."""
    stem = _stem(path).removeprefix("GPT_")
    name = stem.rsplit("_", 1)[0] if "_" in stem else stem
    return STRICT_FILE_ALIASES.get(name, name)


def strict_positive_files() -> dict[str, list[str]]:
    """model -> its strict-positive files present in the folder."""
    out: dict[str, list[str]] = {}
    for path in files("identity/strict_positives/"):
        out.setdefault(strict_file_model(path), []).append(path)
    return out


def _first_response(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = ast.literal_eval(value)
            return str(parsed[0]) if parsed else ""
        except (ValueError, SyntaxError):
            return value
    return "" if value is None else str(value)


def _strict_keys(model: str) -> set[tuple[str, str, str]] | None:
    """(template, query, response) of the strict positives; None when the model has no usable strict label."""
    paths = strict_positive_files().get(model)
    if not paths or model in STRICT_NOT_REJUDGED:
        return None
    keys: set[tuple[str, str, str]] = set()
    for path in paths:
        for row in _csv_rows(read_bytes(path)):  # a header-only file (qwen2.5-14b-instruct) is zero positives
            keys.add((row["jailbreak_prompt"], row["query"], _first_response(row["target_responses"])))
    return keys


def fill_template(template: str, query: str) -> str:
    """Put a question into a jailbreak template's ``{query}`` slot (no other braces are touched)."""
    return template.replace("{query}", query)


@lru_cache(maxsize=32)
def _identity_frame(root: str, model: str) -> pl.DataFrame:
    rows = _jsonl(read_bytes(_path_of("identity/responses/", model, "identity model")))
    strict = _strict_keys(model)
    family = identity_family(model)
    if family is None:  # the judge needs the model's true identity
        raise DataError(f"identity model {model!r} has no family: add a row '{model},<family>,' to "
                        f"identity/models_extended.csv in {root} (families: {', '.join(sorted(identity_facts()))})")
    records = []
    for i, r in enumerate(rows):
        response = _first_response(r.get("target_responses"))
        records.append({
            "model": model, "family": family, "row": i, "template": r["jailbreak_prompt"], "query": r["query"],
            "prompt": fill_template(r["jailbreak_prompt"], r["query"]), "response": response,
            "loose_label": bool(r.get("eval_results")),
            "strict_label": None if strict is None else (r["jailbreak_prompt"], r["query"], response) in strict,
        })
    return pl.DataFrame(records, schema={
        "model": pl.String, "family": pl.String, "row": pl.Int64, "template": pl.String, "query": pl.String,
        "prompt": pl.String, "response": pl.String, "loose_label": pl.Boolean, "strict_label": pl.Boolean})


def identity_responses(models: Sequence[str] | None = None) -> pl.DataFrame:
    """The paper's jailbreak attempts with GPT-4o-mini loose labels and strict labels, one row per attempt.

    ``strict_label`` is null for a model without a usable strict file (no file, or one never re-judged)."""
    chosen = _select(identity_response_models(), models, "identity model", "identity/responses/")
    if not chosen:
        raise DataError(f"no identity responses in {data_root()[0]} (identity/responses/)")
    root = str(data_root()[0])
    return pl.concat([_identity_frame(root, m) for m in chosen])


# ---------------------------------------------------------------- AlpacaEval (RSE, lineage)

def alpaca_models() -> list[str]:
    """AlpacaEval models whose outputs the data folder holds."""
    return sorted(_stems("alpaca_eval/outputs/"))


@lru_cache(maxsize=64)
def _alpaca_frame(root: str, model: str) -> pl.DataFrame:
    rows = json.loads(read_bytes(_path_of("alpaca_eval/outputs/", model, "AlpacaEval model")))
    return pl.DataFrame(
        {"model": [model] * len(rows), "instruction": [r["instruction"] for r in rows],
         "dataset": [r.get("dataset", "") for r in rows], "output": [r.get("output") or "" for r in rows]},
        schema={"model": pl.String, "instruction": pl.String, "dataset": pl.String, "output": pl.String},
    ).unique(subset=["instruction"], keep="first", maintain_order=True)


def alpaca_outputs(models: Sequence[str] | None = None) -> pl.DataFrame:
    """AlpacaEval answers; align models by ``instruction`` (a few files lack one, some outputs are empty)."""
    chosen = _select(alpaca_models(), models, "AlpacaEval model", "alpaca_eval/outputs/")
    if not chosen:
        raise DataError(f"no AlpacaEval outputs in {data_root()[0]} (alpaca_eval/outputs/)")
    root = str(data_root()[0])
    return pl.concat([_alpaca_frame(root, m) for m in chosen])


LINEAGE_COLUMNS = ("model", "role", "family", "line", "teacher", "training_data_note")


def lineage(extended: bool = True) -> pl.DataFrame:
    """Documented training lineage of AlpacaEval models. Default: ``lineage_extended.csv`` (superset), falling
    back to ``lineage.csv``; a folder's own file wins over the transcription. ``extended=False``: ``lineage.csv``."""
    root, _ = data_root()
    if not extended:
        rows = _curated("alpaca_eval/lineage.csv")
    elif (root / "alpaca_eval/lineage_extended.csv").is_file() or not (root / "alpaca_eval/lineage.csv").is_file():
        rows = _curated("alpaca_eval/lineage_extended.csv")
    else:
        rows = _curated("alpaca_eval/lineage.csv")
    return pl.DataFrame([{c: (r.get(c) or None) for c in LINEAGE_COLUMNS} for r in rows],
                        schema={c: pl.String for c in LINEAGE_COLUMNS})


def lineage_source() -> str:
    """Which lineage file :func:`lineage` reads (for provenance lines)."""
    root, _ = data_root()
    for path in ("alpaca_eval/lineage_extended.csv", "alpaca_eval/lineage.csv"):
        if (root / path).is_file():
            return str(root / path)
    return "transcription of alpaca_eval/lineage_extended.csv"


# ---------------------------------------------------------------- Arena-Hard

def arena_questions() -> pl.DataFrame:
    rows = _jsonl(read_bytes(_path_of("arena_hard/", "question", "Arena-Hard question file")))
    prompts = [r["prompt"] if "prompt" in r else r["turns"][0]["content"] for r in rows]
    return pl.DataFrame({"uid": [r.get("uid") or r.get("question_id") for r in rows],
                         "category": [r.get("category", "") for r in rows],
                         "cluster": [r.get("cluster", "") for r in rows], "prompt": prompts})


def arena_models() -> list[str]:
    return sorted(_stems("arena_hard/answers/"))


def _answer_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, dict):
        return str(content.get("answer", ""))
    return str(content or "")


def arena_answers(models: Sequence[str] | None = None) -> pl.DataFrame:
    chosen = _select(arena_models(), models, "Arena-Hard model", "arena_hard/answers/")
    if not chosen:
        raise DataError(f"no Arena-Hard answers in {data_root()[0]} (arena_hard/answers/)")
    questions = dict(zip(*arena_questions().select("uid", "prompt").to_dict(as_series=False).values()))
    records = []
    for model in chosen:
        for r in _jsonl(read_bytes(_path_of("arena_hard/answers/", model, "Arena-Hard model"))):
            answers = [m for m in r.get("messages", []) if m.get("role") == "assistant"]
            if not answers and "choices" in r:
                answers = [{"content": r["choices"][0]["turns"][0]["content"]}]
            records.append({"model": model, "uid": r.get("uid") or r.get("question_id"),
                            "answer": _answer_text(answers[-1]) if answers else ""})
    frame = pl.DataFrame(records, schema={"model": pl.String, "uid": pl.String, "answer": pl.String})
    return frame.with_columns(pl.col("uid").replace_strict(questions, default=None).alias("prompt")).select(
        "model", "uid", "prompt", "answer")


# ---------------------------------------------------------------- dataset names

# ---------------------------------------------------------------- prompt sets

#: Built-in prompt sets (names accepted by :func:`prompt_set`); anything else is read as a file path.
BUILTIN_PROMPT_SETS: tuple[str, ...] = ("arena-hard", "alpaca-eval")


def normalise_prompt(text: str) -> str:
    """Key used to align responses by prompt text: whitespace collapsed, ends stripped."""
    return " ".join(str(text).split())


def prompt_key(text: str) -> str:
    """Stable short id of a prompt (sha1 of ``normalise_prompt``), for prompt sets without ids."""
    return hashlib.sha1(normalise_prompt(text).encode("utf-8")).hexdigest()[:12]


_PROMPT_COLUMNS = ("prompt", "instruction", "question", "turns", "text", "query", "input")
_ID_COLUMNS = ("prompt_id", "id", "uid", "question_id")


def _first_text(value: Any) -> str | None:
    """Prompt text from a cell: a string, or the first user turn of a list/dict (MT-Bench style)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _first_text(value[0])
    if isinstance(value, dict):
        for k in ("content", "text", "prompt"):
            if isinstance(value.get(k), str):
                return value[k]
    return None


def load_prompts(path: str | Path, name: str | None = None) -> pl.DataFrame:
    """Read a user prompt file (JSONL or CSV) -> ``prompt_set, prompt_id, prompt``.

    The prompt column is the first of ``prompt, instruction, question, turns, text, query, input``
    present; the id column the first of ``prompt_id, id, uid, question_id`` (else a hash of the
    text). Duplicate prompts keep their first row. Raises ``ValueError`` with one clear line on a
    missing/empty/unreadable file or when no prompt column exists.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"prompt file not found: {p}")
    suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix
    raw = p.read_bytes()
    if p.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"prompt file {p.name} is not UTF-8 text") from exc
    rows: list[dict[str, Any]]
    if suffix.startswith(".jsonl") or suffix.startswith(".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"prompt file {p.name}: line {n} is not valid JSON ({exc.msg})") from exc
            rows.append(obj if isinstance(obj, dict) else {"prompt": obj})
    elif suffix.startswith(".csv") or suffix.startswith(".tsv"):
        delim = "\t" if suffix.startswith(".tsv") else ","
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delim))
    else:
        raise ValueError(f"prompt file {p.name}: expected .jsonl or .csv (optionally .gz), got {suffix or 'no suffix'}")
    if not rows:
        raise ValueError(f"prompt file {p.name} holds no rows")
    cols = set().union(*(r.keys() for r in rows))
    pcol = next((c for c in _PROMPT_COLUMNS if c in cols), None)
    if pcol is None:
        raise ValueError(
            f"prompt file {p.name}: no prompt column; expected one of {', '.join(_PROMPT_COLUMNS)}, found {', '.join(sorted(cols))}"
        )
    icol = next((c for c in _ID_COLUMNS if c in cols), None)
    out: list[dict[str, str]] = []
    for r in rows:
        prompt = _first_text(r.get(pcol))
        if prompt is None or not prompt.strip():
            continue
        pid = str(r[icol]) if icol and r.get(icol) not in (None, "") else prompt_key(prompt)
        out.append({"prompt_id": pid, "prompt": prompt})
    if not out:
        raise ValueError(f"prompt file {p.name}: column {pcol!r} holds no non-empty prompt")
    frame = pl.DataFrame(out).unique(subset="prompt", keep="first", maintain_order=True)
    return frame.select(pl.lit(name or p.stem.split(".")[0]).alias("prompt_set"), "prompt_id", "prompt")


def prompt_set(name: str, sample_size: int | None = None, seed: int = 0) -> pl.DataFrame:
    """A prompt set -> ``prompt_set, prompt_id, prompt``.

    ``name``: ``"arena-hard"`` (Arena-Hard v0.1, 500 prompts), ``"alpaca-eval"`` (805
    instructions) or a path to a JSONL/CSV file (``load_prompts``). ``sample_size`` draws that many
    prompts without replacement with ``seed`` (None or 0 = all), keeping the set's order.
    """
    name = dataset_name(name)
    if name == "arena-hard":
        q = arena_questions()
        frame = q.select(pl.lit(name).alias("prompt_set"), pl.col("uid").cast(pl.Utf8).alias("prompt_id"), "prompt")
    elif name == "alpaca-eval":
        ins = alpaca_outputs().select("instruction").unique(maintain_order=True)
        frame = ins.select(
            pl.lit(name).alias("prompt_set"),
            pl.col("instruction").map_elements(prompt_key, return_dtype=pl.Utf8).alias("prompt_id"),
            pl.col("instruction").alias("prompt"),
        )
    elif Path(name).expanduser().suffix in (".jsonl", ".json", ".csv", ".tsv", ".gz") or Path(name).expanduser().exists():
        frame = load_prompts(name)
    else:
        raise ValueError(f"unknown prompt set {name!r}: use one of {', '.join(BUILTIN_PROMPT_SETS)} or a .jsonl/.csv path")
    return sample_prompts(frame, sample_size, seed)


def _sample_rows(n: int, sample_size: int | None, seed: int) -> list[int] | None:
    """Sorted row indices of a seeded sample of ``sample_size`` of ``n`` rows; None = all rows."""
    if not sample_size or sample_size >= n:
        return None
    if sample_size < 0:
        raise ValueError(f"sample_size must be >= 0, got {sample_size}")
    return np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False)).tolist()


def sample_prompts(prompts: pl.DataFrame | Sequence[str], sample_size: int | None, seed: int = 0):
    """A seeded sample of ``sample_size`` prompts without replacement; ``0`` or None = all of them.

    A frame (a prompt set) keeps its rows' order; a sequence of prompt texts is deduplicated and sorted first
    and the sample comes back sorted. Both draw the same rows for the same pool size and seed."""
    if isinstance(prompts, pl.DataFrame):
        rows = _sample_rows(prompts.height, sample_size, seed)
        return prompts if rows is None else prompts[rows]
    uniq = sorted(set(prompts))
    rows = _sample_rows(len(uniq), sample_size, seed)
    return uniq if rows is None else [uniq[i] for i in rows]


# ---------------------------------------------------------------- the one response schema

#: Every answers frame has these columns (loaders may add extras after them): ``prompt_id`` is the
#: prompt set's id (Arena-Hard ``uid``, a stored request's ``prompt_id``) or :func:`prompt_key` of the text.
RESPONSE_COLUMNS: tuple[str, ...] = ("model", "prompt_id", "prompt", "text")
#: Where :func:`load_responses` reads answers from.
RESPONSE_SOURCES: tuple[str, ...] = (*DATASETS, "store")
# older frames' column names for the schema's columns (used only when the schema's own name is absent)
_OLD_COLUMNS = {"instruction": "prompt", "query": "prompt", "output": "text", "answer": "text", "response": "text"}


def as_responses(frame: pl.DataFrame, *, keep_empty: bool = False) -> pl.DataFrame:
    """A frame of answers in the one response schema (:data:`RESPONSE_COLUMNS`).

    Older column names (``instruction``/``query`` for the prompt, ``output``/``answer``/``response`` for the
    text) are read when the schema's name is absent; a missing ``prompt_id`` is :func:`prompt_key` of the prompt.
    Empty answers are dropped unless ``keep_empty`` (RSE counts them when aligning); a model's repeated prompt
    keeps its first answer, so every model has at most one answer per prompt."""
    cols = set(frame.columns)
    out = frame.rename({k: v for k, v in _OLD_COLUMNS.items() if k in cols and v not in cols})
    missing = {"model", "prompt", "text"} - set(out.columns)
    if missing:
        raise DataError(f"responses frame needs columns model, prompt, text; missing {sorted(missing)}")
    if "prompt_id" not in out.columns:
        out = out.with_columns(pl.col("prompt").map_elements(prompt_key, return_dtype=pl.Utf8).alias("prompt_id"))
    out = out.select(pl.col("model").cast(pl.Utf8), pl.col("prompt_id").cast(pl.Utf8), pl.col("prompt").cast(pl.Utf8),
                     pl.col("text").cast(pl.Utf8))
    if not keep_empty:
        out = out.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars().str.len_chars() > 0))
    return out.unique(subset=["model", "prompt"], keep="first", maintain_order=True)


def response_models(source: str) -> list[str]:
    """Models whose published answers a dataset's folder holds (``alpaca-eval``, ``arena-hard``)."""
    source = dataset_name(source)
    if source == "alpaca-eval":
        return alpaca_models()
    if source == "arena-hard":
        return arena_models()
    raise DataError(f"no published responses for {source!r}; published datasets: {', '.join(DATASETS)}")


def load_responses(source: str, models: Sequence[str] | None = None, store_path: str | None = None, *,
                   keep_empty: bool = False) -> pl.DataFrame:
    """Answers in the one response schema (``model, prompt_id, prompt, text``) from a published dataset
    (``alpaca-eval``, ``arena-hard``: every model the data folder holds, also the user's own files) or from
    a response store (``store``: its answered requests; ``store_path`` empty/None = the default store).

    ``models`` empty/None = all of the source. Empty answers are dropped unless ``keep_empty``; see
    :func:`as_responses`. Raises :class:`DataError` (one line) when nothing is left."""
    source = dataset_name(source)
    wanted = list(models) if models else None
    if source == "alpaca-eval":
        frame = alpaca_outputs(wanted).select(
            "model", pl.col("instruction").map_elements(prompt_key, return_dtype=pl.Utf8).alias("prompt_id"),
            pl.col("instruction").alias("prompt"), pl.col("output").alias("text"))
    elif source == "arena-hard":
        frame = arena_answers(wanted).select("model", pl.col("uid").alias("prompt_id"), "prompt",
                                             pl.col("answer").alias("text"))
    elif source == "store":
        from distill_kit.store import Store

        stored = Store(store_path or None).frame(wanted)
        stored = stored.filter(pl.col("text").is_not_null())
        ids = pl.col("prompt").map_elements(prompt_key, return_dtype=pl.Utf8)
        if "prompt_id" in stored.columns:
            ids = pl.coalesce(pl.col("prompt_id"), ids)
        frame = stored.select("model", ids.alias("prompt_id"), "prompt", "text")
    else:
        raise DataError(f"unknown response source {source!r}; choose from {', '.join(RESPONSE_SOURCES)}")
    out = as_responses(frame, keep_empty=keep_empty)
    if out.is_empty():
        raise DataError(f"no responses in {source!r} for models {wanted}")
    return out


# ---------------------------------------------------------------- folder status (`distill-kit data list`)

def folder_status(root: Path | None = None, pattern: str | None = None) -> pl.DataFrame:
    """One row per registered, present or curated file: ``status`` is ``present`` (registered, here),
    ``absent`` (registered, not here), ``unverified`` (here, not registered: no checksum) or ``curated``."""
    import fnmatch

    root = root or data_root()[0]
    here = set(scan(root))
    rows = [{"path": p, "status": "present" if p in here else "absent", "size": e.size, "url": e.url}
            for p, e in registry().items()]
    rows += [{"path": p, "status": "unverified", "size": (root / p).stat().st_size, "url": None}
             for p in sorted(here - set(registry()))]
    rows += [{"path": p, "status": "curated" if (root / p).is_file() else "transcription", "size": None, "url": None}
             for p in CURATED]
    if pattern:
        rows = [r for r in rows if fnmatch.fnmatch(r["path"], pattern) or pattern in r["path"]]
    return pl.DataFrame(rows, schema={"path": pl.String, "status": pl.String, "size": pl.Int64, "url": pl.String}).sort("path")


#: the public names; DataError, dataset_name and registry live in datafetch and config and are read here too
__all__ = [
    "alpaca_models", "alpaca_outputs", "arena_answers", "arena_models", "arena_questions", "as_responses",
    "BUILTIN_PROMPT_SETS", "clear_caches", "CURATED", "curated_source", "data_dir", "DATA_PLACES", "data_root",
    "DataError", "dataset_name", "download_dir", "files", "fill_template", "folder_status", "identity_facts",
    "identity_family", "identity_models", "identity_response_models", "identity_responses", "lineage",
    "LINEAGE_COLUMNS", "lineage_source", "load_prompts", "load_responses", "normalise_prompt", "PAPER_RSE_ALPACA",
    "paper_rse_alpaca", "paper_rse_scores", "paper_scores", "prompt_key", "prompt_set", "read_bytes", "registry",
    "RESPONSE_COLUMNS", "response_models", "RESPONSE_SOURCES", "sample_prompts", "scan", "seed_templates",
    "STRICT_FILE_ALIASES", "strict_file_model", "STRICT_NOT_REJUDGED", "strict_positive_files",
    "STRICT_WITHOUT_RESPONSES", "TRANSCRIPTION", "unregistered",
]
