"""Write a scenario back as TOML (the inverse of :func:`apactors.scenario.scenario_from_toml`).

A scenario dict (:meth:`apactors.scenario.Scenario.to_dict`) is a small structure: top-level strings,
one ``[host]`` table of arrays, and arrays of tables (``[[guest]]``, ``[[mdev]]``, ``[[actor]]``) whose
values are strings, integers, booleans and arrays of those.  This emitter writes exactly that shape,
with keys in the dict's order, so ``scenario_from_toml(scenario_to_toml(s), src) == s``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(s: str) -> str:
    """A TOML basic string for ``s`` (control characters escaped)."""
    out = []
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def toml_value(v: Any) -> str:
    """A TOML value: string, integer, boolean, or an array of those (inline)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items() if v is not None]


def _section(key: str, value: Any) -> str:
    """Where a top-level entry goes: "value" (key = value), "table" ([key]) or "tables" ([[key]])."""
    if isinstance(value, Mapping):
        return "table"
    if _is_table_array(value) or (isinstance(value, (list, tuple)) and not value and key in _TABLE_ARRAYS):
        return "tables"
    return "value"


def to_toml(data: Mapping[str, Any], header: str = "") -> str:
    """TOML text for ``data``: plain values first, then tables, then arrays of tables.

    ``header`` lines are written first as ``#`` comments.  Empty arrays of tables are omitted (the
    loader reads a missing key as an empty list).
    """
    lines = [f"# {h}".rstrip() for h in header.splitlines()]
    lines += _pairs({k: v for k, v in data.items() if _section(k, v) == "value"})
    for k, v in data.items():
        if _section(k, v) == "table":
            lines += ["", f"[{toml_key(k)}]"] + _pairs(v)
    for k, v in data.items():
        if _section(k, v) == "tables":
            for item in v:
                lines += ["", f"[[{toml_key(k)}]]"] + _pairs(item)
    return "\n".join(lines) + "\n"


#: keys that are arrays of tables in the scenario format (omitted when empty)
_TABLE_ARRAYS = ("guest", "mdev", "actor")


def scenario_to_toml(scenario: Any, header: str = "") -> str:
    """TOML text of a :class:`~apactors.scenario.Scenario` (or of its ``to_dict()``)."""
    data = scenario.to_dict() if hasattr(scenario, "to_dict") else scenario
    return to_toml(data, header)


__all__ = ["scenario_to_toml", "to_toml", "toml_string", "toml_value"]
