"""Style and structure features of one answer, and the offline style/structure similarities.

Why a separate module: the RSE judge asks an LLM whether two answers share *style* and *logical
structure*; this module measures the same two things without any API, so a model x model matrix over
thousands of answers costs seconds. Everything here is pure text processing (no model, no I/O).

- ``parse_blocks`` reads an answer as a sequence of markdown blocks (heading, bullet item, numbered
  item, code, table, quote, rule, paragraph).
- ``skeleton`` turns the blocks into a short string, one symbol per block (see ``BLOCK_SYMBOLS``);
  the structure similarity aligns two skeletons with an edit distance.
- ``style_vector`` / ``function_word_vector`` give the stylometric profile; ``style_similarity``
  compares two profiles feature by feature.
- ``surface_features`` is the second, cheaper feature set: counts of markup and phrase habits per
  100 words (``SURFACE_PATTERNS``), averaged per model by the lineage ``style`` signal
  (``distill_kit.lineage.attribution``), which standardises them over the models compared.

All similarities are in [0, 1] (1 = same); ``distill_kit.rse.offline_judge.to_likert`` maps them to 1-5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

# --------------------------------------------------------------------------------------------
# Blocks and skeleton
# --------------------------------------------------------------------------------------------

#: One symbol per block kind; nested list items (indented) use the lower-case symbol.
BLOCK_SYMBOLS: dict[str, str] = {
    "heading": "H",
    "bullet": "U",
    "ordered": "O",
    "code": "C",
    "table": "T",
    "quote": "Q",
    "rule": "R",
    "paragraph": "P",
}

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+\S")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)[^*_\n]{1,80}(\*\*|__)\s*:?\s*$")
_BULLET = re.compile(r"^(\s*)[-*+\u2022]\s+\S")
_ORDERED = re.compile(r"^(\s*)(\d{1,3}|[a-zA-Z])[.)]\s+\S")
_TABLE = re.compile(r"^\s*\|.*\|")
_QUOTE = re.compile(r"^\s*>")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")


@dataclass(frozen=True)
class Block:
    """One markdown block: ``kind`` is a key of ``BLOCK_SYMBOLS``; ``depth`` the list nesting level
    (0 = top) or the heading level (1-6; 0 for a bold-only pseudo-heading line)."""

    kind: str
    depth: int
    text: str


def _indent_depth(indent: str) -> int:
    width = len(indent.replace("\t", "    "))
    return min(width // 2, 3)


def parse_blocks(text: str) -> list[Block]:
    """Split markdown-ish text into blocks.

    Consecutive prose lines form one paragraph (a blank line ends it); every list item is its own
    block, and indented lines right after an item are its continuation; a fenced code block and a
    run of table rows are one block each. A line that is only bold text (``**Title:**``) counts as
    a heading because chat models use it as one.
    """
    blocks: list[Block] = []
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    para: list[str] = []
    current: list | None = None  # [kind, depth, lines] of an open list item/table/quote

    def flush() -> None:
        nonlocal current
        if para:
            blocks.append(Block("paragraph", 0, " ".join(s.strip() for s in para)))
            para.clear()
        if current is not None:
            blocks.append(Block(current[0], current[1], "\n".join(current[2])))
            current = None

    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush()
            fence = _FENCE.match(line).group(1)
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            blocks.append(Block("code", 0, "\n".join(body)))
            i += 1
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        if m := _HEADING.match(line):
            flush()
            blocks.append(Block("heading", len(m.group(1)), line.strip().lstrip("#").strip()))
        elif _RULE.match(line):
            flush()
            blocks.append(Block("rule", 0, ""))
        elif m := _BULLET.match(line):
            flush()
            current = ["bullet", _indent_depth(m.group(1)), [line.strip()[1:].strip()]]
        elif m := _ORDERED.match(line):
            flush()
            current = ["ordered", _indent_depth(m.group(1)), [line.strip()]]
        elif _BOLD_LINE.match(line):
            flush()
            blocks.append(Block("heading", 0, line.strip().strip("*_: ")))
        elif _TABLE.match(line):
            if current is None or current[0] != "table":
                flush()
                current = ["table", 0, []]
            current[2].append(line.strip())
        elif _QUOTE.match(line):
            if current is None or current[0] != "quote":
                flush()
                current = ["quote", 0, []]
            current[2].append(line.strip().lstrip(">").strip())
        elif current is not None and current[0] in ("bullet", "ordered") and not para:
            current[2].append(line.strip())  # continuation of a list item
        else:
            if current is not None:
                flush()
            para.append(line)
        i += 1
    flush()
    return blocks


def skeleton(blocks: Sequence[Block] | str) -> str:
    """One symbol per block (``BLOCK_SYMBOLS``); nested list items in lower case.

    >>> skeleton("Intro\\n\\n- a\\n- b\\n  - c\\n\\nEnd")
    'PUUuP'
    """
    if isinstance(blocks, str):
        blocks = parse_blocks(blocks)
    out = []
    for b in blocks:
        sym = BLOCK_SYMBOLS[b.kind]
        if b.kind in ("bullet", "ordered") and b.depth > 0:
            sym = sym.lower()
        out.append(sym)
    return "".join(out)


def collapse_runs(skel: str) -> str:
    """Collapse runs of the same symbol: a list of ten items and one of three both become one
    symbol, so the coarse outline (``'PUP'``) can be compared apart from list lengths."""
    return "".join(ch for i, ch in enumerate(skel) if i == 0 or skel[i - 1] != ch)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert/delete/substitute, cost 1 each) between two strings (rapidfuzz's C code)."""
    return int(Levenshtein.distance(a, b))


