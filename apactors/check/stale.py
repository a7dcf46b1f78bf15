"""Stale reads: a decision taken on a value that another task changed before the decision was acted on
(``kind: "stale-read"``).

Rules:

* **Check.** A task reads a *decision* variable (declared in :mod:`apactors.check.shared_vars`: the
  CRYCB and matrix/shadow masks, the pqap_hook, ``matrix_mdev->kvm``, ``q->matrix_mdev``, the qtable, ...).
  The task's latest read of a variable instance is its live check on it; reading it again, or writing
  it itself, replaces the check.  A check lives while the function that read the value and its caller
  run (a decision is acted on where it was taken, in what that function calls, or by its caller on the
  value returned): it ends when the task's call stack no longer starts with the caller's (checked when
  the stack has become shorter and before every act), and at the end of the scenario operation or
  work run.
* **Change.** Another task writes that variable instance with a value different from the one the check
  read.  The first such write is the check's *change*.  If the value is back to what was read when the
  checking task acts, the decision is valid again and the change is forgotten.
* **Act.** A later step of the checking task, while the check lives, that acts on shared state: a write
  of any declared shared variable, an AP instruction, freeing an object, or — for a pointer variable —
  any use of the object it read (reading or writing a field of it, locking a lock inside it).
* **Stale read.** A check that has a change when its task acts, unless a lock excludes the change: a
  lock the checking task held without interruption from the check to the act and that the changing
  task held (not both in read mode) while it changed the value.  A lock dropped between check and act
  does not count, which is the point: deciding in one critical section and acting in the next is the
  classic mistake.  Each check is reported at most once.
* **Key.** The variable name and the innermost kernel functions of the check and of the change (the act
  is reported, but where the stale decision is first acted on depends on the schedule).

The component runs inside :class:`apactors.check.races.SharedStateChecker`; :func:`StaleReadChecker` is
that observer with only this component enabled.
"""

from __future__ import annotations

from typing import Any

from apactors.check.explain import Access, access_json, lock_classes, report_lines, stale_story
from apactors.check.findings import Finding
from apactors.check.shared_vars import instance_name, resolve


class Check:
    """A task's decision on one variable instance.  ``read`` and ``change`` are raw access tuples
    ``(actor, stack, step, held, value)``."""

    __slots__ = ("v", "value", "read", "change", "scope", "depth")

    def __init__(self, v: Any, value: Any, read: tuple, frames: tuple[int, ...]) -> None:
        self.v = v
        self.value = value
        self.read = read
        self.change: tuple | None = None
        #: the call of the reading function's caller (call numbers, so that a later call of the same
        #: function is a different scope): the check lives while it runs
        self.scope = frames[:-1]
        self.depth = len(self.scope)


