"""Lineage of models from their answers (notebook 05): who answers like whom, and who taught whom.

- :mod:`~distill_kit.lineage.prompts` -- the shared prompts and the fit/score split everything uses;
- :mod:`~distill_kit.lineage.documented` -- the documented lineage (roles, teachers, product lines);
- :mod:`~distill_kit.lineage.attribution` -- similarity signals, teacher ranking and its calibration;
- :mod:`~distill_kit.lineage.votes` -- the headline attribution: a candidates-only author classifier's vote;
- :mod:`~distill_kit.lineage.finetune` -- the same vote from a fine-tuned MiniLM author classifier (opt-in);
- :mod:`~distill_kit.lineage.teachers` -- both attributions of a run, scored against the documented lineage;
- :mod:`~distill_kit.lineage.significance` -- the lineage test: a p-value per (target, line) against documented
  unrelated pairs, Holm over lines; what a verdict may claim, and its error rates;
- :mod:`~distill_kit.lineage.authorship` -- "who wrote this?": held-out author classification and confusions;
- :mod:`~distill_kit.lineage.maps` -- embedding maps, the homogenisation index, clusters of models;
- :mod:`~distill_kit.lineage.tree` -- the one similarity -> distance -> linkage -> tree path;
- :mod:`~distill_kit.lineage.charts`, :mod:`~distill_kit.lineage.browse`, :mod:`~distill_kit.lineage.widgets` -- views.
"""

#: the public modules (each says what it holds in its own docstring); a new module is added here
__all__ = [
    "attribution", "authorship", "browse", "charts", "documented", "finetune", "maps", "prompts", "significance",
    "teachers", "tree", "votes", "widgets",
]
