"""Data races on the modelled shared state (``kind: "race"``), and the one observer that runs every
shared-state check (races, stale reads, invariants, lifetimes) over a single pass of the event stream.

Race rules (a hybrid of Eraser's locksets and FastTrack's vector clocks):

* **Variables.** Only the fields declared in :mod:`apactors.check.shared_vars` are checked; each field
  of each object is one variable instance.  ``Read`` is a read; ``Write`` and ``Update`` are writes (an
  ``Update`` also reads what its update function reads, :data:`~apactors.check.shared_vars.IMPLICIT_READS`).
* **Happens-before.** Every task has a vector clock.  Edges: program order within a task; a lock
  release to every later acquisition of the same lock instance (a reader's release orders only later
  writers: two readers of an rw_semaphore or rwlock are not ordered); ``WakeAll`` on a wait queue to the
  ``WaitWoken`` of a sleeper on it; ``QueueWork`` to the ``StartWork`` of the run it queued (the fork of
  a worker); ``EndWork`` of a run to a ``Block`` that waited for that work item (``flush_work``); the
  last write of a flag a ``Block`` condition waits on (device open count, SIE state; ``SYNC_FIELDS``) to
  the return of that ``Block``; the end of SRCU read sections to ``synchronize_srcu``.  All scenario
  tasks fork from one root after setup, so setup writes are ordered before everything.  SRCU read
  sections and lockdep maps (work items, workqueues) exclude nobody and give no edge between holders.
* **Race.** Two accesses to one variable instance by different tasks, at least one a write, not ordered
  by happens-before.  Lock hand-over is part of happens-before, so two accesses made under a common lock
  (in a mode that excludes: not both readers) are always ordered: no race is ever reported on an access
  pair that a common lock protects, nor on accesses ordered only by a wait queue, a worker's fork or a
  flush.  Each variable also keeps its Eraser candidate lockset (locks held at every access since a
  second task touched it); a finding reports it as it was before the second access, as evidence of
  what protects the variable elsewhere.
* **Reporting.** A finding names the variable, both accesses (actor, call stack, step, locks held, value)
  and a causal story.  The key is the variable name and the two innermost kernel functions with their
  access kinds (never steps or object identities), so the same defect reached by many schedules, or on
  another instance of the variable, is one finding with a count.  Each key is reported once per schedule.

One pass: :class:`SharedStateChecker` dispatches each event once on its operation class, looks the
running task and the accessed field up once, keeps the locks each task holds once, and hands the event
to the enabled components (``races`` here, :mod:`~apactors.check.stale`,
:mod:`~apactors.check.invariants`).  :class:`RaceChecker` is the same observer with only races enabled.

Cost per event: one dict lookup for the operation class, one for the task, one for the field; lock
events update an int bitmask of held locks and join the lock's vector clock unless the acquirer already
knows the releaser's epoch (FastTrack); a declared access compares epochs with the last write and the
last read of each task.
"""

from __future__ import annotations

from typing import Any

from apactors.check.explain import Access, access_json, lock_classes, race_story, report_lines
from apactors.check.findings import Finding
from apactors.check.shared_vars import IMPLICIT_READS, SYNC_FIELDS, instance_name, resolve
from apactors.engine.process import BEGIN, CRASH, END
from apactors.model.locks import LockdepMap, Srcu
from apactors.model.ops import (Acquire, Alloc, Block, EndWork, Free, Insn, QueueWork, Read, Release, StartWork,
                                SynchronizeSrcu, Update, WaitWoken, WakeAll, Write)

READ, WRITE, UPDATE = 0, 1, 2
_KIND_NAMES = ("read", "write", "update")


def join_into(vc: dict[int, int], other: dict[int, int]) -> None:
    """``vc := vc ⊔ other`` (pointwise maximum)."""
    get = vc.get
    for k, v in other.items():
        if get(k, 0) < v:
            vc[k] = v


