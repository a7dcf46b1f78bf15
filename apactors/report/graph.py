"""The lock-class dependency graph of a run as plain data, Graphviz DOT and SVG.

:class:`LockGraph` is the picture's model: lock classes (and waitdep's wait nodes) and the
dependencies between them, each labelled with the code path (and actor) that first made it, those on a
reported cycle marked.  It is plain data (it crosses process boundaries and goes into JSON), built from
the merged class graph of :mod:`apactors.report.collect` (:func:`from_merged`) or by replaying one trace
(:func:`graph_of_trace`).

SVG comes from Graphviz's ``dot`` when it is installed (:func:`to_svg`); otherwise, and always with
``engine="builtin"``, from a small layered layout done here (:func:`layered_svg`): nodes in columns by
longest path (cycles broken at their back edges), ordered in each column by the barycentre of their
neighbours, edges as curves with their labels.  Both are deterministic.  Cycle edges are red, edges
that only the wait-aware checker sees are dashed, wait nodes are dashed ellipses.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable


@dataclass
class GNode:
    """A lock class (``kind``: mutex, spinlock, rwsem, rwlock, srcu, map) or a wait node (``wait``)."""

    name: str
    kind: str = "mutex"
    wait: bool = False
    validate: bool = True


@dataclass
class GEdge:
    """A dependency ``src -> dst``: the path and actor that first made it."""

    src: str
    dst: str
    path: str = "?"
    actor: str = ""
    wait_only: bool = False
    cycle: bool = False

    @property
    def label(self) -> str:
        return f"{self.path} ({self.actor})" if self.actor else self.path


@dataclass
class LockGraph:
    """A lock-class dependency graph ready to draw (nodes and edges sorted by name)."""

    title: str = ""
    nodes: list[GNode] = field(default_factory=list)
    edges: list[GEdge] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "nodes": [asdict(n) for n in self.nodes],
                "edges": [asdict(e) for e in self.edges]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LockGraph":
        return cls(d.get("title", ""), [GNode(**n) for n in d.get("nodes", [])],
                   [GEdge(**e) for e in d.get("edges", [])])

    def cycle_edges(self) -> list[GEdge]:
        return [e for e in self.edges if e.cycle]


def cycle_pairs(findings: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (from, to) class pairs on the cycles of potential-deadlock findings (JSON form)."""
    out: set[tuple[str, str]] = set()
    for f in findings:
        if f.get("kind") == "potential-deadlock":
            for e in f.get("edges") or []:
                out.add((e["from"], e["to"]))
    return out


def from_merged(graph: Any, findings: Iterable[dict[str, Any]] = (), title: str = "",
                direct_only: bool = True) -> LockGraph:
    """A :class:`LockGraph` from a :class:`~apactors.report.collect.MergedGraph` and the run's findings.

    With ``direct_only`` (the default) only the dependencies lockdep lists in /proc/lockdep (distance 1:
    the lock held just before) and the edges of cycles are drawn; the checker records an edge from every
    held lock, which makes a dense picture without showing more orders."""
    red = cycle_pairs(findings)
    nodes = [GNode(c.name, c.kind, bool(c.wait), bool(c.validate)) for c in graph.sorted_classes()]
    edges = []
    for (src, dst), e in sorted(graph.edges.items()):
        if direct_only and e.distance > 1 and (src, dst) not in red:
            continue
        o = e.first
        edges.append(GEdge(src, dst, o.path, o.actor, bool(e.wait_only), (src, dst) in red))
    return LockGraph(title, nodes, edges)


