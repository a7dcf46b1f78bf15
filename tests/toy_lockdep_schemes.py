"""Small purpose-built schemes for the lockdep, waitdep and witness tests (never registered in the package).

Every scheme here runs admin actors; the operation ``assign-adapter m0 N`` runs the scheme's path
number ``N`` (``PATHS[N]``), so a scenario states exactly which lock orders race.  The locks are
real world locks where the domain has them (``&matrix_dev->guests_lock``, ``&kvm->lock``) and toy
classes (``&toy->a``...) otherwise.
"""

from __future__ import annotations

from typing import Any

from apactors.model.locks import READ, RECURSIVE_READ, Mutex, RwSem, Srcu, WaitQueue
from apactors.model.ops import (Acquire, Block, Cond, FinishWait, PrepareWait, Read, Release, SynchronizeSrcu,
                                WaitWoken, WakeAll, Write)
from apactors.model.schemes.base import Scheme, path
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait, WaitNode
from apactors.model.world import KObject
from apactors.scenario import scenario_from_dict


class ToyFlag(KObject):
    """An open-coded busy flag (``kvm_busy``)."""

    __slots__ = ("busy",)
    kind = "flag"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.busy = False


class _Base(Scheme):
    kernel = "test only"
    family = "test"
    PATHS: dict[int, str] = {}

    def __init__(self, world: Any) -> None:
        super().__init__(world)
        self.a = Mutex("&toy->a", "t0")
        self.b = Mutex("&toy->b", "t0")
        self.c = Mutex("&toy->c", "t0")

    def setup(self, k: Any, scenario: Any):
        return None
        yield

    def operation(self, k: Any, actor: Any, op: Any):
        return (yield from getattr(self, self.PATHS[op.ident])(k))

    def _locked(self, *locks: Any, modes: tuple[str, ...] = ()):
        """Take ``locks`` in order (modes default to write), touch the mdev counter, release in reverse."""
        w = self.w
        modes = modes or ("w",) * len(locks)
        for lk, m in zip(locks, modes):
            yield Acquire(lk, m)
        v = yield Read(w.matrix_dev, "available_instances")
        yield Write(w.matrix_dev, "available_instances", v)
        for lk, m in reversed(list(zip(locks, modes))):
            yield Release(lk, m)
        return 0


class ToyChain3(_Base):
    """Three actors, three locks: a -> b, b -> c, c -> a (a cycle no pair of actors shows)."""

    id = "test-chain3"
    description = "test-only three-lock chain"
    PATHS = {1: "take_a_then_b", 2: "take_b_then_c", 3: "take_c_then_a"}

    @path
    def take_a_then_b(self, k: Any):
        return (yield from self._locked(self.a, self.b))

    @path
    def take_b_then_c(self, k: Any):
        return (yield from self._locked(self.b, self.c))

    @path
    def take_c_then_a(self, k: Any):
        return (yield from self._locked(self.c, self.a))


class ToyNested(_Base):
    """Two VMs' ``&kvm->lock`` nested: plainly (recursive locking) or with subclass 1 (fine)."""

    id = "test-nested"
    description = "test-only nesting of two &kvm->lock instances"
    PATHS = {1: "lock_two_vms", 2: "lock_two_vms_reversed", 3: "lock_two_vms_nested", 4: "lock_vm_then_a",
             5: "lock_a_then_other_vm"}

    @path
    def lock_two_vms(self, k: Any):
        return (yield from self._locked(self.w.vm("g0").lock, self.w.vm("g1").lock))

    @path
    def lock_two_vms_reversed(self, k: Any):
        return (yield from self._locked(self.w.vm("g1").lock, self.w.vm("g0").lock))

    @path
    def lock_two_vms_nested(self, k: Any):
        w = self.w
        yield Acquire(w.vm("g0").lock)
        yield Acquire(w.vm("g1").lock, subclass=1)  # mutex_lock_nested(&kvm->lock, SINGLE_DEPTH_NESTING)
        yield Release(w.vm("g1").lock)
        yield Release(w.vm("g0").lock)
        return 0

    @path
    def lock_vm_then_a(self, k: Any):
        return (yield from self._locked(self.w.vm("g0").lock, self.a))

    @path
    def lock_a_then_other_vm(self, k: Any):
        """a -> &kvm->lock closes a class cycle with lock_vm_then_a, but on the other VM's instance."""
        return (yield from self._locked(self.a, self.w.vm("g1").lock))


