"""The portfolio strategy: a deterministic mix of strategies over the schedules of a run.

Each schedule is run by one member, chosen from the schedule's seed (``seed % len(members)``), so the
choice depends on nothing but that schedule: a parallel run makes the same choices as a sequential
one.  The default mix is uniform random, PCT with depth 2 and PCT with depth 3: random finds shallow
bugs fast, PCT gives the deep ones a guaranteed chance.  The members share the run-level preparation
(PCT's run length estimate is made once).
"""

from __future__ import annotations

from typing import Any, Sequence

from apactors.engine.pct import PctStrategy, miss_probability, pct_bound
from apactors.engine.strategies import RandomStrategy, Strategy, register_strategy

#: the default members: (label, strategy name, options)
DEFAULT_MEMBERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("random", "random", {}),
    ("pct-d2", "pct", {"depth": 2}),
    ("pct-d3", "pct", {"depth": 3}),
)


class PortfolioStrategy(Strategy):
    """Runs each schedule with one member strategy, chosen deterministically from the schedule's seed.

    ``k`` and ``n`` are passed on to the PCT members (``params()`` carries the estimate made by
    :meth:`prepare`, so rebuilt copies in worker processes behave identically).
    """

    name = "portfolio"
    always_pick = True  # PCT members need every step; random members are consulted as the executor would

    def __init__(self, k: int | None = None, n: int | None = None) -> None:
        self.members: list[tuple[str, Strategy]] = []
        for label, name, options in DEFAULT_MEMBERS:
            if name == "pct":
                self.members.append((label, PctStrategy(k=k, n=n, **options)))
            else:
                self.members.append((label, RandomStrategy()))
        self.current: Strategy = self.members[0][1]
        self.current_label = self.members[0][0]
        self.used: dict[str, int] = {label: 0 for label, _ in self.members}

    def member_for(self, seed: int) -> tuple[str, Strategy]:
        """The member that runs the schedule with this seed."""
        return self.members[seed % len(self.members)]

    def prepare(self, scheme_cls: Any, scenario: Any, max_steps: int = 50_000) -> None:
        first: PctStrategy | None = None
        for _, m in self.members:
            if isinstance(m, PctStrategy):
                if first is None:
                    m.prepare(scheme_cls, scenario, max_steps)
                    first = m
                else:  # the same pilot runs: reuse the estimate
                    m.k, m.n, m.prepared = first.k, first.n, True

    def params(self) -> dict[str, Any]:
        pct = next((m for _, m in self.members if isinstance(m, PctStrategy)), None)
        return {"k": pct.k, "n": pct.n} if pct is not None else {}

    def summary(self, schedules: int) -> dict[str, Any]:
        """Per PCT member: its share of the schedules and the resulting bound for its depth."""
        share = len(self.members)
        out: dict[str, Any] = {"strategy": "portfolio", "members": [label for label, _ in self.members],
                               "schedules": schedules}
        bounds = []
        for label, m in self.members:
            if isinstance(m, PctStrategy):
                s = m.summary(schedules // share)
                s["member"] = label
                s["per_schedule_bound"] = pct_bound(s["n"], s["k"], m.depth) / share
                s["schedules"] = schedules
                s["miss_probability"] = miss_probability(s["per_schedule_bound"], schedules)
                s.pop("schedules_for_95pct", None)
                bounds.append(s)
        out["pct"] = bounds
        return out

    def begin(self, seed: int) -> None:
        self.current_label, self.current = self.member_for(seed)
        self.used[self.current_label] += 1
        self.current.begin(seed)

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        cur = self.current
        if len(enabled) == 1 and not cur.always_pick:
            return enabled[0]
        return cur.pick(enabled, step)

    def choose(self, n: int, label: str) -> int:
        return self.current.choose(n, label)


register_strategy("portfolio", PortfolioStrategy)

__all__ = ["DEFAULT_MEMBERS", "PortfolioStrategy"]
