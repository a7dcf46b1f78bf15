"""The modelled shared state that the race and stale-read checkers watch (domain doc §3).

A *shared variable* is one field of one kind of model object, named as the kernel names it in
findings (``matrix_mdev->shadow_apcb.apm``, ``kvm->arch.crypto.pqap_hook``).  Every instance (the field of
one object) is tracked separately; the variable *name* (never the instance) goes into finding keys, so
the same defect on another mdev or another queue is the same finding.

Rules:

* Only the fields declared here are checked.  Everything else a path reads or writes is either private
  to one task (a vCPU's registers), protected by a lock the model does not show (the vfio pin counts,
  the GISA reference counts, the VM reference count — atomics or internal spinlocks in the kernel), or
  machine state (the AP hardware).
* ``decision`` variables are those a path *decides on* (is the queue in the CRYCB or the matrix, is
  the hook set, is ``kvm`` set, is the queue linked): reading one is a *check* for the stale-read
  checker.  ``pointer`` variables hold an object pointer: using the object read (dereferencing it) is
  an *act* on that check, and a NULL read of one explains a later NULL-dereference crash.
* ``sync`` fields are the flags that the engine's ``Block`` conditions wait on (device open count,
  SIE state, work state): a ``Block`` that returns is ordered after the last write of those fields of
  the objects its condition names (happens-before, not a shared variable).
* An ``Update`` step is an atomic read-modify-write; for the race checker it is a write.  An update
  function that reads other objects inside its step (``copy_masks`` reads the shadow APCB while it
  writes the CRYCB) declares those reads in :data:`IMPLICIT_READS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from apactors.model.paths.common import copy_masks


@dataclass(frozen=True)
class SharedVar:
    """One declared shared variable: (object kind, field) and the name findings use."""

    kind: str  #: model object kind (``KObject.kind``)
    field: str  #: attribute name in the model
    name: str  #: the kernel's name for it, used in findings and keys
    protects: str  #: who is meant to protect it (domain doc §2.1/§3), for explanations
    decision: bool = False
    pointer: bool = False
    extra: bool = False  #: declared beyond the issue's list (still domain-doc §3 shared state)


_UPDATE_LOCKS = "the update locks (guests_lock, the VM's kvm->lock, mdevs_lock; pre-E4 &matrix_dev->lock)"
_DATA_LOCK = "mdevs_lock (pre-E4 &matrix_dev->lock)"

#: every declared variable; matrix-kind fields are declared under two roles ("matrix", "shadow_apcb")
VARIABLES: tuple[SharedVar, ...] = (
    SharedVar("crycb", "masks", "kvm->arch.crypto.crycb", "kvm->lock, with every vCPU blocked out of SIE",
              decision=True),
    SharedVar("matrix", "apm", "matrix_mdev->matrix.apm", _UPDATE_LOCKS, decision=True),
    SharedVar("matrix", "aqm", "matrix_mdev->matrix.aqm", _UPDATE_LOCKS, decision=True),
    SharedVar("matrix", "adm", "matrix_mdev->matrix.adm", _UPDATE_LOCKS, decision=True),
    SharedVar("shadow", "apm", "matrix_mdev->shadow_apcb.apm", _UPDATE_LOCKS, decision=True),
    SharedVar("shadow", "aqm", "matrix_mdev->shadow_apcb.aqm", _UPDATE_LOCKS, decision=True),
    SharedVar("shadow", "adm", "matrix_mdev->shadow_apcb.adm", _UPDATE_LOCKS, decision=True),
    SharedVar("vm", "pqap_hook", "kvm->arch.crypto.pqap_hook",
              "pqap_hook_rwsem (write mode to change it; v5.15+), else &matrix_dev->lock", decision=True,
              pointer=True),
    SharedVar("mdev", "kvm", "matrix_mdev->kvm", _UPDATE_LOCKS, decision=True, pointer=True),
    SharedVar("mdev", "kvm_busy", "matrix_mdev->kvm_busy", "&matrix_dev->lock", decision=True),
    SharedVar("mdev", "qtable", "matrix_mdev->qtable", _UPDATE_LOCKS, decision=True),
    SharedVar("q", "matrix_mdev", "q->matrix_mdev", _UPDATE_LOCKS, decision=True, pointer=True),
    SharedVar("q", "saved_isc", "q->saved_isc", _DATA_LOCK, decision=True),
    SharedVar("q", "saved_iova", "q->saved_iova", _DATA_LOCK, decision=True),
    SharedVar("q", "saved_pfn", "q->saved_pfn", _DATA_LOCK, decision=True),
    SharedVar("mdev", "apm_add", "matrix_mdev->apm_add", "guests_lock", decision=True),
    SharedVar("mdev", "aqm_add", "matrix_mdev->aqm_add", "guests_lock", decision=True),
    SharedVar("mdev", "adm_add", "matrix_mdev->adm_add", "guests_lock", decision=True),
    SharedVar("matrix_dev", "info", "matrix_dev->info", "guests_lock (writers) / mdevs_lock (readers)",
              decision=True),
    SharedVar("ap_perms", "apm", "ap_perms.apm", "ap_perms_mutex / ap_attr_mutex", decision=True),
    SharedVar("ap_perms", "aqm", "ap_perms.aqm", "ap_perms_mutex / ap_attr_mutex", decision=True),
    # Beyond the list, still shared state of domain doc §3:
    SharedVar("q", "reset_status", "q->reset_status", _DATA_LOCK + " (the reset-check work: its flusher's)",
              decision=True, extra=True),
    SharedVar("q", "reset_rc", "q->reset_rc", _DATA_LOCK, decision=True, extra=True),
    SharedVar("matrix_dev", "mdev_list", "matrix_dev->mdev_list", "guests_lock and/or mdevs_lock",
              decision=True, extra=True),
    SharedVar("qdev", "drvdata", "dev_get_drvdata(&qdev->ap_dev.device)", "device_lock(qdev)",
              decision=True, pointer=True, extra=True),
    SharedVar("group", "kvm", "group->kvm", "group_lock / kvm_ref_lock (vfio core)", decision=True,
              pointer=True, extra=True),
    SharedVar("vdev", "kvm", "vdev->kvm", "dev_set->lock (vfio core)", decision=True, pointer=True,
              extra=True),
)

#: (kind, field) -> SharedVar; matrix-kind objects resolve through :data:`_MATRIX_ROLES`
DECLARED: dict[tuple[str, str], SharedVar] = {(v.kind, v.field): v for v in VARIABLES}

#: (field, is_shadow) -> SharedVar for ApMatrix objects
_MATRIX_ROLES: dict[tuple[str, bool], SharedVar] = {
    (v.field, v.kind == "shadow"): v for v in VARIABLES if v.kind in ("matrix", "shadow")
}

#: fields that ``Block`` conditions wait on (see the module docstring)
SYNC_FIELDS: frozenset[tuple[str, str]] = frozenset({
    ("vdev", "open_count"), ("vcpu", "in_sie"), ("vcpu", "prog_block_sie"), ("ap_bus", "scan_running"),
    ("ap_bus", "scan_task"),
    # the driver core's device list (a klist under its own spinlock): finding a device on it orders the
    # finder after the probe that put it there
    ("qdev", "on_driver_list"),
})

#: update function -> the (object, field) pairs it reads inside its step, from the Update's ``arg``
IMPLICIT_READS: dict[Callable[..., Any], Callable[[Any], Iterable[tuple[Any, str]]]] = {
    copy_masks: lambda arg: ((arg[0], "apm"), (arg[0], "aqm"), (arg[0], "adm")),
}


def resolve(obj: Any, field: str) -> SharedVar | None:
    """The declared variable for ``obj.field``, or None if that field is not modelled shared state."""
    kind = getattr(obj, "kind", None)
    if kind == "matrix":
        owner = obj.owner
        return _MATRIX_ROLES.get((field, getattr(owner, "shadow_apcb", None) is obj))
    return DECLARED.get((kind, field))


def instance_name(obj: Any) -> str:
    """The printable instance of a variable: the object that owns it (``mdev(m0)``, ``vm(g0)``)."""
    owner = getattr(obj, "owner", None) or obj
    return getattr(owner, "vname", repr(owner))


def variable_label(var: SharedVar, obj: Any) -> str:
    """``matrix_mdev->shadow_apcb.apm of mdev(m0)``."""
    return f"{var.name} of {instance_name(obj)}"


__all__ = ["DECLARED", "IMPLICIT_READS", "SYNC_FIELDS", "SharedVar", "VARIABLES", "instance_name", "resolve",
           "variable_label"]