class StaleComponent:
    """Stale-read detection over the shared observer's tasks and variables (see the module rules)."""

    def __init__(self, owner: Any) -> None:
        self.found: dict[str, Finding] = {}

    def findings(self) -> list[Finding]:
        return list(self.found.values())

    # --- checks and changes ---------------------------------------------------------------------
    def check(self, step: int, p: Any, t: Any, v: Any, value: Any) -> None:
        key = (v.obj, v.field)
        checks = t.checks
        old = checks.get(key)
        if old is not None and old.change is not None:
            t.nstale -= 1
        if not checks:
            t.stack = p.stack
        chk = Check(v, value, (p.name, p.stack, step, t.held, value), p.frames)
        checks[key] = chk
        w = v.watchers
        if w is None:
            v.watchers = {t: chk}
        else:
            w[t] = chk

    def changed(self, step: int, p: Any, t: Any, v: Any, new: Any) -> None:
        watchers = v.watchers
        for other, chk in list(watchers.items()):
            if other is t:
                # the task's own write: it knows the value now
                del watchers[other]
                del t.checks[(v.obj, v.field)]
                if chk.change is not None:
                    t.nstale -= 1
            elif chk.change is None and new is not chk.value and new != chk.value:
                chk.change = (p.name, p.stack, step, t.held, new)
                other.nstale += 1

    def rescope(self, t: Any, stack: tuple[str, ...], frames: tuple[int, ...]) -> None:
        """End the checks whose scope (the call of the reading function's caller) has returned."""
        t.stack = stack
        n = len(frames)
        prefixes: dict[int, tuple] = {}
        for key, chk in list(t.checks.items()):
            m = chk.depth
            if n < m:
                self._drop(t, key, chk)
                continue
            pre = prefixes.get(m)
            if pre is None:
                pre = prefixes[m] = frames[:m]
            if pre != chk.scope:
                self._drop(t, key, chk)

    def _drop(self, t: Any, key: tuple, chk: Check) -> None:
        del t.checks[key]
        w = chk.v.watchers
        if w is not None:
            w.pop(t, None)
        if chk.change is not None:
            t.nstale -= 1

    def drop_all(self, t: Any) -> None:
        for chk in t.checks.values():
            w = chk.v.watchers
            if w is not None:
                w.pop(t, None)
        t.checks = {}
        t.nstale = 0

    # --- acts ----------------------------------------------------------------------------------------
    def act_use(self, step: int, p: Any, t: Any, op: Any, obj: Any) -> None:
        """A use of an object: an act for the pointer checks whose value is that object."""
        if obj is None:
            return
        owner = getattr(obj, "owner", obj)
        for key, chk in list(t.checks.items()):
            val = chk.value
            if chk.change is not None and val is not None and chk.v.decl.pointer and (val is obj or val is owner):
                field = getattr(op, "field", None)
                what = f"{op.code} {field}" if field else (
                    f"{op.code} {op.lock.cls}" if hasattr(op, "lock") else op.code)
                self._report(step, p, t, key, chk, f"use of {getattr(val, 'vname', val)} ({what})")

    def act(self, step: int, p: Any, t: Any, op: Any, what: str) -> None:
        obj = getattr(op, "obj", None)
        field = getattr(op, "field", None)
        desc = what
        if obj is not None and field is not None:
            d = resolve(obj, field)
            desc = f"{what} {d.name if d else field} of {instance_name(obj)}"
        for key, chk in list(t.checks.items()):
            if chk.change is not None:
                self._report(step, p, t, key, chk, desc)

    def _report(self, step: int, p: Any, t: Any, key: tuple, chk: Check, what: str) -> None:
        v = chk.v
        now = getattr(v.obj, v.field, None)
        if now is chk.value or now == chk.value:
            # changed and changed back: the decision holds again
            chk.change = None
            t.nstale -= 1
            return
        check_t = chk.read
        change_t = chk.change
        assert change_t is not None
        # locks held without interruption from the check to now (the same hold: same acquisition entry)
        across = [h for h in t.held if h in check_t[3]]
        for lk, m, _ in across:
            if _excludes_nobody(lk):
                continue
            for lk2, m2, _ in change_t[3]:
                if lk2 is lk and (m == "w" or m2 == "w"):
                    return  # excluded: the change cannot really have happened in between (engine quirk guard)
        self._drop(t, key, chk)  # one report per check
        check = Access(check_t[0], check_t[1], check_t[2], "read", check_t[3], check_t[4])
        change = Access(change_t[0], change_t[1], change_t[2], "write", change_t[3], change_t[4])
        act = Access(p.name, p.stack, step, what, t.held)
        decl = v.decl
        fkey = f"stale-read|{decl.name}|{check.path}|{change.path}"
        if fkey in self.found:
            return
        label = v.label
        across_names = [lk.label() for lk, _, _ in across if not _excludes_nobody(lk)]
        story = stale_story(label, check, change, act, now, across_names)
        locks: list[str] = []
        for a in (check, change, act):
            for c in lock_classes(a.held):
                if c not in locks:
                    locks.append(c)
        inst = instance_name(v.obj)
        summary = (f"stale read of {decl.name} ({inst}): {check.actor} checked it in {check.path}, "
                   f"{change.actor} changed it in {change.path}, {check.actor} acted on the old value in {act.path}")
        self.found[fkey] = Finding(
            "stale-read", fkey, summary, locks=locks, paths=[check.path, change.path, act.path],
            actors=[check.actor, change.actor], step=step,
            details={"var": decl.name, "instance": inst, "check": access_json(check),
                     "change": access_json(change), "act": access_json(act) | {"access": what},
                     "story": story},
            report=report_lines(f"STALE READ of {label}", [("check", check, label), ("change", change, label),
                                                           ("act", act, None)]))


def _excludes_nobody(lock: Any) -> bool:
    from apactors.check.races import exclusion_free

    return exclusion_free(lock)


def StaleReadChecker(world: Any = None, scheme: Any = None, scenario: Any = None) -> Any:  # noqa: N802
    """The stale-read detector alone (a checker factory for :data:`apactors.check.CHECKERS`)."""
    from apactors.check.races import SharedStateChecker

    return SharedStateChecker(world, scheme, scenario, races=False, stale=True, invariants=False, lifetime=False)


__all__ = ["Check", "StaleComponent", "StaleReadChecker"]
