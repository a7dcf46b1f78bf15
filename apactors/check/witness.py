"""Two-tier verdicts: search a witness schedule for every potential deadlock.

A ``potential-deadlock`` finding is a cycle of the lock-class graph: its edges may have been made by
different actors at different times, so it may or may not be able to happen in the scenario.  For each
one, :func:`confirm` runs directed schedules in the manner of DeadlockFuzzer (active testing):

* the cycle ``L0 -> L1 -> ... -> Ln-1 -> L0`` has one *slot* per edge ``Li -> Li+1``: an actor that
  holds a lock of class ``Li`` and is about to acquire (or wait for) ``Li+1``;
* the :class:`CycleStrategy` *parks* an actor as soon as it reaches a free slot (it is not scheduled
  while parked) and schedules the other actors at random, until every slot is taken; actors that are
  parked and blocked on each other then form the deadlock, and the executor reports it;
* if only parked actors can run, one of them is released at random (the cycle could not close this
  way, e.g. because they hold different instances of a class) and the schedule goes on.

Each attempt is a normal controlled schedule whose events form a trace; ``apactors replay`` follows
the recorded actor of each step, so a witness replays whatever strategy produced it.  A found witness
makes the finding ``confirmed: true``; otherwise ``confirmed: false`` with the reason (``why``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from apactors.engine.controlled import ScheduleResult, run_schedule
from apactors.engine.strategies import Strategy
from apactors.model.ops import Acquire, Block, Release, SynchronizeSrcu
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait

WITNESS_STRATEGY = "deadlock-fuzzer"
DEFAULT_ATTEMPTS = 40
PARK_LIMIT = 400  #: steps an actor stays parked while the others run, before it is let go
_LOCK_KINDS = frozenset({"mutex", "spinlock", "rwsem", "rwlock"})


@dataclass(frozen=True)
class Slot:
    """One edge of the cycle: hold a lock of class ``hold`` while acquiring or waiting for ``want``."""

    hold: str
    want: str
    actor: str = ""  #: the actor that first made the edge (for messages)
    path: str = ""


def _cname(lock: Any, sub: int = 0) -> str:
    return f"{lock.cls}/{sub}" if sub else lock.cls


class CycleStrategy(Strategy):
    """Random scheduling that parks the actors of a cycle at their closing acquisitions (see module doc).

    Set ``events`` to the list the schedule records into before each run (``run_schedule(events=...)``):
    the strategy reads the held locks of every actor from it.  Statistics over all attempts are kept for
    the verdict's ``why``.
    """

    name = WITNESS_STRATEGY
    always_pick = True

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = list(slots)
        self.events: list[tuple] = []
        self.rng = random.Random(0)
        # over all attempts
        self.reached: set[int] = set()
        self.max_filled = 0
        self.full_but_running = 0
        self.mismatch: list[str] | None = None
        self.begin(0)

    def begin(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cursor = 0
        self.held: dict[str, list[tuple[str, Any]]] = {}
        self.waiting_for: dict[str, str] = {}
        self.progress: dict[str, int] = {}
        self.assigned: dict[int, str] = {}
        self.slot_of: dict[str, int] = {}
        self.released: dict[str, int] = {}
        self.parked_at: dict[str, int] = {}
        self.step = 0
        self.procs: list[Any] | None = None
        self.full_sets: list[frozenset[str]] = []

    # --- what every actor holds, from the recorded events ------------------------------------------
    def _sync(self) -> None:
        events = self.events
        held = self.held
        for i in range(self.cursor, len(events)):
            _step, name, _stack, op, result, _extra = events[i]
            self.progress[name] = self.progress.get(name, 0) + 1
            c = op.__class__
            if c is WaitDepWait:
                self.waiting_for[name] = op.node.cls
                continue
            self.waiting_for.pop(name, None)
            if c is Acquire:
                if result:
                    held.setdefault(name, []).append((_cname(op.lock, op.subclass), op.lock))
            elif c is WaitDepAcquire:
                held.setdefault(name, []).append((op.node.cls, op.node))
            elif c is Release or c is WaitDepRelease:
                lock = op.lock if c is Release else op.node
                lists = [held.get(name, [])] + ([v for k, v in held.items() if k != name] if c is WaitDepRelease else [])
                for lst in lists:
                    for j in range(len(lst) - 1, -1, -1):
                        if lst[j][1] is lock:
                            del lst[j]
                            break
                    else:
                        continue
                    break
        self.cursor = len(events)

    def _want(self, p: Any) -> tuple[str, Any] | None:
        if p.gen is None:
            return None
        op = p.pending
        c = op.__class__
        if c is Acquire:
            if not op.try_ and op.lock.validate:
                return _cname(op.lock, op.subclass), op.lock
        elif c is SynchronizeSrcu:
            return op.srcu.cls, op.srcu
        elif c is Block:
            node = getattr(op.cond, "node", None)
            if node is not None and hasattr(node, "cls"):
                return node.cls, node
        w = self.waiting_for.get(p.name)
        return (w, None) if w is not None else None

    def _fits(self, p: Any, i: int) -> bool:
        want = self._want(p)
        if want is None:
            return False
        slot = self.slots[i]
        return want[0] == slot.want and any(h[0] == slot.hold for h in self.held.get(p.name, ()))

    def _assign(self) -> None:
        procs = self.procs or []
        by_name = {p.name: p for p in procs}
        for i, name in list(self.assigned.items()):
            if not self._fits(by_name[name], i):
                del self.assigned[i]
                del self.slot_of[name]
                self.parked_at.pop(name, None)
        for p in procs:
            if p.name in self.slot_of or p.gen is None:
                continue
            if self.released.get(p.name, -1) == self.progress.get(p.name, 0):
                continue  # released from a slot and has not moved since
            for i in range(len(self.slots)):
                if i not in self.assigned and self._fits(p, i):
                    self.assigned[i] = p.name
                    self.slot_of[p.name] = i
                    self.parked_at[p.name] = self.step
                    break
        filled = len(self.assigned)
        self.reached.update(self.assigned)
        if filled > self.max_filled:
            self.max_filled = filled
        if filled == len(self.slots):
            s = frozenset(self.assigned.values())
            if s not in self.full_sets:
                self.full_sets.append(s)

    def _describe_full(self) -> list[str]:
        procs = {p.name: p for p in self.procs or []}
        out = []
        for i, name in sorted(self.assigned.items()):
            slot = self.slots[i]
            held = [h[1] for h in self.held.get(name, ()) if h[0] == slot.hold]
            want = self._want(procs[name])
            hi = getattr(held[-1], "inst", "?") if held else "?"
            wi = getattr(want[1], "inst", "?") if want and want[1] is not None else "?"
            out.append(f"{name} holds {slot.hold}@{hi} and wants {slot.want}@{wi}")
        return out

    # --- the Strategy interface ------------------------------------------------------------------------
    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        if self.procs is None:
            self.procs = enabled[0].runtime.procs
        self.step = step
        self._sync()
        self._assign()
        for name, since in list(self.parked_at.items()):
            if name in self.slot_of and step - since > PARK_LIMIT:  # the others cannot get there: let go
                self._release(name)
        free = [p for p in enabled if p.name not in self.slot_of]
        if free:
            return free[int(self.rng.random() * len(free))]
        # Only parked actors can run: the cycle cannot close in this state.  Release one of them.
        if len(self.assigned) == len(self.slots):
            self.full_but_running += 1
            if self.mismatch is None:
                self.mismatch = self._describe_full()
        victim = enabled[int(self.rng.random() * len(enabled))]
        self._release(victim.name)
        return victim

    def _release(self, name: str) -> None:
        i = self.slot_of.pop(name)
        del self.assigned[i]
        self.parked_at.pop(name, None)
        self.released[name] = self.progress.get(name, 0)

    def choose(self, n: int, label: str) -> int:
        return int(self.rng.random() * n)

    def finish(self) -> None:
        """Account for the last steps of a schedule (no pick follows the step that filled the last slot)."""
        if self.procs is not None:
            self._sync()
            self._assign()


@dataclass
class Verdict:
    """The outcome of a witness search for one potential deadlock."""

    confirmed: bool
    why: str | None
    attempts: int
    witness: ScheduleResult | None = None
    index: int | None = None  #: the attempt that found the witness
    seed: int | None = None  #: its schedule seed
    strategy: str = WITNESS_STRATEGY
    deadlock: dict[str, Any] | None = None  #: the actual deadlock (or hang) of the witness, as JSON
    notes: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """The fields this verdict sets on the finding's JSON."""
        d: dict[str, Any] = {"confirmed": self.confirmed, "why": self.why, "witness_attempts": self.attempts,
                             "witness_strategy": self.strategy}
        if self.witness is not None:
            d.update(witness_seed=self.seed, witness_attempt=self.index, witness_outcome=self.witness.outcome,
                     witness_steps=self.witness.steps)
            if self.deadlock is not None:
                d["witness_deadlock"] = self.deadlock
        return d

    def apply(self, finding: Any) -> None:
        finding.details.update(self.details())


