"""Scheme `latest` (domain doc §5.8): `v6.8` + the 2025 AQIC error paths, ``ap_attr_mutex``,
``ap_scan_bus_mutex`` (scan S-2) and the 2026 shape of the update locks, ``set_kvm``/``unset_kvm``,
``mdev_create``, ``cfg_remove``, ``hot_unplug_cfg`` and ``hot_plug_cfg``.

Only what §5.8 changes is here; everything else is :class:`apactors.model.schemes.e4.V6_8` and the
`v6.0` forms of the layer mixins it builds on.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.locks import WRITE
from apactors.model.masks import Mask
from apactors.model.ops import Acquire, Alloc, Read, Release, Update, Write, acquire_via
from apactors.model.paths import ApBusPaths
from apactors.model.paths.common import UnpinPage, tuple_append
from apactors.model.schemes.base import PathGen, path, register
from apactors.model.schemes.e4 import V6_8


@register
class Latest(V6_8):
    id = "latest"
    base = "v6.8"
    kernel = ("gregkh/linux stable 02e72909453d / 2025 mainline (3746d48c55ac, c44ce579240d); "
              "AP bus eacf5b3651c5, 56199bb956c3, 8babcc2b6a75")
    family = "E4"
    description = ("2026 vfio_ap: pqap_hook_rwsem inside the update locks, ap_attr_mutex, "
                   "trylocked scan, async resets, whole-matrix filter")
    perms_lock_class = "ap_attr_mutex"
    notes = """\
Readings of [I]/[U] points and silent places (see also the docstrings of apactors.model.paths and
apactors.model.schemes.e4):
* mdev_create adds to mdev_list under guests_lock then mdevs_lock [I, doc §5.8].
* cfg_remove locks the VM only when R: m->kvm is non-NULL; do_remove is fresh per mdev; cdrem is
  cd_remove ∩ matrix.adm.  hot_unplug_cfg plugs when a shadow mask changed; hot_plug_cfg starts with
  apm_filtered := ∅ and locks the VM only when it has one [I, doc §5.8].
* request(count): the v6.0 form without locks; the vfio core calls it once (count 0) before waiting.
* irq_enable: NIB 0 or outside the 1 GiB of guest memory -> 0x06 with no pin; a PV vCPU's NIB page is
  never shared (nothing shares pages), so PV guests always get 0x06 (after pin and unpin).
* The reset check treats TAPQ 0x04 as done [U]; its rate-limited "waited" notice is not emitted.
* flush_work acquires and releases the work's lockdep map, then waits for the runs queued or running
  at the flush.
* assign_*: the filter's "changed" result guards both update_guest_apcb and reset_queues_for_apids [I].
* Registers GR0-GR2 are written in one step; the CC is the vCPU's private state (no step).
* dma-unmap marks the range unmapped before calling the driver's dma_unmap; the driver's callback is
  called for every unmap (not only when pages are pinned).
* filter_apid_by_qtype: TAPQ(T) for every added APQN (apm_add × aqm_add); an answer outside
  {0x00, 0x02-0x05} or a type older than CEX4 drops the adapter.
* Drivers are probed in the order zcrypt, vfio_ap; scans handle an adapter's domains in increasing order,
  unregistering and registering in the same pass.
* An open of an mdev that does not exist or whose remove started fails with -ENODEV; stores on an mdev
  without sysfs files fail with -ENOENT; pv-enable of a protected VM / pv-disable of an unprotected one
  return -EINVAL without steps; create of an existing name returns -EEXIST without steps.
