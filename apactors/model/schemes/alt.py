"""The five hypothetical alternatives of the January 2022 design discussion (domain doc §5.12):
``alt-userspace-pqap``, ``alt-fair-rwsem``, ``alt-unfair-rwlock``, ``alt-srcu``, ``alt-queue-lock``.

Each is :class:`AltBase` (`latest` with §5.12 items 1-5, not registered) plus the mixins of its data
lock and PQAP path from :mod:`apactors.model.paths.alt`.  The mixins come first in the bases, so they
override `latest`'s methods by name wherever the E4 hierarchy defines them.
"""

from __future__ import annotations

from apactors.model.paths.alt import (AltBasePaths, FairRwsemPaths, QueueLockPaths, RwSplitPaths, SrcuPaths,
                                      UnfairRwlockPaths, UserspacePqapPaths)
from apactors.model.schemes.base import register
from apactors.model.schemes.latest import Latest

ALT_KERNEL = "hypothetical (January 2022 discussion of v17 09/15)"

_ALT_BASE_NOTES = """\
Alt base (§5.12 items 1-5) = latest with these substitutions; everything else is latest's (its notes):
* KVM mask functions M-A: set_masks/clear_masks take kvm->lock first and release it last; vfio_ap never
  takes kvm->lock itself, so every CRYCB write takes kvm->lock with guests_lock and D held.
* Update-lock functions: +guests_lock; +D / -D; -guests_lock.  The reads that only chose the VM lock
  are dropped (no R: mdev->kvm in for_mdev and its release, no R: q->matrix_mdev / ->kvm in for_queue);
  get_update_locks_by_apqn keeps its mdev_list walk (matrix reads under guests_lock only), since it
  returns the mdev, but has no R: m->kvm [I].
* cfg_remove and hot_plug_cfg (latest forms) lose R: m->kvm and +kvm->lock (item 1): per mdev +D ... -D
  (cfg_remove under on_config_changed's guests_lock; hot_plug_cfg starts with apm_filtered := ∅) [I].
* set_kvm (item 3, only if R: crycbd ≠ 0, else → 0 with nothing attached): +guests_lock;
  +pqap_hook_rwsem(w); hook set → -pqap_hook_rwsem(w), -guests_lock, -EPERM; W pqap_hook;
  -pqap_hook_rwsem(w); +D; kvm_get_kvm; W mdev->kvm; update_guest_apcb; -D; -guests_lock.
  unset_kvm: R: mdev->kvm (no lock); if kvm and crycbd: +guests_lock; hook := NULL under
  pqap_hook_rwsem(w); +D; clear_masks; reset_queues; W mdev->kvm := NULL; -D; -guests_lock;
  kvm_put_kvm.
* AP bus S-2 and AM-1 with ap_attr_mutex, the vfio core of v6.8/latest (kvm_ref_lock, VM reference per
  open device), kvm-vfio release, the 2025 AQIC error paths (GISC failure → 0x06), the reset check
  (0x04 done) and the whole-matrix filter: as latest.
* §9 update locks: guests_lock, D (any mode) and every kvm->lock; pqap_hook_rwsem, q->lock,
  pqap_srcu and rwl_mutex do not count.
"""

