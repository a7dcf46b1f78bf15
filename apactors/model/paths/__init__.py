"""Shared kernel semantics by layer, as scheme mixins (domain doc §5.0-§5.8).

* :mod:`.kvm` — KVM/s390: the vCPU operation, ``handle_pqap`` (K-B; K-A available), the mask functions
  (M-B; M-A available), SIE blocking, PV conversion, GISC registration, VM references.
* :mod:`.vfio_core` — vfio core / mdev core / kvm-vfio wrappers (E4, v6.8 form).
* :mod:`.ap_bus` — AP bus: probe gate, remove, bind/unbind, binding revision, AM-1, scan S-2.
* :mod:`.vfio_ap` — the vfio_ap driver of the E4 family in its `latest` form.
* :mod:`.operations` — scenario verbs → wrapper paths, the initial state (§4.2), update locks (§9).
* :mod:`.common` — update functions, wait conditions, pin steps, the vCPU result.

A scheme is ``class S(ScenarioOps, VfioApE4Paths, VfioCoreE4Paths, ApBusPaths, KvmPaths, Scheme)``
with class attributes and method overrides for its differences.
"""

from apactors.model.paths.ap_bus import ApBusPaths
from apactors.model.paths.common import PqapResult
from apactors.model.paths.kvm import KvmPaths
from apactors.model.paths.operations import ScenarioOps
from apactors.model.paths.vfio_ap import VfioApE4Paths
from apactors.model.paths.vfio_core import VfioCoreE4Paths

__all__ = ["ApBusPaths", "KvmPaths", "PqapResult", "ScenarioOps", "VfioApE4Paths", "VfioCoreE4Paths"]
