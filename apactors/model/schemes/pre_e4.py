"""The notifier-era (pre-E4) schemes: `v5.10`, `v5.11`, `v5.12`, `v5.15`, `v15-draft`, `pqap-v4-draft`
(domain doc §5.1-§5.4, §5.9, §5.11).

`v5.10` is the full definition of the family (its paths are the defaults of
:class:`~apactors.model.paths.vfio_ap_pre_e4.VfioApPreE4Paths` and
:class:`~apactors.model.paths.vfio_core_notifier.VfioCoreNotifierPaths`); every other scheme derives from
its base and overrides only what the doc says differs.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.locks import WRITE
from apactors.model.ops import Acquire, Free, Read, Release, Write
from apactors.model.paths.ap_bus import ApBusPaths
from apactors.model.paths.kvm import KvmPaths
from apactors.model.paths.operations_pre_e4 import PreE4ScenarioOps
from apactors.model.paths.vfio_ap_pre_e4 import HOOK_NAME, NOTIFY_DONE, NOTIFY_OK, VfioApPreE4Paths
from apactors.model.paths.vfio_core_notifier import VfioCoreDevSetPaths, VfioCoreNotifierPaths
from apactors.model.schemes.base import PathGen, Scheme, path, register

_FAMILY_NOTES = """\
Readings common to the pre-E4 family (silent or [I]/[U] places of the doc):
* open/close before v5.15 take no vfio-core lock [I]; the file's device reference (what the mdev
  core's removal waits for) is vdev.open_count, one W step before the driver's open callback and one
  after its release callback.  The open always succeeds, even when the notifier refused (§4.3).
* Notifier blocks are (kind, mdev) pairs in group.notifiers: the group notifier is (un)registered under
  notifier_rwsem(w); the IOMMU notifier's chain rwsem is not modelled (one step).  Registration reads
  group->kvm once and, if set, calls the chain with it under notifier_rwsem(r) [I: the kernel tests and
  passes the pointer with two loads].  Results of the notifiers are ignored [I].
* kvm-vfio-release (modelling choice of §4.3): W released; per group W group->kvm := NULL and the
  chain with NULL under notifier_rwsem(r); kvm_put_kvm; no kvm->lock.
* find_queue searches the queue devices bound to vfio_ap (qdev.driver, from the gate's ap_queues add
  to the end of remove) locally, then R: drvdata as one step; get_queue's "R: matrix" is two loads
  (apm, then aqm only if the APID is in apm); verify_reserved_* and verify_no_sharing are local
  computations under L (no steps); with no domains (adapters) assigned, one bound queue device of the
  adapter (domain) suffices [I, §5.1].
* vfio_unpin_pages of a page without a pin is a no-op (vfio type1 has no pin record): pin counts never
  go below 0 (this matters for dma-unmap, which unpins iova >> 12 once whatever is pinned).
* dma-unmap: the range is marked unmapped, then the IOMMU notifier runs dma_unmap whenever it is
  registered (also when nothing is pinned); what the IOMMU backend does afterwards is not modelled.
* try_module_get/module_put of open/release and mdev_set_drvdata(NULL) of the removal change no
  modelled state and are not steps; the vfio_ap handler writes no debug notes (the code had none).
* mdev_list additions are at the head (list_add); available_instances is atomic_dec_if_positive /
  atomic_inc, one step each.
* reset_queues returns the first error and keeps going (§5.1); reset_ioctl returns it.
* The remove wrapper: W removing (stores -ENODEV from then on), block until the device is not open
  (no request callback [I]), then the driver's mdev_remove body; the remove operation returns 0
  whatever the body returned (the mdev core does not act on it [I]).
* Scan S-0 = the one-pass-at-a-time scan work without driver callbacks (ApBusPaths.scan_work_s1 with
  scan_notifies_drivers = False); apmask/aqmask AM-0 (ApBusPaths.apmask_store_am0).
