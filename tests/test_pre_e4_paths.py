"""The notifier-era schemes `v5.10`, `v5.11`, `v5.12`, `v5.15`, `v15-draft`, `pqap-v4-draft`: lock steps
of single paths against golden lists written by hand from the domain doc (§4.3 pre-E4 column, §5.0,
§5.1-§5.4, §5.9, §5.11), and the semantics the paths must have (response codes, -EBUSY while attached,
the v5.12 wait on kvm_busy dropping &matrix_dev->lock, the free_aqic_resources forms, AM-0, S-0)."""

from __future__ import annotations

import random

import pytest

import apactors.model.schemes.pre_e4  # noqa: F401  (registers the schemes even without BUILTIN_MODULES)
from apactors.model import errno
from apactors.model.build import InlineContext, SetupError, build_world, run_inline
from apactors.model.locks import Srcu
from apactors.model.masks import Mask
from apactors.model.ops import Acquire, Insn, Oops, Release, Update, WakeAll, Write
from apactors.model.schemes import get_scheme
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait
from apactors.model.world import NO_ISC, VFIO_AP, ZCRYPT
from apactors.scenario import ActorSpec, GuestSpec, HostSpec, MdevSpec, Operation, Scenario
from path_builders import (  # noqa: F401 - shared with the other golden-test files
    ADMIN, BUS, DEVLOCK, DEVSET, HMC, HOOK_W, KVM, PERMS, QLOCK, VCPU, VMM, lock_steps, mdev, mdev_actor, op, scenario, un,
)

PRE_E4 = ("v5.10", "v5.11", "v5.12", "v5.15", "v15-draft", "pqap-v4-draft")
KA = ("v5.10", "v5.11", "v5.12", "v15-draft", "pqap-v4-draft")  #: K-A hook call, M-A masks

L = "+&matrix_dev->lock"
NW = "+&(&group->notifier)->rwsem(w)"
NR = "+&(&group->notifier)->rwsem(r)"
HOOK_R = "+&kvm->arch.crypto.pqap_hook_rwsem(r)"
VCPU_IN = ["+&vcpu->mutex", "+&kvm->srcu(R)"]
VCPU_OUT = ["-&kvm->srcu(R)", "-&vcpu->mutex"]


def run_op(world, scheme, actor, operation, record=None):
    k = InlineContext(world, actor.name)
    return run_inline(scheme.operation(k, actor, operation), k, record)


def run_path(world, gen_fn, *args, record=None, name="test"):
    k = InlineContext(world, name)
    return run_inline(gen_fn(k, *args), k, record)


def build(sid, sc):
    return build_world(get_scheme(sid), sc)


def opened(sid, **kw):
    """One guest g0 with its mdev m0 (03.0005 by default) opened at setup."""
    sc_kw = {k: kw.pop(k) for k in ("adapters_host", "domains_host") if k in kw}
    sc = scenario(adapters=sc_kw.get("adapters_host", (3, 4)), domains=sc_kw.get("domains_host", (5,)),
                  mdevs=(mdev(open_by="g0", **kw),), actors=(mdev_actor(), VCPU))
    return build(sid, sc)


def pqap(w, s, apqn, enable=True, isc=3, nib=0x1000, record=None, actor=VCPU):
    verb = "pqap-aqic-enable" if enable else "pqap-aqic-disable"
    o = Operation(verb, f"{verb} {apqn:04x}", apqn=apqn, isc=isc if enable else None,
                  nib=nib if enable else None)
    return run_op(w, s, actor, o, record)


class Stepper:
    """Run one path op by op in its own context (to interleave two tasks by hand)."""

    def __init__(self, world, gen, name):
        self.k = InlineContext(world, name)
        self.gen = gen(self.k) if callable(gen) else gen
        self.record: list = []
        self.op = next(self.gen)
        self.done = False
        self.result = None

    def run(self):
        """Perform ops until the next one is not enabled or the path returned; → done."""
        while not self.done and self.op.enabled(self.k):
            res = self.op.perform(self.k)
            self.record.append((self.k.stack, self.op, res))
            try:
                self.op = self.gen.send(res)
            except StopIteration as stop:
                self.done, self.result = True, stop.value
        return self.done


# ================================================================================== the catalogue

def test_schemes_are_registered_with_their_bases():
    bases = {"v5.10": None, "v5.11": "v5.10", "v5.12": "v5.11", "v5.15": "v5.12", "v15-draft": "v5.12",
             "pqap-v4-draft": "v5.10"}
    for sid, base in bases.items():
        cls = get_scheme(sid)
        assert cls.id == sid and cls.base == base and cls.family == "pre-E4"
        assert cls.kernel and cls.description and cls.notes
        if base is not None:
            assert get_scheme(base) in cls.__mro__, "a scheme derives from its base"


# ================================================================================== setup (§4.2)

