"""Scenario operations and the initial state (domain doc §4.1-§4.3): the engine-facing part of a
scheme.  ``operation(k, actor, op)`` dispatches a verb to its wrapper path; ``setup(k, scenario)``
builds §4.2.  Both are shared by every scheme built on these mixins.

Results: 0, a count (sysfs stores: the number of bytes written, i.e. the argument text plus the
newline ``echo`` adds), a negative errno, or for a vCPU a :class:`~apactors.model.paths.common.PqapResult`.
"Nothing happens" cases return 0 (or the kernel's error code where the kernel has one) without steps.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.masks import format_apqn
from apactors.model.ops import Update
from apactors.model.paths.common import GUEST_MEMORY, PAGE_SIZE, mask_with, mask_without
from apactors.model.paths.kvm import aqic_registers
from apactors.model.schemes.base import PathGen, path

_VERBS: dict[str, str] = {
    # vcpu
    "pqap-aqic-enable": "op_pqap",
    "pqap-aqic-disable": "op_pqap",
    # mdev
    "open": "op_open",
    "close": "op_close",
    "reset": "op_reset",
    "dma-unmap": "op_dma_unmap",
    # vmm
    "pv-enable": "op_pv_enable",
    "pv-disable": "op_pv_disable",
    "kvm-vfio-release": "op_kvm_vfio_release",
    # admin
    "create": "op_create",
    "remove": "op_remove",
    "assign-adapter": "op_store",
    "unassign-adapter": "op_store",
    "assign-domain": "op_store",
    "unassign-domain": "op_store",
    "assign-control-domain": "op_store",
    "unassign-control-domain": "op_store",
    "apmask": "op_mask",
    "aqmask": "op_mask",
    "bind": "op_bind",
    "unbind": "op_unbind",
    # hmc
    "remove-adapter": "op_hmc",
    "add-adapter": "op_hmc",
    "remove-domain": "op_hmc",
    "add-domain": "op_hmc",
    "remove-control-domain": "op_hmc",
    "add-control-domain": "op_hmc",
    # bus
    "scan": "op_scan",
}

_STORES: dict[str, str] = {
    "assign-adapter": "assign_adapter_store",
    "unassign-adapter": "unassign_adapter_store",
    "assign-domain": "assign_domain_store",
    "unassign-domain": "unassign_domain_store",
    "assign-control-domain": "assign_control_domain_store",
    "unassign-control-domain": "unassign_control_domain_store",
}

_HMC: dict[str, tuple[str, Any]] = {
    "remove-adapter": ("apm", mask_without),
    "add-adapter": ("apm", mask_with),
    "remove-domain": ("aqm", mask_without),
    "add-domain": ("aqm", mask_with),
    "remove-control-domain": ("adm", mask_without),
    "add-control-domain": ("adm", mask_with),
}


def _arg_text(op: Any, fallback: Any) -> str:
    """The argument as the operation wrote it (the last word of its text), for the sysfs parse."""
    words = str(getattr(op, "text", "") or "").split()
    if len(words) >= 2:
        return words[-1]
    return str(fallback)


class _Holder:
    """The minimal actor record setup needs for an ``open`` (name, guest, mdev)."""

    __slots__ = ("kind", "name", "guest", "mdev", "vcpu")

    def __init__(self, name: str, guest: str | None, mdev: str) -> None:
        self.kind = "mdev"
        self.name = name
        self.guest = guest
        self.mdev = mdev
        self.vcpu = None


class ScenarioOps:
    """``setup``, ``operation`` and ``update_locks`` over the path mixins."""

    def __init__(self, world: Any) -> None:
        super().__init__(world)  # type: ignore[call-arg]
        self._dispatch = {verb: getattr(self, name) for verb, name in _VERBS.items()}

    # ------------------------------------------------------------------ engine API

    def operation(self, k: Any, actor: Any, op: Any) -> PathGen:
        """The generator of one scenario operation of ``actor`` (all kernel layers included)."""
        try:
            fn = self._dispatch[op.verb]
        except KeyError:
            raise ValueError(f"scheme {self.id!r}: unknown operation verb {op.verb!r}") from None
        return fn(k, actor, op)

    def update_locks(self) -> list[Any]:
        """E4 (§9): ``guests_lock``, ``mdevs_lock`` and every VM's ``kvm->lock``."""
        w = self.w
        return [w.guests_lock, w.mdevs_lock] + [vm.lock for vm in w.vms.values()]

    # ------------------------------------------------------------------ initial state §4.2

    def setup(self, k: Any, scenario: Any) -> PathGen:
        from apactors.model.build import SetupError

        w = self.w
        # Which guest's kvm-vfio device holds each mdev's group, and who holds its file.
        for a in scenario.actors:
            if a.kind == "mdev" and a.mdev is not None:
                w.mdev_guests[a.mdev] = a.guest
                w.mdev_holders[a.mdev] = a.name
        for m in scenario.mdevs:
            if m.open_by is not None:
                g = w.mdev_guests.setdefault(m.name, m.open_by)
                if g != m.open_by:
                    raise SetupError(f"mdev {m.name} is opened by guest {m.open_by} but its mdev actor "
                                     f"uses it with guest {g}")
        # Queue devices: one per configured adapter x domain, bound by the probe gate unless unbound.
        host = scenario.host
        unbound = set(host.unbound)
        for apqn in host.queues():
            yield from self.device_register(k, apqn, probe=apqn not in unbound)
        # Mdevs with their assignments, one store after another.
        for m in scenario.mdevs:
            rc = yield from self.mdev_device_create(k, m.name)
            if rc:
                raise SetupError(f"setup: creating mdev {m.name} failed: {errno.errno_name(rc)}")
            mdev = w.mdevs[m.name]
            for store, ids in (("assign_adapter_store", m.adapters), ("assign_domain_store", m.domains),
                               ("assign_control_domain_store", m.control_domains)):
                for ident in ids:
                    buf = f"{ident:#x}\n"
                    rc = yield from getattr(self, store)(k, mdev, buf)
                    if rc < 0:
                        raise SetupError(
                            f"scenario is invalid for scheme {self.id}: {store.replace('_store', '')} "
                            f"{ident:#04x} to mdev {m.name} was refused with {errno.errno_name(rc)}")
        # Opens before scheduling starts.
        for m in scenario.mdevs:
            if m.open_by is None:
                continue
            holder = _Holder(w.mdev_holders.get(m.name, f"mdev:{m.name}"), m.open_by, m.name)
            rc = yield from self.op_open(k, holder, None)
            if rc:
                raise SetupError(f"scenario is invalid for scheme {self.id}: opening mdev {m.name} for "
                                 f"guest {m.open_by} was refused with {errno.errno_name(rc)}")

    # ------------------------------------------------------------------ vcpu

    def op_pqap(self, k: Any, actor: Any, op: Any) -> PathGen:
        vcpu = self.w.vms[actor.guest].vcpus[actor.vcpu or 0]
        enable = op.verb == "pqap-aqic-enable"
        isc = op.isc if op.isc is not None else 6
        nib = op.nib if op.nib is not None else 0x1000
        gr0, gr1, gr2 = aqic_registers(op.apqn, enable, isc, nib)
        return (yield from self.vcpu_run_pqap(k, vcpu, gr0, gr1, gr2))

    # ------------------------------------------------------------------ mdev actor

    def _held(self, actor: Any) -> Any:
        return self.w.files.get(actor.name)

    @path("vfio_group_ioctl_get_device_fd")
    def op_open(self, k: Any, actor: Any, op: Any) -> PathGen:
        """Holds a file already: nothing.  An mdev that does not exist or whose removal started
        cannot be found in its group: -ENODEV [modelling choice]."""
        w = self.w
        if actor.name in w.files:
            return 0
        mdev = w.mdevs.get(actor.mdev)
        if mdev is None or mdev.freed or mdev.removing:
            return -errno.ENODEV
        rc = yield from self.vfio_open(k, mdev)
        if rc == 0:
            w.files[actor.name] = mdev
        return rc

    @path("vfio_device_fops_release")
    def op_close(self, k: Any, actor: Any, op: Any) -> PathGen:
        w = self.w
        mdev = w.files.get(actor.name)
        if mdev is None:
            return 0
        rc = yield from self.vfio_close(k, mdev)
        del w.files[actor.name]
        return rc

    @path("vfio_device_fops_unl_ioctl")
    def op_reset(self, k: Any, actor: Any, op: Any) -> PathGen:
        mdev = self._held(actor)
        if mdev is None:
            return 0
        return (yield from self.reset_ioctl(k, mdev))

    @path("vfio_iommu_type1_ioctl")
    def op_dma_unmap(self, k: Any, actor: Any, op: Any) -> PathGen:
        mdev = self._held(actor)
        if mdev is None:
            return 0
        iova = getattr(op, "iova", None)
        if iova is None:
            start, length = 0, GUEST_MEMORY
        else:
            start, length = iova & ~(PAGE_SIZE - 1), PAGE_SIZE
        return (yield from self.vfio_dma_unmap(k, mdev, start, length))

    # ------------------------------------------------------------------ vmm actor

    @path("kvm_vm_ioctl")
    def op_pv_enable(self, k: Any, actor: Any, op: Any) -> PathGen:
        vm = self.w.vms[actor.guest]
        if vm.pv:
            return -errno.EINVAL  # protected already: nothing happens
        return (yield from self.pv_enable(k, vm))

    @path("kvm_vm_ioctl")
    def op_pv_disable(self, k: Any, actor: Any, op: Any) -> PathGen:
        vm = self.w.vms[actor.guest]
        if not vm.pv:
            return -errno.EINVAL  # not protected: nothing happens
        return (yield from self.pv_disable(k, vm))

    @path("kvm_device_release")
    def op_kvm_vfio_release(self, k: Any, actor: Any, op: Any) -> PathGen:
        vm = self.w.vms[actor.guest]
        if vm.kvm_vfio.released:
            return 0  # second time: nothing
        return (yield from self.kvm_vfio_release(k, vm))

    # ------------------------------------------------------------------ admin actor

    @path("create_store")
    def op_create(self, k: Any, actor: Any, op: Any) -> PathGen:
        old = self.w.mdevs.get(op.mdev)
        if old is not None and not old.freed:
            return -errno.EEXIST  # name exists: nothing happens
        return (yield from self.mdev_device_create(k, op.mdev))

    @path("remove_store")
    def op_remove(self, k: Any, actor: Any, op: Any) -> PathGen:
        mdev = self.w.mdevs.get(op.mdev)
        if mdev is None or mdev.freed or mdev.removing:
            return -errno.ENODEV  # no such mdev: nothing happens
        return (yield from self.mdev_device_remove(k, mdev))

    def op_store(self, k: Any, actor: Any, op: Any) -> PathGen:
        """The mdev's sysfs store; -ENOENT without the attribute file, -ENODEV once removal started."""
        mdev = self.w.mdevs.get(op.mdev)
        if mdev is None:
            return -errno.ENOENT
        if mdev.removing or mdev.freed:
            return -errno.ENODEV
        buf = _arg_text(op, op.ident) + "\n"
        return (yield from getattr(self, _STORES[op.verb])(k, mdev, buf))

    def op_mask(self, k: Any, actor: Any, op: Any) -> PathGen:
        spec = op.spec if op.spec is not None else _arg_text(op, "")
        buf = spec + "\n"
        if op.verb == "apmask":
            return (yield from self.apmask_store(k, buf))
        return (yield from self.aqmask_store(k, buf))

    def op_bind(self, k: Any, actor: Any, op: Any) -> PathGen:
        return (yield from self.bind_store(k, op.apqn, format_apqn(op.apqn) + "\n"))

    def op_unbind(self, k: Any, actor: Any, op: Any) -> PathGen:
        return (yield from self.unbind_store(k, op.apqn, format_apqn(op.apqn) + "\n"))

    # ------------------------------------------------------------------ hmc and bus

    @path("sclp_ap_configure")
    def op_hmc(self, k: Any, actor: Any, op: Any) -> PathGen:
        """One step: the configuration the next QCI returns (no lock, no notification)."""
        field, fn = _HMC[op.verb]
        yield Update(self.w.machine, field, fn, op.ident, "AP configuration")
        return 0

    def op_scan(self, k: Any, actor: Any, op: Any) -> PathGen:
        return (yield from self.scan_work(k))


__all__ = ["ScenarioOps"]
