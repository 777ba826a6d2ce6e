"""Logging with structlog: readable text in a terminal, JSON lines under systemd or on request."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when ``stream`` is systemd's journal stream (``$JOURNAL_STREAM`` names its device:inode)."""
    expected = environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


class _PriorityPrefix:
    """Prefix each line with ``<N>`` so journald files it at the right priority."""

    def __init__(self, render: Any) -> None:
        self._render = render

    def __call__(self, logger: Any, method: str, event: Any) -> str:
        level = str(event.get("level", method))
        return f"<{SYSLOG_PRIORITY.get(level, 6)}>{self._render(logger, method, event)}"


_last_error: dict[str, Any] | None = None
ERROR_LEVELS = ("error", "critical")


def remember_errors(logger: Any, method: str, event: Any) -> Any:
    """A structlog processor keeping the newest event at error level or above, for :func:`last_error`."""
    global _last_error
    if event.get("level", method) in ERROR_LEVELS:
        _last_error = {"at": round(time.time(), 3), "logger": str(event.get("logger", "")),
                       "message": str(event.get("event", ""))[:500]}
    return event


def last_error() -> dict[str, Any] | None:
    """The newest error logged since logging was configured: its unix time, logger and message; None yet."""
    return _last_error


def forget_errors() -> None:
    """Start :func:`last_error` afresh (done by :func:`configure_logging`)."""
    global _last_error
    _last_error = None


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None,
                      environ: Mapping[str, str] | None = None) -> None:
    """Set up structlog (and the stdlib root logger) at ``level`` in ``fmt`` (auto, console, json)."""
    stream = stream or sys.stderr
    environ = os.environ if environ is None else environ
    forget_errors()
    journal = stream_is_journal(stream, environ)
    use_json = fmt == "json" or (fmt == "auto" and (journal or "INVOCATION_ID" in environ))
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        remember_errors,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if use_json:
        processors.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
        if journal:
            renderer = _PriorityPrefix(renderer)
    else:
        colors = bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in environ
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # one write per line, newline included (print() writes the newline apart: a native library writing to
        # the same stderr, as foxglove-sdk does, could land between them and break the JSON line)
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=stream, format="%(levelname)s %(name)s: %(message)s", force=True)


def get_logger(name: str) -> Any:
    """A structlog logger bound with ``logger=name``, following the configuration of the moment it logs.

    Lazy: modules make their loggers at import (``log = get_logger(__name__)``), before ``main``
    calls :func:`configure_logging`; a logger bound at that point would keep structlog's defaults
    (console text on stdout, every level) whatever ``--log-format`` and ``--log-level`` say.
    """
    return _Logger(name)


class _Logger:
    """Looks up structlog's configuration on every call, then logs with ``logger=name`` bound."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(structlog.get_logger().bind(logger=self._name), method)
