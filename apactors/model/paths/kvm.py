"""KVM/s390 paths: the vCPU operation, ``handle_pqap``, the mask functions, SIE blocking, PV
conversion, GISC registration and VM references (domain doc §5.0.1-§5.0.4, §2.2).

Variants are separate methods so that a scheme picks one by assignment, e.g.
``kvm_call_hook = KvmPaths.kvm_call_hook_ka`` (K-A) or ``set_masks = KvmPaths.set_masks_ma`` (M-A).
The defaults are those of `latest`: K-B and M-B.
"""

from __future__ import annotations

from typing import Any

from apactors.model import errno
from apactors.model.locks import READ, RECURSIVE_READ, WRITE
from apactors.model.ops import (Acquire, Block, Free, Note, NullDeref, Read, Release, Update, Write,
                                _check, acquire_via)
from apactors.model.paths.common import (GIB_NISC, KVM_MAX_ISC, OutOfSie, PqapResult, SieAllowed, clear_all,
                                         copy_masks, count_add, count_sub, dec, inc)
from apactors.model.schemes.base import PathGen, path
from apactors.model.world import CRYCB_FORMAT2

# GR0 fields (§6.1)
FC_AQIC = 3
GR0_RESERVED_BITS = 0x007F0000
GR0_T_BIT = 0x00800000
GR0_NON_APXA_BITS = 0x0000C0F0
GR1_RC_BITS = 0x00FF0000
IR_BIT = 1 << 47
STATUS_Q_NOT_AVAIL_WORD = 0x01 << 16  #: APQSW {response_code = 0x01}

NO_HOOK_NOTE = "KVM handle_pqap: no PQAP hook registered: response code 0x01, CC 3"  #: §5.0.2 step 10

PGM_PRIVILEGED_OP = "PGM_PRIVILEGED_OP"
PGM_SPECIFICATION = "PGM_SPECIFICATION"


def aqic_registers(apqn: int, enable: bool, isc: int = 6, nib: int = 0x1000) -> tuple[int, int, int]:
    """GR0, GR1, GR2 of the guest's PQAP(AQIC) (§4.3)."""
    gr0 = 0x03000000 | (apqn & 0xFFFF)
    if enable:
        return gr0, IR_BIT | (isc & 7), nib
    return gr0, 0, 0


class GiscRegister(Update):
    """The registration step of ``kvm_s390_gisc_register``: one update of the VM's GISC reference
    counts.  With ``machine.faults["GISC"]`` set, the step asks ``k.choose(2, "fault:GISC")`` and a 1
    makes it fail without a change (result False) — the choice is made inside the step so that traces
    record it."""

    __slots__ = ()

    def __init__(self, kvm: Any, gisc: int) -> None:
        super().__init__(kvm, "gisc_refs", count_add, gisc, "kvm->arch.gisa_int.alert.ref_count")

    def perform(self, k: Any) -> bool:
        kvm = self.obj
        if kvm is None or kvm.owner.freed:
            _check(kvm, "gisc_refs", self.expr)
        faults = k.world.machine.faults
        if faults and faults.get("GISC") and k.choose(2, "fault:GISC"):
            return False
        kvm.gisc_refs = count_add(kvm.gisc_refs, self.arg)
        return True


