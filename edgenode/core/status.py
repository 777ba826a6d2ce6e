"""The fleet status of a node or camera: its keys, its JSON document (schema version 1), a query budget.

Pure: every value comes in as an argument, so the document is built and tested without Zenoh.
Each process announces itself under its session's namespace (zenoh's ``namespace`` setting
prefixes every key on the wire) with one liveliness token and one queryable, both on
``edgenode/status/<kind>/<zid>``; ``edgenode status`` asks ``**/edgenode/status/**``. The answer is
the document :func:`node_status` (or :func:`camera_status`) builds, from a snapshot the process
refreshes a few times a second, never from the pipeline itself. The README documents the schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
STATUS_ROOT = "edgenode/status"
STATUS_SELECTOR = f"**/{STATUS_ROOT}/**"
KINDS = ("node", "camera")
MAX_STATUS_BYTES = 64 * 1024  # a status document is a few kB; a reader refuses anything larger

# states, in the order a node lives them
WAITING_FOR_ROUTER = "waiting_for_router"
LOADING = "loading"
RUNNING = "running"
NO_CAMERA_FRAMES = "no_camera_frames"
STOPPING = "stopping"
STATES = (WAITING_FOR_ROUTER, LOADING, RUNNING, NO_CAMERA_FRAMES, STOPPING)

SILENT_CAMERA_SECONDS = 1.0  # a running node whose camera sent nothing for this long is in NO_CAMERA_FRAMES
STAGE_NAMES = ("preprocess", "invoke", "decode", "track", "publish")


class StatusError(ValueError):
    """A status reply that is not a status document (too large, not JSON, not an object)."""


def _chunk_ok(text: str) -> bool:
    return bool(text) and not any(c in text for c in "/*$?#")


def status_key(kind: str, instance: str) -> str:
    """The key a process of ``kind`` with id ``instance`` (its zenoh id) announces itself on."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not _chunk_ok(instance):
        raise ValueError(f"{instance!r} cannot be one chunk of a key")
    return f"{STATUS_ROOT}/{kind}/{instance}"


@dataclass(frozen=True)
class StatusKey:
    """A status key as seen on the network: ``<namespace>/edgenode/status/<kind>/<instance>``."""

    key: str
    namespace: str
    kind: str
    instance: str


def parse_status_key(key: str) -> StatusKey | None:
    """The parts of a status key (the namespace is what zenoh prefixed); None for any other key."""
    chunks = key.split("/")
    if len(chunks) < 4 or chunks[-4:-2] != ["edgenode", "status"] or not all(chunks):
        return None
    return StatusKey(key, "/".join(chunks[:-4]), chunks[-2], chunks[-1])


@dataclass(frozen=True)
class Identity:
    """Who answers: kind (node or camera), host, pid, edgenode version, zenoh namespace and id, start time."""

    kind: str
    host: str
    pid: int
    version: str
    namespace: str
    zid: str
    started_at: float  # unix seconds

    def document(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "version": self.version, "namespace": self.namespace,
                "zid": self.zid, "started_at": round(self.started_at, 3)}


@dataclass(frozen=True)
class ModelFacts:
    """The model: its file from the start; the rest once it is loaded (None before)."""

    file: str
    name: str | None = None
    format: str | None = None
    types: str | None = None
    input_shape: tuple[int, ...] | None = None
    input_type: str | None = None
    runtime: str | None = None  # the Python TFLite runtime: ai_edge_litert or tflite_runtime
    delegate: str | None = None  # the delegate in use; "cpu" for XNNPACK
    threads: int | None = None
    schedule: str | None = None  # overlap or serial
    preprocess: str | None = None  # the preprocessor in use
    tracking: bool = False

    def document(self) -> dict[str, Any]:
        return {"file": self.file, "name": self.name, "format": self.format, "types": self.types,
                "input_shape": list(self.input_shape) if self.input_shape is not None else None,
                "input_type": self.input_type, "runtime": self.runtime, "delegate": self.delegate,
                "threads": self.threads, "schedule": self.schedule, "preprocess": self.preprocess,
                "tracking": self.tracking}


@dataclass(frozen=True)
class StreamFacts:
    """One camera stream: its topic, size (CameraInfo's, else the last frame's; None before any), how long
    since its last frame (since subscribing when none came yet), arrival rate and counters."""

    topic: str
    size: tuple[int, int] | None = None
    silent_s: float = 0.0
    frames_seen: bool = False
    fps: float | None = None
    received: int = 0
    dropped: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    name: str | None = None  # the stream's name, in a node with several cameras (else None: no field)

    def document(self) -> dict[str, Any]:
        return {**({"stream": self.name} if self.name is not None else {}),
                "topic": self.topic, "size": list(self.size) if self.size is not None else None,
                "last_frame_age_s": round(self.silent_s, 3) if self.frames_seen else None,
                "fps": self.fps, "received": self.received, "dropped": self.dropped,
                "skipped": dict(sorted(self.skipped.items()))}


@dataclass(frozen=True)
class Counters:
    """Since start: camera frames received, processed (published), dropped (replaced unread), skipped by
    reason; failures of each stage; publication errors."""

    frames_received: int = 0
    frames_processed: int = 0
    dropped: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    prepare_failures: int = 0
    invoke_failures: int = 0
    post_failures: int = 0
    publish_errors: int = 0

    def document(self) -> dict[str, Any]:
        return {"frames_received": self.frames_received, "frames_processed": self.frames_processed,
                "dropped": self.dropped, "skipped": dict(sorted(self.skipped.items())),
                "skipped_total": sum(self.skipped.values()), "prepare_failures": self.prepare_failures,
                "invoke_failures": self.invoke_failures, "post_failures": self.post_failures,
                "publish_errors": self.publish_errors}


