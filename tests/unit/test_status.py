"""The status document, its keys and the query budget: pure, no Zenoh."""

from __future__ import annotations

import json

import pytest

from edgenode.core.status import (
    MAX_STATUS_BYTES,
    SCHEMA_VERSION,
    STATUS_SELECTOR,
    Counters,
    Identity,
    ModelFacts,
    QueryBudget,
    StatusError,
    StatusKey,
    StreamFacts,
    camera_status,
    decode_status,
    encode_status,
    node_state,
    node_status,
    parse_status_key,
    status_key,
    window_document,
)

IDENTITY = Identity("node", "board-a", 1234, "0.1.0", "cam1", "ab12", 1_800_000_000.0)
MODEL = ModelFacts(file="/models/yolo.tflite", name="yolov8s", format="tflite", types="Detection",
                   input_shape=(1, 640, 640, 3), input_type="uint8", runtime="ai_edge_litert", delegate="vx",
                   threads=2, schedule="overlap", preprocess="g2d", tracking=True)
REPORT = {"fps": 29.5, "frames": 295.0, "window_s": 10.0, "boxes_per_frame": 2.5, "latency_ms": 31.0,
          "latency_p99_ms": 45.0, "latency_max_ms": 50.0, "invoke_ms": 12.0, "invoke_p99_ms": 14.0,
          "invoke_max_ms": 20.0, "received": 300.0}


def test_keys_take_the_namespace_zenoh_prefixes() -> None:
    assert status_key("node", "ab12") == "edgenode/status/node/ab12"
    key = "cam1/edgenode/status/node/ab12"
    assert parse_status_key(key) == StatusKey(key, "cam1", "node", "ab12")
    parsed = parse_status_key("site/cam1/edgenode/status/camera/ff00")
    assert parsed is not None and (parsed.namespace, parsed.kind, parsed.instance) == ("site/cam1", "camera", "ff00")
    plain = parse_status_key("edgenode/status/node/ab12")
    assert plain is not None and plain.namespace == ""
    for other in ("rt/model/info", "edgenode/status/node", "x/edgenode/status/node/ab/extra", "edgenode/stat/node/a"):
        assert parse_status_key(other) is None
    assert STATUS_SELECTOR == "**/edgenode/status/**"
    with pytest.raises(ValueError):
        status_key("router", "ab12")
    with pytest.raises(ValueError):
        status_key("node", "a/b")


def stream(silent: float = 0.05, seen: bool = True) -> StreamFacts:
    return StreamFacts(topic="cam1/rt/camera/dma", size=(1920, 1080), silent_s=silent, frames_seen=seen, fps=30.0,
                       received=1000, dropped=40, skipped={"stale_pid": 2})


def test_state_by_phase_and_a_silent_camera() -> None:
    assert node_state("waiting_for_router", [], "m.tflite") == ("waiting_for_router", "waiting for the zenoh router")
    assert node_state("loading", [stream(30.0)], "m.tflite") == ("loading", "loading m.tflite")
    assert node_state("running", [stream()], "m.tflite") == ("running", "running")
    assert node_state("running", [stream(12.4)], "m.tflite") == (
        "no_camera_frames", "no camera frames on cam1/rt/camera/dma for 12 s")
    assert node_state("running", [stream(3.0, seen=False)], "m.tflite")[1].endswith("for 3 s (none yet)")
    assert node_state("stopping", [stream(12.4)], "m.tflite") == ("stopping", "stopping")
    with pytest.raises(ValueError):
        node_state("no_camera_frames", [], "m.tflite")


