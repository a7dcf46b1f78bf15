"""Immutable data model of a scenario (what the TOML files describe).

Instances are built and validated by :mod:`apactors.scenario.loader`; the engine only reads
them. All containers are tuples so scenarios are hashable and safe to share between actors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apactors.model.masks import format_apqn

__all__ = [
    "ACTOR_KINDS",
    "DEFAULT_ISC",
    "DEFAULT_NIB",
    "ActorSpec",
    "GuestSpec",
    "HostSpec",
    "MdevSpec",
    "Operation",
    "Scenario",
]

#: Actor kinds in the order the documentation lists them (§4.1).
ACTOR_KINDS: tuple[str, ...] = ("vcpu", "mdev", "vmm", "admin", "hmc", "bus")

#: PQAP(AQIC) register defaults when a scenario omits them (domain model §4.3).
DEFAULT_ISC = 6
DEFAULT_NIB = 0x1000


@dataclass(frozen=True, slots=True)
class Operation:
    """One scenario operation of an actor, parsed.

    ``verb`` is the operation name (``pqap-aqic-enable``, ``assign-adapter``, ``scan``…) and
    ``text`` the operation as written (whitespace normalised), used in traces and to rebuild
    the scenario. Only the fields the verb takes are set, the others are None:

    * ``apqn``: ``pqap-aqic-enable``, ``pqap-aqic-disable``, ``bind``, ``unbind``
    * ``isc``, ``nib``: ``pqap-aqic-enable`` (defaults :data:`DEFAULT_ISC`,
      :data:`DEFAULT_NIB` filled in)
    * ``iova``: ``dma-unmap`` (None = all guest memory)
    * ``mdev``: admin ``create``, ``remove``, ``assign-*``, ``unassign-*``
    * ``ident``: the adapter/domain id of admin ``assign-*``/``unassign-*`` and of every hmc verb
    * ``spec``: admin ``apmask``/``aqmask`` — the raw SPEC text, parsed by the store at run time
      (a malformed SPEC is a legal write that fails with -EINVAL)
    """

    verb: str
    text: str
    mdev: str | None = None
    apqn: int | None = None
    ident: int | None = None
    isc: int | None = None
    nib: int | None = None
    iova: int | None = None
    spec: str | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class HostSpec:
    """The host partition at the start: AP configuration, reservation masks, unbound queues.

    All fields are sorted, de-duplicated tuples of ids (``unbound``: APQN ints).
    """

    adapters: tuple[int, ...] = ()
    domains: tuple[int, ...] = ()
    control_domains: tuple[int, ...] = ()
    apmask: tuple[int, ...] = ()
    aqmask: tuple[int, ...] = ()
    unbound: tuple[int, ...] = ()

    def queues(self) -> tuple[int, ...]:
        """APQNs of the queue devices that exist at the start (adapters × domains), ascending."""
        return tuple(a << 8 | d for a in self.adapters for d in self.domains)

    def is_reserved(self, apqn: int) -> bool:
        """True if the APQN is reserved for the host's default drivers (apmask × aqmask)."""
        return (apqn >> 8) & 0xFF in self.apmask and apqn & 0xFF in self.aqmask

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-serialisable form (APQNs as ``AA.DDDD`` strings)."""
        return {
            "adapters": list(self.adapters),
            "domains": list(self.domains),
            "control_domains": list(self.control_domains),
            "apmask": list(self.apmask),
            "aqmask": list(self.aqmask),
            "unbound": [format_apqn(q) for q in self.unbound],
        }


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """A KVM guest: its name, number of vCPUs and whether it starts as a Secure Execution guest."""

    name: str
    vcpus: int = 1
    pv: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-serialisable form."""
        return {"name": self.name, "vcpus": self.vcpus, "pv": self.pv}


@dataclass(frozen=True, slots=True)
class MdevSpec:
    """A matrix mdev that exists at the start with its assignment; ``open_by`` names the guest
    whose VMM opened it before scheduling starts (its ``mdev`` actor then holds the file)."""

    name: str
    adapters: tuple[int, ...] = ()
    domains: tuple[int, ...] = ()
    control_domains: tuple[int, ...] = ()
    open_by: str | None = None

    def queues(self) -> tuple[int, ...]:
        """APQNs assigned to the mdev (adapters × domains), ascending."""
        return tuple(a << 8 | d for a in self.adapters for d in self.domains)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-serialisable form (``open_by`` omitted when None)."""
        d: dict[str, Any] = {
            "name": self.name,
            "adapters": list(self.adapters),
            "domains": list(self.domains),
            "control_domains": list(self.control_domains),
        }
        if self.open_by is not None:
            d["open_by"] = self.open_by
        return d


@dataclass(frozen=True, slots=True)
class ActorSpec:
    """One actor: a sequential thread running ``ops`` ``repeat`` times.

    ``name`` is unique within the scenario (derived as ``vcpu:g0/0``, ``mdev:m0``, ``vmm:g0``,
    ``admin``, ``admin#1``, ``hmc``, ``bus``… unless the file overrides it). ``guest`` is set for
    vcpu, mdev and vmm actors, ``vcpu`` for vcpu actors, ``mdev`` for mdev actors.
    """

    kind: str
    name: str
    guest: str | None = None
    vcpu: int | None = None
    mdev: str | None = None
    ops: tuple[Operation, ...] = ()
    repeat: int = 1

    def expanded_ops(self) -> tuple[Operation, ...]:
        """The operations in execution order: ``ops`` repeated ``repeat`` times."""
        return self.ops * self.repeat

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-serialisable form (keys a kind does not take are omitted)."""
        d: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.guest is not None:
            d["guest"] = self.guest
        if self.vcpu is not None:
            d["vcpu"] = self.vcpu
        if self.mdev is not None:
            d["mdev"] = self.mdev
        d["ops"] = [op.text for op in self.ops]
        d["repeat"] = self.repeat
        return d


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. ``source`` says where it was loaded from (a path, ``builtin/x.toml``
    or a trace header) and takes no part in equality."""

    name: str
    description: str
    host: HostSpec
    guests: tuple[GuestSpec, ...]
    mdevs: tuple[MdevSpec, ...]
    actors: tuple[ActorSpec, ...]
    source: str = field(default="<memory>", compare=False)

    def guest(self, name: str) -> GuestSpec:
        """The guest called ``name`` (KeyError if there is none)."""
        for g in self.guests:
            if g.name == name:
                return g
        raise KeyError(name)

    def mdev(self, name: str) -> MdevSpec:
        """The mdev declared as ``name`` (KeyError if it is not declared in ``[[mdev]]``)."""
        for m in self.mdevs:
            if m.name == name:
                return m
        raise KeyError(name)

    def actor(self, name: str) -> ActorSpec:
        """The actor called ``name`` (KeyError if there is none)."""
        for a in self.actors:
            if a.name == name:
                return a
        raise KeyError(name)

    def mdev_actor(self, mdev: str) -> ActorSpec | None:
        """The ``mdev`` actor that uses mdev ``mdev``, if any (at most one exists)."""
        for a in self.actors:
            if a.kind == "mdev" and a.mdev == mdev:
                return a
        return None

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-serialisable form, accepted by ``scenario_from_dict``.

        The key order is fixed and ``scenario_from_dict(s.to_dict(), src) == s`` for every
        valid scenario ``s``. ``source`` is not included.
        """
        return {
            "name": self.name,
            "description": self.description,
            "host": self.host.to_dict(),
            "guest": [g.to_dict() for g in self.guests],
            "mdev": [m.to_dict() for m in self.mdevs],
            "actor": [a.to_dict() for a in self.actors],
        }
