"""A Zenoh router in a process of its own: for tests, benchmarks and trying a fleet on one machine.

``python -m edgenode.tools.router ENDPOINT [CONFIG.json5]`` listens on ``ENDPOINT`` (e.g.
``tcp/127.0.0.1:7447``; multicast scouting off), with the settings of ``CONFIG`` when given (the fleet's
``systemd/zenoh-router.json5``, say), prints ``router up`` once it listens, and closes its session on
SIGTERM or SIGINT. A board's router is ``zenohd`` (README, "A fleet"); this is the same router in a
Python session, with nothing more to install.
"""

from __future__ import annotations

import signal
import sys

import zenoh


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m edgenode.tools.router ENDPOINT [CONFIG.json5]", file=sys.stderr)
        return 2
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before zenoh's threads start: they inherit the mask
    config = zenoh.Config.from_file(args[1]) if len(args) == 2 else zenoh.Config()
    config.insert_json5("mode", '"router"')
    config.insert_json5("listen/endpoints", f'["{args[0]}"]')
    config.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(config)
    print("router up", flush=True)
    signal.sigwait(stop)
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
