"""The vfio_ap driver of the E4 family in its `v6.0` form (domain doc §5.5, the full definition of the
family; the `v6.0` filter §7.5.1; the synchronous queue reset with ``q->reset_rc``).

The later E4 schemes override what their sections change: `v6.8` (§5.7: whole-matrix filter §7.5.2,
asynchronous reset, hot unplug with reset, deferred probe, ...) in
:class:`apactors.model.schemes.e4.V6_8`, `latest` (§5.8) in :class:`apactors.model.schemes.latest.Latest`,
`v18-draft`/`v18-trylock` (§5.10) in :mod:`apactors.model.schemes.e4`.

Reading guide: each method is one kernel function; its docstring names the doc section.  Steps are
yielded exactly where the doc writes ``R:``, ``W:`` or a lock step; what the doc computes without
``R:`` (qtable lookups, ``mdev_list`` walks, mask arithmetic, the values a ``W:`` stores) is local
computation at the step before.  Pointer dereferences the doc marks go through ``Read``/``Write``
so that a freed mdev or queue object or a NULL pointer is caught at that step.

Small variants of the family are class attributes (data) read by the one implementation here:

* ``GISC_FAIL_RC`` — the AQIC answer when ``kvm_s390_gisc_register`` fails (0x08 up to `v6.8`,
  0x06 in `latest` and alt-*); ``GISC_FAIL_UNPIN`` — whether that error path unpins the NIB page
  (`v6.8`+); ``NIB_SHARE_CHECK`` — the PV "NIB page must be shared" check (`v6.8`+);
  ``irq_enable_otherwise_changed`` — the order of unpin and GISC unregistration on rc 0x07.

Differences in lock steps are explicit overrides in the scheme classes, so that ``apactors scheme
show`` (which reads the code) prints each scheme's own steps.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.hardware import (AP_DEVICE_TYPE_CEX4, AQIC, AQIC_DISABLE, TAPQ, ZAPQ, ApStatus,
                                     AqicControl, status)
from apactors.model.locks import WRITE
from apactors.model.masks import Mask, format_apqn, parse_id
from apactors.model.ops import (Acquire, Alloc, Free, Insn, Note, NullDeref, Read, Release, Sleep, Update,
                                Write, acquire_via)
from apactors.model.paths.common import (GUEST_MEMORY, PAGE_SHIFT, PinPage, UnpinPage, mask_with,
                                         mask_without, qtable_add, qtable_del, tuple_append, tuple_remove)
from apactors.model.schemes.base import PathGen, path
from apactors.model.world import NO_ISC, HostConfig, MatrixMdev, VfioApQueue

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


class ShadowMask:
    """An argument of the `v6.0` ``filter_matrix`` that *is* a shadow mask of the mdev (§5.5
    ``hot_plug_cfg``): argument and shadow are the same memory, so the filter sees the mask as it
    recomputed it [I].  Resolved inside ``filter_matrix``, after its writes."""

    __slots__ = ("field",)

    def __init__(self, field: str) -> None:
        self.field = field

    def __repr__(self) -> str:
        return f"&shadow_apcb.{self.field}"


SHADOW_APM = ShadowMask("apm")
SHADOW_AQM = ShadowMask("aqm")


class VfioApE4Paths:
    """vfio_ap (E4, `v6.0` forms).  Needs the KVM mixin (set/clear masks, GISC, VM references)."""

    GISC_FAIL_RC = 0x08  #: v5.15 [U], v6.0, v6.2-rc, v18-*, v6.8: 0x08; latest, alt-*: 0x06
    GISC_FAIL_UNPIN = False  #: v6.8+: the GISC failure path unpins the NIB page
    NIB_SHARE_CHECK = False  #: v6.8+ (f88fb1335733): a protected vCPU's NIB page must be shared

    # ================================================================== update-lock functions (§5.5)

    @path("get_update_locks_for_kvm")
    def get_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        """v6.0: ``+guests_lock; if kvm: +kvm->lock; +mdevs_lock``."""
        w = self.w
        yield Acquire(w.guests_lock)
        if kvm is not None:
            yield Acquire(kvm.lock, WRITE, owner=kvm)
        yield Acquire(w.mdevs_lock)

    @path("release_update_locks_for_kvm")
    def release_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        """v6.0: ``-mdevs_lock; if kvm: -kvm->lock; -guests_lock``."""
        w = self.w
        yield Release(w.mdevs_lock)
        if kvm is not None:
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
    def filter_matrix(self, k: Any, apm_arg: Any, aqm_arg: Any, mdev: Any) -> PathGen:
        """`v6.0` filter (§7.5.1): inspects only the APQNs ``apm_arg × aqm_arg`` the caller passes;
        a queue whose last reset failed (``q->reset_rc ≠ 0``) counts as missing.  An argument may be
        :data:`SHADOW_APM` / :data:`SHADOW_AQM` (the shadow mask itself, seen after the recompute).
        → ``shadow.apm ≠ prev_apm or shadow.aqm ≠ prev_aqm``."""
        shadow = mdev.shadow_apcb
        matrix = mdev.matrix
        info = self.w.matrix_dev.info
        prev_apm, prev_aqm = shadow.apm, shadow.aqm
        yield Write(shadow, "limits", info_limits(info), "matrix_mdev->shadow_apcb")
        yield Write(shadow, "apm", matrix.apm & info.apm, "matrix_mdev->shadow_apcb.apm")
        yield Write(shadow, "aqm", matrix.aqm & info.aqm, "matrix_mdev->shadow_apcb.aqm")
        if isinstance(apm_arg, ShadowMask):
            apm_arg = getattr(shadow, apm_arg.field)
        if isinstance(aqm_arg, ShadowMask):
            aqm_arg = getattr(shadow, aqm_arg.field)
        qtable = mdev.qtable
        for apid in apm_arg:
            for apqi in aqm_arg:
                q = qtable.get(apid << 8 | apqi)
                if q is None or q.reset_rc != 0:
                    yield Update(shadow, "apm", mask_without, apid, "matrix_mdev->shadow_apcb.apm")
                    break
        return shadow.apm != prev_apm or shadow.aqm != prev_aqm

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

    # ================================================================== interrupts (§5.5, §6.4)

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
        """As `v5.10` with the E4 ``free_aqic_resources``; the end does not write ``q->matrix_mdev``."""
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
        """§5.5; with ``NIB_SHARE_CHECK`` the PV share check of §5.7, with ``GISC_FAIL_UNPIN`` the
        unpin on GISC failure (§5.7), answering ``GISC_FAIL_RC`` (0x08; `latest` 0x06)."""
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
        if self.NIB_SHARE_CHECK and vcpu.pv and page not in kvm.shared_pages:
            # uv_pin_shared fails: the page is not shared
            yield Note("debug", f"vfio_ap: {q.name}: NIB {nib:#x} of a protected guest is not shared")
            yield UnpinPage(vdev, page, "&q->matrix_mdev->vdev")
            return status(0x06)
        nisc = yield from self.gisc_register(k, kvm, isc)
        if nisc < 0:
            yield Note("debug", f"vfio_ap: {q.name}: gisc registration failed: nisc={nisc}")
            if self.GISC_FAIL_UNPIN:
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
        """rc 0x07, `v6.0`-`v6.8`: unpin, then ``gisc_unregister``."""
        yield UnpinPage(vdev, page, "&q->matrix_mdev->vdev")
        yield from self.gisc_unregister(k, kvm, isc)

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

    # ================================================================== queue resets (v6.0: synchronous)

    @path("vfio_ap_mdev_reset_queue")
    def reset_queue(self, k: Any, q: Any, retry: int = 1) -> PathGen:
        """`v6.0`: `v5.11`'s synchronous reset plus ``W: q->reset_rc`` after every ZAPQ [I]; rc 0x05
        is "other" (-EIO, no release) [U].  → 0, -EBUSY or -EIO."""
        if q is None:
            return 0
        apqn = q.apqn
        while True:
            st = yield Insn_zapq(apqn)
            rc = st.rc
            yield Write(q, "reset_rc", rc, "q->reset_rc")
            if rc == 0x00:
                ret = 0
                break
            if rc == 0x02:
                if retry > 0:
                    retry -= 1
                    yield Sleep(20)
                    continue
                ret = -errno.EBUSY
                break
            if rc in (0x01, 0x03, 0x04):
                if st.irq_enabled:
                    yield Note("warn", f"vfio_ap: {q.name}: WARN_ON_ONCE(status.irq_enabled)")
                yield from self.free_aqic_resources(k, q)
                return -errno.EBUSY
            yield Note("warn", f"vfio_ap: {q.name}: PQAP/ZAPQ completed with invalid rc ({rc:#x})")
            return -errno.EIO
        # wait for the reset to take effect: at most 2 rounds
        held_first = True
        for rnd in range(2):
            if st.queue_empty and not st.irq_enabled:
                break
            held_first = False
            yield Sleep(20)
            st = yield Insn_tapq(apqn)
        if not held_first:
            yield Note("warn", f"vfio_ap: {q.name}: WARN_ON_ONCE(retry2 <= 0): reset not complete")
        yield from self.free_aqic_resources(k, q)
        return ret

    @path("vfio_ap_mdev_reset_queues")
    def reset_queues(self, k: Any, mdev: Any) -> PathGen:
        """`v6.0`: ``reset_queue(q, 1)`` for each q in ``qtable``; the first error is returned."""
        rc = 0
        for q in tuple(mdev.qtable.values()):
            ret = yield from self.reset_queue(k, q, 1)
            if ret and not rc:
                rc = ret
        return rc

    # ================================================================== set_kvm / unset_kvm (§5.5)

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """`v6.0`: the hook is set under ``pqap_hook_rwsem(w)`` *before* the update locks; then the
        "another mdev has this VM" test (-EPERM, the hook stays set)."""
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if crycbd:
            rwsem = kvm.pqap_hook_rwsem
            yield Acquire(rwsem, WRITE, owner=kvm)
            yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
            yield Release(rwsem, WRITE)
            yield from self.get_update_locks_for_kvm(k, kvm)
            for m in self.w.matrix_dev.mdev_list:
                if m is mdev:
                    continue
                mk = yield Read(m, "kvm", "m->kvm")
                if mk is kvm:
                    yield from self.release_update_locks_for_kvm(k, kvm)
                    return -errno.EPERM
            yield from self.kvm_get_kvm(k, kvm)
            yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
            yield from self.update_guest_apcb(k, mdev)
            yield from self.release_update_locks_for_kvm(k, kvm)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any) -> PathGen:
        """`v6.0`: hook cleared under ``pqap_hook_rwsem(w)`` before the update locks; ``kvm_put_kvm``
        under them."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")  # no lock
        if kvm is None:
            return
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return
        rwsem = kvm.pqap_hook_rwsem
        yield Acquire(rwsem, WRITE, owner=kvm)
        yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
        yield Release(rwsem, WRITE)
        yield from self.get_update_locks_for_kvm(k, kvm)
        yield from self.clear_masks(k, kvm)
        yield from self.reset_queues(k, mdev)
        yield from self.kvm_put_kvm(k, kvm)
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
        yield from self.release_update_locks_for_kvm(k, kvm)

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
        """No lock (§5.5)."""
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
        """`v6.0`: allocate, register, ``W: req_trigger := NULL``; list add under guests_lock."""
        w = self.w
        yield Alloc(mdev)
        w.mdevs[mdev.name] = mdev  # registered: visible to the vfio core from this step on
        yield Write(mdev, "req_trigger", None, "matrix_mdev->req_trigger")
        yield Acquire(w.guests_lock)
        yield Update(w.matrix_dev, "mdev_list", tuple_append, mdev, "matrix_dev->mdev_list")
        mdev.in_list = True
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

    # ================================================================== sysfs stores (§5.5)

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        """``+ap_perms_mutex`` first, then the update locks for the mdev."""
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
        """The body of assign_adapter/assign_domain with the locks held (`v6.0` form): the filter
        inspects ``{apid} × R: matrix.aqm`` (``R: matrix.apm × {apqi}``)."""
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
            return len(buf)  # [U] already assigned → count
        expr = "matrix_mdev->matrix." + field
        yield Update(matrix, field, mask_with, ident, expr)
        rc = yield from self.validate_masks(k, mdev, matrix.apm, matrix.aqm)
        if rc:
            yield Update(matrix, field, mask_without, ident, expr)
            return rc
        if adapter:
            yield from self.link_adapter(k, mdev, ident)
            aqm = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
            changed = yield from self.filter_matrix(k, Mask.EMPTY.with_id(ident), aqm, mdev)
        else:
            yield from self.link_domain(k, mdev, ident)
            apm = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
            changed = yield from self.filter_matrix(k, apm, Mask.EMPTY.with_id(ident), mdev)
        if changed:
            yield from self.update_guest_apcb(k, mdev)
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
        """`v6.0` form: clear the bit, unlink the queues both ways [I], clear the shadow bit and hot
        unplug.  No queue reset."""
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
            return len(buf)  # [U] not assigned → count
        yield Update(matrix, field, mask_without, ident, "matrix_mdev->matrix." + field)
        for o in getattr(matrix, other):
            apqn = (ident << 8 | o) if adapter else (o << 8 | ident)
            q = mdev.qtable.get(apqn)
            if q is None:
                continue
            yield from self.unlink_queue_fr_mdev(k, q, mdev)
            yield from self.unlink_mdev_fr_queue(k, q)
        if ident in getattr(shadow, field):
            yield Update(shadow, field, mask_without, ident, "matrix_mdev->shadow_apcb." + field)
            yield from self.update_guest_apcb(k, mdev)
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
        """`v6.0`: ``+k->lock`` with no test of ``k``; ``do_remove`` initialised once before the
        loop; ``cdrem`` is the set difference ``cd_remove − matrix.adm``."""
        w = self.w
        do_remove = False
        for m in w.matrix_dev.mdev_list:
            kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
            yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
            yield Acquire(w.mdevs_lock)
            matrix = m.matrix
            a = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
            aprem = ap_remove & a
            do_remove |= bool(aprem)
            a = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
            aqrem = aq_remove & a
            do_remove |= bool(aqrem)
            a = yield Read(matrix, "adm", "matrix_mdev->matrix.adm")
            cdrem = cd_remove - a
            do_remove |= bool(cdrem)
            if do_remove:
                yield from self.hot_unplug_cfg(k, m, aprem, aqrem, cdrem)
            yield Release(w.mdevs_lock)
            yield Release(kvm.lock)

    @path("vfio_ap_mdev_hot_unplug_cfg")
    def hot_unplug_cfg(self, k: Any, m: Any, aprem: Mask, aqrem: Mask, cdrem: Mask) -> PathGen:
        """`v6.0`: plug when a shadow mask is non-empty after the removal [I: the value the bitmap
        "and-not" routine returns]."""
        shadow = m.shadow_apcb
        do_hotplug = False
        for field, rem in (("apm", aprem), ("aqm", aqrem), ("adm", cdrem)):
            if rem:
                new = getattr(shadow, field) - rem
                yield Write(shadow, field, new, "matrix_mdev->shadow_apcb." + field)
                do_hotplug |= bool(new)
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
        """`v6.0` form: ``+k->lock`` with no test of ``k``; the `v6.0` filter on the added subsets
        (a shadow mask passed as an argument is seen after the recompute)."""
        w = self.w
        kvm = yield Read(m, "kvm", "matrix_mdev->kvm")
        yield acquire_via(kvm, "lock", "matrix_mdev->kvm->lock")
        yield Acquire(w.mdevs_lock)
        matrix = m.matrix
        a = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
        b = yield Read(m, "apm_add", "matrix_mdev->apm_add")
        apm = a & b
        a = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
        b = yield Read(m, "aqm_add", "matrix_mdev->aqm_add")
        aqm = a & b
        if apm and aqm:
            do_hotplug = yield from self.filter_matrix(k, apm, aqm, m)
        elif apm:
            do_hotplug = yield from self.filter_matrix(k, apm, SHADOW_AQM, m)
        else:
            do_hotplug = yield from self.filter_matrix(k, SHADOW_APM, aqm, m)
        a = yield Read(matrix, "adm", "matrix_mdev->matrix.adm")
        b = yield Read(m, "adm_add", "matrix_mdev->adm_add")
        if a & b:
            do_hotplug |= (yield from self.filter_cdoms(k, m))
        if do_hotplug:
            yield from self.update_guest_apcb(k, m)
        yield Release(w.mdevs_lock)
        yield Release(kvm.lock)

    # ================================================================== queue driver probe / remove

    def new_queue(self, apqn: int) -> VfioApQueue:
        """The object ``queue_probe`` allocates (zeroed; alive from its ``Alloc`` step)."""
        w = self.w
        serial = w.queue_serial.get(apqn, 0)
        w.queue_serial[apqn] = serial + 1
        q = VfioApQueue(apqn, serial)
        q.freed = True  # comes to life at its Alloc step
        return q

    @path("vfio_ap_mdev_probe_queue")
    def queue_probe(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held; gate passed; qdev in ap_queues] (`v6.0` form: the filter over
        ``R: matrix.apm × R: matrix.aqm``)."""
        apqn = qdev.apqn
        q = self.new_queue(apqn)
        yield Alloc(q)
        yield Write(q, "apqn", apqn, "q->apqn")
        yield Write(q, "saved_isc", NO_ISC, "q->saved_isc")
        mdev = yield from self.get_update_locks_by_apqn(k, apqn)
        if mdev is not None:
            yield from self.link_queue(k, mdev, q)
            apm = yield Read(mdev.matrix, "apm", "matrix_mdev->matrix.apm")
            aqm = yield Read(mdev.matrix, "aqm", "matrix_mdev->matrix.aqm")
            if (yield from self.filter_matrix(k, apm, aqm, mdev)):
                yield from self.update_guest_apcb(k, mdev)
        yield Write(qdev, "drvdata", q, "dev_set_drvdata(&queue->ap_dev.device)")
        yield from self.release_update_locks_for_mdev(k, mdev)
        return 0

    @path("vfio_ap_mdev_remove_queue")
    def queue_remove(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held] (`v6.0` form): unplug the adapter if the queue is in the guest,
        then ``reset_queue(q, 1)`` with no host-configuration test."""
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        yield from self.get_update_locks_for_queue(k, q)
        mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
        apid, apqi = q.apqn >> 8, q.apqn & 0xFF
        if mdev is not None:
            yield from self.unlink_queue_fr_mdev(k, q, mdev)
            shadow = mdev.shadow_apcb
            sapm = yield Read(shadow, "apm", "matrix_mdev->shadow_apcb.apm")
            if apid in sapm:
                saqm = yield Read(shadow, "aqm", "matrix_mdev->shadow_apcb.aqm")
                if apqi in saqm:
                    yield Update(shadow, "apm", mask_without, apid, "matrix_mdev->shadow_apcb.apm")
                    yield from self.update_guest_apcb(k, mdev)
        yield from self.reset_queue(k, q, 1)
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Free(q)
        yield from self.release_update_locks_for_mdev(k, mdev)


__all__ = ["HOOK_NAME", "SHADOW_APM", "SHADOW_AQM", "ShadowMask", "VfioApE4Paths", "info_limits"]
