"""The five hypothetical alternatives of domain doc §5.12: golden lock sequences written by hand from
§5.12 (on top of `latest`, §5.8, and the alt base) for each alternative's PQAP path, set_kvm/unset_kvm,
a store and queue_remove, and the semantics that distinguish the alternatives (fair vs unfair reader/
writer lock, SRCU grace periods, the user-space PQAP exit)."""

from __future__ import annotations

import random

import pytest

import apactors.model.schemes.alt  # noqa: F401  (registers the alt-* schemes)
from apactors.model import errno
from apactors.model.build import InlineContext, SetupError, build_world, run_inline
from apactors.model.locks import READ, Srcu
from apactors.model.masks import Mask
from apactors.model.ops import (Acquire, Block, Free, PrepareWait, Read, Release, SynchronizeSrcu, Update,
                                WaitWoken, WakeAll, Write)
from apactors.model.paths.alt import FdGet, MdevsRwlock, PqapView
from apactors.model.schemes import get_scheme
from apactors.model.world import NO_ISC
from apactors.scenario import ActorSpec, GuestSpec, HostSpec, MdevSpec, Operation, Scenario
from path_builders import (  # noqa: F401 - shared with the other golden-test files
    ADMIN, ATTR, DEVLOCK, DEVSET, GROUP, GUESTS, HOOK_W, KREF, KVM, MDEVS, QLOCK, VCPU, WORK, mdev, mdev_actor, op, scenario, un,
)

ALT_IDS = ("alt-userspace-pqap", "alt-fair-rwsem", "alt-unfair-rwlock", "alt-srcu", "alt-queue-lock")

HOOK_R = "+&kvm->arch.crypto.pqap_hook_rwsem(r)"
VCPU_M = "+&vcpu->mutex"
KSRCU = "+&kvm->srcu(R)"
RWL = "+&matrix_dev->rwl_mutex"
PSRCU = "+&matrix_dev->pqap_srcu(R)"
SYNC = "sync &matrix_dev->pqap_srcu"
QL = "+&q->lock"


# ----------------------------------------------------------------------------------------- helpers


def pqap_op(apqn: int, enable: bool = True, isc: int = 3, nib: int = 0x1000) -> Operation:
    verb = "pqap-aqic-enable" if enable else "pqap-aqic-disable"
    return Operation(verb, f"{verb} {apqn:04x}", apqn=apqn, isc=isc if enable else None,
                     nib=nib if enable else None)


def lock_steps(record) -> list[str]:
    """Lock steps as the doc writes them; also ``synchronize_srcu`` (a momentary write acquisition)."""
    out = []
    for _stack, o, _res in record:
        if isinstance(o, (Acquire, Release)):
            lk = o.lock
            sign = "+" if isinstance(o, Acquire) else "-"
            if lk.kind == "rwsem":
                suffix = f"({o.mode})"
            elif isinstance(lk, Srcu):
                suffix = "(R)"
            else:
                suffix = ""
            out.append(sign + lk.cls + suffix)
        elif isinstance(o, SynchronizeSrcu):
            out.append("sync " + o.srcu.cls)
    return out


def build(sid: str, sc: Scenario):
    return build_world(get_scheme(sid), sc)


def run_op(world, scheme, actor, operation, record=None):
    k = InlineContext(world, actor.name)
    return run_inline(scheme.operation(k, actor, operation), k, record)


def opened(sid: str, **kw):
    return build(sid, scenario(mdevs=(mdev(open_by="g0", **kw),), actors=(mdev_actor(), VCPU)))


# ----------------------------------------------------------------------------------------- catalogue

def test_catalogue_entries():
    for sid in ALT_IDS:
        cls = get_scheme(sid)
        assert cls.id == sid and cls.base == "latest" and cls.family == "alt"
        assert cls.kernel == "hypothetical (January 2022 discussion of v17 09/15)"
        assert cls.description and "\n" not in cls.description
        assert "Alt base" in cls.notes and sid in cls.notes


def test_update_locks_per_section_9():
    sc = scenario(guests=("g0", "g1"))
    for sid, d in (("alt-userspace-pqap", "&matrix_dev->mdevs_lock"), ("alt-srcu", "&matrix_dev->mdevs_lock"),
                   ("alt-queue-lock", "&matrix_dev->mdevs_lock"), ("alt-fair-rwsem", "&matrix_dev->mdevs_rwsem")):
        w, s = build(sid, sc)
        assert [lk.cls for lk in s.update_locks()] == ["&matrix_dev->guests_lock", d, "&kvm->lock", "&kvm->lock"]
    w, s = build("alt-unfair-rwlock", sc)
    assert [lk.cls for lk in s.update_locks()] == ["&matrix_dev->guests_lock", "&kvm->lock", "&kvm->lock"]
    rw = s.rwl
    assert isinstance(rw, MdevsRwlock) and not s.update_markers()
    assert s.open_coded_markers() == ((rw, "readers"), (rw, "writer"))
    rw.readers = 1
    assert s.update_markers()
    rw.readers, rw.writer = 0, True
    assert s.update_markers()


