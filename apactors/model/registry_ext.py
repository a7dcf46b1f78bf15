"""Schemes from outside apactors: Python modules (``--scheme-module``), the ``apactors.schemes`` entry
point group, and scheme files (``--scheme-file``, :mod:`apactors.model.scheme_file`).

A Python scheme is a class deriving from a built-in scheme and decorated with ``@register``::

    # my_schemes.py  (apactors run --scheme-module my_schemes --scheme my-v6.8 ...)
    from apactors.model.schemes import get_scheme, register

    @register
    class MyScheme(get_scheme("latest")):
        id = "my-latest"
        base = "latest"
        description = "latest with ..."
        def assign_adapter_store(self, k, mdev, buf): ...

An installed package can make its schemes available without any option with an entry point::

    [project.entry-points."apactors.schemes"]
    my-schemes = "my_package.schemes"          # a module (its classes use @register) or a class
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Sequence

from apactors.model.scheme_file import SchemeDefinitionError, load_scheme_file
from apactors.model.schemes.base import Scheme, get_scheme, register

ENTRY_POINT_GROUP = "apactors.schemes"


class SchemeModuleError(SchemeDefinitionError):
    """A ``--scheme-module`` that cannot be imported or registers no scheme."""


def _registry() -> dict[str, type[Scheme]]:
    from apactors.model.schemes import base

    return base._REGISTRY  # noqa: SLF001 - read-only view of the registry


def load_scheme_module(name: str) -> list[type[Scheme]]:
    """Import ``name`` (a dotted module name, or a path to a ``.py`` file) so that its ``@register``
    classes become available; → the schemes it defines.  Raises :class:`SchemeModuleError`."""
    before = dict(_registry())
    try:
        if name.endswith(".py") or "/" in name:
            mod = _import_path(Path(name))
        else:
            mod = importlib.import_module(name)
    except SchemeDefinitionError:
        raise
    except Exception as e:  # noqa: BLE001 - any import failure is bad input
        raise SchemeModuleError(f"cannot import scheme module: {type(e).__name__}: {e}", source=name) from None
    mine = [c for c in _registry().values() if c.__module__ == mod.__name__]
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, Scheme) and obj.__module__ == mod.__name__ and obj.id \
                and obj not in mine and _registry().get(obj.id) is obj:
            mine.append(obj)
    new = [c for i, c in _registry().items() if i not in before]
    for c in new:
        if c not in mine:
            mine.append(c)
    if not mine:
        raise SchemeModuleError("the module registers no scheme (decorate scheme classes with "
                                "@apactors.model.schemes.register)", source=name)
    return sorted(mine, key=lambda c: c.id)


def _import_path(path: Path) -> Any:
    import importlib.util

    if not path.is_file():
        raise SchemeModuleError("no such file", source=str(path))
    modname = f"apactors_user_scheme_{path.stem}"
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise SchemeModuleError("cannot import this file", source=str(path))
    mod = importlib.util.module_from_spec(spec)
    mod.__apactors_scheme_file__ = str(path.resolve())  # type: ignore[attr-defined]
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return mod


_ep_loaded = False


def load_entry_point_schemes(force: bool = False) -> list[str]:
    """Load the ``apactors.schemes`` entry points once (each a module whose classes use ``@register``,
    or a scheme class, registered if it is not yet); → a list of problems (empty when all loaded).
    A broken entry point does not stop the others."""
    global _ep_loaded
    if _ep_loaded and not force:
        return []
    _ep_loaded = True
    problems: list[str] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001 - report and go on
            problems.append(f"entry point {ep.name} = {ep.value}: {type(e).__name__}: {e}")
            continue
        if isinstance(obj, type) and issubclass(obj, Scheme):
            if not obj.id:
                problems.append(f"entry point {ep.name} = {ep.value}: scheme class without an id")
            elif _registry().get(obj.id) is None:
                register(obj)
    return problems


def resolve_scheme(scheme: str | None = None, scheme_file: str | None = None,
                   scheme_modules: Sequence[str] = ()) -> type[Scheme]:
    """The scheme the command line names: import the ``--scheme-module`` modules, then either load the
    ``--scheme-file`` (whose base may come from those modules) or look ``--scheme`` up.

    Raises :class:`SchemeDefinitionError` (file, module) or ``UnknownScheme`` (an id)."""
    for m in scheme_modules:
        load_scheme_module(m)
    if scheme_file is not None:
        cls = load_scheme_file(scheme_file)
        if scheme is not None and scheme != cls.id:
            raise SchemeDefinitionError(f"--scheme {scheme} does not match the scheme file's id {cls.id!r} "
                                        "(give one of them)", source=scheme_file)
        return cls
    if scheme is None:
        raise SchemeDefinitionError("no scheme given: use --scheme ID or --scheme-file PATH")
    return get_scheme(scheme)


__all__ = ["ENTRY_POINT_GROUP", "SchemeModuleError", "load_entry_point_schemes", "load_scheme_module",
           "resolve_scheme"]
