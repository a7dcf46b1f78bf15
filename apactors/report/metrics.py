"""Cost metrics of a schedule, in logical steps, computed from its event stream.

The locking schemes of the 2021-22 discussion differ not only in what goes wrong but in what they
cost: how long a vCPU's PQAP(AQIC) takes, how long ``kvm->lock`` is held and who stalls behind it, how
often locks are contended, whether a writer can starve.  This module measures that from the events of
one schedule, either live (:class:`MetricsTap`, handed to the executor as its event list: it keeps no
event) or from a trace's step lines (:func:`metrics_of_steps`, :func:`metrics_of_trace`).  Both feed
the same :class:`Tracker`, so a number measured during a run equals the number measured on a replay of
its trace.  :class:`MetricsSummary` aggregates schedules exactly (histograms, not samples) and
remembers which schedule was the worst for each metric.

Definitions (all in logical steps; a step is one scheduling point):

* *arrival* of an operation: the step of the actor's previous event (it has been waiting to perform
  the operation since then);
* a *wait* ends when a blocking operation is performed, and lasts ``step - arrival``.  It counts as a
  *contention* only if the actor was really blocked: for a lock acquisition, another actor released
  the lock instance in a conflicting mode (any mode against a writer, a writer against a reader)
  during the wait; for ``synchronize_srcu``, a read section of that SRCU instance ended during it; for
  the SIE-entry spin, ``PROG_BLOCK_SIE`` of that vCPU was cleared during it.  Open-coded waits on a
  wait queue (``wait_for_kvm``, ``mdevs_rwlock``) last from the first ``prepare_to_wait`` to
  ``finish_wait`` and count only if the actor slept.  The actors whose release, wake-up or unblock
  ended the wait are its *blockers*;
* **PQAP latency**: from the ``begin`` to the ``end`` of a ``pqap-aqic-*`` operation of a vCPU (one
  KVM_RUN with one PQAP intercept, the vfio_ap handler included);
* **kvm->lock hold**: from a successful acquisition of a ``&kvm->lock`` instance to its release;
* **behind kvm->lock**: a contended wait of a vCPU (``vcpu``) or a KVM ioctl path (``kvm``: the VMM's
  PV and kvm-vfio operations; ``other``: vfio_ap, AP bus and sysfs paths) for ``&kvm->lock`` itself,
  or for a lock, wait queue or SIE unblock whose blocker held a ``&kvm->lock`` when it let the waiter
  go (PV conversion releasing ``&vcpu->mutex``, a CRYCB write clearing ``PROG_BLOCK_SIE``);
* **writer wait**: a contended wait of an update path (any actor but a vCPU) to take the vfio_ap data
  lock exclusively (``&matrix_dev->lock``, ``&matrix_dev->mdevs_lock``, ``mdevs_rwsem`` for write,
  ``mdevs_rwlock``'s ``write_lock``, the ``kvm_busy`` wait), and every contended ``synchronize_srcu`` on
  ``&matrix_dev->pqap_srcu`` (an update waiting for PQAP readers).  Its maximum shows starvation;
* **contentions per lock class**: the number (and total steps) of contended waits per lock class,
  wait queue or spin;
* **operations per 1000 steps**: scenario operations completed per 1000 steps.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from apactors.engine.process import BEGIN, END
from apactors.model import ops as O

KVM_LOCK = "&kvm->lock"
#: the vfio_ap data lock of each scheme family (taken exclusively by update paths)
DATA_LOCKS = frozenset({"&matrix_dev->lock", "&matrix_dev->mdevs_lock", "&matrix_dev->mdevs_rwsem"})
#: SRCU domains whose synchronize_srcu is an update waiting for PQAP readers
WRITER_SRCU = frozenset({"&matrix_dev->pqap_srcu"})
#: wait queues of open-coded locks, and how contentions on them are labelled
WAIT_QUEUES = {"rwl_wq": "mdevs_rwlock (rwl_wq)", "wait_for_kvm": "kvm_busy (wait_for_kvm)"}
#: open-coded waits that are a writer's: by wait queue, or by the path that waits
WRITER_WAIT_QUEUES = frozenset({"wait_for_kvm"})
WRITER_WAIT_PATHS = frozenset({"write_lock"})
SIE_LABEL = "PROG_BLOCK_SIE (SIE entry)"
PQAP_PREFIX = "pqap-aqic"
WAITER_KINDS = ("vcpu", "kvm", "other")

_READERS = frozenset({"r", "R"})


def _conflict(a: str, b: str) -> bool:
    return a == "w" or b == "w"


def waiter_kind(kind: str) -> str:
    """``vcpu``, ``kvm`` (the VMM's KVM ioctls) or ``other`` for an actor kind."""
    if kind == "vcpu":
        return "vcpu"
    if kind == "vmm":
        return "kvm"
    return "other"


def actor_kinds(scenario: Any) -> dict[str, str]:
    """Actor name -> kind, from a :class:`~apactors.scenario.Scenario` or a trace header's scenario dict."""
    if isinstance(scenario, dict):
        return {a["name"]: a["kind"] for a in scenario.get("actor", []) if "name" in a and "kind" in a}
    return {a.name: a.kind for a in scenario.actors}


@dataclass
class ScheduleMetrics:
    """The metrics of one schedule (lists of individual measurements, small)."""

    steps: int = 0
    ops_completed: int = 0
    pqap: list[int] = field(default_factory=list)
    pqap_incomplete: int = 0
    kvm_holds: list[int] = field(default_factory=list)
    behind_kvm: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in WAITER_KINDS})
    writer_waits: list[int] = field(default_factory=list)
    contentions: Counter = field(default_factory=Counter)  #: label -> contended waits
    contention_steps: Counter = field(default_factory=Counter)  #: label -> steps waited

    # the per-schedule values a summary compares (worst = largest, except throughput)
    def value(self, metric: str) -> float:
        """The schedule's value of a ``METRICS`` key (used to find the worst schedule)."""
        if metric == "pqap_max":
            return max(self.pqap, default=0)
        if metric == "kvm_hold_max":
            return max(self.kvm_holds, default=0)
        if metric.startswith("behind_kvm_max:"):
            return max(self.behind_kvm[metric.split(":", 1)[1]], default=0)
        if metric == "writer_wait_max":
            return max(self.writer_waits, default=0)
        if metric == "contentions":
            return sum(self.contentions.values())
        if metric == "ops_per_kstep":
            return round(1000 * self.ops_completed / self.steps, 2) if self.steps else 0.0
        raise KeyError(metric)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "ops_completed": self.ops_completed, "pqap": list(self.pqap),
            "pqap_incomplete": self.pqap_incomplete, "kvm_holds": list(self.kvm_holds),
            "behind_kvm": {k: list(v) for k, v in self.behind_kvm.items()},
            "writer_waits": list(self.writer_waits),
            "contentions": dict(sorted(self.contentions.items())),
            "contention_steps": dict(sorted(self.contention_steps.items())),
        }