@pytest.mark.parametrize("sid", PRE_E4)
def test_setup_attaches_the_guest_through_the_notifier(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    assert m.kvm is vm and vm.pqap_hook is m
    assert vm.crycb.masks == (Mask.of([3]), Mask.of([5]), Mask.EMPTY), "pre-E4: the matrix itself"
    assert vm.users == 3, "VM file + kvm-vfio device + vfio_ap's reference (no vfio-core reference)"
    assert w.files == {"mdev:m0": m} and m.vdev.open_count == 1
    assert [kind for kind, _m in m.group.notifiers] == ["group", "iommu"]
    assert m.pqap_hook == (("vfio_ap_handle_pqap", "vfio_ap") if sid in KA else "vfio_ap_handle_pqap")
    assert not m.kvm_busy and w.matrix_lock.holders == {}
    assert {a: d.driver for a, d in w.bus.devices.items()} == {0x0305: VFIO_AP, 0x0405: VFIO_AP}


@pytest.mark.parametrize("sid", PRE_E4)
def test_setup_refuses_an_apqn_not_bound_to_vfio_ap(sid):
    # pre-E4 has no over-provisioning: 03.0005 is reserved for zcrypt -> -EADDRNOTAVAIL
    with pytest.raises(SetupError, match="EADDRNOTAVAIL"):
        build(sid, scenario(apmask=(3,), aqmask=(5,), mdevs=(mdev(),)))
    with pytest.raises(SetupError, match="EADDRNOTAVAIL"):
        build(sid, scenario(adapters=(3,), mdevs=(mdev(adapters=(3, 9)),)))


@pytest.mark.parametrize("sid", PRE_E4)
def test_update_locks_and_open_coded_markers(sid):
    w, s = build(sid, scenario(guests=("g0", "g1"), mdevs=(mdev(),)))
    assert [lk.cls for lk in s.update_locks()] == ["&matrix_dev->lock", "&kvm->lock", "&kvm->lock"]
    assert s.update_locks()[0] is w.matrix_lock
    assert s.open_coded_markers() is False and s.update_markers() is False
    w.mdevs["m0"].kvm_busy = True
    assert s.open_coded_markers() is True and s.update_markers() is True


# ================================================================================== open (§4.3, §5.0.5)

OPEN_GOLDEN = {
    # notify_set: attach under L, masks (M-A: kvm->lock inside) with L not held
    "v5.10": [NW, un(NW), NR, L, un(L), KVM, un(KVM), un(NR)],
    "pqap-v4-draft": [NW, un(NW), NR, L, un(L), KVM, un(KVM), un(NR)],
    # the whole notifier under L; kvm->lock taken inside it
    "v5.11": [NW, un(NW), NR, L, KVM, un(KVM), un(L), un(NR)],
    # set_kvm drops L around the masks (kvm_busy set meanwhile)
    "v5.12": [NW, un(NW), NR, L, un(L), KVM, un(KVM), L, un(L), un(NR)],
    "v15-draft": [NW, un(NW), NR, L, un(L), KVM, un(KVM), L, un(L), un(NR)],
    # dev_set->lock around open_device; hook under pqap_hook_rwsem(w); kvm->lock before L, released first
    "v5.15": [DEVSET, NW, un(NW), NR, HOOK_W, un(HOOK_W), KVM, L, un(KVM), un(L), un(NR), un(DEVSET)],
}


@pytest.mark.parametrize("sid", PRE_E4)
def test_open_golden(sid):
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert lock_steps(rec) == OPEN_GOLDEN[sid]
    assert m.kvm is vm and vm.pqap_hook is m and vm.users == 3
    assert vm.crycb.masks == (Mask.of([3]), Mask.of([5]), Mask.EMPTY)
    assert w.files["mdev:m0"] is m and m.vdev.open_count == 1
    assert not m.kvm_busy
    rec = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0 and rec == [], "holds a file: nothing"


def _write_index(rec, obj_kind, field):
    for i, (_st, o, _r) in enumerate(rec):
        if isinstance(o, (Write, Update)) and o.field == field and getattr(o.obj, "kind", None) == obj_kind:
            return i
    raise AssertionError(f"no write of {obj_kind}.{field}")


@pytest.mark.parametrize("sid,hook_first", [("v5.10", True), ("v5.11", True), ("v5.12", False),
                                            ("v5.15", True), ("pqap-v4-draft", False)])
def test_open_order_of_hook_and_masks(sid, hook_first):
    """v5.10/v5.11/v5.15 publish the hook before the CRYCB is written; v5.12 and the 2019 draft after."""
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    rec: list = []
    run_op(w, s, mdev_actor(), op("open"), rec)
    hook = _write_index(rec, "vm", "pqap_hook")
    masks = _write_index(rec, "crycb", "masks")
    assert (hook < masks) == hook_first
    held = set()
    for _st, o, _r in rec[:hook]:
        if isinstance(o, Acquire):
            held.add(o.lock.cls)
        elif isinstance(o, Release):
            held.discard(o.lock.cls)
    held.discard("&(&group->notifier)->rwsem")  # the vfio core's, around the notifier call
    expected = {"v5.10": {"&matrix_dev->lock"}, "v5.11": {"&matrix_dev->lock"}, "v5.12": {"&matrix_dev->lock"},
                "v5.15": {"&new_dev_set->lock", "&kvm->arch.crypto.pqap_hook_rwsem"}, "pqap-v4-draft": set()}
    assert held == expected[sid], "pqap-v4-draft writes the hook with no lock held"


@pytest.mark.parametrize("sid", PRE_E4)
def test_open_always_succeeds_even_when_the_notifier_refuses(sid):
    sc = scenario(mdevs=(mdev("m0", open_by="g0"), mdev("m1", adapters=(4,))),
                  actors=(mdev_actor("m0", "g0"), mdev_actor("m1", "g0")))
    w, s = build(sid, sc)
    vm, m0, m1 = w.vms["g0"], w.mdevs["m0"], w.mdevs["m1"]
    rec: list = []
    assert run_op(w, s, mdev_actor("m1", "g0"), op("open"), rec) == 0
    refused = {"v5.15": [DEVSET, NW, un(NW), NR, HOOK_W, un(HOOK_W), KVM, L, un(KVM), un(L), un(NR), un(DEVSET)]}
    assert lock_steps(rec) == refused.get(sid, [NW, un(NW), NR, L, un(L), un(NR)])
    assert w.files["mdev:m1"] is m1 and m1.vdev.open_count == 1, "notifier era: the file is held"
    assert m1.kvm is None and m0.kvm is vm and vm.users == 3
    assert vm.crycb.masks == (Mask.of([3]), Mask.of([5]), Mask.EMPTY)
    if sid == "v5.15":
        assert vm.pqap_hook is m1, "v5.15 set_kvm publishes the hook before its -EPERM check"
    else:
        assert vm.pqap_hook is m0


# ================================================================================== close / release

CLOSE_GOLDEN = {
    "v5.10": [L, KVM, un(KVM), un(L), NW, un(NW)],
    "pqap-v4-draft": [L, KVM, un(KVM), un(L), NW, un(NW)],
    "v5.11": [L, KVM, un(KVM), un(L), NW, un(NW)],
    "v5.12": [L, un(L), KVM, un(KVM), L, un(L), NW, un(NW)],
    "v15-draft": [L, un(L), KVM, un(KVM), L, un(L), NW, un(NW)],
    "v5.15": [DEVSET, NW, un(NW), HOOK_W, un(HOOK_W), KVM, L, un(KVM), un(L), un(DEVSET)],
}


@pytest.mark.parametrize("sid", PRE_E4)
def test_close_golden(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    pqap(w, s, 0x0305)  # leave interrupt state for the reset to release
    q = w.bus.devices[0x0305].drvdata
    assert q.saved_isc == 3 and vm.gisc_refs == {3: 1}
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    assert lock_steps(rec) == CLOSE_GOLDEN[sid]
    assert vm.pqap_hook is None and m.kvm is None and vm.users == 2
    assert vm.crycb.masks == (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY)
    assert m.group.notifiers == () and m.vdev.open_count == 0 and w.files == {}
    assert [o.apqn for _, o, _ in rec if isinstance(o, Insn) and o.name == "ZAPQ"] == [0x0305]
    assert (q.saved_isc, q.saved_pfn) == (NO_ISC, 0) and vm.gisc_refs == {} and m.vdev.pins == {}
    # v5.10's reset_queues disables the IRQ after the reset (and so clears q->matrix_mdev); from v5.11
    # the reset releases the resources itself and q->matrix_mdev stays as the PQAP lookup wrote it
    aqics = [o for _, o, _ in rec if isinstance(o, Insn) and o.name == "AQIC"]
    if sid in ("v5.10", "pqap-v4-draft"):
        assert len(aqics) == 1 and q.matrix_mdev is None
    else:
        assert aqics == [] and q.matrix_mdev is m


# ================================================================================== kvm-vfio release

KVM_VFIO_GOLDEN = {
    "v5.10": [NR, un(NR)],  # notify_clear: W mdev->kvm := NULL, no lock
    "pqap-v4-draft": [NR, un(NR)],
    "v5.11": [NR, L, KVM, un(KVM), un(L), un(NR)],
    "v5.12": [NR, L, un(L), KVM, un(KVM), L, un(L), un(NR)],
    "v15-draft": [NR, L, un(L), KVM, un(KVM), L, un(L), un(NR)],
    "v5.15": [NR, HOOK_W, un(HOOK_W), KVM, L, un(KVM), un(L), un(NR)],
}


@pytest.mark.parametrize("sid", PRE_E4)
def test_kvm_vfio_release_golden(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, VMM, op("kvm-vfio-release"), rec) == 0
    assert lock_steps(rec) == KVM_VFIO_GOLDEN[sid]
    assert m.group.kvm is None and vm.kvm_vfio.released and m.kvm is None
    if sid in ("v5.10", "pqap-v4-draft"):
        # notify_clear only forgets the VM: hook, CRYCB and vfio_ap's VM reference stay
        assert vm.pqap_hook is m and vm.crycb.apm == Mask.of([3]) and vm.users == 2
    else:
        assert vm.pqap_hook is None and vm.crycb.apm == Mask.EMPTY and vm.users == 1
    assert run_op(w, s, VMM, op("kvm-vfio-release")) == 0, "second time: nothing"
    # a later open finds no VM on the group: it succeeds and attaches nothing
    run_op(w, s, mdev_actor(), op("close"))
    rec = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert w.files["mdev:m0"] is m and m.kvm is None
    assert NR not in lock_steps(rec), "no VM on the group: the chain is not called"


def test_v5_10_pqap_after_notify_clear_dereferences_the_null_vm():
    w, s = opened("v5.10")
    run_op(w, s, VMM, op("kvm-vfio-release"))
    with pytest.raises(SetupError, match="null-deref.*gisc_register"):
        pqap(w, s, 0x0305)
    assert w.matrix_lock.holders == {"vcpu:g0/0": "w"}, "the oops keeps &matrix_dev->lock held"


def test_v5_11_pqap_after_the_release_gets_kvms_answer():
    w, s = opened("v5.11")
    run_op(w, s, VMM, op("kvm-vfio-release"))
    r = pqap(w, s, 0x0305)
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "kvm")


# ================================================================================== PQAP (§5.0.2, §5.1)

@pytest.mark.parametrize("sid", PRE_E4)
def test_pqap_enable_disable_golden_and_irq_state(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = w.bus.devices[0x0305].drvdata
    assert q.matrix_mdev is None, "pre-E4: nothing links the queue before a PQAP names it"
    rec: list = []
    r = pqap(w, s, 0x0305, record=rec)
    if sid == "v5.15":
        golden = VCPU_IN + [HOOK_R, L, un(L), un(HOOK_R)] + VCPU_OUT
    else:
        golden = VCPU_IN + [L, un(L)] + VCPU_OUT  # K-A: no lock in KVM
    assert lock_steps(rec) == golden
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x00, None, "vfio_ap")
    assert r.gr1 >> 32 == 0, "vfio_ap writes the status into the low half, high half zero"
    assert q.matrix_mdev is m, "get_queue writes q->matrix_mdev"
    assert (q.saved_isc, q.saved_pfn, q.saved_iova, q.saved_vm) == (3, 1, 0, vm)
    assert vm.gisc_refs == {3: 1} and m.vdev.pins == {1: 1} and w.machine.queues[0x0305].irq == 1
    if sid in KA:
        reads = [o for _, o, _ in rec if getattr(o, "field", None) == "pqap_hook"]
        assert len(reads) == 1 + 4 + 2 + 1, "K-A: four hook reads and three hook-structure reads; vfio_ap: one"
    # enabling again releases the previously saved registration and pin (§6.4)
    pqap(w, s, 0x0305, isc=4, nib=0x2008)
    assert vm.gisc_refs == {4: 1} and m.vdev.pins == {2: 1} and q.saved_pfn == 2
    rec = []
    r = pqap(w, s, 0x0305, enable=False, record=rec)
    assert lock_steps(rec) == golden
    assert (r.ret, r.rc) == (0, 0x00)
    assert (q.saved_isc, q.saved_pfn) == (NO_ISC, 0) and vm.gisc_refs == {} and m.vdev.pins == {}
    assert q.matrix_mdev is None, "irq_disable ends with W q->matrix_mdev := NULL"
    assert w.machine.queues[0x0305].irq == 0


@pytest.mark.parametrize("sid", PRE_E4)
def test_pqap_queue_not_assigned_or_not_bound(sid):
    w, s = build(sid, scenario(domains=(5, 6), mdevs=(mdev(open_by="g0"),), actors=(mdev_actor(), VCPU)))
    r = pqap(w, s, 0x0405)  # 04.0005 is bound to vfio_ap but not in m0's matrix
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "vfio_ap")
    run_op(w, s, ADMIN, op("unbind 03.0005", apqn=0x0305))
    r = pqap(w, s, 0x0305)  # in the matrix, but no longer bound to vfio_ap
    assert (r.rc, r.answered_by) == (0x01, "vfio_ap")


