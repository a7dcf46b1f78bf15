"""User-defined schemes: TOML scheme files (op-stream rewrites of named paths), their validation with
file/line errors, their embedding in traces, and Python schemes from modules and entry points."""

from __future__ import annotations

import argparse
import json
import re
import textwrap

import pytest
from fidelity import MDEV, lock_steps, op_lock_steps, run_op

from apactors.api import explore, render_events
from apactors.engine.controlled import run_schedule
from apactors.engine.strategies import ReplayStrategy
from apactors.model.registry_ext import (SchemeModuleError, load_entry_point_schemes, load_scheme_module,
                                         resolve_scheme)
from apactors.model.scheme_file import (SchemeDefinitionError, SchemeFileError, load_scheme_file, scheme_from_dict,
                                        scheme_from_header, scheme_from_toml, scheme_to_dict)
from apactors.model.schemes import get_scheme, unregister
from apactors.report.scheme_show import add_scheme_parser, describe_scheme
from apactors.scenario import scenario_from_dict
from apactors.trace.reader import read_trace

LATEST = get_scheme("latest")

REORDER = """\
# What if assign_adapter_store took ap_attr_mutex after guests_lock?
id = "attr-after-guests"
base = "latest"
description = "latest, but assign_adapter_store takes ap_attr_mutex after guests_lock"

[[change]]
path = "assign_adapter_store"
move = "+ap_attr_mutex"
to = "after +&matrix_dev->guests_lock"
"""

SC = {
    "host": {"adapters": [3, 4], "domains": [5]},
    "guest": [{"name": "g0"}],
    "mdev": [{"name": "m0", "adapters": [3], "domains": [5], "open_by": "g0"}],
    "actor": [{"kind": "mdev", "mdev": "m0", "guest": "g0"}, {"kind": "vcpu", "guest": "g0", "vcpu": 0}],
}
NO_GUEST = {"host": {"adapters": [3, 4], "domains": [5]}, "guest": [{"name": "g0"}],
            "mdev": [{"name": "m0", "adapters": [3], "domains": [5]}]}


def scheme(body: str, sid: str = "t", base: str = "latest", source: str = "t.toml"):
    return scheme_from_toml(f'id = "{sid}"\nbase = "{base}"\n' + textwrap.dedent(body), source)


def error_of(body: str, base: str = "latest") -> SchemeFileError:
    with pytest.raises(SchemeFileError) as ei:
        scheme(body, base=base)
    return ei.value


# ----------------------------------------------------------------------------------------------- rewrites


def test_reorder_takes_ap_attr_mutex_after_guests_lock(tmp_path):
    f = tmp_path / "reorder.toml"
    f.write_text(REORDER)
    cls = load_scheme_file(f)
    assert cls.id == "attr-after-guests" and cls.base == "latest" and issubclass(cls, LATEST)
    assert cls.description.startswith("latest, but")
    assert lock_steps(cls, SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True) == [
        "+guests_lock", "+ap_attr_mutex", "+kvm->lock", "+mdevs_lock", "+ap_queues_lock", "-ap_queues_lock",
        "-mdevs_lock", "-kvm->lock", "-guests_lock", "-ap_attr_mutex"]
    # the rest of the path keeps its semantics; other paths are untouched
    r = run_op(cls, SC, "admin", "assign-adapter m0 4")
    assert r.result == 2 and r.world.vms["g0"].crycb.apm.ids() == (3, 4)
    assert lock_steps(cls, SC, "assign_domain_store", MDEV("m0"), "5\n", short=True)[:2] == [
        "+ap_attr_mutex", "+guests_lock"]
    # the moved acquire is attributed to where it now happens
    acq = [(st, o) for st, o, _ in r.record if o.code == "acquire" and o.lock.cls == "ap_attr_mutex"]
    assert acq[0][0][-1] == "get_update_locks_for_mdev"


