#!/usr/bin/env python3
"""Regenerate ``traces/``: one shrunk reproducer per distinct defect apactors finds on the shipped schemes.

For every scheme x built-in scenario it explores ``--schedules`` schedules with the portfolio strategy
(seed ``--seed``), shrinks the trace of every distinct finding (signature), and keeps, per signature,
the smallest reproducer over all scenarios (fewest steps, then fewest actors).  Each reproducer is
``traces/<scheme>--<kind>-<digest>.jsonl`` with its scenario next to it (``.toml``);
``traces/README.md`` gets one line per reproducer (scheme, scenario, finding, depth).  Files of the
library that no longer correspond to a finding are removed.  Deterministic: the same code gives the
same library.  ``tests/test_traces.py`` replays every reproducer in CI.

    python tools/regen_traces.py [--scheme ID ...] [--scenario NAME ...] [--kind KIND ...] [--schedules 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "traces"


def hunt(scheme: str, scenario: str, schedules: int, seed: int, jobs: int, work: Path,
         kinds: list[str] | None = None) -> list[dict[str, Any]]:
    """Shrunk reproducers of every finding of one scheme x scenario."""
    from apactors.explore.parallel import explore_parallel
    from apactors.explore.shrink import ShrinkError, shrink

    out = work / f"{scheme}--{scenario}"
    r = explore_parallel(scheme, scenario, strategy="portfolio", schedules=schedules, seed=seed, out=out,
                         jobs=jobs, witness_attempts=0)
    found = []
    for f in r.findings_json():
        if not f.get("trace") or (kinds and f["kind"] not in kinds):
            continue
        target = out / f"min-{f['signature']}.jsonl"
        try:
            res = shrink(f["trace"], target, signature=f["signature"])
        except ShrinkError as e:
            print(f"  {scheme} {scenario} {f['signature']}: not shrunk: {e}", file=sys.stderr)
            continue
        found.append({"scheme": scheme, "scenario": scenario, "result": res, "summary": f["summary"]})
        print(f"  {scheme} {scenario}: {f['kind']} {f['signature']} -> {res.after['steps']} steps, depth "
              f"{res.depth}", file=sys.stderr)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", action="append", help="scheme id (repeatable; default: every scheme)")
    ap.add_argument("--scenario", action="append", help="built-in scenario (repeatable; default: all)")
    ap.add_argument("--schedules", type=int, default=300, help="schedules per scheme x scenario (default 300)")
    ap.add_argument("--kind", action="append",
                    help="keep only findings of this kind (repeatable; default: every kind but hang — hangs are "
                         "mostly the aftermath of a crash or deadlock the library already holds, and their "
                         "signatures split by who waits where)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(TRACES), help="the library directory (default traces/)")
    args = ap.parse_args(argv)

    from apactors.model.schemes import all_schemes
    from apactors.scenario import builtin_scenarios
    from apactors.trace.writer import write_atomic

    schemes = args.scheme or [s.id for s in all_schemes() if not s.id.startswith("test-")]
    kinds = args.kind or ["deadlock", "potential-deadlock", "crash", "invariant", "race", "stale-read"]
    scenarios = args.scenario or [n for n, _ in builtin_scenarios()]
    lib = Path(args.out)
    lib.mkdir(parents=True, exist_ok=True)
    best: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in schemes:
            for scenario in scenarios:
                for item in hunt(scheme, scenario, args.schedules, args.seed, args.jobs, Path(tmp), kinds):
                    res = item["result"]
                    key = (scheme, res.signature)
                    size = (res.after["steps"], res.after["actors"], scenario)
                    if key not in best or size < best[key]["size"]:
                        item["size"] = size
                        item["text"] = Path(res.trace).read_text(encoding="utf-8")
                        item["toml"] = Path(res.scenario_file).read_text(encoding="utf-8")
                        best[key] = item
        keep: set[str] = {"README.md"}
        lines = ["# Reproducers", "",
                 "One shrunk trace per distinct defect that apactors finds on the shipped schemes, with its "
                 "scenario (`.toml`).",
                 "Regenerate with `python tools/regen_traces.py --schedules 100` (findings of every kind but "
                 "`hang`); `tests/test_traces.py` replays each one in CI.",
                 "", "Depth is the number of preemptions of the shrunk schedule (`minimal`: no schedule with "
                 "fewer preemptions shows the finding in that scenario).", ""]
        for (scheme, sig), item in sorted(best.items()):
            res = item["result"]
            name = f"{scheme}--{sig}"
            (lib / f"{name}.jsonl").write_text(item["text"].replace(str(Path(tmp)), "."), encoding="utf-8")
            write_atomic(lib / f"{name}.toml", item["toml"])
            keep |= {f"{name}.jsonl", f"{name}.toml"}
            minimal = ", minimal" if res.depth_minimal else ""
            lines.append(f"- `{name}.jsonl`: scheme `{scheme}`, scenario `{item['scenario']}` (shrunk to "
                         f"{res.after['actors']} actors, {res.after['steps']} steps), {res.kind} `{sig}`, depth "
                         f"{res.depth}{minimal}: {item['summary']}")
        if not best:
            lines.append("(no finding on the shipped schemes)")
    write_atomic(lib / "README.md", "\n".join(lines) + "\n")
    for p in sorted(lib.iterdir()):
        if p.is_file() and p.name not in keep and p.suffix in (".jsonl", ".toml"):
            p.unlink()
    print(f"{len(best)} reproducer(s) in {lib}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
