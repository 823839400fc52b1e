"""ICE -- Identity Consistency Evaluation (notebooks 01-03): does a model, jailbroken, contradict who it is?

- :mod:`~distill_kit.ice.probes` -- identity questions (EN/ZH) and jailbreak templates with a ``{query}`` slot;
- :mod:`~distill_kit.ice.fuzz` -- the GPTFuzzer loop that mutates templates against a live target;
- :mod:`~distill_kit.ice.answers` -- the answers scored: published (replayed) and live, each with its true identity;
- :mod:`~distill_kit.ice.judges` -- one :class:`~distill_kit.ice.judges.IdentityJudge` protocol, one resolver
  (``offline`` | ``rules`` | an LLM), the paper's two judge prompts;
- :mod:`~distill_kit.ice.scores` -- Loose/Strict Identity Scores with intervals, agreement, paired tests;
- :mod:`~distill_kit.ice.calibration` -- held-out judge scores: prevalence-corrected LIS/SIS, labelled samples;
- :mod:`~distill_kit.ice.labels` -- human labels clicked in the answer browser (append-only);
- :mod:`~distill_kit.ice.charts`, :mod:`~distill_kit.ice.browse`, :mod:`~distill_kit.ice.widgets` -- views.
"""

#: the public modules (each says what it holds in its own docstring); a new module is added here
__all__ = [
    "answers", "browse", "calibration", "charts", "fuzz", "judges", "labels", "makers", "probes", "scores",
    "widgets",
]
