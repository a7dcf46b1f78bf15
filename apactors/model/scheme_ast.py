"""A static reading of a scheme's code paths, in the step notation of the domain doc §0.1.

Every path of a scheme is a generator method; this module reads its source (the AST of the function
the scheme's MRO resolves the method name to) and turns it into lines a reviewer can put next to the
domain doc::

    +ap_attr_mutex
    call get_update_locks_for_mdev(mdev)
    rc := call _assign(mdev, buf, adapter=True)
    ...

It is derived from the code that runs, so it cannot drift from it: ``yield Acquire(...)`` is ``+X``,
``yield Release(...)`` is ``-X``, ``yield Read(obj, "f", "expr")`` is ``R: expr``, ``yield Write(...)``
is ``W: expr := value``, ``yield Update(...)`` is ``W: expr += arg`` (or the update function), ``yield
Block(Cond(...))`` is ``block: …``, ``yield Sleep(20)`` is ``sleep(20ms)``, ``yield from self.x(k, …)``
is ``call x(…)`` and ``return -errno.EBUSY`` is ``→ -EBUSY``.  Control flow (``if``/``for``/``while``/
``try``) is kept, indented, wherever it contains a step, a return or a raise; local computation
without a step is left out.

Lock expressions become the short names of the doc's §2.1 "In steps" column: the lock object an
expression designates is looked up in a small world built for the scheme (``self.w.bus.perms_lock``
is ``ap_attr_mutex`` in `latest`, ``ap_perms_mutex`` before), or, for locks that live in per-VM,
per-vCPU, per-group, per-device objects, by the attribute name (``kvm.lock`` is ``&kvm->lock``).
Each step line also carries structured data (lock class, sign, mode, callee) used by the validation
of scheme files (:mod:`apactors.model.scheme_file`) and by ``apactors scheme show --json``.
"""

from __future__ import annotations

import ast
import copy
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any, Iterator

from apactors.model import ops as O
from apactors.model.locks import RECURSIVE_READ, WRITE

# ----------------------------------------------------------------------------------------------
# Lock classes and their short names (domain doc §2.1, "In steps" column)
# ----------------------------------------------------------------------------------------------

#: lockdep class -> the short name the doc's steps use
SHORT_NAMES: dict[str, str] = {
    "&matrix_dev->lock": "L",
    "&matrix_dev->mdevs_lock": "mdevs_lock",
    "&matrix_dev->guests_lock": "guests_lock",
    "&kvm->lock": "kvm->lock",
    "&vcpu->mutex": "vcpu->mutex",
    "&kvm->srcu": "kvm->srcu",
    "&kvm->arch.crypto.pqap_hook_rwsem": "pqap_hook_rwsem",
    "ap_perms_mutex": "ap_perms_mutex",
    "ap_attr_mutex": "ap_attr_mutex",
    "ap_scan_bus_mutex": "ap_scan_bus_mutex",
    "&dev->mutex": "device_lock(qdev)",
    "ap_queues_lock": "ap_queues_lock",
    "&aq->lock": "aq->lock",
    "&group->group_lock": "group_lock",
    "&new_dev_set->lock": "dev_set->lock",
    "&group->kvm_ref_lock": "kvm_ref_lock",
    "&(&group->notifier)->rwsem": "notifier_rwsem",
    "(work_completion)(&q->reset_work)": "q->reset_work",
    "(wq_completion)events_long": "events_long",
    # hypothetical locks of §5.12
    "&matrix_dev->mdevs_rwsem": "mdevs_rwsem",
    "mdevs_rwlock": "mdevs_rwlock",
    "&matrix_dev->rwl_mutex": "rwl_mutex",
    "&matrix_dev->pqap_srcu": "pqap_srcu",
    "&q->lock": "q->lock",
}

#: lock kinds whose acquisitions carry a mode in the doc's notation (``+X(r)``, ``+X(w)``)
RW_KINDS = frozenset({"rwsem", "rwlock", "srcu"})


def short_name(cls: str) -> str:
    """The doc's short name of a lock class (the class itself when the doc has none)."""
    return SHORT_NAMES.get(cls, cls)


def class_of_name(name: str) -> str | None:
    """The lock class a name designates: a lockdep class string, or a short name of §2.1."""
    if name in SHORT_NAMES:
        return name
    for cls, short in SHORT_NAMES.items():
        if short == name:
            return cls
    return None


def mode_suffix(kind: str | None, mode: str | None, doc: bool = True) -> str:
    """``(r)``/``(w)`` for reader/writer locks (and for any non-exclusive acquisition), else ``""``.

    ``doc=True`` follows the doc (a recursive reader such as ``kvm->srcu`` is ``(r)``); ``doc=False``
    keeps lockdep's distinction (``(R)`` for a recursive reader)."""
    if mode is None:
        return ""
    if mode == RECURSIVE_READ:
        return "(r)" if doc else "(R)"
    if kind in RW_KINDS or mode != WRITE:
        return f"({mode})"
    return ""