_RW_NOTES = """\
* Readers D(r): the PQAP handler (latest's body, under vcpu->mutex, kvm->srcu, pqap_hook_rwsem(r);
  nothing else protects a queue's IRQ state between two handlers), in_use (+guests_lock; +D(r)), the
  P phases.  Writers D(w): mdev_create's list add (+guests_lock; +D(w)), the mdev_remove body (one D(w)
  section under guests_lock), reset_ioctl, dma_unmap, the C1 and C2 phases.
* Update-lock functions take only guests_lock (held throughout each update path); D is taken per phase.
  Phase rule [modelling choice]: a condition on shared state is tested inside the phase it guards (the
  phase is entered, the test made under D); a phase guarded only by local values is skipped when it
  would have no steps; the C1 phase of a store is always entered (parse and checks are in it).
* The split, path by path:
  - assign_adapter/assign_domain: +ap_attr_mutex; +guests_lock; C1: parse, limit, "already assigned
    -> count", matrix write, reservation/sharing check (undo on error), link; P: whole-matrix filter,
    CRYCB if changed; C2 (changed and some adapter filtered): reset_queues_for_apids.
  - unassign_adapter/unassign_domain: C1: parse, limit, "not assigned -> count", matrix write, the qlist
    of queues in the guest (shadow reads), unlink_queue_fr_mdev; P: shadow bit clear and CRYCB if the id
    is in the shadow; C2 (qlist non-empty): reset_qlist, unlink_mdev_fr_queue of the qlist.
  - assign/unassign_control_domain: C1: parse, limit, matrix.adm write; P: filter_cdoms / shadow bit
    clear, CRYCB.
  - set_kvm: hook under pqap_hook_rwsem(w) (item 3); C1: kvm_get_kvm, W mdev->kvm; P: update_guest_apcb.
  - unset_kvm: hook := NULL; P: clear_masks; C2: reset_queues, W mdev->kvm := NULL; then kvm_put_kvm.
  - queue_probe: the mdev_list walk under guests_lock; C1 (an mdev holds the APQN): link_queue,
    R apm_add/aqm_add; P (nothing pending): filter, CRYCB if changed; C2: the resets of filtered adapters
    and W drvdata := q, which stays the last step as in latest [I: it is a C step, not a shadow step].
  - queue_remove: P: R q->matrix_mdev, the shadow test, APID clear, CRYCB (no C1: nothing of C1's kind
    comes first); C2: the resets (reset_queues_for_apids of the APID, or this queue if it is in the host
    configuration, with flush_work), unlink_queue_fr_mdev, W drvdata := NULL, free q.
  - cfg_remove: per mdev a P phase (D(r)) around the matrix tests and hot_unplug_cfg.
  - cfg_add: the adapter-type TAPQs outside D; C1: one D(w) section for every mdev's *_add reads/writes.
  - hot_plug_cfg: P: the matrix ∩ *_add reads, filter, filter_cdoms, CRYCB; C2 (some adapter
    filtered): reset_queues_for_apids.
  - on_config_changed's W matrix_dev->info and on_scan_complete's *_add clears stay under guests_lock
    only, as in latest (they are not among the update paths §5.12 splits) [I].
"""


class AltBase(AltBasePaths, Latest):
    """The common alt base (§5.12 items 1-5); not a scheme of its own."""

    id = "alt-base"
    base = "latest"
    kernel = ALT_KERNEL
    family = "alt"
    description = "latest with M-A masks, update locks without kvm->lock, alt set_kvm/unset_kvm"
    notes = _ALT_BASE_NOTES


@register
class AltUserspacePqap(UserspacePqapPaths, AltBase):
    id = "alt-userspace-pqap"
    base = "latest"
    kernel = ALT_KERNEL
    family = "alt"
    description = ("PQAP(AQIC) exits to user space; the vCPU thread calls a device ioctl on the first-opened "
                   "mdev of its VM, handled under mdevs_lock; no pqap_hook")
    notes = _ALT_BASE_NOTES + """\
alt-userspace-pqap (D = &matrix_dev->mdevs_lock):
* No pqap_hook and no pqap_hook_rwsem anywhere: the hook of every VM stays NULL.  set_kvm keeps only
  the D part of item 3: +guests_lock; +D; -EPERM if another mdev in mdev_list has R: m->kvm == kvm (tested
  under D before kvm_get_kvm, as v6.0 tests it under the update locks) [I]; kvm_get_kvm; W mdev->kvm;
  update_guest_apcb; -D; -guests_lock.  unset_kvm: +guests_lock; +D; clear_masks; reset_queues;
  W mdev->kvm := NULL; -D; -guests_lock; kvm_put_kvm.
* handle_pqap: checks 1-8 unchanged; steps 9-10 → -EOPNOTSUPP; KVM_RUN releases kvm->srcu and
  vcpu->mutex as usual.  A -EOPNOTSUPP of checks 1-3 ends the operation as in every scheme (§6.1 [U]);
  only the AQIC exit goes on to the VMM.
* The VMM (same vcpu actor, no lock): one step "fdget" looks up its file table (World.files, open order)
  for an open file of an mdev used with this guest (the guest of the mdev's actor), takes the first one
  opened and a reference to it; without such a file the status is 0x01.  The ioctl goes through the
  vfio core without a lock; "fdput" after it.
* A close of that file removes the descriptor at once and waits, without locks, until the ioctls in
  flight on it have dropped their references; then the vfio core's release (close_device) runs
  [modelling choice: the kernel runs the release at the last fput, in the ioctl's thread].
* The ioctl handler: +mdevs_lock; status 0x01; R mdev->kvm NULL → out; q from qtable or out; IR →
  irq_enable else irq_disable; -mdevs_lock.  No ECA_AIV test and no test that mdev->kvm is the vCPU's VM
  (the doc lists none; the ioctl cannot see the vCPU's ECA) [I].
* irq_enable: two kvm->srcu(R) read sections: around the NIB validation (before the pin; VM = the one
  the handler read) and around the PV check, which reads the named vCPU's PV state as a step (VM = R:
  q->matrix_mdev->kvm) [I: one section each]; otherwise latest's.
* The VMM writes GR1 := the status word (low 32 bits; high 32 bits zero, as vfio_ap writes it) in one
  step and sets CC 3 if the response code ≠ 0; the vcpu operation returns 0 (answered_by "vfio_ap", or
  "vmm" without a file).
"""


