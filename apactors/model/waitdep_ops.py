"""Annotations for the wait-aware dependency checker ("waitdep"): waits that lockdep cannot see.

Lockdep only sees lock acquisitions (§2.3).  A task can also wait, while holding locks, for something
another task will do later: clear an open-coded busy flag (``kvm_busy`` + ``wait_for_kvm``), close a
device (``vfio_unregister_group_dev``), end its SRCU read sections (``synchronize_srcu``), leave SIE
(``kvm_s390_vcpu_block_all``).  The waitdep checker turns each such wait into a dependency node, a
*wait node*, with lockdep's rules: the task that will end the wait "holds" the node (so every lock it
takes meanwhile gets an edge *from* the node), and the task that waits "acquires and releases" it (so
every lock it holds while waiting gets an edge *to* the node).  A cycle that goes through a wait node
is a potential deadlock that plain lockdep misses.

The annotations are inline operations: they are recorded in the event stream but are not scheduling
points and change no modelled state.  A scheme path emits them next to the real steps:

* ``WaitDepAcquire(node)`` — the task starts something others may wait for (sets the busy flag, starts
  closing the device, enters SIE).  It never blocks and, like a trylock, gets no edge *into* the node.
* ``WaitDepRelease(node)`` — that something is over (clears the flag, last close done, leaves SIE).
  Any task may release a node another task acquired (a completion is signalled by whoever finishes).
* ``WaitDepWait(node, drop=(locks...))`` — the task (may) wait for the node here: edges from every
  validated lock it holds, except the ``drop`` locks that the wait releases while sleeping
  (``wait_event_cmd``'s ``cmd1``), to the node.  Emit it where the condition is tested, whether or not
  the task then sleeps (lockdep records an uncontended mutex_lock too).

A ``Cond`` subclass may instead carry a ``node`` attribute (a :class:`WaitNode`): a ``Block(cond)`` step
then counts as ``WaitDepWait(cond.node)`` with the locks held at that step.  ``SynchronizeSrcu`` needs no
annotation: the checker treats it as a momentary write acquisition of the SRCU class.
"""

from __future__ import annotations

from typing import Any, Iterable

from apactors.model.ops import ExecContext, Op

WAIT = "wait"  #: the ``kind`` of a wait node


class WaitNode:
    """A dependency node for a wait lockdep cannot see.

    ``cls`` names the node the way lockdep names a class (one node for every instance, e.g.
    ``(wait)&matrix_mdev->kvm_busy``); ``inst`` names the instance (``m0``), for reports only.
    ``what`` is a short description used in reports (``kvm_busy cleared``).
    """

    __slots__ = ("cls", "inst", "what")
    kind = WAIT
    validate = True
    sleeping = True

    def __init__(self, cls: str, inst: str = "", what: str = "") -> None:
        self.cls = cls
        self.inst = inst
        self.what = what or cls

    def label(self) -> str:
        return f"{self.cls}@{self.inst}"

    def __repr__(self) -> str:
        return f"<wait-node {self.label()}>"


class WaitDepAcquire(Op):
    """The running task now "holds" ``node``: whoever waits for it waits for this task."""

    __slots__ = ("node",)
    code = "waitdep-acquire"
    inline = True

    def __init__(self, node: WaitNode) -> None:
        self.node = node

    def perform(self, k: ExecContext) -> None:
        return None


class WaitDepRelease(Op):
    """``node`` is no longer held (by whichever task acquired it)."""

    __slots__ = ("node",)
    code = "waitdep-release"
    inline = True

    def __init__(self, node: WaitNode) -> None:
        self.node = node

    def perform(self, k: ExecContext) -> None:
        return None


class WaitDepWait(Op):
    """The running task may wait here for ``node``, holding its locks except ``drop``."""

    __slots__ = ("node", "drop")
    code = "waitdep-wait"
    inline = True

    def __init__(self, node: WaitNode, drop: Iterable[Any] = ()) -> None:
        self.node = node
        self.drop = tuple(drop)

    def perform(self, k: ExecContext) -> None:
        return None


__all__ = ["WAIT", "WaitDepAcquire", "WaitDepRelease", "WaitDepWait", "WaitNode"]
