"""Scheme `latest` (domain doc §5.8): `v6.8` + the 2025 AQIC error paths, ``ap_attr_mutex``,
``ap_scan_bus_mutex`` (scan S-2) and the 2026 shape of the update locks, ``set_kvm``/``unset_kvm``,
``mdev_create``, ``cfg_remove``, ``hot_unplug_cfg`` and ``hot_plug_cfg``.

All semantics live in the layer mixins of :mod:`apactors.model.paths`; their defaults are `latest`.
"""

from __future__ import annotations

from apactors.model.paths import ApBusPaths, KvmPaths, ScenarioOps, VfioApE4Paths, VfioCoreE4Paths
from apactors.model.schemes.base import Scheme, register


@register
class Latest(ScenarioOps, VfioApE4Paths, VfioCoreE4Paths, ApBusPaths, KvmPaths, Scheme):
    id = "latest"
    base = "v6.8"
    kernel = "gregkh/linux stable 02e72909453d / 2025 mainline"
    family = "E4"
    description = ("2026 vfio_ap: pqap_hook_rwsem inside the update locks, ap_attr_mutex, "
                   "trylocked scan, async resets, whole-matrix filter")
    perms_lock_class = "ap_attr_mutex"
    notes = """\
Readings of [I]/[U] points and silent places (see also the docstrings of apactors.model.paths):
* mdev_create adds to mdev_list under guests_lock then mdevs_lock [I, doc §5.8].
* cfg_remove locks the VM only when R: m->kvm is non-NULL; do_remove is fresh per mdev; cdrem is
  cd_remove ∩ matrix.adm.  hot_unplug_cfg plugs when a shadow mask changed; hot_plug_cfg starts with
  apm_filtered := ∅ and locks the VM only when it has one [I, doc §5.8].
* request(count): the v6.0 form without locks; the vfio core calls it once (count 0) before waiting.
* irq_enable: NIB 0 or outside the 1 GiB of guest memory -> 0x06 with no pin; a PV vCPU's NIB page is
  never shared (nothing shares pages), so PV guests always get 0x06 (after pin and unpin).
* The reset check treats TAPQ 0x04 as done [U]; its rate-limited "waited" notice is not emitted.
* flush_work acquires and releases the work's lockdep map, then waits for the runs queued or running
  at the flush.
* Registers GR0-GR2 are written in one step; the CC is the vCPU's private state (no step).
* dma-unmap marks the range unmapped before calling the driver's dma_unmap; the driver's callback is
  called for every unmap (not only when pages are pinned).
* filter_apid_by_qtype: TAPQ(T) for every added APQN (apm_add × aqm_add); an answer outside
  {0x00, 0x02-0x05} or a type older than CEX4 drops the adapter.
* Drivers are probed in the order zcrypt, vfio_ap; scans handle an adapter's domains in increasing order,
  unregistering and registering in the same pass.
* An open of an mdev that does not exist or whose remove started fails with -ENODEV; stores on an mdev
  without sysfs files fail with -ENOENT; pv-enable of a protected VM / pv-disable of an unprotected one
  return -EINVAL without steps; create of an existing name returns -EEXIST without steps.
* PV enable switches the SCA to the extended format (block_all) the first time.
"""
