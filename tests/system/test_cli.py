"""The command line: every EdgeFirst flag and env var, precedence, bools, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.cli import OPTIONS, UsageError, build_parser, main, parse_bool, parse_config

REFERENCE_FLAGS = {  # EdgeFirst Model Node 2.7 flags plus the 2.8 additions, with their env vars
    "--camera-topic": "CAMERA_TOPIC", "--detect-topic": "DETECT_TOPIC", "--info-topic": "INFO_TOPIC",
    "--mask-topic": "MASK_TOPIC", "--mask-compressed-topic": "MASK_COMPRESSED_TOPIC",
    "--output-topic": "OUTPUT_TOPIC", "--model": "MODEL", "--edgefirst-config": "EDGEFIRST_CONFIG",
    "--labels": "LABELS", "--engine": "ENGINE", "--delegate": "DELEGATE", "--threshold": "THRESHOLD",
    "--iou": "IOU", "--max-boxes": "MAX_BOXES", "--label-offset": "LABEL_OFFSET",
    "--decoder-model": "DECODER_MODEL", "--track": "TRACK", "--track-extra-lifespan": "TRACK_EXTRA_LIFESPAN",
    "--track-high-conf": "TRACK_HIGH_CONF", "--track-score": "TRACK_SCORE", "--track-iou": "TRACK_IOU",
    "--track-update": "TRACK_UPDATE", "--visualization": "VISUALIZATION", "--visual-topic": "VISUAL_TOPIC",
    "--camera-info-topic": "CAMERA_INFO_TOPIC", "--mask-compression": "MASK_COMPRESSION",
    "--mask-compression-level": "MASK_COMPRESSION_LEVEL", "--mask-classes": "MASK_CLASSES",
    "--classes": "CLASSES", "--ssd-model": "SSD_MODEL", "--tracy": "TRACY", "--mode": "MODE",
    "--connect": "CONNECT", "--listen": "LISTEN", "--no-multicast-scouting": "NO_MULTICAST_SCOUTING",
}
ENV = {"MODEL": "yolo.tflite"}


def test_help_lists_every_reference_flag_with_its_env() -> None:
    text = " ".join(build_parser().format_help().split())
    for flag, env in REFERENCE_FLAGS.items():
        assert flag in text, flag
        option = next(o for o in OPTIONS if flag in o.flags)
        assert option.env == env
        assert f"env {env}" in text
    assert "-m FILE, --model FILE" in text and "-t SCORE, --threshold SCORE" in text and "-i IOU, --iou IOU" in text


def test_console_script_help_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "edgenode", "--help"], capture_output=True, text=True, check=True)
    assert "--track-high-conf" in result.stdout


def test_defaults_are_the_27_topic_set() -> None:
    config = parse_config([], ENV)
    topics = config.topics
    assert (topics.camera, topics.detect, topics.info, topics.mask, topics.mask_compressed, topics.visual,
            topics.camera_info, topics.output) == (
        "rt/camera/dma", "rt/model/boxes2d", "rt/model/info", "rt/model/mask", "rt/model/mask_compressed",
        "rt/model/visualization", "rt/camera/info", "")
    assert (config.decode.threshold, config.decode.iou, config.decode.max_boxes, config.decode.label_offset) == (
        0.45, 0.45, 100, 0)
    track = config.track
    assert (track.enabled, track.extra_lifespan, track.high_conf, track.score, track.iou, track.update) == (
        False, 0.5, 0.7, 0.1, 0.25, 0.25)
    assert (config.mask.compression, config.mask.compression_level, config.visual.labels) == (False, 1, "label")
    assert config.model.engine == "npu" and config.zenoh.mode is None and config.zenoh.multicast_scouting
    assert config.zenoh.shared_memory is False and config.preprocess.max_frame_bytes == 4096 * 3072 * 4


CASES: list[tuple[list[str], dict[str, str], Any, Any]] = [
    (["--threshold", "0.3"], {"THRESHOLD": "0.3"}, lambda c: c.decode.threshold, 0.3),
    (["-t", "0.3"], {}, lambda c: c.decode.threshold, 0.3),
    (["-i", "0.6"], {"IOU": "0.6"}, lambda c: c.decode.iou, 0.6),
    (["--max-boxes", "7"], {"MAX_BOXES": "7"}, lambda c: c.decode.max_boxes, 7),
    (["--label-offset", "1"], {"LABEL_OFFSET": "1"}, lambda c: c.decode.label_offset, 1),
    (["--classes", "person", "car"], {"CLASSES": "person car"}, lambda c: c.decode.classes, ("person", "car")),
    (["--classes", "traffic light,person"], {"CLASSES": "traffic light, person"}, lambda c: c.decode.classes,
     ("traffic light", "person")),
    (["--track"], {"TRACK": "true"}, lambda c: c.track.enabled, True),
    (["--track", "yes"], {"TRACK": "1"}, lambda c: c.track.enabled, True),
    (["--track", "no"], {"TRACK": ""}, lambda c: c.track.enabled, False),
    (["--track-extra-lifespan", "2"], {"TRACK_EXTRA_LIFESPAN": "2"}, lambda c: c.track.extra_lifespan, 2.0),
    (["--track-high-conf", "0.6"], {"TRACK_HIGH_CONF": "0.6"}, lambda c: c.track.high_conf, 0.6),
    (["--track-score", "0.2"], {"TRACK_SCORE": "0.2"}, lambda c: c.track.score, 0.2),
    (["--track-iou", "0.3"], {"TRACK_IOU": "0.3"}, lambda c: c.track.iou, 0.3),
    (["--track-update", "0.5"], {"TRACK_UPDATE": "0.5"}, lambda c: c.track.update, 0.5),
    (["--visualization"], {"VISUALIZATION": "TRUE"}, lambda c: c.visual.enabled, True),
    (["--labels", "track"], {"LABELS": "track"}, lambda c: c.visual.labels, "track"),
    (["--mask-compression"], {"MASK_COMPRESSION": "yes"}, lambda c: c.mask.compression, True),
    (["--mask-compression-level", "-3"], {"MASK_COMPRESSION_LEVEL": "-3"}, lambda c: c.mask.compression_level, -3),
    (["--mask-classes", "0", "2"], {"MASK_CLASSES": "0 2"}, lambda c: c.mask.classes, (0, 2)),
    (["--engine", "cpu"], {"ENGINE": "cpu"}, lambda c: c.model.engine, "cpu"),
    (["--delegate", "vx"], {"DELEGATE": "vx"}, lambda c: c.model.delegate, "vx"),
    (["--decoder-model", "yolov5"], {"DECODER_MODEL": "yolov5"}, lambda c: c.model.decoder, "yolov5"),
    (["--ssd-model"], {"SSD_MODEL": "1"}, lambda c: c.model.ssd, True),
    (["--edgefirst-config", "a.yaml"], {"EDGEFIRST_CONFIG": "a.yaml"}, lambda c: str(c.model.edgefirst_config),
     "a.yaml"),
    (["--tracy"], {"TRACY": "true"}, lambda c: c.log.profile, True),
    (["--mode", "client"], {"MODE": "client"}, lambda c: c.zenoh.mode, "client"),
    (["--connect", "tcp/1.2.3.4:7447", "--connect", "udp/5.6.7.8:7447"],
     {"CONNECT": "tcp/1.2.3.4:7447,udp/5.6.7.8:7447"}, lambda c: c.zenoh.connect,
     ("tcp/1.2.3.4:7447", "udp/5.6.7.8:7447")),
    (["--listen", "tcp/0.0.0.0:7447"], {"LISTEN": "tcp/0.0.0.0:7447"}, lambda c: c.zenoh.listen,
     ("tcp/0.0.0.0:7447",)),
    (["--no-multicast-scouting"], {"NO_MULTICAST_SCOUTING": "true"}, lambda c: c.zenoh.multicast_scouting, False),
    (["--cfg", 'namespace:"cam1"'], {"ZENOH_CFG": 'namespace:"cam1"'}, lambda c: c.zenoh.overrides,
     (("namespace", '"cam1"'),)),
    (["--detect-topic", ""], {"DETECT_TOPIC": ""}, lambda c: c.topics.detect, ""),
    (["--output-topic", "rt/model/output"], {"OUTPUT_TOPIC": "rt/model/output"}, lambda c: c.topics.output,
     "rt/model/output"),
    (["--camera-topic", "rt/cam2/dma"], {"CAMERA_TOPIC": "rt/cam2/dma"}, lambda c: c.topics.camera, "rt/cam2/dma"),
    (["--resize", "letterbox"], {"RESIZE": "letterbox"}, lambda c: c.preprocess.resize, "letterbox"),
    (["--log-level", "debug"], {"LOG_LEVEL": "debug"}, lambda c: c.log.level, "debug"),
    (["--threads", "2"], {"NUM_THREADS": "2"}, lambda c: c.model.threads, 2),
    (["--max-frame-bytes", "1000000"], {"MAX_FRAME_BYTES": "1000000"}, lambda c: c.preprocess.max_frame_bytes,
     1000000),
    (["--zenoh-shared-memory"], {"ZENOH_SHARED_MEMORY": "true"}, lambda c: c.zenoh.shared_memory, True),
]


@pytest.mark.parametrize(("argv", "env", "get", "expected"), CASES, ids=[" ".join(c[0]) or "empty" for c in CASES])
def test_flag_and_env_give_the_same_value(argv: list[str], env: dict[str, str], get: Any, expected: Any) -> None:
    assert get(parse_config(argv, ENV)) == expected
    if env:
        assert get(parse_config([], {**ENV, **env})) == expected


def test_flag_wins_over_env() -> None:
    assert parse_config(["--threshold", "0.2"], {**ENV, "THRESHOLD": "0.9"}).decode.threshold == 0.2
    assert parse_config(["--model", "b.tflite"], ENV).model.path == Path("b.tflite")


def test_empty_env_is_unset_for_values() -> None:
    assert parse_config([], {**ENV, "THRESHOLD": "", "MAX_BOXES": ""}).decode.max_boxes == 100


def test_rust_log_sets_level_when_log_level_is_unset() -> None:
    assert parse_config([], {**ENV, "RUST_LOG": "debug"}).log.level == "debug"
    assert parse_config([], {**ENV, "RUST_LOG": "edgefirst_model=warn"}).log.level == "warning"


@pytest.mark.parametrize("word", ["", "false", "0", "no", "False", "NO"])
def test_false_words(word: str) -> None:
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["true", "1", "yes", "TRUE", "Yes"])
def test_true_words(word: str) -> None:
    assert parse_bool(word) is True


BAD: list[tuple[list[str], dict[str, str], str]] = [
    (["--threshold", "1.5"], {}, "--threshold must be between 0 and 1"),
    ([], {"THRESHOLD": "abc"}, "THRESHOLD (for --threshold): expected a number"),
    ([], {"THRESHOLD": "2"}, "(from THRESHOLD)"),
    (["--iou", "-0.1"], {}, "--iou must be between 0 and 1"),
    (["--max-boxes", "0"], {}, "--max-boxes must be at least 1"),
    (["--max-boxes", "ten"], {}, "expected an integer"),
    (["--track", "maybe"], {}, "--track: expected true/false"),
    ([], {"TRACK": "maybe"}, "TRACK (for --track)"),
    (["--labels", "nope"], {}, "invalid choice"),
    ([], {"LABELS": "nope"}, "LABELS (for --labels): 'nope' is not one of"),
    (["--mask-compression-level", "23"], {}, "between -7 and 22"),
    (["--mask-classes", "a"], {}, "expected an integer"),
    (["--edgefirst-config", "cfg.txt"], {}, "must be a .yaml, .yml or .json"),
    (["--mode", "satellite"], {}, "invalid choice"),
    (["--cfg", "novalue"], {}, "expected KEY:VALUE"),
    (["--cfg", "/abs:1"], {}, "must be a path"),
    (["--camera-topic", ""], {}, "--camera-topic must not be empty"),
    (["--detect-topic", "rt/a b"], {}, "not a valid Zenoh key expression"),
    (["--track-update", "0"], {}, "--track-update must be in (0, 1]"),
    (["--no-such-flag"], {}, "unrecognized arguments"),
    (["--max-frame-bytes", "0"], {}, "--max-frame-bytes must be at least 1"),
    (["--connect", "tcp/127.0.0.1:99999"], {}, "--connect tcp/127.0.0.1:99999: the port must be a number in "
                                               "1..65535, got '99999'"),
    ([], {"LISTEN": "tcp/0.0.0.0"}, "--listen tcp/0.0.0.0: the port must be a number in 0..65535"),
    (["--connect", "127.0.0.1:7447"], {}, "--connect '127.0.0.1:7447' is not a zenoh endpoint"),
]


@pytest.mark.parametrize(("argv", "env", "message"), BAD, ids=[" ".join(b[0]) or str(b[1]) for b in BAD])
def test_bad_values_name_the_flag(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_config(argv, {**ENV, **env})
    assert message in str(caught.value)


def test_missing_model_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no model"):
        parse_config([], {})
    with pytest.raises(UsageError, match="no model"):
        parse_config([], {"MODEL": ""})


def test_bad_value_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL", "yolo.tflite")
    assert main(["--threshold", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgenode: error: --threshold")


def test_bad_value_exits_2_from_a_real_process() -> None:
    result = subprocess.run([sys.executable, "-m", "edgenode", "-m", "x.tflite", "--iou", "nan?"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--iou" in result.stderr


def test_cache_dir_defaults_follow_systemd_then_xdg() -> None:
    assert parse_config([], {**ENV, "CACHE_DIRECTORY": "/var/cache/edgenode"}).model.cache_dir == Path(
        "/var/cache/edgenode")
    assert parse_config([], {**ENV, "XDG_CACHE_HOME": "/x"}).model.cache_dir == Path("/x/edgenode")
    assert parse_config(["--cache-dir", "/c"], ENV).model.cache_dir == Path("/c")


def test_readme_flag_table_lists_every_flag() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for option in OPTIONS:
        assert f"`{option.flags[-1]}`" in readme and f"`{option.env}`" in readme, option.flags[-1]


# -- issue 11: careless values --------------------------------------------------------------------

FLOAT_OPTIONS = [option for option in OPTIONS if option.convert is not None and option.convert.__name__ == "convert"
                 and option.default.__class__ is float]


def test_every_float_flag_is_covered() -> None:
    assert {o.flags[-1] for o in FLOAT_OPTIONS} >= {"--threshold", "--iou", "--track-extra-lifespan",
                                                    "--track-high-conf", "--track-score", "--track-iou",
                                                    "--track-update", "--stats-interval"}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
@pytest.mark.parametrize("flag", [o.flags[-1] for o in FLOAT_OPTIONS])
def test_float_flags_must_be_finite(flag: str, value: str) -> None:
    option = next(o for o in OPTIONS if o.flags[-1] == flag)
    with pytest.raises(UsageError, match=rf"^{flag}: expected a finite number, got '{value}'$"):
        parse_config([f"{flag}={value}"], ENV)
    assert option.env is not None
    with pytest.raises(UsageError, match=rf"^{option.env} \(for {flag}\): expected a finite number"):
        parse_config([], {**ENV, option.env: value})


@pytest.mark.parametrize(("argv", "message"), [
    (["--track-extra-lifespan", "1e300"], "--track-extra-lifespan must be between 0 and 3600 seconds, got 1e+300"),
    (["--track-extra-lifespan", "-1"], "--track-extra-lifespan must be between 0 and 3600 seconds, got -1.0"),
    (["--stats-interval", "1e300"], "--stats-interval must be more than 0 and at most 86400 seconds, got 1e+300"),
    (["--stats-interval", "0"], "--stats-interval must be more than 0 and at most 86400 seconds, got 0.0"),
])
def test_float_flags_are_checked_in_range(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_config(argv, ENV)
    assert str(caught.value) == message


def test_a_non_finite_float_exits_2_from_a_real_process() -> None:
    result = subprocess.run([sys.executable, "-m", "edgenode", "-m", "x.tflite"], capture_output=True, text=True,
                            check=False, env={"TRACK_EXTRA_LIFESPAN": "nan", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr == ("edgenode: error: TRACK_EXTRA_LIFESPAN (for --track-extra-lifespan): expected a "
                             "finite number, got 'nan' (see edgenode --help)\n")


RUST_LOGS = [  # RUST_LOG as env_logger / tracing read it: (value, our level, zenoh's own directives)
    ("debug", "debug", ""),
    ("edgefirst_model=warn", "warning", ""),
    ("zenoh=trace,foo", "info", "zenoh=trace"),
    ("info,zenoh=warn,edgefirst=debug,off", "debug", "zenoh=warn"),
    ("info,zenoh=warn", "info", "zenoh=warn"),
    ("warn", "warning", ""),
    ("off", "critical", ""),
    ("error,edgenode=trace", "debug", ""),
    ("TRACE", "debug", ""),
    ("zenoh::net=debug,zenoh_transport=info", "info", "zenoh::net=debug,zenoh_transport=info"),
    ("zenoh", "info", "zenoh=trace"),
    (" info , zenoh=error ", "info", "zenoh=error"),
    ("edgefirst_model=info,edgefirst=error", "info", ""),
    ("3", "info", ""),
    ("info/some.*regex", "info", ""),
]


@pytest.mark.parametrize(("value", "level", "zenoh"), RUST_LOGS, ids=[r[0] for r in RUST_LOGS])
def test_rust_log_is_read_as_its_syntax_means(value: str, level: str, zenoh: str) -> None:
    log = parse_config([], {**ENV, "RUST_LOG": value}).log
    assert (log.level, log.zenoh) == (level, zenoh)


def test_log_level_beats_rust_log_for_our_level_but_zenoh_still_follows_it() -> None:
    log = parse_config(["--log-level", "error"], {**ENV, "RUST_LOG": "debug,zenoh=warn"}).log
    assert (log.level, log.zenoh) == ("error", "zenoh=warn")
    log = parse_config([], {**ENV, "LOG_LEVEL": "warning", "RUST_LOG": "debug"}).log
    assert (log.level, log.zenoh) == ("warning", "")


def test_a_bad_rust_log_directive_is_ignored_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    log = parse_config([], {**ENV, "RUST_LOG": "info,zenoh=loud,edgenode=chatty"}).log
    assert (log.level, log.zenoh) == ("info", "")
    assert capsys.readouterr().err == ("edgenode: warning: RUST_LOG: ignoring 'zenoh=loud', 'edgenode=chatty' "
                                       "(not a level: off, error, warn, info, debug, trace)\n")


def test_rust_log_with_zenoh_targets_starts_the_node_and_zenoh_logs(tmp_path: Path) -> None:
    """Valid Rust settings the EdgeFirst unit files may carry used to exit 2; zenoh=info shows zenoh's own lines."""
    result = subprocess.run([sys.executable, "-m", "edgenode", "-m", str(tmp_path / "missing.tflite"),
                             "--no-multicast-scouting", "--log-format", "json"], capture_output=True, text=True,
                            check=False, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                          "RUST_LOG": "info,zenoh=info,edgefirst=debug,off"})
    assert result.returncode == 1, result.stderr  # the missing model, not the log setting
    assert "missing.tflite: no such file" in result.stderr
    assert "zenoh::net::runtime" in result.stdout  # zenoh's own INFO lines (zenoh prints them on stdout)


@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgenode.tools.demo.shapes_model import build_shapes_model

    path = tmp_path_factory.mktemp("model") / "shapes.tflite"
    path.write_bytes(build_shapes_model())
    return path


def _mapped(pid: int, name: str) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return name in maps.read()
    except OSError:
        return False


@pytest.mark.parametrize("command", [["-m", "edgenode"], ["-c", "import sys; from edgenode.entry import main; "
                                                                 "sys.exit(main())"]], ids=["module", "script"])
@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_start_up_exits_0_without_a_traceback(shapes_model: Path, command: list[str],
                                                            signum: int) -> None:
    """SIGINT while modules still import gave a KeyboardInterrupt traceback and exit 130 (SIGTERM: 143)."""
    import signal

    from tests.helpers.timing import scaled

    process = subprocess.Popen([sys.executable, *command, "--model", str(shapes_model), "--no-multicast-scouting",
                                "--listen", "tcp/127.0.0.1:0", "--log-format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + scaled(30)
        # numpy loads after the command line is read, while the daemon's modules import: deep in start-up
        while not _mapped(process.pid, "_multiarray_umath") and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.002)
        process.send_signal(signal.Signals(signum))
        _, err = process.communicate(timeout=scaled(30))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
