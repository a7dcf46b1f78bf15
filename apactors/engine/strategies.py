"""Scheduling strategies: which enabled process takes the next step, and the environment's choices.

A strategy is the only source of nondeterminism in controlled mode.  The executor calls ``begin`` at
the start of every schedule with that schedule's seed, ``pick`` at every scheduling point with more
than one enabled process (in the fixed order of process creation; at *every* step if the strategy sets
``always_pick``), and ``choose`` for environment choices (hardware timing).  New strategies implement
this interface and register in ``STRATEGIES``; the executor never knows which one runs it.

Optional hooks, all with harmless defaults:

* ``prepare(scheme_cls, scenario, max_steps)`` — called once per run before the first schedule, with
  no effect on any schedule's determinism beyond what it computes from its arguments (PCT estimates
  the run length k there);
* ``params()`` — keyword arguments that rebuild an equivalent *prepared* strategy with
  :func:`make_strategy` (parallel workers use this instead of preparing again);
* ``summary(schedules)`` — a JSON-able description of what the strategy guarantees after
  ``schedules`` schedules (PCT's probability bound), or None.

Strategies registered here: ``random``, ``rr`` (round robin), ``pct`` (:mod:`apactors.engine.pct`),
``portfolio`` (:mod:`apactors.engine.portfolio`) and ``dfs`` (:mod:`apactors.engine.dfs`; a search
*driver*, not a per-schedule strategy: see :class:`apactors.engine.dfs.Dfs`).  Replay strategies are
built from a trace, not by name: :class:`ReplayStrategy` (exact) and :class:`ReplayThenRandom`
(``--continue random``).
"""

from __future__ import annotations

