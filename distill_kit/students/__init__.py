"""Students distilled from known teachers at known doses: ground truth for what distill-kit detects.

- :mod:`~distill_kit.students.pairs` -- a teacher's (prompt, answer) pairs, the seeded train/eval split, the dose;
- :mod:`~distill_kit.students.recipe` -- the training recipe and the record of a trained student;
- :mod:`~distill_kit.students.train` -- LoRA training (answer tokens only, resumable, cached by what made it);
- :mod:`~distill_kit.students.probe` -- a student's answers through ``collect`` (stored like any model's).

A student is served by the ``transformers`` provider (:mod:`distill_kit.providers.transformers`), so notebooks
02-06 probe it unchanged. ``torch``, ``transformers`` and ``peft`` are imported only when a student is trained
or served.
"""

#: the public modules (each says what it holds in its own docstring); a new module is added here
__all__ = ["catalog", "export", "pairs", "probe", "recipe", "train"]
