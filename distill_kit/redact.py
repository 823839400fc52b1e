"""Secret values never reach a file a run writes: every key-holding environment variable's value is
replaced by ``[REDACTED]``.

Which variables: every ``api_key_env`` named in ``configs/models.yaml`` (whatever its name), the
model being called, and any variable whose name says it holds a secret (``*KEY*``, ``*TOKEN*``,
``*SECRET*``, ...). Why values, not patterns: a provider may echo the presented key in an error
message, a model may repeat it, a user may paste it into a run description; only the value itself
finds all of those.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from distill_kit.paths import MODELS_FILE

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8  # shorter values ("1", "true") would shred ordinary text
#: Environment variables whose values must never reach an output file.
SECRET_ENV_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
#: Parameter names that would carry a secret (a run config refuses them); ``*_env`` names holding a
#: variable NAME are allowed.
SECRET_NAME = re.compile(
    r"(api[_-]?key|apikey|secret|passw(or)?d|credential|bearer|private[_-]?key|access[_-]?token"
    r"|auth[_-]?token|^token$|_token$)",
    re.IGNORECASE,
)
#: Values shaped like well-known key formats.
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|sk-ant-[A-Za-z0-9_\-]{8,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|hf_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|Bearer\s+\S{10,})"
)
#: An environment variable's name (what an ``api_key_env`` parameter may hold).
ENV_VAR_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@lru_cache(maxsize=8)
def _key_vars_in(path: str, mtime_ns: int) -> frozenset[str]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return frozenset()
    models = raw.get("models") if isinstance(raw, dict) else None
    return frozenset(str(m["api_key_env"]) for m in models or []
                     if isinstance(m, dict) and isinstance(m.get("api_key_env"), str))


def configured_key_vars(models_file: Path | None = None) -> frozenset[str]:
    """The ``api_key_env`` names of a models file (default configs/models.yaml; re-read when it changes)."""
    models_file = models_file or MODELS_FILE
    try:
        mtime = models_file.stat().st_mtime_ns
    except OSError:
        return frozenset()
    return _key_vars_in(str(models_file), mtime)


def secret_values(extra_vars: Iterable[str | None] = (), min_len: int = MIN_SECRET_LEN) -> list[str]:
    """Current values of every key-holding variable, longest first (so a key containing another is
    replaced whole)."""
    names = set(configured_key_vars()) | {v for v in extra_vars if v}
    names |= {k for k in os.environ if SECRET_ENV_NAME.search(k)}
    values = {os.environ.get(n, "") for n in names}
    return sorted((v for v in values if len(v) >= min_len), key=len, reverse=True)


def redact(text: str | None, secrets: Iterable[str] | None = None) -> str | None:
    """``text`` with every secret value replaced by ``[REDACTED]``."""
    if not text:
        return text
    for s in secret_values() if secrets is None else secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def redact_value(value: Any, secrets: list[str] | None = None) -> Any:
    """Strings inside dicts and lists redacted (keys too); other values unchanged."""
    secrets = secret_values() if secrets is None else secrets
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_value(k, secrets): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, secrets) for v in value]
    return value
