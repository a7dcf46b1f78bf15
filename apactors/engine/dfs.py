"""Exhaustive search: depth-first over every schedule, with a preemption bound and sleep sets.

The search is *stateless*: the modelled world cannot be copied, so every schedule is executed again
from the start, following the decisions of the search tree down to the node being expanded and making
new decisions from there on.  A node is a scheduling point with two or more enabled processes (which
one runs) or an environment choice (which answer the hardware gives; every answer is explored).

* **Preemption bound** ``b``: a schedule may preempt at most ``b`` times (:func:`is_preemption`:
  switching away from a process that is enabled in the middle of a code path; switching when it
  blocks, ends, or is between scenario operations is free).  ``b < 0`` means no bound.  The default
  continuation never preempts, so the first schedule runs every process as far as it can.
* **Sleep sets** (Godefroid): once the subtree of a transition ``t`` of a node has been explored, the
  later siblings carry ``t`` in their *sleep set* for as long as only steps independent of ``t``
  (:mod:`apactors.engine.dependency`) run; a sleeping transition is not explored again, since every
  schedule that would take it is equivalent (same happens-before order of dependent steps, same
  outcome) to one already explored.  An execution in which every enabled transition sleeps is
  *redundant*: it leaves the tree and runs to its end without branching (never preempting), so that
  the checkers still see every state it reached (sleep sets prune transitions, not states), and is
  counted in ``redundant``.
* Bound and sleep sets together are unsound if combined naively (the equivalent schedule explored in
  the sibling subtree may need more preemptions than the bound allows; see Coons, Musuvathi and
  McKinley, *Bounded Partial-Order Reduction*, OOPSLA 2013).  Here a sibling enters sleep sets only if
  its subtree was explored *completely*: no transition in it was cut by the bound or by the step
  bound.  Everything pruned is therefore covered by an explored equivalent schedule, so a completed
  search is exhaustive for "every schedule with at most ``b`` preemptions" (and for every schedule
  without a bound), up to ``max_steps`` steps per schedule.

Use :class:`Dfs` directly (``for sr in Dfs(scheme, scenario, preemptions=2): ...``) or through the
``dfs`` entry of :data:`apactors.engine.strategies.STRATEGIES`, whose :meth:`DfsStrategy.driver`
builds one.  After the iteration, :meth:`Dfs.summary` says whether the search was exhaustive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from apactors.engine.dependency import EMPTY, Footprint, dependent, step_footprint
from apactors.engine.strategies import Strategy, is_preemption, register_strategy

PICK, CHOOSE = "pick", "choose"


class NondeterminismError(RuntimeError):
    """Re-executing a prefix of decisions did not reach the same scheduling point (a model bug)."""


class _Node:
    """A decision point of the search tree."""

    __slots__ = ("kind", "enabled", "cost", "sleep", "chosen", "done", "allowed", "child_fp", "clean", "cut",
                 "n")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.enabled: tuple[str, ...] = ()  #: pick: names of the enabled processes
        self.cost = 0  #: pick: preemptions before this point
        self.sleep: list[tuple[str, Footprint]] = []  #: pick: sleep set on arrival
        self.chosen: Any = 0  #: the decision of the current branch (process name, or choice value)
        self.done: list[str] = []  #: pick: explored transitions, in order (the current one last)
        self.allowed: list[str] = []  #: pick: the transitions to explore (awake and within the bound)
        self.child_fp: dict[str, Footprint] = {}  #: pick: footprint of each explored transition
        self.clean: dict[str, bool] = {}  #: pick: explored transition -> its subtree had no cut
        self.cut = False  #: pick: the current branch's subtree has a cut so far
        self.n = 0  #: choose: number of answers


@dataclass
class DfsSummary:
    """What a search did; ``exhaustive`` is True when it explored its whole (bounded) tree."""

    exhaustive: bool
    schedules: int
    preemptions: int | None
    sleep_sets: bool
    redundant: int = 0  #: schedules that left the tree because every enabled transition was asleep
    bound_cuts: int = 0  #: transitions not explored because of the preemption bound
    truncated: int = 0  #: schedules that reached max_steps
    max_steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"strategy": "dfs", "exhaustive": self.exhaustive, "schedules": self.schedules,
                "preemptions": self.preemptions, "sleep_sets": self.sleep_sets,
                "redundant_executions": self.redundant, "bound_cuts": self.bound_cuts,
                "truncated_schedules": self.truncated, "max_steps": self.max_steps}


class _Execution(Strategy):
    """The strategy of one execution: follows the tree's decisions, then extends the tree."""

    name = "dfs"
    always_pick = True

    def __init__(self, search: "Dfs", events: list[tuple]) -> None:
        self.search = search
        self.events = events
        self.pos = 0  # index of the next decision in search.nodes
        self.cost = 0
        self.last: Any = None
        self.sleep: list[tuple[str, Footprint]] = []
        self._proc: Any = None  # the process of the step whose footprint is still to be settled
        self._op: Any = None
        self._ev = 0
        self._node: _Node | None = None
        #: why this execution left the tree ("sleep": redundant, "bound": over the preemption bound);
        #: it then runs to its end without branching, so its checkers see every state it reached
        self.tail: str | None = None

    def _leave(self, why: str, enabled: Sequence[Any]) -> Any:
        self.tail = why
        return self._tail_pick(enabled)

    def _tail_pick(self, enabled: Sequence[Any]) -> Any:
        last = self.last
        p = last if last is not None and any(q is last for q in enabled) else enabled[0]
        self._took(p, None)
        return p

    # --- strategy interface --------------------------------------------------------------------------
    def pick(self, enabled: Sequence[Any], step: int) -> Any:
        self.settle()
        if self.tail is not None:
            return self._tail_pick(enabled)
        search = self.search
        if len(enabled) == 1:
            p = enabled[0]
            if search.sleep_sets and any(name == p.name for name, _ in self.sleep):
                return self._leave("sleep", enabled)
            self._took(p, None)
            return p
        names = tuple(p.name for p in enabled)
        nodes = search.nodes
        node: _Node | None
        if self.pos < len(nodes):
            node = nodes[self.pos]
            if node.kind != PICK or node.enabled != names:
                raise NondeterminismError(
                    f"step {step}: re-execution reached {names} where the search recorded "
                    f"{node.enabled if node.kind == PICK else 'an environment choice'}")
        else:
            node = self._new_node(enabled, names)
            if node is None:
                return self._leave(self.tail or "sleep", enabled)
        self.pos += 1
        p = next(q for q in enabled if q.name == node.chosen)
        if is_preemption(self.last, p, enabled):
            self.cost += 1
        self._took(p, node)
        return p

    def choose(self, n: int, label: str) -> int:
        if self.tail is not None:
            return 0
        nodes = self.search.nodes
        if self.pos < len(nodes):
            node = nodes[self.pos]
            if node.kind != CHOOSE or node.n != n:
                raise NondeterminismError(f"choice {label!r} of {n}: the search recorded another decision here")
        else:
            node = _Node(CHOOSE)
            node.n = n
            nodes.append(node)
        self.pos += 1
        return int(node.chosen)

    # --- bookkeeping -----------------------------------------------------------------------------------
    def _new_node(self, enabled: Sequence[Any], names: tuple[str, ...]) -> _Node | None:
        """A new pick node with its default branch; None if every transition is asleep (``tail`` is
        then None) or over the bound (``tail`` is set to "bound")."""
        search = self.search
        asleep = {name for name, _ in self.sleep} if search.sleep_sets else set()
        last = self.last
        last_pre = last is not None and last.gen is not None and any(q is last for q in enabled)
        awake = [n for n in names if n not in asleep]
        if not awake:
            return None
        bound = search.bound
        allowed = [n for n in awake
                   if bound is None or self.cost + (1 if last_pre and n != last.name else 0) <= bound]
        if len(allowed) < len(awake):
            search.bound_cuts += len(awake) - len(allowed)
            search.mark_cut(self.pos)
        if not allowed:
            self.tail = "bound"
            return None
        first = last.name if last is not None and last.name in allowed else allowed[0]
        node = _Node(PICK)
        node.enabled = names
        node.cost = self.cost
        node.sleep = list(self.sleep)
        node.allowed = [first] + [n for n in allowed if n != first]
        node.chosen = first
        node.done = [first]
        search.nodes.append(node)
        return node

    def _took(self, p: Any, node: _Node | None) -> None:
        self.last = p
        self._proc = p
        self._op = p.pending
        self._ev = len(self.events)
        self._node = node

    def settle(self) -> None:
        """Account for the step taken last: its footprint, and the sleep set after it."""
        p = self._proc
        if p is None:
            return
        self._proc = None
        if self.tail is not None and self._node is None:
            return  # out of the tree: nothing depends on this step's footprint any more
        fp = step_footprint(self._op, self.events[self._ev:], p.pending if p.gen is not None else None)
        node = self._node
        if node is not None:
            name = node.chosen
            node.child_fp[name] = node.child_fp.get(name, EMPTY).union(fp)
            base = node.sleep + [(n, node.child_fp[n]) for n in node.done[:-1] if node.clean.get(n)]
        else:
            base = self.sleep
        if self.search.sleep_sets:
            self.sleep = [(n, f) for n, f in base if not dependent(f, fp)]


