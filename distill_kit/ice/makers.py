"""Whose maker a model names in its own voice, and whether one foreign maker stands out from chance naming.

Why: LIS counts answers that contradict a model's identity, but identity confusion is common in models that
were never distilled (it is mostly hallucination), so a contradiction rate alone says nothing about *whose*
data a model saw. What does say something is a *pattern*: a model that keeps naming one particular foreign
maker far more often than it names the others. Each model is its own baseline here:

* the **profile**: per maker, the share of the model's answers whose first own-voice identity claim names it
  ("none": no such claim), with simultaneous 95% intervals (Goodman's multinomial intervals, statsmodels);
* the **foreign-maker test**: among the answers that claim a foreign maker (any candidate maker but the
  model's own), is one maker named more often than the others? Null: the foreign claims spread evenly over
  the ``K`` foreign candidate makers (chance naming, the model's hallucination baseline); statistic: the count
  of the most-named one, so picking the "top" maker after looking is part of the test (its exact null
  distribution, the maximum cell of a uniform multinomial, :func:`max_cell_pvalue`). The test is conditional
  on the number of foreign claims, so it holds its level however often the model contradicts itself.
  A claim of a maker the answer's own prompt names is left out of the test: it follows the prompt (half of the
  paper's jailbreak templates name ChatGPT), so it would make that maker stand out whatever the model's data.
  p-values are Holm-adjusted over the models of a table.

The maker of each answer is read by the rule layer (:func:`distill_kit.ice.judges.claimed_maker`) whatever
judge gave the verdicts: the paper's two judge questions do not ask which maker is claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from distill_kit.ice.judges import MAKER_COLUMN, MAKER_PATTERNS, NO_MAKER, truth_for
from distill_kit.stats import holm

#: makers a model could name at random: every maker the rule layer knows by name. ``other_ai_org`` (IBM,
#: Amazon, Nvidia, Cohere, xAI, ... in one bucket) is shown in the profile but is not one maker, so it is
#: neither a candidate for the top foreign maker nor part of the baseline.
CANDIDATES: tuple[str, ...] = tuple(m for m in MAKER_PATTERNS if m != "other_ai_org")
#: display names for tables and charts
MAKER_NAMES: dict[str, str] = {
    "openai": "OpenAI", "anthropic": "Anthropic", "alibaba": "Alibaba", "deepseek": "DeepSeek", "meta": "Meta",
    "microsoft": "Microsoft", "google": "Google", "bytedance": "ByteDance", "zhipu": "Zhipu", "mistral": "Mistral",
    "baidu": "Baidu", "tencent": "Tencent", "huggingface": "Hugging Face", "other_ai_org": "other AI org",
    NO_MAKER: "none"}
ALPHA = 0.05


def own_makers(family: str, fact: str) -> frozenset[str]:
    """The makers a family's true identity names (its own; every other candidate is foreign)."""
    return truth_for(family, fact).makers


@lru_cache(maxsize=4096)
def max_cell_pvalue(observed_max: int, total: int, k: int) -> float:
    """P(the largest of ``k`` cells holds >= ``observed_max``) when ``total`` draws fall uniformly over the cells.

    Exact: the multinomial as a chain of binomials (cell ``i`` takes Binomial(remaining, 1 / cells left)), with
    every cell kept below ``observed_max``; p = 1 - P(all cells < observed_max). Where the union bound
    ``k * P(Binomial(total, 1/k) >= m)`` is below 1e-6 it is returned instead: it is an upper bound, and since
    two multinomial cells are negatively associated, p >= bound - (k choose 2) sf^2, so there it is p to a
    relative 5e-7 (and the subtraction above would have no digits left). Why hand-written: no library offers
    the distribution of a multinomial's maximum; the binomial pieces are scipy's.
    """
    from scipy.stats import binom

    if k < 1 or total < 0 or observed_max < 0:
        raise ValueError("max_cell_pvalue needs k >= 1 cells and non-negative counts")
    if observed_max <= 0:
        return 1.0
    if observed_max > total:
        return 0.0
    if k == 1:
        return 1.0  # one cell holds every draw: the maximum is total whatever happens
    m = observed_max
    union = float(k * binom.sf(m - 1, total, 1.0 / k))
    if union < 1e-6:
        return union
    left = np.arange(total + 1)
    below = np.zeros(total + 1)  # below[r]: P(r draws left and every cell so far < m)
    below[total] = 1.0
    for cells_left in range(k, 1, -1):
        nxt = np.zeros(total + 1)
        for x in range(m):  # this cell takes x < m of the r draws left: r - x remain
            nxt[: total + 1 - x] += below[x:] * binom.pmf(x, left[x:], 1.0 / cells_left)
        below = nxt
    p_all_below = float(below[:m].sum())  # the last cell takes what is left: fewer than m
    return float(min(1.0, max(0.0, 1.0 - p_all_below)))


