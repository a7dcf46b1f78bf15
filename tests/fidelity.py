"""Fidelity harness for the golden tests: run one path of a scheme alone, in a small world, and get its
lock operations in the notation of the domain doc, so a golden table reads like the doc.

    from fidelity import MDEV, VM, lock_steps, op_lock_steps

    SC = {"host": {"adapters": [3, 4], "domains": [5]},
          "guest": [{"name": "g0"}],
          "mdev": [{"name": "m0", "adapters": [3], "domains": [5], "open_by": "g0"}],
          "actor": [{"kind": "mdev", "mdev": "m0", "guest": "g0"}]}

    # a path (method of the scheme) with arguments; MDEV("m0") etc. are resolved in the built world
    assert lock_steps("latest", SC, "assign_adapter_store", MDEV("m0"), "4\\n", short=True) == [
        "+ap_attr_mutex", "+guests_lock", "+kvm->lock", "+mdevs_lock", "+ap_queues_lock", "-ap_queues_lock",
        "-mdevs_lock", "-kvm->lock", "-guests_lock", "-ap_attr_mutex"]

    # a scenario operation of an actor (all kernel layers around the driver)
    op_lock_steps("latest", SC, "mdev:m0", "close", short=True)

``short=True`` gives the short names of the doc's §2.1 (``+guests_lock``, ``+kvm->lock``,
``+pqap_hook_rwsem(w)``, ``+kvm->srcu(r)``, ``try+ap_scan_bus_mutex``, ``+device_lock(qdev)``,
``+q->reset_work`` for a work item's lockdep map); the default gives lockdep class names
(``+&matrix_dev->guests_lock``, ``+&kvm->arch.crypto.pqap_hook_rwsem(w)``, ``+&kvm->srcu(R)`` for a
recursive reader), the form of ``tests/test_latest_paths.py``.

Scenarios are :class:`apactors.scenario.Scenario` objects or dicts in the TOML layout of the scenario
files (``host``, ``guest``, ``mdev``, ``actor``; ``name`` and ``description`` may be left out).  The
scheme is an id or a class.  :func:`run_path` / :func:`run_op` return the whole run (result, recorded
``(stack, op, result)`` triples, world) for assertions beyond the lock steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from apactors.model.build import InlineContext, build_world, run_inline
from apactors.model.locks import RECURSIVE_READ, WRITE
from apactors.model.ops import Acquire, Release
from apactors.model.scheme_ast import mode_suffix, short_name
from apactors.model.schemes import Scheme, get_scheme
from apactors.scenario import Scenario, scenario_from_dict

# ----------------------------------------------------------------------------------------------
# Scheme, scenario, world references
# ----------------------------------------------------------------------------------------------


def scheme_class(scheme: str | type[Scheme]) -> type[Scheme]:
    return get_scheme(scheme) if isinstance(scheme, str) else scheme


def make_scenario(spec: Scenario | Mapping[str, Any]) -> Scenario:
    """A scenario from a :class:`Scenario` or a dict in the TOML layout (validated as files are)."""
    if isinstance(spec, Scenario):
        return spec
    d = dict(spec)
    d.setdefault("name", "fidelity")
    d.setdefault("description", "fidelity test")
    d.setdefault("host", {})
    return scenario_from_dict(d, "<fidelity>")


class Ref:
    """An argument resolved in the built world (the world does not exist when the test is written)."""

    def __init__(self, what: str, fn: Callable[[Any], Any]) -> None:
        self.what = what
        self.fn = fn

    def resolve(self, world: Any) -> Any:
        return self.fn(world)

    def __repr__(self) -> str:
        return self.what


def MDEV(name: str) -> Ref:  # noqa: N802 - reads like a constant in golden tables
    return Ref(f"MDEV({name!r})", lambda w: w.mdevs[name])


def VM(name: str) -> Ref:  # noqa: N802
    return Ref(f"VM({name!r})", lambda w: w.vms[name])


def VCPU(guest: str, index: int = 0) -> Ref:  # noqa: N802
    return Ref(f"VCPU({guest!r}, {index})", lambda w: w.vms[guest].vcpus[index])


def QDEV(apqn: int) -> Ref:  # noqa: N802
    """The AP queue device of an APQN (``QDEV(0x0305)``)."""
    return Ref(f"QDEV({apqn:#06x})", lambda w: w.bus.devices[apqn])


def Q(apqn: int) -> Ref:  # noqa: N802
    """vfio_ap's queue object of an APQN (the drvdata of its queue device)."""
    return Ref(f"Q({apqn:#06x})", lambda w: w.bus.devices[apqn].drvdata)


def WORLD(fn: Callable[[Any], Any]) -> Ref:  # noqa: N802
    """Any other argument computed from the world: ``WORLD(lambda w: w.mdevs["m0"].shadow_apcb)``."""
    return Ref("WORLD(...)", fn)


def _resolve(v: Any, world: Any) -> Any:
    return v.resolve(world) if isinstance(v, Ref) else v


# ----------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------


