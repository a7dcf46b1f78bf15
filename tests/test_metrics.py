"""Cost metrics: the definitions on small hand-made streams, live tap == trace, exact aggregation."""

from __future__ import annotations

from collections import Counter

import pytest

from apactors.api import render_events, schedule_seed
from apactors.engine.controlled import run_schedule
from apactors.engine.strategies import make_strategy
from apactors.model.schemes.base import get_scheme
from apactors.report.metrics import (MetricsSummary, MetricsTap, ScheduleMetrics, Tracker, actor_kinds,
                                     metrics_of_steps, percentile)
from apactors.scenario import resolve_scenario

KINDS = {"vcpu:g0/0": "vcpu", "vmm:g0": "vmm", "admin": "admin", "mdev:m0": "mdev"}


def ev(step: int, actor: str, op: str, **kw):
    return {"event": "step", "step": step, "actor": actor, "op": op, "path": kw.pop("path", "p"), "stack": [], **kw}


def acq(step, actor, lock, inst="x", mode="w", **kw):
    return ev(step, actor, "acquire", lock=lock, instance=inst, mode=mode, **kw)


def rel(step, actor, lock, inst="x", mode="w"):
    return ev(step, actor, "release", lock=lock, instance=inst, mode=mode)


def test_pqap_latency_runs_from_begin_to_end_of_a_pqap_operation():
    steps = [ev(0, "vcpu:g0/0", "begin", operation="pqap-aqic-enable 03.0005 isc=3"),
             ev(1, "admin", "begin", operation="assign-adapter m0 4"),
             ev(4, "vcpu:g0/0", "end", operation="pqap-aqic-enable 03.0005 isc=3"),
             ev(5, "admin", "end", operation="assign-adapter m0 4"),
             ev(6, "vcpu:g0/0", "begin", operation="pqap-aqic-disable 03.0005")]
    m = metrics_of_steps(steps, KINDS, 10)
    assert m.pqap == [4]
    assert m.pqap_incomplete == 1
    assert m.ops_completed == 2
    assert m.value("ops_per_kstep") == 200.0


def test_kvm_lock_hold_and_a_vcpu_waiting_behind_it_transitively():
    # vmm holds kvm->lock and vcpu->mutex; the vCPU arrives at step 3 for vcpu->mutex, gets it at 9
    steps = [acq(0, "vmm:g0", "&kvm->lock", "g0"),
             acq(1, "vmm:g0", "&vcpu->mutex", "g0/0"),
             ev(3, "vcpu:g0/0", "write", var="vcpu(g0/0).regs", value=1),
             rel(7, "vmm:g0", "&vcpu->mutex", "g0/0"),
             rel(8, "vmm:g0", "&kvm->lock", "g0"),
             acq(9, "vcpu:g0/0", "&vcpu->mutex", "g0/0")]
    m = metrics_of_steps(steps, KINDS, 10)
    assert m.kvm_holds == [8]
    assert m.behind_kvm["vcpu"] == [6]  # 9 - 3: its blocker released vcpu->mutex while holding kvm->lock
    assert m.contentions == Counter({"&vcpu->mutex": 1})
    assert m.contention_steps["&vcpu->mutex"] == 6


def test_an_uncontended_acquisition_is_no_wait_however_late_it_is_scheduled():
    steps = [acq(0, "admin", "L"), rel(2, "admin", "L"),
             ev(3, "mdev:m0", "read", var="v", value=0),
             acq(9, "mdev:m0", "L")]  # lock free since step 2 < its arrival at 3
    m = metrics_of_steps(steps, KINDS, 10)
    assert not m.contentions


def test_readers_do_not_contend_with_readers_but_a_writer_waits_for_them():
    steps = [acq(0, "vcpu:g0/0", "&matrix_dev->mdevs_rwsem", mode="r"),
             ev(1, "mdev:m0", "read", var="v", value=0),
             ev(1, "admin", "read", var="v", value=0),
             rel(4, "vcpu:g0/0", "&matrix_dev->mdevs_rwsem", mode="r"),
             acq(5, "mdev:m0", "&matrix_dev->mdevs_rwsem", mode="r"),
             rel(6, "mdev:m0", "&matrix_dev->mdevs_rwsem", mode="r"),
             acq(8, "admin", "&matrix_dev->mdevs_rwsem", mode="w")]
    m = metrics_of_steps(steps, KINDS, 10)
    assert m.contentions["&matrix_dev->mdevs_rwsem"] == 1  # only the writer, after the readers released
    assert m.writer_waits == [7]


