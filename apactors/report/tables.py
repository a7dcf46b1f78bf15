"""The comparison as tables: the columns, and the table (rich), markdown, CSV and JSON renderings.

Every format shows the same cells, computed once here from :class:`~apactors.report.compare.Row`:

* findings: distinct potential deadlocks (lockdep / waitdep), confirmed ones, actual deadlocks and
  hangs (with the number of schedules that ended that way), crashes, races, stale reads, invariant
  violations (also by invariant name), and the schedules run until the first finding;
* cost, in logical steps: PQAP(AQIC) latency p50/p99/max, ``kvm->lock`` hold mean/max, the longest
  wait of a vCPU and of a KVM path behind ``kvm->lock``, contended waits (also per lock class), the
  longest writer wait and operations per 1000 steps.

A cell's *worst case* (:class:`~apactors.report.compare.Pointer`) names the trace that shows it: the
first schedule with such a finding (a witness for confirmed cycles), or the schedule with the worst
value of the metric (for ``max`` columns the cell's number itself).  Markdown lists the pointers under
the tables, CSV has a ``*_trace`` column beside each cell, JSON a ``worst`` object in each cell.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable

from apactors import __version__
from apactors.report.compare import DEADLOCK_KINDS, FINDING_COLUMNS, OUTCOME_OF, Comparison, Pointer, Row
from apactors.report.metrics import WAITER_KINDS, percentile

#: finding column -> (short header, description)
FINDING_HEADERS: dict[str, tuple[str, str]] = {
    "potential_lockdep": ("lockdep cycles", "potential deadlocks that lockdep reports"),
    "potential_waitdep": ("waitdep cycles", "potential deadlocks only the wait-aware checker sees"),
    "confirmed": ("confirmed", "potential deadlocks confirmed by a witness schedule that deadlocks"),
    "deadlocks": ("deadlocks", "actual deadlocks (schedules that deadlocked)"),
    "hangs": ("hangs", "hangs (schedules that hung)"),
    "crashes": ("crashes", "oopses: NULL dereferences, freed-object accesses"),
    "races": ("races", "data races"),
    "stale_reads": ("stale reads", "decisions taken on a stale copy of shared state"),
    "invariants": ("invariants", "invariant violations (see the table by name)"),
    "first": ("1st finding", "schedules run until the first finding (the fewest over the scenarios)"),
    "first_deadlock": ("1st deadlock", "schedules run until the first deadlock, potential deadlock or hang"),
}
SEVERE = frozenset({"confirmed", "deadlocks", "hangs", "crashes"})
FIRST_KEYS = frozenset({"first", "first_deadlock"})
#: the finding columns of a table, in order
FINDING_KEYS = tuple(k for k, _ in FINDING_COLUMNS) + ("first", "first_deadlock")


@dataclass
class Cell:
    """One rendered cell: its text, its raw value (JSON) and its worst case."""

    key: str
    text: str
    value: Any
    worst: Pointer | None = None


@dataclass(frozen=True)
class CostColumn:
    """A cost column: ``metric`` is the :data:`apactors.report.metrics.METRICS` key its worst case shows."""

    key: str
    header: str
    description: str
    get: Callable[[Row], Cell]
    metric: str | None = None


def _mean(c: Any) -> float:
    n = sum(c.values())
    return round(sum(k * v for k, v in c.items()) / n, 1) if n else 0.0


def _max_cell(key: str, metric: str, hist: Callable[[Row], Any]) -> Callable[[Row], Cell]:
    def get(row: Row) -> Cell:
        h = hist(row)
        if not sum(h.values()):
            return Cell(key, "–", None, None)
        w = row.worst(metric)
        return Cell(key, str(max(h)), max(h), w)
    return get


def _stat_cell(key: str, fn: Callable[[Any], Any], hist: Callable[[Row], Any]) -> Callable[[Row], Cell]:
    def get(row: Row) -> Cell:
        h = hist(row)
        if not sum(h.values()):
            return Cell(key, "–", None, None)
        v = fn(h)
        return Cell(key, f"{v:g}" if isinstance(v, float) else str(v), v, None)
    return get


def _contentions(row: Row) -> Cell:
    n = sum(row.metrics.contentions.values())
    return Cell("contentions", str(n), n, row.worst("contentions") if n else None)


def _throughput(row: Row) -> Cell:
    v = row.metrics.ops_per_kstep()
    return Cell("ops_per_kstep", f"{v:.1f}", v, row.worst("ops_per_kstep"))


COST_COLUMNS: tuple[CostColumn, ...] = (
    CostColumn("pqap_p50", "PQAP p50", "PQAP(AQIC) latency, median (steps from begin to end of the vCPU operation)",
               _stat_cell("pqap_p50", lambda h: percentile(h, 0.5), lambda r: r.metrics.pqap)),
    CostColumn("pqap_p99", "PQAP p99", "PQAP(AQIC) latency, 99th percentile",
               _stat_cell("pqap_p99", lambda h: percentile(h, 0.99), lambda r: r.metrics.pqap)),
    CostColumn("pqap_max", "PQAP max", "PQAP(AQIC) latency, maximum",
               _max_cell("pqap_max", "pqap_max", lambda r: r.metrics.pqap), "pqap_max"),
    CostColumn("kvm_hold_mean", "kvm->lock hold mean", "kvm->lock hold time, mean",
               _stat_cell("kvm_hold_mean", _mean, lambda r: r.metrics.kvm_holds)),
    CostColumn("kvm_hold_max", "kvm->lock hold max", "kvm->lock hold time, maximum",
               _max_cell("kvm_hold_max", "kvm_hold_max", lambda r: r.metrics.kvm_holds), "kvm_hold_max"),
    CostColumn("behind_vcpu", "vCPU behind kvm->lock", "longest wait of a vCPU behind kvm->lock",
               _max_cell("behind_vcpu", "behind_kvm_max:vcpu", lambda r: r.metrics.behind_kvm["vcpu"]),
               "behind_kvm_max:vcpu"),
    CostColumn("behind_kvm", "KVM behind kvm->lock", "longest wait of a KVM ioctl path behind kvm->lock",
               _max_cell("behind_kvm", "behind_kvm_max:kvm", lambda r: r.metrics.behind_kvm["kvm"]),
               "behind_kvm_max:kvm"),
    CostColumn("contentions", "contentions", "contended waits for a lock, wait queue or SIE entry", _contentions,
               "contentions"),
    CostColumn("writer_wait_max", "writer wait max", "longest wait of an update path for the vfio_ap data lock",
               _max_cell("writer_wait_max", "writer_wait_max", lambda r: r.metrics.writer_waits), "writer_wait_max"),
    CostColumn("ops_per_kstep", "ops/1k steps", "scenario operations completed per 1000 steps", _throughput,
               "ops_per_kstep"),
)


def finding_cells(row: Row) -> list[Cell]:
    cells = []
    for key, _ in FINDING_COLUMNS:
        n, ptr = row.column(key)
        text = str(n)
        oc = OUTCOME_OF.get(key)
        if oc and row.outcomes.get(oc):
            text += f" ({row.outcomes[oc]}×)"
        cells.append(Cell(key, text, n, ptr))
    for key, kinds in (("first", None), ("first_deadlock", DEADLOCK_KINDS)):
        first = row.first_finding(kinds)
        cells.append(Cell(key, str(first.value) if first else "–", first.value if first else None, first))
    return cells


def cost_cells(row: Row) -> list[Cell]:
    return [c.get(row) for c in COST_COLUMNS]


def contention_classes(rows: list[Row]) -> list[str]:
    """Lock classes with contentions in any row, most contended first (then by name)."""
    total: dict[str, int] = {}
    for r in rows:
        for k, v in r.metrics.contentions.items():
            total[k] = total.get(k, 0) + v
    return sorted(total, key=lambda k: (-total[k], k))


def invariant_names(rows: list[Row]) -> list[str]:
    from apactors.check.invariants import INVARIANTS

    seen = {n for r in rows for n in r.invariants()}
    return [n for n in INVARIANTS if n in seen] + sorted(seen - set(INVARIANTS))


def _title(comp: Comparison, scenario: str | None) -> str:
    scen = (f"scenario {scenario}" if scenario else
            (f"all {len(comp.scenarios)} scenarios" if len(comp.scenarios) > 1 else f"scenario {comp.scenarios[0]}"))
    return (f"{scen}; {comp.schedules} schedules per scheme and scenario, strategy {comp.strategy}, "
            f"seed {comp.seed}")


def _sections(comp: Comparison, detail: bool) -> list[tuple[str | None, list[Row]]]:
    out: list[tuple[str | None, list[Row]]] = [(None, comp.rows())]
    if detail and len(comp.scenarios) > 1:
        out += [(s, comp.rows(s)) for s in comp.scenarios]
    return out


# --- markdown ---------------------------------------------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_md(h) for h in headers) + " |",
           "|" + "|".join(["---"] + ["--:"] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return out


def _pointer_lines(rows: list[Row]) -> list[str]:
    lines = []
    for r in rows:
        parts = []
        for c in finding_cells(r) + cost_cells(r):
            if c.worst is not None and c.worst.trace:
                label = FINDING_HEADERS[c.key][0] if c.key in FINDING_HEADERS else \
                    next(col.header for col in COST_COLUMNS if col.key == c.key)
                shown = "" if c.key in FINDING_HEADERS else f" {c.worst.value}"
                parts.append(f"{label}{shown}: `{c.worst.trace}`")
        for name, (n, ptr) in r.invariants().items():
            if ptr is not None and ptr.trace:
                parts.append(f"{name}: `{ptr.trace}`")
        if parts:
            lines.append(f"- **{r.scheme}**" + (f" ({r.scenario})" if r.scenario != "all" else "") + ": "
                         + "; ".join(dict.fromkeys(parts)))
    return lines


def render_markdown(comp: Comparison, detail: bool = False) -> str:
    out: list[str] = []
    for scenario, rows in _sections(comp, detail):
        title = _title(comp, scenario)
        head = ["scheme"] + [FINDING_HEADERS[k][0] for k in FINDING_KEYS]
        out += [f"**Findings** ({title})", ""]
        out += _md_table(head, [[r.scheme] + [c.text for c in finding_cells(r)] for r in rows])
        out += ["", "**Cost** (logical steps)", ""]
        out += _md_table(["scheme"] + [c.header for c in COST_COLUMNS],
                         [[r.scheme] + [c.text for c in cost_cells(r)] for r in rows])
        names = invariant_names(rows)
        if names:
            out += ["", "**Invariant violations by name** (distinct violations)", ""]
            out += _md_table(["scheme"] + names,
                             [[r.scheme] + [str(r.invariants().get(n, (0, None))[0]) for n in names] for r in rows])
        classes = contention_classes(rows)[:8]
        if classes:
            out += ["", "**Contentions per lock class** (contended waits; the 8 most contended classes)", ""]
            out += _md_table(["scheme"] + [f"`{c}`" for c in classes],
                             [[r.scheme] + [str(r.metrics.contentions.get(c, 0)) for c in classes] for r in rows])
        lines = _pointer_lines(rows)
        if lines:
            out += ["", "<details><summary>Worst-case traces (replay with <code>apactors replay TRACE</code>)"
                        "</summary>", ""] + lines + ["", "</details>"]
        out.append("")
    return "\n".join(out)


# --- rich table --------------------------------------------------------------------------------------------

def _chunks(items: list[Any], width: int, per: int, scheme_w: int) -> list[list[Any]]:
    """Split columns into groups that fit ``width`` (each column about ``per`` characters wide)."""
    n = max(2, (width - scheme_w - 4) // per)
    return [items[i:i + n] for i in range(0, len(items), n)] or [[]]


def print_table(comp: Comparison, out: str | None = None, detail: bool = False) -> None:
    """The comparison as rich tables on stdout (or in ``out``); colour only on a terminal.

    On a terminal narrower than a table, its columns are split over several tables (the scheme column
    is never shortened); a file gets the full width."""
    import sys

    from rich.console import Console
    from rich.table import Table

    fh = open(out, "w", encoding="utf-8") if out else None  # noqa: SIM115 - closed below
    try:
        console = Console(file=fh or sys.stdout, highlight=False, soft_wrap=False,
                          width=None if (fh is None and sys.stdout.isatty()) else 240)
        scheme_w = max(len(s) for s in comp.schemes) + 2

        def table(title: str, headers: list[str], rows: list[tuple[str, list[str]]], per: int) -> None:
            groups = _chunks(list(range(len(headers))), console.width, per, scheme_w)
            for gi, idx in enumerate(groups):
                t = Table(title=title + (f" ({gi + 1}/{len(groups)})" if len(groups) > 1 else ""),
                          title_justify="left")
                t.add_column("scheme", style="bold", no_wrap=True, min_width=scheme_w - 2)
                for i in idx:
                    t.add_column(headers[i], justify="right", overflow="fold")
                for name, cells in rows:
                    t.add_row(name, *[cells[i] for i in idx])
                console.print(t)

        for scenario, rows in _sections(comp, detail):
            styled = []
            for r in rows:
                cells = []
                for c in finding_cells(r):
                    style = "" if not c.value or c.key in FIRST_KEYS else ("bold red" if c.key in SEVERE else "yellow")
                    cells.append(f"[{style}]{c.text}[/]" if style else c.text)
                styled.append((r.scheme, cells))
            table(f"Findings — {_title(comp, scenario)}", [FINDING_HEADERS[k][0] for k in FINDING_KEYS], styled, 13)
            table("Cost (logical steps)", [c.header for c in COST_COLUMNS],
                  [(r.scheme, [c.text for c in cost_cells(r)]) for r in rows], 12)
            names = invariant_names(rows)
            if names:
                table("Invariant violations by name", names,
                      [(r.scheme, [str(r.invariants().get(n, (0, None))[0]) for n in names]) for r in rows], 16)
            classes = contention_classes(rows)[:8]
            if classes:
                table("Contentions per lock class (the 8 most contended)", classes,
                      [(r.scheme, [str(r.metrics.contentions.get(c, 0)) for c in classes]) for r in rows], 16)
        console.print(f"Worst-case traces: {comp.traces}/ (each cell's trace: --format markdown, csv or json; "
                      f"the html report links them)", markup=False)
    finally:
        if fh is not None:
            fh.close()


# --- CSV -------------------------------------------------------------------------------------------------

def render_csv(comp: Comparison) -> str:
    from apactors.check.invariants import INVARIANTS

    all_rows = [r for s in comp.scenarios for r in comp.rows(s)]
    if len(comp.scenarios) > 1:
        all_rows += comp.rows()
    names = list(INVARIANTS) + [n for n in invariant_names(all_rows) if n not in INVARIANTS]
    classes = contention_classes(all_rows)
    head = ["scheme", "scenario", "schedules", "steps"]
    for k, _ in FINDING_COLUMNS:
        head += [k, f"{k}_trace"]
    head += ["first_finding", "first_finding_trace", "first_deadlock", "first_deadlock_trace"]
    for col in COST_COLUMNS:
        head += [col.key, f"{col.key}_worst", f"{col.key}_trace"]
    for n in names:
        head += [f"invariant:{n}", f"invariant:{n}_trace"]
    head += [f"contentions:{c}" for c in classes]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in all_rows:
        line: list[Any] = [r.scheme, r.scenario, r.schedules, r.steps]
        for c in finding_cells(r):
            line += [c.value if c.value is not None else "", c.worst.trace if c.worst and c.worst.trace else ""]
        for c in cost_cells(r):
            line += [c.value if c.value is not None else "", c.worst.value if c.worst else "",
                     c.worst.trace if c.worst and c.worst.trace else ""]
        inv = r.invariants()
        for n in names:
            cnt, ptr = inv.get(n, (0, None))
            line += [cnt, ptr.trace if ptr and ptr.trace else ""]
        line += [r.metrics.contentions.get(c, 0) for c in classes]
        w.writerow(line)
    return buf.getvalue()


# --- JSON ------------------------------------------------------------------------------------------------

def row_json(r: Row) -> dict[str, Any]:
    def cell(c: Cell) -> dict[str, Any]:
        return {"value": c.value, "worst": c.worst.to_json() if c.worst else None}

    return {
        "scheme": r.scheme, "scenario": r.scenario, "schedules": r.schedules, "steps": r.steps,
        "outcomes": dict(sorted(r.outcomes.items())),
        "findings": {c.key: cell(c) for c in finding_cells(r)},
        "invariants": {n: {"value": v, "worst": p.to_json() if p else None} for n, (v, p) in r.invariants().items()},
        "cost": {c.key: cell(c) for c in cost_cells(r)},
        "behind_kvm_lock": {k: r.metrics.to_json()["behind_kvm_lock"][k] for k in WAITER_KINDS},
        "contentions": {k: r.metrics.contentions[k] for k in contention_classes([r])},
        "errors": list(r.errors),
    }


def to_json(comp: Comparison) -> dict[str, Any]:
    cells = []
    for s in comp.scenarios:
        for r in comp.rows(s):
            c = r.cells[0]
            d = row_json(r)
            d["metrics"] = c.metrics.to_json()
            d["finding_list"] = c.findings
            d["graph"] = c.graph
            cells.append(d)
    return {"apactors_version": __version__, "command": comp.command(), **comp.params(),
            "summary": [row_json(r) for r in comp.rows()], "cells": cells}


def render(comp: Comparison, fmt: str, detail: bool = False) -> str:
    """The comparison as ``markdown``, ``csv`` or ``json`` text."""
    if fmt == "markdown":
        return render_markdown(comp, detail)
    if fmt == "csv":
        return render_csv(comp)
    if fmt == "json":
        return json.dumps(to_json(comp), indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


__all__ = ["COST_COLUMNS", "Cell", "CostColumn", "FINDING_HEADERS", "contention_classes", "cost_cells",
           "finding_cells", "invariant_names", "print_table", "render", "render_csv", "render_markdown",
           "row_json", "to_json"]
