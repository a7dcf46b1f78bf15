"""User-defined schemes: a TOML file derives a new scheme from a registered one and changes the lock
steps of named paths, without Python.

The format (``apactors run --scheme-file my-scheme.toml``)::

    # What if assign_adapter_store took ap_attr_mutex after guests_lock?
    id = "attr-after-guests"                 # the new scheme's id (must not be taken)
    base = "latest"                          # the scheme it derives from (`apactors schemes`)
    description = "latest, but assign_adapter_store takes ap_attr_mutex after guests_lock"
    kernel = "hypothetical"                  # optional (default: the base's, marked as modified)
    notes = "free text for `apactors scheme show`"   # optional

    [[change]]                               # one change of one path; applied in file order
    path = "assign_adapter_store"            # a path as `apactors scheme show` names it (method
                                             # name, or kernel function name if unambiguous)
    move = "+ap_attr_mutex"                  # the step to move: +CLASS (acquire) or -CLASS (release),
                                             # optionally #N for the N-th such step (default #1)
    to = "after +&matrix_dev->guests_lock"   # where it goes (a point, see below)

    [[change]]
    path = "assign_domain_store"
    drop = "ap_attr_mutex"                   # drop every acquire of the class and its release

    [[change]]
    path = "unassign_adapter_store"
    add = "ap_attr_mutex"                    # a lock the path does not take (a global lock: one
    acquire = "start"                        # instance per world): taken at this point ...
    release = "end"                          # ... and released at this one
    # mode = "r"                             # optional, for reader/writer locks

    [[change]]
    path = "vfio_ap_handle_pqap"
    lock = "&matrix_dev->mdevs_lock"         # take this lock in another mode ...
    mode = "r"                               # ... r (reader) or w (writer); r needs an rw lock

    [[change]]
    path = "vfio_ap_mdev_ioctl"              # (the VFIO_DEVICE_RESET ioctl: method reset_ioctl)
    wait = "sleep"                           # add a wait: "sleep" (ms, default 20) or a lock class
    ms = 20                                  # (wait until that lock is free: acquire + release)
    at = "after +&matrix_dev->mdevs_lock"    # where
    unlock = ["&matrix_dev->mdevs_lock"]     # optional: released during the wait, re-taken after
                                             # (released in the order listed, re-taken in reverse)

    [[lock]]                                 # change the kind of a lock class everywhere
    class = "&matrix_dev->mdevs_lock"        # (global, per-VM and per-vCPU locks)
    kind = "rwsem"                           # mutex | spinlock | rwsem | rwlock

Lock classes are named by their lockdep class strings (``&matrix_dev->guests_lock``, ``ap_attr_mutex``,
``&kvm->lock``) or by the short names of the domain doc §2.1 (``guests_lock``, ``kvm->lock``).
A *point* is ``start`` (when the path begins), ``end`` (when it returns), or ``before STEP`` /
``after STEP`` where STEP is ``+CLASS`` or ``-CLASS`` with an optional ``#N``: the N-th acquire /
release of that class while the path runs (its sub-paths included).

How it works: the new scheme is a subclass of the base scheme whose changed paths are wrapped by an
*op-stream rewriter*: while the path is active, every operation it (and everything it calls) yields
passes through the rewriter, which holds back, drops, inserts or re-modes lock steps and passes
everything else through unchanged, so the rest of the path keeps its semantics.  A moved acquire is
held back (the path proceeds as if it had the lock) until the point; a step moved *earlier* than the
path takes it is done at the point and the path's own step is skipped (an acquire moved earlier must be
of a global lock, whose instance is known before the path names it).  If the point never comes, a
held-back acquire is taken right before the lock's release, a held-back release at the end of the
path (each with a warning note in the trace).

Validation: every problem is a :class:`SchemeFileError` naming the file, the line and the problem
(``apactors`` exits with status 2): TOML syntax, unknown keys, unknown base scheme, unknown path,
unknown lock class for that scheme or path, a release without an acquire, a change that makes a path
end holding a lock (checked statically on the path's source, all branches, calls expanded; and
dynamically: a rewritten path that returns holding a different set of the changed locks than the
original would raises a :class:`SchemeFileError` naming the file and line of the change).

Traces stay self-contained: :func:`scheme_to_dict` gives the file's text for the trace header and
:func:`scheme_from_dict` rebuilds the scheme from it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, NoReturn, Sequence

from apactors.model.locks import READ, WRITE, Mutex, RwLock, RwSem
from apactors.model.ops import Acquire, Note, Op, Release, Sleep
from apactors.model.schemes.base import BUILTIN_MODULES, Scheme, UnknownScheme, get_scheme

# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


class SchemeDefinitionError(ValueError):
    """A user-defined scheme (file or module) that cannot be used.  ``str()`` reads
    ``source:line: key: detail``; the CLI prints it and exits with status 2."""

    def __init__(self, detail: str, *, source: str | None = None, line: int | None = None,
                 column: int | None = None, key: str | None = None) -> None:
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
        super().__init__(": ".join(p for p in (where, key, detail) if p))


class SchemeFileError(SchemeDefinitionError):
    """A bad scheme file, or a scheme file whose rewrite went wrong while a path ran."""


# ----------------------------------------------------------------------------------------------
# The parsed file
# ----------------------------------------------------------------------------------------------

POINT_WORDS = ("start", "end")
ACTIONS = ("move", "drop", "add", "lock", "wait")
_KEYS_BY_ACTION = {
    "move": ("path", "move", "to"),
    "drop": ("path", "drop"),
    "add": ("path", "add", "acquire", "release", "mode"),
    "lock": ("path", "lock", "mode"),
    "wait": ("path", "wait", "at", "ms", "unlock"),
}
_TOP_KEYS = ("id", "base", "description", "kernel", "family", "notes", "change", "lock")
_LOCK_KEYS = ("class", "kind")
LOCK_KINDS = ("mutex", "spinlock", "rwsem", "rwlock")
_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_STEP_RE = re.compile(r"^\s*([+-])\s*(\S.*?)\s*(?:#\s*(\d+))?\s*$")
_POINT_RE = re.compile(r"^\s*(before|after)\s+([+-])\s*(\S.*?)\s*(?:#\s*(\d+))?\s*$")
_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


@dataclass(frozen=True)
class Point:
    """``start``, ``end``, or ``before``/``after`` the ``nth`` step ``sign`` (+/-) of ``lock``."""

    where: str
    sign: str | None = None
    lock: str | None = None
    nth: int = 1
    text: str = ""

    def matches(self, op: Op) -> bool:
        cls = op.__class__
        if cls is Acquire:
            return self.sign == "+" and op.lock.cls == self.lock  # type: ignore[attr-defined]
        if cls is Release:
            return self.sign == "-" and op.lock.cls == self.lock  # type: ignore[attr-defined]
        return False


@dataclass(frozen=True)
class Change:
    """One ``[[change]]``: ``action`` is move, drop, add, lock (mode change) or wait."""

    index: int
    line: int | None
    path: str  #: the method name on the scheme
    action: str
    lock: str  #: the lock class changed (for wait: the waited-for lock, or "" for a sleep)
    sign: str | None = None  #: move: the moved step's sign
    nth: int = 1  #: move: which such step
    to: Point | None = None  #: move: where to
    acquire: Point | None = None  #: add
    release: Point | None = None  #: add
    mode: str | None = None  #: add (optional), lock
    ms: int = 20  #: wait = sleep
    unlock: tuple[str, ...] = ()  #: wait
    text: str = ""  #: a one-line description

    @property
    def key(self) -> str:
        return f"change[{self.index}]"


@dataclass(frozen=True)
class LockKindChange:
    index: int
    line: int | None
    lock: str
    kind: str


@dataclass
class SchemeFileSpec:
    """A validated scheme file."""

    source: str
    text: str
    id: str
    base_cls: type[Scheme]
    description: str
    kernel: str
    family: str
    notes: str
    changes: tuple[Change, ...] = ()
    kinds: tuple[LockKindChange, ...] = ()


# ----------------------------------------------------------------------------------------------
# Parsing and static validation
# ----------------------------------------------------------------------------------------------


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


class _Ctx:
    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.locator = None
        if text is not None:
            from apactors.scenario.loader import _Locator

            self.locator = _Locator(text)

    def line(self, path: tuple) -> int | None:
        if self.locator is None:
            return None
        return self.locator.line_of(path) or 1

    def fail(self, path: tuple, detail: str) -> NoReturn:
        from apactors.scenario.loader import format_key_path

        raise SchemeFileError(detail, source=self.source, line=self.line(path),
                              key=format_key_path(path) or None)

    def string(self, table: Mapping[str, Any], path: tuple, key: str, required: bool = False,
               default: str | None = None) -> str | None:
        if key not in table:
            if required:
                self.fail(path + (key,), f"missing required key '{key}'")
            return default
        v = table[key]
        if not isinstance(v, str):
            self.fail(path + (key,), f"expected '{key}' as a string, got {_describe(v)}")
        return v

    def check_keys(self, table: Mapping[str, Any], path: tuple, allowed: Sequence[str], what: str) -> None:
        for k in table:
            if k not in allowed:
                self.fail(path + (k,), f"unknown key '{k}' in {what}; expected one of: {', '.join(allowed)}")


class _SchemeFacts:
    """What the static reading knows about the base scheme: its paths, lock classes and kinds."""

    def __init__(self, base_cls: type[Scheme]) -> None:
        from apactors.model import scheme_ast as sa

        self.cls = base_cls
        self.sa = sa
        self.methods = {m.attr: m for m in sa.scheme_methods(base_cls)}
        self.resolver = sa.resolver_for(base_cls)
        world_level = self.resolver.world_level()
        #: class -> kind for every lock class the scheme can name
        self.kinds: dict[str, str | None] = {c: v[1] for c, v in world_level.items()}
        self.global_classes = {c for c, v in world_level.items() if _is_global(base_cls, c)}
        self.replaceable = {c for c in world_level if _replaceable(self.resolver.world, c)}
        self._flat: dict[str, Any] = {}
        for info in self.methods.values():
            for ln in sa.method_lines(base_cls, info):
                for st in ln.steps:
                    if st.lock is not None and st.kind in ("acquire", "release"):
                        self.kinds.setdefault(st.lock, st.lock_kind)

    def flat(self, attr: str) -> Any:
        f = self._flat.get(attr)
        if f is None:
            f = self._flat[attr] = self.sa.flat_lock_steps(self.cls, attr)
        return f

    def resolve_path(self, name: str) -> str | list[str] | None:
        """The method name for ``name`` (a method or kernel function name); a list when ambiguous."""
        m = self.methods.get(name)
        if m is not None:
            return name
        hits = sorted(a for a, m in self.methods.items() if m.kernel == name)
        if len(hits) == 1:
            return hits[0]
        return hits or None

    def path_names(self) -> list[str]:
        names = set(self.methods)
        names |= {m.kernel for m in self.methods.values() if m.kernel}
        return sorted(names)


def _is_global(cls: type[Scheme], lock_cls: str) -> bool:
    """One instance per world (so a scheme file can name the instance by its class)."""
    from apactors.model import scheme_ast as sa

    built = sa.minimal_world(cls)
    if built is None:
        return False
    w = built[0]
    holders = [w.matrix_lock, w.mdevs_lock, w.guests_lock, w.workqueue_map, w.bus.perms_lock, w.bus.scan_mutex,
               w.bus.queues_lock]
    return any(getattr(h, "cls", None) == lock_cls for h in holders)


def _lock_holders(world: Any) -> Iterator[tuple[Any, str]]:
    """(object, attribute) of every lock whose kind a ``[[lock]]`` table may change."""
    for attr in ("matrix_lock", "mdevs_lock", "guests_lock"):
        yield world, attr
    for attr in ("perms_lock", "scan_mutex", "queues_lock"):
        yield world.bus, attr
    for vm in world.vms.values():
        for attr in ("lock", "pqap_hook_rwsem"):
            yield vm, attr
        for vcpu in vm.vcpus:
            yield vcpu, "mutex"


def _replaceable(world: Any, lock_cls: str) -> bool:
    if world is None:
        return False
    return any(getattr(getattr(o, a, None), "cls", None) == lock_cls for o, a in _lock_holders(world))


_KIND_CTORS = {
    "mutex": lambda c, i, v: Mutex(c, i, v),
    "spinlock": lambda c, i, v: Mutex(c, i, v, spin=True),
    "rwsem": lambda c, i, v: RwSem(c, i, v),
    "rwlock": lambda c, i, v: RwLock(c, i, v),
}


def parse_scheme_file(text: str, source: str, *, bases: Mapping[str, type[Scheme]] | None = None,
                      allow_registered_id: bool = False) -> SchemeFileSpec:
    """Parse and validate a scheme file's ``text``; errors name ``source`` and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS_RE.search(msg)
        line = col = None
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            msg = msg[: m.start()]
        raise SchemeFileError(f"TOML syntax error: {msg}", source=source, line=line, column=col) from None
    ctx = _Ctx(source, text)
    ctx.check_keys(data, (), _TOP_KEYS, "the scheme file")
    sid = ctx.string(data, (), "id", required=True)
    assert sid is not None
    if not _ID_RE.fullmatch(sid):
        ctx.fail(("id",), f"invalid scheme id {sid!r}: use letters, digits, '_', '.', '+', '-' (no whitespace)")
    base_id = ctx.string(data, (), "base", required=True)
    assert base_id is not None
    base_cls = (bases or {}).get(base_id)
    if base_cls is None:
        try:
            base_cls = get_scheme(base_id)
        except UnknownScheme as e:
            ctx.fail(("base",), f"unknown base scheme {base_id!r}: {e}")
    try:
        taken = get_scheme(sid)
    except UnknownScheme:
        taken = None
    if taken is not None and (_spec_of(taken) is None or not allow_registered_id):
        ctx.fail(("id",), f"scheme id {sid!r} is already taken by a registered scheme; choose another id")
    if sid == base_id:
        ctx.fail(("id",), f"scheme id {sid!r} is the id of its base; choose another id")
    name = Path(source).name
    description = ctx.string(data, (), "description", default=f"{base_id} with the changes of {name}")
    kernel = ctx.string(data, (), "kernel", default=f"{base_cls.kernel} (modified by {name})")
    family = ctx.string(data, (), "family", default=base_cls.family)
    notes = ctx.string(data, (), "notes", default="")
    facts = _SchemeFacts(base_cls)
    kinds = _parse_kinds(ctx, data, facts)
    kind_of = dict(facts.kinds)
    for kc in kinds:
        kind_of[kc.lock] = kc.kind
    changes = _parse_changes(ctx, data, facts, kind_of)
    return SchemeFileSpec(source=source, text=text, id=sid, base_cls=base_cls, description=description or "",
                          kernel=kernel or "", family=family or "", notes=notes or "", changes=tuple(changes),
                          kinds=tuple(kinds))


