"""The nine named invariants of a correct hotplug core (domain doc §9), and lifetime crash reports.

``kind: "invariant"`` findings carry ``"invariant": NAME`` with exactly these names:

==============================  ===================================================================
``crycb-matches-shadow``        at rest: each VM's CRYCB masks equal the shadow APCB (pre-E4: the matrix)
                                of the mdev attached to it, truncated to the CRYCB format; empty if none
``guest-apqn-bound``            at rest: every APQN of a CRYCB is a queue device bound to vfio_ap, in the
                                host configuration, and in the matrix of the mdev attached to that VM
``no-host-guest-sharing``       at rest: no APQN of a CRYCB is reserved (apmask x aqmask) or bound to a
                                default (zcrypt) driver
``no-mdev-sharing``             at rest: no APQN is in the matrices of two mdevs
``hook-owner``                  at rest (and no open/close of a device in progress for that VM): a VM's
                                pqap_hook is NULL or points into a live mdev whose kvm is that VM;
                                always: it never points into a freed mdev
``hook-before-apcb``            when KVM's handle_pqap takes its no-hook branch: the APQN the vCPU names
                                is not in its VM's CRYCB
``irq-only-for-guest-queues``   at rest: a queue object with interrupt state is linked to an mdev that is
                                attached to a VM whose CRYCB holds the queue's APQN
``no-leaked-irq-resources``     at rest: each guest page's pin count equals the number of live queue
                                objects whose saved NIB lies in it; each VM's GISC registration count per
                                ISC equals the number of live queue objects with that saved ISC for it
``reset-on-removal``            when an APQN enters a CRYCB or its queue is bound to a default driver:
                                since it last left a CRYCB a ZAPQ for it answered 0x00 or 0x03, unless its
                                adapter or domain was out of the host configuration when it left or left
                                it in between
==============================  ===================================================================

When the at-rest rules are evaluated: **at rest** means no task holds one of ``scheme.update_locks()``
(in any mode) and no open-coded marker is set (any mdev's ``kvm_busy``; a scheme may add its own with
an optional ``update_markers()`` method returning True while one is set, and ``open_coded_markers()``
returning the (object, field) pairs whose writes can clear one).  The state the rules read
changes only through ``Write``/``Update``/``Alloc``/``Free`` steps, so the checker keeps *dirty* bits,
set by such steps on the fields the rules read, one per group of rules (the guest-side rules; mdev
sharing; interrupt state and leaks), and evaluates the dirty groups at the first step at which the
world is at rest: the release of the last update lock, the end of an operation, or a relevant write
made while at rest.  A violation that persists from one evaluation to the next is reported once.
"The host configuration" is ``matrix_dev->info`` (E4 and alt-*),
``ap_bus->qci_info`` (pre-E4).  The guest's source masks are the shadow APCB unless the scheme's family is
``pre-E4`` (the matrix); a scheme may say ``guest_apcb_source = "matrix"`` to override.

Modelling readings (see :data:`READINGS`): the pins of a VM's guest page are the sum of the pin counts
of every vfio device whose IOMMU container is that VM (``vdev.pins``), freed mdevs included; a queue
object's saved NIB is attributed to ``q.saved_vm`` (the VM its GISC was registered with), else to the
container of its mdev's device.  ``reset-on-removal`` also exempts an APQN whose adapter or domain left
the machine's configuration, or was out of it when the APQN left the CRYCB (a reset is impossible there
and the machine resets the queue when it comes back).  The two interrupt-state rules also wait while a
task is inside a function that changes a queue's interrupt state in several steps
(:data:`IRQ_UPDATE_PATHS`): the doc's update locks cover those in every scheme but the alternatives whose
PQAP handler takes no update lock (``alt-queue-lock``, ``alt-srcu``), where the page pinned before the
AQIC would otherwise be reported as a leak.

Keys: the invariant name, the shape of the violation and the innermost kernel function of the most
recent change of the state involved (the path that broke it last).

:class:`LifetimeComponent` turns oopses into ``crash`` findings that name the freed object and the step
and path that freed it (or the step and path that set the pointer to NULL) and the step at which the
crashing task read the pointer.

Both run inside :class:`apactors.check.races.SharedStateChecker`; :func:`InvariantChecker` and
:func:`LifetimeChecker` are that observer with only one of them enabled.
"""

from __future__ import annotations

from typing import Any, Iterable

from apactors.check.explain import (Access, access_json, crash_story, describe, invariant_story, lock_classes,
                                    render_value, report_lines)
from apactors.check.findings import Finding
from apactors.check.shared_vars import instance_name, resolve
from apactors.model.masks import Mask, format_apqn

NO_ISC = 0xFF
PAGE_SHIFT = 12
CRYCB_FORMAT2 = 0x02
DEFAULT_DRIVERS = frozenset({"cex4queue"})
VFIO_AP = "vfio_ap"

INVARIANTS = ("crycb-matches-shadow", "guest-apqn-bound", "no-host-guest-sharing", "no-mdev-sharing",
              "hook-owner", "hook-before-apcb", "irq-only-for-guest-queues", "no-leaked-irq-resources",
              "reset-on-removal")

