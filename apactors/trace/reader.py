"""Read and validate a trace file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apactors.trace.format import TRACE_FORMAT


class TraceError(Exception):
    """A trace file that cannot be used; the message names the file and line."""


@dataclass
class Trace:
    path: Path
    header: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    footer: dict[str, Any] | None = None

    def schedule(self) -> list[tuple[str, list[int]]]:
        """Per step number: the actor that took the step and the environment choices it made.

        The first event of a step is the stepping actor's (inline annotations, the end of its operation
        and events of a worker it spawned follow with the same step number).
        """
        out: dict[int, tuple[str, list[int]]] = {}
        for ev in self.steps:
            n = ev["step"]
            if n not in out:
                out[n] = (ev["actor"], list(ev.get("choices") or []))
        return [out[i] for i in sorted(out)]


def read_trace(path: str | Path) -> Trace:
    """Parse ``path``; raise :class:`TraceError` naming the file and line on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"{p}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{p}: cannot read: {e}") from None
    header: dict[str, Any] | None = None
    trace: Trace | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise TraceError(f"{p}:{lineno}: not a JSON object: {e.msg}") from None
        if not isinstance(rec, dict) or "event" not in rec:
            raise TraceError(f"{p}:{lineno}: expected a JSON object with an 'event' key")
        kind = rec["event"]
        if header is None:
            if kind != "header":
                raise TraceError(f"{p}:{lineno}: the first line must be the trace header (event 'header')")
            if rec.get("format") != TRACE_FORMAT:
                raise TraceError(f"{p}:{lineno}: unsupported trace format {rec.get('format')!r}; expected {TRACE_FORMAT!r}")
            for key in ("scheme", "scenario", "seed"):
                if key not in rec:
                    raise TraceError(f"{p}:{lineno}: header has no {key!r}")
            header = rec
            trace = Trace(p, rec)
            continue
        assert trace is not None
        if kind == "step":
            if not isinstance(rec.get("step"), int) or not isinstance(rec.get("actor"), str):
                raise TraceError(f"{p}:{lineno}: a step needs an integer 'step' and a string 'actor'")
            trace.steps.append(rec)
        elif kind == "footer":
            trace.footer = rec
        else:
            raise TraceError(f"{p}:{lineno}: unknown event {kind!r}; expected 'step' or 'footer'")
    if trace is None:
        raise TraceError(f"{p}: empty trace (no header)")
    return trace