@pytest.mark.parametrize("sid", PRE_E4)
def test_pqap_without_a_hook_is_answered_by_kvm(sid):
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU)))
    rec: list = []
    r = pqap(w, s, 0x0305, record=rec)
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "kvm")
    assert r.gr1 >> 32 == 0x00010000, "KVM copies the status into the high half without a shift"
    if sid == "v5.15":
        assert lock_steps(rec) == VCPU_IN + [HOOK_R, un(HOOK_R)] + VCPU_OUT
    else:
        assert lock_steps(rec) == VCPU_IN + VCPU_OUT


@pytest.mark.parametrize("sid", PRE_E4)
def test_pqap_mdev_without_a_vm(sid):
    """v5.10/v5.11/pqap-v4 do not test mdev->kvm in the handler (§6.2 check 5): with the hook set and
    no VM, irq_enable dereferences the NULL VM; the others answer 0x01."""
    w, s = opened(sid)
    w.mdevs["m0"].kvm = None  # as the v5.10 notify_clear leaves it
    if sid in ("v5.10", "v5.11", "pqap-v4-draft"):
        with pytest.raises(SetupError, match="null-deref"):
            pqap(w, s, 0x0305)
    else:
        r = pqap(w, s, 0x0305)
        assert (r.rc, r.answered_by) == (0x01, "vfio_ap")


