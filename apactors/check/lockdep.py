"""A lockdep-faithful dependency checker, with a wait-aware mode ("waitdep") beyond lockdep.

Lockdep (domain doc §8) reasons about lock *classes*, not instances.  Every time a task takes lock B
while holding lock A it records the dependency ``A -> B`` with the stack trace of its first
occurrence; before recording a new dependency it searches the graph for a path ``B -> ... -> A`` and,
if there is one, reports a "possible circular locking dependency".  No actual deadlock is needed: the
edges of a cycle may come from different tasks at different times.  This checker does the same over
one schedule's event stream, with lockdep's rules:

* classes are ``cls`` for subclass 0 and ``cls/n`` for subclass n (``mutex_lock_nested``);
* an edge goes from every held validated lock to the newly acquired one (lockdep proper records the
  edge from the nearest held lock and from trylocks above it; recording all of them finds the same
  cycles and a few more through recursive readers that lockdep's strong-path rule would otherwise
  hide); ``distance`` keeps how far down the held stack the edge's source was, and /proc/lockdep
  lists only distance-1 edges as lockdep does;
* edge types -(ER)-, -(EN)-, -(SR)-, -(SN)- (holder Exclusive/Shared, acquirer Recursive/Non-recursive
  reader or writer); a path is *strong* if no -(xR)-> edge is immediately followed by an -(Sx)-> edge;
  only closed strong paths are cycles;
* "possible recursive locking" when a task takes a class it already holds, unless it is a recursive
  read of a read-held lock or the subclasses differ;
* a trylock adds no edge into the trylocked class (but locks taken after it get edges from it);
* no-validate classes (``&dev->mutex``) are listed as held but make and receive no edges;
* each distinct chain of held classes (lockdep's chain key; here an exact id found through a transition
  table shared by all schedules) is validated once per schedule; a task meeting a validated chain only
  notes itself on the chain's dependencies, so the per-event cost is two dictionary lookups and a set
  membership test;
* a new dependency whose target cannot reach its source in the union of every graph of the scheme
  seen so far in the process cannot close a cycle, so the strong-path search is skipped for it, and a
  chain made only of such dependencies is recorded and its edges made only if something later needs
  this schedule's graph (:class:`UnionGraph`, :meth:`LockdepChecker.materialize`).  Verdicts and reports
  do not depend on it.

Unlike lockdep it keeps going after the first report; each distinct cycle (its classes in canonical
rotation) is one ``potential-deadlock`` finding whose ``report`` is lockdep's report text (§8.5, §8.6).

**waitdep** adds dependency nodes for waits lockdep cannot see (see
:mod:`apactors.model.waitdep_ops`): ``WaitDepAcquire``/``WaitDepRelease`` hold a wait node like a
trylocked lock, ``WaitDepWait`` and ``Block`` on a ``Cond`` with a ``node`` are a momentary blocking
acquisition of it, and ``synchronize_srcu`` is a momentary write acquisition of the SRCU class.  Edges
made that way are *wait edges*.  A cycle that plain lockdep sees (visible edges only) is reported with
``checker: "lockdep"``; a cycle that needs a wait edge with ``checker: "waitdep"``.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from typing import Any, Iterable

from apactors.check.findings import Finding
from apactors.model.locks import READ, RECURSIVE_READ, WRITE
from apactors.model.ops import Acquire, Block, Release, SynchronizeSrcu
from apactors.model.waitdep_ops import WaitDepAcquire, WaitDepRelease, WaitDepWait

# Dependency types, as lockdep's DEP_*_BIT: holder Shared/Exclusive -> acquirer Recursive/Non-recursive.
DEP_SR, DEP_ER, DEP_SN, DEP_EN = 1, 2, 4, 8
DEP_NAMES = ((DEP_SR, "SR"), (DEP_ER, "ER"), (DEP_SN, "SN"), (DEP_EN, "EN"))
E_MASK = DEP_ER | DEP_EN  #: edges whose holder is exclusive
N_MASK = DEP_SN | DEP_EN  #: edges whose acquirer is a writer or a non-recursive reader

_DEP = {}
for _h in (WRITE, READ, RECURSIVE_READ):
    for _a in (WRITE, READ, RECURSIVE_READ):
        _DEP[_h, _a] = (DEP_ER if _a == RECURSIVE_READ else DEP_EN) if _h == WRITE else \
            (DEP_SR if _a == RECURSIVE_READ else DEP_SN)

_MCODE = {WRITE: 0, READ: 1, RECURSIVE_READ: 2}

# Process-wide tables, shared by every schedule's checker (they only grow, and only with new classes
# and new chains): class ids, their chain transition codes, and the chain transition table, so that a
# chain has the same id in every schedule and its id is found without allocating anything.
_CLASS_IDS: dict[tuple[str, str, bool], int] = {}  # (name, kind, validate) -> class id
_CODES: list[tuple[dict[str, int], dict[str, int], int]] = []  # class id -> its transition codes
_TRANS: list[dict[int, int]] = [{}]  # chain id -> {transition code: chain id}; chain 0: no lock held
_CHAIN_NAMES: dict[int, tuple[tuple[str, str], ...]] = {}  # chain id -> its (class, mode) sequence

U_WRITE, U_READ = 1, 2  #: usage bits of a class: acquired for write / for read

#: spinlocks taken with spin_lock_bh (softirqs disabled): usage {+...}
BH_SPINLOCKS = frozenset({"ap_queues_lock", "&aq->lock"})

# How the destination of an edge was reached.
HOW_LOCK, HOW_WAIT, HOW_SYNC, HOW_HOLD = "lock", "wait", "sync", "hold"

CIRCULAR_TITLE = "possible circular locking dependency detected"
RECURSIVE_TITLE = "possible recursive locking detected"
NOT_SEARCHED = "no witness search was run"


def dep_names(bits: int) -> list[str]:
    """``["SN", "EN"]`` for a set of dependency bits."""
    return [n for b, n in DEP_NAMES if bits & b]


class ClassNode:
    """A lock class (or a wait node) of the dependency graph."""

    __slots__ = ("id", "name", "cls", "subclass", "kind", "wait", "bh", "validate", "usage", "fwd", "bwd",
                 "tk", "tkt", "tkw")

    def __init__(self, nid: int, name: str, cls: str, subclass: int, kind: str, wait: bool,
                 validate: bool) -> None:
        self.id = nid
        self.name = name  #: ``cls`` or ``cls/n``
        self.cls = cls
        self.subclass = subclass
        self.kind = kind  #: mutex, spinlock, rwsem, rwlock, srcu, map, wait
        self.wait = wait  #: a waitdep node, invisible to lockdep
        self.bh = cls in BH_SPINLOCKS
        self.validate = validate
        self.usage = 0
        self.fwd: dict[ClassNode, Edge] = {}  #: locks_after
        self.bwd: dict[ClassNode, Edge] = {}  #: locks_before
        # chain transition codes (class id, mode, trylock), made once per id so the hot path allocates nothing
        while len(_CODES) <= nid:
            base = len(_CODES) << 3
            _CODES.append(({m: base | c for m, c in _MCODE.items()}, {m: base | c | 4 for m, c in _MCODE.items()},
                           base | 3))
        self.tk, self.tkt, self.tkw = _CODES[nid]  # tkw: a wait (waitdep), distinct from any acquisition

    def __repr__(self) -> str:
        return f"<class {self.name}>"


class Occurrence:
    """Where a dependency was first made: the task, its modelled stack, and how it took the lock."""

    __slots__ = ("actor", "pid", "stack", "step", "how", "mode", "try_", "held_mode", "held_at")

    def __init__(self, actor: str, pid: int, stack: tuple[str, ...], step: int, how: str, mode: str,
                 try_: bool, held_mode: str, held_at: str) -> None:
        self.actor = actor
        self.pid = pid
        self.stack = stack
        self.step = step
        self.how = how
        self.mode = mode
        self.try_ = try_
        self.held_mode = held_mode
        self.held_at = held_at

    @property
    def path(self) -> str:
        return self.stack[-1] if self.stack else "?"


class Edge:
    """A dependency ``src -> dst``: its type bits (visible to lockdep, and from waits only)."""

    __slots__ = ("src", "dst", "deps", "wdeps", "distance", "first", "wfirst", "actors")

    def __init__(self, src: ClassNode, dst: ClassNode) -> None:
        self.src = src
        self.dst = dst
        self.deps = 0  #: DEP_* bits seen by lockdep
        self.wdeps = 0  #: DEP_* bits that only waitdep sees
        self.distance = 1 << 16
        self.first: tuple | None = None  #: first occurrence of a visible dependency (Occurrence fields)
        self.wfirst: tuple | None = None  #: first occurrence of a wait dependency
        self.actors: set[str] = set()

    @property
    def occurrence(self) -> Occurrence:
        """The first occurrence (lockdep-visible if there is one)."""
        return Occurrence(*(self.first if self.first is not None else self.wfirst))  # type: ignore[misc]

    @property
    def visible(self) -> bool:
        return bool(self.deps)


class Held:
    """One entry of a task's held-lock stack."""

    __slots__ = ("lock", "node", "mode", "try_", "how", "stack", "step", "key")

    def __init__(self, lock: Any, node: ClassNode, mode: str, try_: bool, how: str, stack: tuple[str, ...],
                 step: int, key: int) -> None:
        self.lock = lock
        self.node = node
        self.mode = mode
        self.try_ = try_
        self.how = how
        self.stack = stack
        self.step = step
        self.key = key

    @property
    def at(self) -> str:
        return self.stack[-1] if self.stack else "?"


