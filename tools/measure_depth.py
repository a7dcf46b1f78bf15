#!/usr/bin/env python3
"""Schedules to the first finding: PCT against random (and the portfolio), over many seeds.

For every scheme x scenario and every strategy, runs ``--seeds`` independent runs (run seed 0, 1, ...)
of up to ``--cap`` schedules each, exactly as ``apactors run --strategy S --seed N`` would, and
records, per distinct finding (signature), the index of the first schedule that shows it.  It prints,
per finding, the mean and median schedules-to-first-finding of each strategy (a run that never finds
it counts as ``--cap``, marked ``>``) and how many runs found it at all.  With ``--depth`` it also
shrinks the first trace of each finding and reports its observed depth (preemptions).

This is a measurement, not a test: it takes minutes.  Example:

    python tools/measure_depth.py --scheme latest --scenario remove-vs-close --seeds 20 --cap 400
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any

STRATEGIES: tuple[tuple[str, dict[str, Any]], ...] = (("random", {}), ("pct-d2", {"depth": 2}), ("pct-d3", {"depth": 3}), ("portfolio", {}))


def first_findings(scheme: str, scenario: str, label: str, seed: int, cap: int, max_steps: int) -> dict[str, Any]:
    """One run: signature -> (first schedule index, kind, summary)."""
    from apactors.api import _scenario, schedule_seed
    from apactors.engine.controlled import run_schedule
    from apactors.engine.strategies import make_strategy
    from apactors.model.schemes import get_scheme

    cls = get_scheme(scheme)
    scen = _scenario(scenario)
    name, options = next((n, o) for n, o in STRATEGIES if n == label)
    strat = make_strategy("pct" if name.startswith("pct") else name, **options)
    strat.prepare(cls, scen, max_steps)
    first: dict[str, Any] = {}
    for i in range(cap):
        try:
            sr = run_schedule(cls, scen, strat, index=i, seed=schedule_seed(seed, i), max_steps=max_steps,
                              record=False)
        except Exception:  # noqa: BLE001 - a model error is not a finding
            continue
        for f in sr.findings:
            if f.signature not in first:
                first[f.signature] = (i + 1, f.kind, f.summary)
    return first


def observed_depth(scheme: str, scenario: str, signature: str, label: str, cap: int, max_steps: int) -> Any:
    """Find the signature again with ``label`` (seed 0), keep the trace, shrink it: its depth."""
    from apactors.explore.parallel import explore_parallel
    from apactors.explore.shrink import shrink

    name, options = next((n, o) for n, o in STRATEGIES if n == label)
    with tempfile.TemporaryDirectory() as d:
        r = explore_parallel(scheme, scenario, strategy="pct" if name.startswith("pct") else name,
                             strategy_options=options, schedules=cap, seed=0, max_steps=max_steps, out=d,
                             jobs=1, witness_attempts=0)
        f = next((f for f in r.findings_json() if f["signature"] == signature), None)
        if f is None or not f.get("trace"):
            return None
        res = shrink(f["trace"], f"{d}/min.jsonl", signature=signature)
        return {"depth": res.depth, "minimal": res.depth_minimal, "steps": res.after["steps"],
                "actors": res.after["actors"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", action="append", help="scheme id (repeatable; default: every scheme)")
    ap.add_argument("--scenario", action="append", help="built-in scenario (repeatable; default: all)")
    ap.add_argument("--seeds", type=int, default=20, help="runs per strategy (run seeds 0..N-1; default 20)")
    ap.add_argument("--cap", type=int, default=400, help="schedules per run at most (default 400)")
    ap.add_argument("--max-steps", type=int, default=50_000)
    ap.add_argument("--strategy", action="append", choices=[n for n, _ in STRATEGIES],
                    help="strategies to compare (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--depth", action="store_true", help="also shrink each finding to report its depth")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    from apactors.model.schemes import all_schemes
    from apactors.scenario import builtin_scenarios

    schemes = args.scheme or [s.id for s in all_schemes()]
    scenarios = args.scenario or [n for n, _ in builtin_scenarios()]
    labels = args.strategy or [n for n, _ in STRATEGIES]
    jobs = [(sch, scn, lab, seed) for sch in schemes for scn in scenarios for lab in labels
            for seed in range(args.seeds)]
    import multiprocessing

    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(first_findings, *zip(*[(a, b, c, d, args.cap, args.max_steps)
                                                        for a, b, c, d in jobs])))
    table: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (sch, scn, lab, seed), first in zip(jobs, results):
        for sig, (n, kind, summary) in first.items():
            row = table.setdefault((sch, scn, sig), {"kind": kind, "summary": summary, "runs": {}})
            row["runs"].setdefault(lab, {})[seed] = n
    rows = []
    for (sch, scn, sig), row in sorted(table.items()):
        out = {"scheme": sch, "scenario": scn, "signature": sig, "kind": row["kind"], "summary": row["summary"],
               "strategies": {}}
        for lab in labels:
            found = row["runs"].get(lab, {})
            values = [found.get(s, args.cap) for s in range(args.seeds)]
            out["strategies"][lab] = {"found": len(found), "runs": args.seeds, "mean": statistics.mean(values),
                                      "median": statistics.median(values), "censored": args.seeds - len(found)}
        if args.depth:
            best = min(labels, key=lambda lab: out["strategies"][lab]["mean"])
            out["observed_depth"] = observed_depth(sch, scn, sig, best, args.cap, args.max_steps)
        rows.append(out)
    if args.json:
        print(json.dumps({"seeds": args.seeds, "cap": args.cap, "findings": rows}, indent=2))
        return 0
    if not rows:
        print(f"no finding in {args.seeds} run(s) of {args.cap} schedules of: {', '.join(scenarios)}")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"schedules to first finding (mean / median over {args.seeds} runs, cap {args.cap})")
    for col in ["scheme", "scenario", "finding"] + labels + (["depth"] if args.depth else []):
        t.add_column(col, overflow="fold")
    for r in rows:
        cells = []
        for lab in labels:
            s = r["strategies"][lab]
            mark = ">" if s["censored"] else ""
            cells.append(f"{mark}{s['mean']:.1f} / {s['median']:.0f} ({s['found']}/{s['runs']})")
        depth = []
        if args.depth:
            d = r.get("observed_depth")
            depth = ["-" if d is None else f"{d['depth']}{'' if d['minimal'] else '?'}"]
        t.add_row(r["scheme"], r["scenario"], f"{r['kind']} {r['signature']}", *cells, *depth)
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
