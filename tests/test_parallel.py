"""``--jobs N``: a run split over worker processes gives exactly the sequential run's result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apactors.api import explore
from apactors.explore.parallel import RangeTask, explore_parallel, merge, run_range, split
from toy_explore_schemes import ToyAbba, abba, registered


@pytest.fixture(autouse=True)
def toys():
    with registered():
        yield


def _doc(result, out: Path) -> dict:
    doc = result.to_json()
    doc.pop("elapsed_s")
    return json.loads(json.dumps(doc).replace(str(out), "OUT"))


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}


def test_split_is_a_deterministic_partition():
    assert split(0, 4) == []
    for n, jobs in ((1, 2), (10, 3), (100, 2), (7, 8)):
        ranges = split(n, jobs)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a < b for a, b in ranges)
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
        assert split(n, jobs) == ranges


def test_two_jobs_give_the_sequential_result(tmp_path: Path):
    seq = explore(ToyAbba, abba(2), schedules=40, seed=3, out=tmp_path / "seq")
    one = explore_parallel(ToyAbba, abba(2), schedules=40, seed=3, out=tmp_path / "one", jobs=1)
    two = explore_parallel(ToyAbba, abba(2), schedules=40, seed=3, out=tmp_path / "two", jobs=2)
    assert _doc(one, tmp_path / "one") == _doc(two, tmp_path / "two") == _doc(seq, tmp_path / "seq")
    assert _files(tmp_path / "one") == _files(tmp_path / "two") == _files(tmp_path / "seq")
    assert two.of_kind("deadlock") and two.outcomes == seq.outcomes


def test_two_jobs_with_pct_on_a_builtin_scenario(tmp_path: Path):
    kw = dict(strategy="pct", strategy_options={"depth": 2}, schedules=16, seed=1, keep="all")
    one = explore_parallel("latest", "pqap-vs-unplug", out=tmp_path / "one", jobs=1, **kw)
    two = explore_parallel("latest", "pqap-vs-unplug", out=tmp_path / "two", jobs=2, **kw)
    assert _doc(one, tmp_path / "one") == _doc(two, tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert len(one.traces) == 16


def test_merge_folds_ranges_in_index_order_whatever_order_they_come(tmp_path: Path):
    from apactors.api import RunResult
    from apactors.explore.parallel import _checker_spec

    spec = (ToyAbba.id, ToyAbba.__module__, ToyAbba.__qualname__)
    tasks = [RangeTask(spec, abba(2).to_dict(), "random", {}, 9, a, b, 50_000, "controlled", str(tmp_path), "none",
                       _checker_spec()) for a, b in split(30, 3)]
    parts = [run_range(t) for t in tasks]
    fwd = RunResult("test-abba", "abba", "random", 9, 30, "controlled")
    rev = RunResult("test-abba", "abba", "random", 9, 30, "controlled")
    merge(fwd, parts)
    merge(rev, list(reversed(parts)))
    assert fwd.to_json() == rev.to_json()
    plain = explore_parallel(ToyAbba, abba(2), schedules=30, seed=9, keep="none", jobs=1, witness_attempts=0)
    docs = [fwd.to_json(), plain.to_json()]
    for doc in docs:
        doc.pop("elapsed_s")
    assert docs[0] == docs[1]


def test_search_drivers_cannot_be_split():
    with pytest.raises(ValueError, match="search driver"):
        explore_parallel(ToyAbba, abba(), strategy="dfs", schedules=4, jobs=2, keep="none")
