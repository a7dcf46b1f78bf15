"""Two-tier verdicts: every potential deadlock gets a witness schedule that really deadlocks, or a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest

import toy_lockdep_schemes as T
from apactors.api import explore, replay
from apactors.check import CHECKERS
from apactors.check.findings import FindingSet
from apactors.check.lockdep import LockdepChecker
from apactors.check.witness import confirm, confirm_all, slots_of, write_witness_trace
from apactors.engine.controlled import run_schedule
from apactors.engine.strategies import RandomStrategy, Strategy
from apactors.model.schemes.base import register, unregister
from toy_schemes import ToyAbba, two_admins

TOYS = T.ALL + (ToyAbba,)


@pytest.fixture(autouse=True)
def lockdep_on(monkeypatch):
    monkeypatch.setitem(CHECKERS, "lockdep", lambda w, s, sc: LockdepChecker(w, s, sc))
    for cls in TOYS:
        register(cls)
    yield
    for cls in TOYS:
        unregister(cls.id)


class Serial(Strategy):
    name = "serial"

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        return enabled[0]

    def choose(self, n: int, label: str) -> int:
        return 0


def potential(cls: Any, scen: Any, strategy: Strategy | None = None, tries: int = 30) -> Any:
    """The first potential deadlock of a serial schedule (or of random ones)."""
    for s in range(tries if strategy is None else 1):
        sr = run_schedule(cls, scen, strategy or RandomStrategy(), seed=s)
        found = [f for f in sr.findings if f.kind == "potential-deadlock"]
        if found:
            return found[0]
    raise AssertionError("no potential deadlock")


def test_abba_from_a_serial_schedule_gets_a_witness_that_replays_to_a_deadlock(tmp_path: Path):
    scen = two_admins(repeat=1)
    sr = run_schedule(ToyAbba, scen, Serial(), seed=0)
    assert sr.outcome == "ok"
    (f,) = [f for f in sr.findings if f.kind == "potential-deadlock"]
    v = confirm(ToyAbba, scen, f, attempts=10, seed=1)
    assert v.confirmed and v.why is None
    assert v.witness.outcome == "deadlock"
    assert v.deadlock["kind"] == "deadlock" and set(v.deadlock["actors"]) == {"admin", "admin#1"}
    v.apply(f)
    assert f.details["confirmed"] is True and f.details["witness_outcome"] == "deadlock"
    path = write_witness_trace(v, ToyAbba, scen, tmp_path / "witness.jsonl", seed=1)
    rr = replay(path)
    assert rr.reproduced, rr.divergence
    assert rr.outcome == rr.recorded_outcome == "deadlock"


def test_witness_search_is_deterministic():
    scen = two_admins(repeat=2)
    f = potential(ToyAbba, scen)
    a = confirm(ToyAbba, scen, f, attempts=10, seed=3)
    b = confirm(ToyAbba, scen, f, attempts=10, seed=3)
    assert a.confirmed and (a.index, a.seed, a.witness.steps) == (b.index, b.seed, b.witness.steps)


def test_three_lock_chain_is_confirmed_with_three_actors():
    scen = T.admins(1, 2, 3)
    f = potential(T.ToyChain3, scen, Serial())
    assert [(s.hold, s.want) for s in slots_of(f)] == [("&toy->a", "&toy->b"), ("&toy->b", "&toy->c"),
                                                       ("&toy->c", "&toy->a")]
    v = confirm(T.ToyChain3, scen, f, attempts=20, seed=0)
    assert v.confirmed and set(v.deadlock["actors"]) == {"admin0", "admin1", "admin2"}


def test_a_cycle_made_by_one_actor_alone_is_not_confirmed():
    scen = T.admins((1, 2, 3))
    f = potential(T.ToyChain3, scen, Serial())
    v = confirm(T.ToyChain3, scen, f, attempts=5, seed=0)
    assert not v.confirmed
    assert "made by the same actor (admin0)" in v.why


def test_fair_rwsem_cycle_is_confirmed_with_the_writer_queued():
    scen = T.admins(1, 2, 3)
    f = potential(T.ToyReaders, scen)
    v = confirm(T.ToyReaders, scen, f, attempts=40, seed=0)
    assert v.confirmed and v.deadlock["kind"] == "deadlock"
    waiters = {w["actor"]: w for w in v.deadlock["waiters"]}
    assert "admin2" in waiters["admin1"]["blocked_on"], "the second reader waits behind the queued writer"


def test_recursive_kvm_lock_needs_a_second_actor():
    one = T.admins(1, guests=2)
    f = potential(T.ToyNested, one, Serial())
    v = confirm(T.ToyNested, one, f, attempts=5, seed=0)
    assert not v.confirmed and v.why.startswith("only admin0 nests two &kvm->lock instances")
    both = T.admins(1, 2, guests=2)
    f = potential(T.ToyNested, both, Serial())
    v = confirm(T.ToyNested, both, f, attempts=20, seed=0)
    assert v.confirmed and v.deadlock["kind"] == "deadlock"


def test_same_instance_recursion_is_confirmed_by_a_self_deadlock():
    scen = T.admins(1)
    f = potential(T.ToySelf, scen, Serial())
    v = confirm(T.ToySelf, scen, f, attempts=2, seed=0)
    assert v.confirmed and v.deadlock["kind"] == "hang"


def test_a_class_cycle_on_different_instances_is_not_confirmed():
    scen = T.admins(4, 5, guests=2)
    f = potential(T.ToyNested, scen, Serial())
    assert f.locks == ["&kvm->lock", "&toy->a"]
    v = confirm(T.ToyNested, scen, f, attempts=10, seed=0)
    assert not v.confirmed
    assert "different instances" in v.why and "&kvm->lock@g0" in v.why and "&kvm->lock@g1" in v.why


def test_a_wait_queue_cycle_is_confirmed_by_an_actual_deadlock_and_replays(tmp_path: Path):
    scen = T.admins(1, 2)
    f = potential(T.ToyBusyFlag, scen)
    assert f.details["checker"] == "waitdep"
    v = confirm(T.ToyBusyFlag, scen, f, attempts=20, seed=0)
    # The progress checker knows who set the flag (the waitdep annotation), so the witness is a wait-for
    # cycle through the flag: an actual deadlock, not just a hang.
    assert v.confirmed and v.deadlock["kind"] == "deadlock"
    assert any("(wait)" in lk for lk in v.deadlock["locks"])
    rr = replay(write_witness_trace(v, T.ToyBusyFlag, scen, tmp_path / "w.jsonl"))
    assert rr.reproduced and rr.outcome == "deadlock"


def test_confirm_all_updates_explore_findings_and_writes_witness_traces(tmp_path: Path):
    scen = two_admins(repeat=1)
    r = explore(ToyAbba, scen, schedules=10, seed=2, keep="failing", out=tmp_path / "run")
    verdicts = confirm_all(r.findings, ToyAbba, scen, out=tmp_path / "witness", seed=2, attempts=10)
    assert len(verdicts) == 1 and verdicts[0].confirmed
    (pd,) = r.of_kind("potential-deadlock")
    assert pd["confirmed"] is True and pd["why"] is None
    assert pd["trace"].startswith(str(tmp_path / "witness"))
    rr = replay(pd["trace"])
    assert rr.reproduced and rr.outcome == "deadlock"


def test_findings_without_confirm_say_so():
    fs = FindingSet()
    sr = run_schedule(ToyAbba, two_admins(repeat=1), Serial(), seed=0)
    for f in sr.findings:
        fs.add(f, 0, 0, None)
    (pd,) = [f for f in fs.to_json() if f["kind"] == "potential-deadlock"]
    assert pd["confirmed"] is False and pd["why"] == "no witness search was run"