def format_lock_op(op: Any, result: Any = None, short: bool = False) -> str | None:
    """``+X``, ``-X``, ``try+X`` (with ``(r)``/``(w)`` for reader/writer locks), or None for other ops.
    A trylock that failed is written ``try+X?`` (it took nothing)."""
    cls = op.__class__
    if cls is Acquire:
        sign = "try+" if op.try_ else "+"
    elif cls is Release:
        sign = "-"
    else:
        return None
    lk = op.lock
    name = short_name(lk.cls) if short else lk.cls
    mode = op.mode
    if not short and lk.kind == "srcu" and mode in (RECURSIVE_READ, "r"):
        suffix = "(R)"
    elif lk.kind in ("rwsem", "rwlock", "srcu") or mode != WRITE:
        suffix = mode_suffix(lk.kind, mode, doc=short) or f"({mode})"
    else:
        suffix = ""
    failed = "?" if cls is Acquire and op.try_ and result is False else ""
    return f"{sign}{name}{suffix}{failed}"


def format_lock_steps(record: list[tuple], short: bool = False) -> list[str]:
    """The lock steps of a ``run_inline(..., record=...)`` record."""
    out = []
    for _stack, op, result in record:
        s = format_lock_op(op, result, short)
        if s is not None:
            out.append(s)
    return out


# ----------------------------------------------------------------------------------------------
# Running one path or one operation
# ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One path run alone: its return value, the recorded ``(stack, op, result)`` triples, the world
    and the scheme instance (to look at the state afterwards)."""

    result: Any
    record: list[tuple]
    world: Any
    scheme: Any

    def lock_steps(self, short: bool = False) -> list[str]:
        return format_lock_steps(self.record, short)

    def steps_in(self, kernel_function: str, short: bool = False) -> list[str]:
        """The lock steps taken while ``kernel_function`` was on the stack."""
        return format_lock_steps([r for r in self.record if kernel_function in r[0]], short)


def build(scheme: str | type[Scheme], scenario: Scenario | Mapping[str, Any]) -> tuple[Any, Any]:
    """The world of ``scenario`` under ``scheme`` after its setup (§4.2)."""
    return build_world(scheme_class(scheme), make_scenario(scenario))


def run_path(scheme: str | type[Scheme], scenario: Scenario | Mapping[str, Any], path: str | Callable[..., Any],
             *args: Any, actor: str = "test", world: tuple[Any, Any] | None = None, **kwargs: Any) -> Run:
    """Run ``path`` (a method name of the scheme, or ``fn(scheme) -> generator function``) alone with
    ``args`` (``Ref`` arguments resolved in the world) as the task ``actor``; any step that would block
    is an error (``SetupError``).  ``world`` reuses a ``build(...)`` result (to chain runs)."""
    w, s = world if world is not None else build(scheme, scenario)
    fn = getattr(s, path) if isinstance(path, str) else path(s)
    k = InlineContext(w, actor)
    record: list[tuple] = []
    res = run_inline(fn(k, *[_resolve(a, w) for a in args], **{n: _resolve(v, w) for n, v in kwargs.items()}),
                     k, record)
    return Run(res, record, w, s)


def lock_steps(scheme: str | type[Scheme], scenario: Scenario | Mapping[str, Any], path: str | Callable[..., Any],
               *args: Any, short: bool = False, **kwargs: Any) -> list[str]:
    """The lock steps of one path run alone (see :func:`run_path`)."""
    return run_path(scheme, scenario, path, *args, **kwargs).lock_steps(short)


def run_op(scheme: str | type[Scheme], scenario: Scenario | Mapping[str, Any], actor: str, text: str,
           world: tuple[Any, Any] | None = None) -> Run:
    """Run one scenario operation (``"assign-adapter m0 4"``, ``"close"``, ``"pqap-aqic-enable 03.0005"``)
    of the scenario's actor named ``actor`` (``admin``, ``hmc``, ``bus`` exist implicitly), through all
    kernel layers, as the engine would, but alone."""
    sc = make_scenario(scenario)
    spec = next((a for a in sc.actors if a.name == actor), None)
    d = sc.to_dict()
    if spec is None:
        kind = actor.split(":")[0].split("#")[0]
        if kind not in ("admin", "hmc", "bus"):
            raise KeyError(f"no actor {actor!r} in the scenario; actors: {[a.name for a in sc.actors]}")
        d["actor"] = d["actor"] + [{"kind": kind, "name": actor, "ops": [text]}]
    else:
        d["actor"] = [dict(a, ops=[text]) if a["name"] == actor else a for a in d["actor"]]
    parsed = scenario_from_dict(d, "<fidelity>")
    spec = next(a for a in parsed.actors if a.name == actor)
    w, s = world if world is not None else build(scheme, sc)
    k = InlineContext(w, actor)
    record: list[tuple] = []
    res = run_inline(s.operation(k, spec, spec.ops[0]), k, record)
    return Run(res, record, w, s)


def op_lock_steps(scheme: str | type[Scheme], scenario: Scenario | Mapping[str, Any], actor: str, text: str,
                  short: bool = False) -> list[str]:
    """The lock steps of one scenario operation run alone (see :func:`run_op`)."""
    return run_op(scheme, scenario, actor, text).lock_steps(short)


__all__ = ["MDEV", "Q", "QDEV", "Ref", "Run", "VCPU", "VM", "WORLD", "build", "format_lock_op",
           "format_lock_steps", "lock_steps", "make_scenario", "op_lock_steps", "run_op", "run_path",
           "scheme_class"]