# ----------------------------------------------------------------------------------------------
# Structured lines
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One operation a line yields: ``kind`` is the op code (``acquire``, ``release``, ``read``,
    ``write``, ``block``, ``call``, …); lock steps have ``lock`` (class), ``lock_kind`` and ``mode``;
    calls have ``callee`` (the method name on the scheme, None for a dynamic call)."""

    kind: str
    lock: str | None = None
    lock_kind: str | None = None
    mode: str | None = None
    try_: bool = False
    callee: str | None = None
    dynamic: bool = False  #: a call the static reading cannot resolve (``getattr(self, fn)(…)``)
    func: Any = None  #: the function of an explicit call (``super().x(…)``, ``Base.x(self, …)``)

    @property
    def sign(self) -> str | None:
        if self.kind == "acquire":
            return "try+" if self.try_ else "+"
        if self.kind == "release":
            return "-"
        return None


@dataclass(frozen=True)
class Line:
    """One rendered line: indentation depth, text, and the steps it contains (in order)."""

    depth: int
    text: str
    steps: tuple[Step, ...] = ()
    significant: bool = True  #: a step, a return or a raise (or a structure containing one)

    def render(self, indent: str = "  ") -> str:
        return indent * self.depth + self.text


# ----------------------------------------------------------------------------------------------
# Methods of a scheme
# ----------------------------------------------------------------------------------------------


def unwrap(fn: Any) -> Any:
    """The function whose code a scheme method runs: through ``@path`` wrappers and scheme-file
    rewrites (the latter keep the original in ``__scheme_file_original__``)."""
    seen = 0
    while seen < 20:
        seen += 1
        orig = getattr(fn, "__scheme_file_original__", None)
        if orig is not None:
            fn = orig
            continue
        inner = getattr(fn, "__wrapped__", None)
        if inner is not None:
            fn = inner
            continue
        break
    return fn


@dataclass
class MethodInfo:
    """A method of a scheme: a ``@path`` (``kernel`` is its kernel function name), a helper generator
    reached from a path, or a scenario operation (``op_*``)."""

    attr: str
    kernel: str | None
    func: Any  #: what ``getattr(scheme_cls, attr)`` returns
    code: Any  #: the function whose source is read
    role: str  #: "path", "helper" or "operation"
    qualname: str = ""
    module: str = ""
    file: str | None = None
    line: int | None = None
    rewrites: tuple[Any, ...] = ()  #: scheme-file changes applied to this path (``Change`` objects)

    @property
    def alias(self) -> str | None:
        """The name of the function the attribute is bound to when it differs (variants chosen by
        assignment, ``set_masks = KvmPaths.set_masks_ma``)."""
        name = getattr(self.code, "__name__", self.attr)
        return name if name != self.attr else None


def _is_generator(fn: Any) -> bool:
    return inspect.isgeneratorfunction(unwrap(fn))


def _method_info(cls: type, attr: str, role: str) -> MethodInfo:
    func = getattr(cls, attr)
    code = unwrap(func)
    try:
        file = inspect.getsourcefile(code)
        line = inspect.getsourcelines(code)[1]
    except (OSError, TypeError):
        file, line = None, None
    return MethodInfo(attr=attr, kernel=getattr(func, "kernel_path", None), func=func, code=code, role=role,
                      qualname=getattr(code, "__qualname__", attr), module=getattr(code, "__module__", ""),
                      file=file, line=line, rewrites=tuple(getattr(func, "__scheme_file_changes__", ())))


def path_attrs(cls: type) -> list[str]:
    """Every attribute of ``cls`` (through its MRO) that is a ``@path``, sorted."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if getattr(value, "kernel_path", None) is not None:
                seen.add(attr)
    return sorted(a for a in seen if getattr(getattr(cls, a, None), "kernel_path", None) is not None)


def scheme_methods(cls: type) -> list[MethodInfo]:
    """The paths of ``cls``, the helper generators they reach and the scenario operations (``op_*``),
    each resolved through the MRO (an override shows the overriding code)."""
    out: dict[str, MethodInfo] = {}
    for attr in path_attrs(cls):
        out[attr] = _method_info(cls, attr, "path")
    for attr in sorted(dir(cls)):
        if attr.startswith("op_") and attr not in out and _is_generator(getattr(cls, attr)):
            out[attr] = _method_info(cls, attr, "operation")
    # helpers: generator methods reached with ``yield from self.x(...)`` that are not paths
    todo = list(out)
    while todo:
        attr = todo.pop()
        for callee in sorted(_callees(cls, out[attr])):
            if callee in out or not hasattr(cls, callee):
                continue
            fn = getattr(cls, callee)
            if not callable(fn) or not _is_generator(fn):
                continue
            out[callee] = _method_info(cls, callee, "helper")
            todo.append(callee)
    return list(out.values())


def _callees(cls: type, info: MethodInfo) -> set[str]:
    tree = _function_ast(info.code)
    found: set[str] = set()
    if tree is None:
        return found
    for node in ast.walk(tree):
        if isinstance(node, ast.YieldFrom) and isinstance(node.value, ast.Call):
            f = node.value.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
                found.add(f.attr)
    return found


_AST_CACHE: dict[Any, ast.FunctionDef | None] = {}


def _function_ast(code: Any) -> ast.FunctionDef | None:
    if code in _AST_CACHE:
        return _AST_CACHE[code]
    tree: ast.FunctionDef | None = None
    try:
        src = textwrap.dedent(inspect.getsource(code))
        mod = ast.parse(src)
        node = mod.body[0]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            tree = node  # type: ignore[assignment]
    except (OSError, TypeError, SyntaxError, IndexError):
        tree = None
    _AST_CACHE[code] = tree
    return tree


