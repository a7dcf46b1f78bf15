"""Strategies (random, rr, pct, portfolio, replay+random), the dependency relation, and the exhaustive
search with preemption bound and sleep sets, on toy schemes whose bugs have a known depth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apactors.api import explore, render_events, replay, schedule_seed, trace_header
from apactors.engine.controlled import run_schedule
from apactors.engine.dependency import EMPTY, Footprint, dependent, op_footprint, step_footprint
from apactors.engine.dfs import Dfs, DfsStrategy
from apactors.engine.pct import PctStrategy, miss_probability, pct_bound, schedules_for
from apactors.engine.portfolio import PortfolioStrategy
from apactors.engine.strategies import (
    STRATEGIES,
    PreemptionCounter,
    RandomStrategy,
    ReplayStrategy,
    ReplayThenRandom,
    RoundRobinStrategy,
    make_strategy,
    strategy_options,
)
from apactors.model.locks import Mutex, RwSem
from apactors.model.ops import Acquire, Block, Cond, Insn, Note, Read, Release, Sleep, Write
from apactors.model.world import MatrixDev, MatrixMdev
from apactors.trace.reader import read_trace
from apactors.trace.writer import write_trace
from toy_explore_schemes import (
    ToyAbba,
    ToyAbbaNoisy,
    ToyChoice,
    ToyIndependent,
    ToyOrdered,
    ToyWindow,
    abba,
    admins,
    registered,
    window,
)


@pytest.fixture(autouse=True)
def toys():
    with registered():
        yield


# --- registry --------------------------------------------------------------------------------------------

def test_registry_has_every_strategy_and_checks_options():
    assert {"random", "rr", "pct", "portfolio", "dfs"} <= set(STRATEGIES)
    assert isinstance(make_strategy("random"), RandomStrategy)
    pct = make_strategy("pct", depth=2, k=None)  # None options are ignored
    assert isinstance(pct, PctStrategy) and pct.depth == 2
    assert strategy_options("pct") == ["depth", "k", "n"]
    with pytest.raises(ValueError, match="does not take depth"):
        make_strategy("random", depth=3)
    with pytest.raises(KeyError, match="unknown strategy"):
        make_strategy("nope")
    dfs = make_strategy("dfs", preemptions=1)
    assert isinstance(dfs, DfsStrategy) and dfs.is_driver and dfs.preemptions == 1
    with pytest.raises(TypeError, match="search driver"):
        dfs.begin(0)


# --- PCT -------------------------------------------------------------------------------------------------

def _first_finding(strategy_name: str, seed: int, cap: int, **options) -> int:
    """Schedules until the first finding (``cap`` if none), as explore would run them."""
    scen = window()
    strat = make_strategy(strategy_name, **options)
    strat.prepare(ToyWindow, scen)
    for i in range(cap):
        sr = run_schedule(ToyWindow, scen, strat, index=i, seed=schedule_seed(seed, i), record=False)
        if sr.findings:
            return i + 1
    return cap


def test_pct_finds_a_depth_2_bug_much_sooner_than_random():
    seeds = range(16)
    pct = [_first_finding("pct", s, 2000, depth=2) for s in seeds]
    rnd = [_first_finding("random", s, 2000) for s in seeds]
    mean_pct, mean_rnd = sum(pct) / len(pct), sum(rnd) / len(rnd)
    assert max(pct) < 2000, "PCT finds the bug for every seed"
    assert mean_pct * 4 < mean_rnd, (mean_pct, mean_rnd)


def test_pct_prepare_estimates_k_and_reports_its_bound():
    strat = PctStrategy(depth=2)
    strat.prepare(ToyWindow, window())
    assert strat.k is not None and 5 <= strat.k <= 30 and strat.n == 2
    s = strat.summary(100)
    assert s["per_schedule_bound"] == pytest.approx(1 / (2 * strat.k))
    assert s["miss_probability"] == pytest.approx((1 - s["per_schedule_bound"]) ** 100)
    assert s["schedules_for_95pct"] == schedules_for(s["per_schedule_bound"])
    # params() rebuilds the prepared strategy: same schedules
    again = make_strategy("pct", **strat.params())
    a = run_schedule(ToyWindow, window(), strat, seed=7).events
    b = run_schedule(ToyWindow, window(), again, seed=7).events
    assert render_events(a) == render_events(b)


def test_pct_bound_arithmetic():
    assert pct_bound(3, 10, 1) == pytest.approx(1 / 3)
    assert pct_bound(2, 10, 3) == pytest.approx(1 / 200)
    assert miss_probability(0.5, 3) == pytest.approx(0.125)
    assert miss_probability(1.0, 1) == 0.0
    assert schedules_for(0.5, 0.75) == 2


def test_pct_is_deterministic_per_seed(tmp_path: Path):
    runs = [explore(ToyAbba, abba(2), strategy="pct", schedules=5, seed=4, keep="all", out=tmp_path / str(n))
            for n in range(2)]
    for a, b in zip(runs[0].traces, runs[1].traces):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    for t in runs[0].traces:  # any strategy's trace replays
        assert replay(t).reproduced


# --- round robin and portfolio --------------------------------------------------------------------------

def test_round_robin_switches_every_quantum():
    from apactors.explore.shrink import schedule_of

    strat = RoundRobinStrategy(quantum=1)
    sr = run_schedule(ToyIndependent, abba(), strat, seed=0)
    actors = [name for name, _ in schedule_of(sr.events)]
    # with a quantum of one step, the two admins alternate while both can run
    assert actors[:6] == ["admin", "admin#1"] * 3
    assert sr.outcome == "ok"


def test_portfolio_mixes_members_by_seed():
    p = PortfolioStrategy()
    p.prepare(ToyWindow, window())
    labels = [p.member_for(schedule_seed(0, i))[0] for i in range(30)]
    assert set(labels) == {"random", "pct-d2", "pct-d3"}
    assert labels == [PortfolioStrategy().member_for(schedule_seed(0, i))[0] for i in range(30)]
    assert p.params()["k"] == p.members[1][1].k  # type: ignore[attr-defined]
    found = [i for i in range(60)
             if run_schedule(ToyWindow, window(), p, seed=schedule_seed(0, i), record=False).findings]
    assert found, "the portfolio's PCT members find the window bug"
    s = p.summary(300)
    assert [m["depth"] for m in s["pct"]] == [2, 3]


# --- replay, then random ---------------------------------------------------------------------------------

def _recorded(tmp_path: Path):
    r = explore(ToyAbba, abba(2), schedules=1, seed=2, keep="all", out=tmp_path)
    return read_trace(r.traces[0])


def test_replay_then_random_follows_a_complete_trace_exactly(tmp_path: Path):
    tr = _recorded(tmp_path)
    strat = ReplayThenRandom(tr.schedule(), seed=1)
    sr = run_schedule(ToyAbba, abba(2), strat, seed=0)
    assert strat.switched_at is None
    assert render_events(sr.events) == tr.steps


def test_replay_then_random_continues_a_truncated_trace(tmp_path: Path):
    tr = _recorded(tmp_path)
    steps = tr.schedule()[:5]
    strat = ReplayThenRandom(steps, seed=3)
    sr = run_schedule(ToyAbba, abba(2), strat, seed=0)
    assert strat.switched_at == 5 and "ended" in strat.reason
    assert render_events(sr.events)[:5] == [e for e in tr.steps if e["step"] < 5][:5]
    # the continued run is itself a trace that replays exactly
    path = tmp_path / "continued.jsonl"
    header = trace_header(ToyAbba, abba(2), "replay+random", 3, 0, 0, "controlled", 50_000)
    write_trace(path, header, render_events(sr.events), {"outcome": sr.outcome, "steps": sr.steps, "findings": []})
    assert replay(path).reproduced
    # and the same seed continues the same way
    again = run_schedule(ToyAbba, abba(2), ReplayThenRandom(steps, seed=3), seed=0)
    assert render_events(again.events) == render_events(sr.events)


def test_replay_then_random_switches_at_a_divergence(tmp_path: Path):
    tr = _recorded(tmp_path)
    steps = tr.schedule()
    bad = list(steps)
    bad[3] = ("nobody", [])
    strat = ReplayThenRandom(bad, seed=0)
    sr = run_schedule(ToyAbba, abba(2), strat, seed=0)
    assert strat.switched_at == 3 and "nobody" in strat.reason
    assert sr.steps > 3


def test_preemption_counter_does_not_change_the_schedule():
    inner = RandomStrategy()
    counted = PreemptionCounter(RandomStrategy())
    a = run_schedule(ToyAbba, abba(3), inner, seed=11)
    b = run_schedule(ToyAbba, abba(3), counted, seed=11)
    assert render_events(a.events) == render_events(b.events)
    assert counted.preemptions == len(counted.points)
    # a schedule that runs each actor to completion has no preemption
    seq = PreemptionCounter(RoundRobinStrategy(quantum=1000))
    run_schedule(ToyOrdered, abba(2), seq, seed=0)
    assert seq.preemptions == 0


# --- dependency ------------------------------------------------------------------------------------------

def test_footprints_and_dependency():
    md = MatrixDev(None)
    m = MatrixMdev("m0")
    a, b = Mutex("&a", "x"), Mutex("&b", "x")
    fa, fb = op_footprint(Acquire(a)), op_footprint(Acquire(b))
    assert dependent(fa, op_footprint(Release(a))) and not dependent(fa, fb)
    r1, w1 = op_footprint(Read(md, "info")), op_footprint(Write(md, "info", 1))
    assert not dependent(r1, op_footprint(Read(md, "info")))  # two reads commute
    assert dependent(r1, w1) and not dependent(w1, op_footprint(Write(md, "mdev_list", ())))
    # a field of the mdev's matrix depends on freeing the mdev (its owner)
    from apactors.model.ops import Free

    assert dependent(op_footprint(Read(m.matrix, "apm")), op_footprint(Free(m)))
    blk = op_footprint(Block(Cond()))
    assert dependent(blk, w1) and not dependent(blk, r1) and not dependent(blk, blk)
    assert op_footprint(Sleep()) is EMPTY and op_footprint(Note("info", "x")) is EMPTY
    assert not dependent(op_footprint(Insn("TAPQ", 0x0305)), op_footprint(Insn("TAPQ", 0x0306)))
    assert dependent(op_footprint(Insn("TAPQ", 0x0305)), op_footprint(Insn("ZAPQ", 0x0305)))
    # a blocking acquisition of a fair rw_semaphore takes its place in the queue when it is yielded
    sem = RwSem("&s", "x")
    arrive = step_footprint(None, [], Acquire(sem, "r"))
    assert dependent(arrive, op_footprint(Acquire(sem)))
    assert step_footprint(None, [], Acquire(a)) is EMPTY
    assert dependent(Footprint(read_all=True, write_all=True), fa)


# --- exhaustive search -------------------------------------------------------------------------------------

def _search(cls, scen, **kw):
    d = Dfs(cls, scen, record=False, **kw)
    sigs, outcomes = set(), set()
    for sr in d:
        sigs |= {f.signature for f in sr.findings}
        outcomes.add((sr.outcome, json.dumps(sr.results, sort_keys=True, default=str)))
    return d.summary(), sigs, outcomes


def test_dfs_is_exhaustive_and_finds_the_abba_deadlock():
    s, sigs, _ = _search(ToyAbba, abba(), preemptions=2)
    assert s.exhaustive and s.preemptions == 2 and s.schedules > 1
    assert any(sig.startswith("deadlock-") for sig in sigs)
    assert s.to_json()["exhaustive"] is True


def test_dfs_needs_one_preemption_for_abba():
    s, sigs, _ = _search(ToyAbba, abba(), preemptions=0)
    assert s.exhaustive and not any(sig.startswith("deadlock-") for sig in sigs)
    s, sigs, _ = _search(ToyAbba, abba(), preemptions=1)
    assert any(sig.startswith("deadlock-") for sig in sigs)


def test_dfs_without_a_bug_completes_with_no_finding():
    for b in (0, 2, -1):
        s, sigs, _ = _search(ToyOrdered, abba(2), preemptions=b)
        assert s.exhaustive and not {x for x in sigs if not x.startswith("potential")}, sigs
        assert s.preemptions == (b if b >= 0 else None)


def test_sleep_sets_reduce_the_search_on_independent_actors():
    scen = abba()  # one store each; they share nothing
    plain, _, out_plain = _search(ToyIndependent, scen, preemptions=-1, sleep_sets=False)
    slept, _, out_slept = _search(ToyIndependent, scen, preemptions=-1, sleep_sets=True)
    assert plain.exhaustive and slept.exhaustive
    assert slept.schedules * 10 < plain.schedules, (slept.schedules, plain.schedules)
    assert out_plain == out_slept
    bplain, _, _ = _search(ToyIndependent, scen, preemptions=2, sleep_sets=False)
    bslept, _, _ = _search(ToyIndependent, scen, preemptions=2, sleep_sets=True)
    assert bslept.exhaustive and bslept.schedules < bplain.schedules


@pytest.mark.parametrize("bound", [0, 1, 2])
def test_sleep_sets_lose_no_outcome_under_a_bound(bound: int):
    scen = admins(["assign-domain m0 5", "assign-adapter m0 3"], ["unassign-adapter m0 3", "unassign-domain m0 5"])
    _, sigs_p, out_p = _search(ToyAbbaNoisy, scen, preemptions=bound, sleep_sets=False)
    _, sigs_s, out_s = _search(ToyAbbaNoisy, scen, preemptions=bound, sleep_sets=True)
    assert sigs_p == sigs_s and out_p == out_s


def test_dfs_explores_every_environment_choice():
    s, sigs, _ = _search(ToyChoice, admins(["assign-adapter m0 3"]), preemptions=0)
    assert s.exhaustive and s.schedules == 9  # 3 x 3 answers
    assert any(sig.startswith("crash-") for sig in sigs)
    _, sigs, _ = _search(ToyWindow, window(), preemptions=2)
    assert any(sig.startswith("crash-") for sig in sigs)


def test_dfs_respects_max_schedules_and_its_traces_replay(tmp_path: Path):
    d = Dfs(ToyAbba, abba(2), preemptions=2, max_schedules=5)
    results = list(d)
    assert len(results) == 5 and not d.summary().exhaustive
    assert [sr.index for sr in results] == list(range(5))
    failing = next(sr for sr in Dfs(ToyAbba, abba(), preemptions=1) if sr.outcome == "deadlock")
    path = tmp_path / "dfs.jsonl"
    header = trace_header(ToyAbba, abba(), "dfs", 0, failing.index, 0, "controlled", 50_000)
    write_trace(path, header, render_events(failing.events),
                {"outcome": failing.outcome, "steps": failing.steps, "findings": []})
    rr = replay(path)
    assert rr.reproduced and rr.outcome == "deadlock"
    with pytest.raises(RuntimeError):
        list(d)


def test_dfs_driver_from_the_registry():
    strat = make_strategy("dfs", preemptions=1)
    search = strat.driver(ToyAbba, abba(), max_schedules=None, max_steps=1000, record=False)
    n = sum(1 for _ in search)
    assert strat.summary(n)["exhaustive"] is True and strat.summary(n)["schedules"] == n
