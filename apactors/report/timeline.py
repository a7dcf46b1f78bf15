"""A swimlane timeline of one trace as SVG: one lane per actor, lock holds as bars, waits, findings.

Each lane shows the actor's scenario operations (a pale band with the verb), the locks it holds as
coloured bars stacked by nesting depth (one colour per lock class; SRCU read sections and waitdep's
open-coded holds outlined), its contended waits (the definitions of :mod:`apactors.report.metrics`,
red when it waited behind ``kvm->lock``) and a cross where it crashed.  Every finding of the trace is a
vertical marker at its step; the actors it names have their labels in red.  Every shape has a tooltip
(an SVG ``<title>``), so the picture needs no script.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from apactors.report.metrics import Tracker, actor_kinds, metrics_of_steps

#: colours for lock classes, assigned in order of the sorted class names (deterministic)
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f77b4", "#8cd17d", "#d4a6c8", "#86bcb6", "#f1ce63", "#a0cbe8", "#ffbe7d")


@dataclass
class Hold:
    actor: str
    cls: str
    inst: str
    mode: str
    start: int
    end: int
    depth: int
    path: str
    open_at_end: bool = False
    wait_node: bool = False


@dataclass
class Timeline:
    """What the swimlane picture shows, extracted from a trace's step lines."""

    steps: int
    actors: list[str]
    holds: list[Hold] = field(default_factory=list)
    ops: list[tuple[str, int, int, str, bool]] = field(default_factory=list)  #: actor, begin, end, text, ended
    waits: list[tuple[str, int, int, str, bool, bool]] = field(default_factory=list)
    crashes: list[tuple[str, int, str]] = field(default_factory=list)  #: actor, step, what
    marks: list[dict[str, Any]] = field(default_factory=list)  #: findings: kind, step, summary, actors


def timeline_of(trace: Any) -> Timeline:
    """Extract a :class:`Timeline` from a :class:`~apactors.trace.Trace`."""
    steps = trace.steps
    n = int((trace.footer or {}).get("steps") or (steps[-1]["step"] + 1 if steps else 0))
    kinds = actor_kinds(trace.header["scenario"])
    actors: list[str] = [a["name"] for a in trace.header["scenario"].get("actor", []) if "name" in a]
    tl = Timeline(n, actors)
    held: dict[str, list[list[Any]]] = {}  # actor -> open holds [cls, inst, mode, start, path, wait]
    begun: dict[str, tuple[int, str]] = {}
    for ev in steps:
        actor, step, op = ev["actor"], ev["step"], ev["op"]
        if actor not in tl.actors:
            tl.actors.append(actor)
        if op == "acquire" and ev.get("ok", True):
            held.setdefault(actor, []).append([ev["lock"], ev["instance"], ev["mode"], step, ev.get("path") or "?",
                                               False])
        elif op == "waitdep-acquire":
            held.setdefault(actor, []).append([ev["node"], ev.get("instance", ""), "w", step,
                                               ev.get("path") or "?", True])
        elif op in ("release", "waitdep-release"):
            cls = ev["lock"] if op == "release" else ev["node"]
            inst = ev.get("instance", "")
            owner = actor
            mine = held.get(actor, [])
            idx = next((i for i in range(len(mine) - 1, -1, -1) if mine[i][0] == cls and mine[i][1] == inst), None)
            if idx is None and op == "waitdep-release":  # a completion signalled by another task
                for other, hs in held.items():
                    j = next((i for i, h in enumerate(hs) if h[0] == cls and h[1] == inst), None)
                    if j is not None:
                        owner, mine, idx = other, hs, j
                        break
            if idx is not None:
                c, i, mode, start, path, wait = mine.pop(idx)
                tl.holds.append(Hold(owner, c, i, mode, start, step, idx, path, False, wait))
        elif op == "begin":
            begun[actor] = (step, ev.get("operation") or "")
        elif op == "end":
            b = begun.pop(actor, None)
            if b is not None:
                tl.ops.append((actor, b[0], step, b[1], True))
        elif op == "crash":
            tl.crashes.append((actor, step, f"{ev.get('oops')}: {ev.get('expr')}"))
    for actor, hs in held.items():
        for depth, (c, i, mode, start, path, wait) in enumerate(hs):
            tl.holds.append(Hold(actor, c, i, mode, start, n, depth, path, True, wait))
    for actor, (begin, text) in begun.items():
        tl.ops.append((actor, begin, n, text, False))
    tracker = Tracker(kinds, record_waits=True)
    metrics_of_steps(steps, kinds, n, tracker)
    tl.waits = list(tracker.waits or [])
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for f in (trace.footer or {}).get("findings") or []:
        key = (f.get("kind", "?"), int(f.get("step", n)))
        m = merged.get(key)
        if m is None:
            m = merged[key] = {"kind": key[0], "step": key[1], "summary": f.get("summary", ""), "actors": [],
                               "count": 0}
            tl.marks.append(m)
        else:
            m["summary"] += "; " + f.get("summary", "")
        m["count"] += 1
        m["actors"] += [a for a in f.get("actors") or [] if a not in m["actors"]]
    tl.holds.sort(key=lambda h: (h.start, h.actor, h.cls))
    return tl


