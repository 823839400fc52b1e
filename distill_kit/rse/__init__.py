"""RSE -- Response Similarity Evaluation (notebook 04): how alike are a test model's and a reference's answers?

- :mod:`~distill_kit.rse.responses` -- the answers compared: published (replayed) and live, aligned by prompt;
- :mod:`~distill_kit.rse.offline_judge` -- the offline judge: answer profiles, style/structure/content
  similarities, the mapping to the paper's 1-5 scale;
- :mod:`~distill_kit.rse.llm_judge` -- the paper's LLM judge, with its bias controls (both orders, shuffled
  aspects, judge panels, self-judging warnings);
- :mod:`~distill_kit.rse.scores` -- the RSE table with bootstrap intervals, model x model matrices;
- :mod:`~distill_kit.rse.charts`, :mod:`~distill_kit.rse.browse`, :mod:`~distill_kit.rse.widgets` -- views.

Prompt sets and the one response schema (``model, prompt_id, prompt, text``) are :mod:`distill_kit.datasets`'.
"""
