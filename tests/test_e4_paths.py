"""The E4 family before `latest` (`v6.0`, `v6.2-rc`, `v6.8`, `v18-draft`, `v18-trylock`) and where
`latest` differs from them: lock steps of single paths against golden lists written by hand from
the domain doc (§4.3, §5.5-§5.8, §5.10), and the semantics that differ (the `v6.0` filter of
§7.5.1 against the whole-matrix filter of §7.5.2, ``reset_rc`` against ``reset_status``, the
`v18-trylock` veto, the GISC failure answer)."""

from __future__ import annotations

import pytest

from apactors.model import errno
from apactors.model.build import InlineContext, SetupError, build_world, run_inline
from apactors.model.locks import Srcu
from apactors.model.masks import Mask
from apactors.model.ops import Acquire, Insn, Note, Release, Update
from apactors.model.paths.common import PinPage, UnpinPage
from apactors.model.schemes import get_scheme
from apactors.model.schemes.e4 import V6_0, V6_2rc, V6_8, V18Draft, V18Trylock
from apactors.model.schemes.latest import Latest
from apactors.model.world import NO_ISC, VFIO_AP
from apactors.scenario import ActorSpec, GuestSpec, HostSpec, MdevSpec, Operation, Scenario
from path_builders import (  # noqa: F401 - shared with the other golden-test files
    ADMIN, ATTR, BUS, DEVLOCK, DEVSET, GROUP, GUESTS, HMC, HOOK_W, KREF, KVM, MDEVS, PERMS, QLOCK, SCAN_TRY, VCPU, VMM, WORK, lock_steps, mdev, mdev_actor, op, scenario, un,
)

E4_IDS = ("v6.0", "v6.2-rc", "v6.8", "v18-draft", "v18-trylock", "latest")


def insns(record, name: str) -> list[tuple[int, int]]:
    """(APQN, response code) of every instruction ``name`` in the record."""
    return [(o.apqn, res.rc) for _, o, res in record if isinstance(o, Insn) and o.name == name]


def run_op(world, scheme, actor, operation, record=None, k=None):
    k = k or InlineContext(world, actor.name)
    return run_inline(scheme.operation(k, actor, operation), k, record)


def run_path(world, gen_fn, *args, record=None, k=None):
    k = k or InlineContext(world, "test")
    return run_inline(gen_fn(k, *args), k, record)


def build(sid: str, sc: Scenario):
    return build_world(get_scheme(sid), sc)


def opened(sid: str, **kw):
    return build(sid, scenario(mdevs=(mdev(open_by="g0", **kw),), actors=(mdev_actor(), VCPU)))


class FaultOnce(InlineContext):
    """Answers the first environment choice whose label is ``label`` with ``pick``; all others 0."""

    def __init__(self, world, name, label, pick=1):
        super().__init__(world, name)
        self.label, self.pick, self.used = label, pick, False

    def choose(self, n, label):
        if label == self.label and not self.used:
            self.used = True
            return self.pick
        return 0


# ============================================================================== the hierarchy

def test_hierarchy_and_catalogue_data():
    assert Latest.__mro__[1:4] == (V6_8, V6_2rc, V6_0)
    assert V18Trylock.__mro__[1:3] == (V18Draft, V6_0)
    for sid, base in (("v6.0", None), ("v6.2-rc", "v6.0"), ("v6.8", "v6.2-rc"), ("latest", "v6.8"),
                      ("v18-draft", "v6.0"), ("v18-trylock", "v18-draft")):
        cls = get_scheme(sid)
        assert cls.id == sid and cls.base == base and cls.family == "E4"
        assert cls.kernel and cls.description and "\n" not in cls.description and cls.notes
        if base is not None:
            assert get_scheme(base) in cls.__mro__
    assert "51cdc8bc120e" in V6_2rc.kernel and "2b48f52f2bff" in V6_8.kernel
    assert "02e72909453d" in Latest.kernel
    # the kernel paths a scheme lists are its own: the v6.8 reset machinery is not in v6.0
    v60 = {attr for attr, _ in V6_0.kernel_paths()}
    v68 = {attr for attr, _ in V6_8.kernel_paths()}
    assert {"flush_work", "reset_qlist", "reset_queues_for_apids", "apq_reset_check"} <= v68 - v60


def test_each_scheme_class_overrides_only_what_its_section_changes():
    def own_paths(cls):
        return {a for a, v in vars(cls).items() if getattr(v, "kernel_path", None) is not None}

    assert own_paths(V6_2rc) == {"kvm_vfio_release"}  # §5.6
    assert own_paths(Latest) == {  # §5.8
        "mdev_create", "get_update_locks_for_kvm", "release_update_locks_for_kvm", "set_kvm", "unset_kvm",
        "cfg_remove", "hot_unplug_cfg", "hot_plug_cfg", "scan_work"}
    assert set(vars(Latest)) >= {"GISC_FAIL_RC", "RESET_CHECK_DONE_RCS", "perms_lock_class",
                                 "irq_enable_otherwise_changed"}
    assert own_paths(V18Draft) == {"assign_adapter_store", "assign_domain_store", "validate_masks"}  # §5.10
    assert own_paths(V18Trylock) == {"in_use"}
    assert own_paths(V6_8) == {  # §5.7
        "vfio_open", "vfio_close", "vfio_file_set_kvm", "mdev_create", "filter_matrix", "reset_queue",
        "flush_work", "reset_queues", "reset_qlist", "reset_queues_for_apids", "apq_reset_check",
        "hot_plug_cfg", "queue_probe", "queue_remove"}


