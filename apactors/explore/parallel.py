"""``--jobs N``: one run split over worker processes, with the result of the sequential run.

The schedules of a run are numbered 0..N-1 and schedule ``i`` depends only on (scheme, scenario,
strategy parameters, ``schedule_seed(seed, i)``), so the indices can be cut into contiguous ranges and
run anywhere.  The worker interface is deliberately narrow, so that a distributed engine can run the
same workers later:

* in (:class:`RangeTask`, picklable plain data): the scheme (id, plus the module and class name that
  define it), the scenario as a dict (``Scenario.to_dict()``), the strategy name and the parameters of
  the *prepared* strategy (``Strategy.params()``), the run's seed, the index range, ``max_steps``,
  ``mode``, the trace directory and ``keep``, and the checkers to load (name, module, and the factory
  itself when it pickles);
* out (:class:`RangeResult`): per distinct finding its fields (a plain dict), first schedule, first
  seed, count and first trace, in order of first appearance; the outcome counters, steps, internal
  errors and kept trace paths, in index order.

Merging walks the ranges in index order, never in order of completion, exactly as
:class:`~apactors.check.findings.FindingSet` aggregates a sequential run: the merged result (findings,
counts, ``first_schedule``, trace names and bytes) is identical to the sequential run's.  Workers are
started with the ``spawn`` method (no inherited state, the same on every platform).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

#: ranges per worker: more than one balances uneven schedules; the result does not depend on it
CHUNKS_PER_JOB = 4


@dataclass(frozen=True)
class RangeTask:
    """Everything a worker needs to run schedules ``start .. stop-1`` of a run."""

    scheme: tuple[str, str, str]  #: (id, module, class qualname)
    scenario: dict[str, Any]
    strategy: str
    params: dict[str, Any]
    seed: int
    start: int
    stop: int
    max_steps: int
    mode: str
    out: str
    keep: str
    checkers: tuple[tuple[str, str, bytes | None], ...]  #: (name, module, pickled factory), parent's order


@dataclass
class RangeResult:
    """What a worker returns for one range (plain data)."""

    start: int
    stop: int
    steps: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)  #: aggregated, in order of first appearance
    traces: list[str] = field(default_factory=list)
    trace_sigs: list[list[str]] = field(default_factory=list)  #: per kept trace: its schedule's signatures
    errors: list[str] = field(default_factory=list)


# --- the worker side --------------------------------------------------------------------------------------

_CACHE: dict[Any, Any] = {}


def _scheme(spec: tuple[str, str, str]) -> Any:
    from apactors.model.schemes.base import get_scheme, register

    key = ("scheme", spec)
    if key not in _CACHE:
        sid, module, qualname = spec
        try:
            cls = get_scheme(sid)
        except KeyError:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            cls = obj
            register(cls)
        _CACHE[key] = cls
    return _CACHE[key]


def _scenario(data: dict[str, Any]) -> Any:
    from apactors.scenario import scenario_from_dict

    key = ("scenario", repr(data))
    if key not in _CACHE:
        _CACHE[key] = scenario_from_dict(data, "<parallel>", key_prefix="scenario")
    return _CACHE[key]


def _load_checkers(wanted: tuple[tuple[str, str, bytes | None], ...]) -> None:
    """Make this process's checker registry equal to the parent's: same names, same order.

    A factory the parent could pickle (a module-level function or class) is used as is; otherwise the
    module that defines it is imported (and its ``register()`` called if importing did not register it).
    """
    import pickle

    from apactors.check import CHECKERS

    given: dict[str, Any] = {}
    for name, module, blob in wanted:
        if blob is not None:
            given[name] = pickle.loads(blob)
        elif name not in CHECKERS:
            mod = importlib.import_module(module)
            if name not in CHECKERS and callable(getattr(mod, "register", None)):
                mod.register()
    missing = [name for name, _, _ in wanted if name not in CHECKERS and name not in given]
    if missing:
        raise RuntimeError(f"checker(s) {', '.join(missing)} are registered in the parent process but cannot be "
                           "rebuilt in a worker; register checkers at import time (or with a picklable "
                           "factory) to use --jobs")
    ordered = {name: given[name] if name in given else CHECKERS[name] for name, _, _ in wanted}
    CHECKERS.clear()
    CHECKERS.update(ordered)


def record_schedule(res: RangeResult, found: Any, sr: Any, *, scheme_cls: Any, scen: Any, strategy: str,
                    seed: int, mode: str, max_steps: int, keep: str, out_dir: Path) -> None:
    """Count one finished schedule into ``res`` and ``found``, writing its trace if ``keep`` asks.

    The one place that decides which traces are kept: ``"all"`` every schedule, ``"failing"`` the
    schedules that show a defect not seen before in this run (range), ``"none"`` none.
    """
    from apactors.api import _trace_name, render_events, trace_header
    from apactors.trace.writer import write_trace

    i = sr.index
    res.steps += sr.steps
    res.outcomes[sr.outcome] = res.outcomes.get(sr.outcome, 0) + 1
    trace_path = None
    new_defect = any(f.signature not in found.by_sig for f in sr.findings)
    if sr.events is not None and (keep == "all" or (keep == "failing" and new_defect)):
        path = out_dir / _trace_name(scen, scheme_cls.id, seed, i)
        header = trace_header(scheme_cls, scen, strategy, seed, i, sr.seed, mode, max_steps)
        footer = {"outcome": sr.outcome, "steps": sr.steps, "findings": [f.to_json() for f in sr.findings]}
        write_trace(path, header, render_events(sr.events), footer)
        trace_path = str(path)
        res.traces.append(trace_path)
        res.trace_sigs.append([f.signature for f in sr.findings])
    for f in sr.findings:
        found.add(f, i, sr.seed, trace_path)


def finish_range(res: RangeResult, found: Any) -> RangeResult:
    """Move the range's aggregated findings into ``res`` as plain data."""
    for agg in found.by_sig.values():
        res.findings.append({"finding": dataclasses.asdict(agg.first), "first_schedule": agg.first_schedule,
                             "first_seed": agg.first_seed, "count": agg.count, "trace": agg.trace})
    return res


