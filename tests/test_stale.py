"""The stale-read detector on purpose-built toy schemes, with scripted and random schedules."""

from __future__ import annotations

import pytest

from apactors.api import explore
from apactors.check import CHECKERS
from apactors.check.stale import StaleReadChecker
from apactors.engine.controlled import run_schedule
from toy_race_schemes import (PAIR, Script, ToyStaleHook, ToyStaleKvm, ToyStaleKvmAba, ToyStaleKvmLocked,
                              ToyStaleScope, two_ops)

#: the store tests kvm (BEGIN + the read), the open runs entirely, then the store goes on
CHECK_CHANGE_ACT = ["admin:2", "admin#1", "admin"]


@pytest.fixture(autouse=True)
def stale_checker(monkeypatch):
    monkeypatch.delitem(CHECKERS, "shared-state", raising=False)  # the test installs its own part
    monkeypatch.setitem(CHECKERS, "stale", StaleReadChecker)


def stale(scheme, plan=CHECK_CHANGE_ACT):
    sr = run_schedule(scheme, two_ops(*PAIR), Script(plan), seed=0)
    assert sr.outcome == "ok"
    return [f for f in sr.findings if f.kind == "stale-read"]


def test_unlocked_test_then_act_under_the_lock_is_a_stale_read():
    (f,) = stale(ToyStaleKvm)
    d = f.details
    assert d["var"] == "matrix_mdev->kvm"
    assert d["check"]["path"] == "assign_adapter_store" and d["check"]["value"] == "NULL"
    assert d["check"]["locks"] == []
    assert d["change"]["actor"] == "admin#1" and d["change"]["path"] == "vfio_ap_mdev_set_kvm"
    assert d["change"]["value"] == "vm(g0)"
    assert d["change"]["locks"] == ["&matrix_dev->mdevs_lock@matrix_dev"]
    assert d["act"]["actor"] == "admin" and d["act"]["access"] == "write matrix_mdev->matrix.apm of mdev(m0)"
    assert d["check"]["step"] < d["change"]["step"] < d["act"]["step"]
    assert "1. check:" in d["story"] and "3. act:" in d["story"]
    assert f.paths == ["assign_adapter_store", "vfio_ap_mdev_set_kvm", "assign_adapter_store"]


def test_test_and_act_in_one_critical_section_is_silent():
    assert stale(ToyStaleKvmLocked) == []


def test_a_value_changed_back_before_the_act_is_not_stale():
    assert stale(ToyStaleKvmAba) == []


def test_a_decision_whose_function_returned_is_not_acted_on():
    assert stale(ToyStaleScope) == []


def test_using_a_pointer_after_it_was_cleared_is_a_stale_read():
    (f,) = stale(ToyStaleHook)
    d = f.details
    assert d["var"] == "kvm->arch.crypto.pqap_hook" and d["check"]["value"] == "mdev(m0)"
    assert d["change"]["value"] == "NULL"
    assert d["act"]["access"].startswith("use of mdev(m0)")


def test_random_schedules_find_it_once_with_a_count_and_a_stable_signature():
    a = explore(ToyStaleKvm, two_ops(*PAIR), schedules=60, seed=1, keep="none").of_kind("stale-read")
    b = explore(ToyStaleKvm, two_ops(*PAIR), schedules=60, seed=9, keep="none").of_kind("stale-read")
    assert len(a) == 1 and a[0]["count"] >= 1
    assert a[0]["signature"] == b[0]["signature"]
    locked = explore(ToyStaleKvmLocked, two_ops(*PAIR), schedules=60, seed=1, keep="none")
    assert locked.of_kind("stale-read") == []