class Dfs:
    """A bounded exhaustive search over the schedules of ``scenario`` under ``scheme_cls``.

    Iterating yields the :class:`~apactors.engine.controlled.ScheduleResult` of every schedule it
    runs (``index`` counts them from 0), redundant ones included.  At most
    ``max_schedules`` are run (None: no limit); the search is exhaustive only if it ends by itself.
    ``record=False`` drops each schedule's events once the search has used them.
    """

    def __init__(self, scheme_cls: Any, scenario: Any, *, preemptions: int | None = 2,
                 max_schedules: int | None = None, max_steps: int = 50_000, sleep_sets: bool = True,
                 record: bool = True, check: bool = True) -> None:
        self.scheme_cls = scheme_cls
        self.scenario = scenario
        self.bound = preemptions if preemptions is not None and preemptions >= 0 else None
        self.max_schedules = max_schedules
        self.max_steps = max_steps
        self.sleep_sets = sleep_sets
        self.record = record
        self.check = check
        self.nodes: list[_Node] = []
        self.schedules = 0
        self.redundant = 0
        self.bound_cuts = 0
        self.truncated = 0
        self.complete = False
        self._started = False

    def mark_cut(self, depth: int) -> None:
        """A transition below ``nodes[depth - 1]`` was not explored: the enclosing subtrees are incomplete."""
        for node in self.nodes[:depth]:
            if node.kind == PICK:
                node.cut = True

    def __iter__(self) -> Iterator[Any]:
        from apactors.engine.controlled import run_schedule

        if self._started:
            raise RuntimeError("a Dfs search runs once; make a new one")
        self._started = True
        while True:
            if self.max_schedules is not None and self.schedules >= self.max_schedules:
                return
            events: list[tuple] = []
            ex = _Execution(self, events)
            sr = run_schedule(self.scheme_cls, self.scenario, ex, index=self.schedules, seed=0,
                              max_steps=self.max_steps, record=True, check=self.check, events=events)
            ex.settle()
            if ex.tail == "sleep":
                self.redundant += 1
            elif ex.tail is None and sr.outcome == "step-bound":
                self.truncated += 1
                self.mark_cut(len(self.nodes))
            del self.nodes[ex.pos:]
            self.schedules += 1
            if not self.record:
                sr.events = None
            yield sr
            if not self._backtrack():
                self.complete = True
                return

    def _backtrack(self) -> bool:
        """Move to the next unexplored branch of the deepest node that has one; False when done."""
        nodes = self.nodes
        while nodes:
            node = nodes[-1]
            if node.kind == CHOOSE:
                if node.chosen + 1 < node.n:
                    node.chosen += 1
                    return True
                nodes.pop()
                continue
            node.clean[node.chosen] = not node.cut
            nxt = next((n for n in node.allowed if n not in node.done), None)
            if nxt is not None:
                node.chosen = nxt
                node.done.append(nxt)
                node.cut = False
                return True
            nodes.pop()
        return False

    def run(self, callback: Callable[[Any], None] | None = None) -> DfsSummary:
        """Run the whole search, calling ``callback(schedule_result)`` for every schedule."""
        for sr in self:
            if callback is not None:
                callback(sr)
        return self.summary()

    def summary(self) -> DfsSummary:
        return DfsSummary(exhaustive=self.complete, schedules=self.schedules, preemptions=self.bound,
                          sleep_sets=self.sleep_sets, redundant=self.redundant, bound_cuts=self.bound_cuts,
                          truncated=self.truncated, max_steps=self.max_steps)