def run_range(task: RangeTask, on_schedule: Callable[[int, int], None] | None = None,
              local: tuple[Any, Any] | None = None) -> RangeResult:
    """Run schedules ``task.start .. task.stop-1``: the loop of every ``explore`` (one process or many).

    With ``keep="failing"`` a trace is written for every schedule that shows a defect not seen before
    *in this range*; :func:`merge` then drops those whose defects an earlier range already showed, so
    that exactly the sequential run's traces remain.  ``on_schedule(index, findings so far in the
    range)`` is called after each schedule.  ``local`` = (scheme class, scenario) when the range runs in
    the calling process: the objects themselves are used (a scheme defined in a test function has no
    importable name) and the checker registry is already the caller's.
    """
    from apactors.api import schedule_seed
    from apactors.check.findings import FindingSet
    from apactors.engine.controlled import run_schedule
    from apactors.engine.strategies import make_strategy

    if local is not None:
        scheme_cls, scen = local
    else:
        _load_checkers(task.checkers)
        scheme_cls = _scheme(task.scheme)
        scen = _scenario(task.scenario)
    strat = make_strategy(task.strategy, **task.params)
    out_dir = Path(task.out)
    keep, mode, seed = task.keep, task.mode, task.seed
    record = keep != "none"
    res = RangeResult(task.start, task.stop)
    found = FindingSet()
    for i in range(task.start, task.stop):
        s_seed = schedule_seed(seed, i)
        try:
            if mode == "threads":
                from apactors.engine.threads import run_threaded_schedule

                sr = run_threaded_schedule(scheme_cls, scen, index=i, seed=s_seed, max_steps=task.max_steps)
            else:
                sr = run_schedule(scheme_cls, scen, strat, index=i, seed=s_seed, max_steps=task.max_steps,
                                  record=record)
        except Exception as e:  # noqa: BLE001 - one broken schedule must not lose the others
            res.errors.append(f"schedule {i} (seed {s_seed}): internal error: {type(e).__name__}: {e}")
            res.outcomes["error"] = res.outcomes.get("error", 0) + 1
            continue
        record_schedule(res, found, sr, scheme_cls=scheme_cls, scen=scen, strategy=task.strategy, seed=seed,
                        mode=mode, max_steps=task.max_steps, keep=keep, out_dir=out_dir)
        if on_schedule is not None:
            on_schedule(i, len(found))
    return finish_range(res, found)


# --- the parent side --------------------------------------------------------------------------------------

def split(schedules: int, jobs: int, chunks_per_job: int = CHUNKS_PER_JOB) -> list[tuple[int, int]]:
    """Contiguous index ranges covering ``0 .. schedules-1`` (a pure function of its arguments)."""
    if schedules <= 0:
        return []
    n = max(1, min(schedules, jobs * chunks_per_job))
    size = math.ceil(schedules / n)
    return [(a, min(a + size, schedules)) for a in range(0, schedules, size)]


