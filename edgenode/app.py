"""Process lifecycle: logging, the asyncio loop, startup errors as one line, the exit code."""

from __future__ import annotations

import asyncio
import os
import sys

from edgenode.config import NodeConfig
from edgenode.logs import configure_logging, get_logger
from edgenode.node.compose import build_node
from edgenode.node.lifecycle import StartupError


def run(config: NodeConfig) -> int:
    """Run the node: 0 on a clean stop, 1 when it cannot start or has to give up."""
    configure_logging(config.log.level, config.log.format)
    log = get_logger("edgenode")
    node = build_node(config)
    try:
        code = asyncio.run(node.run())
    except StartupError as exc:
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        log.exception(f"unexpected error: {exc}")
        return 1
    if node.unclean:  # a stage thread would not stop: do not wait for it at interpreter exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
