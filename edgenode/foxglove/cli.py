"""Command line of ``edgenode-foxglove``: Zenoh topics to Foxglove Studio (and MCAP files), no ROS needed."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from edgenode.cli import parse_cfg
from edgenode.config import LOG_FORMATS, LOG_LEVELS, ZENOH_MODES, ConfigError, LogSettings, ZenohSettings
from edgenode.foxglove import LAYOUT
from edgenode.foxglove.config import DEFAULT_EXCLUDE, DEFAULT_PORT, BridgeConfig
from edgenode.foxglove.recording import RecordSettings

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class UsageError(Exception):
    """A flag the bridge cannot start with."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_bytes(text: str) -> int:
    """A size: bytes, or with K, M, G, T (powers of 1024): ``512K``, ``64M``, ``1.5G``."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size such as 4096, 512K, 64M or 1G, got {text!r}")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgenode-foxglove",
                     description="Foxglove WebSocket server (and MCAP recorder) for the Zenoh topics of edgenode and "
                                 "the EdgeFirst camera: open ws://HOST:PORT in Foxglove; no ROS install needed.")
    add = parser.add_argument
    add("--topics", action="append", metavar="KEYEXPR",
        help="Zenoh key expressions to relay (repeatable) [default **: every topic]")
    add("--exclude", action="append", metavar="KEYEXPR",
        help=f"key expressions never relayed (repeatable; replaces the default, '' for none) "
             f"[default {' '.join(DEFAULT_EXCLUDE)}: the raw-frame fd announcements]")
    add("--host", default="127.0.0.1",
        help="address to serve on; 0.0.0.0 for every interface (to reach the board from a laptop) "
             "[default 127.0.0.1]")
    add("--port", type=int, default=DEFAULT_PORT, help=f"WebSocket port, 0 for any free one [default {DEFAULT_PORT}]")
    add("--client-backlog", type=int, default=64, metavar="N",
        help="messages queued per client; a client that falls behind loses the oldest [default 64]")
    add("--max-message-bytes", type=parse_bytes, default=16 << 20, metavar="SIZE",
        help="larger messages are counted and dropped, never copied [default 16M]")
    add("--layout", action="store_true", help="print where the shipped Foxglove layout file is, and exit")
    record = parser.add_argument_group("recording")
    record.add_argument("--record", type=Path, metavar="PATH.mcap",
                        help="also write the relayed channels to MCAP (ros2 profile, chunked, compressed)")
    record.add_argument("--split-size", type=parse_bytes, default=0, metavar="SIZE",
                        help="start a new file (PATH_0000.mcap, PATH_0001.mcap...) at this size [default off]")
    record.add_argument("--split-duration", type=float, default=0.0, metavar="SECONDS",
                        help="start a new file after this long [default off]")
    record.add_argument("--chunk-size", type=parse_bytes, default=1 << 20, metavar="SIZE",
                        help="close a compressed chunk at this much data [default 1M]")
    record.add_argument("--chunk-seconds", type=float, default=1.0, metavar="SECONDS",
                        help="close a chunk at this age: the most a kill -9 can lose [default 1]")
    record.add_argument("--compression", choices=("zstd", "lz4", "none"), default="zstd",
                        help="chunk compression [default zstd]")
    zenoh = parser.add_argument_group("zenoh (as for edgenode)")
    zenoh.add_argument("--mode", choices=ZENOH_MODES, help="session mode [default peer]")
    zenoh.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                       help="endpoint to connect to, e.g. tcp/192.168.1.10:7447 (repeatable)")
    zenoh.add_argument("--listen", action="append", default=[], metavar="ENDPOINT", help="endpoint to listen on")
    zenoh.add_argument("--no-multicast-scouting", action="store_true", help="do not discover peers by multicast")
    zenoh.add_argument("--zenoh-config", type=Path, metavar="FILE", help="zenoh JSON5 config file")
    zenoh.add_argument("--cfg", action="append", default=[], metavar="KEY:VALUE",
                       help="zenoh config override, VALUE in JSON5 (repeatable)")
    logs = parser.add_argument_group("logging")
    logs.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    logs.add_argument("--log-format", choices=LOG_FORMATS, default="auto",
                      help="console text, JSON lines, or auto: JSON under systemd [default auto]")
    logs.add_argument("--stats-interval", type=float, default=10.0, metavar="SECONDS",
                      help="seconds between lines with what was relayed [default 10]")
    return parser


def config_from(argv: Sequence[str] | None = None) -> BridgeConfig:
    """Parse ``argv`` into a :class:`BridgeConfig`; raises :class:`UsageError` with one line."""
    args = build_parser().parse_args(argv)
    try:
        overrides = tuple(parse_cfg(text) for text in args.cfg)
        zenoh = ZenohSettings(mode=args.mode, connect=tuple(args.connect), listen=tuple(args.listen),
                              multicast_scouting=not args.no_multicast_scouting, config_file=args.zenoh_config,
                              overrides=overrides)
        record = None
        if args.record is not None:
            record = RecordSettings(args.record, split_bytes=args.split_size, split_seconds=args.split_duration,
                                    chunk_bytes=args.chunk_size, chunk_seconds=args.chunk_seconds,
                                    compression=args.compression)
        exclude = DEFAULT_EXCLUDE if args.exclude is None else tuple(key for key in args.exclude if key)
        return BridgeConfig(zenoh=zenoh, topics=tuple(args.topics or ("**",)), exclude=exclude, host=args.host,
                            port=args.port, backlog=args.client_backlog, max_message_bytes=args.max_message_bytes,
                            record=record, log=LogSettings(level=args.log_level, format=args.log_format,
                                                           stats_interval=args.stats_interval))
    except (ValueError, ConfigError) as exc:
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edgenode-foxglove``: 0 when stopped, 2 on a bad flag, 1 when it cannot start."""
    if argv is None:
        argv = sys.argv[1:]
    if "--layout" in argv:
        print(LAYOUT)
        return 0
    try:
        config = config_from(argv)
    except UsageError as exc:
        print(f"edgenode-foxglove: error: {exc}", file=sys.stderr)
        return 2
    try:
        from edgenode.foxglove.compose import run
    except ImportError as exc:
        print(f"edgenode-foxglove: error: {exc.name or exc} is not installed; "
              "install the bridge's extra: pip install 'edgenode[foxglove]'", file=sys.stderr)
        return 2
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
