"""Open step contracts for the tests' synthetic notebooks: the runner's tests need steps that record something,
not a particular shape, and a summary name no contract declares is an error."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict

from distill_kit.summaries import StepSummary, contracts, record_summary


def open_contract(step: str) -> type[StepSummary]:
    """The declared contract of ``step``; for a step nobody declared, one that takes any fields."""
    found = contracts().get(step)
    if found is not None:
        return found
    return type(f"Open[{step}]", (StepSummary,), {"__annotations__": {"step": ClassVar[str]}, "step": step,
                                                   "model_config": ConfigDict(extra="allow")})


def record_open(run_dir: str, step: str, payload: dict[str, Any]) -> None:
    """``record_summary`` for a synthetic notebook's step."""
    record_summary(run_dir, open_contract(step).build(payload))
