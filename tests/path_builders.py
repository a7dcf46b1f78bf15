"""Shared builders for the golden lock-sequence tests (test_latest_paths, test_e4_paths,
test_pre_e4_paths, test_alt_paths): small hand-made scenarios, actors, operations, and the lock steps of
a ``run_inline`` record written as lockdep class names (``+&kvm->lock``, ``-&matrix_dev->mdevs_lock``,
``+&kvm->arch.crypto.pqap_hook_rwsem(w)``, ``try+ap_scan_bus_mutex``)."""

from __future__ import annotations

from apactors.model.locks import Srcu
from apactors.model.ops import Acquire, Release
from apactors.scenario import ActorSpec, GuestSpec, HostSpec, MdevSpec, Operation, Scenario

GUESTS = "+&matrix_dev->guests_lock"
MDEVS = "+&matrix_dev->mdevs_lock"
KVM = "+&kvm->lock"
HOOK_W = "+&kvm->arch.crypto.pqap_hook_rwsem(w)"
PERMS = "+ap_perms_mutex"
ATTR = "+ap_attr_mutex"
QLOCK = "+ap_queues_lock"
WORK = "+(work_completion)(&q->reset_work)"
DEVLOCK = "+&dev->mutex"
GROUP = "+&group->group_lock"
DEVSET = "+&new_dev_set->lock"
KREF = "+&group->kvm_ref_lock"
SCAN_TRY = "try+ap_scan_bus_mutex"

VCPU = ActorSpec("vcpu", "vcpu:g0/0", guest="g0", vcpu=0)
VMM = ActorSpec("vmm", "vmm:g0", guest="g0")
ADMIN = ActorSpec("admin", "admin")
HMC = ActorSpec("hmc", "hmc")
BUS = ActorSpec("bus", "bus")


def un(s: str) -> str:
    """The release step of an acquire step (``+X`` or ``try+X`` -> ``-X``)."""
    return "-" + s.removeprefix("try")[1:]


def scenario(adapters=(3, 4), domains=(5,), cdoms=(5,), apmask=(), aqmask=(), unbound=(),
             mdevs=(), guests=("g0",), actors=(), vcpus=1, pv=False) -> Scenario:
    return Scenario(
        name="t", description="test",
        host=HostSpec(tuple(adapters), tuple(domains), tuple(cdoms), tuple(apmask), tuple(aqmask),
                      tuple(unbound)),
        guests=tuple(GuestSpec(g, vcpus, pv) for g in guests),
        mdevs=tuple(mdevs),
        actors=tuple(actors),
    )


def mdev(name="m0", adapters=(3,), domains=(5,), cdoms=(), open_by=None) -> MdevSpec:
    return MdevSpec(name, tuple(adapters), tuple(domains), tuple(cdoms), open_by)


def mdev_actor(m="m0", guest="g0") -> ActorSpec:
    return ActorSpec("mdev", f"mdev:{m}", guest=guest, mdev=m)


def op(text: str, **kw) -> Operation:
    return Operation(text.split()[0], text, **kw)


def lock_steps(record) -> list[str]:
    """The lock steps of a ``run_inline(..., record=...)`` record."""
    out = []
    for _stack, o, _res in record:
        if isinstance(o, (Acquire, Release)):
            lk = o.lock
            sign = "+" if isinstance(o, Acquire) else "-"
            if isinstance(o, Acquire) and o.try_:
                sign = "try+"
            if lk.kind == "rwsem":
                suffix = f"({o.mode})"
            elif isinstance(lk, Srcu):
                suffix = "(R)"
            else:
                suffix = ""
            out.append(sign + lk.cls + suffix)
    return out
