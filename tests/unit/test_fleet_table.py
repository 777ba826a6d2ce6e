"""``edgenode status``'s table and JSON from survey results, and its flags: pure, no Zenoh."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgenode.cli import UsageError
from edgenode.core.status import Counters, Identity, ModelFacts, StreamFacts, camera_status, encode_status, node_status
from edgenode.fleet.command import parse_options
from edgenode.fleet.table import NOT_ANSWERING, document, duration, entries, render

ZID_A, ZID_B, ZID_C = "aa" * 16, "bb" * 16, "cc" * 16


REPORT = {"fps": 29.54, "frames": 295.0, "window_s": 10.0, "latency_ms": 31.26}


def node(host: str, namespace: str = "", state: str = "running", *, pid: int = 100,
         window: dict[str, float] | None = REPORT) -> dict[str, Any]:
    identity = Identity("node", host, pid, "0.1.0", namespace, ZID_A, 0.0)
    phase = "running" if state == "no_camera_frames" else state
    silent = 5.0 if state == "no_camera_frames" else 0.01
    stream = StreamFacts("rt/camera/dma", (640, 480), silent, True, 30.0, 900, 12, {"stale_pid": 3})
    return node_status(identity, phase, uptime_s=3725.0, model=ModelFacts("/m/yolov8s.tflite", name="yolov8s"),
                       streams=[stream], counters=Counters(900, 880, 12, {"stale_pid": 3}),
                       window=window,
                       answered=1, query_limit=50.0, last_error=None)


def camera(host: str, namespace: str = "") -> dict[str, Any]:
    identity = Identity("camera", host, 99, "0.1.0", namespace, ZID_B, 0.0)
    return camera_status(identity, stopping=False, uptime_s=59.0, topic="rt/camera/dma", size=(640, 480),
                         pixel_format="YUYV", target_fps=30.0, published=1770, late=2, silent_s=0.01,
                         window=(2.0, 60), answered=0, query_limit=50.0)


def reply(key: str, status: dict[str, Any]) -> tuple[str, bytes, str]:
    return key, encode_status(status), ""


def test_rows_for_nodes_cameras_and_the_silent() -> None:
    found = entries(
        [reply(f"cam1/edgenode/status/node/{ZID_A}", node("board-a", "cam1")),
         reply(f"cam1/edgenode/status/camera/{ZID_B}", camera("board-a", "cam1")),
         reply(f"cam2/edgenode/status/node/{ZID_C}", node("board-b", "cam2", "loading", window=None))],
        [f"cam1/edgenode/status/node/{ZID_A}", f"cam1/edgenode/status/camera/{ZID_B}",
         f"cam2/edgenode/status/node/{ZID_C}", f"cam3/edgenode/status/node/{ZID_A}"])
    assert [(e.key.namespace, e.key.kind, e.answered, e.alive) for e in found] == [
        ("cam1", "camera", True, True), ("cam1", "node", True, True), ("cam2", "node", True, True),
        ("cam3", "node", False, True)]
    assert found[3].problem == NOT_ANSWERING
    assert render(found).splitlines() == [
        "NAME           KIND    STATE          MODEL          FPS  LATENCY   DROPS  UPTIME",
        "cam1/board-a   camera  running        YUYV 640x480  30.0        -  2 late     59s",
        "cam1/board-a   node    running        yolov8s       29.5  31.3 ms      15   1h02m",
        "cam2/board-b   node    loading        yolov8s          -        -      15   1h02m",
        "cam3/aaaaaaaa  node    not answering  -                -        -       -       -",
        "3 answered, 1 not answering"]


def test_same_host_and_namespace_are_told_apart_by_pid() -> None:
    found = entries([reply(f"edgenode/status/node/{ZID_A}", node("board-a", pid=11)),
                     reply(f"edgenode/status/node/{ZID_C}", node("board-a", pid=12))], [])
    assert [line.split()[0] for line in render(found).splitlines()[1:3]] == ["board-a:11", "board-a:12"]


def test_bad_replies_are_shown_not_trusted() -> None:
    hostile = node("evil\x1b[2J\nhost" + "x" * 100)
    found = entries([(f"edgenode/status/node/{ZID_A}", b"not json", ""),
                     (f"edgenode/status/node/{ZID_B}", b"", "a 100000-byte reply (at most 65536)"),
                     reply(f"edgenode/status/node/{ZID_C}", hostile),
                     reply("rt/model/info", node("ignored")),
                     (f"edgenode/status/node/{ZID_C}", b"[]", "")],  # a second, worse reply for C changes nothing
                    ["edgenode/status/node", "rt/**"])
    assert [(e.key.instance, e.answered, e.problem.split(":")[0]) for e in found] == [
        (ZID_A, False, "bad reply"), (ZID_B, False, "bad reply"), (ZID_C, True, "")]
    lines = render(found).splitlines()
    assert lines[-1] == "1 answered, 2 bad replies"
    assert all("\x1b" not in line for line in lines) and len(lines) == 5
    assert "evil?[2J?host" in lines[3] and "…" in lines[3]


def test_odd_values_in_a_reply_render_as_unknown() -> None:
    odd = node("board-a")
    odd.update(window={"fps": "fast", "latency_ms": {"mean": None}}, uptime_s=-1, counters=[], model={"file": 7})
    [entry] = entries([reply(f"edgenode/status/node/{ZID_A}", odd)], [])
    assert render([entry]).splitlines()[1].split() == ["board-a", "node", "running", "-", "-", "-", "-", "-"]


def test_nothing_found() -> None:
    assert render([]) == "no edgenode node or camera found (none reachable with these zenoh settings)"
    assert document([]) == {"answered": 0, "not_answering": 0, "entries": []}


def test_json_document_carries_each_status_whole() -> None:
    status = node("board-a", "cam1")
    found = entries([reply(f"cam1/edgenode/status/node/{ZID_A}", status)], [f"cam2/edgenode/status/node/{ZID_B}"])
    doc = json.loads(json.dumps(document(found)))
    assert (doc["answered"], doc["not_answering"]) == (1, 1)
    assert doc["entries"][0] == {"key": f"cam1/edgenode/status/node/{ZID_A}", "namespace": "cam1", "kind": "node",
                                 "id": ZID_A, "alive": False, "answered": True, "problem": None, "status": status}
    assert doc["entries"][1]["problem"] == NOT_ANSWERING and doc["entries"][1]["status"] is None


@pytest.mark.parametrize(("seconds", "shown"), [(None, "-"), (-1, "-"), (0, "0s"), (59.9, "59s"), (61, "1m01s"),
                                                (3725, "1h02m"), (90061, "1d01h")])
def test_durations(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_flags_and_the_node_zenoh_variables() -> None:
    options = parse_options(["--connect", "tcp/10.0.0.1:7447", "--json", "--watch", "2", "--timeout", "0.5"], {})
    assert options.zenoh.connect == ("tcp/10.0.0.1:7447",) and options.json
    assert (options.watch, options.timeout) == (2.0, 0.5)
    from_env = parse_options([], {"MODE": "client", "CONNECT": "tcp/a:1,tcp/b:2", "ZENOH_CFG": 'namespace:"cam1"'})
    assert from_env.zenoh.mode == "client" and from_env.zenoh.connect == ("tcp/a:1", "tcp/b:2")
    assert from_env.zenoh.overrides == (("namespace", '"cam1"'),) and from_env.watch is None
    assert parse_options([], {}).timeout == 1.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--watch", "0"], "--watch must be more than 0"),
    (["--watch", "soon"], "--watch: expected a number of seconds"),
    (["--timeout", "61"], "--timeout must be more than 0 and at most 60"),
    (["--mode", "bogus"], "invalid choice"),
    (["--model", "x.tflite"], "unrecognized arguments"),
    (["--cfg", "nocolon"], "--cfg: expected KEY:VALUE"),
])
def test_bad_flags_are_one_clear_line(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options(argv, {})


def test_asked_from_inside_a_namespace_the_name_keeps_it() -> None:
    found = entries([reply(f"edgenode/status/node/{ZID_A}", node("board-a", "cam1"))], [])  # zenoh stripped cam1/
    assert found[0].key.namespace == "" and render(found).splitlines()[1].split()[0] == "cam1/board-a"