# ----------------------------------------------------------------------------------------- alt base

@pytest.mark.parametrize("sid", ["alt-userspace-pqap", "alt-srcu", "alt-queue-lock"])
def test_alt_base_store_takes_kvm_lock_inside_the_mask_function(sid):
    """Items 1-2: +guests_lock; +D; ... set_masks (M-A: +kvm->lock inside); -D; -guests_lock."""
    w, s = opened(sid)
    rec: list = []
    assert run_op(w, s, ADMIN, op("assign-adapter m0 4", mdev="m0", ident=4), rec) == 2
    steps = lock_steps(rec)
    link_sync = [SYNC] if sid == "alt-srcu" else []  # alt-srcu publishes after link_queue
    assert steps == [ATTR, GUESTS, MDEVS, QLOCK, un(QLOCK)] + link_sync + [KVM, un(KVM), un(MDEVS), un(GUESTS),
                                                                           un(ATTR)]
    assert [st[-1] for st, o, _ in rec if isinstance(o, Acquire) and o.lock.cls == "&kvm->lock"] == \
        ["kvm_arch_crypto_set_masks"]
    assert w.vms["g0"].crycb.apm == Mask.of([3, 4])


# ----------------------------------------------------------------------------------------- alt-userspace-pqap

def test_userspace_pqap_exit_then_ioctl():
    w, s = opened("alt-userspace-pqap")
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = m.qtable[0x0305]
    rec: list = []
    r = run_op(w, s, VCPU, pqap_op(0x0305), rec)
    # KVM_RUN exits (no hook, no pqap_hook_rwsem), then the ioctl under mdevs_lock; irq_enable's NIB
    # validation and PV check each in a kvm->srcu read section
    assert lock_steps(rec) == [VCPU_M, KSRCU, un(KSRCU), un(VCPU_M),
                               MDEVS, KSRCU, un(KSRCU), KSRCU, un(KSRCU), un(MDEVS)]
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x00, None, "vfio_ap")
    assert r.gr1 >> 32 == 0
    assert (q.saved_isc, q.saved_iova) == (3, 0x1000) and vm.gisc_refs == {3: 1}
    assert vm.pqap_hook is None
    assert not any(isinstance(o, Read) and o.field == "pqap_hook" for _, o, _ in rec)
    pv_reads = [st[-1] for st, o, _ in rec if isinstance(o, Read) and o.field == "pv"]
    assert pv_reads == ["vfio_ap_irq_enable"], "the named vCPU's PV state is read as a step"
    srcu_frames = [st[-1] for st, o, _ in rec if isinstance(o, Acquire) and o.lock.cls == "&kvm->srcu"]
    assert srcu_frames == ["kvm_arch_vcpu_ioctl_run", "vfio_ap_irq_enable", "vfio_ap_irq_enable"]
    stacks = {st[-1] for st, o, _ in rec if isinstance(o, Acquire) and o.lock.cls == "&matrix_dev->mdevs_lock"}
    assert stacks == {"vfio_ap_mdev_aqic_ioctl"}
    assert s._ioctl_users == {"m0": ()}
    # a queue the mdev does not have: 0x01 from the ioctl, CC 3
    r = run_op(w, s, VCPU, pqap_op(0x0405))
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "vfio_ap")


def test_userspace_pqap_without_an_open_file_answers_01():
    w, s = build("alt-userspace-pqap", scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU)))
    rec: list = []
    r = run_op(w, s, VCPU, pqap_op(0x0305), rec)
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "vmm")
    assert r.gr1 == 0x01 << 16, "the VMM writes the status word into the low half"
    assert lock_steps(rec) == [VCPU_M, KSRCU, un(KSRCU), un(VCPU_M)]
    assert sum(isinstance(o, FdGet) for _, o, _ in rec) == 1


def test_userspace_pqap_program_checks_stay_in_kvm():
    w, s = opened("alt-userspace-pqap")
    w.vms["g0"].vcpus[0].problem_state = True
    r = run_op(w, s, VCPU, pqap_op(0x0305))
    assert r.pgm == "PGM_PRIVILEGED_OP" and r.answered_by is None


