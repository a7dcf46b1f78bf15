#!/usr/bin/env python3
"""Benchmark: exploration throughput with every check on, against the floor of bare stepping.

For each built-in scenario it runs the same schedules twice on one core:

* **checks on**: what ``apactors run`` does per schedule: build the world, step the actors under the
  random strategy, record the event stream in memory (as for ``--keep-traces failing``), and feed every
  checker;
* **floor**: the same world building and stepping with no recording and no checker at all.

It prints steps/s and schedules/s for both and the ratio checks-on / floor (target: >= 50,000 steps/s
with checks on, ratio > 0.2).  Timing lives here, never in a test.

    python tools/bench.py [--scheme latest] [--schedules 200] [--scenario NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console
from rich.table import Table

from apactors.api import schedule_seed
from apactors.engine.controlled import run_schedule
from apactors.engine.strategies import RandomStrategy
from apactors.model.schemes import get_scheme
from apactors.scenario import builtin_scenarios, load_builtin


def measure(scheme_cls, scenario, schedules: int, checks: bool) -> tuple[int, float]:
    strategy = RandomStrategy()
    steps = 0
    t0 = time.perf_counter()
    for i in range(schedules):
        sr = run_schedule(scheme_cls, scenario, strategy, index=i, seed=schedule_seed(1, i), record=checks,
                          check=checks)
        steps += sr.steps
    return steps, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", default="latest")
    ap.add_argument("--schedules", type=int, default=200)
    ap.add_argument("--scenario", action="append", help="scenario name (default: every built-in)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    scheme_cls = get_scheme(args.scheme)
    names = args.scenario or [n for n, _ in builtin_scenarios()]
    rows = []
    for name in names:
        scen = load_builtin(name)
        measure(scheme_cls, scen, 3, True)  # warm up imports and caches
        on_steps, on_s = measure(scheme_cls, scen, args.schedules, True)
        fl_steps, fl_s = measure(scheme_cls, scen, args.schedules, False)
        rows.append({"scenario": name, "schedules": args.schedules, "steps": on_steps,
                     "on_steps_s": on_steps / on_s, "on_sched_s": args.schedules / on_s,
                     "floor_steps_s": fl_steps / fl_s, "floor_sched_s": args.schedules / fl_s,
                     "ratio": (on_steps / on_s) / (fl_steps / fl_s), "on_s": on_s, "floor_s": fl_s})
    tot_steps = sum(r["steps"] for r in rows)
    tot_on = sum(r["on_s"] for r in rows)
    tot_fl = sum(r["floor_s"] for r in rows)
    total = {"scenario": "all", "schedules": args.schedules * len(rows), "steps": tot_steps,
             "on_steps_s": tot_steps / tot_on, "on_sched_s": args.schedules * len(rows) / tot_on,
             "floor_steps_s": tot_steps / tot_fl, "floor_sched_s": args.schedules * len(rows) / tot_fl,
             "ratio": tot_fl / tot_on}
    if args.json:
        print(json.dumps({"scheme": args.scheme, "rows": rows, "total": total}, indent=2))
        return 0
    table = Table(title=f"apactors throughput, scheme {args.scheme}, one core, {args.schedules} schedules each")
    for col in ("scenario", "steps", "checks on: steps/s", "schedules/s", "floor: steps/s", "schedules/s",
                "ratio"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    for r in rows + [total]:
        table.add_row(r["scenario"], f"{r['steps']:,}", f"{r['on_steps_s']:,.0f}", f"{r['on_sched_s']:,.1f}",
                      f"{r['floor_steps_s']:,.0f}", f"{r['floor_sched_s']:,.1f}", f"{r['ratio']:.2f}")
    Console(width=max(120, Console().width)).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
