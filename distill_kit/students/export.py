"""A student as one GGUF file, served by the llama.cpp ``local`` provider: the base's own GGUF with every tensor the
LoRA adapter touched replaced by its merged float32 weights (base + adapter, peft's ``merge_and_unload``).

Why patch the base's GGUF instead of converting the merged model with llama.cpp's ``convert_hf_to_gguf.py``: the
converter is not installed (it ships only in llama.cpp's sources) and would re-encode every tensor; patching keeps
every untouched tensor byte for byte, so a student and its base differ in the served file exactly where training
changed them, and the base control is the very file the ``local`` provider serves by default. Why GGUF at all:
llama.cpp generates several times faster on a CPU than ``transformers`` (measured in docs/students.md), and
evidence per student is bounded by generation.

llama.cpp stores the query and key projections of llama-architecture models with the rows of each head
interleaved for its rotary embedding (``transformers`` undoes this on load); :func:`to_gguf_layout` redoes it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from distill_kit.config import ConfigError, GenerationParams, ModelConfig
from distill_kit.providers.transformers import require, resolve_base
from distill_kit.students.recipe import Student


def to_gguf_layout(weight: np.ndarray, n_head: int) -> np.ndarray:
    """A query/key projection (rows = heads x head_dim) in llama.cpp's rotary row order: the inverse of
    ``transformers``' ``LlamaTensorProcessor._reverse_permute_weights`` (``n_head``: heads of this projection)."""
    half = weight.shape[0] // n_head // 2
    return weight.reshape(n_head, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def merged_weights(student: Student) -> dict[str, np.ndarray]:
    """HF tensor name -> merged float32 weight, for every linear layer the student's adapter wraps."""
    from distill_kit.providers.transformers import load_causal_lm

    peft = require("peft")
    model, _ = load_causal_lm(student.base or None, None, device="cpu")
    wrapped = peft.PeftModel.from_pretrained(_fresh_copy(model), student.adapter)
    touched = [name.removeprefix("base_model.model.") for name, module in wrapped.named_modules()
               if isinstance(module, peft.tuners.lora.LoraLayer)]
    merged = wrapped.merge_and_unload().state_dict()
    return {f"{name}.weight": merged[f"{name}.weight"].detach().float().numpy() for name in touched}


def _fresh_copy(model: Any) -> Any:
    """A deep copy of a shared loaded model (merging writes into its weights; the provider's copy stays clean)."""
    import copy

    return copy.deepcopy(model)


def gguf_path(student: Student) -> Path:
    """Where the student's GGUF lives: beside its adapter, named after its key (the server's model alias)."""
    return Path(student.adapter).parent / f"student-{student.key[:16]}.gguf"


def export_gguf(student: Student) -> Path:
    """The student's GGUF (written once; a re-run returns the file). Needs a GGUF base: the bundled SmolLM2 or a
    ``.gguf`` file (a Hugging Face folder base is served by the ``transformers`` provider instead)."""
    out = gguf_path(student)
    if out.is_file():
        return out
    base = resolve_base(student.base or None)
    if base.gguf_file is None:
        raise ConfigError(f"GGUF export needs a GGUF base; {student.name} was trained on the folder {base.folder} "
                          "(serve it with the transformers provider)")
    return patch_gguf(base.folder / base.gguf_file, merged_weights(student), out)


def patch_gguf(source: Path, weights: dict[str, np.ndarray], out: Path) -> Path:
    """A copy of the llama-architecture GGUF ``source`` with the tensors named in ``weights`` (Hugging Face names,
    Hugging Face layout) replaced by those float32 weights; metadata and every other tensor copied as they are."""
    gguf = require("gguf")
    from gguf.scripts.gguf_new_metadata import copy_with_new_metadata

    reader = gguf.GGUFReader(source)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    if arch != "llama":
        raise ConfigError(f"GGUF export knows the llama architecture's tensor layout; this base is {arch!r}")
    n_head = int(reader.fields[f"{arch}.attention.head_count"].contents())
    n_kv = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(reader.fields[f"{arch}.block_count"].contents()))
    replaced: dict[str, np.ndarray] = {}
    for hf_name, weight in weights.items():
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if name is None:
            raise ConfigError(f"no GGUF tensor for {hf_name}")
        if ".attn_q." in name or ".attn_k." in name:
            weight = to_gguf_layout(weight, n_head if ".attn_q." in name else n_kv)
        replaced[name] = np.ascontiguousarray(weight, dtype=np.float32)
    missing = set(replaced) - {t.name for t in reader.tensors}
    if missing:
        raise ConfigError(f"{source.name} lacks tensors to replace: {sorted(missing)[:3]}")
    tensors = [t._replace(data=replaced[t.name], tensor_type=gguf.GGMLQuantizationType.F32,
                          n_bytes=replaced[t.name].nbytes) if t.name in replaced else t for t in reader.tensors]
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch=arch, endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    view = SimpleNamespace(fields=reader.fields, tensors=tensors, endianess=reader.endianess)
    copy_with_new_metadata(view, writer, {}, [])  # type: ignore[arg-type]
    partial.replace(out)  # a killed export leaves only the .partial file
    return out


def gguf_config(student: Student, concurrency: int = 1, max_tokens: int | None = None,
                threads: int | None = None) -> ModelConfig:
    """The student as a ``local`` (llama.cpp) model: its GGUF exported on first use, greedy like
    :meth:`Student.model_config_for`."""
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens or student.recipe.max_answer_tokens, seed=0)
    return ModelConfig(name=student.name, provider="local", model=f"student-{student.key[:16]}",
                       gguf=str(export_gguf(student)), threads=threads, params=params, concurrency=concurrency,
                       timeout=3600.0, max_retries=0)

