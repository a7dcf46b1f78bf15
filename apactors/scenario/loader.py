"""Loading and validating scenarios (TOML files, built-ins, dicts from trace headers).

Scenarios are edited by hand, so every problem is reported as a :class:`ScenarioError` whose
message names the source (file), the line and the key path, e.g.::

    scenarios/x.toml:14: actor[2].ops[1]: unknown operation 'frob' for an admin actor; expected
    one of: create, remove, ...

Key paths use 0-based indexes for arrays and arrays of tables (``actor[2]`` is the third
``[[actor]]``). ``tomllib`` reports no positions for values, so :class:`_Locator` re-scans the
source text to map key paths to lines.
"""

from __future__ import annotations

import bisect
import importlib.resources
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

from apactors.model.masks import MAX_ID, format_apqn, parse_apqn

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
    "ScenarioError",
    "builtin_scenarios",
    "format_key_path",
    "load_builtin",
    "load_scenario_file",
    "resolve_scenario",
    "scenario_from_dict",
    "scenario_from_toml",
]

KeyPath = tuple[str | int, ...]


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def format_key_path(path: Sequence[str | int], prefix: str = "") -> str:
    """Render a key path: ``("actor", 2, "ops", 1)`` -> ``actor[2].ops[1]``."""
    out = prefix
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            out += f".{text}" if out else text
    return out


class ScenarioError(ValueError):
    """An invalid scenario (or one that cannot be read).

    Attributes: ``source`` (file path or description of the origin, may be None), ``line``
    (1-based, None when unknown), ``key`` (rendered key path, may be None) and ``detail`` (what
    is wrong and what was expected). ``str()`` gives ``source:line: key: detail``.
    """

    def __init__(
        self,
        detail: str,
        *,
        source: str | None = None,
        line: int | None = None,
        key: str | None = None,
        column: int | None = None,
    ) -> None:
        self.detail = detail
        self.source = source
        self.line = line
        self.column = column
        self.key = key
        where = source or ""
        if source and line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join([*parts, detail]))


# ----------------------------------------------------------------------------------------------
# Locating key paths in TOML source text
# ----------------------------------------------------------------------------------------------