def _array_of_tables(ctx: _Ctx, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list):
        ctx.fail((key,), f"expected an array of tables ([[{key}]] sections), got {_describe(value)}")
    for i, v in enumerate(value):
        if not isinstance(v, Mapping):
            ctx.fail((key, i), f"expected a table ([[{key}]]), got {_describe(v)}")
    return value


def _lock_class(ctx: _Ctx, path: tuple, name: str, facts: _SchemeFacts) -> str:
    from apactors.model.scheme_ast import class_of_name

    cls = class_of_name(name) or name
    if cls not in facts.kinds:
        known = ", ".join(sorted(facts.kinds))
        ctx.fail(path, f"unknown lock class {name!r} for scheme {facts.cls.id}; its lock classes are: {known}")
    return cls


def _parse_kinds(ctx: _Ctx, data: Mapping[str, Any], facts: _SchemeFacts) -> list[LockKindChange]:
    out = []
    for i, t in enumerate(_array_of_tables(ctx, data, "lock")):
        path = ("lock", i)
        ctx.check_keys(t, path, _LOCK_KEYS, "[[lock]]")
        name = ctx.string(t, path, "class", required=True)
        kind = ctx.string(t, path, "kind", required=True)
        assert name is not None and kind is not None
        cls = _lock_class(ctx, path + ("class",), name, facts)
        if cls not in facts.replaceable:
            ctx.fail(path + ("class",), f"the kind of {cls!r} cannot be changed: only global, per-VM and "
                                        "per-vCPU locks can (created before the scheme runs)")
        if kind not in LOCK_KINDS:
            ctx.fail(path + ("kind",), f"unknown lock kind {kind!r}; expected one of: {', '.join(LOCK_KINDS)}")
        out.append(LockKindChange(i, ctx.line(path), cls, kind))
    return out