class ToySelf(_Base):
    """One path takes the same mutex twice: an actual self-deadlock, and a recursive-locking report."""

    id = "test-self"
    description = "test-only: mutex_lock twice on the same mutex"
    PATHS = {1: "lock_twice"}

    @path
    def lock_twice(self, k: Any):
        yield Acquire(self.a)
        yield Acquire(self.a)
        yield Release(self.a)
        yield Release(self.a)
        return 0


class ToyTrylock(_Base):
    """a -> trylock(b) against b -> a: no edge into b, no report.  trylock(b) -> c against c -> b: a cycle."""

    id = "test-trylock"
    description = "test-only trylock rules"
    PATHS = {1: "lock_a_trylock_b", 2: "lock_b_then_a", 3: "trylock_b_then_c", 4: "lock_c_then_b"}

    @path
    def lock_a_trylock_b(self, k: Any):
        yield Acquire(self.a)
        ok = yield Acquire(self.b, try_=True)
        if ok:
            yield Release(self.b)
        yield Release(self.a)
        return 0 if ok else -16

    @path
    def lock_b_then_a(self, k: Any):
        return (yield from self._locked(self.b, self.a))

    @path
    def trylock_b_then_c(self, k: Any):
        ok = yield Acquire(self.b, try_=True)
        if not ok:
            return -16
        yield Acquire(self.c)
        yield Release(self.c)
        yield Release(self.b)
        return 0

    @path
    def lock_c_then_b(self, k: Any):
        return (yield from self._locked(self.c, self.b))


class ToyReaders(_Base):
    """A reader-side lock ``&toy->sem`` against the mutex a: readers in both orders, plus a writer.

    ``reader_then_a``: down_read(sem); lock(a).  ``a_then_reader``: lock(a); down_read(sem).
    ``writer``: down_write(sem).  With a fair rw_semaphore the second reader can queue behind the
    writer: a real deadlock that lockdep reports.  ``ToySrcuReaders`` uses SRCU read sections instead
    (recursive readers, never blocked by a waiting writer): no cycle.
    """

    id = "test-rwsem"
    description = "test-only fair rw_semaphore readers vs a mutex"
    PATHS = {1: "reader_then_a", 2: "a_then_reader", 3: "writer"}
    READER = READ

    def __init__(self, world: Any) -> None:
        super().__init__(world)
        self.sem = RwSem("&toy->sem", "t0")

    @path
    def reader_then_a(self, k: Any):
        return (yield from self._locked(self.sem, self.a, modes=(self.READER, "w")))

    @path
    def a_then_reader(self, k: Any):
        return (yield from self._locked(self.a, self.sem, modes=("w", self.READER)))

    @path
    def writer(self, k: Any):
        return (yield from self._locked(self.sem))


class ToySrcuReaders(ToyReaders):
    """As :class:`ToyReaders` with an SRCU domain: srcu_read_lock (recursive reader) and synchronize_srcu."""

    id = "test-srcu"
    description = "test-only SRCU readers vs a mutex"
    READER = RECURSIVE_READ

    def __init__(self, world: Any) -> None:
        super().__init__(world)
        self.sem = Srcu("&toy->srcu", "t0")

    @path
    def writer(self, k: Any):
        yield SynchronizeSrcu(self.sem)
        return 0


class ToySrcuSync(ToySrcuReaders):
    """synchronize_srcu under the mutex a, against a reader that takes a: a cycle only waitdep sees."""

    id = "test-srcu-sync"
    description = "test-only synchronize_srcu under a lock its readers take"
    PATHS = {1: "reader_then_a", 2: "sync_under_a"}

    @path
    def sync_under_a(self, k: Any):
        yield Acquire(self.a)
        yield SynchronizeSrcu(self.sem)
        yield Release(self.a)
        return 0


class ToyNoValidate(_Base):
    """&dev->mutex (no-validate class) in both orders with a: listed as held, never in a cycle."""

    id = "test-novalidate"
    description = "test-only no-validate class"
    PATHS = {1: "dev_then_a", 2: "a_then_dev"}

    def __init__(self, world: Any) -> None:
        super().__init__(world)
        self.dev = Mutex("&dev->mutex", "03.0005", validate=False)

    @path
    def dev_then_a(self, k: Any):
        return (yield from self._locked(self.dev, self.a))

    @path
    def a_then_dev(self, k: Any):
        return (yield from self._locked(self.a, self.dev))


