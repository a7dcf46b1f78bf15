"""apactors compare: same schedules on every scheme, every format valid, cells agree with their traces."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from pathlib import Path

import pytest

from apactors.api import explore, replay
from apactors.report import tables
from apactors.report.compare import (DEFAULT_SCHEDULES, Comparison, add_compare_parser, cmd_compare, compare,
                                     traces_dir_for)
from apactors.report.metrics import actor_kinds, metrics_of_steps
from apactors.trace.reader import read_trace

SCHEMES = ["v5.11", "latest", "alt-unfair-rwlock"]
SCENARIOS = ["pv-vs-open", "pqap-vs-unplug"]


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Comparison:
    out = tmp_path_factory.mktemp("compare")
    return compare(SCHEMES, SCENARIOS, schedules=12, seed=1, traces=out / "traces", witness_attempts=10)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="apactors")
    sub = p.add_subparsers(dest="command", required=True)
    add_compare_parser(sub)
    return p


def test_cells_cover_every_scheme_and_scenario_in_order(comp):
    assert [(c.scenario, c.scheme) for c in comp.cells] == [(s, k) for s in SCENARIOS for k in SCHEMES]
    assert all(c.schedules == 12 and c.steps > 0 for c in comp.cells)
    assert not comp.errors


def test_findings_equal_those_of_apactors_run_on_the_same_schedules(comp, tmp_path):
    cell = comp.cell("v5.11", "pv-vs-open")
    run = explore("v5.11", "pv-vs-open", schedules=12, seed=1, out=tmp_path, witness_attempts=10)
    mine = {(f["signature"], f["count"], f["first_schedule"], f.get("confirmed")) for f in cell.findings}
    theirs = {(f["signature"], f["count"], f["first_schedule"], f.get("confirmed")) for f in run.findings_json()}
    assert mine == theirs
    assert any(f["kind"] == "deadlock" for f in cell.findings)


def _pointers(doc: dict) -> list[tuple[str, str, dict, dict]]:
    """(row label, column, cell, worst) of every cell of the JSON document that points to a trace."""
    out = []
    for row in doc["summary"] + doc["cells"]:
        label = f"{row['scheme']}/{row['scenario']}"
        for group in ("findings", "cost"):
            for key, cell in row[group].items():
                if cell["worst"] and cell["worst"]["trace"]:
                    out.append((label, key, cell, cell["worst"]))
        for name, cell in row["invariants"].items():
            if cell["worst"] and cell["worst"]["trace"]:
                out.append((label, f"invariant:{name}", cell, cell["worst"]))
    return out


def test_the_number_in_a_cell_agrees_with_a_replay_of_the_trace_it_points_to(comp):
    doc = tables.to_json(comp)
    metric_of = {c.key: c.metric for c in tables.COST_COLUMNS}
    max_columns = {"pqap_max", "kvm_hold_max", "behind_vcpu", "behind_kvm", "writer_wait_max"}
    pointers = _pointers(doc)
    assert len(pointers) > 20
    checked_cost: set[str] = set()
    checked_findings: set[str] = set()
    cache: dict[str, object] = {}
    for label, key, cell, worst in pointers:
        trace = worst["trace"]
        assert Path(trace).exists(), (label, key, trace)
        res = cache.get(trace) or replay(trace)
        cache[trace] = res
        assert res.reproduced, (label, key, trace, res.divergence)
        if key in metric_of:
            m = metrics_of_steps(res.events, actor_kinds(read_trace(trace).header["scenario"]), res.steps)
            assert m.value(metric_of[key]) == worst["value"], (label, key, trace)
            if key in max_columns:
                assert cell["value"] == worst["value"], (label, key)
            checked_cost.add(key)
        else:
            sigs = {f["signature"] for f in res.findings.to_json()}
            assert worst["signature"] in sigs, (label, key, trace)
            if key == "confirmed":
                assert res.outcome == "deadlock"
            checked_findings.add(key)
    assert {"pqap_max", "kvm_hold_max", "contentions", "ops_per_kstep"} <= checked_cost
    assert {"potential_lockdep", "confirmed", "deadlocks", "first"} <= checked_findings


def test_output_does_not_depend_on_jobs(comp, tmp_path):
    again = compare(SCHEMES, SCENARIOS, schedules=12, seed=1, traces=comp.traces, witness_attempts=10, jobs=2)
    for fmt in ("json", "csv", "markdown"):
        assert tables.render(again, fmt, detail=True) == tables.render(comp, fmt, detail=True)


def test_json_parses_and_carries_every_cell(comp):
    doc = json.loads(tables.render(comp, "json"))
    assert doc["schemes"] == SCHEMES and doc["scenarios"] == SCENARIOS
    assert len(doc["cells"]) == 6 and len(doc["summary"]) == 3
    assert doc["command"].startswith("apactors compare --schemes v5.11,latest,alt-unfair-rwlock")
    v511 = next(r for r in doc["summary"] if r["scheme"] == "v5.11")
    assert v511["findings"]["deadlocks"]["value"] >= 1
    assert v511["findings"]["confirmed"]["worst"]["trace"].endswith(".jsonl")
    cell = doc["cells"][0]
    assert {"metrics", "finding_list", "graph", "outcomes", "contentions"} <= cell.keys()
    assert cell["graph"]["nodes"]
    assert all("report" not in f for c in doc["cells"] for f in c["finding_list"])  # reports live in traces


def test_csv_loads_with_one_row_per_cell_and_summary(comp):
    rows = list(csv.DictReader(io.StringIO(tables.render(comp, "csv"))))
    assert len(rows) == 6 + 3
    assert {r["scenario"] for r in rows} == set(SCENARIOS) | {"all"}
    v511 = next(r for r in rows if r["scheme"] == "v5.11" and r["scenario"] == "pv-vs-open")
    assert int(v511["deadlocks"]) >= 1 and v511["deadlocks_trace"].endswith(".jsonl")
    assert float(v511["ops_per_kstep"]) > 0
    assert "invariant:no-leaked-irq-resources" in rows[0]


def test_markdown_has_the_tables_and_points_to_traces(comp):
    md = tables.render(comp, "markdown")
    assert "| scheme | lockdep cycles |" in md and "| scheme | PQAP p50 |" in md
    assert md.count("| v5.11 |") >= 2
    assert "Worst-case traces" in md and ".jsonl`" in md
    lines = md.splitlines()
    for i, line in enumerate(lines):  # every table row has as many cells as its header
        if line.startswith("|---"):
            width = lines[i - 1].count(" | ")
            j = i + 1
            while j < len(lines) and lines[j].startswith("| "):
                assert lines[j].count(" | ") == width, lines[j]
                j += 1


def test_default_schedules_and_traces_dir():
    assert 20 <= DEFAULT_SCHEDULES <= 500
    assert traces_dir_for("out/report.html", None) == Path("out/report-traces")
    assert traces_dir_for(None, None) == Path("apactors-out/compare")
    assert traces_dir_for("x.md", "t") == Path("t")


def test_cli_formats(tmp_path, capsys):
    from apactors.logs import configure_logging

    configure_logging("console")  # as the CLI does: diagnostics on stderr, warnings and up
    p = _parser()
    args = p.parse_args(["compare", "--schemes", "v5.11,latest", "--scenario", "pv-vs-open", "--schedules", "4",
                         "--format", "json", "--traces", str(tmp_path / "t"), "--jobs", "1", "--witness-attempts", "0"])
    assert cmd_compare(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schemes"] == ["v5.11", "latest"] and doc["schedules"] == 4
    out = tmp_path / "r.csv"
    args = p.parse_args(["compare", "--schemes", "latest", "--scenario", "smoke", "--schedules", "3", "--format",
                         "csv", "--out", str(out), "--jobs", "1"])
    assert cmd_compare(args) == 0
    assert (tmp_path / "r-traces").is_dir()
    assert list(csv.DictReader(out.open()))[0]["scheme"] == "latest"
    args = p.parse_args(["compare", "--schemes", "latest", "--scenario", "smoke", "--schedules", "3",
                         "--traces", str(tmp_path / "t2"), "--jobs", "1"])
    assert cmd_compare(args) == 0
    text = capsys.readouterr().out
    assert "Findings" in text and "latest" in text and "\x1b[" not in text  # no colour off a terminal


def test_cli_refuses_bad_input(tmp_path):
    from apactors.cli import BadInput
    from apactors.model.schemes.base import UnknownScheme

    p = _parser()
    with pytest.raises(UnknownScheme):
        cmd_compare(p.parse_args(["compare", "--schemes", "nope", "--scenario", "smoke", "--schedules", "1"]))
    with pytest.raises(BadInput):
        cmd_compare(p.parse_args(["compare", "--scenario", "smoke", "--scenario", "smoke", "--schedules", "1"]))
    with pytest.raises(SystemExit):
        p.parse_args(["compare", "--strategy", "dfs"])  # a search driver is not a per-schedule strategy


@pytest.mark.skipif(not hasattr(os, "fork"), reason="posix only")
def test_command_line_reproduces_the_comparison(comp):
    assert comp.command() == ("apactors compare --schemes v5.11,latest,alt-unfair-rwlock --scenario pv-vs-open "
                              "--scenario pqap-vs-unplug --schedules 12 --seed 1")
