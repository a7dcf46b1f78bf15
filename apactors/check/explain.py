"""Causal stories for findings: who did what, in which order, and which lock was or was not held.

Checkers keep *access records* (:class:`Access`) for the events a finding is about and call the
``*_story`` functions here only when they report, so nothing on the hot path formats text.  A story
is a few short sentences in event order; the multi-line ``report`` lists the same events one per line
with their full call stacks.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple


class Access(NamedTuple):
    """One event a finding refers to: an actor's step, where it ran and what it held."""

    actor: str
    stack: tuple[str, ...]
    step: int
    what: str  #: "read", "write", "update", "free", "clear", "AQIC", "acquire", ...
    held: tuple[tuple[Any, str, int], ...] = ()  #: (lock, mode, step acquired) in acquisition order
    value: Any = None

    @property
    def path(self) -> str:
        return path_of(self.stack)


def path_of(stack: Iterable[str]) -> str:
    """The innermost kernel function of a call stack (``?`` when the stack is empty)."""
    stack = tuple(stack)
    return stack[-1] if stack else "?"


def lock_name(lock: Any, mode: str = "w") -> str:
    """``&kvm->lock@g0``; a read-mode hold is marked ``(r)``, an SRCU read section ``(R)``."""
    label = lock.label() if hasattr(lock, "label") else str(lock)
    if mode == "r":
        return label + "(r)"
    if mode == "R":
        return label + "(R)"
    return label


def lock_names(held: Iterable[tuple[Any, str, int]]) -> list[str]:
    return [lock_name(lk, mode) for lk, mode, _ in held]


def lock_classes(held: Iterable[tuple[Any, str, int]]) -> list[str]:
    out: list[str] = []
    for lk, _, _ in held:
        cls = getattr(lk, "cls", str(lk))
        if cls not in out:
            out.append(cls)
    return out


def held_text(held: Iterable[tuple[Any, str, int]]) -> str:
    names = lock_names(held)
    return "holding " + ", ".join(names) if names else "holding no lock"


