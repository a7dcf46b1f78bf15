"""Tests for apactors.scenario: built-ins, round trips, operations and error reporting."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import random
from pathlib import Path
from typing import Any

import pytest

from apactors.model.masks import make_apqn
from apactors.scenario import (
    DEFAULT_ISC,
    DEFAULT_NIB,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_builtin,
    load_scenario_file,
    resolve_scenario,
    scenario_from_dict,
    scenario_from_toml,
)

REQUIRED_BUILTINS = {
    "smoke",
    "pqap-vs-unplug",
    "pv-vs-open",
    "masks-vs-assign",
    "hostcfg-scan",
    "unbind-bind",
    "reset-vs-unplug",
    "storm",
}
BUILTIN_NAMES = [name for name, _ in builtin_scenarios()]


# -- built-in scenarios ------------------------------------------------------------------------


def test_builtin_list_sorted_and_complete() -> None:
    listing = builtin_scenarios()
    assert [n for n, _ in listing] == sorted(n for n, _ in listing)
    assert REQUIRED_BUILTINS <= set(BUILTIN_NAMES)
    for name, description in listing:
        assert description and "\n" not in description, name


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_loads_and_round_trips(name: str) -> None:
    s = load_builtin(name)
    assert s.name == name
    assert s.source == f"builtin/{name}.toml"
    d = s.to_dict()
    assert list(d) == ["name", "description", "host", "guest", "mdev", "actor"]
    again = scenario_from_dict(d, "trace.jsonl", key_prefix="header.scenario")
    assert again == s
    assert again.to_dict() == d
    # through JSON (a trace header) and deterministic
    text = json.dumps(d)
    assert json.dumps(s.to_dict()) == text
    assert scenario_from_dict(json.loads(text), "trace.jsonl") == s
    hash(s)  # frozen and hashable all the way down


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_is_documented_and_valid_at_setup(name: str) -> None:
    res = importlib.resources.files("apactors.scenario") / "builtin" / f"{name}.toml"
    text = res.read_text(encoding="utf-8")
    assert text.startswith("#"), "each built-in starts with a comment header"
    s = load_builtin(name)
    host = s.host
    assigned: set[int] = set()
    for m in s.mdevs:
        # only ids of the host configuration: valid for every scheme
        assert set(m.adapters) <= set(host.adapters), m.name
        assert set(m.domains) <= set(host.domains), m.name
        for q in m.queues():
            assert not host.is_reserved(q)
            assert q not in assigned
            assigned.add(q)
    # every opened mdev is held by an mdev actor of its guest
    for m in s.mdevs:
        if m.open_by is not None:
            holder = s.mdev_actor(m.name)
            assert holder is not None and holder.guest == m.open_by


def test_storm_has_every_actor_kind() -> None:
    s = load_builtin("storm")
    assert {a.kind for a in s.actors} == {"vcpu", "mdev", "vmm", "admin", "hmc", "bus"}
    assert len(s.guests) == 2 and len(s.mdevs) == 2
    assert any(a.repeat == 2 for a in s.actors)


def test_smoke_contents() -> None:
    s = load_builtin("smoke")
    assert [a.name for a in s.actors] == ["vcpu:g0/0", "mdev:m0"]
    vcpu = s.actor("vcpu:g0/0")
    enable, disable = vcpu.ops
    assert (enable.verb, enable.apqn, enable.isc, enable.nib) == ("pqap-aqic-enable", 0x0305, 3, 0x1000)
    assert (disable.verb, disable.apqn, disable.isc, disable.nib) == ("pqap-aqic-disable", 0x0305, None, None)
    assert str(enable) == "pqap-aqic-enable 03.0005 isc=3 nib=0x1000"
    assert s.mdev("m0").open_by == "g0"
    assert s.actor("mdev:m0").ops[-1].verb == "close"
    assert s.guest("g0").vcpus == 1
    with pytest.raises(KeyError):
        s.guest("nope")


def test_masks_vs_assign_has_two_admins() -> None:
    s = load_builtin("masks-vs-assign")
    names = [a.name for a in s.actors]
    assert "admin" in names and "admin#1" in names
    specs = [op.spec for op in s.actor("admin#1").ops]
    assert specs == ["0x04", "-5"]


# -- the format --------------------------------------------------------------------------------

BASE = """\
name = "t"
description = "test scenario"

[host]
adapters = [4, 3, 3]
domains = [5, 6]
control_domains = [5]
apmask = []
aqmask = [6]
unbound = ["04.0006"]