def test_userspace_set_kvm_and_unset_kvm():
    sc = scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU))
    w, s = build("alt-userspace-pqap", sc)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert lock_steps(rec) == [GROUP, DEVSET, KREF, un(KREF), GUESTS, MDEVS, KVM, un(KVM), un(MDEVS), un(GUESTS),
                               un(DEVSET), un(GROUP)]
    assert m.kvm is vm and vm.pqap_hook is None and vm.crycb.apm == Mask.of([3])
    rec = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    assert lock_steps(rec) == [GROUP, DEVSET, GUESTS, MDEVS, KVM, un(KVM), WORK, un(WORK), un(MDEVS), un(GUESTS),
                               un(DEVSET), un(GROUP)]
    assert m.kvm is None and vm.crycb.masks == (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY) and vm.users == 2


def test_userspace_second_mdev_for_the_same_vm_is_refused():
    sc = scenario(mdevs=(mdev("m0", open_by="g0"), mdev("m1", adapters=(4,))),
                  actors=(mdev_actor("m0"), mdev_actor("m1")))
    w, s = build("alt-userspace-pqap", sc)
    rec: list = []
    assert run_op(w, s, mdev_actor("m1"), op("open"), rec) == -errno.EPERM
    assert lock_steps(rec) == [GROUP, DEVSET, KREF, un(KREF), GUESTS, MDEVS, un(MDEVS), un(GUESTS), un(DEVSET),
                               un(GROUP)]
    assert w.mdevs["m1"].kvm is None and w.mdevs["m1"].vdev.open_count == 0
    assert "&kvm->arch.crypto.pqap_hook_rwsem" not in {o.lock.cls for _, o, _ in rec if isinstance(o, Acquire)}


def test_userspace_queue_remove():
    w, s = opened("alt-userspace-pqap", adapters=(3, 4))
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    assert lock_steps(rec) == [DEVLOCK, GUESTS, MDEVS, KVM, un(KVM), WORK, un(WORK), un(MDEVS), un(GUESTS),
                               QLOCK, un(QLOCK), "-&dev->mutex"]
    assert w.vms["g0"].crycb.apm == Mask.of([3])


def test_userspace_close_waits_for_an_ioctl_in_flight():
    """The ioctl holds a file reference: a close removes the descriptor at once, and its release
    (close_device → unset_kvm) runs only after the ioctl dropped the reference."""
    w, s = opened("alt-userspace-pqap")
    kv = InlineContext(w, VCPU.name)
    gv = s.operation(kv, VCPU, pqap_op(0x0305))
    o = next(gv)
    while not isinstance(o, Acquire) or o.lock.cls != "&matrix_dev->mdevs_lock":
        o = gv.send(o.perform(kv))
    assert s._ioctl_users == {"m0": (VCPU.name,)}
    km = InlineContext(w, "mdev:m0")
    gm = s.operation(km, mdev_actor(), op("close"))
    c = next(gm)
    c = gm.send(c.perform(km))  # the descriptor is gone
    assert "mdev:m0" not in w.files
    assert isinstance(c, Block) and not c.enabled(km) and c.cond.blockers(km) == [VCPU.name]
    res = o.perform(kv)
    while True:  # the ioctl finishes
        try:
            o = gv.send(res)
        except StopIteration as stop:
            r = stop.value
            break
        assert o.enabled(kv)
        res = o.perform(kv)
    assert r.rc == 0x00
    assert c.enabled(km)
    res = c.perform(km)
    while True:
        try:
            c = gm.send(res)
        except StopIteration:
            break
        res = c.perform(km)
    assert w.mdevs["m0"].kvm is None and w.mdevs["m0"].vdev.open_count == 0
    r = run_op(w, s, VCPU, pqap_op(0x0305))
    assert (r.rc, r.answered_by) == (0x01, "vmm"), "no open file any more"


# ----------------------------------------------------------------------------------------- alt-fair-rwsem

DR, DW = "+D(r)", "+D(w)"
_RWL_FRAMES = {"read_lock": DR, "read_unlock": un(DR), "write_lock": DW, "write_unlock": un(DW)}


def d_steps(record) -> list[str]:
    """Lock steps with the data lock written ``±D(r)``/``±D(w)``: the fair rwsem's acquisitions, or
    for the open-coded rwlock the sub-path that takes ``rwl_mutex`` (uncontended: once per call)."""
    out = []
    for st, o, res in record:
        if isinstance(o, (Acquire, Release)) and o.lock.cls == "&matrix_dev->rwl_mutex":
            if isinstance(o, Acquire):
                out.append(_RWL_FRAMES[st[-1]])
            continue
        for x in lock_steps([(st, o, res)]):
            out.append(x.replace("&matrix_dev->mdevs_rwsem", "D"))
    return out


RW_IDS = ("alt-fair-rwsem", "alt-unfair-rwlock")