def merge(result: Any, parts: list[RangeResult], keep: str = "failing") -> None:
    """Fold range results into ``result`` (an :class:`apactors.api.RunResult`) in index order.

    With ``keep="failing"``, a trace a worker kept for a defect that an earlier range had already
    shown is deleted: the sequential run keeps only the schedules that show a defect for the first
    time.
    """
    from apactors.check.findings import AggregatedFinding, Finding

    by_sig = result.findings.by_sig
    seen: set[str] = set(by_sig)
    for part in sorted(parts, key=lambda p: p.start):
        result.steps += part.steps
        for k, v in part.outcomes.items():
            result.outcomes[k] = result.outcomes.get(k, 0) + v
        for path, sigs in zip(part.traces, part.trace_sigs or [[]] * len(part.traces)):
            if keep != "failing" or any(sig not in seen for sig in sigs):
                result.traces.append(path)
            else:
                Path(path).unlink(missing_ok=True)
            seen.update(sigs)
        result.errors.extend(part.errors)
        for rec in part.findings:
            f = Finding(**rec["finding"])
            sig = f.signature
            agg = by_sig.get(sig)
            if agg is None:
                by_sig[sig] = AggregatedFinding(f, rec["first_schedule"], rec["first_seed"], rec["count"], rec["trace"])
            else:
                agg.count += rec["count"]
                if agg.trace is None and rec["trace"] is not None:
                    agg.trace = rec["trace"]


def _checker_spec() -> tuple[tuple[str, str, bytes | None], ...]:
    """(name, defining module, pickled factory or None) of every registered checker, in order."""
    import pickle

    from apactors.check import CHECKERS

    out = []
    for name, factory in CHECKERS.items():
        try:
            blob: bytes | None = pickle.dumps(factory)
        except Exception:  # noqa: BLE001 - lambdas and closures do not pickle: rebuilt by import
            blob = None
        out.append((name, getattr(factory, "__module__", None) or "apactors.check", blob))
    return tuple(out)


def run_parallel(scheme_cls: Any, scenario: Any, *, strategy: str, params: dict[str, Any], seed: int,
                 schedules: int, max_steps: int, mode: str, out_dir: Path, keep: str, jobs: int,
                 progress: Callable[[int, int, int], None] | None = None) -> list[RangeResult]:
    """Run schedules ``0 .. schedules-1`` over ``jobs`` processes; the range results in index order.

    This is the loop of :func:`apactors.api.explore`; fold the result into a ``RunResult`` with
    :func:`merge`.  ``params`` are the prepared strategy's ``params()``.
    """
    import multiprocessing

    spec = (scheme_cls.id, scheme_cls.__module__, scheme_cls.__qualname__)
    checkers = _checker_spec()
    tasks = [RangeTask(spec, scenario.to_dict(), strategy, dict(params), seed, a, b, max_steps, mode, str(out_dir),
                       keep, checkers) for a, b in split(schedules, jobs)]
    parts: list[RangeResult] = []
    seen: set[str] = set()

    def done(part: RangeResult) -> None:
        parts.append(part)
        if progress is not None:
            seen.update(_signature(r) for r in part.findings)
            progress(sum(p.stop - p.start for p in parts), schedules, len(seen))

    if jobs == 1 or len(tasks) <= 1:
        for t in tasks:
            base = len(seen)

            def each(i: int, found: int, base: int = base) -> None:
                if progress is not None:
                    progress(i + 1, schedules, max(base, found))
            done(run_range(t, each if progress is not None else None, local=(scheme_cls, scenario)))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes=min(jobs, len(tasks))) as pool:
            for part in pool.imap_unordered(run_range, tasks):
                done(part)
    return sorted(parts, key=lambda p: p.start)


def explore_parallel(scheme: Any, scenario: Any, *, jobs: int = 2, **kwargs: Any) -> Any:
    """:func:`apactors.api.explore` over ``jobs`` worker processes (same arguments, same result)."""
    from apactors.api import explore

    return explore(scheme, scenario, jobs=jobs, **kwargs)


def _signature(rec: dict[str, Any]) -> str:
    from apactors.check.findings import make_signature

    f = rec["finding"]
    return make_signature(f["kind"], f["key"])


__all__ = ["CHUNKS_PER_JOB", "RangeResult", "RangeTask", "explore_parallel", "finish_range", "merge",
           "record_schedule", "run_parallel", "run_range", "split"]