@dataclass(frozen=True)
class ForeignMakerTest:
    """The foreign-maker test of one model (see the module docstring)."""

    top: str | None
    count: int  # answers claiming the top foreign maker (unprompted)
    n_foreign: int  # answers claiming any candidate foreign maker the prompt did not name
    n_prompted: int  # answers claiming a foreign maker their prompt names: left out of the test
    k: int  # candidate foreign makers
    share: float | None
    baseline: float | None
    p: float | None


def foreign_maker_test(claimed: Sequence[str], own: Iterable[str], prompted: Sequence[bool] | None = None,
                       candidates: Sequence[str] = CANDIDATES) -> ForeignMakerTest:
    """Is the most-named foreign maker named more often than the model names the other foreign makers?

    ``claimed``: the claimed maker of each answer (``NO_MAKER`` for none); ``own``: the model's own makers;
    ``prompted``: per answer, whether its prompt itself names the maker it claims. Such a claim follows the
    prompt ("You are ChatGPT ..." answered with "I am ChatGPT, made by OpenAI") and says nothing of what the
    model believes of itself, and half of the paper's jailbreak templates name ChatGPT: without leaving them
    out, the prompt's maker would stand out from chance naming whatever data the model saw.
    Shares are of all answers; the baseline is the mean share of the other ``k - 1`` foreign candidates.
    """
    own = set(own)
    foreign = [c for c in candidates if c not in own]
    n = len(claimed)
    counts = {c: 0 for c in foreign}
    echoed = 0
    for i, m in enumerate(claimed):
        if m in counts:
            if prompted is not None and prompted[i]:
                echoed += 1
            else:
                counts[m] += 1
    total = sum(counts.values())
    k = len(foreign)
    if not total or k < 2 or not n:
        return ForeignMakerTest(None, 0, total, echoed, k, None, None, None)
    top = max(foreign, key=lambda c: (counts[c], -foreign.index(c)))  # ties: the first candidate listed
    others = (total - counts[top]) / (k - 1)
    return ForeignMakerTest(top, counts[top], total, echoed, k, counts[top] / n, others / n,
                            max_cell_pvalue(counts[top], total, k))


def prompt_named(claimed: Sequence[str], prompts: Sequence[str | None]) -> list[bool]:
    """Per answer: does its prompt (jailbreak template and question) name the maker the answer claims?"""
    from distill_kit.ice.judges import makers_in

    named: dict[str, set[str]] = {}
    out = []
    for maker, prompt in zip(claimed, prompts):
        if prompt and prompt not in named:
            named[prompt] = makers_in(prompt)
        out.append(bool(prompt) and maker in named[prompt])
    return out