# ----------------------------------------------------------------------------------------------
# Lock resolution for one scheme
# ----------------------------------------------------------------------------------------------


def _sample_object_locks() -> dict[str, tuple[str, str]]:
    """Attribute name -> (class, kind) of the locks that live in per-object model objects."""
    from apactors.model.world import MatrixMdev, QueueDevice, Vm, WorkItem

    vm = Vm("g", 1, False)
    m = MatrixMdev("m")
    qd = QueueDevice(0, 0)
    wi = WorkItem("w", m, None)
    table: dict[str, tuple[str, str]] = {}
    for attr, lk in (("lock", vm.lock), ("srcu", vm.srcu), ("pqap_hook_rwsem", vm.pqap_hook_rwsem),
                     ("mutex", vm.vcpus[0].mutex), ("group_lock", m.group.group_lock),
                     ("notifier_rwsem", m.group.notifier_rwsem), ("kvm_ref_lock", m.group.kvm_ref_lock),
                     ("dev_set_lock", m.vdev.dev_set_lock), ("device_lock", qd.device_lock), ("map", wi.map)):
        table[attr] = (lk.cls, lk.kind)
    return table


_OBJECT_LOCKS: dict[str, tuple[str, str]] | None = None
_QUEUE_OWNERS = frozenset({"q", "queue", "aq", "vq"})


def minimal_world(cls: type) -> tuple[Any, Any] | None:
    """A world and scheme instance for ``cls`` built from an empty scenario (one guest), or None if the
    scheme cannot build it.  Used to learn which lock object a scheme's world-level names designate."""
    cache = _WORLD_CACHE
    if cls in cache:
        return cache[cls]
    from apactors.model.build import build_world
    from apactors.scenario.model import GuestSpec, HostSpec, Scenario

    sc = Scenario(name="scheme-show", description="", host=HostSpec(), guests=(GuestSpec("g0", 1, False),),
                  mdevs=(), actors=())
    try:
        result: tuple[Any, Any] | None = build_world(cls, sc)
    except Exception:  # noqa: BLE001 - a scheme under construction: fall back to static names
        result = None
    cache[cls] = result
    return result


_WORLD_CACHE: dict[type, tuple[Any, Any] | None] = {}

_WORLD_FALLBACK = {
    "matrix_lock": ("&matrix_dev->lock", "mutex"),
    "mdevs_lock": ("&matrix_dev->mdevs_lock", "mutex"),
    "guests_lock": ("&matrix_dev->guests_lock", "mutex"),
    "workqueue_map": ("(wq_completion)events_long", "map"),
    "scan_mutex": ("ap_scan_bus_mutex", "mutex"),
    "queues_lock": ("ap_queues_lock", "spinlock"),
}


class LockResolver:
    """Maps a lock expression of a path (``self.w.guests_lock``, ``kvm.lock``) to (class, kind)."""

    def __init__(self, cls: type) -> None:
        global _OBJECT_LOCKS
        if _OBJECT_LOCKS is None:
            _OBJECT_LOCKS = _sample_object_locks()
        self.cls = cls
        built = minimal_world(cls)
        self.world = built[0] if built else None
        self.scheme = built[1] if built else None

    def world_level(self) -> dict[str, tuple[str, str, Any]]:
        """class -> (class, kind, lock object) of every lock of the scheme's minimal world."""
        out: dict[str, tuple[str, str, Any]] = {}
        if self.world is not None:
            for lk in self.world.locks():
                out.setdefault(lk.cls, (lk.cls, lk.kind, lk))
        return out

    def resolve_chain(self, chain: list[str]) -> tuple[str, str | None]:
        if chain and chain[0] == "self" and self.scheme is not None:
            obj: Any = self.scheme
            try:
                for part in chain[1:]:
                    obj = getattr(obj, part)
            except AttributeError:
                obj = None
            if obj is not None and hasattr(obj, "cls") and hasattr(obj, "kind"):
                return obj.cls, obj.kind
        attr = chain[-1] if chain else ""
        owner = chain[-2] if len(chain) >= 2 else ""
        if attr == "lock" and owner in _QUEUE_OWNERS:
            return "&q->lock", "mutex"
        if attr == "perms_lock":
            return getattr(self.cls, "perms_lock_class", "ap_perms_mutex"), "mutex"
        if self.world is not None:
            for holder in (self.world, self.world.bus):
                lk = getattr(holder, attr, None)
                if lk is not None and hasattr(lk, "cls") and hasattr(lk, "kind"):
                    return lk.cls, lk.kind
        if attr in _WORLD_FALLBACK:
            return _WORLD_FALLBACK[attr]
        assert _OBJECT_LOCKS is not None
        if attr in _OBJECT_LOCKS:
            return _OBJECT_LOCKS[attr]
        return ".".join(chain) or "?", None


_RESOLVERS: dict[type, LockResolver] = {}


def resolver_for(cls: type) -> LockResolver:
    r = _RESOLVERS.get(cls)
    if r is None:
        r = _RESOLVERS[cls] = LockResolver(cls)
    return r


# ----------------------------------------------------------------------------------------------
# Rendering one function
# ----------------------------------------------------------------------------------------------

