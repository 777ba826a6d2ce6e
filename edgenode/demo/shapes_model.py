"""A hand-built TFLite detector for the camera simulator's coloured rectangles, in YOLOv8 format.

No training and no TensorFlow: the graph is written op by op with :mod:`edgenode.tflite_builder`.
Per pixel, a 1x1 colour transform gives each class a membership map F in 0..1 (red, green, blue,
yellow). On a grid every ``STRIDE`` pixels, the run of F along the row and down the column
through the grid point measures the object: run length = width/height, F-weighted mean
coordinate = centre. Every grid point inside an object therefore predicts that object's exact
box, scored by F at the point weighted by how central the point is, so NMS keeps the most
central. The output is a standard YOLOv8 head ``[1, 4 + classes, anchors]`` (centre x, centre y,
width, height normalised, then class scores): the node decodes it as it decodes an Ultralytics
export.
"""

from __future__ import annotations

import numpy as np

from edgenode.tflite_builder import ModelBuilder, model_metadata

LABELS = ("red", "green", "blue", "yellow")
SIZE = 320  # model input is SIZE x SIZE RGB float32 0..1
STRIDE = 8
REACH = 80  # half the run window: objects up to about 2 * REACH - STRIDE pixels wide are measured whole
MODEL_NAME = "edgenode-shapes-demo"

# 1x1 colour transform, rows = output channels, applied to (R, G, B) in 0..1, then ReLU:
# the first three are the pure-colour memberships, the last three feed yellow = (R - B) - |R - G|.
_COLOUR_WEIGHTS = 3.0 * np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 0, -1], [1, -1, 0], [-1, 1, 0]],
                                 np.float32)
_COLOUR_BIAS = 3.0 * np.array([0.1, 0.1, 0.1, -0.3, 0.0, 0.0], np.float32)
_MEMBERSHIP_WEIGHTS = np.array([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, -1, -1]],
                               np.float32)


def _options(schema: object, name: str, **fields: object) -> object:
    options = getattr(schema, f"{name}T")()
    for key, value in fields.items():
        setattr(options, key, value)
    return options