class _Locator:
    """Map key paths to 1-based source lines by re-scanning TOML text.

    A small position-only TOML scanner (the text is already known to be valid TOML): it records
    the line of every key, every table and array-of-tables header and every array element.
    Best effort: any surprise simply leaves the remaining paths unrecorded.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.lines: dict[KeyPath, int] = {}
        self._aot: dict[KeyPath, int] = {}  # array-of-tables path -> number of headers seen
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        try:
            self._document()
        except Exception:  # noqa: BLE001 - locating is best effort, never fatal
            pass

    def line_of(self, path: KeyPath) -> int | None:
        """Line of ``path``, else of its closest recorded ancestor, else None."""
        p = tuple(path)
        while p:
            line = self.lines.get(p)
            if line is not None:
                return line
            p = p[:-1]
        return None

    # -- scanner ----------------------------------------------------------------------------

    def _line(self, pos: int) -> int:
        return bisect.bisect_right(self._line_starts, pos)

    def _record(self, path: KeyPath, pos: int) -> None:
        self.lines.setdefault(path, self._line(pos))

    def _peek(self, s: str) -> bool:
        return self.text.startswith(s, self.i)

    def _skip_ws(self, newlines: bool) -> None:
        t, n = self.text, len(self.text)
        while self.i < n:
            c = t[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = t.find("\n", self.i)
                self.i = n if end < 0 else end
            else:
                break

    def _document(self) -> None:
        t, n = self.text, len(self.text)
        prefix: KeyPath = ()
        while True:
            self._skip_ws(newlines=True)
            if self.i >= n:
                return
            start = self.i
            if t[self.i] == "[":
                aot = self._peek("[[")
                self.i += 2 if aot else 1
                self._skip_ws(newlines=False)
                keys = self._key()
                self._skip_ws(newlines=False)
                self.i += 2 if aot else 1  # "]]" or "]"
                path: KeyPath = ()
                for k in keys[:-1]:
                    path += (k,)
                    if path in self._aot:
                        path += (self._aot[path] - 1,)
                path += (keys[-1],)
                if aot:
                    idx = self._aot.get(path, 0)
                    self._aot[path] = idx + 1
                    self._record(path, start)
                    path += (idx,)
                self._record(path, start)
                prefix = path
            else:
                self._keyval(prefix)

    def _keyval(self, prefix: KeyPath) -> None:
        start = self.i
        keys = self._key()
        for j in range(1, len(keys) + 1):
            self._record(prefix + keys[:j], start)
        self._skip_ws(newlines=False)
        self.i += 1  # "="
        self._skip_ws(newlines=False)
        self._value(prefix + keys)

    def _key(self) -> tuple[str, ...]:
        keys: list[str] = []
        while True:
            self._skip_ws(newlines=False)
            c = self.text[self.i]
            if c == '"':
                start = self.i
                self._string()
                keys.append(json.loads(self.text[start : self.i]))
            elif c == "'":
                end = self.text.index("'", self.i + 1)
                keys.append(self.text[self.i + 1 : end])
                self.i = end + 1
            else:
                m = self._BARE.match(self.text, self.i)
                if m is None:
                    raise ValueError("unexpected character in key")
                keys.append(m.group())
                self.i = m.end()
            self._skip_ws(newlines=False)
            if self.i < len(self.text) and self.text[self.i] == ".":
                self.i += 1
                continue
            return tuple(keys)

    def _string(self) -> None:
        """Skip a string of any of the four kinds starting at ``self.i``."""
        t = self.text
        for delim in ('"""', "'''"):
            if t.startswith(delim, self.i):
                j = self.i + 3
                while True:
                    k = t.index(delim, j)
                    if delim == '"""':
                        # a quote preceded by an odd number of backslashes is escaped
                        bs = 0
                        while t[k - 1 - bs] == "\\":
                            bs += 1
                        if bs % 2:
                            j = k + 1
                            continue
                    # up to two extra quotes belong to the content ("""a""""" is 'a""')
                    end = k + 3
                    while end < len(t) and end < k + 5 and t[end] == delim[0]:
                        end += 1
                    self.i = end
                    return
        q = t[self.i]
        j = self.i + 1
        while t[j] != q:
            if q == '"' and t[j] == "\\":
                j += 1
            j += 1
        self.i = j + 1

    def _value(self, path: KeyPath) -> None:
        t = self.text
        c = t[self.i]
        if c in "\"'":
            self._string()
        elif c == "[":
            self.i += 1
            idx = 0
            while True:
                self._skip_ws(newlines=True)
                if t[self.i] == "]":
                    self.i += 1
                    return
                self._record(path + (idx,), self.i)
                self._value(path + (idx,))
                idx += 1
                self._skip_ws(newlines=True)
                if t[self.i] == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self._skip_ws(newlines=False)
                if t[self.i] == "}":
                    self.i += 1
                    return
                self._keyval(path)
                self._skip_ws(newlines=False)
                if t[self.i] == ",":
                    self.i += 1
        else:
            m = re.compile(r"[^,\]}#\n]*").match(t, self.i)
            assert m is not None
            self.i = m.end()


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ACTOR_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@#+-]*")
_SCENARIO_ID_RE = re.compile(r"0|[1-9][0-9]*|0[xX][0-9a-fA-F]+")
_MAX_VCPUS = 248  # KVM_MAX_VCPUS on s390 (extended SCA)
_MAX_REPEAT = 1_000_000
_ADDR_MAX = (1 << 64) - 1


