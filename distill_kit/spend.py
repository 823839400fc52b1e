"""(moved from distill_kit.run.estimate)"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from distill_kit.config import ModelConfig

MAX_COST_ENV = "DISTILL_KIT_MAX_COST"
LEDGER_ENV = "DISTILL_KIT_SPEND_LEDGER"
BATCH_ENV = "DISTILL_KIT_BATCH"
BATCH_PROVIDERS = ("openai", "anthropic")
def price(model: ModelConfig, tokens_in: int, tokens_out: int) -> tuple[float, float]:
    """USD at the configured prices, and at the batch price (providers with a batch API only)."""
    cost = (tokens_in * model.cost_per_mtok_in + tokens_out * model.cost_per_mtok_out) / 1e6
    return cost, cost * model.batch_price if model.provider in BATCH_PROVIDERS else cost
def batch_on(model: ModelConfig) -> bool:
    """Does this model's collection go through its provider's batch API (per model, or per run)?"""
    return model.provider in BATCH_PROVIDERS and (model.batch or os.environ.get(BATCH_ENV, "") == "1")
class BudgetExceeded(RuntimeError):
    """The run's spend reached --max-cost: nothing more is sent; stored answers are kept."""
class Budget:
    """Spend so far of one run (a JSON ledger file shared by the run's notebook kernels, one at a time)."""

    def __init__(self, limit: float, ledger: Path) -> None:
        self.limit, self.ledger = limit, ledger
        self._lock = threading.Lock()
        self.spent = self._read()

    def _read(self) -> float:
        try:
            return float(json.loads(self.ledger.read_text(encoding="utf-8")).get("spent", 0.0))
        except (OSError, ValueError):
            return 0.0

    def refresh(self) -> None:
        with self._lock:
            self.spent = max(self.spent, self._read())

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit

    def add(self, cost: float) -> None:
        if cost <= 0:
            return
        with self._lock:
            self.spent += cost
            tmp = self.ledger.with_suffix(".tmp")
            tmp.write_text(json.dumps({"spent": self.spent, "limit": self.limit}), encoding="utf-8")
            os.replace(tmp, self.ledger)

    def exceeded(self) -> BudgetExceeded:
        return BudgetExceeded(self.message())

    def message(self) -> str:
        return (f"spending cap reached: ${self.spent:.4f} of --max-cost ${self.limit:.4f}; stopped sending, "
                "stored answers are kept (raise --max-cost and run again to continue)")
_budgets: dict[tuple[float, str], Budget] = {}
_budgets_lock = threading.Lock()
def active_budget() -> Budget | None:
    """The run's budget when the runner set a cap (env), else None; one object per process and ledger."""
    limit = os.environ.get(MAX_COST_ENV, "")
    ledger = os.environ.get(LEDGER_ENV, "")
    if not limit or not ledger:
        return None
    key = (float(limit), ledger)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = Budget(float(limit), Path(ledger))
    budget.refresh()
    return budget
