"""Loopback API servers: test a model config, a client or the paper's whole protocol on this machine, offline.

Public, because users test their configs against them too. Both servers speak the OpenAI Chat Completions and
Anthropic Messages APIs over real HTTP on 127.0.0.1 only, so the real ``openai`` / ``anthropic`` SDKs (and
anything built on them) talk to them unchanged:

- :class:`LoopbackServer` (in-process; :class:`LoopbackProcess` runs it in its own process): answers every
  prompt with :func:`answer_for` (or a ``reply`` callable) and injects :class:`Fault` s -- HTTP errors with
  Retry-After, stalls, connection resets, truncated or non-UTF-8 bodies, odd JSON shapes (built with
  :func:`openai_reply` / :func:`anthropic_reply`) -- plus a fixed-window :class:`RateLimit` that answers 429
  with the ``x-ratelimit-*`` headers OpenAI sends. For clients' error handling and load.
- :class:`ZooServer` (the API zoo; :class:`Zoo` is its ASGI app, :class:`ZooConfig` its knobs): answers as
  the paper's models and judges from the published data (:func:`paper_answer`), speaks both batch APIs, and
  can enforce a token-bucket request rate. For running ``configs/runs/paper.yaml`` at its scale offline::

      python -m distill_kit.testing --port 8765 &      # serves the zoo; prints http://127.0.0.1:8765
      distill-kit run paper --models-overlay configs/overlays/zoo.yaml

  ``python -m distill_kit.testing --help`` lists the options (``--echo``: cheap fixed answers for benchmarks;
  ``--loopback``: serve the fault-injecting loopback server instead).

Both read requests the same way (:func:`prompt_of`: the last user message) and build replies with the same
two functions, so a body the zoo sends is one the loopback server can be scripted to send.

One module per part: :mod:`.wire` (requests and reply bodies, the bound socket: both servers), :mod:`.loopback`
(the fault-injecting server), :mod:`.answers` (what the zoo answers, reading the judges' own prompts),
:mod:`.zoo` (the zoo's app and server), :mod:`.cli` (``python -m distill_kit.testing``). Every name below is
importable from ``distill_kit.testing`` itself.
"""

from __future__ import annotations

from distill_kit.testing.answers import (
    ALIASES,
    ARENA_STAND_IN,
    DEFAULT_ARENA,
    ZooData,
    answer_as,
    canonical,
    echo_answer,
    judge_reply,
    paper_answer,
)
from distill_kit.testing.cli import main
from distill_kit.testing.loopback import Fault, LoopbackProcess, LoopbackServer, RateLimit, ServerState
from distill_kit.testing.wire import BACKLOG, BoundSocket, answer_for, anthropic_reply, error_body, openai_reply, prompt_of
from distill_kit.testing.zoo import ZOO_NEEDS, Zoo, ZooConfig, ZooServer, ZooStats

__all__ = [
    "ALIASES", "ARENA_STAND_IN", "BACKLOG", "DEFAULT_ARENA", "ZOO_NEEDS", "BoundSocket", "Fault", "LoopbackProcess",
    "LoopbackServer", "RateLimit", "ServerState", "Zoo", "ZooConfig", "ZooData", "ZooServer", "ZooStats", "answer_as",
    "answer_for", "anthropic_reply", "canonical", "echo_answer", "error_body", "judge_reply", "main", "openai_reply",
    "paper_answer", "prompt_of",
    # the modules
    "answers", "cli", "loopback", "wire", "zoo",
]
