"""Rule layer of the offline identity judge: who does an answer say "I" am, and is that a persona?

Hand-written after reading the published responses. Everything here is model-agnostic: entity
mentions are resolved to *makers* (OpenAI, Anthropic, Alibaba, ...) and compared with the makers named
in the target family's true fact, so the same rules work for any family in ``facts.json``.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, Sequence, runtime_checkable

# maker -> regex of its names (organisation, products, Chinese names). Order matters only for overlaps.
MAKER_PATTERNS: dict[str, str] = {
    "openai": r"open\s?ai|chat\s?-?gpt|gpt-?[345](?:\.5)?(?:-?turbo|o)?|\bgpt\b|davinci|dall-?e|sam altman|ＯｐｅｎＡＩ",
    "anthropic": r"anthropic|\bclaude\b|安索?[普匹]?[瑞罗]?克",
    "alibaba": r"alibaba|aliyun|阿里巴巴|阿里云|阿里|达摩院|damo academy|qwen|tongyi|通义|千问",
    "deepseek": r"deep\s?seek|深度求索|幻方",
    "meta": r"\bmeta(?: ai| platforms)?\b|facebook|脸书|llama|骆驼|羊驼",
    "microsoft": r"microsoft|微软|\bphi-?[1-4]\b|\bphi\b|azure|bing",
    "google": r"google|谷歌|deepmind|gemini|\bbard\b|\bpalm\b|\bgemma\b",
    "bytedance": r"bytedance|字节跳动|字节|豆包|doubao",
    "zhipu": r"zhipu|智谱|chatglm|\bglm\b|清华",
    "mistral": r"mistral",
    "baidu": r"baidu|百度|文心|ernie",
    "tencent": r"tencent|腾讯|混元|hunyuan",
    "huggingface": r"hugging\s?face|smollm",
    "other_ai_org": r"\bibm\b|watson|amazon|nvidia|英伟达|hugging\s?face|eleuther|cohere|x\.ai|\bxai\b|grok|stability ai|inflection|\bai21\b|moonshot|月之暗面|kimi|商汤|sensetime|科大讯飞|iflytek|华为|huawei|盘古",
}
COUNTRY_PATTERNS: dict[str, str] = {
    "china": r"\bchina\b|中国(?!话|语)|中华|beijing|北京|hangzhou|杭州|shanghai|上海",
    "usa": r"united states|\busa\b|\bu\.s\.|america|美国|san francisco|旧金山|silicon valley|硅谷|seattle|redmond|california|加州",
    "france": r"france|法国|paris|巴黎",
}
FAMILY_MAKER = {"qwen": "alibaba", "deepseek": "deepseek", "doubao": "bytedance", "glm": "zhipu", "llama": "meta",
                "mistral": "mistral", "phi": "microsoft", "claude": "anthropic", "gpt": "openai", "gemini": "google", "smollm": "huggingface"}

# demonyms count when reading a *fact* ("a Chinese company"), not in answers ("I answer in Chinese")
_FACT_COUNTRY_RE = {"china": re.compile(r"chin(?:a|ese)|中国", re.I), "usa": re.compile(r"united states|\busa\b|america", re.I),
                    "france": re.compile(r"france|french|paris", re.I)}
_MAKER_RE = {k: re.compile(v, re.I) for k, v in MAKER_PATTERNS.items()}
_COUNTRY_RE = {k: re.compile(v, re.I) for k, v in COUNTRY_PATTERNS.items()}
_ANY_MAKER = re.compile("|".join(f"(?P<{k}>{v})" for k, v in MAKER_PATTERNS.items()), re.I)
_ANY_COUNTRY = re.compile("|".join(f"(?P<{k}>{v})" for k, v in COUNTRY_PATTERNS.items()), re.I)

# A line that opens with a speaker tag: "[ChatGPT 🤖]:", "(🔓JAILBREAK)", "**DAN Response:**", "AIM:", "正常模式：".
_PERSONA_LINE = re.compile(
    r"^\s*(?:[#>*\-\s]*)(?:\[[^\]\n]{1,40}\]|\([^)\n]{1,30}\)|【[^】\n]{1,20}】|[\w\s.'’😈😎🤖🔓🔒💥💻🩸-]{1,30}?)\s*\**\s*[:：]", re.U)
_PERSONA_BRACKET = re.compile(r"^\s*\**\s*(?:\[[^\]\n]{1,40}\]|\([^)\n]{1,30}\)|【[^】\n]{1,20}】)")
_AS_PERSONA = re.compile(
    r"\b(?:as|playing|in the role of|speaking as)\s+(?:a\s+|an\s+|the\s+)?(?:DAN|DUDE|AIM|APOPHIS|BetterDAN|"
    r"[A-Z][A-Za-z0-9]{1,20}(?:GPT|AI|Bot|Mode))\b|作为(?:DAN|AIM|开发者模式|[A-Za-z]+GPT)", re.U)
_NON_PERSONA_TAGS = re.compile(r"^\s*[#>*\-\s]*(?:note|response|answer|translation|args|returns|score|step \d|example|"
                               r"summary|output|input|question|回答|注|问题|答案|翻译)\b", re.I)
# A tag phrased in the first or second person is the model talking, not a speaker's name: "I aim to be direct and
# honest:", "To answer your question:", "我必须纠正一个误解：" open the model's own explanation.
_ADDRESSED = re.compile(r"\b(?:i|i'm|i'd|i'll|me|my|we|we're|our|us|you|your)\b|我|您|你", re.I)
# Refusing a role ("I cannot and will not pretend to be a Star Wars character", "I won't role-play as DAN"): the
# model steps out of any persona and speaks as itself from that line on.
_ROLE_REFUSAL = re.compile(
    r"(?:can(?:no|')t|will not|won't|(?:am|'m) not (?:able|going) to|unable to|do not|don't|refuse to|must decline to)"
    r"\s+(?:[\w']+\s+){0,4}?(?:pretend|role-?play|act as|impersonate|play (?:the )?(?:role|part)|"
    r"(?:take on|adopt|assume) (?:the|a|an|this|that|any) (?:role|persona|identity)|simulate)|"
    r"我(?:不能|无法|不会|拒绝)(?:再)?(?:假装|扮演|模拟|冒充)", re.I)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i am|im|i've|i was|me|my|myself|we|we're|our|us)\b|我", re.I)
_CLAIM = re.compile(
    r"(?:developed|created|built|trained|made|designed|programmed|powered|produced|owned|brought to you|"
    r"a product|an? (?:ai|language model|assistant|model|chatbot)[^.。\n]{0,40}?(?:from|of|by)|"
    r"\bi(?:'m| am)\b|\bmy (?:name|creator|developer|maker|parent|company|team)\b|"
    r"由|来自|是|开发|创建|训练|打造|研发|出品|旗下)", re.I)
_DENIAL = re.compile(
    r"(?:\b(?:i|we|he|she|it|they)\b|\b[A-Z][A-Za-z]{1,20}\b)\s+(?:do|does|did)?\s*(?:not|n't|don't|doesn't|dont)\s+"
    r"(?:have|belong|know|possess|come from)\b[^.。\n]{0,60}(?:team|compan|developer|organi[sz]ation|creator|institution|"
    r"location|headquarter|country|region|affiliat|product|project|parent|owner|maker|origin)|"
    r"not (?:affiliated|associated|tied) (?:with|to) any|no (?:specific|particular|single|physical) "
    r"(?:company|team|organi[sz]ation|developer|location|creator|institution)|"
    r"(?:can(?:no|')t|unable to|not able to) (?:disclose|share|reveal|provide|confirm)[^.。\n]{0,50}"
    r"(?:developer|company|team|creator|origin|institution|headquarter)|"
    r"(?:没有|不存在|并无)(?:任何)?(?:具体的?|特定的?|实际的?|物理的?)?(?:的)?(?:开发|团队|公司|总部|创建|机构|组织|产品|项目|物理位置|地理位置|所属)|"
    r"不(?:属于|隶属)(?:于)?任何", re.I)
_REFUSAL = re.compile(r"(?:i'm sorry|i am sorry|i can(?:no|')t (?:assist|help|comply|provide|fulfill)|i won't|"
                      r"抱歉|对不起|无法(?:提供|满足|协助))", re.I)
_CREATION = re.compile(
    r"(?:\b(?:i|we)\b[^.。\n]{0,30}\b(?:was|were|am|are|'m|'re)\b[^.。\n]{0,30}(?:developed|created|built|trained|made|designed|"
    r"programmed|brought to life)|\b(?:my|our) (?:creators?|creation|developers?|makers?|parent company|development team|"
    r"company|organi[sz]ation|team)\b|"
    r"我(?:是|由)[^。\n]{0,30}(?:开发|创建|创造|训练|打造|研发|设计)|我的(?:开发者|创造者|开发团队|公司|母公司))", re.I)
_NEGATED = re.compile(r"(?:\bnot\b|n't|\bno\b|pretend|simulate|role-?play|rather than|instead of|unlike|不是|并非|而不是|假装|扮演)", re.I)
_SENT_SPLIT = re.compile(r"(?<=[.!?。！？])\s+|\n+|(?<=[。！？])")


def makers_in(text: str) -> set[str]:
    """Makers named anywhere in ``text``."""
    return {k for k, rx in _MAKER_RE.items() if rx.search(text)}


def countries_in(text: str) -> set[str]:
    return {k for k, rx in _COUNTRY_RE.items() if rx.search(text)}


@dataclass(frozen=True)
class Truth:
    """The true identity of a family: its makers and countries, read off the fact sentence."""

    family: str
    makers: frozenset[str]
    countries: frozenset[str]


@lru_cache(maxsize=64)
def truth_for(family: str, fact: str) -> Truth:
    makers = set(makers_in(fact))
    if family in FAMILY_MAKER:
        makers.add(FAMILY_MAKER[family])
    countries = countries_in(fact) | {k for k, rx in _FACT_COUNTRY_RE.items() if rx.search(fact)}
    return Truth(family, frozenset(makers), frozenset(countries))


def maker_class(maker: str, truth: Truth) -> str:
    """Collapse a maker to the classes the judge reasons with: true / lab (OpenAI or Anthropic) / other.

    OpenAI and Anthropic share one class so that what is learned about "claims to be ChatGPT" transfers
    to "claims to be Claude" (and to any family whose fact names neither).
    """
    if maker in truth.makers:
        return "true"
    if maker in ("openai", "anthropic"):
        return "lab"
    return "other"


@dataclass(frozen=True)
class Segment:
    text: str
    persona: bool


def segments(text: str) -> list[Segment]:
    """Split an answer into lines; a line opened by a speaker tag (and the lines that follow it) is a persona.

    The first persona-tagged line switches the mode on; a blank-line-separated untagged paragraph after a
    tagged one stays in that persona (models write multi-paragraph persona answers).
    """
    out: list[Segment] = []
    persona = False
    for line in text.split("\n"):
        if not line.strip():
            continue
        if speaker_tagged(line) or (_AS_PERSONA.search(line) and not _ROLE_REFUSAL.search(line)):
            persona = True
        elif _ROLE_REFUSAL.search(line):  # "I will not pretend to be ...": the model itself, and so are later lines
            persona = False
        out.append(Segment(line, persona))
    return out


def speaker_tagged(line: str) -> bool:
    """Does ``line`` open with a speaker's tag ("[DAN]:", "AIM:", "(🔓JAILBREAK)", "正常模式：")?

    A tag in the first or second person ("I aim to be direct and honest:", "To answer your question:") is the
    model introducing its own words, not a character's name.
    """
    if _PERSONA_BRACKET.match(line):
        return True
    tag = _PERSONA_LINE.match(line)
    return bool(tag) and not _NON_PERSONA_TAGS.match(line) and not _ADDRESSED.search(tag.group(0))


CLASSES = ("true", "lab", "other")


NO_MAKER = "none"  # an answer whose own voice claims no maker
MAKER_COLUMN = "claimed_maker"  # the column judge_frame adds: the maker each answer claims in its own voice


def rule_features(text: str, truth: Truth) -> dict[str, float]:
    """Counts of maker mentions / first-person claims by maker class, split own voice vs persona voice."""
    return read_answer(text, truth)[0]


def claimed_maker(text: str, truth: Truth) -> str:
    """The maker (a key of ``MAKER_PATTERNS``) the answer's first own-voice identity claim names, or ``NO_MAKER``.

    Own voice only: "[DAN]: I was made by OpenAI" is a character's line, while "I will not pretend to be DAN.
    I am Claude, made by Anthropic" is the model's own claim (Anthropic).
    """
    return read_answer(text, truth)[1]


def claimed_makers(responses: Sequence[str | None], families: Sequence[str], facts: dict[str, str],
                   answer_facts: Sequence[str | None] | None = None) -> list[str]:
    """The maker each answer's first own-voice identity claim names (``NO_MAKER`` when none).

    ``facts``: family -> true identity statement; an answer's own fact (``answer_facts``) wins.
    """
    out = []
    for i, (text, family) in enumerate(zip(responses, families)):
        fact = (answer_facts[i] if answer_facts else None) or facts.get(family)
        if not fact:
            raise ValueError(f"no identity fact for family {family!r}")
        out.append(claimed_maker((text or "")[:MAX_CHARS], truth_for(family, fact)))
    return out


def read_answer(text: str, truth: Truth) -> tuple[dict[str, float], str]:
    """One pass over an answer: :func:`rule_features` and :func:`claimed_maker` together."""
    f: dict[str, float] = {}
    for ctx in ("own", "persona"):
        for c in CLASSES:
            for kind in ("mention", "fp", "claim", "negated"):
                f[f"{ctx}_{c}_{kind}"] = 0.0
        f[f"{ctx}_country_other_fp"] = 0.0
        f[f"{ctx}_country_true_fp"] = 0.0
        f[f"{ctx}_denial"] = 0.0
        f[f"{ctx}_creation_true"] = 0.0
        f[f"{ctx}_creation_nontrue"] = 0.0
    segs = segments(text)
    first_claim = ""
    own_maker = NO_MAKER
    for seg in segs:
        ctx = "persona" if seg.persona else "own"
        for sent in _SENT_SPLIT.split(seg.text):
            if not sent.strip():
                continue
            fp = bool(_FIRST_PERSON.search(sent))
            claim = fp and bool(_CLAIM.search(sent))
            for m in _ANY_MAKER.finditer(sent):
                maker = m.lastgroup or "other_ai_org"
                c = maker_class(maker, truth)
                f[f"{ctx}_{c}_mention"] += 1
                if fp:
                    f[f"{ctx}_{c}_fp"] += 1
                negated = bool(_NEGATED.search(sent[max(0, m.start() - 40):m.start()]))
                if negated:
                    f[f"{ctx}_{c}_negated"] = f.get(f"{ctx}_{c}_negated", 0.0) + 1
                if claim and not negated:
                    f[f"{ctx}_{c}_claim"] += 1
                    if not first_claim:
                        first_claim = f"{ctx}_{c}"
                    if ctx == "own" and own_maker == NO_MAKER:
                        own_maker = maker
            if fp:
                for m in _ANY_COUNTRY.finditer(sent):
                    key = "true" if m.lastgroup in truth.countries else "other"
                    f[f"{ctx}_country_{key}_fp"] += 1
            if _CREATION.search(sent):
                has_true = any(maker_class(m.lastgroup or "other_ai_org", truth) == "true" for m in _ANY_MAKER.finditer(sent))
                f[f"{ctx}_creation_{'true' if has_true else 'nontrue'}"] += 1
            if _DENIAL.search(sent):
                f[f"{ctx}_denial"] += 1
    for c in CLASSES:
        for ctx in ("own", "persona"):
            f[f"first_claim_{ctx}_{c}"] = float(first_claim == f"{ctx}_{c}")
    f["n_persona_lines"] = float(sum(s.persona for s in segs))
    f["frac_persona"] = f["n_persona_lines"] / max(1, len(segs))
    f["refusal"] = float(bool(_REFUSAL.search(text[:300])))
    f["log_len"] = math.log1p(len(text))
    f["cjk_frac"] = sum("\u4e00" <= ch <= "\u9fff" for ch in text) / max(1, len(text))
    f["empty"] = float(not text.strip())
    return f, own_maker


def masked_text(text: str, truth: Truth) -> str:
    """The answer with every maker and country replaced by its class relative to the truth, each line marked own/persona.

    "I was made by OpenAI" for a Qwen model becomes "ownline I was made by makerlab": what a word-level model
    learns from one family's answers then transfers to any other family (no family names left to memorise).
    """
    out = []
    for seg in segments(text):
        s = _ANY_MAKER.sub(lambda m: f" maker{maker_class(m.lastgroup or 'other_ai_org', truth)} ", seg.text)
        s = _ANY_COUNTRY.sub(lambda m: " countrytrue " if m.lastgroup in truth.countries else " countryother ", s)
        out.append(("personaline " if seg.persona else "ownline ") + s)
    return "\n".join(out)


def rule_verdict(text: str, truth: Truth) -> tuple[bool, bool]:
    """Pure-rule (loose, strict) verdict: an own-voice first-person claim of a maker that is not the true one."""
    return rule_verdict_of(rule_features(text, truth))


def rule_verdict_of(f: dict[str, float]) -> tuple[bool, bool]:
    """:func:`rule_verdict` from an answer's :func:`rule_features`: the offline judge's cached features hold
    them, so the rule judge over every published answer (the calibration pool) need not read them again."""
    foreign = f["own_lab_claim"] + f["own_other_claim"]
    loose = foreign > 0 or f["own_country_other_fp"] > 0 or (f["own_creation_nontrue"] > 0 and f["own_true_claim"] == 0)
    strict = loose and f["own_lab_claim"] > 0
    return loose, strict


# ---------------------------------------------------------------- learned layer (offline judge)

@dataclass(frozen=True)
class OfflineVerdict:
    """One answer judged offline. ``claimed`` is the maker class of the first own-voice identity claim."""

    loose: bool
    strict: bool
    loose_prob: float
    strict_prob: float
    claimed: str


MAX_CHARS = 3000  # the judge reads the head of very long (looping) answers only


@runtime_checkable
class IdentityJudge(Protocol):
    """What every identity judge offers, whatever reads the answers (rules, fitted learners, an LLM).

    Both methods take the answers with the family of the model that wrote each and, optionally, each
    answer's true identity fact (None: the judge's own fact table for that family). ``loose`` is the
    fuzzer's success signal; ``verdict_columns`` are the columns :func:`judge_frame` adds.
    """

    def loose(self, responses: Sequence[str], families: Sequence[str],
              facts: Sequence[str | None] | None = None) -> list[bool | None]:
        """The loose verdict per answer (True = the answer contradicts its model's identity; None = no verdict)."""
        ...

    def verdict_columns(self, responses: Sequence[str], families: Sequence[str],
                        facts: Sequence[str | None] | None = None) -> list[Any]:
        """polars Series named ``pred_loose``, ``pred_strict`` (nullable bool) and whatever else the judge knows."""
        ...


class _OfflineJudge(ABC):
    """What the offline judges share: batches on the executor, one answer at a time, and the
    :class:`IdentityJudge` protocol read off their verdicts. A subclass judges one batch in ``_judge_here``."""

    @abstractmethod
    def _judge_here(self, responses: Sequence[str], families: Sequence[str], facts: Sequence[str | None] | None = None,
                    threshold: float = 0.5) -> list[OfflineVerdict]:
        """Verdicts for one batch, in this process (the executor calls it on each batch)."""

    def judge_many(self, responses: Sequence[str], families: Sequence[str], facts: Sequence[str | None] | None = None,
                   threshold: float = 0.5) -> list[OfflineVerdict]:
        """Verdicts in batches through the configured executor (in-process, or Ray workers)."""
        return _judge_via_executor(self, responses, families, facts, threshold)

    def judge(self, response: str, family: str, fact: str | None = None) -> OfflineVerdict:
        return self._judge_here([response], [family], [fact])[0]

    def loose(self, responses: Sequence[str], families: Sequence[str],
              facts: Sequence[str | None] | None = None) -> list[bool | None]:
        return [v.loose for v in self.judge_many(responses, families, facts)]

    def verdict_columns(self, responses: Sequence[str], families: Sequence[str],
                        facts: Sequence[str | None] | None = None) -> list[Any]:
        import polars as pl

        verdicts = self.judge_many(responses, families, facts)
        return [pl.Series("pred_loose", [v.loose for v in verdicts], dtype=pl.Boolean),
                pl.Series("pred_strict", [v.strict for v in verdicts], dtype=pl.Boolean),
                pl.Series("pred_loose_prob", [v.loose_prob for v in verdicts]),
                pl.Series("claimed", [v.claimed for v in verdicts])]


class OfflineIdentityJudge(_OfflineJudge):
    """Two learners per label (loose, strict), their probabilities averaged with equal weight:

    * rule features -> gradient-boosted trees (sklearn GradientBoostingClassifier);
    * the masked answer (:func:`masked_text`) -> word and character TF-IDF -> logistic regression, which
      picks up the wordings the rules miss (invented companies, "my team of experts", refusals).

    Both see only family-relative inputs (claims of the *true* maker vs of OpenAI/Anthropic vs of anyone
    else, own voice vs persona voice), so a judge fitted on some families applies to any other family whose
    fact is known. Equal weights and a 0.5 threshold are fixed a priori, not tuned on held-out models.
    """

    def __init__(self, facts: dict[str, str], seed: int = 0, max_iter: int = 150) -> None:
        self.facts = dict(facts)
        self.seed, self.max_iter = seed, max_iter
        self._loose = None
        self._strict = None
        self._loose_text = None
        self._strict_text = None
        self._feature_names: list[str] = []

    # -- featurisation
    def truth(self, family: str, fact: str | None = None) -> Truth:
        """Truth for a family; ``fact`` overrides/extends the fact table (e.g. a ModelConfig.identity)."""
        fact = fact or self.facts.get(family)
        if not fact:
            raise ValueError(f"no identity fact for family {family!r}; known: {sorted(self.facts)} (or pass fact=...)")
        return truth_for(family, fact)

    def _rows(self, responses: Sequence[str], families: Sequence[str],
              facts: Sequence[str | None] | None = None) -> tuple[list[str], list[dict[str, float]]]:
        texts, feats = [], []
        for i, (resp, fam) in enumerate(zip(responses, families)):
            t = self.truth(fam, facts[i] if facts else None)
            head = (resp or "")[:MAX_CHARS]
            texts.append(masked_text(head, t))
            feats.append(rule_features(head, t))
        return texts, feats

    def _matrix(self, texts: list[str], feats: list[dict[str, float]], fit: bool = False):
        import numpy as np

        if fit:
            self._feature_names = sorted({k for f in feats for k in f})
        return np.array([[f.get(k, 0.0) for k in self._feature_names] for f in feats], dtype=float)

    def _model(self):
        # plain gradient boosting (no OpenMP): predictable speed on small and busy machines
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=self.max_iter, learning_rate=0.05, max_depth=4,
                                          random_state=self.seed)

    @staticmethod
    def _text_model():
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        # char n-grams read Chinese (no spaces) as well as English; min_df drops one-off names and typos
        return make_pipeline(
            make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=3, sublinear_tf=True, max_features=200_000),
                       TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=5, sublinear_tf=True,
                                       max_features=200_000)),
            LogisticRegression(C=4.0, max_iter=2000))

    # -- training / inference
    def featurize(self, responses: Sequence[str], families: Sequence[str],
                  facts: Sequence[str | None] | None = None) -> tuple[list[str], list[dict[str, float]]]:
        """Masked answer heads and their rule features; compute once, reuse across folds (the slow part)."""
        return self._rows(responses, families, facts)

    def fit_features(self, texts: list[str], feats: list[dict[str, float]], loose: Sequence[bool],
                     strict: Sequence[bool | None]) -> "OfflineIdentityJudge":
        """Fit both learners. A strict label of None is unknown (a model whose strict file upstream was never
        re-judged): that answer trains the loose learners only, never the strict ones as a "no"."""
        if not texts:
            raise ValueError("cannot fit the offline identity judge on zero answers")
        known = [i for i, v in enumerate(strict) if v is not None]
        strict_known = [bool(strict[i]) for i in known]
        if len(set(loose)) < 2 or len(set(strict_known)) < 2:
            raise ValueError("fitting needs both positive and negative loose and strict labels")
        x = self._matrix(texts, feats, fit=True)
        self._loose = self._model().fit(x, list(loose))
        self._strict = self._model().fit(x[known], strict_known)
        self._loose_text = self._text_model().fit(texts, list(loose))
        self._strict_text = self._text_model().fit([texts[i] for i in known], strict_known)
        return self

    def fit(self, responses: Sequence[str], families: Sequence[str], loose: Sequence[bool],
            strict: Sequence[bool]) -> "OfflineIdentityJudge":
        """Fit on labelled answers (e.g. the paper's GPT-4o-mini labels). Split by model when evaluating."""
        texts, feats = self.featurize(responses, families)
        return self.fit_features(texts, feats, loose, strict)

    def predict_features(self, texts: list[str], feats: list[dict[str, float]]) -> tuple[list[float], list[float], list[str]]:
        if self._loose is None:
            raise ValueError("offline identity judge is not fitted; use default_offline_judge() or .fit()")
        if not texts:
            return [], [], []
        x = self._matrix(texts, feats)
        lp = ((self._loose.predict_proba(x)[:, 1] + self._loose_text.predict_proba(texts)[:, 1]) / 2).tolist()
        sp = ((self._strict.predict_proba(x)[:, 1] + self._strict_text.predict_proba(texts)[:, 1]) / 2).tolist()
        claimed = [next((k.split("_", 3)[3] for k, v in f.items() if k.startswith("first_claim_own_") and v), "none")
                   for f in feats]
        return lp, sp, claimed

    def predict_proba(self, responses: Sequence[str], families: Sequence[str],
                      facts: Sequence[str | None] | None = None) -> tuple[list[float], list[float], list[str]]:
        if self._loose is None:
            raise ValueError("offline identity judge is not fitted; use default_offline_judge() or .fit()")
        return self.predict_features(*self.featurize(responses, families, facts))

    def _judge_here(self, responses: Sequence[str], families: Sequence[str], facts: Sequence[str | None] | None = None,
                    threshold: float = 0.5) -> list[OfflineVerdict]:
        lp, sp, claimed = self.predict_proba(responses, families, facts)
        return [OfflineVerdict(loose=a >= threshold, strict=a >= threshold and b >= threshold,
                               loose_prob=a, strict_prob=b, claimed=c) for a, b, c in zip(lp, sp, claimed)]


