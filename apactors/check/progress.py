"""Actual deadlocks and hangs, from the wait-for graph at the moment no actor can advance.

Rules:

* The run is *stuck* when no process is enabled while some still have work.  Each stuck process waits
  for something: a lock instance (held by its holders; a fair rw_semaphore reader also waits for the
  writers queued before it), an SRCU grace period (the readers of the sections it waits for), a
  condition (device closed, work idle, vCPUs out of SIE: the actors that could make it true), or a wake-up
  on a wait queue.
* If the wait-for graph among stuck processes has a cycle, it is a **deadlock**: the report names each
  waiter, the lock instance it waits for and who holds it, in cycle order.
* Otherwise it is a **hang**: somebody waits for a condition that no live actor can set any more (for
  example a lock held by a task that oopsed, or a device close that nobody will do).
* A run that reaches the step bound without finishing is reported as a hang too (possible livelock).

The checker also keeps the locks each actor holds, from the event stream, for the reports.
"""

from __future__ import annotations

from typing import Any

from apactors.check.findings import Finding, canonical_rotation
from apactors.engine.process import CRASH, Process
from apactors.model.locks import RwSem, Srcu
from apactors.model.ops import Acquire, Block, Release, SynchronizeSrcu, WaitWoken
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait


class HeldLocks:
    """Observer: the lock instances each actor holds, in acquisition order, and who holds each open-coded
    lock (a flag plus wait queue) as the schemes' waitdep annotations say."""

    def __init__(self) -> None:
        self.held: dict[str, list[Any]] = {}
        self.node_holder: dict[Any, str] = {}  #: waitdep node -> the actor that set the flag
        self.waits_on: dict[str, Any] = {}  #: actor -> the waitdep node of its latest wait test

    def on_event(self, step: int, p: Process, op: Any, result: Any, extra: Any) -> None:
        cls = op.__class__
        if cls is WaitDepAcquire:
            self.node_holder[op.node] = p.name
        elif cls is WaitDepRelease:
            self.node_holder.pop(op.node, None)
        elif cls is WaitDepWait:
            self.waits_on[p.name] = op.node
        elif cls is Acquire:
            if result:
                self.held.setdefault(p.name, []).append(op.lock)
        elif cls is Release:
            lst = self.held.get(p.name)
            if lst:
                for i in range(len(lst) - 1, -1, -1):
                    if lst[i] is op.lock:
                        del lst[i]
                        break


def _waits_for(p: Process, procs: dict[str, Process], scheme: Any = None,
               held: HeldLocks | None = None) -> tuple[str, list[str], Any]:
    """(what p waits for, the actors it waits on, the lock if it is a lock wait)."""
    op = p.pending
    if isinstance(op, Acquire):
        lock = op.lock
        on = [h for h in lock.holders if h != p.name]
        if isinstance(lock, RwSem) and op.mode != "w":
            on += [w for w, when in lock.waiting_writers.items() if when < p.arrival and w not in on]
        return f"{lock.cls} ({lock.label()}, mode {op.mode})", on, lock
    if isinstance(op, SynchronizeSrcu):
        srcu: Srcu = op.srcu
        return f"synchronize_srcu({srcu.cls})", [a for a in srcu.sections.values() if a != p.name], srcu
    if isinstance(op, Block):
        return op.cond.describe(), [b for b in op.cond.blockers(p) if b != p.name], None
    if isinstance(op, WaitWoken):
        # An open-coded lock knows who holds it: the scheme's own bookkeeping, or the actor that set the
        # flag this task last tested (the waitdep annotation of the wait).
        hook = getattr(scheme, "wait_blockers", None)
        on = [b for b in hook(op.wq) if b != p.name] if hook is not None else []
        node = held.waits_on.get(p.name) if held is not None else None
        if node is not None:
            holder = held.node_holder.get(node)
            if holder is not None and holder != p.name and holder not in on:
                on.append(holder)
            return f"a wake-up on {op.wq.name} ({node.cls})", on, node
        return f"a wake-up on {op.wq.name}", on, None
    return f"{type(op).__name__}", [], None