_UPDATE_FORMS = {
    "mask_with": "+=", "mask_without": "-=", "mask_minus": "-=", "tuple_append": "+=",
    "tuple_remove": "-=", "qtable_add": "+=", "qtable_del": "-=", "inc": "+=", "dec": "-=",
    "count_add": "+=", "count_sub": "-=", "range_add": "+=", "group_join": "+=", "devices_add": "+=",
    "devices_remove": "-=",
}

_SPIN_CONDS = frozenset({"OutOfSie", "SieAllowed"})


class _YieldToName(ast.NodeTransformer):
    def __init__(self, reader: "_FunctionReader") -> None:
        self.reader = reader
        self.steps: list[Step] = []

    def visit_Yield(self, node: ast.Yield) -> ast.AST:  # noqa: N802
        text, steps = self.reader.yield_text(node)
        self.steps += steps
        return ast.Name(id=text, ctx=ast.Load())

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.AST:  # noqa: N802
        text, steps = self.reader.yield_text(node)
        self.steps += steps
        return ast.Name(id=text, ctx=ast.Load())


class _Pretty(ast.NodeTransformer):
    """Readability rewrites of expressions: ``errno.EBUSY`` -> ``EBUSY``, ALL_CAPS integer constants
    of the module -> their hex value."""

    def __init__(self, globs: dict[str, Any]) -> None:
        self.globs = globs

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:  # noqa: N802
        if isinstance(node.value, ast.Name) and node.value.id == "errno":
            return ast.Name(id=node.attr, ctx=ast.Load())
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802
        v = self.globs.get(node.id)
        if node.id.isupper() and isinstance(v, int) and not isinstance(v, bool):
            return ast.Name(id=hex(v), ctx=ast.Load())
        return node