class Task:
    """Per-task state shared by the components."""

    __slots__ = ("proc", "name", "me", "vc", "pub", "held", "wbits", "abits", "stack", "checks", "nstale",
                 "ptr_reads", "null_read", "hook_read")

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.name = proc.name
        self.me = proc.order
        self.vc: dict[int, int] = {proc.order: 1}
        #: ``vc`` is shared with a published clock (a lock's, a work item's...) and a tick is owed: copy it
        #: and tick before changing it or recording an access (copy-on-write instead of a copy per release)
        self.pub = False
        #: (lock, mode, step acquired) of every lock held, SRCU sections and lockdep maps included
        self.held: tuple[tuple[Any, str, int], ...] = ()
        self.wbits = 0  #: bits of the locks held in write mode (excluding locks only)
        self.abits = 0  #: bits of the locks held in any mode (excluding locks only)
        # stale reads
        self.stack: tuple[str, ...] = ()
        self.checks: dict[tuple[Any, str], Any] = {}
        self.nstale = 0
        # lifetimes
        self.ptr_reads: dict[int, tuple] = {}
        self.null_read: tuple | None = None
        # invariants
        self.hook_read = False


class LockClock:
    """The vector clocks a lock instance hands over: from write-mode and from read-mode releases."""

    __slots__ = ("w", "src", "clock", "r")

    def __init__(self) -> None:
        self.w: dict[int, int] | None = None
        self.src = -1  #: task of the write-mode release that made ``w`` (FastTrack shortcut)
        self.clock = 0
        self.r: dict[int, int] | None = None


class Var:
    """One field of one object: what the components need to know about it, and its race shadow state."""

    __slots__ = ("obj", "field", "decl", "race", "sync", "decision", "pointer", "inv", "hook", "w", "reads",
                 "first", "lockset", "watchers")

    def __init__(self, obj: Any, field: str, tmpl: tuple) -> None:
        self.obj = obj
        self.field = field
        #: decl: the SharedVar or None; inv: invariant component code (0: not read by the at-rest rules)
        self.decl, self.race, self.sync, self.decision, self.pointer, self.inv, self.hook = tmpl
        #: access records: (task index, clock, task, step, kind, held, stack, value)
        self.w: tuple | None = None
        self.reads: dict[int, tuple] | None = None
        self.first = -1  #: the only task that accessed it so far (Eraser "exclusive"), -2 once shared
        self.lockset = -1  #: Eraser candidate lockset as lock bits (-1: not shared yet)
        self.watchers: dict[Any, Any] | None = None  #: stale: task -> its live check on this variable

    @property
    def label(self) -> str:
        """``matrix_mdev->shadow_apcb.apm of mdev(m0)`` (for reports)."""
        name = self.decl.name if self.decl is not None else self.field
        return f"{name} of {instance_name(self.obj)}"


def exclusion_free(lock: Any) -> bool:
    """SRCU read sections and lockdep maps exclude nobody."""
    return isinstance(lock, (Srcu, LockdepMap))


def commonly_excluded(a: tuple, b: tuple) -> bool:
    """True if some lock instance in both held lists excludes the pair (not both holding it to read)."""
    modes = {}
    for lk, mode, _ in a:
        if not exclusion_free(lk):
            modes[id(lk)] = mode
    for lk, mode, _ in b:
        m = modes.get(id(lk))
        if m is not None and (m == "w" or mode == "w"):
            return True
    return False


def as_access(task_name: str, stack: tuple, step: int, what: str, held: tuple, value: Any = None) -> Access:
    return Access(task_name, stack, step, what, held, value)


