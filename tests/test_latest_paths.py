"""Scheme `latest`: lock steps of single paths against golden lists written from the domain doc
(§4.3, §5.0, §5.5-§5.8, §7), and the semantics they must have (AQIC answers, IRQ state,
over-provisioning, the in_use veto, the assignment errors)."""

from __future__ import annotations

import random

import pytest

from apactors.model import errno
from apactors.model.build import InlineContext, SetupError, build_world, run_inline
from apactors.model.locks import Srcu
from apactors.model.masks import Mask
from apactors.model.ops import Acquire, Block, Insn, Note, Release
from apactors.model.schemes import get_scheme
from apactors.model.world import NO_ISC, VFIO_AP, ZCRYPT
from apactors.scenario import ActorSpec, GuestSpec, HostSpec, MdevSpec, Operation, Scenario
from path_builders import (  # noqa: F401 - shared with the other golden-test files
    ADMIN, ATTR, BUS, DEVLOCK, GUESTS, HMC, HOOK_W, KVM, MDEVS, QLOCK, VCPU, VMM, WORK, lock_steps, mdev, mdev_actor, op, scenario, un,
)

LATEST = get_scheme("latest")


def run_op(world, scheme, actor, operation, record=None):
    k = InlineContext(world, actor.name)
    return run_inline(scheme.operation(k, actor, operation), k, record)


def run_path(world, gen_fn, *args, record=None):
    k = InlineContext(world, "test")
    return run_inline(gen_fn(k, *args), k, record)


def build(sc):
    return build_world(LATEST, sc)


# ----------------------------------------------------------------------------------------- setup

def test_setup_binds_queues_and_builds_mdevs():
    sc = scenario(adapters=(3, 4), domains=(5, 6), apmask=(4,), aqmask=(6,), unbound=(0x0306,),
                  mdevs=(mdev(adapters=(3,), domains=(5,), cdoms=(5,), open_by="g0"),),
                  actors=(mdev_actor(),))
    w, s = build(sc)
    drivers = {apqn: d.driver for apqn, d in w.bus.devices.items()}
    assert drivers == {0x0305: VFIO_AP, 0x0306: None, 0x0405: VFIO_AP, 0x0406: ZCRYPT}
    m = w.mdevs["m0"]
    assert set(m.qtable) == {0x0305}
    assert (m.shadow_apcb.apm, m.shadow_apcb.aqm, m.shadow_apcb.adm) == (Mask.of([3]), Mask.of([5]), Mask.of([5]))
    vm = w.vms["g0"]
    assert vm.crycb.masks == (Mask.of([3]), Mask.of([5]), Mask.of([5]))
    assert vm.pqap_hook is m and m.kvm is vm
    assert w.files == {"mdev:m0": m}
    assert vm.users == 4, "VM file + kvm-vfio device + vfio device (v6.8+) + vfio_ap"
    assert m.group in vm.kvm_vfio.groups


def test_setup_refuses_an_invalid_assignment():
    sc = scenario(apmask=(3,), aqmask=(5,), mdevs=(mdev(adapters=(3,), domains=(5,)),))
    with pytest.raises(SetupError, match="EADDRNOTAVAIL"):
        build(sc)


# ----------------------------------------------------------------------------------------- stores

def test_assign_adapter_without_a_guest():
    w, s = build(scenario(mdevs=(mdev(),)))
    m = w.mdevs["m0"]
    rec: list = []
    rc = run_path(w, s.assign_adapter_store, m, "4\n", record=rec)
    assert rc == 2
    assert lock_steps(rec) == [ATTR, GUESTS, MDEVS, QLOCK, un(QLOCK), un(MDEVS), un(GUESTS), un(ATTR)]
    assert m.shadow_apcb.apm == Mask.of([3, 4]) and set(m.qtable) == {0x0305, 0x0405}