def test_an_open_coded_wait_counts_only_when_the_actor_slept():
    quick = [ev(1, "admin", "prepare-wait", wq="rwl_wq", path="write_lock"),
             ev(2, "admin", "read", var="mdevs_rwlock.writer", value=False),
             ev(2, "admin", "finish-wait", wq="rwl_wq", path="write_lock")]
    assert not metrics_of_steps(quick, KINDS, 5).contentions
    slept = [ev(0, "admin", "acquire", lock="&matrix_dev->rwl_mutex", instance="matrix_dev", mode="w"),
             ev(1, "admin", "prepare-wait", wq="rwl_wq", path="write_lock"),
             ev(3, "vcpu:g0/0", "wake", wq="rwl_wq"),
             ev(4, "admin", "wait", wq="rwl_wq", path="write_lock"),
             ev(6, "admin", "finish-wait", wq="rwl_wq", path="write_lock")]
    m = metrics_of_steps(slept, KINDS, 10)
    assert m.contentions == Counter({"mdevs_rwlock (rwl_wq)": 1})
    assert m.writer_waits == [6]  # from its arrival at the first prepare_to_wait (step 0) to finish_wait


def test_sie_entry_spin_behind_a_crycb_write_under_kvm_lock():
    steps = [acq(0, "mdev:m0", "&kvm->lock", "g0"),
             ev(1, "mdev:m0", "write", var="vcpu(g0/0).prog_block_sie", value=True),
             ev(2, "vcpu:g0/0", "acquire", lock="&vcpu->mutex", instance="g0/0", mode="w"),
             ev(6, "mdev:m0", "write", var="vcpu(g0/0).prog_block_sie", value=False),
             ev(7, "vcpu:g0/0", "block", on="vcpu g0/0: PROG_BLOCK_SIE cleared (kvm_s390_vcpu_unblock_all)")]
    m = metrics_of_steps(steps, KINDS, 10)
    assert m.contentions["PROG_BLOCK_SIE (SIE entry)"] == 1
    assert m.behind_kvm["vcpu"] == [5]


def test_percentile_is_nearest_rank_and_exact():
    h = Counter({1: 50, 2: 49, 100: 1})
    assert percentile(h, 0.5) == 1
    assert percentile(h, 0.99) == 2
    assert percentile(h, 1.0) == 100
    assert percentile(Counter(), 0.5) == 0


def test_summary_keeps_the_first_worst_schedule_and_merges_exactly():
    a, b = ScheduleMetrics(steps=10, pqap=[3, 9]), ScheduleMetrics(steps=20, pqap=[9, 4])
    s = MetricsSummary()
    s.add(a, 0, 100, "x")
    s.add(b, 1, 101, "x")
    assert s.worst["pqap_max"].schedule == 0  # ties keep the first
    assert s.pqap == Counter({9: 2, 3: 1, 4: 1})
    t = MetricsSummary()
    t.add(ScheduleMetrics(steps=5, pqap=[12]), 0, 7, "y")
    s.merge(t)
    assert (s.worst["pqap_max"].value, s.worst["pqap_max"].scenario) == (12, "y")
    assert s.to_json()["pqap"]["max"] == 12 and s.schedules == 3


@pytest.mark.parametrize("scheme", ["v5.12", "latest", "alt-unfair-rwlock", "alt-srcu"])
def test_live_tap_equals_the_metrics_of_the_rendered_trace(scheme):
    scen = resolve_scenario("storm", None)
    cls = get_scheme(scheme)
    strat = make_strategy("random")
    for i in range(3):
        tap = MetricsTap(actor_kinds(scen))
        sr = run_schedule(cls, scen, strat, index=i, seed=schedule_seed(3, i), record=True, events=tap)
        live = tap.finish(sr.steps)
        assert len(tap) == 0  # the tap keeps no event
        events: list[tuple] = []
        sr2 = run_schedule(cls, scen, strat, index=i, seed=schedule_seed(3, i), record=True, events=events)
        from_trace = metrics_of_steps(render_events(events), actor_kinds(scen.to_dict()), sr2.steps)
        assert live.to_json() == from_trace.to_json()
        assert live.ops_completed and (live.pqap or live.pqap_incomplete)


def test_tracker_records_waits_for_the_timeline():
    t = Tracker(KINDS, record_waits=True)
    metrics_of_steps([acq(0, "admin", "L"), ev(1, "mdev:m0", "read", var="v", value=0), rel(3, "admin", "L"),
                      acq(4, "mdev:m0", "L")], KINDS, 5, t)
    assert t.waits == [("mdev:m0", 1, 4, "L", False, False)]
