"""Scenario operations of the notifier era (pre-E4, domain doc §4.3 pre-E4 column, §9).

The verbs, the initial state (§4.2) and the wrappers' dispatch are those of
:class:`~apactors.model.paths.operations.ScenarioOps`; the pre-E4 differences live in the path mixins
(:mod:`.vfio_core_notifier`: open/close/dma-unmap/kvm-vfio-release; :mod:`.vfio_ap_pre_e4`: the driver;
AM-0 and S-0 in :mod:`.ap_bus`).  What this class changes is what "an update is in progress" means
(§9): ``&matrix_dev->lock`` and every ``&kvm->lock`` are the update locks, and any mdev's ``kvm_busy``
set counts as one held.
"""

from __future__ import annotations

from typing import Any

from apactors.model.paths.operations import ScenarioOps


class PreE4ScenarioOps(ScenarioOps):
    """``setup``/``operation`` of :class:`ScenarioOps`; pre-E4 ``update_locks`` and markers."""

    def update_locks(self) -> list[Any]:
        """pre-E4 (§9): ``&matrix_dev->lock`` and every VM's ``&kvm->lock``."""
        w = self.w
        return [w.matrix_lock] + [vm.lock for vm in w.vms.values()]

    def open_coded_markers(self) -> bool:
        """True while an open-coded update marker is set: any mdev's ``kvm_busy`` (`v5.12`,
        `v15-draft`; never set by the other pre-E4 schemes)."""
        for m in self.w.mdevs.values():
            if m.kvm_busy:
                return True
        return False

    def update_markers(self) -> bool:
        """The name the invariant checker looks for (``InvariantChecker.at_rest``)."""
        return self.open_coded_markers()


__all__ = ["PreE4ScenarioOps"]