class TaskState:
    """Per-actor state: the held-lock stack and the chains this task already validated."""

    __slots__ = ("name", "pid", "held", "chains")

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.held: list[Held] = []
        self.chains: set[int] = set()


@functools.lru_cache(maxsize=256)
def _release(kernel: str, sid: str) -> str:
    m = re.search(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?(-rc\d+)?", kernel) or \
        re.search(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?(-rc\d+)?", sid)
    release = f"{m.group(1)}.{m.group(2)}.{m.group(3) or 0}{m.group(4) or ''}" if m else "0.0.0"
    return f"{release}-{sid}"


def kernel_release(scheme: Any) -> str:
    """The kernel release reports name (``6.8.0-latest``: the scheme's kernel, the scheme id as localversion)."""
    return _release(str(getattr(scheme, "kernel", "") or ""), str(getattr(scheme, "id", "") or "apactors"))


def _rotation_start(names: list[str]) -> int:
    return min(range(len(names)), key=lambda j: (names[j], j))


class UnionGraph:
    """All dependencies seen in this process (for one scheme), by class name, with their strongly connected
    components.

    Every schedule's graph is a subgraph of it, so if the target of a new edge cannot reach the edge's
    source here, no cycle can close in any schedule: the strong-path search is skipped.  The components
    are recomputed only when a dependency is new to the union, which stops happening once a scheme's
    lock orders have all been seen.
    """

    def __init__(self) -> None:
        self.succ: dict[str, set[str]] = {}
        self.comp: dict[str, int] = {}
        self.dirty = False
        self.version = 0  #: bumped whenever the components are recomputed
        #: chain id -> the version at which none of the chain's dependencies could lie on a cycle
        self.cold: dict[int, int] = {}

    def may_close(self, src: str, dst: str) -> bool:
        out = self.succ.get(src)
        if out is None or dst not in out:
            self.succ.setdefault(src, set()).add(dst)
            self.succ.setdefault(dst, set())
            self.dirty = True
        if self.dirty:
            self._components()
        return self.comp[src] == self.comp[dst]

    def _components(self) -> None:
        """Tarjan's algorithm, iteratively."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on: set[str] = set()
        stack: list[str] = []
        comp: dict[str, int] = {}
        counter = 0
        for root in self.succ:
            if root in index:
                continue
            work = [(root, iter(sorted(self.succ[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on.add(root)
            while work:
                v, it = work[-1]
                for w in it:
                    if w not in index:
                        index[w] = low[w] = counter
                        counter += 1
                        stack.append(w)
                        on.add(w)
                        work.append((w, iter(sorted(self.succ[w]))))
                        break
                    if w in on:
                        low[v] = min(low[v], index[w])
                else:
                    work.pop()
                    if work:
                        u = work[-1][0]
                        low[u] = min(low[u], low[v])
                    if low[v] == index[v]:
                        while True:
                            w = stack.pop()
                            on.discard(w)
                            comp[w] = index[v]
                            if w == v:
                                break
        self.comp = comp
        self.dirty = False
        self.version += 1


_UNIONS: dict[str, UnionGraph] = {}  # scheme id -> the union of its graphs


def union_for(scheme: Any) -> UnionGraph:
    """The union graph of a scheme's schedules (one per scheme id, so schemes do not blur each other)."""
    sid = str(getattr(scheme, "id", "") or "")
    u = _UNIONS.get(sid)
    if u is None:
        u = _UNIONS[sid] = UnionGraph()
    return u


