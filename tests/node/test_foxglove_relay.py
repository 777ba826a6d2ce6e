"""The bridge's relay and recorder in one process, with recording fakes for the server and the files."""

from __future__ import annotations

import errno
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import edgenode.messages as m
from edgenode.adapters.zenoh_bus import Received
from edgenode.foxglove.recording import Entry, Recorder, RecordSettings
from edgenode.foxglove.relay import Relay, SchemaBook
from edgenode.resources import message_definitions, message_texts
from tests.helpers.timing import scaled

DETECT = "application/cdr;edgefirst_msgs/msg/Detect"
STAMP = m.Time(1_800_000_000, 5)


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _add(self, level: str, text: str, **fields: Any) -> None:
        with self._lock:
            self.lines.append((level, text))

    def info(self, text: str, **fields: Any) -> None:
        self._add("info", text)

    def warning(self, text: str, **fields: Any) -> None:
        self._add("warning", text)

    def error(self, text: str, **fields: Any) -> None:
        self._add("error", text)

    def said(self, level: str, part: str) -> int:
        with self._lock:
            return sum(1 for lvl, text in self.lines if lvl == level and part in text)


@dataclass
class FakeChannel:
    id: int
    topic: str
    schema_name: str
    schema_text: str
    logged: list[tuple[bytes, int]] = field(default_factory=list)
    closed: bool = False

    def log(self, payload: bytes, log_time_ns: int) -> None:
        assert not self.closed
        self.logged.append((payload, log_time_ns))

    def close(self) -> None:
        self.closed = True


class FakeHub:
    def __init__(self) -> None:
        self.channels: dict[str, FakeChannel] = {}
        self.created = 0

    def channel(self, topic: str, schema_name: str, schema_text: str) -> FakeChannel:
        assert topic not in self.channels or self.channels[topic].closed
        self.created += 1
        self.channels[topic] = FakeChannel(self.created, topic, schema_name, schema_text)
        return self.channels[topic]


class FakeRecorder:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def record(self, entry: Entry) -> None:
        self.entries.append(entry)


def relay(**kwargs: Any) -> tuple[Relay, FakeHub, Log]:
    hub, log = FakeHub(), Log()
    schemas = SchemaBook(message_texts(), message_definitions())
    excluded = kwargs.pop("excluded", lambda key: key.endswith("camera/dma"))
    return Relay(hub, schemas, excluded, log, wall_clock=lambda: 42, **kwargs), hub, log


def sample(key: str, payload: bytes, encoding: str = DETECT, oversize: int = 0) -> Received:
    return Received(payload, encoding, time.monotonic_ns(), oversize=oversize, key=key)


def detect(boxes: int = 1) -> bytes:
    return m.encode(m.Detect(m.Header(STAMP, "camera"), boxes=[m.Box(label="red", score=0.9)] * boxes))


def test_first_sample_advertises_and_every_payload_goes_out_unchanged_at_its_stamp() -> None:
    recorder = FakeRecorder()
    r, hub, log = relay(recorder=recorder)
    payloads = [detect(n) for n in range(3)]
    for payload in payloads:
        r.deliver(sample("rt/model/boxes2d", payload))
    channel = hub.channels["/model/boxes2d"]
    assert channel.schema_name == "edgefirst_msgs/msg/Detect"
    assert channel.schema_text.startswith(message_texts()["edgefirst_msgs/msg/Detect"])
    assert channel.logged == [(p, STAMP.to_nanos()) for p in payloads]
    assert [(e.topic, e.payload, e.log_time_ns) for e in recorder.entries] == [
        ("/model/boxes2d", p, STAMP.to_nanos()) for p in payloads]
    assert log.said("info", "rt/model/boxes2d: advertised as /model/boxes2d") == 1
    assert r.totals()["relayed"] == 3 and len(r.latencies_ns) == 3


def test_a_message_without_a_stamp_goes_out_at_arrival_time() -> None:
    r, hub, _ = relay()
    mask = m.encode(m.Mask(2, 2, 1, "", b"abcd"))
    r.deliver(sample("rt/model/mask", mask, "application/cdr;edgefirst_msgs/msg/Mask"))
    assert hub.channels["/model/mask"].logged[0][1] == 42


