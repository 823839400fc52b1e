"""Paths, model configs and the environment variables distill-kit reads.

Every path is anchored on the project root so notebooks (run with cwd=notebooks/) and scripts agree.
API keys are never part of a config: a config names the environment variable that holds the key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill_kit.paths import CONFIG_DIR, MODELS_FILE, MODELS_OVERLAY_ENV, PROJECT_ROOT

Provider = Literal["openai", "anthropic", "local", "replay", "mock", "transformers"]


class ConfigError(ValueError):
    """Bad user input (config file, model name, missing key): shown as one line, not a traceback."""


class GenerationParams(BaseModel):
    """Output-affecting generation settings; they are part of every request's cache key."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.0, description="Sampling temperature; 0 keeps runs reproducible.")
    max_tokens: int = Field(256, description="Upper bound on generated tokens per answer.")
    top_p: float = Field(1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(None, description="Sampling seed where the provider supports one.")


# ---------------------------------------------------------------- dataset names (here: configs name them)

#: The one spelling of each published dataset of answers (the names of its prompt set and of its source).
DATASETS: tuple[str, ...] = ("alpaca-eval", "arena-hard")
#: Older spellings still read from users' configs, with a one-line notice.
OLD_DATASET_SPELLINGS: dict[str, str] = {"alpaca_eval": "alpaca-eval", "arena_hard": "arena-hard"}


def dataset_name(name: str) -> str:
    """The one spelling of a dataset name: ``alpaca_eval`` -> ``alpaca-eval`` (one deprecation line on stderr),
    anything else unchanged."""
    new = OLD_DATASET_SPELLINGS.get(name)
    if new is None:
        return name
    print(f"note: dataset name {name!r} is deprecated; write {new!r}", file=sys.stderr)
    return new



class ReplaySource(BaseModel):
    """Which published responses a replay model serves."""

    model_config = ConfigDict(extra="forbid")
    dataset: Literal["identity", "alpaca-eval", "arena-hard"]
    model: str = Field(description="Model name inside the dataset (its file stem).")

    @field_validator("dataset", mode="before")
    @classmethod
    def _one_spelling(cls, value: Any) -> Any:
        return dataset_name(value) if isinstance(value, str) else value


class ModelConfig(BaseModel):
    """One model a run can talk to. Retries and timeouts do not change answers, so they are not keyed."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Short name used in the store, tables and charts.")
    provider: Provider = Field(description="openai (and any OpenAI-compatible server), anthropic, local, replay, "
                                  "mock (in-process scripted replies for tests: providers/mock.py), "
                                  "transformers (a local Hugging Face model, optionally with a LoRA adapter).")
    model: str = Field("", description="Model id sent to the provider.")
    base_url: str | None = Field(None, description="Endpoint for OpenAI-compatible servers (vLLM, Ollama, llama.cpp).")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    params: GenerationParams = Field(default_factory=GenerationParams)
    identity: str | None = Field(None, description="The model's true identity statement (ICE 'Fact 1').")
    family: str | None = Field(None, description="Model family (key of the identity facts).")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once for this model.")
    timeout: float = Field(120.0, gt=0, description="Seconds before one request is abandoned and retried.")
    max_retries: int = Field(5, ge=0, description="Retries after the first attempt for retryable errors.")
    backoff_base: float = Field(1.0, ge=0, description="First backoff delay in seconds; doubles per retry.")
    backoff_max: float = Field(60.0, ge=0, description="Upper bound on one backoff delay.")
    gguf: str | None = Field(None, description="local provider: GGUF path; empty means the bundled SmolLM2.")
    threads: int | None = Field(None, ge=1, description="local provider: llama.cpp threads; empty means chosen "
                                "from the CPU idle at start (see providers.local.auto_threads).")
    replay: ReplaySource | None = Field(None, description="replay provider: which published responses.")
    path: str | None = Field(None, description="transformers provider: a Hugging Face model folder or a .gguf file; "
                             "empty means the bundled SmolLM2 GGUF.")
    adapter: str | None = Field(None, description="transformers provider: a LoRA adapter folder (peft) served on "
                                "top of `path`, e.g. a student of distill_kit.students.")
    cost_per_mtok_in: float = Field(0.0, ge=0, description="USD per million prompt tokens, for cost accounting.")
    cost_per_mtok_out: float = Field(0.0, ge=0, description="USD per million completion tokens.")
    batch: bool = Field(False, description="Send through the provider's batch API (OpenAI Batch, Anthropic "
                        "Message Batches): about half price, answers within 24 h (see distill_kit/providers/batch.py).")
    batch_price: float = Field(0.5, ge=0, le=1, description="Batch price as a share of the normal price.")
    batch_poll: float = Field(30.0, gt=0, description="Seconds between two polls of a submitted batch.")

    def api_key(self) -> str:
        """The key from the environment, or one clear error naming the variable."""
        if not self.api_key_env:
            raise ConfigError(f"model {self.name!r} needs api_key_env naming the variable that holds its key")
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(f"set {self.api_key_env} to use model {self.name!r} (the key is read from the environment only)")
        return key

    def with_params(self, **changes: Any) -> "ModelConfig":
        """A copy with some generation settings changed (e.g. a shorter ``max_tokens`` for a quick run).
        Changed settings are part of the cache key, so the copy's answers never mix with the original's."""
        params = GenerationParams.model_validate({**self.params.model_dump(), **changes})  # a typo is an error
        return self.model_copy(update={"params": params})

    def cache_identity(self) -> dict[str, Any]:
        """What makes two answers comparable: same provider, model and generation settings."""
        return {"provider": self.provider, "model": self.model or self.name, "base_url": self.base_url,
                "gguf": self.gguf, "replay": self.replay.model_dump() if self.replay else None,
                "params": self.params.model_dump(), **self._local_weights()}

    def _local_weights(self) -> dict[str, Any]:
        """transformers provider: the weights' path and the adapter's digest (an adapter retrained in the same
        folder is another model). Absent for other providers, so their keys are what they always were."""
        if self.provider != "transformers":
            return {}
        return {"path": self.path, "adapter": self.adapter, "adapter_digest": weights_digest(self.adapter)}


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def weights_digest(folder: str | Path | None) -> str | None:
    """A digest of an adapter folder's weights file (cached by path, size and mtime: ``cache_identity`` runs per
    request); None when there is no folder or no weights file in it."""
    if not folder:
        return None
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        f = Path(folder).expanduser() / name
        if f.is_file():
            st = f.stat()
            return _file_digest(str(f.resolve()), st.st_size, st.st_mtime_ns)
    return None


def validation_error_line(err: ValidationError, source: str, loc_prefix: str = "") -> str:
    """One line: unknown keys first (a typo usually explains the 'missing' errors too)."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    parts = []
    for e in errors[:2]:
        loc = loc_prefix + (".".join(str(p) for p in e["loc"]) or "(top level)")
        msg = "unknown key (check spelling)" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{loc}: {msg}")
    more = f" (+{len(errors) - 2} more)" if len(errors) > 2 else ""
    return f"{source}: {'; '.join(parts)}{more}"