# ============================================================================== open / set_kvm

OPEN_V60 = [GROUP, DEVSET, HOOK_W, un(HOOK_W), GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS),
            un(DEVSET), un(GROUP)]
OPEN_V68 = [GROUP, DEVSET, KREF, un(KREF), HOOK_W, un(HOOK_W), GUESTS, KVM, MDEVS, un(MDEVS), un(KVM),
            un(GUESTS), un(DEVSET), un(GROUP)]
OPEN_LATEST = [GROUP, DEVSET, KREF, un(KREF), GUESTS, KVM, HOOK_W, MDEVS, un(MDEVS), un(HOOK_W), un(KVM),
               un(GUESTS), un(DEVSET), un(GROUP)]


@pytest.mark.parametrize("sid, golden, users", [
    ("v6.0", OPEN_V60, 3), ("v6.2-rc", OPEN_V60, 3), ("v18-draft", OPEN_V60, 3), ("v18-trylock", OPEN_V60, 3),
    ("v6.8", OPEN_V68, 4), ("latest", OPEN_LATEST, 4)])
def test_open_set_kvm_lock_steps(sid, golden, users):
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == 0
    assert lock_steps(rec) == golden
    assert vm.pqap_hook is m and m.kvm is vm and m.vdev.kvm is vm
    assert vm.crycb.masks == (Mask.of([3]), Mask.of([5]), Mask.EMPTY)
    # VM file + kvm-vfio device + vfio_ap (+ the vfio device's own reference from v6.8)
    assert vm.users == users


@pytest.mark.parametrize("sid", ["v6.0", "v6.8"])
def test_v60_set_kvm_refusal_leaves_the_hook_on_the_refused_mdev(sid):
    """v6.0/v6.8: the hook is written before the "other mdev has this VM" test (§5.5)."""
    sc = scenario(mdevs=(mdev("m0", open_by="g0"), mdev("m1", adapters=(4,))),
                  actors=(mdev_actor("m0"), mdev_actor("m1")))
    w, s = build(sid, sc)
    vm, m0, m1 = w.vms["g0"], w.mdevs["m0"], w.mdevs["m1"]
    users = vm.users
    rec: list = []
    assert run_op(w, s, mdev_actor("m1"), op("open"), rec) == -errno.EPERM
    head = [GROUP, DEVSET] + ([KREF, un(KREF)] if sid == "v6.8" else [])
    assert lock_steps(rec) == head + [HOOK_W, un(HOOK_W), GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS),
                                      un(DEVSET), un(GROUP)]
    assert vm.pqap_hook is m1, "the refused mdev's hook stays in the VM"
    assert m0.kvm is vm and m1.kvm is None and m1.vdev.open_count == 0 and m1.vdev.kvm is None
    assert vm.users == users and "mdev:m1" not in w.files


def test_latest_set_kvm_refusal_keeps_the_hook():
    sc = scenario(mdevs=(mdev("m0", open_by="g0"), mdev("m1", adapters=(4,))),
                  actors=(mdev_actor("m0"), mdev_actor("m1")))
    w, s = build("latest", sc)
    assert run_op(w, s, mdev_actor("m1"), op("open")) == -errno.EPERM
    assert w.vms["g0"].pqap_hook is w.mdevs["m0"]


# ============================================================================== close / unset_kvm

CLOSE_V60 = [GROUP, DEVSET, HOOK_W, un(HOOK_W), GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS),
             un(DEVSET), un(GROUP)]
CLOSE_V68 = [GROUP, DEVSET, HOOK_W, un(HOOK_W), GUESTS, KVM, MDEVS, WORK, un(WORK), un(MDEVS), un(KVM),
             un(GUESTS), un(DEVSET), un(GROUP)]
CLOSE_LATEST = [GROUP, DEVSET, GUESTS, KVM, HOOK_W, MDEVS, WORK, un(WORK), un(MDEVS), un(HOOK_W), un(KVM),
                un(GUESTS), un(DEVSET), un(GROUP)]


@pytest.mark.parametrize("sid, golden", [
    ("v6.0", CLOSE_V60), ("v6.2-rc", CLOSE_V60), ("v18-draft", CLOSE_V60), ("v18-trylock", CLOSE_V60),
    ("v6.8", CLOSE_V68), ("latest", CLOSE_LATEST)])
