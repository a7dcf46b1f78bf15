"""Collect lockdep data over many schedules: the merged class graph, lock statistics and cycles.

Each schedule's events are analysed after the schedule by a fresh :class:`LockdepChecker` (so the
graph of one schedule is exactly what the registered checker saw) and by :class:`LockStats`; the
per-schedule graphs are merged by class name, keeping the first occurrence of every dependency.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from apactors.check.findings import FindingSet
from apactors.check.lockdep import LockdepChecker, Occurrence, dep_names
from apactors.model.ops import Acquire, Release

#: lockdep's limits, printed as [max: …] in /proc/lockdep_stats
MAX_LOCKDEP_KEYS = 8192
MAX_LOCKDEP_ENTRIES = 32768
MAX_LOCKDEP_CHAINS = 65536
MAX_LOCKDEP_CHAIN_HLOCKS = 5 * MAX_LOCKDEP_CHAINS
MAX_STACK_TRACE_ENTRIES = 524288


@dataclass
class MClass:
    """A lock class of the merged graph."""

    name: str
    kind: str
    subclass: int
    wait: bool
    bh: bool
    validate: bool
    usage: int = 0
    fwd: dict[str, "MEdge"] = field(default_factory=dict)
    bwd: dict[str, "MEdge"] = field(default_factory=dict)


@dataclass
class MEdge:
    """A dependency of the merged graph, with its first occurrence over all schedules."""

    src: str
    dst: str
    deps: int
    wdeps: int
    distance: int
    first: Occurrence
    schedule: int
    actors: set[str]

    @property
    def wait_only(self) -> bool:
        return not self.deps


class MergedGraph:
    """The union of the per-schedule class graphs."""

    def __init__(self) -> None:
        self.classes: dict[str, MClass] = {}
        self.edges: dict[tuple[str, str], MEdge] = {}
        self.chains: set[tuple[tuple[str, str], ...]] = set()
        self.max_depth = 0
        self.max_bfs = 0

    def merge(self, ck: LockdepChecker, schedule: int) -> None:
        for n in ck.nodes.values():
            c = self.classes.get(n.name)
            if c is None:
                c = self.classes[n.name] = MClass(n.name, n.kind, n.subclass, n.wait, n.bh, n.validate)
            c.usage |= n.usage
        for n in ck.nodes.values():
            for dst, e in n.fwd.items():
                k = (n.name, dst.name)
                m = self.edges.get(k)
                if m is None:
                    m = self.edges[k] = MEdge(n.name, dst.name, e.deps, e.wdeps, e.distance, e.occurrence, schedule,
                                              set(e.actors))
                    self.classes[n.name].fwd[dst.name] = m
                    self.classes[dst.name].bwd[n.name] = m
                else:
                    if e.deps and not m.deps:
                        m.first, m.schedule = Occurrence(*e.first), schedule  # prefer the first occurrence lockdep sees
                    m.deps |= e.deps
                    m.wdeps |= e.wdeps
                    m.distance = min(m.distance, e.distance)
                    m.actors |= e.actors
        self.chains.update(ck.chains.values())
        self.max_depth = max(self.max_depth, ck.max_depth)
        self.max_bfs = max(self.max_bfs, ck.max_bfs)

    def reach(self, name: str, forward: bool = True) -> set[str]:
        """Classes reachable from ``name`` (forward: it depends on them), not counting itself."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            c = self.classes[todo.pop()]
            for nxt in (c.fwd if forward else c.bwd):
                if nxt not in seen and nxt != name:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def sorted_classes(self) -> list[MClass]:
        return [self.classes[k] for k in sorted(self.classes)]


@dataclass
class LockStatRow:
    """One line of /proc/lock_stat: a class (``-W``/``-R`` half for locks also taken for read)."""

    contentions: int = 0
    wait_min: int = 0
    wait_max: int = 0
    wait_total: int = 0
    holds: int = 0
    hold_min: int = 0
    hold_max: int = 0
    hold_total: int = 0
    contention_points: Counter = field(default_factory=Counter)  #: where waiters waited
    contending_points: Counter = field(default_factory=Counter)  #: where the holder had taken it

    def wait(self, t: int, where: str, holder_at: str) -> None:
        self.wait_min = t if not self.contentions else min(self.wait_min, t)
        self.wait_max = max(self.wait_max, t)
        self.wait_total += t
        self.contentions += 1
        self.contention_points[where] += 1
        self.contending_points[holder_at] += 1

    def hold(self, t: int) -> None:
        self.hold_min = t if not self.holds else min(self.hold_min, t)
        self.hold_max = max(self.hold_max, t)
        self.hold_total += t
        self.holds += 1

    def merge(self, o: "LockStatRow") -> None:
        if o.contentions:
            self.wait_min = o.wait_min if not self.contentions else min(self.wait_min, o.wait_min)
        if o.holds:
            self.hold_min = o.hold_min if not self.holds else min(self.hold_min, o.hold_min)
        self.wait_max = max(self.wait_max, o.wait_max)
        self.hold_max = max(self.hold_max, o.hold_max)
        self.contentions += o.contentions
        self.wait_total += o.wait_total
        self.holds += o.holds
        self.hold_total += o.hold_total
        self.contention_points.update(o.contention_points)
        self.contending_points.update(o.contending_points)