def _parse_point(ctx: _Ctx, path: tuple, text: Any, facts: _SchemeFacts, attr: str) -> Point:
    if not isinstance(text, str):
        ctx.fail(path, f"expected a point as a string (start, end, before/after +CLASS or -CLASS), "
                       f"got {_describe(text)}")
    t = text.strip()
    if t in POINT_WORDS:
        return Point(t, text=t)
    m = _POINT_RE.match(t)
    if not m:
        ctx.fail(path, f"invalid point {text!r}; expected start, end, 'before +CLASS', 'after -CLASS' "
                       "(optionally with #N)")
    where, sign, name, nth = m.group(1), m.group(2), m.group(3), int(m.group(4) or 1)
    cls = _lock_class(ctx, path, name, facts)
    if nth < 1:
        ctx.fail(path, f"invalid step number #{nth}: counting starts at #1")
    flat = facts.flat(attr)
    n = len(flat.indexes(sign, cls))
    if n < nth and not flat.dynamic:
        what = "acquire" if sign == "+" else "release"
        has = f"only {n}" if n else "no"
        ctx.fail(path, f"path {attr} has {has} {what} of {cls} (point {text!r}); its lock steps are: "
                       f"{_steps_summary(facts, attr)}")
    from apactors.model.scheme_ast import short_name

    return Point(where, sign, cls, nth, f"{where} {sign}{short_name(cls)}{'#' + str(nth) if nth > 1 else ''}")


def _steps_summary(facts: _SchemeFacts, attr: str) -> str:
    from apactors.model.scheme_ast import short_name

    flat = facts.flat(attr)
    if not flat.steps:
        return "(none)"
    parts = [f"{s.sign}{short_name(s.lock or '?')}" for s in flat.steps]
    if len(parts) > 30:
        parts = parts[:30] + ["…"]
    return " ".join(parts)