class LockdepChecker:
    """The per-schedule lockdep (and waitdep) checker.  See the module docstring."""

    name = "lockdep"

    def __init__(self, world: Any = None, scheme: Any = None, scenario: Any = None, *, waitdep: bool = True,
                 prefilter: bool = True, union: UnionGraph | None = None) -> None:
        self.waitdep = waitdep
        #: the process-wide union of all class graphs: a new edge whose target cannot reach its source
        #: there cannot close a cycle here, so the search is skipped and the chain's edges are made only
        #: when needed.  It never changes a verdict or a report; only the "max bfs queue depth" statistic
        #: depends on it, so the /proc renderings turn it off.
        self.union = (union or union_for(scheme)) if prefilter else None
        self.ident = kernel_release(scheme)
        self.scheme_id = getattr(scheme, "id", None)
        self.nodes: dict[str, ClassNode] = {}
        self._by_cls: dict[str, ClassNode] = {}  # subclass-0 nodes by class string (the hot lookup)
        self.tasks: dict[str, TaskState] = {}
        self.found: dict[str, Finding] = {}
        self.chains: dict[int, tuple[tuple[str, str], ...]] = {}  # chain id -> the chain's classes
        self._trans = _TRANS
        self._chain_edges: dict[int, Any] = {}  # validated chain -> its dependencies, or its cold record
        self._cold: list[tuple[int, tuple]] = []  # chains whose edges are not made yet (see _check)
        self.nr_edges = 0
        self.max_depth = 0
        self.max_bfs = 0
        self.validations = 0
        self.wait_edges = 0  #: wait dependencies recorded (no second search while there are none)
        self._other = {Block: self._on_block}
        if waitdep:
            self._other.update({SynchronizeSrcu: self._on_sync, WaitDepAcquire: self._on_wd_acquire,
                                WaitDepRelease: self._on_wd_release, WaitDepWait: self._on_wd_wait})

    # --- the hot path -----------------------------------------------------------------------------
    # A held entry is a tuple (lock, node, mode, try_, how, stack, step, chain): cheap to make on every
    # acquisition; it becomes a Held view only for a report.  ``chain`` identifies the
    # sequence of held (class, mode, trylock) up to this entry exactly (lockdep's chain key without
    # hashing): a small int found through a transition table, so nothing else is allocated.
    def on_event(self, step: int, p: Any, op: Any, result: Any, extra: Any) -> None:
        c = op.__class__
        if c is Acquire:
            if not result:
                return
            lock = op.lock
            st = self.tasks.get(p.name)
            if st is None:
                st = self._task(p)
            held = st.held
            sub = op.subclass
            node = self._by_cls.get(lock.cls) if not sub else None
            if node is None:
                node = self._node_for(lock, sub)
            mode = op.mode
            prev = held[-1][7] if held else 0
            code = (node.tkt if op.try_ else node.tk)[mode]
            key = self._trans[prev].get(code)
            if key is None:
                key = self._new_chain_id(prev, code)
            ent = (lock, node, mode, op.try_, HOW_LOCK, p.stack, step, key)
            if key not in st.chains:
                st.chains.add(key)
                self._miss(st, ent, held, step)
            held.append(ent)
        elif c is Release:
            st = self.tasks.get(p.name)
            if st is not None:
                held = st.held
                if held and held[-1][0] is op.lock:
                    held.pop()
                else:
                    self._drop(st, op.lock)
        else:
            h = self._other.get(c)
            if h is not None:
                h(step, p, op)

    @staticmethod
    def _new_chain_id(prev: int, code: int) -> int:
        n = len(_TRANS)
        _TRANS.append({})
        _TRANS[prev][code] = n
        return n

    def _chain_id(self, prev: int, code: int) -> int:
        n = _TRANS[prev].get(code)
        return n if n is not None else self._new_chain_id(prev, code)

    def findings(self) -> list[Finding]:
        return list(self.found.values())

    def on_end(self, procs: list[Any], step: int) -> None:
        """Validate the acquisitions still pending when the schedule ends.

        Lockdep checks an acquisition when it starts, before the task blocks; the event stream only
        shows acquisitions that were granted.  A task that is still waiting at the end (an actual
        deadlock or hang, or the step bound) is checked here, so the cycle of a schedule that really
        deadlocked is reported too, as the kernel's lockdep would have reported it.
        """
        for p in procs:
            op = p.pending
            if p.gen is None or op is None:
                continue
            c = op.__class__
            if c is Acquire:
                if not op.try_ and op.lock.validate:
                    self._attempt(step, p, op.lock, op.mode, op.subclass)
            elif c is SynchronizeSrcu or c is Block:
                h = self._other.get(c)
                if h is not None:
                    h(step, p, op)

    def _attempt(self, step: int, p: Any, lock: Any, mode: str, sub: int) -> None:
        st = self.tasks.get(p.name) or self._task(p)
        held = st.held
        node = self._node_for(lock, sub)
        key = self._chain_id(held[-1][7] if held else 0, node.tk[mode])
        if key not in st.chains:
            st.chains.add(key)
            self._miss(st, (lock, node, mode, False, HOW_LOCK, p.stack, step, key), held, step)

    def _task(self, p: Any) -> TaskState:
        st = self.tasks.get(p.name)
        if st is None:
            order = getattr(p, "order", None)
            st = TaskState(p.name, 1000 + (order if isinstance(order, int) else len(self.tasks)))
            self.tasks[p.name] = st
        return st

    def _node_for(self, lock: Any, sub: int) -> ClassNode:
        if not sub:
            n = self._by_cls.get(lock.cls)
            if n is not None:
                return n
            name = lock.cls
        else:
            name = f"{lock.cls}/{sub}"
            n = self.nodes.get(name)
            if n is not None:
                return n
        kind = lock.kind
        gid = _CLASS_IDS.setdefault((name, kind, lock.validate), len(_CLASS_IDS))
        n = ClassNode(gid, name, lock.cls, sub, kind, kind == "wait", lock.validate)
        self.nodes[name] = n
        if not sub:
            self._by_cls[lock.cls] = n
        return n

    def _miss(self, st: TaskState, ent: tuple, held: list[tuple], step: int) -> None:
        """First time this task has this chain: usage, depth, and (for a validated blocking
        acquisition) the recursion check and the new dependencies."""
        lock, node, mode, try_ = ent[0], ent[1], ent[2], ent[3]
        node.usage |= U_WRITE if mode == WRITE else U_READ
        if len(held) + 1 > self.max_depth:
            self.max_depth = len(held) + 1
        if try_ or not lock.validate:
            return
        self._check(st, ent, held, step, False)

    def _drop(self, st: TaskState, lock: Any) -> bool:
        """Remove the most recent entry of ``lock`` from the task's stack (releases need not be LIFO)."""
        held = st.held
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] is lock:
                break
        else:
            return False
        del held[i]
        if i < len(held):  # re-key the chain above the hole, as lockdep re-acquires those locks
            prev = held[i - 1][7] if i else 0
            for j in range(i, len(held)):
                e = held[j]
                prev = self._chain_id(prev, (e[1].tkt if e[3] else e[1].tk)[e[2]])
                held[j] = e[:7] + (prev,)
        return True

    # --- waits (waitdep) ----------------------------------------------------------------------------
    def _on_block(self, step: int, p: Any, op: Any) -> None:
        node = getattr(op.cond, "node", None)
        if node is not None and self.waitdep and hasattr(node, "cls"):
            self._wait(step, p, node, WRITE, HOW_WAIT, ())

    def _on_sync(self, step: int, p: Any, op: Any) -> None:
        self._wait(step, p, op.srcu, WRITE, HOW_SYNC, ())

    def _on_wd_acquire(self, step: int, p: Any, op: Any) -> None:
        """The task now holds a wait node: like a trylock (no edge into it), edges out of it."""
        st = self.tasks.get(p.name) or self._task(p)
        held = st.held
        node = self._node_for(op.node, 0)
        key = self._chain_id(held[-1][7] if held else 0, node.tkt[WRITE])
        ent = (op.node, node, WRITE, True, HOW_HOLD, p.stack, step, key)
        if key not in st.chains:
            st.chains.add(key)
            self._miss(st, ent, held, step)
        held.append(ent)

    def _on_wd_release(self, step: int, p: Any, op: Any) -> None:
        node = op.node
        st = self.tasks.get(p.name)
        if st is not None and self._drop(st, node):
            return
        for other in self.tasks.values():  # a completion may be signalled by another task
            if other is not st and self._drop(other, node):
                return

    def _on_wd_wait(self, step: int, p: Any, op: Any) -> None:
        self._wait(step, p, op.node, WRITE, HOW_WAIT, op.drop)

    def _wait(self, step: int, p: Any, lock: Any, mode: str, how: str, drop: tuple) -> None:
        """A momentary blocking acquisition that lockdep cannot see (acquire + release at once)."""
        st = self.tasks.get(p.name) or self._task(p)
        held = st.held if not drop else [e for e in st.held if not any(e[0] is d for d in drop)]
        node = self._node_for(lock, 0)
        if held is st.held:
            prev = held[-1][7] if held else 0
        else:
            prev = 0
            for e in held:
                prev = self._chain_id(prev, (e[1].tkt if e[3] else e[1].tk)[e[2]])
        key = self._chain_id(prev, node.tkw)
        if key in st.chains:
            return
        st.chains.add(key)
        if how == HOW_WAIT:
            node.usage |= U_WRITE
        self._check(st, (lock, node, mode, False, how, p.stack, step, key), held, step, True)

    # --- validation (once per new chain) ------------------------------------------------------------
    def _check(self, st: TaskState, ent: tuple, held: list[tuple], step: int, wait: bool) -> None:
        """Validate a chain: the recursion check, then an edge from every held validated lock.

        A chain all of whose dependencies are *cold* (they cannot lie on a cycle of the union graph, and
        it has no recursion) is only recorded; its edges are made, silently, the first time anything
        needs this schedule's graph (a search, a report, an introspection).  At the time it was seen it
        could not close a cycle, so nothing is lost and the report of any later cycle is the same.
        """
        key = ent[7]
        done = self._chain_edges.get(key)
        if done is not None:  # another task validated this chain: only note this task on its edges
            if done.__class__ is list:
                name = st.name
                for ed in done:
                    ed.actors.add(name)
            else:
                done[3].append(st.name)
            return
        self.validations += 1
        names = _CHAIN_NAMES.get(key)
        if names is None:
            names = _CHAIN_NAMES[key] = tuple((e[1].name, e[2]) for e in held) + ((ent[1].name, ent[2]),)
        self.chains[key] = names
        union = self.union
        if union is not None and union.cold.get(key) == union.version:
            rec = (st, ent, held[:], [st.name], wait)
            self._chain_edges[key] = rec
            self._cold.append((key, rec))
            return
        if self._cold:
            self.materialize()  # keep the graph in time order: first occurrences stay first
        self._chain_edges[key] = self._validate(st, ent, held, step, wait, True)

    def _validate(self, st: TaskState, ent: tuple, held: list[tuple], step: int, wait: bool,
                  search: bool) -> list[Edge]:
        done: list[Edge] = []
        node = ent[1]
        mode = ent[2]
        n = len(held)
        cold = True
        for i, e in enumerate(held):
            en = e[1]
            if not e[0].validate:
                continue
            if en is node:
                if mode == RECURSIVE_READ and e[2] != WRITE:
                    continue  # read-after-read recursion of a read-held lock is allowed
                cold = False
                self._recursive(st, Held(*e), Held(*ent), [Held(*h) for h in held], step, wait or en.wait)
                continue
            edge, hot = self._add_edge(st, e, ent, held, step, n - i, wait or en.wait, search)
            done.append(edge)
            cold = cold and not hot
        if search and cold and self.union is not None:
            self.union.cold[ent[7]] = self.union.version
        return done

    def materialize(self) -> None:
        """Make the edges of the chains recorded as cold (see :meth:`_check`)."""
        cold = self._cold
        if not cold:
            return
        self._cold = []
        for key, (st, ent, held, names, wait) in cold:
            edges = self._validate(st, ent, held, ent[6], wait, False)
            for ed in edges:
                ed.actors.update(names)
            self._chain_edges[key] = edges

    def _add_edge(self, st: TaskState, e: tuple, ent: tuple, held: list[tuple], step: int, distance: int,
                  wait: bool, search: bool) -> tuple[Edge, bool]:
        """Record the dependency ``e -> ent``; search for the cycle it may close.  → (edge, may be on a cycle)"""
        src, dst = e[1], ent[1]
        bit = _DEP[e[2], ent[2]]
        maybe = self.union is None or self.union.may_close(src.name, dst.name)
        edge = src.fwd.get(dst)
        if edge is None:
            edge = Edge(src, dst)
            src.fwd[dst] = edge
            dst.bwd[src] = edge
            self.nr_edges += 1
        edge.actors.add(st.name)
        if distance < edge.distance:
            edge.distance = distance
        known = (edge.deps | edge.wdeps) if wait else edge.deps
        if not bit & ~known:
            return edge, maybe
        path = None
        checker = "lockdep"
        if search and maybe:
            xr = ent[2] == RECURSIVE_READ
            if not wait:
                path = self._bfs(dst, xr, src, e[2] == WRITE, False)
            if path is None and (wait or (self.wait_edges and not bit & edge.wdeps)):
                # A dependency waitdep already knew was checked (with wait edges) when it was first made.
                path = self._bfs(dst, xr, src, e[2] == WRITE, True)
                checker = "waitdep"
        occ = (st.name, st.pid, ent[5], ent[6], ent[4], ent[2], ent[3], e[2], e[5][-1] if e[5] else "?")
        if wait:
            edge.wdeps |= bit
            self.wait_edges += 1
            if edge.wfirst is None:
                edge.wfirst = occ
        else:
            edge.deps |= bit
            if edge.first is None:
                edge.first = occ
        if path is not None:
            self._circular(st, Held(*e), Held(*ent), [Held(*h) for h in held], step, path, Occurrence(*occ),
                           checker)
        return edge, maybe

    def _bfs(self, src: ClassNode, src_xr: bool, target: ClassNode, target_w: bool,
             use_wait: bool) -> list[ClassNode] | None:
        """A strong path ``src -> ... -> target`` (lockdep's check_noncircular), or None.

        States are (class, reached-through-an-xR-edge): after an -(xR)-> edge only -(Ex)-> edges may
        follow.  The target matches if the new edge's holder is exclusive or the path's last edge is
        -(xN)-> (lockdep's hlock_conflict).
        """
        start = (src, src_xr)
        parent: dict[tuple[ClassNode, bool], Any] = {start: None}
        queue = deque([start])
        maxq = 1
        found = None
        while queue:
            state = queue.popleft()
            node, xr = state
            if node is target and (target_w or not xr):
                found = state
                break
            for nb, edge in node.fwd.items():
                bits = (edge.deps | edge.wdeps) if use_wait else edge.deps
                if xr:
                    bits &= E_MASK
                if not bits:
                    continue
                if bits & N_MASK:
                    nst = (nb, False)
                else:
                    nst = (nb, True)
                    if (nb, False) in parent:
                        continue
                if nst in parent:
                    continue
                parent[nst] = state
                queue.append(nst)
            if len(queue) > maxq:
                maxq = len(queue)
        if maxq > self.max_bfs:
            self.max_bfs = maxq
        if found is None:
            return None
        out = []
        s = found
        while s is not None:
            out.append(s[0])
            s = parent[s]
        out.reverse()
        return out

    # --- reports ---------------------------------------------------------------------------------
    def _circular(self, st: TaskState, e: Held, ent: Held, held: list[Held], step: int,
                  path: list[ClassNode], occ: Occurrence, checker: str) -> None:
        """Report the cycle closed by the new edge ``e.node -> ent.node`` (``path``: ent.node .. e.node)."""
        cycle = [e.node] + path[:-1]
        occs = [occ] + [path[i].fwd[path[i + 1]].occurrence for i in range(len(path) - 1)]
        edges = [None] + [path[i].fwd[path[i + 1]] for i in range(len(path) - 1)]
        names = [n.name for n in cycle]
        r = _rotation_start(names)
        rot = names[r:] + names[:r]
        key = f"{checker}|" + " -> ".join(rot)
        if key in self.found:
            return
        from apactors.report.lockdep_text import circular_report

        waits = []
        if checker == "waitdep":
            waits = [c.name for c in cycle if c.wait]
            for i, o in enumerate(occs):
                if o.how == HOW_SYNC:
                    waits.append(f"synchronize_srcu({cycle[(i + 1) % len(cycle)].name})")
                elif o.how == HOW_WAIT and not cycle[(i + 1) % len(cycle)].wait:
                    waits.append(f"a wait for {cycle[(i + 1) % len(cycle)].name}")
            waits = list(dict.fromkeys(waits)) or ["a wait"]
        report = circular_report(self.ident, st, ent, e, path, occs[1:], held, waits)
        n = len(cycle)
        edge_docs = []
        for i in range(n):
            j = (r + i) % n
            o = occs[j]
            ed = edges[j]
            if ed is None:
                bits = _DEP[e.mode, ent.mode]
                is_wait = o.how != HOW_LOCK or e.node.wait
                seen = [st.name]
            else:
                bits = ed.deps | ed.wdeps
                is_wait = not ed.deps
                seen = sorted(ed.actors)
            edge_docs.append({
                "from": cycle[j].name, "to": cycle[(j + 1) % n].name, "dep": dep_names(bits),
                "actor": o.actor, "path": o.path, "stack": list(o.stack), "step": o.step, "how": o.how,
                "mode": o.mode, "held_mode": o.held_mode, "wait": is_wait, "actors_seen": seen,
            })
        wait_nodes = [c.name for c in cycle if c.wait]
        arrow = " -> ".join(rot + [rot[0]])
        self.found[key] = Finding(
            "potential-deadlock", key,
            f"{CIRCULAR_TITLE.replace(' detected', '')}: {arrow} ({checker}; closed by {st.name} in {ent.at})",
            locks=rot, paths=[d["path"] for d in edge_docs], actors=[d["actor"] for d in edge_docs], step=step,
            details={
                "checker": checker, "title": CIRCULAR_TITLE, "type": "circular", "confirmed": False,
                "why": NOT_SEARCHED, "lockdep_sees": checker == "lockdep", "edges": edge_docs,
                "wait_nodes": wait_nodes, "kinds": [cycle[(r + i) % n].kind for i in range(n)],
                "closing": {"actor": st.name, "acquiring": ent.node.name, "holding": e.node.name,
                            "path": ent.at, "stack": list(ent.stack), "step": step},
            },
            report=report)

    def _recursive(self, st: TaskState, e: Held, ent: Held, held: list[Held], step: int, wait: bool) -> None:
        checker = "waitdep" if wait or ent.how != HOW_LOCK else "lockdep"
        name = ent.node.name
        key = f"{checker}|recursive|{name}|{e.at}|{ent.at}"
        if key in self.found:
            return
        from apactors.report.lockdep_text import recursive_report

        same = e.lock is ent.lock
        inst = [getattr(e.lock, "inst", ""), getattr(ent.lock, "inst", "")]
        self.found[key] = Finding(
            "potential-deadlock", key,
            f"possible recursive locking: {name} taken in {ent.at} while held from {e.at} by {st.name}"
            f" ({'the same instance' if same else 'instances ' + ' and '.join(inst)}; {checker})",
            locks=[name, name], paths=[e.at, ent.at], actors=[st.name], step=step,
            details={
                "checker": checker, "title": RECURSIVE_TITLE, "type": "recursive", "confirmed": False,
                "why": NOT_SEARCHED, "lockdep_sees": checker == "lockdep", "same_instance": same,
                "instances": inst, "held_mode": e.mode, "mode": ent.mode, "how": ent.how,
                "edges": [{"from": name, "to": name, "actor": st.name, "path": ent.at, "stack": list(ent.stack),
                           "step": step, "how": ent.how, "mode": ent.mode, "held_mode": e.mode,
                           "held_at": e.at, "wait": wait, "actors_seen": [st.name]}],
                "wait_nodes": [name] if ent.node.wait else [], "kinds": [ent.node.kind],
            },
            report=recursive_report(self.ident, st, ent, e, held))

    # --- introspection for reports ---------------------------------------------------------------
    def edges(self) -> Iterable[Edge]:
        self.materialize()
        for n in self.nodes.values():
            yield from n.fwd.values()


