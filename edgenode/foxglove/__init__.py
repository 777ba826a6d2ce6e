"""``edgenode-foxglove``: a Foxglove WebSocket server and MCAP recorder for the project's Zenoh topics.

Its own process, so a viewer can never stall or crash the inference node. ``cli`` reads flags
into a ``BridgeConfig``; ``compose`` builds and runs the bridge; ``relay`` maps samples to
channels; ``recording`` writes MCAP files. The Foxglove layout shipped with it is ``layout.json``.
"""

from pathlib import Path

LAYOUT = Path(__file__).resolve().with_name("layout.json")
"""The Foxglove layout shipped with the package: the camera with the annotations, Detect, stage times."""
