"""How an event of the stream becomes one JSON object of a trace.

An event is ``(step, actor, stack, op, result, extra)`` as the engine's sink sees it.  Rendering
happens only for traces that are kept (and during replay, to compare), never on the hot path.

A step line names the step number, the actor, the code path (kernel function) and its call stack, the
operation (``op``) and its operands: ``lock``/``instance``/``mode`` for lock operations, ``var`` and
``value`` for state reads and writes, ``on`` for waits, ``insn``/``apqn``/``rc`` for AP instructions,
``choices`` for environment choices, and ``ret`` for the value an operation returned.
"""

from __future__ import annotations

from typing import Any

from apactors.model import ops as O
from apactors.model.masks import Mask, format_apqn

TRACE_FORMAT = "apactors-trace/1"


def render_value(v: Any) -> Any:
    """A JSON rendering of a model value: masks as id lists, objects by name."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, Mask):
        return list(v.ids())
    if hasattr(v, "vname"):
        return v.name
    if hasattr(v, "_asdict"):
        return {k: render_value(x) for k, x in v._asdict().items()}
    if isinstance(v, dict):
        return {(format_apqn(k) if isinstance(k, int) else str(k)): render_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, frozenset)):
        items = list(v)
        return [render_value(x) for x in items]
    if hasattr(v, "to_json"):
        return v.to_json()
    return repr(v)


def _var(obj: Any, field: str) -> str:
    return f"{obj.vname}.{field}" if obj is not None else f"NULL.{field}"


def event_to_dict(step: int, actor: str, stack: tuple[str, ...], op: Any, result: Any, extra: Any) -> dict[str, Any]:
    """The JSON object of one event (see module docstring)."""
    from apactors.engine.process import BEGIN, CRASH, END

    d: dict[str, Any] = {"event": "step", "step": step, "actor": actor,
                         "path": stack[-1] if stack else None, "stack": list(stack)}
    if op is BEGIN:
        d["op"] = "begin"
        d["operation"] = result.text
        return d
    if op is END:
        d["op"] = "end"
        d["operation"] = extra.text if extra is not None else None
        d["ret"] = render_value(result)
        return d
    if op is CRASH:
        d["op"] = "crash"
        d["oops"] = result.kind
        d["expr"] = result.expr
        d["at"] = getattr(extra, "code", None)
        return d
    cls = op.__class__
    d["op"] = op.code
    if cls is O.Acquire:
        lk = op.lock
        d.update(lock=lk.cls, instance=lk.inst, mode=op.mode)
        if op.try_:
            d["try"] = True
            d["ok"] = bool(result)
    elif cls is O.Release:
        d.update(lock=op.lock.cls, instance=op.lock.inst, mode=op.mode)
    elif cls is O.Read or cls is O.Write or cls is O.Update:
        d["var"] = _var(op.obj, op.field)
        d["value"] = render_value(result)
    elif cls is O.Block:
        d["on"] = op.cond.describe()
    elif cls is O.Sleep:
        d["ms"] = op.ms
    elif cls in (O.PrepareWait, O.WaitWoken, O.FinishWait, O.WakeAll):
        d["wq"] = op.wq.name
    elif cls is O.SynchronizeSrcu:
        d.update(lock=op.srcu.cls, instance=op.srcu.inst)
    elif cls is O.Insn:
        d.update(insn=op.name, apqn=format_apqn(op.apqn), ret=render_value(result))
    elif cls is O.QueueWork or cls is O.StartWork or cls is O.EndWork:
        d["work"] = op.item.name
        if result is not None:
            d["ret"] = render_value(result)
    elif cls is O.Note:
        d.update(kind=op.kind, text=op.text)
    elif cls is O.Alloc or cls is O.Free:
        d["obj"] = op.obj.vname if op.obj is not None else None
    elif cls is O.NullDeref:
        d["expr"] = op.expr
    elif hasattr(op, "node"):  # waitdep annotations (apactors.model.waitdep_ops)
        node = op.node
        d.update(node=node.cls, instance=node.inst)
        if getattr(op, "drop", None):
            d["drop"] = [lk.cls for lk in op.drop]
    if extra:
        d["choices"] = list(extra)
    return d