def register(waitdep: bool = True) -> None:
    """Register the checker in :data:`apactors.check.CHECKERS` under ``lockdep``."""
    from apactors.check import register_checker

    register_checker("lockdep", lambda world, scheme, scenario: LockdepChecker(world, scheme, scenario,
                                                                                waitdep=waitdep))


class _Task:
    """A stand-in for a process when events are analysed after the schedule (name, stack, order)."""

    __slots__ = ("name", "stack", "order")

    def __init__(self, name: str, order: int) -> None:
        self.name = name
        self.stack: tuple[str, ...] = ()
        self.order = order


def analyse_events(events: Iterable[tuple], scheme: Any = None, actor_order: Iterable[str] = (), *,
                   waitdep: bool = True, checker: LockdepChecker | None = None) -> LockdepChecker:
    """Run a checker over recorded events ``(step, actor, stack, op, result, extra)``.

    ``actor_order`` lists the scenario actors in creation order (the pids of reports); workers get the
    next numbers in order of appearance, as the engine creates them.
    """
    ck = checker if checker is not None else LockdepChecker(None, scheme, None, waitdep=waitdep)
    tasks: dict[str, _Task] = {}
    for name in actor_order:
        tasks[name] = _Task(name, len(tasks))
    on_event = ck.on_event
    for step, actor, stack, op, result, extra in events:
        t = tasks.get(actor)
        if t is None:
            t = tasks[actor] = _Task(actor, len(tasks))
        t.stack = stack
        on_event(step, t, op, result, extra)
    ck.materialize()
    return ck


__all__ = ["BH_SPINLOCKS", "CIRCULAR_TITLE", "ClassNode", "DEP_EN", "DEP_ER", "DEP_SN", "DEP_SR", "Edge", "Held",
           "LockdepChecker", "Occurrence", "RECURSIVE_TITLE", "TaskState", "UnionGraph", "analyse_events", "dep_names",
           "kernel_release", "register", "union_for"]
