"""``apactors scheme show``: a scheme's code paths as lock steps and state accesses, in the notation of
the domain doc §0.1, derived from the code that runs (:mod:`apactors.model.scheme_ast`).

    apactors scheme show ID [--path NAME]... [--json] [--no-helpers]
    apactors scheme show --scheme-file PATH [--path NAME]... [--json]
    apactors scheme show ID --scheme-module MODULE ...

For each path (every ``@path`` method, resolved through the scheme's MRO, so an override shows the
overriding code) it prints the kernel function, where the code is defined, whether the scheme
overrides it relative to its base, and the steps: ``+guests_lock``, ``-kvm->lock``,
``+pqap_hook_rwsem(r)``, ``try+ap_scan_bus_mutex``, ``R: matrix_mdev->kvm``, ``W: q->saved_isc :=
0xff``, ``block: …``, ``sleep(20ms)``, ``call x(…)``, ``→ -EBUSY``, with the control flow indented.
Helper generators the paths call (``_assign``, ``kvm_call_hook``) and the scenario operations
(``op_*``) are listed too.  A scheme file's changes are listed under the paths they rewrite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from apactors.model import scheme_ast as sa

EXIT_OK, EXIT_BAD_INPUT = 0, 2

_SKIP_SETTINGS = frozenset({"id", "base", "kernel", "description", "family", "notes"})
_LAYER_ORDER = ("apactors.model.paths.operations", "apactors.model.paths.kvm", "apactors.model.paths.vfio_core",
                "apactors.model.paths.ap_bus", "apactors.model.paths.vfio_ap", "apactors.model.schemes.base")


def _base_class(cls: type) -> type | None:
    from apactors.model.schemes.base import UnknownScheme, get_scheme

    base = getattr(cls, "base", None)
    if not base:
        return None
    try:
        b = get_scheme(base)
    except UnknownScheme:
        b = None
    if b is None:
        for klass in cls.__mro__[1:]:
            if getattr(klass, "id", None) == base:
                return klass
    return b


def _settings(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") or name in _SKIP_SETTINGS:
            continue
        v = getattr(cls, name, None)
        if isinstance(v, (bool, int, float, str, tuple, frozenset)) or v is None:
            out[name] = v
    return out


def _relpath(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        import apactors

        root = os.path.dirname(os.path.dirname(os.path.abspath(apactors.__file__)))
        rel = os.path.relpath(path, root)
        return path if rel.startswith("..") else rel
    except ValueError:
        return path


def scheme_summary(cls: type) -> dict[str, Any]:
    """One row of ``apactors schemes``: id, base, kernel, family, description and where the scheme comes
    from (``built-in``, ``scheme-file`` with its path, ``python`` with its module)."""
    from apactors.model.scheme_file import is_builtin, scheme_file_spec

    spec = scheme_file_spec(cls)
    if spec is not None:
        source = f"scheme-file {spec.source}"
    elif is_builtin(cls):
        source = "built-in"
    else:
        source = f"python {cls.__module__}"
    return {"id": cls.id, "base": cls.base, "kernel": cls.kernel, "family": cls.family,
            "description": cls.description, "source": source}


def describe_scheme(cls: type, paths: list[str] | None = None, helpers: bool = True) -> dict[str, Any]:
    """Everything ``scheme show`` prints, as a JSON-serialisable dict."""
    from apactors.model.scheme_file import is_builtin, scheme_file_spec, scheme_to_dict

    base_cls = _base_class(cls)
    methods = sa.scheme_methods(cls)
    base_methods = {m.attr: m for m in sa.scheme_methods(base_cls)} if base_cls is not None else {}
    if paths:
        wanted: list[sa.MethodInfo] = []
        for name in paths:
            hits = [m for m in methods if m.attr == name] or [m for m in methods if m.kernel == name]
            if not hits:
                raise KeyError(name)
            wanted += [m for m in hits if m not in wanted]
        selected = wanted
    else:
        selected = [m for m in methods if helpers or m.role == "path"]
    overrides: list[str] = []
    new: list[str] = []
    if base_cls is not None:
        for m in methods:
            if m.attr not in base_methods:
                new.append(m.attr)
            elif getattr(base_cls, m.attr) is not m.func:
                overrides.append(m.attr)
    settings = _settings(cls)
    base_settings = _settings(base_cls) if base_cls is not None else {}
    changed = {k: {"value": _jsonable(v), "base": _jsonable(base_settings.get(k))}
               for k, v in settings.items() if base_cls is not None and base_settings.get(k) != v}
    spec = scheme_file_spec(cls)
    if spec is not None:
        source: dict[str, Any] = {"kind": "scheme-file", "file": spec.source}
    elif is_builtin(cls):
        source = {"kind": "built-in", "module": cls.__module__}
    else:
        source = scheme_to_dict(cls) or {"kind": "python", "module": cls.__module__}

    def order(m: sa.MethodInfo) -> tuple:
        layer = _LAYER_ORDER.index(m.module) if m.module in _LAYER_ORDER else len(_LAYER_ORDER)
        return (layer, m.module, m.file or "", m.line or 0, m.attr)

    out_paths = []
    for m in sorted(selected, key=order):
        lines = sa.method_lines(cls, m)
        locks: dict[str, None] = {}
        for ln in lines:
            for st in ln.steps:
                if st.lock is not None and st.kind in ("acquire", "release"):
                    locks.setdefault(st.lock, None)
        out_paths.append({
            "name": m.attr,
            "kernel_function": m.kernel,
            "role": m.role,
            "defined_in": m.qualname,
            "alias_of": m.alias,
            "module": m.module,
            "file": _relpath(m.file),
            "line": m.line,
            "overridden": m.attr in overrides,
            "new": m.attr in new,
            "rewrites": [{"line": c.line, "change": c.text} for c in m.rewrites],
            "lock_classes": list(locks),
            "steps": [ln.render() for ln in lines],
        })
    return {
        "id": cls.id,
        "base": cls.base,
        "base_registered": base_cls is not None,
        "kernel": cls.kernel,
        "family": cls.family,
        "description": cls.description,
        "notes": cls.notes,
        "perms_lock_class": getattr(cls, "perms_lock_class", None),
        "source": source,
        "overrides": sorted(overrides),
        "new_paths": sorted(new),
        "settings_changed": changed,
        "paths": out_paths,
        "counts": {"paths": sum(1 for m in methods if m.role == "path"),
                   "helpers": sum(1 for m in methods if m.role == "helper"),
                   "operations": sum(1 for m in methods if m.role == "operation")},
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, frozenset)):
        return [_jsonable(x) for x in (sorted(v) if isinstance(v, frozenset) else v)]
    return v


def render_text(d: dict[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    w(f"scheme {d['id']}  (base {d['base'] or '-'}, family {d['family'] or '-'})")
    w(f"kernel:       {d['kernel']}")
    w(f"description:  {d['description']}")
    src = d["source"]
    w(f"defined by:   {src.get('file') or src.get('module') or src.get('kind')}")
    if d.get("perms_lock_class"):
        w(f"AP bus mutex: {d['perms_lock_class']}")
    if d["notes"]:
        w("notes:")
        for ln in str(d["notes"]).rstrip().splitlines():
            w(f"  {ln}")
    if d["base"]:
        if not d["base_registered"]:
            w(f"base {d['base']} is not registered: overrides cannot be listed")
        else:
            ov = d["overrides"]
            w(f"overrides relative to {d['base']} ({len(ov)}): {', '.join(ov) if ov else '(none)'}")
            if d["new_paths"]:
                w(f"new relative to {d['base']}: {', '.join(d['new_paths'])}")
            for k, v in d["settings_changed"].items():
                w(f"setting {k} = {v['value']!r} ({d['base']}: {v['base']!r})")
    c = d["counts"]
    w(f"{c['paths']} paths, {c['helpers']} helpers, {c['operations']} scenario operations.  Notation: domain doc "
      "§0.1; locks by their §2.1 short names; control flow kept where it contains a step.")
    module = None
    for p in d["paths"]:
        if p["module"] != module:
            module = p["module"]
            w("")
            w(f"── {module} ──")
        w("")
        head = p["name"]
        if p["kernel_function"] and p["kernel_function"] != p["name"]:
            head += f"  [{p['kernel_function']}]"
        if p["role"] != "path":
            head += f"  ({p['role']})"
        where = p["defined_in"]
        if p["file"]:
            where += f"  {p['file']}:{p['line']}"
        head += f"  — {where}"
        if p["alias_of"]:
            head += f"  (= {p['alias_of']})"
        if p["overridden"]:
            head += f"  [overrides {d['base']}]"
        elif p["new"]:
            head += f"  [new in {d['id']}]"
        w(head)
        for r in p["rewrites"]:
            w(f"    rewritten ({d['source'].get('file')}:{r['line']}): {r['change']}")
        for s in p["steps"]:
            w(f"    {s}")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def add_scheme_arguments(p: argparse.ArgumentParser) -> None:
    """``--scheme-file`` and ``--scheme-module`` (shared with other commands that take a scheme)."""
    p.add_argument("--scheme-file", metavar="PATH",
                   help="a scheme file (TOML) deriving a scheme from a registered one")
    p.add_argument("--scheme-module", metavar="MODULE", action="append", default=[],
                   help="import this Python module (or .py file) first; its @register classes become schemes "
                        "(repeatable)")


def add_scheme_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``scheme`` (with the subcommand ``show``) to the CLI's subparsers."""
    p = subparsers.add_parser("scheme", help="inspect a locking scheme",
                              description="Inspect a locking scheme.")
    sub = p.add_subparsers(dest="scheme_command", metavar="SUBCOMMAND")
    sub.required = True
    show = sub.add_parser(
        "show", help="print every code path of a scheme as lock steps and state accesses",
        description="Print, for every code path of a scheme (resolved through its base schemes), the lock steps "
                    "and state accesses in the notation of the domain doc (§0.1), read from the code that runs.")
    show.add_argument("scheme", nargs="?", help="scheme id (see `apactors schemes`); optional with --scheme-file")
    add_scheme_arguments(show)
    show.add_argument("--path", action="append", default=[], metavar="NAME",
                      help="show only this path (method or kernel function name; repeatable)")
    show.add_argument("--no-helpers", action="store_true",
                      help="only @path methods (no helper generators, no scenario operations)")
    show.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_scheme)
    show.set_defaults(func=cmd_scheme)
    return p


def cmd_scheme(args: argparse.Namespace) -> int:
    from apactors.model.registry_ext import resolve_scheme
    from apactors.model.scheme_file import SchemeDefinitionError
    from apactors.model.schemes.base import UnknownScheme

    if getattr(args, "scheme_command", "show") != "show":  # pragma: no cover - argparse enforces it
        return EXIT_BAD_INPUT
    try:
        cls = resolve_scheme(args.scheme, args.scheme_file, args.scheme_module)
    except (SchemeDefinitionError, UnknownScheme) as e:
        print(f"apactors: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        d = describe_scheme(cls, args.path or None, helpers=not args.no_helpers)
    except KeyError as e:
        import difflib

        known = sa.scheme_methods(cls)
        names = sorted({m.attr for m in known} | {m.kernel for m in known if m.kernel})
        close = difflib.get_close_matches(str(e.args[0]), names, n=5)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        print(f"apactors: error: scheme {cls.id} has no path {e.args[0]!r}{hint}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(d))
    return EXIT_OK


__all__ = ["add_scheme_arguments", "add_scheme_parser", "cmd_scheme", "describe_scheme", "render_text",
           "scheme_summary"]
