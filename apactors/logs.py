"""Diagnostic logging through structlog (stderr; never on the per-step hot path).

``--log-format console`` gives readable lines, ``json`` one JSON object per line for tools.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(fmt: str = "console", level: int = logging.WARNING) -> None:
    renderer = (structlog.processors.JSONRenderer(sort_keys=True) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[structlog.processors.add_log_level, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "apactors") -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