#: kernel functions that update a queue's interrupt state in several steps: while a task is inside one,
#: the interrupt-state rules wait (see READINGS)
IRQ_UPDATE_PATHS = frozenset({"vfio_ap_irq_enable", "vfio_ap_irq_disable", "vfio_ap_free_aqic_resources",
                              "apq_reset_check", "vfio_ap_mdev_reset_queue"})

READINGS = (
    "pins per guest page = sum over vfio devices whose container is the VM (freed mdevs included)",
    "a saved NIB counts for q.saved_vm, else for the container of q->matrix_mdev's device",
    "reset-on-removal: leaving the machine's configuration exempts as leaving the driver's copy does, and "
    "so does being out of either when the APQN leaves the CRYCB (the reset is impossible then)",
    "hook-before-apcb: the no-hook branch is the first pqap_hook read of a vcpu operation returning NULL",
    "irq-only-for-guest-queues and no-leaked-irq-resources also wait while a task is inside a function that "
    "updates a queue's interrupt state in several steps (IRQ_UPDATE_PATHS): in schemes whose PQAP handler "
    "holds no update lock (alt-queue-lock, alt-srcu) the pin taken before the AQIC is not a leak",
)

#: names used in stories for fields that are not declared shared variables
_FIELD_NAMES = {
    ("qdev", "driver"): "queue device driver binding", ("ap_bus", "devices"): "AP bus queue devices",
    ("ap_bus", "qci_info"): "ap_qci_info", ("vm", "gisc_refs"): "GISC registration counts",
    ("vdev", "pins"): "vfio pinned pages", ("vm", "crycbd"): "kvm->arch.crypto.crycbd",
    ("machine", "apm"): "AP configuration (adapters)", ("machine", "aqm"): "AP configuration (domains)",
}


def var_name(obj: Any, field: str) -> str:
    if ":" in field:
        base, _, sub = field.partition(":")
        return f"{var_name(obj, base)}[{sub}]"
    v = resolve(obj, field)
    if v is not None:
        return v.name
    return _FIELD_NAMES.get((getattr(obj, "kind", None), field), f"{getattr(obj, 'kind', '?')}.{field}")


def apqns(apm: Mask, aqm: Mask) -> Iterable[int]:
    for a in apm:
        for d in aqm:
            yield a << 8 | d



# component codes of a field: Var.inv = special handling code | dirty groups << 4
PLAIN, CRYCB, DRIVER, CONFIG, MACHINE, COUNTS, BUSY, QSTATE, HOOK, MARKER = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
#: groups of at-rest rules, re-evaluated only when a field they read changed
GUEST, SHARE, IRQ = 1, 2, 4  # guest-side rules; no-mdev-sharing; irq-only-for-guest-queues + leaks
ALL_GROUPS = GUEST | SHARE | IRQ
_CODES: dict[tuple[str, str], int] = {
    ("crycb", "masks"): CRYCB | (GUEST | IRQ) << 4,
    ("vm", "pqap_hook"): HOOK | GUEST << 4,
    ("vm", "crycbd"): PLAIN | GUEST << 4,
    ("vm", "gisc_refs"): COUNTS | IRQ << 4,
    ("vdev", "pins"): COUNTS | IRQ << 4,
    ("qdev", "driver"): DRIVER | GUEST << 4,
    ("machine", "apm"): MACHINE,
    ("machine", "aqm"): MACHINE,
    ("mdev", "kvm_busy"): BUSY,
    ("mdev", "kvm"): PLAIN | (GUEST | IRQ) << 4,
    ("matrix", "apm"): PLAIN | (GUEST | SHARE) << 4,
    ("matrix", "aqm"): PLAIN | (GUEST | SHARE) << 4,
    ("matrix", "adm"): PLAIN | GUEST << 4,
    ("q", "saved_isc"): QSTATE | IRQ << 4,
    ("q", "saved_iova"): QSTATE | IRQ << 4,
    ("q", "saved_pfn"): QSTATE | IRQ << 4,
    ("q", "matrix_mdev"): PLAIN | IRQ << 4,
    ("ap_bus", "devices"): PLAIN | GUEST << 4,
    ("ap_perms", "apm"): PLAIN | GUEST << 4,
    ("ap_perms", "aqm"): PLAIN | GUEST << 4,
    ("matrix_dev", "mdev_list"): PLAIN | SHARE << 4,
}


def _acc(rec: tuple) -> Access:
    """An access tuple ``(actor, stack, step, what, held, value)`` as an :class:`Access`."""
    return Access._make(rec)