@pytest.mark.parametrize("sid", RW_IDS)
def test_rw_pqap_is_a_reader(sid):
    w, s = opened(sid)
    rec: list = []
    r = run_op(w, s, VCPU, pqap_op(0x0305), rec)
    assert d_steps(rec) == [VCPU_M, KSRCU, HOOK_R, DR, un(DR), un(HOOK_R), un(KSRCU), un(VCPU_M)]
    assert (r.ret, r.rc, r.answered_by) == (0, 0x00, "vfio_ap")
    assert w.mdevs["m0"].qtable[0x0305].saved_isc == 3


@pytest.mark.parametrize("sid", RW_IDS)
def test_rw_set_kvm_and_unset_kvm_split(sid):
    sc = scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU))
    w, s = build(sid, sc)
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    # hook under pqap_hook_rwsem(w); C1: kvm_get_kvm, W mdev->kvm; P: CRYCB (M-A)
    assert d_steps(rec) == [GROUP, DEVSET, KREF, un(KREF), GUESTS, HOOK_W, un(HOOK_W), DW, un(DW),
                            DR, KVM, un(KVM), un(DR), un(GUESTS), un(DEVSET), un(GROUP)]
    kinds = [(type(o).__name__, getattr(o, "field", "")) for _, o, _ in rec]
    assert kinds.index(("Write", "kvm")) < kinds.index(("Update", "masks"))
    rec = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    # no C1; P: clear_masks; C2: reset_queues, W mdev->kvm := NULL
    assert d_steps(rec) == [GROUP, DEVSET, GUESTS, HOOK_W, un(HOOK_W), DR, KVM, un(KVM), un(DR),
                            DW, WORK, un(WORK), un(DW), un(GUESTS), un(DEVSET), un(GROUP)]
    assert w.mdevs["m0"].kvm is None and w.vms["g0"].pqap_hook is None


def _phases(record) -> dict:
    """(op, field) -> the mode of D held at its first occurrence (None: D not held)."""
    phase_of: dict = {}
    held = None
    for st, o, _ in record:
        if isinstance(o, Acquire) and o.lock.cls == "&matrix_dev->mdevs_rwsem":
            held = o.mode
        elif isinstance(o, Release) and o.lock.cls == "&matrix_dev->mdevs_rwsem":
            held = None
        elif isinstance(o, (Write, Update)) and isinstance(o.obj, MdevsRwlock):
            if o.field == "writer":
                held = "w" if o.value else None
            elif st[-1] == "read_lock":
                held = "r"
            else:
                held = None
        elif isinstance(o, (Write, Update)):
            phase_of.setdefault((type(o).__name__, o.field), held)
    return phase_of