def _position(point: Point, flat: Any) -> float:
    """Where a point lies in the flattened steps (start -1, end len; before/after ∓0.5)."""
    if point.where == "start":
        return -1.0
    if point.where == "end":
        return float(len(flat.steps))
    idx = flat.indexes(point.sign, point.lock)
    if len(idx) < point.nth:
        return float(len(flat.steps)) + 1.0  # unknown (dynamic path): assume late
    i = idx[point.nth - 1]
    return i - 0.5 if point.where == "before" else i + 0.5


def _parse_changes(ctx: _Ctx, data: Mapping[str, Any], facts: _SchemeFacts,
                   kind_of: Mapping[str, str | None]) -> list[Change]:
    from apactors.model.scheme_ast import short_name

    out: list[Change] = []
    for i, t in enumerate(_array_of_tables(ctx, data, "change")):
        path = ("change", i)
        pname = ctx.string(t, path, "path", required=True)
        assert pname is not None
        attr = facts.resolve_path(pname)
        if attr is None:
            close = difflib.get_close_matches(pname, facts.path_names(), n=5)
            hint = f"; did you mean: {', '.join(close)}" if close else "; `apactors scheme show` lists them"
            ctx.fail(path + ("path",), f"unknown path {pname!r} for scheme {facts.cls.id}{hint}")
        if isinstance(attr, list):
            ctx.fail(path + ("path",), f"path {pname!r} is ambiguous in scheme {facts.cls.id}: it is the kernel "
                                       f"function of {', '.join(attr)}; name the method")
        assert isinstance(attr, str)
        actions = [a for a in ACTIONS if a in t]
        if len(actions) != 1:
            got = f"got {', '.join(actions)}" if actions else "got none"
            ctx.fail(path, f"a [[change]] needs exactly one of: move, drop, add, lock (with mode), wait; {got}")
        action = actions[0]
        ctx.check_keys(t, path, _KEYS_BY_ACTION[action], f"a '{action}' change")
        flat = facts.flat(attr)
        line = ctx.line(path)

        def taken(cls: str, sign: str, key: str) -> None:
            if flat.indexes(sign, cls) or flat.dynamic:
                return
            what = "takes" if sign == "+" else "releases"
            ctx.fail(path + (key,), f"path {attr} never {what} {cls} (its lock steps are: "
                                    f"{_steps_summary(facts, attr)})")

        if action == "move":
            spec = t["move"]
            if not isinstance(spec, str) or not _STEP_RE.match(spec):
                ctx.fail(path + ("move",), f"expected the step to move as '+CLASS' or '-CLASS' (optionally #N), "
                                           f"got {_describe(spec)}")
            m = _STEP_RE.match(spec)
            assert m is not None
            sign, nth = m.group(1), int(m.group(3) or 1)
            cls = _lock_class(ctx, path + ("move",), m.group(2), facts)
            taken(cls, sign, "move")
            idx = flat.indexes(sign, cls)
            if len(idx) < nth and not flat.dynamic:
                ctx.fail(path + ("move",), f"path {attr} has only {len(idx)} such steps of {cls}")
            if "to" not in t:
                ctx.fail(path + ("to",), "missing required key 'to' (where the step goes)")
            to = _parse_point(ctx, path + ("to",), t["to"], facts, attr)
            if to.sign == sign and to.lock == cls and to.nth == nth:
                ctx.fail(path + ("to",), "the point is the moved step itself")
            if idx and len(idx) >= nth:
                im = idx[nth - 1]
                pos = _position(to, flat)
                if flat.steps[im].try_:
                    ctx.fail(path + ("move",), f"cannot move a trylock of {cls}: the path branches on its result")
                if sign == "+":
                    rel = [j for j in flat.indexes("-", cls) if j > im]
                    if rel and pos > rel[0]:
                        ctx.fail(path + ("to",), f"{cls} would be taken after its release: path {attr} would "
                                                 f"end holding {cls}")
                    if pos < im and cls not in facts.global_classes:
                        ctx.fail(path + ("to",), f"cannot move the acquire of {cls} earlier than the path takes "
                                                 "it: it is a per-object lock whose instance is not known before "
                                                 "(only global locks can be taken earlier)")
                else:
                    acq = [j for j in flat.indexes("+", cls) if j < im]
                    if acq and pos < acq[-1]:
                        ctx.fail(path + ("to",), f"{cls} would be released before it is taken: a release "
                                                 "without an acquire")
            text = f"move {sign}{short_name(cls)}{'#' + str(nth) if nth > 1 else ''} to {to.text}"
            out.append(Change(i, line, attr, "move", cls, sign=sign, nth=nth, to=to, text=text))
        elif action == "drop":
            name = t["drop"]
            if not isinstance(name, str):
                ctx.fail(path + ("drop",), f"expected a lock class, got {_describe(name)}")
            cls = _lock_class(ctx, path + ("drop",), name, facts)
            if not flat.dynamic:
                acq, rel = flat.indexes("+", cls), flat.indexes("-", cls)
                if not acq and not rel:
                    taken(cls, "+", "drop")
                if acq and not rel:
                    ctx.fail(path + ("drop",), f"path {attr} takes {cls} but does not release it (its caller "
                                               "does): dropping it here would leave a release without an "
                                               "acquire; drop it in the caller")
                if rel and not acq:
                    ctx.fail(path + ("drop",), f"path {attr} releases {cls} but does not take it (its caller "
                                               "does): nothing to drop here; drop it in the caller")
            out.append(Change(i, line, attr, "drop", cls, text=f"drop {short_name(cls)}"))
        elif action == "add":
            name = t["add"]
            if not isinstance(name, str):
                ctx.fail(path + ("add",), f"expected a lock class, got {_describe(name)}")
            cls = _lock_class(ctx, path + ("add",), name, facts)
            if cls not in facts.global_classes:
                ctx.fail(path + ("add",), f"{cls} has one instance per object: 'add' takes global locks only "
                                          f"(one instance): {', '.join(sorted(facts.global_classes))}")
            if "acquire" not in t:
                ctx.fail(path + ("release",) if "release" in t else path + ("add",),
                         f"a release of {cls} without an acquire: add 'acquire = POINT'")
            if "release" not in t:
                ctx.fail(path + ("acquire",), f"an acquire of {cls} without a release: path {attr} would end "
                                              "holding it; add 'release = POINT'")
            pa = _parse_point(ctx, path + ("acquire",), t["acquire"], facts, attr)
            pr = _parse_point(ctx, path + ("release",), t["release"], facts, attr)
            if _position(pr, flat) <= _position(pa, flat):
                ctx.fail(path + ("release",), f"the release point ({pr.text}) does not come after the acquire "
                                              f"point ({pa.text}): a release without an acquire, and path {attr} "
                                              f"would end holding {cls}")
            mode = _mode(ctx, path, t, cls, kind_of, required=False)
            out.append(Change(i, line, attr, "add", cls, acquire=pa, release=pr, mode=mode or WRITE,
                              text=f"add {short_name(cls)}: acquire {pa.text}, release {pr.text}"))
        elif action == "lock":
            name = t["lock"]
            if not isinstance(name, str):
                ctx.fail(path + ("lock",), f"expected a lock class, got {_describe(name)}")
            cls = _lock_class(ctx, path + ("lock",), name, facts)
            taken(cls, "+", "lock")
            mode = _mode(ctx, path, t, cls, kind_of, required=True)
            out.append(Change(i, line, attr, "lock", cls, mode=mode,
                              text=f"take {short_name(cls)} in mode {mode}"))
        else:  # wait
            what = t["wait"]
            if not isinstance(what, str):
                ctx.fail(path + ("wait",), f"expected 'sleep' or a lock class, got {_describe(what)}")
            cls = ""
            if what != "sleep":
                cls = _lock_class(ctx, path + ("wait",), what, facts)
                if cls not in facts.global_classes:
                    ctx.fail(path + ("wait",), f"{cls} has one instance per object: a wait names a global lock "
                                               f"(one instance): {', '.join(sorted(facts.global_classes))}")
            elif "ms" in t:
                ms = t["ms"]
                if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
                    ctx.fail(path + ("ms",), f"expected a positive number of milliseconds, got {_describe(ms)}")
            if what != "sleep" and "ms" in t:
                ctx.fail(path + ("ms",), "'ms' goes with wait = \"sleep\"")
            if "at" not in t:
                ctx.fail(path + ("at",), "missing required key 'at' (where the wait goes)")
            at = _parse_point(ctx, path + ("at",), t["at"], facts, attr)
            raw = t.get("unlock", [])
            if not isinstance(raw, list):
                ctx.fail(path + ("unlock",), f"expected an array of lock classes, got {_describe(raw)}")
            unlock = []
            for j, u in enumerate(raw):
                if not isinstance(u, str):
                    ctx.fail(path + ("unlock", j), f"expected a lock class, got {_describe(u)}")
                unlock.append(_lock_class(ctx, path + ("unlock", j), u, facts))
            desc = f"sleep({t.get('ms', 20)}ms)" if not cls else f"wait for {short_name(cls)} to be free"
            if unlock:
                desc += " with " + ", ".join(short_name(u) for u in unlock) + " released"
            out.append(Change(i, line, attr, "wait", cls, to=at, ms=int(t.get("ms", 20)), unlock=tuple(unlock),
                              text=f"{desc} {at.text}"))
    return out


