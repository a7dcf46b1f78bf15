"""``apactors compare``: the same schedules on every locking scheme, side by side.

    apactors compare [--schemes ID,ID,...|all] [--scenario ID ...] [--scenario-file PATH ...]
                     [--schedules N] [--seed S] [--strategy NAME] [--format table|markdown|csv|json|html]
                     [--out FILE] [--traces DIR] [--jobs N] [--detail] [--quiet]

Every *cell* (one scheme on one scenario) runs schedules ``0 .. N-1`` with the seeds of
:func:`apactors.api.schedule_seed` and the same strategy, exactly as ``apactors run`` does, so the
schemes meet the same schedules (as far as their code paths let them).  A cell records the findings
(deduplicated as ``run`` does, potential deadlocks searched for a witness) and the cost metrics of
:mod:`apactors.report.metrics`, measured live by a tap that keeps no event.  The schedules worth
looking at — the first one showing each kind of finding and the worst one for each metric — are run
once more afterwards (runs are deterministic) to write their traces into the traces directory, so
each cell of the report points to the trace of its worst case and ``apactors replay`` of that trace
gives the same number.  Cells are independent and run in worker processes (``--jobs``); results are
merged in cell order, so the output does not depend on the number of jobs.  Reports carry no
timestamps and no timings: the same command gives the same bytes.

Exit status: 0 when the comparison was made (findings are its content, not a failure), 2 for bad input
or when a cell had an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from apactors.report.metrics import MetricsSummary, MetricsTap, Worst, actor_kinds

#: default schedules per cell: `compare --schemes all` over the ten built-in scenarios (170 cells)
#: then takes a few minutes on two cores
DEFAULT_SCHEDULES = 200
DEFAULT_TRACES = Path("apactors-out") / "compare"
FORMATS = ("table", "markdown", "csv", "json", "html")

# --- finding columns ------------------------------------------------------------------------------------

#: (key, predicate on a finding's JSON) in report order
FINDING_COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("potential_lockdep", lambda f: f["kind"] == "potential-deadlock" and f.get("checker", "lockdep") == "lockdep"),
    ("potential_waitdep", lambda f: f["kind"] == "potential-deadlock" and f.get("checker") == "waitdep"),
    ("confirmed", lambda f: f["kind"] == "potential-deadlock" and bool(f.get("confirmed"))),
    ("deadlocks", lambda f: f["kind"] == "deadlock"),
    ("hangs", lambda f: f["kind"] == "hang"),
    ("crashes", lambda f: f["kind"] == "crash"),
    ("races", lambda f: f["kind"] == "race"),
    ("stale_reads", lambda f: f["kind"] == "stale-read"),
    ("invariants", lambda f: f["kind"] == "invariant"),
)
#: the findings of the "1st deadlock" column: what the 2021-22 discussion feared most
DEADLOCK_KINDS = ("deadlock", "potential-deadlock", "hang")
#: which outcome counts the schedules a column's findings ended (shown as "(N×)")
OUTCOME_OF = {"deadlocks": "deadlock", "hangs": "hang"}
#: severity of a finding for "the worst finding of a scheme" (lower is worse)
SEVERITY = {"deadlock": 0, "hang": 1, "crash": 2, "potential-deadlock": 3, "invariant": 4, "stale-read": 5,
            "race": 6}


def _finding_key(f: dict[str, Any]) -> tuple[int, int]:
    return (0 if f["kind"] == "potential-deadlock" and f.get("confirmed") else 1, f["first_schedule"])


# --- cells --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to run one cell (picklable plain data)."""

    index: int
    scheme: tuple[str, str, str]  #: (id, module, class qualname)
    scenario: dict[str, Any]
    strategy: str
    options: dict[str, Any]
    seed: int
    schedules: int
    max_steps: int
    witness_attempts: int
    traces: str


@dataclass
class Pointer:
    """A cell's worst case: the number the trace shows, and the trace (None if it was not kept)."""

    value: Any
    trace: str | None
    schedule: int | None = None
    scenario: str = ""
    signature: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = {"value": self.value, "trace": self.trace, "schedule": self.schedule, "scenario": self.scenario}
        if self.signature is not None:
            d["signature"] = self.signature
        return d


