"""PCT: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010).

Every process gets a random priority when it first shows up (scenario actors and spawned workers
alike: a uniformly random place among the priorities ``>= depth``); at each step the enabled process
with the highest priority runs.  ``depth - 1`` *change points* are drawn uniformly from the estimated
run length ``k``; when the run reaches change point ``i`` (``i = 1 .. depth-1``), the process about to
run drops to priority ``i``, below every initial priority, and the highest enabled process runs
instead.  A bug of depth ``d`` (one that needs ``d`` ordering constraints between steps) is found by one
schedule with probability at least ``1 / (n * k**(d-1))`` for ``n`` processes, whatever the program.

``k`` is estimated in :meth:`PctStrategy.prepare` from a few pilot schedules (fixed seeds, no checks),
so every schedule of a run depends only on its own seed, as the parallel runner needs.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

from apactors.engine.strategies import RandomStrategy, Strategy, register_strategy

#: seeds of the pilot schedules that estimate the run length (fixed: part of the strategy's definition)
PILOT_SEEDS = (0x5EED0, 0x5EED1, 0x5EED2, 0x5EED3, 0x5EED4)
#: the run length assumed when the strategy was not prepared
DEFAULT_K = 200


def pct_bound(n: int, k: int, depth: int) -> float:
    """PCT's lower bound on the chance that one schedule finds a given depth-``depth`` bug."""
    return 1.0 / (max(1, n) * max(1, k) ** max(0, depth - 1))


def miss_probability(p: float, schedules: int) -> float:
    """The chance that ``schedules`` independent schedules, each finding the bug with probability at
    least ``p``, all miss it (an upper bound)."""
    if p >= 1.0:
        return 0.0 if schedules > 0 else 1.0
    return math.exp(schedules * math.log1p(-p))


def schedules_for(p: float, confidence: float = 0.95) -> int:
    """How many schedules make the chance of finding a bug of per-schedule probability ``p`` at least
    ``confidence``."""
    if p >= 1.0:
        return 1
    return max(1, math.ceil(math.log1p(-confidence) / math.log1p(-p)))


class PctStrategy(Strategy):
    """PCT with ``depth`` d (d - 1 priority change points over the estimated run length ``k``).

    ``k`` and ``n`` (the number of processes, for the bound) may be given; otherwise :meth:`prepare`
    estimates them (the longest pilot schedule and the most processes one had).
    """

    name = "pct"
    always_pick = True  # change points count every step, also those with one enabled process

    def __init__(self, depth: int = 3, k: int | None = None, n: int | None = None) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        if k is not None and k < 1:
            raise ValueError("k must be at least 1")
        self.depth = depth
        self.k = k
        self.n = n
        self.prepared = k is not None
        self.rng = random.Random(0)
        self.prio: dict[str, float] = {}
        self.change: dict[int, int] = {}  # step -> the low priority given at that step

    # --- run-level hooks ----------------------------------------------------------------------------
    def prepare(self, scheme_cls: Any, scenario: Any, max_steps: int = 50_000) -> None:
        """Estimate ``k`` (and ``n``) from pilot schedules under the random strategy."""
        if self.prepared:
            return
        from apactors.engine.controlled import run_schedule

        longest, procs = 1, len(scenario.actors)
        for seed in PILOT_SEEDS:
            names: set[str] = set()
            try:
                sr = run_schedule(scheme_cls, scenario, RandomStrategy(), seed=seed, max_steps=max_steps,
                                  record=False, check=False, on_step=lambda step, name: names.add(name))
            except Exception:  # noqa: BLE001 - a model error shows in the real run, not here
                continue
            longest = max(longest, sr.steps)
            procs = max(procs, len(names))
        self.k = longest
        if self.n is None:
            self.n = procs
        self.prepared = True

    def params(self) -> dict[str, Any]:
        return {"depth": self.depth, "k": self.k, "n": self.n}

    def summary(self, schedules: int) -> dict[str, Any]:
        k = self.k or DEFAULT_K
        n = self.n or 1
        p = pct_bound(n, k, self.depth)
        return {
            "strategy": "pct",
            "depth": self.depth,
            "k": k,
            "n": n,
            "k_estimated": self.prepared,
            "per_schedule_bound": p,
            "schedules": schedules,
            "miss_probability": miss_probability(p, schedules),
            "schedules_for_95pct": schedules_for(p),
        }

    # --- per schedule ----------------------------------------------------------------------------------
    def begin(self, seed: int) -> None:
        rng = self.rng = random.Random(seed)
        self.prio = {}
        k = self.k or DEFAULT_K
        points = rng.sample(range(k), min(k, self.depth - 1))
        self.change = {step: i + 1 for i, step in enumerate(points)}

    def _priority(self, p: Any) -> float:
        v = self.prio.get(p.name)
        if v is None:
            v = self.prio[p.name] = self.depth + self.rng.random()
        return v

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        best = max(enabled, key=self._priority)
        low = self.change.get(step)
        if low is not None:
            self.prio[best.name] = low
            best = max(enabled, key=self._priority)
        return best

    def choose(self, n: int, label: str) -> int:
        return int(self.rng.random() * n)


register_strategy("pct", PctStrategy)

__all__ = ["DEFAULT_K", "PILOT_SEEDS", "PctStrategy", "miss_probability", "pct_bound", "schedules_for"]