def _mode(ctx: _Ctx, path: tuple, t: Mapping[str, Any], cls: str, kind_of: Mapping[str, str | None],
          required: bool) -> str | None:
    if "mode" not in t:
        if required:
            ctx.fail(path + ("mode",), "missing required key 'mode' (r or w)")
        return None
    mode = t["mode"]
    if mode not in ("r", "w"):
        ctx.fail(path + ("mode",), f"expected mode 'r' or 'w', got {_describe(mode)}")
    kind = kind_of.get(cls)
    if mode == "r" and kind not in ("rwsem", "rwlock", "srcu"):
        ctx.fail(path + ("mode",), f"mode 'r' needs a reader/writer lock; {cls} is a {kind or 'lock'} "
                                   "(change its kind with a [[lock]] table)")
    return READ if mode == "r" else WRITE


# ----------------------------------------------------------------------------------------------
# The op-stream rewriter
# ----------------------------------------------------------------------------------------------


def _global_lock(scheme: Any, cls: str) -> Any:
    cache = scheme.__dict__.setdefault("_scheme_file_globals", {})
    lk = cache.get(cls)
    if lk is None:
        w = scheme.w
        for h in (w.matrix_lock, w.mdevs_lock, w.guests_lock, w.workqueue_map, w.bus.perms_lock, w.bus.scan_mutex,
                  w.bus.queues_lock):
            if getattr(h, "cls", None) == cls:
                lk = cache[cls] = h
                break
    return lk


def _held_instances(k: Any, cls: str) -> list[Any]:
    return [lk for lk in k.world.locks() if lk.cls == cls and k.name in lk.holders]