@pytest.mark.parametrize("sid", RW_IDS)
def test_rw_split_stores(sid):
    w, s = opened(sid, adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    # C1 (parse, matrix write, unlink), P (shadow clear, CRYCB), C2 (reset, unlink q->matrix_mdev)
    assert run_op(w, s, ADMIN, op("unassign-adapter m0 4", mdev="m0", ident=4), rec) == 2
    assert d_steps(rec) == [GUESTS, DW, un(DW), DR, KVM, un(KVM), un(DR), DW, WORK, un(WORK), un(DW), un(GUESTS)]
    phase_of = _phases(rec)
    assert phase_of[("Update", "apm")] == "w", "the matrix write is in C1"
    assert phase_of[("Update", "qtable")] == "w"
    assert phase_of[("Update", "masks")] == "r", "the CRYCB write is in P"
    assert phase_of[("Write", "matrix_mdev")] == "w", "the remaining unlink is in C2"
    assert vm.crycb.apm == Mask.of([3]) and m.shadow_apcb.apm == Mask.of([3])
    # assign: C1 (parse, checks, link), P (filter, CRYCB); no C2 when nothing is filtered
    rec = []
    assert run_op(w, s, ADMIN, op("assign-adapter m0 4", mdev="m0", ident=4), rec) == 2
    assert d_steps(rec) == [ATTR, GUESTS, DW, QLOCK, un(QLOCK), un(DW), DR, KVM, un(KVM), un(DR), un(GUESTS),
                            un(ATTR)]
    assert _phases(rec)[("Write", "apm")] == "r", "the filter's shadow writes are in P"
    assert vm.crycb.apm == Mask.of([3, 4])
    # a refused store has only its C1
    rec = []
    assert run_op(w, s, ADMIN, op("assign-adapter m0 0x100", mdev="m0", ident=256), rec) == -errno.ENODEV
    assert d_steps(rec) == [ATTR, GUESTS, DW, un(DW), un(GUESTS), un(ATTR)]
    # control domains: C1 and P, no AP bus mutex
    rec = []
    assert run_op(w, s, ADMIN, op("assign-control-domain m0 5", mdev="m0", ident=5), rec) == 2
    assert d_steps(rec) == [GUESTS, DW, un(DW), DR, KVM, un(KVM), un(DR), un(GUESTS)]


@pytest.mark.parametrize("sid", RW_IDS)
def test_rw_queue_remove_and_probe(sid):
    w, s = opened(sid, adapters=(3, 4))
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    # P: R q->matrix_mdev, shadow, CRYCB; C2: reset, unlink, drvdata, free
    assert d_steps(rec) == [DEVLOCK, GUESTS, DR, KVM, un(KVM), un(DR), DW, WORK, un(WORK), un(DW), un(GUESTS),
                            QLOCK, un(QLOCK), "-&dev->mutex"]
    free = next(i for i, (_, o, _) in enumerate(rec) if isinstance(o, Free))
    assert d_steps(rec[free + 1:])[0] == un(DW), "q is freed inside C2"
    rec = []
    assert run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    # C1: link, R *_add; P: filter, CRYCB; C2: W drvdata
    assert d_steps(rec) == [DEVLOCK, ATTR, un(ATTR), QLOCK, un(QLOCK), GUESTS, DW, un(DW), DR, KVM, un(KVM),
                            un(DR), DW, un(DW), un(GUESTS), "-&dev->mutex"]
    assert w.vms["g0"].crycb.apm == Mask.of([3, 4])


def test_fair_rwsem_blocks_a_pqap_reader_behind_a_waiting_writer():
    from apactors.engine.process import Runtime

    w, s = opened("alt-fair-rwsem")
    d = w.mdevs_lock
    d.acquire("holder", READ)  # a reader in its section
    rt = Runtime(w, s, lambda n, label: 0, None)
    writer = rt.add("mdev:m0", "mdev", mdev_actor())
    writer.ops.append(op("reset"))  # reset_ioctl: a writer
    reader = rt.add(VCPU.name, "vcpu", VCPU)
    reader.ops.append(pqap_op(0x0305))

    def run_to_d(p):
        while not (isinstance(p.pending, Acquire) and p.pending.lock is d):
            rt.step(p)

    run_to_d(writer)
    assert not writer.enabled(), "the writer waits for the reader holding D"
    run_to_d(reader)
    assert not reader.enabled(), "fair: a reader arriving after a waiting writer waits too"
    d.release("holder")
    assert writer.enabled() and not reader.enabled()
    while writer.live():  # the writer and the reset-check workers it spawns
        others = [p for p in rt.procs if p is not reader and p.enabled()]
        assert others, "writer stuck"
        rt.step(others[0])
        if d.holders.get("mdev:m0") == "w":
            assert not reader.enabled()
    assert reader.enabled()
    while reader.live():
        rt.step(reader)
    assert reader.results[-1].rc == 0x00


# ----------------------------------------------------------------------------------------- alt-unfair-rwlock

def rwl_steps(record) -> list[str]:
    """Lock steps plus the rwlock's own state steps and wait-queue operations."""
    out = []
    for _stack, o, res in record:
        if isinstance(o, (Acquire, Release)):
            out += lock_steps([(_stack, o, res)])
        elif isinstance(o, (Read, Write, Update)) and isinstance(o.obj, MdevsRwlock):
            out.append(f"{'R' if isinstance(o, Read) else 'W'}:{o.field}={res}")
        elif isinstance(o, WakeAll):
            out.append("wake")
        elif isinstance(o, PrepareWait):
            out.append("prepare")
        elif isinstance(o, WaitWoken):
            out.append("sleep")
    return out


def test_unfair_rwlock_sub_paths_follow_the_pseudo_code():
    w, s = opened("alt-unfair-rwlock")
    rec: list = []
    run_op(w, s, VCPU, pqap_op(0x0305), rec)
    assert rwl_steps(rec) == [
        VCPU_M, KSRCU, HOOK_R,
        RWL, "R:writer=False", "W:readers=1", un(RWL),          # read_lock
        RWL, "W:readers=0", "wake", un(RWL),                    # read_unlock
        un(HOOK_R), un(KSRCU), un(VCPU_M)]
    assert [st[-1] for st, o, _ in rec if isinstance(o, Acquire) and o.lock.cls == "&matrix_dev->rwl_mutex"] == \
        ["read_lock", "read_unlock"]
    rec = []
    run_op(w, s, mdev_actor(), op("reset"), rec)
    assert rwl_steps(rec) == [
        RWL, "R:writer=False", "R:readers=0", "W:writer=True", un(RWL),   # write_lock
        WORK, un(WORK),
        RWL, "W:writer=False", "wake", un(RWL)]                           # write_unlock
    assert s.rwl.readers == 0 and not s.rwl.writer
    assert not w.mdevs_lock.holders and "&matrix_dev->mdevs_lock" not in \
        {o.lock.cls for _, o, _ in rec if isinstance(o, Acquire)}


def test_unfair_rwlock_lets_readers_pass_a_waiting_writer():
    from apactors.engine.process import Runtime

    w, s = opened("alt-unfair-rwlock")
    rw = s.rwl
    holder = InlineContext(w, "holder")
    run_inline(s.read_lock(holder), holder)  # a reader in its section
    assert rw.readers == 1
    rt = Runtime(w, s, lambda n, label: 0, None)
    writer = rt.add("mdev:m0", "mdev", mdev_actor())
    writer.ops.append(op("reset"))
    reader = rt.add(VCPU.name, "vcpu", VCPU)
    reader.ops.append(pqap_op(0x0305))
    while writer.enabled():
        rt.step(writer)
    assert isinstance(writer.pending, WaitWoken), "the writer sleeps on rwl_wq"
    assert s.wait_blockers(writer.pending.wq) == ["holder"]
    assert not rw.writer and not rw.mutex.holders
    while reader.live():
        assert reader.enabled(), "a reader never waits for a waiting writer"
        rt.step(reader)
    assert reader.results[-1].rc == 0x00
    assert not writer.enabled(), "the reader's unlock left readers = 1: no wake-up"
    run_inline(s.read_unlock(holder), holder)
    assert writer.enabled()
    while writer.live():  # the writer and the reset-check workers it spawns
        rt.step(next(p for p in rt.procs if p.enabled()))
    assert rw.readers == 0 and not rw.writer


# ----------------------------------------------------------------------------------------- alt-srcu

def test_srcu_pqap_reads_the_view_in_a_read_section():
    w, s = opened("alt-srcu")
    m = w.mdevs["m0"]
    assert isinstance(m.pqap_view, PqapView) and m.pqap_view.kvm is w.vms["g0"]
    rec: list = []
    r = run_op(w, s, VCPU, pqap_op(0x0305), rec)
    assert lock_steps(rec) == [VCPU_M, KSRCU, HOOK_R, PSRCU, un(PSRCU), un(HOOK_R), un(KSRCU), un(VCPU_M)]
    assert r.rc == 0x00 and m.qtable[0x0305].saved_isc == 3
    reads = [(o.obj.kind, o.field) for _, o, _ in rec if isinstance(o, Read) and o.obj.kind in ("pqap_view", "mdev")]
    # K-B's R: *h (the hook function in the mdev), then the view, its VM and its qtable
    assert reads == [("mdev", "pqap_hook"), ("mdev", "pqap_view"), ("pqap_view", "kvm"), ("pqap_view", "qtable")]
    assert not any(isinstance(o, Read) and o.obj is m and o.field == "kvm" for _, o, _ in rec), \
        "irq_enable uses v.kvm, not R: q->matrix_mdev->kvm"


def test_srcu_set_kvm_unset_kvm_publish():
    sc = scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU))
    w, s = build("alt-srcu", sc)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    before = m.pqap_view
    assert before is not None and before.kvm is None  # published by the link at setup
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert lock_steps(rec) == [GROUP, DEVSET, KREF, un(KREF), GUESTS, HOOK_W, un(HOOK_W), MDEVS, SYNC, KVM, un(KVM),
                               un(MDEVS), un(GUESTS), un(DEVSET), un(GROUP)]
    assert m.pqap_view.kvm is vm and before.freed
    rec = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    assert lock_steps(rec) == [GROUP, DEVSET, GUESTS, HOOK_W, un(HOOK_W), MDEVS, KVM, un(KVM), WORK, un(WORK),
                               SYNC, un(MDEVS), un(GUESTS), un(DEVSET), un(GROUP)]
    assert m.pqap_view.kvm is None