def _describe(value: object) -> str:
    """Human description of a TOML/JSON value's type for error messages."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, (datetime, date, time)):
        return "a date/time"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


def _article(kind: str) -> str:
    # as read aloud: "an admin", "an mdev" (em-dev), "an hmc" (aitch), "a vcpu", "a bus"
    return f"an {kind}" if kind in ("admin", "mdev", "hmc") else f"a {kind}"


@dataclass(slots=True)
class _Ctx:
    """Where errors point: the source name, an optional locator and a key-path prefix."""

    source: str
    locator: _Locator | None
    key_prefix: str = ""

    def fail(self, path: KeyPath, detail: str) -> NoReturn:
        line = None
        if self.locator is not None:
            line = self.locator.line_of(path) or 1
        raise ScenarioError(
            detail,
            source=self.source,
            line=line,
            key=format_key_path(path, self.key_prefix) or None,
        )

    # -- typed accessors --------------------------------------------------------------------

    def table(self, value: object, path: KeyPath, what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected {what}, got {_describe(value)}")
        for k in value:
            if not isinstance(k, str):
                self.fail(path, f"keys must be strings, got {_describe(k)}")
        return value

    def array_of_tables(self, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.fail(
                (key,),
                f"expected an array of tables ([[{key}]] sections), got {_describe(value)}",
            )
        return [self.table(v, (key, i), f"a table ([[{key}]])") for i, v in enumerate(value)]

    def check_keys(
        self, table: Mapping[str, Any], path: KeyPath, allowed: Sequence[str], what: str
    ) -> None:
        for k in table:
            if k not in allowed:
                self.fail(
                    path + (k,),
                    f"unknown key '{k}' in {what}; expected one of: {', '.join(allowed)}",
                )

    def required(self, table: Mapping[str, Any], path: KeyPath, key: str, what: str) -> Any:
        if key not in table:
            self.fail(path + (key,), f"missing required key '{key}' in {what}")
        return table[key]

    def name(self, value: object, path: KeyPath, what: str, pattern: re.Pattern[str]) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected {what} as a string, got {_describe(value)}")
        if not pattern.fullmatch(value):
            allowed = "letters, digits, '_', '.', '-'"
            if pattern is _ACTOR_NAME_RE:
                allowed += ", ':', '/', '@', '#', '+'"
            self.fail(
                path,
                f"invalid {what} {value!r}: use {allowed} (no whitespace), "
                "starting with a letter, digit or '_'",
            )
        return value

    def integer(self, value: object, path: KeyPath, what: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected {what} (an integer {lo}..{hi}), got {_describe(value)}")
        if not lo <= value <= hi:
            self.fail(path, f"{what} {value} out of range; expected {lo}..{hi}")
        return value

    def boolean(self, value: object, path: KeyPath, what: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected {what} (true or false), got {_describe(value)}")
        return value

    def id_list(
        self, table: Mapping[str, Any], path: KeyPath, key: str, what: str
    ) -> tuple[int, ...]:
        """``table[key]`` (default empty) as a sorted, de-duplicated tuple of ids 0..255."""
        value = table.get(key, [])
        if not isinstance(value, list):
            self.fail(
                path + (key,),
                f"expected an array of {what} ids 0..{MAX_ID}, got {_describe(value)}",
            )
        ids = {
            self.integer(v, path + (key, i), f"{what} id", 0, MAX_ID)
            for i, v in enumerate(value)
        }
        return tuple(sorted(ids))


# ----------------------------------------------------------------------------------------------
# Operation grammar
# ----------------------------------------------------------------------------------------------

# verb -> (positional argument kinds, option names). Argument kinds: APQN, MDEV, ID, SPEC.
_GRAMMAR: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "vcpu": {
        "pqap-aqic-enable": (("APQN",), ("isc", "nib")),
        "pqap-aqic-disable": (("APQN",), ()),
    },
    "mdev": {
        "open": ((), ()),
        "close": ((), ()),
        "reset": ((), ()),
        "dma-unmap": ((), ("iova",)),
    },
    "vmm": {
        "pv-enable": ((), ()),
        "pv-disable": ((), ()),
        "kvm-vfio-release": ((), ()),
    },
    "admin": {
        "create": (("MDEV",), ()),
        "remove": (("MDEV",), ()),
        "assign-adapter": (("MDEV", "ID"), ()),
        "unassign-adapter": (("MDEV", "ID"), ()),
        "assign-domain": (("MDEV", "ID"), ()),
        "unassign-domain": (("MDEV", "ID"), ()),
        "assign-control-domain": (("MDEV", "ID"), ()),
        "unassign-control-domain": (("MDEV", "ID"), ()),
        "apmask": (("SPEC",), ()),
        "aqmask": (("SPEC",), ()),
        "bind": (("APQN",), ()),
        "unbind": (("APQN",), ()),
    },
    "hmc": {
        "remove-adapter": (("ID",), ()),
        "add-adapter": (("ID",), ()),
        "remove-domain": (("ID",), ()),
        "add-domain": (("ID",), ()),
        "remove-control-domain": (("ID",), ()),
        "add-control-domain": (("ID",), ()),
    },
    "bus": {"scan": ((), ())},
}

_OPTION_VALUE = {"isc": "N", "nib": "ADDR", "iova": "ADDR"}


def _usage(verb: str, spec: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    args, options = spec
    return " ".join([verb, *args, *(f"[{o}={_OPTION_VALUE[o]}]" for o in options)])


def _number(text: str) -> int | None:
    """A decimal or 0x-hex number as scenarios write them, else None."""
    if not _SCENARIO_ID_RE.fullmatch(text):
        return None
    return int(text, 0)


def _parse_op(ctx: _Ctx, kind: str, value: object, path: KeyPath) -> Operation:
    verbs = _GRAMMAR[kind]
    if not isinstance(value, str):
        example = next(iter(verbs))
        ctx.fail(path, f"expected an operation string (e.g. '{example}'), got {_describe(value)}")
    tokens = value.split()
    if not tokens:
        ctx.fail(path, f"empty operation; expected one of: {', '.join(verbs)}")
    verb, rest = tokens[0], tokens[1:]
    text = " ".join(tokens)
    if verb not in verbs:
        hint = ""
        for other, other_verbs in _GRAMMAR.items():
            if verb in other_verbs:
                hint = f" (it is {_article(other)} actor operation)"
        ctx.fail(
            path,
            f"unknown operation '{verb}' for {_article(kind)} actor{hint}; "
            f"expected one of: {', '.join(verbs)}",
        )
    arg_kinds, option_names = verbs[verb]
    usage = _usage(verb, verbs[verb])

    def bad(detail: str) -> NoReturn:
        ctx.fail(path, f"'{text}': {detail}")

    positional: list[str] = []
    options: dict[str, str] = {}
    for tok in rest:
        if option_names and "=" in tok:
            key, _, val = tok.partition("=")
            if key not in option_names:
                bad(f"unknown option '{key}='; usage: {usage}")
            if key in options:
                bad(f"option '{key}=' given twice")
            options[key] = val
        else:
            positional.append(tok)
    if len(positional) != len(arg_kinds):
        n = len(arg_kinds)
        if "SPEC" in arg_kinds and len(positional) > 1:
            bad(f"a mask SPEC must not contain whitespace; usage: {usage}")
        plural = "s" if n != 1 else ""
        bad(f"'{verb}' takes {n} argument{plural}, got {len(positional)}; usage: {usage}")

    fields: dict[str, Any] = {}
    for arg_kind, tok in zip(arg_kinds, positional):
        if arg_kind == "APQN":
            try:
                fields["apqn"] = parse_apqn(tok)
            except ValueError as exc:
                bad(str(exc))
        elif arg_kind == "MDEV":
            if not _NAME_RE.fullmatch(tok):
                bad(f"invalid mdev name {tok!r}; use letters, digits, '_', '.', '-'")
            fields["mdev"] = tok
        elif arg_kind == "ID":
            ident = _number(tok)
            if ident is None or ident > MAX_ID:
                bad(
                    f"invalid ID '{tok}'; expected a decimal or 0x hex number 0..{MAX_ID} "
                    "(no leading zeros: the kernel would read them as octal)"
                )
            fields["ident"] = ident
        else:  # SPEC: kept verbatim, the store parses it at run time
            fields["spec"] = tok

    for key, val in options.items():
        num = _number(val)
        if key == "isc":
            if num is None or num > 7:
                bad(f"invalid isc '{val}'; expected an interruption subclass 0..7")
        elif num is None or num > _ADDR_MAX:
            bad(f"invalid {key} '{val}'; expected a decimal or 0x hex address below 2**64")
        fields[key] = num
    if verb == "pqap-aqic-enable":
        fields.setdefault("isc", DEFAULT_ISC)
        fields.setdefault("nib", DEFAULT_NIB)
    return Operation(verb=verb, text=text, **fields)


# ----------------------------------------------------------------------------------------------
# The validator
# ----------------------------------------------------------------------------------------------

_TOP_KEYS = ("name", "description", "host", "guest", "mdev", "actor")
_HOST_KEYS = ("adapters", "domains", "control_domains", "apmask", "aqmask", "unbound")
_GUEST_KEYS = ("name", "vcpus", "pv")
_MDEV_KEYS = ("name", "adapters", "domains", "control_domains", "open_by")
_ACTOR_KEYS: dict[str, tuple[str, ...]] = {
    "vcpu": ("kind", "name", "guest", "vcpu", "ops", "repeat"),
    "mdev": ("kind", "name", "mdev", "guest", "ops", "repeat"),
    "vmm": ("kind", "name", "guest", "ops", "repeat"),
    "admin": ("kind", "name", "ops", "repeat"),
    "hmc": ("kind", "name", "ops", "repeat"),
    "bus": ("kind", "name", "ops", "repeat"),
}


def _build(data: object, ctx: _Ctx) -> Scenario:
    top = ctx.table(data, (), "a scenario table")
    ctx.check_keys(top, (), _TOP_KEYS, "the scenario")
    raw_name = ctx.required(top, (), "name", "the scenario")
    name = ctx.name(raw_name, ("name",), "scenario name", _NAME_RE)
    description = top.get("description", "")
    if not isinstance(description, str):
        ctx.fail(("description",), f"expected a one-line string, got {_describe(description)}")
    if "\n" in description.strip():
        ctx.fail(("description",), "expected a one-line string (put details in comments)")

    host = _build_host(ctx, top)
    guests = _build_guests(ctx, top)
    mdevs = _build_mdevs(ctx, top, host, {g.name for g in guests})
    actors = _build_actors(ctx, top, guests, mdevs)
    return Scenario(
        name=name,
        description=description,
        host=host,
        guests=guests,
        mdevs=mdevs,
        actors=actors,
        source=ctx.source,
    )


def _build_host(ctx: _Ctx, top: Mapping[str, Any]) -> HostSpec:
    path: KeyPath = ("host",)
    host = ctx.table(top.get("host", {}), path, "a table ([host])")
    ctx.check_keys(host, path, _HOST_KEYS, "[host]")
    adapters = ctx.id_list(host, path, "adapters", "adapter")
    domains = ctx.id_list(host, path, "domains", "domain")
    raw = host.get("unbound", [])
    if not isinstance(raw, list):
        ctx.fail(
            path + ("unbound",),
            f"expected an array of APQNs like \"03.0005\", got {_describe(raw)}",
        )
    unbound: set[int] = set()
    for i, v in enumerate(raw):
        p = path + ("unbound", i)
        if not isinstance(v, str):
            ctx.fail(p, f"expected an APQN string like \"03.0005\", got {_describe(v)}")
        try:
            q = parse_apqn(v)
        except ValueError as exc:
            ctx.fail(p, str(exc))
        if q >> 8 not in adapters or q & 0xFF not in domains:
            ctx.fail(
                p,
                f"queue {format_apqn(q)} does not exist at the start: adapter {q >> 8} and domain "
                f"{q & 0xFF} must both be in host.adapters and host.domains",
            )
        unbound.add(q)
    return HostSpec(
        adapters=adapters,
        domains=domains,
        control_domains=ctx.id_list(host, path, "control_domains", "control domain"),
        apmask=ctx.id_list(host, path, "apmask", "adapter"),
        aqmask=ctx.id_list(host, path, "aqmask", "domain"),
        unbound=tuple(sorted(unbound)),
    )


def _build_guests(ctx: _Ctx, top: Mapping[str, Any]) -> tuple[GuestSpec, ...]:
    guests: list[GuestSpec] = []
    seen: dict[str, int] = {}
    for i, g in enumerate(ctx.array_of_tables(top, "guest")):
        path: KeyPath = ("guest", i)
        ctx.check_keys(g, path, _GUEST_KEYS, "[[guest]]")
        raw_name = ctx.required(g, path, "name", "[[guest]]")
        name = ctx.name(raw_name, path + ("name",), "guest name", _NAME_RE)
        if name in seen:
            ctx.fail(
                path + ("name",), f"duplicate guest name '{name}' (already guest[{seen[name]}])"
            )
        seen[name] = i
        vcpus = ctx.integer(g.get("vcpus", 1), path + ("vcpus",), "number of vCPUs", 1, _MAX_VCPUS)
        pv = ctx.boolean(g.get("pv", False), path + ("pv",), "pv")
        guests.append(GuestSpec(name=name, vcpus=vcpus, pv=pv))
    return tuple(guests)


def _build_mdevs(
    ctx: _Ctx, top: Mapping[str, Any], host: HostSpec, guest_names: set[str]
) -> tuple[MdevSpec, ...]:
    mdevs: list[MdevSpec] = []
    seen: dict[str, int] = {}
    reserved_a, reserved_d = set(host.apmask), set(host.aqmask)
    for i, m in enumerate(ctx.array_of_tables(top, "mdev")):
        path: KeyPath = ("mdev", i)
        ctx.check_keys(m, path, _MDEV_KEYS, "[[mdev]]")
        raw_name = ctx.required(m, path, "name", "[[mdev]]")
        name = ctx.name(raw_name, path + ("name",), "mdev name", _NAME_RE)
        if name in seen:
            ctx.fail(path + ("name",), f"duplicate mdev name '{name}' (already mdev[{seen[name]}])")
        seen[name] = i
        open_by = m.get("open_by")
        if open_by is not None:
            open_by = ctx.name(open_by, path + ("open_by",), "guest name", _NAME_RE)
            if open_by not in guest_names:
                ctx.fail(
                    path + ("open_by",),
                    f"unknown guest '{open_by}'; declared guests: {_names(guest_names)}",
                )
        spec = MdevSpec(
            name=name,
            adapters=ctx.id_list(m, path, "adapters", "adapter"),
            domains=ctx.id_list(m, path, "domains", "domain"),
            control_domains=ctx.id_list(m, path, "control_domains", "control domain"),
            open_by=open_by,
        )
        # Setup validity that holds in every scheme: a reserved or shared APQN makes the setup
        # assignment fail (-EADDRNOTAVAIL / -EADDRINUSE), so the scenario could never start.
        for q in spec.queues():
            if q >> 8 in reserved_a and q & 0xFF in reserved_d:
                ctx.fail(
                    path + ("adapters",),
                    f"APQN {format_apqn(q)} of mdev '{name}' is reserved for the host by "
                    "host.apmask x host.aqmask; its assignment would be refused at setup",
                )
        for other in mdevs:
            common = set(spec.queues()) & set(other.queues())
            if common:
                ctx.fail(
                    path + ("adapters",),
                    f"mdev '{name}' shares APQN {format_apqn(min(common))} with mdev "
                    f"'{other.name}'; an APQN may be assigned to one mdev only",
                )
        mdevs.append(spec)
    return tuple(mdevs)


def _names(names: Sequence[str] | set[str]) -> str:
    return ", ".join(sorted(names)) if names else "(none)"


@dataclass(slots=True)
class _ActorDraft:
    """An actor between parsing and naming (``path`` locates it for error messages)."""

    kind: str
    path: KeyPath
    guest: str | None = None
    vcpu: int | None = None
    mdev: str | None = None
    name: str | None = None  # explicit override
    ops: tuple[Operation, ...] = ()
    repeat: int = 1

    def derived_name(self, ordinal: int) -> str:
        """The default name; ``ordinal`` counts earlier actors of the same kind."""
        if self.kind == "vcpu":
            return f"vcpu:{self.guest}/{self.vcpu}"
        if self.kind == "mdev":
            return f"mdev:{self.mdev}"
        if self.kind == "vmm":
            return f"vmm:{self.guest}"
        return self.kind if ordinal == 0 else f"{self.kind}#{ordinal}"


def _parse_actor(
    ctx: _Ctx, a: Mapping[str, Any], path: KeyPath, guest_vcpus: Mapping[str, int]
) -> _ActorDraft:
    kind = ctx.required(a, path, "kind", "[[actor]]")
    if not isinstance(kind, str) or kind not in ACTOR_KINDS:
        shown = repr(kind) if isinstance(kind, str) else _describe(kind)
        ctx.fail(
            path + ("kind",),
            f"unknown actor kind {shown}; expected one of: {', '.join(ACTOR_KINDS)}",
        )
    what = f"{_article(kind)} actor"
    ctx.check_keys(a, path, _ACTOR_KEYS[kind], what)
    d = _ActorDraft(kind=kind, path=path)
    if "name" in a:
        d.name = ctx.name(a["name"], path + ("name",), "actor name", _ACTOR_NAME_RE)
    if kind in ("vcpu", "mdev", "vmm"):
        raw = ctx.required(a, path, "guest", what)
        d.guest = ctx.name(raw, path + ("guest",), "guest name", _NAME_RE)
        if d.guest not in guest_vcpus:
            ctx.fail(
                path + ("guest",),
                f"unknown guest '{d.guest}'; declared guests: {_names(list(guest_vcpus))}",
            )
    if kind == "vcpu":
        assert d.guest is not None
        n = guest_vcpus[d.guest]
        v = ctx.required(a, path, "vcpu", what)
        if isinstance(v, int) and not isinstance(v, bool) and v >= n:
            ctx.fail(
                path + ("vcpu",),
                f"vcpu {v} out of range: guest '{d.guest}' has {n} vCPU{'s' if n != 1 else ''} "
                f"(valid indexes 0..{n - 1})",
            )
        d.vcpu = ctx.integer(v, path + ("vcpu",), "vcpu index", 0, n - 1)
    if kind == "mdev":
        raw = ctx.required(a, path, "mdev", what)
        d.mdev = ctx.name(raw, path + ("mdev",), "mdev name", _NAME_RE)
    ops = a.get("ops", [])
    if not isinstance(ops, list):
        ctx.fail(
            path + ("ops",), f"expected an array of operation strings, got {_describe(ops)}"
        )
    d.ops = tuple(_parse_op(ctx, kind, op, path + ("ops", j)) for j, op in enumerate(ops))
    d.repeat = ctx.integer(a.get("repeat", 1), path + ("repeat",), "repeat", 1, _MAX_REPEAT)
    return d


def _build_actors(
    ctx: _Ctx,
    top: Mapping[str, Any],
    guests: tuple[GuestSpec, ...],
    mdevs: tuple[MdevSpec, ...],
) -> tuple[ActorSpec, ...]:
    guest_vcpus = {g.name: g.vcpus for g in guests}
    drafts = [
        _parse_actor(ctx, a, ("actor", i), guest_vcpus)
        for i, a in enumerate(ctx.array_of_tables(top, "actor"))
    ]

    # An mdev exists if it is declared or some admin 'create' operation creates it.
    known = {m.name for m in mdevs} | {
        op.mdev for d in drafts for op in d.ops if op.verb == "create" and op.mdev
    }
    hint = (
        "declare it in [[mdev]] or create it with an admin 'create' operation "
        f"(known: {_names(known)})"
    )
    for d in drafts:
        if d.mdev is not None and d.mdev not in known:
            ctx.fail(d.path + ("mdev",), f"unknown mdev '{d.mdev}'; {hint}")
        for j, op in enumerate(d.ops):
            if op.mdev is not None and op.mdev not in known:
                ctx.fail(d.path + ("ops", j), f"'{op.text}': unknown mdev '{op.mdev}'; {hint}")

    # At most one actor per vCPU, per mdev and per guest's VMM (§4.1).
    owners: dict[tuple[str, object], int] = {}
    for i, d in enumerate(drafts):
        if d.kind == "vcpu":
            key, field, what = (d.guest, d.vcpu), "vcpu", f"vcpu {d.vcpu} of guest '{d.guest}'"
        elif d.kind == "mdev":
            key, field, what = d.mdev, "mdev", f"mdev '{d.mdev}'"
        elif d.kind == "vmm":
            key, field, what = d.guest, "guest", f"the VMM of guest '{d.guest}'"
        else:
            continue
        if (d.kind, key) in owners:
            ctx.fail(
                d.path + (field,),
                f"{what} already has an actor (actor[{owners[d.kind, key]}]); "
                "at most one is allowed",
            )
        owners[d.kind, key] = i

    # Each mdev opened at setup is held by its mdev actor, which must use it with that guest.
    # Without one, an idle actor is added (after the declared ones) to hold the open file.
    holders = {d.mdev: d for d in drafts if d.kind == "mdev"}
    for i, m in enumerate(mdevs):
        if m.open_by is None:
            continue
        holder = holders.get(m.name)
        if holder is None:
            drafts.append(
                _ActorDraft(kind="mdev", path=("mdev", i, "open_by"), guest=m.open_by, mdev=m.name)
            )
        elif holder.guest != m.open_by:
            ctx.fail(
                holder.path + ("guest",),
                f"mdev '{m.name}' is opened at setup by guest '{m.open_by}' (mdev[{i}].open_by), "
                f"so its mdev actor must use guest '{m.open_by}', not '{holder.guest}'",
            )

    # Names: derived deterministically unless overridden; they must be unique.
    actors: list[ActorSpec] = []
    taken: dict[str, KeyPath] = {}
    ordinal: dict[str, int] = {}
    for d in drafts:
        k = ordinal.get(d.kind, 0)
        ordinal[d.kind] = k + 1
        if d.name is not None:
            name, name_path = d.name, d.path + ("name",)
        else:
            name, name_path = d.derived_name(k), d.path
        if name in taken:
            ctx.fail(
                name_path,
                f"duplicate actor name '{name}' (already used by "
                f"{format_key_path(taken[name])}); give this actor a different 'name'",
            )
        taken[name] = d.path
        actors.append(
            ActorSpec(
                kind=d.kind,
                name=name,
                guest=d.guest,
                vcpu=d.vcpu,
                mdev=d.mdev,
                ops=d.ops,
                repeat=d.repeat,
            )
        )
    return tuple(actors)


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------

_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def scenario_from_toml(text: str, source: str) -> Scenario:
    """Parse and validate scenario TOML ``text``; errors name ``source`` and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS_RE.search(msg)
        line = col = None
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            msg = msg[: m.start()]
        elif msg.endswith("(at end of document)"):
            msg = msg[: -len("(at end of document)")].rstrip()
            line = text.count("\n") + 1
        raise ScenarioError(
            f"TOML syntax error: {msg}", source=source, line=line, column=col
        ) from None
    return _build(data, _Ctx(source, _Locator(text)))


