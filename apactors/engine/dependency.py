"""Which steps commute: footprints of modelled operations and the dependency relation over them.

Partial-order reduction (:mod:`apactors.engine.dfs`) may swap two adjacent steps of different
processes only if they are *independent*: neither can enable or disable the other and both orders
give the same state.  A step's *footprint* is the set of shared resources it reads and writes:

* a lock instance (``L:<class>@<instance>``): every Acquire/Release of it writes it (the holders and
  the waiters change, and with them whether other acquisitions are enabled);
* a field of an object (``O:<object>.<field>``): Read reads it, Write/Update write it; every field
  access also reads the whole object's liveness (``X:<object>`` of the object and of its owner, which
  Alloc/Free write);
* a wait queue (``W:<name>``), written by every wait-queue operation;
* ``SPAWN`` for queue_work (which may create a worker process and name it);
* a wait node (``N:<node>``) for the wait-dependency annotations of :mod:`apactors.model.waitdep_ops`;
* *everything*, read, for ``Block`` (its condition may read any state);
* for an AP instruction: the machine's configuration fields, read, and the hardware state of its
  APQN (``HW:<apqn>``), written (the machine model keeps per-queue state only);
* *everything*, read and written, for any operation this module does not know (conservative).

A step's footprint is that of the operation it performs, plus the inline operations the path runs
before its next scheduling point, plus the *arrival* effect of the operation it stops at (a blocking
acquisition of a fair rw_semaphore takes its place in the queue when it is yielded; a
synchronize_srcu snapshots the open read sections).  A step that starts a scenario operation, or that
performs only local work (``Sleep``, ``Note``), has an empty footprint and is independent of all.

Object and lock names are their printable names, stable across re-executions of a schedule; two
distinct objects with the same name share a resource, which is conservative.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from apactors.engine.process import Marker
from apactors.model import ops as O
from apactors.model.locks import RWSEM


class Footprint:
    """The shared resources one step reads and writes (immutable)."""

    __slots__ = ("reads", "writes", "read_all", "write_all")

    def __init__(self, reads: Iterable[str] = (), writes: Iterable[str] = (), read_all: bool = False,
                 write_all: bool = False) -> None:
        self.reads = frozenset(reads)
        self.writes = frozenset(writes)
        self.read_all = read_all
        self.write_all = write_all

    @property
    def empty(self) -> bool:
        return not (self.reads or self.writes or self.read_all or self.write_all)

    def union(self, other: "Footprint") -> "Footprint":
        if other.empty:
            return self
        if self.empty:
            return other
        return Footprint(self.reads | other.reads, self.writes | other.writes, self.read_all or other.read_all,
                         self.write_all or other.write_all)

    def to_json(self) -> dict[str, Any]:
        return {"reads": sorted(self.reads), "writes": sorted(self.writes), "read_all": self.read_all,
                "write_all": self.write_all}

    def __repr__(self) -> str:
        flags = ("R*" if self.read_all else "") + ("W*" if self.write_all else "")
        return f"<fp r={sorted(self.reads)} w={sorted(self.writes)} {flags}>"


EMPTY = Footprint()
EVERYTHING = Footprint(read_all=True, write_all=True)


def dependent(a: Footprint, b: Footprint) -> bool:
    """May the two steps not commute?  (Symmetric; conservative.)"""
    if a.empty or b.empty:
        return False
    if a.write_all or b.write_all:
        return True
    if a.read_all and b.writes:
        return True
    if b.read_all and a.writes:
        return True
    aw, bw = a.writes, b.writes
    return not (aw.isdisjoint(bw) and aw.isdisjoint(b.reads) and bw.isdisjoint(a.reads))


def _lock(lock: Any) -> str:
    return "L:" + lock.label()


def _whole(obj: Any) -> str:
    return "X:" + obj.vname


def _field_access(obj: Any, field: str, write: bool) -> Footprint:
    if obj is None:  # a NULL dereference: the step crashes and touches nothing shared
        return EMPTY
    reads = {_whole(obj)}
    owner = getattr(obj, "owner", None)
    if owner is not None and owner is not obj:
        reads.add(_whole(owner))
    key = f"O:{obj.vname}.{field}"
    if write:
        return Footprint(reads, (key,))
    reads.add(key)
    return Footprint(reads)


def _acquire(op: Any) -> Footprint:
    reads: tuple[str, ...] = ()
    owner = op.owner
    if owner is not None:
        reads = (_whole(owner.owner),)
    return Footprint(reads, (_lock(op.lock),))


def _lifetime(op: Any) -> Footprint:
    return Footprint(writes=(_whole(op.obj),)) if op.obj is not None else EMPTY


def _wq(op: Any) -> Footprint:
    return Footprint(writes=("W:" + op.wq.name,))


def _work(op: Any) -> Footprint:
    return Footprint(writes=(_whole(op.item),))


#: the machine fields an AP instruction reads (the hmc operations write the configuration ones)
_MACHINE_READS = tuple(f"O:machine(ap).{f}" for f in (
    "apm", "aqm", "adm", "adapter_state", "faults", "types", "reset_delays", "irq_clear_delays")) + ("X:machine(ap)",)


def _insn(op: Any) -> Footprint:
    """An AP instruction (:mod:`apactors.model.hardware`) reads the machine's configuration and
    changes the hardware state of its own APQN only (QCI changes nothing)."""
    if op.name == "QCI":
        return Footprint(_MACHINE_READS)
    return Footprint(_MACHINE_READS, (f"HW:{op.apqn}",))


_NOTHING: Callable[[Any], Footprint] = lambda op: EMPTY

_BY_CLASS: dict[type, Callable[[Any], Footprint]] = {
    O.Acquire: _acquire,
    O.Release: lambda op: Footprint(writes=(_lock(op.lock),)),
    O.Read: lambda op: _field_access(op.obj, op.field, False),
    O.Write: lambda op: _field_access(op.obj, op.field, True),
    O.Update: lambda op: _field_access(op.obj, op.field, True),
    O.Alloc: _lifetime,
    O.Free: _lifetime,
    O.Block: lambda op: Footprint(read_all=True),
    O.Sleep: _NOTHING,
    O.Note: _NOTHING,
    O.NullDeref: _NOTHING,
    O.PrepareWait: _wq,
    O.WaitWoken: _wq,
    O.FinishWait: _wq,
    O.WakeAll: _wq,
    O.SynchronizeSrcu: lambda op: Footprint(writes=(_lock(op.srcu),)),
    O.Insn: _insn,
    O.QueueWork: lambda op: Footprint(writes=(_whole(op.item), "SPAWN")),
    O.StartWork: _work,
    O.EndWork: _work,
}


def _register_annotations() -> None:
    """Wait-dependency annotations (inline, no modelled state) touch their wait node only: a checker
    follows who holds it, so two annotations on one node do not commute."""
    try:
        from apactors.model import waitdep_ops as W
    except ImportError:  # pragma: no cover - older model without the annotations
        return
    node = lambda op: Footprint(writes=("N:" + op.node.label(),))  # noqa: E731
    for cls in (W.WaitDepAcquire, W.WaitDepRelease, W.WaitDepWait):
        _BY_CLASS[cls] = node


_register_annotations()


def op_footprint(op: Any) -> Footprint:
    """The footprint of performing ``op`` (None, an engine marker or an unknown op: see module doc)."""
    if op is None:
        return EMPTY
    fn = _BY_CLASS.get(op.__class__)
    if fn is not None:
        return fn(op)
    if op.__class__ is Marker:  # BEGIN / END / CRASH of the event stream
        return EMPTY
    return EVERYTHING


def arrival_footprint(op: Any) -> Footprint:
    """What yielding ``op`` (becoming the pending operation) does to shared state."""
    cls = op.__class__
    if cls is O.Acquire:
        if not op.try_ and op.lock.kind == RWSEM:
            return Footprint(writes=(_lock(op.lock),))  # queues behind/ahead of the other waiters
        return EMPTY
    if cls is O.SynchronizeSrcu:
        return Footprint(reads=(_lock(op.srcu),))  # snapshots the read sections open now
    return EMPTY


def step_footprint(performed: Any, events: Iterable[tuple], next_pending: Any) -> Footprint:
    """The footprint of one step: the op it performed, the ops among its ``events`` (inline ops, a
    crashing op), and the arrival of ``next_pending``."""
    fp = op_footprint(performed)
    for ev in events:
        op = ev[3]
        if op is performed:
            continue
        if op.__class__ is Marker:
            if op.code == "crash":
                fp = fp.union(op_footprint(ev[5]))
            continue
        fp = fp.union(op_footprint(op))
    if next_pending is not None:
        fp = fp.union(arrival_footprint(next_pending))
    return fp


__all__ = ["EMPTY", "EVERYTHING", "Footprint", "arrival_footprint", "dependent", "op_footprint",
           "step_footprint"]