def test_srcu_queue_remove_resets_and_frees_after_the_synchronize():
    w, s = opened("alt-srcu", adapters=(3, 4))
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    assert lock_steps(rec) == [DEVLOCK, GUESTS, MDEVS, KVM, un(KVM), SYNC, WORK, un(WORK), un(MDEVS), un(GUESTS),
                               QLOCK, un(QLOCK), "-&dev->mutex"]
    names = [(type(o).__name__, getattr(o, "name", "")) for _, o, _ in rec]
    sync = names.index(("SynchronizeSrcu", ""))
    assert sync < names.index(("Insn", "ZAPQ"))
    q_free = [i for i, (_, o, _) in enumerate(rec) if isinstance(o, Free) and o.obj.kind == "q"]
    assert q_free and q_free[0] > sync
    assert 0x0405 not in w.mdevs["m0"].pqap_view.qtable


def test_srcu_remove_withdraws_the_view():
    w, s = build("alt-srcu", scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    m = w.mdevs["m0"]
    view = m.pqap_view
    rec: list = []
    assert run_op(w, s, ADMIN, op("remove m0", mdev="m0"), rec) == 0
    assert m.freed and m.pqap_view is None and view.freed


def test_srcu_synchronize_waits_for_an_in_flight_pqap_read_section():
    from apactors.engine.process import Runtime

    w, s = opened("alt-srcu", adapters=(3, 4))
    m = w.mdevs["m0"]
    rt = Runtime(w, s, lambda n, label: 0, None)
    reader = rt.add(VCPU.name, "vcpu", VCPU)
    reader.ops.append(pqap_op(0x0405))
    admin = rt.add("admin", "admin", ADMIN)
    admin.ops.append(op("unassign-adapter m0 4", mdev="m0", ident=4))
    while not (isinstance(reader.pending, Read) and reader.pending.field == "pqap_view"):
        rt.step(reader)
    rt.step(reader)  # v := R: mdev->pqap_view, inside the read section
    old = m.pqap_view
    while admin.enabled():
        rt.step(admin)
    assert isinstance(admin.pending, SynchronizeSrcu), "the unlink's synchronize waits for the reader"
    assert m.pqap_view is not old and not old.freed
    while reader.live():
        rt.step(reader)
    assert reader.results[-1].rc == 0x00, "the reader used the old snapshot (04.0005 still in it)"
    assert admin.enabled()
    while admin.live():
        rt.step(admin)
    assert old.freed


# ----------------------------------------------------------------------------------------- alt-queue-lock

def test_queue_lock_pqap_takes_only_q_lock():
    w, s = opened("alt-queue-lock")
    q = w.mdevs["m0"].qtable[0x0305]
    assert q.lock is not None and q.lock.cls == "&q->lock"
    rec: list = []
    r = run_op(w, s, VCPU, pqap_op(0x0305), rec)
    assert lock_steps(rec) == [VCPU_M, KSRCU, HOOK_R, QLOCK, un(QLOCK), QL, un(QL), un(HOOK_R), un(KSRCU),
                               un(VCPU_M)]
    assert r.rc == 0x00 and q.saved_isc == 3
    crycb_reads = [o for _, o, _ in rec if isinstance(o, Read) and o.obj.kind == "crycb"]
    assert len(crycb_reads) == 2, "apm, then aqm, without kvm->lock"
    # not in the guest's CRYCB: 0x01 under q->lock, no IRQ work
    rec = []
    r = run_op(w, s, VCPU, pqap_op(0x0405), rec)
    assert r.rc == 0x01 and lock_steps(rec)[3:7] == [QLOCK, un(QLOCK), QL, un(QL)]


def test_queue_lock_set_kvm_unset_kvm_and_resets():
    sc = scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU))
    w, s = build("alt-queue-lock", sc)
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert lock_steps(rec) == [GROUP, DEVSET, KREF, un(KREF), GUESTS, HOOK_W, un(HOOK_W), MDEVS, KVM, un(KVM),
                               un(MDEVS), un(GUESTS), un(DEVSET), un(GROUP)]
    run_op(w, s, VCPU, pqap_op(0x0305))
    rec = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    # reset_queue and flush_work each bracketed by q->lock under mdevs_lock
    assert lock_steps(rec) == [GROUP, DEVSET, GUESTS, HOOK_W, un(HOOK_W), MDEVS, KVM, un(KVM), QL, un(QL),
                               QL, WORK, un(WORK), un(QL), un(MDEVS), un(GUESTS), un(DEVSET), un(GROUP)]
    q = w.mdevs["m0"].qtable[0x0305]
    assert q.saved_isc == NO_ISC and w.vms["g0"].gisc_refs == {}


