"""``apactors shrink TRACE``: the smallest scenario and schedule that still show the same finding.

Delta debugging over the scenario and the schedule.  A *candidate* (a smaller scenario, or another
schedule) is accepted only if running it gives a finding with the target signature, so the result is
always a real, replayable execution of a valid scenario.

1. **Scenario.**  Until nothing more can be removed: drop whole actors; lower ``repeat``; drop
   operations (ddmin over each actor's operations: halves, quarters, ..., single ones); drop mdevs and
   guests nothing refers to (with the idle actors that hold them), and unused vCPUs; then (unless
   ``host=False``) drop host adapters, domains and mask bits, and ids of the mdevs' matrices.  A
   smaller scenario is tested first by *guided replay* of the current schedule (each actor's steps
   keep their recorded order; steps of removed actors and operations are skipped), and if that loses
   the finding, by ``budget`` schedules of random and PCT with fixed seeds.
2. **Schedule.**  Preemptions are removed one at a time where possible (the preempting run of steps is
   moved after the preempted process's next run, by guided replay); then a bounded exhaustive search
   (:class:`apactors.engine.dfs.Dfs`) looks for a schedule with fewer preemptions, bound 0, 1, ....
   When the search for every smaller bound was exhaustive, the depth is *minimal* for the scenario.
3. **Output.**  The trace of the final schedule (``-o OUT``, default ``TRACE`` with ``.min.jsonl``) and
   the scenario as TOML next to it (``OUT`` with ``.toml``).  The preemption count of the final
   schedule is reported as the bug's observed depth.

Everything is deterministic: fixed seeds, a fixed order of candidates, no wall clock in decisions.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from apactors.engine.controlled import ScheduleResult, run_schedule
from apactors.engine.dfs import Dfs
from apactors.engine.pct import PctStrategy
from apactors.engine.process import Marker
from apactors.engine.strategies import (
    Divergence,
    PreemptionCounter,
    RandomStrategy,
    ReplayStrategy,
    Strategy,
)
from apactors.explore.toml import scenario_to_toml

Schedule = list[tuple[str, list[int]]]


class ShrinkError(Exception):
    """The trace cannot be shrunk: it does not replay, or shows no (or not the requested) finding."""


class GuidedReplay(Strategy):
    """Follow a recorded schedule as far as a changed scenario allows.

    Each actor's recorded steps keep their order: at every step, among the enabled processes that
    still have recorded steps, the one whose next recorded step comes first runs (with that step's
    environment choices).  Recorded steps of actors that are gone, or never become enabled, are
    skipped.  When no enabled process has recorded steps left, the process that ran last continues if
    it can, else the first enabled one (no needless preemption).
    """

    name = "guided"
    always_pick = True

    def __init__(self, steps: Sequence[tuple[str, Sequence[int]]]) -> None:
        self.steps = steps
        self.queues: dict[str, list[int]] = {}
        self.heads: dict[str, int] = {}
        self.choices: list[int] = []
        self.last: Any = None

    def begin(self, seed: int) -> None:
        self.queues = {}
        for i, (name, _) in enumerate(self.steps):
            self.queues.setdefault(name, []).append(i)
        self.heads = {name: 0 for name in self.queues}
        self.choices = []
        self.last = None

    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        best, best_pos = None, -1
        for p in enabled:
            q = self.queues.get(p.name)
            if q is None:
                continue
            h = self.heads[p.name]
            if h < len(q) and (best is None or q[h] < best_pos):
                best, best_pos = p, q[h]
        if best is not None:
            self.heads[best.name] += 1
            self.choices = list(self.steps[best_pos][1])
        else:
            self.choices = []
            best = self.last if self.last is not None and any(p is self.last for p in enabled) else enabled[0]
        self.last = best
        return best

    def choose(self, n: int, label: str) -> int:
        if self.choices:
            v = self.choices.pop(0)
            return v if v < n else 0
        return 0


def schedule_of(events: Sequence[tuple]) -> Schedule:
    """The schedule (actor and environment choices of every step) of a recorded event list."""
    out: Schedule = []
    last = -1
    for step, name, _stack, op, _result, extra in events:
        if step != last:
            last = step
            out.append((name, list(extra) if extra and op.__class__ is not Marker else []))
    return out


def scenario_size(s: Any) -> tuple[int, ...]:
    """What shrinking minimises, most important first."""
    h = s.host
    return (len(s.actors), sum(len(a.expanded_ops()) for a in s.actors), sum(a.repeat for a in s.actors),
            len(s.mdevs), len(s.guests), sum(g.vcpus for g in s.guests),
            len(h.adapters) + len(h.domains) + len(h.control_domains) + len(h.apmask) + len(h.aqmask)
            + len(h.unbound) + sum(len(m.adapters) + len(m.domains) + len(m.control_domains) for m in s.mdevs))


@dataclass
class Candidate:
    """A scenario with a schedule that shows the target finding."""

    scenario: Any
    schedule: Schedule
    preemptions: int
    steps: int

    def stats(self) -> dict[str, int]:
        s = self.scenario
        return {"actors": len(s.actors), "operations": sum(len(a.expanded_ops()) for a in s.actors),
                "steps": self.steps, "preemptions": self.preemptions}


@dataclass
class ShrinkResult:
    """What ``shrink`` produced.  ``depth`` is the preemption count of the shrunk schedule."""

    trace: str
    scenario_file: str
    source: str
    scheme: str
    signature: str
    kind: str
    summary: str
    depth: int
    depth_minimal: bool  #: exhaustive searches with every smaller bound found nothing
    before: dict[str, int]
    after: dict[str, int]
    tests: int  #: executions run while shrinking
    log: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"trace": self.trace, "scenario_file": self.scenario_file, "source": self.source,
                "scheme": self.scheme, "signature": self.signature, "kind": self.kind, "summary": self.summary,
                "depth": self.depth, "depth_minimal": self.depth_minimal, "before": self.before,
                "after": self.after, "tests": self.tests}


Edit = Callable[[dict[str, Any]], bool]


class Shrinker:
    """The state of one shrinking run (see the module docstring for the algorithm).

    ``best`` is the smallest candidate so far; every reduction is tried against it and replaces it
    when the finding survives.
    """

    def __init__(self, scheme_cls: Any, signature: str, max_steps: int, budget: int, dfs_budget: int,
                 seed: int, log: Callable[[str], None] | None) -> None:
        self.scheme_cls = scheme_cls
        self.signature = signature
        self.max_steps = max_steps
        self.budget = budget
        self.dfs_budget = dfs_budget
        self.seed = seed
        self.tests = 0
        self.messages: list[str] = []
        self._log = log
        self.finding: Any = None
        self.best: Candidate | None = None
        self.depth_minimal = False

    def log(self, msg: str) -> None:
        self.messages.append(msg)
        if self._log is not None:
            self._log(msg)

    # --- running candidates ----------------------------------------------------------------------------
    def run(self, scenario: Any, strategy: Strategy, seed: int = 0) -> tuple[ScheduleResult, int, list[tuple]]:
        """Run one schedule, counting its preemptions and recording its events."""
        counter = PreemptionCounter(strategy)
        events: list[tuple] = []
        self.tests += 1
        sr = run_schedule(self.scheme_cls, scenario, counter, seed=seed, max_steps=self.max_steps, record=True,
                          events=events)
        return sr, counter.preemptions, events

    def hit(self, sr: ScheduleResult) -> bool:
        """Does the schedule show the target finding?  (Remembers the finding.)"""
        for f in sr.findings:
            if f.signature == self.signature:
                self.finding = f
                return True
        return False

    def attempt(self, scenario: Any, schedule: Schedule, k: int, budget: int | None = None) -> Candidate | None:
        """A schedule of ``scenario`` that shows the finding: guided replay of ``schedule``, then search."""
        from apactors.api import schedule_seed

        try:
            sr, pre, events = self.run(scenario, GuidedReplay(schedule))
        except Exception:  # noqa: BLE001 - a model error on this candidate: not a candidate
            return None
        if self.hit(sr):
            return Candidate(scenario, schedule_of(events), pre, sr.steps)
        for j in range(self.budget if budget is None else budget):
            strat: Strategy = (RandomStrategy(), PctStrategy(depth=2, k=k), PctStrategy(depth=3, k=k))[j % 3]
            try:
                sr, pre, events = self.run(scenario, strat, seed=schedule_seed(self.seed, j))
            except Exception:  # noqa: BLE001
                return None
            if self.hit(sr):
                return Candidate(scenario, schedule_of(events), pre, sr.steps)
        return None

    # --- scenario reduction ----------------------------------------------------------------------------
    def _build(self, d: dict[str, Any]) -> Any:
        from apactors.model.build import build_world
        from apactors.scenario import scenario_from_dict

        try:
            s = scenario_from_dict(d, "<shrink>")
            build_world(self.scheme_cls, s)
        except Exception:  # noqa: BLE001 - invalid scenario, or refused at setup: not a candidate
            return None
        return s

    def _try(self, what: str, edit: Edit, budget: int | None = None) -> bool:
        """Apply ``edit`` to the best scenario; keep the result if it is smaller and still fails."""
        best = self.best
        assert best is not None
        d = copy.deepcopy(best.scenario.to_dict())
        if edit(d) is False:
            return False
        s = self._build(d)
        if s is None or scenario_size(s) >= scenario_size(best.scenario):
            return False
        c = self.attempt(s, best.schedule, max(1, best.steps), budget)
        if c is None:
            return False
        self.best = c
        self.log(f"{what}: {c.stats()}")
        return True

    def shrink_scenario(self, host: bool) -> None:
        """Passes over the reductions, in a fixed order, until a whole round removes nothing."""
        while True:
            size = scenario_size(self.best.scenario)  # type: ignore[union-attr]
            self._drop_actors()
            self._lower_repeats()
            self._drop_operations()
            self._drop_unused()
            if host:
                self._drop_host()
            if scenario_size(self.best.scenario) == size:  # type: ignore[union-attr]
                return

    def _names(self) -> list[str]:
        return [a.name for a in self.best.scenario.actors]  # type: ignore[union-attr]

    @staticmethod
    def _actor(d: dict[str, Any], name: str) -> dict[str, Any] | None:
        return next((a for a in d["actor"] if a["name"] == name), None)

    def _drop_actors(self) -> None:
        for name in reversed(self._names()):
            def edit(d: dict[str, Any], name: str = name) -> bool:
                n = len(d["actor"])
                d["actor"] = [a for a in d["actor"] if a["name"] != name]
                return len(d["actor"]) < n
            self._try(f"drop actor {name}", edit)

    def _lower_repeats(self) -> None:
        for name in self._names():
            r = 1
            while True:
                act = self._actor(self.best.scenario.to_dict(), name)  # type: ignore[union-attr]
                if act is None or r >= act["repeat"]:
                    break

                def edit(d: dict[str, Any], name: str = name, r: int = r) -> bool:
                    a = self._actor(d, name)
                    if a is None:
                        return False
                    a["repeat"] = r
                    return True
                if not self._try(f"repeat {r} for {name}", edit):
                    r += 1

    def _drop_operations(self) -> None:
        """ddmin over each actor's operations (``repeat`` unrolled): chunks of n/2, n/4, ..., 1."""
        for name in self._names():
            chunk = 0
            while True:
                act = self._actor(self.best.scenario.to_dict(), name)  # type: ignore[union-attr]
                if act is None:
                    break
                ops = act["ops"] * act["repeat"]
                n = len(ops)
                if n == 0:
                    break
                chunk = max(1, n // 2) if chunk == 0 else min(chunk, max(1, n // 2))
                removed = False
                for start in range(0, n, chunk):
                    def edit(d: dict[str, Any], start: int = start, chunk: int = chunk, ops: list[str] = ops,
                             name: str = name) -> bool:
                        a = self._actor(d, name)
                        if a is None:
                            return False
                        a["ops"] = ops[:start] + ops[start + chunk:]
                        a["repeat"] = 1
                        return True
                    if self._try(f"drop {', '.join(ops[start:start + chunk])!r} of {name}", edit):
                        removed = True
                        break  # the list changed: recompute it, same chunk size
                if not removed:
                    if chunk == 1:
                        break
                    chunk //= 2

    def _drop_unused(self) -> None:
        """Drop an mdev or a guest, with the actors that only hold it (an mdev actor without
        operations, kept for an mdev opened at setup; a vCPU or VMM actor without operations)."""
        s = self.best.scenario  # type: ignore[union-attr]
        for key, names in (("mdev", [m.name for m in s.mdevs]), ("guest", [g.name for g in s.guests])):
            for name in names:
                def edit(d: dict[str, Any], key: str = key, name: str = name) -> bool:
                    n = len(d[key])
                    d[key] = [x for x in d[key] if x["name"] != name]
                    d["actor"] = [a for a in d["actor"] if a["ops"] or a.get(key) != name]
                    return len(d[key]) < n
                self._try(f"drop {key} {name}", edit, 0)
        s = self.best.scenario  # type: ignore[union-attr]
        for g in s.guests:
            used = [a.vcpu or 0 for a in s.actors if a.kind == "vcpu" and a.guest == g.name]
            want = max(used) + 1 if used else 1
            if want < g.vcpus:
                def fewer_vcpus(d: dict[str, Any], name: str = g.name, want: int = want) -> bool:
                    for x in d["guest"]:
                        if x["name"] == name:
                            x["vcpus"] = want
                            return True
                    return False
                self._try(f"{want} vCPU(s) for guest {g.name}", fewer_vcpus, 0)

    def _drop_host(self) -> None:
        """Drop host adapters, domains and mask bits, then ids of the mdevs' matrices, one at a time."""
        h = self.best.scenario.to_dict()["host"]  # type: ignore[union-attr]
        for key in ("unbound", "apmask", "aqmask", "control_domains", "domains", "adapters"):
            for v in h[key]:
                def edit(d: dict[str, Any], key: str = key, v: Any = v) -> bool:
                    if v not in d["host"][key]:
                        return False
                    d["host"][key] = [x for x in d["host"][key] if x != v]
                    return True
                self._try(f"drop host.{key} {v}", edit, 0)
        for m in self.best.scenario.to_dict()["mdev"]:  # type: ignore[union-attr]
            for key in ("control_domains", "domains", "adapters"):
                for v in m[key]:
                    def drop_id(d: dict[str, Any], name: str = m["name"], key: str = key, v: Any = v) -> bool:
                        x = next((x for x in d["mdev"] if x["name"] == name), None)
                        if x is None or v not in x[key]:
                            return False
                        x[key] = [y for y in x[key] if y != v]
                        return True
                    self._try(f"drop {key[:-1].replace('_', ' ')} {v} of mdev {m['name']}", drop_id, 0)

    # --- schedule reduction ----------------------------------------------------------------------------
    def fewer_preemptions(self) -> None:
        """Remove preemptions one at a time: postpone a preempting run of steps until after the
        preempted process's next run (guided replay); keep the change if the finding survives."""
        improved = True
        while improved and self.best.preemptions > 0:  # type: ignore[union-attr]
            improved = False
            best = self.best
            assert best is not None
            for cand in _swaps(best.schedule):
                try:
                    sr, pre, events = self.run(best.scenario, GuidedReplay(cand))
                except Exception:  # noqa: BLE001
                    continue
                if self.hit(sr) and (pre, sr.steps) < (best.preemptions, best.steps):
                    self.best = Candidate(best.scenario, schedule_of(events), pre, sr.steps)
                    self.log(f"fewer preemptions: {self.best.stats()}")
                    improved = True
                    break

    def minimal_depth(self) -> None:
        """Bounded exhaustive searches with bounds 0, 1, ... below the current depth.

        The first schedule showing the finding replaces the best one; its depth is minimal because
        every smaller bound was searched exhaustively (sleep sets preserve every outcome).  A search
        that runs out of budget stops the descent (the depth is then not proven minimal).
        """
        best = self.best
        assert best is not None
        for b in range(best.preemptions):
            search = Dfs(self.scheme_cls, best.scenario, preemptions=b, max_schedules=self.dfs_budget,
                         max_steps=self.max_steps, record=True)
            for sr in search:
                self.tests += 1
                if self.hit(sr):
                    sr2, pre, events = self.run(best.scenario, ReplayStrategy(schedule_of(sr.events or [])))
                    if self.hit(sr2) and pre < best.preemptions:
                        self.best = Candidate(best.scenario, schedule_of(events), pre, sr2.steps)
                        self.log(f"bounded search with {b} preemption(s): {self.best.stats()}")
                        self.depth_minimal = True
                        return
            if not search.complete:
                self.log(f"bounded search with {b} preemption(s) ran out of budget")
                return
        self.depth_minimal = True


def _runs(schedule: Schedule) -> list[tuple[str, int, int]]:
    """Maximal runs of consecutive steps by one actor: (actor, start, end)."""
    out: list[tuple[str, int, int]] = []
    start = 0
    for i in range(1, len(schedule) + 1):
        if i == len(schedule) or schedule[i][0] != schedule[start][0]:
            out.append((schedule[start][0], start, i))
            start = i
    return out


def _swaps(schedule: Schedule) -> Iterator[Schedule]:
    """Schedules with one context switch postponed: a run of others' steps between two runs of actor A
    moves after A's second run."""
    runs = _runs(schedule)
    for i in range(len(runs) - 2):
        a, s0, e0 = runs[i]
        # the next run of actor a after runs[i]
        j = next((j for j in range(i + 2, len(runs)) if runs[j][0] == a), None)
        if j is None:
            continue
        _, s1, e1 = runs[i + 1]
        _, sj, ej = runs[j]
        middle = schedule[e0:sj]
        yield schedule[:e0] + schedule[sj:ej] + middle + schedule[ej:]


def default_out(trace_path: Path) -> Path:
    name = trace_path.name
    stem = name[:-len(".jsonl")] if name.endswith(".jsonl") else trace_path.stem
    return trace_path.with_name(f"{stem}.min.jsonl")


def shrink(trace_path: str | Path, out_path: str | Path | None = None, *, signature: str | None = None,
           budget: int = 24, dfs_budget: int = 2000, host: bool = True, seed: int = 0,
           log: Callable[[str], None] | None = None) -> ShrinkResult:
    """Shrink the failing schedule of ``trace_path``; write the result trace and its scenario (TOML).

    ``signature`` selects the finding to keep (default: the trace's first finding, in replay order).
    ``budget`` random/PCT schedules test a candidate scenario when guided replay loses the finding;
    ``dfs_budget`` caps each bounded search for a schedule with fewer preemptions; ``host=False`` keeps
    the host configuration and the mdevs' matrices as they are (by default ids are dropped one at a
    time where the finding survives).  Raises :class:`ShrinkError` for a trace that
    does not replay or shows no such finding, :class:`apactors.trace.TraceError` for an unreadable one.
    """
    from apactors.api import render_events, trace_header
    from apactors.model.schemes.base import get_scheme
    from apactors.scenario import scenario_from_dict
    from apactors.trace.reader import TraceError, read_trace
    from apactors.trace.writer import write_atomic, write_trace

    src = Path(trace_path)
    tr = read_trace(src)
    hdr = tr.header
    try:
        scheme_cls = get_scheme(hdr["scheme"])
    except KeyError as e:
        raise TraceError(f"{src}: header: {e.args[0]}") from None
    scen = scenario_from_dict(hdr["scenario"], str(src), key_prefix="header.scenario")
    max_steps = int(hdr.get("max_steps", 50_000))
    shr = Shrinker(scheme_cls, signature or "", max_steps, budget, dfs_budget, seed, log)
    try:
        sr, pre, events = shr.run(scen, ReplayStrategy(tr.schedule()))
    except Divergence as d:
        raise ShrinkError(f"{src}: the trace does not replay ({d}); shrink needs a trace that reproduces") from None
    sigs = [f.signature for f in sr.findings]
    if not sigs:
        raise ShrinkError(f"{src}: replaying the trace shows no finding; nothing to shrink")
    if signature is None:
        shr.signature = sigs[0]
    elif signature not in sigs:
        raise ShrinkError(f"{src}: no finding with signature {signature}; the trace shows: {', '.join(sigs)}")
    shr.hit(sr)
    shr.best = Candidate(scen, schedule_of(events), pre, sr.steps)
    before = shr.best.stats()
    shr.log(f"start: {before}")

    shr.shrink_scenario(host)
    shr.fewer_preemptions()
    shr.minimal_depth()
    best = shr.best
    minimal = shr.depth_minimal

    # The result: re-run the final schedule exactly and write it down.
    final, pre, raw = shr.run(best.scenario, ReplayStrategy(best.schedule))
    if not shr.hit(final):  # pragma: no cover - determinism guarantees this
        raise ShrinkError("internal error: the shrunk schedule does not reproduce the finding")
    best = Candidate(best.scenario, best.schedule, pre, final.steps)
    out = Path(out_path) if out_path is not None else default_out(src)
    toml_path = out.with_suffix(".toml")
    f = shr.finding
    name = best.scenario.name if best.scenario.name.endswith("-min") else f"{best.scenario.name}-min"
    desc = f"shrunk from {src.name}: {f.kind} {f.signature}, depth {best.preemptions}"
    final_dict = best.scenario.to_dict()
    final_dict["name"], final_dict["description"] = name, desc
    final_scen = scenario_from_dict(final_dict, str(toml_path))
    header = trace_header(scheme_cls, final_scen, "shrink", int(hdr.get("seed", 0)), int(hdr.get("schedule", 0)),
                          int(hdr.get("schedule_seed", 0)), "controlled", max_steps)
    after = best.stats()
    info = {"source": str(src), "signature": shr.signature, "depth": best.preemptions, "depth_minimal": minimal,
            "before": before, "after": after, "tests": shr.tests}
    footer = {"outcome": final.outcome, "steps": final.steps, "findings": [x.to_json() for x in final.findings],
              "shrink": info}
    write_trace(out, header, render_events(raw), footer)
    comment = (f"{desc}\nscheme {scheme_cls.id}; replay: apactors replay {out.name}\n"
               f"{f.summary}")
    write_atomic(toml_path, scenario_to_toml(final_scen, comment.replace("\r", " ")))
    return ShrinkResult(trace=str(out), scenario_file=str(toml_path), source=str(src), scheme=scheme_cls.id,
                        signature=shr.signature, kind=f.kind, summary=f.summary, depth=best.preemptions,
                        depth_minimal=minimal, before=before, after=after, tests=shr.tests, log=shr.messages)


def add_shrink_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``shrink`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "shrink", help="shrink a failing trace to a small scenario and schedule with the same finding",
        description="Delta-debug a failing trace: fewer actors, operations, repeats and preemptions while "
                    "the same finding (same signature) still occurs. Writes the shrunk trace and its "
                    "scenario as TOML next to it, and reports the bug's observed depth (preemptions).")
    p.add_argument("trace", help="a failing trace (.jsonl) written by `apactors run`")
    p.add_argument("-o", "--out", help="the shrunk trace (default: TRACE with .min.jsonl); the scenario "
                                       "goes next to it with .toml")
    p.add_argument("--signature", help="the finding to keep (default: the trace's first finding)")
    p.add_argument("--budget", type=int, default=24,
                   help="random/PCT schedules that test a candidate when guided replay loses the finding "
                        "(default 24)")
    p.add_argument("--dfs-budget", type=int, default=2000,
                   help="schedules per bounded search for fewer preemptions (default 2000)")
    p.add_argument("--keep-host", action="store_true",
                   help="keep the host configuration and the mdevs' matrices (default: drop unneeded ids)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--verbose", action="store_true", help="print every accepted reduction on stderr")
    return p


def cmd_shrink(args: argparse.Namespace) -> int:
    """Run ``apactors shrink``.  Exit status 0 on success, 2 for a trace that cannot be shrunk."""
    log = (lambda m: print(f"shrink: {m}", file=sys.stderr)) if getattr(args, "verbose", False) else None
    try:
        res = shrink(args.trace, args.out, signature=args.signature, budget=args.budget,
                     dfs_budget=args.dfs_budget, host=not args.keep_host, log=log)
    except ShrinkError as e:
        print(f"apactors: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res.to_json(), indent=2))
        return 0
    b, a = res.before, res.after
    print(f"shrunk {res.source} ({res.scheme}): {res.kind} {res.signature}")
    print(f"  {res.summary}")
    print(f"  actors {b['actors']} -> {a['actors']}, operations {b['operations']} -> {a['operations']}, "
          f"steps {b['steps']} -> {a['steps']}, preemptions {b['preemptions']} -> {a['preemptions']}")
    print(f"  observed depth: {res.depth} preemption(s)"
          + (" (minimal: no schedule with fewer preemptions shows it)" if res.depth_minimal else ""))
    print(f"  trace: {res.trace}")
    print(f"  scenario: {res.scenario_file}")
    print(f"  ({res.tests} executions)")
    return 0


__all__ = ["Candidate", "GuidedReplay", "ShrinkError", "ShrinkResult", "add_shrink_parser", "cmd_shrink",
           "default_out", "schedule_of", "scenario_size", "shrink"]
