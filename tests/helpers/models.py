"""Small TFLite models the tests build themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def slow_model(path: Path) -> Path:
    """A model whose every invoke is heavy (~150 G multiply-adds, a few seconds; zero output): like an NPU's
    first graph compile, its warm-up invoke runs with the GIL released while the heartbeat keeps publishing."""
    from edgenode.tools.tflite_builder import ModelBuilder, model_metadata, options

    builder = ModelBuilder()
    rng = np.random.default_rng(0)
    image = builder.add_tensor("image", [1, 320, 320, 3], np.float32)
    previous, channels = image, 3
    for index in range(10):
        weights = builder.add_tensor(f"w{index}", [128, 3, 3, channels], np.float32,
                                     data=rng.normal(0, 0.05, (128, 3, 3, channels)).astype(np.float32))
        bias = builder.add_tensor(f"b{index}", [128], np.float32, data=np.zeros(128, np.float32))
        out = builder.add_tensor(f"features{index}", [1, 320, 320, 128], np.float32)
        builder.add_operator("CONV_2D", [previous, weights, bias], [out],
                             options("Conv2DOptions", padding="SAME", stride_w=1, stride_h=1))
        previous, channels = out, 128
    head_w = builder.add_tensor("head_w", [8, 1, 1, 128], np.float32, data=np.zeros((8, 1, 1, 128), np.float32))
    head_b = builder.add_tensor("head_b", [8], np.float32, data=np.zeros(8, np.float32))
    grid = builder.add_tensor("grid", [1, 80, 80, 8], np.float32)
    builder.add_operator("CONV_2D", [previous, head_w, head_b], [grid],
                         options("Conv2DOptions", padding="VALID", stride_w=4, stride_h=4))
    rows = builder.add_tensor("rows", [1, 6400, 8], np.float32)
    builder.add_operator("RESHAPE", [grid, builder.add_tensor("rows_shape", [3], np.int32,
                                                              data=np.array([1, 6400, 8], np.int32))], [rows])
    head = builder.add_tensor("output0", [1, 8, 6400], np.float32)
    builder.add_operator("TRANSPOSE", [rows, builder.add_tensor("perm", [3], np.int32,
                                                                data=np.array([0, 2, 1], np.int32))], [head])
    builder.set_io([image], [head])
    builder.add_metadata("TFLITE_METADATA", model_metadata("slow-model"))
    path.write_bytes(builder.build())
    return path


def conv_model(path: Path) -> Path:
    """A fully convolutional model, [1, 32, 32, 3] float to [1, 32, 32, 8]: its input can be resized to any batch."""
    from edgenode.tools.tflite_builder import ModelBuilder, options

    builder = ModelBuilder()
    rng = np.random.default_rng(1)
    image = builder.add_tensor("image", [1, 32, 32, 3], np.float32)
    weights = builder.add_tensor("w", [8, 3, 3, 3], np.float32,
                                 data=rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32))
    bias = builder.add_tensor("b", [8], np.float32, data=np.zeros(8, np.float32))
    out = builder.add_tensor("features", [1, 32, 32, 8], np.float32)
    builder.add_operator("CONV_2D", [image, weights, bias], [out],
                         options("Conv2DOptions", padding="SAME", stride_w=1, stride_h=1))
    builder.set_io([image], [out])
    path.write_bytes(builder.build())
    return path