def test_queue_lock_queue_remove():
    w, s = opened("alt-queue-lock", adapters=(3, 4))
    q = w.mdevs["m0"].qtable[0x0405]
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    assert lock_steps(rec) == [DEVLOCK, GUESTS, MDEVS, KVM, un(KVM), QL, un(QL), QL, WORK, un(WORK), un(QL),
                               QL, un(QL), un(MDEVS), un(GUESTS), QLOCK, un(QLOCK), "-&dev->mutex"]
    ops = [o for _, o, _ in rec]
    rel = max(i for i, o in enumerate(ops) if isinstance(o, Release) and o.lock is q.lock)
    assert isinstance(ops[rel + 1], Free) and ops[rel + 1].obj is q, "q->lock released just before the free"
    # a queue in no guest: the reset under one q->lock section held until just before the free
    w, s = opened("alt-queue-lock")
    rec = []
    run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec)
    assert lock_steps(rec) == [DEVLOCK, GUESTS, MDEVS, QL, WORK, un(WORK), un(QL), un(MDEVS), un(GUESTS), QLOCK,
                               un(QLOCK), "-&dev->mutex"]


def test_queue_lock_dma_unmap_brackets_irq_disable():
    w, s = opened("alt-queue-lock")
    run_op(w, s, VCPU, pqap_op(0x0305, nib=0x5000))
    rec: list = []
    run_op(w, s, mdev_actor(), op("dma-unmap iova=0x5000", iova=0x5000), rec)
    assert lock_steps(rec) == [MDEVS, QL, un(QL), un(MDEVS)]
    assert w.mdevs["m0"].qtable[0x0305].saved_iova == 0


