"""The relay: each Zenoh sample to its Foxglove channel (and the recording), its CDR bytes unchanged.

Per key, on the event loop: the first sample of a type edgenode has a definition for advertises
a channel (named the ROS way, :func:`~edgenode.messages.ros2msg.ros_topic`) with the type's ``ros2msg`` schema; every
sample is checked against its type's layout (no decode) and handed over with its stamp as log
time. What cannot be relayed (an excluded key, a type without a definition, a malformed or
oversize payload, a second type on one key) is counted per key and said once per key and reason.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgenode.adapters.zenoh_bus import Received
from edgenode.foxglove.recording import Entry
from edgenode.messages.definitions import MessageDefinition
from edgenode.messages.ros2msg import (
    CdrShape,
    MalformedPayload,
    UnknownType,
    complete_definition,
    ros_topic,
    schema_from_encoding,
)

LATENCY_WINDOW = 4096  # recent samples kept for the latency figures


class ChannelSink(Protocol):
    id: int

    def log(self, payload: bytes, log_time_ns: int) -> None: ...
    def close(self) -> None: ...


class Channels(Protocol):
    def channel(self, topic: str, schema_name: str, schema_text: str) -> ChannelSink: ...


class RecordSink(Protocol):
    def record(self, entry: Entry) -> None: ...


@dataclass(frozen=True)
class Schema:
    name: str
    text: str
    shape: CdrShape


class SchemaBook:
    """The shipped definitions as schemas, built once per type on first use."""

    def __init__(self, texts: Mapping[str, str], definitions: Mapping[str, MessageDefinition]) -> None:
        self._texts, self._definitions = texts, definitions
        self._built: dict[str, Schema | UnknownType] = {}

    def get(self, name: str) -> Schema:
        """The schema of ``name``; raises :class:`UnknownType` when it or a dependency has no definition."""
        built = self._built.get(name)
        if built is None:
            try:
                built = Schema(name, complete_definition(name, self._texts), CdrShape(name, self._definitions))
            except UnknownType as exc:
                built = exc
            self._built[name] = built
        if isinstance(built, UnknownType):
            raise built
        return built


@dataclass
class KeyState:
    """What the relay knows and counted about one Zenoh key."""

    key: str
    topic: str
    excluded: bool = False
    schema: Schema | None = None
    encoding: str = ""  # the Zenoh encoding that named ``schema``
    channel: ChannelSink | None = None
    relayed: int = 0
    unknown: int = 0
    malformed: int = 0
    oversize: int = 0
    mismatched: int = 0
    readvertised: int = 0
    said: set[str] = field(default_factory=set)


class Relay:
    """Hands each sample delivered on the loop to its channel and the recorder."""

    def __init__(self, channels: Channels, schemas: SchemaBook, excluded: Callable[[str], bool], log: Any,
                 recorder: RecordSink | None = None, *, max_bytes: int = 0,
                 wall_clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], int] = time.monotonic_ns) -> None:
        self._channels, self._schemas, self._excluded, self._log = channels, schemas, excluded, log
        self.recorder = recorder
        self.max_bytes = max_bytes
        self._wall_clock, self._monotonic = wall_clock, monotonic
        self.keys: dict[str, KeyState] = {}
        self._topics: dict[str, str] = {}  # Foxglove topic -> the key that has it
        self.latencies_ns: deque[int] = deque(maxlen=LATENCY_WINDOW)

    def _state(self, key: str) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            topic = self._topic_for(key)
            state = self.keys[key] = KeyState(key, topic, excluded=self._excluded(key))
            if state.excluded:
                self._log.info(f"{key}: excluded (--exclude), not relayed")
        return state

    def _topic_for(self, key: str) -> str:
        """:func:`ros_topic`, unless another key has it already (``rt/x`` and ``x`` both publishing)."""
        topic = ros_topic(key)
        candidates = [topic, "/" + key.strip("/")] + [f"{topic}_{n}" for n in range(2, 1000)]
        chosen = next(name for name in candidates if name not in self._topics)
        self._topics[chosen] = key
        if chosen != topic:
            self._log.warning(f"{key}: {topic} is taken by {self._topics[topic]}; shown as {chosen}")
        return chosen

    def _say_once(self, state: KeyState, reason: str, text: str) -> None:
        if reason not in state.said:
            state.said.add(reason)
            self._log.warning(f"{state.key}: {text}; not relayed (counted; said once per topic)")

    def deliver(self, sample: Received) -> None:
        """Relay one sample (called on the event loop)."""
        state = self._state(sample.key)
        if state.excluded:
            return
        if sample.oversize:
            state.oversize += 1
            self._say_once(state, "oversize", f"a {sample.oversize}-byte message is over --max-message-bytes "
                                              f"{self.max_bytes}")
            return
        schema = self._schema(state, sample.encoding)
        if schema is None:
            return
        try:
            inspection = schema.shape.inspect(sample.payload)
        except MalformedPayload as exc:
            state.malformed += 1
            self._say_once(state, "malformed", f"malformed {schema.name}: {exc}")
            return
        log_time = inspection.stamp_ns or self._wall_clock()
        if state.channel is None:
            state.channel = self._channels.channel(state.topic, schema.name, schema.text)
            self._log.info(f"{state.key}: advertised as {state.topic} ({schema.name})")
        state.channel.log(sample.payload, log_time)
        state.relayed += 1
        self.latencies_ns.append(self._monotonic() - sample.arrived_ns)
        if self.recorder is not None:
            self.recorder.record(Entry(state.key, state.topic, schema.name, schema.text, log_time, sample.payload,
                                       log_time))

    def _schema(self, state: KeyState, encoding: str) -> Schema | None:
        if state.schema is not None and encoding == state.encoding:
            return state.schema  # the common case: the key's type, as before
        name = schema_from_encoding(encoding)
        if name is None:
            state.unknown += 1
            self._say_once(state, "unknown", f"encoding {encoding!r} names no ROS 2 type "
                                             "(expected application/cdr;<package>/msg/<Type>)")
            return None
        if state.schema is not None:
            if name == state.schema.name:
                return state.schema
            state.mismatched += 1
            self._say_once(state, "mismatched", f"{name} on a topic advertised as {state.schema.name}")
            return None
        try:
            state.schema, state.encoding = self._schemas.get(name), encoding
        except UnknownType as exc:
            state.unknown += 1
            self._say_once(state, "unknown", f"unknown schema: {exc}")
            return None
        return state.schema

    def readvertise(self, channel_id: int) -> None:
        """Drop the channel ``channel_id`` (a client's subscription to it was refused): the next sample of its
        key advertises it anew, and the client subscribes again."""
        for state in self.keys.values():
            if state.channel is not None and state.channel.id == channel_id:
                state.channel.close()
                state.channel = None
                state.readvertised += 1
                self._log.info(f"{state.key}: advertising {state.topic} again (a subscription raced its "
                               "advertisement)")

    def totals(self) -> dict[str, int]:
        """Counts over every key: relayed, unknown, malformed, oversize, mismatched, channels."""
        total = {"relayed": 0, "unknown": 0, "malformed": 0, "oversize": 0, "mismatched": 0, "channels": 0}
        for state in self.keys.values():
            for name in ("relayed", "unknown", "malformed", "oversize", "mismatched"):
                total[name] += getattr(state, name)
            total["channels"] += state.channel is not None
        return total
