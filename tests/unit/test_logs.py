"""Logging: readable in a terminal, JSON lines under systemd or on request."""

from __future__ import annotations

import io
import json
import os
import tempfile

from edgenode.logs import configure_logging, get_logger, last_error

MODULE_LOG = get_logger("edgenode.tests.import_time")  # made when this module is imported, before any configuration


def test_console_format_is_readable() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream, environ={})
    get_logger("test").info("model loaded", name="yolo")
    line = stream.getvalue()
    assert "model loaded" in line and "name=yolo" in line and not line.startswith("{")


def test_json_on_request() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, environ={})
    get_logger("test").warning("slow frame", ms=12.5)
    record = json.loads(stream.getvalue())
    assert record["event"] == "slow frame" and record["level"] == "warning" and record["ms"] == 12.5
    assert record["logger"] == "test" and "timestamp" in record


def test_auto_is_json_under_systemd() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream, environ={"INVOCATION_ID": "abc"})
    get_logger("test").info("hello")
    assert json.loads(stream.getvalue())["event"] == "hello"


def test_journal_stream_gets_priority_prefix() -> None:
    with tempfile.TemporaryFile("w+") as handle:
        info = os.fstat(handle.fileno())
        configure_logging("info", "auto", stream=handle, environ={"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        get_logger("test").error("broken")
        handle.seek(0)
        line = handle.read()
    assert line.startswith("<3>{") and json.loads(line[3:])["event"] == "broken"


def test_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("warning", "console", stream=stream, environ={})
    get_logger("test").info("hidden")
    get_logger("test").debug("hidden")
    assert stream.getvalue() == ""


def test_a_logger_made_at_import_time_follows_a_later_configuration() -> None:
    """Module-level loggers (``log = get_logger(__name__)``) are made before main() configures logging."""
    early = get_logger("edgenode.early")  # as a module does at import
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream, environ={})
    early.info("hidden by the level")
    early.warning("frame skipped", reason="closed_fd")
    MODULE_LOG.warning("from a module-level logger")
    MODULE_LOG.debug("hidden too")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["event"], r["logger"], r["level"]) for r in records] == [
        ("frame skipped", "edgenode.early", "warning"),
        ("from a module-level logger", "edgenode.tests.import_time", "warning"),
    ]
    assert records[0]["reason"] == "closed_fd"


def test_a_logger_made_at_import_time_gets_the_journal_priority() -> None:
    early = get_logger("edgenode.early")
    with tempfile.TemporaryFile("w+") as handle:
        info = os.fstat(handle.fileno())
        configure_logging("info", "auto", stream=handle, environ={"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        early.warning("frame skipped")
        handle.seek(0)
        line = handle.read()
    assert line.startswith("<4>{") and json.loads(line[3:])["event"] == "frame skipped"


def test_the_newest_error_is_remembered_for_the_status() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, environ={})
    get_logger("edgenode.node").warning("a warning is not an error")
    get_logger("edgenode.node").error("model invoke failed", error="boom")
    get_logger("edgenode.camera").info("camera frames resumed")
    error = last_error()
    assert error is not None and (error["logger"], error["message"]) == ("edgenode.node", "model invoke failed")
    assert error["at"] > 0


def test_each_log_line_is_one_write_with_its_newline() -> None:
    """A native library writing to the same stderr (foxglove-sdk's Rust logger) cannot land inside a JSON line."""
    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def write(self, text: str) -> int:
            self.calls.append(text)
            return super().write(text)

    stream = Writes()
    configure_logging("info", "json", stream=stream)
    get_logger("edgenode.test").info("stopping")
    assert len(stream.calls) == 1 and stream.calls[0].endswith("}\n") and '"event": "stopping"' in stream.calls[0]