#: metric key -> True if larger is worse (False: smaller is worse)
METRICS: dict[str, bool] = {
    "pqap_max": True, "kvm_hold_max": True, "behind_kvm_max:vcpu": True, "behind_kvm_max:kvm": True,
    "behind_kvm_max:other": True, "writer_wait_max": True, "contentions": True, "ops_per_kstep": False,
}


class Tracker:
    """The state machine behind every metric: fed one normalised event at a time.

    Adapters (:class:`MetricsTap` for live events, :func:`metrics_of_steps` for trace lines) call the
    ``on_*`` methods; every event, whatever its kind, must go through :meth:`touch` first (it returns
    the actor's arrival step).
    """

    __slots__ = ("kinds", "m", "last", "rels", "wakes", "unblocks", "kvm_held", "kvm_acq", "begun",
                 "episodes", "waits")

    def __init__(self, kinds: dict[str, str], record_waits: bool = False) -> None:
        self.kinds = kinds
        #: with ``record_waits``: every contended wait as (actor, start, end, label, behind kvm->lock, writer)
        self.waits: list[tuple[str, int, int, str, bool, bool]] | None = [] if record_waits else None
        self.m = ScheduleMetrics()
        self.last: dict[str, int] = {}
        #: lock instance -> [(step, actor, mode, releaser held a kvm->lock)]
        self.rels: dict[tuple[str, str], list[tuple[int, str, str, bool]]] = {}
        self.wakes: dict[str, list[tuple[int, str, bool]]] = {}  #: wait queue -> [(step, waker, kvm)]
        self.unblocks: dict[str, list[tuple[int, str, bool]]] = {}  #: vcpu -> [(step, who, kvm)]
        self.kvm_held: dict[str, int] = {}  #: actor -> number of &kvm->lock instances held
        self.kvm_acq: dict[tuple[str, str], int] = {}  #: (actor, instance) -> acquisition step
        self.begun: dict[str, int] = {}  #: actor -> begin step of its PQAP operation
        self.episodes: dict[tuple[str, str], list[Any]] = {}  #: (actor, wq) -> [start, slept, writer]

    def touch(self, step: int, actor: str) -> int:
        last = self.last
        a = last.get(actor, step)
        last[actor] = step
        return a

    def _kind(self, actor: str) -> str:
        k = self.kinds.get(actor)
        if k is None:
            k = "worker" if actor.startswith("kworker/") else actor.split(":", 1)[0].split("#", 1)[0]
        return k

    def _wait(self, step: int, actor: str, label: str, length: int, behind: bool, writer: bool) -> None:
        if self.waits is not None:
            self.waits.append((actor, step - length, step, label, behind, writer and self._kind(actor) != "vcpu"))
        m = self.m
        m.contentions[label] += 1
        m.contention_steps[label] += length
        kind = self._kind(actor)
        if behind:
            m.behind_kvm[waiter_kind(kind)].append(length)
        if writer and kind != "vcpu":
            m.writer_waits.append(length)

    # --- locks ----------------------------------------------------------------------------------
    def on_acquire(self, step: int, arrival: int, actor: str, cls: str, inst: str, mode: str, ok: bool,
                   try_: bool) -> None:
        if not ok:
            return
        if cls == KVM_LOCK:
            self.kvm_held[actor] = self.kvm_held.get(actor, 0) + 1
            self.kvm_acq[(actor, inst)] = step
        if try_ or arrival >= step:
            return
        rels = self.rels.get((cls, inst))
        if not rels:
            return
        contended = False
        behind = cls == KVM_LOCK
        for r_step, who, r_mode, r_kvm in reversed(rels):
            if r_step <= arrival:
                break
            if who != actor and _conflict(mode, r_mode):
                contended = True
                behind = behind or r_kvm
        if contended:
            self._wait(step, actor, cls, step - arrival, behind, mode == "w" and cls in DATA_LOCKS)

    def on_release(self, step: int, actor: str, cls: str, inst: str, mode: str) -> None:
        if cls == KVM_LOCK:
            acq = self.kvm_acq.pop((actor, inst), None)
            if acq is not None:
                self.m.kvm_holds.append(step - acq)
                n = self.kvm_held.get(actor, 0) - 1
                if n > 0:
                    self.kvm_held[actor] = n
                else:
                    self.kvm_held.pop(actor, None)
        self.rels.setdefault((cls, inst), []).append((step, actor, mode, actor in self.kvm_held))

    def on_sync(self, step: int, arrival: int, actor: str, cls: str, inst: str) -> None:
        rels = self.rels.get((cls, inst))
        if not rels or arrival >= step:
            return
        contended, behind = False, False
        for r_step, who, r_mode, r_kvm in reversed(rels):
            if r_step <= arrival:
                break
            if who != actor:
                contended = True
                behind = behind or r_kvm
        if contended:
            self._wait(step, actor, cls, step - arrival, behind, cls in WRITER_SRCU)

    # --- open-coded waits ---------------------------------------------------------------------------
    def on_prepare_wait(self, step: int, arrival: int, actor: str, wq: str, path: str | None) -> None:
        key = (actor, wq)
        if key not in self.episodes:
            writer = wq.rsplit(".", 1)[-1] in WRITER_WAIT_QUEUES or path in WRITER_WAIT_PATHS
            self.episodes[key] = [arrival, False, writer]

    def on_wait_woken(self, actor: str, wq: str) -> None:
        ep = self.episodes.get((actor, wq))
        if ep is not None:
            ep[1] = True

    def on_finish_wait(self, step: int, actor: str, wq: str) -> None:
        ep = self.episodes.pop((actor, wq), None)
        if ep is None or not ep[1]:
            return
        start = ep[0]
        behind = any(s > start and who != actor and kvm for s, who, kvm in self.wakes.get(wq, ()))
        base = wq.rsplit(".", 1)[-1]  # per-object queues are named "<object>.<queue>" (m0.wait_for_kvm)
        self._wait(step, actor, WAIT_QUEUES.get(base, f"(wait queue) {base}"), step - start, behind, ep[2])

    def on_wake(self, step: int, actor: str, wq: str) -> None:
        self.wakes.setdefault(wq, []).append((step, actor, actor in self.kvm_held))

    # --- SIE entry ----------------------------------------------------------------------------------
    def on_sie_block(self, step: int, arrival: int, actor: str, vcpu: str) -> None:
        if arrival >= step:
            return
        contended, behind = False, False
        for s, who, kvm in reversed(self.unblocks.get(vcpu, ())):
            if s <= arrival:
                break
            if who != actor:
                contended = True
                behind = behind or kvm
        if contended:
            self._wait(step, actor, SIE_LABEL, step - arrival, behind, False)

    def on_sie_unblock(self, step: int, actor: str, vcpu: str) -> None:
        self.unblocks.setdefault(vcpu, []).append((step, actor, actor in self.kvm_held))

    # --- operations ---------------------------------------------------------------------------------
    def on_begin(self, step: int, actor: str, verb: str) -> None:
        if verb.startswith(PQAP_PREFIX):
            self.begun[actor] = step

    def on_end(self, step: int, actor: str) -> None:
        self.m.ops_completed += 1
        b = self.begun.pop(actor, None)
        if b is not None:
            self.m.pqap.append(step - b)
        for key in [k for k in self.episodes if k[0] == actor]:
            del self.episodes[key]

    def finish(self, steps: int) -> ScheduleMetrics:
        """The metrics of the schedule, which took ``steps`` steps."""
        self.m.steps = steps
        self.m.pqap_incomplete = len(self.begun)
        return self.m