def test_reorder_is_visible_in_the_trace_and_the_trace_replays(tmp_path):
    cls = scheme_from_toml(REORDER, "reorder.toml")
    sc = scenario_from_dict(dict(SC, name="assign", description="x", actor=[
        {"kind": "admin", "ops": ["assign-adapter m0 4"]}, {"kind": "vcpu", "guest": "g0", "vcpu": 0,
                                                            "ops": ["pqap-aqic-enable 03.0005"]}]))
    res = explore(cls, sc, schedules=3, seed=1, keep="all", out=tmp_path)
    assert res.errors == [] and res.scheme == "attr-after-guests" and len(res.traces) == 3
    base = explore("latest", sc, schedules=1, seed=1, keep="all", out=tmp_path / "base")
    for path, want in ((res.traces[0], ["&matrix_dev->guests_lock", "ap_attr_mutex"]),
                       (base.traces[0], ["ap_attr_mutex", "&matrix_dev->guests_lock"])):
        tr = read_trace(path)
        got = [e["lock"] for e in tr.steps if e.get("op") == "acquire" and e["actor"] == "admin"
               and "assign_adapter_store" in e["stack"]]
        assert got[:2] == want, (path, got)
    # the trace is self-contained once the header carries scheme_to_dict(); rebuilt, it replays
    tr = read_trace(res.traces[0])
    d = json.loads(json.dumps(scheme_to_dict(cls)))
    assert d["kind"] == "scheme-file" and d["text"] == REORDER and d["id"] == "attr-after-guests"
    rebuilt = scheme_from_header({**tr.header, "scheme_def": d})
    assert rebuilt.id == cls.id and rebuilt is not cls
    raw: list = []
    run_schedule(rebuilt, sc, ReplayStrategy(tr.schedule()), seed=int(tr.header["schedule_seed"]), record=True,
                 events=raw)
    assert render_events(raw) == tr.steps


def test_drop_add_mode_wait():
    assert lock_steps(scheme('[[change]]\npath = "assign_adapter_store"\ndrop = "ap_attr_mutex"\n'), SC,
                      "assign_adapter_store", MDEV("m0"), "4\n", short=True) == [
        "+guests_lock", "+kvm->lock", "+mdevs_lock", "+ap_queues_lock", "-ap_queues_lock", "-mdevs_lock",
        "-kvm->lock", "-guests_lock"]
    add = scheme("""
        [[change]]
        path = "unassign_adapter_store"
        add = "ap_attr_mutex"
        acquire = "after +mdevs_lock"
        release = "end"
        """)
    assert op_lock_steps(add, SC, "admin", "unassign-adapter m0 3", short=True) == [
        "+guests_lock", "+kvm->lock", "+mdevs_lock", "+ap_attr_mutex", "+q->reset_work", "-q->reset_work",
        "-mdevs_lock", "-kvm->lock", "-guests_lock", "-ap_attr_mutex"]
    rw = scheme("""
        [[lock]]
        class = "&matrix_dev->mdevs_lock"
        kind = "rwsem"

        [[change]]
        path = "vfio_ap_handle_pqap"
        lock = "mdevs_lock"
        mode = "r"
        """)
    r = run_op(rw, SC, "vcpu:g0/0", "pqap-aqic-enable 03.0005")
    assert r.lock_steps(short=True)[3:5] == ["+mdevs_lock(r)", "-mdevs_lock(r)"]
    assert r.world.mdevs_lock.kind == "rwsem" and r.result.rc == 0
    assert op_lock_steps(rw, SC, "admin", "assign-control-domain m0 5", short=True)[2] == "+mdevs_lock(w)"
    sleep = scheme("""
        [[change]]
        path = "vfio_ap_handle_pqap"
        wait = "sleep"
        ms = 40
        at = "after +mdevs_lock"
        unlock = ["mdevs_lock"]
        """)
    r = run_op(sleep, SC, "vcpu:g0/0", "pqap-aqic-enable 03.0005")
    assert r.lock_steps(short=True)[3:7] == ["+mdevs_lock", "-mdevs_lock", "+mdevs_lock", "-mdevs_lock"]
    assert [o.ms for _, o, _ in r.record if o.code == "sleep"][:1] == [40]
    not_held = scheme('[[change]]\npath = "vfio_ap_handle_pqap"\nwait = "sleep"\nat = "start"\n'
                      'unlock = ["mdevs_lock"]\n')
    with pytest.raises(SchemeFileError, match=r"^t\.toml:3: .*releases &matrix_dev->mdevs_lock, which the task "
                                              r"does not hold at start"):
        run_op(not_held, SC, "vcpu:g0/0", "pqap-aqic-enable 03.0005")
    lockwait = scheme('[[change]]\npath = "vfio_ap_handle_pqap"\nwait = "guests_lock"\nat = "before -mdevs_lock"\n')
    assert op_lock_steps(lockwait, SC, "vcpu:g0/0", "pqap-aqic-disable 03.0005", short=True)[3:7] == [
        "+mdevs_lock", "+guests_lock", "-guests_lock", "-mdevs_lock"]