* Update locks (§9): &matrix_dev->lock and every &kvm->lock; any mdev's kvm_busy counts as held
  (update_markers() / open_coded_markers()).
"""


@register
class V5_10(PreE4ScenarioOps, VfioApPreE4Paths, VfioCoreNotifierPaths, ApBusPaths, KvmPaths, Scheme):
    """§5.1: the original notifier-era driver, one ``&matrix_dev->lock``."""

    id = "v5.10"
    base = None
    kernel = "v5.10 (258287c994de open/notifier design; vfio_ap_private.h at 0470fb7f23c3)"
    family = "pre-E4"
    description = ("original vfio_ap: one &matrix_dev->lock, group notifier sets the masks with the lock "
                   "dropped, unlocked -EBUSY tests, K-A hook call")
    notes = _FAMILY_NOTES + """\
v5.10 specifics:
* notify_clear only writes mdev->kvm := NULL (no lock); release then finds no VM and leaves the hook,
  the CRYCB and the VM reference as they are (as the doc says).
* free_aqic_resources (v5.10 form) clears saved_pfn/saved_isc in every case, unregistering the GISC
  through q->matrix_mdev->kvm without testing it.
* reset_queue_apqn: the wait for queue_empty uses the ZAPQ/TAPQ status; "warn if still not empty".
"""

    # KVM K-A, masks M-A (§5.0.2, §5.0.3); AP bus AM-0 and S-0 (§5.0.6)
    kvm_call_hook = KvmPaths.kvm_call_hook_ka
    set_masks = KvmPaths.set_masks_ma
    clear_masks = KvmPaths.clear_masks_ma
    apmask_store = ApBusPaths.apmask_store_am0
    aqmask_store = ApBusPaths.aqmask_store_am0
    scan_work = ApBusPaths.scan_work_s1
    scan_notifies_drivers = False


@register
class V5_11(V5_10):
    """§5.2: f21916ec4826 (one ``L`` across setting/clearing the masks; the notifier handles NULL) and the
    "No need to disable IRQ after queue reset" sub-paths."""

    id = "v5.11"
    base = "v5.10"
    kernel = ("f21916ec4826; \"s390/vfio-ap: No need to disable IRQ after queue reset\" (Dec 2020) "
              "[U exact 5.10.y backport]")
    description = ("&matrix_dev->lock held across set/clear of the masks (kvm->lock taken inside it); "
                   "the group notifier handles the NULL VM")
    notes = _FAMILY_NOTES + """\
v5.11 specifics:
* unset_kvm uses the VM read by the notifier/release test under L (one read of mdev->kvm).
* reset_queue (v5.11 form): a 0x02 ZAPQ answer is retried once after sleep(20ms); 0x01/0x03/0x04 ->
  -EBUSY with the resources released; any other answer, 0x05 included -> -EIO without release; the wait
  for the reset uses the ZAPQ/TAPQ status (at most 2 rounds) and warns when the first round did not
  see it complete.