class _Rewrite:
    """One change applied to one activation of its path (state lives here)."""

    def __init__(self, spec: SchemeFileSpec, change: Change, scheme: Any, k: Any) -> None:
        self.spec = spec
        self.change = change
        self.scheme = scheme
        self.k = k
        self.affected = {change.lock, *change.unlock} - {""}
        self.inner_net: dict[int, int] = {}
        self.out_net: dict[int, int] = {}
        self.locks: dict[int, Any] = {}
        #: points with their counters: [point, count, fired, callback]
        self.points: list[list[Any]] = []

    # -- errors -----------------------------------------------------------------------------
    def error(self, detail: str) -> SchemeFileError:
        c = self.change
        return SchemeFileError(f"path {c.path} ({c.text}), task {self.k.name}: {detail}", source=self.spec.source,
                               line=c.line, key=c.key)

    # -- accounting of the changed locks ----------------------------------------------------
    def _track(self, net: dict[int, int], op: Op, result: Any) -> None:
        cls = op.__class__
        if cls is Acquire:
            lk = op.lock  # type: ignore[attr-defined]
            if lk.cls in self.affected and (not op.try_ or result):  # type: ignore[attr-defined]
                net[id(lk)] = net.get(id(lk), 0) + 1
                self.locks[id(lk)] = lk
        elif cls is Release:
            lk = op.lock  # type: ignore[attr-defined]
            if lk.cls in self.affected:
                net[id(lk)] = net.get(id(lk), 0) - 1
                self.locks[id(lk)] = lk

    def passthrough(self, op: Op) -> Iterator[Op]:
        r = yield op
        self._track(self.inner_net, op, r)
        self._track(self.out_net, op, r)
        return r

    def swallow(self, op: Op) -> bool:
        """The path's own step is not done (held back or dropped): it proceeds as if it succeeded."""
        self._track(self.inner_net, op, True)
        return True

    def emit(self, op: Op) -> Iterator[Op]:
        if op.__class__ is Release and self.k.name not in op.lock.holders:  # type: ignore[attr-defined]
            raise self.error(f"releases {op.lock.cls} ({op.lock.inst}), which the task does not hold: "  # type: ignore[attr-defined]
                             "a release without an acquire")
        r = yield op
        self._track(self.out_net, op, r)
        return r

    def note(self, text: str) -> Iterator[Op]:
        yield Note("warn", f"{self.spec.source}:{self.change.line}: {text}")

    # -- points -----------------------------------------------------------------------------
    def add_point(self, point: Point, callback: Any) -> None:
        self.points.append([point, 0, False, callback])

    def at_start(self) -> Iterator[Op]:
        for p in self.points:
            if p[0].where == "start" and not p[2]:
                p[2] = True
                yield from p[3]()

    def at_end(self) -> Iterator[Op]:
        for p in self.points:
            if p[0].where == "end" and not p[2]:
                p[2] = True
                yield from p[3]()

    def on_op(self, op: Op) -> Iterator[Op]:
        before, after = self.fire_points(op)
        for cb in before:
            yield from cb()
        r = yield from self.passthrough(op)
        for cb in after:
            yield from cb()
        return r

    def fire_points(self, op: Op) -> tuple[list[Any], list[Any]]:
        before: list[Any] = []
        after: list[Any] = []
        if op.__class__ is not Acquire and op.__class__ is not Release:
            return before, after
        for p in self.points:
            pt = p[0]
            if p[2] or pt.where in POINT_WORDS or not pt.matches(op):
                continue
            p[1] += 1
            if p[1] == pt.nth:
                p[2] = True
                (before if pt.where == "before" else after).append(p[3])
        return before, after

    def check_end(self) -> None:
        for key in list(self.out_net) + [k for k in self.inner_net if k not in self.out_net]:
            o, i = self.out_net.get(key, 0), self.inner_net.get(key, 0)
            if o != i:
                lk = self.locks[key]
                if o > i:
                    raise self.error(f"the path returns holding {lk.cls} ({lk.inst}), which the original path "
                                     "does not hold at its return")
                raise self.error(f"the path returns without {lk.cls} ({lk.inst}), which the original path holds "
                                 "at its return")


class _Move(_Rewrite):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        c = self.change
        self.seen = 0
        self.done = False
        self.held: Op | None = None
        self.pre: Any = None
        self.fired = False
        assert c.to is not None
        self.add_point(c.to, self.fire)

    def fire(self) -> Iterator[Op]:
        self.fired = True
        if self.held is not None:
            op, self.held = self.held, None
            yield from self.emit(op)
            return
        if self.done:
            return
        c = self.change
        if c.sign == "+":
            lk = _global_lock(self.scheme, c.lock)
            if lk is None:
                raise self.error(f"the point comes before the path takes {c.lock}, and the instance to take "
                                 "earlier is not known (not a global lock)")
            self.pre = lk
            yield from self.emit(Acquire(lk, WRITE))
        else:
            held = _held_instances(self.k, c.lock)
            if len(held) != 1:
                raise self.error(f"the point comes before the path releases {c.lock}, and the task holds "
                                 f"{len(held)} instances of it")
            self.pre = held[0]
            yield from self.emit(Release(held[0], held[0].holders[self.k.name]))

    def is_moved(self, op: Op) -> bool:
        if self.done:
            return False
        c = self.change
        cls = op.__class__
        if (cls is Acquire and c.sign == "+") or (cls is Release and c.sign == "-"):
            if op.lock.cls == c.lock:  # type: ignore[attr-defined]
                self.seen += 1
                return self.seen == c.nth
        return False

    def on_op(self, op: Op) -> Iterator[Op]:
        if self.is_moved(op):
            self.done = True
            if self.fired:  # done at the point already
                if self.pre is not op.lock:  # type: ignore[attr-defined]
                    raise self.error(f"the step was done at {self.change.to.text} on "  # type: ignore[union-attr]
                                     f"{self.pre.inst if self.pre else '?'}, but the path then used "
                                     f"{op.lock.inst}")  # type: ignore[attr-defined]
                return self.swallow(op)
            if op.__class__ is Acquire and op.try_:  # type: ignore[attr-defined]
                raise self.error("cannot move a trylock: the path branches on its result")
            self.held = op
            return self.swallow(op)
        held = self.held
        if held is not None and held.__class__ is Acquire and op.__class__ is Release \
                and op.lock is held.lock:  # type: ignore[attr-defined]
            # the point did not come before the lock's release: take it right before that
            self.held = None
            yield from self.note(f"{self.change.to.text} did not happen before the release of "  # type: ignore[union-attr]
                                 f"{held.lock.cls}: taken right before it")  # type: ignore[attr-defined]
            yield from self.emit(held)
        return (yield from super().on_op(op))

    def at_end(self) -> Iterator[Op]:
        yield from super().at_end()
        if self.held is not None:
            op, self.held = self.held, None
            what = "taken" if op.__class__ is Acquire else "released"
            yield from self.note(f"{self.change.to.text} did not happen: {op.lock.cls} "  # type: ignore[union-attr, attr-defined]
                                 f"{what} at the end of the path")
            yield from self.emit(op)


