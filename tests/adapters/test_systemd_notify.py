"""sd_notify: datagrams to $NOTIFY_SOCKET, watchdog interval, silent without systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from structlog.testing import capture_logs

from edgenode.adapters.systemd import SystemdNotifier


def test_sends_ready_status_watchdog_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000",
                                    "WATCHDOG_PID": str(os.getpid())})
        assert notifier.enabled and notifier.watchdog_interval == 2.0
        notifier.ready("running yolo")
        notifier.watchdog()
        notifier.status("12 fps")
        notifier.stopping()
        notifier.close()
        received = [server.recv(1024).decode() for _ in range(4)]
    assert received == ["READY=1\nSTATUS=running yolo", "WATCHDOG=1", "STATUS=12 fps", "STOPPING=1\nSTATUS=stopping"]


def test_abstract_socket_address() -> None:
    name = f"edgenode-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        notifier.ready("ok")
        assert server.recv(64) == b"READY=1\nSTATUS=ok"
        notifier.close()


def test_without_systemd_it_does_nothing() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready("x")
    notifier.watchdog()


def test_watchdog_for_another_pid_is_ignored() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_missing_socket_is_logged_once_not_raised(tmp_path: Path) -> None:
    gone = str(tmp_path / "gone")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": gone})
    with capture_logs() as logs:
        notifier.ready("x")
        notifier.ready("y")
        notifier.watchdog()
    notifier.close()
    assert logs == [{"event": "systemd notify failed", "log_level": "warning", "logger": "edgenode.adapters.systemd",
                     "socket": gone, "error": "[Errno 2] No such file or directory"}]
