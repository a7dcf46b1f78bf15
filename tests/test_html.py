"""Pictures: lock-class graph as DOT/SVG (Graphviz or built-in), swimlane timelines, HTML reports that are
self-contained and load cleanly in a real headless browser (skipped when none is installed)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from apactors.api import explore
from apactors.report.compare import compare
from apactors.report.graph import (GEdge, GNode, LockGraph, graph_of_trace, graphviz_available, inline_svg, layered_svg,
                                   to_dot, to_svg)
from apactors.report.html import add_report_parser, cmd_report, compare_html, trace_html
from apactors.report.timeline import timeline_of, timeline_svg
from apactors.trace.reader import read_trace

ROOT = Path(__file__).resolve().parent.parent


def _check_html_tool():
    spec = importlib.util.spec_from_file_location("check_html", ROOT / "tools" / "check_html.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["check_html"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def deadlock_trace(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("traces")
    r = explore("v5.11", "pv-vs-open", schedules=10, seed=1, out=out, witness_attempts=10)
    f = next(f for f in r.findings_json() if f["kind"] == "potential-deadlock" and f.get("confirmed"))
    return Path(f["trace"])  # the witness: replays to the actual deadlock


@pytest.fixture(scope="module")
def small_comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    comp = compare(["v5.11", "v5.12", "latest"], ["pv-vs-open"], schedules=8, seed=1, traces=out / "report-traces",
                   witness_attempts=10)
    html = compare_html(comp, out / "report.html")
    (out / "report.html").write_text(html)
    return comp, out / "report.html"


def _external_urls(html: str) -> list[str]:
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"url\((?!#)([^)]+)\)", html)
    return [u for u in urls if re.match(r"[a-z]+://", u)]


def test_graph_of_a_deadlock_trace_marks_the_cycle(deadlock_trace):
    g = graph_of_trace(deadlock_trace)
    names = {n.name for n in g.nodes}
    assert {"&kvm->lock", "&vcpu->mutex", "&matrix_dev->lock"} <= names
    red = {(e.src, e.dst) for e in g.edges if e.cycle}
    assert ("&kvm->lock", "&vcpu->mutex") in red
    assert all(e.path and e.path != "?" for e in g.edges)
    dot = to_dot(g)
    assert dot.startswith("// apactors lock-class graph") and "digraph lockdep" in dot
    assert dot.count(', color="#d62728"') == len(red)
    assert "kvm_s390_cpus_to_pv (vmm:g0)" in dot or "kvm_s390_cpus_to_pv" in dot


def test_builtin_layout_is_valid_deterministic_svg(deadlock_trace):
    g = graph_of_trace(deadlock_trace)
    svg = layered_svg(g)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert svg == layered_svg(graph_of_trace(deadlock_trace))
    assert svg.count('class="edge cycle"') == sum(e.cycle for e in g.edges)
    assert to_svg(g, "builtin") == svg


def test_builtin_layout_handles_cycles_self_loops_and_long_edges():
    g = LockGraph("t", [GNode(n) for n in "abcde"] + [GNode("w", "wait", True)],
                  [GEdge("a", "b"), GEdge("b", "c"), GEdge("c", "a", cycle=True), GEdge("a", "d"), GEdge("d", "e"),
                   GEdge("a", "e"), GEdge("e", "e"), GEdge("w", "a", wait_only=True)])
    ET.fromstring(layered_svg(g))


@pytest.mark.skipif(not graphviz_available(), reason="Graphviz (dot) is not installed")
def test_graphviz_svg(deadlock_trace):
    g = graph_of_trace(deadlock_trace)
    svg = to_svg(g, "dot")
    assert "kvm_s390_cpus_to_pv" in svg and svg.count('class="node"') == len(g.nodes)
    ET.fromstring(inline_svg(svg))


def test_timeline_has_a_lane_per_actor_holds_and_the_finding(deadlock_trace):
    tr = read_trace(deadlock_trace)
    tl = timeline_of(tr)
    assert set(tl.actors) >= {"vcpu:g0/0", "mdev:m0", "vmm:g0"}
    assert any(h.cls == "&kvm->lock" and h.open_at_end for h in tl.holds)  # still held in the deadlock
    assert any(m["kind"] == "deadlock" for m in tl.marks)
    svg = timeline_svg(tl)
    ET.fromstring(svg)
    assert svg.count('class="finding"') == len(tl.marks)


def test_trace_report_is_self_contained(deadlock_trace, tmp_path):
    html = trace_html(deadlock_trace)
    assert html.startswith("<!DOCTYPE html>")
    assert 'class="timeline"' in html and "<svg" in html
    assert "DEADLOCK" in html and "apactors replay" in html
    assert not _external_urls(html)
    assert "<link" not in html and "<script src" not in html


def test_report_command(deadlock_trace, tmp_path):
    p = argparse.ArgumentParser()
    add_report_parser(p.add_subparsers())
    args = p.parse_args(["report", str(deadlock_trace), "--html", str(tmp_path / "t.html"), "--dot",
                         str(tmp_path / "g.dot"), "--svg", str(tmp_path / "g.svg"), "--graph-engine", "builtin"])
    assert cmd_report(args) == 1  # the trace has findings
    assert (tmp_path / "t.html").read_text().startswith("<!DOCTYPE html>")
    assert "digraph" in (tmp_path / "g.dot").read_text()
    ET.fromstring((tmp_path / "g.svg").read_text())


def test_compare_report_links_every_cell_to_an_existing_trace(small_comparison):
    comp, page = small_comparison
    html = page.read_text()
    assert not _external_urls(html)
    links = re.findall(r'<a href="([^"]+)"', html)
    assert links and all((page.parent / link).exists() for link in links)
    assert all(not Path(link).is_absolute() for link in links)
    with_findings = [r for r in comp.rows() if r.findings]
    assert with_findings and html.count('class="timeline"') == len(with_findings)  # each scheme's worst finding
    assert html.count("no finding</span>") == 3 - len(with_findings)
    assert html.count('<div class="graph">') == 3  # one lock graph per scheme
    assert compare_html(comp, page) == html  # deterministic


def test_browser_loads_the_reports_without_errors(small_comparison, deadlock_trace, tmp_path):
    tool = _check_html_tool()
    if tool.find_browser() is None:
        pytest.skip("no Chromium/Chrome installed (apt-get install chromium)")
    _, page = small_comparison
    r = tool.check_page(page, screenshot=tmp_path / "compare.png",
                        expect=("table.grid", "svg.timeline", ".graph svg", "a[href$='.jsonl']"))
    assert r.ok, r.errors
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert all(u.startswith("file:") for u in r.requests)
    trace_page = tmp_path / "trace.html"
    trace_page.write_text(trace_html(deadlock_trace))
    r = tool.check_page(trace_page, expect=("svg.timeline", ".graph svg"))
    assert r.ok, r.errors


def test_check_html_skips_cleanly_without_a_browser(monkeypatch, tmp_path, capsys):
    tool = _check_html_tool()
    monkeypatch.setenv("APACTORS_BROWSER", str(tmp_path / "no-such-browser"))
    assert tool.main([str(tmp_path / "x.html")]) == 0
    assert "skipped" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "x.html"), "--require-browser"]) == 2
