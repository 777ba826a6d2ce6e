"""The MCAP adapter against the mcap package's own readers: ros2 profile, chunks, compression, and what a
file cut short (kill -9) still gives back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import edgenode.messages as m
from edgenode.adapters.mcap_file import McapFile
from edgenode.messages.ros2msg import complete_definition
from edgenode.resources import message_texts
from tests.helpers.mcap_files import read_complete_chunks, read_finished

TEXTS = message_texts()
DETECT, INFO = "edgefirst_msgs/msg/Detect", "sensor_msgs/msg/CameraInfo"


def write_some(file: McapFile, first: int, count: int) -> list[int]:
    stamps = []
    detect = file.channel("rt/model/boxes2d", "/model/boxes2d", DETECT, complete_definition(DETECT, TEXTS))
    info = file.channel("rt/camera/info", "/camera/info", INFO, complete_definition(INFO, TEXTS))
    for index in range(first, first + count):
        stamp = m.Time(1_800_000_000 + index, 7)
        file.write(detect, stamp.to_nanos(), m.encode(m.Detect(m.Header(stamp, "camera"),
                                                               boxes=[m.Box(label=f"box{index}")])), stamp.to_nanos())
        file.write(info, stamp.to_nanos(), m.encode(m.CameraInfo(m.Header(stamp), 480, 640)), stamp.to_nanos())
        stamps.append(stamp.to_nanos())
    return stamps


@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
def test_a_closed_file_is_indexed_ros2_and_decodes(tmp_path: Path, compression: str) -> None:
    path = tmp_path / "run.mcap"
    file = McapFile(path, compression=compression, chunk_bytes=4096)
    stamps = write_some(file, 0, 20)
    file.flush()
    stamps += write_some(file, 20, 20)
    file.close()
    header, summary, messages = read_finished(path)
    assert header.profile == "ros2" and header.library.startswith("edgenode ")
    assert summary.statistics.message_count == 80 and len(summary.chunk_indexes) >= 2
    assert {index.compression for index in summary.chunk_indexes} == {"" if compression == "none" else compression}
    assert {(s.name, s.encoding) for s in summary.schemas.values()} == {(DETECT, "ros2msg"), (INFO, "ros2msg")}
    assert {(c.topic, c.message_encoding) for c in summary.channels.values()} == {("/model/boxes2d", "cdr"),
                                                                                   ("/camera/info", "cdr")}
    detects = [r for r in messages if r.topic == "/model/boxes2d"]
    assert [r.log_time_ns for r in detects] == stamps
    assert [r.decoded.boxes[0].label for r in detects] == [f"box{i}" for i in range(40)]
    assert all(r.decoded.width == 640 for r in messages if r.topic == "/camera/info")


def test_complete_chunks_of_an_unfinished_file_read_back(tmp_path: Path) -> None:
    """What the OS holds after a kill -9: the header and every chunk flush() (or the size limit) closed."""
    path = tmp_path / "run.mcap"
    file = McapFile(path, chunk_bytes=4096)
    write_some(file, 0, 10)
    file.flush()
    write_some(file, 10, 5)  # an open chunk: not in the file yet
    killed = tmp_path / "killed.mcap"
    shutil.copyfile(path, killed)  # the file as a kill -9 now would leave it
    file.close()
    found, ended = read_complete_chunks(killed)
    assert len(found) == 20 and [r.decoded.boxes[0].label for r in found if r.topic == "/model/boxes2d"] == [
        f"box{i}" for i in range(10)]
    assert ended.startswith("EndOfFile")  # no footer: the reader stops at the cut, after every complete chunk
    cut = tmp_path / "cut.mcap"
    data = killed.read_bytes()
    cut.write_bytes(data[:len(data) // 2])  # killed in the middle of writing its only chunk
    found, ended = read_complete_chunks(cut)
    assert ended and not found


def test_chunks_the_writer_closes_by_size_reach_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    file = McapFile(path, chunk_bytes=1024)  # the writer's own backstop closes chunks at 4 KiB
    write_some(file, 0, 100)
    assert file.size == path.stat().st_size > 4096
    found, _ = read_complete_chunks(path)
    assert len(found) >= 50
    file.close()


def test_an_existing_recording_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        McapFile(path)
    assert path.read_bytes() == b"precious"


def test_abandon_closes_without_a_footer(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    file = McapFile(path)
    write_some(file, 0, 3)
    file.flush()
    file.abandon()
    found, ended = read_complete_chunks(path)
    assert len(found) == 6 and ended.startswith("EndOfFile")
