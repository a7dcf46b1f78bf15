"""Lockdep's report texts (domain doc §8.5, §8.6), with the modelled code paths as stack traces.

The layout is lockdep's, line for line; what the model cannot know is replaced by fixed, deterministic
text: the lock instance name (``matrix_dev``, ``g0``) stands where lockdep prints the lock's address,
offsets are ``+0x0/0x0``, the task's pid is 1000 + its creation order, and the kernel release is the
scheme's kernel with the scheme id as local version (``6.8.0-latest``).
"""

from __future__ import annotations

from typing import Any, Sequence

CIRCULAR_TITLE = "WARNING: possible circular locking dependency detected"
RECURSIVE_TITLE = "WARNING: possible recursive locking detected"
HARDWARE = "Hardware name: apactors model of an s390 LPAR (KVM host)"

_WAIT_TYPE = {"mutex": "3:3", "rwsem": "3:3", "spinlock": "2:2", "rwlock": "2:2", "srcu": "0:0", "map": "0:0",
              "wait": "0:0"}


def usage_chars(node: Any) -> str:
    """The four usage characters (hardirq, hardirq-read, softirq, softirq-read) of a class.

    Process context with interrupts enabled: ``+`` where the class was acquired (for write in the first
    and third column, for read in the second and fourth); a spinlock taken with ``spin_lock_bh`` has
    softirqs disabled (``.``).  SRCU, wait nodes and no-validate classes show ``....``.
    """
    if node.kind in ("srcu", "wait") or not node.validate:
        return "...."
    w = "+" if node.usage & 1 else "."
    r = "+" if node.usage & 2 else "."
    if node.bh:
        return f"{w}{r}.."
    return f"{w}{r}{w}{r}"


def wait_type(node: Any) -> str:
    return _WAIT_TYPE.get(node.kind, "0:0")


def class_name(node: Any) -> str:
    """``(&kvm->lock/1){+.+.}-{3:3}``"""
    return f"({node.name}){{{usage_chars(node)}}}-{{{wait_type(node)}}}"


def sym(fn: str) -> str:
    return f"{fn}+0x0/0x0"


def lock_line(lock: Any, node: Any, at: str) -> str:
    """A held or wanted lock: ``<instance> (<class>){usage}-{w:w}, at: <function>+0x0/0x0``."""
    inst = getattr(lock, "inst", "") or "-"
    return f"{inst} {class_name(node)}, at: {sym(at)}"


def acquire_frames(kind: str, mode: str, try_: bool, how: str, subclass: int = 0, bh: bool = False) -> list[str]:
    """The innermost frames of an acquisition, down to the modelled caller."""
    if how in ("wait", "hold"):
        return []
    if how == "sync":
        return ["lock_sync", "synchronize_srcu"]
    if kind == "mutex":
        return ["lock_acquire", "mutex_trylock"] if try_ else ["lock_acquire", "__mutex_lock", "mutex_lock_nested"]
    if kind == "spinlock":
        base = "_raw_spin_trylock" if try_ else "_raw_spin_lock"
        return ["lock_acquire", base + ("_bh" if bh else "")]
    if kind == "rwsem":
        op = "down_write" if mode == "w" else "down_read"
        if try_:
            return ["lock_acquire", op + "_trylock"]
        return ["lock_acquire", op + ("_nested" if subclass else "")]
    if kind == "rwlock":
        return ["lock_acquire", "_raw_write_lock" if mode == "w" else "_raw_read_lock"]
    return ["lock_acquire"]


def _frames(node: Any, mode: str, try_: bool, how: str, stack: Sequence[str]) -> list[str]:
    return acquire_frames(node.kind, mode, try_, how, node.subclass, node.bh) + list(reversed(stack))


def _trace(frames: Sequence[str], indent: int = 7) -> list[str]:
    pad = " " * indent
    return [pad + sym(f) for f in frames] or [pad + "(no stack)"]


def _held_list(st: Any, held: Sequence[Any]) -> list[str]:
    n = len(held)
    if not n:
        return [f"no locks held by {st.name}/{st.pid}."]
    out = [f"{n} lock{'s' if n > 1 else ''} held by {st.name}/{st.pid}:"]
    for i, h in enumerate(held):
        out.append(f" #{i}: {lock_line(h.lock, h.node, h.at)}")
    return out


def _backtrace(ident: str, st: Any, top: list[str], frames: list[str]) -> list[str]:
    return (["stack backtrace:", f"CPU: 0 PID: {st.pid} Comm: {st.name} Not tainted {ident} #1", HARDWARE,
             "Call Trace:"] + [" " + sym(f) for f in top + frames])


def _verb(mode: str, how: str) -> str:
    if how == "sync":
        return "sync("
    if how == "wait":
        return "wait("
    if how == "hold":
        return "hold("
    return "rlock(" if mode != "w" else "lock("