def node_state(phase: str, streams: Sequence[StreamFacts], model_file: str,
               silent_after: float = SILENT_CAMERA_SECONDS) -> tuple[str, str]:
    """The state a node in ``phase`` reports, with its sentence: a running node whose camera is silent for
    ``silent_after`` seconds or more is in NO_CAMERA_FRAMES (phase: WAITING_FOR_ROUTER, LOADING, RUNNING,
    STOPPING)."""
    if phase not in STATES or phase == NO_CAMERA_FRAMES:
        raise ValueError(f"unknown phase {phase!r}")
    if phase == WAITING_FOR_ROUTER:
        return phase, "waiting for the zenoh router"
    if phase == LOADING:
        return phase, f"loading {model_file}"
    if phase == STOPPING:
        return phase, "stopping"
    silent = [stream for stream in streams if stream.silent_s >= silent_after]
    if silent:
        stream = max(silent, key=lambda s: s.silent_s)
        since = "" if stream.frames_seen else " (none yet)"
        return NO_CAMERA_FRAMES, f"no camera frames on {stream.topic} for {stream.silent_s:.0f} s{since}"
    return RUNNING, "running"


def window_document(report: Mapping[str, float] | None) -> dict[str, Any] | None:
    """The last stats window (``FrameStats.report``'s flat fields) as the document's nested ``window``."""
    if report is None:
        return None

    def timing(name: str) -> dict[str, float] | None:
        if f"{name}_ms" not in report:
            return None
        return {"mean": report[f"{name}_ms"], "p99": report.get(f"{name}_p99_ms", report[f"{name}_ms"]),
                "max": report.get(f"{name}_max_ms", report[f"{name}_ms"])}

    stages = {name: timing(name) for name in STAGE_NAMES if f"{name}_ms" in report}
    return {"seconds": report.get("window_s"), "fps": report.get("fps", 0.0), "frames": int(report.get("frames", 0)),
            "boxes_per_frame": report.get("boxes_per_frame"), "latency_ms": timing("latency"),
            "stages_ms": stages}


def node_status(identity: Identity, phase: str, *, uptime_s: float, model: ModelFacts,
                streams: Sequence[StreamFacts], counters: Counters, window: Mapping[str, float] | None,
                answered: int, query_limit: float, last_error: Mapping[str, Any] | None) -> dict[str, Any]:
    """A node's status document (schema version 1; the README's "Fleet" section describes each field)."""
    state, detail = node_state(phase, streams, model.file)
    if state == RUNNING and model.name:
        detail = f"running {model.name}"
    return {"version": SCHEMA_VERSION, "kind": identity.kind, "identity": identity.document(), "state": state,
            "state_detail": detail, "uptime_s": round(uptime_s, 1), "model": model.document(),
            "cameras": [stream.document() for stream in streams], "window": window_document(window),
            "counters": counters.document(),
            "queries": {"answered": answered, "limit_per_s": query_limit},
            "last_error": dict(last_error) if last_error is not None else None}


def camera_status(identity: Identity, *, stopping: bool, uptime_s: float, topic: str, size: tuple[int, int],
                  pixel_format: str, target_fps: float, published: int, late: int, silent_s: float,
                  window: tuple[float, int] | None, answered: int, query_limit: float) -> dict[str, Any]:
    """The camera simulator's status document: the same schema with ``kind`` camera and no model; its one
    stream says what it publishes; ``window`` is (seconds, frames published in them)."""
    if stopping:
        state, detail = STOPPING, "stopping"
    else:
        state, detail = RUNNING, f"publishing {pixel_format} at {target_fps:g} fps"
    window_doc: dict[str, Any] | None = None
    if window is not None and window[0] > 0:
        window_doc = {"seconds": round(window[0], 3), "fps": round(window[1] / window[0], 2), "frames": window[1],
                      "boxes_per_frame": None, "latency_ms": None, "stages_ms": {}}
    stream = {"topic": topic, "size": list(size), "format": pixel_format, "target_fps": target_fps,
              "fps": window_doc["fps"] if window_doc else None,
              "last_frame_age_s": round(silent_s, 3) if published else None, "published": published}
    return {"version": SCHEMA_VERSION, "kind": identity.kind, "identity": identity.document(), "state": state,
            "state_detail": detail, "uptime_s": round(uptime_s, 1), "model": None, "cameras": [stream],
            "window": window_doc, "counters": {"frames_published": published, "late": late},
            "queries": {"answered": answered, "limit_per_s": query_limit}, "last_error": None}


def encode_status(document: Mapping[str, Any]) -> bytes:
    """The document as compact UTF-8 JSON."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def decode_status(payload: bytes, max_bytes: int = MAX_STATUS_BYTES) -> dict[str, Any]:
    """A status document from a reply; StatusError when it is too large, not JSON or not a JSON object."""
    if len(payload) > max_bytes:
        raise StatusError(f"a {len(payload)}-byte reply (at most {max_bytes})")
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StatusError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise StatusError(f"not a JSON object but {type(document).__name__}")
    return document


class QueryBudget:
    """A token bucket bounding the replies a process sends: ``rate`` a second on average, bursts of ``burst``.

    :meth:`take` says whether one more reply fits now; a query that does not fit is refused at once,
    never queued, so however many queries come, the replies stay within the budget.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        """True (and one token spent) when a reply fits in the budget at ``now``."""
        self._tokens = min(float(self.burst), self._tokens + max(now - self._at, 0.0) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