class _FunctionReader:
    """Reads one function's AST into lines (see the module docstring)."""

    def __init__(self, scheme_cls: type, code: Any, resolver: LockResolver) -> None:
        self.cls = scheme_cls
        self.code = code
        self.globs: dict[str, Any] = getattr(code, "__globals__", {})
        try:
            free = inspect.getclosurevars(code).nonlocals
        except (TypeError, ValueError):
            free = {}
        if free:
            self.globs = {**self.globs, **free}
        self.resolver = resolver
        self.tree = _function_ast(code)
        self.aliases: dict[str, ast.expr] = {}
        self.values: dict[str, ast.expr] = {}  #: names assigned exactly once (any expression)
        if self.tree is not None:
            self._collect_aliases(self.tree)

    # -- local aliases (``w = self.w``, ``rwsem = vm.pqap_hook_rwsem``) -------------------------
    def _collect_aliases(self, tree: ast.AST) -> None:
        values: dict[str, list[ast.expr]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if isinstance(node.value, (ast.Name, ast.Attribute)):
                    values.setdefault(node.targets[0].id, []).append(node.value)
                else:
                    values.setdefault(node.targets[0].id, []).append(None)  # type: ignore[arg-type]
        for name, vals in values.items():
            if len(vals) == 1 and vals[0] is not None:
                self.aliases[name] = vals[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if len(values.get(name, ())) == 1:
                    self.values[name] = node.value

    def text_template(self, node: ast.expr, depth: int = 0) -> str | None:
        """A string expression as a template: ``"matrix_mdev->matrix." + field`` ->
        ``matrix_mdev->matrix.{field}``; None if it is not a string expression."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "{" + self.pretty(v.value) + "}"
                           for v in node.values)  # type: ignore[attr-defined]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a = self.text_template(node.left, depth + 1)
            b = self.text_template(node.right, depth + 1)
            if a is None and b is None:
                return None
            return (a if a is not None else "{" + self.pretty(node.left) + "}") + \
                (b if b is not None else "{" + self.pretty(node.right) + "}")
        if isinstance(node, ast.Name) and depth < 4 and node.id in self.values:
            return self.text_template(self.values[node.id], depth + 1)
        if isinstance(node, ast.Name) and node.id not in self.values and isinstance(self.globs.get(node.id), str):
            return self.globs[node.id]
        return None

    def chain(self, node: ast.expr, depth: int = 0) -> list[str]:
        if isinstance(node, ast.Name):
            if node.id in self.aliases and depth < 8:
                return self.chain(self.aliases[node.id], depth + 1)
            return [node.id]
        if isinstance(node, ast.Attribute):
            return self.chain(node.value, depth + 1) + [node.attr]
        return []

    # -- expressions ----------------------------------------------------------------------------
    def pretty(self, node: ast.expr) -> str:
        return ast.unparse(_Pretty(self.globs).visit(copy.deepcopy(node)))

    def expr(self, node: ast.expr) -> tuple[str, list[Step]]:
        """An expression with its yields rendered inline (``if call filter_cdoms(mdev):``)."""
        tr = _YieldToName(self)
        new = tr.visit(copy.deepcopy(node))
        return ast.unparse(_Pretty(self.globs).visit(new)), tr.steps

    def const(self, node: ast.expr | None, default: Any = None) -> Any:
        if node is None:
            return default
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.globs.get(node.id, default)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = self.globs.get(node.value.id)
            return getattr(base, node.attr, default) if base is not None else default
        return default

    def resolve_callable(self, func: ast.expr) -> Any:
        if isinstance(func, ast.Name):
            return self.globs.get(func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            base = self.globs.get(func.value.id)
            return getattr(base, func.attr, None) if base is not None else None
        return None

    @staticmethod
    def bind(target: Any, call: ast.Call) -> dict[str, ast.expr] | None:
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return None
        out: dict[str, ast.expr] = {}
        for i, a in enumerate(call.args):
            if isinstance(a, ast.Starred) or i >= len(params):
                return None
            out[params[i].name] = a
        for kw in call.keywords:
            if kw.arg is None:
                return None
            out[kw.arg] = kw.value
        return out

    def target_text(self, node: ast.expr) -> str:
        if isinstance(node, ast.Tuple):
            return ", ".join(self.target_text(e) for e in node.elts)
        return self.pretty(node)

    def args_text(self, call: ast.Call, drop_k: bool = True) -> str:
        args = list(call.args)
        if drop_k and args and isinstance(args[0], ast.Name) and args[0].id == "k":
            args = args[1:]
        parts = [self.pretty(a) for a in args] + [
            (f"{kw.arg}={self.pretty(kw.value)}" if kw.arg else f"**{self.pretty(kw.value)}") for kw in call.keywords]
        return ", ".join(parts)

    # -- one yielded operation ------------------------------------------------------------------
    def lock_step(self, kind: str, lock_node: ast.expr, mode_node: ast.expr | None, try_node: ast.expr | None,
                  default_mode: str = WRITE) -> tuple[str, Step]:
        cls, lk_kind = self.resolver.resolve_chain(self.chain(lock_node) or [ast.unparse(lock_node)])
        mode = self.const(mode_node, default_mode) if mode_node is not None else default_mode
        if not isinstance(mode, str):
            mode = default_mode
        try_ = bool(self.const(try_node, False)) if try_node is not None else False
        step = Step(kind, lock=cls, lock_kind=lk_kind, mode=mode, try_=try_)
        suffix = mode_suffix(lk_kind, mode)
        return f"{step.sign}{short_name(cls)}{suffix}", step

    def yield_text(self, node: ast.Yield | ast.YieldFrom, target: str | None = None) -> tuple[str, list[Step]]:
        """The text of one ``yield`` / ``yield from`` (with ``target :=`` when its value is assigned)."""
        prefix = f"{target} := " if target else ""
        if isinstance(node, ast.YieldFrom):
            return self.call_text(node.value, prefix)
        value = node.value
        if value is None:
            return prefix + "yield", [Step("other")]
        if not isinstance(value, ast.Call):
            return prefix + f"step {self.pretty(value)}", [Step("other")]
        target_obj = self.resolve_callable(value.func)
        fname = value.func.id if isinstance(value.func, ast.Name) else getattr(value.func, "attr", "")
        if isinstance(target_obj, type) and issubclass(target_obj, O.Op):
            return self.op_text(target_obj, value, prefix)
        if fname == "acquire_via":
            a = self.bind(target_obj, value) if target_obj is not None else None
            if a and "owner" in a and "attr" in a:
                attr = self.const(a["attr"], "lock")
                chain = self.chain(a["owner"]) + [str(attr)]
                cls, lk_kind = self.resolver.resolve_chain(chain)
                mode = self.const(a.get("mode"), WRITE) if a.get("mode") is not None else WRITE
                step = Step("acquire", lock=cls, lock_kind=lk_kind, mode=mode)
                return prefix + f"+{short_name(cls)}{mode_suffix(lk_kind, mode)}", [step]
        if fname.startswith("Insn_"):
            insn = fname[len("Insn_"):].upper()
            return prefix + f"{insn}({self.args_text(value, drop_k=False)})", [Step("insn")]
        return prefix + self.pretty(value), [Step("other")]

    def op_text(self, op_cls: type, call: ast.Call, prefix: str) -> tuple[str, list[Step]]:
        a = self.bind(op_cls, call) or {}
        name = op_cls.__name__

        def e(key: str, default: str = "?") -> str:
            return self.pretty(a[key]) if key in a else default

        def t(key: str, default: str = "?") -> str:
            if key not in a:
                return default
            tt = self.text_template(a[key])
            return tt if tt is not None else self.pretty(a[key])

        def target_expr() -> str:
            if "expr" in a and not (isinstance(a["expr"], ast.Constant) and a["expr"].value is None):
                ex = a["expr"]
                t = self.text_template(ex)
                return t if t is not None else self.pretty(ex)
            obj, fld = e("obj"), a.get("field")
            f = fld.value if isinstance(fld, ast.Constant) else (self.pretty(fld) if fld is not None else "?")
            return f"{obj}->{f}"

        # subclasses with their own signatures first
        if name == "PinPage":
            return prefix + f"W: vfio_pin_pages({e('vdev')}, {e('page')})", [Step("update")]
        if name == "UnpinPage":
            return prefix + f"W: vfio_unpin_pages({e('vdev')}, {e('page')})", [Step("update")]
        if name == "GiscRegister":
            return prefix + f"W: kvm_s390_gisc_register({e('kvm')}, {e('gisc')})", [Step("update")]
        if issubclass(op_cls, O.Acquire) and "lock" in a:
            text, step = self.lock_step("acquire", a["lock"], a.get("mode"), a.get("try_"))
            return prefix + text, [step]
        if issubclass(op_cls, O.Release) and "lock" in a:
            text, step = self.lock_step("release", a["lock"], a.get("mode"), None)
            return prefix + text, [step]
        if issubclass(op_cls, O.Read) and "obj" in a:
            return f"R: {prefix}{target_expr()}", [Step("read")]
        if issubclass(op_cls, O.Write) and "obj" in a:
            return prefix + f"W: {target_expr()} := {e('value')}", [Step("write")]
        if issubclass(op_cls, O.Update) and "obj" in a and "fn" not in a:
            return prefix + f"W: {target_expr()}  [{name}]", [Step("update")]
        if issubclass(op_cls, O.Update) and "obj" in a:
            fn = a.get("fn")
            fname = fn.id if isinstance(fn, ast.Name) else (self.pretty(fn) if fn is not None else "?")
            arg = a.get("arg")
            tgt = target_expr()
            if fname == "copy_masks" and isinstance(arg, ast.Tuple) and arg.elts:
                return prefix + f"W: {tgt} := masks of {self.pretty(arg.elts[0])}", [Step("update")]
            if fname == "clear_all":
                return prefix + f"W: {tgt} := 0", [Step("update")]
            form = _UPDATE_FORMS.get(fname)
            argt = self.pretty(arg) if arg is not None else ""
            if fname in ("count_add", "count_sub"):
                return prefix + f"W: {tgt}[{argt}] {form} 1", [Step("update")]
            if form:
                return prefix + f"W: {tgt} {form} {argt}", [Step("update")]
            return prefix + f"W: {tgt} := {fname}({tgt}{', ' + argt if argt else ''})", [Step("update")]
        if issubclass(op_cls, O.Block):
            cond = a.get("cond")
            ctext = self.pretty(cond) if cond is not None else "?"
            cname = cond.func.id if isinstance(cond, ast.Call) and isinstance(cond.func, ast.Name) else ""
            what = getattr(self.globs.get(cname), "what", "") if cname else ""
            kw = "spin:" if cname in _SPIN_CONDS else "block:"
            extra = f" ({what})" if what else ""
            if op_cls is not O.Block:
                extra += f" [{name}]"
            return prefix + f"{kw} {ctext}{extra}", [Step("block")]
        if issubclass(op_cls, O.Sleep):
            ms = self.const(a.get("ms"), 20)
            return prefix + f"sleep({ms}ms)", [Step("sleep")]
        if issubclass(op_cls, O.Insn):
            insn = self.const(a.get("name"), None)
            iname = insn if isinstance(insn, str) else e("name")
            args = [e("apqn")] if "apqn" in a else []
            if "arg" in a:
                args.append(e("arg"))
            return prefix + f"{iname}({', '.join(args)})", [Step("insn")]
        if issubclass(op_cls, O.QueueWork):
            return prefix + f"queue_work({e('item')})", [Step("queue-work")]
        if issubclass(op_cls, O.Note):
            kind = self.const(a.get("kind"), "note")
            return prefix + f'{kind}: "{t("text")}"', [Step("note")]
        if issubclass(op_cls, O.Alloc):
            return prefix + f"alloc {e('obj')}", [Step("alloc")]
        if issubclass(op_cls, O.Free):
            return prefix + f"free {e('obj')}", [Step("free")]
        if issubclass(op_cls, O.NullDeref):
            return prefix + f"oops: NULL dereference of {t('expr')}", [Step("deref")]
        if issubclass(op_cls, O.SynchronizeSrcu):
            cls, _k = self.resolver.resolve_chain(self.chain(a["srcu"])) if "srcu" in a else ("?", None)
            return prefix + f"block: synchronize_srcu({short_name(cls)})", [Step("block", lock=cls)]
        if issubclass(op_cls, O.PrepareWait):
            return prefix + f"prepare_to_wait({e('wq')})", [Step("wait")]
        if issubclass(op_cls, O.WaitWoken):
            return prefix + f"block: schedule() until woken on {e('wq')}", [Step("wait")]
        if issubclass(op_cls, O.FinishWait):
            return prefix + f"finish_wait({e('wq')})", [Step("wait")]
        if issubclass(op_cls, O.WakeAll):
            return prefix + f"wake_up_all({e('wq')})", [Step("wake")]
        if name in ("WaitDepAcquire", "WaitDepRelease", "WaitDepWait"):  # waitdep annotations (no step)
            what = {"WaitDepAcquire": "begin", "WaitDepRelease": "end", "WaitDepWait": "wait for"}[name]
            drop = f" [drop {e('drop')}]" if "drop" in a else ""
            return prefix + f"(waitdep: {what} {e('node')}{drop})", [Step("annotation")]
        if name == "StartWork":
            return prefix + f"take the next run of {e('item')}", [Step("work")]
        if name == "EndWork":
            return prefix + f"end of the run of {e('item')}", [Step("work")]
        return prefix + f"{name}({self.args_text(call, drop_k=False)})", [Step(getattr(op_cls, "code", "op"))]

    def call_text(self, value: ast.expr, prefix: str) -> tuple[str, list[Step]]:
        if isinstance(value, ast.Call):
            f = value.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
                return prefix + f"call {f.attr}({self.args_text(value)})", [Step("call", callee=f.attr)]
            func = self.explicit_callee(f)
            if func is not None:
                call = copy.copy(value)
                args = list(value.args)
                if args and isinstance(args[0], ast.Name) and args[0].id == "self":
                    call.args = args[1:]  # ``Base.method(self, k, ...)``
                return (prefix + f"call {self.pretty(f)}({self.args_text(call)})",
                        [Step("call", callee=f.attr, func=func)])  # type: ignore[union-attr]
            return (prefix + f"call {self.pretty(f)}({self.args_text(value)})",
                    [Step("call", dynamic=True)])
        return prefix + f"call {self.pretty(value)}", [Step("call", dynamic=True)]

    def explicit_callee(self, f: ast.expr) -> Any:
        """The function of ``super().x`` (the next definition in the scheme's MRO after the class that
        defines this code) or of ``Base.x`` (a class of the module); None otherwise."""
        if not isinstance(f, ast.Attribute):
            return None
        v = f.value
        if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super" and not v.args:
            owner = self.globs.get("__class__")
            mro = self.cls.__mro__
            if owner not in mro:
                return None
            for klass in mro[mro.index(owner) + 1:]:
                if f.attr in vars(klass):
                    return vars(klass)[f.attr]
            return None
        if isinstance(v, ast.Name):
            obj = self.globs.get(v.id)
            if isinstance(obj, type):
                return getattr(obj, f.attr, None)
        return None

    # -- statements -----------------------------------------------------------------------------
    def lines(self) -> list[Line]:
        if self.tree is None:
            return [Line(0, "(source not available)", (), True)]
        body = self.tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        return [ln for ln in self.body(body, 0, False) if ln.significant or ln.steps]

    def body(self, stmts: list[ast.stmt], depth: int, loop_yield: bool) -> list[Line]:
        out: list[Line] = []
        for s in stmts:
            out += self.stmt(s, depth, loop_yield)
        return out

    @staticmethod
    def _sig(lines: list[Line]) -> bool:
        return any(ln.significant for ln in lines)

    @staticmethod
    def _has_errno(node: ast.AST) -> bool:
        """An error code is set (``rc = -errno.EBUSY``): shown, as the doc shows error results."""
        return any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "errno"
                   for n in ast.walk(node))

    @staticmethod
    def _has_yield(node: ast.AST) -> bool:
        return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))

    def stmt(self, s: ast.stmt, depth: int, loop_yield: bool) -> list[Line]:
        if isinstance(s, ast.Expr):
            v = s.value
            if isinstance(v, (ast.Yield, ast.YieldFrom)):
                text, steps = self.yield_text(v)
                return [Line(depth, text, tuple(steps))]
            if self._has_yield(v):
                text, steps = self.expr(v)
                return [Line(depth, text, tuple(steps))]
            return []
        if isinstance(s, (ast.Assign, ast.AnnAssign)):
            value = s.value
            if value is not None and not self._has_yield(value) and self._has_errno(value):
                targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                tgt = " := ".join(self.target_text(t) for t in targets)
                return [Line(depth, f"{tgt} := {self.pretty(value)}")]
            if value is None or not self._has_yield(value):
                return []
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            tgt = " := ".join(self.target_text(t) for t in targets)
            if isinstance(value, (ast.Yield, ast.YieldFrom)):
                text, steps = self.yield_text(value, tgt)
            else:
                text, steps = self.expr(value)
                text = f"{tgt} := {text}"
            return [Line(depth, text, tuple(steps))]
        if isinstance(s, ast.AugAssign):
            if not self._has_yield(s.value):
                return []
            text, steps = self.expr(s.value)
            op = {ast.BitOr: "|", ast.Add: "+", ast.Sub: "-", ast.BitAnd: "&"}.get(type(s.op), "?")
            return [Line(depth, f"{self.pretty(s.target)} {op}= {text}", tuple(steps))]
        if isinstance(s, ast.Return):
            if s.value is None:
                return [Line(depth, "return")]
            text, steps = self.expr(s.value)
            return [Line(depth, f"→ {text}", tuple(steps))]
        if isinstance(s, ast.Raise):
            text = self.pretty(s.exc) if s.exc is not None else ""
            return [Line(depth, f"raise {text}".rstrip())]
        if isinstance(s, (ast.Continue, ast.Break)):
            return [Line(depth, "continue" if isinstance(s, ast.Continue) else "break", (), loop_yield)]
        if isinstance(s, ast.If):
            return self.if_(s, depth, loop_yield, "if")
        if isinstance(s, (ast.For, ast.AsyncFor)):
            ly = self._has_yield(s)
            it, steps = self.expr(s.iter)
            body = self.body(s.body, depth + 1, ly)
            orelse = self.body(s.orelse, depth + 1, loop_yield)
            head = f"for {self.pretty(s.target)} in {it}:"
            return self._block(depth, head, steps, body, [("else:", orelse)])
        if isinstance(s, ast.While):
            ly = self._has_yield(s)
            cond, steps = self.expr(s.test)
            body = self.body(s.body, depth + 1, ly)
            orelse = self.body(s.orelse, depth + 1, loop_yield)
            return self._block(depth, f"while {cond}:", steps, body, [("else:", orelse)])
        if isinstance(s, ast.Try):
            body = self.body(s.body, depth + 1, loop_yield)
            parts: list[tuple[str, list[Line]]] = []
            for h in s.handlers:
                htext = "except" + (f" {self.pretty(h.type)}" if h.type is not None else "") + ":"
                parts.append((htext, self.body(h.body, depth + 1, loop_yield)))
            parts.append(("else:", self.body(s.orelse, depth + 1, loop_yield)))
            parts.append(("finally:", self.body(s.finalbody, depth + 1, loop_yield)))
            if not (self._sig(body) or any(self._sig(p[1]) for p in parts)):
                return []
            out = [Line(depth, "try:")] + (body if self._sig(body) else [Line(depth + 1, "(no step)")])
            for head, lines in parts:
                if self._sig(lines):
                    out += [Line(depth, head)] + lines
            return out
        if isinstance(s, ast.With):
            items = ", ".join(self.pretty(i.context_expr) for i in s.items)
            body = self.body(s.body, depth + 1, loop_yield)
            return self._block(depth, f"with {items}:", [], body, [])
        return []

    def _block(self, depth: int, head: str, steps: list[Step], body: list[Line],
               tails: list[tuple[str, list[Line]]]) -> list[Line]:
        sig_tails = [(h, ln) for h, ln in tails if self._sig(ln)]
        if not (steps or self._sig(body) or sig_tails):
            return []
        out = [Line(depth, head, tuple(steps))]
        out += body if self._sig(body) else [Line(depth + 1, "(no step)")]
        for h, ln in sig_tails:
            out += [Line(depth, h)] + ln
        return out

    def if_(self, s: ast.If, depth: int, loop_yield: bool, kw: str) -> list[Line]:
        cond, steps = self.expr(s.test)
        body = self.body(s.body, depth + 1, loop_yield)
        orelse: list[Line] = []
        if s.orelse:
            if len(s.orelse) == 1 and isinstance(s.orelse[0], ast.If):
                orelse = self.if_(s.orelse[0], depth, loop_yield, "elif")
            else:
                ob = self.body(s.orelse, depth + 1, loop_yield)
                if self._sig(ob):
                    orelse = [Line(depth, "else:")] + ob
        if not (steps or self._sig(body) or self._sig(orelse)):
            return []
        out = [Line(depth, f"{kw} {cond}:", tuple(steps))]
        out += body if self._sig(body) else [Line(depth + 1, "(no step)")]
        return out + orelse


_LINES_CACHE: dict[tuple[type, Any], list[Line]] = {}


def method_lines(scheme_cls: type, info: MethodInfo) -> list[Line]:
    """The lines of one method of ``scheme_cls`` (cached per scheme and function)."""
    key = (scheme_cls, info.code)
    lines = _LINES_CACHE.get(key)
    if lines is None:
        lines = _FunctionReader(scheme_cls, info.code, resolver_for(scheme_cls)).lines()
        _LINES_CACHE[key] = lines
    return lines


def lines_of(scheme_cls: type, attr: str) -> list[Line]:
    return method_lines(scheme_cls, _method_info(scheme_cls, attr, "path"))


# ----------------------------------------------------------------------------------------------
# The flattened lock steps of a path (calls expanded), for static checks
# ----------------------------------------------------------------------------------------------


@dataclass
class FlatSteps:
    """The lock steps a path and everything it calls contain, in source order (all branches, each
    call expanded once per call site), and whether a call could not be resolved statically."""

    steps: list[Step] = field(default_factory=list)
    dynamic: bool = False

    def indexes(self, sign: str, lock: str) -> list[int]:
        out = []
        for i, s in enumerate(self.steps):
            if s.lock == lock and ((sign == "+" and s.kind == "acquire") or (sign == "-" and s.kind == "release")):
                out.append(i)
        return out

    def classes(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.steps:
            if s.lock is not None and s.kind in ("acquire", "release"):
                seen.setdefault(s.lock, None)
        return list(seen)


def flat_lock_steps(scheme_cls: type, attr: str) -> FlatSteps:
    out = FlatSteps()
    fn = getattr(scheme_cls, attr, None)
    if fn is not None:
        _flatten(scheme_cls, fn, out, ())
    return out


def _flatten(scheme_cls: type, fn: Any, out: FlatSteps, stack: tuple[Any, ...]) -> None:
    code = unwrap(fn)
    if code in stack or len(stack) > 40 or not inspect.isgeneratorfunction(code):
        return
    info = MethodInfo(attr=getattr(code, "__name__", "?"), kernel=None, func=fn, code=code, role="helper")
    for line in method_lines(scheme_cls, info):
        for st in line.steps:
            if st.kind in ("acquire", "release"):
                out.steps.append(st)
            elif st.kind == "call":
                target = st.func if st.func is not None else (
                    getattr(scheme_cls, st.callee, None) if st.callee is not None else None)
                if target is not None:
                    _flatten(scheme_cls, target, out, stack + (code,))
                else:
                    out.dynamic = True


def iter_render(lines: list[Line], indent: str = "  ") -> Iterator[str]:
    for ln in lines:
        yield ln.render(indent)


__all__ = [
    "FlatSteps", "Line", "LockResolver", "MethodInfo", "RW_KINDS", "SHORT_NAMES", "Step", "class_of_name",
    "flat_lock_steps", "iter_render", "lines_of", "method_lines", "minimal_world", "mode_suffix",
    "path_attrs", "resolver_for", "scheme_methods", "short_name", "unwrap",
]
