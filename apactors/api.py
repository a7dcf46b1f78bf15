"""The Python API: explore a scheme on a scenario, replay a trace.  The CLI is a thin layer over this.

    >>> from apactors import explore
    >>> result = explore(scheme="latest", scenario="smoke", schedules=50, seed=1, keep="none")
    >>> result.findings            # aggregated, deduplicated by signature
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from apactors import __version__
from apactors.check.findings import FindingSet
from apactors.engine.controlled import ScheduleResult, run_schedule
from apactors.engine.strategies import Divergence, ReplayStrategy, Strategy, make_strategy
from apactors.model.build import build_world
from apactors.model.schemes.base import Scheme, get_scheme
from apactors.scenario import Scenario, resolve_scenario, scenario_from_dict
from apactors.trace.format import TRACE_FORMAT, event_to_dict
from apactors.trace.reader import read_trace

KEEP_CHOICES = ("failing", "all", "none")


class RunArgumentError(ValueError):
    """An argument combination ``explore`` cannot run (the CLI reports it with status 2)."""

MODES = ("controlled", "threads")


def schedule_seed(seed: int, index: int) -> int:
    """The seed of schedule ``index`` of a run with ``seed``: stable across machines and versions."""
    h = hashlib.blake2b(f"apactors/{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def _scheme_class(scheme: str | type[Scheme]) -> type[Scheme]:
    return get_scheme(scheme) if isinstance(scheme, str) else scheme


def _scenario(scenario: str | Path | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Path) or (isinstance(scenario, str) and scenario.endswith(".toml")):
        return resolve_scenario(None, str(scenario))
    return resolve_scenario(scenario, None)


def trace_header(scheme_cls: type[Scheme], scenario: Scenario, strategy: str, seed: int, index: int,
                 sched_seed: int, mode: str, max_steps: int) -> dict[str, Any]:
    """The header line of a trace: everything needed to run the schedule again."""
    from apactors.model.scheme_file import scheme_to_dict

    hdr = {
        "format": TRACE_FORMAT,
        "apactors_version": __version__,
        "scheme": scheme_cls.id,
        "scenario": scenario.to_dict(),
        "strategy": strategy,
        "seed": seed,
        "schedule": index,
        "schedule_seed": sched_seed,
        "mode": mode,
        "max_steps": max_steps,
    }
    scheme_def = scheme_to_dict(scheme_cls)
    if scheme_def is not None:  # a scheme file (its text) or a Python scheme from outside apactors
        hdr["scheme_def"] = scheme_def
    return hdr


def render_events(events: list[tuple]) -> list[dict[str, Any]]:
    return [event_to_dict(*ev) for ev in events]


@dataclass
class RunResult:
    """The result of ``explore``: aggregated findings plus counters; ``to_json`` is the CLI's ``--json``."""

    scheme: str
    scenario: str
    strategy: str
    seed: int
    schedules: int
    mode: str
    steps: int = 0
    elapsed_s: float = 0.0
    findings: FindingSet = field(default_factory=FindingSet)
    outcomes: dict[str, int] = field(default_factory=dict)
    traces: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: what the strategy says about the search: the PCT bound, or a DFS's exhaustive verdict
    search: dict[str, Any] | None = None

    def findings_json(self) -> list[dict[str, Any]]:
        return self.findings.to_json()

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [f for f in self.findings_json() if f["kind"] in kinds]

    @property
    def deadlocks(self) -> list[dict[str, Any]]:
        """Actual and potential deadlocks."""
        return self.of_kind("deadlock", "potential-deadlock")

    @property
    def hangs(self) -> list[dict[str, Any]]:
        return self.of_kind("hang")

    @property
    def crashes(self) -> list[dict[str, Any]]:
        return self.of_kind("crash")

    def to_json(self) -> dict[str, Any]:
        return {
            "apactors_version": __version__,
            "scheme": self.scheme,
            "scenario": self.scenario,
            "strategy": self.strategy,
            "seed": self.seed,
            "schedules": self.schedules,
            "mode": self.mode,
            "steps": self.steps,
            "elapsed_s": round(self.elapsed_s, 3),
            "outcomes": dict(sorted(self.outcomes.items())),
            "findings": self.findings_json(),
            "traces": list(self.traces),
            "errors": list(self.errors),
            **({"search": self.search, "exhaustive": bool(self.search.get("exhaustive"))}
               if self.search else {}),
        }