class ProgressChecker:
    """Reports deadlocks and hangs when the executor finds no enabled process."""

    name = "progress"

    def __init__(self, held: HeldLocks, scheme: Any = None) -> None:
        self.held = held
        self.scheme = scheme

    def _held_by(self, name: str) -> list[str]:
        return [lk.cls for lk in self.held.held.get(name, [])]

    def on_stuck(self, procs: list[Process], step: int) -> Finding:
        by_name = {p.name: p for p in procs}
        stuck = [p for p in procs if p.live()]
        waits = {p.name: _waits_for(p, by_name, self.scheme, self.held) for p in stuck}
        cycle = self._find_cycle([p.name for p in stuck], {n: w[1] for n, w in waits.items()})
        entries = []
        for p in stuck:
            what, on, lock = waits[p.name]
            entries.append({
                "actor": p.name, "waits_for": what, "blocked_on": on, "path": p.stack[-1] if p.stack else None,
                "stack": list(p.stack), "holds": self._held_by(p.name),
            })
        if cycle:
            locks, paths, lines = [], [], []
            for name in cycle:
                what, on, lock = waits[name]
                p = by_name[name]
                locks.append(lock.cls if lock is not None else what)
                paths.append(p.stack[-1] if p.stack else "?")
                lines.append(f"  {name} in {' > '.join(p.stack) or '?'} holds [{', '.join(self._held_by(name))}]"
                             f" and waits for {what} held by {', '.join(on) or 'nobody'}")
            # The same cycle of lock classes is the same defect, whichever functions the waiters are in.
            key = canonical_rotation(list(locks))
            summary = "deadlock: " + "; ".join(
                f"{n} waits for {waits[n][2].cls if waits[n][2] is not None else waits[n][0]}"
                f" held by {', '.join(waits[n][1])}" for n in cycle)
            report = "DEADLOCK: no actor can advance; the wait-for cycle is:\n" + "\n".join(lines)
            return Finding("deadlock", "|".join(key), summary, locks=locks, paths=paths, actors=list(cycle),
                           step=step, details={"waiters": entries, "cycle": list(cycle)}, report=report)
        # No cycle: somebody waits for what no live actor can provide.
        key_parts, lines, paths, locks = [], [], [], []
        for e in entries:
            key_parts.append(f"{e['waits_for'].split(' (')[0]}@{e['path']}")
            paths.append(e["path"] or "?")
            lock = waits[e["actor"]][2]
            if lock is not None:
                locks.append(lock.cls)
            dead = [a for a in e["blocked_on"] if a in by_name and by_name[a].state == "crashed"]
            why = f" (held by {', '.join(dead)}, which oopsed)" if dead else ""
            lines.append(f"  {e['actor']} in {' > '.join(e['stack']) or '?'} waits for {e['waits_for']}{why}")
        summary = "hang: " + "; ".join(f"{e['actor']} waits for {e['waits_for']}" for e in entries)
        report = "HANG: actors wait for conditions no live actor can set:\n" + "\n".join(lines)
        return Finding("hang", "|".join(sorted(key_parts)), summary, locks=locks, paths=paths,
                       actors=[e["actor"] for e in entries], step=step, details={"waiters": entries},
                       report=report)

    def on_step_bound(self, procs: list[Process], step: int) -> Finding:
        live = [p for p in procs if p.live()]
        paths = [p.stack[-1] if p.stack else (p.current.verb if p.current is not None else "?") for p in live]
        return Finding("hang", "step-bound|" + "|".join(sorted(set(paths))),
                       f"step bound of {step} reached with {len(live)} actor(s) still running (possible livelock)",
                       paths=paths, actors=[p.name for p in live], step=step,
                       details={"step_bound": step})

    @staticmethod
    def _find_cycle(order: list[str], edges: dict[str, list[str]]) -> list[str] | None:
        """A cycle of the wait-for graph, found deterministically (processes in creation order)."""
        color: dict[str, int] = {}
        stack: list[str] = []

        def dfs(n: str) -> list[str] | None:
            color[n] = 1
            stack.append(n)
            for m in edges.get(n, []):
                if m not in edges:
                    continue
                c = color.get(m, 0)
                if c == 1:
                    return stack[stack.index(m):]
                if c == 0:
                    found = dfs(m)
                    if found:
                        return found
            stack.pop()
            color[n] = 2
            return None

        for n in order:
            if color.get(n, 0) == 0:
                found = dfs(n)
                if found:
                    return list(found)
        return None


class CrashChecker:
    """Turns oopses (NULL dereference, freed-object access) into crash findings."""

    name = "crash"

    def __init__(self) -> None:
        self.found: list[Finding] = []

    def findings(self) -> list[Finding]:
        return self.found

    def on_event(self, step: int, p: Process, op: Any, result: Any, extra: Any) -> None:
        if op is CRASH:
            oops = result
            path = p.stack[-1] if p.stack else "?"
            self.found.append(Finding(
                "crash", f"{oops.kind}|{path}|{oops.expr.split('(')[0]}",
                f"{oops.kind} in {path} ({p.name}): {oops.expr}", paths=list(p.stack), actors=[p.name], step=step,
                details={"oops": oops.kind, "expr": oops.expr}))
