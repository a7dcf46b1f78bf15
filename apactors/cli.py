"""The ``apactors`` command line: a thin layer over :mod:`apactors.api`.

Exit status: 0 no finding, 1 findings, 2 bad input or usage (a message names the file, key or
argument; no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from apactors import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Bad input from the user: printed as ``apactors: error: …`` with exit status 2."""


def _positive(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative seed, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from apactors.engine.strategies import STRATEGIES

    parser = argparse.ArgumentParser(
        prog="apactors",
        description="Concurrent emulator of the s390 vfio-ap hotplug core for lock and race analysis.")
    parser.add_argument("--version", action="version", version=f"apactors {__version__}")
    parser.add_argument("--log-format", choices=("console", "json"), default="console",
                        help="format of diagnostic logs on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="explore schedules of a scenario under a locking scheme",
                         description="Run many schedules of a scenario under a locking scheme and report "
                                     "deadlocks, hangs and crashes, keeping the traces of failing schedules.")
    from apactors.report.scheme_show import add_scheme_arguments, add_scheme_parser

    run.add_argument("--scheme", help="scheme id (see `apactors schemes`); not needed with --scheme-file")
    add_scheme_arguments(run)
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenario", help="built-in scenario name (see `apactors scenarios`)")
    src.add_argument("--scenario-file", help="path of a scenario TOML file")
    run.add_argument("--strategy", default="portfolio", choices=sorted(STRATEGIES),
                     help="scheduling strategy: portfolio (default: a mix of random and PCT), random, pct, "
                          "rr (round robin), dfs (exhaustive search, bounded preemptions, sleep sets)")
    run.add_argument("--depth", type=_positive, help="pct: the bug depth d (default 3)")
    run.add_argument("--preemptions", type=int,
                     help="dfs: the preemption bound (default 2; -1: no bound)")
    run.add_argument("--jobs", type=_positive, default=1,
                     help="worker processes (same result as one; not for dfs)")
    run.add_argument("--seed", type=_seed, default=0, help="seed of the run (default 0)")
    run.add_argument("--schedules", type=_positive, default=100, help="number of schedules (default 100)")
    run.add_argument("--max-steps", type=_positive, default=50_000,
                     help="step bound per schedule; reaching it is reported as a possible livelock")
    run.add_argument("--mode", choices=("controlled", "threads"), default="controlled",
                     help="controlled: deterministic scheduler; threads: free-running pykka threads, recorded")
    run.add_argument("--out", default="apactors-out", help="directory for kept traces (default apactors-out)")
    run.add_argument("--keep-traces", choices=("failing", "all", "none"), default="failing",
                     help="which traces to keep (default: failing = the first schedule of each distinct finding)")
    run.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--witness-attempts", type=int, default=40, metavar="N",
                     help="directed schedules tried to confirm each potential deadlock (0: no search)")

    rep = sub.add_parser("replay", help="re-execute a trace and check that it reproduces",
                         description="Re-execute a trace step by step; report its findings, or where the "
                                     "execution diverged from the recording.")
    rep.add_argument("trace", help="a trace file (.jsonl) written by `apactors run`")
    rep.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    rep.add_argument("--steps", action="store_true", help="print every step of the replayed execution")
    rep.add_argument("--continue", dest="continue_", choices=("random",),
                     help="when the execution diverges or outlives the trace, keep going under a seeded "
                          "random scheduler")
    rep.add_argument("--seed", type=_seed, default=0, help="seed of the --continue scheduler (default 0)")
    rep.add_argument("--out", help="with --continue: write the continued execution as a new trace")

    scn = sub.add_parser("scenarios", help="list the built-in scenarios")
    scn.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    sch = sub.add_parser("schemes", help="list the locking schemes")
    sch.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    from apactors.report.lockdep_cli import add_lockdep_parser

    add_lockdep_parser(sub)
    add_scheme_parser(sub)
    from apactors.report.compare import add_compare_parser
    from apactors.report.html import add_report_parser

    add_compare_parser(sub)
    add_report_parser(sub)
    from apactors.explore.shrink import add_shrink_parser

    add_shrink_parser(sub)
    return parser


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _print_findings(console: Any, findings: list[dict[str, Any]]) -> None:
    """Findings as plain blocks (they are pasted into mails and read in narrow terminals)."""
    if not findings:
        console.print("No findings.")
        return
    console.print(f"{len(findings)} finding(s):")
    for f in findings:
        extra = ""
        if f["kind"] == "potential-deadlock":
            extra = f", {f.get('checker', 'lockdep')}, " + ("confirmed" if f.get("confirmed") else "not confirmed")
        console.print(f"\n[{f['signature']}] {f['kind']} x{f['count']} (first in schedule {f['first_schedule']}"
                      f"{extra})", markup=False)
        console.print(f"  {f['summary']}", markup=False)
        if f.get("locks"):
            console.print(f"  locks: {' -> '.join(f['locks'])}", markup=False)
        if f.get("paths"):
            console.print(f"  paths: {', '.join(f['paths'])}", markup=False)
        if f["kind"] == "potential-deadlock" and not f.get("confirmed") and f.get("why"):
            console.print(f"  why not confirmed: {f['why']}", markup=False)
        console.print(f"  trace: {f.get('trace') or '(not kept)'}", markup=False)
    reports = [f for f in findings if f.get("report")]
    for f in reports:
        console.print(f"\n--- {f['signature']} ---\n{f['report']}", markup=False)