def read_yaml(path: Path) -> Any:
    """A YAML file's content; a syntax error is one ConfigError line with the line number."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None


def _parse_models(raw: Any, source: str) -> dict[str, ModelConfig]:
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'models:' list")
    models: dict[str, ModelConfig] = {}
    for i, item in enumerate(raw["models"]):
        try:
            cfg = ModelConfig.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(validation_error_line(exc, source, f"models[{i}].")) from None
        if cfg.name in models:
            raise ConfigError(f"{source}: model name {cfg.name!r} appears twice")
        models[cfg.name] = cfg
    return models


def split_names(value: str | Sequence[str] | None) -> list[str]:
    """Notebook/CLI parameter: ``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (empty -> [])."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [x.strip() for x in items if x and x.strip()]


def load_models(path: str | Path | None = None) -> dict[str, ModelConfig]:
    """Read a models YAML file (default configs/models.yaml)."""
    path = Path(path) if path else MODELS_FILE
    if not path.exists():
        raise ConfigError(f"model config not found: {path}")
    return _parse_models(read_yaml(path), str(path))


def _expand_env(value: Any, source: str) -> Any:
    """``${VAR}`` in an overlay's strings, from the environment (e.g. a loopback server's port)."""
    import re

    if isinstance(value, dict):
        return {k: _expand_env(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, source) for v in value]
    if not isinstance(value, str):
        return value

    def var(m: "re.Match[str]") -> str:
        if m.group(1) not in os.environ:
            raise ConfigError(f"{source}: ${{{m.group(1)}}} is not set in the environment")
        return os.environ[m.group(1)]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", var, value)


def resolve_overlay(path: str | Path) -> Path:
    """An overlay path as given (absolute or from the working directory), else under the project."""
    p = Path(path).expanduser()
    for cand in (p, PROJECT_ROOT / p, CONFIG_DIR / p):
        if cand.is_file():
            return cand.resolve()
    raise ConfigError(f"model overlay not found: {path}")


def apply_overlay(models: dict[str, ModelConfig], path: str | Path) -> dict[str, ModelConfig]:
    """Models with an overlay file's entries merged in: an entry naming a known model changes only the
    keys it lists (``params`` merged key by key), a new name adds a model. Why: the same run config can
    point at other endpoints (a loopback API zoo, a vLLM server) without editing models.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model overlay not found: {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'models:' list")
    merged = {name: cfg.model_dump() for name, cfg in models.items()}
    for i, item in enumerate(raw["models"]):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{path}: models[{i}] needs a name")
        item = _expand_env(item, str(path))
        base = merged.get(item["name"], {})
        params = {**base.get("params", {}), **(item.get("params") or {})}
        merged[item["name"]] = {**base, **item, "params": params}
    return _parse_models({"models": list(merged.values())}, str(path))


@lru_cache(maxsize=1)
def _base_models() -> dict[str, ModelConfig]:
    return load_models(MODELS_FILE)


def default_models() -> dict[str, ModelConfig]:
    """configs/models.yaml, with the overlay named by $DISTILL_KIT_MODELS_OVERLAY applied (read each time:
    its ``${VAR}`` values may change between runs of one process)."""
    overlay = os.environ.get(MODELS_OVERLAY_ENV, "")
    return apply_overlay(_base_models(), overlay) if overlay else _base_models()
