"""Small purpose-built schemes for the race, stale-read and lifetime checkers (never registered in the
package).

Each scheme maps a few admin verbs to tiny code paths on the real world objects (an mdev ``m0`` made by
``setup``, the guest ``g0`` of the scenario), so a test says exactly which accesses, locks, waits and
work items it exercises.  The verbs carry no meaning here beyond naming an operation.
"""

from __future__ import annotations

from typing import Any

from apactors.model.masks import Mask
from apactors.model.ops import (Acquire, Block, Cond, FinishWait, Free, PrepareWait, QueueWork, Read, Release,
                                WaitWoken, WakeAll, Write)
from apactors.model.paths.common import WorkDone
from apactors.model.schemes.base import Scheme, path
from apactors.model.world import MatrixMdev, VfioApQueue, WorkItem
from apactors.scenario import scenario_from_dict

M3 = Mask.of([3])
M4 = Mask.of([4])


class ToyBase(Scheme):
    """Routes the admin verbs to methods; makes mdev m0, a queue object 03.0005 linked to it, and a
    wait queue."""

    kernel = "test only"
    family = "test"
    ROUTES: dict[str, str] = {}

    def setup(self, k: Any, scenario: Any):
        w = self.w
        m = MatrixMdev("m0")
        w.mdevs["m0"] = m
        w.matrix_dev.mdev_list = (m,)
        q = VfioApQueue(0x0305, 0)
        q.matrix_mdev = m
        m.qtable = {0x0305: q}
        q.reset_work = WorkItem("03.0005", q, self.work_fn, (q,))
        self.q = q
        return None
        yield

    def operation(self, k: Any, actor: Any, op: Any):
        name = self.ROUTES.get(op.verb)
        if name is None:
            return 0
        return (yield from getattr(self, name)(k))

    @property
    def m0(self) -> MatrixMdev:
        return self.w.mdevs["m0"]

    @property
    def g0(self) -> Any:
        return self.w.vms["g0"]

    def work_fn(self, k: Any, q: Any):
        return None
        yield


# --------------------------------------------------------------------------- races: locks