class _Drop(_Rewrite):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.dropped: dict[int, int] = {}

    def on_op(self, op: Op) -> Iterator[Op]:
        cls = op.__class__
        if cls is Acquire or cls is Release:
            lk = op.lock  # type: ignore[attr-defined]
            if lk.cls == self.change.lock:
                n = self.dropped.get(id(lk), 0)
                if cls is Acquire:
                    self.dropped[id(lk)] = n + 1
                    return self.swallow(op)
                if n > 0:
                    self.dropped[id(lk)] = n - 1
                    return self.swallow(op)
        return (yield from self.passthrough(op))


class _Mode(_Rewrite):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.changed: dict[int, int] = {}

    def on_op(self, op: Op) -> Iterator[Op]:
        cls = op.__class__
        mode = self.change.mode or WRITE
        if cls is Acquire or cls is Release:
            lk = op.lock  # type: ignore[attr-defined]
            if lk.cls == self.change.lock:
                if cls is Acquire:
                    new: Op = Acquire(lk, mode, op.try_, op.owner, op.subclass)  # type: ignore[attr-defined]
                    r = yield new
                    self._track(self.inner_net, op, r)
                    self._track(self.out_net, new, r)
                    if not op.try_ or r:  # type: ignore[attr-defined]
                        self.changed[id(lk)] = self.changed.get(id(lk), 0) + 1
                    return r
                n = self.changed.get(id(lk), 0)
                if n > 0:
                    self.changed[id(lk)] = n - 1
                    new = Release(lk, mode)
                    r = yield new
                    self._track(self.inner_net, op, r)
                    self._track(self.out_net, new, r)
                    return r
        return (yield from self.passthrough(op))


class _Add(_Rewrite):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        c = self.change
        self.taken: Any = None
        assert c.acquire is not None and c.release is not None
        self.add_point(c.acquire, self.take)
        self.add_point(c.release, self.give)

    def take(self) -> Iterator[Op]:
        lk = _global_lock(self.scheme, self.change.lock)
        if lk is None:
            raise self.error(f"no instance of {self.change.lock} in this world")
        self.taken = lk
        yield from self.emit(Acquire(lk, self.change.mode or WRITE))

    def give(self) -> Iterator[Op]:
        if self.taken is None:
            return  # the acquire point did not come: nothing to release
        lk, self.taken = self.taken, None
        yield from self.emit(Release(lk, self.change.mode or WRITE))


class _Wait(_Rewrite):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        assert self.change.to is not None
        self.add_point(self.change.to, self.wait)

    def wait(self) -> Iterator[Op]:
        c = self.change
        dropped: list[tuple[Any, str]] = []
        for cls in c.unlock:
            held = _held_instances(self.k, cls)
            if not held:
                raise self.error(f"the wait releases {cls}, which the task does not hold at {c.to.text}")  # type: ignore[union-attr]
            for lk in held:
                dropped.append((lk, lk.holders[self.k.name]))
                yield from self.emit(Release(lk, lk.holders[self.k.name]))
        if c.lock:
            lk = _global_lock(self.scheme, c.lock)
            if lk is None:
                raise self.error(f"no instance of {c.lock} in this world")
            yield from self.emit(Acquire(lk, WRITE))
            yield from self.emit(Release(lk, WRITE))
        else:
            yield Sleep(c.ms)
        for lk, mode in reversed(dropped):
            yield from self.emit(Acquire(lk, mode))


_REWRITES = {"move": _Move, "drop": _Drop, "lock": _Mode, "add": _Add, "wait": _Wait}


def _rewrite(spec: SchemeFileSpec, change: Change, scheme: Any, k: Any, inner: Any, kernel: str | None) -> Any:
    """Run ``inner`` (a path generator) with ``change`` applied to its op stream."""
    rw = _REWRITES[change.action](spec, change, scheme, k)
    try:
        saved = k.stack
        if kernel:
            k.stack = saved + (kernel,)
        yield from rw.at_start()
        k.stack = saved
        value: Any = None
        started = False
        while True:
            try:
                op = inner.send(value) if started else next(inner)
            except StopIteration as stop:
                ret = stop.value
                break
            started = True
            value = yield from rw.on_op(op)
        saved = k.stack
        if kernel:
            k.stack = saved + (kernel,)
        yield from rw.at_end()
        k.stack = saved
        rw.check_end()
        return ret
    finally:
        inner.close()


def _make_wrapper(spec: SchemeFileSpec, base_cls: type, attr: str, changes: tuple[Change, ...],
                  clsname: str) -> Any:
    original = getattr(base_cls, attr)
    kernel = getattr(original, "kernel_path", None)

    def rewritten(self: Any, k: Any, *args: Any, **kwargs: Any) -> Any:
        gen = original(self, k, *args, **kwargs)
        for ch in changes:
            gen = _rewrite(spec, ch, self, k, gen, kernel)
        return (yield from gen)

    rewritten.__name__ = attr
    rewritten.__qualname__ = f"{clsname}.{attr}"
    rewritten.__doc__ = f"{attr} of {base_cls.id} with the changes of {spec.source}: " + \
        "; ".join(c.text for c in changes)
    if kernel is not None:
        rewritten.kernel_path = kernel  # type: ignore[attr-defined]
    rewritten.__scheme_file_original__ = original  # type: ignore[attr-defined]
    rewritten.__scheme_file_changes__ = changes  # type: ignore[attr-defined]
    return rewritten


def build_scheme_class(spec: SchemeFileSpec) -> type[Scheme]:
    """The scheme class of a validated scheme file: a subclass of the base scheme."""
    base_cls = spec.base_cls
    clsname = "SchemeFile_" + re.sub(r"\W", "_", spec.id)
    ns: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": clsname,
        "__doc__": f"Scheme {spec.id} from {spec.source} (base {base_cls.id}).",
        "id": spec.id,
        "base": base_cls.id,
        "kernel": spec.kernel,
        "description": spec.description,
        "family": spec.family,
        "notes": _notes(spec),
        "__scheme_file__": spec,
    }
    by_path: dict[str, list[Change]] = {}
    for c in spec.changes:
        by_path.setdefault(c.path, []).append(c)
    for attr, changes in by_path.items():
        ns[attr] = _make_wrapper(spec, base_cls, attr, tuple(changes), clsname)
    if spec.kinds:
        kinds = spec.kinds

        def __init__(self: Any, world: Any) -> None:  # noqa: N807
            base_cls.__init__(self, world)
            for kc in kinds:
                for obj, a in _lock_holders(world):
                    lk = getattr(obj, a)
                    if lk.cls == kc.lock:
                        setattr(obj, a, _KIND_CTORS[kc.kind](lk.cls, lk.inst, lk.validate))

        ns["__init__"] = __init__
    return type(clsname, (base_cls,), ns)


