"""The foxglove-sdk adapter with a real server and the tests' protocol client: advertise, messageData with
log times, a busy port, and a client that stops reading (bounded, never blocking)."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import pytest

import edgenode.messages as m
from edgenode.adapters.foxglove import FoxgloveHub, FoxgloveServerError, PortInUse
from edgenode.messages.ros2msg import complete_definition
from edgenode.resources import message_texts
from tests.helpers.foxglove_client import FoxgloveClient
from tests.helpers.timing import scaled

TEXTS = message_texts()
DETECT = "edgefirst_msgs/msg/Detect"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def serve(hub: FoxgloveHub, backlog: int = 64) -> tuple[int, list[tuple[str, int, str]]]:
    events: list[tuple[str, int, str]] = []
    port = hub.serve("127.0.0.1", 0, name="test", backlog=backlog,
                     on_subscribe=lambda client, topic: events.append(("subscribe", client, topic)),
                     on_unsubscribe=lambda client, topic: events.append(("unsubscribe", client, topic)))
    return port, events


def test_channels_reach_a_client_with_their_schema_and_log_times() -> None:
    hub = FoxgloveHub()
    early = hub.channel("/model/boxes2d", DETECT, complete_definition(DETECT, TEXTS))  # before the server
    port, events = serve(hub)
    client = FoxgloveClient(f"ws://127.0.0.1:{port}")
    try:
        client.pump(lambda: "/model/boxes2d" in client.topics(), scaled(10), "the advertisement")
        channel = client.by_topic("/model/boxes2d")
        assert (channel.encoding, channel.schema_encoding, channel.schema_name) == ("cdr", "ros2msg", DETECT)
        assert channel.schema == complete_definition(DETECT, TEXTS)
        client.pump(lambda: bool(events), scaled(10), "the subscription")
        payload = m.encode(m.Detect(m.Header(m.Time(5, 6), "camera"), boxes=[m.Box(label="red", score=0.5)]))
        early.log(payload, 5_000_000_006)
        client.pump(lambda: bool(client.messages["/model/boxes2d"]), scaled(10), "the message")
        received = client.messages["/model/boxes2d"][0]
        assert received.log_time_ns == 5_000_000_006 and received.payload == payload
        assert client.decode("/model/boxes2d", received.payload).boxes[0].label == "red"
        assert events[0] == ("subscribe", events[0][1], "/model/boxes2d")
    finally:
        client.close()
        hub.close()


def test_a_busy_port_is_told_apart() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"port {port} on 127\.0\.0\.1 is in use"):
            FoxgloveHub().serve("127.0.0.1", port, name="t", backlog=8, on_subscribe=print, on_unsubscribe=print)
    with pytest.raises(FoxgloveServerError, match=r"cannot serve on 203\.0\.113\.9"):
        FoxgloveHub().serve("203.0.113.9", 0, name="t", backlog=8, on_subscribe=print, on_unsubscribe=print)


def test_a_client_that_stops_reading_never_blocks_logging_nor_grows_memory() -> None:
    """foxglove-sdk keeps at most ``backlog`` messages per client and drops the oldest: the newest wins."""
    hub = FoxgloveHub()
    channel = hub.channel("/camera/jpeg", "sensor_msgs/msg/CompressedImage",
                          complete_definition("sensor_msgs/msg/CompressedImage", TEXTS))
    port, events = serve(hub, backlog=16)
    client = FoxgloveClient(f"ws://127.0.0.1:{port}")
    try:
        client.pump(lambda: bool(events), scaled(10), "the subscription")
        size, count = 100_000, 4000  # 400 MB through a client that reads nothing
        frame = bytearray(m.encode(m.CompressedImage(m.Header(m.Time(1, 0)), "jpeg", bytes(size))))
        before = rss_bytes()
        started = time.monotonic()
        for index in range(count):
            struct.pack_into("<I", frame, len(frame) - 4, index)
            channel.log(bytes(frame), index + 1)
        elapsed = time.monotonic() - started
        growth = rss_bytes() - before
        assert growth < 64 << 20, f"memory grew {growth / 1e6:.0f} MB for {count * size / 1e6:.0f} MB logged"
        assert elapsed < scaled(20), f"logging took {elapsed:.1f} s: it waited for the client"
        client.pump(lambda: any(r.log_time_ns == count for r in client.messages["/camera/jpeg"]), scaled(20),
                    "the newest message")
        received = client.messages["/camera/jpeg"]
        assert received[-1].log_time_ns == count  # the newest reached the slow client
        assert len(received) < count // 10  # most of the backlog was dropped, oldest first
    finally:
        client.close()
        hub.close()


def test_refused_subscriptions_are_reported_and_a_new_advertisement_repairs_them() -> None:
    """foxglove-sdk 0.30 advertises a new channel before it registers it: a client quick to subscribe is
    sometimes refused ("unknown channel"). The hub reports each refusal; advertising anew repairs it."""
    hub = FoxgloveHub()
    refused: list[int] = []
    hub.watch_refused_subscriptions(refused.append)
    port, events = serve(hub)
    schema = complete_definition("std_msgs/msg/Header", TEXTS)
    channels = {}

    def readvertise(channel_id: int) -> None:
        topic = next((t for t, c in channels.items() if c.id == channel_id), None)
        if topic is not None:
            channels[topic].close()
            channels[topic] = hub.channel(topic, "std_msgs/msg/Header", schema)

    client = FoxgloveClient(f"ws://127.0.0.1:{port}")
    try:
        client.connection.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": 999, "channelId": 4242}]}))
        client.pump(lambda: 4242 in refused, scaled(10), "the refusal of a channel that does not exist")
        for index in range(40):  # new channels while the client subscribes to each as it appears
            channels[f"/t{index}"] = hub.channel(f"/t{index}", "std_msgs/msg/Header", schema)
            client.read_for(0.01)
            for channel_id in [r for r in refused if r != 4242]:
                refused.remove(channel_id)
                readvertise(channel_id)

        def all_subscribed() -> bool:
            for channel_id in [r for r in refused if r != 4242]:
                refused.remove(channel_id)
                readvertise(channel_id)
            return {topic for kind, _, topic in events if kind == "subscribe"} >= set(channels)
        client.pump(all_subscribed, scaled(20), "a subscription to every channel")
    finally:
        client.close()
        hub.close()