class ToyUnlockedWriter(ToyBase):
    """assign writes the matrix under mdevs_lock; unassign reads it with no lock: a race."""

    id = "test-race-unlocked"
    ROUTES = {"assign-adapter": "locked_store", "unassign-adapter": "unlocked_show"}

    @path("assign_adapter_store")
    def locked_store(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        yield Write(self.m0.matrix, "apm", M3)
        yield Release(w.mdevs_lock)
        return 0

    @path("matrix_show")
    def unlocked_show(self, k: Any):
        return (yield Read(self.m0.matrix, "apm"))


class ToyCommonLock(ToyUnlockedWriter):
    """Both paths take mdevs_lock: never a race."""

    id = "test-race-locked"

    @path("matrix_show")
    def unlocked_show(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        v = yield Read(self.m0.matrix, "apm")
        yield Release(w.mdevs_lock)
        return v


class ToyDifferentLocks(ToyUnlockedWriter):
    """The reader takes guests_lock, the writer mdevs_lock: a race (no common lock)."""

    id = "test-race-different-locks"

    @path("matrix_show")
    def unlocked_show(self, k: Any):
        w = self.w
        yield Acquire(w.guests_lock)
        v = yield Read(self.m0.matrix, "apm")
        yield Release(w.guests_lock)
        return v


class ToyHookRwsem(ToyBase):
    """Two writers of the pqap_hook under pqap_hook_rwsem: one in write mode (correct), the other in
    read mode (``writer_mode``): two read-mode holders do not exclude each other."""

    id = "test-race-rwsem"
    ROUTES = {"assign-adapter": "set_hook", "unassign-adapter": "clear_hook"}
    writer_mode = "r"

    @path("vfio_ap_mdev_set_kvm")
    def set_hook(self, k: Any):
        vm = self.g0
        yield Acquire(vm.pqap_hook_rwsem, self.writer_mode)
        yield Write(vm, "pqap_hook", self.m0)
        yield Release(vm.pqap_hook_rwsem, self.writer_mode)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def clear_hook(self, k: Any):
        vm = self.g0
        yield Acquire(vm.pqap_hook_rwsem, self.writer_mode)
        yield Write(vm, "pqap_hook", None)
        yield Release(vm.pqap_hook_rwsem, self.writer_mode)
        return 0


class ToyHookRwsemWrite(ToyHookRwsem):
    id = "test-race-rwsem-w"
    writer_mode = "w"


# --------------------------------------------------------------------------- races: wait queues

class _Sleeping(Cond):
    """The waker waits (invisibly, no happens-before) until the sleeper is on the wait queue."""

    __slots__ = ("wq", "who")
    what = "sleeper on the wait queue"

    def __init__(self, wq: Any, who: str) -> None:
        self.wq = wq
        self.who = who

    def ready(self, k: Any) -> bool:
        return self.wq.sleepers.get(self.who) is False


class ToyWaitQueue(ToyBase):
    """The waker writes the shadow with no lock, then wakes the sleeper, which reads it with no lock:
    ordered by the wait queue only.  ``write_after_wake`` moves the write after the wake-up (a race)."""

    id = "test-race-waitqueue"
    ROUTES = {"assign-adapter": "waker", "unassign-adapter": "sleeper"}
    write_after_wake = False

    @path("vfio_ap_mdev_unset_kvm")
    def waker(self, k: Any):
        m = self.m0
        if not self.write_after_wake:
            yield Write(m.shadow_apcb, "apm", M4)
        yield Block(_Sleeping(m.wait_for_kvm, "admin#1"))
        yield WakeAll(m.wait_for_kvm)
        if self.write_after_wake:
            yield Write(m.shadow_apcb, "apm", M4)
        return 0

    @path("vfio_ap_mdev_reset_ioctl")
    def sleeper(self, k: Any):
        m = self.m0
        yield PrepareWait(m.wait_for_kvm)
        yield WaitWoken(m.wait_for_kvm)
        yield FinishWait(m.wait_for_kvm)
        return (yield Read(m.shadow_apcb, "apm"))


class ToyWaitQueueLate(ToyWaitQueue):
    id = "test-race-waitqueue-late"
    write_after_wake = True


# --------------------------------------------------------------------------- races: work items

class ToyWork(ToyBase):
    """reset writes q->saved_isc with no lock and queues the reset work, whose worker writes it too
    (the fork orders them); then flushes the work and reads it (the flush orders that).
    ``touch_after_queue``: write it again right after queueing, before the flush (a race with the worker).
    """

    id = "test-race-work"
    ROUTES = {"assign-adapter": "reset_queue"}
    touch_after_queue = False

    @path("vfio_ap_mdev_reset_queue")
    def reset_queue(self, k: Any):
        q = self.q
        yield Write(q, "saved_isc", 3)
        yield QueueWork(q.reset_work)
        if self.touch_after_queue:
            yield Write(q, "saved_isc", 4)
        yield Block(WorkDone(q.reset_work))
        return (yield Read(q, "saved_isc"))

    @path("apq_reset_check")
    def work_fn(self, k: Any, q: Any):
        isc = yield Read(q, "saved_isc")
        yield Write(q, "saved_isc", 0xFF)
        return isc


class ToyWorkRace(ToyWork):
    id = "test-race-work-touch"
    touch_after_queue = True


# --------------------------------------------------------------------------- stale reads

class ToyStaleKvm(ToyBase):
    """The store tests ``matrix_mdev->kvm`` with no lock and then changes the matrix under mdevs_lock
    (v5.10's unlocked busy test); the open sets ``kvm`` under mdevs_lock.  ``check_under_lock``: the test
    is made inside the same critical section as the write (correct)."""

    id = "test-stale-kvm"
    ROUTES = {"assign-adapter": "assign_adapter_store", "unassign-adapter": "set_kvm"}
    check_under_lock = False

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any):
        w = self.w
        m = self.m0
        if not self.check_under_lock:
            kvm = yield Read(m, "kvm")
            if kvm is not None:
                return -16
            yield Acquire(w.mdevs_lock)
        else:
            yield Acquire(w.mdevs_lock)
            kvm = yield Read(m, "kvm")
            if kvm is not None:
                yield Release(w.mdevs_lock)
                return -16
        yield Write(m.matrix, "apm", M3)
        yield Release(w.mdevs_lock)
        return 0

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        yield Write(self.m0, "kvm", self.g0)
        yield Release(w.mdevs_lock)
        return 0


class ToyStaleKvmLocked(ToyStaleKvm):
    id = "test-stale-kvm-locked"
    check_under_lock = True


class ToyStaleHook(ToyBase):
    """KVM reads the pqap_hook with no lock and then calls through it (reads the mdev's handler field),
    while the close clears the hook (K-A before v5.15)."""

    id = "test-stale-hook"
    ROUTES = {"assign-adapter": "handle_pqap", "unassign-adapter": "unset_kvm"}

    def setup(self, k: Any, scenario: Any):
        yield from super().setup(k, scenario)
        self.g0.pqap_hook = self.m0
        self.m0.pqap_hook = "vfio_ap_handle_pqap"

    @path("handle_pqap")
    def handle_pqap(self, k: Any):
        vm = self.g0
        h = yield Read(vm, "pqap_hook")
        if h is None:
            return -95
        fn = yield Read(h, "pqap_hook")
        return 0 if fn else -1

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any):
        yield Write(self.g0, "pqap_hook", None)
        return 0


