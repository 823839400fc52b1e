"""A student exported to GGUF is the student: the patched tensors are its merged weights in llama.cpp's layout,
every other tensor is the base's byte for byte, and llama.cpp serves it with the same greedy answer as
transformers on a short prompt. Slow (except the layout check): trains a micro student, starts a llama.cpp
server."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distill_kit.students.export import to_gguf_layout


def test_query_rows_are_interleaved_per_head_as_llama_cpp_stores_them() -> None:
    """llama.cpp's rotary layout: per head, the first and second halves of the rows alternate."""
    w = np.arange(8, dtype=np.float32).reshape(8, 1)  # 2 heads of 4 rows
    assert to_gguf_layout(w, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert to_gguf_layout(w, 1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.fixture(scope="module")
def micro_student():  # type: ignore[no-untyped-def]
    pytest.importorskip("peft")
    from distill_kit.students.recipe import Recipe
    from distill_kit.students.train import train_student

    recipe = Recipe(top_layers=1, target_modules=("q_proj", "v_proj"), lora_r=4, max_prompt_tokens=16,
                    max_answer_tokens=12, batch_size=2, learning_rate=5e-2)
    nonce = uuid.uuid4().hex[:8]
    pairs = pl.DataFrame({"prompt_id": [f"{nonce}-{i}" for i in range(4)],
                          "prompt": [f"[{nonce}] Name a colour, number {i}." for i in range(4)],
                          "text": [f"Blue is colour number {i}. It is calm." for i in range(4)]})
    student = train_student(pairs, name="micro-export", teacher="store/micro", recipe=recipe, progress=False)
    yield student
    shutil.rmtree(Path(student.adapter).parent, ignore_errors=True)


@pytest.mark.slow
def test_export_patches_exactly_the_adapted_tensors(micro_student) -> None:  # type: ignore[no-untyped-def]
    import gguf

    from distill_kit.providers.local import default_gguf
    from distill_kit.providers.transformers import load_causal_lm
    from distill_kit.students.export import export_gguf, merged_weights

    path = export_gguf(micro_student)
    assert export_gguf(micro_student) == path  # written once
    out, base = gguf.GGUFReader(path), gguf.GGUFReader(default_gguf())
    base_tensors = {t.name: t for t in base.tensors}
    patched = {t.name: t for t in out.tensors if bytes(t.data) != bytes(base_tensors[t.name].data)}
    assert set(patched) == {"blk.29.attn_q.weight", "blk.29.attn_v.weight"}
    assert len(out.tensors) == len(base.tensors)
    merged = merged_weights(micro_student)
    q_out = np.asarray(patched["blk.29.attn_q.weight"].data)
    assert patched["blk.29.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    np.testing.assert_array_equal(q_out, to_gguf_layout(merged["model.layers.29.self_attn.q_proj.weight"], 9))
    np.testing.assert_array_equal(np.asarray(patched["blk.29.attn_v.weight"].data),
                                  merged["model.layers.29.self_attn.v_proj.weight"])
    # the layout is the one transformers reads: the base's own q tensor, dequantized, is its HF weight re-laid
    model, _ = load_causal_lm(None, device="cpu")
    hf_q = model.model.layers[29].self_attn.q_proj.weight.detach().numpy()
    q_base = base_tensors["blk.29.attn_q.weight"]
    np.testing.assert_allclose(gguf.quants.dequantize(q_base.data, q_base.tensor_type), to_gguf_layout(hf_q, 9),
                               atol=1e-6)


def _last_logits_transformers(model, tokenizer, ids) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()


def _last_logits_llama_cpp(path: Path, ids: list[int]) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=128, n_threads=1, logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[len(ids) - 1])


@pytest.mark.slow
def test_the_exported_file_is_the_student_for_transformers_and_llama_cpp(micro_student) -> None:  # type: ignore[no-untyped-def]
    """Round trip: transformers reading the GGUF gives the peft student's logits. llama.cpp computes differently
    (Q4_1 weights times 8-bit activations; measured on the untrained base: next-token logits up to ~1.1 away from
    transformers', enough to flip a near tie, so greedy answers may part), so for llama.cpp the check is that the
    student moves its logits away from the base's as it does in transformers. The base it is compared with is the
    base's GGUF with the same tensors in float32 (unchanged weights): llama.cpp rounds activations for Q4_1 tensors
    only, so that rounding alone would move the logits."""
    import transformers

    from distill_kit.providers.local import default_gguf
    from distill_kit.providers.transformers import chat_prompt, load_causal_lm
    from distill_kit.students.export import export_gguf, merged_weights, patch_gguf

    path = export_gguf(micro_student)
    student, tokenizer = load_causal_lm(None, micro_student.adapter, device="cpu")
    base, _ = load_causal_lm(None, device="cpu")
    ids = tokenizer(chat_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}]),
                    add_special_tokens=False)["input_ids"]
    peft_logits = _last_logits_transformers(student, tokenizer, ids)
    base_logits = _last_logits_transformers(base, tokenizer, ids)
    reread = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    np.testing.assert_allclose(_last_logits_transformers(reread, tokenizer, ids), peft_logits, atol=1e-3)
    moved_tf = peft_logits - base_logits
    state = base.state_dict()
    unchanged = {name: state[name].detach().numpy() for name in merged_weights(micro_student)}
    same_base = patch_gguf(default_gguf(), unchanged, path.with_name("unchanged-base.gguf"))
    moved_cpp = _last_logits_llama_cpp(path, ids) - _last_logits_llama_cpp(same_base, ids)
    print("transformers move", np.abs(moved_tf).max(), "llama.cpp move", np.abs(moved_cpp).max(),
          "corr", np.corrcoef(moved_tf, moved_cpp)[0, 1], "max diff", np.abs(moved_tf - moved_cpp).max())
    assert np.abs(moved_tf).max() > 1.0  # the adapter moved the logits well beyond llama.cpp's rounding
    assert np.corrcoef(moved_tf, moved_cpp)[0, 1] > 0.9


@pytest.mark.slow
def test_a_student_is_served_by_llama_cpp_through_collect(micro_student) -> None:  # type: ignore[no-untyped-def]
    from distill_kit.collect import ChatRequest, collect_sync
    from distill_kit.providers.local import stop_servers
    from distill_kit.store import Store
    from distill_kit.students.export import gguf_config

    reqs = [ChatRequest.user("What is the capital of France?")]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
        try:
            served = collect_sync(gguf_config(micro_student, max_tokens=8), reqs, store, progress=False)
        finally:
            stop_servers()
        assert served[0].ok and served[0].text and served[0].usage_out > 0
        rows = store.frame(micro_student.name)
        assert rows.height == 1 and set(rows["provider"]) == {"local"}