[[guest]]
name = "g0"
vcpus = 2

[[guest]]
name = "g1"
pv = true

[[mdev]]
name = "m0"
adapters = [3]
domains = [5, 6]
open_by = "g0"

[[actor]]
kind = "vcpu"
guest = "g0"
vcpu = 1
ops = [
    "pqap-aqic-enable 03.0005",
    "pqap-aqic-disable   03.0005",
]
repeat = 2

[[actor]]
kind = "admin"
ops = ["create m1", "assign-adapter m1 0x4", "apmask +3,-0x4", "aqmask 0x7d00", "bind 04.0006"]

[[actor]]
kind = "admin"
ops = ["remove m1"]

[[actor]]
kind = "bus"
ops = ["scan"]

[[actor]]
kind = "bus"
name = "scanner"
ops = ["scan"]

[[actor]]
kind = "hmc"
ops = ["remove-adapter 3", "add-domain 0x47", "add-control-domain 255"]

[[actor]]
kind = "mdev"
mdev = "m1"
guest = "g1"
ops = ["open", "dma-unmap", "dma-unmap iova=0x2000", "reset", "close"]

[[actor]]
kind = "vmm"
guest = "g1"
ops = ["pv-disable", "pv-enable", "kvm-vfio-release"]
"""


def test_base_scenario_parses() -> None:
    s = scenario_from_toml(BASE, "base.toml")
    assert s.host.adapters == (3, 4)
    assert s.host.unbound == (make_apqn(4, 6),)
    assert s.guests[1].vcpus == 1 and s.guests[1].pv is True
    names = [a.name for a in s.actors]
    # derived names; the implicit holder of m0 (opened by g0, no explicit actor) comes last
    assert names == ["vcpu:g0/1", "admin", "admin#1", "bus", "scanner", "hmc", "mdev:m1", "vmm:g1", "mdev:m0"]
    holder = s.actor("mdev:m0")
    assert (holder.kind, holder.guest, holder.mdev, holder.ops) == ("mdev", "g0", "m0", ())

    vcpu = s.actors[0]
    assert vcpu.ops[0].isc == DEFAULT_ISC and vcpu.ops[0].nib == DEFAULT_NIB
    assert vcpu.ops[1].text == "pqap-aqic-disable 03.0005"  # whitespace normalised
    assert [op.verb for op in vcpu.expanded_ops()] == ["pqap-aqic-enable", "pqap-aqic-disable"] * 2

    admin = s.actor("admin")
    create, assign, apmask, aqmask, bind = admin.ops
    assert (create.verb, create.mdev) == ("create", "m1")
    assert (assign.mdev, assign.ident) == ("m1", 4)
    assert apmask.spec == "+3,-0x4" and aqmask.spec == "0x7d00"
    assert bind.apqn == make_apqn(4, 6)
    hmc = s.actor("hmc")
    assert [op.ident for op in hmc.ops] == [3, 0x47, 255]
    mdev = s.actor("mdev:m1")
    assert [op.iova for op in mdev.ops] == [None, None, 0x2000, None, None]

    assert scenario_from_dict(s.to_dict(), "x") == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]


def test_minimal_scenario_defaults() -> None:
    s = scenario_from_toml('name = "empty"\n', "min.toml")
    assert s.description == ""
    assert s.host.adapters == () and s.guests == () and s.actors == ()
    assert scenario_from_dict(s.to_dict()) == s


def test_bad_spec_is_kept_for_the_store() -> None:
    # a malformed SPEC is a legal write (the store answers -EINVAL); only whitespace is refused
    s = scenario_from_toml('name = "x"\n[[actor]]\nkind = "admin"\nops = ["apmask 0xzz"]\n', "x.toml")
    assert s.actors[0].ops[0].spec == "0xzz"


# -- error reporting ---------------------------------------------------------------------------


def _line_of(text: str, marker: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``marker``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if marker in line]
    return hits[occurrence - 1]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "broken.toml"
    p.write_text(text, encoding="utf-8")
    return p


# (id, transform of BASE, marker of the expected line (text, occurrence), expected key, substring)
BROKEN: list[tuple[str, Any, tuple[str, int], str, str]] = [
    (
        "unknown-top-level-key",
        lambda t: t.replace('description = "test scenario"', 'description = "test scenario"\nschedule = 3'),
        ("schedule = 3", 1), "schedule", "unknown key 'schedule'",
    ),
    (
        "unknown-host-key",
        lambda t: t.replace("aqmask = [6]", "aqmask = [6]\nadapter = [1]"),
        ("adapter = [1]", 1), "host.adapter", "expected one of: adapters, domains",
    ),
    (
        "unknown-actor-key",
        lambda t: t.replace('ops = ["remove m1"]', 'ops = ["remove m1"]\nmdev = "m0"'),
        ('mdev = "m0"', 1), "actor[2].mdev", "unknown key 'mdev' in an admin actor",
    ),
    (
        "bad-op",
        lambda t: t.replace('"remove m1"', '"frob m1"'),
        ('"frob m1"', 1), "actor[2].ops[0]", "unknown operation 'frob' for an admin actor; expected one of: create, remove",
    ),
    (
        "op-of-other-kind",
        lambda t: t.replace('ops = ["scan"]\n\n[[actor]]\nkind = "bus"', 'ops = ["open"]\n\n[[actor]]\nkind = "bus"'),
        ('"open"]', 1), "actor[3].ops[0]", "it is an mdev actor operation",
    ),
    (
        "bad-apqn",
        lambda t: t.replace('"pqap-aqic-disable   03.0005"', '"pqap-aqic-disable 3.5"'),
        ("pqap-aqic-disable 3.5", 1), "actor[0].ops[1]", "invalid APQN '3.5'",
    ),
    (
        "apqn-hex-form",
        lambda t: t.replace('"bind 04.0006"', '"bind 0x0406"'),
        ('"bind 0x0406"', 1), "actor[1].ops[4]", "AA.DDDD",
    ),
    (
        "too-many-args",
        lambda t: t.replace('"assign-adapter m1 0x4"', '"assign-adapter m1 4 5"'),
        ('"assign-adapter m1 4 5"', 1), "actor[1].ops[1]", "takes 2 arguments, got 3",
    ),
    (
        "spec-with-whitespace",
        lambda t: t.replace('"apmask +3,-0x4"', '"apmask +3, -0x4"'),
        ('"apmask +3, -0x4"', 1), "actor[1].ops[2]", "must not contain whitespace",
    ),
    (
        "spec-missing",
        lambda t: t.replace('"apmask +3,-0x4"', '"apmask"'),
        ('"apmask"', 1), "actor[1].ops[2]", "takes 1 argument, got 0",
    ),
    (
        "isc-out-of-range",
        lambda t: t.replace('"pqap-aqic-enable 03.0005"', '"pqap-aqic-enable 03.0005 isc=8"'),
        ("isc=8", 1), "actor[0].ops[0]", "0..7",
    ),
    (
        "unknown-option",
        lambda t: t.replace('"pqap-aqic-enable 03.0005"', '"pqap-aqic-enable 03.0005 gisc=1"'),
        ("gisc=1", 1), "actor[0].ops[0]", "unknown option 'gisc='",
    ),
    (
        "id-out-of-range",
        lambda t: t.replace('"add-domain 0x47"', '"add-domain 0x100"'),
        ('"add-domain 0x100"', 1), "actor[5].ops[1]", "0..255",
    ),
    (
        "unknown-guest",
        lambda t: t.replace('guest = "g1"\nops = ["pv-disable"', 'guest = "g7"\nops = ["pv-disable"'),
        ('guest = "g7"', 1), "actor[7].guest", "unknown guest 'g7'; declared guests: g0, g1",
    ),
    (
        "open-by-unknown-guest",
        lambda t: t.replace('open_by = "g0"', 'open_by = "gx"'),
        ('open_by = "gx"', 1), "mdev[0].open_by", "unknown guest 'gx'",
    ),
    (
        "unknown-mdev-in-op",
        lambda t: t.replace('"remove m1"', '"remove m9"'),
        ('"remove m9"', 1), "actor[2].ops[0]", "unknown mdev 'm9'",
    ),
    (
        "unknown-mdev-of-actor",
        lambda t: t.replace('mdev = "m1"', 'mdev = "m5"'),
        ('mdev = "m5"', 1), "actor[6].mdev", "unknown mdev 'm5'",
    ),
    (
        "vcpu-out-of-range",
        lambda t: t.replace("vcpu = 1", "vcpu = 2"),
        ("vcpu = 2", 1), "actor[0].vcpu", "guest 'g0' has 2 vCPUs",
    ),
    (
        "duplicate-guest",
        lambda t: t.replace('name = "g1"', 'name = "g0"'),
        ('name = "g0"', 2), "guest[1].name", "duplicate guest name 'g0'",
    ),
    (
        "duplicate-mdev",
        lambda t: t.replace('[[actor]]\nkind = "vcpu"', '[[mdev]]\nname = "m0"\n\n[[actor]]\nkind = "vcpu"'),
        ('name = "m0"', 2), "mdev[1].name", "duplicate mdev name 'm0'",
    ),
    (
        "duplicate-actor-name",
        lambda t: t.replace('name = "scanner"', 'name = "admin"'),
        ('name = "admin"', 1), "actor[4].name", "duplicate actor name 'admin'",
    ),
    (
        "missing-name",
        lambda t: t.replace('name = "t"\n', ""),
        ("description", 1), "name", "missing required key 'name'",
    ),
    (
        "missing-kind",
        lambda t: t.replace('kind = "hmc"\n', ""),
        ("[[actor]]", 6), "actor[5].kind", "missing required key 'kind'",
    ),
    (
        "missing-guest",
        lambda t: t.replace('guest = "g1"\nops = ["pv-disable"', 'ops = ["pv-disable"'),
        ("[[actor]]", 8), "actor[7].guest", "missing required key 'guest' in a vmm actor",
    ),
    (
        "missing-mdev",
        lambda t: t.replace('mdev = "m1"\n', ""),
        ("[[actor]]", 7), "actor[6].mdev", "missing required key 'mdev' in an mdev actor",
    ),
    (
        "unknown-kind",
        lambda t: t.replace('kind = "hmc"', 'kind = "sclp"'),
        ('kind = "sclp"', 1), "actor[5].kind", "expected one of: vcpu, mdev, vmm, admin, hmc, bus",
    ),
    (
        "wrong-type",
        lambda t: t.replace("vcpus = 2", 'vcpus = "2"'),
        ('vcpus = "2"', 1), "guest[0].vcpus", "got a string",
    ),
    (
        "host-id-out-of-range",
        lambda t: t.replace("domains = [5, 6]\ncontrol", "domains = [5, 256]\ncontrol"),
        ("domains = [5, 256]", 1), "host.domains[1]", "domain id 256 out of range",
    ),
    (
        "unbound-not-a-queue",
        lambda t: t.replace('unbound = ["04.0006"]', 'unbound = ["04.0007"]'),
        ('unbound = ["04.0007"]', 1), "host.unbound[0]", "does not exist at the start",
    ),
    (
        "repeat-zero",
        lambda t: t.replace("repeat = 2", "repeat = 0"),
        ("repeat = 0", 1), "actor[0].repeat", "expected 1..",
    ),
    (
        "two-actors-one-vcpu",
        lambda t: t + '\n[[actor]]\nkind = "vcpu"\nguest = "g0"\nvcpu = 1\n',
        ("vcpu = 1", 2), "actor[8].vcpu", "already has an actor (actor[0])",
    ),
    (
        "two-mdev-actors",
        lambda t: t + '\n[[actor]]\nkind = "mdev"\nmdev = "m1"\nguest = "g1"\n',
        ('mdev = "m1"', 2), "actor[8].mdev", "mdev 'm1' already has an actor",
    ),
    (
        "two-vmm-actors",
        lambda t: t + '\n[[actor]]\nkind = "vmm"\nguest = "g1"\n',
        ('guest = "g1"', 3), "actor[8].guest", "the VMM of guest 'g1' already has an actor",
    ),
    (
        "holder-guest-mismatch",
        lambda t: t + '\n[[actor]]\nkind = "mdev"\nmdev = "m0"\nguest = "g1"\n',
        ('guest = "g1"', 3), "actor[8].guest", "opened at setup by guest 'g0'",
    ),
    (
        "mdev-reserved-apqn",
        lambda t: t.replace("apmask = []", "apmask = [3]"),
        ("adapters = [3]", 1), "mdev[0].adapters", "reserved for the host",
    ),
    (
        "unknown-array-of-tables",
        lambda t: t.replace('[[guest]]\nname = "g1"', '[[gast]]\nname = "g1"'),
        ("[[gast]]", 1), "gast", "unknown key 'gast'",
    ),
    (
        "guest-not-array",
        lambda t: t.replace('[[guest]]\nname = "g0"\nvcpus = 2\n\n[[guest]]\nname = "g1"\npv = true', '[guest]\nname = "g0"'),
        ("[guest]", 1), "guest", "expected an array of tables ([[guest]] sections), got a table",
    ),
    (
        "ops-not-array",
        lambda t: t.replace('ops = ["remove m1"]', 'ops = "remove m1"'),
        ('ops = "remove m1"', 1), "actor[2].ops", "expected an array of operation strings",
    ),
]


@pytest.mark.parametrize(("case", "transform", "marker", "key", "detail"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_scenarios(
    tmp_path: Path, case: str, transform: Any, marker: tuple[str, int], key: str, detail: str
) -> None:
    text = transform(BASE)
    assert text != BASE, "the transform must change something"
    path = _write(tmp_path, text)
    line = _line_of(text, *marker)
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(path)
    err = info.value
    msg = str(err)
    assert msg.startswith(f"{path}:{line}: {key}: "), msg
    assert detail in msg
    assert (err.source, err.line, err.key) == (str(path), line, key)


def test_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    text = BASE.replace("vcpus = 2", "vcpus = = 2")
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(path)
    line = _line_of(text, "vcpus = = 2")
    assert str(info.value).startswith(f"{path}:{line}:9: TOML syntax error: ")
    assert info.value.line == line and info.value.column == 9


def test_syntax_error_duplicate_key(tmp_path: Path) -> None:
    text = BASE.replace("vcpus = 2", "vcpus = 2\nvcpus = 3")
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError, match=rf"^{path}:{_line_of(text, 'vcpus = 3')}:\d+: TOML syntax error"):
        load_scenario_file(path)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match="nope.toml: cannot read"):
        load_scenario_file(missing)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "x"\ndescription = "caf\xe9"\n')
    with pytest.raises(ScenarioError, match=r"latin1.toml:2: scenario file is not valid UTF-8"):
        load_scenario_file(bad)


def test_dict_errors_name_source_and_key_without_line() -> None:
    d = load_builtin("smoke").to_dict()
    d["actor"][0]["ops"][1] = "pqap-aqic-disable 3.5"
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(d, "trace.jsonl", key_prefix="header.scenario")
    assert str(info.value).startswith("trace.jsonl: header.scenario.actor[0].ops[1]: ")
    assert info.value.line is None
    with pytest.raises(ScenarioError, match=r"^trace.jsonl: header.scenario: expected a scenario table"):
        scenario_from_dict([], "trace.jsonl", key_prefix="header.scenario")  # type: ignore[arg-type]


def test_fuzzed_dicts_raise_only_scenario_errors() -> None:
    """Random damage to valid scenarios never escapes as anything but ScenarioError."""
    rng = random.Random(1234)
    junk: list[Any] = [None, True, -1, 0, 7, 300, 2.5, "", "x", "03.0005", [], [1], {}, {"a": 1}, ["scan"]]
    originals = [load_builtin(n).to_dict() for n in ("smoke", "storm", "masks-vs-assign")]

    def leaves(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [path]
        if isinstance(obj, dict):
            for k, v in obj.items():
                out += leaves(v, path + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                out += leaves(v, path + (i,))
        return out

    for _ in range(300):
        d = json.loads(json.dumps(rng.choice(originals)))
        path = rng.choice(leaves(d)[1:])
        parent = d
        for p in path[:-1]:
            parent = parent[p]
        action = rng.random()
        if action < 0.15 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.25 and isinstance(parent, dict):
            parent["extra_" + str(path[-1])] = 1
        else:
            parent[path[-1]] = rng.choice(junk)
        try:
            result = scenario_from_dict(d, "fuzz")
        except ScenarioError as exc:
            assert str(exc).startswith("fuzz: ")
        else:
            assert isinstance(result, Scenario)


# -- resolution --------------------------------------------------------------------------------


def test_resolve_scenario(tmp_path: Path) -> None:
    assert resolve_scenario("smoke", None) == load_builtin("smoke")
    path = tmp_path / "mine.toml"
    path.write_text(BASE, encoding="utf-8")
    assert resolve_scenario(None, path).name == "t"
    assert resolve_scenario(str(path), None).source == str(path)
    with pytest.raises(ScenarioError, match="not both"):
        resolve_scenario("smoke", path)
    with pytest.raises(ScenarioError, match="no scenario given; built-in scenarios: .*smoke"):
        resolve_scenario(None, None)
    with pytest.raises(ScenarioError, match="unknown built-in scenario 'nosuch'; available: .*storm"):
        resolve_scenario("nosuch", None)
