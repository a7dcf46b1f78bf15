"""Traces: the one format shared by run, replay, shrink, compare and report (JSON Lines)."""

from apactors.trace.format import TRACE_FORMAT, event_to_dict, render_value
from apactors.trace.reader import Trace, TraceError, read_trace
from apactors.trace.writer import write_trace

__all__ = ["TRACE_FORMAT", "Trace", "TraceError", "event_to_dict", "read_trace", "render_value", "write_trace"]
