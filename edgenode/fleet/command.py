"""``edgenode status``: every edgenode node and camera reachable over Zenoh, one row each.

It joins the Zenoh network as the node does (the same zenoh flags and variables), asks every status
queryable and every liveliness token under ``**/edgenode/status/**`` at once, and prints a table,
or JSON with ``--json``; ``--watch SECONDS`` asks again every SECONDS until Ctrl-C. Exit code: 0
when at least one node or camera answered, 1 when none did, 2 on a bad flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO

from edgenode.adapters.zenoh_bus import ZenohBus, ZenohConfigError, ZenohUnreachable
from edgenode.cli import G_ZENOH, OPTIONS, UsageError, add_option, resolve_values, zenoh_settings
from edgenode.config import ConfigError, ZenohSettings
from edgenode.core.status import MAX_STATUS_BYTES, STATUS_SELECTOR
from edgenode.fleet.table import Entry, document, entries, render

ZENOH_OPTIONS = tuple(option for option in OPTIONS if option.group == G_ZENOH)
MAX_TIMEOUT = 60.0
MAX_WATCH = 86400.0
CLEAR_SCREEN = "\x1b[H\x1b[2J"

EXAMPLES = """examples:
  edgenode status                                              # this machine's (peer, loopback scouting)
  edgenode status --mode client --connect tcp/ROUTER:7447      # the whole fleet behind a router
  edgenode status --mode client --connect tcp/ROUTER:7447 --json          # JSON for tools
  edgenode status --mode client --connect tcp/ROUTER:7447 --watch 2       # every 2 s until Ctrl-C
  edgenode status --mode client --connect tcp/ROUTER:7447 --cfg 'namespace:"cam1"'   # namespace cam1 only"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass(frozen=True)
class StatusOptions:
    """What ``edgenode status`` was asked for."""

    zenoh: ZenohSettings
    json: bool = False
    watch: float | None = None
    timeout: float = 1.0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgenode status", epilog=EXAMPLES,
                     description="The status of every edgenode node and camera reachable over Zenoh: name, state, "
                                 "model, frame rate, latency, drops, uptime. Exit 0 when at least one answered, "
                                 "1 when none did, 2 on a bad flag.",
                     formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=34,
                                                                                       width=110))
    parser.add_argument("--json", action="store_true", help="print JSON (with --watch: one line per refresh)")
    parser.add_argument("--watch", metavar="SECONDS", help="ask again every SECONDS until Ctrl-C")
    parser.add_argument("--timeout", metavar="SECONDS", default="1",
                        help="how long to wait for replies [default 1]; a node that does not answer in time "
                             "is listed as not answering")
    group = parser.add_argument_group("zenoh (as for the node)")
    for option in ZENOH_OPTIONS:
        add_option(group, option)
    return parser


def _seconds(flag: str, text: str, most: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a number of seconds, got {text!r}") from None
    if not 0 < value <= most:
        raise UsageError(f"{flag} must be more than 0 and at most {most:g} seconds, got {text}")
    return value


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> StatusOptions:
    """Flags (and the zenoh variables) to options; raises UsageError with a one-line reason."""
    args = build_parser().parse_args(argv)
    values = resolve_values(args, environ, ZENOH_OPTIONS)
    try:
        zenoh = zenoh_settings(values)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    watch = _seconds("--watch", args.watch, MAX_WATCH) if args.watch is not None else None
    return StatusOptions(zenoh, args.json, watch, _seconds("--timeout", args.timeout, MAX_TIMEOUT))


def survey(bus: ZenohBus, timeout: float) -> list[Entry]:
    """Every node and camera found on ``bus`` within ``timeout`` seconds."""
    found = bus.survey(STATUS_SELECTOR, timeout, max_bytes=MAX_STATUS_BYTES)
    return entries(((a.key, a.payload, a.problem) for a in found.answers), found.alive)


def show(found: Sequence[Entry], options: StatusOptions, out: TextIO) -> None:
    if options.json:
        out.write(json.dumps(document(found), indent=None if options.watch else 2) + "\n")
    elif options.watch is not None and out.isatty():
        stamp = time.strftime("%H:%M:%S")
        out.write(f"{CLEAR_SCREEN}edgenode status at {stamp}, every {options.watch:g} s (Ctrl-C stops)\n\n"
                  f"{render(found)}\n")
    else:
        out.write(render(found) + ("\n\n" if options.watch is not None else "\n"))
    out.flush()


def run(options: StatusOptions, out: TextIO) -> int:
    """Survey (every ``watch`` seconds until interrupted); the exit code of the last survey."""
    code = 1
    try:
        bus = ZenohBus.open(options.zenoh)
    except KeyboardInterrupt:
        return code
    try:
        while True:
            found = survey(bus, options.timeout)
            code = 0 if any(entry.answered for entry in found) else 1
            show(found, options, out)
            if options.watch is None:
                return code
            time.sleep(options.watch)
    except KeyboardInterrupt:
        return code
    finally:
        bus.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edgenode status``."""
    try:
        options = parse_options(list(sys.argv[2:] if argv is None else argv), os.environ)
    except UsageError as exc:
        print(f"edgenode status: error: {exc} (see edgenode status --help)", file=sys.stderr)
        return 2
    try:
        return run(options, sys.stdout)
    except ZenohUnreachable as exc:
        print(f"edgenode status: {exc}", file=sys.stderr)
        return 1
    except ZenohConfigError as exc:
        print(f"edgenode status: error: {exc}", file=sys.stderr)
        return 2
