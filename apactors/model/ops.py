"""The operations a code path yields to the engine.

A code path is a Python generator: each ``yield`` hands one operation to the engine and receives its
result (``kvm = yield Read(mdev, "kvm")``).  Every yielded operation is one atomic step and one
scheduling point (domain doc §0.2 rule 2); code between two yields is local computation only.  The
engine asks ``op.enabled(k)`` whether the step can run now and ``op.perform(k)`` runs it.  Operations
marked ``inline`` (annotations) are recorded but are not scheduling points.

``k`` is the execution context of the running actor (see :class:`ExecContext`): its name, the world,
the arrival number of its pending operation, and the engine hooks for choices and work items.

Operations are immutable records: the engine keeps the op object itself as the payload of the step's
event, so checkers see exactly what was done and traces render it only when they are kept.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from apactors.model.locks import RECURSIVE_READ, WRITE, Lock, Srcu, WaitQueue


class Oops(Exception):
    """A modelled kernel crash in the running task: NULL dereference or freed-object access."""

    def __init__(self, kind: str, expr: str, obj: Any = None) -> None:
        super().__init__(f"{kind}: {expr}")
        self.kind = kind  #: "null-deref" or "use-after-free"
        self.expr = expr
        self.obj = obj


class ExecContext(Protocol):
    """What an operation may use of the actor that performs it (provided by the engine)."""

    name: str
    world: Any
    arrival: int

    def choose(self, n: int, label: str) -> int:
        """An environment choice in ``range(n)``, recorded in the trace and replayed from it."""

    def queue_work(self, item: Any) -> bool:
        """Queue a work item on the modelled workqueue; False if it was already pending."""


def vname(obj: Any) -> str:
    """The printable name of a model object (``mdev(m0)``), used for variables in events."""
    return obj.vname if obj is not None else "NULL"


def _check(obj: Any, field: str, expr: str | None) -> None:
    if obj is None:
        raise Oops("null-deref", expr or f"NULL->{field}")
    if obj.owner.freed:
        raise Oops("use-after-free", expr or f"{obj.vname}.{field}", obj.owner)


class Op:
    """Base of all operations."""

    __slots__ = ()
    inline = False  #: recorded but not a scheduling point
    code = "op"

    def enabled(self, k: ExecContext) -> bool:
        return True

    def perform(self, k: ExecContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class Acquire(Op):
    """``+X`` (mode w), ``+X(r)`` (mode r), srcu_read_lock (mode R); ``try_`` never blocks.

    ``owner`` is the object holding the lock when the lock is reached through a pointer
    (``+mdev->kvm->lock``): taking it dereferences ``owner``, which must be alive.
    """

    __slots__ = ("lock", "mode", "try_", "owner", "subclass")
    code = "acquire"

    def __init__(self, lock: Lock, mode: str = WRITE, try_: bool = False, owner: Any = None,
                 subclass: int = 0) -> None:
        self.lock = lock
        self.mode = mode
        self.try_ = try_
        self.owner = owner
        self.subclass = subclass

    def enabled(self, k: ExecContext) -> bool:
        return self.try_ or self.lock.can_acquire(k.name, self.mode, k.arrival)

    def perform(self, k: ExecContext) -> bool:
        owner = self.owner
        if owner is not None and owner.owner.freed:
            raise Oops("use-after-free", f"{self.lock.cls} of freed {owner.vname}", owner)
        lock = self.lock
        if self.try_ and not lock.can_acquire(k.name, self.mode, k.arrival):
            return False
        lock.leave(k.name)
        lock.acquire(k.name, self.mode)
        return True


class Release(Op):
    """``-X``: release a lock held by this actor (need not be LIFO)."""

    __slots__ = ("lock", "mode")
    code = "release"

    def __init__(self, lock: Lock, mode: str = WRITE) -> None:
        self.lock = lock
        self.mode = mode

    def perform(self, k: ExecContext) -> bool:
        return self.lock.release(k.name)


class NullDeref(Op):
    """A step that dereferences a pointer the path did not test (``+k->lock`` with ``k`` NULL)."""

    __slots__ = ("expr",)
    code = "deref"

    def __init__(self, expr: str) -> None:
        self.expr = expr

    def perform(self, k: ExecContext) -> None:
        raise Oops("null-deref", self.expr)


class Read(Op):
    """``R: obj->field``.  ``expr`` names the pointer for a crash report (``q->matrix_mdev->kvm``)."""

    __slots__ = ("obj", "field", "expr")
    code = "read"

    def __init__(self, obj: Any, field: str, expr: str | None = None) -> None:
        self.obj = obj
        self.field = field
        self.expr = expr

    def perform(self, k: ExecContext) -> Any:
        obj = self.obj
        if obj is None or obj.owner.freed:
            _check(obj, self.field, self.expr)
        return getattr(obj, self.field)


class Write(Op):
    """``W: obj->field := value``."""

    __slots__ = ("obj", "field", "value", "expr")
    code = "write"

    def __init__(self, obj: Any, field: str, value: Any, expr: str | None = None) -> None:
        self.obj = obj
        self.field = field
        self.value = value
        self.expr = expr

    def perform(self, k: ExecContext) -> Any:
        obj = self.obj
        if obj is None or obj.owner.freed:
            _check(obj, self.field, self.expr)
        setattr(obj, self.field, self.value)
        return self.value


class Update(Op):
    """An atomic read-modify-write step (``set_bit``, ``list_add``): ``field := fn(field, arg)``."""

    __slots__ = ("obj", "field", "fn", "arg", "expr")
    code = "update"

    def __init__(self, obj: Any, field: str, fn: Callable[[Any, Any], Any], arg: Any = None,
                 expr: str | None = None) -> None:
        self.obj = obj
        self.field = field
        self.fn = fn
        self.arg = arg
        self.expr = expr

    def perform(self, k: ExecContext) -> Any:
        obj = self.obj
        if obj is None or obj.owner.freed:
            _check(obj, self.field, self.expr)
        new = self.fn(getattr(obj, self.field), self.arg)
        setattr(obj, self.field, new)
        return new


class Alloc(Op):
    """An object comes to life (``kzalloc``); the object is created by the path before the yield."""

    __slots__ = ("obj",)
    code = "alloc"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def perform(self, k: ExecContext) -> Any:
        self.obj.freed = False
        return self.obj


class Free(Op):
    """``kfree``: any later access to the object is a freed-object access."""

    __slots__ = ("obj",)
    code = "free"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def perform(self, k: ExecContext) -> None:
        obj = self.obj
        if obj is None:
            return None
        if obj.freed:
            raise Oops("use-after-free", f"double free of {obj.vname}", obj)
        obj.freed = True
        return None


class Cond:
    """A condition a ``Block`` waits for (device closed, work idle, vCPUs out of SIE, ...)."""

    __slots__ = ()
    what = "condition"

    def ready(self, k: ExecContext) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return self.what

    def blockers(self, k: ExecContext) -> list[str]:
        """Names of the actors that could make the condition true (for deadlock/hang reports)."""
        return []


class Block(Op):
    """``block: …`` / ``spin: …``: wait, without a lock, until ``cond`` holds."""

    __slots__ = ("cond",)
    code = "block"

    def __init__(self, cond: Cond) -> None:
        self.cond = cond

    def enabled(self, k: ExecContext) -> bool:
        return self.cond.ready(k)

    def perform(self, k: ExecContext) -> None:
        return None


class Sleep(Op):
    """``sleep(20ms)``: time passes; held locks stay held."""

    __slots__ = ("ms",)
    code = "sleep"

    def __init__(self, ms: int = 20) -> None:
        self.ms = ms

    def perform(self, k: ExecContext) -> None:
        return None


class PrepareWait(Op):
    """``prepare_to_wait``: register on a wait queue before testing the wait condition."""

    __slots__ = ("wq",)
    code = "prepare-wait"

    def __init__(self, wq: WaitQueue) -> None:
        self.wq = wq

    def perform(self, k: ExecContext) -> None:
        self.wq.prepare(k.name)


class WaitWoken(Op):
    """``schedule()`` inside a wait: blocks until a ``WakeAll`` on the queue woke this actor."""

    __slots__ = ("wq",)
    code = "wait"

    def __init__(self, wq: WaitQueue) -> None:
        self.wq = wq

    def enabled(self, k: ExecContext) -> bool:
        return self.wq.woken(k.name)

    def perform(self, k: ExecContext) -> None:
        self.wq.finish(k.name)


class FinishWait(Op):
    """``finish_wait``: leave the wait queue after the condition held."""

    __slots__ = ("wq",)
    code = "finish-wait"
    inline = True

    def __init__(self, wq: WaitQueue) -> None:
        self.wq = wq

    def perform(self, k: ExecContext) -> None:
        self.wq.finish(k.name)


class WakeAll(Op):
    """``wake_up_all``: wake every sleeper of the queue."""

    __slots__ = ("wq",)
    code = "wake"

    def __init__(self, wq: WaitQueue) -> None:
        self.wq = wq

    def perform(self, k: ExecContext) -> list[str]:
        return self.wq.wake_all()


class SynchronizeSrcu(Op):
    """``synchronize_srcu``: wait until every read section that began before it has ended."""

    __slots__ = ("srcu", "_waiting_for")
    code = "synchronize-srcu"

    def __init__(self, srcu: Srcu) -> None:
        self.srcu = srcu
        self._waiting_for: tuple[int, ...] | None = None

    def enabled(self, k: ExecContext) -> bool:
        if self._waiting_for is None:
            self._waiting_for = self.srcu.open_sections()
        sections = self.srcu.sections
        return not any(s in sections for s in self._waiting_for)

    def perform(self, k: ExecContext) -> None:
        return None


class Insn(Op):
    """An AP instruction executed by the machine model: ``ZAPQ``, ``TAPQ``, ``AQIC``, ``QCI``."""

    __slots__ = ("name", "apqn", "arg")
    code = "insn"

    def __init__(self, name: str, apqn: int = 0, arg: Any = None) -> None:
        self.name = name
        self.apqn = apqn
        self.arg = arg

    def perform(self, k: ExecContext) -> Any:
        return k.world.machine.execute(k, self.name, self.apqn, self.arg)


class QueueWork(Op):
    """``queue_work``: queue a work item on the long workqueue (no-op if already pending)."""

    __slots__ = ("item",)
    code = "queue-work"

    def __init__(self, item: Any) -> None:
        self.item = item

    def perform(self, k: ExecContext) -> bool:
        return k.queue_work(self.item)


class Note(Op):
    """An annotation: a warning, a debug message, a value a path returns.  Not a scheduling point."""

    __slots__ = ("kind", "text")
    code = "note"
    inline = True

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind  #: "warn", "debug", "info"
        self.text = text

    def perform(self, k: ExecContext) -> None:
        return None


def acquire_via(owner: Any, attr: str, expr: str, mode: str = WRITE) -> Op:
    """Lock a lock that lives in the object ``owner`` points to (``+mdev->kvm->lock``).

    A NULL ``owner`` is an oops at that step, as in the kernel.
    """
    if owner is None:
        return NullDeref(expr)
    return Acquire(getattr(owner, attr), mode, owner=owner)


__all__ = [
    "Acquire", "Alloc", "Block", "Cond", "ExecContext", "FinishWait", "Free", "Insn", "Note", "NullDeref",
    "Oops", "Op", "PrepareWait", "QueueWork", "RECURSIVE_READ", "Read", "Release", "Sleep",
    "SynchronizeSrcu", "Update", "WaitWoken", "WakeAll", "Write", "acquire_via", "vname",
]


class StartWork(Op):
    """The worker takes a pending work item (True), or, if none is pending, retires (False).

    One atomic step, so a ``queue_work`` racing with the worker's exit is never lost (§4.4: queueing
    an item while it runs makes it run once more afterwards).
    """

    __slots__ = ("item",)
    code = "start-work"

    def __init__(self, item: Any) -> None:
        self.item = item

    def perform(self, k: ExecContext) -> bool:
        item = self.item
        if item.pending:
            item.pending = False
            item.running = True
            return True
        item.running = False
        item.worker = None
        return False


class EndWork(Op):
    """The work function returned."""

    __slots__ = ("item",)
    code = "end-work"

    def __init__(self, item: Any) -> None:
        self.item = item

    def perform(self, k: ExecContext) -> None:
        self.item.running = False
        self.item.completions += 1  # flush_work waits for the runs queued before it (a barrier)