def render_value(v: Any) -> str:
    """A short printable form of a field value (masks as id lists, objects by name)."""
    if v is None:
        return "NULL"
    vname = getattr(v, "vname", None)
    if vname is not None:
        return vname
    if hasattr(v, "bits") and hasattr(v, "__iter__"):
        return "{" + ",".join(str(i) for i in v) + "}"
    if isinstance(v, tuple) and v and all(hasattr(x, "bits") for x in v):
        return "(" + ", ".join(render_value(x) for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {render_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def access_json(a: Access) -> dict[str, Any]:
    """The JSON form of an access in a finding."""
    return {
        "actor": a.actor,
        "path": a.path,
        "stack": list(a.stack),
        "step": a.step,
        "access": a.what,
        "locks": lock_names(a.held),
        **({"value": render_value(a.value)} if a.what in ("read", "write", "update", "clear") else {}),
    }


def _verb(what: str) -> str:
    return {"read": "read", "write": "wrote", "update": "updated", "free": "freed", "clear": "cleared"}.get(
        what, what)


def describe(a: Access, var: str | None = None, with_value: bool = True) -> str:
    """``admin#1 (assign_adapter_store > vfio_ap_mdev_filter_matrix) wrote X := {3} at step 41 holding …``."""
    where = " > ".join(a.stack) if a.stack else "?"
    obj = f" {var}" if var else ""
    val = ""
    if with_value and a.what in ("read", "write", "update") and var:
        val = f" = {render_value(a.value)}" if a.what == "read" else f" := {render_value(a.value)}"
    return f"{a.actor} ({where}) {_verb(a.what)}{obj}{val} at step {a.step}, {held_text(a.held)}"


def common_locks(a: Access, b: Access) -> list[str]:
    """Lock instances both accesses held (any mode)."""
    bl = {id(lk) for lk, _, _ in b.held}
    return [lock_name(lk, m) for lk, m, _ in a.held if id(lk) in bl]


# --------------------------------------------------------------------------- stories

def race_story(var: str, first: Access, second: Access, lockset: list[str] | None, protects: str) -> str:
    both = common_locks(first, second)
    lines = [
        f"1. {describe(first, var)}.",
        f"2. {describe(second, var)}.",
    ]
    if both:
        why = (f"Both held {', '.join(both)}, but only in read mode, which does not exclude a writer; "
               "nothing else orders the two accesses.")
    else:
        why = ("No lock was held by both, and no wait, wake-up, work-queue hand-over or lock release/acquire "
               "chain orders the first access before the second: they can happen in either order.")
    tail = f" The variable is meant to be protected by {protects}."
    if lockset is not None:
        missing = [lk for lk in lockset if lk not in lock_names(second.held)]
        if lockset and missing:
            tail += (f" Every earlier access since it became shared held {', '.join(lockset)}; "
                     f"the second access did not hold {', '.join(missing)}.")
        elif lockset:
            tail += f" Every earlier access since it became shared held {', '.join(lockset)}."
        else:
            tail += " No lock was held at every earlier access since it became shared."
    return " ".join(lines) + " " + why + tail


def stale_story(var: str, check: Access, change: Access, act: Access, now: Any, across: list[str]) -> str:
    held = (f"{check.actor} kept {', '.join(across)} from the check to the act, but {change.actor} did not "
            "need it to make the change" if across else
            f"no lock was held by {check.actor} from the check to the act that {change.actor} also held for "
            "the change")
    return (f"1. check: {describe(check, var)}. "
            f"2. change: {describe(change, var)}. "
            f"3. act: {describe(act, None, with_value=False)}, still on the value it read "
            f"({render_value(check.value)}; it is now {render_value(now)}). "
            f"The decision was stale when acted on: {held}.")


def invariant_story(name: str, violation: str, when: str, last: list[tuple[str, Access]]) -> str:
    parts = [f"{name} broken {when}: {violation}."]
    if last:
        parts.append("Most recent changes of the state involved:")
        for i, (var, a) in enumerate(last, 1):
            parts.append(f"{i}. {describe(a, var)}.")
    return " ".join(parts)


def crash_story(oops_kind: str, expr: str, crasher: Access, obj_name: str | None, freed: Access | None,
                obtained: tuple[str, Access] | None, cleared: tuple[str, Access] | None) -> str:
    parts: list[str] = []
    if obtained is not None:
        var, a = obtained
        parts.append(f"{a.actor} ({' > '.join(a.stack) or '?'}) read {var} = {render_value(a.value)} at step "
                     f"{a.step}, {held_text(a.held)}.")
    if freed is not None:
        parts.append(f"{freed.actor} ({' > '.join(freed.stack) or '?'}) freed {obj_name} at step {freed.step}, "
                     f"{held_text(freed.held)}.")
    if cleared is not None:
        var, a = cleared
        parts.append(f"{a.actor} ({' > '.join(a.stack) or '?'}) set {var} to NULL at step {a.step}, "
                     f"{held_text(a.held)}.")
    what = "used the freed object" if oops_kind == "use-after-free" else "dereferenced a NULL pointer"
    parts.append(f"{crasher.actor} ({' > '.join(crasher.stack) or '?'}) then {what} at step {crasher.step}: "
                 f"{expr}, {held_text(crasher.held)}; the oops kills {crasher.actor}, its locks stay held.")
    return " ".join(f"{i}. {p}" for i, p in enumerate(parts, 1))


def report_lines(title: str, events: list[tuple[str, Access, str | None]]) -> str:
    """A multi-line report: the title, then one line per event (label, access, variable)."""
    out = [title]
    for label, a, var in events:
        out.append(f"  {label}: {describe(a, var)}")
        if a.stack:
            out.append(f"      stack: {' > '.join(a.stack)}")
    return "\n".join(out)


__all__ = ["Access", "access_json", "common_locks", "crash_story", "describe", "held_text", "invariant_story",
           "lock_classes", "lock_name", "lock_names", "path_of", "race_story", "render_value", "report_lines",
           "stale_story"]