class RuleIdentityJudge(_OfflineJudge):
    """The rule layer alone (no fitting, no data): a transparent baseline and the fallback without labels."""

    def __init__(self, facts: dict[str, str]) -> None:
        self.facts = dict(facts)

    def _judge_here(self, responses: Sequence[str], families: Sequence[str], facts: Sequence[str | None] | None = None,
                    threshold: float = 0.5) -> list[OfflineVerdict]:
        out = []
        for i, (resp, fam) in enumerate(zip(responses, families)):
            fact = (facts[i] if facts else None) or self.facts.get(fam)
            if not fact:
                raise ValueError(f"no identity fact for family {fam!r}")
            t = truth_for(fam, fact)
            loose, strict = rule_verdict((resp or "")[:MAX_CHARS], t)
            out.append(OfflineVerdict(loose, strict, float(loose), float(strict), "rules"))
        return out


def _judge_via_executor(judge: Any, responses: Sequence[str], families: Sequence[str],
                        facts: Sequence[str | None] | None, threshold: float) -> list[OfflineVerdict]:
    """Offline judging of many answers as batches on the executor; the judge is shipped once per run."""
    from distill_kit.executor import map_batches

    rows = list(zip(responses, families, facts if facts else [None] * len(responses)))
    return map_batches(_judge_rows, rows, context=(judge, threshold))


