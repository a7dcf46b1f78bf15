"""The vfio_ap driver of the E4 family in its `latest` form (domain doc §5.5 as changed by §5.6,
§5.7 and §5.8; whole-matrix filter §7.5.2; asynchronous reset §5.7).

Reading guide: each method is one kernel function; its docstring names the doc section.  Steps are
yielded exactly where the doc writes ``R:``, ``W:`` or a lock step; what the doc computes without
``R:`` (qtable lookups, ``mdev_list`` walks, mask arithmetic, the values a ``W:`` stores) is local
computation at the step before.  Pointer dereferences the doc marks go through ``Read``/``Write``
so that a freed mdev or queue object or a NULL pointer is caught at that step.

Scheme variants of the E4 family are class attributes or overridable methods:
``RESET_CHECK_DONE_RCS`` (TAPQ answers that end the reset check), ``GISC_FAIL_RC`` (latest 0x06,
v6.0-v6.8 0x08), ``irq_enable_on_aqic_07`` (latest: unregister then unpin), ``hot_plug_init_filtered``.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.hardware import (AP_DEVICE_TYPE_CEX4, AQIC, AQIC_DISABLE, TAPQ, ZAPQ, ApStatus,
                                     AqicControl, status)
from apactors.model.locks import WRITE
from apactors.model.masks import Mask, format_apqn, parse_id
from apactors.model.ops import (Acquire, Alloc, Block, Free, Insn, Note, NullDeref, QueueWork, Read,
                                Release, Sleep, Update, Write, acquire_via)
from apactors.model.paths.common import (GUEST_MEMORY, PAGE_SHIFT, PinPage, UnpinPage, WorkDone, mask_with,
                                         mask_without, qtable_add, qtable_del, tuple_append, tuple_remove)
from apactors.model.schemes.base import PathGen, path
from apactors.model.world import NO_ISC, HostConfig, MatrixMdev, VfioApQueue, WorkItem

HOOK_NAME = "vfio_ap_handle_pqap"  #: the method KVM calls through ``mdev->pqap_hook``

_ANY_RESET_REQUEUE = (0x02, 0x05, 0x0A)


def info_limits(info: HostConfig) -> tuple[int, int, int]:
    """``apm_max, aqm_max, adm_max`` from the QCI info: APXA is installed with Na = Nd = 255 (§4.2)."""
    return (255, 255, 255)


def Insn_tapq(apqn: int, t_bit: bool = False) -> Insn:  # noqa: N802
    """``TAPQ`` (with the T bit: the answer carries the adapter type)."""
    return Insn(TAPQ, apqn, t_bit)


def Insn_zapq(apqn: int) -> Insn:  # noqa: N802
    return Insn(ZAPQ, apqn, None)


def Insn_aqic(apqn: int, ctl: AqicControl) -> Insn:  # noqa: N802
    return Insn(AQIC, apqn, ctl)


def _apqns(apm: Mask, aqm: Mask) -> str:
    return ", ".join(format_apqn(a << 8 | d) for a in apm for d in aqm)


class VfioApE4Paths:
    """vfio_ap (E4, `latest` forms).  Needs the KVM mixin (set/clear masks, GISC, VM references)."""

    RESET_CHECK_DONE_RCS: tuple[int, ...] = (0x00, 0x03, 0x04)  #: latest: 0x04 counts as done [U]
    GISC_FAIL_RC = 0x06  #: latest, alt-*: GISC registration failure answers 0x06
    hot_plug_init_filtered = True  #: latest: hot_plug_cfg starts with apm_filtered := ∅

    # ================================================================== update-lock functions (§5.5, §5.8)

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

    @path("get_update_locks_for_mdev")
    def get_update_locks_for_mdev(self, k: Any, mdev: Any) -> PathGen:
        w = self.w
        yield Acquire(w.guests_lock)
        if mdev is not None:
            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if kvm is not None:
                yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
        yield Acquire(w.mdevs_lock)

    @path("release_update_locks_for_mdev")
    def release_update_locks_for_mdev(self, k: Any, mdev: Any) -> PathGen:
        w = self.w
        yield Release(w.mdevs_lock)
        if mdev is not None:
            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if kvm is not None:
                yield Release(kvm.lock)
        yield Release(w.guests_lock)

    @path("get_update_locks_by_apqn")
    def get_update_locks_by_apqn(self, k: Any, apqn: int) -> PathGen:
        """→ the mdev whose matrix holds ``apqn`` (list and matrices read under guests_lock only)."""
        w = self.w
        apid, apqi = apqn >> 8, apqn & 0xFF
        yield Acquire(w.guests_lock)
        for m in w.matrix_dev.mdev_list:
            apm = yield Read(m.matrix, "apm", "matrix_mdev->matrix.apm")
            if apid not in apm:
                continue
            aqm = yield Read(m.matrix, "aqm", "matrix_mdev->matrix.aqm")
            if apqi not in aqm:
                continue
            kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
            if kvm is not None:
                yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
            yield Acquire(w.mdevs_lock)
            return m
        yield Acquire(w.mdevs_lock)
        return None

    @path("get_update_locks_for_queue")
    def get_update_locks_for_queue(self, k: Any, q: Any) -> PathGen:
        w = self.w
        yield Acquire(w.guests_lock)
        mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
        if mdev is not None:
            kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
            if kvm is not None:
                yield acquire_via(kvm, "lock", "q->matrix_mdev->kvm->lock")
        yield Acquire(w.mdevs_lock)

    # ================================================================== queue lookup and links

    @path("vfio_ap_find_queue")
    def find_queue(self, k: Any, apqn: int) -> PathGen:
        """``ap_get_qdev`` under ``ap_queues_lock``; then the drvdata if the driver is vfio_ap."""
        bus = self.w.bus
        yield Acquire(bus.queues_lock)
        qdev = bus.devices.get(apqn)
        if qdev is not None and qdev.driver is None:
            qdev = None  # not in the ap_queues hash
        yield Release(bus.queues_lock)
        if qdev is None or qdev.driver != "vfio_ap":
            return None
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        return q

    @staticmethod
    def get_queue(mdev: Any, apqn: int) -> Any:
        """``vfio_ap_mdev_get_queue``: the q linked in ``mdev.qtable`` for ``apqn`` (no step)."""
        return mdev.qtable.get(apqn)

    @path("vfio_ap_mdev_link_queue")
    def link_queue(self, k: Any, mdev: Any, q: Any) -> PathGen:
        yield Write(q, "matrix_mdev", mdev, "q->matrix_mdev")
        yield Update(mdev, "qtable", qtable_add, q, "matrix_mdev->qtable")

    @path("vfio_ap_unlink_queue_fr_mdev")
    def unlink_queue_fr_mdev(self, k: Any, q: Any, mdev: Any) -> PathGen:
        """``hash_del(&q->mdev_qnode)``: ``mdev`` is the mdev whose qtable holds q."""
        yield Update(mdev, "qtable", qtable_del, q, "matrix_mdev->qtable")

    @path("vfio_ap_unlink_mdev_fr_queue")
    def unlink_mdev_fr_queue(self, k: Any, q: Any) -> PathGen:
        yield Write(q, "matrix_mdev", None, "q->matrix_mdev")

    @path("vfio_ap_mdev_link_adapter")
    def link_adapter(self, k: Any, mdev: Any, apid: int) -> PathGen:
        for apqi in mdev.matrix.aqm:
            q = yield from self.find_queue(k, apid << 8 | apqi)
            if q is not None:
                yield from self.link_queue(k, mdev, q)

    @path("vfio_ap_mdev_link_domain")
    def link_domain(self, k: Any, mdev: Any, apqi: int) -> PathGen:
        for apid in mdev.matrix.apm:
            q = yield from self.find_queue(k, apid << 8 | apqi)
            if q is not None:
                yield from self.link_queue(k, mdev, q)

    # ================================================================== guest APCB and filtering

    @path("vfio_ap_mdev_update_guest_apcb")
    def update_guest_apcb(self, k: Any, mdev: Any) -> PathGen:
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            yield from self.set_masks(k, kvm, mdev.shadow_apcb)

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

    @path("vfio_ap_mdev_filter_cdoms")
    def filter_cdoms(self, k: Any, mdev: Any) -> PathGen:
        shadow = mdev.shadow_apcb
        prev = shadow.adm
        new = mdev.matrix.adm & self.w.matrix_dev.info.adm
        yield Write(shadow, "adm", new, "matrix_mdev->shadow_apcb.adm")
        return new != prev

    # ================================================================== reservation and sharing

    @path("vfio_ap_mdev_validate_masks")
    def validate_masks(self, k: Any, mdev: Any, apm: Mask, aqm: Mask) -> PathGen:
        """Caller holds the AP bus mutex.  Reserved → -EADDRNOTAVAIL; else the sharing check."""
        perms = self.w.bus.perms
        papm = yield Read(perms, "apm", "ap_perms.apm")
        if apm & papm:
            paqm = yield Read(perms, "aqm", "ap_perms.aqm")
            if aqm & paqm:
                return -errno.EADDRNOTAVAIL
        return (yield from self.verify_no_sharing(k, mdev, apm, aqm))

    @path("vfio_ap_mdev_verify_no_sharing")
    def verify_no_sharing(self, k: Any, assignee: Any, apm: Mask, aqm: Mask) -> PathGen:
        for m in self.w.matrix_dev.mdev_list:
            if m is assignee:
                continue
            sa = apm & m.matrix.apm
            sd = aqm & m.matrix.aqm
            if sa and sd:
                if assignee is not None:
                    text = (f"{assignee.name}: Userspace may not assign queue(s) {_apqns(sa, sd)} to "
                            f"this mdev: already assigned to {m.name}")
                else:
                    text = (f"Can not reserve queue(s) {_apqns(sa, sd)} for host driver: in use by mdev "
                            f"{m.name}")
                yield Note("warn", text)
                return -errno.EADDRINUSE
        return 0

    # ================================================================== interrupts (§5.5, §5.8, §6.4)

    @path("vfio_ap_free_aqic_resources")
    def free_aqic_resources(self, k: Any, q: Any) -> PathGen:
        if q is None:
            return
        isc = yield Read(q, "saved_isc", "q->saved_isc")
        if isc != NO_ISC:
            mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
            kvm = None
            if mdev is not None:
                kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
            if mdev is not None and kvm is not None:
                yield from self.gisc_unregister(k, kvm, isc)
                yield Write(q, "saved_isc", NO_ISC, "q->saved_isc")
                q.saved_vm = None
            else:
                yield Note("warn", f"vfio_ap: {q.name}: saved ISC {isc} not released: no guest")
        iova = yield Read(q, "saved_iova", "q->saved_iova")
        if iova != 0:
            mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
            if mdev is not None:
                yield UnpinPage(mdev.vdev, iova >> PAGE_SHIFT, "&q->matrix_mdev->vdev")
                yield Write(q, "saved_iova", 0, "q->saved_iova")
            else:
                yield Note("warn", f"vfio_ap: {q.name}: NIB page {iova:#x} not unpinned: no mdev")

    @path("vfio_ap_wait_for_irqclear")
    def wait_irqclear(self, k: Any, apqn: int) -> PathGen:
        for _ in range(5):
            st = yield Insn_tapq(apqn)
            rc = st.rc
            if rc in (0x00, 0x02):
                if not st.irq_enabled:
                    return
                yield Sleep(20)
                continue
            if rc == 0x05:
                yield Sleep(20)
                continue
            yield Note("warn", f"vfio_ap: {format_apqn(apqn)}: tapq rc {rc:#04x} while waiting for IRQ clear")
            return
        yield Note("warn", f"vfio_ap: {format_apqn(apqn)}: interrupts still enabled after 5 tries")

    @path("vfio_ap_irq_disable")
    def irq_disable(self, k: Any, q: Any) -> PathGen:
        apqn = q.apqn
        st: ApStatus = status(0x01)
        for _attempt in range(6):
            st = yield Insn_aqic(apqn, AQIC_DISABLE)
            rc = st.rc
            if rc in (0x00, 0x07):
                yield from self.wait_irqclear(k, apqn)
                break
            if rc in (0x02, 0x05):
                yield Sleep(20)
                continue
            yield Note("warn", f"vfio_ap: {q.name}: AQIC disable rc {rc:#04x}")
            break
        else:
            yield Note("warn", f"vfio_ap: {q.name}: AQIC disable retries exhausted")
        yield from self.free_aqic_resources(k, q)
        return st

    @path("vfio_ap_irq_enable")
    def irq_enable(self, k: Any, q: Any, isc: int, vcpu: Any) -> PathGen:
        """latest (§5.5 with §5.7 and the 2025 error paths of §5.8)."""
        nib = vcpu.regs[2]
        if nib == 0 or nib >= GUEST_MEMORY:
            yield Note("debug", f"vfio_ap: {q.name}: invalid NIB {nib:#x}")
            return status(0x06)
        mdev = q.matrix_mdev
        if mdev is None:
            yield NullDeref("&q->matrix_mdev->vdev")
        vdev = mdev.vdev
        page = nib >> PAGE_SHIFT
        pinned = yield PinPage(vdev, page, "&q->matrix_mdev->vdev")
        if pinned != 1:
            yield Note("debug", f"vfio_ap: {q.name}: pin of NIB {nib:#x} failed")
            return status(0x06)
        kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
        if kvm is None:
            yield NullDeref("q->matrix_mdev->kvm->arch.gisa_int.origin")
        if vcpu.pv and page not in kvm.shared_pages:  # uv_pin_shared fails: the page is not shared
            yield Note("debug", f"vfio_ap: {q.name}: NIB {nib:#x} of a protected guest is not shared")
            yield UnpinPage(vdev, page, "&q->matrix_mdev->vdev")
            return status(0x06)
        nisc = yield from self.gisc_register(k, kvm, isc)
        if nisc < 0:
            yield Note("debug", f"vfio_ap: {q.name}: gisc registration failed: nisc={nisc}")
            yield UnpinPage(vdev, page, "&q->matrix_mdev->vdev")
            return status(self.GISC_FAIL_RC)
        ctl = AqicControl(ir=1, gisc=isc, isc=nisc, gisa=kvm.gisa >> 4, nib=nib)
        st = yield Insn_aqic(q.apqn, ctl)
        rc = st.rc
        if rc == 0x00:
            yield from self.free_aqic_resources(k, q)
            yield Write(q, "saved_iova", nib, "q->saved_iova")
            yield Write(q, "saved_isc", isc, "q->saved_isc")
            q.saved_vm = kvm
        elif rc == 0x07:
            yield from self.irq_enable_otherwise_changed(k, kvm, isc, vdev, page)
        else:
            yield Note("warn", f"vfio_ap: {q.name}: AQIC enable rc {rc:#04x}")
            yield from self.irq_disable(k, q)
        return st

    def irq_enable_otherwise_changed(self, k: Any, kvm: Any, isc: int, vdev: Any, page: int) -> PathGen:
        """rc 0x07, latest: ``gisc_unregister`` first, then unpin."""
        yield from self.gisc_unregister(k, kvm, isc)
        yield UnpinPage(vdev, page, "&q->matrix_mdev->vdev")

    # ================================================================== the PQAP handler (§5.5)

    @path("handle_pqap")
    def vfio_ap_handle_pqap(self, k: Any, vcpu: Any) -> PathGen:
        """vfio_ap's PQAP(AQIC) handler (KVM holds vcpu->mutex, kvm->srcu, pqap_hook_rwsem(r))."""
        w = self.w
        gr0 = vcpu.regs[0]
        apqn = gr0 & 0xFFFF
        if not vcpu.eca_aiv:
            yield Note("debug", "vfio_ap: AIV facility not installed for the vCPU")
            return -errno.EOPNOTSUPP
        yield Acquire(w.mdevs_lock)
        st = status(0x01)
        h = yield Read(vcpu.vm, "pqap_hook", "vcpu->kvm->arch.crypto.pqap_hook")
        if h is None:
            yield Note("debug", "vfio_ap: PQAP hook not registered")
        else:
            mdev = h  # container_of(h): no access
            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
            if kvm is None:
                yield Note("debug", f"vfio_ap: mdev {mdev.name} not in use")
            else:
                q = mdev.qtable.get(apqn)
                if q is None:
                    yield Note("debug", f"vfio_ap: queue {format_apqn(apqn)} not bound to mdev {mdev.name}")
                else:
                    gr1 = vcpu.regs[1]
                    if (gr1 >> 47) & 1:
                        st = yield from self.irq_enable(k, q, gr1 & 7, vcpu)
                    else:
                        st = yield from self.irq_disable(k, q)
        r0, _r1, r2 = vcpu.regs
        yield Write(vcpu, "regs", (r0, st.word(), r2))
        yield Release(w.mdevs_lock)
        return 0

    # ================================================================== queue resets (§5.7 async)

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

    # ================================================================== set_kvm / unset_kvm (§5.8)

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
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

    # ================================================================== vfio device callbacks

    @path("vfio_ap_mdev_open_device")
    def open_device(self, k: Any, mdev: Any) -> PathGen:
        kvm = yield Read(mdev.vdev, "kvm", "vdev->kvm")
        if kvm is None:
            return -errno.EINVAL
        return (yield from self.set_kvm(k, mdev, kvm))

    @path("vfio_ap_mdev_close_device")
    def close_device(self, k: Any, mdev: Any) -> PathGen:
        yield from self.unset_kvm(k, mdev)

    @path("vfio_ap_mdev_dma_unmap")
    def dma_unmap(self, k: Any, mdev: Any, iova: int, length: int) -> PathGen:
        w = self.w
        yield Acquire(w.mdevs_lock)
        end = iova + length
        for q in tuple(mdev.qtable.values()):
            saved = yield Read(q, "saved_iova", "q->saved_iova")
            if iova <= saved < end:
                yield from self.irq_disable(k, q)
        yield Release(w.mdevs_lock)

    @path("vfio_ap_mdev_ioctl")
    def reset_ioctl(self, k: Any, mdev: Any) -> PathGen:
        """VFIO_DEVICE_RESET: only mdevs_lock; the CRYCB is untouched."""
        w = self.w
        yield Acquire(w.mdevs_lock)
        rc = yield from self.reset_queues(k, mdev)
        yield Release(w.mdevs_lock)
        return rc

    @path("vfio_ap_mdev_request")
    def request(self, k: Any, mdev: Any, count: int) -> PathGen:
        """As v6.0 (no lock) [modelling choice of §5.8]."""
        trigger = yield Read(mdev, "req_trigger", "matrix_mdev->req_trigger")
        if trigger is not None:
            return  # eventfd_signal: the VMM is asked to release the device
        if count == 0:
            yield Note("info", f"vfio_ap: {mdev.name}: No device request registered, blocked until "
                               "released by user")

    # ================================================================== mdev create / remove

    def new_mdev(self, name: str) -> MatrixMdev:
        """The object ``mdev_create`` allocates (init: limits from info, pqap_hook, empty qtable)."""
        info = self.w.matrix_dev.info
        mdev = MatrixMdev(name, info)
        limits = info_limits(info)
        mdev.matrix.limits = limits
        mdev.shadow_apcb.limits = limits
        mdev.pqap_hook = HOOK_NAME
        mdev.freed = True  # comes to life at its Alloc step
        return mdev

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

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any, mdev: Any) -> PathGen:
        w = self.w
        yield Acquire(w.guests_lock)
        yield Acquire(w.mdevs_lock)
        yield from self.reset_queues(k, mdev)
        matrix = mdev.matrix
        qtable = mdev.qtable
        for apid in matrix.apm:
            for apqi in matrix.aqm:
                q = qtable.get(apid << 8 | apqi)
                if q is not None:
                    yield Write(q, "matrix_mdev", None, "q->matrix_mdev")
        yield Update(w.matrix_dev, "mdev_list", tuple_remove, mdev, "matrix_dev->mdev_list")
        mdev.in_list = False
        yield Release(w.mdevs_lock)
        yield Release(w.guests_lock)
        yield Free(mdev)  # the final put of the vfio device frees the mdev

    # ================================================================== sysfs stores (§5.5, §5.7)

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        perms_lock = self.w.bus.perms_lock
        yield Acquire(perms_lock)
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._assign(k, mdev, buf, adapter=True)
        yield from self.release_update_locks_for_mdev(k, mdev)
        yield Release(perms_lock)
        return rc

    @path("assign_domain_store")
    def assign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        perms_lock = self.w.bus.perms_lock
        yield Acquire(perms_lock)
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._assign(k, mdev, buf, adapter=False)
        yield from self.release_update_locks_for_mdev(k, mdev)
        yield Release(perms_lock)
        return rc

    def _assign(self, k: Any, mdev: Any, buf: str, adapter: bool) -> PathGen:
        """The body of assign_adapter/assign_domain with the locks held (v6.8 form)."""
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

    @path("unassign_adapter_store")
    def unassign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._unassign(k, mdev, buf, adapter=True)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    @path("unassign_domain_store")
    def unassign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._unassign(k, mdev, buf, adapter=False)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    def _unassign(self, k: Any, mdev: Any, buf: str, adapter: bool) -> PathGen:
        """Hot unplug with reset (v6.8 form of unassign_adapter / unassign_domain)."""
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

    @path("assign_control_domain_store")
    def assign_control_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._assign_cdom(k, mdev, buf)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    def _assign_cdom(self, k: Any, mdev: Any, buf: str) -> PathGen:
        try:
            ident = parse_id(buf)
        except ValueError:
            return -errno.EINVAL
        matrix = mdev.matrix
        if ident > matrix.adm_max:
            return -errno.ENODEV
        yield Update(matrix, "adm", mask_with, ident, "matrix_mdev->matrix.adm")
        if (yield from self.filter_cdoms(k, mdev)):
            yield from self.update_guest_apcb(k, mdev)
        return len(buf)

    @path("unassign_control_domain_store")
    def unassign_control_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._unassign_cdom(k, mdev, buf)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    def _unassign_cdom(self, k: Any, mdev: Any, buf: str) -> PathGen:
        try:
            ident = parse_id(buf)
        except ValueError:
            return -errno.EINVAL
        matrix = mdev.matrix
        if ident > matrix.adm_max:
            return -errno.ENODEV
        yield Update(matrix, "adm", mask_without, ident, "matrix_mdev->matrix.adm")
        shadow = mdev.shadow_apcb
        if ident in shadow.adm:
            yield Update(shadow, "adm", mask_without, ident, "matrix_mdev->shadow_apcb.adm")
            yield from self.update_guest_apcb(k, mdev)
        return len(buf)

    # ================================================================== AP bus callbacks

    @path("vfio_ap_mdev_resource_in_use")
    def in_use(self, k: Any, apm: Mask, aqm: Mask) -> PathGen:
        """Called by the AP bus with its mutex held (§7.4)."""
        w = self.w
        yield Acquire(w.guests_lock)
        yield Acquire(w.mdevs_lock)
        rc = yield from self.verify_no_sharing(k, None, apm, aqm)
        yield Release(w.mdevs_lock)
        yield Release(w.guests_lock)
        return rc

    @path("vfio_ap_on_cfg_changed")
    def on_config_changed(self, k: Any, cur: Any, prev: Any) -> PathGen:
        if cur is None or prev is None:
            return
        w = self.w
        yield Acquire(w.guests_lock)
        ap_remove = prev.apm - cur.apm
        aq_remove = prev.aqm - cur.aqm
        cd_remove = prev.adm - cur.adm
        if ap_remove or aq_remove or cd_remove:
            yield from self.cfg_remove(k, ap_remove, aq_remove, cd_remove)
        apm_add = cur.apm - prev.apm
        aqm_add = cur.aqm - prev.aqm
        adm_add = cur.adm - prev.adm
        if apm_add or aqm_add or adm_add:
            yield from self.cfg_add(k, apm_add, aqm_add, adm_add)
        yield Write(w.matrix_dev, "info", cur, "matrix_dev->info")
        yield Release(w.guests_lock)

    @path("vfio_ap_mdev_cfg_remove")
    def cfg_remove(self, k: Any, ap_remove: Mask, aq_remove: Mask, cd_remove: Mask) -> PathGen:
        """latest: the VM lock only when the mdev has a VM; do_remove fresh for each mdev."""
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

    @path("vfio_ap_mdev_cfg_add")
    def cfg_add(self, k: Any, apm_add: Mask, aqm_add: Mask, adm_add: Mask) -> PathGen:
        """guests_lock held; mdevs_lock not taken."""
        md = self.w.matrix_dev
        if not md.mdev_list:
            return
        apm_add = yield from self.filter_apid_by_qtype(k, apm_add, aqm_add)
        for m in md.mdev_list:
            matrix = m.matrix
            a = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
            yield Write(m, "apm_add", a & apm_add, "matrix_mdev->apm_add")
            a = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
            yield Write(m, "aqm_add", a & aqm_add, "matrix_mdev->aqm_add")
            a = yield Read(matrix, "adm", "matrix_mdev->matrix.adm")
            yield Write(m, "adm_add", a & adm_add, "matrix_mdev->adm_add")

    @path("vfio_ap_filter_apid_by_qtype")
    def filter_apid_by_qtype(self, k: Any, apm: Mask, aqm: Mask) -> PathGen:
        """[I simplified]: TAPQ with the T bit for each added APQN; drop the adapter if a queue's
        answer shows a type older than CEX4 or carries no type."""
        for apid in apm:
            for apqi in aqm:
                st = yield Insn_tapq(apid << 8 | apqi, True)
                if st.rc not in (0x00, 0x02, 0x03, 0x04, 0x05) or st.at < AP_DEVICE_TYPE_CEX4:
                    apm = apm.without_id(apid)
        return apm

    @path("vfio_ap_on_scan_complete")
    def on_scan_complete(self, k: Any, cur: Any, prev: Any) -> PathGen:
        w = self.w
        yield Acquire(w.guests_lock)
        for m in w.matrix_dev.mdev_list:
            a = yield Read(m, "apm_add", "matrix_mdev->apm_add")
            if not a:
                a = yield Read(m, "aqm_add", "matrix_mdev->aqm_add")
                if not a:
                    a = yield Read(m, "adm_add", "matrix_mdev->adm_add")
                    if not a:
                        continue
            yield from self.hot_plug_cfg(k, m)
            yield Write(m, "apm_add", Mask.EMPTY, "matrix_mdev->apm_add")
            yield Write(m, "aqm_add", Mask.EMPTY, "matrix_mdev->aqm_add")
            yield Write(m, "adm_add", Mask.EMPTY, "matrix_mdev->adm_add")
        yield Release(w.guests_lock)

    @path("vfio_ap_mdev_hot_plug_cfg")
    def hot_plug_cfg(self, k: Any, m: Any) -> PathGen:
        """latest: ``apm_filtered := ∅`` first; the VM lock only when the mdev has a VM."""
        w = self.w
        apm_filtered: Mask | None = Mask.EMPTY if self.hot_plug_init_filtered else None
        kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
        yield Acquire(w.mdevs_lock)
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
        if apm_filtered is None:  # v6.8: the local was never written (§0.2 rule 3)
            yield Note("undefined", "apm_filtered read before it was written (hot_plug_cfg)")
            apm_filtered = Mask.EMPTY
        yield from self.reset_queues_for_apids(k, m, apm_filtered)
        yield Release(w.mdevs_lock)
        if kvm is not None:
            yield Release(kvm.lock)

    # ================================================================== queue driver probe / remove

    @path("vfio_ap_mdev_probe_queue")
    def queue_probe(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held; gate passed; qdev in ap_queues] (v6.8/latest form)."""
        w = self.w
        apqn = qdev.apqn
        serial = w.queue_serial.get(apqn, 0)
        w.queue_serial[apqn] = serial + 1
        q = VfioApQueue(apqn, serial)
        q.freed = True  # comes to life at its Alloc step
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
        """[device_lock(qdev) held] (v6.8/latest form)."""
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


__all__ = ["HOOK_NAME", "VfioApE4Paths", "info_limits"]
