"""Process lifecycle: logging, the asyncio loop, startup errors as one line and an exit code."""

from __future__ import annotations

import asyncio

from edgenode.config import NodeConfig
from edgenode.logs import configure_logging, get_logger


class StartupError(Exception):
    """The node cannot start; the message says what to fix, in one line."""


async def serve(config: NodeConfig) -> int:
    """Build the node from ``config`` and run it until SIGTERM/SIGINT."""
    from edgenode.compose import build_node

    node = await build_node(config)
    return await node.run()


def run(config: NodeConfig) -> int:
    """Run the node; 0 on a clean stop, 1 when it cannot start or fails."""
    configure_logging(config.log.level, config.log.format)
    log = get_logger("edgenode")
    try:
        return asyncio.run(serve(config))
    except StartupError as exc:
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 0
