"""Zenoh adapter, fleet status: a liveliness token with a paced status queryable, and the survey that finds
them (replies and tokens at once, bounded), across real zenoh sessions and namespaces."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zenoh

from edgenode.adapters.zenoh_bus import (
    STATUS_BURST,
    STATUS_RATE,
    Announcement,
    Survey,
    ZenohBus,
    build_zenoh_config,
)
from edgenode.config import ZenohSettings
from edgenode.core.status import STATUS_SELECTOR
from tests.helpers.processes import endpoint, free_port
from tests.helpers.timing import scaled

ROUTER_CONFIG = Path(__file__).resolve().parents[2] / "systemd" / "zenoh-router.json5"


@pytest.fixture
def hub() -> Iterator[int]:
    """A listening peer the test's sessions connect to; its port."""
    port = free_port()
    bus = ZenohBus.open(ZenohSettings(listen=(endpoint(port),), multicast_scouting=False))
    yield port
    bus.close()


def joined(port: int, **options: object) -> ZenohBus:
    settings = ZenohSettings(connect=(endpoint(port),), multicast_scouting=False, **options)  # type: ignore[arg-type]
    return ZenohBus.open(settings)


def survey_until(bus: ZenohBus, condition: Callable[[Survey], object], what: str, seconds: float = 5.0) -> Survey:
    deadline = time.monotonic() + scaled(seconds)
    while True:
        found = bus.survey(STATUS_SELECTOR, scaled(1.0), max_bytes=65536)
        if condition(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(seconds):g} s waiting for {what}: {found}")


def test_an_announced_status_is_found_with_its_token_and_answers_json(hub: int) -> None:
    node, asker = joined(hub), joined(hub)
    try:
        announcement = node.announce("node", lambda: b'{"version": 1, "state": "running"}')
        key = f"edgenode/status/node/{node.zid}"
        assert announcement.key == key and node.namespace == ""
        found = survey_until(asker, lambda s: s.answers and s.alive, "the node")
        assert found.alive == [key]
        [answer] = found.answers
        assert (answer.key, json.loads(answer.payload), answer.problem) == (key, {"version": 1, "state": "running"}, "")
        assert announcement.answered >= 1
        node.close()  # the token and the queryable go with the bus
        survey_until(asker, lambda s: not s.answers and not s.alive, "the node gone")
    finally:
        node.close()
        asker.close()


def test_the_namespace_prefixes_the_key_on_the_wire(hub: int) -> None:
    node = joined(hub, overrides=(("namespace", '"cam1"'),))
    asker = joined(hub)
    try:
        assert node.namespace == "cam1"
        node.announce("camera", lambda: b"{}")
        found = survey_until(asker, lambda s: s.answers and s.alive, "the namespaced camera")
        key = f"cam1/edgenode/status/camera/{node.zid}"
        assert found.alive == [key] and [a.key for a in found.answers] == [key]
    finally:
        node.close()
        asker.close()


def test_a_live_token_without_an_answer_and_an_oversize_reply_are_reported(hub: int) -> None:
    mute, big, asker = joined(hub), joined(hub), joined(hub)
    try:
        mute_key = f"edgenode/status/node/{mute.zid}"
        token = mute.session.liveliness().declare_token(mute_key)  # alive, but no queryable
        big.announce("node", lambda: b" " * 100_000)
        found = survey_until(asker, lambda s: len(s.alive) == 2 and s.answers, "both tokens and the big reply")
        assert sorted(found.alive) == sorted([mute_key, f"edgenode/status/node/{big.zid}"])
        [answer] = found.answers
        assert answer.payload == b"" and answer.problem == "a 100000-byte reply (at most 65536)"
        token.undeclare()
    finally:
        for bus in (mute, big, asker):
            bus.close()


def test_status_queries_are_bounded_inside_zenoh_beside_the_configs_own_rules() -> None:
    own = json.dumps([{"flows": ["egress"], "messages": ["put"], "rules": [{"key_expr": "a/b", "freq": 1.0}]}])
    rules = json.loads(build_zenoh_config(ZenohSettings(overrides=(("downsampling", own),))).get_json("downsampling"))
    assert [rule["id"] for rule in rules] == [None, "edgenode-status-queries"]
    assert rules[1]["flows"] == ["ingress"] and rules[1]["messages"] == ["query"]
    assert rules[1]["rules"] == [{"key_expr": STATUS_SELECTOR, "freq": STATUS_RATE}]


def test_a_flood_of_queries_gets_at_most_the_budgeted_replies_and_no_query_hangs(hub: int) -> None:
    node, flooder = joined(hub), joined(hub)
    try:
        announcement = node.announce("node", lambda: b"{}")
        key = f"edgenode/status/node/{node.zid}"
        survey_until(flooder, lambda s: s.answers, "the node")
        answered_at_start = announcement.answered
        finished: list[float] = []
        lock = threading.Lock()

        def done(started: float) -> None:
            with lock:
                finished.append(time.monotonic() - started)

        started = time.monotonic()
        queries = 600
        for _ in range(queries):  # as fast as zenoh takes them: far above the 50 replies a second
            at = time.monotonic()
            flooder.session.get(key, zenoh.handlers.Callback(lambda reply: None, lambda at=at: done(at)),
                                timeout=scaled(10.0))
        deadline = time.monotonic() + scaled(10.0)
        while len(finished) < queries and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        replies = announcement.answered - answered_at_start
        assert len(finished) == queries, "a query was left waiting"
        assert replies <= STATUS_RATE * elapsed + STATUS_BURST + 1
        assert replies < queries / 2
        assert max(finished) < scaled(5.0)  # refused queries end at once, not at their timeout
    finally:
        node.close()
        flooder.close()


def test_the_shipped_router_config_keeps_a_flood_of_status_queries_off_the_boards() -> None:
    port = free_port()
    config = zenoh.Config.from_file(str(ROUTER_CONFIG))
    config.insert_json5("listen/endpoints", json.dumps([endpoint(port)]))
    router = zenoh.open(config)
    board_config = zenoh.Config()  # a board without its own bound: what reaches it is what the router lets by
    for key, value in (("mode", '"client"'), ("connect/endpoints", json.dumps([endpoint(port)])),
                       ("scouting/multicast/enabled", "false")):
        board_config.insert_json5(key, value)
    board = zenoh.open(board_config)
    flooder = joined(port, mode="client")
    try:
        announcement = Announcement(board, "edgenode/status/node/board", lambda: b"{}", rate=10_000, burst=10_000)
        survey_until(flooder, lambda s: s.answers, "the board through the router")
        reached = announcement.answered + announcement.refused
        started = time.monotonic()
        for _ in range(250):  # 500 a second for half a second (zenoh's rule lets one by every 20 ms)
            flooder.session.get(STATUS_SELECTOR, zenoh.handlers.RingChannel(1), timeout=scaled(2.0))
            time.sleep(0.002)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + scaled(3.0)
        while time.monotonic() < deadline and announcement.answered + announcement.refused - reached < 5:
            time.sleep(0.05)
        time.sleep(scaled(0.2))  # stragglers: any over the bound would arrive by now
        arrived = announcement.answered + announcement.refused - reached
        assert 5 <= arrived <= STATUS_RATE * elapsed + 2, (arrived, elapsed)
        announcement.close()
    finally:
        flooder.close()
        board.close()
        router.close()
