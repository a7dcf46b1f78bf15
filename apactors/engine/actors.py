"""The pykka actors that carry scenario operations to the modelled tasks.

Every modelled task (vCPU, mdev file user, VMM, sysfs writer, hmc, bus scan, workqueue worker) is a
pykka actor.  The scenario driver ``tell``s each actor its operations as ``RunOperation`` messages, in
order; the actor's ``on_receive`` hands each one to its :class:`~apactors.engine.process.Process`.

Two concurrency backends (pykka's ``Actor`` leaves inbox, future and loop to a subclass):

* :class:`DeterministicActor` for controlled mode: the inbox is a deque, futures resolve at once, and no
  thread runs the actor loop.  Messages are delivered on the executor's thread in a fixed order, and the
  executor, not the OS, decides which task takes the next step.  This is what makes a schedule a pure
  function of (scheme, scenario, strategy, seed).
* ``pykka.ThreadingActor`` for ``--mode threads``: each actor runs its operations on its own thread,
  modelled locks block for real (:mod:`apactors.engine.threads`), and the order of steps that actually
  happened is recorded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import pykka
from pykka import Future


@dataclass(frozen=True)
class RunOperation:
    """Message: run one scenario operation."""

    op: Any


class _DequeInbox:
    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[Any] = deque()

    def put(self, envelope: Any, /) -> None:
        self._q.append(envelope)

    def get(self) -> Any:
        return self._q.popleft()

    def empty(self) -> bool:
        return not self._q


class ImmediateFuture(Future[Any]):
    """A future that is set before anyone waits for it (no threads in controlled mode)."""

    def __init__(self) -> None:
        super().__init__()
        self._value: Any = None
        self._exc: Any = None
        self._set = False

    def get(self, *, timeout: float | None = None) -> Any:
        if not self._set:
            raise pykka.Timeout("deterministic future read before it was set")
        if self._exc is not None:
            raise self._exc[1]
        return self._value

    def set(self, value: Any | None = None) -> None:
        self._value = value
        self._set = True

    def set_exception(self, exc_info: Any = None) -> None:
        import sys

        self._exc = exc_info or sys.exc_info()
        self._set = True


class DeterministicActor(pykka.Actor):
    """pykka backend without threads: the owner calls :meth:`deliver` to process queued messages."""

    @staticmethod
    def _create_actor_inbox() -> Any:
        return _DequeInbox()

    @staticmethod
    def _create_future() -> Future[Any]:
        return ImmediateFuture()

    def _start_actor_loop(self) -> None:
        self._actor_loop_setup()

    def deliver(self) -> None:
        """Process every queued message, in order, on the calling thread."""
        inbox = self.actor_inbox
        while not inbox.empty() and not self.actor_stopped.is_set():
            envelope = inbox.get()
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)


class _TaskMixin:
    """What both backends do with a message: queue the operation on the process."""

    process: Any

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RunOperation):
            self.process.ops.append(message.op)
            return None
        return super().on_receive(message)  # type: ignore[misc]


class ControlledTask(_TaskMixin, DeterministicActor):
    """A modelled task under the controlled executor."""

    def __init__(self, process: Any) -> None:
        super().__init__()
        self.process = process
        process.task = self