def test_move_earlier_and_move_a_release():
    early = scheme('[[change]]\npath = "assign_adapter_store"\nmove = "+guests_lock"\nto = "before +ap_attr_mutex"\n')
    assert lock_steps(early, SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True)[:3] == [
        "+guests_lock", "+ap_attr_mutex", "+kvm->lock"]
    late_release = scheme(
        '[[change]]\npath = "assign_adapter_store"\nmove = "-ap_attr_mutex"\nto = "before -guests_lock"\n')
    assert lock_steps(late_release, SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True)[-3:] == [
        "-kvm->lock", "-ap_attr_mutex", "-guests_lock"]
    to_start = scheme('[[change]]\npath = "get_update_locks_for_mdev"\nmove = "+mdevs_lock"\nto = "start"\n')
    steps = lock_steps(to_start, SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True)
    assert steps[:4] == ["+ap_attr_mutex", "+mdevs_lock", "+guests_lock", "+kvm->lock"]
    # taken at the start, but some runs of _assign never take ap_queues_lock (no queue to look up):
    # the path would return holding it, which the dynamic check reports (here in the setup's stores)
    bad = scheme('[[change]]\npath = "_assign"\nmove = "+ap_queues_lock"\nto = "start"\n')
    with pytest.raises(SchemeFileError, match=r"^t\.toml:3: change\[0\]: path _assign .*returns holding ap_queues_lock"):
        lock_steps(bad, SC, "assign_adapter_store", MDEV("m0"), "4\n")


def test_a_point_that_does_not_come_falls_back_with_a_note():
    cls = scheme('[[change]]\npath = "assign_adapter_store"\nmove = "+ap_attr_mutex"\nto = "after +kvm->lock"\n')
    assert lock_steps(cls, SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True)[:4] == [
        "+guests_lock", "+kvm->lock", "+ap_attr_mutex", "+mdevs_lock"]
    r = run_op(cls, NO_GUEST, "admin", "assign-adapter m0 4")  # no VM: kvm->lock is never taken
    assert r.lock_steps(short=True)[-2:] == ["+ap_attr_mutex", "-ap_attr_mutex"]
    notes = [o.text for _, o, _ in r.record if o.code == "note" and o.kind == "warn"]
    assert notes and notes[0].startswith("t.toml:3:") and "did not happen" in notes[0], "file:line of the change"


def test_a_rewritten_path_that_ends_holding_a_lock_raises_naming_the_file():
    # statically fine (the release point comes after the acquire point), but without a VM the release
    # point never comes
    cls = scheme("""
        [[change]]
        path = "assign_adapter_store"
        add = "&matrix_dev->lock"
        acquire = "after +mdevs_lock"
        release = "after -kvm->lock"
        """)
    with_vm = {**SC, "mdev": [{"name": "m0", "adapters": [], "domains": [5], "open_by": "g0"}]}
    without_vm = {**NO_GUEST, "mdev": [{"name": "m0", "adapters": [], "domains": [5]}]}
    assert "+L" in op_lock_steps(cls, with_vm, "admin", "assign-adapter m0 4", short=True)
    with pytest.raises(SchemeFileError) as ei:
        run_op(cls, without_vm, "admin", "assign-adapter m0 4")
    msg = str(ei.value)
    assert re.match(r"t\.toml:4: change\[0\]: path assign_adapter_store .* returns holding &matrix_dev->lock", msg), msg
    # inside explore, the error is a schedule error naming the file (the CLI exits with status 2)
    sc = scenario_from_dict(dict(without_vm, name="x", description="x",
                                 actor=[{"kind": "admin", "ops": ["assign-adapter m0 4"]}]))
    res = explore(cls, sc, schedules=1, keep="none")
    assert res.errors and "t.toml:4" in res.errors[0]


def test_the_documented_example_is_a_valid_scheme_file():
    import apactors.model.scheme_file as sf

    doc = sf.__doc__
    block = doc[doc.index("The format"):doc.index("Lock classes are named")]
    text = textwrap.dedent("\n".join(ln for ln in block.splitlines()[1:]))
    cls = scheme_from_toml(text, "README example")
    assert cls.id == "attr-after-guests" and len(sf.scheme_file_spec(cls).changes) == 5
    assert op_lock_steps(cls, SC, "mdev:m0", "reset", short=True)[:3] == ["+mdevs_lock(w)", "-mdevs_lock(w)",
                                                                          "+mdevs_lock(w)"]
    assert op_lock_steps(cls, SC, "vcpu:g0/0", "pqap-aqic-disable 03.0005", short=True)[3] == "+mdevs_lock(r)"


