"""systemd notify protocol (READY, STATUS, WATCHDOG, STOPPING) over $NOTIFY_SOCKET, no extra packages."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from edgenode.logs import get_logger


def _log() -> Any:
    """This module's logger, looked up when used (one bound at import escapes tests' log capture)."""
    return get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify datagrams when run by systemd with Type=notify; does nothing otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        path = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        self.watchdog_interval = self._watchdog_interval(environ)
        self._failed = False

    @staticmethod
    def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
        """Seconds between pings: half of $WATCHDOG_USEC, when it is meant for this process."""
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2e6

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *fields: str) -> None:
        """Send ``KEY=VALUE`` lines; a send failure is logged once and never raised."""
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._failed:
                _log().warning("systemd notify failed", socket=self._address.lstrip("\0"), error=str(exc))
                self._failed = True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