class ToyBusyFlag(_Base):
    """An open-coded lock (``kvm_busy`` + ``wait_for_kvm``) that lockdep cannot see.

    ``set_busy``: set the flag, take a, drop a, clear the flag, wake the waiters (v5.12's set_kvm shape).
    ``wait_busy``: take a and wait, *holding a*, until the flag is clear: a cycle busy -> a -> busy.
    ``wait_busy_dropping``: the same wait with a dropped while sleeping (wait_event_cmd): no cycle.
    """

    id = "test-busy"
    description = "test-only open-coded busy flag and wait queue"
    PATHS = {1: "set_busy", 2: "wait_busy", 3: "wait_busy_dropping"}

    def __init__(self, world: Any) -> None:
        super().__init__(world)
        self.flag = ToyFlag("m0")
        self.wq = WaitQueue("m0.wait_for_kvm")
        self.node = WaitNode("(wait)&matrix_mdev->kvm_busy", "m0", "kvm_busy cleared")

    @path
    def set_busy(self, k: Any):
        yield WaitDepAcquire(self.node)
        yield Write(self.flag, "busy", True)
        yield Acquire(self.a)
        yield Release(self.a)
        yield Write(self.flag, "busy", False)
        yield WaitDepRelease(self.node)
        yield WakeAll(self.wq)
        return 0

    @path
    def wait_busy(self, k: Any):
        yield Acquire(self.a)
        yield from self._wait_not_busy(k, drop=None)
        yield Release(self.a)
        return 0

    @path
    def wait_busy_dropping(self, k: Any):
        yield Acquire(self.a)
        yield from self._wait_not_busy(k, drop=self.a)
        yield Release(self.a)
        return 0

    def _wait_not_busy(self, k: Any, drop: Any):
        """wait_event_cmd(wait_for_kvm, !kvm_busy, [unlock drop], [lock drop])"""
        while True:
            yield WaitDepWait(self.node, drop=(drop,) if drop is not None else ())
            yield PrepareWait(self.wq)
            busy = yield Read(self.flag, "busy")
            if not busy:
                break
            if drop is not None:
                yield Release(drop)
            yield WaitWoken(self.wq)
            if drop is not None:
                yield Acquire(drop)
        yield FinishWait(self.wq)


class _Closed(Cond):
    """The device is no longer open (a Cond with a waitdep node)."""

    __slots__ = ("flag", "node")
    what = "the last close of mdev m0"

    def __init__(self, flag: ToyFlag, node: WaitNode) -> None:
        self.flag = flag
        self.node = node

    def ready(self, k: Any) -> bool:
        return not self.flag.busy


class ToyClose(ToyBusyFlag):
    """remove waits (Block) for the device close while holding a; the close path takes a."""

    id = "test-close"
    description = "test-only: waiting for a device close under a lock the close path takes"
    PATHS = {1: "open_and_close", 2: "remove"}

    def __init__(self, world: Any) -> None:
        super().__init__(world)
        self.flag.busy = True  # the device starts open
        self.node = WaitNode("(close)&vdev->device", "m0", "the last close")

    @path
    def open_and_close(self, k: Any):
        yield WaitDepAcquire(self.node)  # the device is open: its closing is pending on this task
        yield Acquire(self.a)
        yield Release(self.a)
        yield Write(self.flag, "busy", False)
        yield WaitDepRelease(self.node)
        return 0

    @path
    def remove(self, k: Any):
        yield Acquire(self.a)
        yield Block(_Closed(self.flag, self.node))  # vfio_unregister_group_dev
        yield Release(self.a)
        return 0


ALL = (ToyChain3, ToyNested, ToySelf, ToyTrylock, ToyReaders, ToySrcuReaders, ToySrcuSync, ToyNoValidate,
       ToyBusyFlag, ToyClose)


def admins(*paths: int | tuple[int, ...], repeat: int = 1, guests: int = 0) -> Any:
    """One admin actor per argument, running ``assign-adapter m0 N`` for each path number N it lists."""
    actors = []
    for i, ps in enumerate(paths):
        ps = ps if isinstance(ps, tuple) else (ps,)
        actors.append({"kind": "admin", "name": f"admin{i}", "ops": [f"assign-adapter m0 {n}" for n in ps],
                       "repeat": repeat})
    return scenario_from_dict({
        "name": "toy-lockdep",
        "description": "admins running toy lockdep paths",
        "host": {"adapters": [1, 2, 3, 4], "domains": [5], "control_domains": []},
        "guest": [{"name": f"g{i}", "vcpus": 1} for i in range(guests)],
        "mdev": [{"name": "m0", "adapters": [], "domains": [], "control_domains": []}],
        "actor": actors,
    }, "tests/toy_lockdep_schemes.py")
