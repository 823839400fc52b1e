"""The toy answers' pairwise scores, computed once per session."""

from __future__ import annotations

import pytest

from distill_kit.rse import offline_judge as oj
from tests.rse.toy_answers import bag_of_words, toy_aligned


@pytest.fixture(scope="session")
def toy_scores() -> oj.PairwiseScores:
    return oj.pairwise_scores(oj.build_profiles(toy_aligned(), encode=bag_of_words, progress=False))