@pytest.mark.parametrize("sid", PRE_E4)
def test_pqap_pin_failure_and_dma_unmap(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = w.bus.devices[0x0305].drvdata
    assert pqap(w, s, 0x0305, nib=1 << 30).rc == 0x06, "outside guest memory: the pin fails"
    pqap(w, s, 0x0305, nib=0x5000)
    assert m.vdev.pins == {5: 1}
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("dma-unmap iova=0x5123", iova=0x5123), rec) == 0
    assert lock_steps(rec) == [], "the IOMMU notifier takes no lock"
    assert m.vdev.pins == {}, "page iova >> 12 unpinned once"
    assert (q.saved_pfn, q.saved_isc) == (5, 3), "pre-E4: the saved state is not touched"
    assert vm.unmapped == ((0x5000, 0x6000),)
    assert pqap(w, s, 0x0305, nib=0x5008).rc == 0x06, "the unmapped page cannot be pinned again"
    # unmapping a page without a pin does not drive a pin count below zero
    run_op(w, s, mdev_actor(), op("dma-unmap iova=0x9000", iova=0x9000))
    assert m.vdev.pins == {}
    # without iova: all guest memory, but the notifier unpins only page 0
    pqap(w, s, 0x0305, nib=0x3000)
    run_op(w, s, mdev_actor(), op("dma-unmap"))
    assert m.vdev.pins == {3: 1}


def test_pqap_aqic_answers_07_releases_the_new_pin_and_gisc():
    w, s = opened("v5.10")
    w.machine.faults["AQIC-enable"] = (0x07,)

    class Pick1(InlineContext):
        def choose(self, n, label):
            return 1 if label.startswith("fault") else 0

    k = Pick1(w, VCPU.name)
    r = run_inline(s.operation(k, VCPU, Operation("pqap-aqic-enable", "x", apqn=0x0305, isc=3, nib=0x1000)), k)
    assert (r.rc, r.cc) == (0x07, 3)
    assert w.mdevs["m0"].vdev.pins == {} and w.vms["g0"].gisc_refs == {}
    assert w.bus.devices[0x0305].drvdata.saved_isc == NO_ISC


@pytest.mark.parametrize("sid,rc", [("v5.10", 0x00), ("v5.12", 0x00), ("v5.15", 0x08)])
def test_gisc_registration_failure(sid, rc):
    """Not detected before v5.15 (the negative value goes into the AQIC as the ISC); v5.15 answers 0x08
    and keeps the page it pinned [U]."""
    w, s = opened(sid)
    w.machine.faults["GISC"] = (1,)

    class Fail(InlineContext):
        def choose(self, n, label):
            return 1 if label == "fault:GISC" else 0

    k = Fail(w, VCPU.name)
    rec: list = []
    r = run_inline(s.operation(k, VCPU, Operation("pqap-aqic-enable", "x", apqn=0x0305, isc=3, nib=0x1000)),
                   k, rec)
    assert r.rc == rc
    assert w.vms["g0"].gisc_refs == {}
    aqics = [o.arg for _, o, _ in rec if isinstance(o, Insn) and o.name == "AQIC"]
    if rc == 0x08:
        assert aqics == [] and w.mdevs["m0"].vdev.pins == {1: 1}, "the pin leaks (fixed only in v6.8)"
    else:
        assert len(aqics) == 1 and aqics[0].isc < 0