def _notes(spec: SchemeFileSpec) -> str:
    lines = [f"User-defined scheme from {spec.source}, derived from {spec.base_cls.id}."]
    for kc in spec.kinds:
        lines.append(f"* {spec.source}:{kc.line}: {kc.lock} is a {kc.kind}.")
    for c in spec.changes:
        lines.append(f"* {spec.source}:{c.line}: {c.path}: {c.text}.")
    if spec.notes:
        lines.append(spec.notes)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Entry points: files, text, trace headers
# ----------------------------------------------------------------------------------------------


def scheme_from_toml(text: str, source: str, *, register: bool = False,
                     bases: Mapping[str, type[Scheme]] | None = None) -> type[Scheme]:
    """The scheme class defined by scheme-file ``text`` (``source`` names it in errors).

    With ``register``, the scheme is also made available under its id (``get_scheme``), so that
    another scheme file can use it as its base.
    """
    spec = parse_scheme_file(text, source, bases=bases, allow_registered_id=register)
    cls = build_scheme_class(spec)
    if register:
        from apactors.model.schemes.base import register as _register

        _register(cls)
    return cls


def load_scheme_file(path: str | Path, *, register: bool = False) -> type[Scheme]:
    """Read and validate a scheme file; :class:`SchemeFileError` names the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SchemeFileError(f"cannot read the scheme file: {e.strerror or e}", source=str(path)) from None
    except UnicodeDecodeError as e:
        raise SchemeFileError(f"the scheme file is not UTF-8 text: {e}", source=str(path)) from None
    return scheme_from_toml(text, str(path), register=register)


def _spec_of(cls: type) -> SchemeFileSpec | None:
    return cls.__dict__.get("__scheme_file__")


def scheme_file_spec(cls: type) -> SchemeFileSpec | None:
    """The scheme-file definition of ``cls`` (None for a scheme written in Python)."""
    return _spec_of(cls)


def is_builtin(cls: type) -> bool:
    return cls.__module__ in BUILTIN_MODULES or cls.__module__.startswith("apactors.model.schemes.")


def scheme_to_dict(cls: type[Scheme]) -> dict[str, Any] | None:
    """What a trace header needs to rebuild ``cls``: None for a built-in scheme (its id suffices), the
    file's text for a scheme file (self-contained), the module for a Python scheme registered from
    outside apactors (an entry point or ``--scheme-module``)."""
    spec = _spec_of(cls)
    if spec is not None:
        d: dict[str, Any] = {"kind": "scheme-file", "id": cls.id, "source": spec.source, "text": spec.text}
        base = scheme_to_dict(spec.base_cls)
        if base is not None:
            d["base"] = base
        return d
    if is_builtin(cls):
        return None
    import sys

    d = {"kind": "python", "id": cls.id, "module": cls.__module__, "qualname": cls.__qualname__}
    f = getattr(sys.modules.get(cls.__module__), "__apactors_scheme_file__", None)
    if f is not None:
        d["file"] = f  # imported from a file (--scheme-module path/to/x.py): replay imports that file
    return d


def scheme_from_dict(d: Mapping[str, Any], source: str = "trace header") -> type[Scheme]:
    """Rebuild a scheme from :func:`scheme_to_dict`'s output (raises :class:`SchemeDefinitionError`)."""
    if not isinstance(d, Mapping):
        raise SchemeDefinitionError(f"expected a scheme definition (a table), got {_describe(d)}", source=source)
    kind = d.get("kind")
    if kind == "scheme-file":
        text, sid = d.get("text"), d.get("id")
        if not isinstance(text, str) or not isinstance(sid, str):
            raise SchemeDefinitionError("scheme-file definition without 'text' and 'id'", source=source)
        bases: dict[str, type[Scheme]] = {}
        if d.get("base") is not None:
            base = scheme_from_dict(d["base"], source)
            bases[base.id] = base
        src = f"{d.get('source', '<scheme file>')} (as embedded in the {source})"
        try:
            existing = get_scheme(sid)
        except UnknownScheme:
            existing = None
        spec = _spec_of(existing) if existing is not None else None
        if spec is not None and spec.text == text:
            return existing  # type: ignore[return-value]
        cls = scheme_from_toml(text, src, bases=bases)
        if cls.id != sid:
            raise SchemeDefinitionError(f"embedded scheme file defines {cls.id!r}, expected {sid!r}", source=source)
        return cls
    if kind == "python":
        from apactors.model.registry_ext import load_scheme_module

        module, sid = d.get("module"), d.get("id")
        if not isinstance(module, str) or not isinstance(sid, str):
            raise SchemeDefinitionError("python scheme definition without 'module' and 'id'", source=source)
        try:
            return get_scheme(sid)
        except UnknownScheme:
            pass
        load_scheme_module(d["file"] if isinstance(d.get("file"), str) else module)
        try:
            return get_scheme(sid)
        except UnknownScheme:
            raise SchemeDefinitionError(f"module {module} registers no scheme {sid!r}", source=source) from None
    raise SchemeDefinitionError(f"unknown scheme definition kind {kind!r}", source=source)


def scheme_from_header(header: Mapping[str, Any], source: str = "trace header") -> type[Scheme]:
    """The scheme of a trace header: ``scheme_def`` (see :func:`scheme_to_dict`) if present, else the
    registered scheme named by ``scheme``."""
    d = header.get("scheme_def")
    if d is not None:
        return scheme_from_dict(d, source)
    return get_scheme(header["scheme"])


__all__ = [
    "Change", "LOCK_KINDS", "LockKindChange", "Point", "SchemeDefinitionError", "SchemeFileError", "SchemeFileSpec",
    "build_scheme_class", "is_builtin", "load_scheme_file", "parse_scheme_file", "scheme_file_spec",
    "scheme_from_dict", "scheme_from_header", "scheme_from_toml", "scheme_to_dict",
]