class SharedStateChecker:
    """The one-pass observer (see the module docstring).  ``races``, ``stale``, ``invariants`` and
    ``lifetime`` enable its components; all are on by default."""

    name = "shared-state"

    def __init__(self, world: Any = None, scheme: Any = None, scenario: Any = None, *, races: bool = True,
                 stale: bool = True, invariants: bool = True, lifetime: bool = True) -> None:
        self.tasks: dict[Any, Task] = {}
        self.vars: dict[tuple[Any, str], Var] = {}
        self.found: dict[str, Finding] = {}
        self.races_on = races
        # happens-before
        self.locks: dict[Any, LockClock] = {}
        self.lock_bit: dict[Any, int] = {}
        self.bit_lock: list[Any] = []
        self.sync: dict[Any, dict[int, int]] = {}
        self.queued: dict[Any, dict[int, int]] = {}
        self.wqs: dict[Any, dict[int, int]] = {}
        self.srcu_ends: dict[Any, dict[int, int]] = {}
        self._cond_slots: dict[type, tuple[str, ...]] = {}
        self._templates: dict[tuple, tuple] = {}
        # components
        self.stale = None
        self.inv = None
        self.life = None
        if stale:
            from apactors.check.stale import StaleComponent

            self.stale = StaleComponent(self)
        if invariants and world is not None:
            from apactors.check.invariants import InvariantComponent

            self.inv = InvariantComponent(self, world, scheme)
        if lifetime:
            from apactors.check.invariants import LifetimeComponent

            self.life = LifetimeComponent(self)
        self.components = [c for c in (self.stale, self.inv, self.life) if c is not None]
        self._ulocks: frozenset[Any] = self.inv.ulocks if self.inv is not None else frozenset()
        self._dispatch: dict[type, Any] = {
            Read: self._read, Write: self._write, Update: self._update, Acquire: self._acquire,
            Release: self._release, Block: self._block, Insn: self._insn, Free: self._free, Alloc: self._alloc,
            WakeAll: self._wake, WaitWoken: self._woken, QueueWork: self._queue, StartWork: self._start,
            EndWork: self._end, SynchronizeSrcu: self._sync_srcu, type(BEGIN): self._marker,
        }

    def findings(self) -> list[Finding]:
        out = list(self.found.values())
        for c in self.components:
            out += c.findings()
        return out

    def on_event(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        cls = op.__class__
        if cls is Read:
            return self._read(step, p, op, result, extra)
        if cls is Acquire:
            return self._acquire(step, p, op, result, extra)
        if cls is Release:
            return self._release(step, p, op, result, extra)
        if cls is Write:
            return self._write(step, p, op, result, extra)
        h = self._dispatch.get(cls, 0)
        if h == 0:
            h = self._handler_for(op.__class__)
        if h is not None:
            h(step, p, op, result, extra)

    def on_end(self, procs: Any, step: int) -> None:
        if self.inv is not None:
            self.inv.on_end(step)

    def _handler_for(self, cls: type) -> Any:
        """Subclasses of the engine's ops (PinPage is an Update) get their base class's handler."""
        h = None
        for base in cls.__mro__[1:]:
            got = self._dispatch.get(base)
            if got is not None:
                h = got
                break
        self._dispatch[cls] = h
        return h

    # ------------------------------------------------------------------ lookups
    def task(self, p: Any) -> Task:
        t = self.tasks.get(p)
        if t is None:
            t = self.tasks[p] = Task(p)
        return t

    def var(self, obj: Any, field: str) -> Var:
        key = (obj, field)
        v = self.vars.get(key)
        if v is None:
            v = self._new_var(obj, field)
            self.vars[key] = v
        return v

    def _new_var(self, obj: Any, field: str) -> Var:
        kind = getattr(obj, "kind", None)
        tkey = (kind, field, obj is getattr(obj.owner, "shadow_apcb", None)) if kind == "matrix" else (kind, field)
        tmpl = self._templates.get(tkey)
        if tmpl is None:
            decl = resolve(obj, field)
            inv = self.inv.code(kind, field) if self.inv is not None else 0
            tmpl = self._templates[tkey] = (
                decl, decl is not None and self.races_on, (kind, field) in SYNC_FIELDS,
                decl is not None and self.stale is not None and decl.decision,
                decl is not None and self.life is not None and decl.pointer,
                inv, inv & 15 == 9)
        return Var(obj, field, tmpl)

    # ------------------------------------------------------------------ accesses
    def _read(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        obj = op.obj
        v = self.vars.get((obj, op.field)) or self.var(obj, op.field)
        stale = self.stale
        if stale is not None:
            if t.checks and p.stack is not t.stack and (t.nstale or len(p.stack) < len(t.stack)):
                stale.rescope(t, p.stack, p.frames)
            if t.nstale:
                stale.act_use(step, p, t, op, obj)
            if v.decision:
                stale.check(step, p, t, v, result)
        if v.sync:  # reading a synchronising flag orders the reader after its last writer
            vc = self.sync.get(obj)
            if vc is not None:
                self._join(t, vc)
        if v.race:
            self._access(v, t, step, p, READ, result)
        if v.pointer:
            self.life.pointer_read(step, p, t, v, result)
        if v.hook and p.kind == "vcpu" and not t.hook_read:
            t.hook_read = True
            if result is None:
                self.inv.no_hook_branch(step, p, obj)

    def _write(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        obj = op.obj
        v = self.vars.get((obj, op.field)) or self.var(obj, op.field)
        self._store(step, p, t, op, v, WRITE, result)

    def _update(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        if self.races_on:
            reads = IMPLICIT_READS.get(op.fn)
            if reads is not None:
                for obj, field in reads(op.arg):
                    v = self.var(obj, field)
                    if v.race:
                        self._access(v, t, step, p, READ, getattr(obj, field, None))
        obj = op.obj
        v = self.vars.get((obj, op.field)) or self.var(obj, op.field)
        self._store(step, p, t, op, v, UPDATE, result)

    def _store(self, step: int, p: Any, t: Task, op: Any, v: Var, kind: int, result: Any) -> None:
        stale = self.stale
        if stale is not None:
            if t.checks and p.stack is not t.stack and (t.nstale or len(p.stack) < len(t.stack)):
                stale.rescope(t, p.stack, p.frames)
            if t.nstale:
                if v.decl is not None:
                    stale.act(step, p, t, op, _KIND_NAMES[kind])
                else:
                    stale.act_use(step, p, t, op, op.obj)
            if v.watchers:
                stale.changed(step, p, t, v, getattr(v.obj, v.field, result))
        if v.race:
            self._access(v, t, step, p, kind, result if kind == WRITE else getattr(v.obj, v.field, result))
        elif v.sync:
            self._sync_write(t, op.obj)
        if v.inv:
            self.inv.changed(step, p, t, op, v, kind, result)
        if v.pointer and kind == WRITE and result is None:
            self.life.cleared(step, p, t, v)

    def _access(self, v: Var, t: Task, step: int, p: Any, kind: int, value: Any) -> None:
        me = t.me
        if t.pub:
            vc = t.vc = dict(t.vc)
            vc[me] += 1
            t.pub = False
        else:
            vc = t.vc
        rec = (me, vc[me], t, step, kind, t.held, p.stack, value)
        w = v.w
        if w is not None and w[0] != me and w[1] > vc.get(w[0], 0):
            self._race(v, w, rec)
        if kind == READ:
            reads = v.reads
            if reads is None:
                v.reads = {me: rec}
            else:
                reads[me] = rec
        else:
            reads = v.reads
            if reads:
                for r in reads.values():
                    if r[0] != me and r[1] > vc.get(r[0], 0):
                        self._race(v, r, rec)
                v.reads = None
            v.w = rec
        # Eraser: exclusive to one task until a second one touches it, then refine the candidate set.
        first = v.first
        if first != me:
            if first == -1:
                v.first = me
            else:
                bits = t.abits if kind == READ else t.wbits
                v.lockset = bits if v.lockset == -1 else (v.lockset & bits)
                v.first = -2
        elif v.lockset != -1:
            v.lockset &= t.abits if kind == READ else t.wbits

    # ------------------------------------------------------------------ locks
    def _acquire(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        if not result:
            return
        t = self.tasks.get(p) or self.task(p)
        lock = op.lock
        mode = op.mode
        stale = self.stale
        if stale is not None:
            if t.checks and p.stack is not t.stack and (t.nstale or len(p.stack) < len(t.stack)):
                stale.rescope(t, p.stack, p.frames)
            if t.nstale and op.owner is not None:
                stale.act_use(step, p, t, op, op.owner)
        t.held = t.held + ((lock, mode, step),)
        bit = self.lock_bit.get(lock)
        if bit is None:
            bit = self._new_bit(lock)
        if bit:
            t.abits |= bit
            if mode == "w":
                t.wbits |= bit
            lc = self.locks.get(lock)
            if lc is not None:
                w = lc.w
                if w is not None and (lc.src < 0 or t.vc.get(lc.src, 0) < lc.clock):
                    self._join(t, w)
                if mode == "w" and lc.r is not None:
                    self._join(t, lc.r)
        if lock in self._ulocks:
            self.inv.acquired()

    def _new_bit(self, lock: Any) -> int:
        if exclusion_free(lock):
            bit = 0
        else:
            bit = 1 << len(self.bit_lock)
            self.bit_lock.append(lock)
        self.lock_bit[lock] = bit
        return bit

    def _release(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        lock = op.lock
        held = t.held
        mode = "w"
        if held and held[-1][0] is lock:  # the usual case: the last lock taken is released first
            mode = held[-1][1]
            t.held = held[:-1]
        else:
            for i in range(len(held) - 1, -1, -1):
                if held[i][0] is lock:
                    mode = held[i][1]
                    t.held = held[:i] + held[i + 1:]
                    break
        stale = self.stale
        if stale is not None and t.checks and p.stack is not t.stack and (t.nstale or len(p.stack) < len(t.stack)):
            stale.rescope(t, p.stack, p.frames)
        bit = self.lock_bit.get(lock)
        if bit is None:
            bit = self._new_bit(lock)
        if bit:
            t.abits &= ~bit
            t.wbits &= ~bit
            lc = self.locks.get(lock)
            if lc is None:
                lc = self.locks[lock] = LockClock()
            vc = t.vc
            if mode == "w":
                lc.w = vc
                lc.src = t.me
                lc.clock = vc[t.me]
            elif lc.r is None:
                lc.r = vc
            else:
                r = dict(lc.r)
                join_into(r, vc)
                lc.r = r
            t.pub = True
        elif lock.__class__ is Srcu:
            self._publish(self.srcu_ends, lock, t)
        if result and lock in self._ulocks:
            self.inv.released(step, p)

    # ------------------------------------------------------------------ other happens-before edges
    @staticmethod
    def _join(t: Task, other: dict[int, int]) -> None:
        """``t.vc := t.vc ⊔ other`` (copying it first if it is shared with a published clock)."""
        if t.pub:
            vc = t.vc = dict(t.vc)
            vc[t.me] += 1
            t.pub = False
        join_into(t.vc, other)

    @staticmethod
    def _publish(table: dict[Any, dict[int, int]], key: Any, t: Task) -> None:
        """Publish ``t``'s clock under ``key`` (joined with what was published there before)."""
        cur = table.get(key)
        if cur is None:
            table[key] = t.vc
        else:
            new = dict(cur)
            join_into(new, t.vc)
            table[key] = new
        t.pub = True

    def _receive(self, table: dict[Any, dict[int, int]], key: Any, t: Task) -> None:
        vc = table.get(key)
        if vc is not None:
            self._join(t, vc)

    def _sync_write(self, t: Task, obj: Any) -> None:
        """A write of a flag some Block condition waits on: publish to the object and its owner."""
        self._publish(self.sync, obj, t)
        if obj.owner is not obj:
            self._publish(self.sync, obj.owner, t)

    def _block(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        """A Block returned: order it after the sync writes / work ends of the objects its condition names."""
        cond = op.cond
        cls = cond.__class__
        slots = self._cond_slots.get(cls)
        if slots is None:
            names: list[str] = []
            for klass in cls.__mro__:
                s = klass.__dict__.get("__slots__", ())
                names += [s] if isinstance(s, str) else list(s)
            slots = self._cond_slots[cls] = tuple(names)
        t = self.tasks.get(p) or self.task(p)
        sync = self.sync
        for name in slots:
            obj = getattr(cond, name, None)
            if obj is not None and hasattr(obj, "kind"):
                vc = sync.get(obj)
                if vc is not None:
                    self._join(t, vc)

    def _wake(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        self._publish(self.wqs, op.wq, self.tasks.get(p) or self.task(p))

    def _woken(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        self._receive(self.wqs, op.wq, self.tasks.get(p) or self.task(p))

    def _queue(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        self._publish(self.queued, op.item, self.tasks.get(p) or self.task(p))

    def _start(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        if result:
            self._receive(self.queued, op.item, self.tasks.get(p) or self.task(p))

    def _end(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        self._publish(self.sync, op.item, t)
        if self.stale is not None and t.checks:
            self.stale.drop_all(t)
        if self.inv is not None:
            self.inv.work_done(step, p)

    def _sync_srcu(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        self._receive(self.srcu_ends, op.srcu, self.tasks.get(p) or self.task(p))

    # ------------------------------------------------------------------ other events
    def _insn(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p)
        if t is not None and t.nstale:
            if t.checks and p.stack is not t.stack and (t.nstale or len(p.stack) < len(t.stack)):
                self.stale.rescope(t, p.stack, p.frames)
            if t.nstale:
                self.stale.act(step, p, t, op, f"{op.name} {op.apqn >> 8:02x}.{op.apqn & 0xFF:04x}")
        if self.inv is not None and op.name == "ZAPQ":
            self.inv.zapq(op.apqn, result)

    def _free(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        if t.nstale:
            if t.checks and p.stack is not t.stack and (t.nstale or len(p.stack) < len(t.stack)):
                self.stale.rescope(t, p.stack, p.frames)
            if t.nstale:
                self.stale.act(step, p, t, op, "free")
        if op.obj is not None:
            if self.life is not None:
                self.life.freed(step, p, t, op.obj)
            if self.inv is not None:
                self.inv.freed(step, p, t, op.obj)

    def _alloc(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        if self.inv is not None and op.obj is not None:
            self.inv.allocated(op.obj)

    def _marker(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        t = self.tasks.get(p) or self.task(p)
        if op is BEGIN:
            t.hook_read = False
            if self.inv is not None:
                self.inv.begin(p, result)
            return
        if self.stale is not None and t.checks:
            self.stale.drop_all(t)
        if op is CRASH:
            if self.life is not None:
                self.life.crash(step, p, t, result, extra)
            if self.inv is not None:
                self.inv.end(step, p, p.current)
        elif op is END:
            t.ptr_reads = {}
            t.null_read = None
            if self.inv is not None:
                self.inv.end(step, p, extra)

    # ------------------------------------------------------------------ reporting
    def _race(self, v: Var, prev: tuple, cur: tuple) -> None:
        decl = v.decl
        a = as_access(prev[2].name, prev[6], prev[3], _KIND_NAMES[prev[4]], prev[5], prev[7])
        b = as_access(cur[2].name, cur[6], cur[3], _KIND_NAMES[cur[4]], cur[5], cur[7])
        # An access pair is protected when a lock excludes it: held by both, not both in read mode.
        # (Lock hand-over is in happens-before, so this only guards against engine quirks.)
        if commonly_excluded(a.held, b.held):
            return
        kinds = sorted((f"{a.path}:{_rw(a.what)}", f"{b.path}:{_rw(b.what)}"))
        key = f"race|{decl.name}|{kinds[0]}|{kinds[1]}"
        if key in self.found:
            return
        # Eraser's candidate set before the second access: the locks every access held since the
        # variable became shared (None: it was not shared before)
        lockset = None
        if v.lockset != -1:
            lockset = [lk.label() for i, lk in enumerate(self.bit_lock) if v.lockset >> i & 1]
        story = race_story(v.label, a, b, lockset, decl.protects)
        locks = lock_classes(a.held)
        for c in lock_classes(b.held):
            if c not in locks:
                locks.append(c)
        inst = instance_name(v.obj)
        summary = (f"data race on {decl.name} ({inst}): {a.actor} {_rw(a.what)}s it in {a.path}, "
                   f"{b.actor} {_rw(b.what)}s it in {b.path}, unordered and with no common lock")
        self.found[key] = Finding(
            "race", key, summary, locks=locks, paths=[a.path, b.path], actors=[a.actor, b.actor], step=b.step,
            details={"var": decl.name, "instance": inst, "accesses": [access_json(a), access_json(b)],
                     "lockset": lockset, "protected_by": decl.protects, "story": story},
            report=report_lines(f"RACE on {v.label}", [("first", a, v.label), ("second", b, v.label)]))


def _rw(kind: str) -> str:
    return "read" if kind == "read" else "write"


def RaceChecker(world: Any = None, scheme: Any = None, scenario: Any = None) -> SharedStateChecker:  # noqa: N802
    """The race detector alone (a checker factory for :data:`apactors.check.CHECKERS`)."""
    return SharedStateChecker(world, scheme, scenario, races=True, stale=False, invariants=False, lifetime=False)


__all__ = ["LockClock", "RaceChecker", "SharedStateChecker", "Task", "Var", "commonly_excluded", "join_into"]
