"""Modelled kernel locks and wait queues, with the kernel's blocking rules.

A lock *instance* belongs to a lockdep *class* (the string lockdep prints, e.g. ``&kvm->lock``); each VM
has its own ``&kvm->lock`` instance of the one class.  Locks only know who holds them and who may take
them next; the engine decides who runs.  Holders and waiters are actor names (strings).

Blocking rules (domain doc §2, §8.4):

* ``Mutex`` (also spinlocks, with ``spin=True``): one holder.
* ``RwSem`` (fair rw_semaphore): a reader enters only if no writer holds it *and no writer that arrived
  earlier is waiting*; a writer enters only if nobody holds it.  ``down_read`` is a non-recursive reader.
* ``RwLock`` (reader-preferring): a reader waits only for a writer *holder*; a writer for everybody.
* ``Srcu``: read sections never block; ``synchronize`` waits for the sections that began before it.
* ``LockdepMap``: the pseudo-locks of work items and workqueues; never block, any number of holders.
* ``WaitQueue``: an open-coded wait (``wait_event_cmd``); a sleeper runs again once woken.
"""

from __future__ import annotations

from typing import Iterable

# Acquisition modes, as lockdep distinguishes them (§8.4).
WRITE = "w"  #: exclusive: mutex, spinlock, down_write, write_lock
READ = "r"  #: non-recursive reader: down_read
RECURSIVE_READ = "R"  #: recursive reader: srcu_read_lock, read_lock of a reader-preferring rwlock

MUTEX = "mutex"
SPINLOCK = "spinlock"
RWSEM = "rwsem"
RWLOCK = "rwlock"
SRCU = "srcu"
LOCKDEP_MAP = "map"


class Lock:
    """Base of all modelled lock instances.

    ``cls`` is the lockdep class name, ``inst`` names the object the lock lives in (``g0``, ``03.0005``,
    ``matrix_dev``), ``validate`` is False for lockdep's no-validate classes (the driver core's
    ``&dev->mutex``): such locks are listed as held but make and receive no dependency edges.
    """

    __slots__ = ("cls", "inst", "validate", "holders")
    kind = MUTEX
    sleeping = True  #: a sleeping lock (mutex, rwsem); spinlocks forbid sleeping while held

    def __init__(self, cls: str, inst: str, validate: bool = True) -> None:
        self.cls = cls
        self.inst = inst
        self.validate = validate
        #: actor name -> mode, in acquisition order (a dict keeps insertion order: deterministic)
        self.holders: dict[str, str] = {}

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def acquire(self, actor: str, mode: str) -> None:
        self.holders[actor] = mode

    def release(self, actor: str) -> bool:
        """Drop ``actor``'s hold; False if it did not hold the lock (a hygiene error)."""
        return self.holders.pop(actor, None) is not None

    def arrive(self, actor: str, mode: str, arrival: int) -> None:
        """Called when an actor starts a blocking acquisition (it waits from now on)."""

    def leave(self, actor: str) -> None:
        """Called when an actor's blocking acquisition is granted."""

    def label(self) -> str:
        return f"{self.cls}@{self.inst}"

    def __repr__(self) -> str:
        return f"<{self.kind} {self.label()} held by {list(self.holders)}>"


class Mutex(Lock):
    """A mutex; with ``spin=True`` a spinlock (same exclusion, but nothing may sleep under it)."""

    __slots__ = ("spin",)

    def __init__(self, cls: str, inst: str, validate: bool = True, spin: bool = False) -> None:
        super().__init__(cls, inst, validate)
        self.spin = spin

    @property
    def kind(self) -> str:  # type: ignore[override]
        return SPINLOCK if self.spin else MUTEX

    @property
    def sleeping(self) -> bool:  # type: ignore[override]
        return not self.spin

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:
        return not self.holders


class RwSem(Lock):
    """A fair rw_semaphore: a waiting writer blocks readers that arrive after it."""

    __slots__ = ("waiting_writers",)
    kind = RWSEM

    def __init__(self, cls: str, inst: str, validate: bool = True) -> None:
        super().__init__(cls, inst, validate)
        self.waiting_writers: dict[str, int] = {}  # actor -> arrival number

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:
        holders = self.holders
        if mode == WRITE:
            return not holders
        for m in holders.values():
            if m == WRITE:
                return False
        for who, when in self.waiting_writers.items():
            if when < arrival and who != actor:
                return False
        return True

    def arrive(self, actor: str, mode: str, arrival: int) -> None:
        if mode == WRITE:
            self.waiting_writers[actor] = arrival

    def leave(self, actor: str) -> None:
        self.waiting_writers.pop(actor, None)


class RwLock(Lock):
    """A reader-preferring rwlock: readers wait only for a writer that holds it (writers may starve)."""

    __slots__ = ()
    kind = RWLOCK

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:
        holders = self.holders
        if mode == WRITE:
            return not holders
        for m in holders.values():
            if m == WRITE:
                return False
        return True

    def acquire(self, actor: str, mode: str) -> None:
        self.holders[actor] = mode


class Srcu(Lock):
    """An SRCU domain.  Read sections (recursive readers) never block.

    ``synchronize`` is modelled by :class:`apactors.model.ops.SynchronizeSrcu`, which snapshots the
    open read sections when it starts and waits until all of them have ended.
    """

    __slots__ = ("sections", "next_section", "depth")
    kind = SRCU
    sleeping = False

    def __init__(self, cls: str, inst: str, validate: bool = True) -> None:
        super().__init__(cls, inst, validate)
        self.sections: dict[int, str] = {}  # open section number -> actor
        self.next_section = 0
        self.depth: dict[str, list[int]] = {}  # actor -> stack of its open section numbers

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:
        return True

    def acquire(self, actor: str, mode: str) -> None:
        n = self.next_section
        self.next_section = n + 1
        self.sections[n] = actor
        self.depth.setdefault(actor, []).append(n)
        self.holders[actor] = mode

    def release(self, actor: str) -> bool:
        stack = self.depth.get(actor)
        if not stack:
            return False
        del self.sections[stack.pop()]
        if not stack:
            del self.depth[actor]
            self.holders.pop(actor, None)
        return True

    def open_sections(self) -> tuple[int, ...]:
        return tuple(self.sections)


class LockdepMap(Lock):
    """A lockdep map (work item or workqueue): 'held' for dependency tracking, never blocks."""

    __slots__ = ()
    kind = LOCKDEP_MAP
    sleeping = False

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:
        return True


class WaitQueue:
    """A wait queue for open-coded waits (``wait_event_cmd``); invisible to lockdep.

    ``prepare`` registers a sleeper, ``wake_all`` marks every registered sleeper woken; a sleeper's
    ``WaitWoken`` op is enabled once it has been woken.  A wake-up between ``prepare`` and the sleep is
    not lost, as in the kernel.
    """

    __slots__ = ("name", "sleepers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sleepers: dict[str, bool] = {}  # actor -> woken

    def prepare(self, actor: str) -> None:
        self.sleepers[actor] = False

    def finish(self, actor: str) -> None:
        self.sleepers.pop(actor, None)

    def woken(self, actor: str) -> bool:
        return self.sleepers.get(actor, True)

    def wake_all(self) -> list[str]:
        woken = [a for a, w in self.sleepers.items() if not w]
        for a in woken:
            self.sleepers[a] = True
        return woken


def held_by(locks: Iterable[Lock], actor: str) -> list[Lock]:
    """The locks of ``locks`` that ``actor`` holds, in the given order."""
    return [lk for lk in locks if actor in lk.holders]