def graph_of_trace(trace: Any, direct_only: bool = True) -> LockGraph:
    """Replay a trace (path or :class:`~apactors.trace.Trace`) under a full lockdep checker and return its
    class graph, with the cycles of the replayed schedule marked."""
    from apactors.check import CHECKERS
    from apactors.check.lockdep import LockdepChecker
    from apactors.engine.controlled import run_schedule
    from apactors.engine.strategies import ReplayStrategy
    from apactors.model.scheme_file import scheme_from_header
    from apactors.report.collect import MergedGraph
    from apactors.scenario import scenario_from_dict
    from apactors.trace.reader import read_trace

    tr = read_trace(trace) if isinstance(trace, (str, Path)) else trace
    hdr = tr.header
    scheme_cls = scheme_from_header(hdr, f"trace {tr.path}")
    scen = scenario_from_dict(hdr["scenario"], str(tr.path), key_prefix="header.scenario")
    made: list[LockdepChecker] = []

    def factory(world: Any, scheme: Any, scenario: Any) -> LockdepChecker:
        ck = LockdepChecker(world, scheme, scenario, waitdep=True, prefilter=False)
        made.append(ck)
        return ck

    saved = CHECKERS.get("lockdep")
    CHECKERS["lockdep"] = factory
    try:
        from apactors.engine.strategies import Divergence

        try:
            run_schedule(scheme_cls, scen, ReplayStrategy(tr.schedule()), seed=int(hdr.get("schedule_seed", 0)),
                         max_steps=int(hdr.get("max_steps", 50_000)), record=False)
        except Divergence:
            pass  # draw what was replayed up to the divergence
    finally:
        if saved is None:
            CHECKERS.pop("lockdep", None)
        else:
            CHECKERS["lockdep"] = saved
    merged = MergedGraph()
    if made:
        merged.merge(made[-1], int(hdr.get("schedule", 0)))
        findings = [f.to_json() for f in made[-1].findings()]
    else:
        findings = []
    title = f"{scheme_cls.id} / {scen.name}"
    return from_merged(merged, findings + list((tr.footer or {}).get("findings") or []), title, direct_only)


# --------------------------------------------------------------------------------------------------
# DOT

def _q(text: str) -> str:
    """A DOT string literal (newlines become DOT's centred line breaks)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: LockGraph) -> str:
    """Graphviz DOT: classes as boxes, wait nodes as dashed ellipses, cycle edges red."""
    lines = [f"// apactors lock-class graph: {g.title}" if g.title else "// apactors lock-class graph",
             "digraph lockdep {", "  rankdir=TB;", "  nodesep=0.35;", "  ranksep=0.6;", '  bgcolor="white";',
             '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", color="#5b6b8c", '
             'fontname="DejaVu Sans Mono,monospace", fontsize=11];',
             '  edge [fontname="DejaVu Sans,sans-serif", fontsize=9, color="#7a869a", fontcolor="#4a5468"];']
    for n in g.nodes:
        attrs = {"label": f"{n.name}\n{n.kind}"}
        if n.wait:
            attrs.update(shape="ellipse", style="dashed,filled", fillcolor="#fff8e6")
        elif not n.validate:
            attrs.update(style="dotted,filled")
        lines.append(f"  {_q(n.name)} [{', '.join(f'{k}={_q(v)}' for k, v in attrs.items())}];")
    for e in g.edges:
        attrs = {"label": e.label, "tooltip": f"{e.src} -> {e.dst}: first made by {e.label}"}
        if e.cycle:
            attrs.update(color="#d62728", fontcolor="#d62728", penwidth="2.2")
        if e.wait_only:
            attrs["style"] = "dashed"
        lines.append(f"  {_q(e.src)} -> {_q(e.dst)} [{', '.join(f'{k}={_q(v)}' for k, v in attrs.items())}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# SVG

def graphviz_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(g: LockGraph, engine: str = "auto") -> str:
    """The graph as an SVG document: Graphviz (``engine="dot"``, or ``"auto"`` when ``dot`` is installed)
    or the built-in layered layout (``"builtin"``, or ``"auto"`` without Graphviz)."""
    if engine not in ("auto", "dot", "builtin"):
        raise ValueError("engine must be auto, dot or builtin")
    if engine == "dot" or (engine == "auto" and graphviz_available()):
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError("Graphviz's dot is not installed")
        r = subprocess.run([exe, "-Tsvg"], input=to_dot(g), capture_output=True, text=True, timeout=60)
        if r.returncode == 0 and "<svg" in r.stdout:
            return r.stdout
        if engine == "dot":
            raise RuntimeError(f"dot failed: {r.stderr.strip()}")
    return layered_svg(g)


def inline_svg(svg: str) -> str:
    """An SVG document stripped of its XML prolog, DOCTYPE and comments, for embedding in HTML."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


_CHAR_W = 6.7  # px per character at font-size 11 (monospace)


