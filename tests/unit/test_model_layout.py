"""Decoder config parsing, shape guessing and binding outputs to roles (by name and shape)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenode.core.model_config import ModelError, parse_config_text
from edgenode.core.model_layout import (
    ANCHOR_GRID_DET,
    MODELPACK_DET,
    MODELPACK_SEG,
    MODELPACK_SEGDET,
    YOLO_DET,
    YOLO_E2E_DET,
    YOLO_E2E_SEGDET,
    YOLO_SEGDET,
    YOLO_SPLIT_DET,
    YOLO_SPLIT_E2E_DET,
    YOLO_SPLIT_E2E_SEGDET,
    YOLO_SPLIT_SEGDET,
    model_input_size,
    resolve_layout,
)
from edgenode.core.shape_guess import anchor_cells
from edgenode.core.tensors import TensorSpec

IMAGE = TensorSpec("images", (1, 640, 640, 3), np.dtype(np.uint8), index=0)


def spec(shape: tuple[int, ...], name: str = "", dtype: type = np.float32, scale: float = 0.0,
         zero_point: int = 0) -> TensorSpec:
    return TensorSpec(name or f"out{shape}", shape, np.dtype(dtype), scale, zero_point)


def guess(*shapes: tuple[int, ...], **kwargs: object) -> str:
    return resolve_layout(None, [IMAGE], [spec(s, f"o{i}") for i, s in enumerate(shapes)], **kwargs).kind  # type: ignore[arg-type]


# ---- config ------------------------------------------------------------------------------------

def test_config_yaml_with_both_dshape_forms_and_quantization() -> None:
    config = parse_config_text("""
decoder_version: yolo11
nms: class_aware
outputs:
  - type: detection
    decoder: yolov8
    quantization: [0.5, -3]
    dshape: [{batch: 1}, {num_features: 84}, {num_boxes: 8400}]
  - type: protos
    dshape: [[batch, 1], [height, 160], [width, 160], [num_protos, 32]]
    unknown_key: ignored