@register
class AltFairRwsem(FairRwsemPaths, RwSplitPaths, AltBase):
    id = "alt-fair-rwsem"
    base = "latest"
    kernel = ALT_KERNEL
    family = "alt"
    description = ("data lock &matrix_dev->mdevs_rwsem (fair rw_semaphore): PQAP, in_use and plug phases "
                   "read, config phases write")
    notes = _ALT_BASE_NOTES + """\
alt-fair-rwsem (D = &matrix_dev->mdevs_rwsem):
* A fair rw_semaphore (locks.RwSem): a reader waits for a writer holding it and for every writer that
  arrived before it; a writer waits until nobody holds it.  down_read is a non-recursive reader, down_write
  a writer.  It replaces world.mdevs_lock.
""" + _RW_NOTES


@register
class AltUnfairRwlock(UnfairRwlockPaths, RwSplitPaths, AltBase):
    id = "alt-unfair-rwlock"
    base = "latest"
    kernel = ALT_KERNEL
    family = "alt"
    description = ("data lock mdevs_rwlock, open-coded reader-preferring (rwl_mutex + wait queue); "
                   "same readers and writers as alt-fair-rwsem")
    notes = _ALT_BASE_NOTES + """\
alt-unfair-rwlock (D = mdevs_rwlock):
* State readers/writer (an object of the scheme), the mutex &matrix_dev->rwl_mutex, the wait queue
  rwl_wq; read_lock, read_unlock, write_lock, write_unlock are sub-paths exactly as §5.12's pseudo-code.
  Each wait is wait_event_cmd: test; while busy: prepare_to_wait, re-test, -rwl_mutex, sleep until
  woken, +rwl_mutex; finish_wait.  The tests are R steps of writer, and for a writer of readers only when
  writer is clear.  Readers wait only for a writer holder (writers can starve).
* Lockdep sees only rwl_mutex (held briefly, nothing taken under it).  For the waitdep checker the
  holding is annotated with two wait nodes [modelling choice, §5.12's "option for the checker"]:
  (wait)mdevs_rwlock.writer, held by the writer from write_lock to write_unlock and waited for by every
  read_lock and write_lock where it tests; (wait)mdevs_rwlock.readers, held by each reader and waited
  for by write_lock.
* §9: D counts as held while readers > 0 or writer is set (update_markers()/open_coded_markers());
  world.mdevs_lock is a stand-in that raises if a path takes it.
""" + _RW_NOTES


