"""The E4 family before `latest` (domain doc §5.5-§5.7, §5.10): `v6.0`, `v6.2-rc`, `v6.8`,
`v18-draft`, `v18-trylock`.  `latest` (§5.8) derives from :class:`V6_8` in
:mod:`apactors.model.schemes.latest`.

:class:`V6_0` is the full definition of the family: the layer mixins of :mod:`apactors.model.paths`
in their `v6.0` forms, scan S-1.  Each later scheme overrides only what its section changes.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.masks import Mask, parse_id
from apactors.model.ops import (Acquire, Alloc, Block, Free, Note, QueueWork, Read, Release, Sleep, Update,
                                Write, acquire_via)
from apactors.model.paths import ApBusPaths, KvmPaths, ScenarioOps, VfioApE4Paths, VfioCoreE4Paths
from apactors.model.paths.common import WorkDone, dec, inc, mask_with, mask_without, tuple_append
from apactors.model.paths.vfio_ap import _ANY_RESET_REQUEUE, Insn_tapq, Insn_zapq, info_limits
from apactors.model.schemes.base import PathGen, Scheme, path, register
from apactors.model.world import NO_ISC, WorkItem

_COMMON_NOTES = """\
* Registers GR0-GR2 are written in one step; the CC is the vCPU's private state (no step).
* irq_enable: NIB 0 or outside the 1 GiB of guest memory -> 0x06 with no pin.
* dma-unmap marks the range unmapped before calling the driver's dma_unmap; the driver's callback is
  called for every unmap (not only when pages are pinned).
* filter_apid_by_qtype: TAPQ(T) for every added APQN (apm_add × aqm_add); an answer outside
  {0x00, 0x02-0x05} or a type older than CEX4 drops the adapter [I simplified].
* Drivers are probed in the order zcrypt, vfio_ap; scans handle an adapter's domains in increasing order,
  unregistering and registering in the same pass.
* request(count): no lock; the vfio core calls it once (count 0) before waiting.
* An open of an mdev that does not exist or whose remove started fails with -ENODEV; stores on an mdev
  without sysfs files fail with -ENOENT; pv-enable of a protected VM / pv-disable of an unprotected one
  return -EINVAL without steps; create of an existing name returns -EEXIST without steps.
* PV enable switches the SCA to the extended format (block_all) the first time.
"""

_N_U_STEPS = """\
* The steps marked [U] in §5.5 are modelled as listed: assign_* returns the count at once when the id is
  already assigned, unassign_* when it is not; irq_enable validates the NIB (0 or unbacked -> 0x06) before
  pinning.  unassign_* unlinks the queue both ways (qtable and q->matrix_mdev) [I].
"""

_N_SYNC_RESET = """\
* reset_queue (synchronous, v5.11 form): W q->reset_rc after every ZAPQ (retries included) [I]; 0x05 is
  "other" (-EIO, no release) [U]; the WARN_ON_ONCE notices are emitted every time they apply.
"""

_N_V60_FILTER = """\
* filter_matrix (v6.0, §7.5.1): when hot_plug_cfg passes a shadow mask as an argument, the filter iterates
  over that mask as it recomputed it (same memory) [I].
"""

_N_CFG_REMOVE = """\
* hot_unplug_cfg sets do_hotplug when a shadow mask is non-empty after the removal (the value the bitmap
  "and-not" routine returns) [I]; cfg_remove locks m->kvm->lock without testing m->kvm (a NULL VM is an
  oops), initialises do_remove once before the mdev loop and computes cdrem = cd_remove − matrix.adm.
"""

_N_HOT_PLUG_V60 = """\
* hot_plug_cfg (v6.0) locks m->kvm->lock without testing m->kvm; matrix ∩ *_add is read as two R steps.
"""

_N_KVM_VFIO_V60 = """\
* kvm-vfio-release (no release callback): the group detach runs at once under group_lock, then the
  device's VM reference is dropped; no kvm->lock [modelling choice of §4.3].
