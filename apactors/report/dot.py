"""The lock-class graph as Graphviz DOT (plain text; no graphviz needed to write it).

Classes are boxes labelled with their usage and wait type, wait nodes (waitdep) dashed ellipses; each
dependency is labelled with the path (and actor) that first made it; edges that lie on a reported
cycle are red, dependencies only waitdep sees are dashed.
"""

from __future__ import annotations

from typing import Any

from apactors.report.collect import LockdepRun
from apactors.report.lockdep_text import usage_chars, wait_type


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cycle_edges(run: LockdepRun) -> set[tuple[str, str]]:
    """The dependencies that lie on a reported cycle (from, to)."""
    out: set[tuple[str, str]] = set()
    for f in run.cycles.to_json():
        for e in f.get("edges") or []:
            out.add((e["from"], e["to"]))
    return out


def to_dot(run: LockdepRun) -> str:
    g = run.graph
    red = cycle_edges(run)
    lines = [f"// apactors lockdep: scheme {run.scheme}, scenario {run.scenario}, {run.schedules} schedule(s),"
             f" seed {run.seed}",
             "digraph lockdep {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];',
             '  edge [fontname="monospace", fontsize=10];']
    for c in g.sorted_classes():
        attrs: dict[str, Any] = {"label": f"{c.name}\\n{{{usage_chars(c)}}}-{{{wait_type(c)}}}"}
        if c.wait:
            attrs.update(shape="ellipse", style="dashed")
        elif not c.validate:
            attrs.update(style="dotted")
        lines.append(f"  {_q(c.name)} [{', '.join(f'{k}={_label(v)}' for k, v in attrs.items())}];")
    for (src, dst), e in sorted(g.edges.items()):
        o = e.first
        attrs = {"label": f"{o.path} ({o.actor})"}
        if (src, dst) in red:
            attrs.update(color="red", fontcolor="red", penwidth="2")
        if e.wait_only:
            attrs["style"] = "dashed"
        lines.append(f"  {_q(src)} -> {_q(dst)} [{', '.join(f'{k}={_label(v)}' for k, v in attrs.items())}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label(v: Any) -> str:
    s = str(v)
    if s.replace(".", "").isalnum():
        return s
    return '"' + s.replace('"', '\\"') + '"'


__all__ = ["cycle_edges", "to_dot"]
