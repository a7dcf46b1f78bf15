"""The race detector on purpose-built toy schemes (and `latest`, which protects its shared state)."""

from __future__ import annotations

import pytest

from apactors.api import explore
from apactors.check import CHECKERS
from apactors.check.races import RaceChecker, SharedStateChecker
from toy_race_schemes import (PAIR, ToyCommonLock, ToyDifferentLocks, ToyHookRwsem, ToyHookRwsemWrite,
                              ToyTwoWorkers, ToyUnlockedWriter, ToyWaitQueue, ToyWaitQueueLate, ToyWork,
                              ToyWorkRace, two_ops)


@pytest.fixture(autouse=True)
def race_checker(monkeypatch):
    monkeypatch.delitem(CHECKERS, "shared-state", raising=False)  # the test installs its own part
    monkeypatch.setitem(CHECKERS, "races", RaceChecker)


def races(scheme, scenario=None, schedules=40, seed=1):
    r = explore(scheme, scenario or two_ops(*PAIR), schedules=schedules, seed=seed, keep="none")
    assert not r.errors, r.errors
    return r.of_kind("race")


def test_unlocked_read_races_with_a_locked_write():
    found = races(ToyUnlockedWriter)
    assert len(found) == 1, "one defect, one finding with a count"
    f = found[0]
    assert f["var"] == "matrix_mdev->matrix.apm" and f["instance"] == "mdev(m0)"
    assert f["count"] == 40
    acc = {a["path"]: a for a in f["accesses"]}
    assert set(acc) == {"assign_adapter_store", "matrix_show"}
    assert acc["assign_adapter_store"]["access"] == "write"
    assert acc["assign_adapter_store"]["locks"] == ["&matrix_dev->mdevs_lock@matrix_dev"]
    assert acc["matrix_show"]["access"] == "read" and acc["matrix_show"]["locks"] == []
    assert {a["actor"] for a in f["accesses"]} == {"admin", "admin#1"}
    assert all(isinstance(a["step"], int) for a in f["accesses"])
    assert "No lock was held by both" in f["story"]
    assert f["locks"] == ["&matrix_dev->mdevs_lock"]


def test_accesses_under_a_common_lock_are_silent():
    assert races(ToyCommonLock, schedules=60) == []


def test_different_locks_do_not_protect():
    (f,) = races(ToyDifferentLocks)
    locks = sorted(lk for a in f["accesses"] for lk in a["locks"])
    assert locks == ["&matrix_dev->guests_lock@matrix_dev", "&matrix_dev->mdevs_lock@matrix_dev"]


def test_two_readers_of_an_rwsem_do_not_exclude_each_other():
    (f,) = races(ToyHookRwsem)
    assert f["var"] == "kvm->arch.crypto.pqap_hook"
    assert {a["access"] for a in f["accesses"]} == {"write"}
    assert "only in read mode" in f["story"]
    assert races(ToyHookRwsemWrite, schedules=60) == [], "write mode excludes: protected"


def test_accesses_ordered_only_by_a_wait_queue_are_not_races():
    assert races(ToyWaitQueue, schedules=60) == []


def test_a_write_after_the_wake_up_is_a_race():
    (f,) = races(ToyWaitQueueLate)
    assert f["var"] == "matrix_mdev->shadow_apcb.apm"


def test_the_fork_of_a_worker_and_its_flush_order_accesses():
    assert races(ToyWork, two_ops(["assign-adapter m0 3"]), schedules=60) == []


def test_a_write_between_queue_work_and_flush_races_with_the_worker():
    found = races(ToyWorkRace, two_ops(["assign-adapter m0 3"]))
    assert found
    for f in found:
        assert f["var"] == "q->saved_isc"
        actors = {a["actor"] for a in f["accesses"]}
        assert actors == {"admin", "kworker/03.0005"}
        worker = next(a for a in f["accesses"] if a["actor"].startswith("kworker"))
        assert worker["path"] == "apq_reset_check"
        assert "(work_completion)(&q->reset_work)@03.0005" in worker["locks"]


def test_lockdep_maps_exclude_nobody():
    (f,) = races(ToyTwoWorkers, two_ops(["assign-adapter m0 3"]))
    assert f["var"] == "matrix_mdev->kvm_busy"
    assert {a["actor"] for a in f["accesses"]} == {"kworker/03.0005", "kworker/03.0006"}


def test_signature_is_stable_across_seeds():
    a = races(ToyUnlockedWriter, seed=1)
    b = races(ToyUnlockedWriter, seed=77)
    assert a[0]["signature"] == b[0]["signature"]


@pytest.mark.parametrize("scenario", ["pqap-vs-unplug", "remove-vs-close", "reset-vs-unplug", "unbind-bind"])
def test_latest_protects_its_shared_state(monkeypatch, scenario):
    monkeypatch.delitem(CHECKERS, "shared-state", raising=False)  # the test installs its own part
    monkeypatch.setitem(CHECKERS, "races", SharedStateChecker)
    r = explore("latest", scenario, schedules=25, seed=3, keep="none")
    assert not r.errors
    assert r.of_kind("race", "stale-read") == []