# --------------------------------------------------------------------------- lifetimes (crash reports)

class ToyUseAfterFree(ToyStaleHook):
    """The remove frees the mdev (the hook still points at it); KVM then calls through the hook."""

    id = "test-crash-uaf"
    ROUTES = {"assign-adapter": "handle_pqap", "unassign-adapter": "mdev_remove"}

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any):
        yield Free(self.m0)
        return 0


class ToyNullKvm(ToyBase):
    """unset_kvm clears ``matrix_mdev->kvm``; the reset reads it and locks the VM's lock through it."""

    id = "test-crash-null"
    ROUTES = {"assign-adapter": "reset", "unassign-adapter": "unset_kvm"}

    def setup(self, k: Any, scenario: Any):
        yield from super().setup(k, scenario)
        self.m0.kvm = self.g0

    @path("vfio_ap_mdev_reset_ioctl")
    def reset(self, k: Any):
        from apactors.model.ops import acquire_via

        kvm = yield Read(self.m0, "kvm")
        yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
        yield Release(kvm.lock)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any):
        yield Write(self.m0, "kvm", None)
        return 0


class ToyStaleKvmAba(ToyStaleKvm):
    """The open sets ``kvm`` and clears it again before the store acts: the decision holds again."""

    id = "test-stale-aba"

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        yield Write(self.m0, "kvm", self.g0)
        yield Write(self.m0, "kvm", None)
        yield Release(w.mdevs_lock)
        return 0