# ----------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("body, line, pattern", [
    # TOML syntax error: line and column
    ('[[change]\npath = "x"\n', 3, r"t\.toml:3:\d+: TOML syntax error"),
    # unknown path
    ('\n[[change]]\npath = "assign_adapter_stor"\ndrop = "ap_attr_mutex"\n', 5,
     r"unknown path 'assign_adapter_stor' for scheme latest; did you mean: assign_adapter_store"),
    # unknown lock (for that scheme: latest has ap_attr_mutex, not ap_perms_mutex)
    ('[[change]]\npath = "assign_adapter_store"\ndrop = "ap_perms_mutex"\n', 5,
     r"change\[0\]\.drop: unknown lock class 'ap_perms_mutex' for scheme latest"),
    # a lock of the scheme that the path never takes
    ('[[change]]\npath = "assign_adapter_store"\nmove = "+&vcpu->mutex"\nto = "start"\n', 5,
     r"path assign_adapter_store never takes &vcpu->mutex"),
    # release without an acquire
    ('[[change]]\npath = "assign_adapter_store"\nadd = "L"\nrelease = "end"\n', 6,
     r"a release of &matrix_dev->lock without an acquire"),
    ('[[change]]\npath = "assign_adapter_store"\nmove = "-ap_attr_mutex"\nto = "start"\n', 6,
     r"released before it is taken: a release without an acquire"),
    ('[[change]]\npath = "get_update_locks_for_mdev"\ndrop = "guests_lock"\n', 5,
     r"does not release it \(its caller does\)"),
    # a path that can end holding a lock
    ('[[change]]\npath = "assign_adapter_store"\nmove = "+ap_attr_mutex"\nto = "after -ap_attr_mutex"\n', 6,
     r"taken after its release: path assign_adapter_store would end holding ap_attr_mutex"),
    ('[[change]]\npath = "assign_adapter_store"\nadd = "L"\nacquire = "start"\n', 6,
     r"without a release: path assign_adapter_store would end holding it"),
    ('[[change]]\npath = "assign_adapter_store"\nadd = "L"\nacquire = "end"\nrelease = "start"\n', 7,
     r"does not come after the acquire point"),
    # other checks
    ('[[change]]\npath = "assign_adapter_store"\n', 3, r"exactly one of: move, drop, add, lock \(with mode\), wait"),
    ('[[change]]\npath = "assign_adapter_store"\ndrop = "ap_attr_mutex"\nto = "start"\n', 6, r"unknown key 'to'"),
    ('[[change]]\npath = "vfio_ap_handle_pqap"\nlock = "mdevs_lock"\nmode = "r"\n', 6,
     r"mode 'r' needs a reader/writer lock"),
    ('[[change]]\npath = "assign_adapter_store"\nmove = "+kvm->lock"\nto = "start"\n', 6,
     r"cannot move the acquire of &kvm->lock earlier"),
    ('[[change]]\npath = "assign_adapter_store"\nmove = "+guests_lock"\nto = "sideways"\n', 6, r"invalid point"),
    ('[[change]]\npath = "vfio_ap_mdev_reset_queue"\nwait = "kvm->lock"\nat = "start"\n', 5,
     r"a wait names a global lock"),
    ('[[lock]]\nclass = "guests_lock"\nkind = "spinning"\n', 5, r"unknown lock kind 'spinning'"),
    ('[[lock]]\nclass = "&dev->mutex"\nkind = "rwsem"\n', 4, r"cannot be changed"),
    ('colour = "blue"\n', 3, r"unknown key 'colour' in the scheme file"),
])
def test_malformed_scheme_files_name_file_and_line(body, line, pattern):
    e = error_of(body)
    assert e.source == "t.toml" and e.line == line, str(e)
    assert str(e).startswith(f"t.toml:{line}")
    assert re.search(pattern, str(e)), str(e)


