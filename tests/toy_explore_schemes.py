"""Toy schemes and scenarios for the exploration tests (strategies, search, shrinking, parallel runs).

They use the real world objects and lock classes with tiny code paths, so that a test knows exactly
how deep a bug is and which steps commute.  Register them with :func:`registered` where a test needs
lookups by id (replay, shrink and worker processes look schemes up by id).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from apactors.model.ops import Acquire, NullDeref, Op, Read, Release, Write
from apactors.model.schemes.base import Scheme, path, register, unregister
from apactors.scenario import scenario_from_dict
from toy_schemes import ToyAbba, ToyOrdered


class ToyWindow(Scheme):
    """A depth-2 bug: ``assign`` opens a window (flag := 1, flag := 0); ``unassign`` reads the flag
    ``READS`` times and oopses if it saw the window open every time.  The bug needs two ordering
    constraints (window opened before the first read, closed after the last), so PCT with depth 2
    finds it with probability about 1/(2k); uniform random needs ``READS`` consecutive lucky picks."""

    id = "test-window"
    kernel = "test only"
    description = "test-only depth-2 window bug"
    family = "test"
    READS = 7

    def setup(self, k: Any, scenario: Any):
        return None
        yield

    def operation(self, k: Any, actor: Any, op: Any):
        if op.verb == "assign-adapter":
            return (yield from self.open_window(k))
        if op.verb == "unassign-adapter":
            return (yield from self.look_through(k))
        return 0

    @path
    def open_window(self, k: Any):
        md = self.w.matrix_dev
        yield Write(md, "available_instances", 1)
        yield Write(md, "available_instances", 0)
        return 0

    @path
    def look_through(self, k: Any):
        md = self.w.matrix_dev
        seen = 0
        for _ in range(self.READS):
            if (yield Read(md, "available_instances")) == 1:
                seen += 1
        if seen == self.READS:
            yield NullDeref("window->ptr")
        return 0


class ToyIndependent(ToyAbba):
    """Two stores that share nothing: assign uses guests_lock and matrix_dev's counter, unassign
    mdevs_lock and the matrix_dev's mdev list.  Every interleaving is equivalent."""

    id = "test-independent"
    description = "test-only: independent stores"

    @path
    def assign_adapter_store(self, k: Any):
        w = self.w
        yield Acquire(w.guests_lock)
        v = yield Read(w.matrix_dev, "available_instances")
        yield Write(w.matrix_dev, "available_instances", v - 1)
        yield Release(w.guests_lock)
        return 0

    @path
    def unassign_adapter_store(self, k: Any):
        w = self.w
        yield Acquire(w.mdevs_lock)
        v = yield Read(w.matrix_dev, "mdev_list")
        yield Write(w.matrix_dev, "mdev_list", v)
        yield Release(w.mdevs_lock)
        return 0


class ToyAbbaNoisy(ToyAbba):
    """ToyAbba plus harmless stores (assign-domain, unassign-domain) that take a lock of their own."""

    id = "test-abba-noisy"
    description = "test-only ABBA with unrelated noise operations"

    def operation(self, k: Any, actor: Any, op: Any):
        if op.verb in ("assign-domain", "unassign-domain"):
            return (yield from self.domain_store(k))
        return (yield from super().operation(k, actor, op))

    @path
    def domain_store(self, k: Any):
        w = self.w
        yield Acquire(w.matrix_lock)
        v = yield Read(w.matrix_dev, "mdev_list")
        yield Write(w.matrix_dev, "mdev_list", v)
        yield Release(w.matrix_lock)
        return 0


class Roll(Op):
    """An environment choice among ``n`` answers (like a hardware delay)."""

    __slots__ = ("n",)
    code = "roll"

    def __init__(self, n: int) -> None:
        self.n = n

    def perform(self, k: Any) -> int:
        return k.choose(self.n, "roll")


class ToyChoice(ToyAbba):
    """assign asks the environment twice (3 answers each) and oopses only on answers (2, 1)."""

    id = "test-choice"
    description = "test-only: a crash behind two environment choices"

    @path
    def assign_adapter_store(self, k: Any):
        a = yield Roll(3)
        b = yield Roll(3)
        if (a, b) == (2, 1):
            yield NullDeref("rolled->ptr")
        return 0


TOYS = (ToyAbba, ToyOrdered, ToyWindow, ToyIndependent, ToyAbbaNoisy, ToyChoice)


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """Register the toy schemes for the duration of a ``with`` block."""
    for cls in TOYS:
        register(cls)
    try:
        yield
    finally:
        for cls in TOYS:
            unregister(cls.id)


def admins(*ops: list[str], repeat: int = 1, name: str = "toy") -> Any:
    """One admin actor per list of operations, on a host with one mdev."""
    return scenario_from_dict({
        "name": name,
        "description": "toy admins",
        "host": {"adapters": [3], "domains": [5], "control_domains": []},
        "mdev": [{"name": "m0", "adapters": [], "domains": [], "control_domains": []}],
        "actor": [{"kind": "admin", "ops": list(o), "repeat": repeat} for o in ops],
    }, "tests/toy_explore_schemes.py")


def window() -> Any:
    return admins(["assign-adapter m0 3"], ["unassign-adapter m0 3"], name="window")


def abba(repeat: int = 1) -> Any:
    return admins(["assign-adapter m0 3"], ["unassign-adapter m0 3"], repeat=repeat, name="abba")


def noisy_abba() -> Any:
    """The ABBA race buried in noise: four admins, extra operations, repeats."""
    return admins(
        ["assign-domain m0 5", "assign-adapter m0 3", "unassign-domain m0 5"],
        ["unassign-domain m0 5", "assign-domain m0 5"],
        ["assign-domain m0 5", "unassign-adapter m0 3", "assign-domain m0 5"],
        ["unassign-domain m0 5"],
        repeat=2, name="noisy-abba")