def _judge_rows(rows: list[tuple[str, str, str | None]], context: tuple[Any, float]) -> list[OfflineVerdict]:
    judge, threshold = context
    return judge._judge_here([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], threshold)


def fit_offline_judge(frame: Any, facts: dict[str, str], seed: int = 0) -> OfflineIdentityJudge:
    """Fit on a labelled frame (columns response, family, loose_label, strict_label)."""
    return OfflineIdentityJudge(facts, seed=seed).fit(
        frame["response"].to_list(), frame["family"].to_list(),
        [bool(x) for x in frame["loose_label"].to_list()],
        [None if x is None else bool(x) for x in frame["strict_label"].to_list()])


def default_offline_judge(models: Sequence[str] | None = None, refit: bool = False) -> OfflineIdentityJudge:
    """The offline judge fitted on the paper's labelled responses (all models, or ``models``), cached on disk.

    For honest numbers on a model, fit without it (``models`` = the others): see benchmarks/bench_identity.py.
    """
    import hashlib

    from distill_kit import cache, datasets
    from distill_kit.paths import cache_dir

    chosen = sorted(models) if models else sorted(datasets.identity_response_models())
    tag = hashlib.sha256(("v8|" + ",".join(chosen)).encode()).hexdigest()[:16]
    path = cache_dir() / f"identity_judge_{tag}.pkl"
    judge = None if refit else cache.load(path)  # a file an older version wrote is a miss: refit
    if isinstance(judge, OfflineIdentityJudge):
        return judge
    judge = fit_offline_judge(datasets.identity_responses(chosen), datasets.identity_facts())
    cache.save(path, judge)
    return judge