def cmd_run(args: argparse.Namespace) -> int:
    from apactors.api import explore
    from apactors.scenario import resolve_scenario

    scenario = resolve_scenario(args.scenario, args.scenario_file)
    from apactors.model.registry_ext import resolve_scheme

    scheme_cls = resolve_scheme(args.scheme, args.scheme_file, args.scheme_module)
    progress_cb = None
    bar = None
    if not args.json and not args.quiet and sys.stdout.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[found]} finding(s)"), TimeElapsedColumn(), transient=True)
        task = bar.add_task(f"{scheme_cls.id} / {scenario.name}", total=args.schedules, found=0)
        bar.start()

        def progress_cb(done: int, total: int, found: int) -> None:
            bar.update(task, completed=done, found=found)

    try:
        result = explore(scheme_cls, scenario, strategy=args.strategy, seed=args.seed, schedules=args.schedules,
                         max_steps=args.max_steps, mode=args.mode, out=args.out, keep=args.keep_traces,
                         progress=progress_cb, witness_attempts=args.witness_attempts, jobs=args.jobs,
                         strategy_options={"depth": args.depth, "preemptions": args.preemptions})
    finally:
        if bar is not None:
            bar.stop()
    doc = result.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        console = _console()
        rate = result.steps / result.elapsed_s if result.elapsed_s > 0 else 0.0
        outcomes = ", ".join(f"{k} {v}" for k, v in doc["outcomes"].items())
        console.print(f"apactors {__version__}: scheme {result.scheme}, scenario {result.scenario}, "
                      f"strategy {result.strategy}, seed {result.seed}, mode {result.mode}")
        console.print(f"{result.schedules} schedules, {result.steps} steps in {result.elapsed_s:.2f} s "
                      f"({rate:,.0f} steps/s); outcomes: {outcomes}")
        if result.search:
            console.print(_search_line(result.search), markup=False)
        _print_findings(console, doc["findings"])
    for err in result.errors:
        print(f"apactors: {err}", file=sys.stderr)
    if result.errors:
        return EXIT_BAD_INPUT
    return EXIT_FINDINGS if doc["findings"] else EXIT_OK


def _search_line(search: dict[str, Any]) -> str:
    """How hard the strategy looked, in one line (the JSON has every number)."""
    if "exhaustive" in search:
        verdict = "exhaustive" if search["exhaustive"] else "NOT exhaustive (schedule budget reached)"
        bound = search.get("preemptions")
        return (f"search: {verdict}: {search.get('schedules')} schedules, preemption bound "
                f"{'none' if bound is None or bound < 0 else bound}")
    pcts = search.get("pct") or ([search] if search.get("strategy") == "pct" else [])
    parts = [f"pct d={p['depth']}: >= {p['per_schedule_bound']:.2g} per schedule, chance of having missed a "
             f"depth-{p['depth']} bug {p['miss_probability']:.0%} (k={p['k']}, n={p['n']})" for p in pcts]
    head = f"search: {search.get('strategy')}"
    if search.get("members"):
        head += f" ({', '.join(search['members'])})"
    return head + ("; " + "; ".join(parts) if parts else "")


