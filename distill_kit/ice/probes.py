"""Identity probes (questions about who built the model) and jailbreak templates with a ``{query}`` slot.

The probe file is the project's own (``data/probes/identity_probes.yaml``); every edit the notebook
editor offers is a pure function here, returning a new list, so it is testable without widgets.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import yaml

from distill_kit.datasets import fill_template
from distill_kit.paths import PROJECT_ROOT

PROBES_FILE = PROJECT_ROOT / "data" / "probes" / "identity_probes.yaml"
LANGUAGES = ("en", "zh")
CATEGORIES = ("creator", "name", "company", "country", "architecture", "training_data", "collaboration", "other")
QUERY_SLOT = "{query}"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Probe:
    """One identity question. ``tags`` are free labels the editor adds (e.g. 'paper', 'hard')."""

    id: str
    language: str
    category: str
    text: str
    tags: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class Template:
    """A jailbreak template; ``source`` says where it came from (gptfuzzer seed, user file, fuzz mutation)."""

    id: str
    text: str
    source: str = "user"


#: The question asked as it is, no jailbreak: the baseline every template is compared with.
BARE_TEMPLATE = Template("bare", QUERY_SLOT, "bare question")


# ---------------------------------------------------------------- probe file I/O

def _probe_from(d: dict[str, Any], where: str) -> Probe:
    missing = [k for k in ("id", "language", "category", "text") if k not in d]
    if missing:
        raise ValueError(f"{where}: probe is missing field(s) {missing}")
    tags = d.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    return Probe(str(d["id"]), str(d["language"]), str(d["category"]), str(d["text"]), tuple(str(t) for t in tags))


def load_probes(path: str | Path | None = None) -> list[Probe]:
    """Read a probe file (YAML ``{probes: [...]}`` or CSV with id,language,category,text[,tags])."""
    p = Path(path) if path else PROBES_FILE
    if not p.exists():
        raise ValueError(f"probe file not found: {p}")
    if p.suffix.lower() == ".csv":
        import csv

        with p.open(encoding="utf-8", newline="") as fh:
            return [_probe_from(r, f"{p}:{i + 2}") for i, r in enumerate(csv.DictReader(fh))]
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    items = data.get("probes", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"{p}: expected a list of probes under 'probes'")
    return [_probe_from(d, f"{p}[{i}]") for i, d in enumerate(items)]


def save_probes(probes: Sequence[Probe], path: str | Path | None = None, *, check: bool = True) -> Path:
    """Write probes back (YAML, or CSV by suffix). Refuses to save an invalid set unless ``check=False``."""
    if check:
        problems = validate_probes(probes)
        if problems:
            raise ValueError("refusing to save invalid probes: " + "; ".join(problems[:5]))
    p = Path(path) if path else PROBES_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".csv":
        import csv

        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["id", "language", "category", "text", "tags"])
            w.writeheader()
            for pr in probes:
                w.writerow({**pr.to_dict(), "tags": ",".join(pr.tags)})
        return p
    header = "# distill-kit's own identity probe set (ICE). Edit with notebooks/01-probe-identity.ipynb or distill_kit.ice.probes.\n"
    body = yaml.safe_dump({"probes": [pr.to_dict() for pr in probes]}, allow_unicode=True, sort_keys=False, width=200)
    p.write_text(header + body, encoding="utf-8")
    return p


# ---------------------------------------------------------------- editing (pure functions)

def detect_language(text: str) -> str:
    """'zh' when the text has any CJK ideograph, else 'en' (the paper's two probe languages)."""
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


def next_id(probes: Sequence[Probe], language: str) -> str:
    nums = [int(m.group(1)) for p in probes if (m := re.match(rf"^{re.escape(language)}-(\d+)$", p.id))]
    return f"{language}-{max(nums, default=0) + 1:03d}"


def add_probe(probes: Sequence[Probe], text: str, category: str = "other", language: str | None = None,
              id: str | None = None, tags: Iterable[str] = ()) -> list[Probe]:
    """Append a probe (language detected and id assigned when not given)."""
    lang = language or detect_language(text)
    new = Probe(id or next_id(probes, lang), lang, category, text.strip(), tuple(tags))
    return [*probes, new]


def _index(probes: Sequence[Probe], probe_id: str) -> int:
    for i, p in enumerate(probes):
        if p.id == probe_id:
            return i
    raise ValueError(f"no probe with id {probe_id!r}")


def edit_probe(probes: Sequence[Probe], probe_id: str, **changes: Any) -> list[Probe]:
    """Change fields of one probe (text, category, language, id, tags)."""
    bad = set(changes) - {"text", "category", "language", "id", "tags"}
    if bad:
        raise ValueError(f"unknown probe field(s) {sorted(bad)}")
    if "tags" in changes:
        changes["tags"] = tuple(changes["tags"])
    out = list(probes)
    i = _index(out, probe_id)
    out[i] = replace(out[i], **changes)
    return out


def delete_probe(probes: Sequence[Probe], probe_id: str) -> list[Probe]:
    i = _index(probes, probe_id)
    return [p for j, p in enumerate(probes) if j != i]


def tag_probe(probes: Sequence[Probe], probe_id: str, tag: str, remove: bool = False) -> list[Probe]:
    """Add (or remove) one tag; tags stay unique and in insertion order."""
    tag = tag.strip()
    if not tag:
        raise ValueError("empty tag")
    out = list(probes)
    i = _index(out, probe_id)
    tags = [t for t in out[i].tags if t != tag]
    if not remove:
        tags.append(tag)
    out[i] = replace(out[i], tags=tuple(tags))
    return out


def filter_probes(probes: Sequence[Probe], language: str | None = None, category: str | None = None,
                  tag: str | None = None, text: str | None = None) -> list[Probe]:
    """Probes matching every given criterion (``text`` is a case-insensitive substring)."""
    return [p for p in probes
            if (not language or p.language == language) and (not category or p.category == category)
            and (not tag or tag in p.tags) and (not text or text.lower() in p.text.lower())]


def validate_probe(probe: Probe) -> list[str]:
    out = []
    if not probe.text.strip():
        out.append(f"{probe.id}: empty text")
    if not _ID_RE.match(probe.id):
        out.append(f"{probe.id!r}: id must be 1-64 letters, digits, '-', '_' or '.'")
    if probe.language not in LANGUAGES:
        out.append(f"{probe.id}: language {probe.language!r} not in {LANGUAGES}")
    if probe.category not in CATEGORIES:
        out.append(f"{probe.id}: category {probe.category!r} not in {CATEGORIES}")
    if QUERY_SLOT in probe.text:
        out.append(f"{probe.id}: a probe must not contain the {QUERY_SLOT} slot")
    return out


def validate_probes(probes: Sequence[Probe]) -> list[str]:
    """Every problem in a probe set, one message each (empty list = valid)."""
    out: list[str] = []
    seen: set[str] = set()
    for p in probes:
        out.extend(validate_probe(p))
        if p.id in seen:
            out.append(f"{p.id}: duplicate id")
        seen.add(p.id)
    return out


# ---------------------------------------------------------------- templates

def validate_template(text: str) -> list[str]:
    if not text.strip():
        return ["template is empty"]
    if QUERY_SLOT not in text:
        return [f"template has no {QUERY_SLOT} slot"]
    return []


def fill(template: str | Template, query: str | Probe) -> str:
    """Put a question into a template's ``{query}`` slot; no other brace is touched."""
    t = template.text if isinstance(template, Template) else template
    q = query.text if isinstance(query, Probe) else query
    problems = validate_template(t)
    if problems:
        raise ValueError(problems[0])
    return fill_template(t, q)


def preview(probe: Probe, template: str | Template, width: int | None = None) -> str:
    """The prompt a target would see for this probe in this template (optionally cut to ``width`` chars)."""
    text = fill(template, probe)
    return text if width is None or len(text) <= width else text[: max(0, width - 1)] + "…"


def seed_templates(method: str = "Gptfuzzer") -> list[Template]:
    """The GPTFuzzer seed templates from the data directory (``identity/seed_templates.json``)."""
    from distill_kit import datasets

    raw = datasets.seed_templates()
    items = raw.get("attack", {}).get(method)
    if not items:
        raise ValueError(f"no seed templates for method {method!r} in seed_templates.json")
    return [Template(f"{method.lower()}-{i:03d}", t, f"seed:{method}") for i, t in enumerate(items)
            if isinstance(t, str) and QUERY_SLOT in t]


def load_user_templates(path: str | Path) -> list[Template]:
    """A user template file: JSON list (strings or {id,text}), YAML list, or plain text split by lines of '---'."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"template file not found: {p}")
    raw = p.read_text(encoding="utf-8")
    items: list[Any]
    if p.suffix.lower() == ".json":
        items = json.loads(raw)
    elif p.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(raw)
        items = data.get("templates", []) if isinstance(data, dict) else data
    else:
        items = [t.strip() for t in re.split(r"^---\s*$", raw, flags=re.M) if t.strip()]
    out = []
    for i, it in enumerate(items or []):
        tid, text = (it.get("id", f"user-{i:03d}"), it.get("text", "")) if isinstance(it, dict) else (f"user-{i:03d}", str(it))
        problems = validate_template(text)
        if problems:
            raise ValueError(f"{p}: template {tid}: {problems[0]}")
        out.append(Template(str(tid), text, f"user:{p.name}"))
    return out


def load_templates(user_file: str | Path | None = None, method: str = "Gptfuzzer") -> list[Template]:
    """Seed templates plus an optional user file (user templates last)."""
    out = seed_templates(method)
    if user_file:
        out += load_user_templates(user_file)
    return out


# ---------------------------------------------------------------- categories of arbitrary queries

_CATEGORY_RULES: list[tuple[str, str]] = [
    ("collaboration", r"collaborat|cooperat|partner|open-source contributor|contributors|consultant|support(?:ing)? (?:for|behind)|international|"
                      r"合作|伙伴|贡献者|顾问|支持|跨国"),
    ("training_data", r"train|data|dataset|训练|数据|语料"),
    ("architecture", r"architecture|parameter|framework|technolog|platform|code|open-source project|standard|base model|"
                     r"架构|参数|框架|技术|平台|代码|开源|标准"),
    ("country", r"country|region|where|headquarter|located|city|国家|地区|哪里|总部|位于|城市|来自"),
    ("name", r"name|which model|what model|are you chatgpt|are you claude|叫什么|名字|哪个模型|版本"),
    ("creator", r"who|develop|creat|built|design|team|maker|谁|开发|创建|创造|构建|设计|团队"),
    ("company", r"company|organi[sz]ation|business|product|parent|owner|公司|机构|组织|业务|产品|母公司|致力"),
]


def categorize_query(text: str) -> str:
    """Best-effort category for a free question (used for the paper's probes, which carry none)."""
    for cat, rx in _CATEGORY_RULES:
        if re.search(rx, text, re.I):
            return cat
    return "other"


def sample_per_language(probes: Sequence[Probe], per_language: int, seed: int = 0) -> list[Probe]:
    """A reproducible, language-balanced subset (``per_language`` <= 0 keeps all)."""
    import random

    if per_language <= 0:
        return list(probes)
    rng = random.Random(seed)
    out: list[Probe] = []
    for lang in sorted({p.language for p in probes}):
        group = [p for p in probes if p.language == lang]
        out += sorted(rng.sample(group, min(per_language, len(group))), key=lambda p: p.id)
    return out


# ---------------------------------------------------------------- building and annotating ICE requests

def template_id(text: str) -> str:
    """Short stable id for a template text (the published responses carry templates without ids)."""
    import hashlib

    return "tpl-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def annotate_queries(frame: Any) -> Any:
    """Add ``language``, ``category`` and ``template_id`` columns to a frame with ``query`` and ``template``."""
    import polars as pl

    cols = [pl.col("query").map_elements(detect_language, return_dtype=pl.String).alias("language"),
            pl.col("query").map_elements(categorize_query, return_dtype=pl.String).alias("category")]
    if "template" in frame.columns:
        cols.append(pl.col("template").map_elements(template_id, return_dtype=pl.String).alias("template_id"))
    return frame.with_columns(cols)


def sample_pairs(probes: Sequence[Probe], templates: Sequence[Template], n: int, seed: int = 0) -> list[tuple[Probe, Template]]:
    """``n`` distinct (probe, template) pairs drawn reproducibly (all pairs when n <= 0 or n is large)."""
    import random

    if not probes or not templates:
        raise ValueError("need at least one probe and one template")
    pairs = [(p, t) for t in templates for p in probes]
    if n <= 0 or n >= len(pairs):
        return pairs
    return random.Random(seed).sample(pairs, n)


def identity_requests(pairs: Sequence[tuple[Probe, Template]]) -> list[Any]:
    """ChatRequests for (probe, template) pairs; meta carries everything the scores break down by."""
    from distill_kit.collect import ChatRequest

    return [ChatRequest.user(fill(t, p), meta={"probe_id": p.id, "query": p.text, "language": p.language,
                                               "category": p.category, "template_id": t.id, "template": t.text})
            for p, t in pairs]


class ProbeRequests(NamedTuple):
    """Probes a step sampled and the requests that ask them."""

    probes: list[Probe]
    requests: list[Any]  # ChatRequest, one per (probe, template) pair


def collection_requests(probe_sample_size: int, templates: int, seed: int = 0) -> ProbeRequests:
    """Notebook 02's identity requests: ``probe_sample_size`` probes per language (0 = all), each asked bare and
    inside the first ``templates`` GPTFuzzer seed templates. The sampled probes are also what its fuzzing asks
    inside mutated templates. Built here once: the notebook sends these and ``distill-kit estimate`` prices them."""
    probe_set = sample_per_language(load_probes(), probe_sample_size, seed=seed)
    pairs = sample_pairs(probe_set, [BARE_TEMPLATE] + seed_templates()[:templates], 0)
    return ProbeRequests(probe_set, identity_requests(pairs))


def live_requests(live_probes: int, seed: int = 0) -> list[Any]:
    """Notebook 03's identity requests asked now: ``live_probes`` probe x template pairs (0 = none) drawn from every
    probe, bare and inside every GPTFuzzer seed template (bare only when no data folder holds the templates)."""
    if live_probes <= 0:
        return []
    try:
        templates = seed_templates()
    except ValueError:  # no data folder: the bare questions only
        templates = [BARE_TEMPLATE]
    return identity_requests(sample_pairs(load_probes(), templates, live_probes, seed))
