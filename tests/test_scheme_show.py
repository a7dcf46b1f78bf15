"""`apactors scheme show`: every path of a scheme in the doc's step notation, read from the code that runs;
and the fidelity harness (tests/fidelity.py) that the golden tables of the schemes use."""

from __future__ import annotations

import argparse
import json

import pytest
from fidelity import MDEV, QDEV, lock_steps, op_lock_steps, run_op, run_path

from apactors.model import scheme_ast as sa
from apactors.model.ops import Acquire, Release
from apactors.model.schemes import get_scheme
from apactors.model.schemes.base import path
from apactors.report.scheme_show import add_scheme_parser, describe_scheme, render_text

LATEST = get_scheme("latest")


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """The `scheme` subcommand through its own parser (as apactors.cli wires it)."""
    p = argparse.ArgumentParser(prog="apactors")
    add_scheme_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def steps_of(d: dict, name: str) -> list[str]:
    return next(p for p in d["paths"] if p["name"] == name)["steps"]


# ----------------------------------------------------------------------------------------------- show


def test_show_latest_lists_every_path_with_its_kernel_function():
    d = describe_scheme(LATEST)
    shown = {p["name"]: p for p in d["paths"]}
    paths = sa.path_attrs(LATEST)
    assert paths and set(paths) <= set(shown), "every @path method is shown"
    for attr in paths:
        assert shown[attr]["kernel_function"] == getattr(LATEST, attr).kernel_path
        assert shown[attr]["role"] == "path"
    assert shown["_assign"]["role"] == "helper", "helper generators reached from paths are shown too"
    assert shown["op_store"]["role"] == "operation"
    text = render_text(d)
    for attr in paths:
        assert f"\n{attr}" in text
    assert d["counts"]["paths"] == len(paths)


def test_assign_adapter_store_takes_ap_attr_mutex_before_the_update_locks():
    steps = steps_of(describe_scheme(LATEST, ["assign_adapter_store"]), "assign_adapter_store")
    assert steps[0] == "+ap_attr_mutex"
    assert steps.index("+ap_attr_mutex") < steps.index("call get_update_locks_for_mdev(mdev)")
    assert steps[-2:] == ["-ap_attr_mutex", "→ rc"]


def test_notation_of_the_doc():
    d = describe_scheme(LATEST, ["get_update_locks_for_kvm", "kvm_call_hook", "scan_work", "vcpu_run_pqap",
                                 "unset_kvm", "flush_work", "apq_reset_check", "set_kvm", "irq_enable"])
    assert steps_of(d, "get_update_locks_for_kvm") == [
        "+guests_lock", "if kvm is not None:", "  +kvm->lock", "  +pqap_hook_rwsem(w)", "+mdevs_lock"]
    hook = steps_of(d, "kvm_call_hook")
    assert hook[0] == "+pqap_hook_rwsem(r)" and "R: h := kvm->arch.crypto.pqap_hook" in hook
    assert steps_of(d, "scan_work")[:3] == ["got := try+ap_scan_bus_mutex", "if not got:", "  → 0"]
    run = steps_of(d, "vcpu_run_pqap")
    assert run[1:3] == ["+vcpu->mutex", "+kvm->srcu(r)"]
    assert any(s.startswith("spin: SieAllowed(vcpu)") for s in run)
    unset = steps_of(d, "unset_kvm")
    assert unset[0] == "R: kvm := matrix_mdev->kvm" and "call get_update_locks_for_kvm(kvm)" in unset
    assert unset.index("call release_update_locks_for_kvm(kvm)") < unset.index("call kvm_put_kvm(kvm)")
    flush = steps_of(d, "flush_work")
    assert flush[0] == "+q->reset_work" and flush[1] == "-q->reset_work" and flush[2].startswith("block: WorkDone")
    check = steps_of(d, "apq_reset_check")
    assert "  sleep(20ms)" in check and "  st := TAPQ(q.apqn)" in check
    set_kvm = steps_of(d, "set_kvm")
    assert "→ -EPERM" in [x.strip() for x in set_kvm]
    assert "W: kvm->arch.crypto.pqap_hook := mdev" in [x.strip() for x in set_kvm]
    irq = steps_of(d, "irq_enable")
    assert "W: q->saved_isc := isc" in [x.strip() for x in irq] and irq[-1] == "→ st"


def test_an_override_shows_the_overriding_code_and_is_listed():
    from apactors.model.ops import Acquire as Acq

    class Toy(LATEST):  # not registered: describe_scheme takes classes
        id = "toy-show"
        base = "latest"
        description = "toy"

        @path("get_update_locks_for_kvm")
        def get_update_locks_for_kvm(self, k, kvm):
            yield Acq(self.w.mdevs_lock)

    d = describe_scheme(Toy)
    assert d["overrides"] == ["get_update_locks_for_kvm"]
    p = next(p for p in d["paths"] if p["name"] == "get_update_locks_for_kvm")
    assert p["overridden"] and p["steps"] == ["+mdevs_lock"] and p["defined_in"].endswith("Toy.get_update_locks_for_kvm")
    assert "[overrides latest]" in render_text(d)


def test_cli_scheme_show(capsys):
    rc, out, err = cli(["scheme", "show", "latest", "--path", "assign_adapter_store"], capsys)
    assert rc == 0 and err == ""
    assert "scheme latest" in out and "    +ap_attr_mutex\n    call get_update_locks_for_mdev(mdev)" in out
    rc, out, _ = cli(["scheme", "show", "latest", "--json", "--path", "vfio_ap_mdev_probe_queue"], capsys)
    doc = json.loads(out)
    assert rc == 0 and [p["name"] for p in doc["paths"]] == ["queue_probe"], "a kernel function name selects too"
    assert doc["id"] == "latest" and doc["kernel"] and "notes" in doc and doc["source"]["kind"] == "built-in"
    rc, out, err = cli(["scheme", "show", "latest", "--path", "assign_adaptr_store"], capsys)
    assert rc == 2 and "assign_adapter_store" in err and "Traceback" not in err
    rc, out, err = cli(["scheme", "show", "no-such-scheme"], capsys)
    assert rc == 2 and "unknown scheme" in err