def _vcpu_of_var(var: str) -> str:
    return var[var.index("(") + 1:var.index(")")] if "(" in var else var


class MetricsTap(list):  # type: ignore[type-arg]
    """An event list for :func:`apactors.engine.controlled.run_schedule` that measures and keeps nothing.

    The executor appends every event ``(step, actor, stack, op, result, extra)``; ``append`` feeds it
    to a :class:`Tracker` and drops it, so the cost per event is one dispatch on the op's class.  The
    list itself stays empty.  Call :meth:`finish` with the schedule's step count afterwards.
    """

    def __init__(self, kinds: dict[str, str]) -> None:
        super().__init__()
        self.tracker = Tracker(kinds)
        t = self.tracker
        self._dispatch = {
            O.Acquire: self._acquire, O.Release: self._release, O.SynchronizeSrcu: self._sync,
            O.PrepareWait: self._prepare, O.WaitWoken: self._woken, O.FinishWait: self._finish,
            O.WakeAll: self._wake, O.Block: self._block, O.Write: self._write,
        }
        self._touch = t.touch

    def append(self, ev: tuple) -> None:  # type: ignore[override]
        step, actor, stack, op, result, extra = ev
        arrival = self._touch(step, actor)
        h = self._dispatch.get(op.__class__)
        if h is not None:
            h(step, arrival, actor, stack, op, result)
        elif op is BEGIN:
            self.tracker.on_begin(step, actor, result.verb)
        elif op is END:
            self.tracker.on_end(step, actor)

    def _acquire(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        lk = op.lock
        self.tracker.on_acquire(step, arrival, actor, lk.cls, lk.inst, op.mode, bool(result), op.try_)

    def _release(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        lk = op.lock
        self.tracker.on_release(step, actor, lk.cls, lk.inst, op.mode)

    def _sync(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        self.tracker.on_sync(step, arrival, actor, op.srcu.cls, op.srcu.inst)

    def _prepare(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        self.tracker.on_prepare_wait(step, arrival, actor, op.wq.name, stack[-1] if stack else None)

    def _woken(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        self.tracker.on_wait_woken(actor, op.wq.name)

    def _finish(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        self.tracker.on_finish_wait(step, actor, op.wq.name)

    def _wake(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        self.tracker.on_wake(step, actor, op.wq.name)

    def _block(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        cond = op.cond
        if cond.__class__.__name__ == "SieAllowed":
            self.tracker.on_sie_block(step, arrival, actor, cond.vcpu.name)

    def _write(self, step: int, arrival: int, actor: str, stack: Any, op: Any, result: Any) -> None:
        if op.field == "prog_block_sie" and result is False and op.obj is not None:
            self.tracker.on_sie_unblock(step, actor, op.obj.name)

    def finish(self, steps: int) -> ScheduleMetrics:
        return self.tracker.finish(steps)


def metrics_of_steps(steps: Iterable[dict[str, Any]], kinds: dict[str, str], n_steps: int | None = None,
                     tracker: Tracker | None = None) -> ScheduleMetrics:
    """The metrics of a schedule from its trace step lines (``Trace.steps`` or ``ReplayResult.events``).

    Pass a ``tracker`` (e.g. ``Tracker(kinds, record_waits=True)``) to keep it for its wait list."""
    t = tracker if tracker is not None else Tracker(kinds)
    last = -1
    for ev in steps:
        step, actor, op = ev["step"], ev["actor"], ev["op"]
        last = step
        arrival = t.touch(step, actor)
        if op == "acquire":
            t.on_acquire(step, arrival, actor, ev["lock"], ev["instance"], ev["mode"], ev.get("ok", True),
                         bool(ev.get("try")))
        elif op == "release":
            t.on_release(step, actor, ev["lock"], ev["instance"], ev["mode"])
        elif op == "synchronize-srcu":
            t.on_sync(step, arrival, actor, ev["lock"], ev["instance"])
        elif op == "prepare-wait":
            t.on_prepare_wait(step, arrival, actor, ev["wq"], ev.get("path"))
        elif op == "wait":
            t.on_wait_woken(actor, ev["wq"])
        elif op == "finish-wait":
            t.on_finish_wait(step, actor, ev["wq"])
        elif op == "wake":
            t.on_wake(step, actor, ev["wq"])
        elif op == "block":
            on = ev.get("on") or ""
            if on.startswith("vcpu ") and "PROG_BLOCK_SIE" in on:
                t.on_sie_block(step, arrival, actor, on.split()[1].rstrip(":"))
        elif op == "write":
            var = ev.get("var") or ""
            if var.endswith(".prog_block_sie") and ev.get("value") is False:
                t.on_sie_unblock(step, actor, _vcpu_of_var(var))
        elif op == "begin":
            t.on_begin(step, actor, (ev.get("operation") or "").split(" ", 1)[0])
        elif op == "end":
            t.on_end(step, actor)
    return t.finish(n_steps if n_steps is not None else last + 1)


def metrics_of_trace(trace: Any) -> ScheduleMetrics:
    """The metrics of a trace (a path or a :class:`~apactors.trace.Trace`)."""
    from apactors.trace.reader import read_trace

    tr = read_trace(trace) if isinstance(trace, (str, Path)) else trace
    footer = tr.footer or {}
    return metrics_of_steps(tr.steps, actor_kinds(tr.header["scenario"]), footer.get("steps"))


# --------------------------------------------------------------------------------------------------
# aggregation over schedules

def percentile(hist: Counter, q: float) -> int:
    """The nearest-rank ``q``-quantile (0 < q <= 1) of a histogram value -> count; 0 if empty."""
    n = sum(hist.values())
    if not n:
        return 0
    rank = max(1, math.ceil(q * n))
    seen = 0
    for v in sorted(hist):
        seen += hist[v]
        if seen >= rank:
            return int(v)
    return int(max(hist))  # pragma: no cover - unreachable


@dataclass
class Worst:
    """The worst schedule for one metric: its value and where it ran (``where`` is filled by the caller)."""

    value: float
    schedule: int
    seed: int
    scenario: str = ""
    trace: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "scenario": self.scenario, "schedule": self.schedule, "seed": self.seed,
                "trace": self.trace}


@dataclass
class MetricsSummary:
    """Metrics aggregated over the schedules of one or more runs (exact histograms)."""

    schedules: int = 0
    steps: int = 0
    ops_completed: int = 0
    pqap: Counter = field(default_factory=Counter)
    pqap_incomplete: int = 0
    kvm_holds: Counter = field(default_factory=Counter)
    behind_kvm: dict[str, Counter] = field(default_factory=lambda: {k: Counter() for k in WAITER_KINDS})
    writer_waits: Counter = field(default_factory=Counter)
    contentions: Counter = field(default_factory=Counter)
    contention_steps: Counter = field(default_factory=Counter)
    worst: dict[str, Worst] = field(default_factory=dict)

    def add(self, sm: ScheduleMetrics, schedule: int, seed: int, scenario: str = "") -> None:
        """Fold one schedule in; the first schedule with the worst value of a metric stays the worst."""
        self.schedules += 1
        self.steps += sm.steps
        self.ops_completed += sm.ops_completed
        self.pqap.update(sm.pqap)
        self.pqap_incomplete += sm.pqap_incomplete
        self.kvm_holds.update(sm.kvm_holds)
        for k, v in sm.behind_kvm.items():
            self.behind_kvm[k].update(v)
        self.writer_waits.update(sm.writer_waits)
        self.contentions.update(sm.contentions)
        self.contention_steps.update(sm.contention_steps)
        for metric, larger in METRICS.items():
            value = sm.value(metric)
            w = self.worst.get(metric)
            if w is None or (value > w.value if larger else value < w.value):
                self.worst[metric] = Worst(value, schedule, seed, scenario)

    def merge(self, other: "MetricsSummary") -> None:
        """Fold another summary in (ties keep this one's worst: merge in a fixed order)."""
        self.schedules += other.schedules
        self.steps += other.steps
        self.ops_completed += other.ops_completed
        self.pqap.update(other.pqap)
        self.pqap_incomplete += other.pqap_incomplete
        self.kvm_holds.update(other.kvm_holds)
        for k, v in other.behind_kvm.items():
            self.behind_kvm[k].update(v)
        self.writer_waits.update(other.writer_waits)
        self.contentions.update(other.contentions)
        self.contention_steps.update(other.contention_steps)
        for metric, larger in METRICS.items():
            o = other.worst.get(metric)
            w = self.worst.get(metric)
            if o is not None and (w is None or (o.value > w.value if larger else o.value < w.value)):
                self.worst[metric] = Worst(o.value, o.schedule, o.seed, o.scenario, o.trace)

    def worst_schedules(self) -> list[int]:
        """The schedule indices that are the worst for some metric (sorted, distinct)."""
        return sorted({w.schedule for w in self.worst.values()})

    # --- derived values --------------------------------------------------------------------------
    def ops_per_kstep(self) -> float:
        return round(1000 * self.ops_completed / self.steps, 1) if self.steps else 0.0

    def to_json(self) -> dict[str, Any]:
        """Every number of the summary, plus the histograms (JSON keys are strings)."""
        def hist(c: Counter) -> dict[str, int]:
            return {str(k): c[k] for k in sorted(c)}

        def mean(c: Counter) -> float:
            n = sum(c.values())
            return round(sum(k * v for k, v in c.items()) / n, 2) if n else 0.0

        return {
            "schedules": self.schedules,
            "steps": self.steps,
            "ops_completed": self.ops_completed,
            "ops_per_kstep": self.ops_per_kstep(),
            "pqap": {"count": sum(self.pqap.values()), "incomplete": self.pqap_incomplete,
                     "p50": percentile(self.pqap, 0.5), "p99": percentile(self.pqap, 0.99),
                     "max": max(self.pqap, default=0), "mean": mean(self.pqap), "histogram": hist(self.pqap)},
            "kvm_lock_hold": {"count": sum(self.kvm_holds.values()), "mean": mean(self.kvm_holds),
                              "max": max(self.kvm_holds, default=0), "histogram": hist(self.kvm_holds)},
            "behind_kvm_lock": {k: {"count": sum(c.values()), "total": sum(a * n for a, n in c.items()),
                                    "mean": mean(c), "max": max(c, default=0)}
                                for k, c in self.behind_kvm.items()},
            "writer_wait": {"count": sum(self.writer_waits.values()), "mean": mean(self.writer_waits),
                            "max": max(self.writer_waits, default=0)},
            "contentions": {k: {"count": self.contentions[k], "steps": self.contention_steps[k]}
                            for k in sorted(self.contentions, key=lambda k: (-self.contentions[k], k))},
            "worst": {k: self.worst[k].to_json() for k in sorted(self.worst)},
        }


__all__ = ["DATA_LOCKS", "KVM_LOCK", "METRICS", "MetricsSummary", "MetricsTap", "ScheduleMetrics", "Tracker",
           "Worst", "actor_kinds", "metrics_of_steps", "metrics_of_trace", "percentile", "waiter_kind"]