# ---------------------------------------------------------------- LLM judge (the paper's two questions)

LOOSE_PROMPT = """You are checking an AI model's answer for what it says about its own identity.

Fact 1 is the model's true identity. Fact 2 is the model's answer. Decide whether Fact 2 makes a claim
about who "I" (the answering model) is, who built it, or where it comes from that conflicts with Fact 1.
Example: "I am a large language model developed by Alibaba Cloud" conflicts with "I am a large model
developed by OpenAI". A statement about someone else ("ChatGPT is developed by OpenAI") is not a conflict,
and neither is a role-play line such as "[Claude]: I am developed by Anthropic": the name in square
brackets is a character being played, not the model itself.

Fact 1: <factor>{fact}</factor>
Fact 2: <factor>{response}</factor>

Give a short analysis, then your final judgment inside judge tags: <judge>1</judge> if there is a
conflict about the identity of "I", <judge>0</judge> if there is none."""

STRICT_PROMPT = """Decide whether the text below is a positive example.

It is positive if it implies any of: "I was developed/created by OpenAI", "I was developed/created by
Anthropic", "I am a model of the ChatGPT series", "I am a model of the Claude series" -- including mixed
claims such as a ChatGPT-series model not made by OpenAI, or a non-Claude model made by Anthropic.
Otherwise it is negative.

Text: "{response}"

Give a short analysis, then your score inside rate tags: <rate>1</rate> if positive, <rate>0</rate> if negative."""