"""

    free_aqic_resources = VfioApPreE4Paths.free_aqic_resources_v511
    reset_queues = VfioApPreE4Paths.reset_queues_v511
    queue_remove = VfioApPreE4Paths.queue_remove_v511

    @path("vfio_ap_mdev_group_notifier")
    def group_notifier(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """``+L``; NULL: if attached, ``unset_kvm``; else ``set_kvm`` and, if the VM has a CRYCB, the masks
        (M-A: ``kvm->lock`` taken while ``L`` is held); ``-L``."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        result = NOTIFY_OK
        if kvm is None:
            cur = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if cur is not None:
                yield from self.unset_kvm(k, mdev, cur)
        else:
            rc = yield from self.set_kvm(k, mdev, kvm)
            if rc:
                result = NOTIFY_DONE
            else:
                crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
                if not crycbd:
                    result = NOTIFY_DONE
                else:
                    yield from self.set_masks(k, kvm, mdev.matrix)
        yield Release(lock)
        return result

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """[L held]: another mdev has the VM → -EPERM; attach, VM reference, hook."""
        for m in self.w.matrix_dev.mdev_list:
            if m is mdev:
                continue
            mk = yield Read(m, "kvm", "m->kvm")
            if mk is kvm:
                return -errno.EPERM
        yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
        yield from self.kvm_get_kvm(k, kvm)
        yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """[L held]: clear the masks (``kvm->lock`` inside, ``L`` held), drop the hook, reset the queues,
        put the VM, detach."""
        yield from self.clear_masks(k, kvm)
        yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
        yield from self.reset_queues(k, mdev)
        yield from self.kvm_put_kvm(k, kvm)
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")

    @path("vfio_ap_mdev_release")
    def mdev_release(self, k: Any, mdev: Any) -> PathGen:
        """``+L``; if ``R: mdev->kvm``: ``unset_kvm``; ``-L``; unregister both notifiers."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            yield from self.unset_kvm(k, mdev, kvm)
        yield Release(lock)
        yield from self.unregister_notifiers(k, mdev)


@register
class V5_12(V5_11):
    """§5.3: 0cc00c8d4050 — ``kvm_busy`` + ``wait_for_kvm``; ``L`` dropped around the masks."""

    id = "v5.12"
    base = "v5.11"
    kernel = "0cc00c8d4050 (stable 8933219e840b, c97e0d0ef103, e24d8020af69, 4acfa17f9bdc, 13a80fa5999d)"
    description = ("open-coded kvm_busy flag + wait_for_kvm queue; &matrix_dev->lock dropped around "
                   "set/clear of the masks; stores and remove refuse under the lock")
    notes = _FAMILY_NOTES + """\
v5.12 specifics:
* wait(wait_for_kvm, !kvm_busy) [drop L] = wait_event_cmd: R kvm_busy; while set: prepare_to_wait,
  R kvm_busy again, -L, sleep until woken, +L.  kvm_busy/wait_for_kvm are invisible to lockdep; the
  path emits waitdep annotations (node "(wait)&matrix_mdev->kvm_busy") for the wait-aware checker.