def build_shapes_model() -> bytes:
    """The demo detector as ``.tflite`` bytes, with ``labels.txt`` and a model name embedded."""
    from ai_edge_litert import schema_py_generated as schema

    b = ModelBuilder(description="edgenode demo: coloured rectangle detector")
    classes, grid = len(LABELS), SIZE // STRIDE
    anchors = grid * grid
    f32 = np.float32

    def const(name: str, values: np.ndarray) -> int:
        values = np.asarray(values, np.float32 if values.dtype.kind == "f" else np.int32)
        return b.add_tensor(name, values.shape, values.dtype, data=values)

    def tensor(name: str, shape: tuple[int, ...]) -> int:
        return b.add_tensor(name, shape, f32)

    def op(kind: str, inputs: list[int], name: str, shape: tuple[int, ...], options: object = None) -> int:
        out = tensor(name, shape)
        b.add_operator(kind, inputs, [out], options)
        return out

    relu = schema.ActivationFunctionType.RELU
    same = schema.Padding.SAME
    image = tensor("image", (1, SIZE, SIZE, 3))
    colour = op("CONV_2D", [image, const("colour_w", _COLOUR_WEIGHTS.reshape(6, 1, 1, 3)),
                            const("colour_b", _COLOUR_BIAS)], "colour", (1, SIZE, SIZE, 6),
                _options(schema, "Conv2DOptions", padding=same, strideW=1, strideH=1, fusedActivationFunction=relu))
    raw = op("CONV_2D", [colour, const("member_w", _MEMBERSHIP_WEIGHTS.reshape(classes, 1, 1, 6)),
                         const("member_b", np.zeros(classes, f32))], "membership_raw", (1, SIZE, SIZE, classes),
             _options(schema, "Conv2DOptions", padding=same, strideW=1, strideH=1, fusedActivationFunction=relu))
    member = op("MINIMUM", [raw, const("one", np.ones(1, f32))], "membership", (1, SIZE, SIZE, classes))

    pixel = np.arange(SIZE, dtype=f32)
    sums: dict[str, tuple[int, int]] = {}
    for axis, positions, kernel in (("x", pixel.reshape(1, 1, SIZE, 1), (1, 2 * REACH + 1)),
                                 ("y", pixel.reshape(1, SIZE, 1, 1), (2 * REACH + 1, 1))):
        weighted = op("MUL", [member, const(f"{axis}_coords", positions)], f"member_{axis}", (1, SIZE, SIZE, classes))
        both = op("CONCATENATION", [member, weighted], f"runs_{axis}_in", (1, SIZE, SIZE, 2 * classes),
                  _options(schema, "ConcatenationOptions", axis=3))
        ones = const(f"run_{axis}_kernel", np.ones((1, *kernel, 2 * classes), f32))
        runs = op("DEPTHWISE_CONV_2D", [both, ones, const(f"run_{axis}_bias", np.zeros(2 * classes, f32))],
                  f"runs_{axis}", (1, grid, grid, 2 * classes),
                  _options(schema, "DepthwiseConv2DOptions", padding=same, strideW=STRIDE, strideH=STRIDE,
                           depthMultiplier=1))
        length, moment = (tensor(f"{axis}_length", (1, grid, grid, classes)),
                          tensor(f"{axis}_moment", (1, grid, grid, classes)))
        b.add_operator("SPLIT", [const(f"{axis}_split_axis", np.array(3, np.int32).reshape(())), runs],
                       [length, moment], _options(schema, "SplitOptions", numSplits=2))
        safe = op("MAXIMUM", [length, const(f"{axis}_floor", np.ones(1, f32))], f"{axis}_safe_length",
                  (1, grid, grid, classes))
        mean = op("DIV", [moment, safe], f"{axis}_mean", (1, grid, grid, classes))
        centre = op("ADD", [mean, const(f"{axis}_half", np.full(1, 0.5, f32))], f"{axis}_centre_px",
                    (1, grid, grid, classes))
        sums[axis] = (centre, length)

    # Score = membership at the grid point x (0.5 + 0.5 x centrality), centrality = 1 at the box
    # centre falling to 0 at its edges: the most central point of each object wins NMS.
    centrality = []
    for axis, grid_shape in (("x", (1, 1, grid, 1)), ("y", (1, grid, 1, 1))):
        centre, length = sums[axis]
        points = const(f"{axis}_grid", (np.arange(grid, dtype=f32) * STRIDE + 0.5).reshape(grid_shape))
        offset = op("ABS", [op("SUB", [points, centre], f"{axis}_offset_signed", (1, grid, grid, classes))],
                    f"{axis}_offset", (1, grid, grid, classes))
        half = op("MUL", [op("MAXIMUM", [length, const(f"{axis}_floor2", np.ones(1, f32))], f"{axis}_len2",
                             (1, grid, grid, classes)), const(f"{axis}_halve", np.full(1, 0.5, f32))],
                  f"{axis}_half_length", (1, grid, grid, classes))
        ratio = op("DIV", [offset, half], f"{axis}_ratio", (1, grid, grid, classes))
        centrality.append(op("RELU", [op("SUB", [const(f"{axis}_one", np.ones(1, f32)), ratio],
                                         f"{axis}_centrality_raw", (1, grid, grid, classes))],
                             f"{axis}_centrality", (1, grid, grid, classes)))
    central = op("MUL", centrality, "centrality", (1, grid, grid, classes))
    weight = op("ADD", [op("MUL", [central, const("half_weight", np.full(1, 0.5, f32))], "centrality_half",
                           (1, grid, grid, classes)), const("base_weight", np.full(1, 0.5, f32))],
                "score_weight", (1, grid, grid, classes))

    scale = const("inverse_size", np.full(1, 1.0 / SIZE, f32))
    coords: list[int] = []
    for name, source in (("cx", sums["x"][0]), ("cy", sums["y"][0]), ("w", sums["x"][1]), ("h", sums["y"][1])):
        normalised = op("MUL", [source, scale], name, (1, grid, grid, classes))
        shape = const(f"{name}_shape", np.array([1, anchors, classes, 1], np.int32))
        coords.append(op("RESHAPE", [normalised, shape], f"{name}_anchors", (1, anchors, classes, 1)))
    boxes = op("CONCATENATION", coords, "boxes", (1, anchors, classes, 4),
               _options(schema, "ConcatenationOptions", axis=3))

    sampled = op("STRIDED_SLICE", [member, const("slice_begin", np.array([0, 0, 0, 0], np.int32)),
                                   const("slice_end", np.array([1, SIZE, SIZE, classes], np.int32)),
                                   const("slice_strides", np.array([1, STRIDE, STRIDE, 1], np.int32))],
                 "grid_membership", (1, grid, grid, classes), _options(schema, "StridedSliceOptions"))
    weighted_score = op("MUL", [sampled, weight], "grid_score", (1, grid, grid, classes))
    per_anchor = op("RESHAPE", [weighted_score, const("score_shape", np.array([1, anchors, classes, 1], np.int32))],
                    "score_column", (1, anchors, classes, 1))
    one_hot = op("MUL", [per_anchor, const("class_identity", np.eye(classes, dtype=f32).reshape(1, 1, classes,
                                                                                                   classes))],
                 "scores", (1, anchors, classes, classes))
    rows = op("CONCATENATION", [boxes, one_hot], "rows", (1, anchors, classes, 4 + classes),
              _options(schema, "ConcatenationOptions", axis=3))
    flat = op("RESHAPE", [rows, const("flat_shape", np.array([1, anchors * classes, 4 + classes], np.int32))],
              "anchors", (1, anchors * classes, 4 + classes))
    head = op("TRANSPOSE", [flat, const("head_perm", np.array([0, 2, 1], np.int32))], "output0",
              (1, 4 + classes, anchors * classes))
    b.set_io([image], [head])
    b.add_metadata("TFLITE_METADATA", model_metadata(MODEL_NAME, "detects the edgenode camera simulator's "
                                                     "red, green, blue and yellow rectangles"))
    b.add_file("labels.txt", "\n".join(LABELS) + "\n")
    return b.build()
