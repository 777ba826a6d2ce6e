"""``edgenode status``: the status of every edgenode node and camera reachable over Zenoh."""