@dataclass
class CellResult:
    """One scheme on one scenario: findings, outcomes, metrics (with worst-case traces), lock graph."""

    index: int
    scheme: str
    scenario: str
    schedules: int
    steps: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)  #: aggregated finding JSON (no reports)
    reports: dict[str, str] = field(default_factory=dict)  #: signature -> lockdep-style report
    metrics: MetricsSummary = field(default_factory=MetricsSummary)
    graph: dict[str, Any] = field(default_factory=dict)  #: LockGraph JSON of the merged class graph
    elapsed_s: float = 0.0  #: for progress only; never in a report


def _load_scheme(spec: tuple[str, str, str]) -> Any:
    import importlib

    from apactors.model.schemes.base import UnknownScheme, get_scheme, register

    sid, module, qualname = spec
    try:
        return get_scheme(sid)
    except UnknownScheme:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        register(obj)
        return obj


def _trace_name(scenario: str, scheme: str, seed: int, index: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{scenario}--{scheme}")
    return f"{safe}--seed{seed}--{index:05d}.jsonl"


def run_cell(task: CellTask) -> CellResult:
    """Run one cell (in a worker process or in this one).  See the module docstring."""
    from apactors.api import render_events, schedule_seed, trace_header
    from apactors.check import CHECKERS
    from apactors.check.findings import FindingSet
    from apactors.engine.controlled import run_schedule
    from apactors.engine.strategies import make_strategy
    from apactors.report.collect import MergedGraph
    from apactors.report.graph import from_merged
    from apactors.scenario import scenario_from_dict
    from apactors.trace.writer import write_trace

    t0 = time.perf_counter()
    scheme_cls = _load_scheme(task.scheme)
    scen = scenario_from_dict(task.scenario, "<compare>", key_prefix="scenario")
    res = CellResult(task.index, scheme_cls.id, scen.name, task.schedules)
    strat = make_strategy(task.strategy, **task.options)
    strat.prepare(scheme_cls, scen, task.max_steps)
    kinds = actor_kinds(scen)
    found = FindingSet()
    graph = MergedGraph()
    made: list[Any] = []
    factory = CHECKERS.get("lockdep")

    def capture(world: Any, scheme: Any, scenario: Any) -> Any:
        ck = factory(world, scheme, scenario)  # type: ignore[misc]
        made.append(ck)
        return ck

    seen: dict[int, tuple[str, int]] = {}  # schedule -> (outcome, steps), to check the re-runs
    if factory is not None:
        CHECKERS["lockdep"] = capture
    try:
        for i in range(task.schedules):
            s_seed = schedule_seed(task.seed, i)
            tap = MetricsTap(kinds)
            made.clear()
            try:
                sr = run_schedule(scheme_cls, scen, strat, index=i, seed=s_seed, max_steps=task.max_steps,
                                  record=True, events=tap)
            except Exception as e:  # noqa: BLE001 - one broken schedule must not lose the others
                res.errors.append(f"{scen.name} / {scheme_cls.id}: schedule {i} (seed {s_seed}): internal error: "
                                  f"{type(e).__name__}: {e}")
                res.outcomes["error"] = res.outcomes.get("error", 0) + 1
                continue
            seen[i] = (sr.outcome, sr.steps)
            res.steps += sr.steps
            res.outcomes[sr.outcome] = res.outcomes.get(sr.outcome, 0) + 1
            res.metrics.add(tap.finish(sr.steps), i, s_seed, scen.name)
            for f in sr.findings:
                found.add(f, i, s_seed, None)
            if made:
                ck = made[-1]
                if hasattr(ck, "materialize"):
                    ck.materialize()
                graph.merge(ck, i)
    finally:
        if factory is not None:
            CHECKERS["lockdep"] = factory

    # the schedules to keep: the first of each finding column (and invariant) and the worst of each metric
    first_json = [dict(a.first.to_json(), first_schedule=a.first_schedule) for a in found.by_sig.values()]
    wanted: set[int] = {w.schedule for k, w in res.metrics.worst.items() if w.value or k == "ops_per_kstep"}
    for _, pred in FINDING_COLUMNS:
        hits = [f for f in first_json if pred(f)]
        if hits:
            wanted.add(min(f["first_schedule"] for f in hits))
    for name in {f.get("invariant") for f in first_json if f["kind"] == "invariant"}:
        wanted.add(min(f["first_schedule"] for f in first_json if f.get("invariant") == name))
    for only in (None, DEADLOCK_KINDS):
        hits = [f for f in first_json if only is None or f["kind"] in only]
        if hits:
            wanted.add(min(f["first_schedule"] for f in hits))
    out_dir = Path(task.traces)
    written: dict[int, str] = {}
    for i in sorted(wanted):
        if i not in seen:
            continue
        s_seed = schedule_seed(task.seed, i)
        events: list[tuple] = []
        sr = run_schedule(scheme_cls, scen, strat, index=i, seed=s_seed, max_steps=task.max_steps, record=True,
                          events=events)
        if (sr.outcome, sr.steps) != seen[i]:
            res.errors.append(f"{scen.name} / {scheme_cls.id}: schedule {i} did not run the same way twice "
                              f"({seen[i]} then {(sr.outcome, sr.steps)}): is the strategy deterministic?")
            continue
        path = out_dir / _trace_name(scen.name, scheme_cls.id, task.seed, i)
        header = trace_header(scheme_cls, scen, task.strategy, task.seed, i, s_seed, "controlled", task.max_steps)
        footer = {"outcome": sr.outcome, "steps": sr.steps, "findings": [f.to_json() for f in sr.findings]}
        write_trace(path, header, render_events(events), footer)
        written[i] = str(path)
    for agg in found.by_sig.values():
        agg.trace = written.get(agg.first_schedule)
    for w in res.metrics.worst.values():
        w.trace = written.get(w.schedule)
    if task.witness_attempts > 0:
        from apactors.check.witness import confirm_all

        confirm_all(found, scheme_cls, scen, out=out_dir, seed=task.seed, attempts=task.witness_attempts,
                    max_steps=task.max_steps)
    for fj in found.to_json():
        report = fj.pop("report", None)
        if report:
            res.reports[fj["signature"]] = report
        res.findings.append(fj)
    res.graph = from_merged(graph, res.findings, f"{scheme_cls.id} / {scen.name}").to_json()
    res.elapsed_s = time.perf_counter() - t0
    return res


# --- rows: one cell, or one scheme over several scenarios ---------------------------------------------

@dataclass
class Row:
    """What a report shows for one scheme: one cell, or the cells of several scenarios merged."""

    scheme: str
    scenario: str  #: the scenario's name, or "all" for a merge
    cells: list[CellResult]
    schedules: int = 0
    steps: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)  #: distinct over the cells, each with "scenario"
    metrics: MetricsSummary = field(default_factory=MetricsSummary)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, scheme: str, scenario: str, cells: Sequence[CellResult]) -> "Row":
        row = cls(scheme, scenario, list(cells))
        seen: set[str] = set()
        for c in cells:
            row.schedules += c.schedules
            row.steps += c.steps
            for k, v in c.outcomes.items():
                row.outcomes[k] = row.outcomes.get(k, 0) + v
            row.metrics.merge(c.metrics)
            row.errors += c.errors
            for f in c.findings:
                if f["signature"] not in seen:
                    seen.add(f["signature"])
                    row.findings.append(dict(f, scenario=c.scenario))
        return row

    def column(self, key: str) -> tuple[int, Pointer | None]:
        """A finding column's value (distinct findings) and its worst case (the earliest, confirmed first)."""
        pred = dict(FINDING_COLUMNS)[key]
        hits = [f for f in self.findings if pred(f)]
        return len(hits), self._pointer(hits, witness=key == "confirmed")

    def invariants(self) -> dict[str, tuple[int, Pointer | None]]:
        """Invariant name -> (distinct violations, worst case)."""
        out: dict[str, tuple[int, Pointer | None]] = {}
        names = sorted({f["invariant"] for f in self.findings if f["kind"] == "invariant" and f.get("invariant")})
        for n in names:
            hits = [f for f in self.findings if f["kind"] == "invariant" and f.get("invariant") == n]
            out[n] = (len(hits), self._pointer(hits))
        return out

    def first_finding(self, kinds: tuple[str, ...] | None = None) -> Pointer | None:
        """Schedules run until the first finding (of ``kinds``; the smallest over the scenarios), and its
        trace."""
        hits = [f for f in self.findings if kinds is None or f["kind"] in kinds]
        if not hits:
            return None
        f = min(hits, key=lambda f: f["first_schedule"])
        return Pointer(f["first_schedule"] + 1, self.schedule_trace(f), f["first_schedule"], f["scenario"],
                       f["signature"])

    @staticmethod
    def schedule_trace(f: dict[str, Any]) -> str | None:
        """The trace of the schedule that first showed ``f`` (a witness moved it to ``schedule_trace``)."""
        return f.get("schedule_trace") if "schedule_trace" in f else f.get("trace")

    def _pointer(self, hits: list[dict[str, Any]], witness: bool = False) -> Pointer | None:
        if not hits:
            return None
        if witness:
            f = min(hits, key=_finding_key)
            return Pointer(f["kind"], f.get("trace"), f["first_schedule"], f["scenario"], f["signature"])
        f = min(hits, key=lambda f: f["first_schedule"])
        return Pointer(f["kind"], self.schedule_trace(f), f["first_schedule"], f["scenario"], f["signature"])

    def worst_finding(self) -> dict[str, Any] | None:
        """The finding a reviewer should look at first: by severity (confirmed cycles before others)."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (SEVERITY.get(f["kind"], 9),
                                                 0 if f.get("confirmed") else 1, f["first_schedule"]))

    def report_of(self, signature: str) -> str:
        for c in self.cells:
            if signature in c.reports:
                return c.reports[signature]
        return ""

    def worst(self, metric: str) -> Pointer | None:
        w: Worst | None = self.metrics.worst.get(metric)
        if w is None:
            return None
        return Pointer(w.value, w.trace, w.schedule, w.scenario)


# --- the comparison -----------------------------------------------------------------------------------

@dataclass
class Comparison:
    """The result of :func:`compare`: every cell, in (scenario, scheme) order, and the parameters."""

    schemes: list[str]
    scenarios: list[str]
    strategy: str
    seed: int
    schedules: int
    max_steps: int
    witness_attempts: int
    traces: str
    cells: list[CellResult] = field(default_factory=list)
    elapsed_s: float = 0.0  #: never in a report

    def cell(self, scheme: str, scenario: str) -> CellResult:
        for c in self.cells:
            if c.scheme == scheme and c.scenario == scenario:
                return c
        raise KeyError(f"no cell {scheme} / {scenario}")

    def rows(self, scenario: str | None = None) -> list[Row]:
        """One row per scheme: for ``scenario``, or merged over every scenario (``None``)."""
        out = []
        for s in self.schemes:
            cells = [c for c in self.cells if c.scheme == s and (scenario is None or c.scenario == scenario)]
            out.append(Row.of(s, scenario or ("all" if len(self.scenarios) > 1 else self.scenarios[0]), cells))
        return out

    @property
    def errors(self) -> list[str]:
        return [e for c in self.cells for e in c.errors]

    def params(self) -> dict[str, Any]:
        return {"schemes": list(self.schemes), "scenarios": list(self.scenarios), "strategy": self.strategy,
                "seed": self.seed, "schedules": self.schedules, "max_steps": self.max_steps,
                "witness_attempts": self.witness_attempts, "traces": self.traces}

    def command(self) -> str:
        """The command line that reproduces this comparison."""
        from apactors.model.schemes import all_schemes
        from apactors.scenario import builtin_scenarios

        every = [s.id for s in all_schemes()]
        schemes = "all" if self.schemes == every else ",".join(self.schemes)
        builtins = [n for n, _ in builtin_scenarios()]
        scen = "" if self.scenarios == builtins else " " + " ".join(f"--scenario {s}" for s in self.scenarios)
        extra = f" --strategy {self.strategy}" if self.strategy != "random" else ""
        return f"apactors compare --schemes {schemes}{scen} --schedules {self.schedules} --seed {self.seed}{extra}"


def compare(schemes: str | Sequence[Any] | None = "all", scenarios: Sequence[Any] | None = None, *,
            schedules: int = DEFAULT_SCHEDULES, seed: int = 0, strategy: str = "random",
            strategy_options: dict[str, Any] | None = None, max_steps: int = 50_000,
            witness_attempts: int = 40, traces: str | Path | None = None, jobs: int = 1,
            progress: Callable[[int, int, CellResult], None] | None = None) -> Comparison:
    """Run ``schedules`` schedules of every scenario under every scheme and return the :class:`Comparison`.

    ``schemes``: ``"all"`` (the catalogue), or ids / scheme classes.  ``scenarios``: built-in names,
    scenario file paths or :class:`~apactors.scenario.Scenario` objects (default: every built-in one).
    Worst-case traces go to ``traces`` (default ``apactors-out/compare``).  ``jobs`` worker processes run
    the cells (the result does not depend on it); ``progress(done, total, cell)`` is called as cells end.
    Raises ``ValueError`` for a search-driver strategy (dfs), ``UnknownScheme``/``ScenarioError`` for
    bad names.
    """
    from apactors.api import _scenario
    from apactors.engine.strategies import make_strategy
    from apactors.model.build import build_world
    from apactors.model.schemes import all_schemes
    from apactors.model.schemes.base import get_scheme
    from apactors.scenario import builtin_scenarios

    if schedules < 1:
        raise ValueError("schedules must be at least 1")
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if schemes is None or schemes == "all":
        classes = list(all_schemes())
    elif isinstance(schemes, str):
        classes = [get_scheme(s.strip()) for s in schemes.split(",") if s.strip()]
    else:
        classes = [get_scheme(s) if isinstance(s, str) else s for s in schemes]
    scens = [_scenario(s) for s in (scenarios if scenarios else [n for n, _ in builtin_scenarios()])]
    if not classes or not scens:
        raise ValueError("nothing to compare: no scheme or no scenario")
    options = dict(strategy_options or {})
    if make_strategy(strategy, **options).is_driver:
        raise ValueError(f"strategy {strategy!r} is a search driver; compare runs per-schedule strategies")
    for sc in scens:  # refuse a setup a scheme cannot build before anything runs
        for cls in classes:
            build_world(cls, sc)
    out_dir = Path(traces) if traces is not None else DEFAULT_TRACES
    comp = Comparison([c.id for c in classes], [s.name for s in scens], strategy, seed, schedules, max_steps,
                      witness_attempts, str(out_dir))
    tasks = [CellTask(i, (cls.id, cls.__module__, cls.__qualname__), sc.to_dict(), strategy, options, seed,
                      schedules, max_steps, witness_attempts, str(out_dir))
             for i, (sc, cls) in enumerate((sc, cls) for sc in scens for cls in classes)]
    t0 = time.perf_counter()
    results: dict[int, CellResult] = {}

    def done(r: CellResult) -> None:
        results[r.index] = r
        if progress is not None:
            progress(len(results), len(tasks), r)

    # the longest cells first, so that the workers finish together (the result does not depend on it)
    order = sorted(tasks, key=lambda t: (-len(t.scenario.get("actor", [])), t.index))
    if jobs == 1 or len(tasks) == 1:
        for t in order:
            done(run_cell(t))
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes=min(jobs, len(tasks))) as pool:
            for r in pool.imap_unordered(run_cell, order, chunksize=1):
                done(r)
    comp.cells = [results[i] for i in range(len(tasks))]
    comp.elapsed_s = time.perf_counter() - t0
    return comp


# --- the command line ---------------------------------------------------------------------------------

def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to the CLI's subparsers."""
    from apactors.cli import _positive, _seed
    from apactors.engine.strategies import STRATEGIES

    p = subparsers.add_parser(
        "compare", help="compare locking schemes on the same schedules: findings and cost side by side",
        description="Run the same schedules (same strategy and seeds) of one or more scenarios under every "
                    "given scheme and tabulate, per scheme, potential and actual deadlocks, hangs, crashes, "
                    "races, stale reads, invariant violations and the cost in logical steps: PQAP latency, "
                    "kvm->lock hold time and who waited behind it, contentions, the longest writer wait and "
                    "throughput.  Each cell points to the trace of its worst case.")
    p.add_argument("--schemes", default="all", help="comma-separated scheme ids, or all (default)")
    p.add_argument("--scenario", action="append", default=[], metavar="ID",
                   help="built-in scenario (repeatable; 'all' for every built-in one; default: all)")
    p.add_argument("--scenario-file", action="append", default=[], metavar="PATH",
                   help="scenario TOML file (repeatable)")
    p.add_argument("--schedules", type=_positive, default=DEFAULT_SCHEDULES,
                   help=f"schedules per scheme and scenario (default {DEFAULT_SCHEDULES})")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the run (default 0)")
    p.add_argument("--strategy", default="random",
                   choices=sorted(n for n, c in STRATEGIES.items() if not getattr(c, "is_driver", False)),
                   help="scheduling strategy (default: random)")
    p.add_argument("--max-steps", type=_positive, default=50_000, help="step bound per schedule")
    p.add_argument("--witness-attempts", type=int, default=40, metavar="N",
                   help="directed schedules tried to confirm each potential deadlock (0: no search)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.add_argument("--out", help="write the report to FILE (default: stdout; html: apactors-out/compare.html)")
    p.add_argument("--traces", help="directory for the worst-case traces (default: FILE's name + '-traces' "
                                    f"next to --out, else {DEFAULT_TRACES})")
    p.add_argument("--jobs", type=_positive, default=None,
                   help="worker processes (default: the number of CPUs); the output does not depend on it")
    p.add_argument("--detail", action="store_true",
                   help="table/markdown: also one table per scenario (html, csv and json always have them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_compare)
    return p


def traces_dir_for(out: str | None, traces: str | None) -> Path:
    """Where the worst-case traces go: ``--traces``, else next to ``--out``, else the default."""
    if traces:
        return Path(traces)
    if out:
        o = Path(out)
        return o.parent / f"{o.stem}-traces"
    return DEFAULT_TRACES


def _scenarios_of(args: argparse.Namespace) -> list[Any]:
    from apactors.scenario import builtin_scenarios, resolve_scenario

    out: list[Any] = []
    for name in args.scenario:
        if name == "all":
            out += [resolve_scenario(n, None) for n, _ in builtin_scenarios()]
        else:
            out.append(resolve_scenario(name, None))
    out += [resolve_scenario(None, p) for p in args.scenario_file]
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from apactors.cli import BadInput

        raise BadInput(f"scenario {', '.join(dupes)} given twice")
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    """Run ``apactors compare``; see the module docstring for the exit status."""
    from apactors.cli import BadInput
    from apactors.report import tables

    scenarios = _scenarios_of(args)
    out = args.out or ("apactors-out/compare.html" if args.format == "html" else None)
    traces = traces_dir_for(out, args.traces)
    jobs = args.jobs or os.cpu_count() or 1
    from apactors.logs import get_logger

    log = get_logger("apactors.compare")
    bar = None
    task = None
    if not args.quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]compare"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[last]}"), TimeElapsedColumn(), transient=True,
                       console=Console(stderr=True))
        task = bar.add_task("compare", total=None, last="")
        bar.start()

    def progress(done: int, total: int, cell: CellResult) -> None:
        log.info("cell done", scheme=cell.scheme, scenario=cell.scenario, schedules=cell.schedules,
                 steps=cell.steps, findings=len(cell.findings), errors=len(cell.errors),
                 elapsed_s=round(cell.elapsed_s, 3), done=done, total=total)
        if bar is not None and task is not None:
            bar.update(task, completed=done, total=total, last=f"{cell.scheme} / {cell.scenario}")

    try:
        comp = compare(args.schemes, scenarios or None, schedules=args.schedules, seed=args.seed,
                       strategy=args.strategy, max_steps=args.max_steps, witness_attempts=args.witness_attempts,
                       traces=traces, jobs=jobs, progress=progress)
    except ValueError as e:
        raise BadInput(str(e)) from None
    finally:
        if bar is not None:
            bar.stop()
    if args.format == "table":
        tables.print_table(comp, out=out, detail=args.detail)
    else:
        if args.format == "html":
            from apactors.report.html import compare_html

            text = compare_html(comp, Path(out))  # type: ignore[arg-type]
        else:
            text = tables.render(comp, args.format, detail=args.detail)
        if out:
            from apactors.trace.writer import write_atomic

            write_atomic(Path(out), text)
        else:
            sys.stdout.write(text)
    if out:
        print(f"apactors: wrote {out} (worst-case traces in {traces}/)", file=sys.stderr)
    if sys.stderr.isatty() and not args.quiet:
        steps = sum(c.steps for c in comp.cells)
        print(f"apactors: {len(comp.cells)} cells, {steps:,} steps in {comp.elapsed_s:.1f} s with {jobs} job(s)",
              file=sys.stderr)
    for err in comp.errors:
        print(f"apactors: {err}", file=sys.stderr)
    return 2 if comp.errors else 0


__all__ = ["CellResult", "CellTask", "Comparison", "DEFAULT_SCHEDULES", "FINDING_COLUMNS", "FORMATS", "Pointer",
           "Row", "add_compare_parser", "cmd_compare", "compare", "run_cell", "traces_dir_for"]
