"""The nine invariants on `latest` (the control, and scripted schedules that reach its real defects)
and on variants of `latest` broken on purpose; crash reports with their causes on toy schemes."""

from __future__ import annotations

import pytest

from apactors.api import explore
from apactors.check import CHECKERS
from apactors.check.invariants import INVARIANTS, InvariantChecker, LifetimeChecker
from apactors.engine.controlled import run_schedule
from apactors.model.schemes import get_scheme
from apactors.scenario import load_builtin, scenario_from_dict
from toy_race_schemes import PAIR, Script, ToyNullKvm, ToyUseAfterFree, latest_variants, two_ops

LATEST = get_scheme("latest")
V = latest_variants()
M0 = {"name": "m0", "adapters": [3, 4], "domains": [5], "control_domains": [5], "open_by": "g0"}
HOLDER = {"kind": "mdev", "mdev": "m0", "guest": "g0", "ops": []}


@pytest.fixture(autouse=True)
def invariant_checker(monkeypatch):
    monkeypatch.delitem(CHECKERS, "shared-state", raising=False)  # the test installs its own part
    monkeypatch.setitem(CHECKERS, "invariants", InvariantChecker)


def scen(actors, mdevs=(M0,), **host):
    h = {"adapters": [3, 4], "domains": [5], "control_domains": [5]} | host
    if not any(a["kind"] == "mdev" for a in actors):
        actors = actors + [HOLDER]
    return scenario_from_dict({"name": "t", "description": "t", "host": h, "guest": [{"name": "g0", "vcpus": 1}],
                               "mdev": list(mdevs), "actor": actors}, "tests/test_invariants.py")


def broken(scheme, scenario, schedules=8, seed=1):
    r = explore(scheme, scenario, schedules=schedules, seed=seed, keep="none")
    assert not r.errors, r.errors
    return {f["invariant"]: f for f in r.of_kind("invariant")}


def scripted(scheme, scenario, plan):
    sr = run_schedule(scheme, scenario, Script(plan), seed=0)
    assert sr.outcome == "ok", sr.outcome
    return [f for f in sr.findings if f.kind == "invariant"]


def test_the_names_are_the_issues():
    assert INVARIANTS == ("crycb-matches-shadow", "guest-apqn-bound", "no-host-guest-sharing", "no-mdev-sharing",
                          "hook-owner", "hook-before-apcb", "irq-only-for-guest-queues",
                          "no-leaked-irq-resources", "reset-on-removal")


@pytest.mark.parametrize("name", ["smoke", "pqap-vs-unplug", "masks-vs-assign", "remove-vs-close", "unbind-bind",
                                  "reset-vs-unplug", "pv-vs-open", "kvm-vfio-release"])
def test_latest_keeps_them_at_rest_while_updates_break_them_in_between(name):
    # The stores change the matrix before the CRYCB and so on: only the at-rest state counts.
    assert broken(LATEST, load_builtin(name), schedules=20) == {}


def test_crycb_not_updated():
    found = broken(V["test-latest-no-apcb-update"], scen([{"kind": "admin", "ops": ["unassign-adapter m0 4"]}]))
    f = found["crycb-matches-shadow"]
    assert f["vm"] == "g0" and f["mdev"] == "m0" and f["when"] == "at rest"
    assert "differs from m0's shadow_apcb" in f["violation"]


def test_guest_apqn_must_be_in_the_matrix():
    # The CRYCB keeps adapter 4 after it was unassigned.
    s = scen([{"kind": "admin", "ops": ["unassign-adapter m0 4"]}])
    found = broken(V["test-latest-no-unplug"], s)
    assert found["guest-apqn-bound"]["apqn"] == "04.0005"
    assert "not in the matrix of the mdev attached to g0" in found["guest-apqn-bound"]["violation"]
    assert "apm has {4} not in the shadow_apcb" in found["crycb-matches-shadow"]["violation"]
    assert broken(LATEST, s) == {}


def test_reserving_a_guest_queue_for_the_host():
    s = scen([{"kind": "admin", "ops": ["apmask +3"]}], aqmask=[5])
    f = broken(V["test-latest-no-in-use"], s)["no-host-guest-sharing"]
    assert f["apqn"] == "03.0005" and "reserved for the host drivers" in f["violation"]
    assert "ap_perms.apm" in f["story"]
    assert broken(LATEST, s) == {}, "the in_use veto refuses the apmask write"


def test_two_mdevs_sharing_a_queue():
    mdevs = ({"name": "m0", "adapters": [3], "domains": [5], "control_domains": [5], "open_by": "g0"},
             {"name": "m1", "adapters": [4], "domains": [5], "control_domains": []})
    s = scen([{"kind": "admin", "ops": ["assign-adapter m1 3"]}], mdevs=mdevs)
    f = broken(V["test-latest-no-sharing-check"], s)["no-mdev-sharing"]
    assert f["apqn"] == "03.0005" and f["paths"][-1] == "assign_adapter_store"
    assert broken(LATEST, s) == {}


def test_hook_left_behind_by_close_then_pointing_into_a_freed_mdev():
    s = scen([{"kind": "mdev", "mdev": "m0", "guest": "g0", "ops": ["close"]}, {"kind": "admin", "ops": ["remove m0"]}])
    findings = scripted(V["test-latest-hook-kept"], s, ["mdev:m0", "admin"])
    hooks = [f for f in findings if f.details["invariant"] == "hook-owner"]
    assert [f.details["when"] for f in hooks] == ["at rest", "always (it must never point into a freed mdev)"]
    assert "whose kvm is NULL" in hooks[0].details["violation"]
    assert "freed mdev m0" in hooks[1].details["violation"]
    assert scripted(LATEST, s, ["mdev:m0", "admin"]) == []


