"""The blocking rules of the modelled lock kinds (domain doc §2, §8.4)."""

from __future__ import annotations

from apactors.model.locks import READ, RECURSIVE_READ, WRITE, Mutex, RwLock, RwSem, Srcu, WaitQueue
from apactors.model.ops import Acquire, PrepareWait, SynchronizeSrcu, WaitWoken, WakeAll


class Ctx:
    def __init__(self, name: str, arrival: int = 0) -> None:
        self.name = name
        self.arrival = arrival


def test_mutex_excludes_and_trylock_fails_without_blocking():
    m = Mutex("&kvm->lock", "g0")
    a, b = Ctx("a"), Ctx("b")
    assert Acquire(m).perform(a) is True
    assert not Acquire(m).enabled(b)
    try_op = Acquire(m, try_=True)
    assert try_op.enabled(b) and try_op.perform(b) is False
    assert m.release("a")
    assert Acquire(m).enabled(b)
    assert not m.release("a"), "releasing a lock one does not hold is reported"


def test_fair_rwsem_waiting_writer_blocks_later_readers():
    s = RwSem("&kvm->arch.crypto.pqap_hook_rwsem", "g0")
    r1, w, r2 = Ctx("r1", 1), Ctx("w", 2), Ctx("r2", 3)
    Acquire(s, READ).perform(r1)
    assert not Acquire(s, WRITE).enabled(w)
    s.arrive("w", WRITE, 2)  # the writer now waits
    assert not Acquire(s, READ).enabled(r2), "a reader that came after a waiting writer must queue"
    early = Ctx("r0", 0)
    assert Acquire(s, READ).enabled(early), "a reader that arrived before the writer may still enter"
    s.release("r1")
    assert Acquire(s, WRITE).enabled(w)
    Acquire(s, WRITE).perform(w)
    assert not s.waiting_writers
    assert not Acquire(s, READ).enabled(r2)


def test_reader_preferring_rwlock_lets_readers_pass_a_waiting_writer():
    lk = RwLock("mdevs_rwlock", "matrix_dev")
    r1, w, r2 = Ctx("r1", 1), Ctx("w", 2), Ctx("r2", 3)
    Acquire(lk, RECURSIVE_READ).perform(r1)
    lk.arrive("w", WRITE, 2)
    assert not Acquire(lk, WRITE).enabled(w)
    assert Acquire(lk, RECURSIVE_READ).enabled(r2), "readers never wait for a waiting writer"
    Acquire(lk, WRITE)  # still blocked while any reader holds it
    Acquire(lk, RECURSIVE_READ).perform(r2)
    lk.release("r1")
    assert not Acquire(lk, WRITE).enabled(w)
    lk.release("r2")
    assert Acquire(lk, WRITE).enabled(w)


def test_srcu_synchronize_waits_only_for_sections_that_began_before_it():
    srcu = Srcu("&matrix_dev->pqap_srcu", "matrix_dev")
    a, b, s = Ctx("a"), Ctx("b"), Ctx("s")
    Acquire(srcu, RECURSIVE_READ).perform(a)
    sync = SynchronizeSrcu(srcu)
    assert not sync.enabled(s)
    Acquire(srcu, RECURSIVE_READ).perform(b)  # begins after the synchronize started
    srcu.release("a")
    assert sync.enabled(s), "a section that began later does not delay the grace period"


def test_wait_queue_wakeup_between_prepare_and_sleep_is_not_lost():
    wq = WaitQueue("m0.wait_for_kvm")
    a = Ctx("a")
    PrepareWait(wq).perform(a)
    assert not WaitWoken(wq).enabled(a)
    assert WakeAll(wq).perform(Ctx("waker")) == ["a"]
    assert WaitWoken(wq).enabled(a)
    WaitWoken(wq).perform(a)
    assert "a" not in wq.sleepers