def test_node_document_has_every_section_of_schema_1() -> None:
    document = node_status(IDENTITY, "running", uptime_s=3600.04, model=MODEL, streams=[stream()],
                           counters=Counters(frames_received=1000, frames_processed=950, dropped=40,
                                             skipped={"stale_pid": 2, "closed_fd": 1}, invoke_failures=3,
                                             publish_errors=1),
                           window=REPORT, answered=7, query_limit=50.0,
                           last_error={"at": 1.5, "logger": "edgenode.node", "message": "boom"})
    assert list(document) == ["version", "kind", "identity", "state", "state_detail", "uptime_s", "model", "cameras",
                              "window", "counters", "queries", "last_error"]
    assert document["version"] == SCHEMA_VERSION == 1 and document["kind"] == "node"
    assert document["identity"] == {"host": "board-a", "pid": 1234, "version": "0.1.0", "namespace": "cam1",
                                    "zid": "ab12", "started_at": 1_800_000_000.0}
    assert (document["state"], document["state_detail"], document["uptime_s"]) == ("running", "running yolov8s", 3600.0)
    assert document["model"]["input_shape"] == [1, 640, 640, 3] and document["model"]["delegate"] == "vx"
    assert document["cameras"] == [{"topic": "cam1/rt/camera/dma", "size": [1920, 1080], "last_frame_age_s": 0.05,
                                    "fps": 30.0, "received": 1000, "dropped": 40, "skipped": {"stale_pid": 2}}]
    assert document["window"] == {"seconds": 10.0, "fps": 29.5, "frames": 295, "boxes_per_frame": 2.5,
                                  "latency_ms": {"mean": 31.0, "p99": 45.0, "max": 50.0},
                                  "stages_ms": {"invoke": {"mean": 12.0, "p99": 14.0, "max": 20.0}}}
    assert document["counters"] == {"frames_received": 1000, "frames_processed": 950, "dropped": 40,
                                    "skipped": {"closed_fd": 1, "stale_pid": 2}, "skipped_total": 3,
                                    "prepare_failures": 0, "invoke_failures": 3, "post_failures": 0,
                                    "publish_errors": 1}
    assert document["queries"] == {"answered": 7, "limit_per_s": 50.0}
    assert document["last_error"]["message"] == "boom"
    assert json.loads(encode_status(document)) == document


def test_window_before_the_first_report_and_without_frames() -> None:
    assert window_document(None) is None
    empty = window_document({"fps": 0.0, "frames": 0.0, "window_s": 10.0})
    assert empty == {"seconds": 10.0, "fps": 0.0, "frames": 0, "boxes_per_frame": None, "latency_ms": None,
                     "stages_ms": {}}


def test_camera_document_is_the_same_schema_without_a_model() -> None:
    identity = Identity("camera", "board-a", 99, "0.1.0", "cam1", "cd34", 1_800_000_000.0)
    facts = {"uptime_s": 12.0, "topic": "rt/camera/dma", "size": (640, 480), "pixel_format": "YUYV",
             "target_fps": 30.0, "published": 360, "late": 1, "silent_s": 0.02, "answered": 0, "query_limit": 50.0}
    document = camera_status(identity, stopping=False, window=(2.0, 60), **facts)  # type: ignore[arg-type]
    assert document["kind"] == "camera" and document["model"] is None and document["state"] == "running"
    assert list(document) == ["version", "kind", "identity", "state", "state_detail", "uptime_s", "model", "cameras",
                              "window", "counters", "queries", "last_error"]
    assert document["state_detail"] == "publishing YUYV at 30 fps"
    assert document["cameras"] == [{"topic": "rt/camera/dma", "size": [640, 480], "format": "YUYV", "target_fps": 30.0,
                                    "fps": 30.0, "last_frame_age_s": 0.02, "published": 360}]
    assert document["window"]["fps"] == 30.0 and document["counters"] == {"frames_published": 360, "late": 1}
    stopping = camera_status(identity, stopping=True, window=None, **facts)  # type: ignore[arg-type]
    assert stopping["state"] == "stopping" and stopping["window"] is None and stopping["cameras"][0]["fps"] is None


def test_a_reader_bounds_and_checks_replies() -> None:
    assert decode_status(b'{"version": 1}') == {"version": 1}
    for bad, why in ((b"x" * (MAX_STATUS_BYTES + 1), "byte reply"), (b"\xff\xfe", "not JSON"),
                     (b"{", "not JSON"), (b"[1, 2]", "not a JSON object")):
        with pytest.raises(StatusError, match=why):
            decode_status(bad)


def test_budget_allows_a_burst_then_the_rate_and_refuses_the_rest() -> None:
    budget = QueryBudget(rate=10.0, burst=3, now=0.0)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    allowed, now = 0, 0.0
    while now < 10.0:  # a flood of 1,000 queries a second for 10 s: about rate x 10 s get through
        now += 0.001
        allowed += budget.take(now)
    assert 99 <= allowed <= 101
    assert [budget.take(now + 100) for _ in range(4)] == [True, True, True, False]  # idle time refills up to burst
    with pytest.raises(ValueError):
        QueryBudget(rate=0, burst=1, now=0.0)
