"""Build the world of one schedule from a scenario and a scheme (domain doc §4.2).

The scheme-independent part (host configuration, AP bus, VMs and vCPUs) is made here; the
scheme-dependent part (initial queue probes, ``mdev_create`` and the assignments, the opens "before
scheduling starts") runs the scheme's own paths one after another with no concurrency, through
:func:`run_inline`.  A setup step that is refused makes the scenario invalid for that scheme.
"""

from __future__ import annotations

from typing import Any

from apactors.model.locks import LockdepMap, Mutex
from apactors.model.masks import Mask
from apactors.model.ops import Op, Oops
from apactors.model.schemes.base import Scheme
from apactors.model.world import ApBus, ApPerms, HostConfig, Machine, MatrixDev, Vm, World


class SetupError(Exception):
    """The scenario's initial state cannot be built under this scheme (a setup step was refused)."""


class InlineContext:
    """Execution context for running paths without concurrency (setup, and work run during setup)."""

    def __init__(self, world: World, name: str = "setup") -> None:
        self.name = name
        self.world = world
        self.arrival = 0
        self.stack: tuple[str, ...] = ()
        self.frames: tuple[int, ...] = ()

    def choose(self, n: int, label: str) -> int:
        return 0  # setup is deterministic: the first (normal) outcome of every environment choice

    def queue_work(self, item: Any) -> bool:
        # No concurrency during setup: run the work item to completion at once.
        if item.pending or item.running:
            return False
        worker = InlineContext(self.world, "kworker-setup")
        item.running = True
        try:
            run_inline(item.fn(worker, *item.args), worker)
        finally:
            item.running = False
        return True


def run_inline(gen: Any, k: InlineContext, record: list | None = None) -> Any:
    """Run a path generator to completion in one task; any step that would block is an error.

    With ``record``, every performed op is appended as ``(k.stack, op, result)`` (used by the
    fidelity tests that compare a path's lock steps with the domain doc).
    """
    result: Any = None
    try:
        op: Op = next(gen)
        while True:
            if not op.enabled(k):
                raise SetupError(f"setup step would block: {type(op).__name__} in {'/'.join(k.stack)}")
            try:
                result = op.perform(k)
            except Oops as e:
                raise SetupError(f"setup step crashed: {e}") from None
            if record is not None:
                record.append((k.stack, op, result))
            op = gen.send(result)
    except StopIteration as stop:
        return stop.value


def build_world(scheme_cls: type[Scheme], scenario: Any) -> tuple[World, Scheme]:
    """A fresh world in the scenario's initial state under ``scheme_cls``."""
    host = scenario.host
    config = HostConfig(Mask.of(host.adapters), Mask.of(host.domains), Mask.of(host.control_domains))
    from apactors.model import hardware

    machine = Machine(config)
    hardware.install(machine)
    perms = ApPerms(Mask.of(host.apmask), Mask.of(host.aqmask))
    bus = ApBus(config, perms, scheme_cls.perms_lock_class)
    matrix_dev = MatrixDev(config)
    vms = {g.name: Vm(g.name, g.vcpus, g.pv) for g in scenario.guests}
    world = World(
        machine=machine,
        bus=bus,
        matrix_lock=Mutex("&matrix_dev->lock", "matrix_dev"),
        mdevs_lock=Mutex("&matrix_dev->mdevs_lock", "matrix_dev"),
        guests_lock=Mutex("&matrix_dev->guests_lock", "matrix_dev"),
        matrix_dev=matrix_dev,
        vms=vms,
        mdevs={},
        workqueue_map=LockdepMap("(wq_completion)events_long", "events_long"),
        queue_serial={},
    )
    scheme = scheme_cls(world)
    k = InlineContext(world)
    run_inline(scheme.setup(k, scenario), k)
    return world, scheme
