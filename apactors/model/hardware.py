"""The AP machine model (domain doc §6.5): answers of ZAPQ, TAPQ, AQIC and QCI.

:func:`install` makes a :class:`~apactors.model.world.Machine` execute instructions with
:func:`execute`; the paths issue them with ``Insn(name, apqn, arg)`` steps, one step per instruction.

State per APQN (``machine.queues``, a dict of immutable :class:`HwQueue`, replaced on change):

* ``reset_left``: a ZAPQ that answered 0x00 starts a reset; the next ``reset_left`` TAPQs answer 0x02
  ("reset in progress"), later ones 0x00 with ``queue_empty = 1`` and ``irq_enabled = 0``.
  The number is an environment choice ``k.choose(machine.reset_delays, "reset-delay")`` (default
  0 or 1). A ZAPQ while a reset is in progress answers 0x02 and changes nothing.
* ``irq``: the ``irq_enabled`` bit. AQIC enable sets it at once; AQIC disable answers 0x00 and the bit
  stays set for ``k.choose(machine.irq_clear_delays, "irq-clear-delay")`` more TAPQs (``irq_off_left``).
  ZAPQ clears it at once.

Every instruction on an APQN outside the machine's *current* configuration (``machine.apm/aqm``, which
the hmc operations change at once) answers 0x01 and forgets that APQN's state; an adapter marked
``machine.adapter_state[apid] = "deconfigured"`` / ``"checkstopped"`` answers 0x03 / 0x04.

Injected faults are off by default.  ``machine.faults[key] = (codes...)`` with key ``"ZAPQ"``,
``"TAPQ"``, ``"AQIC-enable"`` or ``"AQIC-disable"`` makes each such instruction on a configured queue
ask ``k.choose(1 + len(codes), "fault:<key>")``: 0 is the normal answer, ``i`` answers ``codes[i-1]``
with no effect on the queue (0x02, 0x05, 0x07, 0x0A are all "nothing changed now" answers).
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Instruction names (Insn.name).
ZAPQ = "ZAPQ"
TAPQ = "TAPQ"
AQIC = "AQIC"
QCI = "QCI"

# AP response codes (§6.3, drivers/s390/crypto/ap_bus.h).
RC_NORMAL = 0x00
RC_Q_NOT_AVAIL = 0x01
RC_RESET_IN_PROGRESS = 0x02
RC_DECONFIGURED = 0x03
RC_CHECKSTOPPED = 0x04
RC_BUSY = 0x05
RC_INVALID_ADDRESS = 0x06
RC_OTHERWISE_CHANGED = 0x07
RC_INVALID_GISA = 0x08
RC_STATE_CHANGE_IN_PROGRESS = 0x0A
RC_ASSOC_SECRET_NOT_UNIQUE = 0x35
RC_ASSOC_FAILED = 0x36

AP_DEVICE_TYPE_CEX4 = 10
DEFAULT_TYPE = 13  #: every adapter is CEX4 or newer (§4.2); the model's default type (CEX8)


class ApStatus(NamedTuple):
    """The AP queue status word (APQSW) an instruction returns, plus the adapter type TAPQ with the
    T bit returns in GR2 (``at``; 0 otherwise)."""

    rc: int
    queue_empty: int = 0
    replies_waiting: int = 0
    queue_full: int = 0
    irq_enabled: int = 0
    at: int = 0

    def word(self) -> int:
        """The 32-bit APQSW: bit 0 (MSB) queue_empty, 1 replies_waiting, 2 queue_full, 7
        irq_enabled, 8-15 response_code (§6.1)."""
        return ((self.queue_empty & 1) << 31 | (self.replies_waiting & 1) << 30
                | (self.queue_full & 1) << 29 | (self.irq_enabled & 1) << 24 | (self.rc & 0xFF) << 16)


def status(rc: int) -> ApStatus:
    """A status with only the response code set (``struct ap_queue_status`` built by software)."""
    return _STATUS_CACHE.get(rc) or ApStatus(rc)


_STATUS_CACHE = {rc: ApStatus(rc) for rc in range(0x40)}


class AqicControl(NamedTuple):
    """The AQIC interruption-control word (GR1) and NIB host address (GR2) of a *host* AQIC."""

    ir: int = 0
    gisc: int = 0
    isc: int = 0
    gisa: int = 0
    nib: int = 0


AQIC_DISABLE = AqicControl()


class HwQueue(NamedTuple):
    """Hardware state of one AP queue."""

    reset_left: int = -1  #: -1: no reset in progress; n > 0: n more TAPQs answer 0x02
    irq: int = 0
    irq_off_left: int = -1  #: -1: no disable pending; n >= 0: irq stays 1 for n more TAPQs


_FRESH = HwQueue()


def install(machine: Any) -> None:
    """Make ``machine.execute`` run this model."""
    machine.execute_fn = execute


def _put(machine: Any, apqn: int, st: HwQueue) -> None:
    queues = dict(machine.queues)
    queues[apqn] = st
    machine.queues = queues


def _forget(machine: Any, apqn: int) -> None:
    if apqn in machine.queues:
        queues = dict(machine.queues)
        del queues[apqn]
        machine.queues = queues


def _not_available(machine: Any, apqn: int) -> ApStatus | None:
    """0x01 / 0x03 / 0x04 when the APQN cannot be used now, else None."""
    apid = (apqn >> 8) & 0xFF
    if apid not in machine.apm or (apqn & 0xFF) not in machine.aqm:
        _forget(machine, apqn)
        return status(RC_Q_NOT_AVAIL)
    state = machine.adapter_state.get(apid) if machine.adapter_state else None
    if state == "deconfigured":
        return status(RC_DECONFIGURED)
    if state == "checkstopped":
        return status(RC_CHECKSTOPPED)
    return None


def _fault(machine: Any, k: Any, key: str) -> int | None:
    codes = machine.faults.get(key) if machine.faults else None
    if not codes:
        return None
    i = k.choose(1 + len(codes), "fault:" + key)
    return codes[i - 1] if i else None


def execute(machine: Any, k: Any, name: str, apqn: int, arg: Any) -> Any:
    """Execute one AP instruction for the actor ``k``; returns an :class:`ApStatus` (QCI: the
    current :class:`~apactors.model.world.HostConfig`)."""
    if name == TAPQ:
        return _tapq(machine, k, apqn, bool(arg))
    if name == ZAPQ:
        return _zapq(machine, k, apqn)
    if name == AQIC:
        return _aqic(machine, k, apqn, arg if arg is not None else AQIC_DISABLE)
    if name == QCI:
        return machine.config()
    raise ValueError(f"unknown AP instruction {name!r}")


def _adapter_type(machine: Any, apqn: int) -> int:
    types = machine.types
    return types.get((apqn >> 8) & 0xFF, DEFAULT_TYPE) if types else DEFAULT_TYPE


def _tapq(machine: Any, k: Any, apqn: int, t_bit: bool) -> ApStatus:
    bad = _not_available(machine, apqn)
    at = _adapter_type(machine, apqn) if t_bit else 0
    if bad is not None:
        if bad.rc != RC_Q_NOT_AVAIL and t_bit:  # 0x03/0x04: the architecture still fills the info
            return bad._replace(at=at)
        return bad
    code = _fault(machine, k, "TAPQ")
    if code is not None:
        return ApStatus(code, at=at)
    st = machine.queues.get(apqn, _FRESH)
    if st.reset_left > 0:
        # still resetting; after the last of these answers the reset is complete
        left = st.reset_left - 1
        _put(machine, apqn, st._replace(reset_left=left if left else -1))
        return ApStatus(RC_RESET_IN_PROGRESS, at=at)
    if st.irq_off_left > 0:
        _put(machine, apqn, st._replace(irq_off_left=st.irq_off_left - 1))
        return ApStatus(RC_NORMAL, queue_empty=1, irq_enabled=1, at=at)
    if st.irq_off_left == 0:
        st = st._replace(irq=0, irq_off_left=-1)
        _put(machine, apqn, st)
    return ApStatus(RC_NORMAL, queue_empty=1, irq_enabled=st.irq, at=at)


def _zapq(machine: Any, k: Any, apqn: int) -> ApStatus:
    bad = _not_available(machine, apqn)
    if bad is not None:
        return bad
    st = machine.queues.get(apqn, _FRESH)
    if st.reset_left > 0:
        return ApStatus(RC_RESET_IN_PROGRESS, irq_enabled=0)
    code = _fault(machine, k, "ZAPQ")
    if code is not None:
        return ApStatus(code, irq_enabled=st.irq)
    n = machine.reset_delays
    delay = k.choose(n, "reset-delay") if n > 1 else 0
    # delay 0: the reset is already complete (queue empty, interrupts off) at the next TAPQ
    _put(machine, apqn, HwQueue(reset_left=delay if delay else -1, irq=0, irq_off_left=-1))
    return ApStatus(RC_NORMAL, queue_empty=1, irq_enabled=0)


def _aqic(machine: Any, k: Any, apqn: int, ctl: AqicControl) -> ApStatus:
    bad = _not_available(machine, apqn)
    if bad is not None:
        return bad
    st = machine.queues.get(apqn, _FRESH)
    if ctl.ir:
        code = _fault(machine, k, "AQIC-enable")
        if code is not None:
            return ApStatus(code, irq_enabled=st.irq)
        _put(machine, apqn, st._replace(irq=1, irq_off_left=-1))
        return ApStatus(RC_NORMAL, queue_empty=1, irq_enabled=1)
    code = _fault(machine, k, "AQIC-disable")
    if code is not None:
        return ApStatus(code, irq_enabled=st.irq)
    if st.irq:
        n = machine.irq_clear_delays
        delay = k.choose(n, "irq-clear-delay") if n > 1 else 0
        _put(machine, apqn, st._replace(irq_off_left=delay))
    return ApStatus(RC_NORMAL, queue_empty=1, irq_enabled=st.irq)


__all__ = [
    "AP_DEVICE_TYPE_CEX4", "AQIC", "AQIC_DISABLE", "ApStatus", "AqicControl", "DEFAULT_TYPE", "HwQueue",
    "QCI", "RC_ASSOC_FAILED", "RC_ASSOC_SECRET_NOT_UNIQUE", "RC_BUSY", "RC_CHECKSTOPPED",
    "RC_DECONFIGURED", "RC_INVALID_ADDRESS", "RC_INVALID_GISA", "RC_NORMAL", "RC_OTHERWISE_CHANGED",
    "RC_Q_NOT_AVAIL", "RC_RESET_IN_PROGRESS", "RC_STATE_CHANGE_IN_PROGRESS", "TAPQ", "ZAPQ", "execute",
    "install", "status",
]
