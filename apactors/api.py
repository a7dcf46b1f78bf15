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
from apactors.trace.writer import write_trace

KEEP_CHOICES = ("failing", "all", "none")
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
        }


def _trace_name(scenario: Scenario, scheme_id: str, seed: int, index: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{scenario.name}--{scheme_id}")
    return f"{safe}--seed{seed}--{index:05d}.jsonl"


def explore(scheme: str | type[Scheme], scenario: str | Path | Scenario, *, strategy: str = "random",
            seed: int = 0, schedules: int = 100, max_steps: int = 50_000, mode: str = "controlled",
            out: str | Path | None = None, keep: str = "failing",
            progress: Callable[[int, int, int], None] | None = None, witness_attempts: int = 40) -> RunResult:
    """Run ``schedules`` schedules of ``scenario`` under ``scheme`` and aggregate the findings.

    Each schedule ``i`` runs with its own seed derived from (``seed``, ``i``).  Traces are written to
    ``out``: ``keep="failing"`` keeps every schedule that shows a defect for the first time (the trace
    each finding points to), ``"all"`` every schedule, ``"none"`` none.  An internal error in one
    schedule is recorded in ``errors`` and the other schedules still run.  ``progress(done, total,
    findings)`` is called after each schedule.  Every potential deadlock (a lock-graph cycle) is then
    searched for a witness with up to ``witness_attempts`` directed schedules: a witness makes it
    ``confirmed`` and its trace (which replays to the actual deadlock) becomes the finding's ``trace``.
    """
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    scheme_cls = _scheme_class(scheme)
    scen = _scenario(scenario)
    out_dir = Path(out) if out is not None else Path("apactors-out")
    result = RunResult(scheme_cls.id, scen.name, strategy, seed, schedules, mode)
    strat: Strategy = make_strategy(strategy)
    build_world(scheme_cls, scen)  # validates the setup once: a refused setup step is bad input (SetupError)
    record = keep != "none"
    t0 = time.perf_counter()
    for i in range(schedules):
        s_seed = schedule_seed(seed, i)
        try:
            if mode == "threads":
                from apactors.engine.threads import run_threaded_schedule

                sr = run_threaded_schedule(scheme_cls, scen, index=i, seed=s_seed, max_steps=max_steps)
            else:
                sr = run_schedule(scheme_cls, scen, strat, index=i, seed=s_seed, max_steps=max_steps,
                                  record=record)
        except Exception as e:  # noqa: BLE001 - one broken schedule must not lose the others
            result.errors.append(f"schedule {i} (seed {s_seed}): internal error: {type(e).__name__}: {e}")
            result.outcomes["error"] = result.outcomes.get("error", 0) + 1
            continue
        result.steps += sr.steps
        result.outcomes[sr.outcome] = result.outcomes.get(sr.outcome, 0) + 1
        trace_path = None
        # "failing" keeps the schedules that show a defect for the first time: a defect seen in 199
        # schedules is one finding with a count, and its first trace is the one it points to.
        new_defect = any(f.signature not in result.findings.by_sig for f in sr.findings)
        if sr.events is not None and (keep == "all" or (keep == "failing" and new_defect)):
            path = out_dir / _trace_name(scen, scheme_cls.id, seed, i)
            header = trace_header(scheme_cls, scen, strategy, seed, i, s_seed, mode, max_steps)
            footer = {"outcome": sr.outcome, "steps": sr.steps, "findings": [f.to_json() for f in sr.findings]}
            write_trace(path, header, render_events(sr.events), footer)
            trace_path = str(path)
            result.traces.append(trace_path)
        for f in sr.findings:
            result.findings.add(f, i, s_seed, trace_path)
        if progress is not None:
            progress(i + 1, schedules, len(result.findings))
    if witness_attempts > 0:
        from apactors.check.witness import confirm_all

        confirm_all(result.findings, scheme_cls, scen, out=out_dir if record else None, seed=seed,
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
        }


def _first_difference(expected: dict[str, Any], got: dict[str, Any]) -> str:
    keys = [k for k in list(expected) + [k for k in got if k not in expected] if expected.get(k) != got.get(k)]
    return ", ".join(f"{k}: expected {expected.get(k)!r}, got {got.get(k)!r}" for k in keys)


def replay(trace: str | Path) -> ReplayResult:
    """Re-execute a trace in controlled mode and compare every event with the recorded one.

    The schedule (which actor takes each step) and the environment choices come from the trace; the
    execution itself is recomputed from the scheme and the scenario in the trace header.  The first
    event that differs, or a step the execution cannot take, is reported as the divergence.
    Raises :class:`apactors.trace.TraceError` for a trace that cannot be read.
    """
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
    strat = ReplayStrategy(tr.schedule())
    divergence: dict[str, Any] | None = None
    raw: list[tuple] = []
    try:
        sr = run_schedule(scheme_cls, scen, strat, seed=int(hdr.get("schedule_seed", 0)),
                          max_steps=int(hdr.get("max_steps", 50_000)), record=True, events=raw)
    except Divergence as d:
        divergence = {"step": d.step, "expected": d.expected, "got": d.got}
        sr = None
    got = render_events(raw)
    for exp, ev in zip(tr.steps, got):
        if exp != ev:
            divergence = {"step": exp.get("step"), "expected": exp, "got": ev,
                          "difference": _first_difference(exp, ev)}
            break
    else:
        if sr is not None and divergence is None and len(got) != len(tr.steps):
            n = min(len(got), len(tr.steps))
            divergence = {"step": (tr.steps[n] if n < len(tr.steps) else got[n])["step"],
                          "expected": tr.steps[n] if n < len(tr.steps) else "the trace to end here",
                          "got": got[n] if n < len(got) else "the execution ended here"}
    findings = FindingSet()
    if sr is not None:
        for f in sr.findings:
            findings.add(f, int(hdr.get("schedule", 0)), int(hdr.get("schedule_seed", 0)), str(tr.path))
    return ReplayResult(
        trace=str(tr.path), scheme=scheme_cls.id, scenario=scen.name, steps=sr.steps if sr else 0,
        outcome=sr.outcome if sr else "diverged", recorded_outcome=(tr.footer or {}).get("outcome"),
        findings=findings, divergence=divergence, events=got)


__all__ = ["KEEP_CHOICES", "MODES", "ReplayResult", "RunResult", "ScheduleResult", "explore", "replay",
           "schedule_seed", "trace_header"]