class ToyStaleScope(ToyStaleKvm):
    """The store tests ``kvm`` in a helper whose caller returns before the store writes the matrix in
    another helper: the write does not act on that test (it is out of scope)."""

    id = "test-stale-scope"

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any):
        yield from self.busy_check(k)
        return (yield from self.do_assign(k))

    @path("vfio_ap_mdev_busy_check")
    def busy_check(self, k: Any):
        return (yield from self.read_kvm(k))

    @path("vfio_ap_mdev_read_kvm")
    def read_kvm(self, k: Any):
        return (yield Read(self.m0, "kvm"))

    @path("vfio_ap_mdev_do_assign")
    def do_assign(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        yield Write(self.m0.matrix, "apm", M3)
        yield Release(w.mdevs_lock)
        return 0


class ToyTwoWorkers(ToyBase):
    """Two work items of two queues both write ``matrix_mdev->kvm_busy`` with no vfio_ap lock: their
    workers hold the workqueue's lockdep map, which excludes nobody, so this is a race."""

    id = "test-race-two-workers"
    ROUTES = {"assign-adapter": "queue_both"}

    def setup(self, k: Any, scenario: Any):
        yield from super().setup(k, scenario)
        q2 = VfioApQueue(0x0306, 0)
        q2.reset_work = WorkItem("03.0006", q2, self.work_fn, (q2,))
        self.q2 = q2

    @path("vfio_ap_mdev_reset_queues")
    def queue_both(self, k: Any):
        yield QueueWork(self.q.reset_work)
        yield QueueWork(self.q2.reset_work)
        return 0

    @path("apq_reset_check")
    def work_fn(self, k: Any, q: Any):
        yield Write(self.m0, "kvm_busy", True)


TOY_SCHEMES = (ToyUnlockedWriter, ToyCommonLock, ToyDifferentLocks, ToyHookRwsem, ToyHookRwsemWrite,
               ToyWaitQueue, ToyWaitQueueLate, ToyWork, ToyWorkRace, ToyStaleKvm, ToyStaleKvmLocked,
               ToyStaleHook, ToyUseAfterFree, ToyNullKvm, ToyStaleKvmAba, ToyStaleScope, ToyTwoWorkers)


def two_ops(a: list[str], b: list[str] | None = None) -> Any:
    """A scenario with guest g0, mdev m0 and two admin actors running ``a`` and ``b``."""
    actors = [{"kind": "admin", "ops": a}]
    if b is not None:
        actors.append({"kind": "admin", "ops": b})
    return scenario_from_dict({
        "name": "toy-race",
        "description": "two admins race on toy paths",
        "host": {"adapters": [3], "domains": [5], "control_domains": []},
        "guest": [{"name": "g0", "vcpus": 1}],
        "mdev": [{"name": "m0", "adapters": [], "domains": [], "control_domains": []}],
        "actor": actors,
    }, "tests/toy_race_schemes.py")


PAIR = (["assign-adapter m0 3"], ["unassign-adapter m0 3"])


class Script:
    """A strategy that follows a plan: each entry ``"actor"`` runs that actor's next operation until the
    actor is idle again, ``"actor:N"`` runs N steps of it (its BEGIN counts as one).  Workers run first
    whenever they can (so queued resets finish).  When the planned actor cannot advance, or the plan is
    done, the first enabled actor runs.  Environment choices: 0 (normal answers)."""

    name = "script"
    always_pick = True
    is_driver = False

    def __init__(self, plan: list[str]) -> None:
        self.plan = []
        for e in plan:
            name, _, n = e.rpartition(":")
            self.plan.append((name, int(n)) if n.isdigit() else (e, None))
        self.begin(0)

    def begin(self, seed: int) -> None:
        self.i = 0
        self.started = False
        self.left = 0

    def prepare(self, *a: Any, **kw: Any) -> None:
        pass

    def pick(self, enabled: Any, step: int) -> Any:
        for p in enabled:
            if p.kind == "worker":
                return p
        while self.i < len(self.plan):
            name, n = self.plan[self.i]
            cand = [p for p in enabled if p.name == name]
            if not cand:
                break
            p = cand[0]
            if n is not None:
                if not self.started:
                    self.started, self.left = True, n
                if self.left == 0:
                    self.i += 1
                    self.started = False
                    continue
                self.left -= 1
                return p
            if p.gen is None:
                if self.started:
                    self.i += 1
                    self.started = False
                    continue
                self.started = True
            return p
        return enabled[0]

    def choose(self, n: int, label: str) -> int:
        return 0


# --------------------------------------------------------------------------- `latest` broken on purpose
# Each class below is `latest` with one path changed so that one invariant breaks; the unchanged
# `latest` is the control.  (Imported lazily: `latest` lives in the scheme catalogue.)

def latest_variants() -> dict[str, type]:
    from apactors.model.locks import WRITE
    from apactors.model.schemes import get_scheme

    Latest = get_scheme("latest")

    class NoApcbUpdate(Latest):
        """update_guest_apcb forgets the CRYCB: the guest keeps what it had."""

        id = "test-latest-no-apcb-update"

        @path("vfio_ap_mdev_update_guest_apcb")
        def update_guest_apcb(self, k: Any, mdev: Any):
            yield Read(mdev, "kvm", "matrix_mdev->kvm")

    class NoUnplug(Latest):
        """update_guest_apcb only ever adds to the CRYCB: what leaves the shadow stays in the guest."""

        id = "test-latest-no-unplug"

        @path("vfio_ap_mdev_update_guest_apcb")
        def update_guest_apcb(self, k: Any, mdev: Any):
            from apactors.model.world import ApMatrix

            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if kvm is not None:
                union = ApMatrix(f"{mdev.name}.union", mdev)
                shadow, crycb = mdev.shadow_apcb, kvm.crycb
                union.apm, union.aqm, union.adm = shadow.apm | crycb.apm, shadow.aqm | crycb.aqm, shadow.adm | crycb.adm
                yield from self.set_masks(k, kvm, union)

    class NoInUseVeto(Latest):
        """in_use never vetoes: apmask/aqmask can reserve a queue a guest is using."""

        id = "test-latest-no-in-use"

        @path("vfio_ap_mdev_resource_in_use")
        def in_use(self, k: Any, apm: Any, aqm: Any):
            return 0
            yield

    class NoSharingCheck(Latest):
        """verify_no_sharing always passes: two mdevs can be assigned the same queue."""

        id = "test-latest-no-sharing-check"

        @path("vfio_ap_mdev_verify_no_sharing")
        def verify_no_sharing(self, k: Any, assignee: Any, apm: Any, aqm: Any):
            return 0
            yield

    class HookKept(Latest):
        """unset_kvm forgets to clear the pqap_hook."""

        id = "test-latest-hook-kept"

        @path("vfio_ap_mdev_unset_kvm")
        def unset_kvm(self, k: Any, mdev: Any):
            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if kvm is None:
                return
            yield from self.get_update_locks_for_kvm(k, kvm)
            yield from self.clear_masks(k, kvm)
            yield from self.reset_queues(k, mdev)
            yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
            yield from self.release_update_locks_for_kvm(k, kvm)
            yield from self.kvm_put_kvm(k, kvm)

    class HookFirst(Latest):
        """The v6.0 form of unset_kvm: the hook is cleared under pqap_hook_rwsem alone, before the
        update locks are taken and the CRYCB is cleared."""

        id = "test-latest-hook-first"

        @path("vfio_ap_mdev_unset_kvm")
        def unset_kvm(self, k: Any, mdev: Any):
            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if kvm is None:
                return
            yield Acquire(kvm.pqap_hook_rwsem, WRITE, owner=kvm)
            yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
            yield Release(kvm.pqap_hook_rwsem, WRITE)
            yield from Latest.unset_kvm.__wrapped__(self, k, mdev)

    class NoReset(Latest):
        """reset_queue does nothing: queues leave and re-enter guests without a ZAPQ."""

        id = "test-latest-no-reset"

        @path("vfio_ap_mdev_reset_queue")
        def reset_queue(self, k: Any, q: Any):
            yield Write(q, "reset_status", 0, "q->reset_status")

    return {c.id: c for c in (NoApcbUpdate, NoUnplug, NoInUseVeto, NoSharingCheck, HookKept, HookFirst, NoReset)}
