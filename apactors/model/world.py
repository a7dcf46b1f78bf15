"""The modelled AP world: host configuration, AP bus, vfio_ap objects, VMs and vCPUs (domain doc §1-§4).

Only plain state lives here; what the kernel *does* with it lives in the code paths of the schemes.
Rules every field follows, so that checkers and traces can rely on them:

* Values stored in fields are immutable (``Mask``, ``int``, ``str``, tuples, frozen mappings) or model
  objects referenced by identity.  A path changes state only with ``Write``/``Update`` steps, which
  replace a value, so an event that recorded a value keeps meaning what it meant.
* Every object has ``owner`` (the object whose lifetime it shares: an mdev's matrix belongs to the
  mdev), ``freed`` and ``vname`` (the name used for it in events: ``mdev(m0)``, ``q(03.0005)``).
* Nothing iterates over a set of hashed objects: collections are tuples or insertion-ordered dicts.
* Exceptions, written by paths without a step because no other task reads them as kernel state:
  bookkeeping for checkers and reports (``q.saved_vm``, ``vcpu.run_by``, ``vcpu.in_run``,
  ``vcpu.in_intercept``, ``mdev.in_list``, ``qdev.registered``), a vCPU's private condition code
  (``vcpu.cc``), the per-actor ``World.files``, and the initialisation of an object before the step
  that makes it visible (``Alloc``, the ``devices`` update).

Where things are (beyond the obvious): pin counts are per vfio device (``vdev.pins``; the device's
IOMMU container maps the memory of ``vdev.container``), GISC registration counts per VM
(``vm.gisc_refs``), the CRYCB masks are one field ``crycb.masks``, the guest registers one field
``vcpu.regs``, a queue device's ``driver`` doubles as its membership of the ``ap_queues`` hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from apactors.model.locks import LockdepMap, Mutex, RwSem, Srcu, WaitQueue
from apactors.model.masks import Mask, format_apqn

# Driver names a queue device can be bound to.
VFIO_AP = "vfio_ap"
ZCRYPT = "cex4queue"  #: the default (zcrypt) queue driver; carries AP_DRIVER_FLAG_DEFAULT

NO_ISC = 0xFF  #: saved_isc value meaning "no interrupt state"
CRYCB_FORMAT2 = 0x02  #: the APXA bit of crycbd; set only for format 2


class KObject:
    """Base of every modelled kernel object."""

    __slots__ = ("name", "owner", "freed", "vname")
    kind = "obj"

    def __init__(self, name: str, owner: "KObject | None" = None) -> None:
        self.name = name
        self.owner = owner if owner is not None else self
        self.freed = False
        self.vname = f"{self.kind}({name})"

    def __repr__(self) -> str:
        return self.vname


class HostConfig(NamedTuple):
    """A QCI result: the adapters, usage domains and control domains configured to the host."""

    apm: Mask
    aqm: Mask
    adm: Mask


class Machine(KObject):
    """The AP hardware as the host sees it now (what the next QCI returns), changed by ``hmc`` ops.

    The instruction semantics (``execute``) live in :mod:`apactors.model.hardware`.
    """

    __slots__ = ("apm", "aqm", "adm", "queues", "execute_fn", "faults", "types", "adapter_state",
                 "reset_delays", "irq_clear_delays")
    kind = "machine"

    def __init__(self, config: HostConfig) -> None:
        super().__init__("ap")
        self.apm = config.apm
        self.aqm = config.aqm
        self.adm = config.adm
        self.queues: dict[int, Any] = {}  # APQN -> hardware queue state (hardware.py), replaced on change
        self.execute_fn: Any = None
        #: injected responses, off by default: instruction key ("ZAPQ", "TAPQ", "AQIC-enable",
        #: "AQIC-disable", and "GISC" for a failing kvm_s390_gisc_register) -> extra response codes.
        #: With an entry, each such instruction asks ``k.choose(1 + len(codes))``; 0 = normal answer.
        self.faults: dict[str, tuple[int, ...]] = {}
        self.types: dict[int, int] = {}  #: APID -> AP adapter type (default: hardware.DEFAULT_TYPE)
        self.adapter_state: dict[int, str] = {}  #: APID -> "deconfigured" | "checkstopped" (optional)
        self.reset_delays = 2  #: a ZAPQ'd queue answers TAPQ 0x02 for k.choose(reset_delays) TAPQs
        self.irq_clear_delays = 2  #: irq_enabled stays 1 for k.choose(irq_clear_delays) TAPQs after disable

    def config(self) -> HostConfig:
        return HostConfig(self.apm, self.aqm, self.adm)

    def execute(self, k: Any, name: str, apqn: int, arg: Any) -> Any:
        return self.execute_fn(self, k, name, apqn, arg)


class ApPerms(KObject):
    """``ap_perms``: the apmask/aqmask (APQNs in apm x aqm are reserved for the default drivers)."""

    __slots__ = ("apm", "aqm")
    kind = "ap_perms"

    def __init__(self, apm: Mask, aqm: Mask) -> None:
        super().__init__("ap")
        self.apm = apm
        self.aqm = aqm


class QueueDevice(KObject):
    """An AP queue device of the AP bus, with the driver it is bound to and its drvdata.

    ``driver`` is written by the probe gate's "add qdev to ap_queues" step and cleared by the
    "remove from ap_queues" step of ``ap_device_remove`` (or of a failed probe), so it is non-NULL
    exactly while the device is in the ``ap_queues`` hash, i.e. from the start of the driver's probe to
    the end of its remove (the doc's definition of "bound", §9).
    """

    __slots__ = ("apqn", "driver", "drvdata", "device_lock", "registered", "order", "on_driver_list")
    kind = "qdev"

    def __init__(self, apqn: int, order: int) -> None:
        super().__init__(format_apqn(apqn))
        self.apqn = apqn
        #: on the bound driver's device list (driver_bound after a successful probe, until after its
        #: remove): what the pre-E4 find_queue (driver_find_device) searches; written by pre-E4 only
        self.on_driver_list = False
        self.driver: str | None = None
        self.drvdata: "VfioApQueue | None" = None
        # The driver core gives dev->mutex lockdep's no-validate class (§2.1).
        self.device_lock = Mutex("&dev->mutex", self.name, validate=False)
        self.registered = True  #: False once the scan unregistered it (set with the devices update)
        self.order = order  #: registration order (binding revision walks devices in this order)

    @property
    def in_ap_queues(self) -> bool:
        return self.driver is not None


class ApBus(KObject):
    """AP bus state: QCI copies, reservation masks, queue devices, and the bus locks."""

    __slots__ = ("qci_info", "qci_info_old", "perms", "perms_lock", "scan_mutex", "scan_task",
                 "scan_running", "queues_lock", "devices", "next_order")
    kind = "ap_bus"

    def __init__(self, config: HostConfig, perms: ApPerms, perms_lock_class: str) -> None:
        super().__init__("ap")
        self.qci_info = config
        self.qci_info_old = config
        self.perms = perms
        self.perms_lock = Mutex(perms_lock_class, "ap")
        self.scan_mutex = Mutex("ap_scan_bus_mutex", "ap")
        self.scan_task: str | None = None
        self.scan_running = False  #: S-0/S-1: a pass is running (passes never overlap)
        self.queues_lock = Mutex("ap_queues_lock", "ap", spin=True)
        self.devices: dict[int, QueueDevice] = {}  # APQN -> registered queue device
        self.next_order = 0

    def new_device(self, apqn: int) -> QueueDevice:
        """A new queue device object (not yet visible: a path publishes it with an Update of
        ``devices``, see :func:`devices_add`)."""
        dev = QueueDevice(apqn, self.next_order)
        self.next_order += 1
        return dev


def devices_add(devices: dict, dev: QueueDevice) -> dict:
    """Update function: ``ap_bus.devices`` with ``dev`` registered (APQN order kept)."""
    new = dict(devices)
    new[dev.apqn] = dev
    dev.registered = True
    return dict(sorted(new.items()))


def devices_remove(devices: dict, dev: QueueDevice) -> dict:
    """Update function: ``ap_bus.devices`` without ``dev`` (the device is gone)."""
    new = dict(devices)
    if new.get(dev.apqn) is dev:
        del new[dev.apqn]
    dev.registered = False
    return new


class ApMatrix(KObject):
    """A matrix (``mdev->matrix``) or shadow APCB (``mdev->shadow_apcb``): three masks and limits.

    The limits are one field ``limits = (apm_max, aqm_max, adm_max)`` because the paths write them in
    one step ("W shadow limits := from info", §7.5).
    """

    __slots__ = ("apm", "aqm", "adm", "limits")
    kind = "matrix"

    def __init__(self, name: str, owner: KObject, apm_max: int = 255, aqm_max: int = 255,
                 adm_max: int = 255) -> None:
        super().__init__(name, owner)
        self.apm = Mask.EMPTY
        self.aqm = Mask.EMPTY
        self.adm = Mask.EMPTY
        self.limits = (apm_max, aqm_max, adm_max)

    @property
    def apm_max(self) -> int:
        return self.limits[0]

    @property
    def aqm_max(self) -> int:
        return self.limits[1]

    @property
    def adm_max(self) -> int:
        return self.limits[2]


class WorkItem(KObject):
    """A work item (``q->reset_work``) on the long workqueue, run by a worker actor."""

    __slots__ = ("fn", "args", "pending", "running", "worker", "map", "completions")
    kind = "work"

    def __init__(self, name: str, owner: KObject, fn: Any, args: tuple = ()) -> None:
        super().__init__(name, owner)
        self.fn = fn  #: generator function (scheme method) run by the worker: fn(k, *args)
        self.args = args
        self.pending = False
        self.running = False
        self.worker: str | None = None  #: name of the worker actor that runs it, while one exists
        self.map = LockdepMap("(work_completion)(&q->reset_work)", name)
        #: runs of the work function that have finished (EndWork should increment it; flush_work's
        #: wait uses it to wait only for the runs queued before the flush, as the kernel's barrier)
        self.completions = 0

    def idle(self) -> bool:
        return not (self.pending or self.running)


class VfioApQueue(KObject):
    """``struct vfio_ap_queue``: vfio_ap's per-queue object (created by ``queue_probe``)."""

    __slots__ = ("apqn", "matrix_mdev", "saved_isc", "saved_iova", "saved_pfn", "saved_vm",
                 "reset_rc", "reset_status", "reset_work", "lock")
    kind = "q"

    def __init__(self, apqn: int, serial: int) -> None:
        # The serial keeps names unique when a queue object is freed and a new one made for the APQN.
        name = format_apqn(apqn) if serial == 0 else f"{format_apqn(apqn)}#{serial}"
        super().__init__(name)
        self.apqn = apqn
        self.matrix_mdev: "MatrixMdev | None" = None
        self.saved_isc = NO_ISC
        self.saved_iova = 0  #: E4 (guest address of the saved NIB); 0 = none
        self.saved_pfn = 0  #: pre-E4 (guest page of the saved NIB); 0 = none
        self.saved_vm: "Vm | None" = None  #: the VM the saved GISC was registered with (bookkeeping)
        self.reset_rc = 0
        self.reset_status = 0  #: response code of the last reset (v6.8+: reset_status.response_code)
        self.reset_work: WorkItem | None = None
        self.lock: Mutex | None = None  #: alt-queue-lock's &q->lock


class VfioGroup(KObject):
    """A vfio group (one per mdev here): its kvm pointer and the vfio core's group locks."""

    __slots__ = ("kvm", "group_lock", "notifier_rwsem", "kvm_ref_lock", "notifiers")
    kind = "group"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.kvm: "Vm | None" = None
        self.group_lock = Mutex("&group->group_lock", name)
        self.notifier_rwsem = RwSem("&(&group->notifier)->rwsem", name)
        self.kvm_ref_lock = Mutex("&group->kvm_ref_lock", name, spin=True)
        self.notifiers: tuple[Any, ...] = ()


class VfioDevice(KObject):
    """The vfio device of an mdev: open count, ``vdev->kvm`` and its device set lock."""

    __slots__ = ("open_count", "file_refs", "kvm", "dev_set_lock", "pins", "container")
    kind = "vdev"

    def __init__(self, name: str, owner: KObject) -> None:
        super().__init__(name, owner)
        self.open_count = 0
        #: E4: references the open files hold on the device registration; a file takes it when its open
        #: succeeded and drops it as the very last step of its release, after the vfio core's locks
        #: (vfio_unregister_group_dev waits for it, so remove never frees the mdev under a closing task)
        self.file_refs = 0
        self.kvm: "Vm | None" = None  #: E4: set at first open (v6.8+: with a VM reference held)
        self.dev_set_lock = Mutex("&new_dev_set->lock", name)
        #: guest page -> pin count of pages pinned through this device (vfio_pin_pages); replaced
        self.pins: dict[int, int] = {}
        #: the VM whose memory the device's IOMMU container maps (the guest of the mdev's actor);
        #: static, set when the mdev is created; None: pins fail
        self.container: "Vm | None" = None


class MatrixMdev(KObject):
    """``struct ap_matrix_mdev``: a matrix mediated device."""

    __slots__ = ("matrix", "shadow_apcb", "kvm", "qtable", "apm_add", "aqm_add", "adm_add", "req_trigger",
                 "kvm_busy", "wait_for_kvm", "group", "vdev", "removing", "pqap_hook", "pqap_view",
                 "in_list")
    kind = "mdev"

    def __init__(self, name: str, info: HostConfig | None = None) -> None:
        super().__init__(name)
        self.matrix = ApMatrix(f"{name}.matrix", self)
        self.shadow_apcb = ApMatrix(f"{name}.shadow_apcb", self)
        self.kvm: "Vm | None" = None
        self.qtable: dict[int, VfioApQueue] = {}  # APQN -> linked queue object (replaced, never mutated)
        self.apm_add = Mask.EMPTY
        self.aqm_add = Mask.EMPTY
        self.adm_add = Mask.EMPTY
        self.req_trigger: Any = None
        self.kvm_busy = False
        self.wait_for_kvm = WaitQueue(f"{name}.wait_for_kvm")
        self.group = VfioGroup(name)
        self.vdev = VfioDevice(name, self)
        self.removing = False  #: `remove` started: sysfs stores fail with -ENODEV (§4.3)
        #: the handler the VM's pqap_hook points to (a field of the mdev): the name of the scheme
        #: method KVM calls (E4: "vfio_ap_handle_pqap")
        self.pqap_hook: Any = None
        self.pqap_view: Any = None  #: alt-srcu's published snapshot
        self.in_list = False


class Crycb(KObject):
    """The guest's crypto control block: APCB masks as the machine uses them for the guest.

    One field ``masks = (apm, aqm, adm)``, written in one step by the KVM mask functions (§5.0.3),
    already truncated to the CRYCB format; ``apm``/``aqm``/``adm`` read it.
    """

    __slots__ = ("masks",)
    kind = "crycb"

    def __init__(self, name: str, owner: KObject) -> None:
        super().__init__(name, owner)
        self.masks = (Mask.EMPTY, Mask.EMPTY, Mask.EMPTY)

    @property
    def apm(self) -> Mask:
        return self.masks[0]

    @property
    def aqm(self) -> Mask:
        return self.masks[1]

    @property
    def adm(self) -> Mask:
        return self.masks[2]


class KvmVfioDevice(KObject):
    """The VM's kvm-vfio pseudo-device: the vfio groups it holds, and whether its file was closed."""

    __slots__ = ("groups", "released")
    kind = "kvm-vfio"

    def __init__(self, name: str, owner: KObject) -> None:
        super().__init__(name, owner)
        self.groups: tuple[VfioGroup, ...] = ()
        self.released = False


class Vcpu(KObject):
    """A vCPU: its mutex, run state (in SIE / intercept), PV state, and the PQAP registers."""

    __slots__ = ("vm", "index", "mutex", "in_sie", "in_intercept", "in_run", "pv", "eca_apie", "eca_aiv",
                 "problem_state", "regs", "cc", "prog_block_sie", "run_by")
    kind = "vcpu"

    def __init__(self, vm: "Vm", index: int) -> None:
        super().__init__(f"{vm.name}/{index}", vm)
        self.vm = vm
        self.index = index
        self.mutex = Mutex("&vcpu->mutex", self.name)
        self.in_run = False
        self.in_sie = False  #: PROG_IN_SIE
        self.in_intercept = False
        self.pv = False
        self.eca_apie = True
        self.eca_aiv = True
        self.problem_state = False
        self.regs = (0, 0, 0)  #: (GR0, GR1, GR2), written by W steps (§5.0.1, §6.1)
        #: the PSW condition code: the vCPU's private state, set by KVM's handle_pqap without a step
        #: (the doc's "CC := 3" is not a W: step); None = never set
        self.cc: int | None = None
        self.prog_block_sie = False  #: PROG_BLOCK_SIE (kvm_s390_vcpu_block_all)
        self.run_by: str | None = None  #: name of the actor that last ran KVM_RUN on it (for reports)

    @property
    def gr0(self) -> int:
        return self.regs[0]

    @property
    def gr1(self) -> int:
        return self.regs[1]

    @property
    def gr2(self) -> int:
        return self.regs[2]


GUEST_MEMORY = 1 << 30  #: 1 GiB of guest memory from address 0, all of it mapped for DMA (§4.2)
PAGE_SHIFT = 12


class Vm(KObject):
    """``struct kvm``: locks, reference count, CRYCB, pqap_hook, GISA registrations, PV state, vCPUs."""

    __slots__ = ("lock", "srcu", "users", "crycbd", "crycb", "pqap_hook", "pqap_hook_rwsem", "gisa",
                 "gisc_refs", "pv", "vcpus", "kvm_vfio", "unmapped", "apie", "facilities", "esca",
                 "shared_pages")
    kind = "vm"

    def __init__(self, name: str, vcpus: int, pv: bool) -> None:
        super().__init__(name)
        self.lock = Mutex("&kvm->lock", name)
        self.srcu = Srcu("&kvm->srcu", name)
        self.users = 1  #: the VM file's reference, never dropped in the model
        self.crycbd = 0x1000 | CRYCB_FORMAT2  #: format 2: APXA and MSAX3 installed (§4.2)
        self.crycb = Crycb(name, self)
        self.pqap_hook: MatrixMdev | None = None  #: NULL, or points at &mdev->pqap_hook
        self.pqap_hook_rwsem = RwSem("&kvm->arch.crypto.pqap_hook_rwsem", name)
        self.gisa = 0x2000_0000
        self.gisc_refs: dict[int, int] = {}  #: guest ISC -> registration count (replaced on change)
        self.pv = pv
        self.vcpus = tuple(Vcpu(self, i) for i in range(vcpus))
        for v in self.vcpus:
            v.pv = pv
        self.kvm_vfio = KvmVfioDevice(name, self)
        self.users += 1  #: the kvm-vfio device's reference
        #: DMA-unmapped (start, end) ranges of the guest memory (its VMM's container); pins fail there
        self.unmapped: tuple[tuple[int, int], ...] = ()
        self.apie = True
        self.facilities = frozenset({12, 15, 65})
        self.esca = pv  #: SCA in extended format (PV enable switches to it, §5.0.4; a PV guest has it)
        self.shared_pages: frozenset[int] = frozenset()  #: guest pages a PV guest shared (none, §4.2)


@dataclass
class World:
    """All modelled state of one schedule.  Built by :func:`apactors.model.build.build_world`."""

    machine: Machine
    bus: ApBus
    matrix_lock: Mutex  #: &matrix_dev->lock (pre-E4)
    mdevs_lock: Any  #: &matrix_dev->mdevs_lock, or the data lock D of an alternative
    guests_lock: Mutex  #: &matrix_dev->guests_lock
    matrix_dev: KObject  #: holds mdev_list and info (fields set below)
    vms: dict[str, Vm]
    mdevs: dict[str, MatrixMdev]  #: every mdev ever created, by name (freed ones stay, marked freed)
    workqueue_map: LockdepMap
    queue_serial: dict[int, int]
    #: actor name -> the mdev whose vfio device file that actor holds (an ``mdev`` actor's open file)
    files: dict[str, "MatrixMdev"] = field(default_factory=dict)
    #: mdev name -> guest name: the guest whose kvm-vfio device holds the mdev's group (§4.2, §4.3
    #: `create`), from the scenario's mdev actors and ``open_by``; static
    mdev_guests: dict[str, str] = field(default_factory=dict)
    #: mdev name -> name of the actor that holds its file when it is opened (the mdev actor); static
    mdev_holders: dict[str, str] = field(default_factory=dict)

    def vm(self, name: str) -> Vm:
        return self.vms[name]

    def locks(self) -> list[Any]:
        """Every lock instance of the world, in a deterministic order (for reports and checks)."""
        out: list[Any] = [self.matrix_lock, self.mdevs_lock, self.guests_lock, self.bus.perms_lock,
                          self.bus.scan_mutex, self.bus.queues_lock, self.workqueue_map]
        for vm in self.vms.values():
            out += [vm.lock, vm.srcu, vm.pqap_hook_rwsem]
            out += [v.mutex for v in vm.vcpus]
        for m in self.mdevs.values():
            out += [m.group.group_lock, m.group.notifier_rwsem, m.group.kvm_ref_lock, m.vdev.dev_set_lock]
        for d in self.bus.devices.values():
            out.append(d.device_lock)
        return out


class MatrixDev(KObject):
    """``matrix_dev``: the vfio_ap parent device with ``mdev_list`` and ``info`` (its QCI copy)."""

    __slots__ = ("mdev_list", "info", "available_instances")
    kind = "matrix_dev"

    def __init__(self, info: HostConfig) -> None:
        super().__init__("matrix_dev")
        self.mdev_list: tuple[MatrixMdev, ...] = ()
        self.info = info
        self.available_instances = 65535