# ================================================================================== v5.12 kvm_busy wait

@pytest.mark.parametrize("sid", ("v5.12", "v15-draft"))
def test_pqap_waits_for_kvm_busy_with_the_lock_dropped(sid):
    w, s = opened(sid)
    m = w.mdevs["m0"]
    m.kvm_busy = True  # a set_kvm/unset_kvm of another task is between its two L sections
    o = Operation("pqap-aqic-enable", "x", apqn=0x0305, isc=3, nib=0x1000)
    vcpu = Stepper(w, lambda k: s.operation(k, VCPU, o), VCPU.name)
    assert not vcpu.run(), "the vCPU sleeps on wait_for_kvm"
    assert w.matrix_lock.holders == {}, "L is dropped while sleeping"
    assert w.vms["g0"].vcpus[0].mutex.holders == {VCPU.name: "w"}
    # another task takes L meanwhile: the store refuses (kvm_busy) and releases it
    rec: list = []
    assert run_op(w, s, ADMIN, op("assign-domain m0 6", mdev="m0", ident=6), rec) == -errno.EBUSY
    assert lock_steps(rec) == [L, un(L)]
    # the busy task finishes: kvm_busy := false, wake_up_all
    run_path(w, s.clear_kvm_busy, m, name="mdev:m0")
    assert vcpu.run() and vcpu.result.rc == 0x00
    assert lock_steps(vcpu.record) == VCPU_IN + [L, un(L), L, un(L)] + VCPU_OUT
    waits = [o for _, o, _ in vcpu.record if isinstance(o, WaitDepWait)]
    assert waits and all(x.drop == (w.matrix_lock,) for x in waits)
    assert waits[0].node.cls == "(wait)&matrix_mdev->kvm_busy"


def test_v5_15_has_no_kvm_busy_wait():
    w, s = opened("v5.15")
    w.mdevs["m0"].kvm_busy = True  # not a field v5.15 reads
    assert pqap(w, s, 0x0305).rc == 0x00