def test_close_unset_kvm_lock_steps(sid, golden):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("close"), rec) == 0
    assert lock_steps(rec) == golden
    assert insns(rec, "ZAPQ") == [(0x0305, 0x00)]
    assert vm.pqap_hook is None and m.kvm is None and m.vdev.kvm is None and m.vdev.open_count == 0
    assert vm.crycb.masks == (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY)
    assert vm.users == 2 and w.files == {}
    # where unset_kvm's kvm_put_kvm runs: under the update locks before latest, after them in latest
    frames = [st for st, _o, _r in rec]
    put = next(i for i, st in enumerate(frames) if st[-1] == "kvm_put_kvm" and "vfio_ap_mdev_unset_kvm" in st)
    rel = max(i for i, st in enumerate(frames) if st[-1] == "release_update_locks_for_kvm")
    assert (put > rel) == (sid == "latest")


# ============================================================================== kvm-vfio release

@pytest.mark.parametrize("sid, golden", [
    ("v6.0", [GROUP, un(GROUP)]),
    ("v18-draft", [GROUP, un(GROUP)]),
    ("v6.2-rc", [KVM, GROUP, un(GROUP), un(KVM)]),
    ("v6.8", [KVM, KREF, un(KREF), un(KVM)]),
    ("latest", [KVM, KREF, un(KREF), un(KVM)])])