def _header(title: str, ident: str) -> list[str]:
    return ["=" * len(title), title, f"{ident} #1 Not tainted", "-" * len(title)]


def _cpu_header(a0: str, a1: str | None) -> list[str]:
    if a1 is None:
        return [f"       CPU0 ({a0})", "       ----"]
    left = f"CPU0 ({a0})"
    left = left.ljust(24) if len(left) < 24 else left + " "
    return ["       " + left + f"CPU1 ({a1})", "       ----                    ----"]


def circular_report(ident: str, st: Any, ent: Any, held_ent: Any, path: Sequence[Any], occs: Sequence[Any],
                    held: Sequence[Any], waits: Sequence[str] = ()) -> str:
    """§8.5: ``st`` acquires ``ent`` while holding ``held_ent``; ``path`` runs from the new lock to the held
    one and ``occs[i]`` is the first occurrence of the edge ``path[i] -> path[i+1]``.  ``waits`` names the
    waits lockdep cannot see that the cycle needs (a waitdep report; one extra line after the header)."""
    out = _header(CIRCULAR_TITLE, ident)
    if waits:
        out.append(f"waitdep: lockdep cannot see this cycle: it goes through {', '.join(waits)}")
    out += [f"{st.name}/{st.pid} is trying to acquire lock:", lock_line(ent.lock, ent.node, ent.at), "",
            "but task is already holding lock:", lock_line(held_ent.lock, held_ent.node, held_ent.at), "",
            "which lock already depends on the new lock.", "", "",
            "the existing dependency chain (in reverse order) is:"]
    for k in range(len(path) - 1, -1, -1):
        node = path[k]
        out += ["", f"-> #{k} {class_name(node)}:"]
        if k == 0:
            lockdep = ["check_prev_add", "validate_chain", "__lock_acquire"] if ent.how in ("lock", "sync") else []
            out += _trace(lockdep + _frames(node, ent.mode, ent.try_, ent.how, ent.stack))
        else:
            o = occs[k - 1]
            out += _trace(_frames(node, o.mode, o.try_, o.how, o.stack))
    new, tgt = ent.node.name, held_ent.node.name
    parent = path[-2].name if len(path) >= 2 else new
    last = occs[-1] if occs else None
    out += ["", "other info that might help us debug this:", ""]
    if len(path) > 2:
        out += ["Chain exists of:", f"  {new} --> {parent} --> {tgt}", ""]
    out += [" Possible unsafe locking scenario:", ""]
    out += _cpu_header(st.name, last.actor if last is not None else st.name)
    parent_verb = "hold(" if len(path) >= 2 and path[-2].wait else "lock("
    out += [f"  {_verb(held_ent.mode, held_ent.how)}{tgt});",
            f"                               {parent_verb}{parent});",
            f"                               {'wait(' if last is not None and last.how == 'wait' else 'lock('}{tgt});",
            f"  {_verb(ent.mode, ent.how)}{new});",
            "", " *** DEADLOCK ***", ""]
    out += _held_list(st, held)
    out += [""]
    top = ["dump_stack_lvl", "print_circular_bug", "check_noncircular"]
    if ent.how in ("lock", "sync"):
        top += ["check_prev_add", "validate_chain", "__lock_acquire"]
    out += _backtrace(ident, st, top, _frames(ent.node, ent.mode, ent.try_, ent.how, ent.stack))
    return "\n".join(out) + "\n"


def recursive_report(ident: str, st: Any, ent: Any, held_ent: Any, held: Sequence[Any]) -> str:
    """§8.6: ``st`` takes ``ent`` while already holding ``held_ent`` of the same class."""
    out = _header(RECURSIVE_TITLE, ident)
    name = ent.node.name
    out += [f"{st.name}/{st.pid} is trying to acquire lock:", lock_line(ent.lock, ent.node, ent.at), "",
            "but task is already holding lock:", lock_line(held_ent.lock, held_ent.node, held_ent.at), "",
            "other info that might help us debug this:", " Possible unsafe locking scenario:", ""]
    out += _cpu_header(st.name, None)
    out += [f"  {_verb(held_ent.mode, 'lock')}{name});", f"  {_verb(ent.mode, ent.how)}{name});",
            "", " *** DEADLOCK ***", "", " May be due to missing lock nesting notation", ""]
    out += _held_list(st, held)
    out += [""]
    top = ["dump_stack_lvl", "print_deadlock_bug", "check_deadlock"]
    if ent.how in ("lock", "sync"):
        top += ["validate_chain", "__lock_acquire"]
    out += _backtrace(ident, st, top, _frames(ent.node, ent.mode, ent.try_, ent.how, ent.stack))
    return "\n".join(out) + "\n"


__all__ = ["CIRCULAR_TITLE", "RECURSIVE_TITLE", "acquire_frames", "circular_report", "class_name", "lock_line",
           "recursive_report", "usage_chars", "wait_type"]