#: Longest skeleton compared; longer ones are truncated (keeps the edit distance cheap).
MAX_SKELETON = 80


def _edit_similarity(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def structure_similarity(skel_a: str, skel_b: str) -> float:
    """Structure similarity in [0, 1] of two skeletons (``skeleton``).

    Mean of two normalised edit similarities (1 - distance / longer length): one over the full
    block sequences (counts list items and paragraphs) and one over the run-collapsed sequences
    (the outline: prose, then a list, then a heading...). Skeletons longer than ``MAX_SKELETON``
    are truncated. Use ``text_structure_similarity`` for raw answers.
    """
    sa, sb = skel_a[:MAX_SKELETON], skel_b[:MAX_SKELETON]
    return 0.5 * _edit_similarity(sa, sb) + 0.5 * _edit_similarity(collapse_runs(sa), collapse_runs(sb))


def text_structure_similarity(a: str, b: str) -> float:
    """``structure_similarity`` of two answers' skeletons."""
    return structure_similarity(skeleton(a), skeleton(b))


# --------------------------------------------------------------------------------------------
# Stylometric profile
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,]\d+)?|[\u4e00-\u9fff]")
_SENT_SPLIT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+(?=[\"'(\[]?[A-Z0-9\u4e00-\u9fff])")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_INLINE_CODE = re.compile(r"`[^`\n]+`")

#: Opening-sentence classes (first matching class wins; 0 = none of these).
OPENER_CLASSES: dict[str, re.Pattern[str]] = {
    "affirm": re.compile(r"^(sure|certainly|of course|absolutely|okay|ok|yes|great|definitely)\b[!,.]?", re.I),
    "presentational": re.compile(r"^(here (is|are|'s)|below (is|are)|the following)\b", re.I),
    "disclaimer": re.compile(r"^(as an ai|as a language model|i am an ai|i'm an ai|i am not|i'm not)\b", re.I),
    "apology": re.compile(r"^(i'm sorry|i am sorry|sorry|unfortunately|i apologi[sz]e)\b", re.I),
    "praise": re.compile(r"^(what a|that's a great|this is a great|great question|good question)\b", re.I),
    "thanks": re.compile(r"^(thank you|thanks)\b", re.I),
}
#: Closing-sentence classes (searched in the last paragraph).
CLOSER_CLASSES: dict[str, re.Pattern[str]] = {
    "offer": re.compile(r"(let me know|feel free|happy to help|if you (have|need) any|don't hesitate)", re.I),
    "wish": re.compile(r"(i hope (this|that|these|it)|hope this helps|good luck|enjoy)", re.I),
    "summary": re.compile(r"^(in conclusion|in summary|overall|to summari[sz]e|ultimately|in short)\b", re.I),
    "caveat": re.compile(r"(consult (a|with)|it'?s (always )?(important|best|a good idea) to|remember (that|to))", re.I),
}
_HEDGES = re.compile(
    r"\b(may|might|could|perhaps|possibly|generally|typically|usually|often|likely|"
    r"it depends|depending on|some|somewhat|approximately|around|about|seems?|appears?|tend to)\b",
    re.I,
)
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|me|my|mine)\b", re.I)
_SECOND_PERSON = re.compile(r"\b(you|your|you're|yours|you'll|you've)\b", re.I)

