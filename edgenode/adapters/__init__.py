"""Adapters: one thin module per outside system (Zenoh, dma-buf, G2D, TFLite, systemd)."""
