"""Composition root: builds the node's pipeline from a NodeConfig."""

from __future__ import annotations

from typing import Protocol

from edgenode.config import NodeConfig


class Runnable(Protocol):
    async def run(self) -> int: ...


async def build_node(config: NodeConfig) -> Runnable:
    """The node for ``config`` (filled in by the pipeline issue)."""
    from edgenode.app import StartupError

    raise StartupError("the inference pipeline is not assembled yet")
