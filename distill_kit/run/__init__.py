"""Runs: the top layer, which may import everything and which nothing else imports.

- :mod:`~distill_kit.run.plan` -- a run config and the step plans it resolves to (notebooks, exact parameters);
- :mod:`~distill_kit.run.pipeline` -- executing the plans with papermill: run directories, resume, secrets kept out;
- :mod:`~distill_kit.run.parameters` -- the one reader of a notebook's ``parameters`` cell (names, defaults, types);
- :mod:`~distill_kit.run.estimate` -- what a run will cost before it sends anything, and the spending cap;
- :mod:`~distill_kit.run.report` -- the run report, read from the typed step summaries (:mod:`distill_kit.summaries`);
- :mod:`~distill_kit.run.cli` -- the ``distill-kit`` command; :mod:`~distill_kit.run.lab` -- ``distill-kit lab``.
"""

#: the public modules (each says what it holds in its own docstring); a new module is added here
__all__ = ["cli", "estimate", "lab", "parameters", "pipeline", "plan", "prepare", "report"]