def test_no_hook_while_the_guest_still_has_its_queue():
    s = scen([{"kind": "vcpu", "guest": "g0", "vcpu": 0, "ops": ["pqap-aqic-enable 03.0005 isc=3 nib=0x1000"]},
              {"kind": "mdev", "mdev": "m0", "guest": "g0", "ops": ["close"]}])
    f = broken(V["test-latest-hook-first"], s, schedules=60)["hook-before-apcb"]
    assert f["apqn"] == "03.0005" and f["when"] == "when KVM's handle_pqap took its no-hook branch"
    assert f["paths"][-1] == "vfio_ap_mdev_unset_kvm"
    assert broken(LATEST, s, schedules=60) == {}, "latest clears hook and CRYCB under the same locks"


def test_queue_back_in_the_guest_without_a_reset():
    s = scen([{"kind": "admin", "ops": ["unassign-adapter m0 4", "assign-adapter m0 4"]}])
    f = broken(V["test-latest-no-reset"], s)["reset-on-removal"]
    assert f["apqn"] == "04.0005"
    assert f["removal"]["path"] == f["reentry"]["path"] == "kvm_arch_crypto_set_masks"
    assert f["removal"]["stack"][0] == "unassign_adapter_store" and f["reentry"]["stack"][0] == "assign_adapter_store"
    assert broken(LATEST, s) == {}


HOSTCFG = load_builtin("hostcfg-scan")  # vcpu:g0/0 uses 04.0005; hmc removes adapter 4; the bus scans


def test_latest_aqic_failure_leaks_the_new_pin_and_gisc():
    # The HMC takes adapter 4 away first; the guest's AQIC enable then fails (0x01): the default branch
    # releases only the *saved* state, so the page pinned and the GISC registered for it stay.
    findings = scripted(LATEST, HOSTCFG, ["hmc:2", "vcpu:g0/0"])
    leaks = {f.details["violation"] for f in findings if f.details["invariant"] == "no-leaked-irq-resources"}
    assert leaks == {"guest g0 page 0x1000 is pinned 1 time(s) but 0 live queue object(s) have their saved NIB there",
                     "VM g0 has 1 GISC registration(s) for ISC 3 but 0 live queue object(s) saved that ISC for it"}
    assert all(f.paths[-1] in ("vfio_ap_irq_enable", "kvm_s390_gisc_register") for f in findings)


def test_latest_host_removal_keeps_irq_state_and_frees_it_with_the_queue():
    # Interrupts enabled, then the adapter leaves the host: the scan unplugs it from the guest without a
    # reset (impossible), then frees the queue object with its pin and GISC registration.
    findings = scripted(LATEST, HOSTCFG, ["vcpu:g0/0", "hmc", "bus"])
    by = {f.details["invariant"]: f for f in findings}
    irq = by["irq-only-for-guest-queues"]
    assert irq.details["apqn"] == "04.0005" and "not in VM g0's CRYCB" in irq.details["violation"]
    leak = by["no-leaked-irq-resources"]
    assert leak.paths[-1] == "vfio_ap_mdev_remove_queue"
    assert "freed q(04.0005)" in leak.details["story"]


def test_latest_without_the_host_change_is_clean():
    assert scripted(LATEST, HOSTCFG, ["vcpu:g0/0", "vcpu:g0/0", "hmc", "bus"]) == []


# --------------------------------------------------------------------------- crash reports

@pytest.fixture
def lifetime(monkeypatch):
    monkeypatch.delitem(CHECKERS, "crash", raising=False)
    monkeypatch.delitem(CHECKERS, "shared-state", raising=False)  # the test installs its own part
    monkeypatch.setitem(CHECKERS, "lifetime", LifetimeChecker)


def crashes(scheme, plan):
    sr = run_schedule(scheme, two_ops(*PAIR), Script(plan), seed=0)
    return [f for f in sr.findings if f.kind == "crash"]


def test_use_after_free_names_the_object_who_freed_it_and_when_the_pointer_was_read(lifetime):
    (f,) = crashes(ToyUseAfterFree, ["admin:2", "admin#1", "admin"])
    d = f.details
    assert d["oops"] == "use-after-free" and d["object"] == "mdev(m0)"
    assert d["freed_by"]["actor"] == "admin#1" and d["freed_by"]["path"] == "vfio_ap_mdev_remove"
    assert d["obtained"]["var"] == "kvm->arch.crypto.pqap_hook of vm(g0)"
    assert d["obtained"]["step"] < d["freed_by"]["step"] < d["crash"]["step"]
    assert "freed by admin#1 in vfio_ap_mdev_remove" in f.summary
    assert "the oops kills admin" in d["story"]


def test_null_dereference_names_who_cleared_the_pointer(lifetime):
    (f,) = crashes(ToyNullKvm, ["admin#1", "admin"])
    d = f.details
    assert d["oops"] == "null-deref" and d["expr"] == "matrix_mdev->kvm->lock"
    assert d["obtained"]["var"] == "matrix_mdev->kvm of mdev(m0)" and d["obtained"]["value"] == "NULL"
    assert d["cleared_by"]["path"] == "vfio_ap_mdev_unset_kvm"
