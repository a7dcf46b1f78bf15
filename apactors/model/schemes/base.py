"""The scheme base class, the ``@path`` decorator and the scheme registry.

A *scheme* is one locking design of the hotplug core (a kernel version, a draft, or a hypothetical
alternative).  It is a Python class whose methods are the kernel code paths, each a generator that
yields :mod:`apactors.model.ops` operations.  A scheme derives from its base scheme and overrides only
the paths that differ, so ``class V5_12(V5_11)`` reads like the domain doc's "v5.12 is v5.11 except …".

Paths call each other with ``yield from self.other_path(k, ...)``; because the call goes through
``self``, an override in a derived scheme is used by every caller.  ``k`` is the running actor's
execution context (:class:`apactors.model.ops.ExecContext` plus ``k.stack``, the tuple of kernel
function names currently executing, which events record).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, ClassVar, Generator, Iterator

from apactors.model.ops import Acquire, EndWork, Op, Release, StartWork

PathGen = Generator[Op, Any, Any]

#: call numbers: ``k.frames`` parallels ``k.stack`` with a number per call, so a checker can tell two
#: calls of the same function apart (never serialized: traces do not depend on it)
_frame_numbers = itertools.count(1)


def path(name: str | Callable[..., PathGen] | None = None) -> Any:
    """Mark a scheme method as a kernel code path; its kernel function name goes on ``k.stack``.

    Use ``@path`` (the method name is the kernel function name) or ``@path("handle_pqap")``.
    """

    def decorate(fn: Callable[..., PathGen], fname: str) -> Callable[..., PathGen]:
        @functools.wraps(fn)
        def wrapper(self: Any, k: Any, *args: Any, **kwargs: Any) -> PathGen:
            k.stack = k.stack + (fname,)
            k.frames = k.frames + (next(_frame_numbers),)
            try:
                return (yield from fn(self, k, *args, **kwargs))
            finally:
                k.stack = k.stack[:-1]
                k.frames = k.frames[:-1]

        wrapper.kernel_path = fname  # type: ignore[attr-defined]
        return wrapper

    if callable(name):
        return decorate(name, name.__name__)
    return lambda fn: decorate(fn, name or fn.__name__)


class Scheme:
    """Base of all schemes.  Subclasses set the class attributes and implement the paths.

    Engine-facing API: ``setup(k, scenario)`` builds the initial state of §4.2 (run without
    concurrency), ``operation(k, actor, op)`` is the generator of one scenario operation with all the
    kernel layers around the driver, and ``update_locks(world)`` lists the lock instances whose holding
    means "an update is in progress" (§9, for the at-rest invariants).
    """

    id: ClassVar[str] = ""
    base: ClassVar[str | None] = None
    kernel: ClassVar[str] = ""  #: kernel version or commit(s) modelled
    description: ClassVar[str] = ""  #: one line for `apactors schemes`
    family: ClassVar[str] = ""  #: "pre-E4", "E4" or "alt"
    notes: ClassVar[str] = ""  #: modelling choices and readings of uncertain points
    perms_lock_class: ClassVar[str] = "ap_perms_mutex"

    def __init__(self, world: Any) -> None:
        self.w = world

    def setup(self, k: Any, scenario: Any) -> PathGen:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def operation(self, k: Any, actor: Any, op: Any) -> PathGen:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def update_locks(self) -> list[Any]:
        return []

    @path("process_one_work")
    def work_thread(self, k: Any, item: Any) -> PathGen:
        """A worker of the long workqueue running ``item`` until it is no longer pending (§4.4).

        While the work function runs, the worker "holds" the workqueue's and the work's lockdep maps.
        The engine spawns this generator as a new actor when ``queue_work`` finds no worker for the item.
        """
        wq_map = self.w.workqueue_map
        while (yield StartWork(item)):
            yield Acquire(wq_map)
            yield Acquire(item.map)
            yield from item.fn(k, *item.args)
            yield Release(item.map)
            yield Release(wq_map)
            yield EndWork(item)

    @classmethod
    def kernel_paths(cls) -> Iterator[tuple[str, str]]:
        """(method name, kernel function name) of every path of the scheme, in definition order."""
        seen: set[str] = set()
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                kp = getattr(value, "kernel_path", None)
                if kp is not None and attr not in seen:
                    seen.add(attr)
        for attr in sorted(seen):
            yield attr, getattr(cls, attr).kernel_path


_REGISTRY: dict[str, type[Scheme]] = {}


class UnknownScheme(KeyError):
    """No scheme is registered under that id (the message lists the known ids)."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Scheme]) -> type[Scheme]:
    """Class decorator: make a scheme available under ``cls.id``."""
    if not cls.id:
        raise ValueError(f"scheme class {cls.__name__} has no id")
    _REGISTRY[cls.id] = cls
    return cls


def unregister(scheme_id: str) -> None:
    _REGISTRY.pop(scheme_id, None)


def get_scheme(scheme_id: str) -> type[Scheme]:
    """The scheme class registered under ``scheme_id``; :class:`UnknownScheme` lists the known ids."""
    if scheme_id in _REGISTRY:
        return _REGISTRY[scheme_id]
    _load_builtins()
    try:
        return _REGISTRY[scheme_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownScheme(f"unknown scheme {scheme_id!r}; known schemes: {known}") from None


#: the order of the domain doc's catalogue (§5.0): history first, then drafts, then alternatives
CATALOGUE_ORDER = ("v5.10", "v5.11", "v5.12", "v5.15", "v6.0", "v6.2-rc", "v6.8", "latest", "v15-draft",
                   "v18-draft", "v18-trylock", "pqap-v4-draft", "alt-userspace-pqap", "alt-fair-rwsem",
                   "alt-unfair-rwlock", "alt-srcu", "alt-queue-lock")


def all_schemes() -> list[type[Scheme]]:
    """Every registered scheme: the built-in catalogue in the doc's order, then the others by id."""
    _load_builtins()
    known = [i for i in CATALOGUE_ORDER if i in _REGISTRY]
    return [_REGISTRY[i] for i in known + sorted(set(_REGISTRY) - set(known))]


#: modules of the built-in schemes, imported on first lookup (each registers its classes)
BUILTIN_MODULES = ("apactors.model.schemes.pre_e4", "apactors.model.schemes.e4", "apactors.model.schemes.latest",
                   "apactors.model.schemes.alt")
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        import importlib

        for mod in BUILTIN_MODULES:
            importlib.import_module(mod)
        _loaded = True
        from apactors.model.registry_ext import load_entry_point_schemes

        for problem in load_entry_point_schemes():  # schemes of installed packages (entry points)
            from apactors.logs import get_logger

            get_logger().warning("scheme entry point not loaded", problem=str(problem))