def test_excluded_keys_are_said_once_and_never_advertised() -> None:
    r, hub, log = relay()
    for _ in range(3):
        r.deliver(sample("rt/camera/dma", m.encode(m.DmaBuffer()), "application/cdr;edgefirst_msgs/msg/DmaBuffer"))
    assert not hub.channels and log.said("info", "rt/camera/dma: excluded") == 1


@pytest.mark.parametrize(("encoding", "said"), [
    ("application/cdr;acme_msgs/msg/Widget", "unknown schema: no definition of acme_msgs/msg/Widget"),
    ("zenoh/bytes", "encoding 'zenoh/bytes' names no ROS 2 type"),
    ("application/json", "names no ROS 2 type"),
])
def test_unknown_schemas_are_counted_and_said_once_per_topic(encoding: str, said: str) -> None:
    r, hub, log = relay()
    for key in ("acme/a", "acme/b"):
        for _ in range(4):
            r.deliver(sample(key, b"\x00\x01\x00\x00", encoding))
    r.deliver(sample("rt/model/boxes2d", detect()))
    assert set(hub.channels) == {"/model/boxes2d"}
    assert r.totals()["unknown"] == 8 and log.said("warning", said) == 2
    assert log.said("warning", "acme/a: ") == 1 and log.said("warning", "acme/b: ") == 1


def test_malformed_payloads_are_counted_said_once_and_skipped() -> None:
    r, hub, log = relay()
    good = detect(2)
    for payload in (good[:-3], b"\x00\x03\x00\x00" + good[4:], b"", good[:-3]):
        r.deliver(sample("rt/model/boxes2d", payload))
    r.deliver(sample("rt/model/boxes2d", good))
    assert hub.channels["/model/boxes2d"].logged == [(good, STAMP.to_nanos())]
    assert r.totals()["malformed"] == 4
    assert log.said("warning", "rt/model/boxes2d: malformed edgefirst_msgs/msg/Detect: ") == 1


def test_oversize_and_a_second_type_on_one_key() -> None:
    r, _, log = relay(max_bytes=1000)
    r.deliver(sample("rt/model/boxes2d", b"", oversize=5000))
    r.deliver(sample("rt/model/boxes2d", detect()))
    r.deliver(sample("rt/model/boxes2d", m.encode(m.Mask()), "application/cdr;edgefirst_msgs/msg/Mask"))
    totals = r.totals()
    assert (totals["oversize"], totals["mismatched"], totals["relayed"]) == (1, 1, 1)
    assert log.said("warning", "a 5000-byte message is over --max-message-bytes 1000") == 1
    assert log.said("warning", "edgefirst_msgs/msg/Mask on a topic advertised as edgefirst_msgs/msg/Detect") == 1


def test_both_namings_of_one_topic_get_two_channels() -> None:
    r, hub, log = relay()
    info = m.encode(m.CameraInfo(m.Header(STAMP)))
    for key in ("rt/camera/info", "camera/info", "camera/jpeg", "rt/camera/jpeg"):
        r.deliver(sample(key, info, "application/cdr;sensor_msgs/msg/CameraInfo"))
    assert sorted(hub.channels) == ["/camera/info", "/camera/info_2", "/camera/jpeg", "/rt/camera/jpeg"]
    assert log.said("warning", "camera/info: /camera/info is taken by rt/camera/info; shown as /camera/info_2") == 1


def test_a_refused_subscription_gets_its_channel_advertised_again() -> None:
    r, hub, log = relay()
    r.deliver(sample("rt/model/boxes2d", detect()))
    first = hub.channels["/model/boxes2d"]
    r.readvertise(12345)  # not ours: nothing happens
    r.readvertise(first.id)
    assert first.closed and log.said("info", "rt/model/boxes2d: advertising /model/boxes2d again") == 1
    r.deliver(sample("rt/model/boxes2d", detect()))
    second = hub.channels["/model/boxes2d"]
    assert second.id != first.id and len(second.logged) == 1 and r.keys["rt/model/boxes2d"].readvertised == 1


# -- the recorder --------------------------------------------------------------------------------

@dataclass
class FakeFile:
    path: Path
    fail_after: int | None = None
    messages: int = 0
    written: int = 0
    chunks: int = 0
    closed: bool = False
    abandoned: bool = False
    channels: dict[str, int] = field(default_factory=dict)

    def channel(self, key: str, topic: str, schema_name: str, schema_text: str) -> int:
        return self.channels.setdefault(key, len(self.channels) + 1)

    def write(self, channel_id: int, log_time_ns: int, payload: bytes, publish_time_ns: int) -> None:
        if self.fail_after is not None and self.messages >= self.fail_after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.messages += 1
        self.written += len(payload)

    def flush(self) -> None:
        self.chunks += 1

    @property
    def size(self) -> int:
        return self.written

    def close(self) -> None:
        self.closed = True

    def abandon(self) -> None:
        self.abandoned = True


