"""The reproducer library: every trace in ``traces/`` replays and its finding recurs.

A change to the engine or a scheme that breaks a reproducer fails here; regenerate the library with
``python tools/regen_traces.py`` when the change is intended.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apactors.api import replay
from apactors.scenario import load_scenario_file, scenario_from_dict
from apactors.trace.reader import read_trace

LIBRARY = Path(__file__).resolve().parent.parent / "traces"
TRACES = sorted(LIBRARY.glob("*.jsonl"))


def test_the_library_has_a_readme_line_per_trace():
    readme = (LIBRARY / "README.md").read_text(encoding="utf-8")
    for t in TRACES:
        assert f"`{t.name}`" in readme, f"{t.name} is not described in traces/README.md"


@pytest.mark.parametrize("trace", TRACES, ids=[t.stem for t in TRACES])
def test_reproducer_replays_and_its_finding_recurs(trace: Path):
    tr = read_trace(trace)
    wanted = (tr.footer or {}).get("shrink", {}).get("signature") or tr.footer["findings"][0]["signature"]
    res = replay(trace)
    assert res.reproduced, res.divergence
    assert wanted in [f["signature"] for f in res.findings.to_json()]
    # the scenario next to it is the trace's scenario
    assert load_scenario_file(trace.with_suffix(".toml")) == scenario_from_dict(tr.header["scenario"])
