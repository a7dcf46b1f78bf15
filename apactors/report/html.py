"""Self-contained HTML reports: one trace (``apactors report TRACE --html OUT``) and a comparison.

The pages load nothing from the network: CSS, SVG and the little script (zoom buttons for the
timelines) are inline.  They show

* for a trace: what ran (scheme, scenario, schedule), its outcome and findings with their lockdep-style
  reports, its cost metrics, the lock-class dependency graph (Graphviz when installed, else the
  built-in layout; the DOT source alongside) and the swimlane timeline;
* for a comparison: the findings and cost tables with every cell linked to the trace of its worst
  case, invariant violations by name, contentions per lock class, one table per scenario, and for
  each scheme its worst finding with the scheme's lock-class graph and the finding's timeline.

Output is deterministic (no timestamps, sorted orders), so reports can be diffed and committed.
"""

from __future__ import annotations

import argparse
import html
import os
from pathlib import Path
from typing import Any

from apactors import __version__

EXIT_OK, EXIT_FINDINGS = 0, 1

CSS = """
:root { --fg:#1f2a44; --muted:#6b7690; --line:#e3e6ee; --bg:#ffffff; --soft:#f6f8fc; --red:#c62828;
        --amber:#a56a00; --green:#2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "DejaVu Sans", system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: var(--soft); }
header h1 { margin: 0 0 4px; font-size: 21px; }
header .sub { color: var(--muted); }
main { padding: 8px 28px 40px; }
h2 { font-size: 17px; margin: 26px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre, .mono { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); padding: 10px 12px; overflow: auto; max-height: 460px; }
table.grid { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 4px 8px; }
table.grid th { background: var(--soft); font-weight: 600; text-align: center; vertical-align: bottom; }
table.grid td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.grid td.name { font-weight: 600; white-space: nowrap; }
table.grid td.zero { color: #9aa3b5; }
table.grid td.bad { color: var(--red); font-weight: 700; background: #fff4f4; }
table.grid td.warn { color: var(--amber); font-weight: 600; }
table.grid a { color: inherit; text-decoration: none; border-bottom: 1px dotted currentColor; }
table.grid a:hover { background: #fff3c4; }
table.kv td:first-child { color: var(--muted); padding-right: 14px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); background: #fff; }
.graph svg { max-width: 100%; height: auto; }
.timeline-box { overflow-x: auto; border: 1px solid var(--line); }
.note { color: var(--muted); font-size: 12.5px; }
.pill { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.pill.bad { background: #fde2e2; color: var(--red); } .pill.ok { background: #e3f4e4; color: var(--green); }
.pill.warn { background: #fff1d6; color: var(--amber); }
details { margin: 6px 0; } summary { cursor: pointer; color: #34507a; }
.scheme { border: 1px solid var(--line); border-radius: 6px; padding: 4px 16px 12px; margin: 14px 0; }
.legend span { margin-right: 16px; }
.swatch { display: inline-block; width: 22px; height: 9px; vertical-align: middle; margin-right: 4px; }
.zoom button { font-size: 12px; margin-right: 4px; }
.nw { white-space: nowrap; }
"""

JS = """
document.querySelectorAll('.zoom').forEach(function (bar) {
  var box = document.getElementById(bar.getAttribute('data-for'));
  if (!box) { return; }
  var svg = box.querySelector('svg');
  if (!svg) { return; }
  var w = parseFloat(svg.getAttribute('width')), h = parseFloat(svg.getAttribute('height'));
  bar.querySelectorAll('button').forEach(function (b) {
    b.addEventListener('click', function () {
      var f = parseFloat(b.getAttribute('data-zoom'));
      svg.setAttribute('width', String(Math.round(w * f)));
      svg.setAttribute('height', String(Math.round(h * f)));
    });
  });
});
"""

