"""Small purpose-built schemes for engine tests (never registered in the package).

They use the real world objects and lock classes but tiny code paths, so that a test states exactly
which lock order it exercises.
"""

from __future__ import annotations

from typing import Any

from apactors.model.ops import Acquire, Block, Cond, Read, Release, Write
from apactors.model.schemes.base import Scheme, path
from apactors.scenario import scenario_from_dict


class ToyAbba(Scheme):
    """assign takes guests_lock then mdevs_lock; unassign takes them the other way round (ABBA)."""

    id = "test-abba"
    kernel = "test only"
    description = "test-only ABBA between guests_lock and mdevs_lock"
    family = "test"

    def setup(self, k: Any, scenario: Any):
        return None
        yield

    def operation(self, k: Any, actor: Any, op: Any):
        if op.verb == "assign-adapter":
            return (yield from self.assign_adapter_store(k))
        if op.verb == "unassign-adapter":
            return (yield from self.unassign_adapter_store(k))
        return 0

    @path
    def assign_adapter_store(self, k: Any):
        w = self.w
        yield Acquire(w.guests_lock)
        yield Acquire(w.mdevs_lock)
        v = yield Read(w.matrix_dev, "available_instances")
        yield Write(w.matrix_dev, "available_instances", v - 1)
        yield Release(w.mdevs_lock)
        yield Release(w.guests_lock)
        return 0

    @path
    def unassign_adapter_store(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        yield Acquire(w.guests_lock)
        v = yield Read(w.matrix_dev, "available_instances")
        yield Write(w.matrix_dev, "available_instances", v + 1)
        yield Release(w.guests_lock)
        yield Release(w.mdevs_lock)
        return 0


class ToyOrdered(ToyAbba):
    """The same stores, both in the documented order: never deadlocks."""

    id = "test-ordered"
    description = "test-only: both stores take guests_lock then mdevs_lock"

    @path
    def unassign_adapter_store(self, k: Any):
        return (yield from ToyAbba.assign_adapter_store.__wrapped__(self, k))


class _Never(Cond):
    what = "a device close that never comes"

    def ready(self, k: Any) -> bool:
        return False


class ToyHang(ToyAbba):
    """unassign waits for a condition nobody sets, while holding guests_lock."""

    id = "test-hang"
    description = "test-only: a wait that never ends"

    @path
    def unassign_adapter_store(self, k: Any):
        yield Acquire(self.w.guests_lock)
        yield Block(_Never())
        yield Release(self.w.guests_lock)
        return 0


def two_admins(repeat: int = 3) -> Any:
    """Two admin actors racing assign and unassign stores on one mdev."""
    return scenario_from_dict({
        "name": "two-admins",
        "description": "two sysfs writers race",
        "host": {"adapters": [3], "domains": [5], "control_domains": []},
        "mdev": [{"name": "m0", "adapters": [], "domains": [], "control_domains": []}],
        "actor": [
            {"kind": "admin", "ops": ["assign-adapter m0 3"], "repeat": repeat},
            {"kind": "admin", "ops": ["unassign-adapter m0 3"], "repeat": repeat},
        ],
    }, "tests/toy_schemes.py")


class _Held(Cond):
    what = "the other lock to be held"

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def ready(self, k: Any) -> bool:
        return bool(self.lock.holders)


class ToyRendezvousAbba(ToyAbba):
    """ABBA where each store waits until the other lock is held: deadlocks in every interleaving."""

    id = "test-rendezvous-abba"
    description = "test-only: an ABBA deadlock that no schedule avoids"

    @path
    def assign_adapter_store(self, k: Any):
        w = self.w
        yield Acquire(w.guests_lock)
        yield Block(_Held(w.mdevs_lock))
        yield Acquire(w.mdevs_lock)
        return 0

    @path
    def unassign_adapter_store(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        yield Block(_Held(w.guests_lock))
        yield Acquire(w.guests_lock)
        return 0