class InvariantComponent:
    """Evaluates the nine invariants (see the module docstring for the rules and their timing)."""

    def __init__(self, owner: Any, world: Any, scheme: Any = None) -> None:
        self.owner = owner
        self.w = world
        self.scheme = scheme
        family = getattr(scheme, "family", "") or ""
        self.pre_e4 = family == "pre-E4"
        src = getattr(scheme, "guest_apcb_source", None)
        self.source = src or ("matrix" if self.pre_e4 else "shadow_apcb")
        ulocks = list(scheme.update_locks()) if scheme is not None and hasattr(scheme, "update_locks") else []
        self.ulocks = frozenset(ulocks)
        self.nheld = sum(len(lk.holders) for lk in ulocks)
        markers = getattr(scheme, "update_markers", None)
        self.markers = markers if callable(markers) else None
        # fields whose writes can clear an open-coded marker (the scheme's open_coded_markers(), when it
        # returns (object, field) pairs): such a write may end an update, so it is a point to evaluate at
        self.marker_fields: set[tuple[Any, str]] = set()
        pairs = getattr(scheme, "open_coded_markers", None)
        pairs = pairs() if callable(pairs) else None
        if isinstance(pairs, (tuple, list)):
            self.marker_fields = {(getattr(obj, "kind", None), field) for obj, field in pairs}
        self.busy = {id(m) for m in world.mdevs.values() if m.kvm_busy}
        self.dirty = 0  #: rule groups whose fields changed since their last evaluation
        self.found: dict[str, Finding] = {}
        #: per rule group: the violations seen at its last evaluation (reported once while they last)
        self.present: dict[int, set[tuple]] = {GUEST: set(), SHARE: set(), IRQ: set()}
        self._now: dict[int, set[tuple]] = {}
        self._group = 0
        self.last: dict[tuple[Any, str], tuple] = {}  #: last change of each relevant field (access tuple)
        self.opening: dict[str, int] = {}  #: VM name -> opens/closes in progress
        # live queue objects (setup is not observed: collect what it left)
        self.queues: dict[int, Any] = {}
        for d in world.bus.devices.values():
            if d.drvdata is not None:
                self.queues[id(d.drvdata)] = d.drvdata
        for m in world.mdevs.values():
            for q in m.qtable.values():
                self.queues[id(q)] = q
        self.dropped: list[tuple[Any, tuple]] = []  #: queue objects freed with interrupt state saved
        #: live queue objects with interrupt state (saved ISC or NIB)
        self.irq_queues: dict[int, Any] = {
            i: q for i, q in self.queues.items() if q.saved_isc != NO_ISC or q.saved_iova or q.saved_pfn}
        # reset-on-removal
        self.crycb_apqns: dict[Any, frozenset[int]] = {
            vm.crycb: frozenset(apqns(vm.crycb.apm, vm.crycb.aqm)) for vm in world.vms.values()}
        self.pending_reset: dict[int, tuple] = {}

    def findings(self) -> list[Finding]:
        return list(self.found.values())

    def code(self, kind: Any, field: str) -> int:
        """``Var.inv`` of a field: its special-handling code and the rule groups that read it."""
        if (kind, field) == (("ap_bus", "qci_info") if self.pre_e4 else ("matrix_dev", "info")):
            return CONFIG | GUEST << 4
        if (kind, field) in self.marker_fields:
            return MARKER
        return _CODES.get((kind, field), 0)

    # ------------------------------------------------------------------ events (from the observer)
    def at_rest(self) -> bool:
        return not self.nheld and not self.busy and (self.markers is None or not self.markers())

    def acquired(self) -> None:
        self.nheld += 1

    def released(self, step: int, p: Any) -> None:
        self.nheld -= 1
        if not self.nheld and self.dirty and self.at_rest():
            self.evaluate(step, p)

    def changed(self, step: int, p: Any, t: Any, op: Any, v: Any, kind: int, result: Any) -> None:
        inv = v.inv
        code = inv & 15
        obj = v.obj
        field = v.field
        value = result if kind == 1 else getattr(obj, field, result)
        if code == MACHINE:
            m = self.w.machine
            self._config_left(m.apm, m.aqm)
            return
        if code == MARKER:
            if self.dirty and self.at_rest():
                self.evaluate(step, p)
            return
        rec = (p.name, p.stack, step, "write" if kind == 1 else "update", t.held, value)
        self.last[(obj, field)] = rec
        self.dirty |= inv >> 4
        if code == QSTATE:
            if obj.saved_isc != NO_ISC or obj.saved_iova or obj.saved_pfn:
                self.irq_queues[id(obj)] = obj
            else:
                self.irq_queues.pop(id(obj), None)
        elif code == CRYCB:
            self._crycb_changed(step, p, t, obj, value)
        elif code == DRIVER:
            if value in DEFAULT_DRIVERS:
                self._default_bind(step, p, t, obj)
        elif code == CONFIG:
            self._config_left(value.apm, value.aqm)
        elif code == COUNTS:
            if kind != 1:
                self.last[(obj, f"{field}:{op.arg}")] = rec  # per page / per ISC
        elif code == HOOK:
            if value is not None and getattr(value, "freed", False):
                self._hook_freed(step, p, obj, value, "set to")
        elif code == BUSY:
            if value:
                self.busy.add(id(obj))
            else:
                self.busy.discard(id(obj))
        if not self.nheld and self.dirty and self.at_rest():
            self.evaluate(step, p)

    def zapq(self, apqn: int, result: Any) -> None:
        if self.pending_reset and getattr(result, "rc", None) in (0x00, 0x03):
            self.pending_reset.pop(apqn, None)

    def freed(self, step: int, p: Any, t: Any, obj: Any) -> None:
        rec = (p.name, p.stack, step, "free", t.held, obj)
        self.last[(obj, "freed")] = rec
        kind = obj.kind
        if kind == "q":
            self.queues.pop(id(obj), None)
            if self.irq_queues.pop(id(obj), None) is not None:
                self.dropped.append((obj, rec))  # freed with interrupt state still saved
                self.last[(obj, "dropped")] = rec
            self.dirty |= IRQ
        elif kind == "mdev":
            for vm in self.w.vms.values():
                if vm.pqap_hook is obj:
                    self._hook_freed(step, p, vm, obj, "left pointing at")
            self.dirty |= ALL_GROUPS
        else:
            return
        if self.at_rest():
            self.evaluate(step, p)

    def allocated(self, obj: Any) -> None:
        if obj.kind == "q":
            self.queues[id(obj)] = obj
        elif obj.kind == "mdev":
            self.dirty |= SHARE

    def begin(self, p: Any, operation: Any) -> None:
        if getattr(operation, "verb", None) in ("open", "close"):
            g = getattr(p.spec, "guest", None)
            if g is not None:
                self.opening[g] = self.opening.get(g, 0) + 1

    def end(self, step: int, p: Any, operation: Any) -> None:
        if getattr(operation, "verb", None) in ("open", "close"):
            g = getattr(p.spec, "guest", None)
            if g is not None and self.opening.get(g):
                self.opening[g] -= 1
                self.dirty |= GUEST
        if self.dirty and self.at_rest():
            self.evaluate(step, p)

    def on_end(self, step: int) -> None:
        if self.dirty and self.at_rest():
            self.evaluate(step, None)

    # ------------------------------------------------------------------ the at-rest rules
    def host_config(self) -> Any:
        return self.w.bus.qci_info if self.pre_e4 else self.w.matrix_dev.info

    def guest_masks(self, vm: Any, m: Any) -> tuple[Mask, Mask, Mask]:
        src = getattr(m, self.source)
        if vm.crycbd & CRYCB_FORMAT2:
            return (src.apm, src.aqm, src.adm)
        return (src.apm.truncated(64), src.aqm.truncated(16), src.adm.truncated(16))

    def evaluate(self, step: int, p: Any) -> None:
        """The at-rest rules of the groups whose fields changed since they were last evaluated."""
        dirty = self.dirty
        self.dirty = 0
        w = self.w
        mdevs = [m for m in w.mdevs.values() if not m.freed]
        if dirty & GUEST:
            self._begin_group(GUEST)
            for vm in w.vms.values():
                attached = [m for m in mdevs if m.kvm is vm]
                masks = vm.crycb.masks
                self._crycb_matches(step, p, vm, attached, masks)
                if masks[0] and masks[1]:
                    self._guest_apqns(step, p, vm, attached, masks)
                if vm.pqap_hook is not None and not self.opening.get(vm.name):
                    self._hook_owner(step, p, vm)
            self._end_group()
        if dirty & SHARE and len(mdevs) > 1:
            self._begin_group(SHARE)
            self._mdev_sharing(step, p, mdevs)
            self._end_group()
        if dirty & IRQ and self._irq_update_in_progress():
            self.dirty |= IRQ  # evaluated once the update of the interrupt state is complete
        elif dirty & IRQ:
            self._begin_group(IRQ)
            queues = list(self.irq_queues.values())
            self._irq_state(step, p, queues)
            self._leaks(step, p, queues, mdevs)
            self._end_group()

    def _irq_update_in_progress(self) -> bool:
        for t in self.owner.tasks.values():
            proc = t.proc
            if proc.gen is not None:
                for fn in proc.stack:
                    if fn in IRQ_UPDATE_PATHS:
                        return True
        return False

    def work_done(self, step: int, p: Any) -> None:
        """A work item's run ended (workers have no END event)."""
        if self.dirty and self.at_rest():
            self.evaluate(step, p)

    def _begin_group(self, group: int) -> None:
        self._group = group
        self._now[group] = set()

    def _end_group(self) -> None:
        g = self._group
        self.present[g] = self._now.pop(g)
        self._group = 0

    def _crycb_matches(self, step: int, p: Any, vm: Any, attached: list, masks: tuple) -> None:
        if not attached:
            if masks[0] or masks[1] or masks[2]:
                self._violation("crycb-matches-shadow", "no-mdev", (vm.name,), step, p,
                                f"VM {vm.name}'s CRYCB is {render_value(masks)} but no mdev is attached to it",
                                [(vm.crycb, "masks")] + [(m, "kvm") for m in self.w.mdevs.values()], vm=vm.name)
            return
        for m in attached:
            want = self.guest_masks(vm, m)
            if masks != want:
                diff = []
                for i, n in enumerate(("apm", "aqm", "adm")):
                    extra = masks[i] - want[i]
                    missing = want[i] - masks[i]
                    if extra:
                        diff.append(f"{n} has {render_value(extra)} not in the {self.source}")
                    if missing:
                        diff.append(f"{n} lacks {render_value(missing)}")
                shape = "extra" if any(masks[i] - want[i] for i in range(3)) else "missing"
                src = getattr(m, self.source)
                self._violation(
                    "crycb-matches-shadow", shape, (vm.name, m.name), step, p,
                    f"VM {vm.name}'s CRYCB {render_value(masks)} differs from {m.name}'s {self.source} "
                    f"{render_value(want)}: " + "; ".join(diff),
                    [(vm.crycb, "masks"), (src, "apm"), (src, "aqm"), (src, "adm"), (m, "kvm")],
                    vm=vm.name, mdev=m.name)

    def _guest_apqns(self, step: int, p: Any, vm: Any, attached: list, masks: tuple) -> None:
        w = self.w
        cfg = self.host_config()
        perms = w.bus.perms
        devices = w.bus.devices
        for apqn in apqns(masks[0], masks[1]):
            a, d = apqn >> 8, apqn & 0xFF
            qdev = devices.get(apqn)
            driver = qdev.driver if qdev is not None else None
            why = None
            if qdev is None or driver != VFIO_AP or a not in cfg.apm or d not in cfg.aqm or not any(
                    a in m.matrix.apm and d in m.matrix.aqm for m in attached):
                name = format_apqn(apqn)
                involved: list[tuple[Any, str]] = [(vm.crycb, "masks")]
                if qdev is None:
                    why, shape = f"no queue device {name} exists", "no-device"
                    involved.append((w.bus, "devices"))
                elif driver != VFIO_AP:
                    why, shape = f"queue {name} is bound to {driver or 'no driver'}, not vfio_ap", "not-vfio-ap"
                    involved.append((qdev, "driver"))
                elif a not in cfg.apm or d not in cfg.aqm:
                    why, shape = f"{name} is not in the host configuration", "not-in-config"
                    involved.append((w.bus, "qci_info") if self.pre_e4 else (w.matrix_dev, "info"))
                else:
                    why, shape = (f"{name} is not in the matrix of the mdev attached to {vm.name}" if attached
                                  else f"no mdev is attached to {vm.name}"), "not-in-matrix"
                    for m in attached:
                        involved += [(m.matrix, "apm"), (m.matrix, "aqm")]
                self._violation("guest-apqn-bound", shape, (vm.name, apqn), step, p,
                                f"VM {vm.name} can use {name}, but {why}", involved, vm=vm.name, apqn=name)
            reserved = a in perms.apm and d in perms.aqm
            if reserved or driver in DEFAULT_DRIVERS:
                name = format_apqn(apqn)
                why = (f"{name} is reserved for the host drivers (apmask x aqmask)" if reserved
                       else f"{name} is bound to the host driver {driver}")
                inv = [(vm.crycb, "masks"), (perms, "apm"), (perms, "aqm")]
                if qdev is not None:
                    inv.append((qdev, "driver"))
                self._violation("no-host-guest-sharing", "reserved" if reserved else "host-bound", (vm.name, apqn),
                                step, p, f"VM {vm.name} can use {name}, but {why}", inv, vm=vm.name, apqn=name)

    def _hook_owner(self, step: int, p: Any, vm: Any) -> None:
        h = vm.pqap_hook
        if getattr(h, "freed", False):
            self._hook_freed(step, p, vm, h, "at rest points at")
            return
        kvm = getattr(h, "kvm", None)
        if kvm is not vm:
            self._violation("hook-owner", "not-attached", (vm.name,), step, p,
                            f"VM {vm.name}'s pqap_hook points into mdev {h.name}, whose kvm is "
                            f"{render_value(kvm)}", [(vm, "pqap_hook"), (h, "kvm")], vm=vm.name, mdev=h.name)

    def _mdev_sharing(self, step: int, p: Any, mdevs: list) -> None:
        for i, m1 in enumerate(mdevs):
            for m2 in mdevs[i + 1:]:
                sa = m1.matrix.apm & m2.matrix.apm
                if not sa:
                    continue
                sd = m1.matrix.aqm & m2.matrix.aqm
                if sd:
                    shared = ", ".join(format_apqn(x) for x in apqns(sa, sd))
                    self._violation("no-mdev-sharing", "shared", (m1.name, m2.name), step, p,
                                    f"{shared} in the matrices of both {m1.name} and {m2.name}",
                                    [(m1.matrix, "apm"), (m1.matrix, "aqm"), (m2.matrix, "apm"),
                                     (m2.matrix, "aqm")], mdev=f"{m1.name},{m2.name}", apqn=shared)

    def _irq_state(self, step: int, p: Any, queues: list) -> None:
        for q in queues:
            iova = q.saved_iova or (q.saved_pfn << PAGE_SHIFT)
            if q.saved_isc == NO_ISC and not iova:
                continue
            m = q.matrix_mdev
            if m is not None and not m.freed and m.kvm is not None:
                crycb = m.kvm.crycb
                if q.apqn >> 8 in crycb.apm and q.apqn & 0xFF in crycb.aqm:
                    continue
            state = f"saved ISC {q.saved_isc if q.saved_isc != NO_ISC else 'none'}, NIB {iova:#x}"
            involved: list[tuple[Any, str]] = [(q, "saved_isc"), (q, "saved_iova"), (q, "matrix_mdev")]
            if m is None or m.freed:
                why, shape = "it is linked to no mdev", "unlinked"
            elif m.kvm is None:
                why, shape = f"its mdev {m.name} is attached to no VM", "no-vm"
                involved.append((m, "kvm"))
            else:
                why, shape = f"{format_apqn(q.apqn)} is not in VM {m.kvm.name}'s CRYCB", "not-in-crycb"
                involved.append((m.kvm.crycb, "masks"))
            self._violation("irq-only-for-guest-queues", shape, (q.name,), step, p,
                            f"queue {q.name} has interrupt state ({state}) but {why}", involved,
                            apqn=format_apqn(q.apqn))

    def _leaks(self, step: int, p: Any, queues: list, mdevs: list) -> None:
        w = self.w
        pins: dict[tuple[int, int], int] = {}  # (id(vm), page) -> pins
        vdevs: dict[int, list] = {}
        for m in w.mdevs.values():
            vm = m.vdev.container
            if vm is not None:
                vdevs.setdefault(id(vm), []).append(m.vdev)
                for page, n in m.vdev.pins.items():
                    key = (id(vm), page)
                    pins[key] = pins.get(key, 0) + n
        want_pins: dict[tuple[int, int], int] = {}
        want_gisc: dict[tuple[int, int], int] = {}
        for q in queues:
            iova = q.saved_iova or (q.saved_pfn << PAGE_SHIFT)
            owner = q.saved_vm
            if iova:
                pvm = owner
                if pvm is None and q.matrix_mdev is not None:
                    pvm = q.matrix_mdev.vdev.container
                if pvm is not None:
                    key = (id(pvm), iova >> PAGE_SHIFT)
                    want_pins[key] = want_pins.get(key, 0) + 1
            if q.saved_isc != NO_ISC and owner is not None:
                key = (id(owner), q.saved_isc)
                want_gisc[key] = want_gisc.get(key, 0) + 1
        if pins != want_pins:
            for vm in w.vms.values():
                i = id(vm)
                pages = sorted({pg for (v, pg) in pins if v == i} | {pg for (v, pg) in want_pins if v == i})
                for page in pages:
                    have, want = pins.get((i, page), 0), want_pins.get((i, page), 0)
                    if have != want:
                        shape = "pin-leak" if have > want else "pin-missing"
                        inv = [(vd, f"pins:{page}") for vd in vdevs.get(i, [])]
                        inv += ([(q, "dropped") for q, _ in self.dropped] if have > want
                                else [(q, "saved_iova") for q in queues])  # queues: those with state
                        self._violation("no-leaked-irq-resources", shape, (vm.name, "page", page), step, p,
                                        f"guest {vm.name} page {page << PAGE_SHIFT:#x} is pinned {have} time(s) but "
                                        f"{want} live queue object(s) have their saved NIB there", inv, vm=vm.name)
        for vm in w.vms.values():
            refs = vm.gisc_refs
            i = id(vm)
            mine = {isc: n for (v, isc), n in want_gisc.items() if v == i}
            if refs == mine:
                continue
            for isc in sorted(set(refs) | set(mine)):
                have, want = refs.get(isc, 0), mine.get(isc, 0)
                if have != want:
                    shape = "gisc-leak" if have > want else "gisc-missing"
                    inv = [(vm, f"gisc_refs:{isc}")]
                    inv += ([(q, "dropped") for q, _ in self.dropped] if have > want
                            else [(q, "saved_isc") for q in queues])
                    self._violation("no-leaked-irq-resources", shape, (vm.name, "isc", isc), step, p,
                                    f"VM {vm.name} has {have} GISC registration(s) for ISC {isc} but {want} live "
                                    f"queue object(s) saved that ISC for it", inv, vm=vm.name)

    # ------------------------------------------------------------------ the moment rules
    def no_hook_branch(self, step: int, p: Any, vm: Any) -> None:
        idx = getattr(p.spec, "vcpu", None) or 0
        if idx >= len(vm.vcpus):
            return
        vcpu = vm.vcpus[idx]
        apqn = vcpu.regs[0] & 0xFFFF
        if apqn >> 8 in vm.crycb.apm and apqn & 0xFF in vm.crycb.aqm:
            self._violation("hook-before-apcb", "no-hook", None, step, p,
                            f"vCPU {vcpu.name} names {format_apqn(apqn)}, which is in VM {vm.name}'s CRYCB, but "
                            "the pqap_hook is NULL: KVM answers 'queue not available' for the guest's own queue",
                            [(vm.crycb, "masks"), (vm, "pqap_hook")], vm=vm.name, apqn=format_apqn(apqn),
                            when="when KVM's handle_pqap took its no-hook branch")

    def _crycb_changed(self, step: int, p: Any, t: Any, crycb: Any, masks: Any) -> None:
        old = self.crycb_apqns.get(crycb, frozenset())
        new = frozenset(apqns(masks[0], masks[1]))
        self.crycb_apqns[crycb] = new
        if new == old:
            return
        here = (p.name, p.stack, step, "update", t.held, masks)
        for apqn in sorted(new - old):
            removal = self.pending_reset.pop(apqn, None)
            if removal is not None:
                self._reset_violation(step, apqn, removal, here, f"enters VM {crycb.owner.name}'s CRYCB")
        machine = self.w.machine
        cfg = self.host_config()
        for apqn in sorted(old - new):
            a, d = apqn >> 8, apqn & 0xFF
            if a in machine.apm and d in machine.aqm and a in cfg.apm and d in cfg.aqm:
                self.pending_reset.setdefault(apqn, here)
            # else: the queue is out of the host configuration: no reset is possible (exempt)

    def _default_bind(self, step: int, p: Any, t: Any, qdev: Any) -> None:
        removal = self.pending_reset.pop(qdev.apqn, None)
        if removal is not None:
            here = (p.name, p.stack, step, "write", t.held, qdev.driver)
            self._reset_violation(step, qdev.apqn, removal, here, f"is bound to the host driver {qdev.driver}")

    def _config_left(self, apm: Mask, aqm: Mask) -> None:
        if self.pending_reset:
            for apqn in list(self.pending_reset):
                if apqn >> 8 not in apm or apqn & 0xFF not in aqm:
                    del self.pending_reset[apqn]

    def _reset_violation(self, step: int, apqn: int, removal_t: tuple, here_t: tuple, what: str) -> None:
        removal, here = _acc(removal_t), _acc(here_t)
        name = format_apqn(apqn)
        key = f"invariant|reset-on-removal|{removal.path}|{here.path}"
        if key in self.found:
            return
        violation = (f"{name} left a CRYCB at step {removal.step} ({removal.path}) and {what} at step {here.step} "
                     f"({here.path}) with no ZAPQ answering 0x00/0x03 in between")
        var = "queue device driver binding" if here.what == "write" else "kvm->arch.crypto.crycb"
        story = (f"reset-on-removal broken at the moment {name} {what}: "
                 f"1. {describe(removal, 'kvm->arch.crypto.crycb')} (the APQN left it). 2. no ZAPQ of {name} answered 0x00 or 0x03 afterwards. "
                 f"3. {describe(here, var)}.")
        self.found[key] = Finding(
            "invariant", key, f"invariant reset-on-removal: {violation}",
            locks=lock_classes(here.held), paths=[removal.path, here.path], actors=[removal.actor, here.actor],
            step=step, details={"invariant": "reset-on-removal", "violation": violation, "apqn": name,
                                "when": "at the moment the APQN enters a CRYCB or is bound to a default driver",
                                "removal": access_json(removal), "reentry": access_json(here), "story": story},
            report=report_lines(f"INVARIANT reset-on-removal: {violation}",
                                [("left the CRYCB", removal, "kvm->arch.crypto.crycb"), ("came back", here, var)]))

    def _hook_freed(self, step: int, p: Any, vm: Any, mdev: Any, how: str) -> None:
        self._violation("hook-owner", "freed", None, step, p,
                        f"VM {vm.name}'s pqap_hook {how} the freed mdev {mdev.name}",
                        [(vm, "pqap_hook"), (mdev, "freed")], vm=vm.name, mdev=mdev.name,
                        when="always (it must never point into a freed mdev)")

    # ------------------------------------------------------------------ reporting
    def _violation(self, name: str, shape: str, subject: tuple | None, step: int, p: Any, text: str,
                   involved: list[tuple[Any, str]], when: str = "at rest", **ctx: Any) -> None:
        if subject is not None and self._group:
            mark = (name,) + subject  # the same rule broken for the same thing: one report while it lasts
            self._now[self._group].add(mark)
            if mark in self.present[self._group]:
                return  # the same violation, still there since the last evaluation
        last: list[tuple[str, Access]] = []
        seen = set()
        for obj, field in involved:
            rec = self.last.get((obj, field))
            if rec is not None and id(rec) not in seen:
                seen.add(id(rec))
                label = (getattr(obj, "vname", "?") if field in ("freed", "dropped")
                         else f"{var_name(obj, field)} of {instance_name(obj)}")
                last.append((label, _acc(rec)))
        last.sort(key=lambda x: x[1].step)
        pname = p.name if p is not None else "end of schedule"
        culprit = last[-1][1].path if last else "setup"
        key = f"invariant|{name}|{shape}|{culprit}"
        if key in self.found:
            return
        last = last[-4:]
        story = invariant_story(name, text, when if when != "at rest" else f"at rest after step {step} ({pname})",
                                last)
        locks: list[str] = []
        for _, a in last:
            for c in lock_classes(a.held):
                if c not in locks:
                    locks.append(c)
        details: dict[str, Any] = {"invariant": name, "violation": text, "when": when,
                                   "changes": [access_json(a) | {"var": v} for v, a in last], "story": story}
        details.update(ctx)
        self.found[key] = Finding(
            "invariant", key, f"invariant {name}: {text}", locks=locks, paths=[a.path for _, a in last],
            actors=sorted({a.actor for _, a in last}), step=step, details=details,
            report=report_lines(f"INVARIANT {name} ({when}): {text}", [("change", a, v) for v, a in last]))