def load_scenario_file(path: str | os.PathLike[str]) -> Scenario:
    """Load and validate a scenario TOML file."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise ScenarioError(
            f"cannot read scenario file: {exc.strerror or exc}", source=source
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError("scenario file is not valid UTF-8", source=source, line=line) from None
    return scenario_from_toml(text, source)


def scenario_from_dict(
    data: Mapping[str, Any], source: str = "<dict>", *, key_prefix: str = ""
) -> Scenario:
    """Validate a scenario given as a dict (e.g. ``Scenario.to_dict()`` stored in a trace header).

    Errors read ``{source}: {key_prefix}.{key}: …`` (no line numbers), e.g.
    ``scenario_from_dict(d, "trace.jsonl", key_prefix="header.scenario")``.
    """
    return _build(data, _Ctx(source, None, key_prefix))


_BUILTIN_PACKAGE = "apactors.scenario"
_BUILTIN_DIR = "builtin"


def _builtin_names() -> list[str]:
    root = importlib.resources.files(_BUILTIN_PACKAGE) / _BUILTIN_DIR
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


@lru_cache(maxsize=None)
def _load_builtin_cached(name: str) -> Scenario:
    res = importlib.resources.files(_BUILTIN_PACKAGE) / _BUILTIN_DIR / f"{name}.toml"
    return scenario_from_toml(res.read_text(encoding="utf-8"), f"{_BUILTIN_DIR}/{name}.toml")


def load_builtin(name: str) -> Scenario:
    """Load the built-in scenario ``name`` (see :func:`builtin_scenarios`)."""
    names = _builtin_names()
    if name not in names:
        raise ScenarioError(f"unknown built-in scenario {name!r}; available: {', '.join(names)}")
    return _load_builtin_cached(name)


def builtin_scenarios() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in scenario, sorted by name."""
    return [(n, load_builtin(n).description) for n in _builtin_names()]


def resolve_scenario(name: str | None, path: str | os.PathLike[str] | None) -> Scenario:
    """The scenario a command line asked for: a built-in ``name`` or a file ``path``.

    Exactly one must be given. A ``name`` that is not a built-in but looks like a path (ends
    with ``.toml`` or contains a path separator) is loaded as a file.
    """
    if name is not None and path is not None:
        raise ScenarioError("give either a built-in scenario name or a scenario file, not both")
    if path is not None:
        return load_scenario_file(path)
    if name is None:
        raise ScenarioError(
            "no scenario given; built-in scenarios: " + ", ".join(_builtin_names())
        )
    if name in _builtin_names():
        return load_builtin(name)
    if name.endswith(".toml") or os.sep in name or "/" in name:
        return load_scenario_file(name)
    return load_builtin(name)  # raises with the list of built-ins
