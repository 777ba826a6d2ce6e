"""edgenode-demo and edgenode-view as a user meets them: bad flags, dying children, signals, JSON output."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import PYTHON
from tests.helpers.timing import scaled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG cache with the demo model already built (so each test starts its processes at once)."""
    from edgenode.tools.demo.cli import demo_model

    folder = tmp_path_factory.mktemp("cache")
    demo_model(folder / "edgenode")
    return folder


def demo(cache: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-m", "edgenode.tools.demo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "XDG_CACHE_HOME": str(cache)})


def children_of(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def first_json_line(process: subprocess.Popen[str]) -> str:
    """The first line on ``process``'s stdout that is a JSON object (within a scaled deadline)."""
    import selectors

    assert process.stdout is not None
    deadline = time.monotonic() + scaled(60)
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = process.stdout.readline()
                if line.startswith("{"):
                    return line
                assert line, f"the demo exited with {process.wait()} before a frame"
    raise AssertionError("no frame from the demo")


@pytest.fixture
def leftovers() -> Iterator[set[int]]:
    """Pids a test saw; any still alive at the end are killed (a failing test must not leave orphans)."""
    pids: set[int] = set()
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGKILL", "SIGINT"])
def test_the_camera_and_node_die_with_the_demo_whatever_the_signal(cache: Path, signum: signal.Signals,
                                                                   leftovers: set[int]) -> None:
    """SIGTERM to the demo exited 143 and left its camera and node running, adopted by PID 1."""
    process = demo(cache, "--json")
    try:
        first_json_line(process)  # the first frame: camera and node are up and talking
        children = children_of(process.pid)
        leftovers.update(children)
        assert len(children) == 2
        process.send_signal(signum)
        process.communicate(timeout=scaled(40))  # the demo stops the node, then the camera: 5 s each at most
        deadline = time.monotonic() + scaled(20)
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if alive(pid)], "children outlived the demo"
        if signum != signal.SIGKILL:
            assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize(("args", "message"), [
    (["--size", "garbage"], "--size: expected WIDTHxHEIGHT"),
    (["--fps", "0"], "--fps: must be a number of frames per second in (0, 1000]"),
    (["--fps", "nan"], "--fps: must be a number of frames per second in (0, 1000]"),
    (["--objects", "9"], "--objects: must be 1..8"),
    (["--frames", "-1"], "--frames: must be 0 (until stopped) or more"),
    (["--model", "/nonexistent.tflite"], "--model /nonexistent.tflite: no such file"),
])
def test_bad_flags_fail_at_once_with_one_line(cache: Path, args: list[str], message: str) -> None:
    """Each of these printed the child's line, then waited 60 s before exiting 1."""
    started = time.monotonic()
    process = demo(cache, *args)
    _, err = process.communicate(timeout=scaled(30))
    assert process.returncode == 2
    assert message in err and err.count("\n") <= 2, err
    assert time.monotonic() - started < scaled(10)


def test_a_child_that_dies_ends_the_demo_at_once_with_its_line(cache: Path, tmp_path: Path,
                                                               leftovers: set[int]) -> None:
    """A node that cannot start (here a model file that is no model) is reported now, not after 60 s."""
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all" * 8)
    started = time.monotonic()
    process = demo(cache, "--model", str(garbage))
    _, err = process.communicate(timeout=scaled(40))
    elapsed = time.monotonic() - started
    assert process.returncode == 1
    assert "is not a TFLite model" in err and "edgenode-demo: the node exited with 1" in err, err
    assert elapsed < scaled(20), f"took {elapsed:.1f} s"


def test_a_camera_that_dies_is_reported_at_once(cache: Path, leftovers: set[int]) -> None:
    """A camera failure was never reported: the view waited 60 s for frames, then blamed nothing."""
    process = demo(cache, "--json")
    try:
        first_json_line(process)
        children = children_of(process.pid)
        leftovers.update(children)
        camera = next(pid for pid in children if "edgenode.tools.camera" in Path(f"/proc/{pid}/cmdline").read_text())
        os.kill(camera, signal.SIGKILL)
        started = time.monotonic()
        _, err = process.communicate(timeout=scaled(40))
        assert process.returncode == 1
        assert "edgenode-demo: the camera exited with -9" in err, err
        assert time.monotonic() - started < scaled(20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_json_mode_prints_only_json_on_stdout(cache: Path) -> None:
    process = demo(cache, "--json", "--frames", "5")
    out, err = process.communicate(timeout=scaled(60))
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 5 and all(isinstance(json.loads(line), dict) for line in lines), out
    assert "edgenode-demo: 5 frames in" in err and "model: edgenode-shapes-demo" in err


# -- edgenode-view ------------------------------------------------------------------------------


def view(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "edgenode.tools.viewer", "--no-multicast-scouting", *args],
                          capture_output=True, text=True, timeout=scaled(30), check=False)


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "-5"], "--timeout: must be a number of seconds above 0, got '-5'"),
    (["--timeout", "nan"], "--timeout: must be a number of seconds above 0, got 'nan'"),
    (["--timeout", "inf"], "--timeout: must be a number of seconds above 0, got 'inf'"),
    (["--frames", "-1"], "--frames: must be 0 (until stopped) or more, got '-1'"),
])
def test_viewer_refuses_careless_values(args: list[str], message: str) -> None:
    result = view(*args)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_viewer_help_says_what_every_flag_does() -> None:
    result = subprocess.run([PYTHON, "-m", "edgenode.tools.viewer", "--help"], capture_output=True, text=True,
                            check=True)
    assert "``" not in result.stdout
    from edgenode.tools.viewer import build_parser

    for action in build_parser()._actions:
        assert action.help, action.option_strings


def test_viewer_json_prints_only_json_on_stdout() -> None:
    """The ``model: ...`` line went to stdout among the JSON records."""
    import zenoh

    import edgenode.messages as m
    from tests.helpers.processes import endpoint, free_port

    port = free_port()
    config = zenoh.Config()
    config.insert_json5("listen/endpoints", json.dumps([endpoint(port)]))
    config.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(config)
    process = subprocess.Popen([PYTHON, "-m", "edgenode.tools.viewer", "--json", "--frames", "3", "--connect",
                                endpoint(port), "--no-multicast-scouting"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        info = m.encode(m.ModelInfo(model_name="demo-model"))
        detect = m.encode(m.Detect(m.Header(m.Time(1, 0), "camera"), boxes=[]))
        deadline = time.monotonic() + scaled(30)
        while process.poll() is None and time.monotonic() < deadline:
            session.put("rt/model/info", info)
            session.put("rt/model/boxes2d", detect)
            time.sleep(0.05)
        out, err = process.communicate(timeout=scaled(10))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        session.close()
    assert process.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3 and all(not math.isnan(r["stamp"]) for r in records)
    assert "model: demo-model" in err