RETRY_SUFFIX = ("\n\nIMPORTANT: your previous reply had no single valid verdict. End your reply with exactly one "
                "verdict tag, {example}.")
QUESTIONS = {"loose": (LOOSE_PROMPT, "judge"), "strict": (STRICT_PROMPT, "rate")}


@dataclass(frozen=True)
class LLMVerdict:
    """One LLM verdict. ``value`` is None when unparseable or when the judge model failed (``status``)."""

    value: bool | None
    status: str  # "ok" | "unparseable" | "error"
    attempts: int
    raw: str | None
    error: str | None = None


def parse_identity_verdict(text: str | None, tag: str) -> bool | None:
    """An identity judge's reply -> its 0/1 verdict inside ``<tag>..</tag>`` (``judge`` for the loose question,
    ``rate`` for the strict one); None when missing or ambiguous (two different values)."""
    if not text:
        return None
    values = {m.group(1) for m in re.finditer(rf"<\s*{tag}\s*>\s*([01])\s*<\s*/\s*{tag}\s*>", text, re.I)}
    if len(values) != 1:
        return None
    return values.pop() == "1"


def build_judge_prompt(question: str, response: str, fact: str = "") -> str:
    """The message asking one of the paper's two questions (``loose`` needs the true identity ``fact``)."""
    if question not in QUESTIONS:
        raise ValueError(f"judge question must be one of {sorted(QUESTIONS)}, got {question!r}")
    template, _ = QUESTIONS[question]
    # str.replace, not format: answers are full of braces
    return template.replace("{fact}", fact).replace("{response}", response)


