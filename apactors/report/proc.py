"""/proc/lockdep, /proc/lockdep_stats and /proc/lock_stat renderings (domain doc §8.7), and JSON.

Where the kernel prints a class key (an address), the merged graph prints the class's index in name
order as 16 hex digits; times in /proc/lock_stat are logical steps, printed as lock_stat prints
microseconds (two decimals).
"""

from __future__ import annotations

from typing import Any

from apactors.report.collect import (MAX_LOCKDEP_CHAIN_HLOCKS, MAX_LOCKDEP_CHAINS, MAX_LOCKDEP_ENTRIES,
                                     MAX_LOCKDEP_KEYS, MAX_STACK_TRACE_ENTRIES, LockdepRun, LockStatRow, MClass,
                                     MergedGraph, dep_names)
from apactors.report.lockdep_text import acquire_frames, usage_chars, wait_type

LOCKSTAT_POINTS = 4
_WIDTH = 40 + 1 + 12 * (14 + 1)


def _keys(g: MergedGraph) -> dict[str, str]:
    return {c.name: f"{i + 1:016x}" for i, c in enumerate(g.sorted_classes())}


def proc_lockdep(g: MergedGraph) -> str:
    """``all lock classes:`` then per class ``<key> FD: BD: <usage>: <name>`` and its direct dependencies."""
    keys = _keys(g)
    out = ["all lock classes:"]
    for c in g.sorted_classes():
        fd = len(g.reach(c.name)) + 1
        bd = len(g.reach(c.name, forward=False)) + 1
        out.append(f"{keys[c.name]} FD:{fd:5d} BD:{bd:5d} {usage_chars(c)}: {c.name}")
        for dst in sorted(c.fwd):
            if c.fwd[dst].distance == 1:
                out.append(f" -> [{keys[dst]}] {dst}")
        out.append("")
    return "\n".join(out) + "\n"


def _trace_len(g: MergedGraph, e: Any) -> int:
    c = g.classes[e.dst]
    o = e.first
    return len(acquire_frames(c.kind, o.mode, o.try_, o.how, c.subclass, c.bh)) + len(o.stack)


def lockdep_stats(g: MergedGraph) -> dict[str, int]:
    """The fields of /proc/lockdep_stats that mean something here, with their values."""
    classes = g.sorted_classes()
    nr_list = 2 * len(g.edges)  # a dependency is on its source's locks_after and its target's locks_before
    fwd = sum(len(g.reach(c.name)) + 1 for c in classes)
    chains = len(g.chains)
    traces = {(e.dst, e.first.how, e.first.mode, e.first.try_, e.first.stack) for e in g.edges.values()}
    irq = [c for c in classes if c.validate and c.kind not in ("srcu", "wait")]
    hard_unsafe = sum(1 for c in irq if c.usage & 1)
    soft_unsafe = sum(1 for c in irq if c.usage & 1 and not c.bh)
    hard_read_unsafe = sum(1 for c in irq if c.usage & 2)
    soft_read_unsafe = sum(1 for c in irq if c.usage & 2 and not c.bh)
    uncategorized = sum(1 for c in classes if c not in irq or not c.usage)
    return {
        "lock-classes": len(classes),
        "direct dependencies": nr_list,
        "indirect dependencies": fwd,
        "all direct dependencies": nr_list,
        "dependency chains": chains,
        "dependency chain hlocks used": sum(len(ch) for ch in g.chains),
        "dependency chain hlocks lost": 0,
        "in-hardirq chains": 0,
        "in-softirq chains": 0,
        "in-process chains": chains,
        "stack-trace entries": sum(_trace_len(g, e) for e in g.edges.values()),
        "number of stack traces": len(traces),
        "number of stack hash chains": len(traces),
        "combined max dependencies": chains + 1,
        "hardirq-safe locks": 0,
        "hardirq-unsafe locks": hard_unsafe,
        "softirq-safe locks": 0,
        "softirq-unsafe locks": soft_unsafe,
        "irq-safe locks": 0,
        "irq-unsafe locks": max(hard_unsafe, soft_unsafe),
        "hardirq-read-safe locks": 0,
        "hardirq-read-unsafe locks": hard_read_unsafe,
        "softirq-read-safe locks": 0,
        "softirq-read-unsafe locks": soft_read_unsafe,
        "irq-read-safe locks": 0,
        "irq-read-unsafe locks": max(hard_read_unsafe, soft_read_unsafe),
        "uncategorized locks": uncategorized,
        "unused locks": 0,
        "max locking depth": g.max_depth,
        "max bfs queue depth": g.max_bfs,
        "max lock class index": len(classes) - 1 if classes else 0,
        "debug_locks": 1,
        "zapped classes": 0,
        "zapped lock chains": 0,
        "large chain blocks": 0,
    }


_MAX = {"lock-classes": MAX_LOCKDEP_KEYS, "direct dependencies": MAX_LOCKDEP_ENTRIES,
        "dependency chains": MAX_LOCKDEP_CHAINS, "dependency chain hlocks used": MAX_LOCKDEP_CHAIN_HLOCKS,
        "stack-trace entries": MAX_STACK_TRACE_ENTRIES}


def proc_lockdep_stats(g: MergedGraph) -> str:
    out = []
    for k, v in lockdep_stats(g).items():
        if k == "zapped classes":
            out.append("")
        line = f" {k + ':':<30} {v:11d}"
        if k in _MAX:
            line += f" [max: {_MAX[k]}]"
        out.append(line)
    return "\n".join(out) + "\n"