@register
class AltSrcu(SrcuPaths, AltBase):
    id = "alt-srcu"
    base = "latest"
    kernel = ALT_KERNEL
    family = "alt"
    description = ("PQAP reads a per-mdev snapshot {kvm, qtable} under SRCU &matrix_dev->pqap_srcu, no data "
                   "lock; updates publish and synchronize_srcu under mdevs_lock")
    notes = _ALT_BASE_NOTES + """\
alt-srcu (D = &matrix_dev->mdevs_lock):
* SRCU domain &matrix_dev->pqap_srcu; snapshot objects {kvm, qtable} built locally from mdev->kvm and
  qtable (both written under D, which the publisher holds).  publish = alloc; W mdev->pqap_view := new;
  block: synchronize_srcu(pqap_srcu); free the old snapshot.
* Published right after every change, under the path's locks: each link_queue and each
  unlink_queue_fr_mdev call (so once per queue), set_kvm after W mdev->kvm (before the CRYCB write),
  unset_kvm after W mdev->kvm := NULL.  mdev_remove withdraws the view after its q->matrix_mdev writes
  (W pqap_view := NULL, synchronize, free the old one) [I: the mdev goes away, no new snapshot].
  unlink_mdev_fr_queue changes neither field and publishes nothing; reset_ioctl publishes nothing.
* PQAP handler (K-B around it unchanged): AIV test (§6.2 #1); srcu_read_lock; R pqap_hook (§6.2 #3,
  needed to find the mdev; NULL → 0x01) [I]; R mdev->pqap_view; NULL or R v->kvm NULL → 0x01; R
  v->qtable, q or 0x01; irq_enable uses v.kvm in place of R: q->matrix_mdev->kvm (the NIB is pinned
  through q->matrix_mdev's device and free_aqic_resources reads q->matrix_mdev->kvm, as latest);
  irq_disable as latest; W GR1; srcu_read_unlock.  No D.
* queue_remove: the unplug (shadow, CRYCB) and the choice of queues to reset as latest (the list part
  of reset_queues_for_apids, or this queue if it is in the host configuration); then
  unlink_queue_fr_mdev (publish, synchronize); then the resets (reset_qlist, or reset_queue and
  flush_work); W drvdata := NULL; free q [reading of "frees q and resets it only after its synchronize"].
* Lockdep: srcu_read_lock is a recursive read of &matrix_dev->pqap_srcu; synchronize_srcu is the
  checker's momentary write acquisition.
"""


@register
class AltQueueLock(QueueLockPaths, AltBase):
    id = "alt-queue-lock"
    base = "latest"
    kernel = ALT_KERNEL
    family = "alt"
    description = ("per-queue mutex &q->lock guards the IRQ state; PQAP takes only q->lock and reads the "
                   "CRYCB without kvm->lock; D = mdevs_lock")
    notes = _ALT_BASE_NOTES + """\
alt-queue-lock (D = &matrix_dev->mdevs_lock):
* &q->lock: one mutex per queue object, one lockdep class, made with the object in queue_probe.
* PQAP handler (no D, no re-read of the hook): AIV test; find_queue (ap_queues_lock, drvdata) or 0x01;
  +q->lock (dereferences q: a freed q is a freed-object access); the CRYCB read without kvm->lock as two
  R steps of the CRYCB masks (apm from the first; aqm from the second, read only if the APID is in apm)
  [model: the CRYCB masks are one field]; R q->matrix_mdev, R mdev->kvm = this vCPU's VM, else 0x01;
  irq_enable / irq_disable as latest; -q->lock; W GR1 at "out".
* +q->lock ... -q->lock brackets at the call sites of every reset_queue, flush_work and irq_disable
  outside the handler (reset_queues and reset_qlist: one bracket per call in each of their two loops;
  dma_unmap; queue_remove), taken under D (order D → q->lock); free_aqic_resources runs only inside
  those brackets (reset_queue's rc 0x03, irq_disable), in the handler, or in the reset-check work,
  which takes no lock.
* queue_remove: in the guest → unplug (shadow, CRYCB; q->lock is not held across the CRYCB write) and
  reset_queues_for_apids (each queue bracketed by its own lock, so two q->locks are never held), then
  +q->lock; otherwise R info, +q->lock, reset_queue and flush_work if the queue is in the host
  configuration.  Then unlink_queue_fr_mdev and W drvdata := NULL under q->lock, released just before q
  is freed.
"""


__all__ = ["ALT_KERNEL", "AltBase", "AltFairRwsem", "AltQueueLock", "AltSrcu", "AltUnfairRwlock",
           "AltUserspacePqap"]