def test_top_level_errors():
    with pytest.raises(SchemeFileError, match=r"^t\.toml:2: base: unknown base scheme 'v9\.9'"):
        scheme_from_toml('id = "x"\nbase = "v9.9"\n', "t.toml")
    with pytest.raises(SchemeFileError, match=r"^t\.toml:1: id: scheme id 'latest' is already taken"):
        scheme_from_toml('id = "latest"\nbase = "latest"\n', "t.toml")
    with pytest.raises(SchemeFileError, match=r"^t\.toml:1: id: missing required key 'id'"):
        scheme_from_toml('base = "latest"\n', "t.toml")
    with pytest.raises(SchemeFileError, match=r"^t\.toml:1: id: invalid scheme id"):
        scheme_from_toml('id = "a b"\nbase = "latest"\n', "t.toml")
    with pytest.raises(SchemeFileError, match=r"^/no/such\.toml: cannot read"):
        load_scheme_file("/no/such.toml")


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    p = argparse.ArgumentParser(prog="apactors")
    add_scheme_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_show_of_a_scheme_file_and_of_a_bad_one(tmp_path, capsys):
    f = tmp_path / "reorder.toml"
    f.write_text(REORDER)
    rc, out, err = cli(["scheme", "show", "--scheme-file", str(f), "--path", "assign_adapter_store"], capsys)
    assert rc == 0, err
    assert "scheme attr-after-guests  (base latest" in out and "overrides relative to latest (1): assign_adapter_store" in out
    assert f"rewritten ({f}:6): move +ap_attr_mutex to after +guests_lock" in out
    d = describe_scheme(load_scheme_file(f))
    assert d["source"] == {"kind": "scheme-file", "file": str(f)} and d["overrides"] == ["assign_adapter_store"]
    bad = tmp_path / "bad.toml"
    bad.write_text(REORDER.replace('to = "after +&matrix_dev->guests_lock"', 'to = "after +&matrix_dev->lock"'))
    rc, out, err = cli(["scheme", "show", "--scheme-file", str(bad)], capsys)
    assert rc == 2 and err.startswith(f"apactors: error: {bad}:9: change[0].to: path assign_adapter_store has no "
                                      "acquire of &matrix_dev->lock") and "Traceback" not in err


def test_main_cli_run_with_a_scheme_file(tmp_path, capsys):
    from apactors import cli as main_cli

    parser = main_cli.build_parser()
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]  # noqa: SLF001
    if not any("--scheme-file" in a.option_strings for a in run._actions):  # noqa: SLF001
        pytest.skip("apactors.cli does not wire --scheme-file yet")
    f = tmp_path / "reorder.toml"
    f.write_text(REORDER)
    rc = main_cli.main(["run", "--scheme-file", str(f), "--scenario", "masks-vs-assign", "--schedules", "3",
                        "--keep-traces", "none", "--json"])
    assert rc in (0, 1)
    assert json.loads(capsys.readouterr().out)["scheme"] == "attr-after-guests"
    bad = tmp_path / "bad.toml"
    bad.write_text("[[change]\n")
    assert main_cli.main(["run", "--scheme-file", str(bad), "--scenario", "smoke", "--schedules", "1"]) == 2
    assert f"{bad}:1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- trace embedding


def test_scheme_dicts():
    assert scheme_to_dict(LATEST) is None, "a built-in scheme is named by its id"
    cls = scheme_from_toml(REORDER, "reorder.toml")
    d = scheme_to_dict(cls)
    again = scheme_from_dict(d)
    assert again.id == cls.id and scheme_to_dict(again)["text"] == REORDER
    assert scheme_from_header({"scheme": "latest"}) is LATEST
    with pytest.raises(SchemeDefinitionError, match="unknown scheme definition kind"):
        scheme_from_dict({"kind": "nope"})
    with pytest.raises(SchemeFileError, match=r"reorder\.toml \(as embedded in the trace header\):\d+"):
        scheme_from_dict(dict(d, text=d["text"].replace("+ap_attr_mutex", "+ap_perms_mutex")))


def test_a_scheme_file_based_on_a_registered_scheme_file(tmp_path):
    first = scheme_from_toml(REORDER, "reorder.toml", register=True)
    try:
        second = scheme_from_toml('id = "t2"\nbase = "attr-after-guests"\n[[change]]\npath = "assign_domain_store"\n'
                                  'drop = "ap_attr_mutex"\n', "t2.toml")
        assert second.base == "attr-after-guests" and issubclass(second, first)
        d = scheme_to_dict(second)
        assert d["base"]["id"] == "attr-after-guests"
        unregister("attr-after-guests")
        rebuilt = scheme_from_dict(json.loads(json.dumps(d)))
        assert lock_steps(rebuilt, SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True)[:2] == [
            "+guests_lock", "+ap_attr_mutex"]
        assert "ap_attr_mutex" not in " ".join(lock_steps(rebuilt, SC, "assign_domain_store", MDEV("m0"), "5\n"))
    finally:
        unregister("attr-after-guests")


