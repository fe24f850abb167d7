"""Scripted scenarios: each runs a piece of the product and checks what a user would check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Say = Callable[[str], None]


@dataclass
class Outcome:
    """What `sim run` prints: checks (name -> bool) and figures (name -> number)."""

    scenario: str
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, float | int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, name: str, passed: bool, problem: str = "") -> None:
        """Record a check; a failed one keeps its first problem for the summary."""
        self.checks[name] = self.checks.get(name, True) and bool(passed)
        if not passed and problem and len(self.problems) < 20:
            self.problems.append(f"{name}: {problem}")

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "ok": self.ok,
            "checks": self.checks,
            "figures": self.figures,
            "problems": self.problems,
        }


def scenarios() -> dict[str, Callable[..., Outcome]]:
    """Scenario name -> run(devices=, seed=, say=)."""
    from simulator.scenarios import backlog, budget, card_reader, hq_cards, loyalty_year, offline_shift, power_cut, sync

    return {
        "offline-shift": offline_shift.run,
        "power-cut": power_cut.run,
        "card-reader": card_reader.run,
        "sync": sync.run,
        "hub-restart": sync.run_hub_restart,
        "broker-restart": sync.run_broker_restart,
        "duplicates": sync.run_duplicates,
        "backlog": backlog.run,
        "shift-budget": budget.run,
        "hq-cards": hq_cards.run,
        "loyalty-year": loyalty_year.run,
    }
