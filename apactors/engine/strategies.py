"""Scheduling strategies: which enabled process takes the next step, and the environment's choices.

A strategy is the only source of nondeterminism in controlled mode.  The executor calls ``begin`` at
the start of every schedule with that schedule's seed, ``pick`` at every scheduling point with more
than one enabled process (in the fixed order of process creation), and ``choose`` for environment
choices (hardware timing).  New strategies (PCT, DFS with partial-order reduction, ...) implement this
interface and register in ``STRATEGIES``; the executor never knows which one runs it.
"""

from __future__ import annotations

import random
from typing import Any, Sequence


class Divergence(Exception):
    """A replayed trace asked for a step the execution cannot take."""

    def __init__(self, step: int, expected: str, got: str) -> None:
        super().__init__(f"replay diverged at step {step}: expected {expected}; got {got}")
        self.step = step
        self.expected = expected
        self.got = got


class Strategy:
    """Base class: subclasses override ``pick`` and ``choose``."""

    name = "strategy"
    #: consulted even when only one process is enabled (replay checks every step)
    always_pick = False

    def begin(self, seed: int) -> None:
        """Start a new schedule."""

    def pick(self, enabled: Sequence[Any], step: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def choose(self, n: int, label: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class RandomStrategy(Strategy):
    """Uniformly random among the enabled processes, seeded per schedule."""

    name = "random"

    def __init__(self) -> None:
        self.rng = random.Random(0)

    def begin(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        return enabled[int(self.rng.random() * len(enabled))]

    def choose(self, n: int, label: str) -> int:
        return int(self.rng.random() * n)


class ReplayStrategy(Strategy):
    """Follows a recorded schedule: the actor of every step and the environment choices it made."""

    name = "replay"
    always_pick = True

    def __init__(self, steps: Sequence[tuple[str, Sequence[int]]]) -> None:
        self.steps = steps  # per step: (actor name, choices made in that step)
        self.choices: list[int] = []
        self.step = 0

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        if step >= len(self.steps):
            raise Divergence(step, "the recorded schedule to end here",
                             f"{len(enabled)} enabled actor(s): {', '.join(p.name for p in enabled)}")
        name, choices = self.steps[step]
        self.step = step
        for p in enabled:
            if p.name == name:
                self.choices = list(choices)
                return p
        raise Divergence(step, f"actor {name} to take a step",
                         f"{name} cannot run; enabled: {', '.join(p.name for p in enabled) or 'none'}")

    def choose(self, n: int, label: str) -> int:
        if not self.choices:
            raise Divergence(self.step, "no environment choice in this step", f"a choice of {label}")
        v = self.choices.pop(0)
        if v >= n:
            raise Divergence(self.step, f"choice {v} for {label}", f"only {n} options")
        return v


STRATEGIES: dict[str, type[Strategy]] = {"random": RandomStrategy}


def make_strategy(name: str) -> Strategy:
    """A fresh strategy by name (``replay`` is built from a trace, not by name)."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}, replay") from None
