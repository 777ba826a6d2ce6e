"""Helpers of ``bench/fleet.py``: the status-query flooder it runs in its own process."""