def _as_parts(finding: Any) -> tuple[list[str], dict[str, Any], str]:
    f = getattr(finding, "first", finding)  # an AggregatedFinding
    if isinstance(f, dict):
        return list(f.get("locks", [])), f, str(f.get("signature", ""))
    return list(f.locks), dict(f.details), f.signature


def slots_of(finding: Any) -> list[Slot]:
    """The slots of a potential-deadlock finding (see module docstring)."""
    locks, details, _ = _as_parts(finding)
    edges = details.get("edges") or []
    if details.get("type") == "recursive":
        e = edges[0] if edges else {}
        one = Slot(locks[0], locks[0], e.get("actor", ""), e.get("path", ""))
        return [one] if details.get("same_instance") else [one, one]
    n = len(locks)
    out = []
    for i in range(n):
        e = edges[i] if i < len(edges) else {}
        out.append(Slot(locks[i], locks[(i + 1) % n], e.get("actor", ""), e.get("path", "")))
    return out


def _attempt_seed(seed: int, signature: str, j: int) -> int:
    h = hashlib.blake2b(f"apactors-witness/{seed}/{signature}/{j}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def _stuck_finding(sr: ScheduleResult) -> Any:
    for f in reversed(sr.findings):
        if f.kind in ("deadlock", "hang") and "step_bound" not in f.details:
            return f
    return None


def confirm(scheme_cls: Any, scenario: Any, finding: Any, *, attempts: int = DEFAULT_ATTEMPTS, seed: int = 0,
            max_steps: int = 50_000) -> Verdict:
    """Search a witness for ``finding`` (a potential-deadlock ``Finding``, aggregated finding or JSON dict).

    Runs up to ``attempts`` directed schedules; the first that ends in an actual deadlock (or, for a
    cycle through a wait, a hang) of the cycle's actors is the witness.  Deterministic in ``seed``.
    """
    locks, details, signature = _as_parts(finding)
    slots = slots_of(finding)
    strat = CycleStrategy(slots)
    # A cycle of plain locks between tasks deadlocks in the wait-for graph; one through a wait (a work
    # item being flushed, a wait queue, a device close, synchronize_srcu), or a task blocked on a lock it
    # holds itself, shows as a hang of its actors.
    need_deadlock = (details.get("checker", "lockdep") == "lockdep" and not details.get("same_instance")
                     and all(k in _LOCK_KINDS for k in details.get("kinds") or ())
                     and all(e.get("how", "lock") == "lock" for e in details.get("edges") or ()))
    for j in range(attempts):
        s = _attempt_seed(seed, signature, j)
        events: list[tuple] = []
        strat.events = events
        sr = run_schedule(scheme_cls, scenario, strat, index=j, seed=s, max_steps=max_steps, record=True,
                          events=events)
        strat.finish()
        stuck = _stuck_finding(sr)
        if stuck is None or (need_deadlock and stuck.kind != "deadlock"):
            continue
        actors = set(stuck.actors)
        if any(full <= actors for full in strat.full_sets):
            return Verdict(True, None, j + 1, witness=sr, index=j, seed=s, deadlock=stuck.to_json())
    return Verdict(False, _why(slots, details, strat, attempts), attempts)


def _why(slots: list[Slot], details: dict[str, Any], strat: CycleStrategy, attempts: int) -> str:
    edges = details.get("edges") or []
    seen = [set(e.get("actors_seen") or ([e["actor"]] if e.get("actor") else [])) for e in edges]
    everyone = set().union(*seen) if seen else set()
    n = len(slots)
    within = f"within {attempts} attempt{'s' if attempts != 1 else ''}"
    if n > 1 and len(everyone) == 1:
        (actor,) = everyone
        if details.get("type") == "recursive":
            return (f"only {actor} nests two {slots[0].hold} instances in the explored schedules, and one task "
                    f"cannot block itself on two different instances; no witness {within}")
        return (f"every edge of the cycle was made by the same actor ({actor}) in the explored schedules; one "
                f"task cannot hold the cycle's locks against itself, and no other actor closed it {within}")
    for i, slot in enumerate(slots):
        if i not in strat.reached:
            who = f" (the edge {slot.actor} made in {slot.path})" if slot.actor else ""
            return (f"no actor held {slot.hold} while acquiring {slot.want}{who} in a directed schedule {within}")
    if strat.max_filled < n:
        return (f"the edges' actors never held their first locks at the same time {within} "
                f"(at most {strat.max_filled} of the {n} edges at once)")
    if strat.full_but_running and strat.mismatch:
        return ("the actors reached the closing acquisitions together but none of them blocked: "
                + "; ".join(strat.mismatch) + f" (different instances of the classes); no deadlock {within}")
    return f"all edges were live together but no schedule deadlocked {within}"


def write_witness_trace(verdict: Verdict, scheme_cls: Any, scenario: Any, path: str | Path, *, seed: int = 0,
                        max_steps: int = 50_000) -> Path:
    """Write the witness schedule of a confirmed verdict as a trace that ``apactors replay`` reproduces."""
    from apactors.api import render_events, trace_header
    from apactors.trace.writer import write_trace

    sr = verdict.witness
    if sr is None or sr.events is None:
        raise ValueError("the verdict has no witness schedule")
    header = trace_header(scheme_cls, scenario, WITNESS_STRATEGY, seed, int(verdict.index or 0),
                          int(verdict.seed or 0), "controlled", max_steps)
    footer = {"outcome": sr.outcome, "steps": sr.steps, "findings": [f.to_json() for f in sr.findings]}
    return write_trace(Path(path), header, render_events(sr.events), footer)


def confirm_all(findings: Any, scheme_cls: Any, scenario: Any, *, out: str | Path | None = None, seed: int = 0,
                attempts: int = DEFAULT_ATTEMPTS, max_steps: int = 50_000) -> list[Verdict]:
    """Confirm every potential-deadlock of a :class:`~apactors.check.findings.FindingSet` in place.

    Each verdict's fields go into the finding's details; with ``out``, a witness is written there as
    ``<scenario>--<scheme>--witness-<signature>.jsonl`` and becomes the finding's ``trace`` (the trace of
    the schedule that first showed the cycle moves to ``schedule_trace``).
    """
    verdicts = []
    for agg in findings.by_sig.values():
        f = agg.first
        if f.kind != "potential-deadlock":
            continue
        v = confirm(scheme_cls, scenario, f, attempts=attempts, seed=seed, max_steps=max_steps)
        v.apply(f)
        if v.confirmed and out is not None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_"
                           for c in f"{scenario.name}--{scheme_cls.id}--witness-{f.signature}")
            path = write_witness_trace(v, scheme_cls, scenario, Path(out) / f"{safe}.jsonl", seed=seed,
                                       max_steps=max_steps)
            f.details["schedule_trace"] = agg.trace
            agg.trace = str(path)
        verdicts.append(v)
    return verdicts


__all__ = ["CycleStrategy", "DEFAULT_ATTEMPTS", "Slot", "Verdict", "WITNESS_STRATEGY", "confirm", "confirm_all",
           "slots_of", "write_witness_trace"]
