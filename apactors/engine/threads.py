"""Free-running mode (``--mode threads``): every task on its own pykka thread, locks block for real.

The model's state is shared by all threads and guarded by one condition variable: a thread takes a
step only while holding it, so each step stays atomic, and a thread whose pending operation is not
enabled (a modelled lock is held, a wait condition is false) sleeps on the condition until another
step changes the world.  Which thread gets there first is up to the OS and the interpreter, not a
strategy: that is the point of this mode.  The order in which the steps actually happened is recorded
as a trace, which the controlled executor then replays deterministically.

Every wait has a timeout, so no test can hang: a run that makes no progress is detected as stuck
(deadlock or hang), and a run over its wall-clock budget is stopped and reported as a step bound.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import pykka

from apactors.engine.actors import RunOperation
from apactors.engine.controlled import Observers, ScheduleResult, make_sink
from apactors.engine.process import CRASHED, Process, Runtime
from apactors.model.build import build_world

POLL_S = 0.02


@dataclass(frozen=True)
class RunWork:
    """Message to a worker task: run the work item it was spawned for."""


class _Runner:
    """The shared state of one free-running schedule."""

    def __init__(self, rt: Runtime, max_steps: int, observers: Observers) -> None:
        self.rt = rt
        self.cv = threading.Condition()
        self.max_steps = max_steps
        self.observers = observers
        self.stop = False
        self.outcome = "ok"
        self.findings: list[Any] = []

    def _stuck(self) -> bool:
        procs = self.rt.procs
        return not any(p.enabled() for p in procs) and any(p.live() for p in procs)

    def drive(self, p: Process) -> None:
        """Run ``p`` until its current operation (or work item) is finished."""
        cv = self.cv
        while True:
            with cv:
                while not self.stop and not p.enabled():
                    if not p.live():
                        return
                    if self._stuck():
                        f = self.observers.progress.on_stuck(self.rt.procs, self.rt.step_no)
                        self.findings.append(f)
                        self.outcome = f.kind
                        self.stop = True
                        cv.notify_all()
                        return
                    cv.wait(POLL_S)
                if self.stop:
                    return
                if self.rt.step_no >= self.max_steps:
                    self.findings.append(self.observers.progress.on_step_bound(self.rt.procs, self.rt.step_no))
                    self.outcome = "step-bound"
                    self.stop = True
                    cv.notify_all()
                    return
                self.rt.step(p)
                cv.notify_all()
                if p.gen is None:
                    return
            time.sleep(0)  # give the other threads a chance to take the next step


class ThreadTask(pykka.ThreadingActor):
    """A modelled task on its own thread."""

    use_daemon_thread = True  # a stuck model never keeps the interpreter alive

    def __init__(self, process: Process, runner: _Runner) -> None:
        super().__init__()
        self.process = process
        self.runner = runner

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (RunOperation, RunWork)):
            if not self.runner.stop and self.process.state != CRASHED:
                self.runner.drive(self.process)
            return None
        return super().on_receive(message)


def run_threaded_schedule(scheme_cls: Any, scenario: Any, *, index: int = 0, seed: int = 0,
                          max_steps: int = 50_000, wall_timeout_s: float = 60.0) -> ScheduleResult:
    """Run one schedule with free-running threads; the recorded events replay in controlled mode."""
    world, scheme = build_world(scheme_cls, scenario)
    rng = random.Random(seed)
    events: list[tuple] = []
    observers = Observers(world, scheme, scenario)
    rt = Runtime(world, scheme, lambda n, label: int(rng.random() * n), make_sink(events, observers))
    runner = _Runner(rt, max_steps, observers)
    refs: list[Any] = []

    def spawn(w: Process) -> None:  # called under the condition, from the step that queued the work
        ref = ThreadTask.start(w, runner)
        refs.append(ref)
        ref.tell(RunWork())

    rt.spawn_hook = spawn
    tasks = []
    with runner.cv:
        for spec in scenario.actors:
            p = rt.add(spec.name, spec.kind, spec)
            ops = spec.expanded_ops()
            p.ops.extend(ops)  # known to the stuck detector before any thread runs
            tasks.append((p, ops))
    for p, ops in tasks:
        ref = ThreadTask.start(p, runner)
        refs.append(ref)
        for op in ops:
            ref.tell(RunOperation(op))
    deadline = time.monotonic() + wall_timeout_s
    with runner.cv:
        while not runner.stop and any(p.live() for p in rt.procs):
            if time.monotonic() > deadline:
                runner.findings.append(observers.progress.on_step_bound(rt.procs, rt.step_no))
                runner.outcome = "step-bound"
                runner.stop = True
                break
            runner.cv.wait(POLL_S)
        runner.stop = True
        runner.cv.notify_all()
    for ref in list(refs):
        try:
            ref.stop(block=True, timeout=5)
        except pykka.Timeout:  # pragma: no cover - a daemon thread stuck in the model; it dies with us
            pass
    observers.end(rt.procs, rt.step_no)
    findings = observers.findings() + runner.findings
    return ScheduleResult(index=index, seed=seed, outcome=runner.outcome, steps=rt.step_no, findings=findings,
                          events=events, results={p.name: p.results for p in rt.procs if p.kind != "worker"})
