"""vfio core, mdev core and kvm-vfio wrappers of the notifier era (pre-E4: domain doc §4.3, §5.0.5,
§5.1, §5.4).

The VM pointer reaches vfio_ap through the vfio *group notifier* (``VFIO_GROUP_NOTIFY_SET_KVM``):

* the driver's open callback registers it (``+notifier_rwsem(w)``; add; ``-notifier_rwsem(w)``) and, if
  the group has a VM, the vfio core then calls the chain once under ``notifier_rwsem(r)`` with that VM;
* ``kvm-vfio-release`` writes the group's kvm pointer to NULL and calls every registered notifier of the
  group with NULL under ``notifier_rwsem(r)`` (the doc's modelling choice for the notifier era: the
  detach the kvm-vfio device makes when the VM is destroyed runs at once);
* the driver's ``release`` / ``close_device`` unregisters it (``notifier_rwsem(w)``).

The vfio core ignores the notifiers' results [I, §5.0.5]; an open always succeeds (§4.3).

Representation [modelling choice]: ``group.notifiers`` holds the registered notifier blocks as
``(kind, mdev)`` pairs: ``("group", mdev)`` for the group notifier and ``("iommu", mdev)`` for the IOMMU
(DMA-unmap) notifier, which in the kernel sits on the container's chain with its own rwsem (not
modelled, §2.1) — keeping it here only records whether it is registered.  Each registration and
unregistration is one ``Update`` step of that field.

The device reference a vfio device file holds (what ``vfio_del_group_dev`` waits for) is the vdev's
``open_count``: written to 1 by one step before the driver's open callback and to 0 by one step after
its release callback (v5.15: under ``dev_set->lock``, as the open count).
"""

from __future__ import annotations

from typing import Any

from apactors.model.locks import READ, WRITE
from apactors.model.ops import Acquire, Block, Read, Release, Update, Write
from apactors.model.paths.common import DeviceClosed, range_add
from apactors.model.paths.vfio_core import VfioCoreE4Paths
from apactors.model.schemes.base import PathGen, path

GROUP_NB = "group"  #: kind of the group (SET_KVM) notifier block
IOMMU_NB = "iommu"  #: kind of the IOMMU (DMA_UNMAP) notifier block


def nb_add(old: tuple, nb: tuple) -> tuple:
    """Update function: register the notifier block ``nb = (kind, mdev)``."""
    return old + (nb,)


def nb_del(old: tuple, nb: tuple) -> tuple:
    """Update function: unregister ``nb`` (matched by kind and mdev identity)."""
    kind, mdev = nb
    return tuple(x for x in old if not (x[0] == kind and x[1] is mdev))


def has_nb(group: Any, kind: str, mdev: Any) -> bool:
    for x in group.notifiers:
        if x[0] == kind and x[1] is mdev:
            return True
    return False


