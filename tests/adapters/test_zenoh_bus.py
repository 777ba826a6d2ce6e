"""Zenoh adapter: config layering, clear errors, CDR publications and the asyncio bridge."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import edgenode.messages as m
from edgenode.adapters.zenoh_bus import LatestSlot, ZenohBus, ZenohConfigError, ZenohUnreachable, build_zenoh_config
from edgenode.config import ZenohSettings
from tests.helpers.processes import free_port
from tests.helpers.timing import scaled, wait_until_async


def isolated(port: int, **kwargs: object) -> ZenohSettings:
    """A session that talks only to the given loopback port (no scouting)."""
    return ZenohSettings(multicast_scouting=False, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_peer_and_loopback_scouting() -> None:
    config = build_zenoh_config(ZenohSettings())
    assert json.loads(config.get_json("mode")) == "peer"
    assert json.loads(config.get_json("scouting/multicast/interface")) == "lo"


def test_flags_layer_on_top() -> None:
    config = build_zenoh_config(ZenohSettings(mode="client", connect=("tcp/10.0.0.1:7447",),
                                              listen=("tcp/127.0.0.1:0",), multicast_scouting=False))
    assert json.loads(config.get_json("mode")) == "client"
    assert json.loads(config.get_json("connect/endpoints")) == ["tcp/10.0.0.1:7447"]
    assert json.loads(config.get_json("listen/endpoints")) == ["tcp/127.0.0.1:0"]
    assert json.loads(config.get_json("scouting/multicast/enabled")) is False


def test_file_then_flags_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "zenoh.json5"
    path.write_text('{ mode: "client", connect: { endpoints: ["tcp/10.0.0.9:7447"] }, // comment\n'
                    ' scouting: { multicast: { enabled: false } } }')
    config = build_zenoh_config(ZenohSettings(config_file=path))
    assert json.loads(config.get_json("mode")) == "client"
    assert json.loads(config.get_json("connect/endpoints")) == ["tcp/10.0.0.9:7447"]
    config = build_zenoh_config(ZenohSettings(config_file=path, mode="peer",
                                              overrides=(("namespace", '"cam1"'), ("mode", '"router"'))))
    assert json.loads(config.get_json("mode")) == "router"
    assert json.loads(config.get_json("namespace")) == "cam1"


def test_missing_or_broken_config_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ZenohConfigError, match=r"--zenoh-config .*missing\.json5"):
        build_zenoh_config(ZenohSettings(config_file=tmp_path / "missing.json5"))
    broken = tmp_path / "broken.json5"
    broken.write_text("{ mode: ")
    with pytest.raises(ZenohConfigError, match="--zenoh-config"):
        build_zenoh_config(ZenohSettings(config_file=broken))


def test_rejected_override_names_it() -> None:
    with pytest.raises(ZenohConfigError, match="--cfg mode"):
        build_zenoh_config(ZenohSettings(overrides=(("mode", '"satellite"'),)))
    with pytest.raises(ZenohConfigError, match="--cfg nope/key"):
        build_zenoh_config(ZenohSettings(overrides=(("nope/key", "1"),)))


def test_bad_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ZenohConfigError, match=r"--connect|cannot open"):
        ZenohBus.open(ZenohSettings(connect=("carrier-pigeon/1.2.3.4",), multicast_scouting=False))


def test_publish_and_subscribe_latest_between_two_sessions() -> None:
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = ZenohBus.open(isolated(port, listen=(endpoint,)))
        talker = ZenohBus.open(isolated(port, connect=(endpoint,)))
        try:
            # Declared first, so known to the talker once the second key's samples flow.
            burst = listener.subscribe_latest("rt/test/burst", loop)
            slot = listener.subscribe_latest("rt/test/detect", loop)
            publication = talker.publication("rt/test/detect", m.schema_name(m.Detect))
            message = m.Detect(m.Header(m.Time(1, 2), "cam"), boxes=[m.Box(label="person", score=0.5)])
            received = None
            for _ in range(100):  # until the two sessions have met
                publication.put(m.encode(message))
                received = await slot.get(timeout=scaled(0.05))
                if received is not None:
                    break
            assert received is not None, "no sample arrived"
            assert m.decode(m.Detect, received.payload) == message
            assert received.encoding == "application/cdr;edgefirst_msgs/msg/Detect"
            assert received.key == "rt/test/detect"
            burst_publication = talker.publication("rt/test/burst", m.schema_name(m.Detect))
            for index in range(5):  # several arrive before the loop reads: only the newest is kept
                burst_publication.put(m.encode(m.Detect(m.Header(m.Time(index, 0)))))
            await wait_until_async(lambda: burst.received == 5, 5, "the five samples")
            newest = burst.take()
            assert newest is not None and m.decode(m.Detect, newest.payload).header.stamp.sec == 4
            assert burst.dropped >= 1
        finally:
            talker.close()
            listener.close()

    asyncio.run(scenario())


def test_latest_slot_counts_replaced_items() -> None:
    async def scenario() -> None:
        slot: LatestSlot[int] = LatestSlot()
        assert await slot.get(timeout=0.01) is None
        for value in range(4):
            slot.put(value)
        assert await slot.get(timeout=0) == 3
        assert (slot.received, slot.dropped) == (4, 3)
        assert slot.take() is None

    asyncio.run(scenario())


@pytest.mark.parametrize("turns", [0, 1, 2])
def test_a_reader_cancelled_as_an_item_arrives_stays_cancelled(turns: int) -> None:
    """asyncio.wait_for (Python < 3.12) swallowed this cancellation: the node's heartbeat, cancelled once
    the model had loaded while camera frames poured in, ran on and the node never started (the soak test
    caught it at 200 fps, about one start in fifteen)."""

    async def scenario() -> None:
        slot: LatestSlot[int] = LatestSlot()
        reader = asyncio.create_task(slot.get(timeout=10))
        await asyncio.sleep(0)
        slot.put(1)
        for _ in range(turns):
            await asyncio.sleep(0)
        assert reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(scenario())


def test_an_unreachable_router_is_retried_until_stopped() -> None:
    settings = ZenohSettings(mode="client", connect=(f"tcp/127.0.0.1:{free_port()}",), multicast_scouting=False)
    with pytest.raises(ZenohUnreachable, match=r"no zenoh router answers at tcp/127\.0\.0\.1"):
        ZenohBus.open(settings)
    told: list[str] = []
    calls = {"n": 0}

    def stopping() -> bool:
        calls["n"] += 1
        return calls["n"] > 30

    assert ZenohBus.open_when_reachable(settings, stopping, told.append, first_delay=0.05) is None
    assert len(told) == 1 and told[0].endswith("retrying until one does")


def test_payloads_over_the_limit_are_counted_not_copied() -> None:
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = ZenohBus.open(isolated(port, listen=(endpoint,)))
        talker = ZenohBus.open(isolated(port, connect=(endpoint,)))
        try:
            slot = listener.subscribe_latest("rt/test/**", loop, max_bytes=1000)
            publication = talker.publication("rt/test/big", "x")
            received = None
            for _ in range(100):
                publication.put(bytes(5000))
                received = await slot.get(timeout=scaled(0.05))
                if received is not None:
                    break
            assert received is not None and received.payload == b"" and received.oversize == 5000
            assert received.key == "rt/test/big"  # the sample's own key, under a wildcard subscription
        finally:
            talker.close()
            listener.close()

    asyncio.run(scenario())


# -- issue 11: no shared memory by default, zenoh errors in one line, unreachable peers said --

PEER = r"""
import sys, time, zenoh
config = zenoh.Config()
config.insert_json5("connect/endpoints", '["{endpoint}"]')
config.insert_json5("scouting/multicast/enabled", "false")
session = zenoh.open(config)  # zenoh's defaults: shared memory on, payloads over 3 KiB through /dev/shm
deadline = time.monotonic() + {timeout}
while not session.info.peers_zid() and time.monotonic() < deadline:
    time.sleep(0.01)