_STAT_KINDS = frozenset({"mutex", "spinlock", "rwsem", "rwlock"})


def _conflict(a: str, b: str) -> bool:
    return a == "w" or b == "w"


class LockStats:
    """/proc/lock_stat in logical steps, computed from a schedule's recorded events.

    An acquisition is *contended* if, when the actor reached it (the step of its previous event), an
    incompatible holder owned the lock instance; its wait time runs from there to the acquisition.
    Hold times run from acquisition to release and are counted at the release, as lock_stat does.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], LockStatRow] = {}

    def row(self, name: str, rw: str) -> LockStatRow:
        r = self.rows.get((name, rw))
        if r is None:
            r = self.rows[(name, rw)] = LockStatRow()
        return r

    def process(self, events: Iterable[tuple]) -> None:
        last: dict[str, int] = {}
        open_: dict[int, dict[str, list[tuple[int, str, str, str]]]] = {}
        done: dict[int, list[tuple[int, int, str, str, str]]] = {}
        for step, actor, stack, op, result, extra in events:
            c = op.__class__
            arrival = last.get(actor, step)
            last[actor] = step
            if c is Acquire:
                lock = op.lock
                if not result or lock.kind not in _STAT_KINDS:
                    continue
                name = f"{lock.cls}/{op.subclass}" if op.subclass else lock.cls
                at = stack[-1] if stack else "?"
                key = id(lock)
                for acq, rel, who, mode, hat in reversed(done.get(key, ())):
                    if rel <= arrival:
                        break
                    if acq < arrival and who != actor and _conflict(op.mode, mode):
                        self.row(name, "W" if op.mode == "w" else "R").wait(step - arrival, at, hat)
                        break
                open_.setdefault(key, {}).setdefault(actor, []).append((step, op.mode, at, name))
            elif c is Release:
                lock = op.lock
                if lock.kind not in _STAT_KINDS:
                    continue
                key = id(lock)
                mine = open_.get(key, {}).get(actor)
                if not mine:
                    continue
                acq, mode, at, name = mine.pop()
                done.setdefault(key, []).append((acq, step, actor, mode, at))
                self.row(name, "W" if mode == "w" else "R").hold(step - acq)

    def merge(self, other: "LockStats") -> None:
        for k, r in other.rows.items():
            self.row(*k).merge(r)


@dataclass
class LockdepRun:
    """Everything ``apactors lockdep`` prints."""

    scheme: str
    scenario: str
    seed: int
    schedules: int
    waitdep: bool
    graph: MergedGraph = field(default_factory=MergedGraph)
    stats: LockStats = field(default_factory=LockStats)
    cycles: FindingSet = field(default_factory=FindingSet)
    outcomes: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    validations: int = 0
    verdicts: dict[str, Any] = field(default_factory=dict)  #: signature -> Verdict


def collect(scheme_cls: Any, scenario: Any, *, schedules: int = 20, seed: int = 0, max_steps: int = 50_000,
            waitdep: bool = True) -> LockdepRun:
    """Run ``schedules`` random schedules and merge their lockdep data."""
    from apactors.api import schedule_seed
    from apactors.engine.controlled import run_schedule
    from apactors.engine.strategies import RandomStrategy

    from apactors.check import CHECKERS

    run = LockdepRun(scheme_cls.id, scenario.name, seed, schedules, waitdep)
    strat = RandomStrategy()
    made: list[LockdepChecker] = []

    def factory(world: Any, scheme: Any, scen: Any) -> LockdepChecker:
        ck = LockdepChecker(world, scheme, scen, waitdep=waitdep, prefilter=False)
        made.append(ck)
        return ck

    saved = CHECKERS.get("lockdep")
    CHECKERS["lockdep"] = factory  # this run's checker, so its graph can be merged after each schedule
    try:
        for i in range(schedules):
            s = schedule_seed(seed, i)
            made.clear()
            sr = run_schedule(scheme_cls, scenario, strat, index=i, seed=s, max_steps=max_steps, record=True)
            run.outcomes[sr.outcome] = run.outcomes.get(sr.outcome, 0) + 1
            run.steps += sr.steps
            ck = made[-1]
            run.graph.merge(ck, i)
            run.validations += ck.validations
            st = LockStats()
            st.process(sr.events or ())
            run.stats.merge(st)
            for f in ck.findings():
                run.cycles.add(f, i, s, None)
    finally:
        if saved is None:
            CHECKERS.pop("lockdep", None)
        else:
            CHECKERS["lockdep"] = saved
    return run


__all__ = ["LockStatRow", "LockStats", "LockdepRun", "MClass", "MEdge", "MergedGraph", "collect", "dep_names"]