def _trace_name(scenario: Scenario, scheme_id: str, seed: int, index: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{scenario.name}--{scheme_id}")
    return f"{safe}--seed{seed}--{index:05d}.jsonl"


def explore(scheme: str | type[Scheme], scenario: str | Path | Scenario, *, strategy: str = "random",
            seed: int = 0, schedules: int = 100, max_steps: int = 50_000, mode: str = "controlled",
            out: str | Path | None = None, keep: str = "failing",
            progress: Callable[[int, int, int], None] | None = None, witness_attempts: int = 40,
            strategy_options: dict[str, Any] | None = None, jobs: int = 1) -> RunResult:
    """Run ``schedules`` schedules of ``scenario`` under ``scheme`` and aggregate the findings.

    Each schedule ``i`` runs with its own seed derived from (``seed``, ``i``), so the result does not
    depend on ``jobs`` (worker processes over contiguous ranges of schedules, merged in index order).
    Traces are written to ``out``: ``keep="failing"`` keeps every schedule that shows a defect for the
    first time (the trace each finding points to), ``"all"`` every schedule, ``"none"`` none.  An
    internal error in one schedule is recorded in ``errors`` and the other schedules still run.
    ``strategy_options`` go to the strategy (``depth`` for pct, ``preemptions`` for dfs); a search
    driver such as ``dfs`` runs up to ``schedules`` schedules and reports whether its search was
    exhaustive (``search``).  ``progress(done, total, findings)`` is called as schedules finish.
    Every potential deadlock (a lock-graph cycle) is then searched for a witness with up to
    ``witness_attempts`` directed schedules: a witness makes it ``confirmed`` and its trace (which
    replays to the actual deadlock) becomes the finding's ``trace``.
    """
    from apactors.explore.parallel import RangeResult, finish_range, merge, record_schedule, run_parallel

    if keep not in KEEP_CHOICES:
        raise RunArgumentError(f"keep must be one of {', '.join(KEEP_CHOICES)}")
    if mode not in MODES:
        raise RunArgumentError(f"mode must be one of {', '.join(MODES)}")
    if jobs < 1:
        raise RunArgumentError("jobs must be at least 1")
    scheme_cls = _scheme_class(scheme)
    scen = _scenario(scenario)
    try:
        strat: Strategy = make_strategy(strategy, **(strategy_options or {}))
    except ValueError as e:
        raise RunArgumentError(str(e)) from None
    if strat.is_driver and jobs > 1:
        raise RunArgumentError(f"strategy {strategy!r} is a search driver and cannot be split over jobs; "
                               "run it with --jobs 1")
    if strat.is_driver and mode != "controlled":
        raise RunArgumentError(f"strategy {strategy!r} needs --mode controlled")
    build_world(scheme_cls, scen)  # validates the setup once: a refused setup step is bad input (SetupError)
    out_dir = Path(out) if out is not None else Path("apactors-out")
    result = RunResult(scheme_cls.id, scen.name, strategy, seed, schedules, mode)
    t0 = time.perf_counter()
    if strat.is_driver:  # a search (dfs) chooses its own schedules, one after another
        part, found = RangeResult(0, 0), FindingSet()
        driver = strat.driver(scheme_cls, scen, max_schedules=schedules, max_steps=max_steps, record=keep != "none")
        n = 0
        for sr in driver:
            record_schedule(part, found, sr, scheme_cls=scheme_cls, scen=scen, strategy=strategy, seed=seed,
                            mode=mode, max_steps=max_steps, keep=keep, out_dir=out_dir)
            n += 1
            if progress is not None:
                progress(n, schedules, len(found))
        part.stop = n
        merge(result, [finish_range(part, found)], keep)
        result.schedules = n
        result.search = driver.summary().to_json()
    else:
        strat.prepare(scheme_cls, scen, max_steps)
        parts = run_parallel(scheme_cls, scen, strategy=strategy, params=strat.params(), seed=seed,
                             schedules=schedules, max_steps=max_steps, mode=mode, out_dir=out_dir, keep=keep,
                             jobs=jobs, progress=progress)
        merge(result, parts, keep)
        result.search = strat.summary(schedules)
    if witness_attempts > 0:
        from apactors.check.witness import confirm_all

        confirm_all(result.findings, scheme_cls, scen, out=out_dir if keep != "none" else None, seed=seed,
                    attempts=witness_attempts, max_steps=max_steps)
    result.elapsed_s = time.perf_counter() - t0
    return result


@dataclass
class ReplayResult:
    """The result of replaying a trace: whether it reproduced, and where it diverged if not."""

    trace: str
    scheme: str
    scenario: str
    steps: int
    outcome: str
    recorded_outcome: str | None
    findings: FindingSet
    divergence: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    continued_at: int | None = None  #: --continue random: the step where the random scheduler took over
    continue_reason: str | None = None
    continued_trace: str | None = None

    @property
    def reproduced(self) -> bool:
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        return {
            "apactors_version": __version__,
            "trace": self.trace,
            "scheme": self.scheme,
            "scenario": self.scenario,
            "steps": self.steps,
            "outcome": self.outcome,
            "recorded_outcome": self.recorded_outcome,
            "reproduced": self.reproduced,
            "divergence": self.divergence,
            "findings": self.findings.to_json(),
            **({"continued_at": self.continued_at, "continue_reason": self.continue_reason,
                "continued_trace": self.continued_trace} if self.continue_reason or self.continued_trace else {}),
        }


def _first_difference(expected: dict[str, Any], got: dict[str, Any]) -> str:
    keys = [k for k in list(expected) + [k for k in got if k not in expected] if expected.get(k) != got.get(k)]
    return ", ".join(f"{k}: expected {expected.get(k)!r}, got {got.get(k)!r}" for k in keys)


def replay(trace: str | Path, *, continue_random: bool = False, seed: int = 0,
           out: str | Path | None = None) -> ReplayResult:
    """Re-execute a trace in controlled mode and compare every event with the recorded one.

    The schedule (which actor takes each step) and the environment choices come from the trace; the
    execution itself is recomputed from the scheme and the scenario in the trace header.  The first
    event that differs, or a step the execution cannot take, is reported as the divergence.  With
    ``continue_random``, a run that diverges or outlives its recording goes on under a random scheduler
    seeded with ``seed`` (``continued_at`` says where) and, with ``out``, its trace is written there.
    Raises :class:`apactors.trace.TraceError` for a trace that cannot be read.
    """
    from apactors.engine.strategies import ReplayThenRandom
    from apactors.trace.reader import TraceError

    tr = read_trace(trace)
    hdr = tr.header
    from apactors.model.scheme_file import SchemeDefinitionError, scheme_from_header

    try:
        scheme_cls = scheme_from_header(hdr, f"trace {tr.path}")
    except KeyError as e:
        raise TraceError(f"{tr.path}: header: {e.args[0]}") from None
    except SchemeDefinitionError as e:
        raise TraceError(f"{tr.path}: header.scheme_def: {e}") from None
    scen = scenario_from_dict(hdr["scenario"], str(tr.path), key_prefix="header.scenario")
    strat: Strategy = ReplayThenRandom(tr.schedule(), seed) if continue_random else ReplayStrategy(tr.schedule())
    divergence: dict[str, Any] | None = None
    raw: list[tuple] = []
    max_steps = int(hdr.get("max_steps", 50_000))
    try:
        sr = run_schedule(scheme_cls, scen, strat, index=int(hdr.get("schedule", 0)),
                          seed=int(hdr.get("schedule_seed", 0)), max_steps=max_steps, record=True, events=raw)
    except Divergence as d:
        divergence = {"step": d.step, "expected": d.expected, "got": d.got}
        sr = None
    got = render_events(raw)
    continued_at = getattr(strat, "switched_at", None)
    compare_upto = len(got) if continued_at is None else sum(1 for ev in got if ev["step"] < continued_at)
    for exp, ev in zip(tr.steps, got[:compare_upto]):
        if exp != ev:
            divergence = {"step": exp.get("step"), "expected": exp, "got": ev,
                          "difference": _first_difference(exp, ev)}
            break
    else:
        if sr is not None and divergence is None and continued_at is None and len(got) != len(tr.steps):
            n = min(len(got), len(tr.steps))
            divergence = {"step": (tr.steps[n] if n < len(tr.steps) else got[n])["step"],
                          "expected": tr.steps[n] if n < len(tr.steps) else "the trace to end here",
                          "got": got[n] if n < len(got) else "the execution ended here"}
    findings = FindingSet()
    if sr is not None:
        for f in sr.findings:
            findings.add(f, int(hdr.get("schedule", 0)), int(hdr.get("schedule_seed", 0)), str(tr.path))
    res = ReplayResult(
        trace=str(tr.path), scheme=scheme_cls.id, scenario=scen.name, steps=sr.steps if sr else 0,
        outcome=sr.outcome if sr else "diverged", recorded_outcome=(tr.footer or {}).get("outcome"),
        findings=findings, divergence=divergence, events=got)
    if continue_random:
        res.continued_at = continued_at
        res.continue_reason = getattr(strat, "reason", None)
        if out is not None and sr is not None:
            header = dict(hdr, strategy=f"replay+random({hdr.get('strategy')})", continue_seed=seed)
            header.pop("event", None)
            footer = {"outcome": sr.outcome, "steps": sr.steps, "findings": [f.to_json() for f in sr.findings]}
            from apactors.trace.writer import write_trace

            write_trace(Path(out), header, got, footer)
            res.continued_trace = str(out)
    return res


__all__ = ["KEEP_CHOICES", "MODES", "RunArgumentError", "ReplayResult", "RunResult", "ScheduleResult", "explore", "replay",
           "schedule_seed", "trace_header"]