publisher = session.declare_publisher("rt/test/shm")
while sys.stdin.readline().strip() == "put":
    publisher.put(bytes(1 << 20))
session.close()
"""


def zenoh_segments() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if "/dev/shm/" in line and line.rstrip().endswith(".zenoh"))


def open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_shared_memory_is_off_unless_asked_for() -> None:
    assert json.loads(build_zenoh_config(ZenohSettings()).get_json("transport/shared_memory/enabled")) is False
    assert json.loads(build_zenoh_config(ZenohSettings(shared_memory=True))
                      .get_json("transport/shared_memory/enabled")) is True


def test_peers_coming_and_going_leave_no_shared_memory_mapped() -> None:
    """Each short-lived peer sending a large payload used to leave 17 MiB of /dev/shm mapped (and two fds)."""
    import subprocess
    import sys
    import threading

    from tests.helpers.timing import scaled

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    bus = ZenohBus.open(ZenohSettings(listen=(endpoint,), multicast_scouting=False))
    got = threading.Semaphore(0)
    try:
        bus.session.declare_subscriber("rt/test/shm", lambda sample: got.release())
        segments, fds = [], []
        for _ in range(4):
            peer = subprocess.Popen([sys.executable, "-c", PEER.replace("{endpoint}", endpoint)
                                     .replace("{timeout}", str(scaled(10)))], stdin=subprocess.PIPE, text=True)
            assert peer.stdin is not None
            received = False
            for _ in range(int(scaled(100))):  # a put may go out before the route is in place: repeat until one lands
                peer.stdin.write("put\n")
                peer.stdin.flush()
                if got.acquire(timeout=0.1):
                    received = True
                    break
            peer.stdin.close()
            assert peer.wait(timeout=scaled(20)) == 0 and received
            segments.append(zenoh_segments())
            fds.append(open_fds())
        assert segments == [0, 0, 0, 0], f"zenoh shared-memory segments mapped after each peer: {segments}"
        assert fds[-1] == fds[0], f"open fds after each peer: {fds}"
    finally:
        bus.close()


@pytest.mark.parametrize(("settings", "expected"), [
    (ZenohSettings(overrides=(("mode", '"pe er"'),)), "--cfg mode: zenoh rejects mode=\"pe er\": unknown variant "
                                                      "`pe er`, expected one of `router`, `peer`, `client`"),
    (ZenohSettings(overrides=(("connect/endpoints", "[nope"),)), "expected array, boolean, null, number, object, "
                                                                 "or string (line 1, column 2)"),
    (ZenohSettings(overrides=(("nope/key", "1"),)), "--cfg nope/key: zenoh rejects nope/key=1: unknown key"),
], ids=["variant", "syntax", "key"])
def test_zenoh_errors_are_one_readable_line(settings: ZenohSettings, expected: str) -> None:
    with pytest.raises(ZenohConfigError) as caught:
        build_zenoh_config(settings)
    text = str(caught.value)
    assert expected in text
    assert "\n" not in text and ".rs:" not in text and "Json5Err" not in text and "Message {" not in text


@pytest.mark.parametrize(("content", "expected"), [
    ("{ mode: ", "expected array, boolean, null, number, object, or string (line 1, column 9)"),
    ('{ mode: "satellite" }', "unknown variant `satellite`, expected one of `router`, `peer`, `client` "
                              "(line 1, column 9)"),
])
def test_a_broken_zenoh_config_file_is_one_readable_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "zenoh.json5"
    path.write_text(content)
    with pytest.raises(ZenohConfigError) as caught:
        build_zenoh_config(ZenohSettings(config_file=path))
    text = str(caught.value)
    assert text == f"--zenoh-config {path}: {expected}"


def test_an_unsupported_endpoint_is_one_readable_line() -> None:
    with pytest.raises(ZenohConfigError) as caught:
        ZenohBus.open(ZenohSettings(connect=("carrier-pigeon/1.2.3.4",), multicast_scouting=False))
    assert str(caught.value) == "cannot open zenoh session: Unicast not supported for carrier-pigeon protocol"


def test_an_unreachable_peer_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """In peer mode zenoh retries a dead --connect endpoint silently, forever: the node says so, once."""
    import time

    from structlog.testing import capture_logs

    from edgenode.adapters import zenoh_bus
    from tests.helpers.timing import scaled

    monkeypatch.setattr(zenoh_bus, "CONNECT_CHECK_SECONDS", 0.2)
    dead = f"tcp/127.0.0.1:{free_port()}"
    live_port = free_port()
    live = f"tcp/127.0.0.1:{live_port}"
    with capture_logs() as logs:
        peer = ZenohBus.open(ZenohSettings(listen=(live,), multicast_scouting=False))
        bus = ZenohBus.open(ZenohSettings(connect=(dead, live), multicast_scouting=False))
        try:
            deadline = time.monotonic() + scaled(10)
            while not any("--connect" in log["event"] for log in logs) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            bus.close()
            peer.close()
    warnings = [log for log in logs if "--connect" in log["event"]]
    assert len(warnings) == 1, logs
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["event"] == f"--connect {dead}: no zenoh peer answers there yet; zenoh keeps trying"
