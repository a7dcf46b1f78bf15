"""The AP machine model (domain doc §6.5): ZAPQ, TAPQ (T bit), AQIC, QCI, faults."""

from __future__ import annotations

import pytest

from apactors.model import hardware as hw
from apactors.model.masks import Mask
from apactors.model.world import HostConfig, Machine

Q = 0x0305  # 03.0005


class Ctx:
    """An execution context whose environment choices come from a script (default 0)."""

    def __init__(self, *choices: int) -> None:
        self.choices = list(choices)
        self.asked: list[tuple[int, str]] = []
        self.name = "test"

    def choose(self, n: int, label: str) -> int:
        self.asked.append((n, label))
        return self.choices.pop(0) if self.choices else 0


def machine(adapters=(3, 4), domains=(5, 6), cdoms=(5,)) -> Machine:
    m = Machine(HostConfig(Mask.of(adapters), Mask.of(domains), Mask.of(cdoms)))
    hw.install(m)
    return m


def test_status_word_layout():
    st = hw.ApStatus(0x07, queue_empty=1, irq_enabled=1)
    word = st.word()
    assert (word >> 16) & 0xFF == 0x07
    assert word >> 31 == 1
    assert (word >> 24) & 1 == 1
    assert hw.status(0x01).word() == 0x00010000


def test_qci_returns_the_current_configuration():
    m = machine()
    assert m.execute(Ctx(), hw.QCI, 0, None) == HostConfig(Mask.of([3, 4]), Mask.of([5, 6]), Mask.of([5]))
    m.apm = m.apm.without_id(4)
    assert m.execute(Ctx(), hw.QCI, 0, None).apm == Mask.of([3])


def test_unconfigured_apqn_answers_01_for_every_instruction():
    m = machine()
    k = Ctx()
    for apqn in (0x0505, 0x0307):  # adapter 5 / domain 7 not configured
        assert m.execute(k, hw.ZAPQ, apqn, None).rc == 0x01
        assert m.execute(k, hw.TAPQ, apqn, False).rc == 0x01
        assert m.execute(k, hw.AQIC, apqn, hw.AqicControl(ir=1)).rc == 0x01
    assert not k.asked, "no environment choice for an unavailable queue"
    # an hmc removal takes effect at once
    m.aqm = m.aqm.without_id(5)
    assert m.execute(k, hw.TAPQ, Q, False).rc == 0x01


def test_zapq_reset_completes_after_the_chosen_number_of_tapqs():
    m = machine()
    k = Ctx(1)  # reset in progress for one TAPQ
    st = m.execute(k, hw.ZAPQ, Q, None)
    assert st.rc == 0x00
    assert k.asked == [(2, "reset-delay")]
    assert m.execute(k, hw.ZAPQ, Q, None).rc == 0x02, "ZAPQ while the reset is in progress"
    assert m.execute(k, hw.TAPQ, Q, False).rc == 0x02
    st = m.execute(k, hw.TAPQ, Q, False)
    assert (st.rc, st.queue_empty, st.irq_enabled) == (0x00, 1, 0)
    assert m.execute(k, hw.ZAPQ, Q, None).rc == 0x00, "a new reset once the last one completed"


def test_zapq_with_no_delay_is_complete_at_once():
    m = machine()
    k = Ctx(0)
    assert m.execute(k, hw.ZAPQ, Q, None).rc == 0x00
    st = m.execute(k, hw.TAPQ, Q, False)
    assert (st.rc, st.queue_empty, st.irq_enabled) == (0x00, 1, 0)


def test_aqic_enable_disable_and_the_irq_bit():
    m = machine()
    k = Ctx(1)  # disable: irq_enabled stays set for one TAPQ
    st = m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1, gisc=3, isc=3, nib=0x1000))
    assert (st.rc, st.irq_enabled) == (0x00, 1)
    assert m.execute(k, hw.TAPQ, Q, False).irq_enabled == 1
    assert m.execute(k, hw.AQIC, Q, hw.AQIC_DISABLE).rc == 0x00
    assert k.asked == [(2, "irq-clear-delay")]
    assert m.execute(k, hw.TAPQ, Q, False).irq_enabled == 1
    assert m.execute(k, hw.TAPQ, Q, False).irq_enabled == 0
    assert m.execute(k, hw.TAPQ, Q, False).irq_enabled == 0


def test_zapq_disables_interrupts():
    m = machine()
    k = Ctx()
    m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1))
    m.execute(k, hw.ZAPQ, Q, None)
    assert m.execute(k, hw.TAPQ, Q, False).irq_enabled == 0


def test_tapq_t_bit_returns_the_adapter_type():
    m = machine()
    k = Ctx()
    assert m.execute(k, hw.TAPQ, Q, True).at == hw.DEFAULT_TYPE >= hw.AP_DEVICE_TYPE_CEX4
    assert m.execute(k, hw.TAPQ, Q, False).at == 0
    m.types[3] = 7  # a CEX3: older than CEX4
    assert m.execute(k, hw.TAPQ, Q, True).at == 7


def test_deconfigured_and_checkstopped_adapters():
    m = machine()
    k = Ctx()
    m.adapter_state[3] = "deconfigured"
    assert m.execute(k, hw.ZAPQ, Q, None).rc == 0x03
    st = m.execute(k, hw.TAPQ, Q, True)
    assert st.rc == 0x03 and st.at == hw.DEFAULT_TYPE
    m.adapter_state[3] = "checkstopped"
    assert m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1)).rc == 0x04


def test_faults_are_off_by_default_and_injected_by_choice():
    m = machine()
    k = Ctx()
    m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1))
    m.execute(k, hw.AQIC, Q, hw.AQIC_DISABLE)
    assert all(label in ("irq-clear-delay",) for _, label in k.asked)

    m = machine()
    m.faults["AQIC-enable"] = (0x07, 0x02)
    k = Ctx(1, 2, 0)
    st = m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1))
    assert st.rc == 0x07 and st.irq_enabled == 0, "an injected answer changes nothing"
    assert k.asked == [(3, "fault:AQIC-enable")]
    assert m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1)).rc == 0x02
    assert m.execute(k, hw.AQIC, Q, hw.AqicControl(ir=1)).rc == 0x00

    m = machine()
    m.faults["ZAPQ"] = (0x05,)
    k = Ctx(1)
    assert m.execute(k, hw.ZAPQ, Q, None).rc == 0x05
    assert m.execute(k, hw.TAPQ, Q, False).rc == 0x00, "a busy ZAPQ started no reset"


def test_unknown_instruction():
    with pytest.raises(ValueError):
        machine().execute(Ctx(), "NQAP", Q, None)
