"""The vfio_ap driver of the notifier era (pre-E4), in its `v5.10` form: the full definition of the
family (domain doc §5.1), plus the sub-path forms of "s390/vfio-ap: No need to disable IRQ after queue
reset" (§5.2: ``*_v511``) that `v5.11`, `v5.12`, `v5.15` and `v15-draft` use, and the open-coded lock
helpers of `v5.12` (``kvm_busy`` + ``wait_for_kvm``).  Scheme-specific paths (the notifier bodies of
`v5.11`/`v5.12`/`v5.15`, their ``set_kvm``/``unset_kvm``, the stores' busy tests) are overrides in
:mod:`apactors.model.schemes.pre_e4`.

One lock, ``L`` = ``&matrix_dev->lock`` (``self.w.matrix_lock``).  Steps are yielded exactly where the doc
writes ``R:``, ``W:`` or a lock step; ``mdev_list`` walks, mask iteration and the driver's device-list
search are local computation at the step before (as in the E4 mixin).  Pointer dereferences the doc
marks go through ``Read``/``Write`` so that a freed mdev or queue object or a NULL pointer is caught at
that step.

Readings of silent or [I]/[U] places (also in the schemes' ``notes``):

* ``find_queue`` searches the queue devices whose driver is vfio_ap (``qdev.driver``, i.e. bound as §9
  defines it) in one local search, then ``R: drvdata`` as one step (the kernel's ``driver_find_device``
  also returns the device before ``dev_get_drvdata`` reads it).
* ``get_queue``'s ``R: matrix`` is two loads (``apm``, then ``aqm`` only if the APID is in ``apm``).
* ``vfio_unpin_pages`` of a page that has no pin is a no-op (vfio type1 keeps no pin record for it) —
  :class:`UnpinPagePreE4` never drives a pin count below 0.
* ``try_module_get``/``module_put`` of the open/release callbacks and the ``mdev_set_drvdata`` of the
  removal change no modelled state and are not steps.
* ``mdev_list`` additions are at the head (``list_add``).
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.hardware import AQIC, AQIC_DISABLE, TAPQ, ZAPQ, AqicControl, ApStatus, status
from apactors.model.masks import parse_id
from apactors.model.ops import (Acquire, Alloc, Free, FinishWait, Insn, Note, NullDeref, PrepareWait, Read,
                                Release, Sleep, Update, WaitWoken, WakeAll, Write)
from apactors.model.paths.common import (PAGE_SHIFT, PinPage, count_sub, inc, mask_with, mask_without,
                                         tuple_remove)
from apactors.model.schemes.base import PathGen, path
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait, WaitNode
from apactors.model.world import NO_ISC, VFIO_AP, HostConfig, MatrixMdev, VfioApQueue

HOOK_NAME = "vfio_ap_handle_pqap"  #: the scheme method KVM calls through the hook
HOOK_OWNER = "vfio_ap"  #: the module owning the hook (K-A's ``{hook, owner}``)
NOTIFY_OK = 0x0001
NOTIFY_DONE = 0x0000
KVM_BUSY_NODE = "(wait)&matrix_mdev->kvm_busy"  #: waitdep node class of the open-coded lock


# --------------------------------------------------------------------------- instructions, update functions, ops

def Insn_tapq(apqn: int) -> Insn:  # noqa: N802
    return Insn(TAPQ, apqn, False)


def Insn_zapq(apqn: int) -> Insn:  # noqa: N802
    return Insn(ZAPQ, apqn, None)


def Insn_aqic(apqn: int, ctl: AqicControl) -> Insn:  # noqa: N802
    return Insn(AQIC, apqn, ctl)


def info_limits(info: HostConfig) -> tuple[int, int, int]:
    """``apm_max, aqm_max, adm_max`` from the QCI info: APXA with Na = Nd = 255 (§4.2)."""
    return (255, 255, 255)


def tuple_prepend(old: tuple, x: Any) -> tuple:
    """``list_add``: at the head of the list."""
    return (x,) + old


def count_sub_if_pinned(old: dict, key: int) -> dict:
    """``vfio_unpin_pages`` of one page: a page without a pin record is left alone."""
    if old.get(key, 0) <= 0:
        return old
    return count_sub(old, key)


class UnpinPagePreE4(Update):
    """``vfio_unpin_pages(mdev_dev(matrix_mdev->mdev), &pfn, 1)``: drops one pin of the page, if it has
    one (a no-op otherwise, as in vfio type1)."""

    __slots__ = ()

    def __init__(self, vdev: Any, page: int, expr: str | None = None) -> None:
        super().__init__(vdev, "pins", count_sub_if_pinned, page, expr)


class DecIfPositive(Update):
    """``atomic_dec_if_positive(&field)``: → old − 1; stored only if it is not negative."""

    __slots__ = ()

    def __init__(self, obj: Any, field: str, expr: str | None = None) -> None:
        super().__init__(obj, field, None, None, expr)

    def perform(self, k: Any) -> int:
        obj = self.obj
        new = getattr(obj, self.field) - 1
        if new >= 0:
            setattr(obj, self.field, new)
        return new


# --------------------------------------------------------------------------- the driver

class VfioApPreE4Paths:
    # The driver core's device list of the driver, which the pre-E4 find_queue searches: joined after a
    # successful probe (driver_bound), left after the remove (klist_remove in __device_release_driver).

    def ap_device_probe(self, k: Any, qdev: Any, drv: str) -> PathGen:
        rc = yield from super().ap_device_probe(k, qdev, drv)  # type: ignore[misc]
        if rc == 0 and drv == VFIO_AP:
            yield Write(qdev, "on_driver_list", True, "driver_bound: klist_add_tail(knode_driver)")
        return rc

    def ap_device_remove(self, k: Any, qdev: Any) -> PathGen:
        listed = qdev.on_driver_list
        yield from super().ap_device_remove(k, qdev)  # type: ignore[misc]
        if listed:
            yield Write(qdev, "on_driver_list", False, "klist_remove(knode_driver)")

    """vfio_ap, notifier era (`v5.10` forms; ``*_v511`` forms for the schemes from `v5.11`).

    Variation points (class attributes and small methods a scheme overrides):

    * ``PQAP_HOOK`` — what ``mdev_create`` writes into ``mdev.pqap_hook``: K-A's ``{hook, owner}``
      (a tuple) before `v5.15`, the function pointer (the method name) from `v5.15`.
    * ``GISC_FAIL_RC`` — ``None``: a failing ``gisc_register`` is not detected (the negative value is
      used as the ISC); `v5.15`: 0x08.
    * ``STORE_TEST_UNLOCKED`` — `v5.10`/`v5.11`: the stores test ``R: mdev->kvm`` before taking ``L``;
      otherwise ``store_busy`` runs under ``L``.  ``store_changed`` runs after the matrix write
      (`v15-draft`: ``refresh_apcb``).
    * ``pqap_mdev_ready`` — the handler's test after ``container_of`` (`v5.10`: none).
    * ``QUEUE_PROBE_LOCKED`` — `v5.15`: ``queue_probe`` writes under ``L``.
    """

    PQAP_HOOK: Any = (HOOK_NAME, HOOK_OWNER)
    GISC_FAIL_RC: int | None = None
    STORE_TEST_UNLOCKED = True
    QUEUE_PROBE_LOCKED = False

    # ================================================================== open-coded lock (v5.12, v15-draft)

    def kvm_busy_node(self, mdev: Any) -> WaitNode:
        """The waitdep node of ``mdev``'s ``kvm_busy`` + ``wait_for_kvm`` (one per mdev, stable)."""
        nodes = self.__dict__.get("_kvm_busy_nodes")
        if nodes is None:
            nodes = self.__dict__["_kvm_busy_nodes"] = {}
        node = nodes.get(mdev.name)
        if node is None:
            node = nodes[mdev.name] = WaitNode(KVM_BUSY_NODE, mdev.name, "kvm_busy cleared")
        return node

    def wait_for_kvm(self, k: Any, mdev: Any) -> PathGen:
        """``wait_event_cmd(wait_for_kvm, !R: mdev->kvm_busy, -L, +L)`` with ``L`` held on entry and exit:
        test; while busy: prepare to wait, re-test, ``-L``, sleep until woken, ``+L``."""
        lock = self.w.matrix_lock
        node = self.kvm_busy_node(mdev)
        yield WaitDepWait(node, (lock,))
        busy = yield Read(mdev, "kvm_busy", "matrix_mdev->kvm_busy")
        if not busy:
            return
        wq = mdev.wait_for_kvm
        while True:
            yield PrepareWait(wq)
            busy = yield Read(mdev, "kvm_busy", "matrix_mdev->kvm_busy")
            if not busy:
                break
            yield Release(lock)
            yield WaitWoken(wq)
            yield Acquire(lock)
            yield WaitDepWait(node, (lock,))
        yield FinishWait(wq)

    def set_kvm_busy(self, k: Any, mdev: Any) -> PathGen:
        """``W: mdev->kvm_busy := true`` (from here on, waiters wait for this task)."""
        yield WaitDepAcquire(self.kvm_busy_node(mdev))
        yield Write(mdev, "kvm_busy", True, "matrix_mdev->kvm_busy")

    def clear_kvm_busy(self, k: Any, mdev: Any) -> PathGen:
        """``W: mdev->kvm_busy := false; wake_up_all(wait_for_kvm)``."""
        yield Write(mdev, "kvm_busy", False, "matrix_mdev->kvm_busy")
        yield WaitDepRelease(self.kvm_busy_node(mdev))
        yield WakeAll(mdev.wait_for_kvm)

    # ================================================================== queue lookup

    @path("vfio_ap_find_queue")
    def find_queue(self, k: Any, apqn: int) -> PathGen:
        """Search the devices on vfio_ap's device list (``driver_find_device``) for this APQN; → its
        drvdata (q) or NULL.  A device joins the list when its probe has returned and leaves it after
        its remove (see ``ap_device_probe`` / ``ap_device_remove`` below), not at the probe gate."""
        qdev = self.w.bus.devices.get(apqn)
        if qdev is None or qdev.driver != VFIO_AP:
            return None
        listed = yield Read(qdev, "on_driver_list", "driver_find_device(&vfio_ap_drv->driver)")
        if not listed:
            return None
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        return q

    @path("vfio_ap_get_queue")
    def get_queue(self, k: Any, mdev: Any, apqn: int) -> PathGen:
        """``R: matrix``; not in ``apm × aqm`` → NULL; ``find_queue``; if q: ``W: q->matrix_mdev := mdev``."""
        matrix = mdev.matrix
        apm = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
        if (apqn >> 8) & 0xFF not in apm:
            return None
        aqm = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
        if apqn & 0xFF not in aqm:
            return None
        q = yield from self.find_queue(k, apqn)
        if q is not None:
            yield Write(q, "matrix_mdev", mdev, "q->matrix_mdev")
        return q

    # ================================================================== interrupts (§5.1, §5.2, §6.4)

    @path("vfio_ap_free_aqic_resources")
    def free_aqic_resources(self, k: Any, q: Any) -> PathGen:
        """`v5.10` form: release what the saved values name if ``q->matrix_mdev`` is set (the VM is not
        tested), then clear both saved values in every case."""
        isc = yield Read(q, "saved_isc", "q->saved_isc")
        if isc != NO_ISC:
            mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
            if mdev is not None:
                kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
                yield from self.gisc_unregister(k, kvm, isc)
        pfn = yield Read(q, "saved_pfn", "q->saved_pfn")
        if pfn != 0:
            mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
            if mdev is not None:
                yield UnpinPagePreE4(mdev.vdev, pfn, "mdev_dev(q->matrix_mdev->mdev)")
        yield Write(q, "saved_pfn", 0, "q->saved_pfn")
        yield Write(q, "saved_isc", NO_ISC, "q->saved_isc")
        q.saved_vm = None

    @path("vfio_ap_free_aqic_resources")
    def free_aqic_resources_v511(self, k: Any, q: Any) -> PathGen:
        """`v5.11` form: each part released only if the mdev (and, for the GISC, its VM) is set, else a
        warning and the saved value kept."""
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
        pfn = yield Read(q, "saved_pfn", "q->saved_pfn")
        if pfn != 0:
            mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
            if mdev is not None:
                yield UnpinPagePreE4(mdev.vdev, pfn, "mdev_dev(q->matrix_mdev->mdev)")
                yield Write(q, "saved_pfn", 0, "q->saved_pfn")
            else:
                yield Note("warn", f"vfio_ap: {q.name}: NIB page {pfn << PAGE_SHIFT:#x} not unpinned: no mdev")

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
            yield Note("warn", f"vfio_ap_wait_for_irqclear: tapq rc {rc:02x}: {apqn:04x}")
            return
        yield Note("warn", f"vfio_ap_wait_for_irqclear: {apqn:04x}: interrupts still enabled after 5 tries")

    @path("vfio_ap_irq_disable")
    def irq_disable(self, k: Any, q: Any) -> PathGen:
        """Up to 6 AQIC(disable) attempts; then ``free_aqic_resources(q)``; ``W: q->matrix_mdev := NULL``."""
        if q is None:
            yield NullDeref("q->apqn")
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
            yield Note("warn", f"vfio_ap_irq_disable: ap_aqic status {rc}")
            break
        else:
            yield Note("warn", f"vfio_ap_irq_disable: ap_aqic status {st.rc}")
        yield from self.free_aqic_resources(k, q)
        yield Write(q, "matrix_mdev", None, "q->matrix_mdev")
        return st

    @path("vfio_ap_irq_enable")
    def irq_enable(self, k: Any, q: Any, isc: int, nib: int) -> PathGen:
        """Pin the NIB page, register the GISC, AQIC(enable); rc 0x00 keeps the new state (after
        releasing the saved one), 0x07 releases the new one, others disable (§5.1)."""
        g_pfn = nib >> PAGE_SHIFT
        mdev = q.matrix_mdev
        if mdev is None:
            yield NullDeref("mdev_dev(q->matrix_mdev->mdev)")
        vdev = mdev.vdev
        pinned = yield PinPage(vdev, g_pfn, "mdev_dev(q->matrix_mdev->mdev)")
        if pinned != 1:
            return status(0x06)
        kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
        nisc = yield from self.gisc_register(k, kvm, isc)
        if nisc < 0 and self.GISC_FAIL_RC is not None:
            return status(self.GISC_FAIL_RC)
        ctl = AqicControl(ir=1, gisc=isc, isc=nisc, gisa=kvm.gisa >> 4, nib=nib)
        st = yield Insn_aqic(q.apqn, ctl)
        rc = st.rc
        if rc == 0x00:
            yield from self.free_aqic_resources(k, q)
            yield Write(q, "saved_pfn", g_pfn, "q->saved_pfn")
            yield Write(q, "saved_isc", isc, "q->saved_isc")
            q.saved_vm = kvm
        elif rc == 0x07:
            yield UnpinPagePreE4(vdev, g_pfn, "mdev_dev(q->matrix_mdev->mdev)")
            yield from self.gisc_unregister(k, kvm, isc)
        else:
            yield Note("warn", f"vfio_ap_irq_enable: {q.name}: ap_aqic rc {rc:#04x}")
            yield from self.irq_disable(k, q)
        return st

    # ================================================================== the PQAP handler (§5.1)

    def pqap_mdev_ready(self, k: Any, mdev: Any) -> PathGen:
        """The handler's test after ``container_of`` (`v5.10`: none)."""
        return True
        yield  # pragma: no cover - a generator

    @path("handle_pqap")
    def vfio_ap_handle_pqap(self, k: Any, vcpu: Any) -> PathGen:
        """vfio_ap's PQAP(AQIC) handler, all of it under ``L`` (KVM holds ``vcpu->mutex``, ``kvm->srcu``;
        `v5.15`: ``pqap_hook_rwsem(r)``)."""
        if not vcpu.eca_aiv:
            return -errno.EOPNOTSUPP
        lock = self.w.matrix_lock
        apqn = vcpu.regs[0] & 0xFFFF
        yield Acquire(lock)
        st = status(0x01)
        h = yield Read(vcpu.vm, "pqap_hook", "vcpu->kvm->arch.crypto.pqap_hook")
        if h is not None:
            mdev = h  # container_of(h): no access
            if (yield from self.pqap_mdev_ready(k, mdev)):
                q = yield from self.get_queue(k, mdev, apqn)
                if q is not None:
                    gr1 = vcpu.regs[1]
                    if (gr1 >> 47) & 1:
                        st = yield from self.irq_enable(k, q, gr1 & 7, vcpu.regs[2])
                    else:
                        st = yield from self.irq_disable(k, q)
        r0, _r1, r2 = vcpu.regs
        yield Write(vcpu, "regs", (r0, st.word(), r2))
        yield Release(lock)
        return 0

    # ================================================================== queue resets

    @path("vfio_ap_mdev_reset_queue")
    def reset_queue_apqn(self, k: Any, apid: int, apqi: int, retry: int = 1) -> PathGen:
        """`v5.10` form (no IRQ resource release): up to ``retry + 1`` ZAPQs."""
        apqn = apid << 8 | apqi
        for _attempt in range(retry + 1):
            st = yield Insn_zapq(apqn)
            rc = st.rc
            if rc == 0x00:
                for _ in range(2):
                    if st.queue_empty:
                        break
                    yield Sleep(20)
                    st = yield Insn_tapq(apqn)
                if not st.queue_empty:
                    yield Note("warn", f"vfio_ap_mdev_reset_queue: {apqn:04x}: queue not empty after reset")
                return 0
            if rc in (0x02, 0x05):
                yield Sleep(20)
                continue
            return -errno.EIO
        return -errno.EBUSY

    @path("vfio_ap_mdev_reset_queues")
    def reset_queues(self, k: Any, mdev: Any) -> PathGen:
        """`v5.10` form: for each APQN of the matrix: reset it; if its queue object is found,
        ``irq_disable`` it.  → the first error."""
        matrix = mdev.matrix
        rc = 0
        for apid in matrix.apm:
            for apqi in matrix.aqm:
                r = yield from self.reset_queue_apqn(k, apid, apqi, 1)
                if r and not rc:
                    rc = r
                q = yield from self.find_queue(k, apid << 8 | apqi)
                if q is not None:
                    yield from self.irq_disable(k, q)
        return rc

    @path("vfio_ap_mdev_reset_queue")
    def reset_queue(self, k: Any, q: Any, retry: int = 1) -> PathGen:
        """`v5.11` form (§5.2): ZAPQ with retries on 0x02, the wait for the reset, then the IRQ
        resources released (not after 0x05 or another unexpected answer: → -EIO)."""
        if q is None:
            return 0
        apqn = q.apqn
        while True:
            st = yield Insn_zapq(apqn)
            rc = st.rc
            if rc == 0x00:
                result = 0
                break
            if rc == 0x02:
                if retry:
                    retry -= 1
                    yield Sleep(20)
                    continue
                result = -errno.EBUSY
                break
            if rc in (0x01, 0x03, 0x04):
                if st.irq_enabled:
                    yield Note("warn", f"vfio_ap_mdev_reset_queue: {apqn:04x}: irq_enabled after rc {rc:#04x}")
                yield from self.free_aqic_resources(k, q)
                return -errno.EBUSY
            yield Note("warn", f"PQAP/ZAPQ completed with invalid rc ({rc:x})")
            return -errno.EIO
        held = False
        for rnd in range(2):
            if st.queue_empty and not st.irq_enabled:
                held = rnd == 0
                break
            yield Sleep(20)
            st = yield Insn_tapq(apqn)
        if not held:
            yield Note("warn", f"vfio_ap_mdev_reset_queue: {apqn:04x}: reset not complete at the first check")
        yield from self.free_aqic_resources(k, q)
        return result

    @path("vfio_ap_mdev_reset_queues")
    def reset_queues_v511(self, k: Any, mdev: Any) -> PathGen:
        """`v5.11` form: for each APQN of the matrix: ``reset_queue(find_queue(APQN), 1)``; → the first
        error (the loop continues)."""
        matrix = mdev.matrix
        rc = 0
        for apid in matrix.apm:
            for apqi in matrix.aqm:
                q = yield from self.find_queue(k, apid << 8 | apqi)
                r = yield from self.reset_queue(k, q, 1)
                if r and not rc:
                    rc = r
        return rc

    # ================================================================== reservation and sharing (§5.1)

    def _bound_to_vfio_ap(self) -> list[int]:
        return [apqn for apqn, d in self.w.bus.devices.items() if d.driver == VFIO_AP]

    @path("vfio_ap_verify_reserved_for_apid")
    def verify_reserved_for_apid(self, k: Any, mdev: Any, apid: int) -> PathGen:
        """Every (apid, APQI ∈ ``matrix.aqm``) a queue device bound to vfio_ap; with no domains
        assigned, some queue device of the adapter [I]; else -EADDRNOTAVAIL."""
        bound = self._bound_to_vfio_ap()
        aqm = mdev.matrix.aqm
        if not aqm:
            ok = any(apqn >> 8 == apid for apqn in bound)
        else:
            ok = all((apid << 8 | apqi) in bound for apqi in aqm)
        return 0 if ok else -errno.EADDRNOTAVAIL
        yield  # pragma: no cover - a generator

    @path("vfio_ap_verify_reserved_for_apqi")
    def verify_reserved_for_apqi(self, k: Any, mdev: Any, apqi: int) -> PathGen:
        bound = self._bound_to_vfio_ap()
        apm = mdev.matrix.apm
        if not apm:
            ok = any(apqn & 0xFF == apqi for apqn in bound)
        else:
            ok = all((apid << 8 | apqi) in bound for apid in apm)
        return 0 if ok else -errno.EADDRNOTAVAIL
        yield  # pragma: no cover - a generator

    @path("vfio_ap_mdev_verify_no_sharing")
    def verify_no_sharing(self, k: Any, mdev: Any) -> PathGen:
        for m in self.w.matrix_dev.mdev_list:
            if m is mdev:
                continue
            if mdev.matrix.apm & m.matrix.apm and mdev.matrix.aqm & m.matrix.aqm:
                return -errno.EADDRINUSE
        return 0
        yield  # pragma: no cover - a generator

    # ================================================================== sysfs stores (§5.1)

    def store_busy(self, k: Any, mdev: Any) -> PathGen:
        """The refusal test under ``L`` (schemes with ``STORE_TEST_UNLOCKED = False``) → True: -EBUSY."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        return kvm is not None

    def store_changed(self, k: Any, mdev: Any) -> PathGen:
        """After the matrix write of a successful store, ``L`` held (`v15-draft`: ``refresh_apcb``)."""
        return
        yield  # pragma: no cover - a generator

    def _store(self, k: Any, mdev: Any, buf: str, field: str, assign: bool, check: str | None) -> PathGen:
        """One assign/unassign store.  ``field``: ``apm``/``aqm``/``adm``; ``check``: ``"apid"``,
        ``"apqi"`` (reservation and sharing checks of an assignment) or None (control domains)."""
        lock = self.w.matrix_lock
        matrix = mdev.matrix
        limit = {"apm": 0, "aqm": 1, "adm": 2}[field]
        if self.STORE_TEST_UNLOCKED:
            kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")  # no lock
            if kvm is not None:
                return -errno.EBUSY
            try:
                ident = parse_id(buf)
            except ValueError:
                return -errno.EINVAL
            if ident > matrix.limits[limit]:
                return -errno.ENODEV
            yield Acquire(lock)
        else:
            yield Acquire(lock)
            if (yield from self.store_busy(k, mdev)):
                yield Release(lock)
                return -errno.EBUSY
            try:
                ident = parse_id(buf)
            except ValueError:
                yield Release(lock)
                return -errno.EINVAL
            if ident > matrix.limits[limit]:
                yield Release(lock)
                return -errno.ENODEV
        rc = yield from self._store_locked(k, mdev, ident, field, assign, check)
        yield Release(lock)
        return rc if rc else len(buf)

    def _store_locked(self, k: Any, mdev: Any, ident: int, field: str, assign: bool,
                      check: str | None) -> PathGen:
        matrix = mdev.matrix
        expr = "matrix_mdev->matrix." + field
        if not assign:
            yield Update(matrix, field, mask_without, ident, expr)
            yield from self.store_changed(k, mdev)
            return 0
        if check == "apid":
            rc = yield from self.verify_reserved_for_apid(k, mdev, ident)
        elif check == "apqi":
            rc = yield from self.verify_reserved_for_apqi(k, mdev, ident)
        else:
            rc = 0
        if rc:
            return rc
        yield Update(matrix, field, mask_with, ident, expr)
        if check is not None:
            rc = yield from self.verify_no_sharing(k, mdev)
            if rc:
                yield Update(matrix, field, mask_without, ident, expr)
                return rc
        yield from self.store_changed(k, mdev)
        return 0

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        return (yield from self._store(k, mdev, buf, "apm", True, "apid"))

    @path("unassign_adapter_store")
    def unassign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        return (yield from self._store(k, mdev, buf, "apm", False, None))

    @path("assign_domain_store")
    def assign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        return (yield from self._store(k, mdev, buf, "aqm", True, "apqi"))

    @path("unassign_domain_store")
    def unassign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        return (yield from self._store(k, mdev, buf, "aqm", False, None))

    @path("assign_control_domain_store")
    def assign_control_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        return (yield from self._store(k, mdev, buf, "adm", True, None))

    @path("unassign_control_domain_store")
    def unassign_control_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        return (yield from self._store(k, mdev, buf, "adm", False, None))

    # ================================================================== vfio callbacks (§5.1)

    @path("vfio_ap_mdev_open")
    def mdev_open(self, k: Any, mdev: Any) -> PathGen:
        """``try_module_get``; register the group notifier (the vfio core may call it at once) and the
        IOMMU notifier; → 0."""
        yield from self.register_group_notifier(k, mdev)
        yield from self.register_iommu_notifier(k, mdev)
        return 0

    @path("vfio_ap_mdev_group_notifier")
    def group_notifier(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """`v5.10`: ``SET_KVM`` with a VM → ``notify_set``; with NULL → ``notify_clear``."""
        if kvm is None:
            yield from self.notify_clear(k, mdev)
            return NOTIFY_OK
        rc = yield from self.notify_set(k, mdev, kvm)
        return NOTIFY_DONE if rc else NOTIFY_OK

    @path("vfio_ap_mdev_set_kvm")
    def notify_set(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """`v5.10`: attach under ``L``, then copy the matrix into the CRYCB with ``L`` not held."""
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
        yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
        yield Release(lock)
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if crycbd:
            yield from self.set_masks(k, kvm, mdev.matrix)
        return 0

    def notify_clear(self, k: Any, mdev: Any) -> PathGen:
        """`v5.10`: ``W: mdev->kvm := NULL``; nothing else, no lock."""
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")

    @path("vfio_ap_mdev_release")
    def mdev_release(self, k: Any, mdev: Any) -> PathGen:
        """`v5.10` last close: under ``L``, if attached: clear the masks (M-A: ``kvm->lock`` inside),
        drop the hook, reset the queues, put the VM, detach; then unregister both notifiers."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            yield from self.clear_masks(k, kvm)
            yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
            yield from self.reset_queues(k, mdev)
            yield from self.kvm_put_kvm(k, kvm)
            yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
        yield Release(lock)
        yield from self.unregister_notifiers(k, mdev)

    def unregister_notifiers(self, k: Any, mdev: Any) -> PathGen:
        """The IOMMU notifier, then the group notifier (``module_put``: no step)."""
        yield from self.unregister_iommu_notifier(k, mdev)
        yield from self.unregister_group_notifier(k, mdev)

    @path("vfio_ap_mdev_iommu_notifier")
    def dma_unmap(self, k: Any, mdev: Any, iova: int, length: int) -> PathGen:
        """The IOMMU notifier (DMA unmap): unpin page ``iova >> 12`` once; no lock, queue state not
        touched."""
        yield UnpinPagePreE4(mdev.vdev, iova >> PAGE_SHIFT, "mdev_dev(matrix_mdev->mdev)")
        return NOTIFY_OK

    @path("vfio_ap_mdev_ioctl")
    def reset_ioctl(self, k: Any, mdev: Any) -> PathGen:
        """``VFIO_DEVICE_RESET``: ``+L``; ``reset_queues``; ``-L``; → its result."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        rc = yield from self.reset_queues(k, mdev)
        yield Release(lock)
        return rc

    # ================================================================== mdev create / remove

    def new_mdev(self, name: str) -> MatrixMdev:
        """The object ``mdev_create`` allocates (zeroed; matrix limits from ``info``)."""
        info = self.w.matrix_dev.info
        mdev = MatrixMdev(name, info)
        limits = info_limits(info)
        mdev.matrix.limits = limits
        mdev.shadow_apcb.limits = limits
        mdev.freed = True  # comes to life at its Alloc step
        return mdev

    @path("vfio_ap_mdev_create")
    def mdev_create(self, k: Any, mdev: Any) -> PathGen:
        """``available_instances`` decrement (none left → -EPERM); allocate; limits; ``W: pqap_hook``;
        ``+L``; list add; ``-L``."""
        w = self.w
        md = w.matrix_dev
        left = yield DecIfPositive(md, "available_instances", "matrix_dev->available_instances")
        if left < 0:
            return -errno.EPERM
        yield Alloc(mdev)
        w.mdevs[mdev.name] = mdev  # registered: visible to the mdev/vfio core from this step on
        yield Write(mdev, "pqap_hook", self.PQAP_HOOK, "matrix_mdev->pqap_hook")
        lock = w.matrix_lock
        yield Acquire(lock)
        yield Update(md, "mdev_list", tuple_prepend, mdev, "matrix_dev->mdev_list")
        mdev.in_list = True
        yield Release(lock)
        return 0

    def _mdev_list_del(self, k: Any, mdev: Any) -> PathGen:
        yield Update(self.w.matrix_dev, "mdev_list", tuple_remove, mdev, "matrix_dev->mdev_list")
        mdev.in_list = False

    def _available_inc(self, k: Any) -> PathGen:
        yield Update(self.w.matrix_dev, "available_instances", inc, 1, "matrix_dev->available_instances")

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any, mdev: Any) -> PathGen:
        """`v5.10` (after the mdev core's wait): ``R: mdev->kvm`` (no lock) → -EBUSY, mdev not freed;
        ``+L``; ``reset_queues``; list delete; ``-L``; free; ``available_instances++``."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is not None:
            return -errno.EBUSY
        lock = self.w.matrix_lock
        yield Acquire(lock)
        yield from self.reset_queues(k, mdev)
        yield from self._mdev_list_del(k, mdev)
        yield Release(lock)
        yield Free(mdev)
        yield from self._available_inc(k)
        return 0

    # ================================================================== queue driver probe / remove

    def _new_queue(self, apqn: int) -> VfioApQueue:
        w = self.w
        serial = w.queue_serial.get(apqn, 0)
        w.queue_serial[apqn] = serial + 1
        q = VfioApQueue(apqn, serial)
        q.freed = True  # comes to life at its Alloc step
        return q

    @path("vfio_ap_queue_dev_probe")
    def queue_probe(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held, gate passed]: allocate q; ``W: drvdata := q``; ``W: q.apqn``;
        ``W: q.saved_isc := 0xff`` (`v5.15`: the writes under ``L`` [I order])."""
        q = self._new_queue(qdev.apqn)
        yield Alloc(q)
        lock = self.w.matrix_lock
        if self.QUEUE_PROBE_LOCKED:
            yield Acquire(lock)
        yield Write(qdev, "drvdata", q, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Write(q, "apqn", qdev.apqn, "q->apqn")
        yield Write(q, "saved_isc", NO_ISC, "q->saved_isc")
        if self.QUEUE_PROBE_LOCKED:
            yield Release(lock)
        return 0

    @path("vfio_ap_queue_dev_remove")
    def queue_remove(self, k: Any, qdev: Any) -> PathGen:
        """`v5.10` [device_lock(qdev) held]: ``+L``; ``R: q := drvdata``; ``W: drvdata := NULL``; reset;
        ``irq_disable(q)``; free q; ``-L``.  The guest CRYCB is not touched."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        if q is None:
            yield NullDeref("q->apqn")
        yield from self.reset_queue_apqn(k, q.apqn >> 8, q.apqn & 0xFF, 1)
        yield from self.irq_disable(k, q)
        yield Free(q)
        yield Release(lock)

    @path("vfio_ap_queue_dev_remove")
    def queue_remove_v511(self, k: Any, qdev: Any) -> PathGen:
        """`v5.11` form: ``+L``; ``R: q := drvdata``; ``reset_queue(q, 1)``; ``W: drvdata := NULL``; free q;
        ``-L``."""
        lock = self.w.matrix_lock
        yield Acquire(lock)
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        yield from self.reset_queue(k, q, 1)
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Free(q)
        yield Release(lock)


__all__ = ["HOOK_NAME", "HOOK_OWNER", "KVM_BUSY_NODE", "NOTIFY_DONE", "NOTIFY_OK", "DecIfPositive",
           "UnpinPagePreE4", "VfioApPreE4Paths", "count_sub_if_pinned", "tuple_prepend"]
