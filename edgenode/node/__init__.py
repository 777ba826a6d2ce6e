"""The daemon's orchestration: composition root, lifecycle, supervision, the frame scheduler and its stages."""
