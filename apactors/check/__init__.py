"""Checkers: independent observers of one schedule's event stream.

A checker is made fresh for every schedule by a factory ``factory(world, scheme, scenario)`` registered
in :data:`CHECKERS`.  It may implement:

* ``on_event(step, proc, op, result, extra)`` — called for every event (keep it cheap: it is on the
  hot path);
* ``on_end(procs, step)`` — called once when the schedule ends;
* ``findings()`` — the findings of this schedule.

Actual deadlocks and hangs are found by :class:`apactors.check.progress.ProgressChecker` at the moment
the executor finds no enabled actor; it is always on.
"""

from __future__ import annotations

from typing import Any, Callable

from apactors.check.findings import AggregatedFinding, Finding, FindingSet, make_signature
from apactors.check.progress import CrashChecker, HeldLocks, ProgressChecker

CheckerFactory = Callable[[Any, Any, Any], Any]

#: name -> factory; the order is the order in which checkers see each event
CHECKERS: dict[str, CheckerFactory] = {}


from apactors.check.lockdep import LockdepChecker  # noqa: E402
from apactors.check.races import SharedStateChecker  # noqa: E402

# One fused observer for races, stale reads, invariants and crashes (cheaper than four), then lockdep.
CHECKERS["shared-state"] = lambda world, scheme, scenario: SharedStateChecker(world, scheme, scenario)
CHECKERS["lockdep"] = lambda world, scheme, scenario: LockdepChecker(world, scheme, scenario)


def register_checker(name: str, factory: CheckerFactory) -> None:
    """Add a checker to every schedule from now on."""
    CHECKERS[name] = factory


__all__ = ["AggregatedFinding", "CHECKERS", "CheckerFactory", "CrashChecker", "Finding", "FindingSet",
           "HeldLocks", "LockdepChecker", "SharedStateChecker", "ProgressChecker", "make_signature", "register_checker"]
