"""edgenode-foxglove's flags into a BridgeConfig, the recording file names, and the shipped layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgenode.foxglove import LAYOUT
from edgenode.foxglove.cli import UsageError, config_from, main, parse_bytes
from edgenode.foxglove.config import DEFAULT_EXCLUDE
from edgenode.foxglove.recording import RecordSettings
from edgenode.messages.ros2msg import ros_topic
from edgenode.resources import message_definitions


@pytest.mark.parametrize(("text", "size"), [("4096", 4096), ("512K", 512 << 10), ("64M", 64 << 20),
                                            ("1.5G", 3 << 29), ("2 MiB", 2 << 20), ("1mb", 1 << 20)])
def test_sizes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_defaults() -> None:
    config = config_from([])
    assert (config.topics, config.exclude, config.host, config.port) == (("**",), DEFAULT_EXCLUDE, "127.0.0.1", 8765)
    assert config.record is None and config.backlog == 64 and config.max_message_bytes == 16 << 20
    assert config.zenoh.multicast_scouting and config.zenoh.mode is None


def test_flags() -> None:
    config = config_from(["--topics", "rt/model/**", "--topics", "camera/*", "--exclude", "", "--host", "0.0.0.0",
                          "--port", "0", "--client-backlog", "8", "--record", "/tmp/run.mcap", "--split-size", "1G",
                          "--split-duration", "600", "--chunk-seconds", "0.5", "--compression", "lz4",
                          "--mode", "client", "--connect", "tcp/10.0.0.2:7447", "--no-multicast-scouting",
                          "--cfg", 'namespace:"cam1"', "--stats-interval", "2"])
    assert config.topics == ("rt/model/**", "camera/*") and config.exclude == ()
    assert (config.host, config.port, config.backlog) == ("0.0.0.0", 0, 8)
    assert config.record == RecordSettings(Path("/tmp/run.mcap"), split_bytes=1 << 30, split_seconds=600.0,
                                           chunk_seconds=0.5, compression="lz4")
    assert config.zenoh.connect == ("tcp/10.0.0.2:7447",) and config.zenoh.overrides == (("namespace", '"cam1"'),)
    assert config.log.stats_interval == 2.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "70000"], "--port"),
    (["--client-backlog", "0"], "--client-backlog"),
    (["--max-message-bytes", "10"], "--max-message-bytes"),
    (["--record", "run.bag"], "must end in .mcap"),
    (["--record", "a.mcap", "--split-size", "-5"], "expected a size"),
    (["--record", "a.mcap", "--chunk-seconds", "0"], "--chunk-seconds"),
    (["--chunk-size", "lots"], "expected a size"),
    (["--mode", "satellite"], "invalid choice"),
    (["--cfg", "nonsense"], "KEY:VALUE"),
])
def test_bad_flags_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=message):
        config_from(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgenode-foxglove: error: ") and err.count("\n") == 1


def test_split_file_names() -> None:
    single = RecordSettings(Path("/data/run.mcap"))
    assert single.file_path(0) == Path("/data/run.mcap")
    split = RecordSettings(Path("/data/run.mcap"), split_seconds=60)
    assert [split.file_path(i).name for i in (0, 1, 12)] == ["run_0000.mcap", "run_0001.mcap", "run_0012.mcap"]


def test_layout_shows_what_the_node_and_camera_publish(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--layout"]) == 0 and capsys.readouterr().out.strip() == str(LAYOUT)
    layout = json.loads(LAYOUT.read_text())
    panels = layout["configById"]

    def leaves(node: object) -> list[str]:
        return [node] if isinstance(node, str) else [*leaves(node["first"]), *leaves(node["second"])]  # type: ignore[index]

    assert sorted(leaves(layout["layout"])) == sorted(panels)
    image = next(config["imageMode"] for name, config in panels.items() if name.startswith("Image!"))
    assert image["imageTopic"] == ros_topic("rt/camera/jpeg") == ros_topic("camera/jpeg")
    assert list(image["annotations"]) == [ros_topic("rt/model/visualization")]
    raw = next(config for name, config in panels.items() if name.startswith("RawMessages!"))
    assert raw["topicPath"] == ros_topic("rt/model/boxes2d")
    plot = next(config for name, config in panels.items() if name.startswith("Plot!"))
    detect = {field.name: field.type for field in message_definitions()["edgefirst_msgs/msg/Detect"].fields}
    for path in plot["paths"]:
        topic, field, part = path["value"].split(".")
        assert topic == "/model/boxes2d" and detect[field] == "builtin_interfaces/Time" and part == "nanosec"


def test_the_readme_lists_every_flag() -> None:
    from edgenode.foxglove.cli import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Foxglove Studio"):readme.index("## Running on the board")]
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}" in section, flag