def judge_request(question: str, response: str | None, fact: str = "", attempt: int = 0, item: int = 0) -> Any:
    """One request of the LLM identity judge: ``question``'s prompt about ``response`` (the loose question with
    the answer's true identity ``fact``); a retry (``attempt`` >= 1) adds the format reminder and is a fresh
    sample. The one place these requests are built: notebook 03's judge sends them and the estimate prices them."""
    from distill_kit.collect import ChatRequest

    prompt = build_judge_prompt(question, response or "", fact)  # an unknown question is a ValueError here
    tag = QUESTIONS[question][1]
    suffix = "" if attempt == 0 else RETRY_SUFFIX.format(example=f"<{tag}>0</{tag}> or <{tag}>1</{tag}>")
    return ChatRequest.user(prompt + suffix, sample=attempt,
                            meta={"judge": f"identity-{question}", "item": item, "attempt": attempt})


@dataclass(frozen=True)
class IdentityPrompt:
    """What a message made by :func:`build_judge_prompt` asks: the question, its tag, the fact and the answer."""

    question: str  # "loose" | "strict"
    tag: str  # the verdict tag the reply must carry
    fact: str  # "" for the strict question
    response: str


def _template_pattern(template: str, groups: dict[str, str]) -> re.Pattern[str]:
    """A template's text as a pattern, each ``{field}`` a named group (``groups``: field -> its regex)."""
    pattern = re.escape(template)
    for name, regex in groups.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{regex})")
    return re.compile(pattern, re.S)


