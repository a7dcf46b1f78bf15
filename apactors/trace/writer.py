"""Write a trace as JSON Lines through structlog, atomically.

Lines are rendered by structlog's JSON renderer with sorted keys and compact separators, so the same
events always give the same bytes.  The file appears under its final name only when it is complete
(written to a temporary file in the same directory, then renamed), so an interrupt never leaves a
half-written trace behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import structlog


def _logger(buf: io.StringIO) -> Any:
    # A plain BoundLogger: trace lines must not pass through the diagnostic logging's level filter.
    return structlog.wrap_logger(
        structlog.PrintLogger(file=buf),
        processors=[structlog.processors.JSONRenderer(sort_keys=True, separators=(",", ":"))],
        wrapper_class=structlog.BoundLogger,
        cache_logger_on_first_use=False,
    )


def render_lines(records: Iterable[dict[str, Any]]) -> str:
    """The JSON Lines text of ``records`` (each a dict with an ``event`` key)."""
    buf = io.StringIO()
    log = _logger(buf)
    for rec in records:
        rec = dict(rec)
        event = rec.pop("event")
        log.msg(event, **rec)
    return buf.getvalue()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; a report or trace is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_trace(path: Path, header: dict[str, Any], steps: Iterable[dict[str, Any]], footer: dict[str, Any]) -> Path:
    """Write one trace file: the header, one line per step event, the footer."""
    text = render_lines([{"event": "header", **header}, *steps, {"event": "footer", **footer}])
    write_atomic(path, text)
    return path
