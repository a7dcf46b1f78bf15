"""Shared pieces of the code paths: update functions, wait conditions, pin operations, results.

Update functions (``fn(old, arg) -> new``) are the bodies of atomic ``Update`` steps; they never
mutate ``old`` (values in fields are immutable or replaced).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from apactors.model.masks import Mask
from apactors.model.ops import Cond, Oops, Update, _check

PAGE_SIZE = 4096
PAGE_SHIFT = 12
GUEST_MEMORY = 1 << 30  #: guest memory is [0, 1 GiB) (§4.2)
GIB_NISC = 3  #: the host ISC kvm_s390_gisc_register returns (the GIB alert ISC) [modelling value]
KVM_MAX_ISC = 7


# --------------------------------------------------------------------------- update functions

def mask_with(old: Mask, i: int) -> Mask:
    return old.with_id(i)


def mask_without(old: Mask, i: int) -> Mask:
    return old.without_id(i)


def mask_minus(old: Mask, other: Mask) -> Mask:
    return old - other


def tuple_append(old: tuple, x: Any) -> tuple:
    return old + (x,)


def tuple_remove(old: tuple, x: Any) -> tuple:
    return tuple(y for y in old if y is not x)


def qtable_add(old: dict, q: Any) -> dict:
    """``hash_add(mdev->qtable, q)``; the dict is kept in APQN order (deterministic iteration)."""
    new = dict(old)
    new[q.apqn] = q
    return dict(sorted(new.items()))


def qtable_del(old: dict, q: Any) -> dict:
    """``hash_del(q)``: unlinks this queue object if it is the one linked for its APQN."""
    if old.get(q.apqn) is not q:
        return old
    new = dict(old)
    del new[q.apqn]
    return new


def inc(old: int, n: int = 1) -> int:
    return old + n


def dec(old: int, n: int = 1) -> int:
    return old - n


def count_add(old: dict, key: int) -> dict:
    new = dict(old)
    new[key] = new.get(key, 0) + 1
    return new


def count_sub(old: dict, key: int) -> dict:
    """Decrement a reference count; it may go negative (an unbalanced release is a finding)."""
    new = dict(old)
    n = new.get(key, 0) - 1
    if n:
        new[key] = n
    else:
        new.pop(key, None)
    return new


def copy_masks(old: tuple, arg: tuple) -> tuple:
    """The CRYCB write of ``kvm_arch_crypto_set_masks``: the source masks are read during the step.

    ``arg = (src, format2)``: ``src`` has ``apm``/``aqm``/``adm`` (the shadow APCB or, pre-E4, the
    matrix); a freed source is a freed-object access at this step.  Formats 0/1 keep APCB0's widths.
    """
    src, format2 = arg
    owner = src.owner
    if owner.freed:
        raise Oops("use-after-free", f"{src.vname} read by kvm_arch_crypto_set_masks", owner)
    if format2:
        return (src.apm, src.aqm, src.adm)
    return (src.apm.truncated(64), src.aqm.truncated(16), src.adm.truncated(16))


EMPTY_MASKS = (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY)


def clear_all(old: Any, arg: Any) -> Any:
    return EMPTY_MASKS


def range_add(old: tuple, rng: tuple[int, int]) -> tuple:
    return old + (rng,)


def group_join(old: tuple, arg: tuple) -> tuple:
    """kvm-vfio group add at mdev creation [modelling choice]: refused once the device was released."""
    group, kvm_vfio = arg
    if kvm_vfio.released:
        return old
    return old + (group,)


# --------------------------------------------------------------------------- pin operations

def page_unmapped(vm: Any, page: int) -> bool:
    addr = page << PAGE_SHIFT
    for start, end in vm.unmapped:
        if start <= addr < end:
            return True
    return False


class PinPage(Update):
    """``vfio_pin_pages(&mdev->vdev, iova, 1, …)``: one step, an update of ``vdev.pins``.

    Result: the number of pages pinned (1, or 0 when the page is outside guest memory, DMA-unmapped,
    or the device has no IOMMU container).  Dereferences the vfio device (a freed mdev is caught).
    """

    __slots__ = ()

    def __init__(self, vdev: Any, page: int, expr: str | None = None) -> None:
        super().__init__(vdev, "pins", count_add, page, expr)

    def perform(self, k: Any) -> int:
        vdev = self.obj
        if vdev is None or vdev.owner.freed:
            _check(vdev, "pins", self.expr)
        vm = vdev.container
        page = self.arg
        if vm is None or (page << PAGE_SHIFT) >= GUEST_MEMORY or page_unmapped(vm, page):
            return 0
        vdev.pins = count_add(vdev.pins, page)
        return 1


class UnpinPage(Update):
    """``vfio_unpin_pages(&mdev->vdev, iova, 1)``: drops one pin of the page (may go negative)."""

    __slots__ = ()

    def __init__(self, vdev: Any, page: int, expr: str | None = None) -> None:
        super().__init__(vdev, "pins", count_sub, page, expr)


# --------------------------------------------------------------------------- wait conditions

class SieAllowed(Cond):
    """``spin: while PROG_BLOCK_SIE`` before SIE entry (§5.0.1)."""

    __slots__ = ("vcpu",)
    what = "PROG_BLOCK_SIE cleared"

    def __init__(self, vcpu: Any) -> None:
        self.vcpu = vcpu

    def ready(self, k: Any) -> bool:
        return not self.vcpu.prog_block_sie

    def describe(self) -> str:
        return f"vcpu {self.vcpu.name}: PROG_BLOCK_SIE cleared (kvm_s390_vcpu_unblock_all)"

    def blockers(self, k: Any) -> list[str]:
        return list(self.vcpu.vm.lock.holders)


class OutOfSie(Cond):
    """``spin:`` in ``kvm_s390_vcpu_block_all`` / the VSIE_RESTART kick: until the vCPU left SIE."""

    __slots__ = ("vcpu",)
    what = "vCPU out of SIE"

    def __init__(self, vcpu: Any) -> None:
        self.vcpu = vcpu

    def ready(self, k: Any) -> bool:
        return not self.vcpu.in_sie

    def describe(self) -> str:
        return f"vcpu {self.vcpu.name} out of SIE"

    def blockers(self, k: Any) -> list[str]:
        return [self.vcpu.run_by] if self.vcpu.run_by else []


class DeviceClosed(Cond):
    """``block:`` in ``vfio_unregister_group_dev`` until the device is no longer open (§2.2)."""

    __slots__ = ("mdev",)
    what = "device closed"

    def __init__(self, mdev: Any) -> None:
        self.mdev = mdev

    def ready(self, k: Any) -> bool:
        vdev = self.mdev.vdev
        return vdev.open_count == 0 and vdev.file_refs == 0

    def describe(self) -> str:
        return f"vfio device {self.mdev.name} closed by its user"

    def blockers(self, k: Any) -> list[str]:
        mdev = self.mdev
        return [a for a, m in k.world.files.items() if m is mdev]


class WorkDone(Cond):
    """``block: flush_work(w)``: until the runs of ``w`` queued or running at the flush have finished.

    The target is taken when the condition is made (right after the step before the wait): a pending
    run and a running run must both complete.  An idle item also satisfies it (so the wait is correct
    even if the engine does not count ``completions``).
    """

    __slots__ = ("item", "target")
    what = "work item finished"

    def __init__(self, item: Any) -> None:
        self.item = item
        need = (1 if item.running else 0) + (1 if item.pending else 0)
        self.target = item.completions + need

    def ready(self, k: Any) -> bool:
        item = self.item
        return not (item.pending or item.running) or item.completions >= self.target

    def describe(self) -> str:
        return f"flush_work({self.item.name})"

    def blockers(self, k: Any) -> list[str]:
        w = self.item.worker
        return [w] if w else []


# --------------------------------------------------------------------------- results

class PqapResult(NamedTuple):
    """Result of a ``vcpu`` operation (§5.0.1): the handler's return value, GR1 and the CC after the
    intercept, the response code the answer carries, and the program interrupt injected (if any)."""

    ret: int
    gr1: int
    cc: int | None
    rc: int | None  #: response code of the AQIC answer; None when no answer was written
    pgm: str | None = None
    answered_by: str | None = None  #: "vfio_ap" (low half of GR1) or "kvm" (high half, no shift)


__all__ = [
    "DeviceClosed", "EMPTY_MASKS", "GIB_NISC", "GUEST_MEMORY", "OutOfSie", "PAGE_SHIFT", "PAGE_SIZE",
    "PinPage", "PqapResult", "SieAllowed", "UnpinPage", "WorkDone", "clear_all", "copy_masks",
    "count_add", "count_sub", "dec", "group_join", "inc", "mask_minus", "mask_with", "mask_without",
    "page_unmapped", "qtable_add", "qtable_del", "range_add", "tuple_append", "tuple_remove",
]