def entry(index: int, size: int = 100) -> Entry:
    return Entry("rt/x", "/x", "std_msgs/msg/Header", "", index, bytes(size), index)


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + scaled(10)
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def recorder(tmp_path: Path, **settings: Any) -> tuple[Recorder, list[FakeFile], Log]:
    files: list[FakeFile] = []
    fail_after = settings.pop("fail_after", None)
    clock = settings.pop("clock", time.monotonic)
    log = Log()

    def open_file(path: Path) -> FakeFile:
        files.append(FakeFile(path, fail_after))
        return files[-1]

    return Recorder(RecordSettings(tmp_path / "run.mcap", **settings), open_file, log, clock), files, log


def test_recorder_closes_chunks_by_size_and_by_age(tmp_path: Path) -> None:
    rec, files, _ = recorder(tmp_path, chunk_bytes=1024, chunk_seconds=0.05)
    try:
        for index in range(30):  # 3000 bytes: two chunks closed by size
            rec.record(entry(index))
        wait_for(lambda: rec.recorded == 30 and files[0].chunks >= 2, "two chunks by size")
        rec.record(entry(30))
        wait_for(lambda: files[0].chunks >= 3, "the open chunk closed by age")  # with nothing more arriving
    finally:
        rec.close()
    assert files[0].closed and len(files) == 1 and files[0].messages == 31


def test_recorder_splits_by_size_and_by_duration(tmp_path: Path) -> None:
    rec, files, log = recorder(tmp_path, split_bytes=2048, chunk_bytes=1024)
    try:
        for index in range(60):
            rec.record(entry(index))
        wait_for(lambda: rec.recorded == 60, "every message")
    finally:
        rec.close()
    assert [f.path.name for f in files] == [f"run_{i:04d}.mcap" for i in range(len(files))] and len(files) >= 2
    assert all(f.closed for f in files) and sum(f.messages for f in files) == 60
    assert log.said("info", "recorded ") == len(files)

    now = [0.0]
    rec, files, _ = recorder(tmp_path, split_seconds=60, clock=lambda: now[0])
    try:
        now[0] = 100.0  # the first message comes long after the start: its file's time starts with it
        rec.record(entry(0))
        wait_for(lambda: rec.recorded == 1, "the first")
        now[0] = 159.0
        rec.record(entry(1))
        wait_for(lambda: rec.recorded == 2, "the second")
        now[0] = 161.0
        rec.record(entry(2))
        wait_for(lambda: rec.recorded == 3, "the third")
    finally:
        rec.close()
    assert [f.messages for f in files] == [2, 1] and all(f.closed for f in files)


def test_a_full_disk_stops_recording_with_one_line(tmp_path: Path) -> None:
    rec, files, log = recorder(tmp_path, fail_after=5)
    try:
        for index in range(10):
            rec.record(entry(index))
        wait_for(lambda: rec.stopped is not None, "recording to stop")
        rec.record(entry(99))  # after the stop: dropped quietly, never queued
    finally:
        rec.close()
    assert rec.recorded == 5 and files[0].abandoned and not files[0].closed
    assert log.said("error", "recording stopped: ") == 1 and log.said("error", "No space left on device") == 1
    assert rec.queued_bytes == 0


def test_a_slow_disk_drops_instead_of_queueing_without_bound(tmp_path: Path) -> None:
    gate = threading.Event()
    rec, files, _ = recorder(tmp_path, queue_bytes=1 << 20, chunk_bytes=1 << 20)
    original = FakeFile.write

    def slow_write(self: FakeFile, *args: Any) -> None:
        gate.wait(scaled(10))
        original(self, *args)

    try:
        FakeFile.write = slow_write  # type: ignore[method-assign]
        for index in range(50):
            rec.record(entry(index, 100_000))
        assert rec.queued_bytes <= 1 << 20 and rec.dropped >= 50 - 11
    finally:
        gate.set()
        rec.close()
        FakeFile.write = original  # type: ignore[method-assign]
    assert rec.recorded + rec.dropped == 50 and files[0].closed