def _nice_tick(steps: int, target: int = 12) -> int:
    raw = max(1, steps / target)
    mag = 10 ** int(math.floor(math.log10(raw)))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag  # pragma: no cover


def timeline_svg(tl: Timeline, width: int = 1240) -> str:
    """The swimlane picture of ``tl`` as an SVG element (about ``width`` pixels wide, more for long traces)."""
    label_w, top, row_h, bar_h = 170, 56, 13, 10
    steps = max(tl.steps, 1)
    px = min(24.0, max(1.2, (width - label_w - 20) / steps))
    plot_w = steps * px
    classes = sorted({h.cls for h in tl.holds})
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    depth = {a: 0 for a in tl.actors}
    for h in tl.holds:
        depth[h.actor] = max(depth.get(h.actor, 0), h.depth + 1)
    lane_y: dict[str, float] = {}
    lane_h: dict[str, float] = {}
    y = float(top)
    for a in tl.actors:
        lane_y[a] = y
        lane_h[a] = 18 + max(depth.get(a, 0), 1) * row_h + 6
        y += lane_h[a]
    W = int(max(label_w + plot_w + 30, 700))
    legend_cols = max(1, int((W - 16) // 300))
    legend_rows = math.ceil(len(classes) / legend_cols) if classes else 0
    height = int(y + 30 + legend_rows * 18 + 10)

    def X(step: float) -> float:
        return label_w + step * px

    flagged = {a for m in tl.marks for a in m["actors"]}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{W}" height="{height}" '
           f'viewBox="0 0 {W} {height}" font-family="DejaVu Sans, sans-serif" font-size="11">',
           '<defs><pattern id="tl-hatch" width="5" height="5" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="5" height="5" fill="#fbeaea"/>'
           '<line x1="0" y1="0" x2="0" y2="5" stroke="#d62728" stroke-width="2"/></pattern>'
           '<pattern id="tl-hatch-grey" width="5" height="5" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="5" height="5" fill="#f1f1f1"/>'
           '<line x1="0" y1="0" x2="0" y2="5" stroke="#8a8a8a" stroke-width="2"/></pattern></defs>']
    # lanes
    for i, a in enumerate(tl.actors):
        ly, lh = lane_y[a], lane_h[a]
        fill = "#fafbfd" if i % 2 == 0 else "#ffffff"
        out.append(f'<rect x="0" y="{ly:.1f}" width="{W}" height="{lh:.1f}" fill="{fill}"/>')
        col = "#d62728" if a in flagged else "#1f2a44"
        weight = "bold" if a in flagged else "normal"
        out.append(f'<text x="8" y="{ly + 14:.1f}" fill="{col}" font-weight="{weight}" '
                   f'font-family="DejaVu Sans Mono, monospace">{html.escape(a)}</text>')
    # axis
    tick = _nice_tick(steps)
    for s in range(0, steps + 1, tick):
        x = X(s)
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{y:.1f}" stroke="#e3e6ee"/>'
                   f'<text x="{x:.1f}" y="{top - 10}" fill="#6b7690" text-anchor="middle" font-size="10">{s}</text>')
    out.append(f'<text x="8" y="{top - 10}" fill="#6b7690" font-size="10">step</text>')
    # operations
    for actor, b, e, text, ended in tl.ops:
        ly = lane_y[actor]
        w = max((e - b) * px, 2)
        tip = html.escape(f"{actor}: {text} (steps {b}-{e}{'' if ended else ', not finished'})")
        verb = text.split(" ", 1)[0]
        out.append(f'<g class="op"><title>{tip}</title><rect x="{X(b):.1f}" y="{ly + 3:.1f}" width="{w:.1f}" '
                   f'height="12" rx="2" fill="{"#e8edf7" if ended else "#fde2e2"}" stroke="#c5cee0" '
                   f'stroke-width="0.6"/>')
        if w > len(verb) * 5.5 + 4:
            out.append(f'<text x="{X(b) + 3:.1f}" y="{ly + 12.5:.1f}" font-size="9" fill="#44506a">'
                       f'{html.escape(verb)}</text>')
        out.append("</g>")
    # holds
    for h in tl.holds:
        ly = lane_y[h.actor] + 18 + h.depth * row_h
        w = max((h.end - h.start) * px, 1.5)
        c = colour[h.cls]
        tip = html.escape(f"{h.actor} holds {h.cls}@{h.inst} ({h.mode}) steps {h.start}-{h.end} "
                          f"({h.end - h.start} steps), taken in {h.path}"
                          + (" - still held at the end" if h.open_at_end else ""))
        style = (f'fill="white" stroke="{c}" stroke-width="1.4" stroke-dasharray="3,2"' if h.wait_node else
                 f'fill="{c}" fill-opacity="{0.45 if h.mode != "w" else 0.9}" stroke="{c}"')
        out.append(f'<rect x="{X(h.start):.1f}" y="{ly:.1f}" width="{w:.1f}" height="{bar_h}" rx="1.5" {style}>'
                   f'<title>{tip}</title></rect>')
        if h.open_at_end:
            out.append(f'<text x="{X(h.end) + 2:.1f}" y="{ly + 9:.1f}" font-size="9" fill="{c}">▶</text>')
    # waits
    for actor, s, e, label, behind, writer in tl.waits:
        if actor not in lane_y:
            continue
        ly = lane_y[actor] + lane_h[actor] - 6
        w = max((e - s) * px, 1.5)
        tip = html.escape(f"{actor} waited {e - s} steps ({s}-{e}) for {label}"
                          + (" behind kvm->lock" if behind else "") + (" (writer)" if writer else ""))
        out.append(f'<rect x="{X(s):.1f}" y="{ly:.1f}" width="{w:.1f}" height="5" '
                   f'fill="url(#{"tl-hatch" if behind else "tl-hatch-grey"})"><title>{tip}</title></rect>')
    # crashes
    for actor, s, what in tl.crashes:
        cx, cy = X(s), lane_y[actor] + 10
        out.append(f'<g class="crash"><title>{html.escape(f"{actor} crashed at step {s}: {what}")}</title>'
                   f'<path d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} M{cx + 5:.1f},{cy - 5:.1f} '
                   f'L{cx - 5:.1f},{cy + 5:.1f}" stroke="#d62728" stroke-width="2.5"/></g>')
    # findings: labels in the first of three rows where they do not overlap an earlier label
    row_end = [-1e9, -1e9, -1e9]
    for m in sorted(tl.marks, key=lambda m: (m["step"], m["kind"])):
        x = X(min(m["step"], steps))
        label = f'{m["kind"]}{" ×%d" % m["count"] if m.get("count", 1) > 1 else ""} @{m["step"]}'
        lw = len(label) * 6.2
        right = x < W - lw - 10
        lo, hi = (x + 3, x + 3 + lw) if right else (x - 3 - lw, x - 3)
        row = next((r for r in range(3) if row_end[r] < lo), min(range(3), key=lambda r: row_end[r]))
        row_end[row] = hi + 6
        tip = html.escape(f"{m['kind']} at step {m['step']}: {m['summary']}")
        out.append(f'<g class="finding"><title>{tip}</title>'
                   f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y:.1f}" stroke="#d62728" '
                   f'stroke-width="1.6" stroke-dasharray="4,3"/>'
                   f'<text x="{x + 3 if right else x - 3:.1f}" y="{11 + row * 11}" fill="#d62728" '
                   f'font-size="10" font-weight="bold" text-anchor="{"start" if right else "end"}">'
                   f'{html.escape(label)}</text></g>')
    # legend
    ly = y + 22
    for i, c in enumerate(classes):
        lx = 8 + (i % legend_cols) * 300
        yy = ly + (i // legend_cols) * 18
        out.append(f'<rect x="{lx}" y="{yy - 9:.1f}" width="14" height="9" fill="{colour[c]}" fill-opacity="0.9"/>'
                   f'<text x="{lx + 19}" y="{yy:.1f}" font-size="10" fill="#1f2a44" '
                   f'font-family="DejaVu Sans Mono, monospace">{html.escape(c)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


__all__ = ["Hold", "PALETTE", "Timeline", "timeline_of", "timeline_svg"]
