"""A hand-built TFLite detector for the camera simulator's coloured rectangles, in YOLOv8 format.

No training and no TensorFlow: the graph is written op by op with :mod:`edgenode.tools.tflite_builder`.
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

from edgenode.tools.tflite_builder import ModelBuilder, Options, model_metadata, options

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


class _Graph:
    """A ModelBuilder with shorthands for float32 tensors, constants and ops with options."""

    def __init__(self, description: str) -> None:
        self.builder = ModelBuilder(description=description)

    def const(self, name: str, values: np.ndarray) -> int:
        values = np.asarray(values, np.float32 if values.dtype.kind == "f" else np.int32)
        return self.builder.add_tensor(name, values.shape, values.dtype, data=values)

    def tensor(self, name: str, shape: tuple[int, ...]) -> int:
        return self.builder.add_tensor(name, shape, np.float32)

    def op(self, kind: str, inputs: list[int], name: str, shape: tuple[int, ...], given: Options | None = None) -> int:
        out = self.tensor(name, shape)
        self.builder.add_operator(kind, inputs, [out], given)
        return out


def _membership(g: _Graph, image: int, batch: int = 1) -> int:
    """Per-pixel class membership in 0..1, shape (batch, SIZE, SIZE, classes)."""
    classes = len(LABELS)
    colour = g.op("CONV_2D", [image, g.const("colour_w", _COLOUR_WEIGHTS.reshape(6, 1, 1, 3)),
                              g.const("colour_b", _COLOUR_BIAS)], "colour", (batch, SIZE, SIZE, 6),
                  options("Conv2DOptions", padding="SAME", stride_w=1, stride_h=1, fused_activation_function="RELU"))
    raw = g.op("CONV_2D", [colour, g.const("member_w", _MEMBERSHIP_WEIGHTS.reshape(classes, 1, 1, 6)),
                           g.const("member_b", np.zeros(classes, np.float32))], "membership_raw",
               (batch, SIZE, SIZE, classes),
               options("Conv2DOptions", padding="SAME", stride_w=1, stride_h=1, fused_activation_function="RELU"))
    return g.op("MINIMUM", [raw, g.const("one", np.ones(1, np.float32))], "membership", (batch, SIZE, SIZE, classes))


def build_shapes_model(batch: int = 1) -> bytes:
    """The demo detector as ``.tflite`` bytes, with ``labels.txt`` and a model name embedded (``batch``: frames
    per invoke, for the node's batched invoke of several cameras)."""
    g = _Graph("edgenode demo: coloured rectangle detector")
    classes, grid = len(LABELS), SIZE // STRIDE
    anchors = grid * grid
    f32 = np.float32
    image = g.tensor("image", (batch, SIZE, SIZE, 3))
    member = _membership(g, image, batch)

    # Extremes of each class's pixels within REACH of every grid point, by separable max-pooling of
    # M*(x+1), M*(SIZE-x), M*(y+1), M*(SIZE-y) (zero off the object): the box of the visible pixels,
    # the same from every grid point on the object, so a partly hidden object still gives one box.
    solid = g.op("RELU", [g.op("SUB", [g.op("MUL", [member, g.const("two", np.full(1, 2.0, f32))], "member_x2",
                                      (batch, SIZE, SIZE, classes)), g.const("one_b", np.ones(1, f32))],
                           "member_shift", (batch, SIZE, SIZE, classes))], "solid", (batch, SIZE, SIZE, classes))
    pixel = np.arange(SIZE, dtype=f32)
    weights = [("right", (pixel + 1).reshape(1, 1, SIZE, 1)), ("left_from_end", (SIZE - pixel).reshape(1, 1, SIZE, 1)),
               ("bottom", (pixel + 1).reshape(1, SIZE, 1, 1)), ("top_from_end", (SIZE - pixel).reshape(1, SIZE, 1, 1))]
    extremes_in = g.op("CONCATENATION", [g.op("MUL", [solid, g.const(f"{name}_weight", values)], f"{name}_in",
                                          (batch, SIZE, SIZE, classes)) for name, values in weights],
                     "extremes_in", (batch, SIZE, SIZE, 4 * classes), options("ConcatenationOptions", axis=3))
    window = 2 * REACH + 1
    across = g.op("MAX_POOL_2D", [extremes_in], "extremes_rows", (batch, SIZE, grid, 4 * classes),
                options("Pool2DOptions", padding="SAME", stride_w=STRIDE, stride_h=1, filter_width=window,
                         filter_height=1))
    extremes = g.op("MAX_POOL_2D", [across], "extremes", (batch, grid, grid, 4 * classes),
                  options("Pool2DOptions", padding="SAME", stride_w=1, stride_h=STRIDE, filter_width=1,
                           filter_height=window))
    right, left_from_end, bottom, top_from_end = (g.tensor(f"{name}_px", (batch, grid, grid, classes))
                                                  for name, _ in weights)
    g.builder.add_operator("SPLIT", [g.const("extremes_split_axis", np.array(3, np.int32).reshape(())), extremes],
                   [right, left_from_end, bottom, top_from_end], options("SplitOptions", num_splits=4))
    full = g.const("size", np.full(1, float(SIZE), f32))
    half = g.const("half", np.full(1, 0.5, f32))
    sides = {}
    for axis, low_from_end, high, grid_shape in (("x", left_from_end, right, (1, 1, grid, 1)),
                                                 ("y", top_from_end, bottom, (1, grid, 1, 1))):
        low = g.op("SUB", [full, low_from_end], f"{axis}_low", (batch, grid, grid, classes))
        length = g.op("SUB", [high, low], f"{axis}_length", (batch, grid, grid, classes))
        centre = g.op("MUL", [g.op("ADD", [low, high], f"{axis}_sum", (batch, grid, grid, classes)), half],
                    f"{axis}_centre_px", (batch, grid, grid, classes))
        sides[axis] = (centre, length, grid_shape)

    # Score = membership at the grid point x (0.5 + 0.5 x centrality), centrality = 1 at the box
    # centre falling to 0 at its edges: the most central point of each object wins NMS.
    centrality = []
    for axis, (centre, length, grid_shape) in sides.items():
        points = g.const(f"{axis}_grid", (np.arange(grid, dtype=f32) * STRIDE + 0.5).reshape(grid_shape))
        offset = g.op("ABS", [g.op("SUB", [points, centre], f"{axis}_offset_signed", (batch, grid, grid, classes))],
                    f"{axis}_offset", (batch, grid, grid, classes))
        half_length = g.op("MUL", [g.op("MAXIMUM", [length, g.const(f"{axis}_floor", np.ones(1, f32))],
                                    f"{axis}_length_floor", (batch, grid, grid, classes)), half],
                         f"{axis}_half_length", (batch, grid, grid, classes))
        ratio = g.op("DIV", [offset, half_length], f"{axis}_ratio", (batch, grid, grid, classes))
        centrality.append(g.op("RELU", [g.op("SUB", [g.const(f"{axis}_one", np.ones(1, f32)), ratio],
                                         f"{axis}_centrality_raw", (batch, grid, grid, classes))],
                             f"{axis}_centrality", (batch, grid, grid, classes)))
    central = g.op("MUL", centrality, "centrality", (batch, grid, grid, classes))
    weight = g.op("ADD", [g.op("MUL", [central, half], "centrality_half", (batch, grid, grid, classes)), half],
                "score_weight", (batch, grid, grid, classes))

    scale = g.const("inverse_size", np.full(1, 1.0 / SIZE, f32))
    coords: list[int] = []
    for name, source in (("cx", sides["x"][0]), ("cy", sides["y"][0]), ("w", sides["x"][1]), ("h", sides["y"][1])):
        normalised = g.op("MUL", [source, scale], name, (batch, grid, grid, classes))
        shape = g.const(f"{name}_shape", np.array([batch, anchors, classes, 1], np.int32))
        coords.append(g.op("RESHAPE", [normalised, shape], f"{name}_anchors", (batch, anchors, classes, 1)))
    boxes = g.op("CONCATENATION", coords, "boxes", (batch, anchors, classes, 4),
               options("ConcatenationOptions", axis=3))

    sampled = g.op("STRIDED_SLICE", [member, g.const("slice_begin", np.array([0, 0, 0, 0], np.int32)),
                                   g.const("slice_end", np.array([batch, SIZE, SIZE, classes], np.int32)),
                                   g.const("slice_strides", np.array([1, STRIDE, STRIDE, 1], np.int32))],
                 "grid_membership", (batch, grid, grid, classes), options("StridedSliceOptions"))
    weighted_score = g.op("MUL", [sampled, weight], "grid_score", (batch, grid, grid, classes))
    score_shape = g.const("score_shape", np.array([batch, anchors, classes, 1], np.int32))
    per_anchor = g.op("RESHAPE", [weighted_score, score_shape], "score_column", (batch, anchors, classes, 1))
    one_hot = g.op("MUL", [per_anchor, g.const("class_identity", np.eye(classes, dtype=f32).reshape(1, 1, classes,
                                                                                                   classes))],
                 "scores", (batch, anchors, classes, classes))
    rows = g.op("CONCATENATION", [boxes, one_hot], "rows", (batch, anchors, classes, 4 + classes),
              options("ConcatenationOptions", axis=3))
    flat = g.op("RESHAPE", [rows, g.const("flat_shape", np.array([batch, anchors * classes, 4 + classes], np.int32))],
              "anchors", (batch, anchors * classes, 4 + classes))
    head = g.op("TRANSPOSE", [flat, g.const("head_perm", np.array([0, 2, 1], np.int32))], "output0",
              (batch, 4 + classes, anchors * classes))
    g.builder.set_io([image], [head])
    g.builder.add_metadata("TFLITE_METADATA", model_metadata(MODEL_NAME, "detects the edgenode camera simulator's "
                                                             "red, green, blue and yellow rectangles"))
    g.builder.add_file("labels.txt", "\n".join(LABELS) + "\n")
    return g.builder.build()


def build_shapes_segmentation_model() -> bytes:
    """A semantic segmentation twin (ModelPack layout ``[1, SIZE/2, SIZE/2, 1 + classes]``, background first)."""
    g = _Graph("edgenode demo: coloured rectangle segmentation")
    classes, half = len(LABELS), SIZE // 2
    image = g.tensor("image", (1, SIZE, SIZE, 3))
    member = _membership(g, image)
    pooled = g.op("AVERAGE_POOL_2D", [member], "pooled", (1, half, half, classes),
                  options("Pool2DOptions", padding="VALID", stride_w=2, stride_h=2, filter_width=2,
                            filter_height=2))
    strongest = g.op("REDUCE_MAX", [pooled, g.const("class_axis", np.array([3], np.int32))], "strongest",
                     (1, half, half, 1), options("ReducerOptions", keep_dims=True))
    background = g.op("SUB", [g.const("one_bg", np.ones(1, np.float32)), strongest], "background", (1, half, half, 1))
    scores = g.op("CONCATENATION", [background, pooled], "segmentation", (1, half, half, 1 + classes),
                  options("ConcatenationOptions", axis=3))
    g.builder.set_io([image], [scores])
    g.builder.add_metadata("TFLITE_METADATA", model_metadata(f"{MODEL_NAME}-seg", "segments the edgenode camera "
                                                             "simulator's coloured rectangles"))
    g.builder.add_file("labels.txt", "\n".join(("background", *LABELS)) + "\n")
    return g.builder.build()
