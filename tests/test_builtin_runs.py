"""Every built-in scenario runs under `latest` end to end: controlled and free-running, and replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apactors.api import explore, replay
from apactors.scenario import builtin_scenarios

BUILTINS = [name for name, _ in builtin_scenarios()]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_scenario_runs_under_latest(name: str):
    r = explore("latest", name, schedules=20, seed=7, keep="none")
    assert not r.errors, r.errors
    assert sum(r.outcomes.values()) == 20
    assert r.steps > 20 * 5, "every schedule takes real steps"
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["scheme"] == "latest" and doc["scenario"] == name


def test_threads_mode_trace_of_a_real_scheme_replays(tmp_path: Path):
    r = explore("latest", "storm", schedules=2, seed=3, mode="threads", keep="all", out=tmp_path)
    assert not r.errors and len(r.traces) == 2
    for t in r.traces:
        rr = replay(t)
        assert rr.reproduced, rr.divergence
        assert rr.steps > 500


def test_storm_is_deterministic_per_seed(tmp_path: Path):
    a = explore("latest", "storm", schedules=3, seed=11, keep="all", out=tmp_path / "a")
    b = explore("latest", "storm", schedules=3, seed=11, keep="all", out=tmp_path / "b")
    assert [Path(p).read_bytes() for p in a.traces] == [Path(p).read_bytes() for p in b.traces]