class VfioCoreNotifierPaths(VfioCoreE4Paths):
    """Notifier-era wrappers (`v5.10`, `v5.11`, `v5.12`, `v15-draft`, `pqap-v4-draft`: no vfio-core lock
    around open/close [I]; `v5.15` overrides :meth:`vfio_open`/:meth:`vfio_close` with ``dev_set->lock``).

    ``mdev_device_create`` and ``mdev_device_remove`` are inherited (same modelling choices as E4); the
    wait of the removal has no ``request`` callback in the notifier era.  Driver callbacks used:
    ``mdev_open`` (v5.15: ``open_device``), ``mdev_release`` (v5.15: ``close_device``),
    ``group_notifier(k, mdev, kvm)``, ``dma_unmap``, ``mdev_create``, ``mdev_remove``.
    """

    # ------------------------------------------------------------------ notifier registration §5.0.5

    @path("vfio_register_notifier")
    def register_group_notifier(self, k: Any, mdev: Any) -> PathGen:
        """``vfio_register_group_notifier``: register; if the group has a VM, call the chain once with
        ``SET_KVM`` and the VM under ``notifier_rwsem(r)``; the result is ignored."""
        group = mdev.group
        rwsem = group.notifier_rwsem
        yield Acquire(rwsem, WRITE)
        yield Update(group, "notifiers", nb_add, (GROUP_NB, mdev), "group->notifier")
        yield Release(rwsem, WRITE)
        kvm = yield Read(group, "kvm", "group->kvm")
        if kvm is not None:
            yield from self.group_notifier_call_chain(k, group, kvm)

    @path("vfio_unregister_notifier")
    def unregister_group_notifier(self, k: Any, mdev: Any) -> PathGen:
        group = mdev.group
        rwsem = group.notifier_rwsem
        yield Acquire(rwsem, WRITE)
        yield Update(group, "notifiers", nb_del, (GROUP_NB, mdev), "group->notifier")
        yield Release(rwsem, WRITE)

    @path("vfio_register_notifier")
    def register_iommu_notifier(self, k: Any, mdev: Any) -> PathGen:
        """The IOMMU notifier: its chain's rwsem is not modelled (§2.1); one step."""
        yield Update(mdev.group, "notifiers", nb_add, (IOMMU_NB, mdev), "iommu->notifier")

    @path("vfio_unregister_notifier")
    def unregister_iommu_notifier(self, k: Any, mdev: Any) -> PathGen:
        yield Update(mdev.group, "notifiers", nb_del, (IOMMU_NB, mdev), "iommu->notifier")

    @path("blocking_notifier_call_chain")
    def group_notifier_call_chain(self, k: Any, group: Any, kvm: Any) -> PathGen:
        """``+notifier_rwsem(r)``; every registered group notifier with ``SET_KVM`` and ``kvm``;
        ``-notifier_rwsem(r)``.  The chain is read under the read lock (writers hold it for write)."""
        rwsem = group.notifier_rwsem
        yield Acquire(rwsem, READ)
        for kind, mdev in group.notifiers:
            if kind == GROUP_NB:
                yield from self.group_notifier(k, mdev, kvm)
        yield Release(rwsem, READ)

    # ------------------------------------------------------------------ open / close (§4.3)

    @path("vfio_group_get_device_fd")
    def vfio_open(self, k: Any, mdev: Any) -> PathGen:
        """No vfio-core lock [I]: the device reference of the new file, then the driver's open
        callback; the open always succeeds (§4.3)."""
        vdev = mdev.vdev
        yield Write(vdev, "open_count", 1, "vfio_device reference (device file)")
        yield from self.mdev_open(k, mdev)
        return 0

    @path("vfio_mdev_release")
    def vfio_close(self, k: Any, mdev: Any) -> PathGen:
        """No vfio-core lock [I]: the driver's release callback, then the file's device reference is
        dropped."""
        vdev = mdev.vdev
        yield from self.mdev_release(k, mdev)
        yield Write(vdev, "open_count", 0, "vfio_device reference (device file)")
        return 0

    # ------------------------------------------------------------------ DMA unmap

    @path("vfio_dma_do_unmap")
    def vfio_dma_unmap(self, k: Any, mdev: Any, iova: int, length: int) -> PathGen:
        """The range becomes unmapped (later pins fail), then the IOMMU notifier chain runs the
        driver's ``dma_unmap`` if its notifier is registered [modelling choice: for every unmap, as the
        E4 wrapper; what the backend does afterwards is not modelled]."""
        vm = mdev.vdev.container
        if vm is not None:
            yield Update(vm, "unmapped", range_add, (iova, iova + length), "iommu->dma_list")
        if has_nb(mdev.group, IOMMU_NB, mdev):
            yield from self.dma_unmap(k, mdev, iova, length)
        return 0

    # ------------------------------------------------------------------ kvm-vfio (§4.3 pre-E4)

    @path("kvm_vfio_destroy")
    def kvm_vfio_release(self, k: Any, vm: Any) -> PathGen:
        """Modelling choice of §4.3: the detach runs at once.  For each group: ``W: group kvm :=
        NULL``; the chain with NULL under ``notifier_rwsem(r)``; then ``kvm_put_kvm`` (the device
        file's reference).  No ``kvm->lock``."""
        dev = vm.kvm_vfio
        yield Write(dev, "released", True, "kvm_device file")
        for group in dev.groups:
            yield from self.vfio_group_set_kvm(k, group, None)
        yield from self.kvm_put_kvm(k, vm)
        return 0

    @path("vfio_group_set_kvm")
    def vfio_group_set_kvm(self, k: Any, group: Any, kvm: Any) -> PathGen:
        yield Write(group, "kvm", kvm, "group->kvm")
        yield from self.group_notifier_call_chain(k, group, kvm)

    # ------------------------------------------------------------------ mdev core: remove

    @path("vfio_del_group_dev")
    def vfio_unregister_group_dev(self, k: Any, mdev: Any) -> PathGen:
        """``block:`` until the device is no longer open; no ``request`` callback [I] (§4.3)."""
        if mdev.vdev.open_count:
            yield Block(DeviceClosed(mdev))


class VfioCoreDevSetPaths(VfioCoreNotifierPaths):
    """`v5.15` (eb0feefd4c02, ``vfio_register_group_dev``): open/close under ``dev_set->lock`` with the
    open count; the driver callbacks are ``open_device`` / ``close_device``; the group notifier is
    still how the VM arrives."""

    @path("vfio_group_get_device_fd")
    def vfio_open(self, k: Any, mdev: Any) -> PathGen:
        """``+dev_set->lock``; open count 0 → 1; ``open_device``; ``-dev_set->lock``; → 0."""
        vdev = mdev.vdev
        yield Acquire(vdev.dev_set_lock)
        yield Write(vdev, "open_count", 1, "device->open_count")
        yield from self.open_device(k, mdev)
        yield Release(vdev.dev_set_lock)
        return 0

    @path("vfio_device_fops_release")
    def vfio_close(self, k: Any, mdev: Any) -> PathGen:
        """``+dev_set->lock``; ``close_device``; open count → 0; ``-dev_set->lock``."""
        vdev = mdev.vdev
        yield Acquire(vdev.dev_set_lock)
        yield from self.close_device(k, mdev)
        yield Write(vdev, "open_count", 0, "device->open_count")
        yield Release(vdev.dev_set_lock)
        return 0

    @path("vfio_unregister_group_dev")
    def vfio_unregister_group_dev(self, k: Any, mdev: Any) -> PathGen:
        """``block:`` until the device is no longer open; no ``request`` callback [I] (§5.4)."""
        if mdev.vdev.open_count:
            yield Block(DeviceClosed(mdev))


__all__ = ["GROUP_NB", "IOMMU_NB", "VfioCoreDevSetPaths", "VfioCoreNotifierPaths", "has_nb", "nb_add",
           "nb_del"]
