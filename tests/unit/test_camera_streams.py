"""Several cameras in one node's config: stream names, the topic layout, CameraInfo topics, bad lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgenode.cli import UsageError, main, parse_config
from edgenode.config import (
    CameraSpec,
    ConfigError,
    ModelSettings,
    NodeConfig,
    Topics,
    derived_info_topic,
    derived_names,
    parse_camera,
    stream_key,
)

ENV = {"MODEL": "yolo.tflite"}


def streams(*cameras: str, **topics: str) -> list[tuple[str, Topics]]:
    config = NodeConfig(ModelSettings(Path("m.tflite")), topics=Topics(**topics),
                        cameras=tuple(parse_camera(c) for c in cameras))
    return [(stream.name, stream.topics) for stream in config.streams()]


def test_names_are_what_tells_the_topics_apart() -> None:
    assert derived_names(("rt/front/dma", "rt/rear/dma")) == ("front", "rear")
    assert derived_names(("cam1/rt/camera/dma", "cam2/rt/camera/dma")) == ("cam1", "cam2")
    assert derived_names(("rt/a/dma", "rt/b/c/dma")) == ("a", "b_c")
    assert derived_names(("rt/camera/dma",)) == ("dma",)
    assert parse_camera("left = rt/l/dma") == CameraSpec("rt/l/dma", "left")
    assert parse_camera("rt/l/dma") == CameraSpec("rt/l/dma")


def test_output_and_info_keys_of_a_stream() -> None:
    assert stream_key("rt/model/boxes2d", "front") == "rt/model/front/boxes2d"
    assert stream_key("boxes", "front") == "front/boxes"
    assert stream_key("", "front") == ""
    assert derived_info_topic("rt/front/dma", "rt/camera/info") == "rt/front/info"
    assert derived_info_topic("dma", "rt/camera/info") == "info"
    assert derived_info_topic("rt/front/dma", "") == ""


def test_one_camera_keeps_every_topic() -> None:
    assert streams() == [("dma", Topics())]
    assert streams("rt/cam2/dma") == [("dma", Topics(camera="rt/cam2/dma"))]
    assert streams("only=rt/cam2/dma") == [("only", Topics(camera="rt/cam2/dma"))]
    assert parse_config([], ENV).streams()[0].topics == Topics()


def test_several_cameras_put_their_name_in_each_output_key() -> None:
    (front, front_topics), (rear, rear_topics) = streams("rt/front/dma", "back=rt/rear/dma",
                                                         output="rt/model/output", mask_compressed="")
    assert (front, rear) == ("front", "back")
    assert front_topics == Topics(camera="rt/front/dma", camera_info="rt/front/info",
                                  detect="rt/model/front/boxes2d", info="rt/model/front/info",
                                  mask="rt/model/front/mask", mask_compressed="", output="rt/model/front/output",
                                  visual="rt/model/front/visualization")
    assert rear_topics.camera_info == "rt/rear/info" and rear_topics.detect == "rt/model/back/boxes2d"


def test_flags_and_environment_list_the_cameras() -> None:
    config = parse_config(["--camera-topic", "rt/a/dma", "--camera-topic", "b=rt/b/dma", "--camera-info-topic",
                           "b=rt/b/camera_info", "--batch", "2"], ENV)
    assert [(s.name, s.topics.camera, s.topics.camera_info) for s in config.streams()] == [
        ("a", "rt/a/dma", "rt/a/info"), ("b", "rt/b/dma", "rt/b/camera_info")]
    assert config.model.batch == 2 and parse_config([], ENV).model.batch == 0
    from_env = parse_config([], {**ENV, "CAMERA_TOPIC": "rt/a/dma,rt/b/dma", "BATCH": "auto"})
    assert [s.topics.detect for s in from_env.streams()] == ["rt/model/a/boxes2d", "rt/model/b/boxes2d"]
    assert from_env.topics.camera == "rt/a/dma"
    no_info = parse_config(["--camera-info-topic", ""], ENV)
    assert no_info.streams()[0].topics.camera_info == ""


@pytest.mark.parametrize(("argv", "message"), [
    (["--camera-topic", "rt/a/dma", "--camera-topic", "rt/a/dma"], "stream names must be unique"),
    (["--camera-topic", "x=rt/a/dma", "--camera-topic", "x=rt/b/dma"], "x appears more than once"),
    (["--camera-topic", "a/b=rt/a/dma"], "must be one key segment"),
    (["--camera-topic", "rt/b/dma", "--camera-topic", "a="], "the topic is empty"),
    (["--camera-info-topic", "nobody=rt/x/info"], "no camera stream named nobody"),
    (["--batch", "many"], "--batch"),
    (["--batch", "0"], "--batch must be auto or a number of frames"),
    (["--batch", "17"], "--batch must be auto or 1 to 16"),
])
def test_bad_camera_lists_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_config(argv, ENV)


def test_duplicate_names_exit_2_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "edgenode", "-m", "x.tflite", "--camera-topic", "rt/a/dma",
                             "--camera-topic", "rt/a/dma"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "stream names must be unique" in result.stderr
    assert main(["-m", "x.tflite", "--camera-topic", "rt/a/dma", "--camera-topic", "rt/a/dma"]) == 2


def test_config_refuses_too_many_cameras() -> None:
    with pytest.raises(ConfigError, match="at most 16"):
        NodeConfig(ModelSettings(Path("m")), cameras=tuple(CameraSpec(f"rt/c{i}/dma") for i in range(17)))