# ----------------------------------------------------------------------------------------------- python schemes

MODULE = """\
from apactors.model.ops import Acquire, Release
from apactors.model.schemes import get_scheme, path, register

@register
class {cls}(get_scheme("latest")):
    id = "{sid}"
    base = "latest"
    description = "latest whose reset ioctl takes guests_lock too"

    @path("vfio_ap_mdev_ioctl")
    def reset_ioctl(self, k, mdev):
        yield Acquire(self.w.guests_lock)
        rc = yield from get_scheme("latest").reset_ioctl(self, k, mdev)
        yield Release(self.w.guests_lock)
        return rc
"""


def test_scheme_module_from_a_file_and_by_name(tmp_path, monkeypatch):
    f = tmp_path / "my_schemes_a.py"
    f.write_text(MODULE.format(cls="A", sid="py-a"))
    try:
        classes = load_scheme_module(str(f))
        assert [c.id for c in classes] == ["py-a"]
        assert get_scheme("py-a") is classes[0]
        assert op_lock_steps("py-a", SC, "mdev:m0", "reset", short=True)[:2] == ["+guests_lock", "+mdevs_lock"]
        d = scheme_to_dict(classes[0])
        assert d["kind"] == "python" and d["id"] == "py-a" and d["file"] == str(f.resolve())
        unregister("py-a")
        assert scheme_from_dict(d).id == "py-a", "replay imports the module's file again"
        assert describe_scheme(classes[0])["overrides"] == ["reset_ioctl"]
        (tmp_path / "my_schemes_b.py").write_text(MODULE.format(cls="B", sid="py-b"))
        monkeypatch.syspath_prepend(str(tmp_path))
        assert [c.id for c in load_scheme_module("my_schemes_b")] == ["py-b"]
        # a scheme file may derive from a Python scheme; resolve_scheme imports the module first
        sf = tmp_path / "derived.toml"
        sf.write_text('id = "derived"\nbase = "py-b"\n[[change]]\npath = "reset_ioctl"\ndrop = "guests_lock"\n')
        cls = resolve_scheme(None, str(sf), ["my_schemes_b"])
        assert op_lock_steps(cls, SC, "mdev:m0", "reset", short=True)[0] == "+mdevs_lock"
        assert scheme_to_dict(cls)["base"] == {"kind": "python", "id": "py-b", "module": "my_schemes_b",
                                               "qualname": "B"}
    finally:
        unregister("py-a")
        unregister("py-b")


def test_scheme_module_errors(tmp_path):
    with pytest.raises(SchemeModuleError, match="cannot import scheme module: ModuleNotFoundError"):
        load_scheme_module("no_such_module_xyz")
    empty = tmp_path / "empty_mod.py"
    empty.write_text("X = 1\n")
    with pytest.raises(SchemeModuleError, match="registers no scheme"):
        load_scheme_module(str(empty))
    broken = tmp_path / "broken_mod.py"
    broken.write_text("def (:\n")
    with pytest.raises(SchemeModuleError, match="SyntaxError"):
        load_scheme_module(str(broken))
    with pytest.raises(SchemeDefinitionError, match="no scheme given"):
        resolve_scheme(None, None, ())


def test_entry_points(tmp_path, monkeypatch):
    import apactors.model.registry_ext as rx

    f = tmp_path / "ep_schemes.py"
    f.write_text(MODULE.format(cls="C", sid="py-ep"))
    monkeypatch.syspath_prepend(str(tmp_path))

    class EP:
        def __init__(self, name: str, value: str, obj=None, exc=None) -> None:
            self.name, self.value, self._obj, self._exc = name, value, obj, exc

        def load(self):
            if self._exc:
                raise self._exc
            if self._obj is not None:
                return self._obj
            import importlib

            return importlib.import_module(self.value)

    monkeypatch.setattr(rx, "entry_points", lambda group: [EP("good", "ep_schemes"),
                                                           EP("bad", "x.y", exc=ImportError("nope"))]
                        if group == rx.ENTRY_POINT_GROUP else [])
    try:
        problems = load_entry_point_schemes(force=True)
        assert problems == ["entry point bad = x.y: ImportError: nope"]
        assert get_scheme("py-ep").description.startswith("latest whose reset")
    finally:
        unregister("py-ep")
