"""apactors: an actor-based concurrent emulator of the Linux s390 vfio-ap hotplug core.

It runs the vfio_ap driver, the AP bus and KVM/s390 paths of a chosen locking scheme as concurrent
actors under a deterministic scheduler, and reports deadlocks, hangs and crashes with replayable traces.
"""

__version__ = "0.1.0"


def explore(*args, **kwargs):  # noqa: ANN002, ANN003 - re-exported lazily to keep `import apactors` cheap
    """See :func:`apactors.api.explore`."""
    from apactors.api import explore as _explore

    return _explore(*args, **kwargs)


def replay(*args, **kwargs):  # noqa: ANN002, ANN003
    """See :func:`apactors.api.replay`."""
    from apactors.api import replay as _replay

    return _replay(*args, **kwargs)


__all__ = ["__version__", "explore", "replay"]