* PV enable switches the SCA to the extended format (block_all) the first time.
"""

    # §5.8 data: 2025 AQIC error paths, reset check, scan S-2
    GISC_FAIL_RC = 0x06  #: 3746d48c55ac: GISC registration failure answers 0x06
    RESET_CHECK_DONE_RCS: tuple[int, ...] = (0x00, 0x03, 0x04)  #: 0x04 counts as done [U]
    scan_work = ApBusPaths.scan_work  # S-2

    def irq_enable_otherwise_changed(self, k: Any, kvm: Any, isc: int, vdev: Any, page: int) -> PathGen:
        """rc 0x07, latest (c44ce579240d): ``gisc_unregister`` first, then unpin."""
        yield from self.gisc_unregister(k, kvm, isc)
        yield UnpinPage(vdev, page, "&q->matrix_mdev->vdev")

    # ================================================================== mdev_create (§5.8)

    @path("vfio_ap_mdev_probe")
    def mdev_create(self, k: Any, mdev: Any) -> PathGen:
        """latest: list add under guests_lock and mdevs_lock [I, §5.8]."""
        w = self.w
        yield Alloc(mdev)
        w.mdevs[mdev.name] = mdev  # registered: visible to the vfio core from this step on
        yield Write(mdev, "req_trigger", None, "matrix_mdev->req_trigger")
        yield Acquire(w.guests_lock)
        yield Acquire(w.mdevs_lock)
        yield Update(w.matrix_dev, "mdev_list", tuple_append, mdev, "matrix_dev->mdev_list")
        mdev.in_list = True
        yield Release(w.mdevs_lock)
        yield Release(w.guests_lock)
        return 0

    # ================================================================== update-lock functions (§5.8)

    @path("get_update_locks_for_kvm")
    def get_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        """latest: ``+guests_lock; if kvm: +kvm->lock, +pqap_hook_rwsem(w); +mdevs_lock``."""
        w = self.w
        yield Acquire(w.guests_lock)
        if kvm is not None:
            yield Acquire(kvm.lock, WRITE, owner=kvm)
            yield Acquire(kvm.pqap_hook_rwsem, WRITE, owner=kvm)
        yield Acquire(w.mdevs_lock)

    @path("release_update_locks_for_kvm")
    def release_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        w = self.w
        yield Release(w.mdevs_lock)
        if kvm is not None:
            yield Release(kvm.pqap_hook_rwsem, WRITE)
            yield Release(kvm.lock)
        yield Release(w.guests_lock)

    # ================================================================== set_kvm / unset_kvm (§5.8)

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """latest: the hook is tested and set under the update locks (-EPERM if the VM has one)."""
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if crycbd:
            yield from self.get_update_locks_for_kvm(k, kvm)
            h = yield Read(kvm, "pqap_hook", "kvm->arch.crypto.pqap_hook")
            if h is not None:
                yield from self.release_update_locks_for_kvm(k, kvm)
                return -errno.EPERM
            yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
            yield from self.kvm_get_kvm(k, kvm)
            yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
            yield from self.update_guest_apcb(k, mdev)
            yield from self.release_update_locks_for_kvm(k, kvm)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any) -> PathGen:
        """latest: everything under the update locks; ``kvm_put_kvm`` after they are released."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")  # no lock
        if kvm is None:
            return
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return
        yield from self.get_update_locks_for_kvm(k, kvm)
        yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
        yield from self.clear_masks(k, kvm)
        yield from self.reset_queues(k, mdev)
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
        yield from self.release_update_locks_for_kvm(k, kvm)
        yield from self.kvm_put_kvm(k, kvm)

    # ================================================================== host configuration (§5.8)

    @path("vfio_ap_mdev_cfg_remove")
    def cfg_remove(self, k: Any, ap_remove: Mask, aq_remove: Mask, cd_remove: Mask) -> PathGen:
        """latest: the VM lock only when the mdev has a VM; do_remove fresh for each mdev;
        ``cdrem := cd_remove ∩ matrix.adm``."""
        w = self.w
        for m in w.matrix_dev.mdev_list:
            kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
            if kvm is not None:
                yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
            yield Acquire(w.mdevs_lock)
            matrix = m.matrix
            aprem = ap_remove & matrix.apm
            aqrem = aq_remove & matrix.aqm
            cdrem = cd_remove & matrix.adm
            if aprem or aqrem or cdrem:
                yield from self.hot_unplug_cfg(k, m, aprem, aqrem, cdrem)
            yield Release(w.mdevs_lock)
            if kvm is not None:
                yield Release(kvm.lock)

    @path("vfio_ap_mdev_hot_unplug_cfg")
    def hot_unplug_cfg(self, k: Any, m: Any, aprem: Mask, aqrem: Mask, cdrem: Mask) -> PathGen:
        """latest [I, §5.8]: hot plug when a shadow mask *changed*."""
        shadow = m.shadow_apcb
        do_hotplug = False
        for field, rem in (("apm", aprem), ("aqm", aqrem), ("adm", cdrem)):
            if rem:
                old = getattr(shadow, field)
                yield Write(shadow, field, old - rem, "matrix_mdev->shadow_apcb." + field)
                do_hotplug |= bool(old & rem)
        if do_hotplug:
            yield from self.update_guest_apcb(k, m)


    @path("vfio_ap_mdev_hot_plug_cfg")
    def hot_plug_cfg(self, k: Any, m: Any) -> PathGen:
        """latest [I, §5.8]: ``apm_filtered := ∅`` first; the VM lock only when the mdev has a VM."""
        w = self.w
        apm_filtered = Mask.EMPTY
        kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
        yield Acquire(w.mdevs_lock)
        yield from self._hot_plug_filter_and_reset(k, m, apm_filtered)
        yield Release(w.mdevs_lock)
        if kvm is not None:
            yield Release(kvm.lock)


__all__ = ["Latest"]