#: Common English function words; their relative frequencies form the function-word profile
#: (the classic authorship-attribution signal: independent of topic, characteristic of a writer).
FUNCTION_WORDS: tuple[str, ...] = tuple(
    """a about above after again against all also although an and any are as at be because been
    before being below between both but by can could did do does doing down during each either
    even every few for from further had has have having he her here hers him his how however i if
    in into is it its itself just may me might more most much must my neither no nor not now of
    off on once only or other our out over own rather same she should since so some such than that
    the their them then there these they this those though through thus to too under until up upon
    us very was we were what when where whether which while who whom whose why will with within
    without would yet you your""".split()
)
_FW_INDEX = {w: i for i, w in enumerate(FUNCTION_WORDS)}


@dataclass(frozen=True)
class FeatureSpec:
    """One style feature and how two values of it compare.

    ``scale`` > 0: numeric, similarity ``max(0, 1 - |a - b| / scale)`` (``scale`` is the gap at
    which two answers count as entirely different on this feature). ``scale == 0``: categorical,
    similarity 1 when equal else 0.
    """

    name: str
    scale: float
    doc: str


STYLE_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("log_words", 1.5, "ln(1 + words): length (e^1.5 = 4.5x longer is entirely different)"),
    FeatureSpec("log_paragraphs", 1.5, "ln(1 + prose paragraphs)"),
    FeatureSpec("log_words_per_paragraph", 1.5, "ln(1 + mean words per prose paragraph)"),
    FeatureSpec("heading_share", 0.3, "share of blocks that are headings (incl. bold-only lines)"),
    FeatureSpec("bullet_share", 0.5, "share of blocks that are bullet items"),
    FeatureSpec("ordered_share", 0.5, "share of blocks that are numbered items"),
    FeatureSpec("log_bold_per_100w", 1.5, "ln(1 + bold spans per 100 words)"),
    FeatureSpec("has_code", 1.0, "1 if a fenced code block is present"),
    FeatureSpec("log_inline_code_per_100w", 1.5, "ln(1 + inline code spans per 100 words)"),
    FeatureSpec("has_table", 1.0, "1 if a markdown table is present"),
    FeatureSpec("log_sentence_words", 1.0, "ln(1 + mean words per sentence)"),
    FeatureSpec("sentence_cv", 1.0, "std / mean of sentence length in words"),
    FeatureSpec("opener", 0.0, "class of the first sentence (OPENER_CLASSES; 0 = plain)"),
    FeatureSpec("closer", 0.0, "class of the last paragraph (CLOSER_CLASSES; 0 = plain)"),
    FeatureSpec("hedges_per_100w", 4.0, "hedge words (may, might, typically...) per 100 words"),
    FeatureSpec("first_person_per_100w", 4.0, "I/me/my per 100 words"),
    FeatureSpec("second_person_per_100w", 5.0, "you/your per 100 words"),
    FeatureSpec("exclamation_per_sentence", 0.5, "'!' per sentence"),
    FeatureSpec("question_per_sentence", 0.5, "'?' per sentence"),
)
STYLE_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in STYLE_FEATURES)
_SCALES = np.array([f.scale for f in STYLE_FEATURES], dtype=float)
_CATEGORICAL = _SCALES == 0

#: Weight of the function-word cosine in the style similarity (the rest is the feature mean).
FUNCTION_WORD_WEIGHT = 0.3


def words(text: str) -> list[str]:
    """Word tokens (Latin words, numbers, single CJK characters), lower-cased."""
    return [w.lower() for w in _WORD.findall(text or "")]


def sentences(text: str, blocks: Sequence[Block] | None = None) -> list[str]:
    """Sentences of an answer: code blocks and tables dropped, each list item / heading its own
    sentence, prose split after . ! ? followed by a capital or digit."""
    out: list[str] = []
    for b in parse_blocks(text) if blocks is None else blocks:
        if b.kind in ("code", "table", "rule"):
            continue
        body = _BOLD.sub(r"\2", b.text.replace("\n", " ")).strip()
        if b.kind == "ordered":
            body = re.sub(r"^(\d{1,3}|[a-zA-Z])[.)]\s+", "", body)
        if not body:
            continue
        if b.kind == "heading":
            out.append(body)
            continue
        out.extend(s.strip() for s in _SENT_SPLIT.split(body) if s.strip())
    return out


