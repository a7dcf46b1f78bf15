"""The command-line contract: subcommands, --json documents, exit codes 0/1/2, clean refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apactors.cli import main


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "apactors", *args], capture_output=True, text=True, cwd=cwd,
                          env=e, timeout=120)


def test_scenarios_json_lists_the_builtins(capsys):
    assert main(["scenarios", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in doc["scenarios"]]
    assert {"smoke", "storm", "pqap-vs-unplug", "pv-vs-open", "masks-vs-assign", "hostcfg-scan",
            "unbind-bind", "reset-vs-unplug"} <= set(names)
    assert all(s["description"] for s in doc["scenarios"])


def test_schemes_json_has_latest(capsys):
    assert main(["schemes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    latest = [s for s in doc["schemes"] if s["id"] == "latest"]
    assert latest and latest[0]["description"] and latest[0]["kernel"]


def test_run_json_document_and_exit_status(tmp_path: Path, capsys):
    rc = main(["run", "--scheme", "latest", "--scenario", "smoke", "--schedules", "20", "--seed", "1",
               "--out", str(tmp_path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert {"apactors_version", "scheme", "scenario", "strategy", "seed", "schedules", "steps", "elapsed_s",
            "findings"} <= doc.keys()
    assert doc["scheme"] == "latest" and doc["scenario"] == "smoke" and doc["schedules"] == 20
    assert doc["steps"] > 0
    assert rc == (1 if doc["findings"] else 0)
    for f in doc["findings"]:
        assert {"kind", "signature", "summary", "locks", "paths", "actors", "first_schedule", "count",
                "trace"} <= f.keys()


def test_malformed_scenario_file_is_refused_with_its_name(tmp_path: Path):
    bad = tmp_path / "broken.toml"
    bad.write_text("name = 'x'\n[host\n")
    r = run_cli("run", "--scheme", "latest", "--scenario-file", str(bad), "--schedules", "1")
    assert r.returncode == 2
    assert "broken.toml" in r.stderr and ":2" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_semantic_scenario_error_names_line_and_key(tmp_path: Path):
    bad = tmp_path / "badop.toml"
    bad.write_text('name = "x"\ndescription = "d"\n[host]\nadapters = [3]\ndomains = [5]\n'
                   '[[actor]]\nkind = "admin"\nops = ["frobnicate m0 3"]\n')
    r = run_cli("run", "--scheme", "latest", "--scenario-file", str(bad))
    assert r.returncode == 2
    assert "badop.toml:8" in r.stderr and "actor[0].ops[0]" in r.stderr and "frobnicate" in r.stderr


@pytest.mark.parametrize("args", [
    ["run", "--scheme", "no-such-scheme", "--scenario", "smoke"],
    ["run", "--scheme", "latest", "--scenario", "no-such-scenario"],
    ["run", "--scheme", "latest", "--scenario", "smoke", "--schedules", "0"],
    ["run", "--scheme", "latest", "--scenario", "smoke", "--seed", "minus-one"],
    ["run", "--scheme", "latest"],
    ["replay", "/nonexistent/missing.jsonl"],
    ["frobnicate"],
])
def test_bad_arguments_exit_2_without_traceback(args):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip()


def test_replay_of_a_garbage_trace_names_the_line(tmp_path: Path):
    t = tmp_path / "t.jsonl"
    t.write_text('{"event": "header", "format": "apactors-trace/1", "scheme": "latest", "scenario": {}, "seed": 0}\n'
                 "not json\n")
    r = run_cli("replay", str(t))
    assert r.returncode == 2 and "t.jsonl:2" in r.stderr and "Traceback" not in r.stderr


def test_same_seed_same_bytes_under_different_hash_seeds(tmp_path: Path):
    digests = []
    for hs in ("0", "4242"):
        out = tmp_path / hs
        r = run_cli("run", "--scheme", "latest", "--scenario", "pqap-vs-unplug", "--schedules", "4", "--seed", "9",
                    "--out", str(out), "--keep-traces", "all", "--json", env={"PYTHONHASHSEED": hs})
        assert r.returncode in (0, 1), r.stderr
        files = sorted(out.glob("*.jsonl"))
        assert len(files) == 4
        digests.append([f.read_bytes() for f in files])
    assert digests[0] == digests[1]


def test_kept_trace_replays_from_the_cli(tmp_path: Path):
    r = run_cli("run", "--scheme", "latest", "--scenario", "smoke", "--schedules", "2", "--seed", "3",
                "--out", str(tmp_path), "--keep-traces", "all", "--json")
    trace = sorted(tmp_path.glob("*.jsonl"))[0]
    r = run_cli("replay", str(trace), "--json")
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert doc["reproduced"] is True and doc["divergence"] is None
