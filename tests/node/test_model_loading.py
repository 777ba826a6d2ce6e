"""load_model: file metadata, config override, labels, description and decoder, on built models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgenode.config import DecodeSettings, ModelSettings
from edgenode.core.model_config import ModelError
from edgenode.node.model_loading import load_model
from edgenode.tools.tflite_builder import ModelBuilder, model_metadata


def detector(tmp_path: Path, files: dict[str, str], name: str = "street-detector", outputs: int = 6) -> Path:
    """A model with an image input and a constant YOLO head: one person box, one car box."""
    builder = ModelBuilder()
    image = builder.add_tensor("image", [1, 32, 32, 3], np.uint8)
    head = np.zeros((1, 4 + 2, 21), np.float32)          # 21 anchors: a 32x32 input at strides 8, 16, 32
    head[0, :, 3] = [0.25, 0.25, 0.25, 0.25, 0.9, 0.0]     # class 0
    head[0, :, 4] = [0.3, 0.25, 0.25, 0.25, 0.0, 0.8]      # class 1, overlapping the first
    if outputs != 6:
        head = np.zeros((1, outputs), np.float32)
    out = builder.add_tensor("Identity", head.shape, np.float32, data=head)
    builder.set_io([image], [out])
    if name:
        builder.add_metadata("TFLITE_METADATA", model_metadata(name))
    for file_name, text in files.items():
        builder.add_file(file_name, text)
    path = tmp_path / "detector.tflite"
    path.write_bytes(builder.build())
    return path


CONFIG = "nms: class_aware\noutputs:\n  - {type: detection, decoder: ultralytics, shape: [1, 6, 21]}\n"


def test_load_describe_and_decode(tmp_path: Path) -> None:
    path = detector(tmp_path, {"edgefirst.yaml": CONFIG, "labels.txt": "background\nperson\ncar\n"})
    loaded = load_model(ModelSettings(path, engine="cpu", threads=1), DecodeSettings(threshold=0.5, label_offset=1))
    info = loaded.description
    assert (info.name, info.model_format, info.model_types) == ("street-detector", "TFLite", "Detection")
    assert info.labels == ("background", "person", "car") and info.label_for(0) == "person"
    assert (info.input_shape, info.input_type, info.output_shape, info.output_type) == ((1, 32, 32, 3), 2,
                                                                                         (1, 6, 21), 8)
    assert loaded.layout.nms == "aware" and "edgefirst.yaml embedded" in loaded.layout.source
    loaded.runtime.input_view()[...] = 0
    loaded.runtime.invoke()
    found = loaded.decoder.decode(loaded.runtime.output_views())
    assert found.classes.tolist() == [0, 1]                # class-aware: the overlapping car box survives
    assert [info.label_for(c) for c in found.classes] == ["person", "car"]
    np.testing.assert_allclose(found.boxes[0], [0.125, 0.125, 0.375, 0.375])


def test_config_file_overrides_the_embedded_one(tmp_path: Path) -> None:
    path = detector(tmp_path, {"edgefirst.yaml": CONFIG})
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"nms": "class_agnostic", "outputs": [{"type": "detection", "shape": [1, 6, 21]}]}))
    loaded = load_model(ModelSettings(path, edgefirst_config=override, engine="cpu"), DecodeSettings(threshold=0.5))
    assert loaded.layout.nms == "agnostic" and str(override) in loaded.layout.source
    assert loaded.description.labels == () and loaded.description.label_for(1) == "1"


def test_name_falls_back_to_the_file_name(tmp_path: Path) -> None:
    loaded = load_model(ModelSettings(detector(tmp_path, {}, name=""), engine="cpu"), DecodeSettings())
    assert loaded.description.name == "detector.tflite" and loaded.layout.kind == "yolo_det"


def test_undecodable_model_and_unknown_class_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"cannot tell how to decode this model: model outputs are Identity \[1, 10\]"):
        load_model(ModelSettings(detector(tmp_path, {}, outputs=10), engine="cpu"), DecodeSettings())
    path = detector(tmp_path, {"labels.txt": "person\ncar\n"})
    with pytest.raises(ModelError, match=r"--classes bus: not a label of this model \(labels: person, car\)"):
        load_model(ModelSettings(path, engine="cpu"), DecodeSettings(classes=("bus",)))


# -- issue 11: --classes and --mask-classes checked against the model once it is loaded --


def warnings_of(logs: list[dict[str, object]]) -> list[object]:
    return [log["event"] for log in logs if log["log_level"] == "warning"]


def test_classes_not_in_the_model_are_warned_naming_the_flag(tmp_path: Path) -> None:
    """``--classes Normal 7`` on a 2-class model kept a class 7 that never comes, without a word."""
    from structlog.testing import capture_logs

    path = detector(tmp_path, {"labels.txt": "Normal\nAbnormal\n"})
    with capture_logs() as logs:
        loaded = load_model(ModelSettings(path, engine="cpu", threads=1),
                            DecodeSettings(threshold=0.5, classes=("Normal", "7")))
    assert warnings_of(logs) == ["--classes 7: not a class of this model (labels: Normal, Abnormal); "
                                 "keeping only Normal"]
    loaded.runtime.input_view()[...] = 0
    loaded.runtime.invoke()
    assert loaded.decoder.decode(loaded.runtime.output_views()).classes.tolist() == [0]
    with pytest.raises(ModelError, match=r"--classes 7, 2: not a label of this model \(labels: Normal, Abnormal\)"):
        load_model(ModelSettings(path, engine="cpu", threads=1), DecodeSettings(classes=("7", "2")))


def test_class_indices_count_only_up_to_the_models_classes(tmp_path: Path) -> None:
    path = detector(tmp_path, {})  # no labels: classes are named by index, 0 and 1
    with pytest.raises(ModelError, match=r"--classes 2: not a label of this model \(labels: 0, 1\)"):
        load_model(ModelSettings(path, engine="cpu", threads=1), DecodeSettings(classes=("2",)))
    loaded = load_model(ModelSettings(path, engine="cpu", threads=1), DecodeSettings(threshold=0.5, classes=("1",)))
    loaded.runtime.input_view()[...] = 0
    loaded.runtime.invoke()
    assert loaded.decoder.decode(loaded.runtime.output_views()).classes.tolist() == [1]


def segmenter(tmp_path: Path, channels: int = 3) -> Path:
    """A model with an image input and a constant ModelPack-style semantic map [1, 160, 160, channels]."""
    builder = ModelBuilder()
    image = builder.add_tensor("image", [1, 160, 160, 3], np.uint8)
    out = builder.add_tensor("segmentation", [1, 160, 160, channels], np.float32,
                             data=np.zeros((1, 160, 160, channels), np.float32))
    builder.set_io([image], [out])
    path = tmp_path / "segmenter.tflite"
    path.write_bytes(builder.build())
    return path


def test_mask_classes_beyond_the_semantic_mask_are_warned_naming_the_flag(tmp_path: Path) -> None:
    """``--mask-classes 500`` published an all-zero mask channel, without a word."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        load_model(ModelSettings(segmenter(tmp_path), engine="cpu", threads=1), DecodeSettings(),
                   mask_classes=(0, 500, 3))
    assert warnings_of(logs) == ["--mask-classes 500, 3: the model's semantic mask has 3 class channels (0..2); "
                                 "those channels are published as zeros"]
    with capture_logs() as logs:
        load_model(ModelSettings(detector(tmp_path, {}), engine="cpu", threads=1), DecodeSettings(),
                   mask_classes=(1,))
    assert warnings_of(logs) == ["--mask-classes 1: this model has no semantic mask; nothing to select"]
    with capture_logs() as logs:
        load_model(ModelSettings(segmenter(tmp_path), engine="cpu", threads=1), DecodeSettings(), mask_classes=(2, 0))
    assert warnings_of(logs) == []


