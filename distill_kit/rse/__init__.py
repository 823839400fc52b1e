"""RSE -- Response Similarity Evaluation (notebook 04): how alike are a test model's and a reference's answers?

- :mod:`~distill_kit.rse.responses` -- the answers compared: published (replayed) and live, aligned by prompt;
- :mod:`~distill_kit.rse.judge` -- what every RSE judge offers (:class:`~distill_kit.rse.judge.SimilarityJudge`);
  :func:`resolve_similarity_judge` turns a judge's name into one;
- :mod:`~distill_kit.rse.offline_judge` -- the offline judge: answer profiles, style/structure/content
  similarities, the mapping to the paper's 1-5 scale;
- :mod:`~distill_kit.rse.llm_judge` -- the paper's LLM judge, with its bias controls (both orders, shuffled
  aspects, judge panels, self-judging warnings);
- :mod:`~distill_kit.rse.scores` -- the RSE table with bootstrap intervals, model x model matrices;
- :mod:`~distill_kit.rse.charts`, :mod:`~distill_kit.rse.browse`, :mod:`~distill_kit.rse.widgets` -- views.

Prompt sets and the one response schema (``model, prompt_id, prompt, text``) are :mod:`distill_kit.datasets`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill_kit.rse.judge import SimilarityJudge

#: the public modules and the resolver; a new module is added here
__all__ = ["browse", "charts", "judge", "llm_judge", "offline_judge", "resolve_similarity_judge", "responses", "scores",
           "widgets"]


def resolve_similarity_judge(judge: Any = "offline", store: Any = None, **options: Any) -> SimilarityJudge:
    """``"offline"`` (answer profiles, no calls), a configs/models.yaml name or a ModelConfig (the LLM judge;
    needs ``store``), or a judge already (returned as is). ``options`` go to the judge's constructor."""
    from distill_kit.rse.judge import SimilarityJudge

    if isinstance(judge, SimilarityJudge):
        return judge
    if judge == "offline":
        from distill_kit.rse.offline_judge import OfflineSimilarityJudge

        return OfflineSimilarityJudge(**options)
    if isinstance(judge, str):
        from distill_kit.models import get_model

        judge = get_model(judge)
    from distill_kit.rse.llm_judge import LLMSimilarityJudge

    return LLMSimilarityJudge(judge, store, **options)

