"""The scheme catalogue.  Built-in schemes register themselves when their module is imported;
:func:`get_scheme` and :func:`all_schemes` import them on first use (``BUILTIN_MODULES``)."""

from apactors.model.schemes.base import (
    BUILTIN_MODULES,
    Scheme,
    UnknownScheme,
    all_schemes,
    get_scheme,
    path,
    register,
    unregister,
)

__all__ = ["BUILTIN_MODULES", "Scheme", "UnknownScheme", "all_schemes", "get_scheme", "path", "register",
           "unregister"]
