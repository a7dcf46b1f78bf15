"""The controlled executor: one schedule, one step at a time, chosen by a strategy.

At every scheduling point exactly one enabled process advances.  Processes are kept in creation order
(scenario actors first, then workers as they are spawned), so the list of enabled processes that the
strategy sees, and therefore the whole schedule, depends only on (scheme, scenario, strategy, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from apactors.check.findings import Finding
from apactors.check.progress import HeldLocks, ProgressChecker
from apactors.engine.actors import ControlledTask, RunOperation
from apactors.engine.process import Runtime
from apactors.engine.strategies import Strategy
from apactors.model.build import build_world

Event = tuple  # (step, actor name, stack, op, result, extra)


@dataclass
class ScheduleResult:
    """What one schedule produced."""

    index: int
    seed: int
    outcome: str  #: "ok", "deadlock", "hang", "step-bound", "diverged"
    steps: int
    findings: list[Finding] = field(default_factory=list)
    events: list[Event] | None = None
    divergence: str | None = None
    results: dict[str, list[Any]] = field(default_factory=dict)  #: actor -> return value of each operation


class Observers:
    """The checkers that watch one schedule's event stream (fresh per schedule)."""

    def __init__(self, world: Any = None, scheme: Any = None, scenario: Any = None) -> None:
        from apactors.check import CHECKERS

        self.held = HeldLocks()
        self.progress = ProgressChecker(self.held, scheme)
        self.checkers = [factory(world, scheme, scenario) for factory in CHECKERS.values()]
        self.stream = [self.held] + [c for c in self.checkers if hasattr(c, "on_event")]

    def end(self, procs: list[Any], step: int) -> None:
        for c in self.checkers:
            if hasattr(c, "on_end"):
                c.on_end(procs, step)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for c in self.checkers:
            out += c.findings()
        return out


def make_sink(events: list[Event] | None, observers: Observers | None) -> Callable[..., None] | None:
    """The event sink: record the event and/or hand it to every checker."""
    if events is None and observers is None:
        return None
    append = events.append if events is not None else None
    stream = [o.on_event for o in observers.stream] if observers is not None else []

    def sink(step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        if append is not None:
            append((step, p.name, p.stack, op, result, extra))
        for f in stream:
            f(step, p, op, result, extra)

    return sink


def run_schedule(scheme_cls: Any, scenario: Any, strategy: Strategy, *, index: int = 0, seed: int = 0,
                 max_steps: int = 50_000, record: bool = True, check: bool = True,
                 on_step: Callable[[int, str], None] | None = None,
                 events: list[Event] | None = None) -> ScheduleResult:
    """Run one schedule in controlled mode and return its outcome, findings and (if ``record``) events.

    ``check=False, record=False`` is the benchmark floor: the same stepping with no observer at all.
    ``on_step`` is called after every step.  ``events``, if given, is the list to record into (so a
    caller still has the events when the strategy aborts the schedule, as replay does on divergence).
    """
    strategy.begin(seed)
    world, scheme = build_world(scheme_cls, scenario)
    if events is None and record:
        events = []
    observers = Observers(world, scheme, scenario) if check else None
    rt = Runtime(world, scheme, strategy.choose, make_sink(events, observers))
    actors = []
    for spec in scenario.actors:
        p = rt.add(spec.name, spec.kind, spec)
        ref = ControlledTask.start(p)
        for op in spec.expanded_ops():
            ref.tell(RunOperation(op))
        actor = p.task  # the deterministic backend is driven by its owner
        actor.deliver()
        actors.append(actor)
    procs = rt.procs
    always_pick = strategy.always_pick
    step = 0
    outcome = "ok"
    findings: list[Finding] = []
    try:
        while True:
            enabled = [p for p in procs if (p.pending.enabled(p) if p.gen is not None else (p.state == "idle" and p.ops))]
            if not enabled:
                if any(p.live() for p in procs):
                    if observers is not None:
                        f = observers.progress.on_stuck(procs, step)
                        findings.append(f)
                        outcome = f.kind
                    else:
                        outcome = "stuck"
                break
            if step >= max_steps:
                outcome = "step-bound"
                if observers is not None:
                    findings.append(observers.progress.on_step_bound(procs, step))
                break
            p = enabled[0] if len(enabled) == 1 and not always_pick else strategy.pick(enabled, step)
            rt.step(p)
            step += 1
            if on_step is not None:
                on_step(step, p.name)
    finally:
        for actor in actors:
            actor._stop()  # noqa: SLF001 - unregister from pykka's registry; no thread to join
    if observers is not None:
        observers.end(procs, step)
        findings = observers.findings() + findings
    return ScheduleResult(index=index, seed=seed, outcome=outcome, steps=step, findings=findings, events=events,
                          results={p.name: p.results for p in procs if p.kind != "worker"})