* unset_kvm uses one read of mdev->kvm (the test) for the whole teardown.
* reset_ioctl: the mdev drvdata is never NULL in the model (the "-EINVAL" branch is unreachable).
"""

    STORE_TEST_UNLOCKED = False

    def pqap_mdev_ready(self, k: Any, mdev: Any) -> PathGen:
        """``wait(wait_for_kvm, !kvm_busy) [drop L]``; ``if !R: mdev->kvm → out``."""
        yield from self.wait_for_kvm(k, mdev)
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        return kvm is not None

    @path("vfio_ap_mdev_group_notifier")
    def group_notifier(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """``+L``; NULL: ``unset_kvm``; else ``set_kvm`` (error → ``NOTIFY_DONE``); ``-L``."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        result = NOTIFY_OK
        if kvm is None:
            yield from self.unset_kvm(k, mdev)
        else:
            rc = yield from self.set_kvm(k, mdev, kvm)
            if rc:
                result = NOTIFY_DONE
        yield Release(lock)
        return result

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """[L held] With a CRYCB: -EPERM if another mdev has the VM; reference; ``kvm_busy``; ``-L``;
        masks (M-A); ``+L``; hook; ``mdev->kvm``; ``kvm_busy`` cleared and waiters woken."""
        lock = self.w.matrix_lock
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if crycbd:
            for m in self.w.matrix_dev.mdev_list:
                if m is mdev:
                    continue
                mk = yield Read(m, "kvm", "m->kvm")
                if mk is kvm:
                    return -errno.EPERM
            yield from self.kvm_get_kvm(k, kvm)
            yield from self.set_kvm_busy(k, mdev)
            yield Release(lock)
            yield from self.set_masks(k, kvm, mdev.matrix)
            yield Acquire(lock)
            yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
            yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
            yield from self.clear_kvm_busy(k, mdev)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any, kvm: Any = None) -> PathGen:
        """[L held] wait for ``kvm_busy``; if attached: ``kvm_busy``; ``-L``; clear the masks (M-A);
        ``+L``; reset the queues; hook NULL; put the VM; detach; ``kvm_busy`` cleared, waiters woken."""
        lock = self.w.matrix_lock
        yield from self.wait_for_kvm(k, mdev)
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            yield from self.set_kvm_busy(k, mdev)
            yield Release(lock)
            yield from self.clear_masks(k, kvm)
            yield Acquire(lock)
            yield from self.reset_queues(k, mdev)
            yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
            yield from self.kvm_put_kvm(k, kvm)
            yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
            yield from self.clear_kvm_busy(k, mdev)

    @path("vfio_ap_mdev_release")
    def mdev_release(self, k: Any, mdev: Any) -> PathGen:
        """``+L``; ``unset_kvm``; ``-L``; unregister both notifiers."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        yield from self.unset_kvm(k, mdev)
        yield Release(lock)
        yield from self.unregister_notifiers(k, mdev)

    def busy_or_attached(self, k: Any, mdev: Any) -> PathGen:
        """``R: kvm_busy`` or ``R: mdev->kvm`` (under ``L``)."""
        busy = yield Read(mdev, "kvm_busy", "matrix_mdev->kvm_busy")
        if busy:
            return True
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        return kvm is not None

    def store_busy(self, k: Any, mdev: Any) -> PathGen:
        """The stores refuse while busy or attached."""
        return (yield from self.busy_or_attached(k, mdev))

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any, mdev: Any) -> PathGen:
        """``+L``; busy or attached → ``-L``, -EBUSY; reset; list delete; free; ``available_instances++``;
        ``-L``."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        if (yield from self.busy_or_attached(k, mdev)):
            yield Release(lock)
            return -errno.EBUSY
        yield from self.reset_queues(k, mdev)
        yield from self._mdev_list_del(k, mdev)
        yield Free(mdev)
        yield from self._available_inc(k)
        yield Release(lock)
        return 0

    @path("vfio_ap_mdev_ioctl")
    def reset_ioctl(self, k: Any, mdev: Any) -> PathGen:
        """``+L``; ``wait(wait_for_kvm, !kvm_busy) [drop L]``; ``reset_queues``; ``-L``."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        yield from self.wait_for_kvm(k, mdev)
        rc = yield from self.reset_queues(k, mdev)
        yield Release(lock)
        return rc


@register
class V5_15(V5_12):
    """§5.4: 1e753732bda6 (``pqap_hook_rwsem``, K-B) + 86956e70761b (``kvm->lock`` before ``L``, M-B);
    eb0feefd4c02 (``dev_set->lock`` around open/close).  ``kvm_busy`` removed."""

    id = "v5.15"
    base = "v5.12"
    kernel = "1e753732bda6 + 86956e70761b + eb0feefd4c02 (vfio_ap_ops.c at 034921cdea1c, v5.19-era state)"
    description = ("pqap_hook_rwsem for the hook (K-B); kvm->lock before &matrix_dev->lock (M-B); "
                   "dev_set->lock around open/close; stores refuse with -EBUSY while attached")
    notes = _FAMILY_NOTES + """\
v5.15 specifics:
* irq_enable answers a failing gisc_register with 0x08 [U whether already in v5.15; the v5.19 code
  has it] and does not unpin the page it pinned.
* queue_probe writes drvdata, q.apqn and q.saved_isc under L [I order].
* find_queue still searches the driver's devices (the ap_queues lookup of E4 may already be in v5.15
  [U]; the doc's §5.4 does not change find_queue).