def _classify(text: str, classes: dict[str, re.Pattern[str]], search: bool) -> int:
    for k, (_, pat) in enumerate(classes.items(), 1):
        if (pat.search(text) if search else pat.match(text)):
            return k
    return 0


def style_profile(text: str, blocks: Sequence[Block] | None = None) -> dict[str, float]:
    """The stylometric profile of one answer as ``{feature name: value}`` (see ``STYLE_FEATURES``)."""
    blocks = parse_blocks(text) if blocks is None else blocks
    n_blocks = max(len(blocks), 1)
    kinds = [b.kind for b in blocks]
    toks = words(text)
    n_words = len(toks)
    per100 = 100.0 / max(n_words, 1)
    paras = [b for b in blocks if b.kind == "paragraph"]
    para_words = [len(words(b.text)) for b in paras]
    sents = sentences(text, blocks)
    sent_len = np.array([max(len(words(s)), 1) for s in sents] or [0], dtype=float)
    n_sents = max(len(sents), 1)
    prose = "\n".join(b.text for b in blocks if b.kind not in ("code",))
    first = sents[0] if sents else ""
    last_block = next((b.text for b in reversed(blocks) if b.kind in ("paragraph", "bullet", "ordered")), "")
    return {
        "log_words": math.log1p(n_words),
        "log_paragraphs": math.log1p(len(paras)),
        "log_words_per_paragraph": math.log1p(float(np.mean(para_words)) if para_words else 0.0),
        "heading_share": kinds.count("heading") / n_blocks,
        "bullet_share": kinds.count("bullet") / n_blocks,
        "ordered_share": kinds.count("ordered") / n_blocks,
        "log_bold_per_100w": math.log1p(len(_BOLD.findall(prose)) * per100),
        "has_code": float("code" in kinds),
        "log_inline_code_per_100w": math.log1p(len(_INLINE_CODE.findall(prose)) * per100),
        "has_table": float("table" in kinds),
        "log_sentence_words": math.log1p(float(sent_len.mean())),
        "sentence_cv": float(sent_len.std() / sent_len.mean()) if sent_len.mean() > 0 else 0.0,
        "opener": float(_classify(first.strip(), OPENER_CLASSES, search=False)),
        "closer": float(_classify(last_block.strip(), CLOSER_CLASSES, search=True)),
        "hedges_per_100w": len(_HEDGES.findall(prose)) * per100,
        "first_person_per_100w": len(_FIRST_PERSON.findall(prose)) * per100,
        "second_person_per_100w": len(_SECOND_PERSON.findall(prose)) * per100,
        "exclamation_per_sentence": prose.count("!") / n_sents,
        "question_per_sentence": prose.count("?") / n_sents,
    }


def style_vector(text: str, blocks: Sequence[Block] | None = None) -> np.ndarray:
    """``style_profile`` as a vector ordered like ``STYLE_FEATURE_NAMES``."""
    prof = style_profile(text, blocks)
    return np.array([prof[n] for n in STYLE_FEATURE_NAMES], dtype=float)


def function_word_vector(text: str) -> np.ndarray:
    """Relative frequency of each of ``FUNCTION_WORDS`` among all words (zeros for no words)."""
    vec = np.zeros(len(FUNCTION_WORDS), dtype=float)
    toks = words(text)
    for w in toks:
        k = _FW_INDEX.get(w)
        if k is not None:
            vec[k] += 1.0
    return vec / max(len(toks), 1)