class LifetimeComponent:
    """Crash findings for oopses (freed-object access, NULL dereference) with their causes.

    Rules: a freed-object access names the object, the task, path and step that freed it, and the step
    at which the crashing task read the pointer to it (if it read it from a declared pointer variable).
    A NULL dereference names the pointer variable the crashing task last read as NULL and the task, path
    and step that set it to NULL (or says it was not set to NULL in this schedule).  The key is the oops
    kind, the crashing path, the dereferenced expression and, for a use after free, the path that freed
    the object.
    """

    def __init__(self, owner: Any) -> None:
        self.found: dict[str, Finding] = {}
        self.freed_by: dict[int, tuple] = {}
        self.cleared_by: dict[tuple[int, str], tuple[str, tuple]] = {}

    def findings(self) -> list[Finding]:
        return list(self.found.values())

    def pointer_read(self, step: int, p: Any, t: Any, v: Any, result: Any) -> None:
        rec = (p.name, p.stack, step, "read", t.held, result)
        if result is None:
            t.null_read = (v, rec)
        else:
            t.ptr_reads[id(getattr(result, "owner", result))] = (v, rec)

    def cleared(self, step: int, p: Any, t: Any, v: Any) -> None:
        self.cleared_by[(id(v.obj), v.field)] = (v, (p.name, p.stack, step, "clear", t.held, None))

    def freed(self, step: int, p: Any, t: Any, obj: Any) -> None:
        self.freed_by[id(obj)] = (p.name, p.stack, step, "free", t.held, obj)

    def crash(self, step: int, p: Any, t: Any, oops: Any, op: Any) -> None:
        path = p.stack[-1] if p.stack else "?"
        crasher = Access(p.name, p.stack, step, oops.kind, t.held)
        obj = getattr(oops, "obj", None)
        freed = obtained = cleared = None
        obj_name = None
        if oops.kind == "use-after-free" and obj is not None:
            obj_name = getattr(obj, "vname", repr(obj))
            rec = self.freed_by.get(id(obj))
            freed = _acc(rec) if rec is not None else None
            got = t.ptr_reads.get(id(obj))
            obtained = (got[0].label, _acc(got[1])) if got is not None else None
        elif t.null_read is not None:
            v, rec = t.null_read
            obtained = (v.label, _acc(rec))
            c = self.cleared_by.get((id(v.obj), v.field))
            cleared = (c[0].label, _acc(c[1])) if c is not None else None
        expr = oops.expr
        # A NULL dereference is a defect of the dereferencing path, whoever cleared the pointer; a use
        # after free is also one of the path that freed the object too early.
        cause = freed.path if freed is not None else "-"
        key = f"crash|{oops.kind}|{path}|{expr.split('(')[0]}|{cause}"
        if key in self.found:
            return
        story = crash_story(oops.kind, expr, crasher, obj_name, freed, obtained, cleared)
        if oops.kind == "use-after-free":
            tail = f", freed by {freed.actor} in {freed.path} at step {freed.step}" if freed else ""
        else:
            tail = (f"; {cleared[0]} was set to NULL by {cleared[1].actor} in {cleared[1].path} at step "
                    f"{cleared[1].step}" if cleared else "")
        summary = f"{oops.kind} in {path} ({p.name}): {expr}{tail}"
        details: dict[str, Any] = {"oops": oops.kind, "expr": expr, "story": story, "crash": access_json(crasher)}
        events = []
        if obj_name is not None:
            details["object"] = obj_name
        if obtained is not None:
            details["obtained"] = access_json(obtained[1]) | {"var": obtained[0]}
            events.append(("pointer read", obtained[1], obtained[0]))
        if freed is not None:
            details["freed_by"] = access_json(freed)
            events.append(("freed", freed, obj_name))
        if cleared is not None:
            details["cleared_by"] = access_json(cleared[1]) | {"var": cleared[0]}
            events.append(("set to NULL", cleared[1], cleared[0]))
        events.append(("oops", crasher, None))
        actors = [p.name] + [a.actor for _, a, _ in events if a.actor != p.name]
        self.found[key] = Finding(
            "crash", key, summary, locks=lock_classes(crasher.held), paths=list(p.stack),
            actors=list(dict.fromkeys(actors)), step=step, details=details,
            report=report_lines(f"OOPS ({oops.kind}): {expr}", events))


def InvariantChecker(world: Any, scheme: Any = None, scenario: Any = None) -> Any:  # noqa: N802
    """The invariant checker alone (a checker factory for :data:`apactors.check.CHECKERS`)."""
    from apactors.check.races import SharedStateChecker

    return SharedStateChecker(world, scheme, scenario, races=False, stale=False, invariants=True, lifetime=False)


def LifetimeChecker(world: Any = None, scheme: Any = None, scenario: Any = None) -> Any:  # noqa: N802
    """Crash findings with their causes, alone (replaces :class:`apactors.check.progress.CrashChecker`)."""
    from apactors.check.races import SharedStateChecker

    return SharedStateChecker(world, scheme, scenario, races=False, stale=False, invariants=False, lifetime=True)


__all__ = ["INVARIANTS", "InvariantChecker", "InvariantComponent", "LifetimeChecker", "LifetimeComponent",
           "READINGS"]