def test_a_model_of_two_frames_is_decoded_a_frame_at_a_time(tmp_path: Path) -> None:
    from edgenode.tools.demo.shapes_model import build_shapes_model

    path = tmp_path / "shapes2.tflite"
    path.write_bytes(build_shapes_model(batch=2))
    model = load_model(ModelSettings(path, engine="cpu", threads=1), DecodeSettings(), streams=2)
    assert model.runtime.inputs[0].shape == (2, 320, 320, 3)
    image = np.full((2, 320, 320, 3), 0.4, np.float32)
    image[1, 40:100, 30:120] = (0.86, 0.16, 0.16)  # a red rectangle in the second frame only
    model.runtime.set_input(image)
    model.runtime.invoke()
    outputs = model.runtime.output_views()
    first = model.decoder.decode([output[0:1] for output in outputs])
    second = model.decoder.decode([output[1:2] for output in outputs])
    assert len(first) == 0 and len(second) == 1
    np.testing.assert_allclose(second.boxes[0], np.array([30, 40, 120, 100]) / 320, atol=0.01)


@pytest.mark.parametrize(("setting", "expected"), [(1, "no line"), (2, "batch: 2 frames an invoke (--batch 2)"),
                                                   (0, "batch auto: 1 frame")])
def test_batch_choice_for_a_resizable_model(tmp_path: Path, setting: int, expected: str) -> None:
    from structlog.testing import capture_logs

    from edgenode.adapters.tflite import load_runtime
    from edgenode.node.model_loading import choose_batch
    from tests.helpers.models import conv_model

    path = conv_model(tmp_path / "conv.tflite")
    runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=1))
    with capture_logs() as logs:
        frames = choose_batch(runtime, setting, streams=3)
    lines = [log["event"] for log in logs if log["event"].startswith("batch")]
    if setting == 1:
        assert frames == 1 and not lines
    elif setting == 2:
        assert frames == 2 and lines == [expected] and runtime.inputs[0].shape[0] == 2
    else:
        assert len(lines) == 1 and lines[0].startswith(expected) and lines[0].endswith(" an invoke")
        assert frames in (1, 3) and runtime.inputs[0].shape[0] == frames  # what the measurement said, applied


def test_auto_resizes_no_model_on_a_delegate(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from edgenode.adapters.tflite import load_runtime
    from edgenode.node.model_loading import choose_batch
    from tests.helpers.models import conv_model

    path = conv_model(tmp_path / "conv.tflite")
    runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=1))
    runtime.delegate = "npu"  # as loaded on a delegate: a resize would compile a new graph there
    with capture_logs() as logs:
        assert choose_batch(runtime, 0, streams=2) == 1
    assert runtime.inputs[0].shape[0] == 1
    assert [log["event"] for log in logs] == ["batch: 1 frame an invoke (auto resizes no model on the npu delegate: "
                                              "export it with a batch, or ask with --batch)"]
    assert choose_batch(runtime, 2, streams=2) == 2  # asked for: resized


def test_one_stream_or_a_fixed_model_takes_one_frame(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from edgenode.adapters.tflite import load_runtime
    from edgenode.node.model_loading import choose_batch
    from edgenode.tools.demo.shapes_model import build_shapes_model

    path = tmp_path / "shapes.tflite"
    path.write_bytes(build_shapes_model())
    runtime = load_runtime(path, ModelSettings(path, engine="cpu", threads=1))
    assert choose_batch(runtime, 0, streams=1) == 1
    with capture_logs() as logs:
        assert choose_batch(runtime, 0, streams=2) == 1
    assert logs[0]["event"].startswith("batch: 1 frame an invoke (the model's input cannot take 2")
