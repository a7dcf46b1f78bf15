"""Shrinking failing traces (delta debugging over scenario and schedule) and the TOML writer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from apactors.api import explore, replay
from apactors.explore.shrink import GuidedReplay, ShrinkError, add_shrink_parser, cmd_shrink, schedule_of, shrink
from apactors.explore.toml import scenario_to_toml, toml_string
from apactors.scenario import builtin_scenarios, load_builtin, load_scenario_file, scenario_from_dict, scenario_from_toml
from apactors.trace.reader import read_trace
from toy_explore_schemes import ToyAbba, ToyAbbaNoisy, ToyOrdered, abba, noisy_abba, registered


@pytest.fixture(autouse=True)
def toys():
    with registered():
        yield


def _failing_trace(tmp_path: Path) -> Path:
    r = explore(ToyAbbaNoisy, noisy_abba(), schedules=40, seed=1, out=tmp_path / "run")
    deadlocks = [t for t in r.traces if json.loads(Path(t).read_text().splitlines()[-1])["outcome"] == "deadlock"]
    assert deadlocks, r.outcomes
    return Path(deadlocks[0])


def _deadlock_sig(findings: list[dict]) -> str:
    return next(f["signature"] for f in findings if f["kind"] == "deadlock")


def test_shrink_cuts_actors_and_operations_and_keeps_the_finding(tmp_path: Path):
    src = _failing_trace(tmp_path)
    original = read_trace(src)
    sig = _deadlock_sig(original.footer["findings"])
    res = shrink(src, tmp_path / "min.jsonl", signature=sig)
    assert res.signature == sig and res.kind == "deadlock"
    assert res.after["actors"] == 2 < res.before["actors"]
    assert res.after["operations"] == 2 < res.before["operations"]
    assert res.after["steps"] < res.before["steps"]
    assert res.depth == res.after["preemptions"] == 1 and res.depth_minimal
    # the shrunk trace replays exactly and shows the same signature
    rr = replay(res.trace)
    assert rr.reproduced and rr.outcome == "deadlock"
    assert sig in [f["signature"] for f in rr.findings.to_json()]
    # the scenario written next to it is valid and is the trace's scenario
    scen = load_scenario_file(res.scenario_file)
    assert Path(res.scenario_file) == (tmp_path / "min.toml")
    header = read_trace(res.trace).header
    assert scen == scenario_from_dict(header["scenario"])
    assert {op.verb for a in scen.actors for op in a.ops} == {"assign-adapter", "unassign-adapter"}
    assert read_trace(res.trace).footer["shrink"]["depth"] == 1


def test_shrink_is_deterministic(tmp_path: Path):
    src = _failing_trace(tmp_path)
    a = shrink(src, tmp_path / "a.jsonl")
    b = shrink(src, tmp_path / "b.jsonl")
    assert a.after == b.after and a.tests == b.tests
    assert Path(a.scenario_file).read_text().replace("a.jsonl", "X") == Path(b.scenario_file).read_text().replace(
        "b.jsonl", "X")


def test_shrink_refuses_a_trace_without_a_finding(tmp_path: Path):
    r = explore(ToyOrdered, abba(), schedules=1, seed=0, keep="all", out=tmp_path)
    with pytest.raises(ShrinkError, match="no finding"):
        shrink(r.traces[0])
    src = _failing_trace(tmp_path)
    with pytest.raises(ShrinkError, match="no finding with signature"):
        shrink(src, signature="deadlock-000000000000")


def test_shrink_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    src = _failing_trace(tmp_path)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_shrink_parser(sub)
    args = parser.parse_args(["shrink", str(src), "-o", str(tmp_path / "cli.jsonl"), "--json"])
    assert cmd_shrink(args) == 0
    doc = json.loads(capsys.readouterr().out)
    first = read_trace(src).footer["findings"][0]  # by default, the trace's first finding is kept
    assert doc["signature"] == first["signature"] and doc["kind"] == first["kind"]
    assert doc["after"]["actors"] == 2
    if doc["kind"] == "potential-deadlock":  # lockdep sees the cycle without any preemption
        assert doc["depth"] == 0
    assert Path(doc["trace"]).exists() and Path(doc["scenario_file"]).exists()
    bad = parser.parse_args(["shrink", str(tmp_path / "missing.jsonl")])
    from apactors.trace.reader import TraceError

    with pytest.raises(TraceError):
        cmd_shrink(bad)


def test_guided_replay_skips_missing_actors():
    from apactors.engine.controlled import run_schedule
    from apactors.engine.strategies import RandomStrategy

    sr = run_schedule(ToyAbba, abba(2), RandomStrategy(), seed=5)
    sched = schedule_of(sr.events)
    ghost = [("ghost", [])] + sched
    again = run_schedule(ToyAbba, abba(2), GuidedReplay(ghost), seed=0)
    assert schedule_of(again.events) == sched


def test_toml_writer_round_trips_every_builtin_scenario():
    for name, _ in builtin_scenarios():
        s = load_builtin(name)
        assert scenario_from_toml(scenario_to_toml(s, "a comment\nsecond line"), name) == s
    assert toml_string('a "b"\\\n\x7f') == '"a \\"b\\"\\\\\\n\\u007f"'