def cmd_replay(args: argparse.Namespace) -> int:
    from apactors.api import replay

    if args.out and not args.continue_:
        raise BadInput("--out goes with --continue random")
    res = replay(args.trace, continue_random=args.continue_ == "random", seed=args.seed, out=args.out)
    doc = res.to_json()
    if args.json:
        if args.steps:
            doc["events"] = res.events
        print(json.dumps(doc, indent=2))
    else:
        console = _console()
        if args.steps:
            for ev in res.events:
                console.print(_format_step(ev), markup=False)
        console.print(f"replayed {res.trace}: scheme {res.scheme}, scenario {res.scenario}, {res.steps} steps, "
                      f"outcome {res.outcome} (recorded: {res.recorded_outcome})")
        if res.continue_reason:
            console.print(f"continued under a random scheduler (seed {args.seed}) from step {res.continued_at}: "
                          f"{res.continue_reason}" + (f"; trace: {res.continued_trace}" if res.continued_trace else ""),
                          markup=False)
        if res.divergence is not None:
            d = res.divergence
            console.print(f"DIVERGED at step {d['step']}: {d.get('difference') or ''}", markup=False)
            console.print(f"  expected: {d['expected']}", markup=False)
            console.print(f"  got:      {d['got']}", markup=False)
        else:
            console.print("reproduced: every step matches the recording.")
        _print_findings(console, doc["findings"])
    if res.divergence is not None:
        print(f"apactors: {args.trace}: the execution diverged from the trace at step {res.divergence['step']}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_FINDINGS if doc["findings"] else EXIT_OK


def _format_step(ev: dict[str, Any]) -> str:
    skip = {"event", "step", "actor", "path", "stack", "op"}
    rest = " ".join(f"{k}={json.dumps(v)}" for k, v in ev.items() if k not in skip)
    return f"{ev['step']:6d} {ev['actor']:<26} {str(ev.get('path') or '-'):<32} {ev['op']:<10} {rest}"


def cmd_scenarios(args: argparse.Namespace) -> int:
    from apactors.scenario import builtin_scenarios

    items = builtin_scenarios()
    if args.json:
        print(json.dumps({"scenarios": [{"name": n, "description": d} for n, d in items]}, indent=2))
        return EXIT_OK
    from rich.table import Table

    table = Table(title="built-in scenarios")
    table.add_column("name")
    table.add_column("description", overflow="fold")
    for n, d in items:
        table.add_row(n, d)
    _console().print(table)
    return EXIT_OK


def cmd_schemes(args: argparse.Namespace) -> int:
    from apactors.model.schemes import all_schemes

    items = [{"id": s.id, "base": s.base, "kernel": s.kernel, "family": s.family, "description": s.description}
             for s in all_schemes()]
    if args.json:
        print(json.dumps({"schemes": items}, indent=2))
        return EXIT_OK
    from rich.table import Table

    table = Table(title="locking schemes (kernel versions and commits: apactors scheme show ID, or --json)")
    for col in ("id", "base", "family", "description"):
        table.add_column(col, overflow="fold")
    for s in items:
        table.add_row(s["id"], s["base"] or "-", s["family"], s["description"])
    _console().print(table)
    return EXIT_OK


def cmd_lockdep(args: argparse.Namespace) -> int:
    from apactors.report.lockdep_cli import cmd_lockdep as run_lockdep

    return run_lockdep(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from apactors.report.compare import cmd_compare as run_compare

    return run_compare(args)


def cmd_report(args: argparse.Namespace) -> int:
    from apactors.report.html import cmd_report as run_report

    return run_report(args)


def cmd_shrink(args: argparse.Namespace) -> int:
    from apactors.explore.shrink import cmd_shrink as run_shrink

    return run_shrink(args)


def cmd_scheme(args: argparse.Namespace) -> int:
    from apactors.report.scheme_show import cmd_scheme as show

    return show(args)


COMMANDS = {"scheme": cmd_scheme, "run": cmd_run, "replay": cmd_replay, "scenarios": cmd_scenarios, "schemes": cmd_schemes,
            "lockdep": cmd_lockdep, "shrink": cmd_shrink, "compare": cmd_compare, "report": cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apactors`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from apactors.logs import configure_logging

    configure_logging(args.log_format)
    from apactors.api import RunArgumentError
    from apactors.model.build import SetupError
    from apactors.model.scheme_file import SchemeDefinitionError
    from apactors.model.schemes.base import UnknownScheme
    from apactors.scenario import ScenarioError
    from apactors.trace.reader import TraceError

    try:
        return COMMANDS[args.command](args)
    except (ScenarioError, TraceError, SetupError, SchemeDefinitionError, RunArgumentError, BadInput) as e:
        print(f"apactors: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownScheme as e:  # the message lists the known ids
        print(f"apactors: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("apactors: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