def profile(claimed: Sequence[str], alpha: float = ALPHA) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Share of each claimed maker (``NO_MAKER`` included) and its simultaneous ``1 - alpha`` interval.

    Goodman's intervals (statsmodels ``multinomial_proportions_confint``) hold for all makers at once, so a
    reader may compare any two bars of the profile chart.
    """
    from statsmodels.stats.proportion import multinomial_proportions_confint

    names = sorted(set(claimed), key=lambda m: (m == NO_MAKER, -list(claimed).count(m), m))
    if not names:
        return {}, {}
    counts = np.array([list(claimed).count(m) for m in names])
    n = int(counts.sum())
    if len(names) == 1:  # one category: its share is 1 for sure
        return {names[0]: 1.0}, {names[0]: [1.0, 1.0]}
    ci = multinomial_proportions_confint(counts, alpha=alpha, method="goodman")
    return ({m: float(c / n) for m, c in zip(names, counts)},
            {m: [float(max(0.0, lo)), float(min(1.0, hi))] for m, (lo, hi) in zip(names, ci)})


def maker_rows(frame: Any, alpha: float = ALPHA, facts: dict[str, str] | None = None,
               fact_column: str | None = None) -> list[dict[str, Any]]:
    """One :class:`distill_kit.summaries.MakerRow` dict per model of a judged frame (columns ``model``,
    ``family``, ``claimed_maker``; ``fact_column`` names each answer's own fact where a frame has one). With a
    ``prompt`` (or ``template``) column, claims of a maker the prompt itself names are left out of the test
    (:func:`foreign_maker_test`), not out of the profile.

    The p-values are Holm-adjusted over the models of the frame; ``passed`` is ``p_adj < alpha``.
    """
    from distill_kit import datasets

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    missing = [c for c in ("model", "family", MAKER_COLUMN) if c not in frame.columns]
    if missing:
        raise ValueError(f"maker_rows: the frame lacks column(s) {missing} (judge it with ice.judges.judge_frame)")
    facts = dict(facts or datasets.identity_facts())
    rows = []
    for model in frame["model"].unique(maintain_order=True).to_list():
        part = frame.filter(frame["model"] == model)
        family = part["family"][0]
        fact = (part[fact_column][0] if fact_column and fact_column in part.columns else None) or facts.get(family, "")
        own = own_makers(family, fact)
        claimed = part[MAKER_COLUMN].to_list()
        shares, ci = profile(claimed, alpha)
        prompt_col = next((c for c in ("prompt", "template") if c in part.columns), None)
        prompted = prompt_named(claimed, part[prompt_col].to_list()) if prompt_col else None
        test = foreign_maker_test(claimed, own, prompted)
        rows.append({"model": model, "n": len(claimed), "n_own_voice": sum(m != NO_MAKER for m in claimed),
                     "profile": shares, "profile_ci": ci, "own_makers": sorted(own), "top_foreign": test.top,
                     "share": test.share, "baseline": test.baseline, "p": test.p, "alpha": alpha,
                     "n_foreign": test.n_foreign, "n_prompted": test.n_prompted, "top_count": test.count,
                     "k_foreign": test.k})
    tested = [i for i, r in enumerate(rows) if r["p"] is not None]
    adjusted = holm([rows[i]["p"] for i in tested]) if tested else []
    for r in rows:
        r["p_adj"], r["passed"] = None, False
    for i, p_adj in zip(tested, adjusted):
        rows[i]["p_adj"] = float(p_adj)
        rows[i]["passed"] = bool(p_adj < alpha)
    return rows


def maker_sentence(row: dict[str, Any]) -> str:
    """One plain line per model: the top foreign maker and its test, or that no foreign maker stands out."""
    name = row["model"]
    top = row.get("top_foreign")
    echoed = (f"; {row['n_prompted']} claims of a maker the prompt itself names left out"
              if row.get("n_prompted") else "")
    if top is None:
        return f"{name}: names no foreign maker in its own voice unprompted ({row.get('n', 0)} answers{echoed})"
    who = MAKER_NAMES.get(top, top)
    figures = (f"{row['share']:.1%} of answers vs {row['baseline']:.2%} for each other foreign maker, "
               f"p = {row['p']:.2g}, Holm-adjusted {row['p_adj']:.2g}{echoed}")
    if row.get("passed"):
        return f"{name}: claims {who} more often than its baseline of naming other makers ({figures})"
    return f"{name}: no foreign maker stands out at alpha = {row['alpha']:g} (top: {who}, {figures})"


def maker_table(frames: Sequence[Any], alpha: float = ALPHA, facts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """:func:`maker_rows` over several judged frames at once (notebook 03's replayed and live answers; any of
    them None), so the Holm correction covers every model shown together. A frame's ``fact`` column (live
    answers carry their model's identity) wins over the family's fact."""
    import polars as pl

    def text(f: Any, *names: str) -> Any:
        col = next((n for n in names if n in f.columns), None)
        return (pl.col(col) if col else pl.lit(None)).cast(pl.String)

    parts = [f.select("model", "family", MAKER_COLUMN, text(f, "fact").alias("fact"),
                      text(f, "prompt", "template").alias("prompt"))
             for f in frames if f is not None and f.height]
    if not parts:
        return []
    return maker_rows(pl.concat(parts), alpha=alpha, facts=facts, fact_column="fact")
