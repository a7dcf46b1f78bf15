"""The lockdep-faithful checker and its wait-aware mode, on purpose-built toy schemes.

Each test states a lock order and the verdict lockdep gives for it (domain doc §8): ABBA across two
actors, a three-lock chain across three actors, recursive locking, nesting subclasses, trylock, fair
rw_semaphore readers vs recursive (SRCU) readers, no-validate classes, and a cycle only visible through
a wait queue (waitdep).  Reports are checked line by line against lockdep's layout (§8.5, §8.6).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Sequence

import pytest

import toy_lockdep_schemes as T
from apactors.api import explore
from apactors.check import CHECKERS
from apactors.check.lockdep import LockdepChecker, UnionGraph, _Task, analyse_events
from apactors.engine.controlled import run_schedule
from apactors.engine.strategies import RandomStrategy, Strategy
from apactors.model.schemes.base import register, unregister
from apactors.report.collect import collect
from apactors.report.dot import to_dot
from apactors.report.lockdep_cli import add_lockdep_parser, cmd_lockdep
from apactors.report.proc import proc_lock_stat, proc_lockdep, proc_lockdep_stats, run_json
from toy_schemes import ToyAbba, ToyOrdered, two_admins

TOYS = T.ALL + (ToyAbba, ToyOrdered)
GUESTS = "&matrix_dev->guests_lock"
MDEVS = "&matrix_dev->mdevs_lock"


@pytest.fixture(autouse=True)
def lockdep_on(monkeypatch):
    """Every schedule runs the lockdep checker (waitdep on); toy schemes are registered for replay."""
    monkeypatch.setitem(CHECKERS, "lockdep", lambda w, s, sc: LockdepChecker(w, s, sc))
    for cls in TOYS:
        register(cls)
    yield
    for cls in TOYS:
        unregister(cls.id)


class Serial(Strategy):
    """Always the first enabled actor: each actor runs its operations to the end before the next starts."""

    name = "serial"

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        return enabled[0]

    def choose(self, n: int, label: str) -> int:
        return 0


def potential(findings: list) -> list:
    return [f for f in findings if f.kind == "potential-deadlock"]


def serial(cls: Any, scen: Any):
    sr = run_schedule(cls, scen, Serial(), seed=0)
    return sr, potential(sr.findings)


def all_potential(cls: Any, scen: Any, schedules: int = 30, waitdep: bool = True) -> list:
    """Potential deadlocks of ``schedules`` random schedules (deduplicated by signature)."""
    out = {}
    for s in range(schedules):
        sr = run_schedule(cls, scen, RandomStrategy(), seed=s)
        ck = analyse_events(sr.events, cls, [a.name for a in scen.actors], waitdep=waitdep)
        for f in ck.findings():
            out.setdefault(f.signature, f)
    return list(out.values())


def checker_of(cls: Any, scen: Any, strategy: Strategy | None = None, seed: int = 0) -> LockdepChecker:
    sr = run_schedule(cls, scen, strategy or Serial(), seed=seed)
    return analyse_events(sr.events, cls, [a.name for a in scen.actors])


# --- circular dependencies ---------------------------------------------------------------------------

def test_abba_is_reported_from_a_schedule_that_never_deadlocked():
    sr, found = serial(ToyAbba, two_admins(repeat=1))
    assert sr.outcome == "ok", "the serial schedule never deadlocks"
    assert len(found) == 1
    f = found[0]
    assert f.details["checker"] == "lockdep" and f.details["type"] == "circular"
    assert f.details["confirmed"] is False and f.details["lockdep_sees"] is True
    # locks in cycle order (canonical rotation), the path and actor that made each edge
    assert f.locks == [GUESTS, MDEVS]
    assert f.paths == ["assign_adapter_store", "unassign_adapter_store"]
    assert f.actors == ["admin", "admin#1"]
    assert [(e["from"], e["to"], e["dep"]) for e in f.details["edges"]] == [(GUESTS, MDEVS, ["EN"]),
                                                                          (MDEVS, GUESTS, ["EN"])]
    assert f.details["closing"] == {"actor": "admin#1", "acquiring": GUESTS, "holding": MDEVS,
                                    "path": "unassign_adapter_store", "stack": ["unassign_adapter_store"],
                                    "step": f.step}


def test_abba_is_one_finding_with_a_stable_signature_across_seeds():
    a = explore(ToyAbba, two_admins(), schedules=30, seed=1, keep="none").of_kind("potential-deadlock")
    b = explore(ToyAbba, two_admins(), schedules=30, seed=7, keep="none").of_kind("potential-deadlock")
    assert len(a) == 1 and len(b) == 1
    assert a[0]["signature"] == b[0]["signature"]
    assert a[0]["count"] > 1
    assert a[0]["checker"] == "lockdep" and a[0]["locks"] == [GUESTS, MDEVS]


def test_ordered_locking_has_no_cycle():
    assert not all_potential(ToyOrdered, two_admins(repeat=2))


def test_circular_report_layout():
    _, (f,) = serial(ToyAbba, two_admins(repeat=1))
    lines = f.report.splitlines()
    title = "WARNING: possible circular locking dependency detected"
    assert lines[:4] == ["=" * len(title), title, "0.0.0-test-abba #1 Not tainted", "-" * len(title)]
    assert lines[4] == "admin#1/1001 is trying to acquire lock:"
    assert lines[5] == "matrix_dev (&matrix_dev->guests_lock){+.+.}-{3:3}, at: unassign_adapter_store+0x0/0x0"
    assert lines[7] == "but task is already holding lock:"
    assert lines[8] == "matrix_dev (&matrix_dev->mdevs_lock){+.+.}-{3:3}, at: unassign_adapter_store+0x0/0x0"
    assert lines[10] == "which lock already depends on the new lock."
    assert lines[13] == "the existing dependency chain (in reverse order) is:"
    i1 = lines.index("-> #1 (&matrix_dev->mdevs_lock){+.+.}-{3:3}:")
    i0 = lines.index("-> #0 (&matrix_dev->guests_lock){+.+.}-{3:3}:")
    assert i1 < i0, "reverse order: the held lock first, the new lock last"
    # the stack at which mdevs_lock was first taken under guests_lock, innermost first
    assert lines[i1 + 1:i1 + 5] == ["       lock_acquire+0x0/0x0", "       __mutex_lock+0x0/0x0",
                                    "       mutex_lock_nested+0x0/0x0", "       assign_adapter_store+0x0/0x0"]
    assert lines[i0 + 1:i0 + 4] == ["       check_prev_add+0x0/0x0", "       validate_chain+0x0/0x0",
                                    "       __lock_acquire+0x0/0x0"]
    assert "Chain exists of:" not in lines, "a two-lock cycle has no chain line"
    k = lines.index(" Possible unsafe locking scenario:")
    assert lines[k - 2] == "other info that might help us debug this:"
    assert lines[k + 2:k + 8] == [
        "       CPU0 (admin#1)          CPU1 (admin)",
        "       ----                    ----",
        "  lock(&matrix_dev->mdevs_lock);",
        "                               lock(&matrix_dev->guests_lock);",
        "                               lock(&matrix_dev->mdevs_lock);",
        "  lock(&matrix_dev->guests_lock);",
    ]
    assert lines[k + 9] == " *** DEADLOCK ***"
    assert lines[k + 11] == "1 lock held by admin#1/1001:"
    assert lines[k + 12] == " #0: matrix_dev (&matrix_dev->mdevs_lock){+.+.}-{3:3}, at: unassign_adapter_store+0x0/0x0"
    b = lines.index("stack backtrace:")
    assert lines[b + 1] == "CPU: 0 PID: 1001 Comm: admin#1 Not tainted 0.0.0-test-abba #1"
    assert lines[b + 3] == "Call Trace:"
    assert lines[b + 4:b + 7] == [" dump_stack_lvl+0x0/0x0", " print_circular_bug+0x0/0x0",
                                  " check_noncircular+0x0/0x0"]
    assert lines[-1] == " unassign_adapter_store+0x0/0x0"
    # deterministic: the same schedule gives the same bytes
    assert serial(ToyAbba, two_admins(repeat=1))[1][0].report == f.report


def test_three_lock_chain_across_three_actors():
    scen = T.admins(1, 2, 3)
    sr, found = serial(T.ToyChain3, scen)
    assert sr.outcome == "ok"
    (f,) = found
    assert f.locks == ["&toy->a", "&toy->b", "&toy->c"]
    assert f.paths == ["take_a_then_b", "take_b_then_c", "take_c_then_a"]
    assert f.actors == ["admin0", "admin1", "admin2"]
    lines = f.report.splitlines()
    k = lines.index("Chain exists of:")
    assert lines[k + 1] == "  &toy->a --> &toy->b --> &toy->c"
    assert [ln for ln in lines if ln.startswith("-> #")] == [
        "-> #2 (&toy->c){+.+.}-{3:3}:", "-> #1 (&toy->b){+.+.}-{3:3}:", "-> #0 (&toy->a){+.+.}-{3:3}:"]
    u = lines.index(" Possible unsafe locking scenario:")
    assert lines[u + 2] == "       CPU0 (admin2)           CPU1 (admin1)"
    assert lines[u + 4:u + 8] == ["  lock(&toy->c);", "                               lock(&toy->b);",
                                  "                               lock(&toy->c);", "  lock(&toy->a);"]
    # any two of the three actors make no cycle
    for pair in ((1, 2), (2, 3), (1, 3)):
        assert not all_potential(T.ToyChain3, T.admins(*pair), schedules=10)


# --- recursion and subclasses ------------------------------------------------------------------------

def test_recursive_locking_of_two_vms_kvm_lock():
    sr, found = serial(T.ToyNested, T.admins(1, guests=2))
    assert sr.outcome == "ok"
    (f,) = found
    assert f.details["type"] == "recursive" and f.details["checker"] == "lockdep"
    assert f.details["same_instance"] is False and f.details["instances"] == ["g0", "g1"]
    assert f.locks == ["&kvm->lock", "&kvm->lock"]
    lines = f.report.splitlines()
    title = "WARNING: possible recursive locking detected"
    assert lines[:2] == ["=" * len(title), title] and lines[3] == "-" * len(title)
    assert lines[4:9] == ["admin0/1000 is trying to acquire lock:",
                          "g1 (&kvm->lock){+.+.}-{3:3}, at: lock_two_vms+0x0/0x0", "",
                          "but task is already holding lock:",
                          "g0 (&kvm->lock){+.+.}-{3:3}, at: lock_two_vms+0x0/0x0"]
    k = lines.index(" Possible unsafe locking scenario:")
    assert lines[k - 1] == "other info that might help us debug this:"
    assert lines[k + 2:k + 6] == ["       CPU0 (admin0)", "       ----", "  lock(&kvm->lock);", "  lock(&kvm->lock);"]
    assert " *** DEADLOCK ***" in lines and " May be due to missing lock nesting notation" in lines
    assert "1 lock held by admin0/1000:" in lines


def test_same_mutex_twice_is_recursive_on_one_instance_and_hangs():
    sr, found = serial(T.ToySelf, T.admins(1))
    assert sr.outcome == "hang", "a task blocked on a mutex it holds"
    (f,) = found
    assert f.details["type"] == "recursive" and f.details["same_instance"] is True


def test_a_nesting_subclass_is_fine():
    scen = T.admins(3, guests=2)
    assert not all_potential(T.ToyNested, scen, schedules=5)
    ck = checker_of(T.ToyNested, scen)
    assert set(ck.nodes) == {"&kvm->lock", "&kvm->lock/1"}
    assert [n.name for n in ck.nodes["&kvm->lock"].fwd] == ["&kvm->lock/1"]


# --- trylock, readers, no-validate ------------------------------------------------------------------

def test_trylock_adds_no_edge_into_the_trylocked_class():
    scen = T.admins(1, 2, repeat=2)
    assert not all_potential(T.ToyTrylock, scen)
    ck = checker_of(T.ToyTrylock, scen)
    assert "&toy->b" not in {n.name for n in ck.nodes["&toy->a"].fwd}
    assert "&toy->a" in {n.name for n in ck.nodes["&toy->b"].fwd}


def test_locks_taken_after_a_trylock_get_edges_from_it():
    (f,) = all_potential(T.ToyTrylock, T.admins(3, 4))
    assert f.locks == ["&toy->b", "&toy->c"] and f.details["checker"] == "lockdep"


def test_fair_rwsem_reader_against_a_mutex_is_a_cycle():
    (f,) = all_potential(T.ToyReaders, T.admins(1, 2, 3))
    assert f.locks == ["&toy->a", "&toy->sem"]
    deps = {(e["from"], e["to"]): e["dep"] for e in f.details["edges"]}
    assert deps == {("&toy->a", "&toy->sem"): ["EN"], ("&toy->sem", "&toy->a"): ["SN"]}
    # the class shows it is read-acquired: {.+.+} (never taken for write here) or {++++}
    assert "(&toy->sem){.+.+}-{3:3}" in f.report or "(&toy->sem){++++}-{3:3}" in f.report


def test_recursive_readers_srcu_are_not_a_cycle():
    scen = T.admins(1, 2, 3)
    assert not all_potential(T.ToySrcuReaders, scen, waitdep=False)
    assert not all_potential(T.ToySrcuReaders, scen, waitdep=True)
    ck = checker_of(T.ToySrcuReaders, scen)
    assert {n.name for n in ck.nodes["&toy->a"].fwd} == {"&toy->srcu"}, "the -(ER)-> edge is recorded"


def test_a_no_validate_class_is_never_in_a_cycle():
    scen = T.admins(1, 2)
    assert not all_potential(T.ToyNoValidate, scen)
    ck = checker_of(T.ToyNoValidate, scen)
    dev = ck.nodes["&dev->mutex"]
    assert not dev.validate and not dev.fwd and not dev.bwd


# --- waitdep ------------------------------------------------------------------------------------------

def test_a_cycle_only_visible_through_a_wait_queue():
    scen = T.admins(1, 2)
    (f,) = all_potential(T.ToyBusyFlag, scen)
    assert f.details["checker"] == "waitdep" and f.details["lockdep_sees"] is False
    assert f.locks == ["&toy->a", "(wait)&matrix_mdev->kvm_busy"]
    assert f.details["wait_nodes"] == ["(wait)&matrix_mdev->kvm_busy"]
    assert "waitdep: lockdep cannot see this cycle: it goes through (wait)&matrix_mdev->kvm_busy" in f.report
    assert not all_potential(T.ToyBusyFlag, scen, waitdep=False), "plain lockdep does not see it"
    # the same wait dropping the lock while sleeping (wait_event_cmd) is fine
    assert not all_potential(T.ToyBusyFlag, T.admins(1, 3))


def test_waiting_for_a_device_close_under_a_lock_the_close_takes():
    (f,) = all_potential(T.ToyClose, T.admins(1, 2))
    assert f.details["checker"] == "waitdep"
    assert f.locks == ["&toy->a", "(close)&vdev->device"]


def test_synchronize_srcu_under_a_lock_its_readers_take():
    scen = T.admins(1, 2)
    (f,) = all_potential(T.ToySrcuSync, scen)
    assert f.details["checker"] == "waitdep" and f.locks == ["&toy->a", "&toy->srcu"]
    assert "synchronize_srcu(&toy->srcu)" in f.report
    assert not all_potential(T.ToySrcuSync, scen, waitdep=False)


# --- cost --------------------------------------------------------------------------------------------

def test_each_chain_is_validated_once_per_task():
    few = checker_of(ToyOrdered, two_admins(repeat=2), RandomStrategy(), seed=1)
    many = checker_of(ToyOrdered, two_admins(repeat=40), RandomStrategy(), seed=1)
    assert many.validations == few.validations <= 4


def test_chains_recorded_cold_still_close_a_later_cycle():
    """Chains whose edges cannot be on a cycle of the union graph are only recorded; a later edge that
    closes a cycle through them must still be found, with the same report as without the shortcut."""
    union = UnionGraph()
    order = ["admin0", "admin1", "admin2"]
    for s in range(3):  # a -> b and b -> c only: acyclic, their chains become cold
        sr = run_schedule(T.ToyChain3, T.admins(1, 2), RandomStrategy(), seed=s)
        analyse_events(sr.events, T.ToyChain3, order, checker=LockdepChecker(None, T.ToyChain3, None, union=union))
    sr = run_schedule(T.ToyChain3, T.admins(1, 2, 3), Serial(), seed=0)
    fast = LockdepChecker(None, T.ToyChain3, None, union=union)
    for step, actor, stack, op, result, extra in sr.events:  # as the engine feeds it: no final materialize
        task = _Task(actor, order.index(actor))
        task.stack = stack
        fast.on_event(step, task, op, result, extra)
    plain = analyse_events(sr.events, T.ToyChain3, order, checker=LockdepChecker(None, T.ToyChain3, None,
                                                                               prefilter=False))
    assert [f.report for f in fast.findings()] == [f.report for f in plain.findings()]
    assert len(plain.findings()) == 1


# --- /proc files, JSON, DOT, the CLI --------------------------------------------------------------------

def test_proc_files_json_and_dot():
    run = collect(T.ToyChain3, T.admins(1, 2, 3, repeat=2), schedules=6, seed=0)
    text = proc_lockdep(run.graph)
    assert text.startswith("all lock classes:\n")
    assert "0000000000000001 FD:    3 BD:    3 +.+.: &toy->a\n -> [0000000000000002] &toy->b\n" in text
    stats = proc_lockdep_stats(run.graph)
    assert " lock-classes:                            3 [max: 8192]" in stats
    assert " direct dependencies:                     6 [max: 32768]" in stats
    assert " max locking depth:                       2" in stats
    ls = proc_lock_stat(run).splitlines()
    assert ls[0] == "lock_stat version 0.4" and set(ls[1]) == {"-"} and len(ls[1]) == 221
    assert ls[2].split() == ["class", "name", "con-bounces", "contentions", "waittime-min", "waittime-max",
                             "waittime-total", "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min",
                             "holdtime-max", "holdtime-total", "holdtime-avg"]
    rows = [m.group(1) for m in (re.match(r"^ +(&toy->\w):  ", ln) for ln in ls) if m]
    assert sorted(rows) == ["&toy->a", "&toy->b", "&toy->c"], "one line per class (none is read-acquired)"
    doc = run_json(run)
    assert [c["name"] for c in doc["classes"]] == ["&toy->a", "&toy->b", "&toy->c"]
    assert doc["lockdep_stats"]["lock-classes"] == 3
    assert sum(r["acquisitions"] for r in doc["lock_stat"]) > 0
    assert len(doc["cycles"]) == 1 and doc["cycles"][0]["checker"] == "lockdep"
    json.dumps(doc)  # serialisable
    dot = to_dot(run)
    assert "digraph lockdep {" in dot
    assert '"&toy->a" -> "&toy->b" [label="take_a_then_b (admin0)", color=red' in dot


def test_lock_stat_counts_contentions_in_steps():
    run = collect(ToyOrdered, two_admins(repeat=5), schedules=10, seed=3)
    rows = {(r["class"]): r for r in run_json(run)["lock_stat"]}
    g = rows[GUESTS]
    assert g["acquisitions"] == 10 * 10
    assert g["contentions"] > 0 and g["waittime_min"] >= 1 and g["waittime_max"] >= g["waittime_min"]
    assert g["holdtime_min"] >= 1
    assert rows[MDEVS]["contentions"] == 0, "mdevs_lock is only ever taken under guests_lock"


def _cli(tmp_path: Path, scheme: str, scen: dict, *extra: str) -> tuple[list[str], argparse.ArgumentParser]:
    lines = [f'name = "{scen["name"]}"', 'description = "cli test"', "[host]", "adapters = [1, 2, 3]",
             "domains = [5]", "[[mdev]]", 'name = "m0"']
    for a in scen["actors"]:
        lines += ["[[actor]]", 'kind = "admin"', f'name = "{a[0]}"', f'ops = ["assign-adapter m0 {a[1]}"]']
    path = tmp_path / "s.toml"
    path.write_text("\n".join(lines) + "\n")
    ap = argparse.ArgumentParser()
    add_lockdep_parser(ap.add_subparsers(dest="command"))
    return ["lockdep", "--scheme", scheme, "--scenario-file", str(path), "--schedules", "5", *extra], ap


def test_lockdep_command_text_json_dot(tmp_path: Path, capsys):
    argv, ap = _cli(tmp_path, "test-busy", {"name": "busy", "actors": [("setter", 1), ("waiter", 2)]})
    assert cmd_lockdep(ap.parse_args(argv)) == 1
    out = capsys.readouterr().out
    for head in ("# /proc/lockdep", "all lock classes:", "# /proc/lockdep_stats", "# /proc/lock_stat",
                 "lock_stat version 0.4", "0 that lockdep reports, 1 that only the wait-aware checker"):
        assert head in out
    assert "confirmed: a directed schedule deadlocks" in out
    assert "WARNING: possible circular locking dependency detected" in out
    assert cmd_lockdep(ap.parse_args(argv + ["--format", "json"])) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["cycles"][0]["checker"] == "waitdep" and doc["cycles"][0]["confirmed"] is True
    assert cmd_lockdep(ap.parse_args(argv + ["--format", "dot", "--lockdep-only"])) == 0
    assert "digraph lockdep" in capsys.readouterr().out