class DfsStrategy(Strategy):
    """The ``dfs`` entry of the strategy registry: a search driver, not a per-schedule strategy.

    ``preemptions`` is the preemption bound (negative: none); ``sleep_sets=False`` turns partial-order
    reduction off.  Build the search with :meth:`driver` and iterate it.
    """

    name = "dfs"
    is_driver = True

    def __init__(self, preemptions: int = 2, sleep_sets: bool = True) -> None:
        self.preemptions = preemptions
        self.sleep_sets = sleep_sets
        self.search: Dfs | None = None

    def driver(self, scheme_cls: Any, scenario: Any, *, max_schedules: int | None = None,
               max_steps: int = 50_000, record: bool = True, check: bool = True) -> Dfs:
        self.search = Dfs(scheme_cls, scenario, preemptions=self.preemptions, max_schedules=max_schedules,
                          max_steps=max_steps, sleep_sets=self.sleep_sets, record=record, check=check)
        return self.search

    def params(self) -> dict[str, Any]:
        return {"preemptions": self.preemptions, "sleep_sets": self.sleep_sets}

    def summary(self, schedules: int) -> dict[str, Any] | None:
        return self.search.summary().to_json() if self.search is not None else None

    def begin(self, seed: int) -> None:
        raise TypeError("dfs is a search driver, not a per-schedule strategy: iterate "
                        "make_strategy('dfs').driver(scheme, scenario, ...) instead")

    def pick(self, enabled: Sequence[Any], step: int) -> Any:  # pragma: no cover - begin raises first
        raise TypeError("dfs is a search driver")

    def choose(self, n: int, label: str) -> int:  # pragma: no cover
        raise TypeError("dfs is a search driver")


register_strategy("dfs", DfsStrategy)

__all__ = ["Dfs", "DfsStrategy", "DfsSummary", "NondeterminismError"]
