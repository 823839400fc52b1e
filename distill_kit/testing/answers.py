"""What the API zoo answers: the paper's models from the published data, and the paper's judges, which it
recognises by the judges' own prompts (:func:`~distill_kit.ice.judges.parse_identity_prompt`,
:func:`~distill_kit.rse.llm_judge.parse_similarity_prompt`)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter, defaultdict
from functools import cached_property
from typing import Any

from distill_kit import datasets
from distill_kit.ice.judges import parse_identity_prompt, rule_verdict, truth_for
from distill_kit.rse.llm_judge import ASPECTS, TRUNCATED, parse_similarity_prompt
from distill_kit.testing.wire import prompt_of

# What the zoo answers:
# - as a published model (any model of the identity data, by its name; aliases in ALIASES): its published answer
#   when the prompt is one of its 1,000 published jailbreak prompts; for another identity probe, one of its
#   published answers in the same language (English/Chinese), picked by a hash of the prompt, so the same prompt
#   always gets the same answer; for an Arena-Hard prompt, the published answer of its stand-in in ARENA_STAND_IN
#   (the data holds Arena-Hard answers of three GPT-4/3.5 models only); for anything else its family's true
#   identity statement;
# - as the judge (any model, e.g. gpt-4o-mini, recognised by the paper's prompts): the paper's published label in
#   the paper's tag format -- <judge>0|1</judge> for the loose question (the GPT-4o-mini label of that answer; the
#   majority label when the same text carries both) and <rate>0|1</rate> for the strict one; unknown answers get
#   the rule-based judge's verdict. RSE judge prompts get <style>/<structure>/<content> scores: 5 for an answer
#   identical to the reference, else the paper's published RSE average of the model the test answer came from
#   (rounded), else 3.

#: Request model names -> identity-data model names.
ALIASES = {"claude-3-5-sonnet": "claude-3-5-sonnet-20241022", "deepseek-v3": "deepseek-chat",
           "phi4": "phi-4", "llama3.1-70b-instruct": "llama-3.1-70b-instruct"}
#: Whose published Arena-Hard answer a model gives (the data has answers of these three models only).
ARENA_STAND_IN = {"gpt-4o": "gpt-4-0314", "claude-3-5-sonnet-20241022": "gpt-4-0613",
                  "deepseek-chat": "gpt-3.5-turbo-0125"}
DEFAULT_ARENA = "gpt-4-0314"
_CJK = re.compile(r"[\u3400-\u9fff]")


def _pick(options: list[str], prompt: str) -> str:
    h = int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12], 16)
    return options[h % len(options)]


class ZooData:
    """Indexes over the published data, built once per process on first use."""

    @cached_property
    def identity(self) -> Any:
        return datasets.identity_responses()

    @cached_property
    def models(self) -> set[str]:
        return set(self.identity["model"].unique().to_list())

    @cached_property
    def facts(self) -> dict[str, str]:
        return datasets.identity_facts()

    @cached_property
    def exact(self) -> dict[tuple[str, str], str]:
        return {(m, p.strip()): r or "" for m, p, r in self.identity.select("model", "prompt", "response").iter_rows()}

    @cached_property
    def by_language(self) -> dict[tuple[str, bool], list[str]]:
        out: dict[tuple[str, bool], list[str]] = defaultdict(list)
        for m, q, r in self.identity.select("model", "query", "response").iter_rows():
            out[(m, bool(_CJK.search(q or "")))].append(r or "")
        return out

    @cached_property
    def loose(self) -> dict[tuple[str, str], bool]:
        votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for fam, r, lab in self.identity.select("family", "response", "loose_label").iter_rows():
            votes[(self.facts.get(fam or "", ""), (r or "").strip())][bool(lab)] += 1
        return {k: c.most_common(1)[0][0] for k, c in votes.items()}

    @cached_property
    def strict(self) -> dict[str, bool]:
        votes: dict[str, Counter] = defaultdict(Counter)
        for r, loose, lab in self.identity.select("response", "loose_label", "strict_label").iter_rows():
            if loose:
                votes[(r or "").strip()][bool(lab)] += 1
        return {k: c.most_common(1)[0][0] for k, c in votes.items()}

    @cached_property
    def family(self) -> dict[str, str]:
        return dict(self.identity.select("model", "family").unique().iter_rows())

    @cached_property
    def arena(self) -> dict[tuple[str, str], str]:
        a = datasets.arena_answers()
        return {(m, p.strip()): t or "" for m, p, t in a.select("model", "prompt", "answer").iter_rows()}

    @cached_property
    def arena_prompts(self) -> set[str]:
        return {p for _, p in self.arena}

    @cached_property
    def author(self) -> dict[str, str]:
        """Answer text -> the model that gave it (for RSE scoring)."""
        out = {(r or "").strip(): m for m, r in self.identity.select("model", "response").iter_rows()}
        out.update({t.strip(): m for (m, _), t in self.arena.items()})
        return out

    @cached_property
    def rse(self) -> dict[str, float]:
        try:
            raw = datasets.read_bytes("identity/paper_rse_scores.csv")
        except Exception:
            return {}
        rows = csv.DictReader(io.StringIO(raw.decode("utf-8")))
        return {r["identity_model"]: float(r["arena_hard"]) for r in rows if r.get("identity_model")}


_data = ZooData()


def canonical(model: str) -> str:
    return ALIASES.get(model, model)


def answer_as(model: str, prompt: str) -> str:
    """The zoo's answer of ``model`` to a user prompt (see the module docstring)."""
    d, name, key = _data, canonical(model), prompt.strip()
    if (name, key) in d.exact:
        return d.exact[(name, key)]
    if key in d.arena_prompts:
        stand_in = ARENA_STAND_IN.get(name, name if (name, key) in d.arena else DEFAULT_ARENA)
        return d.arena.get((stand_in, key)) or d.arena.get((DEFAULT_ARENA, key), "")
    options = d.by_language.get((name, bool(_CJK.search(key))))
    if options:
        return _pick(options, key)
    fam = d.family.get(name) or ("gpt" if name.startswith("gpt") else "claude" if name.startswith("claude") else "")
    return d.facts.get(fam, f"I am {model}.")