""", "test.yaml")
    detection, protos = config.outputs
    assert (config.decoder_version, config.nms) == ("yolo11", "aware")
    assert detection.decoder == "ultralytics" and detection.shape == (1, 84, 8400)
    assert detection.dims == ("batch", "num_features", "num_boxes") and detection.quantization == (0.5, -3)
    assert protos.shape == (1, 160, 160, 32)


def test_config_json() -> None:
    config = parse_config_text('{"outputs": [{"type": "segmentation", "decoder": "modelpack", "shape": [1,8,8,3]}]}',
                               "x.json", json_format=True)
    assert config.outputs[0].decoder == "modelpack"


@pytest.mark.parametrize(("text", "message"), [
    ("outputs: []", "no 'outputs' list"),
    ("- a\n- b", "must be a mapping"),
    ("outputs: [{type: nonsense}]", "outputs[0] type must be one of"),
    ("outputs: [{type: detection, decoder: tensorflow}]", "decoder must be ultralytics or modelpack"),
    ("outputs: [{type: detection, dshape: [{rows: 3}]}]", "unknown dimension 'rows'"),
    ("outputs: [{type: detection, shape: [1, 2], dshape: [{batch: 1}, {num_boxes: 3}]}]", "disagrees"),
    ("outputs: [{type: detection}]\nnms: sometimes", "nms must be class_agnostic or class_aware"),
    ("outputs: [{type: detection}]\ndecoder_version: yolov9", "decoder_version must be one of"),
    ("outputs: [{type: detection, quantization: 3}]", "quantization must be [scale, zero_point]"),
    ("outputs: [\n  - type", "is not valid YAML"),
])
def test_config_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config_text(text, "edgefirst.yaml")


# ---- shape guessing ----------------------------------------------------------------------------

def test_anchor_cells() -> None:
    assert anchor_cells((640, 640)) == 8400
    assert anchor_cells((320, 256)) == 40 * 32 + 20 * 16 + 10 * 8
    assert model_input_size(IMAGE) == (640, 640)
    assert model_input_size(TensorSpec("nchw", (1, 3, 256, 320), np.dtype(np.float32))) == (320, 256)


@pytest.mark.parametrize(("shapes", "kind"), [
    ([(1, 84, 8400)], YOLO_DET),
    ([(1, 8400, 84)], YOLO_DET),                                  # transposed raw head: not end-to-end
    ([(1, 8400, 6)], YOLO_DET),                                   # 2-class transposed head
    ([(1, 300, 6)], YOLO_E2E_DET),                                # YOLO26 / NMS-included export
    ([(1, 160, 160, 32), (1, 116, 8400)], YOLO_SEGDET),           # protos first, as real exports do
    ([(1, 300, 38), (1, 160, 160, 32)], YOLO_E2E_SEGDET),
    ([(1, 4, 8400), (1, 80, 8400)], YOLO_SPLIT_DET),
    ([(1, 80, 8400), (1, 64, 8400)], YOLO_SPLIT_DET),              # raw DFL boxes
    ([(1, 4, 8400), (1, 160, 160, 32), (1, 32, 8400), (1, 80, 8400)], YOLO_SPLIT_SEGDET),
    ([(1, 300, 4), (1, 300, 1), (1, 300, 1)], YOLO_SPLIT_E2E_DET),
    ([(1, 300, 4), (1, 300, 1), (1, 300, 1), (1, 300, 32), (1, 160, 160, 32)], YOLO_SPLIT_E2E_SEGDET),
    ([(1, 84, 8400), (1, 32, 8400), (1, 160, 160, 32)], YOLO_SEGDET),   # two-way: separate coefficients
    ([(1, 1000, 1, 4), (1, 1000, 3)], MODELPACK_DET),
    ([(1, 480, 640, 4)], MODELPACK_SEG),
    ([(1, 4, 480, 640)], MODELPACK_SEG),
    ([(1, 1000, 1, 4), (1, 1000, 3), (1, 120, 160, 4)], MODELPACK_SEGDET),
    ([(1, 120, 160, 4), (1, 120, 160)], MODELPACK_SEG),
])
def test_guess_from_shapes(shapes: list[tuple[int, ...]], kind: str) -> None:
    assert guess(*shapes) == kind


def test_guess_yolov5_from_three_anchors_per_cell() -> None:
    layout = resolve_layout(None, [IMAGE], [spec((1, 25200, 85))])
    assert (layout.kind, layout.version, layout.num_classes) == (YOLO_DET, "yolov5", 80)


def test_metadata_end_to_end_hint_and_family_flag_decide() -> None:
    assert guess((1, 8400, 6), end_to_end=True) == YOLO_E2E_DET
    assert guess((1, 300, 6), end_to_end=False) == YOLO_DET
    assert guess((1, 300, 6), family="yolov8") == YOLO_DET
    assert guess((1, 8400, 6), family="yolo26") == YOLO_E2E_DET
    assert resolve_layout(None, [IMAGE], [spec((1, 84, 8400))], family="yolov5").num_classes == 79


def test_ssd_flag_reads_small_boxes_and_scores() -> None:
    with pytest.raises(ModelError):
        guess((1, 10, 1, 4), (1, 10, 3))
    assert guess((1, 10, 1, 4), (1, 10, 3), ssd=True) == MODELPACK_DET


def test_unknown_layout_lists_shapes_and_the_fix() -> None:
    with pytest.raises(ModelError) as error:
        resolve_layout(None, [IMAGE], [spec((1, 10), "weird", np.int8)])
    message = str(error.value)
    assert "weird [1, 10] int8" in message and "--edgefirst-config" in message and "--decoder-model" in message
    assert "\n" not in message


# ---- config binding ----------------------------------------------------------------------------

def test_outputs_bind_by_shape_not_position() -> None:
    config = parse_config_text("""
outputs:
  - {type: detection, shape: [1, 116, 8400]}
  - {type: protos, shape: [1, 160, 160, 32]}
""", "cfg")
    outputs = [spec((1, 160, 160, 32), "p", np.int8, 0.01, 3), spec((1, 116, 8400), "d", np.int8, 0.02, -5)]
    layout = resolve_layout(config, [IMAGE], outputs)
    assert layout.kind == YOLO_SEGDET and layout.num_classes == 80
    assert (layout.get("detection").index, layout.get("protos").index) == (1, 0)
    assert (layout.get("detection").scale, layout.get("detection").zero_point) == (0.02, -5)


def test_identical_shapes_bind_by_name() -> None:
    config = parse_config_text("""
decoder_version: yolo26
outputs:
  - {type: boxes, shape: [1, 300, 4]}
  - {type: scores, shape: [1, 300, 1], name: conf}
  - {type: classes, shape: [1, 300, 1], name: labels}