class KvmPaths:
    """KVM/s390 code paths (mixin of a scheme; ``self.w`` is the world)."""

    host_has_ap_instructions = True  #: §5.0.2 check 1 (always true in the model)

    # ------------------------------------------------------------------ vCPU operation §5.0.1

    @path("kvm_arch_vcpu_ioctl_run")
    def vcpu_run_pqap(self, k: Any, vcpu: Any, gr0: int, gr1: int, gr2: int) -> PathGen:
        """One ``KVM_RUN`` in which the guest executes one PQAP(AQIC) that intercepts."""
        vm = vcpu.vm
        vcpu.run_by = k.name
        yield Write(vcpu, "regs", (gr0, gr1, gr2))  # the guest's registers (one step: GR0-GR2)
        yield Acquire(vcpu.mutex)
        vcpu.in_run = True
        yield Acquire(vm.srcu, RECURSIVE_READ)
        yield Block(SieAllowed(vcpu))
        yield Write(vcpu, "in_sie", True)
        yield Write(vcpu, "in_sie", False)  # PQAP intercept
        vcpu.in_intercept = True
        ret, pgm, by = yield from self.kvm_handle_pqap(k, vcpu)
        vcpu.in_intercept = False
        yield Release(vm.srcu, RECURSIVE_READ)
        yield Release(vcpu.mutex)
        vcpu.in_run = False
        out = vcpu.regs[1]
        if by == "vfio_ap":
            rc: int | None = (out >> 16) & 0xFF
        elif by == "kvm":
            rc = (out >> 48) & 0xFF
        else:
            rc = None
        return PqapResult(ret, out, vcpu.cc, rc, pgm, by)

    # ------------------------------------------------------------------ handle_pqap §5.0.2

    @path("handle_pqap")
    def kvm_handle_pqap(self, k: Any, vcpu: Any) -> PathGen:
        """KVM's PQAP intercept handler; returns ``(ret, program interrupt or None, answered_by)``."""
        vm = vcpu.vm
        gr0 = vcpu.regs[0]
        if not self.host_has_ap_instructions:
            return -errno.EOPNOTSUPP, None, None
        if not vcpu.eca_apie:
            return -errno.EOPNOTSUPP, None, None
        if (gr0 >> 24) & 0xFF != FC_AQIC:
            return -errno.EOPNOTSUPP, None, None
        if vcpu.problem_state:
            return 0, PGM_PRIVILEGED_OP, None
        if gr0 & GR0_RESERVED_BITS:
            return 0, PGM_SPECIFICATION, None
        facilities = vm.facilities
        if 15 not in facilities and gr0 & GR0_T_BIT:
            return 0, PGM_SPECIFICATION, None
        if not (vm.crycbd & CRYCB_FORMAT2) and gr0 & GR0_NON_APXA_BITS:
            return 0, PGM_SPECIFICATION, None
        if 65 not in facilities:
            return 0, PGM_SPECIFICATION, None
        called, ret = yield from self.kvm_call_hook(k, vcpu)
        if called:
            return ret, None, ("vfio_ap" if ret == 0 else None)
        yield from self.kvm_pqap_no_hook(k, vcpu)
        return 0, None, "kvm"

    def kvm_pqap_no_hook(self, k: Any, vcpu: Any) -> PathGen:
        """Step 10: the 4-byte status {0x01} into the high half of GR1 (no shift); CC := 3."""
        gr0, gr1, gr2 = vcpu.regs
        yield Note("info", NO_HOOK_NOTE)
        yield Write(vcpu, "regs", (gr0, (STATUS_Q_NOT_AVAIL_WORD << 32) | (gr1 & 0xFFFFFFFF), gr2))
        vcpu.cc = 3

    def kvm_call_hook(self, k: Any, vcpu: Any) -> PathGen:
        """K-B (v5.15, E4, alt-*): the hook call under ``pqap_hook_rwsem(r)``.

        Returns ``(called, ret)``; ``called`` False means "no hook: step 10".
        """
        vm = vcpu.vm
        rwsem = vm.pqap_hook_rwsem
        yield Acquire(rwsem, READ, owner=vm)
        h = yield Read(vm, "pqap_hook", "kvm->arch.crypto.pqap_hook")
        if h is not None:
            fn = yield Read(h, "pqap_hook", "*kvm->arch.crypto.pqap_hook")
            if fn is None:
                yield NullDeref("(*kvm->arch.crypto.pqap_hook)(vcpu)")
            ret = yield from getattr(self, fn)(k, vcpu)
            if ret == 0 and vcpu.regs[1] & GR1_RC_BITS:
                vcpu.cc = 3
            yield Release(rwsem, READ)
            return True, ret
        yield Release(rwsem, READ)
        return False, 0

    def kvm_call_hook_ka(self, k: Any, vcpu: Any) -> PathGen:
        """K-A (v5.10, v5.11, v5.12, v15-draft, pqap-v4-draft): no lock, the pointer re-read for every
        use and every use dereferences it.  ``mdev.pqap_hook`` holds ``(hook name, owner module)``."""
        vm = vcpu.vm
        expr = "kvm->arch.crypto.pqap_hook"
        h = yield Read(vm, "pqap_hook", expr)
        if h is None:
            return False, 0
        h = yield Read(vm, "pqap_hook", expr)
        yield Read(h, "pqap_hook", "kvm->arch.crypto.pqap_hook->owner")  # try_module_get(owner)
        h = yield Read(vm, "pqap_hook", expr)
        hook = yield Read(h, "pqap_hook", "kvm->arch.crypto.pqap_hook->hook")
        fn = hook[0] if isinstance(hook, tuple) else hook
        ret = yield from getattr(self, fn)(k, vcpu)
        h = yield Read(vm, "pqap_hook", expr)
        yield Read(h, "pqap_hook", "kvm->arch.crypto.pqap_hook->owner")  # module_put(owner)
        if ret == 0 and vcpu.regs[1] & GR1_RC_BITS:
            vcpu.cc = 3
        return True, ret

    # ------------------------------------------------------------------ VM references, GISC

    @path("kvm_get_kvm")
    def kvm_get_kvm(self, k: Any, kvm: Any) -> PathGen:
        if kvm is None:
            yield NullDeref("kvm_get_kvm(NULL)")
        yield Update(kvm, "users", inc, 1, "kvm->users_count")

    @path("kvm_put_kvm")
    def kvm_put_kvm(self, k: Any, kvm: Any) -> PathGen:
        if kvm is None:
            yield NullDeref("kvm_put_kvm(NULL)")
        users = yield Update(kvm, "users", dec, 1, "kvm->users_count")
        if users == 0:
            yield Free(kvm)

    @path("kvm_s390_gisc_register")
    def gisc_register(self, k: Any, kvm: Any, gisc: int) -> PathGen:
        """→ the host ISC (``nisc``), or a negative errno."""
        if kvm is None:
            yield NullDeref("kvm_s390_gisc_register(NULL)")
        if not kvm.gisa:
            return -errno.ENODEV
        if gisc > KVM_MAX_ISC:
            return -errno.ERANGE
        ok = yield GiscRegister(kvm, gisc)
        return GIB_NISC if ok else -errno.ENODEV

    @path("kvm_s390_gisc_unregister")
    def gisc_unregister(self, k: Any, kvm: Any, gisc: int) -> PathGen:
        if kvm is None:
            yield NullDeref("kvm_s390_gisc_unregister(NULL)")
        if not kvm.gisa:
            return -errno.ENODEV
        if gisc > KVM_MAX_ISC:
            return -errno.ERANGE
        yield Update(kvm, "gisc_refs", count_sub, gisc, "kvm->arch.gisa_int.alert.ref_count")
        return 0

    # ------------------------------------------------------------------ SIE blocking §2.2

    @path("kvm_s390_vcpu_block_all")
    def block_all(self, k: Any, kvm: Any) -> PathGen:
        for vcpu in kvm.vcpus:
            yield Write(vcpu, "prog_block_sie", True)
            yield Block(OutOfSie(vcpu))

    @path("kvm_s390_vcpu_unblock_all")
    def unblock_all(self, k: Any, kvm: Any) -> PathGen:
        for vcpu in kvm.vcpus:
            yield Write(vcpu, "prog_block_sie", False)

    @path("kvm_s390_sync_request_broadcast")
    def sync_request_broadcast(self, k: Any, kvm: Any) -> PathGen:
        """KVM_REQ_VSIE_RESTART: kick every vCPU out of SIE (spin until it is out)."""
        for vcpu in kvm.vcpus:
            yield Block(OutOfSie(vcpu))

    # ------------------------------------------------------------------ mask functions §5.0.3

    @path("kvm_arch_crypto_set_masks")
    def set_masks(self, k: Any, kvm: Any, src: Any) -> PathGen:
        """M-B (v5.15, E4): the caller holds ``kvm->lock``.  ``src`` holds the masks (shadow APCB)."""
        if kvm is None:
            yield NullDeref("kvm_arch_crypto_set_masks(NULL)")
        yield from self.block_all(k, kvm)
        yield Update(kvm.crycb, "masks", copy_masks, (src, bool(kvm.crycbd & CRYCB_FORMAT2)),
                     "kvm->arch.crypto.crycb")
        yield from self.sync_request_broadcast(k, kvm)
        yield from self.unblock_all(k, kvm)

    @path("kvm_arch_crypto_clear_masks")
    def clear_masks(self, k: Any, kvm: Any) -> PathGen:
        """M-B: the caller holds ``kvm->lock``."""
        if kvm is None:
            yield NullDeref("kvm_arch_crypto_clear_masks(NULL)")
        yield from self.block_all(k, kvm)
        yield Update(kvm.crycb, "masks", clear_all, None, "kvm->arch.crypto.crycb")
        yield from self.sync_request_broadcast(k, kvm)
        yield from self.unblock_all(k, kvm)

    @path("kvm_arch_crypto_set_masks")
    def set_masks_ma(self, k: Any, kvm: Any, src: Any) -> PathGen:
        """M-A (v5.10-v5.12, drafts, alt-*): ``+kvm->lock`` first, ``-kvm->lock`` last."""
        yield acquire_via(kvm, "lock", "kvm->lock")
        yield from self.block_all(k, kvm)
        yield Update(kvm.crycb, "masks", copy_masks, (src, bool(kvm.crycbd & CRYCB_FORMAT2)),
                     "kvm->arch.crypto.crycb")
        yield from self.sync_request_broadcast(k, kvm)
        yield from self.unblock_all(k, kvm)
        yield Release(kvm.lock)

    @path("kvm_arch_crypto_clear_masks")
    def clear_masks_ma(self, k: Any, kvm: Any) -> PathGen:
        yield acquire_via(kvm, "lock", "kvm->lock")
        yield from self.block_all(k, kvm)
        yield Update(kvm.crycb, "masks", clear_all, None, "kvm->arch.crypto.crycb")
        yield from self.sync_request_broadcast(k, kvm)
        yield from self.unblock_all(k, kvm)
        yield Release(kvm.lock)

    # ------------------------------------------------------------------ PV conversion §5.0.4

    @path("kvm_s390_handle_pv")
    def pv_enable(self, k: Any, kvm: Any) -> PathGen:
        yield Acquire(kvm.lock, WRITE, owner=kvm)
        if not kvm.esca:
            yield from self.sca_switch_to_extended(k, kvm)
        yield from self.cpus_to_pv(k, kvm)
        yield Write(kvm, "pv", True)
        yield Release(kvm.lock)
        return 0

    @path("sca_switch_to_extended")
    def sca_switch_to_extended(self, k: Any, kvm: Any) -> PathGen:
        yield from self.block_all(k, kvm)
        yield Write(kvm, "esca", True)
        yield from self.unblock_all(k, kvm)

    @path("kvm_s390_cpus_to_pv")
    def cpus_to_pv(self, k: Any, kvm: Any) -> PathGen:
        for vcpu in kvm.vcpus:
            yield Acquire(vcpu.mutex)
            yield Write(vcpu, "pv", True)  # create the secure CPU; W vCPU PV state
            yield Release(vcpu.mutex)

    @path("kvm_s390_handle_pv")
    def pv_disable(self, k: Any, kvm: Any) -> PathGen:
        yield Acquire(kvm.lock, WRITE, owner=kvm)
        yield from self.cpus_from_pv(k, kvm)
        yield Write(kvm, "pv", False)  # tear down the secure VM
        yield Release(kvm.lock)
        return 0

    @path("kvm_s390_cpus_from_pv")
    def cpus_from_pv(self, k: Any, kvm: Any) -> PathGen:
        for vcpu in kvm.vcpus:
            yield Acquire(vcpu.mutex)
            yield Write(vcpu, "pv", False)  # destroy the secure CPU
            yield Release(vcpu.mutex)


__all__ = ["GiscRegister", "IR_BIT", "KvmPaths", "NO_HOOK_NOTE", "PGM_PRIVILEGED_OP", "PGM_SPECIFICATION",
           "aqic_registers"]
