"""Typed configuration of ``edgenode-foxglove`` (built by its CLI, read by its composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgenode.config import ConfigError, LogSettings, ZenohSettings
from edgenode.foxglove.recording import RecordSettings

# The raw-frame announcements (a pid and an fd, meaningless off the camera's board), under both
# namings of the EdgeFirst camera (rt/camera/dma; camera/frame since its CameraFrame releases),
# namespaced or not.
DEFAULT_EXCLUDE = ("**/camera/dma", "**/camera/frame")
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class BridgeConfig:
    """What to relay, where to serve it, and whether to record it."""

    zenoh: ZenohSettings = field(default_factory=ZenohSettings)
    topics: tuple[str, ...] = ("**",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    name: str = "edgenode"
    backlog: int = 64
    max_message_bytes: int = 16 << 20
    record: RecordSettings | None = None
    log: LogSettings = field(default_factory=LogSettings)

    def __post_init__(self) -> None:
        if not self.topics:
            raise ConfigError("--topics needs at least one key expression")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0 (any free port) to 65535, got {self.port}")
        if not 1 <= self.backlog <= 100_000:
            raise ConfigError(f"--client-backlog must be 1..100000 messages, got {self.backlog}")
        if not 1024 <= self.max_message_bytes <= 1 << 30:
            raise ConfigError(f"--max-message-bytes must be 1 KiB..1 GiB, got {self.max_message_bytes}")
