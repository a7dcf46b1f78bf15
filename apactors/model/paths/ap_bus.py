"""AP bus and driver-core paths (domain doc §5.0.6, §4.3 `bind`/`unbind`/`apmask`/`aqmask`/`scan`).

The AP bus mutex is ``self.w.bus.perms_lock``, whose class is the scheme's ``perms_lock_class``
(``ap_perms_mutex``, or ``ap_attr_mutex`` in `latest` and alt-*).  Drivers are tried in the order
zcrypt (``cex4queue``, the DEFAULT driver), then vfio_ap [modelling choice: zcrypt registers first].
vfio_ap's callbacks (``queue_probe``, ``queue_remove``, ``in_use``, ``on_config_changed``,
``on_scan_complete``) come from the driver mixin.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.hardware import QCI
from apactors.model.masks import MaskSyntaxError, parse_mask_spec
from apactors.model.ops import Acquire, Block, Cond, Insn, Read, Release, Update, Write
from apactors.model.schemes.base import PathGen, path
from apactors.model.world import VFIO_AP, ZCRYPT, devices_add, devices_remove

DRIVERS: tuple[str, ...] = (ZCRYPT, VFIO_AP)  #: bus_for_each_drv order
DEFAULT_DRIVERS = frozenset({ZCRYPT})  #: drivers with AP_DRIVER_FLAG_DEFAULT


class ScanIdle(Cond):
    """S-0/S-1: no scan pass is running (the scan is one work item: passes never overlap)."""

    __slots__ = ("bus",)
    what = "no AP bus scan running"

    def __init__(self, bus: Any) -> None:
        self.bus = bus

    def ready(self, k: Any) -> bool:
        return not self.bus.scan_running

    def describe(self) -> str:
        return "the running AP bus scan pass finished"

    def blockers(self, k: Any) -> list[str]:
        t = self.bus.scan_task
        return [t] if t else []


class ScanPassBegin(Block):
    """S-0/S-1 [modelling choice]: wait, invisibly to lockdep, until no pass runs, and start this one
    (``scan_running := True``) in the same atomic step.  The pass ends with a ``W: scan_running :=
    False`` step.  ``scan_task`` names the running pass for reports only."""

    __slots__ = ()

    def perform(self, k: Any) -> None:
        bus = self.cond.bus
        bus.scan_running = True
        bus.scan_task = k.name
        return None


class ApBusPaths:
    """AP bus paths (mixin of a scheme)."""

    # ------------------------------------------------------------------ reservation test

    def ap_reserved(self, k: Any, apqn: int) -> PathGen:
        """``R: reserved := APID ∈ ap_perms.apm and APQI ∈ ap_perms.aqm`` (caller holds the mutex).

        Two loads as in the C expression (the second only when the first bit is set)."""
        perms = self.w.bus.perms
        apm = yield Read(perms, "apm", "ap_perms.apm")
        if (apqn >> 8) & 0xFF not in apm:
            return False
        aqm = yield Read(perms, "aqm", "ap_perms.aqm")
        return (apqn & 0xFF) in aqm

    # ------------------------------------------------------------------ probe gate / remove

    @path("ap_device_probe")
    def ap_device_probe(self, k: Any, qdev: Any, drv: str) -> PathGen:
        """The probe gate [device_lock(qdev) held]; → 0 or -ENODEV (not bound)."""
        bus = self.w.bus
        yield Acquire(bus.perms_lock)
        reserved = yield from self.ap_reserved(k, qdev.apqn)
        yield Release(bus.perms_lock)
        if reserved != (drv in DEFAULT_DRIVERS):
            return -errno.ENODEV
        yield Acquire(bus.queues_lock)
        yield Write(qdev, "driver", drv, "ap_queues")  # hash_add(ap_queues, qdev); bound from here
        yield Release(bus.queues_lock)
        rc = yield from self.driver_probe(k, qdev, drv)
        if rc:
            yield Acquire(bus.queues_lock)
            yield Write(qdev, "driver", None, "ap_queues")
            yield Release(bus.queues_lock)
        return rc

    @path("ap_device_remove")
    def ap_device_remove(self, k: Any, qdev: Any) -> PathGen:
        """[device_lock(qdev) held]: the driver's remove, then out of ``ap_queues``."""
        bus = self.w.bus
        yield from self.driver_remove(k, qdev, qdev.driver)
        yield Acquire(bus.queues_lock)
        yield Write(qdev, "driver", None, "ap_queues")
        yield Release(bus.queues_lock)

    def driver_probe(self, k: Any, qdev: Any, drv: str) -> PathGen:
        if drv == VFIO_AP:
            return (yield from self.queue_probe(k, qdev))
        return 0  # zcrypt's queue probe is not modelled

    def driver_remove(self, k: Any, qdev: Any, drv: str | None) -> PathGen:
        if drv == VFIO_AP:
            yield from self.queue_remove(k, qdev)

    # ------------------------------------------------------------------ driver core

    @path("__device_attach")
    def device_attach(self, k: Any, qdev: Any) -> PathGen:
        """``+device_lock``; the probe gate against each driver until one binds; ``-device_lock``."""
        yield Acquire(qdev.device_lock)
        rc = -errno.ENODEV
        if qdev.registered and qdev.driver is None:
            for drv in DRIVERS:
                rc = yield from self.ap_device_probe(k, qdev, drv)
                if rc == 0:
                    break
        yield Release(qdev.device_lock)
        return rc

    @path("device_release_driver")
    def device_release_driver(self, k: Any, qdev: Any) -> PathGen:
        yield Acquire(qdev.device_lock)
        if qdev.driver is not None:
            yield from self.ap_device_remove(k, qdev)
        yield Release(qdev.device_lock)

    @path("device_add")
    def device_register(self, k: Any, apqn: int, probe: bool = True) -> PathGen:
        """Register a new queue device (visible at the ``devices`` update), then bind it."""
        bus = self.w.bus
        qdev = bus.new_device(apqn)
        yield Update(bus, "devices", devices_add, qdev, "ap_bus devices")
        if probe:
            yield from self.device_attach(k, qdev)
        return qdev

    @path("device_unregister")
    def device_unregister(self, k: Any, qdev: Any) -> PathGen:
        """``+device_lock``; if bound: ``ap_device_remove``; ``-device_lock``; the device is gone."""
        yield Acquire(qdev.device_lock)
        if qdev.driver is not None:
            yield from self.ap_device_remove(k, qdev)
        yield Release(qdev.device_lock)
        yield Update(self.w.bus, "devices", devices_remove, qdev, "ap_bus devices")

    @path("bind_store")
    def bind_store(self, k: Any, apqn: int, buf: str) -> PathGen:
        """vfio_ap's ``bind`` attribute: no device → -ENODEV; bound → -EBUSY [I]; refused by the
        gate → -ENODEV (left unbound)."""
        qdev = self.w.bus.devices.get(apqn)
        if qdev is None:
            return -errno.ENODEV
        yield Acquire(qdev.device_lock)
        if qdev.driver is not None or not qdev.registered:
            rc = -errno.EBUSY
        else:
            rc = yield from self.ap_device_probe(k, qdev, VFIO_AP)
        yield Release(qdev.device_lock)
        return rc if rc else len(buf)

    @path("unbind_store")
    def unbind_store(self, k: Any, apqn: int, buf: str) -> PathGen:
        """The bound driver's ``unbind`` attribute: not bound → -ENODEV [I]; stays unbound."""
        qdev = self.w.bus.devices.get(apqn)
        if qdev is None or qdev.driver is None:
            return -errno.ENODEV
        drv = qdev.driver
        yield Acquire(qdev.device_lock)
        if qdev.driver == drv:
            yield from self.ap_device_remove(k, qdev)
        yield Release(qdev.device_lock)
        return len(buf)

    # ------------------------------------------------------------------ binding revision

    @path("ap_bus_revise_bindings")
    def revise_bindings(self, k: Any) -> PathGen:
        """For each queue device in registration order: re-probe it if its reservation no longer
        matches its driver (an unbound device counts as "not DEFAULT")."""
        devices = sorted(self.w.bus.devices.values(), key=lambda d: d.order)
        for qdev in devices:
            yield from self.revise_reserved(k, qdev)

    @path("__ap_revise_reserved")
    def revise_reserved(self, k: Any, qdev: Any) -> PathGen:
        bus = self.w.bus
        yield Acquire(bus.perms_lock)
        reserved = yield from self.ap_reserved(k, qdev.apqn)
        yield Release(bus.perms_lock)
        if reserved != (qdev.driver in DEFAULT_DRIVERS):
            yield from self.device_reprobe(k, qdev)

    @path("device_reprobe")
    def device_reprobe(self, k: Any, qdev: Any) -> PathGen:
        yield from self.device_release_driver(k, qdev)
        yield from self.device_attach(k, qdev)

    # ------------------------------------------------------------------ apmask / aqmask, AM-1

    @path("apmask_store")
    def apmask_store(self, k: Any, buf: str) -> PathGen:
        return (yield from self._mask_store(k, buf, adapters=True))

    @path("aqmask_store")
    def aqmask_store(self, k: Any, buf: str) -> PathGen:
        return (yield from self._mask_store(k, buf, adapters=False))

    def _mask_store(self, k: Any, buf: str, adapters: bool) -> PathGen:
        """AM-1 (E4, alt-*): ``in_use`` veto of newly reserved ids, then binding revision."""
        bus = self.w.bus
        perms = bus.perms
        field, other = ("apm", "aqm") if adapters else ("aqm", "apm")
        yield Acquire(bus.perms_lock)  # mutex_lock_interruptible: no signals in the model
        cur = getattr(perms, field)
        changes = False
        try:
            new = parse_mask_spec(buf, cur)
        except MaskSyntaxError:
            rc = -errno.EINVAL
        else:
            rc = 0
            changes = new != cur
            if changes:
                reserved = new - cur
                if reserved:
                    omask = yield Read(perms, other, "ap_perms." + other)
                    if adapters:
                        r = yield from self.in_use(k, reserved, omask)
                    else:
                        r = yield from self.in_use(k, omask, reserved)
                    if r:
                        rc = -errno.EBUSY
                if rc == 0:
                    yield Write(perms, field, new, "ap_perms." + field)
        yield Release(bus.perms_lock)
        if rc:
            return rc
        if changes:
            yield from self.revise_bindings(k)  # then a uevent (not modelled)
        return len(buf)

    # ------------------------------------------------------------------ scan, S-2 (S-1 below)

    @path("ap_scan_bus_wq_callback")
    def scan_work(self, k: Any) -> PathGen:
        """S-2: ``try+ap_scan_bus_mutex ? {scan_task := self; body; scan_task := NULL} : {}``."""
        bus = self.w.bus
        got = yield Acquire(bus.scan_mutex, try_=True)
        if not got:
            return 0
        yield Write(bus, "scan_task", k.name, "ap_scan_bus_task")
        yield from self.ap_scan_bus(k)
        yield Write(bus, "scan_task", None, "ap_scan_bus_task")
        yield Release(bus.scan_mutex)
        return 0

    @path("ap_scan_bus_wq_callback")
    def scan_work_s1(self, k: Any) -> PathGen:
        """S-0 / S-1: one pass at a time (the work item is never run twice at once)."""
        bus = self.w.bus
        yield ScanPassBegin(ScanIdle(bus))
        yield from self.ap_scan_bus(k)
        bus.scan_task = None
        yield Write(bus, "scan_running", False, "ap_scan_work")
        return 0

    #: S-1 calls the drivers' on_config_changed / on_scan_complete; S-0 (pre-E4) does not
    scan_notifies_drivers = True

    @path("ap_scan_bus")
    def ap_scan_bus(self, k: Any) -> PathGen:
        bus = self.w.bus
        prev = bus.qci_info
        yield Write(bus, "qci_info_old", prev, "ap_qci_info_old")
        cur = yield Insn(QCI)
        yield Write(bus, "qci_info", cur, "ap_qci_info")
        changed = cur != prev and self.scan_notifies_drivers
        if changed:
            yield from self.on_config_changed(k, cur, prev)  # vfio_ap (module reference held)
        present = {apqn >> 8 for apqn in bus.devices}
        for apid in sorted(present | set(cur.apm)):
            devs = {apqn & 0xFF: d for apqn, d in bus.devices.items() if apqn >> 8 == apid}
            if apid not in cur.apm:
                for apqi in sorted(devs):
                    yield from self.device_unregister(k, devs[apqi])
                continue
            for apqi in sorted(set(devs) | set(cur.aqm)):
                dev = devs.get(apqi)
                if dev is not None and apqi not in cur.aqm:
                    yield from self.device_unregister(k, dev)
                elif dev is None and apqi in cur.aqm:
                    yield from self.device_register(k, apid << 8 | apqi)
        if changed:
            yield from self.on_scan_complete(k, cur, prev)

    # ------------------------------------------------------------------ apmask / aqmask, AM-0 (pre-E4)

    @path("apmask_store")
    def apmask_store_am0(self, k: Any, buf: str) -> PathGen:
        """AM-0 (pre-E4): no driver is asked (no ``in_use`` veto)."""
        return (yield from self._mask_store_am0(k, buf, adapters=True))

    @path("aqmask_store")
    def aqmask_store_am0(self, k: Any, buf: str) -> PathGen:
        return (yield from self._mask_store_am0(k, buf, adapters=False))

    def _mask_store_am0(self, k: Any, buf: str, adapters: bool) -> PathGen:
        """AM-0 (§5.0.6): ``+ap_perms_mutex`` (interruptible; no signals in the model); parse
        (absolute or relative, against the current mask) and ``W: ap_perms.apm``; ``-ap_perms_mutex``;
        ``ap_bus_revise_bindings()``.  A parse error → -EINVAL, mask unchanged, no revision.  The mask
        is written and the bindings revised whenever the parse succeeds, changed or not."""
        bus = self.w.bus
        perms = bus.perms
        field = "apm" if adapters else "aqm"
        yield Acquire(bus.perms_lock)
        try:
            new = parse_mask_spec(buf, getattr(perms, field))
        except MaskSyntaxError:
            rc = -errno.EINVAL
        else:
            rc = 0
            yield Write(perms, field, new, "ap_perms." + field)
        yield Release(bus.perms_lock)
        if rc:
            return rc
        yield from self.revise_bindings(k)
        return len(buf)


__all__ = ["ApBusPaths", "DEFAULT_DRIVERS", "DRIVERS", "ScanIdle", "ScanPassBegin"]