def _layers(names: list[str], edges: list[tuple[str, str]]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Longest-path layering after breaking cycles at DFS back edges (deterministic: sorted order).

    Returns the layer of every node and the set of back edges (drawn against the layering)."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        if a != b and b not in succ[a]:
            succ[a].append(b)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    post: list[str] = []
    for root in names:
        if state.get(root):
            continue
        stack = [(root, iter(sorted(succ[root])))]
        state[root] = 1
        while stack:
            n, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[n] = 2
                post.append(n)
                stack.pop()
                continue
            s = state.get(nxt, 0)
            if s == 1:
                back.add((n, nxt))
            elif s == 0:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(succ[nxt]))))
    layer = {n: 0 for n in names}
    for n in reversed(post):  # reverse post-order is a topological order of the DAG without back edges
        for m in succ[n]:
            if (n, m) not in back:
                layer[m] = max(layer[m], layer[n] + 1)
    return layer, back


def layered_svg(g: LockGraph) -> str:
    """A self-made layered drawing (no Graphviz): layers top to bottom, long edges routed through
    virtual points, crossings reduced by barycentre sweeps, labelled curved edges."""
    names = [n.name for n in g.nodes]
    byname = {n.name: n for n in g.nodes}
    edges = [e for e in g.edges if e.src in byname and e.dst in byname]
    layer, back = _layers(names, [(e.src, e.dst) for e in edges])
    # chains of points per edge: real nodes at the ends, virtual nodes on the layers in between
    rows: dict[int, list[str]] = {}
    for n in names:
        rows.setdefault(layer[n], []).append(n)
    chains: list[list[str]] = []
    for i, e in enumerate(edges):
        a, b = (e.dst, e.src) if (e.src, e.dst) in back else (e.src, e.dst)
        chain = [a]
        if e.src != e.dst:
            lo, hi = layer[a], layer[b]
            for k in range(lo + 1, hi):
                v = f"\0v{i}/{k}"
                rows.setdefault(k, []).append(v)
                layer[v] = k
                chain.append(v)
        chain.append(b)
        chains.append(chain)
    nbrs: dict[str, list[str]] = {}
    for chain in chains:
        for u, v in zip(chain, chain[1:]):
            if u != v:
                nbrs.setdefault(u, []).append(v)
                nbrs.setdefault(v, []).append(u)
    pos = {n: i for r in rows.values() for i, n in enumerate(r)}
    order = sorted(rows)
    for sweep in range(6):
        for k in (order if sweep % 2 == 0 else list(reversed(order))):
            row = rows[k]
            def key(n: str) -> tuple[float, str]:
                ns = [m for m in nbrs.get(n, ()) if (layer[m] < k if sweep % 2 == 0 else layer[m] > k)]
                ns = ns or nbrs.get(n, [])
                return (sum(pos[m] for m in ns) / len(ns) if ns else pos[n], n)
            row.sort(key=key)
            for i, n in enumerate(row):
                pos[n] = i
    # coordinates
    node_h, vgap, hgap, vw, margin = 36, 70, 28, 14, 20
    width_of = {n: (max(len(n), 8) * _CHAR_W + 26 if not n.startswith("\0") else vw) for r in rows.values() for n in r}
    row_w = {k: sum(width_of[n] for n in r) + hgap * (len(r) - 1) for k, r in rows.items()}
    total_w = max(row_w.values(), default=200) + 2 * margin
    xy: dict[str, tuple[float, float]] = {}  # centre of each point
    y = margin + 30
    for k in order:
        r = rows[k]
        x = (total_w - row_w[k]) / 2
        for n in r:
            xy[n] = (x + width_of[n] / 2, y + node_h / 2)
            x += width_of[n] + hgap
        y += node_h + vgap
    height = y - vgap + margin + 20
    W, H = int(total_w), int(height)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lockgraph" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="DejaVu Sans Mono, monospace">',
           '<defs><marker id="lg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7a869a"/></marker>'
           '<marker id="lg-arrow-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#d62728"/></marker></defs>',
           f'<text x="{margin}" y="{margin + 4}" font-size="12" fill="#4a5468">{html.escape(g.title)}</text>']
    half = node_h / 2
    labels: list[str] = []
    for e, chain in zip(edges, chains):
        colour = "#d62728" if e.cycle else "#7a869a"
        marker = "lg-arrow-red" if e.cycle else "lg-arrow"
        dash = ' stroke-dasharray="5,4"' if e.wait_only else ""
        width = 2.2 if e.cycle else 1.1
        if e.src == e.dst:
            cx, cy = xy[e.src]
            x1 = cx + width_of[e.src] / 2
            d = f"M{x1:.1f},{cy - 8:.1f} C{x1 + 40:.1f},{cy - 30:.1f} {x1 + 40:.1f},{cy + 30:.1f} {x1:.1f},{cy + 8:.1f}"
            lx, ly = x1 + 34, cy + 3
        else:
            pts = [xy[n] for n in chain]
            # leave a real node from its bottom edge, enter the next from its top edge
            p = [(pts[0][0], pts[0][1] + half)] + [(x, y) for x, y in pts[1:-1]] + [(pts[-1][0], pts[-1][1] - half)]
            if layer[chain[0]] == layer[chain[-1]]:  # same layer: bow below
                p = [(pts[0][0], pts[0][1] + half), (pts[-1][0], pts[-1][1] + half)]
                mx = (p[0][0] + p[1][0]) / 2
                d = f"M{p[0][0]:.1f},{p[0][1]:.1f} Q{mx:.1f},{p[0][1] + 50:.1f} {p[1][0]:.1f},{p[1][1]:.1f}"
            else:
                segs = [f"M{p[0][0]:.1f},{p[0][1]:.1f}"]
                for (x0, y0), (x1, y1) in zip(p, p[1:]):
                    my = (y0 + y1) / 2
                    segs.append(f"C{x0:.1f},{my:.1f} {x1:.1f},{my:.1f} {x1:.1f},{y1:.1f}")
                d = " ".join(segs)
            if (e.src, e.dst) in back:  # drawn from dst up to src: reverse so the arrow points at dst
                d = _reverse_path(p, same_layer=layer[chain[0]] == layer[chain[-1]])
            if len(p) > 2:  # a long edge: label it at its middle virtual point, away from the nodes
                lx, ly = p[len(p) // 2][0], p[len(p) // 2][1] + 3
            else:
                (ax, ay), (bx, by) = p[0], p[1]
                lx, ly = (ax + bx) / 2, (ay + by) / 2 + 3
        tip = html.escape(f"{e.src} -> {e.dst}: first made by {e.label}")
        out.append(f'<g class="edge{" cycle" if e.cycle else ""}"><title>{tip}</title>'
                   f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} '
                   f'marker-end="url(#{marker})"/></g>')
        labels.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="9" text-anchor="middle" fill="{colour}" '
                      f'font-family="DejaVu Sans, sans-serif" paint-order="stroke" stroke="white" '
                      f'stroke-width="3"><title>{tip}</title>{html.escape(e.label)}</text>')
    for n in names:
        cx, cy = xy[n]
        w = width_of[n]
        x0, y0 = cx - w / 2, cy - half
        node = byname[n]
        tip = html.escape(f"{n} ({node.kind})")
        if node.wait:
            shape = (f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{w / 2:.1f}" ry="{half:.1f}" '
                     f'fill="#fff8e6" stroke="#b08a2e" stroke-dasharray="4,3"/>')
        else:
            dash = ' stroke-dasharray="2,2"' if not node.validate else ""
            shape = (f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{node_h}" rx="6" fill="#f4f6fb" '
                     f'stroke="#5b6b8c"{dash}/>')
        out.append(f'<g class="node"><title>{tip}</title>{shape}'
                   f'<text x="{cx:.1f}" y="{cy - 2:.1f}" font-size="11" text-anchor="middle" '
                   f'fill="#1f2a44">{html.escape(n)}</text>'
                   f'<text x="{cx:.1f}" y="{cy + 11:.1f}" font-size="9" text-anchor="middle" '
                   f'fill="#6b7690">{html.escape(node.kind)}</text></g>')
    out += labels
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _reverse_path(p: list[tuple[float, float]], same_layer: bool) -> str:
    """The path through points ``p`` drawn from its last point to its first (for a back edge)."""
    q = list(reversed(p))
    if same_layer:
        mx = (q[0][0] + q[1][0]) / 2
        return f"M{q[0][0]:.1f},{q[0][1]:.1f} Q{mx:.1f},{q[0][1] + 50:.1f} {q[1][0]:.1f},{q[1][1]:.1f}"
    segs = [f"M{q[0][0]:.1f},{q[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in zip(q, q[1:]):
        my = (y0 + y1) / 2
        segs.append(f"C{x0:.1f},{my:.1f} {x1:.1f},{my:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(segs)


__all__ = ["GEdge", "GNode", "LockGraph", "cycle_pairs", "from_merged", "graph_of_trace", "graphviz_available",
           "inline_svg", "layered_svg", "to_dot", "to_svg"]
