"""``apactors lockdep``: the lock-class graph of a scheme on a scenario, in lockdep's shapes.

    apactors lockdep --scheme ID (--scenario ID | --scenario-file PATH) [--format text|json|dot]
                     [--schedules N] [--seed S] [--max-steps N] [--witness-attempts N] [--lockdep-only]

It runs random schedules, merges the class graph of every schedule and prints /proc/lockdep,
/proc/lockdep_stats, a /proc/lock_stat table (times in logical steps) and every cycle found, as
lockdep's report, with the checker that saw it (``lockdep``, or ``waitdep`` for a cycle through a wait
that lockdep cannot see) and the witness verdict.  Exit status: 0 no cycle, 1 cycles, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

EXIT_OK, EXIT_FINDINGS = 0, 1


def add_lockdep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``lockdep`` subcommand to the CLI's subparsers."""
    from apactors.cli import _positive, _seed

    p = subparsers.add_parser(
        "lockdep", help="print the lock-class graph, lockdep statistics and cycles",
        description="Run schedules of a scenario under a scheme, merge the lock-class dependency graph and print "
                    "it as /proc/lockdep, /proc/lockdep_stats and /proc/lock_stat, followed by every potential "
                    "deadlock as a lockdep report (with waitdep's cycles through waits lockdep cannot see).")
    p.add_argument("--scheme", required=True, help="scheme id (see `apactors schemes`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenario", help="built-in scenario name (see `apactors scenarios`)")
    src.add_argument("--scenario-file", help="path of a scenario TOML file")
    p.add_argument("--format", choices=("text", "json", "dot"), default="text", help="output format (default text)")
    p.add_argument("--schedules", type=_positive, default=20, help="number of schedules (default 20)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the run (default 0)")
    p.add_argument("--max-steps", type=_positive, default=50_000, help="step bound per schedule")
    p.add_argument("--witness-attempts", type=int, default=20,
                   help="directed schedules tried per cycle to confirm it with an actual deadlock (0: do not try)")
    p.add_argument("--lockdep-only", action="store_true",
                   help="plain lockdep: no wait nodes (open-coded waits, device close, synchronize_srcu)")
    p.set_defaults(func=cmd_lockdep)
    return p


def cmd_lockdep(args: argparse.Namespace) -> int:
    from apactors.check.witness import confirm
    from apactors.model.schemes.base import get_scheme
    from apactors.report.collect import collect
    from apactors.report.dot import to_dot
    from apactors.report.proc import run_json
    from apactors.scenario import resolve_scenario

    scenario = resolve_scenario(args.scenario, args.scenario_file)
    scheme_cls = get_scheme(args.scheme)
    from apactors.model.build import build_world

    build_world(scheme_cls, scenario)  # a refused setup step is bad input (SetupError)
    run = collect(scheme_cls, scenario, schedules=args.schedules, seed=args.seed, max_steps=args.max_steps,
                  waitdep=not args.lockdep_only)
    if args.witness_attempts > 0:
        for agg in run.cycles.by_sig.values():
            v = confirm(scheme_cls, scenario, agg.first, attempts=args.witness_attempts, seed=args.seed,
                        max_steps=args.max_steps)
            v.apply(agg.first)
            run.verdicts[agg.first.signature] = v
    if args.format == "json":
        print(json.dumps(run_json(run), indent=2))
    elif args.format == "dot":
        print(to_dot(run), end="")
    else:
        print(render_text(run), end="")
    return EXIT_FINDINGS if len(run.cycles) else EXIT_OK


def render_text(run: Any) -> str:
    from apactors.report.proc import proc_lock_stat, proc_lockdep, proc_lockdep_stats

    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(run.outcomes.items()))
    mode = "lockdep + waitdep" if run.waitdep else "lockdep only"
    out = [f"# apactors lockdep: scheme {run.scheme}, scenario {run.scenario}, {run.schedules} schedule(s), seed "
           f"{run.seed}, {run.steps} steps ({mode}); outcomes: {outcomes}", "",
           "# /proc/lockdep", proc_lockdep(run.graph),
           "# /proc/lockdep_stats", proc_lockdep_stats(run.graph),
           "# /proc/lock_stat (times in logical steps)", proc_lock_stat(run)]
    cycles = run.cycles.to_json()
    seen_by = {"lockdep": 0, "waitdep": 0}
    for f in cycles:
        seen_by[f.get("checker", "lockdep")] = seen_by.get(f.get("checker", "lockdep"), 0) + 1
    out.append(f"# {len(cycles)} potential deadlock(s): {seen_by['lockdep']} that lockdep reports, "
               f"{seen_by['waitdep']} that only the wait-aware checker (waitdep) sees")
    for f in cycles:
        verdict = ("confirmed: a directed schedule deadlocks (attempt "
                   f"{f.get('witness_attempt', 0) + 1}, schedule seed {f.get('witness_seed')})"
                   if f.get("confirmed") else f"not confirmed: {f.get('why')}")
        out += ["", f"# [{f['signature']}] {f['checker']}: {f['summary']}",
                f"#   seen in {f['count']} of {run.schedules} schedule(s), first in schedule {f['first_schedule']}"
                f" (seed {f['seed']}); {verdict}", "", f.get("report", "").rstrip("\n")]
    return "\n".join(out) + "\n"


__all__ = ["add_lockdep_parser", "cmd_lockdep", "render_text"]