* The open path of v5.19 (vdev->kvm at open time) is not part of this scheme.
"""

    PQAP_HOOK = HOOK_NAME  # a function pointer inside the mdev (K-B)
    GISC_FAIL_RC = 0x08
    QUEUE_PROBE_LOCKED = True

    # KVM K-B, masks M-B; vfio core with dev_set->lock (§4.3 v5.15 column)
    kvm_call_hook = KvmPaths.kvm_call_hook
    set_masks = KvmPaths.set_masks
    clear_masks = KvmPaths.clear_masks
    vfio_open = VfioCoreDevSetPaths.vfio_open
    vfio_close = VfioCoreDevSetPaths.vfio_close
    vfio_unregister_group_dev = VfioCoreDevSetPaths.vfio_unregister_group_dev
    reset_ioctl = VfioApPreE4Paths.reset_ioctl

    def pqap_mdev_ready(self, k: Any, mdev: Any) -> PathGen:
        """``if !R: mdev->kvm → out`` (no ``kvm_busy`` any more)."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        return kvm is not None

    def store_busy(self, k: Any, mdev: Any) -> PathGen:
        """``R: mdev->kvm`` under ``L`` ("guest running")."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        return kvm is not None

    @path("vfio_ap_mdev_group_notifier")
    def group_notifier(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """No vfio_ap lock: NULL → ``unset_kvm(mdev, R: mdev->kvm)``; else ``set_kvm``."""
        if kvm is None:
            cur = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            yield from self.unset_kvm(k, mdev, cur)
            return NOTIFY_OK
        rc = yield from self.set_kvm(k, mdev, kvm)
        return NOTIFY_DONE if rc else NOTIFY_OK

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """With a CRYCB: hook under ``pqap_hook_rwsem(w)``; ``+kvm->lock``; ``+L``; -EPERM if another mdev
        has the VM (the hook stays); reference; attach; masks (M-B); ``-kvm->lock``; ``-L``."""
        lock = self.w.matrix_lock
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if crycbd:
            rwsem = kvm.pqap_hook_rwsem
            yield Acquire(rwsem, WRITE, owner=kvm)
            yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
            yield Release(rwsem, WRITE)
            yield Acquire(kvm.lock, WRITE, owner=kvm)
            yield Acquire(lock)
            for m in self.w.matrix_dev.mdev_list:
                if m is mdev:
                    continue
                mk = yield Read(m, "kvm", "m->kvm")
                if mk is kvm:
                    yield Release(kvm.lock)
                    yield Release(lock)
                    return -errno.EPERM
            yield from self.kvm_get_kvm(k, kvm)
            yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
            yield from self.set_masks(k, kvm, mdev.matrix)
            yield Release(kvm.lock)
            yield Release(lock)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any, kvm: Any = None) -> PathGen:
        """``kvm`` = ``mdev->kvm`` read by the caller with no lock.  With a CRYCB: hook NULL under
        ``pqap_hook_rwsem(w)``; ``+kvm->lock``; ``+L``; clear the masks (M-B); reset; put; detach;
        ``-kvm->lock``; ``-L``."""
        if kvm is None:
            return
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return
        lock = self.w.matrix_lock
        rwsem = kvm.pqap_hook_rwsem
        yield Acquire(rwsem, WRITE, owner=kvm)
        yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
        yield Release(rwsem, WRITE)
        yield Acquire(kvm.lock, WRITE, owner=kvm)
        yield Acquire(lock)
        yield from self.clear_masks(k, kvm)
        yield from self.reset_queues(k, mdev)
        yield from self.kvm_put_kvm(k, kvm)
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
        yield Release(kvm.lock)
        yield Release(lock)

    @path("vfio_ap_mdev_open_device")
    def open_device(self, k: Any, mdev: Any) -> PathGen:
        """Register the group notifier (the vfio core calls it at once) and the IOMMU notifier; → 0."""
        yield from self.register_group_notifier(k, mdev)
        yield from self.register_iommu_notifier(k, mdev)
        return 0

    @path("vfio_ap_mdev_close_device")
    def close_device(self, k: Any, mdev: Any) -> PathGen:
        """Unregister both notifiers; ``unset_kvm(mdev, R: mdev->kvm)``."""
        yield from self.unregister_notifiers(k, mdev)
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        yield from self.unset_kvm(k, mdev, kvm)

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any, mdev: Any) -> PathGen:
        """After ``vfio_unregister_group_dev``: ``+L``; reset; list delete; ``-L``; free;
        ``available_instances++``.  No busy test."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        yield from self.reset_queues(k, mdev)
        yield from self._mdev_list_del(k, mdev)
        yield Release(lock)
        yield Free(mdev)
        yield from self._available_inc(k)
        return 0