def _t(v: float) -> str:
    return f" {v:14.2f}"


def _lock_time(n: int, lo: int, hi: int, total: int) -> str:
    return f"{n:14d}" + _t(lo) + _t(hi) + _t(total) + _t(total / n if n else 0.0)


def _stat_line(label: str, r: LockStatRow) -> str:
    return (f"{label}{0:14d} " + _lock_time(r.contentions, r.wait_min, r.wait_max, r.wait_total)
            + f" {0:14d} " + _lock_time(r.holds, r.hold_min, r.hold_max, r.hold_total))


def lock_stat_rows(run: LockdepRun) -> list[tuple[str, bool, list[tuple[str, LockStatRow]]]]:
    """Per class, sorted by contentions (then name): (name, also read, [(rw, row)])."""
    by: dict[str, dict[str, LockStatRow]] = {}
    for (name, rw), r in run.stats.rows.items():
        by.setdefault(name, {})[rw] = r
    items = []
    for name, halves in by.items():
        cont = sum(r.contentions for r in halves.values())
        items.append((-cont, name, "R" in halves, sorted(halves.items(), key=lambda kv: kv[0] != "W")))
    items.sort()
    return [(name, rd, halves) for _, name, rd, halves in items]


def proc_lock_stat(run: LockdepRun) -> str:
    out = ["lock_stat version 0.4", "-" * _WIDTH,
           f"{'class name':>40} " + " ".join(f"{h:>14}" for h in (
               "con-bounces", "contentions", "waittime-min", "waittime-max", "waittime-total", "waittime-avg",
               "acq-bounces", "acquisitions", "holdtime-min", "holdtime-max", "holdtime-total", "holdtime-avg")),
           "-" * _WIDTH, ""]
    for name, read, halves in lock_stat_rows(run):
        for rw, r in halves:
            label = f"{name + '-' + rw:>38}:" if read else f"{name:>40}:"
            out.append(_stat_line(label, r))
        cont = [r for _, r in halves if r.contentions]
        if not cont:
            continue
        namelen = len(name) + (2 if read else 0)
        points = sum((r.contention_points for r in cont), start=type(cont[0].contention_points)())
        holders = sum((r.contending_points for r in cont), start=type(cont[0].contending_points)())
        for pts in (points, holders):
            out.append(" " * max(40 - namelen, 0) + "-" * namelen)
            for where, n in sorted(pts.items(), key=lambda kv: (-kv[1], kv[0]))[:LOCKSTAT_POINTS]:
                out.append(f"{name:>40} {n:14d} {where}+0x0/0x0")
        out += ["", "." * _WIDTH, ""]
    return "\n".join(out) + "\n"


def class_json(g: MergedGraph, c: MClass, keys: dict[str, str]) -> dict[str, Any]:
    return {"name": c.name, "key": keys[c.name], "kind": c.kind, "usage": usage_chars(c), "wait_type": wait_type(c),
            "validate": c.validate, "wait_node": c.wait, "fd": len(g.reach(c.name)) + 1,
            "bd": len(g.reach(c.name, forward=False)) + 1,
            "deps": sorted(d for d, e in c.fwd.items() if e.distance == 1)}


def run_json(run: LockdepRun) -> dict[str, Any]:
    """The whole ``apactors lockdep`` result as one JSON document."""
    g = run.graph
    keys = _keys(g)
    lock_stat = []
    for name, read, halves in lock_stat_rows(run):
        for rw, r in halves:
            lock_stat.append({
                "class": name, "rw": rw if read else None, "contentions": r.contentions,
                "waittime_min": r.wait_min, "waittime_max": r.wait_max, "waittime_total": r.wait_total,
                "waittime_avg": round(r.wait_total / r.contentions, 2) if r.contentions else 0.0,
                "acquisitions": r.holds, "holdtime_min": r.hold_min, "holdtime_max": r.hold_max,
                "holdtime_total": r.hold_total, "holdtime_avg": round(r.hold_total / r.holds, 2) if r.holds else 0.0,
                "contention_points": [{"path": k, "count": v} for k, v in r.contention_points.most_common()],
                "contending_points": [{"path": k, "count": v} for k, v in r.contending_points.most_common()],
            })
    deps = []
    for (src, dst), e in sorted(g.edges.items()):
        o = e.first
        deps.append({"from": src, "to": dst, "types": dep_names(e.deps), "wait_types": dep_names(e.wdeps & ~e.deps),
                     "distance": e.distance, "actor": o.actor, "path": o.path, "stack": list(o.stack),
                     "schedule": e.schedule, "step": o.step, "how": o.how, "actors": sorted(e.actors)})
    return {
        "scheme": run.scheme, "scenario": run.scenario, "seed": run.seed, "schedules": run.schedules,
        "waitdep": run.waitdep, "steps": run.steps, "outcomes": dict(sorted(run.outcomes.items())),
        "classes": [class_json(g, c, keys) for c in g.sorted_classes()],
        "dependencies": deps,
        "lockdep_stats": lockdep_stats(g),
        "lock_stat": lock_stat,
        "cycles": run.cycles.to_json(),
    }


__all__ = ["lock_stat_rows", "lockdep_stats", "proc_lock_stat", "proc_lockdep", "proc_lockdep_stats", "run_json"]
