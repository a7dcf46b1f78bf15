"""Scenarios: the hand-written description of a host, guests, mdevs and the actors that race.

The format (TOML) and its vocabulary are those of the domain model §4; see
:mod:`apactors.scenario.loader` for validation and :mod:`apactors.scenario.model` for the
dataclasses. Built-in scenarios live in ``apactors/scenario/builtin/*.toml``.
"""

from .loader import (
    ScenarioError,
    builtin_scenarios,
    format_key_path,
    load_builtin,
    load_scenario_file,
    resolve_scenario,
    scenario_from_dict,
    scenario_from_toml,
)
from .model import (
    ACTOR_KINDS,
    DEFAULT_ISC,
    DEFAULT_NIB,
    ActorSpec,
    GuestSpec,
    HostSpec,
    MdevSpec,
    Operation,
    Scenario,
)

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
    "ScenarioError",
    "builtin_scenarios",
    "format_key_path",
    "load_builtin",
    "load_scenario_file",
    "resolve_scenario",
    "scenario_from_dict",
    "scenario_from_toml",
]
