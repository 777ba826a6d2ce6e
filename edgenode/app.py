"""Process lifecycle: logging, the asyncio loop, startup errors as one line, the exit code."""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np

from edgenode.config import NodeConfig
from edgenode.entry import EarlyStop
from edgenode.logs import configure_logging, get_logger
from edgenode.node.compose import build_node
from edgenode.node.lifecycle import Node, StartupError

# The per-frame message encoders view strided arrays as bytes, which numpy allows from 1.23 (pyproject.toml
# says the same). Yocto kirkstone ships 1.22: pip puts a newer numpy in the node's virtualenv.
NUMPY_FLOOR = (1, 23)


def numpy_problem(version: str) -> str:
    """Why numpy ``version`` cannot run the node, in one line (``""`` when it can)."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return ""
    if found >= NUMPY_FLOOR:
        return ""
    floor = ".".join(map(str, NUMPY_FLOOR))
    return (f"edgenode needs numpy {floor} or newer, found {version}: pip install 'numpy>={floor},<2' into the "
            "node's virtualenv (the BSP's tflite_runtime works with it)")


async def _run(node: Node, early: EarlyStop | None) -> int:
    running = asyncio.ensure_future(node.run())
    await asyncio.sleep(0)  # the node's first step installs its signal handlers
    if early is not None and early.requested:  # a stop asked for before they were in place
        node.stop.set()
    return await running


def run(config: NodeConfig, early: EarlyStop | None = None) -> int:
    """Run the node: 0 on a clean stop, 1 when it cannot start or has to give up.

    ``early`` (:mod:`edgenode.entry`) holds a SIGINT/SIGTERM that came while the process started:
    the node then stops before it starts.
    """
    configure_logging(config.log.level, config.log.format)
    if config.log.zenoh:
        from edgenode.adapters.zenoh_bus import init_zenoh_logging

        init_zenoh_logging(config.log.zenoh)
    log = get_logger("edgenode")
    problem = numpy_problem(np.__version__)
    if problem:
        log.error(problem)
        return 1
    node = build_node(config)
    if early is not None and early.requested:
        return 0
    try:
        code = asyncio.run(_run(node, early))
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