def test_kvm_vfio_release_lock_steps(sid, golden):
    w, s = build(sid, scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    vm = w.vms["g0"]
    rec: list = []
    assert run_op(w, s, VMM, op("kvm-vfio-release"), rec) == 0
    assert lock_steps(rec) == golden
    assert w.mdevs["m0"].group.kvm is None and vm.users == 1
    assert run_op(w, s, VMM, op("kvm-vfio-release")) == 0 and vm.users == 1, "second time: nothing"
    rec = []
    assert run_op(w, s, mdev_actor(), op("open"), rec) == -errno.EINVAL, "the group has no VM"
    assert w.mdevs["m0"].vdev.kvm is None and w.mdevs["m0"].vdev.open_count == 0


def test_v62rc_release_nests_group_lock_inside_kvm_lock_and_open_the_reverse():
    """The v6.2-rc inversion: open takes group_lock then kvm->lock; release kvm->lock then group_lock."""
    w, s = build("v6.2-rc", scenario(mdevs=(mdev(),), actors=(mdev_actor(),)))
    rec: list = []
    run_op(w, s, mdev_actor(), op("open"), rec)
    steps = lock_steps(rec)
    assert steps.index(GROUP) < steps.index(KVM)
    rec = []
    run_op(w, s, VMM, op("kvm-vfio-release"), rec)
    steps = lock_steps(rec)
    assert steps.index(KVM) < steps.index(GROUP)


# ============================================================================== assign stores

@pytest.mark.parametrize("sid, golden", [
    ("v6.0", [PERMS, GUESTS, MDEVS, QLOCK, un(QLOCK), un(MDEVS), un(GUESTS), un(PERMS)]),
    ("v6.8", [PERMS, GUESTS, MDEVS, QLOCK, un(QLOCK), un(MDEVS), un(GUESTS), un(PERMS)]),
    ("v18-draft", [GUESTS, MDEVS, PERMS, un(PERMS), QLOCK, un(QLOCK), un(MDEVS), un(GUESTS)]),
    ("v18-trylock", [GUESTS, MDEVS, PERMS, un(PERMS), QLOCK, un(QLOCK), un(MDEVS), un(GUESTS)]),
    ("latest", [ATTR, GUESTS, MDEVS, QLOCK, un(QLOCK), un(MDEVS), un(GUESTS), un(ATTR)])])
def test_assign_adapter_lock_steps_without_a_guest(sid, golden):
    w, s = build(sid, scenario(mdevs=(mdev(),)))
    m = w.mdevs["m0"]
    rec: list = []
    assert run_path(w, s.assign_adapter_store, m, "4\n", record=rec) == 2
    assert lock_steps(rec) == golden
    assert m.shadow_apcb.apm == Mask.of([3, 4]) and set(m.qtable) == {0x0305, 0x0405}


@pytest.mark.parametrize("sid, golden", [
    ("v6.0", [PERMS, GUESTS, KVM, MDEVS, QLOCK, un(QLOCK), un(MDEVS), un(KVM), un(GUESTS), un(PERMS)]),
    ("v18-draft", [GUESTS, KVM, MDEVS, PERMS, un(PERMS), QLOCK, un(QLOCK), un(MDEVS), un(KVM), un(GUESTS)])])
def test_assign_domain_lock_steps_with_a_guest(sid, golden):
    w, s = build(sid, scenario(domains=(5, 6), mdevs=(mdev(open_by="g0"),), actors=(mdev_actor(),)))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    rec: list = []
    assert run_op(w, s, ADMIN, op("assign-domain m0 6", mdev="m0", ident=6), rec) == 2
    assert lock_steps(rec) == golden
    assert vm.crycb.aqm == Mask.of([5, 6])


def test_v18_reservation_check_takes_the_mutex_itself():
    sc = scenario(adapters=(3, 4, 5), apmask=(5,), aqmask=(5,), mdevs=(mdev(),))
    w, s = build("v18-draft", sc)
    m = w.mdevs["m0"]
    rec: list = []
    assert run_path(w, s.assign_adapter_store, m, "5\n", record=rec) == -errno.EADDRNOTAVAIL
    assert lock_steps(rec) == [GUESTS, MDEVS, PERMS, un(PERMS), un(MDEVS), un(GUESTS)]
    assert m.matrix.apm == Mask.of([3]), "the refused bit is cleared again"
    # the mutex is released before the sharing check runs
    rec = []
    w2, s2 = build("v18-draft", scenario(mdevs=(mdev("m0"), mdev("m1", adapters=(), domains=(5,)))))
    assert run_path(w2, s2.assign_adapter_store, w2.mdevs["m1"], "3\n", record=rec) == -errno.EADDRINUSE
    steps = lock_steps(rec)
    assert steps == [GUESTS, MDEVS, PERMS, un(PERMS), un(MDEVS), un(GUESTS)]
    warn = next(i for i, (_, o, _r) in enumerate(rec) if isinstance(o, Note) and "already assigned" in o.text)
    rel = next(i for i, (_, o, _r) in enumerate(rec) if isinstance(o, Release) and o.lock.cls == "ap_perms_mutex")
    assert rel < warn


def test_v18_draft_mask_store_and_assign_invert_ap_perms_mutex_and_the_update_locks():
    """AM-1 holds ap_perms_mutex while in_use takes guests_lock; the v18 assign takes ap_perms_mutex
    under guests_lock: the orders are reversed (the v18-draft ABBA)."""
    w, s = build("v18-draft", scenario(adapters=(3, 4, 5), aqmask=(5,), mdevs=(mdev(),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("apmask +5", spec="+5"), rec) == len("+5\n")
    steps = lock_steps(rec)
    assert steps[:6] == [PERMS, GUESTS, MDEVS, un(MDEVS), un(GUESTS), un(PERMS)]
    # an assignment holding the update locks blocks the mask store's in_use (and vice versa)
    w.guests_lock.acquire("other", "w")
    with pytest.raises(SetupError, match="would block"):
        run_op(w, s, ADMIN, op("apmask +4", spec="+4"))


# ============================================================================== in_use (v18-trylock)

def test_v18_trylock_in_use_lock_steps():
    w, s = build("v18-trylock", scenario(adapters=(3, 4), aqmask=(5,), mdevs=(mdev(),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("apmask +3", spec="+3"), rec) == -errno.EBUSY, "03.0005 is assigned"
    assert lock_steps(rec) == [PERMS, "try+&matrix_dev->guests_lock", "try+&matrix_dev->mdevs_lock",
                               un(MDEVS), un(GUESTS), un(PERMS)]
    assert [r for _, o, r in rec if isinstance(o, Acquire) and o.try_] == [True, True]
    assert w.bus.perms.apm == Mask.EMPTY


@pytest.mark.parametrize("held", ["guests_lock", "mdevs_lock"])
def test_v18_trylock_mask_store_fails_with_ebusy_during_an_update(held):
    """A mask store that reserves an adapter no mdev uses fails merely because an update runs."""
    w, s = build("v18-trylock", scenario(adapters=(3, 4), aqmask=(5,), mdevs=(mdev(),)))
    getattr(w, held).acquire("admin#1", "w")  # another task is inside an mdev update
    rec: list = []
    assert run_op(w, s, ADMIN, op("apmask +4", spec="+4"), rec) == -errno.EBUSY
    if held == "guests_lock":
        assert lock_steps(rec) == [PERMS, "try+&matrix_dev->guests_lock", un(PERMS)]
        assert [r for _, o, r in rec if isinstance(o, Acquire) and o.try_] == [False]
    else:
        assert lock_steps(rec) == [PERMS, "try+&matrix_dev->guests_lock", "try+&matrix_dev->mdevs_lock",
                                   un(GUESTS), un(PERMS)]
        assert [r for _, o, r in rec if isinstance(o, Acquire) and o.try_] == [True, False]
    assert w.bus.perms.apm == Mask.EMPTY, "the mask is unchanged"
    assert w.bus.devices[0x0405].driver == VFIO_AP, "no binding revision"
    getattr(w, held).release("admin#1")
    assert run_op(w, s, ADMIN, op("apmask +4", spec="+4")) == len("+4\n"), "free again: accepted"
    assert w.bus.perms.apm == Mask.of([4])


def test_v18_draft_in_use_blocks_instead():
    w, s = build("v18-draft", scenario(adapters=(3, 4), aqmask=(5,), mdevs=(mdev(),)))
    w.mdevs_lock.acquire("admin#1", "w")
    with pytest.raises(SetupError, match="would block"):
        run_op(w, s, ADMIN, op("apmask +4", spec="+4"))


# ============================================================================== unassign

@pytest.mark.parametrize("sid", ["v6.0", "v6.8", "latest"])
def test_unassign_adapter(sid):
    w, s = opened(sid, adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q4 = m.qtable[0x0405]
    rec: list = []
    assert run_op(w, s, ADMIN, op("unassign-adapter m0 4", mdev="m0", ident=4), rec) == 2
    reset = [] if sid == "v6.0" else [WORK, un(WORK)]
    assert lock_steps(rec) == [GUESTS, KVM, MDEVS] + reset + [un(MDEVS), un(KVM), un(GUESTS)]
    assert insns(rec, "ZAPQ") == ([] if sid == "v6.0" else [(0x0405, 0x00)]), "v6.0: no queue reset"
    assert vm.crycb.apm == Mask.of([3]) and set(m.qtable) == {0x0305} and q4.matrix_mdev is None


# ============================================================================== queue_remove / reset

@pytest.mark.parametrize("sid, reset", [("v6.0", []), ("v6.8", [WORK, un(WORK)]), ("latest", [WORK, un(WORK)])])
def test_queue_remove_of_a_guest_queue(sid, reset):
    w, s = opened(sid, adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = m.qtable[0x0405]
    rec: list = []
    assert run_op(w, s, ADMIN, op("unbind 04.0005", apqn=0x0405), rec) == len("04.0005\n")
    assert lock_steps(rec) == ([DEVLOCK, GUESTS, KVM, MDEVS] + reset
                               + [un(MDEVS), un(KVM), un(GUESTS), QLOCK, un(QLOCK), "-&dev->mutex"])
    assert insns(rec, "ZAPQ") == [(0x0405, 0x00)]
    assert q.freed and m.shadow_apcb.apm == Mask.of([3]) and vm.crycb.apm == Mask.of([3])
    # v6.0 unlinks before the CRYCB write, v6.8 after the reset
    kinds = [(type(o).__name__, getattr(o, "field", getattr(o, "name", ""))) for _, o, _ in rec]
    unlink = kinds.index(("Update", "qtable"))
    if sid == "v6.0":
        assert unlink < kinds.index(("Update", "masks")) < kinds.index(("Insn", "ZAPQ"))
    else:
        assert kinds.index(("Update", "masks")) < kinds.index(("Insn", "ZAPQ")) < unlink


@pytest.mark.parametrize("sid, zapqs, scan", [
    ("v6.0", [(0x0405, 0x01)], []), ("v6.8", [], []), ("latest", [], [SCAN_TRY])])
def test_scan_removing_an_adapter_resets_only_in_v60(sid, zapqs, scan):
    """v6.0 resets a removed queue with no host-configuration test (ZAPQ answers 0x01); v6.8 tests
    matrix_dev->info, which on_config_changed already updated."""
    w, s = opened(sid, adapters=(3, 4))
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = m.qtable[0x0405]
    run_op(w, s, HMC, op("remove-adapter 4", ident=4))
    rec: list = []
    assert run_op(w, s, BUS, op("scan"), rec) == 0
    assert lock_steps(rec) == scan + [
        GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS),                           # on_config_changed
        DEVLOCK, GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS), QLOCK, un(QLOCK), "-&dev->mutex",
        GUESTS, un(GUESTS)] + [un(x) for x in scan]                                      # on_scan_complete
    assert insns(rec, "ZAPQ") == zapqs
    if sid == "v6.0":
        assert q.reset_rc == 0x01 and q.reset_status == 0
    assert vm.crycb.apm == Mask.of([3]) and 0x0405 not in w.bus.devices


@pytest.mark.parametrize("sid, golden", [("v6.0", [MDEVS, un(MDEVS)]),
                                         ("v6.8", [MDEVS, WORK, un(WORK), WORK, un(WORK), un(MDEVS)])])
def test_reset_ioctl_lock_steps(sid, golden):
    w, s = opened(sid, adapters=(3, 4))
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("reset"), rec) == 0
    assert lock_steps(rec) == golden
    assert insns(rec, "ZAPQ") == [(0x0305, 0x00), (0x0405, 0x00)]


def test_v60_reset_rc_after_a_failed_zapq():
    """v6.0: W q->reset_rc := the ZAPQ answer; 0x05 is "other": -EIO, nothing released, no retry."""
    w, s = opened("v6.0")
    q = w.mdevs["m0"].qtable[0x0305]
    w.machine.faults["ZAPQ"] = (0x05,)
    k = FaultOnce(w, "mdev:m0", "fault:ZAPQ")
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("reset"), rec, k=k) == -errno.EIO
    assert insns(rec, "ZAPQ") == [(0x0305, 0x05)]
    assert q.reset_rc == 0x05 and q.reset_status == 0
    assert any(isinstance(o, Note) and "invalid rc" in o.text for _, o, _ in rec)
    # reset in progress: one retry after 20 ms
    k = FaultOnce(w, "mdev:m0", "fault:ZAPQ")
    w.machine.faults["ZAPQ"] = (0x02,)
    rec = []
    assert run_op(w, s, mdev_actor(), op("reset"), rec, k=k) == 0
    assert insns(rec, "ZAPQ") == [(0x0305, 0x02), (0x0305, 0x00)] and q.reset_rc == 0
    # a failed reset makes the queue count as missing for the v6.0 filter
    q.reset_rc = 0x05
    m = w.mdevs["m0"]
    assert run_path(w, s.filter_matrix, Mask.of([3]), Mask.of([5]), m) is True
    assert m.shadow_apcb.apm == Mask.EMPTY


def test_v68_reset_status_after_a_failed_zapq():
    """v6.8: W q->reset_status; 0x05 queues the reset-check work, which re-issues the ZAPQ."""
    w, s = opened("v6.8")
    q = w.mdevs["m0"].qtable[0x0305]
    w.machine.faults["ZAPQ"] = (0x05,)
    k = FaultOnce(w, "mdev:m0", "fault:ZAPQ")
    rec: list = []
    assert run_op(w, s, mdev_actor(), op("reset"), rec, k=k) == 0
    assert insns(rec, "ZAPQ")[0] == (0x0305, 0x05)
    assert q.reset_status == 0 and q.reset_rc == 0, "the work re-issued the ZAPQ and it succeeded"
    q.reset_status = 0x05
    m = w.mdevs["m0"]
    changed, filtered = run_path(w, s.filter_matrix, m)
    assert changed and filtered == Mask.of([3]) and m.shadow_apcb.apm == Mask.EMPTY


# ============================================================================== filters §7.5

def _filter_world(sid):
    """Adapters 3, 4, 5 x domains 5, 6; 04.0006 is not bound to vfio_ap; m0 has adapters 3, 4 and
    domain 5, so its shadow starts as {3, 4} x {5}."""
    sc = scenario(adapters=(3, 4, 5), domains=(5, 6), unbound=(0x0406,),
                  mdevs=(mdev(adapters=(3, 4), domains=(5,), open_by="g0"),), actors=(mdev_actor(),))
    w, s = build(sid, sc)
    m = w.mdevs["m0"]
    assert (m.shadow_apcb.apm, m.shadow_apcb.aqm) == (Mask.of([3, 4]), Mask.of([5]))
    return w, s, m


@pytest.mark.parametrize("sid", ["v6.0", "v18-draft"])
def test_v60_filter_inspects_only_the_apqns_passed(sid):
    w, s, m = _filter_world(sid)
    vm = w.vms["g0"]
    # assign domain 6: the filter checks matrix.apm x {6}; 04.0006 is missing, so adapter 4 goes
    assert run_path(w, s.assign_domain_store, m, "6\n") == 2
    assert (m.shadow_apcb.apm, m.shadow_apcb.aqm) == (Mask.of([3]), Mask.of([5, 6]))
    # assign adapter 5: the filter recomputes shadow.apm = matrix.apm ∩ info.apm and checks only
    # {5} x matrix.aqm, so adapter 4 comes back although 04.0006 is still not bound
    assert run_path(w, s.assign_adapter_store, m, "5\n") == 2
    assert m.shadow_apcb.apm == Mask.of([3, 4, 5])
    assert vm.crycb.apm == Mask.of([3, 4, 5]) and vm.crycb.aqm == Mask.of([5, 6])
    assert 0x0406 not in m.qtable


@pytest.mark.parametrize("sid", ["v6.8", "latest"])
def test_whole_matrix_filter_on_the_same_steps(sid):
    w, s, m = _filter_world(sid)
    vm = w.vms["g0"]
    rec: list = []
    assert run_path(w, s.assign_domain_store, m, "6\n", record=rec) == 2
    assert (m.shadow_apcb.apm, m.shadow_apcb.aqm) == (Mask.of([3]), Mask.of([5, 6]))
    # adapter 4 was in the previous shadow: filtered, so its queues in the host configuration are reset
    assert insns(rec, "ZAPQ") == [(0x0405, 0x00)]
    assert run_path(w, s.assign_adapter_store, m, "5\n") == 2
    assert m.shadow_apcb.apm == Mask.of([3, 5]), "every APQN of the shadow is examined"
    assert vm.crycb.apm == Mask.of([3, 5])
    # the result pair: (changed, adapters filtered that were in the previous shadow)
    assert run_path(w, s.filter_matrix, m) == (False, Mask.EMPTY)


def test_v60_filter_with_a_shadow_mask_argument_sees_the_recomputed_mask():
    w, s, m = _filter_world("v6.0")
    from apactors.model.paths.vfio_ap import SHADOW_APM
    m.shadow_apcb.apm = Mask.EMPTY  # stale shadow; the argument is read after the recompute
    m.qtable[0x0405].reset_rc = 0x01  # 04.0005's last reset failed: it counts as missing
    assert run_path(w, s.filter_matrix, SHADOW_APM, Mask.of([5]), m) is True
    assert m.shadow_apcb.apm == Mask.of([3]), "adapter 4 of the recomputed mask was inspected and dropped"


# ============================================================================== hot_plug_cfg / cfg_remove

@pytest.mark.parametrize("sid, scan", [("v6.0", []), ("v6.8", []), ("latest", [SCAN_TRY])])
def test_hot_plug_cfg_lock_steps_and_filter(sid, scan):
    """Only a control domain is added.  v6.0's hot_plug_cfg then calls filter_matrix(shadow.apm, ∅):
    the shadow is recomputed from the matrix with nothing checked, so adapter 4 (04.0005 unbound)
    enters the guest.  v6.8 and latest run only filter_cdoms."""
    sc = scenario(adapters=(3, 4), domains=(5,), cdoms=(5,), unbound=(0x0405,),
                  mdevs=(mdev(adapters=(3, 4), domains=(5,), cdoms=(7,), open_by="g0"),), actors=(mdev_actor(),))
    w, s = build(sid, sc)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    assert (vm.crycb.apm, vm.crycb.adm) == (Mask.of([3]), Mask.EMPTY)
    run_op(w, s, HMC, op("add-control-domain 7", ident=7))
    rec: list = []
    assert run_op(w, s, BUS, op("scan"), rec) == 0
    assert lock_steps(rec) == scan + [GUESTS, un(GUESTS),                          # on_config_changed/cfg_add
                                      GUESTS, KVM, MDEVS, un(MDEVS), un(KVM), un(GUESTS)] + [un(x) for x in scan]
    assert [st[-1] for st, o, _ in rec if isinstance(o, Acquire)][len(scan) + 2] == "vfio_ap_mdev_hot_plug_cfg"
    assert vm.crycb.adm == Mask.of([7]) and m.adm_add == Mask.EMPTY
    if sid == "v6.0":
        assert vm.crycb.apm == Mask.of([3, 4]), "v6.0: adapter 4 plugged without its queue"
    else:
        assert vm.crycb.apm == Mask.of([3])
    undefined = [o for _, o, _ in rec if isinstance(o, Note) and o.kind == "undefined"]
    assert len(undefined) == (1 if sid == "v6.8" else 0), "v6.8 reads apm_filtered unwritten"


@pytest.mark.parametrize("sid, crashes", [("v6.0", True), ("v6.8", True), ("latest", False)])
def test_hot_plug_cfg_of_an_mdev_without_a_vm(sid, crashes):
    """v6.0/v6.8 lock m->kvm->lock without testing m->kvm (§5.5, §5.7)."""
    sc = scenario(adapters=(3,), domains=(5,), mdevs=(mdev(adapters=(3, 4)),))
    w, s = build(sid, sc)
    run_op(w, s, HMC, op("add-adapter 4", ident=4))
    if crashes:
        with pytest.raises(SetupError, match="null-deref.*matrix_mdev->kvm->lock"):
            run_op(w, s, BUS, op("scan"))
    else:
        assert run_op(w, s, BUS, op("scan")) == 0
        assert w.mdevs["m0"].shadow_apcb.apm == Mask.of([3, 4])


@pytest.mark.parametrize("sid", ["v6.0", "v6.8"])
def test_cfg_remove_of_an_mdev_without_a_vm_crashes_before_latest(sid):
    w, s = build(sid, scenario(mdevs=(mdev(),)))
    run_op(w, s, HMC, op("remove-adapter 4", ident=4))
    with pytest.raises(SetupError, match="null-deref.*matrix_mdev->kvm->lock"):
        run_op(w, s, BUS, op("scan"))
    w, s = build("latest", scenario(mdevs=(mdev(),)))
    run_op(w, s, HMC, op("remove-adapter 4", ident=4))
    assert run_op(w, s, BUS, op("scan")) == 0


@pytest.mark.parametrize("sid, plugs", [("v6.0", True), ("v6.8", True), ("latest", False)])
def test_cfg_remove_control_domain_set_difference(sid, plugs):
    """v6.0: cdrem = cd_remove − matrix.adm, so removing a control domain the mdev does not have still
    hot-unplugs (and rewrites the CRYCB, the shadow being non-empty); latest: cd_remove ∩ matrix.adm."""
    sc = scenario(cdoms=(5, 6), mdevs=(mdev(cdoms=(5,), open_by="g0"),), actors=(mdev_actor(),))
    w, s = build(sid, sc)
    run_op(w, s, HMC, op("remove-control-domain 6", ident=6))
    rec: list = []
    run_op(w, s, BUS, op("scan"), rec)
    writes = [st for st, o, _ in rec if isinstance(o, Update) and o.field == "masks"]
    assert bool(writes) == plugs
    if plugs:
        assert "vfio_ap_mdev_hot_unplug_cfg" in writes[0]
    assert w.vms["g0"].crycb.adm == Mask.of([5])


# ============================================================================== mdev_create

@pytest.mark.parametrize("sid, golden", [
    ("v6.0", [GUESTS, un(GUESTS)]), ("v6.2-rc", [GUESTS, un(GUESTS)]), ("v18-draft", [GUESTS, un(GUESTS)]),
    ("v6.8", [MDEVS, un(MDEVS)]), ("latest", [GUESTS, MDEVS, un(MDEVS), un(GUESTS)])])
def test_mdev_create_lock_steps(sid, golden):
    w, s = build(sid, scenario(actors=(mdev_actor("m5"),)))
    rec: list = []
    assert run_op(w, s, ADMIN, op("create m5", mdev="m5"), rec) == 0
    assert lock_steps(rec) == golden
    assert w.matrix_dev.mdev_list == (w.mdevs["m5"],)


# ============================================================================== PQAP(AQIC) answers

def pqap(w, s, apqn, enable=True, isc=3, nib=0x1000, record=None, k=None):
    verb = "pqap-aqic-enable" if enable else "pqap-aqic-disable"
    o = Operation(verb, f"{verb} {apqn:04x}", apqn=apqn, isc=isc if enable else None,
                  nib=nib if enable else None)
    return run_op(w, s, VCPU, o, record, k=k)


@pytest.mark.parametrize("sid, rc, pins", [
    ("v6.0", 0x08, {1: 1}), ("v6.2-rc", 0x08, {1: 1}), ("v18-trylock", 0x08, {1: 1}),
    ("v6.8", 0x08, {}), ("latest", 0x06, {})])
def test_gisc_registration_failure(sid, rc, pins):
    """rc 0x08 up to v6.8, 0x06 in latest; the NIB page is unpinned from v6.8 on (v6.0 leaks it)."""
    w, s = opened(sid)
    w.machine.faults["GISC"] = (1,)
    k = FaultOnce(w, VCPU.name, "fault:GISC")
    r = pqap(w, s, 0x0305, k=k)
    assert (r.ret, r.rc, r.cc, r.answered_by) == (0, rc, 3, "vfio_ap")
    m = w.mdevs["m0"]
    assert m.vdev.pins == pins and w.vms["g0"].gisc_refs == {}
    assert m.qtable[0x0305].saved_isc == NO_ISC


@pytest.mark.parametrize("sid, order", [("v6.0", ["unpin", "unregister"]), ("v6.8", ["unpin", "unregister"]),
                                        ("latest", ["unregister", "unpin"])])
def test_aqic_otherwise_changed_release_order(sid, order):
    w, s = opened(sid)
    w.machine.faults["AQIC-enable"] = (0x07,)
    k = FaultOnce(w, VCPU.name, "fault:AQIC-enable")
    rec: list = []
    r = pqap(w, s, 0x0305, record=rec, k=k)
    assert (r.rc, r.cc) == (0x07, 3)
    after = [i for i, (_, o, _r) in enumerate(rec) if isinstance(o, Insn) and o.name == "AQIC"][0]
    seen = []
    for _, o, _r in rec[after:]:
        if isinstance(o, UnpinPage):
            seen.append("unpin")
        elif isinstance(o, Update) and o.field == "gisc_refs" and not isinstance(o, PinPage):
            seen.append("unregister")
    assert seen == order
    assert w.mdevs["m0"].vdev.pins == {} and w.vms["g0"].gisc_refs == {}


@pytest.mark.parametrize("sid, rc, pins", [("v6.0", 0x00, {1: 1}), ("v6.8", 0x06, {}), ("latest", 0x06, {})])
def test_pv_guest_nib_share_check_from_v68(sid, rc, pins):
    w, s = opened(sid)
    run_op(w, s, VMM, op("pv-enable"))
    r = pqap(w, s, 0x0305)
    assert r.rc == rc and w.mdevs["m0"].vdev.pins == pins


@pytest.mark.parametrize("sid", E4_IDS)
def test_pqap_enable_and_disable(sid):
    w, s = opened(sid)
    m, vm = w.mdevs["m0"], w.vms["g0"]
    q = m.qtable[0x0305]
    rec: list = []
    r = pqap(w, s, 0x0305, record=rec)
    assert lock_steps(rec) == ["+&vcpu->mutex", "+&kvm->srcu(R)", "+&kvm->arch.crypto.pqap_hook_rwsem(r)",
                               MDEVS, un(MDEVS), "-&kvm->arch.crypto.pqap_hook_rwsem(r)", "-&kvm->srcu(R)",
                               "-&vcpu->mutex"]
    assert (r.ret, r.rc, r.answered_by) == (0, 0x00, "vfio_ap")
    assert (q.saved_isc, q.saved_iova) == (3, 0x1000) and vm.gisc_refs == {3: 1} and m.vdev.pins == {1: 1}
    r = pqap(w, s, 0x0305, enable=False)
    assert r.rc == 0x00 and q.saved_isc == NO_ISC and vm.gisc_refs == {} and m.vdev.pins == {}


# ============================================================================== schedules

@pytest.mark.parametrize("sid", ["v6.0", "v6.2-rc", "v6.8", "v18-draft", "v18-trylock"])
def test_builtin_scenarios_run_without_engine_errors(sid):
    from apactors.api import explore
    from apactors.scenario import builtin_scenarios

    for name, _ in builtin_scenarios():
        r = explore(sid, name, schedules=3, seed=1, keep="none")
        assert not r.errors, (sid, name, r.errors)
        assert sum(r.outcomes.values()) == 3