def test_assign_adapter_with_a_guest_hot_plugs():
    w, s = build(scenario(mdevs=(mdev(open_by="g0"),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    rc = run_op(w, s, ADMIN, op("assign-adapter m0 4", mdev="m0", ident=4), rec)
    assert rc == 2
    assert lock_steps(rec) == [ATTR, GUESTS, KVM, MDEVS, QLOCK, un(QLOCK), un(MDEVS), un(KVM), un(GUESTS),
                               un(ATTR)]
    assert vm.crycb.apm == Mask.of([3, 4])
    stacks = [st for st, o, _ in rec if o.__class__.__name__ == "Update" and o.field == "masks"]
    assert stacks and stacks[0][-1] == "kvm_arch_crypto_set_masks"


def test_assign_errors():
    sc = scenario(adapters=(3, 4, 5), domains=(5,), apmask=(5,), aqmask=(5,),
                  mdevs=(mdev("m0", adapters=(3,)), mdev("m1", adapters=(), domains=(5,))))
    w, s = build(sc)
    m1 = w.mdevs["m1"]
    assert run_path(w, s.assign_adapter_store, m1, "3\n") == -errno.EADDRINUSE
    assert m1.matrix.apm == Mask.EMPTY, "a refused assignment leaves the matrix unchanged"
    assert run_path(w, s.assign_adapter_store, m1, "5\n") == -errno.EADDRNOTAVAIL
    assert m1.matrix.apm == Mask.EMPTY
    assert run_path(w, s.assign_adapter_store, m1, "256\n") == -errno.ENODEV
    assert run_path(w, s.assign_domain_store, m1, "0x100\n") == -errno.ENODEV
    assert run_path(w, s.assign_control_domain_store, m1, "300\n") == -errno.ENODEV
    assert run_path(w, s.assign_adapter_store, m1, "x\n") == -errno.EINVAL
    # control domains: no reservation or sharing check, no AP bus mutex
    rec: list = []
    assert run_path(w, s.assign_control_domain_store, m1, "5\n", record=rec) == 2
    assert lock_steps(rec) == [GUESTS, MDEVS, un(MDEVS), un(GUESTS)]
    # over-provisioning: an adapter outside the host configuration may be assigned
    assert run_path(w, s.assign_adapter_store, m1, "9\n") == 2
    assert m1.matrix.apm == Mask.of([9]) and m1.shadow_apcb.apm == Mask.EMPTY


def test_store_on_a_removed_or_missing_mdev():
    w, s = build(scenario(mdevs=(mdev(),)))
    assert run_op(w, s, ADMIN, op("assign-adapter m9 4", mdev="m9", ident=4)) == -errno.ENOENT
    w.mdevs["m0"].removing = True
    rec: list = []
    assert run_op(w, s, ADMIN, op("assign-adapter m0 4", mdev="m0", ident=4), rec) == -errno.ENODEV
    assert rec == []


def test_unassign_adapter_hot_unplugs_and_resets():
    w, s = build(scenario(mdevs=(mdev(adapters=(3, 4), open_by="g0"),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q4 = m.qtable[0x0405]
    rec: list = []
    rc = run_op(w, s, ADMIN, op("unassign-adapter m0 4", mdev="m0", ident=4), rec)
    assert rc == 2
    assert lock_steps(rec) == [GUESTS, KVM, MDEVS, WORK, un(WORK), un(MDEVS), un(KVM), un(GUESTS)]
    assert vm.crycb.apm == Mask.of([3]) and m.shadow_apcb.apm == Mask.of([3])
    assert set(m.qtable) == {0x0305} and q4.matrix_mdev is None
    zapqs = [o.apqn for _, o, _ in rec if isinstance(o, Insn) and o.name == "ZAPQ"]
    assert zapqs == [0x0405], "only the queue that left the guest is reset"
    # the order of the doc: CRYCB written before the reset, the link cleared after it
    kinds = [(o.__class__.__name__, getattr(o, "field", getattr(o, "name", ""))) for _, o, _ in rec]
    assert kinds.index(("Update", "masks")) < kinds.index(("Insn", "ZAPQ")) < kinds.index(("Write", "matrix_mdev"))


def test_unassign_domain_and_control_domain():
    w, s = build(scenario(domains=(5, 6), mdevs=(mdev(domains=(5, 6), cdoms=(5,), open_by="g0"),),
                          actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    assert run_path(w, s.unassign_domain_store, m, "6\n") == 2
    assert vm.crycb.aqm == Mask.of([5])
    assert run_path(w, s.unassign_domain_store, m, "6\n") == 2, "not assigned: count, nothing done"
    rec: list = []
    assert run_path(w, s.unassign_control_domain_store, m, "5\n", record=rec) == 2
    assert lock_steps(rec) == [GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS)]
    assert vm.crycb.adm == Mask.EMPTY


# ----------------------------------------------------------------------------------------- open/close

def test_open_runs_set_kvm_under_the_vfio_locks():
    w, s = build(scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert lock_steps(rec) == [
        "+&group->group_lock", "+&new_dev_set->lock", "+&group->kvm_ref_lock", "-&group->kvm_ref_lock",
        GUESTS, KVM, HOOK_W, MDEVS, un(MDEVS), un(HOOK_W), un(KVM), un(GUESTS),
        "-&new_dev_set->lock", "-&group->group_lock"]
    assert vm.pqap_hook is m and m.kvm is vm and m.vdev.kvm is vm and m.vdev.open_count == 1
    assert vm.crycb.masks == (Mask.of([3]), Mask.of([5]), Mask.EMPTY)
    assert w.files["mdev:m0"] is m
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0, "holds a file already: nothing"


def test_refused_open_leaves_the_device_closed():
    sc = scenario(guests=("g0", "g1"), mdevs=(mdev("m0", open_by="g0"), mdev("m1", adapters=(4,))),
                  actors=(mdev_actor("m0", "g0"), mdev_actor("m1", "g0")))
    w, s = build(sc)
    vm = w.vms["g0"]
    users = vm.users
    rc = run_op(w, s, mdev_actor("m1", "g0"), op("open"))
    assert rc == -errno.EPERM, "the VM already has a PQAP hook"
    m1 = w.mdevs["m1"]
    assert m1.vdev.open_count == 0 and m1.vdev.kvm is None and m1.kvm is None
    assert vm.users == users, "the device's VM reference was dropped again"
    assert "mdev:m1" not in w.files
    rec: list = []
    assert run_op(w, s, mdev_actor("m1", "g0"), op("close"), rec) == 0 and rec == []


def test_close_runs_unset_kvm():
    w, s = build(scenario(domains=(5, 6), mdevs=(mdev(domains=(5, 6), open_by="g0"),),
                          actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    assert lock_steps(rec) == [
        "+&group->group_lock", "+&new_dev_set->lock",
        GUESTS, KVM, HOOK_W, MDEVS, WORK, un(WORK), WORK, un(WORK), un(MDEVS), un(HOOK_W), un(KVM),
        un(GUESTS), "-&new_dev_set->lock", "-&group->group_lock"]
    assert vm.pqap_hook is None and m.kvm is None and m.vdev.kvm is None
    assert vm.crycb.masks == (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY)
    assert vm.users == 2
    assert w.files == {}
    # kvm_put_kvm of unset_kvm comes after the update locks are released (latest, §5.8)
    frames = [(type(o).__name__, st) for st, o, _ in rec]
    put = next(i for i, (n, st) in enumerate(frames) if st[-1] == "kvm_put_kvm" and "vfio_ap_mdev_unset_kvm" in st)
    last_release = max(i for i, (n, st) in enumerate(frames) if st[-1] == "release_update_locks_for_kvm")
    assert put > last_release


def test_kvm_vfio_release_then_open_fails():
    w, s = build(scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    rec: list = []
    assert run_op(w, s, VMM, op("kvm-vfio-release"), rec) == 0
    assert lock_steps(rec) == [KVM, "+&group->kvm_ref_lock", "-&group->kvm_ref_lock", un(KVM)]
    assert w.vms["g0"].users == 1
    assert run_op(w, s, VMM, op("kvm-vfio-release")) == 0, "second time: nothing"
    assert w.vms["g0"].users == 1
    assert run_op(w, s, mdev_actor(), op("open")) == -errno.EINVAL


# ----------------------------------------------------------------------------------------- PQAP

def pqap(w, s, apqn, enable=True, isc=3, nib=0x1000, record=None):
    verb = "pqap-aqic-enable" if enable else "pqap-aqic-disable"
    o = Operation(verb, f"{verb} {apqn:04x}", apqn=apqn, isc=isc if enable else None,
                  nib=nib if enable else None)
    return run_op(w, s, VCPU, o, record)


def opened(**kw):
    return build(scenario(mdevs=(mdev(open_by="g0", **kw),), actors=(mdev_actor(), VCPU)))


def test_pqap_enable_lock_steps_and_irq_state():
    w, s = opened()
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = m.qtable[0x0305]
    rec: list = []
    r = pqap(w, s, 0x0305, record=rec)
    assert lock_steps(rec) == ["+&vcpu->mutex", "+&kvm->srcu(R)", "+&kvm->arch.crypto.pqap_hook_rwsem(r)",
                               MDEVS, un(MDEVS), "-&kvm->arch.crypto.pqap_hook_rwsem(r)", "-&kvm->srcu(R)",
                               "-&vcpu->mutex"]
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x00, None, "vfio_ap")
    assert r.gr1 >> 32 == 0, "vfio_ap writes the status into the low half, high half zero"
    assert (q.saved_isc, q.saved_iova, q.saved_vm) == (3, 0x1000, vm)
    assert vm.gisc_refs == {3: 1} and m.vdev.pins == {1: 1}
    assert w.machine.queues[0x0305].irq == 1
    # enabling again releases the previously saved registration and pin (§6.4)
    pqap(w, s, 0x0305, isc=4, nib=0x2008)
    assert vm.gisc_refs == {4: 1} and m.vdev.pins == {2: 1}
    # disabling releases everything
    r = pqap(w, s, 0x0305, enable=False)
    assert (r.ret, r.rc) == (0, 0x00)
    assert (q.saved_isc, q.saved_iova) == (NO_ISC, 0)
    assert vm.gisc_refs == {} and m.vdev.pins == {}
    assert w.machine.queues[0x0305].irq == 0


def test_pqap_queue_not_in_qtable():
    w, s = opened()
    r = pqap(w, s, 0x0405)  # 04.0005 exists and is bound, but not assigned to m0
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "vfio_ap")


def test_pqap_no_hook_kvm_answers_in_the_high_half():
    w, s = build(scenario(mdevs=(mdev(),), actors=(mdev_actor(), VCPU)))
    rec: list = []
    r = pqap(w, s, 0x0305, record=rec)
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, 0x01, 3, "kvm")
    assert r.gr1 >> 32 == 0x00010000 and r.gr1 & 0xFFFFFFFF == (1 << 47 | 3) & 0xFFFFFFFF
    assert lock_steps(rec) == ["+&vcpu->mutex", "+&kvm->srcu(R)", "+&kvm->arch.crypto.pqap_hook_rwsem(r)",
                               "-&kvm->arch.crypto.pqap_hook_rwsem(r)", "-&kvm->srcu(R)", "-&vcpu->mutex"]


def test_pqap_invalid_nib_unmapped_page_and_pv_guest():
    w, s = opened()
    m, vm = w.mdevs["m0"], w.vms["g0"]
    assert pqap(w, s, 0x0305, nib=0).rc == 0x06
    assert pqap(w, s, 0x0305, nib=1 << 30).rc == 0x06
    assert run_op(w, s, mdev_actor(), op("dma-unmap iova=0x1000", iova=0x1000)) == 0
    assert vm.unmapped == ((0x1000, 0x2000),)
    assert pqap(w, s, 0x0305, nib=0x1008).rc == 0x06
    assert pqap(w, s, 0x0305, nib=0x3000).rc == 0x00
    assert m.vdev.pins == {3: 1} and vm.gisc_refs == {3: 1}
    # a protected guest: its NIB page is not shared -> 0x06, nothing kept
    w, s = opened()
    run_op(w, s, VMM, op("pv-enable"))
    assert w.vms["g0"].pv and w.vms["g0"].vcpus[0].pv
    r = pqap(w, s, 0x0305)
    assert r.rc == 0x06 and w.mdevs["m0"].vdev.pins == {} and w.vms["g0"].gisc_refs == {}


def test_pqap_aqic_otherwise_changed_releases_the_new_resources():
    w, s = opened()
    w.machine.faults["AQIC-enable"] = (0x07,)

    class Pick1(InlineContext):
        def choose(self, n, label):
            return 1 if label.startswith("fault") else 0

    k = Pick1(w, VCPU.name)
    r = run_inline(s.operation(k, VCPU, Operation("pqap-aqic-enable", "x", apqn=0x0305, isc=3, nib=0x1000)), k)
    assert (r.rc, r.cc) == (0x07, 3)
    assert w.mdevs["m0"].vdev.pins == {} and w.vms["g0"].gisc_refs == {}
    assert w.mdevs["m0"].qtable[0x0305].saved_isc == NO_ISC


def test_pqap_gisc_registration_failure_answers_06():
    w, s = opened()
    w.machine.faults["GISC"] = (1,)

    class Fail(InlineContext):
        def choose(self, n, label):
            return 1 if label == "fault:GISC" else 0

    k = Fail(w, VCPU.name)
    r = run_inline(s.operation(k, VCPU, Operation("pqap-aqic-enable", "x", apqn=0x0305, isc=3, nib=0x1000)), k)
    assert r.rc == 0x06, "latest answers 0x06 (v6.0-v6.8: 0x08)"
    assert w.mdevs["m0"].vdev.pins == {} and w.vms["g0"].gisc_refs == {}


def test_hook_into_a_freed_mdev_is_a_freed_object_access():
    w, s = opened()
    w.mdevs["m0"].freed = True  # as if removed while the VM still pointed at it
    with pytest.raises(SetupError, match="use-after-free"):
        pqap(w, s, 0x0305)


def test_pqap_without_aiv_and_program_checks():
    w, s = opened()
    vcpu = w.vms["g0"].vcpus[0]
    vcpu.eca_aiv = False
    r = pqap(w, s, 0x0305)
    assert (r.ret, r.rc) == (-errno.EOPNOTSUPP, None)
    vcpu.eca_aiv = True
    vcpu.problem_state = True
    assert pqap(w, s, 0x0305).pgm == "PGM_PRIVILEGED_OP"


def test_dma_unmap_disables_queues_whose_nib_is_in_the_range():
    w, s = opened()
    m = w.mdevs["m0"]
    pqap(w, s, 0x0305, nib=0x5000)
    rec: list = []
    run_op(w, s, mdev_actor(), op("dma-unmap iova=0x5123", iova=0x5123), rec)
    assert lock_steps(rec) == [MDEVS, un(MDEVS)]
    assert m.qtable[0x0305].saved_iova == 0 and m.vdev.pins == {}


def test_reset_ioctl_takes_only_mdevs_lock():
    w, s = opened(domains=(5,))
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("reset"), rec) == 0
    assert lock_steps(rec) == [MDEVS, WORK, un(WORK), un(MDEVS)]


# ----------------------------------------------------------------------------------------- AP bus

def test_over_provisioned_adapter_is_plugged_when_its_queue_is_bound():
    w, s = build(scenario(unbound=(0x0405,), mdevs=(mdev(open_by="g0"),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    assert run_path(w, s.assign_adapter_store, m, "4\n") == 2
    assert m.matrix.apm == Mask.of([3, 4])
    assert m.shadow_apcb.apm == Mask.of([3]) and vm.crycb.apm == Mask.of([3]), "04.0005 is not bound"
    rec: list = []
    assert run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    assert lock_steps(rec) == [DEVLOCK, ATTR, un(ATTR), QLOCK, un(QLOCK),
                               GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS), "-&dev->mutex"]
    assert w.bus.devices[0x0405].driver == VFIO_AP
    assert set(m.qtable) == {0x0305, 0x0405}
    assert m.shadow_apcb.apm == Mask.of([3, 4]) and vm.crycb.apm == Mask.of([3, 4])
    assert run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405)) == -errno.EBUSY
    assert run_op(w, s, ADMIN, op("bind 07.0005", apqn=0x0705)) == -errno.ENODEV


def test_queue_probe_without_a_matching_mdev():
    w, s = build(scenario(unbound=(0x0405,), mdevs=(mdev(),)))
    rec: list = []
    run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405), rec)
    assert lock_steps(rec) == [DEVLOCK, ATTR, un(ATTR), QLOCK, un(QLOCK), GUESTS, MDEVS, un(MDEVS),
                               un(GUESTS), "-&dev->mutex"]


def test_bind_of_a_reserved_queue_is_refused():
    w, s = build(scenario(apmask=(4,), aqmask=(5,), unbound=(0x0405,)))
    assert run_op(w, s, ADMIN, op("bind 04.0005", apqn=0x0405)) == -errno.ENODEV
    assert w.bus.devices[0x0405].driver is None


def test_queue_remove_unplugs_the_adapter():
    w, s = opened(adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = m.qtable[0x0405]
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    assert lock_steps(rec) == [DEVLOCK, GUESTS, KVM, MDEVS, WORK, un(WORK), un(MDEVS), un(KVM), un(GUESTS),
                               QLOCK, un(QLOCK), "-&dev->mutex"]
    assert q.freed and w.bus.devices[0x0405].drvdata is None and w.bus.devices[0x0405].driver is None
    assert m.shadow_apcb.apm == Mask.of([3]) and vm.crycb.apm == Mask.of([3])
    assert set(m.qtable) == {0x0305}
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405)) == -errno.ENODEV


def test_in_use_vetoes_reserving_an_assigned_apqn():
    w, s = build(scenario(aqmask=(5,), mdevs=(mdev(),)))
    rec: list = []
    rc = run_op(w, s, ADMIN, op("apmask +3", spec="+3"), rec)
    assert rc == -errno.EBUSY
    assert lock_steps(rec) == [ATTR, GUESTS, MDEVS, un(MDEVS), un(GUESTS), un(ATTR)]
    assert w.bus.perms.apm == Mask.EMPTY
    assert any(isinstance(o, Note) and "in use by mdev m0" in o.text for _, o, _ in rec)
    assert run_op(w, s, ADMIN, op("apmask 0xzz", spec="0xzz")) == -errno.EINVAL


def test_apmask_reserving_a_free_queue_rebinds_it_to_zcrypt():
    w, s = build(scenario(aqmask=(5,), mdevs=(mdev(),)))
    assert w.bus.devices[0x0405].driver == VFIO_AP
    rec: list = []
    assert run_op(w, s, ADMIN, op("apmask +4", spec="+4"), rec) == len("+4\n")
    assert w.bus.perms.apm == Mask.of([4])
    assert w.bus.devices[0x0405].driver == ZCRYPT
    assert w.bus.devices[0x0305].driver == VFIO_AP
    steps = lock_steps(rec)
    # veto check, then one revision pass per device (03.0005 untouched, 04.0005 re-probed)
    assert steps[:6] == [ATTR, GUESTS, MDEVS, un(MDEVS), un(GUESTS), un(ATTR)]
    assert steps[6:] == [ATTR, un(ATTR),                                # 03.0005: matches, skipped
                         ATTR, un(ATTR),                                # 04.0005: reserved now
                         # unbind: queue_remove resets the queue (in the host configuration, no mdev)
                         DEVLOCK, GUESTS, MDEVS, WORK, un(WORK), un(MDEVS), un(GUESTS), QLOCK, un(QLOCK),
                         "-&dev->mutex",
                         # re-probe: zcrypt's gate accepts it
                         DEVLOCK, ATTR, un(ATTR), QLOCK, un(QLOCK), "-&dev->mutex"]
    # clearing bits is never vetoed: 04.0005 goes back to vfio_ap
    assert run_op(w, s, ADMIN, op("apmask -4", spec="-4")) == len("-4\n")
    assert w.bus.devices[0x0405].driver == VFIO_AP


def test_scan_after_an_adapter_left_the_configuration():
    w, s = opened(adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    assert run_op(w, s, HMC, op("remove-adapter 4", ident=4)) == 0
    assert w.machine.apm == Mask.of([3]) and w.matrix_dev.info.apm == Mask.of([3, 4])
    rec: list = []
    assert run_op(w, s, BUS, op("scan"), rec) == 0
    assert lock_steps(rec) == [
        "try+ap_scan_bus_mutex",
        GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS),                    # on_config_changed
        DEVLOCK, GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS), QLOCK, un(QLOCK), "-&dev->mutex",
        GUESTS, un(GUESTS),                                                    # on_scan_complete
        "-ap_scan_bus_mutex"]
    assert [st[-1] for st, o, _ in rec if isinstance(o, Acquire)][1] == "vfio_ap_on_cfg_changed"
    assert [st[-1] for st, o, _ in rec if isinstance(o, Acquire)][2] == "vfio_ap_mdev_cfg_remove"
    assert vm.crycb.apm == Mask.of([3]) and m.shadow_apcb.apm == Mask.of([3])
    assert w.matrix_dev.info.apm == Mask.of([3])
    assert 0x0405 not in w.bus.devices and 0x0405 not in m.qtable
    assert m.matrix.apm == Mask.of([3, 4]), "the assignment stays"
    # the adapter comes back: cfg_add, probe deferred, plugged by on_scan_complete
    assert run_op(w, s, HMC, op("add-adapter 4", ident=4)) == 0
    rec = []
    run_op(w, s, BUS, op("scan"), rec)
    assert vm.crycb.apm == Mask.of([3, 4]) and set(m.qtable) == {0x0305, 0x0405}
    assert m.apm_add == Mask.EMPTY
    tapqs = [o for st, o, _ in rec if isinstance(o, Insn) and o.name == "TAPQ" and o.arg]
    assert tapqs == [], "the adapter type is only tested on added APQNs (apm_add x aqm_add)"
    # adapter and domain come together: TAPQ with the T bit for the new APQN
    w, s = build(scenario(adapters=(3,), domains=(5,), mdevs=(mdev(adapters=(3, 4), domains=(5, 6),
                                                                  open_by="g0"),),
                          actors=(mdev_actor(),)))
    vm, m = w.vms["g0"], w.mdevs["m0"]
    assert vm.crycb.apm == Mask.of([3]) and vm.crycb.aqm == Mask.of([5])
    run_op(w, s, HMC, op("add-adapter 4", ident=4))
    run_op(w, s, HMC, op("add-domain 6", ident=6))
    rec = []
    run_op(w, s, BUS, op("scan"), rec)
    tapqs = [(st[-1], o.apqn) for st, o, _ in rec if isinstance(o, Insn) and o.name == "TAPQ" and o.arg]
    assert tapqs == [("vfio_ap_filter_apid_by_qtype", 0x0406)]
    assert sorted(w.bus.devices) == [0x0305, 0x0306, 0x0405, 0x0406]
    assert vm.crycb.apm == Mask.of([3, 4]) and vm.crycb.aqm == Mask.of([5, 6])
    assert set(m.qtable) == {0x0305, 0x0306, 0x0405, 0x0406}


def test_scan_skips_when_another_scan_runs():
    w, s = build(scenario())
    w.bus.scan_mutex.acquire("other", "w")
    rec: list = []
    assert run_op(w, s, BUS, op("scan"), rec) == 0
    assert lock_steps(rec) == ["try+ap_scan_bus_mutex"]


# ----------------------------------------------------------------------------------------- mdevs

def test_create_and_remove():
    w, s = build(scenario(actors=(mdev_actor("m5"),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("create m5", mdev="m5"), rec) == 0
    assert lock_steps(rec) == [GUESTS, MDEVS, un(MDEVS), un(GUESTS)]
    m = w.mdevs["m5"]
    assert m.group.kvm is w.vms["g0"] and m.group in w.vms["g0"].kvm_vfio.groups
    assert run_op(w, s, ADMIN, op("create m5", mdev="m5")) == -errno.EEXIST
    assert run_path(w, s.assign_adapter_store, m, "3\n") == 2
    assert run_path(w, s.assign_domain_store, m, "5\n") == 2
    rec = []
    assert run_op(w, s, ADMIN, op("remove m5", mdev="m5"), rec) == 0
    assert lock_steps(rec) == [GUESTS, MDEVS, WORK, un(WORK), un(MDEVS), un(GUESTS)]
    assert m.freed and m not in w.matrix_dev.mdev_list
    assert w.bus.devices[0x0305].drvdata.matrix_mdev is None
    assert run_op(w, s, ADMIN, op("remove m5", mdev="m5")) == -errno.ENODEV


def test_remove_waits_for_close_and_calls_request():
    w, s = opened()
    k = InlineContext(w, "admin")
    gen = s.operation(k, ADMIN, op("remove m0", mdev="m0"))
    o = next(gen)
    seen = []
    while o.enabled(k):
        seen.append(o)
        o = gen.send(o.perform(k))
    assert isinstance(o, Block) and o.cond.blockers(k) == ["mdev:m0"]
    assert any(isinstance(x, Note) and "blocked until released" in x.text for x in seen)
    assert run_op(w, s, mdev_actor(), op("assign-adapter m0 4", mdev="m0", ident=4)) == -errno.ENODEV
    run_op(w, s, mdev_actor(), op("close"))
    assert o.enabled(k)
    res = o.perform(k)
    while True:
        try:
            o = gen.send(res)
        except StopIteration as stop:
            rc = stop.value
            break
        assert o.enabled(k)
        res = o.perform(k)
    assert rc == 0 and w.mdevs["m0"].freed
    assert w.vms["g0"].users == 2 and w.matrix_dev.mdev_list == ()


def test_update_locks():
    w, s = build(scenario(guests=("g0", "g1")))
    assert [lk.cls for lk in s.update_locks()] == ["&matrix_dev->guests_lock", "&matrix_dev->mdevs_lock",
                                                    "&kvm->lock", "&kvm->lock"]


# ----------------------------------------------------------------------------------------- schedules

def _random_schedules(sc, seeds):
    from apactors.engine.process import CRASHED, Runtime

    for seed in seeds:
        w, s = build(sc)
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
        yield w, rt, [p for p in rt.procs if p.live()], [p for p in rt.procs if p.state == CRASHED]


def test_random_schedules_of_the_builtin_scenarios_finish():
    from apactors.scenario import builtin_scenarios, load_builtin

    for name, _ in builtin_scenarios():
        for w, rt, live, crashed in _random_schedules(load_builtin(name), range(5)):
            assert not crashed, (name, [(p.name, p.crash) for p in crashed])
            assert not live, (name, [(p.name, p.pending) for p in live])
            for lk in w.locks():
                assert not lk.holders, (name, lk)


def test_scan_s1_variant_serialises_passes_invisibly():
    """S-1 (for the schemes before `latest`): no lock step, the pass waits for a running one."""
    w, s = opened(adapters=(3, 4))
    run_op(w, s, HMC, op("remove-adapter 4", ident=4))
    rec: list = []
    assert run_path(w, s.scan_work_s1, record=rec) == 0
    assert lock_steps(rec)[:1] == [GUESTS] and not w.bus.scan_running
    assert w.vms["g0"].crycb.apm == Mask.of([3])
    w.bus.scan_running = True
    with pytest.raises(SetupError, match="would block"):
        run_path(w, s.scan_work_s1)
