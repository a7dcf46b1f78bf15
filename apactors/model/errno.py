"""Kernel errno values used by the modelled paths (results are negative ints, as in the kernel).

One place for the numbers and their names, so results print as ``-EBUSY`` in traces and reports.
"""

from __future__ import annotations

EPERM = 1
ENOENT = 2
EIO = 5
EAGAIN = 11
EBUSY = 16
EEXIST = 17
ENODEV = 19
EINVAL = 22
ERANGE = 34
EOPNOTSUPP = 95
EADDRINUSE = 98
EADDRNOTAVAIL = 99
ERESTARTSYS = 512

NAMES: dict[int, str] = {
    EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EAGAIN: "EAGAIN", EBUSY: "EBUSY", EEXIST: "EEXIST",
    ENODEV: "ENODEV", EINVAL: "EINVAL", ERANGE: "ERANGE", EOPNOTSUPP: "EOPNOTSUPP",
    EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ERESTARTSYS: "ERESTARTSYS",
}


def errno_name(rc: int) -> str:
    """``-16`` -> ``"-EBUSY"``; non-negative values and unknown codes print as numbers."""
    if isinstance(rc, int) and rc < 0 and -rc in NAMES:
        return "-" + NAMES[-rc]
    return str(rc)


__all__ = ["EPERM", "ENOENT", "EIO", "EAGAIN", "EBUSY", "EEXIST", "ENODEV", "EINVAL", "ERANGE",
           "EOPNOTSUPP", "EADDRINUSE", "EADDRNOTAVAIL", "ERESTARTSYS", "NAMES", "errno_name"]