def answer_features(texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """``(style_vector, function_word_vector, skeleton)`` of each answer, parsing its blocks once.

    The unit of work the executor ships (``distill_kit.executor.map_batches``): pure, row by row.
    """
    out = []
    for text in texts:
        blocks = parse_blocks(text)
        out.append((style_vector(text, blocks), function_word_vector(text), skeleton(blocks)))
    return out


def feature_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-feature similarity in [0, 1] of style vectors ``a`` and ``b`` (broadcasts over leading
    axes; last axis = ``STYLE_FEATURES``)."""
    diff = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    scale = np.where(_CATEGORICAL, 1.0, _SCALES)
    num = np.clip(1.0 - diff / scale, 0.0, 1.0)
    cat = (diff == 0).astype(float)
    return np.where(_CATEGORICAL, cat, num)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine along the last axis; 1 when both vectors are zero, 0 when only one is."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    dot = (a * b).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, np.where((na == 0) | (nb == 0), 0.0, np.clip(cos, 0.0, 1.0)))


def style_similarity(
    a: str | np.ndarray,
    b: str | np.ndarray,
    fw_a: np.ndarray | None = None,
    fw_b: np.ndarray | None = None,
) -> np.ndarray | float:
    """Style similarity in [0, 1]: ``(1 - FUNCTION_WORD_WEIGHT)`` x mean per-feature similarity
    (``feature_similarities``) + ``FUNCTION_WORD_WEIGHT`` x cosine of function-word profiles.

    Pass two answers, or precomputed style vectors plus function-word vectors (any leading
    shape, for vectorised matrices).
    """
    if isinstance(a, str) or isinstance(b, str):
        fw_a, fw_b = function_word_vector(str(a)), function_word_vector(str(b))
        a, b = style_vector(str(a)), style_vector(str(b))
    if fw_a is None or fw_b is None:
        raise ValueError("style_similarity needs function-word vectors when given style vectors")
    feat = feature_similarities(a, b).mean(axis=-1)
    sim = (1 - FUNCTION_WORD_WEIGHT) * feat + FUNCTION_WORD_WEIGHT * cosine(fw_a, fw_b)
    return float(sim) if np.ndim(sim) == 0 else sim


# --------------------------------------------------------------------------------------------
# Surface habits (the lineage "style" signal's feature set)
# --------------------------------------------------------------------------------------------

#: Markup and phrase habits counted per 100 words by ``surface_features``. A cheaper, flatter set
#: than ``STYLE_FEATURES`` (no block parse, no per-feature scale): it is averaged per model and
#: standardised over the models compared, so only its relative variation matters.
SURFACE_PATTERNS: dict[str, str] = {
    "bullets": r"(?m)^\s*[-*•]\s+",
    "numbered": r"(?m)^\s*\d+[.)]\s+",
    "headings": r"(?m)^\s*#{1,6}\s",
    "bold": r"\*\*[^*]+\*\*",
    "code_blocks": r"```",
    "colons_eol": r"(?m):\s*$",
    "exclaim": r"!",
    "question": r"\?",
    "parens": r"\(",
    "quotes": r"[\"“”]",
    "semicolons": r";",
    "dashes": r" [-–—] ",
    "first_person": r"\b(I|I'm|I'd|I'll|me|my)\b",
    "you": r"\b(you|your)\b",
    "ai_disclaimer": r"(?i)\bas an ai\b|\blanguage model\b|\bI'm sorry\b|\bI apologi[sz]e\b",
    "opener_sure": r"(?i)^\s*(sure|certainly|of course|absolutely|great question)\b",
    "closer_hope": r"(?i)(i hope (this|that) helps|let me know if)",
    "overall": r"(?i)\b(overall|in conclusion|in summary|ultimately)\b",
    "however": r"(?i)\bhowever\b",
    "emoji": r"[\U0001F300-\U0001FAFF]",
}
_SURFACE = [re.compile(v) for v in SURFACE_PATTERNS.values()]
_SURFACE_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_BLANK_LINE = re.compile(r"\n\s*\n")

#: Column names of ``surface_features``: length and shape measures, then ``SURFACE_PATTERNS`` rates.
SURFACE_FEATURES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "lines_per_100w",
    "paragraphs_per_100w",
    "mean_word_len",
    "mean_sentence_words",
    "type_token_ratio",
    "upper_share",
    "digit_share",
    *(f"{k}_per_100w" for k in SURFACE_PATTERNS),
)


def surface_features(texts: Sequence[str]) -> np.ndarray:
    """Surface habits of each text (rows) as a float array with columns ``SURFACE_FEATURES``."""
    rows = []
    for t in texts:
        toks = t.split()
        nw = max(len(toks), 1)
        per100 = 100.0 / nw
        sents = [s for s in _SURFACE_SENTENCE_END.split(t) if s.strip()]
        letters = sum(c.isalpha() for c in t) or 1
        row = [
            np.log1p(len(t)),
            np.log1p(len(toks)),
            t.count("\n") * per100,
            len(_BLANK_LINE.findall(t)) * per100,
            float(np.mean([len(w) for w in toks])) if toks else 0.0,
            nw / max(len(sents), 1),
            len({w.lower() for w in toks[:200]}) / max(min(nw, 200), 1),
            sum(c.isupper() for c in t) / letters,
            sum(c.isdigit() for c in t) / max(len(t), 1),
        ]
        row += [len(p.findall(t)) * per100 for p in _SURFACE]
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SURFACE_FEATURES))
