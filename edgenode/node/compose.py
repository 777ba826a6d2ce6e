"""Composition root: the node for a NodeConfig (every component is built from the config in ``Node.run``)."""

from __future__ import annotations

from edgenode.adapters.systemd import SystemdNotifier
from edgenode.config import NodeConfig
from edgenode.node.lifecycle import Node


def build_node(config: NodeConfig) -> Node:
    """The node ``config`` describes, reporting to systemd when run under it."""
    return Node(config, SystemdNotifier())