import importlib
import inspect
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
    """Base class: subclasses override ``pick`` and ``choose`` (and optionally the hooks)."""

    name = "strategy"
    #: consulted even when only one process is enabled (replay checks every step)
    always_pick = False
    #: True for search drivers (dfs) that run many schedules themselves instead of being run per schedule
    is_driver = False

    def begin(self, seed: int) -> None:
        """Start a new schedule."""

    def pick(self, enabled: Sequence[Any], step: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def choose(self, n: int, label: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, scheme_cls: Any, scenario: Any, max_steps: int = 50_000) -> None:
        """Called once before a run's first schedule (default: nothing to prepare)."""

    def params(self) -> dict[str, Any]:
        """Keyword arguments for :func:`make_strategy` that rebuild this (prepared) strategy."""
        return {}

    def summary(self, schedules: int) -> dict[str, Any] | None:
        """What the strategy guarantees after ``schedules`` schedules (None: nothing to say)."""
        return None


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


class RoundRobinStrategy(Strategy):
    """Round robin over the enabled processes in creation order, with a quantum of steps.

    The running process keeps the CPU for ``quantum`` steps (while it stays enabled), then the next
    enabled process after it in creation order runs.  ``quantum`` and the process that starts are
    derived from the schedule's seed (``quantum`` in 1..``max_quantum``), so different schedules of a
    run differ; environment choices are seeded random.  With ``quantum`` given, it is fixed.
    """

    name = "rr"
    always_pick = True

    def __init__(self, quantum: int | None = None, max_quantum: int = 4) -> None:
        if quantum is not None and quantum < 1:
            raise ValueError("quantum must be at least 1")
        if max_quantum < 1:
            raise ValueError("max_quantum must be at least 1")
        self.fixed_quantum = quantum
        self.max_quantum = max_quantum
        self.quantum = quantum or 1
        self.offset = 0
        self.current: Any = None  #: the process holding the CPU
        self.left = 0
        self.rng = random.Random(0)

    def begin(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.quantum = self.fixed_quantum or 1 + seed % self.max_quantum
        self.offset = (seed // self.max_quantum) % 64
        self.current = None
        self.left = 0

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        cur = self.current
        if cur is not None and self.left > 0:
            for p in enabled:
                if p is cur:
                    self.left -= 1
                    return p
        if cur is None:
            nxt = enabled[self.offset % len(enabled)]
        else:  # the first enabled process created after the current one, wrapping around
            nxt = next((p for p in enabled if p.order > cur.order), enabled[0])
        self.current = nxt
        self.left = self.quantum - 1
        return nxt

    def choose(self, n: int, label: str) -> int:
        return int(self.rng.random() * n)

    def params(self) -> dict[str, Any]:
        return {"quantum": self.fixed_quantum, "max_quantum": self.max_quantum}


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


class ReplayThenRandom(Strategy):
    """``--continue random``: follow a recorded schedule, then continue under a seeded random scheduler.

    The switch happens at the first step the recording cannot supply: the recording has ended, its
    actor cannot run, or an environment choice is missing or out of range.  After the switch every
    pick and choice is seeded random (``seed``), so the whole run is deterministic and its own trace
    replays exactly.  ``switched_at`` is the step of the switch (None if the recording was followed to
    the end of the run) and ``reason`` says why (a :class:`Divergence` message, or that it ended).
    """

    name = "replay+random"
    always_pick = True

    def __init__(self, steps: Sequence[tuple[str, Sequence[int]]], seed: int = 0) -> None:
        self.steps = steps
        self.seed = seed
        self.rng = random.Random(seed)
        self.choices: list[int] = []
        self.step = 0
        self.switched_at: int | None = None
        self.reason: str | None = None

    def begin(self, seed: int) -> None:
        # The continuation seed is fixed at construction (the run's seed), not the schedule's.
        self.rng = random.Random(self.seed)
        self.choices = []
        self.step = 0
        self.switched_at = None
        self.reason = None

    @property
    def replaying(self) -> bool:
        return self.switched_at is None

    def _switch(self, step: int, reason: str) -> None:
        if self.switched_at is None:
            self.switched_at = step
            self.reason = reason
            self.choices = []

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        self.step = step
        if self.switched_at is None:
            if step >= len(self.steps):
                self._switch(step, f"the recorded schedule ended at step {step}")
            else:
                name, choices = self.steps[step]
                for p in enabled:
                    if p.name == name:
                        self.choices = list(choices)
                        return p
                self._switch(step, str(Divergence(
                    step, f"actor {name} to take a step",
                    f"{name} cannot run; enabled: {', '.join(p.name for p in enabled) or 'none'}")))
        if len(enabled) == 1:
            return enabled[0]
        return enabled[int(self.rng.random() * len(enabled))]

    def choose(self, n: int, label: str) -> int:
        if self.switched_at is None:
            if self.choices and self.choices[0] < n:
                return self.choices.pop(0)
            what = f"choice {self.choices[0]} for {label}" if self.choices else "no environment choice"
            self._switch(self.step, str(Divergence(self.step, what, f"a choice of {label} among {n}")))
        return int(self.rng.random() * n)


def is_preemption(last: Any, chosen: Any, enabled: Sequence[Any]) -> bool:
    """Is running ``chosen`` now a preemption of ``last`` (the process that took the previous step)?

    A preemption is a switch away from a process that could have continued *inside* an operation:
    ``last`` is still enabled and in the middle of a code path.  Switching when ``last`` is blocked,
    finished, or between two scenario operations (a task returning to user space) is free.
    """
    if last is None or chosen is last or last.gen is None:
        return False
    for p in enabled:
        if p is last:
            return True
    return False


class PreemptionCounter(Strategy):
    """Wraps a strategy and counts the preemptions (:func:`is_preemption`) of the schedule it makes.

    It sees every step but consults the wrapped strategy exactly when the executor would, so the
    schedule is the same as with the wrapped strategy alone.
    """

    always_pick = True

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.name = inner.name
        self.last: Any = None
        self.preemptions = 0
        self.points: list[int] = []  #: the steps at which a preemption happened

    def begin(self, seed: int) -> None:
        self.last = None
        self.preemptions = 0
        self.points = []
        self.inner.begin(seed)

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        if len(enabled) == 1 and not self.inner.always_pick:
            p = enabled[0]
        else:
            p = self.inner.pick(enabled, step)
        if is_preemption(self.last, p, enabled):
            self.preemptions += 1
            self.points.append(step)
        self.last = p
        return p

    def choose(self, n: int, label: str) -> int:
        return self.inner.choose(n, label)


#: name -> strategy class; ``make_strategy(name, **options)`` builds one
STRATEGIES: dict[str, type[Strategy]] = {"random": RandomStrategy, "rr": RoundRobinStrategy}


def register_strategy(name: str, cls: type[Strategy]) -> type[Strategy]:
    """Make a strategy class available by name (modules of the built-in strategies call this)."""
    STRATEGIES[name] = cls
    return cls


def strategy_options(name: str) -> list[str]:
    """The keyword options a strategy accepts (``pct``: depth, k, n)."""
    cls = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def _lookup(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}, replay") from None


def make_strategy(name: str, **options: Any) -> Strategy:
    """A fresh strategy by name, with its options (``make_strategy("pct", depth=3)``).

    Options whose value is None are ignored (so a CLI can pass every flag); an option the strategy
    does not take is a ``ValueError`` naming the options it takes.  ``replay`` is built from a trace,
    not by name.
    """
    cls = _lookup(name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = strategy_options(name)
    unknown = sorted(k for k in given if k not in accepted)
    if unknown:
        takes = ", ".join(accepted) or "no options"
        raise ValueError(f"strategy {name!r} does not take {', '.join(unknown)} (it takes: {takes})")
    return cls(**given)


# The other built-in strategies register themselves when their module is imported.
for _mod in ("apactors.engine.pct", "apactors.engine.portfolio", "apactors.engine.dfs"):
    importlib.import_module(_mod)

__all__ = ["Divergence", "PreemptionCounter", "RandomStrategy", "ReplayStrategy", "ReplayThenRandom",
           "RoundRobinStrategy", "STRATEGIES", "Strategy", "is_preemption", "make_strategy",
           "register_strategy", "strategy_options"]
