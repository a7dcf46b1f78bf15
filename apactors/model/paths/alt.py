"""The hypothetical alternatives of the January 2022 design discussion (domain doc §5.12).

None of these was implemented; §5.12 defines them concretely.  Every alternative is *the alt base*
(`latest` with the substitutions of §5.12 items 1-5) plus its data lock ``D`` and its PQAP path:

* :class:`AltBasePaths` — items 1-4: the KVM mask functions in their M-A form (they take
  ``kvm->lock`` themselves; vfio_ap never takes it), update-lock functions ``+guests_lock; +D`` (no
  ``kvm->lock``, no ``pqap_hook_rwsem``), the alt ``set_kvm``/``unset_kvm``, and ``cfg_remove`` /
  ``hot_plug_cfg`` without their ``kvm->lock``.  ``D`` is taken through ``d_write_lock(k)`` /
  ``d_read_lock(k)`` and their unlocks; in the base it is the mutex ``&matrix_dev->mdevs_lock`` (no
  read mode: both take it exclusively).  Every other path is `latest`'s (it takes ``w.mdevs_lock``,
  which is ``D``).
* :class:`RwSplitPaths` — the reader/writer shape shared by ``alt-fair-rwsem`` and
  ``alt-unfair-rwlock``: readers (PQAP handler, ``in_use``, the plug phase P of every update) and
  writers (``mdev_create`` list add, ``mdev_remove``, ``reset_ioctl``, ``dma_unmap``, the config
  phases C1 and C2 of every update), each update path split into C1 / P / C2 under ``guests_lock``.
* :class:`FairRwsemPaths` (``&matrix_dev->mdevs_rwsem``, a fair :class:`~apactors.model.locks.RwSem`
  installed as ``world.mdevs_lock``), :class:`UnfairRwlockPaths` (the open-coded reader-preferring
  ``mdevs_rwlock``: ``&matrix_dev->rwl_mutex``, two counters and the wait queue ``rwl_wq``).
* :class:`SrcuPaths` (``alt-srcu``), :class:`QueueLockPaths` (``alt-queue-lock``),
  :class:`UserspacePqapPaths` (``alt-userspace-pqap``).

Mixins go before `latest` in a scheme's bases, so they override `latest`'s methods by name wherever
`latest` defines them.  Modelling choices where §5.12 is silent are listed in the schemes' ``notes``
(:mod:`apactors.model.schemes.alt`) and in the docstrings below.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.hardware import AqicControl, status
from apactors.model.locks import READ, RECURSIVE_READ, WRITE, Mutex, RwSem, Srcu, WaitQueue
from apactors.model.masks import Mask, format_apqn, parse_id
from apactors.model.ops import (Acquire, Alloc, Block, Cond, FinishWait, Free, Note, NullDeref, Op, PrepareWait,
                                Read, Release, SynchronizeSrcu, Update, WaitWoken, WakeAll, Write)
from apactors.model.paths.common import (GUEST_MEMORY, PAGE_SHIFT, PinPage, PqapResult, UnpinPage, dec, inc,
                                         mask_with, mask_without, tuple_append, tuple_remove)
from apactors.model.paths.kvm import IR_BIT, KvmPaths
from apactors.model.paths.vfio_ap import Insn_aqic
from apactors.model.schemes.base import PathGen, path
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait, WaitNode
from apactors.model.world import NO_ISC, KObject, WorkItem

# =====================================================================================================
# the alt base (§5.12 items 1-4)
# =====================================================================================================


class AltBasePaths:
    """§5.12 items 1-4 over `latest` (a mixin placed before `latest` in a scheme's bases)."""

    # item 1: KVM mask functions M-A (+kvm->lock first, -kvm->lock last)
    set_masks = KvmPaths.set_masks_ma
    clear_masks = KvmPaths.clear_masks_ma

    # ------------------------------------------------------------------ the data lock D

    def d_write_lock(self, k: Any) -> PathGen:
        """``+D`` for writing.  Base: ``D`` = the mutex ``&matrix_dev->mdevs_lock``."""
        yield Acquire(self.w.mdevs_lock)

    def d_write_unlock(self, k: Any) -> PathGen:
        yield Release(self.w.mdevs_lock)

    def d_read_lock(self, k: Any) -> PathGen:
        """``+D`` for reading (the P phase of the rw alternatives).  Base: the mutex, exclusively."""
        yield Acquire(self.w.mdevs_lock)

    def d_read_unlock(self, k: Any) -> PathGen:
        yield Release(self.w.mdevs_lock)

    def data_lock(self) -> Any:
        """The lock object of ``D`` whose holding (in any mode) means an update is in progress, or None
        when ``D`` is open-coded (then see ``update_markers``)."""
        return self.w.mdevs_lock

    def update_locks(self) -> list[Any]:
        """§9, alt-*: ``guests_lock``, the data lock ``D`` (in any mode) and every ``kvm->lock``."""
        w = self.w
        out = [w.guests_lock]
        d = self.data_lock()
        if d is not None:
            out.append(d)
        return out + [vm.lock for vm in w.vms.values()]

    # ------------------------------------------------------------------ item 2: update-lock functions

    @path("get_update_locks_for_kvm")
    def get_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        """alt: ``+guests_lock; +D`` (no ``kvm->lock``, no ``pqap_hook_rwsem``)."""
        yield Acquire(self.w.guests_lock)
        yield from self.d_write_lock(k)

    @path("release_update_locks_for_kvm")
    def release_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        """alt: ``-D; -guests_lock``."""
        yield from self.d_write_unlock(k)
        yield Release(self.w.guests_lock)

    @path("get_update_locks_for_mdev")
    def get_update_locks_for_mdev(self, k: Any, mdev: Any) -> PathGen:
        """alt: ``+guests_lock; +D`` (no read of ``mdev->kvm``: it only chose the VM lock)."""
        yield Acquire(self.w.guests_lock)
        yield from self.d_write_lock(k)

    @path("release_update_locks_for_mdev")
    def release_update_locks_for_mdev(self, k: Any, mdev: Any) -> PathGen:
        yield from self.d_write_unlock(k)
        yield Release(self.w.guests_lock)

    @path("get_update_locks_by_apqn")
    def get_update_locks_by_apqn(self, k: Any, apqn: int) -> PathGen:
        """alt: ``+guests_lock``; the ``mdev_list`` walk of `latest` (matrices read under guests_lock
        only; no ``R: m->kvm``); ``+D``; → the mdev or NULL."""
        m = yield from self._guests_lock_find_mdev(k, apqn)
        yield from self.d_write_lock(k)
        return m

    def _guests_lock_find_mdev(self, k: Any, apqn: int) -> PathGen:
        w = self.w
        apid, apqi = apqn >> 8, apqn & 0xFF
        yield Acquire(w.guests_lock)
        for m in w.matrix_dev.mdev_list:
            apm = yield Read(m.matrix, "apm", "matrix_mdev->matrix.apm")
            if apid not in apm:
                continue
            aqm = yield Read(m.matrix, "aqm", "matrix_mdev->matrix.aqm")
            if apqi in aqm:
                return m
        return None

    @path("get_update_locks_for_queue")
    def get_update_locks_for_queue(self, k: Any, q: Any) -> PathGen:
        """alt: ``+guests_lock; +D`` (no reads: ``q->matrix_mdev->kvm`` only chose the VM lock)."""
        yield Acquire(self.w.guests_lock)
        yield from self.d_write_lock(k)

    # ------------------------------------------------------------------ item 3: set_kvm / unset_kvm

    def alt_set_hook(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """``+pqap_hook_rwsem(w)``; hook already set → ``-pqap_hook_rwsem(w)``, -EPERM; else
        ``W: pqap_hook := &mdev->pqap_hook``; ``-pqap_hook_rwsem(w)``; → 0 (guests_lock held)."""
        rwsem = kvm.pqap_hook_rwsem
        yield Acquire(rwsem, WRITE, owner=kvm)
        h = yield Read(kvm, "pqap_hook", "kvm->arch.crypto.pqap_hook")
        if h is not None:
            yield Release(rwsem, WRITE)
            return -errno.EPERM
        yield Write(kvm, "pqap_hook", mdev, "kvm->arch.crypto.pqap_hook")
        yield Release(rwsem, WRITE)
        return 0

    def alt_clear_hook(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """``+pqap_hook_rwsem(w); W: pqap_hook := NULL; -pqap_hook_rwsem(w)`` (guests_lock held)."""
        rwsem = kvm.pqap_hook_rwsem
        yield Acquire(rwsem, WRITE, owner=kvm)
        yield Write(kvm, "pqap_hook", None, "kvm->arch.crypto.pqap_hook")
        yield Release(rwsem, WRITE)

    def alt_attach_check(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """A refusal test under ``D`` before attaching (none in the base)."""
        return 0
        yield  # pragma: no cover

    def kvm_changed(self, k: Any, mdev: Any) -> PathGen:
        """Called right after every write of ``mdev->kvm`` (``alt-srcu`` publishes a snapshot)."""
        return
        yield  # pragma: no cover

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """§5.12 item 3: ``+guests_lock``; the hook under ``pqap_hook_rwsem(w)`` (-EPERM if the VM has
        one); ``+D``; ``kvm_get_kvm``; ``W: mdev->kvm``; ``update_guest_apcb`` (M-A: ``+kvm->lock`` …
        ``-kvm->lock``); ``-D``; ``-guests_lock``.  ``crycbd == 0``: → 0, nothing attached."""
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return 0
        w = self.w
        yield Acquire(w.guests_lock)
        rc = yield from self.alt_set_hook(k, mdev, kvm)
        if rc:
            yield Release(w.guests_lock)
            return rc
        yield from self.d_write_lock(k)
        rc = yield from self.alt_attach_check(k, mdev, kvm)
        if rc:
            yield from self.d_write_unlock(k)
            yield Release(w.guests_lock)
            return rc
        yield from self.kvm_get_kvm(k, kvm)
        yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
        yield from self.kvm_changed(k, mdev)
        yield from self.update_guest_apcb(k, mdev)
        yield from self.d_write_unlock(k)
        yield Release(w.guests_lock)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any) -> PathGen:
        """§5.12 item 3: ``R: kvm := mdev->kvm`` (no lock); if kvm and crycbd: ``+guests_lock``; hook
        := NULL under ``pqap_hook_rwsem(w)``; ``+D``; ``clear_masks`` (M-A); ``reset_queues``;
        ``W: mdev->kvm := NULL``; ``-D``; ``-guests_lock``; ``kvm_put_kvm``."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")  # no lock
        if kvm is None:
            return
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return
        w = self.w
        yield Acquire(w.guests_lock)
        yield from self.alt_clear_hook(k, mdev, kvm)
        yield from self.d_write_lock(k)
        yield from self.clear_masks(k, kvm)
        yield from self.reset_queues(k, mdev)
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
        yield from self.kvm_changed(k, mdev)
        yield from self.d_write_unlock(k)
        yield Release(w.guests_lock)
        yield from self.kvm_put_kvm(k, kvm)

    # ------------------------------------------------------------------ item 1: no direct kvm->lock

    @path("vfio_ap_mdev_cfg_remove")
    def cfg_remove(self, k: Any, ap_remove: Mask, aq_remove: Mask, cd_remove: Mask) -> PathGen:
        """`latest`'s loop without ``R: m->kvm`` and ``kvm->lock``: per mdev ``+D`` … ``-D`` (the rw
        alternatives: a P phase, ``D(r)``).  guests_lock is held by ``on_config_changed``."""
        for m in self.w.matrix_dev.mdev_list:
            yield from self.d_read_lock(k)
            matrix = m.matrix
            aprem = ap_remove & matrix.apm
            aqrem = aq_remove & matrix.aqm
            cdrem = cd_remove & matrix.adm
            if aprem or aqrem or cdrem:
                yield from self.hot_unplug_cfg(k, m, aprem, aqrem, cdrem)
            yield from self.d_read_unlock(k)

    @path("vfio_ap_mdev_hot_plug_cfg")
    def hot_plug_cfg(self, k: Any, m: Any) -> PathGen:
        """`latest`'s form (``apm_filtered := ∅`` first) without ``R: m->kvm`` and ``kvm->lock``:
        ``+D``; the matrix ∩ ``*_add`` reads; filter, ``filter_cdoms``, CRYCB; resets; ``-D``."""
        apm_filtered = Mask.EMPTY
        yield from self.d_write_lock(k)
        fa, fd, fc = yield from self._hot_plug_reads(k, m)
        do_hotplug = False
        if fa or fd:
            do_hotplug, apm_filtered = yield from self.filter_matrix(k, m)
        if fc:
            do_hotplug |= (yield from self.filter_cdoms(k, m))
        if do_hotplug:
            yield from self.update_guest_apcb(k, m)
        yield from self.reset_queues_for_apids(k, m, apm_filtered)
        yield from self.d_write_unlock(k)

    def _hot_plug_reads(self, k: Any, m: Any) -> PathGen:
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
        return fa, fd, fc

    # ------------------------------------------------------------------ irq_enable variants

    def irq_enable_alt(self, k: Any, q: Any, isc: int, vcpu: Any, *, view_kvm: Any = None,
                       srcu_kvm: Any = None) -> PathGen:
        """`latest`'s ``irq_enable`` (§5.5, §5.7, §5.8 error paths) with the alternatives' variations:

        * ``view_kvm`` (``alt-srcu``): the VM comes from the PQAP snapshot (``v.kvm``) instead of the
          step ``R: q->matrix_mdev->kvm``.
        * ``srcu_kvm`` (``alt-userspace-pqap``, a device ioctl outside ``KVM_RUN``): the NIB validation
          runs in a ``+kvm->srcu(r)`` … ``-kvm->srcu`` section of that VM, and so does the PV check,
          which reads the named vCPU's PV state as a step.
        """
        nib = vcpu.regs[2]
        if srcu_kvm is not None:
            yield Acquire(srcu_kvm.srcu, RECURSIVE_READ, owner=srcu_kvm)
        bad_nib = nib == 0 or nib >= GUEST_MEMORY  # no memslot backs the page
        if srcu_kvm is not None:
            yield Release(srcu_kvm.srcu, RECURSIVE_READ)
        if bad_nib:
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
        if view_kvm is None:
            kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
        else:
            kvm = view_kvm
        if kvm is None:
            yield NullDeref("q->matrix_mdev->kvm->arch.gisa_int.origin")
        if srcu_kvm is not None:
            yield Acquire(kvm.srcu, RECURSIVE_READ, owner=kvm)
            pv = yield Read(vcpu, "pv", "vcpu->arch.pv.handle")
            yield Release(kvm.srcu, RECURSIVE_READ)
        else:
            pv = vcpu.pv
        if self.NIB_SHARE_CHECK and pv and page not in kvm.shared_pages:
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


# =====================================================================================================
# reader/writer data lock: the C1 / P / C2 split (alt-fair-rwsem, alt-unfair-rwlock)
# =====================================================================================================


class RwSplitPaths:
    """The reader/writer shape of ``alt-fair-rwsem`` and ``alt-unfair-rwlock`` (§5.12).

    The update-lock functions take only ``guests_lock``; each update path holds it throughout and runs
    its steps in phases: **C1** ``D(w)`` (parse, checks, matrix writes, link/unlink, ``mdev->kvm`` set,
    ``*_add`` writes), **P** ``D(r)`` (shadow recomputation and the CRYCB write, M-A), **C2** ``D(w)``
    (resets with ``flush_work``, remaining unlinks, ``mdev->kvm`` clear).  Phase rule [modelling
    choice]: a condition on shared state is tested inside the phase it guards (the phase is entered
    and the test made under ``D``); a phase guarded only by local values (``qlist``,
    ``apm_filtered``, the ``pending`` value read in C1) is skipped when it would have no steps.  C1 of
    a store is always entered (the parse and the checks are in it).
    """

    # ------------------------------------------------------------------ update-lock functions

    @path("get_update_locks_for_kvm")
    def get_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        """rw: ``+guests_lock`` only (``D`` is taken per phase)."""
        yield Acquire(self.w.guests_lock)

    @path("release_update_locks_for_kvm")
    def release_update_locks_for_kvm(self, k: Any, kvm: Any) -> PathGen:
        yield Release(self.w.guests_lock)

    @path("get_update_locks_for_mdev")
    def get_update_locks_for_mdev(self, k: Any, mdev: Any) -> PathGen:
        yield Acquire(self.w.guests_lock)

    @path("release_update_locks_for_mdev")
    def release_update_locks_for_mdev(self, k: Any, mdev: Any) -> PathGen:
        yield Release(self.w.guests_lock)

    @path("get_update_locks_by_apqn")
    def get_update_locks_by_apqn(self, k: Any, apqn: int) -> PathGen:
        """rw: ``+guests_lock`` and the ``mdev_list`` walk; → the mdev or NULL."""
        return (yield from self._guests_lock_find_mdev(k, apqn))

    @path("get_update_locks_for_queue")
    def get_update_locks_for_queue(self, k: Any, q: Any) -> PathGen:
        yield Acquire(self.w.guests_lock)

    # ------------------------------------------------------------------ readers

    @path("handle_pqap")
    def vfio_ap_handle_pqap(self, k: Any, vcpu: Any) -> PathGen:
        """Reader: `latest`'s handler under ``D(r)`` (KVM holds vcpu->mutex, kvm->srcu,
        pqap_hook_rwsem(r)); nothing else protects a queue's IRQ state between two handlers."""
        apqn = vcpu.regs[0] & 0xFFFF
        if not vcpu.eca_aiv:
            yield Note("debug", "vfio_ap: AIV facility not installed for the vCPU")
            return -errno.EOPNOTSUPP
        yield from self.d_read_lock(k)
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
                    if gr1 & IR_BIT:
                        st = yield from self.irq_enable(k, q, gr1 & 7, vcpu)
                    else:
                        st = yield from self.irq_disable(k, q)
        r0, _r1, r2 = vcpu.regs
        yield Write(vcpu, "regs", (r0, st.word(), r2))
        yield from self.d_read_unlock(k)
        return 0

    @path("vfio_ap_mdev_resource_in_use")
    def in_use(self, k: Any, apm: Mask, aqm: Mask) -> PathGen:
        """Reader: ``+guests_lock; +D(r)``; sharing check; ``-D(r); -guests_lock``."""
        w = self.w
        yield Acquire(w.guests_lock)
        yield from self.d_read_lock(k)
        rc = yield from self.verify_no_sharing(k, None, apm, aqm)
        yield from self.d_read_unlock(k)
        yield Release(w.guests_lock)
        return rc

    # ------------------------------------------------------------------ plain writers

    @path("vfio_ap_mdev_probe")
    def mdev_create(self, k: Any, mdev: Any) -> PathGen:
        """Writer: the list add under ``+guests_lock; +D(w)`` (`latest`'s locks)."""
        w = self.w
        yield Alloc(mdev)
        w.mdevs[mdev.name] = mdev  # registered: visible to the vfio core from this step on
        yield Write(mdev, "req_trigger", None, "matrix_mdev->req_trigger")
        yield Acquire(w.guests_lock)
        yield from self.d_write_lock(k)
        yield Update(w.matrix_dev, "mdev_list", tuple_append, mdev, "matrix_dev->mdev_list")
        mdev.in_list = True
        yield from self.d_write_unlock(k)
        yield Release(w.guests_lock)
        return 0

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any, mdev: Any) -> PathGen:
        """Writer: `latest`'s body in one ``D(w)`` section under guests_lock."""
        w = self.w
        yield Acquire(w.guests_lock)
        yield from self.d_write_lock(k)
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
        yield from self.d_write_unlock(k)
        yield Release(w.guests_lock)
        yield Free(mdev)

    @path("vfio_ap_mdev_ioctl")
    def reset_ioctl(self, k: Any, mdev: Any) -> PathGen:
        """Writer: ``+D(w); reset_queues; -D(w)``."""
        yield from self.d_write_lock(k)
        rc = yield from self.reset_queues(k, mdev)
        yield from self.d_write_unlock(k)
        return rc

    @path("vfio_ap_mdev_dma_unmap")
    def dma_unmap(self, k: Any, mdev: Any, iova: int, length: int) -> PathGen:
        """Writer: `latest`'s body under ``D(w)``."""
        yield from self.d_write_lock(k)
        end = iova + length
        for q in tuple(mdev.qtable.values()):
            saved = yield Read(q, "saved_iova", "q->saved_iova")
            if iova <= saved < end:
                yield from self.irq_disable(k, q)
        yield from self.d_write_unlock(k)

    # ------------------------------------------------------------------ set_kvm / unset_kvm

    @path("vfio_ap_mdev_set_kvm")
    def set_kvm(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """``+guests_lock``; the hook (item 3); C1: ``kvm_get_kvm``, ``W: mdev->kvm``; P:
        ``update_guest_apcb``; ``-guests_lock``."""
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return 0
        w = self.w
        yield Acquire(w.guests_lock)
        rc = yield from self.alt_set_hook(k, mdev, kvm)
        if rc:
            yield Release(w.guests_lock)
            return rc
        yield from self.d_write_lock(k)  # C1
        yield from self.kvm_get_kvm(k, kvm)
        yield Write(mdev, "kvm", kvm, "matrix_mdev->kvm")
        yield from self.kvm_changed(k, mdev)
        yield from self.d_write_unlock(k)
        yield from self.d_read_lock(k)  # P
        yield from self.update_guest_apcb(k, mdev)
        yield from self.d_read_unlock(k)
        yield Release(w.guests_lock)
        return 0

    @path("vfio_ap_mdev_unset_kvm")
    def unset_kvm(self, k: Any, mdev: Any) -> PathGen:
        """``R: kvm`` (no lock); ``+guests_lock``; hook := NULL (item 3); no C1; P: ``clear_masks``;
        C2: ``reset_queues``, ``W: mdev->kvm := NULL``; ``-guests_lock``; ``kvm_put_kvm``."""
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")  # no lock
        if kvm is None:
            return
        crycbd = yield Read(kvm, "crycbd", "kvm->arch.crypto.crycbd")
        if not crycbd:
            return
        w = self.w
        yield Acquire(w.guests_lock)
        yield from self.alt_clear_hook(k, mdev, kvm)
        yield from self.d_read_lock(k)  # P
        yield from self.clear_masks(k, kvm)
        yield from self.d_read_unlock(k)
        yield from self.d_write_lock(k)  # C2
        yield from self.reset_queues(k, mdev)
        yield Write(mdev, "kvm", None, "matrix_mdev->kvm")
        yield from self.kvm_changed(k, mdev)
        yield from self.d_write_unlock(k)
        yield Release(w.guests_lock)
        yield from self.kvm_put_kvm(k, kvm)

    # ------------------------------------------------------------------ stores

    @path("assign_adapter_store")
    def assign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        perms_lock = self.w.bus.perms_lock
        yield Acquire(perms_lock)
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._rw_assign(k, mdev, buf, adapter=True)
        yield from self.release_update_locks_for_mdev(k, mdev)
        yield Release(perms_lock)
        return rc

    @path("assign_domain_store")
    def assign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        perms_lock = self.w.bus.perms_lock
        yield Acquire(perms_lock)
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._rw_assign(k, mdev, buf, adapter=False)
        yield from self.release_update_locks_for_mdev(k, mdev)
        yield Release(perms_lock)
        return rc

    def _rw_assign(self, k: Any, mdev: Any, buf: str, adapter: bool) -> PathGen:
        """C1: parse, limits, "already assigned → count", matrix write, reservation and sharing check
        (undo on error), link; P: whole-matrix filter and CRYCB if changed; C2: reset the filtered
        adapters (only if changed and some were filtered)."""
        yield from self.d_write_lock(k)  # C1
        rc = None
        try:
            ident = parse_id(buf)
        except ValueError:
            rc = -errno.EINVAL
            ident = -1
        matrix = mdev.matrix
        field = "apm" if adapter else "aqm"
        limit = matrix.apm_max if adapter else matrix.aqm_max
        if rc is None:
            if ident > limit:
                rc = -errno.ENODEV
            elif ident in getattr(matrix, field):
                rc = len(buf)
        if rc is None:
            expr = "matrix_mdev->matrix." + field
            yield Update(matrix, field, mask_with, ident, expr)
            vrc = yield from self.validate_masks(k, mdev, matrix.apm, matrix.aqm)
            if vrc:
                yield Update(matrix, field, mask_without, ident, expr)
                rc = vrc
            elif adapter:
                yield from self.link_adapter(k, mdev, ident)
            else:
                yield from self.link_domain(k, mdev, ident)
        yield from self.d_write_unlock(k)
        if rc is not None:
            return rc
        yield from self.d_read_lock(k)  # P
        changed, apm_filtered = yield from self.filter_matrix(k, mdev)
        if changed:
            yield from self.update_guest_apcb(k, mdev)
        yield from self.d_read_unlock(k)
        if changed and apm_filtered:  # C2
            yield from self.d_write_lock(k)
            yield from self.reset_queues_for_apids(k, mdev, apm_filtered)
            yield from self.d_write_unlock(k)
        return len(buf)

    @path("unassign_adapter_store")
    def unassign_adapter_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._rw_unassign(k, mdev, buf, adapter=True)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    @path("unassign_domain_store")
    def unassign_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        yield from self.get_update_locks_for_mdev(k, mdev)
        rc = yield from self._rw_unassign(k, mdev, buf, adapter=False)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    def _rw_unassign(self, k: Any, mdev: Any, buf: str, adapter: bool) -> PathGen:
        """C1: parse, limits, "not assigned → count", matrix write, the qlist of queues in the guest
        and ``unlink_queue_fr_mdev``; P: shadow bit clear and CRYCB (if the id is in the shadow);
        C2 (if qlist): ``reset_qlist``, ``unlink_mdev_fr_queue`` of the qlist."""
        yield from self.d_write_lock(k)  # C1
        rc = None
        try:
            ident = parse_id(buf)
        except ValueError:
            rc = -errno.EINVAL
            ident = -1
        matrix = mdev.matrix
        shadow = mdev.shadow_apcb
        field = "apm" if adapter else "aqm"
        other = "aqm" if adapter else "apm"
        limit = matrix.apm_max if adapter else matrix.aqm_max
        if rc is None:
            if ident > limit:
                rc = -errno.ENODEV
            elif ident not in getattr(matrix, field):
                rc = len(buf)
        qlist: list = []
        if rc is None:
            yield Update(matrix, field, mask_without, ident, "matrix_mdev->matrix." + field)
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
        yield from self.d_write_unlock(k)
        if rc is not None:
            return rc
        yield from self.d_read_lock(k)  # P
        if ident in getattr(shadow, field):
            yield Update(shadow, field, mask_without, ident, "matrix_mdev->shadow_apcb." + field)
            yield from self.update_guest_apcb(k, mdev)
        yield from self.d_read_unlock(k)
        if qlist:  # C2
            yield from self.d_write_lock(k)
            yield from self.reset_qlist(k, qlist)
            for q in qlist:
                yield from self.unlink_mdev_fr_queue(k, q)
            yield from self.d_write_unlock(k)
        return len(buf)

    @path("assign_control_domain_store")
    def assign_control_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        """C1: parse, limit, ``W: matrix.adm += id``; P: ``filter_cdoms`` and CRYCB if changed."""
        yield from self.get_update_locks_for_mdev(k, mdev)
        yield from self.d_write_lock(k)  # C1
        rc = None
        try:
            ident = parse_id(buf)
        except ValueError:
            rc = -errno.EINVAL
            ident = -1
        matrix = mdev.matrix
        if rc is None and ident > matrix.adm_max:
            rc = -errno.ENODEV
        if rc is None:
            yield Update(matrix, "adm", mask_with, ident, "matrix_mdev->matrix.adm")
        yield from self.d_write_unlock(k)
        if rc is None:
            yield from self.d_read_lock(k)  # P
            if (yield from self.filter_cdoms(k, mdev)):
                yield from self.update_guest_apcb(k, mdev)
            yield from self.d_read_unlock(k)
            rc = len(buf)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    @path("unassign_control_domain_store")
    def unassign_control_domain_store(self, k: Any, mdev: Any, buf: str) -> PathGen:
        """C1: parse, limit, ``W: matrix.adm −= id``; P: shadow bit clear and CRYCB (if in the shadow)."""
        yield from self.get_update_locks_for_mdev(k, mdev)
        yield from self.d_write_lock(k)  # C1
        rc = None
        try:
            ident = parse_id(buf)
        except ValueError:
            rc = -errno.EINVAL
            ident = -1
        matrix = mdev.matrix
        if rc is None and ident > matrix.adm_max:
            rc = -errno.ENODEV
        if rc is None:
            yield Update(matrix, "adm", mask_without, ident, "matrix_mdev->matrix.adm")
        yield from self.d_write_unlock(k)
        if rc is None:
            yield from self.d_read_lock(k)  # P
            shadow = mdev.shadow_apcb
            if ident in shadow.adm:
                yield Update(shadow, "adm", mask_without, ident, "matrix_mdev->shadow_apcb.adm")
                yield from self.update_guest_apcb(k, mdev)
            yield from self.d_read_unlock(k)
            rc = len(buf)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return rc

    # ------------------------------------------------------------------ queue probe / remove

    @path("vfio_ap_mdev_probe_queue")
    def queue_probe(self, k: Any, qdev: Any) -> PathGen:
        """`latest`'s probe split: guests_lock and the list walk; C1 (an mdev holds the APQN):
        ``link_queue``, ``R: *_add``; P (nothing pending): filter, CRYCB; C2: resets of the filtered
        adapters and ``W: drvdata := q`` (the last step, as in `latest`)."""
        apqn = qdev.apqn
        q = self.new_queue(apqn)
        q.reset_work = WorkItem(f"{q.name}.reset_work", q, self.apq_reset_check, (q,))
        yield Alloc(q)
        yield Write(q, "apqn", apqn, "q->apqn")
        yield Write(q, "saved_isc", NO_ISC, "q->saved_isc")
        yield Write(q, "reset_status", 0, "q->reset_status")
        mdev = yield from self.get_update_locks_by_apqn(k, apqn)
        changed, apm_filtered = False, Mask.EMPTY
        if mdev is not None:
            yield from self.d_write_lock(k)  # C1
            yield from self.link_queue(k, mdev, q)
            pending = yield Read(mdev, "apm_add", "matrix_mdev->apm_add")
            if not pending:
                pending = yield Read(mdev, "aqm_add", "matrix_mdev->aqm_add")
            yield from self.d_write_unlock(k)
            if not pending:
                yield from self.d_read_lock(k)  # P
                changed, apm_filtered = yield from self.filter_matrix(k, mdev)
                if changed:
                    yield from self.update_guest_apcb(k, mdev)
                yield from self.d_read_unlock(k)
        yield from self.d_write_lock(k)  # C2
        if changed and apm_filtered:
            yield from self.reset_queues_for_apids(k, mdev, apm_filtered)
        yield Write(qdev, "drvdata", q, "dev_set_drvdata(&queue->ap_dev.device)")
        yield from self.d_write_unlock(k)
        yield from self.release_update_locks_for_mdev(k, mdev)
        return 0

    @path("vfio_ap_mdev_remove_queue")
    def queue_remove(self, k: Any, qdev: Any) -> PathGen:
        """`latest`'s remove split: guests_lock; P: ``R: q->matrix_mdev``, the shadow test, clear of
        the APID and CRYCB (no C1: nothing of C1's kind precedes it); C2: the resets, the unlink,
        ``W: drvdata := NULL``, free q."""
        w = self.w
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        yield from self.get_update_locks_for_queue(k, q)
        yield from self.d_read_lock(k)  # P
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
                    unplugged = True
        yield from self.d_read_unlock(k)
        yield from self.d_write_lock(k)  # C2
        if unplugged:
            yield from self.reset_queues_for_apids(k, mdev, Mask.EMPTY.with_id(apid))
        else:
            info = yield Read(w.matrix_dev, "info", "matrix_dev->info")
            if apid in info.apm and apqi in info.aqm:
                yield from self.reset_queue(k, q)
                yield from self.flush_work(k, q.reset_work)
        if mdev is not None:
            yield from self.unlink_queue_fr_mdev(k, q, mdev)
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Free(q)
        yield from self.d_write_unlock(k)
        yield from self.release_update_locks_for_mdev(k, mdev)

    # ------------------------------------------------------------------ host configuration

    @path("vfio_ap_mdev_cfg_add")
    def cfg_add(self, k: Any, apm_add: Mask, aqm_add: Mask, adm_add: Mask) -> PathGen:
        """guests_lock held; the adapter-type TAPQs outside ``D``; C1: the ``*_add`` reads and writes
        of every mdev in one ``D(w)`` section."""
        md = self.w.matrix_dev
        if not md.mdev_list:
            return
        apm_add = yield from self.filter_apid_by_qtype(k, apm_add, aqm_add)
        yield from self.d_write_lock(k)  # C1
        for m in md.mdev_list:
            matrix = m.matrix
            a = yield Read(matrix, "apm", "matrix_mdev->matrix.apm")
            yield Write(m, "apm_add", a & apm_add, "matrix_mdev->apm_add")
            a = yield Read(matrix, "aqm", "matrix_mdev->matrix.aqm")
            yield Write(m, "aqm_add", a & aqm_add, "matrix_mdev->aqm_add")
            a = yield Read(matrix, "adm", "matrix_mdev->matrix.adm")
            yield Write(m, "adm_add", a & adm_add, "matrix_mdev->adm_add")
        yield from self.d_write_unlock(k)

    @path("vfio_ap_mdev_hot_plug_cfg")
    def hot_plug_cfg(self, k: Any, m: Any) -> PathGen:
        """P: the matrix ∩ ``*_add`` reads, filter, ``filter_cdoms``, CRYCB; C2 (some adapter
        filtered): ``reset_queues_for_apids``."""
        apm_filtered = Mask.EMPTY
        yield from self.d_read_lock(k)  # P
        fa, fd, fc = yield from self._hot_plug_reads(k, m)
        do_hotplug = False
        if fa or fd:
            do_hotplug, apm_filtered = yield from self.filter_matrix(k, m)
        if fc:
            do_hotplug |= (yield from self.filter_cdoms(k, m))
        if do_hotplug:
            yield from self.update_guest_apcb(k, m)
        yield from self.d_read_unlock(k)
        if apm_filtered:  # C2
            yield from self.d_write_lock(k)
            yield from self.reset_queues_for_apids(k, m, apm_filtered)
            yield from self.d_write_unlock(k)


class FairRwsemPaths:
    """``alt-fair-rwsem``: ``D`` = ``&matrix_dev->mdevs_rwsem``, a fair rw_semaphore (``down_read`` a
    non-recursive reader, ``down_write`` a writer), installed as ``world.mdevs_lock``."""

    def __init__(self, world: Any) -> None:
        world.mdevs_lock = RwSem("&matrix_dev->mdevs_rwsem", "matrix_dev")
        super().__init__(world)  # type: ignore[call-arg]

    def d_write_lock(self, k: Any) -> PathGen:
        """``down_write``."""
        yield Acquire(self.w.mdevs_lock, WRITE)

    def d_write_unlock(self, k: Any) -> PathGen:
        yield Release(self.w.mdevs_lock, WRITE)

    def d_read_lock(self, k: Any) -> PathGen:
        """``down_read`` (a non-recursive reader)."""
        yield Acquire(self.w.mdevs_lock, READ)

    def d_read_unlock(self, k: Any) -> PathGen:
        yield Release(self.w.mdevs_lock, READ)


# =====================================================================================================
# alt-unfair-rwlock: the open-coded reader-preferring mdevs_rwlock
# =====================================================================================================

RWL_WRITER_NODE = "(wait)mdevs_rwlock.writer"  #: waitdep node: "the writer released mdevs_rwlock"
RWL_READERS_NODE = "(wait)mdevs_rwlock.readers"  #: waitdep node: "the readers released mdevs_rwlock"


class MdevsRwlock(KObject):
    """The state of ``mdevs_rwlock`` (§5.12): ``readers``, ``writer``, the mutex
    ``&matrix_dev->rwl_mutex`` and the wait queue ``rwl_wq``.  ``readers``/``writer`` change only by
    ``Update``/``Write`` steps under ``rwl_mutex``.

    Beyond lockdep (which sees only ``rwl_mutex``) the sub-paths annotate the holding for the
    waitdep checker with two wait nodes: the writer holds :data:`RWL_WRITER_NODE`, each reader holds
    :data:`RWL_READERS_NODE`; a reader waits for the first, a writer for both (lockdep's "readers
    are recursive readers, writers exclusive" option of §5.12, expressed with wait nodes).
    """

    __slots__ = ("readers", "writer", "mutex", "wq", "node_w", "node_r", "owners")
    kind = "mdevs_rwlock"

    def __init__(self) -> None:
        super().__init__("matrix_dev")
        self.readers = 0
        self.writer = False
        #: bookkeeping for reports (no step): actor -> "r"/"w" while it holds the lock, set at the step
        #: that changes ``readers``/``writer`` for it
        self.owners: dict[str, str] = {}
        self.mutex = Mutex("&matrix_dev->rwl_mutex", "matrix_dev")
        self.wq = WaitQueue("rwl_wq")
        self.node_w = WaitNode(RWL_WRITER_NODE, "matrix_dev", "mdevs_rwlock released by its writer")
        self.node_r = WaitNode(RWL_READERS_NODE, "matrix_dev", "mdevs_rwlock released by its readers")


class NoDataLock(Mutex):
    """Stands in ``world.mdevs_lock`` where ``D`` is open-coded: taking it is a model bug (a path of
    `latest` that the alternative failed to override), reported as an engine error."""

    __slots__ = ()

    def can_acquire(self, actor: str, mode: str, arrival: int) -> bool:
        raise RuntimeError("alt-unfair-rwlock has no &matrix_dev->mdevs_lock: a path took world.mdevs_lock "
                           "instead of mdevs_rwlock (missing override)")


class UnfairRwlockPaths:
    """``alt-unfair-rwlock``: ``D`` = ``mdevs_rwlock`` (§5.12 pseudo-code): ``d_read_lock`` and
    ``d_write_lock`` are the ``read_lock``/``write_lock`` sub-paths.  The waits are
    ``wait_event_cmd``: test the condition; while it holds: ``prepare_to_wait``, re-test, ``-rwl_mutex``, sleep until woken, ``+rwl_mutex``."""

    def __init__(self, world: Any) -> None:
        self.rwl = MdevsRwlock()
        world.mdevs_lock = NoDataLock("&matrix_dev->mdevs_lock", "matrix_dev")
        super().__init__(world)  # type: ignore[call-arg]

    def d_write_lock(self, k: Any) -> PathGen:
        yield from self.write_lock(k)

    def d_write_unlock(self, k: Any) -> PathGen:
        yield from self.write_unlock(k)

    def d_read_lock(self, k: Any) -> PathGen:
        yield from self.read_lock(k)

    def d_read_unlock(self, k: Any) -> PathGen:
        yield from self.read_unlock(k)

    # §9: D counts as held while readers > 0 or the writer flag is set
    def data_lock(self) -> Any:
        return None

    def update_markers(self) -> bool:
        """True while ``mdevs_rwlock`` is held in any mode (read by the invariant checker's at-rest
        test, §9)."""
        rw = self.rwl
        return rw.readers > 0 or rw.writer

    def open_coded_markers(self) -> tuple[tuple[Any, str], ...]:
        """The (object, field) pairs whose values make ``update_markers()`` true: a write of one of
        them can end an update (the checker may evaluate the at-rest rules after it)."""
        rw = self.rwl
        return ((rw, "readers"), (rw, "writer"))

    def extra_locks(self) -> list[Any]:
        """Lock instances of this scheme that ``World.locks()`` does not list."""
        return [self.rwl.mutex]

    def wait_blockers(self, wq: Any) -> list[str]:
        """For a deadlock/hang report: the actors a sleeper on ``rwl_wq`` waits for (the holders of
        ``mdevs_rwlock``)."""
        if wq is self.rwl.wq:
            return list(self.rwl.owners)
        return []

    # ------------------------------------------------------------------ the four sub-paths

    def _rwl_wait(self, k: Any, busy: Any) -> PathGen:
        """``wait_event_cmd(rwl_wq, !busy, -rwl_mutex, +rwl_mutex)`` after a first test found it busy."""
        rw = self.rwl
        while True:
            yield PrepareWait(rw.wq)
            if not (yield from busy()):
                break
            yield Release(rw.mutex)
            yield WaitWoken(rw.wq)
            yield Acquire(rw.mutex)
        yield FinishWait(rw.wq)

    def _writer_held(self) -> PathGen:
        return (yield Read(self.rwl, "writer", "mdevs_rwlock.writer"))

    def _held_at_all(self) -> PathGen:
        rw = self.rwl
        if (yield Read(rw, "writer", "mdevs_rwlock.writer")):
            return True
        return (yield Read(rw, "readers", "mdevs_rwlock.readers")) > 0

    @path("read_lock")
    def read_lock(self, k: Any) -> PathGen:
        """``+rwl_mutex; while writer: wait(rwl_wq) [drop rwl_mutex]; readers += 1; -rwl_mutex``."""
        rw = self.rwl
        yield Acquire(rw.mutex)
        yield WaitDepWait(rw.node_w, (rw.mutex,))
        if (yield from self._writer_held()):
            yield from self._rwl_wait(k, self._writer_held)
        yield Update(rw, "readers", inc, 1, "mdevs_rwlock.readers")
        rw.owners[k.name] = "r"
        yield Release(rw.mutex)
        yield WaitDepAcquire(rw.node_r)

    @path("read_unlock")
    def read_unlock(self, k: Any) -> PathGen:
        """``+rwl_mutex; readers -= 1; if readers == 0: wake_all(rwl_wq); -rwl_mutex``."""
        rw = self.rwl
        yield WaitDepRelease(rw.node_r)
        yield Acquire(rw.mutex)
        n = yield Update(rw, "readers", dec, 1, "mdevs_rwlock.readers")
        rw.owners.pop(k.name, None)
        if n == 0:
            yield WakeAll(rw.wq)
        yield Release(rw.mutex)

    @path("write_lock")
    def write_lock(self, k: Any) -> PathGen:
        """``+rwl_mutex; while writer or readers > 0: wait(rwl_wq) [drop rwl_mutex]; writer := true;
        -rwl_mutex``."""
        rw = self.rwl
        yield Acquire(rw.mutex)
        yield WaitDepWait(rw.node_w, (rw.mutex,))
        yield WaitDepWait(rw.node_r, (rw.mutex,))
        if (yield from self._held_at_all()):
            yield from self._rwl_wait(k, self._held_at_all)
        yield Write(rw, "writer", True, "mdevs_rwlock.writer")
        rw.owners[k.name] = "w"
        yield Release(rw.mutex)
        yield WaitDepAcquire(rw.node_w)

    @path("write_unlock")
    def write_unlock(self, k: Any) -> PathGen:
        """``+rwl_mutex; writer := false; wake_all(rwl_wq); -rwl_mutex``."""
        rw = self.rwl
        yield WaitDepRelease(rw.node_w)
        yield Acquire(rw.mutex)
        yield Write(rw, "writer", False, "mdevs_rwlock.writer")
        rw.owners.pop(k.name, None)
        yield WakeAll(rw.wq)
        yield Release(rw.mutex)


# =====================================================================================================
# alt-srcu
# =====================================================================================================


class PqapView(KObject):
    """``alt-srcu``'s immutable per-mdev snapshot ``{kvm, qtable: APQN → q}`` published in
    ``mdev->pqap_view`` (its fields are written only before it is published)."""

    __slots__ = ("kvm", "qtable")
    kind = "pqap_view"

    def __init__(self, name: str, kvm: Any, qtable: dict) -> None:
        super().__init__(name)
        self.kvm = kvm
        self.qtable = qtable


class SrcuPaths:
    """``alt-srcu`` (§5.12): ``D`` = ``mdevs_lock``; the PQAP handler reads a published snapshot in a
    ``&matrix_dev->pqap_srcu`` read section and takes no ``D``.  Every change of ``mdev->kvm`` or
    ``qtable`` (``link_queue``, ``unlink_queue_fr_mdev``, ``set_kvm``, ``unset_kvm``, ``mdev_remove``)
    is followed, under its locks, by ``publish_pqap_view``."""

    def __init__(self, world: Any) -> None:
        self.pqap_srcu = Srcu("&matrix_dev->pqap_srcu", "matrix_dev")
        self._views = 0
        super().__init__(world)  # type: ignore[call-arg]

    def extra_locks(self) -> list[Any]:
        return [self.pqap_srcu]

    @path("vfio_ap_mdev_publish_pqap_view")
    def publish_pqap_view(self, k: Any, mdev: Any, gone: bool = False) -> PathGen:
        """Build a snapshot of ``mdev->kvm`` and ``qtable`` (the path holds ``D``, under which both are
        written; ``gone``: none, the mdev is being removed); ``W: mdev->pqap_view := new``;
        ``block: synchronize_srcu(pqap_srcu)``; free the old snapshot."""
        old = mdev.pqap_view
        new = None
        if not gone:
            n = self._views
            self._views = n + 1
            new = PqapView(f"{mdev.name}#{n}", mdev.kvm, mdev.qtable)
            new.freed = True  # alive from its Alloc step
            yield Alloc(new)
        yield Write(mdev, "pqap_view", new, "matrix_mdev->pqap_view")
        yield SynchronizeSrcu(self.pqap_srcu)
        if old is not None:
            yield Free(old)

    def kvm_changed(self, k: Any, mdev: Any) -> PathGen:
        yield from self.publish_pqap_view(k, mdev)

    @path("vfio_ap_irq_enable")
    def irq_enable(self, k: Any, q: Any, isc: int, vcpu: Any, kvm: Any = None) -> PathGen:
        """`latest`'s, with the VM ``kvm`` of the PQAP snapshot (``v.kvm``) in place of the step
        ``R: q->matrix_mdev->kvm``."""
        return (yield from self.irq_enable_alt(k, q, isc, vcpu, view_kvm=kvm))

    def link_queue(self, k: Any, mdev: Any, q: Any) -> PathGen:
        yield from super().link_queue(k, mdev, q)  # type: ignore[misc]
        yield from self.publish_pqap_view(k, mdev)

    def unlink_queue_fr_mdev(self, k: Any, q: Any, mdev: Any) -> PathGen:
        yield from super().unlink_queue_fr_mdev(k, q, mdev)  # type: ignore[misc]
        yield from self.publish_pqap_view(k, mdev)

    @path("handle_pqap")
    def vfio_ap_handle_pqap(self, k: Any, vcpu: Any) -> PathGen:
        """No ``D`` (K-B around it unchanged): AIV check; ``srcu_read_lock``; ``R: h := pqap_hook``
        (NULL → 0x01) to find the mdev; ``v := R: mdev->pqap_view``; ``v == NULL`` or ``R: v->kvm ==
        NULL`` → 0x01; ``R: v->qtable``, q or 0x01; ``irq_enable`` (with ``v.kvm``) / ``irq_disable``;
        ``W: GR1``; ``srcu_read_unlock``."""
        apqn = vcpu.regs[0] & 0xFFFF
        if not vcpu.eca_aiv:
            yield Note("debug", "vfio_ap: AIV facility not installed for the vCPU")
            return -errno.EOPNOTSUPP
        srcu = self.pqap_srcu
        yield Acquire(srcu, RECURSIVE_READ)
        st = status(0x01)
        h = yield Read(vcpu.vm, "pqap_hook", "vcpu->kvm->arch.crypto.pqap_hook")
        if h is None:
            yield Note("debug", "vfio_ap: PQAP hook not registered")
        else:
            mdev = h  # container_of(h): no access
            v = yield Read(mdev, "pqap_view", "matrix_mdev->pqap_view")
            kvm = None
            if v is not None:
                kvm = yield Read(v, "kvm", "matrix_mdev->pqap_view->kvm")
            if kvm is None:
                yield Note("debug", f"vfio_ap: mdev {mdev.name} not in use")
            else:
                qtable = yield Read(v, "qtable", "matrix_mdev->pqap_view->qtable")
                q = qtable.get(apqn)
                if q is None:
                    yield Note("debug", f"vfio_ap: queue {format_apqn(apqn)} not bound to mdev {mdev.name}")
                else:
                    gr1 = vcpu.regs[1]
                    if gr1 & IR_BIT:
                        st = yield from self.irq_enable(k, q, gr1 & 7, vcpu, kvm)
                    else:
                        st = yield from self.irq_disable(k, q)
        r0, _r1, r2 = vcpu.regs
        yield Write(vcpu, "regs", (r0, st.word(), r2))
        yield Release(srcu, RECURSIVE_READ)
        return 0

    @path("vfio_ap_mdev_remove")
    def mdev_remove(self, k: Any, mdev: Any) -> PathGen:
        """`latest`'s body; after the unlinks the view is withdrawn (``W: pqap_view := NULL``,
        synchronize, free the old snapshot) before the list delete."""
        w = self.w
        yield Acquire(w.guests_lock)
        yield from self.d_write_lock(k)
        yield from self.reset_queues(k, mdev)
        matrix = mdev.matrix
        qtable = mdev.qtable
        for apid in matrix.apm:
            for apqi in matrix.aqm:
                q = qtable.get(apid << 8 | apqi)
                if q is not None:
                    yield Write(q, "matrix_mdev", None, "q->matrix_mdev")
        yield from self.publish_pqap_view(k, mdev, gone=True)
        yield Update(w.matrix_dev, "mdev_list", tuple_remove, mdev, "matrix_dev->mdev_list")
        mdev.in_list = False
        yield from self.d_write_unlock(k)
        yield Release(w.guests_lock)
        yield Free(mdev)

    @path("vfio_ap_mdev_remove_queue")
    def queue_remove(self, k: Any, qdev: Any) -> PathGen:
        """`latest`'s remove with the reset and the free after the synchronize: unplug (shadow, CRYCB)
        and the choice of the queues to reset as in `latest`; then ``unlink_queue_fr_mdev`` (publish,
        synchronize); then the resets; ``W: drvdata := NULL``; free q."""
        w = self.w
        q = yield Read(qdev, "drvdata", "dev_get_drvdata(&queue->ap_dev.device)")
        yield from self.get_update_locks_for_queue(k, q)
        mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
        apid, apqi = q.apqn >> 8, q.apqn & 0xFF
        qlist: list | None = None  # unplugged: the adapter's queues to reset after the synchronize
        reset_self = False
        if mdev is not None:
            shadow = mdev.shadow_apcb
            sapm = yield Read(shadow, "apm", "matrix_mdev->shadow_apcb.apm")
            if apid in sapm:
                saqm = yield Read(shadow, "aqm", "matrix_mdev->shadow_apcb.aqm")
                if apqi in saqm:
                    yield Update(shadow, "apm", mask_without, apid, "matrix_mdev->shadow_apcb.apm")
                    yield from self.update_guest_apcb(k, mdev)
                    qlist = yield from self._queues_for_apids(k, mdev, Mask.EMPTY.with_id(apid))
        if qlist is None:
            info = yield Read(w.matrix_dev, "info", "matrix_dev->info")
            reset_self = apid in info.apm and apqi in info.aqm
        if mdev is not None:
            yield from self.unlink_queue_fr_mdev(k, q, mdev)  # publish + synchronize
        if qlist is not None:
            yield from self.reset_qlist(k, qlist)
        elif reset_self:
            yield from self.reset_queue(k, q)
            yield from self.flush_work(k, q.reset_work)
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Free(q)
        yield from self.release_update_locks_for_mdev(k, mdev)

    def _queues_for_apids(self, k: Any, mdev: Any, apm_reset: Mask) -> PathGen:
        """The list part of ``reset_queues_for_apids``, inline in the caller: the queues of
        ``apm_reset`` (adapters in the host configuration) × ``shadow.aqm`` linked to the mdev; the
        resets follow separately (``reset_qlist``)."""
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
        return qlist


# =====================================================================================================
# alt-queue-lock
# =====================================================================================================


class QueueLockPaths:
    """``alt-queue-lock`` (§5.12): ``D`` = ``mdevs_lock``; a per-queue mutex ``&q->lock`` (one class),
    made with the queue object in ``queue_probe``.  Outside the PQAP handler every ``reset_queue``,
    ``flush_work`` and ``irq_disable`` is bracketed by ``+q->lock`` … ``-q->lock`` at its call site
    (``reset_queues``, ``reset_qlist``, ``dma_unmap``, ``queue_remove``), under ``D``;
    ``free_aqic_resources`` runs only inside those brackets (``reset_queue``'s rc 0x03,
    ``irq_disable``), in the PQAP handler, or in the reset-check work, which takes no lock."""

    def new_queue(self, apqn: int) -> Any:
        q = super().new_queue(apqn)  # type: ignore[misc]
        q.lock = Mutex("&q->lock", q.name)
        return q

    def extra_locks(self) -> list[Any]:
        out = []
        for d in self.w.bus.devices.values():
            q = d.drvdata
            if q is not None and q.lock is not None:
                out.append(q.lock)
        return out

    # ------------------------------------------------------------------ the bracketed call sites

    @path("vfio_ap_mdev_reset_queues")
    def reset_queues(self, k: Any, mdev: Any) -> PathGen:
        """`latest`'s two loops, each ``reset_queue`` and ``flush_work`` in its own ``q->lock`` bracket."""
        for q in tuple(mdev.qtable.values()):
            yield Acquire(q.lock, WRITE, owner=q)
            yield from self.reset_queue(k, q)
            yield Release(q.lock)
        rc = 0
        for q in tuple(mdev.qtable.values()):
            yield Acquire(q.lock, WRITE, owner=q)
            yield from self.flush_work(k, q.reset_work)
            yield Release(q.lock)
            rs = yield Read(q, "reset_status", "q->reset_status.response_code")
            if rs != 0:
                rc = -errno.EIO
        return rc

    @path("vfio_ap_mdev_reset_qlist")
    def reset_qlist(self, k: Any, qlist: list) -> PathGen:
        """As ``reset_queues``, over a list."""
        for q in qlist:
            yield Acquire(q.lock, WRITE, owner=q)
            yield from self.reset_queue(k, q)
            yield Release(q.lock)
        rc = 0
        for q in qlist:
            yield Acquire(q.lock, WRITE, owner=q)
            yield from self.flush_work(k, q.reset_work)
            yield Release(q.lock)
            rs = yield Read(q, "reset_status", "q->reset_status.response_code")
            if rs != 0:
                rc = -errno.EIO
        return rc

    @path("vfio_ap_mdev_dma_unmap")
    def dma_unmap(self, k: Any, mdev: Any, iova: int, length: int) -> PathGen:
        """`latest`'s body; each ``irq_disable`` in a ``q->lock`` bracket."""
        w = self.w
        yield Acquire(w.mdevs_lock)
        end = iova + length
        for q in tuple(mdev.qtable.values()):
            saved = yield Read(q, "saved_iova", "q->saved_iova")
            if iova <= saved < end:
                yield Acquire(q.lock, WRITE, owner=q)
                yield from self.irq_disable(k, q)
                yield Release(q.lock)
        yield Release(w.mdevs_lock)

    @path("handle_pqap")
    def vfio_ap_handle_pqap(self, k: Any, vcpu: Any) -> PathGen:
        """No ``D``: AIV check; ``find_queue`` (ap_queues_lock, drvdata) or 0x01; ``+q->lock``; APQN in
        the guest's CRYCB (read without ``kvm->lock``: apm, then aqm) or 0x01; ``R: q->matrix_mdev``,
        ``R: mdev->kvm`` = this VM or 0x01; ``irq_enable``/``irq_disable``; ``-q->lock``; ``W: GR1``."""
        apqn = vcpu.regs[0] & 0xFFFF
        if not vcpu.eca_aiv:
            yield Note("debug", "vfio_ap: AIV facility not installed for the vCPU")
            return -errno.EOPNOTSUPP
        st = status(0x01)
        q = yield from self.find_queue(k, apqn)
        if q is None:
            yield Note("debug", f"vfio_ap: queue {format_apqn(apqn)} not bound to vfio_ap")
        else:
            vm = vcpu.vm
            yield Acquire(q.lock, WRITE, owner=q)
            masks = yield Read(vm.crycb, "masks", "kvm->arch.crypto.crycb")
            in_crycb = (apqn >> 8) in masks[0]
            if in_crycb:
                masks = yield Read(vm.crycb, "masks", "kvm->arch.crypto.crycb")
                in_crycb = (apqn & 0xFF) in masks[1]
            if not in_crycb:
                yield Note("debug", f"vfio_ap: queue {format_apqn(apqn)} not in the guest's CRYCB")
            else:
                mdev = yield Read(q, "matrix_mdev", "q->matrix_mdev")
                kvm = None
                if mdev is not None:
                    kvm = yield Read(mdev, "kvm", "q->matrix_mdev->kvm")
                if kvm is not vm:
                    yield Note("debug", f"vfio_ap: queue {format_apqn(apqn)} not assigned to this guest")
                else:
                    gr1 = vcpu.regs[1]
                    if gr1 & IR_BIT:
                        st = yield from self.irq_enable(k, q, gr1 & 7, vcpu)
                    else:
                        st = yield from self.irq_disable(k, q)
            yield Release(q.lock)
        r0, _r1, r2 = vcpu.regs
        yield Write(vcpu, "regs", (r0, st.word(), r2))
        return 0

    @path("vfio_ap_mdev_remove_queue")
    def queue_remove(self, k: Any, qdev: Any) -> PathGen:
        """`latest`'s remove with ``q->lock``: in the guest → unplug (shadow, CRYCB; ``q->lock`` not
        held across the CRYCB write) and reset the adapter's queues (each bracketed by its own lock),
        then ``+q->lock``; else ``R: info``, ``+q->lock``, reset and flush this queue if it is in the host
        configuration.  Then the unlink and ``W: drvdata := NULL`` under ``q->lock``, released just
        before q is freed."""
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
        if unplugged:
            yield Acquire(q.lock, WRITE, owner=q)
        else:
            info = yield Read(w.matrix_dev, "info", "matrix_dev->info")
            yield Acquire(q.lock, WRITE, owner=q)
            if apid in info.apm and apqi in info.aqm:
                yield from self.reset_queue(k, q)  # under this q->lock
                yield from self.flush_work(k, q.reset_work)
        if mdev is not None:
            yield from self.unlink_queue_fr_mdev(k, q, mdev)
        yield Write(qdev, "drvdata", None, "dev_set_drvdata(&queue->ap_dev.device)")
        yield Release(q.lock)
        yield Free(q)
        yield from self.release_update_locks_for_mdev(k, mdev)


# =====================================================================================================
# alt-userspace-pqap
# =====================================================================================================


class FdGet(Op):
    """The VMM's vCPU thread looks up its open file of an mdev used with ``vm`` (the first opened,
    in the VMM's file table ``World.files``) and takes a file reference for the ioctl (``fdget``) in
    one step; → the mdev, or None when it holds no such file."""

    __slots__ = ("users", "vm")
    code = "fdget"

    def __init__(self, users: dict, vm: Any) -> None:
        self.users = users
        self.vm = vm

    def perform(self, k: Any) -> Any:
        w = k.world
        guest = self.vm.name
        for mdev in w.files.values():  # insertion order = open order
            if w.mdev_guests.get(mdev.name) == guest:
                self.users[mdev.name] = self.users.get(mdev.name, ()) + (k.name,)
                return mdev
        return None


class FdPut(Op):
    """``fdput``: the ioctl's file reference is dropped."""

    __slots__ = ("users", "mdev")
    code = "fdput"

    def __init__(self, users: dict, mdev: Any) -> None:
        self.users = users
        self.mdev = mdev

    def perform(self, k: Any) -> None:
        left = list(self.users.get(self.mdev.name, ()))
        if k.name in left:
            left.remove(k.name)
        self.users[self.mdev.name] = tuple(left)


class FdClose(Op):
    """``close(2)`` of the ``mdev`` actor's file: the descriptor leaves the VMM's file table at once;
    the release (``vfio_close``) runs when the last reference is gone."""

    __slots__ = ("actor",)
    code = "fdclose"

    def __init__(self, actor: str) -> None:
        self.actor = actor

    def perform(self, k: Any) -> None:
        k.world.files.pop(self.actor, None)


class IoctlsDone(Cond):
    """The file's in-flight ioctls (their references) are gone, so its release can run."""

    __slots__ = ("users", "name")
    what = "in-flight ioctls on the file finished"

    def __init__(self, users: dict, name: str) -> None:
        self.users = users
        self.name = name

    def ready(self, k: Any) -> bool:
        return not self.users.get(self.name)

    def describe(self) -> str:
        return f"the ioctls in flight on mdev {self.name}'s file finished"

    def blockers(self, k: Any) -> list[str]:
        return list(self.users.get(self.name, ()))


class UserspacePqapPaths:
    """``alt-userspace-pqap`` (§5.12): no ``pqap_hook`` and no ``pqap_hook_rwsem``; KVM exits to user
    space for PQAP(AQIC) (``handle_pqap`` steps 9-10 → -EOPNOTSUPP); the same vCPU thread then calls a
    hypothetical device ioctl on the first-opened mdev file of that VM, whose handler runs under
    ``mdevs_lock``; the VMM writes GR1 and the CC.

    The ioctl holds a file reference (``fdget``): a ``close`` of that file by the ``mdev`` actor
    removes the descriptor at once and waits, without locks, for the in-flight ioctls before the
    vfio core's release runs (in the kernel the release would run at the last ``fput``, i.e. in the
    ioctl's thread after it returned; same ordering, no lock is held by either)."""

    def __init__(self, world: Any) -> None:
        self._aqic_exits: set[str] = set()  #: vCPU actors whose KVM_RUN just exited for PQAP(AQIC)
        self._ioctl_users: dict[str, tuple[str, ...]] = {}  #: mdev name -> actors in its ioctl
        super().__init__(world)  # type: ignore[call-arg]

    # ------------------------------------------------------------------ KVM: exit to user space

    def kvm_call_hook(self, k: Any, vcpu: Any) -> PathGen:
        """``handle_pqap`` steps 9-10 replaced: → -EOPNOTSUPP (exit to user space with the PQAP
        intercept).  No hook, no ``pqap_hook_rwsem``."""
        self._aqic_exits.add(k.name)
        return True, -errno.EOPNOTSUPP
        yield  # pragma: no cover

    def vcpu_run_pqap(self, k: Any, vcpu: Any, gr0: int, gr1: int, gr2: int) -> PathGen:
        """``KVM_RUN`` (§5.0.1; it releases ``kvm->srcu`` and ``vcpu->mutex``), then, still in the
        ``vcpu`` operation, the VMM's handling of the PQAP exit."""
        r = yield from super().vcpu_run_pqap(k, vcpu, gr0, gr1, gr2)  # type: ignore[misc]
        if k.name not in self._aqic_exits:
            return r  # KVM answered (program check) or refused before step 9
        self._aqic_exits.discard(k.name)
        return (yield from self.vmm_pqap_exit(k, vcpu))

    @path("vmm_handle_pqap_exit")
    def vmm_pqap_exit(self, k: Any, vcpu: Any) -> PathGen:
        """The VMM: ``fdget`` of the first-opened file of an mdev for this VM → the AQIC ioctl, else
        status 0x01; ``W: GR1 := status`` (low word, high word zero); CC 3 if the response code ≠ 0."""
        users = self._ioctl_users
        mdev = yield FdGet(users, vcpu.vm)
        if mdev is None:
            yield Note("debug", "VMM: no vfio_ap device file open for this guest: response code 0x01")
            st = status(0x01)
            by = "vmm"
        else:
            st = yield from self.vfio_pqap_ioctl(k, mdev, vcpu)
            yield FdPut(users, mdev)
            by = "vfio_ap"
        r0, _r1, r2 = vcpu.regs
        gr1 = st.word()
        yield Write(vcpu, "regs", (r0, gr1, r2))
        if st.rc:
            vcpu.cc = 3
        return PqapResult(0, gr1, vcpu.cc, st.rc, None, by)

    @path("vfio_ap_irq_enable")
    def irq_enable(self, k: Any, q: Any, isc: int, vcpu: Any, kvm: Any = None) -> PathGen:
        """`latest`'s, called from the ioctl with ``kvm`` = the handler's ``mdev->kvm``: the NIB
        validation and the PV check (a step reading the named vCPU's PV state) each in a
        ``kvm->srcu(r)`` read section."""
        return (yield from self.irq_enable_alt(k, q, isc, vcpu, srcu_kvm=kvm))

    @path("vfio_device_fops_unl_ioctl")
    def vfio_pqap_ioctl(self, k: Any, mdev: Any, vcpu: Any) -> PathGen:
        """The vfio core passes the ioctl to the driver (no vfio-core lock)."""
        return (yield from self.pqap_ioctl(k, mdev, vcpu))

    @path("vfio_ap_mdev_aqic_ioctl")
    def pqap_ioctl(self, k: Any, mdev: Any, vcpu: Any) -> PathGen:
        """The hypothetical ``AQIC{GR0, GR1, GR2, vcpu id}`` ioctl: ``+mdevs_lock``; status 0x01;
        ``R: mdev->kvm`` NULL → out; q from ``qtable`` or out; IR → ``irq_enable`` (NIB validation and
        PV check in ``kvm->srcu`` read sections) else ``irq_disable``; ``-mdevs_lock``; → status."""
        gr0, gr1, _gr2 = vcpu.regs  # the registers the VMM passes (GR2 is read by irq_enable)
        apqn = gr0 & 0xFFFF
        w = self.w
        yield Acquire(w.mdevs_lock)
        st = status(0x01)
        kvm = yield Read(mdev, "kvm", "matrix_mdev->kvm")
        if kvm is None:
            yield Note("debug", f"vfio_ap: mdev {mdev.name} not in use")
        else:
            q = mdev.qtable.get(apqn)
            if q is None:
                yield Note("debug", f"vfio_ap: queue {format_apqn(apqn)} not bound to mdev {mdev.name}")
            elif gr1 & IR_BIT:
                st = yield from self.irq_enable(k, q, gr1 & 7, vcpu, kvm)
            else:
                st = yield from self.irq_disable(k, q)
        yield Release(w.mdevs_lock)
        return st

    # ------------------------------------------------------------------ set_kvm / unset_kvm: only D

    def alt_set_hook(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """No hook."""
        return 0
        yield  # pragma: no cover

    def alt_clear_hook(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        return
        yield  # pragma: no cover

    def alt_attach_check(self, k: Any, mdev: Any, kvm: Any) -> PathGen:
        """The -EPERM test: another mdev in ``mdev_list`` has ``R: m->kvm == kvm`` (under the locks)."""
        for m in self.w.matrix_dev.mdev_list:
            if m is mdev:
                continue
            mk = yield Read(m, "kvm", "matrix_mdev->kvm")
            if mk is kvm:
                return -errno.EPERM
        return 0

    # ------------------------------------------------------------------ the VMM's close

    @path("vfio_device_fops_release")
    def op_close(self, k: Any, actor: Any, op: Any) -> PathGen:
        """``close(2)``: the descriptor leaves the file table; the release waits for in-flight ioctls."""
        w = self.w
        mdev = w.files.get(actor.name)
        if mdev is None:
            return 0
        yield FdClose(actor.name)
        if self._ioctl_users.get(mdev.name):
            yield Block(IoctlsDone(self._ioctl_users, mdev.name))
        return (yield from self.vfio_close(k, mdev))


__all__ = ["AltBasePaths", "FairRwsemPaths", "FdClose", "FdGet", "FdPut", "IoctlsDone", "MdevsRwlock",
           "NoDataLock", "PqapView", "QueueLockPaths", "RWL_READERS_NODE", "RWL_WRITER_NODE", "RwSplitPaths",
           "SrcuPaths", "UnfairRwlockPaths", "UserspacePqapPaths"]
