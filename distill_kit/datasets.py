"""Published data this project analyses: registry, resolution, checksums and uniform polars loaders.

Resolution order for every file: the data directory named by ``DISTILL_KIT_DATA_DIR`` (laid out like
``../shared/data``: upstream files gzipped byte for byte), then the git-ignored download cache, filled
from the file's public URL. The sha256 of the (decompressed) bytes is checked either way, so a
truncated or edited file is one clear error instead of a wrong number later.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import json
import os
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import polars as pl
import yaml

from distill_kit.config import DATA_DIR_ENV, PROJECT_ROOT, cache_dir

REGISTRY_FILE = Path(__file__).with_name("registry.csv")
BUNDLED_META = PROJECT_ROOT / "data" / "published_meta.yaml"


class DataError(ValueError):
    """A data file is missing, corrupt or unknown: one line saying which and what to do."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative path inside the data directory (gzipped where upstream is not)
    sha256: str  # of the upstream bytes (decompressed)
    size: int
    url: str | None  # public raw-file URL at a pinned commit; None for curated metadata

    @property
    def cache_name(self) -> str:
        return self.path.removesuffix(".gz")


@lru_cache(maxsize=1)
def registry() -> dict[str, Entry]:
    with REGISTRY_FILE.open(encoding="utf-8") as fh:
        return {r["path"]: Entry(r["path"], r["sha256"], int(r["size"]), r["url"] or None) for r in csv.DictReader(fh)}


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    if not path.is_dir():
        raise DataError(f"{DATA_DIR_ENV}={value} is not a directory")
    return path


def _entry(path: str) -> Entry:
    try:
        return registry()[path]
    except KeyError:
        raise DataError(f"unknown data file {path!r} (not in distill_kit/registry.csv)") from None


