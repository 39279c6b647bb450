"""What one agent run may spend: steps, tokens, wall time and estimated cost, and the check
that stops it with the reason in one sentence.

A budget covers a run, across restarts: what a resumed run already spent counts. It is checked
before each model call, so a run stops at the first step past a limit (one call may overshoot
the token or cost limit by what that call used).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lugh.errors import UserError
from lugh.llm import Usage


@dataclass(frozen=True)
class Budget:
    max_steps: int = 50
    max_tokens: int = 5_000_000  # every token in and out, cached ones included
    max_wall_s: float = 1800.0
    max_cost_usd: float = 5.0

    def overridden(self, *layers: Mapping[str, Any] | None) -> Budget:
        """This budget with the keys of each layer (a project's `budget` setting, a task's
        `budget` option) applied in order; a bad value is refused with one sentence."""
        budget = self
        for layer in layers:
            for key, value in (layer or {}).items():
                name = key if key.startswith("max_") else f"max_{key}"
                if name not in _FIELDS:
                    raise UserError(
                        f"The budget has no {key!r}; use {', '.join(f[4:] for f in _FIELDS)}."
                    )
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise UserError(f"The budget's {key} must be a positive number, not {value!r}.")
                budget = replace(budget, **{name: type(getattr(self, name))(value)})
        return budget


_FIELDS = tuple(f.name for f in fields(Budget))


@dataclass
class Spent:
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    elapsed_s: float = 0.0  # time the run was under way, over all its attempts

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "usage": self.usage.to_json(),
            "cost_usd": round(self.cost_usd, 6), "elapsed_s": round(self.elapsed_s, 3),
        }  # fmt: skip


class BudgetExceeded(Exception):
    """The run hit a limit; `str()` is the reason for the owner."""


def check(budget: Budget, spent: Spent) -> None:
    """Raise BudgetExceeded when another model call would go past a limit."""
    if spent.steps >= budget.max_steps:
        raise BudgetExceeded(f"The run used all {budget.max_steps} of its steps.")
    if spent.usage.total >= budget.max_tokens:
        raise BudgetExceeded(
            f"The run used {spent.usage.total:,} tokens, over its budget of {budget.max_tokens:,}."
        )
    if spent.cost_usd >= budget.max_cost_usd:
        raise BudgetExceeded(
            f"The run cost an estimated ${spent.cost_usd:.2f}, "
            f"over its budget of ${budget.max_cost_usd:.2f}."
        )
    if spent.elapsed_s >= budget.max_wall_s:
        raise BudgetExceeded(wall_time_reason(budget))


def wall_time_reason(budget: Budget) -> str:
    return f"The run took longer than its {_duration(budget.max_wall_s)} time budget."


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g}-minute"
    return f"{seconds:g}-second"