def test_v5_12_set_kvm_marks_kvm_busy_around_the_masks():
    w, s = build("v5.12", scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    rec: list = []
    run_op(w, s, mdev_actor(), op("open"), rec)
    seq = []
    for _st, o, _r in rec:
        if isinstance(o, Write) and o.field in ("kvm_busy", "pqap_hook", "kvm") and o.obj.kind in ("mdev", "vm"):
            seq.append(f"W {o.obj.kind}.{o.field}={o.value is not None and o.value is not False}")
        elif isinstance(o, (Acquire, Release)) and o.lock.cls in ("&matrix_dev->lock", "&kvm->lock"):
            seq.append(("+" if isinstance(o, Acquire) else "-") + o.lock.cls)
        elif isinstance(o, Update) and o.field == "masks":
            seq.append("W crycb")
        elif isinstance(o, (WakeAll, WaitDepAcquire, WaitDepRelease)):
            seq.append(type(o).__name__)
    assert seq == ["+&matrix_dev->lock", "WaitDepAcquire", "W mdev.kvm_busy=True", "-&matrix_dev->lock",
                   "+&kvm->lock", "W crycb", "-&kvm->lock", "+&matrix_dev->lock", "W vm.pqap_hook=True",
                   "W mdev.kvm=True", "W mdev.kvm_busy=False", "WaitDepRelease", "WakeAll",
                   "-&matrix_dev->lock"]


def test_v5_12_reset_ioctl_waits_for_kvm_busy():
    w, s = opened("v5.12")
    m = w.mdevs["m0"]
    m.kvm_busy = True
    reset = Stepper(w, lambda k: s.operation(k, mdev_actor(), op("reset")), "mdev:m0")
    assert not reset.run() and w.matrix_lock.holders == {}
    run_path(w, s.clear_kvm_busy, m, name="other")
    assert reset.run() and reset.result == 0
    assert lock_steps(reset.record) == [L, un(L), L, un(L)]


# ================================================================================== stores (§5, §7.3)

STORE_VERBS = (("assign-adapter", 4), ("unassign-adapter", 3), ("assign-domain", 6), ("unassign-domain", 5),
               ("assign-control-domain", 6), ("unassign-control-domain", 5))


@pytest.mark.parametrize("sid", PRE_E4)
def test_stores_while_attached(sid):
    w, s = build(sid, scenario(domains=(5, 6), cdoms=(5, 6),
                               mdevs=(mdev(cdoms=(5,), open_by="g0"),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    for verb, ident in STORE_VERBS:
        rec: list = []
        before = (m.matrix.apm, m.matrix.aqm, m.matrix.adm)
        rc = run_op(w, s, ADMIN, op(f"{verb} m0 {ident}", mdev="m0", ident=ident), rec)
        if sid == "v15-draft":
            # no refusal while attached: the store rewrites the CRYCB from the matrix under L
            assert rc == len(f"{ident}\n"), verb
            assert lock_steps(rec) == [L, KVM, un(KVM), un(L)], verb
            assert vm.crycb.masks == (m.matrix.apm, m.matrix.aqm, m.matrix.adm)
        else:
            assert rc == -errno.EBUSY, verb
            assert (m.matrix.apm, m.matrix.aqm, m.matrix.adm) == before
            if sid in ("v5.10", "v5.11", "pqap-v4-draft"):
                assert lock_steps(rec) == [], "the mdev->kvm test takes no lock"
                assert [o.field for _, o, _ in rec if hasattr(o, "field")] == ["kvm"]
            else:
                assert lock_steps(rec) == [L, un(L)]
    if sid == "v15-draft":
        assert vm.crycb.masks == (Mask.of([4]), Mask.of([6]), Mask.of([6]))


@pytest.mark.parametrize("sid", PRE_E4)
def test_stores_without_a_guest(sid):
    w, s = build(sid, scenario(domains=(5, 6), mdevs=(mdev(),)))
    m = w.mdevs["m0"]
    for verb, ident in STORE_VERBS:
        rec: list = []
        rc = run_op(w, s, ADMIN, op(f"{verb} m0 {ident}", mdev="m0", ident=ident), rec)
        assert rc == len(f"{ident}\n"), verb
        assert lock_steps(rec) == [L, un(L)], verb
    assert (m.matrix.apm, m.matrix.aqm, m.matrix.adm) == (Mask.of([4]), Mask.of([6]), Mask.of([6]))
    assert w.vms["g0"].crycb.masks == (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY)


@pytest.mark.parametrize("sid", PRE_E4)
def test_assignment_errors(sid):
    sc = scenario(adapters=(3, 4, 5), domains=(5, 6), apmask=(5,), aqmask=(5,),
                  mdevs=(mdev("m0", adapters=(3,)), mdev("m1", adapters=(), domains=(5,))))
    w, s = build(sid, sc)
    m1 = w.mdevs["m1"]
    assert run_path(w, s.assign_adapter_store, m1, "3\n") == -errno.EADDRINUSE
    assert m1.matrix.apm == Mask.EMPTY, "the refused bit is cleared again"
    assert run_path(w, s.assign_adapter_store, m1, "5\n") == -errno.EADDRNOTAVAIL, "05.0005 is zcrypt's"
    assert run_path(w, s.assign_adapter_store, m1, "9\n") == -errno.EADDRNOTAVAIL, "no over-provisioning"
    assert m1.matrix.apm == Mask.EMPTY
    assert run_path(w, s.assign_adapter_store, m1, "256\n") == -errno.ENODEV
    assert run_path(w, s.unassign_adapter_store, m1, "256\n") == -errno.ENODEV
    assert run_path(w, s.assign_domain_store, m1, "0x100\n") == -errno.ENODEV
    assert run_path(w, s.assign_control_domain_store, m1, "300\n") == -errno.ENODEV
    assert run_path(w, s.assign_adapter_store, m1, "x\n") == -errno.EINVAL
    assert run_path(w, s.assign_adapter_store, m1, "4\n") == 2
    # an empty adapter set: one queue device of the domain bound to vfio_ap suffices [I]
    m2_sc = scenario(adapters=(3,), domains=(5, 6), mdevs=(mdev("m2", adapters=(), domains=()),))
    w2, s2 = build(sid, m2_sc)
    m2 = w2.mdevs["m2"]
    assert run_path(w2, s2.assign_domain_store, m2, "6\n") == 2
    assert run_path(w2, s2.assign_domain_store, m2, "7\n") == -errno.EADDRNOTAVAIL
    # control domains: no reservation or sharing check
    assert run_path(w2, s2.assign_control_domain_store, m2, "200\n") == 4


def test_unassign_while_attached_v15_unplugs_from_the_guest():
    w, s = build("v15-draft", scenario(mdevs=(mdev(adapters=(3, 4), open_by="g0"),), actors=(mdev_actor(),)))
    vm = w.vms["g0"]
    assert vm.crycb.apm == Mask.of([3, 4])
    assert run_op(w, s, ADMIN, op("unassign-adapter m0 4", mdev="m0", ident=4)) == 2
    assert vm.crycb.apm == Mask.of([3])
    assert w.machine.queues.get(0x0405) is None, "no reset of the unplugged queue in this draft"


def test_v15_store_refuses_only_while_kvm_busy():
    w, s = opened("v15-draft")
    w.mdevs["m0"].kvm_busy = True
    rec: list = []
    assert run_op(w, s, ADMIN, op("assign-adapter m0 4", mdev="m0", ident=4), rec) == -errno.EBUSY
    assert lock_steps(rec) == [L, un(L)]
    assert [o.field for _, o, _ in rec if hasattr(o, "field")] == ["kvm_busy"]


# ================================================================================== reset ioctl

@pytest.mark.parametrize("sid", PRE_E4)
def test_reset_ioctl(sid):
    w, s = opened(sid, adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    pqap(w, s, 0x0405, isc=5, nib=0x7000)
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("reset"), rec) == 0
    assert lock_steps(rec) == [L, un(L)]
    assert [o.apqn for _, o, _ in rec if isinstance(o, Insn) and o.name == "ZAPQ"] == [0x0305, 0x0405]
    assert vm.gisc_refs == {} and m.vdev.pins == {}, "the reset releases the IRQ resources"
    assert vm.crycb.apm == Mask.of([3, 4]), "the CRYCB is untouched"


# ================================================================================== remove (§4.3)

@pytest.mark.parametrize("sid", PRE_E4)
def test_remove_of_a_closed_mdev(sid):
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    m = w.mdevs["m0"]
    avail = w.matrix_dev.available_instances
    rec: list = []
    assert run_op(w, s, ADMIN, op("remove m0", mdev="m0"), rec) == 0
    assert lock_steps(rec) == [L, un(L)]
    assert m.freed and w.matrix_dev.mdev_list == () and w.matrix_dev.available_instances == avail + 1
    assert [o.apqn for _, o, _ in rec if isinstance(o, Insn) and o.name == "ZAPQ"] == [0x0305]
    assert run_op(w, s, ADMIN, op("remove m0", mdev="m0")) == -errno.ENODEV


@pytest.mark.parametrize("sid", PRE_E4)
def test_remove_busy_test(sid):
    """The driver body's -EBUSY while a VM is attached: unlocked (v5.10/v5.11/pqap-v4), under L
    (v5.12, v15-draft), none in v5.15."""
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    m.kvm = vm  # as a leftover of a notifier (the device itself is closed)
    rec: list = []
    run_path(w, s.mdev_remove, m, record=rec)
    if sid == "v5.15":
        assert lock_steps(rec) == [L, un(L)] and m.freed
    else:
        assert not m.freed and m in w.matrix_dev.mdev_list, "-EBUSY: the mdev is not freed"
        assert lock_steps(rec) == ([] if sid in ("v5.10", "v5.11", "pqap-v4-draft") else [L, un(L)])


@pytest.mark.parametrize("sid", PRE_E4)
def test_remove_waits_for_the_close_without_request(sid):
    w, s = opened(sid)
    rm = Stepper(w, lambda k: s.operation(k, ADMIN, op("remove m0", mdev="m0")), "admin")
    assert not rm.run(), "blocked until the device is closed"
    assert rm.op.cond.blockers(rm.k) == ["mdev:m0"]
    assert not any(st and st[-1] == "vfio_ap_mdev_request" for st, _, _ in rm.record), "no request callback"
    assert run_op(w, s, ADMIN, op("assign-adapter m0 4", mdev="m0", ident=4)) == -errno.ENODEV
    run_op(w, s, mdev_actor(), op("close"))
    assert rm.run() and rm.result == 0 and w.mdevs["m0"].freed
    assert w.vms["g0"].users == 2


def test_create_adds_at_the_head_of_mdev_list():
    w, s = build("v5.10", scenario(mdevs=(mdev("m0"),), actors=(mdev_actor("m5"),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("create m5", mdev="m5"), rec) == 0
    assert lock_steps(rec) == [L, un(L)]
    m5 = w.mdevs["m5"]
    assert w.matrix_dev.mdev_list == (m5, w.mdevs["m0"])
    assert m5.pqap_hook == ("vfio_ap_handle_pqap", "vfio_ap") and m5.group.kvm is w.vms["g0"]
    assert run_op(w, s, ADMIN, op("create m5", mdev="m5")) == -errno.EEXIST
    w.matrix_dev.available_instances = 0
    assert run_op(w, s, ADMIN, op("create m6", mdev="m6")) == -errno.EPERM
    assert "m6" not in w.mdevs and w.matrix_dev.available_instances == 0


# ================================================================================== queue probe / remove

@pytest.mark.parametrize("sid", PRE_E4)
def test_queue_probe_golden(sid):
    w, s = build(sid, scenario(unbound=(0x0405,), mdevs=(mdev(),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    inner = [L, un(L)] if sid == "v5.15" else []
    assert lock_steps(rec) == [DEVLOCK, PERMS, un(PERMS), QLOCK, un(QLOCK)] + inner + [un(DEVLOCK)]
    q = w.bus.devices[0x0405].drvdata
    assert q is not None and q.apqn == 0x0405 and q.saved_isc == NO_ISC and q.matrix_mdev is None
    assert w.bus.devices[0x0405].driver == VFIO_AP
    assert run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405)) == -errno.EBUSY


@pytest.mark.parametrize("sid", PRE_E4)
def test_queue_remove_golden(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    pqap(w, s, 0x0305)
    q = w.bus.devices[0x0305].drvdata
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 03.0005", apqn=0x0305), rec) == len("03.0005\n")
    assert lock_steps(rec) == [DEVLOCK, L, un(L), QLOCK, un(QLOCK), un(DEVLOCK)]
    insns = [o.name for _, o, _ in rec if isinstance(o, Insn)]
    if sid in ("v5.10", "pqap-v4-draft"):
        assert insns[0] == "ZAPQ" and "AQIC" in insns, "reset_queue_apqn, then irq_disable"
    else:
        assert insns[0] == "ZAPQ" and "AQIC" not in insns, "v5.11 reset_queue releases the resources"
    assert q.freed and w.bus.devices[0x0305].drvdata is None and w.bus.devices[0x0305].driver is None
    assert vm.gisc_refs == {} and m.vdev.pins == {}
    assert vm.crycb.apm == Mask.of([3]), "pre-E4: the guest CRYCB is not touched"
    # the write order differs: v5.10 clears drvdata before the reset, v5.11 after it
    zapq = next(i for i, (_, o, _) in enumerate(rec) if isinstance(o, Insn) and o.name == "ZAPQ")
    clear = next(i for i, (_, o, _) in enumerate(rec) if isinstance(o, Write) and o.field == "drvdata")
    assert (clear < zapq) == (sid in ("v5.10", "pqap-v4-draft"))


# ================================================================================== resets, IRQ forms

def test_free_aqic_resources_forms_without_an_mdev():
    """v5.10 clears the saved values in every case (leaking the pin and registration); the v5.11 form
    warns and keeps them."""
    for sid, kept in (("v5.10", False), ("v5.11", True)):
        w, s = opened(sid)
        vm = w.vms["g0"]
        pqap(w, s, 0x0305)
        q = w.bus.devices[0x0305].drvdata
        q.matrix_mdev = None
        run_path(w, s.free_aqic_resources, q)
        assert ((q.saved_isc, q.saved_pfn) == (3, 1)) == kept, sid
        assert vm.gisc_refs == {3: 1} and w.mdevs["m0"].vdev.pins == {1: 1}, "nothing released"


def test_reset_forms_on_a_deconfigured_adapter():
    """ZAPQ answers 0x03: v5.10 reset_queue_apqn → -EIO; v5.11 reset_queue → -EBUSY with the IRQ
    resources released."""
    w, s = opened("v5.10")
    w.machine.adapter_state[3] = "deconfigured"
    assert run_path(w, s.reset_queue_apqn, 3, 5, 1) == -errno.EIO
    w, s = opened("v5.11")
    pqap(w, s, 0x0305)
    q = w.bus.devices[0x0305].drvdata
    w.machine.adapter_state[3] = "deconfigured"
    assert run_path(w, s.reset_queue, q, 1) == -errno.EBUSY
    assert (q.saved_isc, q.saved_pfn) == (NO_ISC, 0) and w.vms["g0"].gisc_refs == {}


def test_reset_forms_on_busy_answers():
    """0x05: v5.10 retries (then -EBUSY); v5.11 gives up at once with -EIO and no release."""

    class Busy(InlineContext):
        def choose(self, n, label):
            return 1 if label == "fault:ZAPQ" else 0

    w, s = opened("v5.10")
    w.machine.faults["ZAPQ"] = (0x05,)
    rec: list = []
    k = Busy(w, "t")
    assert run_inline(s.reset_queue_apqn(k, 3, 5, 1), k, rec) == -errno.EBUSY
    assert [o.name for _, o, _ in rec if isinstance(o, Insn)] == ["ZAPQ", "ZAPQ"]
    w, s = opened("v5.11")
    pqap(w, s, 0x0305)
    q = w.bus.devices[0x0305].drvdata
    w.machine.faults["ZAPQ"] = (0x05,)
    k = Busy(w, "t")
    assert run_inline(s.reset_queue(k, q, 1), k) == -errno.EIO
    assert q.saved_isc == 3, "no release after -EIO"


# ================================================================================== AP bus: AM-0, S-0

@pytest.mark.parametrize("sid", PRE_E4)
def test_apmask_am0_has_no_veto(sid):
    w, s = build(sid, scenario(aqmask=(5,), mdevs=(mdev(adapters=(4,)),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("apmask +4", spec="+4"), rec) == len("+4\n")
    assert w.bus.perms.apm == Mask.of([4]), "no in_use veto before v6.0"
    assert w.bus.devices[0x0405].driver == ZCRYPT and w.bus.devices[0x0305].driver == VFIO_AP
    assert w.mdevs["m0"].matrix.apm == Mask.of([4]), "the assignment stays"
    remove = [L, un(L)]
    assert lock_steps(rec) == [PERMS, un(PERMS),                                  # the store
                               PERMS, un(PERMS),                                  # 03.0005 matches
                               PERMS, un(PERMS),                                  # 04.0005 reserved now
                               DEVLOCK] + remove + [QLOCK, un(QLOCK), un(DEVLOCK),  # queue_remove
                               DEVLOCK, PERMS, un(PERMS), QLOCK, un(QLOCK), un(DEVLOCK)]  # zcrypt
    rec = []
    assert run_op(w, s, ADMIN, op("apmask 0xzz", spec="0xzz"), rec) == -errno.EINVAL
    assert lock_steps(rec) == [PERMS, un(PERMS)] and w.bus.perms.apm == Mask.of([4])
    # written and revised even when unchanged
    rec = []
    assert run_op(w, s, ADMIN, op("aqmask +5", spec="+5"), rec) == len("+5\n")
    assert lock_steps(rec) == [PERMS, un(PERMS)] * 3
    assert run_op(w, s, ADMIN, op("apmask -4", spec="-4")) == len("-4\n")
    assert w.bus.devices[0x0405].driver == VFIO_AP


@pytest.mark.parametrize("sid", PRE_E4)
def test_scan_s0_has_no_driver_callbacks(sid):
    w, s = opened(sid, adapters=(3, 4))
    vm = w.vms["g0"]
    run_op(w, s, HMC, op("remove-adapter 4", ident=4))
    rec: list = []
    assert run_op(w, s, BUS, op("scan"), rec) == 0
    assert lock_steps(rec) == [DEVLOCK, L, un(L), QLOCK, un(QLOCK), un(DEVLOCK)], "one queue_remove"
    assert not any("on_cfg" in "/".join(st) or "scan_complete" in "/".join(st) for st, _, _ in rec)
    assert 0x0405 not in w.bus.devices and w.bus.qci_info.apm == Mask.of([3])
    assert vm.crycb.apm == Mask.of([3, 4]), "pre-E4: the guest keeps the adapter in its CRYCB"
    assert not w.bus.scan_running
    run_op(w, s, HMC, op("add-adapter 4", ident=4))
    rec = []
    run_op(w, s, BUS, op("scan"), rec)
    assert w.bus.devices[0x0405].driver == VFIO_AP
    inner = [L, un(L)] if sid == "v5.15" else []
    assert lock_steps(rec) == [DEVLOCK, PERMS, un(PERMS), PERMS, un(PERMS), QLOCK, un(QLOCK)] + inner + \
        [un(DEVLOCK)], "zcrypt's gate refuses, vfio_ap's accepts"


# ================================================================================== schedules

def _random_schedules(sc, sid, seeds):
    from apactors.engine.process import Runtime

    for seed in seeds:
        w, s = build(sid, sc)
        rng = random.Random(seed)
        rt = Runtime(w, s, lambda n, label: rng.randrange(n), None)
        for a in sc.actors:
            p = rt.add(a.name, a.kind, a)
            p.ops.extend(a.expanded_ops())
        for _ in range(20000):
            en = [p for p in rt.procs if p.enabled()]
            if not en:
                break
            rt.step(rng.choice(en))
        yield w, rt


@pytest.mark.parametrize("sid", PRE_E4)
def test_random_schedules_of_the_builtin_scenarios_run(sid):
    """Every built-in scenario builds and runs under the scheme (findings are not judged here; a crash
    must be a modelled oops, never a Python error)."""
    from apactors.scenario import builtin_scenarios, load_builtin

    for name, _ in builtin_scenarios():
        for w, rt in _random_schedules(load_builtin(name), sid, range(3)):
            for p in rt.procs:
                assert p.crash is None or isinstance(p.crash, Oops), (name, p.name)


def test_v5_15_smoke_schedules_are_clean():
    from apactors.engine.process import CRASHED
    from apactors.scenario import load_builtin

    for w, rt in _random_schedules(load_builtin("smoke"), "v5.15", range(20)):
        assert not [p for p in rt.procs if p.state == CRASHED]
        assert not [p for p in rt.procs if p.live()]
        for lk in w.locks():
            assert not lk.holders, lk
