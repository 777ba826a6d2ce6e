"""The unit and environment file stay in step with the CLI."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from edgenode.cli import OPTIONS, parse_config

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def environment_file() -> dict[str, str]:
    values = {}
    for line in (SYSTEMD / "edgenode.env").read_text().splitlines():
        match = re.fullmatch(r'([A-Z_]+)="(.*)"', line.strip())
        if match:
            values[match[1]] = match[2]
    return values


def test_environment_file_names_every_variable() -> None:
    text = (SYSTEMD / "edgenode.env").read_text()
    for option in OPTIONS:
        assert re.search(rf"^#?{option.env}=", text, re.MULTILINE), option.env


def test_environment_file_values_are_the_defaults() -> None:
    environ = environment_file()
    assert parse_config([], environ) == parse_config([], {"MODEL": environ["MODEL"]})


def test_unit_is_notify_with_watchdog_and_least_privilege() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((SYSTEMD / "edgenode.service").read_text())
    service = unit["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert int(service["WatchdogSec"]) > 0
    assert service["User"] == "edgenode" and service["NoNewPrivileges"] == "yes"
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_SYS_PTRACE"
    assert service["EnvironmentFile"] == "-/etc/default/edgenode"
    assert service["CacheDirectory"] == "edgenode"