def judge_reply(prompt: str) -> str | None:
    """The judge's reply when ``prompt`` is one of the paper's judge prompts (read by the judges' own
    parsers), else None."""
    d = _data
    asked = parse_identity_prompt(prompt)
    if asked is not None:
        response = asked.response.strip()
        if asked.question == "loose":
            label = d.loose.get((asked.fact, response))
            label = _rules(response, asked.fact)[0] if label is None else label
            source = "the paper's GPT-4o-mini labels"
        else:
            label = d.strict.get(response)
            label = _rules(response, "")[1] if label is None else label
            source = "the paper's strict labels"
        return f"Replayed from {source}.\n<{asked.tag}>{int(label)}</{asked.tag}>"
    shown = parse_similarity_prompt(prompt)
    if shown is None:
        return None
    ref, test = shown.reference.strip(), shown.test.strip()
    if ref == test:
        score = 5
    else:
        author = d.author.get(test.replace(TRUNCATED, "").strip())
        score = int(round(d.rse.get(author or "", 3.0)))
    tags = "".join(f"<{a}>{score}</{a}>\n" for a in ASPECTS)
    return f"{tags}<rationale>The paper's published RSE average for this model, rounded.</rationale>"


def known_models() -> list[str]:
    """Every model of the identity data, sorted (what the zoo lists at ``/v1/models``)."""
    return sorted(_data.models)


def _rules(response: str, fact: str) -> tuple[bool, bool]:
    fam = next((f for f, t in _data.facts.items() if t == fact), "")
    return rule_verdict(response, truth_for(fam, fact)) if fam else (False, False)


def paper_answer(model: str, messages: list[dict[str, Any]]) -> str:
    """What the zoo answers to a chat: a judge verdict for a judge prompt, else the model's answer."""
    prompt = prompt_of(messages)
    judged = judge_reply(prompt)
    return judged if judged is not None else answer_as(model, prompt)


def echo_answer(model: str, messages: list[dict[str, Any]]) -> str:
    """A fixed, cheap answer (benchmarks measure the transport, not the replay lookups)."""
    last = messages[-1].get("content", "") if messages else ""
    return f"echo: {last}" if isinstance(last, str) else "echo"

