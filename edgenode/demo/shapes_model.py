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
REACH = 80  # half the pooling window: objects up to about REACH pixels from any of their points are measured whole
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

    # Extremes of each class's pixels within REACH of every grid point, by separable max-pooling of
    # M*(x+1), M*(SIZE-x), M*(y+1), M*(SIZE-y) (zero off the object): the box of the visible pixels,
    # the same from every grid point on the object, so a partly hidden object still gives one box.
    solid = op("RELU", [op("SUB", [op("MUL", [member, const("two", np.full(1, 2.0, f32))], "member_x2",
                                      (1, SIZE, SIZE, classes)), const("one_b", np.ones(1, f32))],
                           "member_shift", (1, SIZE, SIZE, classes))], "solid", (1, SIZE, SIZE, classes))
    pixel = np.arange(SIZE, dtype=f32)
    weights = [("right", (pixel + 1).reshape(1, 1, SIZE, 1)), ("left_from_end", (SIZE - pixel).reshape(1, 1, SIZE, 1)),
               ("bottom", (pixel + 1).reshape(1, SIZE, 1, 1)), ("top_from_end", (SIZE - pixel).reshape(1, SIZE, 1, 1))]
    extremes_in = op("CONCATENATION", [op("MUL", [solid, const(f"{name}_weight", values)], f"{name}_in",
                                          (1, SIZE, SIZE, classes)) for name, values in weights],
                     "extremes_in", (1, SIZE, SIZE, 4 * classes), _options(schema, "ConcatenationOptions", axis=3))
    window = 2 * REACH + 1
    across = op("MAX_POOL_2D", [extremes_in], "extremes_rows", (1, SIZE, grid, 4 * classes),
                _options(schema, "Pool2DOptions", padding=same, strideW=STRIDE, strideH=1, filterWidth=window,
                         filterHeight=1))
    extremes = op("MAX_POOL_2D", [across], "extremes", (1, grid, grid, 4 * classes),
                  _options(schema, "Pool2DOptions", padding=same, strideW=1, strideH=STRIDE, filterWidth=1,
                           filterHeight=window))
    right, left_from_end, bottom, top_from_end = (tensor(f"{name}_px", (1, grid, grid, classes))
                                                  for name, _ in weights)
    b.add_operator("SPLIT", [const("extremes_split_axis", np.array(3, np.int32).reshape(())), extremes],
                   [right, left_from_end, bottom, top_from_end], _options(schema, "SplitOptions", numSplits=4))
    full = const("size", np.full(1, float(SIZE), f32))
    half = const("half", np.full(1, 0.5, f32))
    sides = {}
    for axis, low_from_end, high, grid_shape in (("x", left_from_end, right, (1, 1, grid, 1)),
                                                 ("y", top_from_end, bottom, (1, grid, 1, 1))):
        low = op("SUB", [full, low_from_end], f"{axis}_low", (1, grid, grid, classes))
        length = op("SUB", [high, low], f"{axis}_length", (1, grid, grid, classes))
        centre = op("MUL", [op("ADD", [low, high], f"{axis}_sum", (1, grid, grid, classes)), half],
                    f"{axis}_centre_px", (1, grid, grid, classes))
        sides[axis] = (centre, length, grid_shape)

    # Score = membership at the grid point x (0.5 + 0.5 x centrality), centrality = 1 at the box
    # centre falling to 0 at its edges: the most central point of each object wins NMS.
    centrality = []
    for axis, (centre, length, grid_shape) in sides.items():
        points = const(f"{axis}_grid", (np.arange(grid, dtype=f32) * STRIDE + 0.5).reshape(grid_shape))
        offset = op("ABS", [op("SUB", [points, centre], f"{axis}_offset_signed", (1, grid, grid, classes))],
                    f"{axis}_offset", (1, grid, grid, classes))
        half_length = op("MUL", [op("MAXIMUM", [length, const(f"{axis}_floor", np.ones(1, f32))],
                                    f"{axis}_length_floor", (1, grid, grid, classes)), half],
                         f"{axis}_half_length", (1, grid, grid, classes))
        ratio = op("DIV", [offset, half_length], f"{axis}_ratio", (1, grid, grid, classes))
        centrality.append(op("RELU", [op("SUB", [const(f"{axis}_one", np.ones(1, f32)), ratio],
                                         f"{axis}_centrality_raw", (1, grid, grid, classes))],
                             f"{axis}_centrality", (1, grid, grid, classes)))
    central = op("MUL", centrality, "centrality", (1, grid, grid, classes))
    weight = op("ADD", [op("MUL", [central, half], "centrality_half", (1, grid, grid, classes)), half],
                "score_weight", (1, grid, grid, classes))

    scale = const("inverse_size", np.full(1, 1.0 / SIZE, f32))
    coords: list[int] = []
    for name, source in (("cx", sides["x"][0]), ("cy", sides["y"][0]), ("w", sides["x"][1]), ("h", sides["y"][1])):
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