""", "cfg")
    outputs = [spec((1, 300, 1), "labels"), spec((1, 300, 4), "boxes"), spec((1, 300, 1), "conf")]
    layout = resolve_layout(config, [IMAGE], outputs)
    assert (layout.get("scores").index, layout.get("classes").index, layout.get("boxes").index) == (2, 0, 1)


def test_config_quantization_overrides_the_tensor() -> None:
    config = parse_config_text("outputs: [{type: detection, shape: [1, 6, 8400], quantization: [0.5, 7]}]", "cfg")
    layout = resolve_layout(config, [IMAGE], [spec((1, 6, 8400), "d", np.int8, 0.01, 0)])
    assert (layout.get("detection").scale, layout.get("detection").zero_point) == (0.5, 7)


def test_binding_views_are_canonical_and_zero_copy() -> None:
    config = parse_config_text("""
outputs:
  - {type: detection, dshape: [{batch: 1}, {num_boxes: 8400}, {num_features: 6}]}
""", "cfg")
    layout = resolve_layout(config, [IMAGE], [spec((1, 8400, 6))])
    raw = np.arange(8400 * 6, dtype=np.float32).reshape(1, 8400, 6)
    view = layout.get("detection").view([raw])
    assert view.shape == (6, 8400) and view[1, 2] == raw[0, 2, 1] and np.shares_memory(view, raw)


@pytest.mark.parametrize(("text", "outputs", "message"), [
    ("outputs: [{type: detection, shape: [1, 84, 8400]}]", [(1, 6, 8400)], "matches no model output"),
    ("outputs: [{type: scores}, {type: boxes}]", [(1, 4, 8400), (1, 80, 8400)], "could be several outputs"),
    ("outputs: [{type: detection, shape: [1, 4, 8400]}]", [(1, 4, 8400)], "too small"),
    ("outputs: [{type: detection, shape: [1,20,8400]}, {type: protos, shape: [1,160,160,32]}]",
     [(1, 20, 8400), (1, 160, 160, 32)], "too small for 4 box values, 32 mask coefficients"),
    ("outputs: [{type: detection, shape: [1,84,8400]}, {type: mask_coefficients, shape: [1,32,8400]},"
     " {type: protos, shape: [1,160,160,16]}]",
     [(1, 84, 8400), (1, 32, 8400), (1, 160, 160, 16)], "have 16 channels but each box has 32 mask"),
    ("outputs: [{type: detection, decoder: modelpack, shape: [1, 40, 40, 24]}]", [(1, 40, 40, 24)],
     "has no anchors"),
    ("outputs: [{type: boxes, decoder: modelpack, shape: [1,100,1,4]}, {type: scores, shape: [1,100,3]}]",
     [(1, 100, 1, 4), (1, 100, 3)], "mixes ultralytics and modelpack"),
])
def test_config_errors_when_binding(text: str, outputs: list[tuple[int, ...]], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        resolve_layout(parse_config_text(text, "cfg"), [IMAGE], [spec(s, f"o{i}") for i, s in enumerate(outputs)])


def test_anchor_grid_layout_from_config() -> None:
    config = parse_config_text("""
outputs:
  - {type: detection, decoder: modelpack, shape: [1, 20, 20, 24], anchors: [[0.1, 0.1], [0.2, 0.3], [0.4, 0.4]]}
  - {type: detection, decoder: modelpack, shape: [1, 10, 10, 24], anchors: [[0.3, 0.3], [0.5, 0.6], [0.8, 0.8]]}
""", "cfg")
    layout = resolve_layout(config, [IMAGE], [spec((1, 10, 10, 24), "b"), spec((1, 20, 20, 24), "a")])
    assert layout.kind == ANCHOR_GRID_DET and layout.num_classes == 3
    assert [b.index for b in layout.all("detection")] == [1, 0]


def test_model_types() -> None:
    assert resolve_layout(None, [IMAGE], [spec((1, 84, 8400))]).model_types == "Detection"
    assert resolve_layout(None, [IMAGE], [spec((1, 116, 8400)), spec((1, 160, 160, 32))]).model_types == \
        "Segmentation;Detection"
    assert resolve_layout(None, [IMAGE], [spec((1, 480, 640, 4))]).model_types == "Segmentation"
