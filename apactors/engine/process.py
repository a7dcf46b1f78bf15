"""One modelled thread of control: the execution context code paths see as ``k``.

A ``Process`` owns the generator of the scenario operation its actor is running and the operation that
generator yielded last (``pending``).  A *step* performs ``pending`` atomically and runs the generator
up to its next operation.  Both engines (controlled and threads) step processes through
:meth:`Runtime.step`, so a trace recorded by either replays in the other.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from apactors.model.ops import Acquire, Oops, Op

IDLE, RUNNING, DONE, CRASHED = "idle", "running", "done", "crashed"


class Process:
    """A modelled task: a vCPU thread, a VMM, a sysfs writer, the bus scan, a worker.

    ``ops`` is the queue of scenario operations still to run (the actor's inbox content, mirrored here
    so the scheduler can see whether the actor has work).
    """

    __slots__ = ("name", "kind", "spec", "world", "stack", "frames", "arrival", "gen", "pending", "ops", "state",
                 "current", "runtime", "started_ops", "results", "order", "crash", "task", "blocked")

    def __init__(self, name: str, kind: str, spec: Any, world: Any, runtime: "Runtime", order: int) -> None:
        self.name = name
        self.kind = kind
        self.spec = spec
        self.world = world
        self.stack: tuple[str, ...] = ()
        self.frames: tuple[int, ...] = ()  #: a call number per entry of ``stack`` (see schemes.base.path)
        self.arrival = 0
        self.gen: Any = None
        self.pending: Op | None = None
        self.ops: deque[Any] = deque()
        self.state = IDLE
        self.current: Any = None  #: the scenario Operation being run (None for workers)
        self.runtime = runtime
        self.started_ops = 0
        self.results: list[Any] = []
        self.order = order
        self.crash: Oops | None = None
        self.task: Any = None  #: the pykka actor carrying this process's operations
        self.blocked = False  #: threads mode: waiting for its pending op to become enabled

    # --- the ExecContext protocol used by operations -------------------------------------------
    def choose(self, n: int, label: str) -> int:
        return self.runtime.choose(self, n, label)

    def queue_work(self, item: Any) -> bool:
        return self.runtime.queue_work(self, item)

    # --- scheduling --------------------------------------------------------------------------------
    def enabled(self) -> bool:
        """Can this process take a step now?"""
        if self.gen is not None:
            return self.pending.enabled(self)  # type: ignore[union-attr]
        return self.state == IDLE and bool(self.ops)

    def live(self) -> bool:
        """Has work left (an operation in progress or queued)?"""
        return self.gen is not None or (self.state == IDLE and bool(self.ops))

    def __repr__(self) -> str:
        return f"<Process {self.name} {self.state} pending={type(self.pending).__name__}>"


class Runtime:
    """What both engines share: processes, stepping, choices, work items, and the event sink.

    ``sink(step, proc, op, result, extra)`` receives every event: a performed operation with its
    result and the environment choices made (``extra``, or None); ``BEGIN`` with the scenario operation
    as ``result``; ``END`` with the return value as ``result`` and the scenario operation as ``extra``;
    ``CRASH`` with the ``Oops`` as ``result`` and the crashing operation as ``extra``.  The sink is None
    when nothing observes the run (the benchmark floor).  ``chooser(n, label)`` supplies environment choices (the strategy, or a replayed trace).
    """

    def __init__(self, world: Any, scheme: Any, chooser: Callable[[int, str], int],
                 sink: Callable[..., None] | None) -> None:
        self.world = world
        self.scheme = scheme
        self.chooser = chooser
        self.sink = sink
        self.procs: list[Process] = []
        self.by_name: dict[str, Process] = {}
        self.step_no = 0
        self.arrivals = 0
        self.choices: list[int] = []
        self.spawn_hook: Callable[[Process], None] | None = None
        self._worker_serial: dict[str, int] = {}

    def add(self, name: str, kind: str, spec: Any) -> Process:
        p = Process(name, kind, spec, self.world, self, len(self.procs))
        self.procs.append(p)
        self.by_name[name] = p
        return p

    # --- hooks called by operations ------------------------------------------------------------
    def choose(self, p: Process, n: int, label: str) -> int:
        if n <= 1:
            return 0
        v = self.chooser(n, label)
        self.choices.append(v)
        return v

    def queue_work(self, p: Process, item: Any) -> bool:
        if item.pending:
            return False
        item.pending = True
        if item.worker is None:
            serial = self._worker_serial.get(item.name, 0)
            self._worker_serial[item.name] = serial + 1
            name = f"kworker/{item.name}" if serial == 0 else f"kworker/{item.name}#{serial}"
            w = self.add(name, "worker", None)
            item.worker = name
            w.gen = self.scheme.work_thread(w, item)
            w.state = RUNNING
            self._advance(w, None, first=True)
            if self.spawn_hook is not None:
                self.spawn_hook(w)
        return True

    # --- stepping --------------------------------------------------------------------------------
    def step(self, p: Process) -> None:
        """Perform one step of ``p`` (which must be enabled)."""
        step = self.step_no
        self.step_no = step + 1
        sink = self.sink
        if p.gen is None:
            op_spec = p.ops.popleft()
            p.current = op_spec
            p.state = RUNNING
            p.started_ops += 1
            p.gen = self.scheme.operation(p, p.spec, op_spec)
            if sink is not None:
                sink(step, p, BEGIN, op_spec, None)
            self._advance(p, None, first=True)
            return
        op = p.pending
        self.choices = []
        try:
            result = op.perform(p)  # type: ignore[union-attr]
        except Oops as oops:
            self._crash(p, step, op, oops)
            return
        if sink is not None:
            sink(step, p, op, result, self.choices or None)
        self._advance(p, result)

    def _advance(self, p: Process, value: Any, first: bool = False) -> None:
        """Run ``p``'s generator up to its next scheduling point."""
        gen = p.gen
        sink = self.sink
        try:
            op = next(gen) if first else gen.send(value)
            while op.inline:
                r = op.perform(p)
                if sink is not None:
                    sink(self.step_no - 1, p, op, r, None)
                op = gen.send(r)
        except StopIteration as stop:
            p.gen = None
            p.pending = None
            p.stack = ()
            p.frames = ()
            p.results.append(stop.value)
            p.state = IDLE if p.kind != "worker" else DONE
            if sink is not None and p.kind != "worker":
                sink(self.step_no - 1, p, END, stop.value, p.current)
            return
        except Oops as oops:  # an inline op crashed
            self._crash(p, self.step_no - 1, op, oops)
            return
        p.pending = op
        self.arrivals += 1
        p.arrival = self.arrivals
        if op.__class__ is Acquire and not op.try_:
            op.lock.arrive(p.name, op.mode, p.arrival)

    def _crash(self, p: Process, step: int, op: Any, oops: Oops) -> None:
        """An oops kills the task; the locks it held stay held (§0.2 rule 3)."""
        p.crash = oops
        p.state = CRASHED
        stack = p.stack
        try:
            p.gen.close()
        except Exception:  # noqa: BLE001 - a path's cleanup must not hide the crash
            pass
        p.stack = stack
        p.gen = None
        p.pending = None
        p.ops.clear()
        if self.sink is not None:
            self.sink(step, p, CRASH, oops, op)


class Marker:
    """Pseudo-operations that mark operation boundaries and crashes in the event stream."""

    __slots__ = ("code",)
    inline = False

    def __init__(self, code: str) -> None:
        self.code = code

    def __repr__(self) -> str:
        return self.code


BEGIN = Marker("begin")
END = Marker("end")
CRASH = Marker("crash")

__all__ = ["BEGIN", "CRASH", "CRASHED", "DONE", "END", "IDLE", "Process", "RUNNING", "Runtime"]