def _check(entry: Entry, data: bytes, where: Path | str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise DataError(f"corrupt data file {where}: sha256 {digest[:12]}… expected {entry.sha256[:12]}…; "
                        "delete it and fetch it again")
    return data


def _download(entry: Entry, target: Path) -> None:
    if not entry.url:
        raise DataError(f"{entry.path} has no public URL; set {DATA_DIR_ENV} to a folder that holds it")
    try:
        with urllib.request.urlopen(entry.url, timeout=60) as resp:  # noqa: S310 (pinned https URL)
            data = resp.read()
    except OSError as exc:
        raise DataError(f"cannot download {entry.path} from {entry.url}: {exc}; "
                        f"or set {DATA_DIR_ENV} to a local copy") from None
    _check(entry, data, entry.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)


@lru_cache(maxsize=128)
def read_bytes(path: str) -> bytes:
    """The verified upstream bytes of one registry file."""
    entry = _entry(path)
    root = data_dir()
    if root is not None:
        file = root / entry.path
        if not file.exists():
            raise DataError(f"missing data file {file} (from {DATA_DIR_ENV}={root})")
        raw = file.read_bytes()
        if entry.path.endswith(".gz"):
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise DataError(f"corrupt data file {file}: not a valid gzip ({exc})") from None
        return _check(entry, raw, file)
    target = cache_dir() / "data" / entry.cache_name
    if not target.exists():
        _download(entry, target)
    return _check(entry, target.read_bytes(), target)


def files(prefix: str) -> list[str]:
    """Registry paths under a folder, e.g. ``files("alpaca_eval/outputs/")``."""
    return sorted(p for p in registry() if p.startswith(prefix))


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for suffix in (".gz", ".jsonl", ".json", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@lru_cache(maxsize=1)
def _bundled_meta() -> dict[str, Any]:
    return yaml.safe_load(BUNDLED_META.read_text(encoding="utf-8"))


def _curated(path: str, key: str) -> Any:
    """Curated metadata: the data directory's copy when one is set, else the project's transcription."""
    if data_dir() is not None:
        raw = read_bytes(path)
        return json.loads(raw) if path.endswith(".json") else _csv_rows(raw)
    return _bundled_meta()[key]


def _select(names: Iterable[str], wanted: Sequence[str] | None, what: str) -> list[str]:
    names = list(names)
    if wanted is None:
        return names
    if not wanted:
        raise DataError(f"no {what}s selected")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise DataError(f"unknown {what}: {', '.join(unknown)}; available: {', '.join(names)}")
    return [n for n in names if n in set(wanted)]


# ---------------------------------------------------------------- identity (ICE)

def identity_facts() -> dict[str, str]:
    """Family -> the true identity statement the paper's judge compares with."""
    return dict(_curated("identity/facts.json", "identity_facts"))


def identity_models() -> pl.DataFrame:
    rows = _curated("identity/models.csv", "identity_models")
    return pl.DataFrame(rows, schema={"model": pl.String, "family": pl.String, "upstream_file": pl.String})


def identity_family(model: str) -> str | None:
    match = identity_models().filter(pl.col("model") == model)
    return match["family"][0] if match.height else None


def paper_scores() -> pl.DataFrame:
    rows = _curated("identity/paper_scores.csv", "paper_scores")
    return pl.DataFrame(rows).select(
        pl.col("model").cast(pl.String),
        pl.col("loose_identity_score").cast(pl.Float64),
        pl.col("strict_identity_score").cast(pl.Float64),
    )


def seed_templates() -> dict[str, Any]:
    """GPTFuzzer/EasyJailbreak seed file: {'attack': {name: [template, ...]}, 'judge': {...}}."""
    return json.loads(read_bytes("identity/seed_templates.json"))


def identity_response_models() -> list[str]:
    return [_stem(p) for p in files("identity/responses/")]


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


def _strict_keys(model: str) -> set[tuple[str, str, str]]:
    keys: set[tuple[str, str, str]] = set()
    for path in files("identity/strict_positives/"):
        stem = _stem(path).removeprefix("GPT_")
        if stem.rsplit("_", 1)[0] != model:
            continue
        for row in _csv_rows(read_bytes(path)):
            keys.add((row["jailbreak_prompt"], row["query"], _first_response(row["target_responses"])))
    return keys


def fill_template(template: str, query: str) -> str:
    """Put a question into a jailbreak template's ``{query}`` slot (no other braces are touched)."""
    return template.replace("{query}", query)


@lru_cache(maxsize=32)
def _identity_frame(model: str) -> pl.DataFrame:
    rows = _jsonl(read_bytes(f"identity/responses/{model}.jsonl.gz"))
    strict = _strict_keys(model)
    family = identity_family(model)
    records = []
    for i, r in enumerate(rows):
        response = _first_response(r.get("target_responses"))
        records.append({
            "model": model, "family": family, "row": i, "template": r["jailbreak_prompt"], "query": r["query"],
            "prompt": fill_template(r["jailbreak_prompt"], r["query"]), "response": response,
            "loose_label": bool(r.get("eval_results")),
            "strict_label": (r["jailbreak_prompt"], r["query"], response) in strict,
        })
    return pl.DataFrame(records, schema={
        "model": pl.String, "family": pl.String, "row": pl.Int64, "template": pl.String, "query": pl.String,
        "prompt": pl.String, "response": pl.String, "loose_label": pl.Boolean, "strict_label": pl.Boolean})


def identity_responses(models: Sequence[str] | None = None) -> pl.DataFrame:
    """The paper's jailbreak attempts with GPT-4o-mini loose labels and strict labels, one row per attempt."""
    chosen = _select(identity_response_models(), models, "identity model")
    return pl.concat([_identity_frame(m) for m in chosen])


# ---------------------------------------------------------------- AlpacaEval (RSE, lineage)

def alpaca_models() -> list[str]:
    return [_stem(p) for p in files("alpaca_eval/outputs/")]


@lru_cache(maxsize=64)
def _alpaca_frame(model: str) -> pl.DataFrame:
    rows = json.loads(read_bytes(f"alpaca_eval/outputs/{model}.json.gz"))
    return pl.DataFrame(
        {"model": [model] * len(rows), "instruction": [r["instruction"] for r in rows],
         "dataset": [r.get("dataset", "") for r in rows], "output": [r.get("output") or "" for r in rows]},
        schema={"model": pl.String, "instruction": pl.String, "dataset": pl.String, "output": pl.String},
    ).unique(subset=["instruction"], keep="first", maintain_order=True)


def alpaca_outputs(models: Sequence[str] | None = None) -> pl.DataFrame:
    """AlpacaEval answers; align models by ``instruction`` (a few files lack one, some outputs are empty)."""
    chosen = _select(alpaca_models(), models, "AlpacaEval model")
    return pl.concat([_alpaca_frame(m) for m in chosen])


def lineage() -> pl.DataFrame:
    rows = _curated("alpaca_eval/lineage.csv", "alpaca_lineage")
    cols = ["model", "role", "family", "line", "teacher", "training_data_note"]
    return pl.DataFrame([{c: (r.get(c) or None) for c in cols} for r in rows], schema={c: pl.String for c in cols})


# ---------------------------------------------------------------- Arena-Hard

def arena_questions() -> pl.DataFrame:
    rows = _jsonl(read_bytes("arena_hard/question.jsonl.gz"))
    prompts = [r["prompt"] if "prompt" in r else r["turns"][0]["content"] for r in rows]
    return pl.DataFrame({"uid": [r.get("uid") or r.get("question_id") for r in rows],
                         "category": [r.get("category", "") for r in rows],
                         "cluster": [r.get("cluster", "") for r in rows], "prompt": prompts})


def arena_models() -> list[str]:
    return [_stem(p) for p in files("arena_hard/answers/")]


def _answer_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, dict):
        return str(content.get("answer", ""))
    return str(content or "")


def arena_answers(models: Sequence[str] | None = None) -> pl.DataFrame:
    questions = dict(zip(*arena_questions().select("uid", "prompt").to_dict(as_series=False).values()))
    records = []
    for model in _select(arena_models(), models, "Arena-Hard model"):
        for r in _jsonl(read_bytes(f"arena_hard/answers/{model}.jsonl.gz")):
            answers = [m for m in r.get("messages", []) if m.get("role") == "assistant"]
            if not answers and "choices" in r:
                answers = [{"content": r["choices"][0]["turns"][0]["content"]}]
            records.append({"model": model, "uid": r.get("uid") or r.get("question_id"),
                            "answer": _answer_text(answers[-1]) if answers else ""})
    frame = pl.DataFrame(records, schema={"model": pl.String, "uid": pl.String, "answer": pl.String})
    return frame.with_columns(pl.col("uid").replace_strict(questions, default=None).alias("prompt")).select(
        "model", "uid", "prompt", "answer")