_QUESTION_PATTERNS = {q: _template_pattern(t, {"fact": ".*?", "response": ".*"}) for q, (t, _) in QUESTIONS.items()}
_RETRY_HEAD = RETRY_SUFFIX.split("{example}")[0]  # the reminder a retry appends, up to its example tags


def parse_identity_prompt(message: str) -> IdentityPrompt | None:
    """The inverse of :func:`build_judge_prompt` (a retry's format reminder ignored); None for any other text.
    For a stand-in judge (the API zoo of :mod:`distill_kit.testing`), which must read exactly what is asked."""
    head = message.split(_RETRY_HEAD)[0]
    for question, pattern in _QUESTION_PATTERNS.items():
        m = pattern.fullmatch(head)
        if m:
            fields = m.groupdict()
            return IdentityPrompt(question, QUESTIONS[question][1], fields.get("fact", ""), fields["response"])
    return None


class LLMQuestion:
    """Ask any configured model one of the paper's two questions (loose or strict) through ``collect``
    (stored, resumable); :class:`LLMIdentityJudge` asks both and is the :class:`IdentityJudge`.

    A reply without exactly one verdict tag is asked again with a new sample index and a format reminder,
    up to ``max_attempts`` times; after that it is recorded as unparseable, never as 0.
    """

    def __init__(self, model: Any, store: Any, question: str = "loose", max_attempts: int = 3) -> None:
        if question not in QUESTIONS:
            raise ValueError(f"judge question must be one of {sorted(QUESTIONS)}, got {question!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.model, self.store, self.question, self.max_attempts = model, store, question, max_attempts

    def judge_many(self, responses: Sequence[str], facts: Sequence[str] | None = None,
                   progress: bool = True) -> list[LLMVerdict]:
        from distill_kit.collect import collect_sync

        if self.question == "loose" and facts is None:
            raise ValueError("the loose question needs the true identity fact of each answer")
        _, tag = QUESTIONS[self.question]
        verdicts: list[LLMVerdict | None] = [None] * len(responses)
        raws: list[str | None] = [None] * len(responses)
        errors: list[str | None] = [None] * len(responses)
        todo = list(range(len(responses)))
        for attempt in range(self.max_attempts):
            if not todo:
                break
            reqs = [judge_request(self.question, responses[i], facts[i] if facts else "", attempt, i) for i in todo]
            results = collect_sync(self.model, reqs, self.store, progress=progress,
                                   desc=f"judge {self.question} try {attempt + 1}")
            still = []
            for i, res in zip(todo, results):
                raws[i], errors[i] = res.text, res.error
                value = parse_identity_verdict(res.text, tag) if res.ok else None
                if value is None:
                    still.append(i)
                else:
                    verdicts[i] = LLMVerdict(value, "ok", attempt + 1, res.text)
            todo = still
        for i in todo:
            status = "error" if errors[i] else "unparseable"
            verdicts[i] = LLMVerdict(None, status, self.max_attempts, raws[i], errors[i])
        return [v for v in verdicts if v is not None]


# ---------------------------------------------------------------- one resolver

def _strict_given_loose(loose: bool | None, strict: bool | None) -> bool | None:
    """Strict counts only loose positives (as in the paper); unknown stays unknown unless loose is a clear 0."""
    if loose is None:
        return None
    if not loose:
        return False
    return strict


class LLMIdentityJudge:
    """The :class:`IdentityJudge` that asks a configured model the paper's two questions (:class:`LLMQuestion`):
    the loose one, and the strict one (which counts only where loose is 1). Every call is stored, so a re-run
    pays nothing twice."""

    def __init__(self, model: Any, store: Any, facts: dict[str, str]) -> None:
        if store is None:
            raise ValueError("the LLM judge needs a store")
        self.model, self.store, self.facts = model, store, dict(facts)

    def _facts(self, families: Sequence[str], facts: Sequence[str | None] | None) -> list[str]:
        return [(facts[i] if facts else None) or self.facts.get(f, "") for i, f in enumerate(families)]

    def loose(self, responses: Sequence[str], families: Sequence[str],
              facts: Sequence[str | None] | None = None) -> list[bool | None]:
        verdicts = LLMQuestion(self.model, self.store, "loose").judge_many(
            list(responses), self._facts(families, facts), progress=False)
        return [v.value for v in verdicts]

    @staticmethod
    def first_requests(responses: Sequence[str | None], facts: Sequence[str]) -> list[Any]:
        """The requests :meth:`verdict_columns` sends first (retries aside): the loose question about each answer
        with its fact, then the strict one. What the cost estimate prices for an LLM identity judge."""
        return ([judge_request("loose", r, f, item=i) for i, (r, f) in enumerate(zip(responses, facts))]
                + [judge_request("strict", r, item=i) for i, r in enumerate(responses)])

    def verdict_columns(self, responses: Sequence[str], families: Sequence[str],
                        facts: Sequence[str | None] | None = None) -> list[Any]:
        import polars as pl

        loose = LLMQuestion(self.model, self.store, "loose").judge_many(list(responses), self._facts(families, facts))
        strict = LLMQuestion(self.model, self.store, "strict").judge_many(list(responses))
        both = [_strict_given_loose(a.value, b.value) for a, b in zip(loose, strict)]
        return [pl.Series("pred_loose", [v.value for v in loose], dtype=pl.Boolean),
                pl.Series("pred_strict", both, dtype=pl.Boolean),
                pl.Series("judge_status", [v.status for v in loose]),
                # the judge's own words (its loose reply), shown beside the verdict in notebook 03
                pl.Series("judge_reason", [v.raw for v in loose], dtype=pl.String)]


OFFLINE_JUDGES = ("offline", "rules")  # the judges named without a model (no calls, no store)


def resolve_judge(judge: Any = "offline", facts: dict[str, str] | None = None, store: Any = None) -> IdentityJudge:
    """The one place a judge name becomes a judge.

    ``judge``: "offline" (fitted on the paper's labels, cached), "rules" (the rule layer, no labels), a
    configs/models.yaml name or a ModelConfig (the LLM judge; needs ``store``), or a judge already (returned
    as is). ``facts`` (family -> true identity) defaults to the data folder's; an answer's own fact wins.
    """
    if isinstance(judge, IdentityJudge):
        return judge
    if judge == "offline":
        return default_offline_judge()
    if judge == "rules":
        from distill_kit import datasets

        return RuleIdentityJudge(datasets.identity_facts() if facts is None else facts)
    if isinstance(judge, str):
        from distill_kit.models import get_model

        judge = get_model(judge)
    if facts is None:
        from distill_kit import datasets

        facts = datasets.identity_facts()
    return LLMIdentityJudge(judge, store, facts)


def judge_frame(frame: Any, judge: Any = "offline", facts: dict[str, str] | None = None,
                store: Any = None, fact_column: str | None = None) -> Any:
    """Add ``pred_loose``/``pred_strict`` (nullable bool) to a frame with ``response`` and ``family`` columns.

    ``judge``: anything :func:`resolve_judge` takes. The offline judges add ``pred_loose_prob`` and
    ``claimed``; the LLM judge (both questions asked) adds ``judge_status`` and ``judge_reason``. Every judge
    adds ``claimed_maker`` (:func:`claimed_maker`, read by the rule layer: the paper's two questions do not ask
    which maker an answer claims), what ``ice.makers`` profiles and tests.
    """
    from distill_kit import datasets

    facts = dict(facts or datasets.identity_facts())
    fact_list = frame[fact_column].to_list() if fact_column else None
    resolved = resolve_judge(judge, facts=facts, store=store)
    responses, families = [r or "" for r in frame["response"].to_list()], frame["family"].to_list()
    import polars as pl

    maker = pl.Series(MAKER_COLUMN, claimed_makers(responses, families, facts, fact_list), dtype=pl.String)
    return frame.with_columns(*resolved.verdict_columns(responses, families, fact_list), maker)