def test_cli_scheme_show_of_every_registered_scheme(capsys):
    from apactors.model.schemes import all_schemes

    for cls in all_schemes():
        rc, out, err = cli(["scheme", "show", cls.id, "--no-helpers"], capsys)
        assert rc == 0, (cls.id, err)
        assert f"scheme {cls.id}" in out


def test_main_cli_has_the_scheme_command(capsys):
    from apactors import cli as main_cli

    parser = main_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    if "scheme" not in sub.choices:
        pytest.skip("apactors.cli does not wire `scheme` yet")
    assert main_cli.main(["scheme", "show", "latest", "--path", "assign_adapter_store"]) == 0
    assert "+ap_attr_mutex" in capsys.readouterr().out


def test_lock_names_of_every_world_lock_have_a_short_name():
    from fidelity import build

    w, _ = build("latest", {"guest": [{"name": "g0"}], "mdev": [{"name": "m0"}]})
    for lk in w.locks():
        assert sa.short_name(lk.cls) != lk.cls or lk.cls in ("ap_perms_mutex", "ap_attr_mutex", "ap_scan_bus_mutex",
                                                            "ap_queues_lock"), lk.cls
        assert sa.class_of_name(sa.short_name(lk.cls)) == lk.cls


# ----------------------------------------------------------------------------------------------- harness

SC = {
    "host": {"adapters": [3, 4], "domains": [5]},
    "guest": [{"name": "g0"}],
    "mdev": [{"name": "m0", "adapters": [3], "domains": [5], "open_by": "g0"}],
    "actor": [{"kind": "mdev", "mdev": "m0", "guest": "g0"}, {"kind": "vcpu", "guest": "g0", "vcpu": 0}],
}


def test_harness_lock_steps_of_a_path_in_both_notations():
    assert lock_steps("latest", SC, "assign_adapter_store", MDEV("m0"), "4\n", short=True) == [
        "+ap_attr_mutex", "+guests_lock", "+kvm->lock", "+mdevs_lock", "+ap_queues_lock", "-ap_queues_lock",
        "-mdevs_lock", "-kvm->lock", "-guests_lock", "-ap_attr_mutex"]
    assert lock_steps(LATEST, SC, "assign_adapter_store", MDEV("m0"), "4\n") == [
        "+ap_attr_mutex", "+&matrix_dev->guests_lock", "+&kvm->lock", "+&matrix_dev->mdevs_lock",
        "+ap_queues_lock", "-ap_queues_lock", "-&matrix_dev->mdevs_lock", "-&kvm->lock",
        "-&matrix_dev->guests_lock", "-ap_attr_mutex"]


def test_harness_operations_and_modes():
    assert op_lock_steps("latest", SC, "vcpu:g0/0", "pqap-aqic-enable 03.0005 isc=3", short=True) == [
        "+vcpu->mutex", "+kvm->srcu(r)", "+pqap_hook_rwsem(r)", "+mdevs_lock", "-mdevs_lock",
        "-pqap_hook_rwsem(r)", "-kvm->srcu(r)", "-vcpu->mutex"]
    assert op_lock_steps("latest", SC, "vcpu:g0/0", "pqap-aqic-enable 03.0005")[:3] == [
        "+&vcpu->mutex", "+&kvm->srcu(R)", "+&kvm->arch.crypto.pqap_hook_rwsem(r)"]
    assert op_lock_steps("latest", SC, "mdev:m0", "close", short=True) == [
        "+group_lock", "+dev_set->lock", "+guests_lock", "+kvm->lock", "+pqap_hook_rwsem(w)", "+mdevs_lock",
        "+q->reset_work", "-q->reset_work", "-mdevs_lock", "-pqap_hook_rwsem(w)", "-kvm->lock", "-guests_lock",
        "-dev_set->lock", "-group_lock"]
    assert op_lock_steps("latest", SC, "bus", "scan", short=True) == ["try+ap_scan_bus_mutex", "-ap_scan_bus_mutex"]
    assert op_lock_steps("latest", SC, "admin", "unbind 04.0005", short=True) == [
        "+device_lock(qdev)", "+guests_lock", "+mdevs_lock", "+q->reset_work", "-q->reset_work", "-mdevs_lock",
        "-guests_lock", "+ap_queues_lock", "-ap_queues_lock", "-device_lock(qdev)"]


def test_harness_run_gives_the_result_the_record_and_the_world():
    r = run_op("latest", SC, "admin", "assign-adapter m0 4")
    assert r.result == 2
    assert r.steps_in("get_update_locks_for_mdev", short=True) == ["+guests_lock", "+kvm->lock", "+mdevs_lock"]
    assert r.world.vms["g0"].crycb.apm.ids() == (3, 4)
    r = run_path("latest", SC, "queue_remove", QDEV(0x0405))
    assert r.world.bus.devices[0x0405].drvdata is None
    assert all(isinstance(o, (Acquire, Release)) for _, o, _ in r.record if o.code in ("acquire", "release"))
    with pytest.raises(KeyError, match="no actor"):
        run_op("latest", SC, "vcpu:g9/0", "pqap-aqic-disable 03.0005")