# ----------------------------------------------------------------------------------------- schedules

#: the only kernel functions that take kvm->lock in the alternatives (item 1: vfio_ap never does)
KVM_LOCK_TAKERS = frozenset({"kvm_arch_crypto_set_masks", "kvm_arch_crypto_clear_masks", "kvm_s390_handle_pv",
                             "kvm_vfio_release"})


def _rules_sink(sid, held):
    """An event sink asserting the structural rules of §5.12 on every step of a schedule."""

    def sink(step, p, o, result, extra):
        if isinstance(o, Acquire) and result:
            cls = o.lock.cls
            if cls == "&kvm->lock":
                assert p.stack[-1] in KVM_LOCK_TAKERS, (sid, p.stack)
            if cls == "&q->lock":
                assert not any(lk.cls == "&q->lock" for lk, _ in held.get(p.name, ())), "two q->locks at once"
            if sid == "alt-userspace-pqap":
                assert cls != "&kvm->arch.crypto.pqap_hook_rwsem", p.stack
            held.setdefault(p.name, []).append((o.lock, o.mode))
        elif isinstance(o, Release):
            lst = held.get(p.name, [])
            for i in range(len(lst) - 1, -1, -1):
                if lst[i][0] is o.lock:
                    del lst[i]
                    break
        elif isinstance(o, (Write, Update)) and getattr(o.obj, "kind", None) in ("crycb", "matrix"):
            mine = held.get(p.name, ())
            if o.obj.kind == "crycb":
                assert not any(lk.cls == "&q->lock" for lk, _ in mine), "q->lock held across a CRYCB write"
            is_shadow = o.obj.kind == "matrix" and o.obj.owner.shadow_apcb is o.obj
            if sid == "alt-fair-rwsem" and (o.obj.kind == "crycb" or is_shadow):
                modes = [m for lk, m in mine if lk.cls == "&matrix_dev->mdevs_rwsem"]
                assert modes == ["r"], ("shadow and CRYCB writes only in P phases", p.stack, modes)
                assert any(lk.cls == "&matrix_dev->guests_lock" for lk, _ in mine), p.stack

    return sink


def _random_runs(sid, sc, seeds):
    from apactors.engine.process import CRASHED, Runtime

    for seed in seeds:
        w, s = build(sid, sc)
        rng = random.Random(seed)
        rt = Runtime(w, s, lambda n, label: rng.randrange(n), _rules_sink(sid, {}))
        for a in sc.actors:
            p = rt.add(a.name, a.kind, a)
            p.ops.extend(a.expanded_ops())
        for _ in range(30000):
            en = [p for p in rt.procs if p.enabled()]
            if not en:
                break
            rt.step(rng.choice(en))
        yield w, s, rt, [p for p in rt.procs if p.state == CRASHED]


@pytest.mark.parametrize("sid", ALT_IDS)
def test_random_schedules_of_the_builtin_scenarios_run(sid):
    """Every built-in scenario runs under every alternative (engine errors would raise here); whatever
    the schedules find is for the analysis, but locks of finished operations are all released."""
    from apactors.scenario import builtin_scenarios, load_builtin

    for name, _ in builtin_scenarios():
        for w, s, rt, crashed in _random_runs(sid, load_builtin(name), range(3)):
            if crashed or any(p.live() for p in rt.procs):
                continue  # a finding (crash, deadlock, hang): not judged here
            for lk in w.locks() + list(getattr(s, "extra_locks", list)()):
                assert not lk.holders, (sid, name, lk)
            if sid == "alt-unfair-rwlock":
                assert s.rwl.readers == 0 and not s.rwl.writer and not s.rwl.owners


def test_setup_refusal_is_the_same_as_latest():
    sc = scenario(apmask=(3,), aqmask=(5,), mdevs=(mdev(adapters=(3,), domains=(5,)),))
    for sid in ALT_IDS:
        with pytest.raises(SetupError, match="EADDRNOTAVAIL"):
            build(sid, sc)
