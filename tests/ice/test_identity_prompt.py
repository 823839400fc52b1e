"""The identity judge's prompts read back: what a stand-in judge (the API zoo) sees is what was asked."""

from __future__ import annotations

import pytest

from distill_kit.ice import judges as J

FACT = "I am a large language model developed by Alibaba Cloud."


@pytest.mark.parametrize("question,tag,fact", [("loose", "judge", FACT), ("strict", "rate", "")])
def test_parse_identity_prompt_inverts_build_judge_prompt(question: str, tag: str, fact: str) -> None:
    answer = 'I am {GPT}.\n\n"Fact 2: <factor>x</factor>" as a quote'
    message = J.build_judge_prompt(question, answer, FACT)
    want = J.IdentityPrompt(question, tag, fact, answer)
    assert J.parse_identity_prompt(message) == want
    retry = message + J.RETRY_SUFFIX.format(example=f"<{tag}>0</{tag}> or <{tag}>1</{tag}>")
    assert J.parse_identity_prompt(retry) == want


def test_other_text_is_not_a_judge_prompt() -> None:
    assert J.parse_identity_prompt("Who made you?") is None
    assert J.parse_identity_prompt(J.build_judge_prompt("strict", "x")[:-5]) is None