@register
class V15Draft(V5_12):
    """§5.9: the dynamic-configuration series v15 (April 2021) on `v5.12`: hot plug from the stores
    under ``L`` (only that part is modelled)."""

    id = "v15-draft"
    base = "v5.12"
    kernel = "\"s390/vfio-ap: dynamic configuration support\" v15 (April 2021, on 5.12-rc6)"
    description = ("v5.12 + the stores hot-plug: while attached they rewrite the CRYCB from the matrix "
                   "(kvm->lock taken while &matrix_dev->lock is held)")
    notes = _FAMILY_NOTES + """\
v15-draft specifics:
* The stores refuse only while kvm_busy [I]; refresh_apcb runs after every successful matrix write
  (assign after the sharing check, unassign, control domains), with the matrix itself as the source
  [I: the draft's filtered shadow equals the matrix under the v5.12 rule that every assigned APQN is
  bound to vfio_ap].  The draft's other changes (reservation checks, in_use, queue probe/remove hot
  plug) are not part of this scheme [I].
* Everything else as v5.12.
"""

    def store_busy(self, k: Any, mdev: Any) -> PathGen:
        """``R: kvm_busy`` only (no refusal while ``mdev->kvm`` is set) [I]."""
        busy = yield Read(mdev, "kvm_busy", "matrix_mdev->kvm_busy")
        return bool(busy)

    def store_changed(self, k: Any, mdev: Any) -> PathGen:
        yield from self.refresh_apcb(k, mdev)

    @path("vfio_ap_mdev_refresh_apcb")
    def refresh_apcb(self, k: Any, mdev: Any) -> PathGen:
        """[L held] attached and with a CRYCB: ``set_masks[M-A]`` from the matrix (``kvm->lock`` taken
        while ``L`` is held)."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
            if crycbd:
                yield from self.set_masks(k, kvm, mdev.matrix)


@register
class PqapV4Draft(V5_10):
    """§5.11: the 2019 patch "s390: ap: kvm: add PQAP interception for AQIC", v4."""

    id = "pqap-v4-draft"
    base = "v5.10"
    kernel = "[PATCH v4 1/7] s390: ap: kvm: add PQAP interception for AQIC (Feb-Mar 2019)"
    description = ("2019 PQAP interception draft: v5.10 with the hook published after the masks, "
                   "outside any lock")
    notes = _FAMILY_NOTES + """\
pqap-v4-draft specifics:
* notify_set: attach and VM reference under L; masks (M-A) with L not held; then the hook with no lock
  held [I: reconstructed from the mailing-list discussion, §5.11].
* KVM's check order is that of §5.0.2 [U: the draft's order of the fc / privileged / facility-65
  checks differed slightly].
* Everything else as v5.10.
"""

    @path("vfio_ap_mdev_set_kvm")
    def notify_set(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        lock = self.w.matrix_lock
        yield Acquire(lock)
        for m in self.w.matrix_dev.mdev_list:
            if m is mdev:
                continue
            mk = yield Read(m, "kvm", "m->kvm")
            if mk is kvm:
                yield Release(lock)
                return -errno.EPERM
        yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
        yield from self.kvm_get_kvm(k, kvm)
        yield Release(lock)
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if crycbd:
            yield from self.set_masks(k, kvm, mdev.matrix)
        yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
        return 0


__all__ = ["PqapV4Draft", "V15Draft", "V5_10", "V5_11", "V5_12", "V5_15"]
