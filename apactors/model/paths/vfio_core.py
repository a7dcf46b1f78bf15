"""vfio core, mdev core and kvm-vfio wrappers around the driver callbacks (domain doc §4.3, §5.0.5,
§5.5) in the E4 form of `v6.0`: the group's kvm pointer is guarded by ``group_lock``, the first open
copies it into ``vdev->kvm`` without a VM reference, and the kvm-vfio device has no ``release``
callback (modelling choice of §4.3: the group detach runs at once, without ``kvm->lock``).

`v6.2-rc` (§5.6) overrides ``kvm_vfio_release`` and `v6.8` (§5.7, ``kvm_ref_lock``) ``vfio_open``,
``vfio_close`` and ``vfio_file_set_kvm`` in :mod:`apactors.model.schemes.e4`.
"""

from __future__ import annotations

from typing import Any

from apactors.model.ops import Acquire, Block, Release, Update, Write
from apactors.model.paths.common import DeviceClosed, dec, group_join, inc, range_add
from apactors.model.schemes.base import PathGen, path


class VfioCoreE4Paths:
    """Wrappers of the vfio core (open/close/dma-unmap/unregister), the mdev core (create/remove) and
    the kvm-vfio device (release).  Driver callbacks are ``open_device``, ``close_device``,
    ``dma_unmap``, ``request``, ``mdev_create``, ``mdev_remove`` of the driver mixin."""

    # ------------------------------------------------------------------ open / close

    @path("vfio_device_group_open")
    def vfio_open(self, k: Any, mdev: Any) -> PathGen:
        """`v6.0`: ``+group_lock; +dev_set->lock``; first open: ``W: vdev->kvm := group kvm`` (no VM
        reference); open count 0 → 1; ``open_device``; a refusal: open count back to 0 and
        ``W: vdev->kvm := NULL``; ``-dev_set->lock; -group_lock``; → rc."""
        group = mdev.group
        vdev = mdev.vdev
        yield Acquire(group.group_lock)
        yield Acquire(vdev.dev_set_lock)
        rc = 0
        if vdev.open_count == 0:
            yield Write(vdev, "kvm", group.kvm, "device->kvm")  # the group's kvm, read under group_lock
            yield Write(vdev, "open_count", 1, "device->open_count")
            rc = yield from self.open_device(k, mdev)
            if rc:
                yield Write(vdev, "open_count", 0, "device->open_count")
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
        """`v6.0`: ``+group_lock; +dev_set->lock``; last close: ``close_device``; open count → 0;
        ``W: vdev->kvm := NULL``; ``-dev_set->lock; -group_lock``."""
        group = mdev.group
        vdev = mdev.vdev
        yield Acquire(group.group_lock)
        yield Acquire(vdev.dev_set_lock)
        last = vdev.open_count == 1
        if last:
            yield from self.close_device(k, mdev)
        yield Update(vdev, "open_count", dec, 1, "device->open_count")
        if last:
            yield Write(vdev, "kvm", None, "device->kvm")
        yield Release(vdev.dev_set_lock)
        yield Release(group.group_lock)
        yield Update(vdev, "file_refs", dec, 1, "device file's registration reference")  # last step
        return 0

    # ------------------------------------------------------------------ DMA unmap

    @path("vfio_dma_do_unmap")
    def vfio_dma_unmap(self, k: Any, mdev: Any, iova: int, length: int) -> PathGen:
        """The range becomes unmapped for the rest of the schedule (later pins of its pages fail)
        [modelling choice: marked before the driver callback runs], then the driver's callback."""
        vm = mdev.vdev.container
        if vm is not None:
            yield Update(vm, "unmapped", range_add, (iova, iova + length), "iommu->dma_list")
        yield from self.dma_unmap(k, mdev, iova, length)
        return 0

    # ------------------------------------------------------------------ kvm-vfio

    @path("kvm_vfio_release")
    def kvm_vfio_release(self, k: Any, vm: Any) -> PathGen:
        """`v6.0`, `v18-*`: no release callback; modelling choice of §4.3: for each group
        ``+group_lock; W: group kvm := NULL; -group_lock``, then ``kvm_put_kvm`` (the device's
        reference); no ``kvm->lock``, no driver callback."""
        dev = vm.kvm_vfio
        yield Write(dev, "released", True, "kvm_device file")
        for group in dev.groups:
            yield from self.vfio_file_set_kvm(k, group, None)
        yield from self.kvm_put_kvm(k, vm)
        return 0

    @path("vfio_file_set_kvm")
    def vfio_file_set_kvm(self, k: Any, group: Any, kvm: Any) -> PathGen:
        """`v6.0`-`v6.2-rc`: ``+group_lock; W: group kvm; -group_lock``."""
        yield Acquire(group.group_lock)
        yield Write(group, "kvm", kvm, "group->kvm")
        yield Release(group.group_lock)

    # ------------------------------------------------------------------ mdev core: create / remove

    @path("mdev_device_create")
    def mdev_device_create(self, k: Any, name: str) -> PathGen:
        """Create an mdev; its group joins the kvm-vfio device of the guest that uses it (if that
        device was not released) [modelling choice, §4.3 `create`]."""
        w = self.w
        mdev = self.new_mdev(name)
        guest = w.mdev_guests.get(name)
        vm = w.vms.get(guest) if guest is not None else None
        if vm is not None:
            mdev.vdev.container = vm
            kvm_vfio = vm.kvm_vfio
            if not kvm_vfio.released:
                group = mdev.group
                group.kvm = vm  # initialisation of the new group (not yet visible)
                groups = yield Update(kvm_vfio, "groups", group_join, (group, kvm_vfio),
                                      "kvm_vfio->file_list")
                if not any(g is group for g in groups):
                    group.kvm = None  # the device was released meanwhile
        return (yield from self.mdev_create(k, mdev))

    @path("vfio_unregister_group_dev")
    def vfio_unregister_group_dev(self, k: Any, mdev: Any) -> PathGen:
        """``block:`` until the device is no longer open; ``request(count)`` while waiting.

        The vfio core calls ``request`` with an increasing count every 10 s; the model calls it once
        (count 0): later calls change nothing (no ``req_trigger`` is ever set) [modelling choice].
        """
        if mdev.vdev.open_count:
            yield from self.request(k, mdev, 0)
            yield Block(DeviceClosed(mdev))

    @path("mdev_device_remove")
    def mdev_device_remove(self, k: Any, mdev: Any) -> PathGen:
        yield Write(mdev, "removing", True, "mdev sysfs")  # from here on, stores fail with -ENODEV
        yield from self.vfio_unregister_group_dev(k, mdev)
        yield from self.mdev_remove(k, mdev)
        return 0


__all__ = ["VfioCoreE4Paths"]