LEGEND = ('<p class="legend note"><span><span class="swatch" style="background:#e8edf7;border:1px solid #c5cee0">'
          '</span>scenario operation</span><span><span class="swatch" style="background:#4e79a7"></span>lock held '
          '(pale: read / SRCU)</span><span><span class="swatch" style="border:1.4px dashed #4e79a7"></span>'
          'open-coded hold (waitdep node)</span><span><span class="swatch" style="background:repeating-linear-'
          'gradient(45deg,#d62728 0 2px,#fbeaea 2px 5px)"></span>wait behind kvm->lock</span><span>'
          '<span class="swatch" style="background:repeating-linear-gradient(45deg,#8a8a8a 0 2px,#f1f1f1 2px 5px)">'
          '</span>other contended wait</span><span style="color:#d62728">┊ finding</span>'
          '<span style="color:#d62728">✖ crash</span><span>▶ still held at the end</span></p>')


def esc(text: Any) -> str:
    return html.escape(str(text))


def header(text: str) -> str:
    """A table header: words with an arrow (``kvm->lock``) never break at the arrow."""
    return " ".join(f'<span class="nw">{esc(w)}</span>' if "->" in w else esc(w) for w in text.split(" "))


def page(title: str, subtitle: str, body: str) -> str:
    """A complete HTML document with the inline CSS and script."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="apactors {esc(__version__)}">\n<title>{esc(title)}</title>\n'
            f'<style>{CSS}</style>\n</head>\n<body>\n<header><h1>{esc(title)}</h1><div class="sub">{subtitle}</div>'
            f'</header>\n<main>\n{body}\n</main>\n<script>{JS}</script>\n</body>\n</html>\n')


def graph_block(g: Any, engine: str = "auto", dot_source: bool = True) -> str:
    """The lock-class graph as inline SVG, with its DOT source in a collapsed block."""
    from apactors.report.graph import graphviz_available, inline_svg, to_dot, to_svg

    svg = inline_svg(to_svg(g, engine))
    how = ("Graphviz" if engine == "dot" or (engine == "auto" and graphviz_available()) else "built-in layout")
    red = sum(1 for e in g.edges if e.cycle)
    note = (f'<p class="note">{len(g.nodes)} lock classes, {len(g.edges)} dependencies (lockdep\'s direct ones '
            f'and every edge of a cycle); <span style="color:#d62728">red: on a reported cycle ({red})</span>; '
            f'dashed: seen only by the wait-aware checker; each edge is labelled with the path (actor) that first '
            f'made it. Drawn with {how}.</p>')
    out = f'<div class="graph">{svg}</div>{note}'
    if dot_source:
        out += f"<details><summary>DOT source</summary><pre>{esc(to_dot(g))}</pre></details>"
    return out


def timeline_block(trace: Any, box_id: str) -> str:
    from apactors.report.timeline import timeline_of, timeline_svg

    tl = timeline_of(trace)
    zoom = (f'<div class="zoom" data-for="{box_id}">zoom: <button data-zoom="1">1×</button>'
            f'<button data-zoom="2">2×</button><button data-zoom="4">4×</button></div>')
    return f'{zoom}<div class="timeline-box" id="{box_id}">{timeline_svg(tl)}</div>{LEGEND}'


def _findings_block(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return '<p><span class="pill ok">no finding</span></p>'
    out = []
    for f in findings:
        cls = "bad" if f["kind"] in ("deadlock", "hang", "crash") or f.get("confirmed") else "warn"
        extra = ""
        if f["kind"] == "potential-deadlock":
            searched = "no witness search" not in str(f.get("why") or "")
            verdict = "confirmed" if f.get("confirmed") else ("not confirmed" if searched else "")
            extra = f' · {esc(f.get("checker", "lockdep"))}' + (f", {verdict}" if verdict else "")
        out.append(f'<h3><span class="pill {cls}">{esc(f["kind"])}</span> <code>{esc(f["signature"])}</code>'
                   f'{extra} <span class="note">step {esc(f.get("step", "?"))}</span></h3>'
                   f'<p>{esc(f.get("summary", ""))}</p>')
        if f.get("report"):
            out.append(f'<details><summary>report</summary><pre>{esc(f["report"])}</pre></details>')
    return "\n".join(out)


# --- one trace --------------------------------------------------------------------------------------------

def trace_html(trace_path: str | Path, engine: str = "auto") -> str:
    """The HTML report of one trace."""
    from apactors.report.graph import graph_of_trace
    from apactors.report.metrics import metrics_of_trace
    from apactors.trace.reader import read_trace

    tr = read_trace(trace_path)
    h = tr.header
    footer = tr.footer or {}
    scen = h["scenario"].get("name", "?")
    m = metrics_of_trace(tr)
    g = graph_of_trace(tr)
    kv = [("scheme", h.get("scheme")), ("scenario", scen), ("strategy", h.get("strategy")), ("seed", h.get("seed")),
          ("schedule", f'{h.get("schedule")} (schedule seed {h.get("schedule_seed")})'),
          ("outcome", footer.get("outcome", "?")), ("steps", footer.get("steps", len(tr.steps))),
          ("replay", f"<code>apactors replay {esc(trace_path)}</code>")]
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v if k == 'replay' else esc(v)}</td></tr>" for k, v in kv)
    mj = m.to_json()
    cost = [("PQAP latency (steps)", ", ".join(map(str, mj["pqap"])) or "–"),
            ("kvm->lock holds (steps)", ", ".join(map(str, mj["kvm_holds"])) or "–"),
            ("vCPU waits behind kvm->lock", ", ".join(map(str, mj["behind_kvm"]["vcpu"])) or "–"),
            ("KVM waits behind kvm->lock", ", ".join(map(str, mj["behind_kvm"]["kvm"])) or "–"),
            ("writer waits", ", ".join(map(str, mj["writer_waits"])) or "–"),
            ("contentions", ", ".join(f"{k} {v}" for k, v in mj["contentions"].items()) or "–"),
            ("operations completed", f'{mj["ops_completed"]} in {mj["steps"]} steps')]
    cost_rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in cost)
    body = (f'<table class="grid kv">{rows}</table>'
            f'<h2>Findings</h2>{_findings_block(list(footer.get("findings") or []))}'
            f'<h2>Timeline</h2>{timeline_block(tr, "tl-0")}'
            f'<h2>Lock-class dependency graph</h2>{graph_block(g, engine)}'
            f'<h2>Cost (logical steps)</h2><table class="grid kv">{cost_rows}</table>')
    return page(f"apactors trace: {h.get('scheme')} / {scen}",
                f'{esc(Path(trace_path).name)} · schedule {esc(h.get("schedule"))} · outcome '
                f'<b>{esc(footer.get("outcome", "?"))}</b>', body)


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "report", help="an HTML report of one trace: findings, timeline, lock graph, cost",
        description="Render one trace as a self-contained HTML page (swimlane timeline with lock holds and "
                    "findings, the lock-class dependency graph, the findings' reports, cost metrics), and/or "
                    "its lock-class graph as DOT or SVG.")
    p.add_argument("trace", help="a trace file (.jsonl)")
    p.add_argument("--html", metavar="OUT", help="write the HTML report to OUT")
    p.add_argument("--dot", metavar="OUT", help="write the lock-class graph as Graphviz DOT to OUT")
    p.add_argument("--svg", metavar="OUT", help="write the lock-class graph as SVG to OUT")
    p.add_argument("--graph-engine", choices=("auto", "dot", "builtin"), default="auto",
                   help="SVG through Graphviz (dot), the built-in layout, or dot when installed (auto, default)")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    """``apactors report``: exit 0 if the trace has no finding, 1 if it has, 2 for a bad trace."""
    from apactors.cli import BadInput
    from apactors.report.graph import graph_of_trace, graphviz_available, to_dot, to_svg
    from apactors.trace.reader import read_trace
    from apactors.trace.writer import write_atomic

    if not (args.html or args.dot or args.svg):
        raise BadInput("nothing to write: give --html OUT, --dot OUT and/or --svg OUT")
    if args.graph_engine == "dot" and not graphviz_available():
        raise BadInput("--graph-engine dot: Graphviz's dot is not installed (apt-get install graphviz)")
    tr = read_trace(args.trace)
    if args.html:
        write_atomic(Path(args.html), trace_html(args.trace, args.graph_engine))
    if args.dot or args.svg:
        g = graph_of_trace(tr)
        if args.dot:
            write_atomic(Path(args.dot), to_dot(g))
        if args.svg:
            write_atomic(Path(args.svg), to_svg(g, args.graph_engine))
    return EXIT_FINDINGS if (tr.footer or {}).get("findings") else EXIT_OK


# --- the comparison -----------------------------------------------------------------------------------------

def _link(text: str, ptr: Any, base: Path, css: str, what: str) -> str:
    if ptr is None or not getattr(ptr, "trace", None):
        return f'<td class="num {css}">{esc(text)}</td>'
    rel = os.path.relpath(ptr.trace, base)
    tip = f"{what}: schedule {ptr.schedule} of {ptr.scenario}" + (
        f" ({ptr.signature})" if ptr.signature else f", value {ptr.value}") + f" — apactors replay {ptr.trace}"
    return f'<td class="num {css}"><a href="{esc(rel)}" title="{esc(tip)}">{esc(text)}</a></td>'


def _tables(comp: Any, rows: list[Any], base: Path, sid: str) -> str:
    from apactors.report.tables import (COST_COLUMNS, FINDING_HEADERS, FINDING_KEYS, FIRST_KEYS, SEVERE,
                                        contention_classes, cost_cells, finding_cells, invariant_names)

    head = "".join(f'<th title="{esc(FINDING_HEADERS[k][1])}">{esc(FINDING_HEADERS[k][0])}</th>'
                   for k in FINDING_KEYS)
    body = []
    for r in rows:
        tds = []
        for c in finding_cells(r):
            css = "zero" if not c.value else ("" if c.key in FIRST_KEYS else ("bad" if c.key in SEVERE else "warn"))
            tds.append(_link(c.text, c.worst, base, css, FINDING_HEADERS[c.key][1]))
        body.append(f'<tr><td class="name">{esc(r.scheme)}</td>{"".join(tds)}</tr>')
    out = [f'<h3>Findings</h3><div class="scroll"><table class="grid" id="findings-{sid}"><tr><th>scheme</th>{head}'
           f'</tr>{"".join(body)}</table></div>']
    head = "".join(f'<th title="{esc(c.description)}">{header(c.header)}</th>' for c in COST_COLUMNS)
    body = []
    for r in rows:
        tds = [_link(c.text, c.worst, base, "zero" if c.value in (None, 0) else "",
                     next(col.description for col in COST_COLUMNS if col.key == c.key)) for c in cost_cells(r)]
        body.append(f'<tr><td class="name">{esc(r.scheme)}</td>{"".join(tds)}</tr>')
    out.append(f'<h3>Cost (logical steps)</h3><div class="scroll"><table class="grid" id="cost-{sid}"><tr>'
               f'<th>scheme</th>{head}</tr>{"".join(body)}</table></div>')
    names = invariant_names(rows)
    if names:
        head = "".join(f"<th>{esc(n)}</th>" for n in names)
        body = []
        for r in rows:
            inv = r.invariants()
            tds = []
            for n in names:
                v, p = inv.get(n, (0, None))
                tds.append(_link(str(v), p, base, "warn" if v else "zero", f"invariant {n}"))
            body.append(f'<tr><td class="name">{esc(r.scheme)}</td>{"".join(tds)}</tr>')
        out.append(f'<h3>Invariant violations by name</h3><div class="scroll"><table class="grid"><tr><th>scheme</th>'
                   f'{head}</tr>{"".join(body)}</table></div>')
    classes = contention_classes(rows)
    if classes:
        head = "".join(f'<th class="mono">{esc(c)}</th>' for c in classes)
        body = []
        for r in rows:
            nums = "".join(f'<td class="num {"zero" if not r.metrics.contentions.get(c) else ""}">'
                           f'{r.metrics.contentions.get(c, 0)}</td>' for c in classes)
            body.append(f'<tr><td class="name">{esc(r.scheme)}</td>{nums}</tr>')
        out.append(f'<h3>Contentions per lock class</h3><div class="scroll"><table class="grid"><tr><th>scheme</th>'
                   f'{head}</tr>{"".join(body)}</table></div>')
    return "\n".join(out)


def scheme_graph(row: Any) -> Any:
    """The union of a scheme's lock-class graphs over the scenarios of a row (first occurrence wins)."""
    from apactors.report.graph import GEdge, GNode, LockGraph

    nodes: dict[str, GNode] = {}
    edges: dict[tuple[str, str], GEdge] = {}
    for c in row.cells:
        g = LockGraph.from_json(c.graph)
        for n in g.nodes:
            nodes.setdefault(n.name, n)
        for e in g.edges:
            old = edges.get((e.src, e.dst))
            if old is None:
                edges[(e.src, e.dst)] = e
            elif e.cycle:
                old.cycle = True
    title = f"{row.scheme} / " + ("all scenarios" if len(row.cells) > 1 else row.cells[0].scenario)
    return LockGraph(title, [nodes[k] for k in sorted(nodes)], [edges[k] for k in sorted(edges)])