"""

_N_VFIO_CORE_V60 = """\
* The vfio core's first open writes vdev->kvm := the group's kvm (NULL included) under group_lock without
  a VM reference; a refused open and the last close write vdev->kvm := NULL.
"""

_N_SET_KVM_V60 = """\
* set_kvm / unset_kvm (§5.5, also v6.8): the hook is written under pqap_hook_rwsem(w) before the update
  locks; an open refused by the "other mdev has this VM" test (-EPERM) leaves the VM's hook pointing at
  the refused mdev, and unset_kvm clears the hook whichever mdev it points at.  kvm_put_kvm runs under
  the update locks.
"""

_N_S1 = """\
* Scan S-1: one pass at a time (the work item never runs twice at once), invisible to lockdep.
"""

_V60_NOTES = (_N_U_STEPS + _N_SYNC_RESET + _N_V60_FILTER + _N_CFG_REMOVE + _N_HOT_PLUG_V60 + _N_SET_KVM_V60
              + _N_KVM_VFIO_V60 + _N_VFIO_CORE_V60 + _N_S1)


class V6_0(ScenarioOps, VfioApE4Paths, VfioCoreE4Paths, ApBusPaths, KvmPaths, Scheme):
    """§5.5: the full definition of the E4 family (the mixins' `v6.0` forms), KVM K-B, masks M-B,
    AP bus AM-1, scan S-1."""

    id = "v6.0"
    base = None
    kernel = ("v6.0: dynamic-configuration series v20 (48cae940c31d, 09d31ff78793, eeb386aeb5b7); "
              "AP bus 4f8206b88286, 283915850a44")
    family = "E4"
    description = ("E4 as first merged: guests_lock/kvm->lock/mdevs_lock, shadow APCB with the v6.0 "
                   "filter, in_use veto, config callbacks, synchronous resets")
    notes = _V60_NOTES + _COMMON_NOTES

    scan_work = ApBusPaths.scan_work_s1  # S-1


register(V6_0)


class V6_2rc(V6_0):
    """§5.6: `v6.0` + 51cdc8bc120e: the kvm-vfio ``release`` callback detaches the groups under
    ``kvm->lock``, each through ``vfio_file_set_kvm`` (``group_lock``)."""

    id = "v6.2-rc"
    base = "v6.0"
    kernel = "v6.2-rc: v6.0 + 51cdc8bc120e (kvm-vfio release under kvm->lock calling vfio_file_set_kvm)"
    family = "E4"
    description = "v6.0 + kvm-vfio release callback: group_lock taken under kvm->lock"
    notes = """\
* Only kvm-vfio-release changes (§5.6): +kvm->lock; per group +group_lock, W group kvm := NULL,
  -group_lock; -kvm->lock; kvm_put_kvm.  Otherwise as v6.0:
""" + (_N_U_STEPS + _N_SYNC_RESET + _N_V60_FILTER + _N_CFG_REMOVE + _N_HOT_PLUG_V60 + _N_SET_KVM_V60
       + _N_VFIO_CORE_V60 + _N_S1 + _COMMON_NOTES)

    @path("kvm_vfio_release")
    def kvm_vfio_release(self, k: Any, vm: Any) -> PathGen:
        """The kvm-vfio device's ``release``: ``+kvm->lock``; for each group ``vfio_file_set_kvm(group,
        NULL)``; ``-kvm->lock``; ``kvm_put_kvm`` (the device's reference)."""
        dev = vm.kvm_vfio
        yield Write(dev, "released", True, "kvm_device file")
        yield Acquire(vm.lock, owner=vm)
        for group in dev.groups:
            yield from self.vfio_file_set_kvm(k, group, None)
        yield Release(vm.lock)
        yield from self.kvm_put_kvm(k, vm)
        return 0


register(V6_2rc)


_V68_NOTES = """\
* hot_plug_cfg: apm_filtered is a local only filter_matrix writes; when neither adapters nor domains
  were added, reset_queues_for_apids reads it unwritten: an "undefined" event, and the value used is the
  empty mask [modelling choice for §0.2 rule 3].  m->kvm->lock is taken without a test of m->kvm.
* assign_*: the filter's "changed" result guards both update_guest_apcb and reset_queues_for_apids [I].
* mdev_create adds to mdev_list under mdevs_lock only [U: exact version of this change].
* irq_enable: a PV vCPU's NIB page is never shared (nothing shares pages), so PV guests always get
  0x06 (after pin and unpin); the conversion attempt of v6.6-v6.12 is not modelled (§5.7).
* The reset check ends on TAPQ 0x00/0x03; its rate-limited "waited" notice is not emitted.
* flush_work acquires and releases the work's lockdep map, then waits for the runs queued or running
  at the flush.
* unassign_* unlinks q->matrix_mdev only for the queues that were in the guest (§5.7).
* The vfio core takes the device's VM reference under kvm_ref_lock only when the group has a VM.
* Scan S-1 (no ap_scan_bus_mutex yet [U]): one pass at a time, invisible to lockdep.
"""


class V6_8(V6_2rc):
    """§5.7: ``kvm_ref_lock`` and a VM reference per opened device; the v6.6 asynchronous reset
    (reset-check work, ``flush_work``); the whole-matrix filter (§7.5.2) with resets of filtered
    adapters; hot unplug with reset; ``queue_probe`` deferred while ``*_add`` is pending;
    ``queue_remove`` resetting the adapter's queues; ``hot_plug_cfg`` in the whole-matrix form;
    ``irq_enable`` PV share check and unpin on GISC failure; ``mdev_create`` under mdevs_lock."""

    id = "v6.8"
    base = "v6.2-rc"
    kernel = ("v6.8: 2b48f52f2bff; v6.6 reset series (7aa7b2a80cb7, c51f8c6bb5c8, dd174833e44e), "
              "f88fb1335733, 411b0109daa5; Dec 2023 - Jan 2024 filter/reset series incl. 774d10196e64")
    family = "E4"
    description = ("kvm_ref_lock, VM reference per open device, asynchronous resets with flush_work, "
                   "whole-matrix filter")
    notes = _V68_NOTES + _N_CFG_REMOVE + _N_SET_KVM_V60 + _COMMON_NOTES

    NIB_SHARE_CHECK = True
    GISC_FAIL_UNPIN = True
    RESET_CHECK_DONE_RCS: tuple[int, ...] = (0x00, 0x03)  #: TAPQ answers that end the reset check

    # ------------------------------------------------------------------ vfio core (2b48f52f2bff)

    @path("vfio_device_group_open")
    def vfio_open(self, k: Any, mdev: Any) -> PathGen:
        """``+group_lock; +dev_set->lock``; first open: ``+kvm_ref_lock``; if the group has a VM:
        ``kvm_get_kvm`` for the device and ``W: vdev->kvm``; ``-kvm_ref_lock``; open count 0 → 1;
        ``open_device``; a refusal: open count back to 0, drop that reference, ``W: vdev->kvm :=
        NULL``; ``-dev_set->lock; -group_lock``; → rc."""
        group = mdev.group
        vdev = mdev.vdev
        yield Acquire(group.group_lock)
        yield Acquire(vdev.dev_set_lock)
        rc = 0
        if vdev.open_count == 0:
            yield Acquire(group.kvm_ref_lock)
            kvm = group.kvm
            if kvm is not None:
                yield from self.kvm_get_kvm(k, kvm)
                yield Write(vdev, "kvm", kvm, "device->kvm")
            yield Release(group.kvm_ref_lock)
            yield Write(vdev, "open_count", 1, "device->open_count")
            rc = yield from self.open_device(k, mdev)
            if rc:
                yield Write(vdev, "open_count", 0, "device->open_count")
                if kvm is not None:
                    yield from self.kvm_put_kvm(k, kvm)
                    yield Write(vdev, "kvm", None, "device->kvm")
        else:
            yield Update(vdev, "open_count", inc, 1, "device->open_count")
        yield Release(vdev.dev_set_lock)
        yield Release(group.group_lock)
        if rc == 0:
            yield Update(vdev, "file_refs", inc, 1, "device file's registration reference")
        return rc

    @path("vfio_device_group_close")
    def vfio_close(self, k: Any, mdev: Any) -> PathGen:
        """``+group_lock; +dev_set->lock``; last close: ``close_device``; open count → 0;
        ``kvm_put_kvm`` of the device's reference, ``W: vdev->kvm := NULL``; release."""
        group = mdev.group
        vdev = mdev.vdev
        yield Acquire(group.group_lock)
        yield Acquire(vdev.dev_set_lock)
        last = vdev.open_count == 1
        if last:
            yield from self.close_device(k, mdev)
        yield Update(vdev, "open_count", dec, 1, "device->open_count")
        if last:
            kvm = vdev.kvm
            if kvm is not None:
                yield from self.kvm_put_kvm(k, kvm)
                yield Write(vdev, "kvm", None, "device->kvm")
        yield Release(vdev.dev_set_lock)
        yield Release(group.group_lock)
        yield Update(vdev, "file_refs", dec, 1, "device file's registration reference")  # last step
        return 0

    @path("vfio_file_set_kvm")
    def vfio_file_set_kvm(self, k: Any, group: Any, kvm: Any) -> PathGen:
        """``+kvm_ref_lock; W: group kvm; -kvm_ref_lock`` (spinlock)."""
        yield Acquire(group.kvm_ref_lock)
        yield Write(group, "kvm", kvm, "group->kvm")
        yield Release(group.kvm_ref_lock)

    # ------------------------------------------------------------------ mdev_create (§5.7)

    @path("vfio_ap_mdev_probe")
    def mdev_create(self, k: Any, mdev: Any) -> PathGen:
        """List add under mdevs_lock (instead of guests_lock) [U: exact version]."""
        w = self.w
        yield Alloc(mdev)
        w.mdevs[mdev.name] = mdev  # registered: visible to the vfio core from this step on
        yield Write(mdev, "req_trigger", None, "matrix_mdev->req_trigger")
        yield Acquire(w.mdevs_lock)
        yield Update(w.matrix_dev, "mdev_list", tuple_append, mdev, "matrix_dev->mdev_list")
        mdev.in_list = True
        yield Release(w.mdevs_lock)
        return 0

    # ------------------------------------------------------------------ whole-matrix filter §7.5.2

    @path("vfio_ap_mdev_filter_matrix")
    def filter_matrix(self, k: Any, mdev: Any) -> PathGen:
        """Whole-matrix filter (§7.5.2).  → ``(changed, apm_filtered)``."""
        shadow = mdev.shadow_apcb
        matrix = mdev.matrix
        info = self.w.matrix_dev.info
        prev_apm, prev_aqm = shadow.apm, shadow.aqm
        yield Write(shadow, "limits", info_limits(info), "matrix_mdev->shadow_apcb")
        apm_filtered = Mask.EMPTY
        yield Write(shadow, "apm", matrix.apm & info.apm, "matrix_mdev->shadow_apcb.apm")
        yield Write(shadow, "aqm", matrix.aqm & info.aqm, "matrix_mdev->shadow_apcb.aqm")
        qtable = mdev.qtable
        aqm = shadow.aqm
        for apid in shadow.apm:
            for apqi in aqm:
                q = qtable.get(apid << 8 | apqi)
                if q is None or q.reset_status != 0:
                    yield Update(shadow, "apm", mask_without, apid, "matrix_mdev->shadow_apcb.apm")
                    if apid in prev_apm:
                        apm_filtered = apm_filtered.with_id(apid)
                    break
        return (shadow.apm != prev_apm or shadow.aqm != prev_aqm), apm_filtered

    # ------------------------------------------------------------------ asynchronous resets (v6.6)

    @path("vfio_ap_mdev_reset_queue")
    def reset_queue(self, k: Any, q: Any) -> PathGen:
        st = yield Insn_zapq(q.apqn)
        rc = st.rc
        yield Write(q, "reset_status", rc, "q->reset_status")
        if rc in (0x00, 0x02, 0x05, 0x0A):
            yield QueueWork(q.reset_work)
        elif rc == 0x03:
            yield Write(q, "reset_status", 0, "q->reset_status.response_code")
            yield from self.free_aqic_resources(k, q)
        else:
            yield Note("warn", f"vfio_ap: {q.name}: ZAPQ failed with invalid rc={rc:#04x}")

    @path("flush_work")
    def flush_work(self, k: Any, item: Any) -> PathGen:
        """Acquire and release the work's lockdep map, then wait for the queued/running run."""
        yield Acquire(item.map)
        yield Release(item.map)
        yield Block(WorkDone(item))

    @path("vfio_ap_mdev_reset_queues")
    def reset_queues(self, k: Any, mdev: Any) -> PathGen:
        for q in tuple(mdev.qtable.values()):
            yield from self.reset_queue(k, q)
        rc = 0
        for q in tuple(mdev.qtable.values()):
            yield from self.flush_work(k, q.reset_work)
            rs = yield Read(q, "reset_status", "q->reset_status.response_code")
            if rs != 0:
                rc = -errno.EIO
        return rc

    @path("vfio_ap_mdev_reset_qlist")
    def reset_qlist(self, k: Any, qlist: list) -> PathGen:
        for q in qlist:
            yield from self.reset_queue(k, q)
        rc = 0
        for q in qlist:
            yield from self.flush_work(k, q.reset_work)
            rs = yield Read(q, "reset_status", "q->reset_status.response_code")
            if rs != 0:
                rc = -errno.EIO
        return rc

    @path("reset_queues_for_apids")
    def reset_queues_for_apids(self, k: Any, mdev: Any, apm_reset: Mask) -> PathGen:
        if not apm_reset:
            return 0
        qlist: list = []
        md = self.w.matrix_dev
        for apid in apm_reset:
            info = yield Read(md, "info", "matrix_dev->info.apm")
            if apid not in info.apm:
                continue
            aqm = yield Read(mdev.shadow_apcb, "aqm", "matrix_mdev->shadow_apcb.aqm")
            qtable = mdev.qtable
            for apqi in aqm:
                q = qtable.get(apid << 8 | apqi)
                if q is not None:
                    qlist.append(q)
        return (yield from self.reset_qlist(k, qlist))

    @path("apq_reset_check")
    def apq_reset_check(self, k: Any, q: Any) -> PathGen:
        """The reset-check work (worker; takes no vfio_ap lock)."""
        done_rcs = self.RESET_CHECK_DONE_RCS
        while True:
            yield Sleep(20)
            st = yield Insn_tapq(q.apqn)
            rc = st.rc
            if rc in done_rcs:
                ret = 0
            elif rc in (0x02, 0x05):
                continue  # -EBUSY (a rate-limited "waited N ms" notice, not modelled)
            elif rc in (0x35, 0x36):
                ret = -errno.EAGAIN
            else:
                yield Note("warn", f"vfio_ap: {q.name}: reset check: TAPQ rc {rc:#04x}")
                return
            if ret == -errno.EAGAIN:
                requeue = True
            else:
                rs = yield Read(q, "reset_status", "q->reset_status.response_code")
                requeue = rs in _ANY_RESET_REQUEUE
            if requeue:
                st = yield Insn_zapq(q.apqn)
                yield Write(q, "reset_status", st.rc, "q->reset_status")
                continue
            if rc == 0x03:
                yield Write(q, "reset_status", 0, "q->reset_status.response_code")
            isc = yield Read(q, "saved_isc", "q->saved_isc")
            if isc != NO_ISC:
                yield from self.free_aqic_resources(k, q)
            return

    # ------------------------------------------------------------------ stores (§5.7)

    def _assign(self, k: Any, mdev: Any, buf: str, adapter: bool) -> PathGen:
        """The body of assign_adapter/assign_domain with the locks held (`v6.8` form)."""
        try:
            ident = parse_id(buf)
        except ValueError:
            return -errno.EINVAL
        matrix = mdev.matrix
        field = "apm" if adapter else "aqm"
        limit = matrix.apm_max if adapter else matrix.aqm_max
        if ident > limit:
            return -errno.ENODEV
        if ident in getattr(matrix, field):
            return len(buf)
        expr = "matrix_mdev->matrix." + field
        yield Update(matrix, field, mask_with, ident, expr)
        rc = yield from self.validate_masks(k, mdev, matrix.apm, matrix.aqm)
        if rc:
            yield Update(matrix, field, mask_without, ident, expr)
            return rc
        if adapter:
            yield from self.link_adapter(k, mdev, ident)
        else:
            yield from self.link_domain(k, mdev, ident)
        changed, apm_filtered = yield from self.filter_matrix(k, mdev)
        if changed:
            yield from self.update_guest_apcb(k, mdev)
            yield from self.reset_queues_for_apids(k, mdev, apm_filtered)
        return len(buf)

    def _unassign(self, k: Any, mdev: Any, buf: str, adapter: bool) -> PathGen:
        """Hot unplug with reset (`v6.8` form of unassign_adapter / unassign_domain)."""
        try:
            ident = parse_id(buf)
        except ValueError:
            return -errno.EINVAL
        matrix = mdev.matrix
        shadow = mdev.shadow_apcb
        field = "apm" if adapter else "aqm"
        other = "aqm" if adapter else "apm"
        limit = matrix.apm_max if adapter else matrix.aqm_max
        if ident > limit:
            return -errno.ENODEV
        if ident not in getattr(matrix, field):
            return len(buf)
        yield Update(matrix, field, mask_without, ident, "matrix_mdev->matrix." + field)
        qlist: list = []
        others = yield Read(matrix, other, "matrix_mdev->matrix." + other)
        for o in others:
            apid, apqi = (ident, o) if adapter else (o, ident)
            q = mdev.qtable.get(apid << 8 | apqi)
            if q is None:
                continue
            sapm = yield Read(shadow, "apm", "matrix_mdev->shadow_apcb.apm")
            if apid in sapm:
                saqm = yield Read(shadow, "aqm", "matrix_mdev->shadow_apcb.aqm")
                if apqi in saqm:
                    qlist.append(q)
            yield from self.unlink_queue_fr_mdev(k, q, mdev)
        if ident in getattr(shadow, field):
            yield Update(shadow, field, mask_without, ident, "matrix_mdev->shadow_apcb." + field)
            yield from self.update_guest_apcb(k, mdev)
        yield from self.reset_qlist(k, qlist)
        for q in qlist:
            yield from self.unlink_mdev_fr_queue(k, q)
        return len(buf)

    # ------------------------------------------------------------------ scan callback (§5.7)

    @path("vfio_ap_mdev_hot_plug_cfg")
    def hot_plug_cfg(self, k: Any, m: Any) -> PathGen:
        """Whole-matrix form: ``apm_filtered`` is a local only ``filter_matrix`` writes;
        ``+k->lock`` with no test of ``k``."""
        w = self.w
        apm_filtered = None  # uninitialised local bitmap
        kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
        yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
        yield Acquire(w.mdevs_lock)
        yield from self._hot_plug_filter_and_reset(k, m, apm_filtered)
        yield Release(w.mdevs_lock)
        yield Release(kvm.lock)

    def _hot_plug_filter_and_reset(self, k: Any, m: Any, apm_filtered: Mask | None) -> PathGen:
        """The body of ``hot_plug_cfg`` under the VM lock and mdevs_lock (§5.7): filter if adapters or
        domains were added, filter_cdoms if control domains were, the CRYCB, the filtered adapters'
        resets.  ``apm_filtered`` None: never written — reading it is an "undefined" event (§0.2 rule
        3) and the value used is the empty mask [modelling choice]."""
        matrix = m.matrix
        a = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
        b = yield Read(m, "apm_add", "matrix_mdev->apm_add")
        fa = bool(a & b)
        a = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
        b = yield Read(m, "aqm_add", "matrix_mdev->aqm_add")
        fd = bool(a & b)
        a = yield Read(matrix, "adm", "matrix_mdev->matrix.adm")
        b = yield Read(m, "adm_add", "matrix_mdev->adm_add")
        fc = bool(a & b)
        do_hotplug = False
        if fa or fd:
            do_hotplug, apm_filtered = yield from self.filter_matrix(k, m)
        if fc:
            do_hotplug |= (yield from self.filter_cdoms(k, m))
        if do_hotplug:
            yield from self.update_guest_apcb(k, m)
        if apm_filtered is None:
            yield Note("undefined", "apm_filtered read before it was written (hot_plug_cfg)")
            apm_filtered = Mask.EMPTY
        yield from self.reset_queues_for_apids(k, m, apm_filtered)

    # ------------------------------------------------------------------ queue probe / remove (§5.7)

    @path("vfio_ap_mdev_probe_queue")
    def queue_probe(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held; gate passed; qdev in ap_queues] (`v6.8` form: deferred to
        ``on_scan_complete`` while ``apm_add``/``aqm_add`` is pending)."""
        apqn = qdev.apqn
        q = self.new_queue(apqn)
        q.reset_work = WorkItem(f"{q.name}.reset_work", q, self.apq_reset_check, (q,))
        yield Alloc(q)
        yield Write(q, "apqn", apqn, "q->apqn")
        yield Write(q, "saved_isc", NO_ISC, "q->saved_isc")
        yield Write(q, "reset_status", 0, "q->reset_status")
        mdev = yield from self.get_update_locks_by_apqn(k, apqn)
        if mdev is not None:
            yield from self.link_queue(k, mdev, q)
            pending = yield Read(mdev, "apm_add", "matrix_mdev->apm_add")
            if not pending:
                pending = yield Read(mdev, "aqm_add", "matrix_mdev->aqm_add")
            if not pending:
                changed, apm_filtered = yield from self.filter_matrix(k, mdev)
                if changed:
                    yield from self.update_guest_apcb(k, mdev)
                    yield from self.reset_queues_for_apids(k, mdev, apm_filtered)
        yield Write(qdev, "drvdata", q, "dev_set_drvdata(&queue->ap_dev.device)")
        yield from self.release_update_locks_for_mdev(k, mdev)
        return 0

    @path("vfio_ap_mdev_remove_queue")
    def queue_remove(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held] (`v6.8` form): in the guest → unplug the adapter and reset all
        its queues (``reset_queues_for_apid``); else reset this queue only if it is in the host
        configuration (``matrix_dev->info``)."""
        w = self.w
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        yield from self.get_update_locks_for_queue(k, q)
        mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
        apid, apqi = q.apqn >> 8, q.apqn & 0xFF
        unplugged = False
        if mdev is not None:
            shadow = mdev.shadow_apcb
            sapm = yield Read(shadow, "apm", "matrix_mdev->shadow_apcb.apm")
            if apid in sapm:
                saqm = yield Read(shadow, "aqm", "matrix_mdev->shadow_apcb.aqm")
                if apqi in saqm:
                    yield Update(shadow, "apm", mask_without, apid, "matrix_mdev->shadow_apcb.apm")
                    yield from self.update_guest_apcb(k, mdev)
                    yield from self.reset_queues_for_apids(k, mdev, Mask.EMPTY.with_id(apid))
                    unplugged = True
        if not unplugged:
            info = yield Read(w.matrix_dev, "info", "matrix_dev->info")
            if apid in info.apm and apqi in info.aqm:
                yield from self.reset_queue(k, q)
                yield from self.flush_work(k, q.reset_work)
        if mdev is not None:
            yield from self.unlink_queue_fr_mdev(k, q, mdev)
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Free(q)
        yield from self.release_update_locks_for_mdev(k, mdev)


register(V6_8)


# ------------------------------------------------------------------------------------- v18 drafts

_V18_NOTES = """\
* assign_adapter / assign_domain: the v6.0 body (including the [U] "already assigned -> count" short cut
  and the v6.0 filter) under get_update_locks_for_mdev only; validate_masks takes ap_perms_mutex itself
  around the two ap_perms reads and releases it before returning -EADDRNOTAVAIL or running the sharing
  check (§5.10).
* apmask/aqmask: AM-1, in_use called with ap_perms_mutex held.
"""


class V18Draft(V6_0):
    """§5.10: the assign stores do not take ``ap_perms_mutex`` first; the reservation check takes
    it itself under the update locks."""

    id = "v18-draft"
    base = "v6.0"
    kernel = ("dynamic-configuration series v18/v19 (early 2022): v19 08/20 (guests_lock), "
              "v19 15/20 (in_use callback)")
    family = "E4"
    description = "v6.0 with the reservation check taking ap_perms_mutex under the update locks"
    notes = _V18_NOTES + _V60_NOTES + _COMMON_NOTES

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._assign(k, mdev, buf, adapter=True)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    @path("assign_domain_store")
    def assign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._assign(k, mdev, buf, adapter=False)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    @path("vfio_ap_mdev_validate_masks")
    def validate_masks(self, k: Any, mdev: Any, apm: Mask, aqm: Mask) -> PathGen:
        """``+ap_perms_mutex; R: ap_perms; -ap_perms_mutex`` (→ -EADDRNOTAVAIL); sharing check."""
        bus = self.w.bus
        perms = bus.perms
        yield Acquire(bus.perms_lock)
        reserved = False
        papm = yield Read(perms, "apm", "ap_perms.apm")
        if apm & papm:
            paqm = yield Read(perms, "aqm", "ap_perms.aqm")
            reserved = bool(aqm & paqm)
        yield Release(bus.perms_lock)
        if reserved:
            return -errno.EADDRNOTAVAIL
        return (yield from self.verify_no_sharing(k, mdev, apm, aqm))


register(V18Draft)


class V18Trylock(V18Draft):
    """§5.10: `v18-draft` with an ``in_use`` that trylocks ``guests_lock`` and ``mdevs_lock`` and
    answers -EBUSY when either is held."""

    id = "v18-trylock"
    base = "v18-draft"
    kernel = "dynamic-configuration series v18/v19 (early 2022): the trylock iteration of the in_use callback"
    family = "E4"
    description = "v18-draft with in_use trylocking guests_lock and mdevs_lock (-EBUSY when busy)"
    notes = """\
* in_use: try+guests_lock, try+mdevs_lock (releasing guests_lock when the second fails) -> -EBUSY, so
  the mask store fails with -EBUSY; the trylocks record no lockdep edges.  A trylock on the assignment
  side is not modelled [U, §5.10].
""" + _V18_NOTES + _V60_NOTES + _COMMON_NOTES

    @path("vfio_ap_mdev_resource_in_use")
    def in_use(self, k: Any, apm: Mask, aqm: Mask) -> PathGen:
        w = self.w
        got = yield Acquire(w.guests_lock, try_=True)
        if not got:
            return -errno.EBUSY
        got = yield Acquire(w.mdevs_lock, try_=True)
        if not got:
            yield Release(w.guests_lock)
            return -errno.EBUSY
        rc = yield from self.verify_no_sharing(k, None, apm, aqm)
        yield Release(w.mdevs_lock)
        yield Release(w.guests_lock)
        return rc


register(V18Trylock)


__all__ = ["V18Draft", "V18Trylock", "V6_0", "V6_2rc", "V6_8"]