def compare_html(comp: Any, out: Path, engine: str = "auto") -> str:
    """The HTML report of a :class:`~apactors.report.compare.Comparison` written to ``out`` (links are
    relative to ``out``'s directory)."""
    from apactors.trace.reader import TraceError, read_trace

    base = out.parent
    rows = comp.rows()
    intro = (f'<p>Every scheme ran the same schedules: <code>{esc(comp.command())}</code>. Numbers are '
             f'distinct findings and logical steps; every linked number opens the trace of its worst case '
             f'(replay it with <code>apactors replay TRACE</code> or render it with '
             f'<code>apactors report TRACE --html OUT</code>). Hover a header for its meaning.</p>')
    parts = [intro, f'<h2>All schemes over {esc(", ".join(comp.scenarios))}</h2>', _tables(comp, rows, base, "all")]
    if len(comp.scenarios) > 1:
        parts.append("<h2>Per scenario</h2>")
        for i, s in enumerate(comp.scenarios):
            parts.append(f"<details><summary>{esc(s)}</summary>{_tables(comp, comp.rows(s), base, f's{i}')}</details>")
    parts.append("<h2>Worst finding and lock graph of each scheme</h2>")
    for i, r in enumerate(rows):
        f = r.worst_finding()
        sec = [f'<div class="scheme" id="scheme-{esc(r.scheme)}"><h3>{esc(r.scheme)}</h3>']
        if f is None:
            sec.append(f'<p><span class="pill ok">no finding</span> in {r.schedules} schedules.</p>')
        else:
            trace = f.get("trace") if f.get("confirmed") else r.schedule_trace(f)
            f_full = dict(f, report=r.report_of(f["signature"]))
            sec.append(_findings_block([f_full]))
            if trace:
                rel = os.path.relpath(trace, base)
                sec.append(f'<p class="note">{esc(f["scenario"])}, first in schedule {f["first_schedule"]}; '
                           f'trace <a href="{esc(rel)}">{esc(Path(trace).name)}</a></p>')
                try:
                    sec.append(f"<h3>Timeline</h3>{timeline_block(read_trace(trace), f'tl-{i}')}")
                except (TraceError, OSError) as e:
                    sec.append(f'<p class="note">timeline unavailable: {esc(e)}</p>')
        sec.append(f"<h3>Lock-class dependency graph</h3>{graph_block(scheme_graph(r), engine)}</div>")
        parts.append("".join(sec))
    sub = (f"{len(comp.schemes)} schemes × {len(comp.scenarios)} scenario(s), {comp.schedules} schedules each, "
           f"strategy {esc(comp.strategy)}, seed {comp.seed}")
    return page("apactors compare", sub, "\n".join(parts))


__all__ = ["add_report_parser", "cmd_report", "compare_html", "graph_block", "page", "scheme_graph",
           "timeline_block", "trace_html"]
