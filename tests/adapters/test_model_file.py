"""The TFLite builder, the flatbuffer reader and model-file metadata (name, embedded files, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgenode.adapters.model_file import ModelFileError, read_config_file, read_model_file
from edgenode.adapters.tflite import import_runtimes
from edgenode.core.model_config import ModelError
from edgenode.core.model_description import (
    label_for,
    model_format,
    model_name,
    parse_labels,
    tensor_type,
    ultralytics_labels,
)
from edgenode.core.tflite_flatbuffer import FlatbufferError, io_tensors, metadata_buffers, model_metadata_name
from edgenode.tools.tflite_builder import ModelBuilder, TensorDef, echo_model, model_metadata, options

Interpreter = import_runtimes()[0].interpreter  # the installed runtime: ai_edge_litert or tflite_runtime

EDGEFIRST_YAML = """
outputs:
  - {type: detection, decoder: ultralytics, shape: [1, 7, 21]}
"""


def sample_model(files: dict[str, str] | None = None, name: str = "tiny-detector") -> bytes:
    builder = echo_model([TensorDef("detect", (1, 7, 21), np.int8, 0.01, -128), TensorDef("extra", (1, 4))],
                         output_order=[1, 0])
    if name:
        builder.add_metadata("TFLITE_METADATA", model_metadata(name, "a test model", "1.0"))
    builder.add_metadata("min_runtime_version", b"2.3.0\0")
    for file_name, text in (files or {}).items():
        builder.add_file(file_name, text)
    return builder.build()


def write(tmp_path: Path, data: bytes, name: str = "model.tflite") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_builder_model_runs_and_echoes() -> None:
    interpreter = Interpreter(model_content=sample_model())
    interpreter.allocate_tensors()
    outputs = interpreter.get_output_details()
    assert [o["name"] for o in outputs] == ["extra", "detect"]
    assert outputs[1]["quantization"] == pytest.approx((0.01, -128))
    values = np.arange(-50, 97, dtype=np.int8).reshape(1, 7, 21)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], values)
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(outputs[1]["index"]), values)


def test_flatbuffer_reader_matches_the_runtime() -> None:
    data = sample_model()
    interpreter = Interpreter(model_content=data)
    inputs, outputs = io_tensors(data)
    for mine, detail in zip([*inputs, *outputs], [*interpreter.get_input_details(),
                                                 *interpreter.get_output_details()], strict=True):
        assert (mine.name, list(mine.shape), mine.dtype, mine.index) == \
            (detail["name"], detail["shape"].tolist(), np.dtype(detail["dtype"]), detail["index"])
        assert (mine.scale, mine.zero_point) == pytest.approx(detail["quantization"])
    buffers = metadata_buffers(data)
    assert buffers["min_runtime_version"] == b"2.3.0\0"
    assert model_metadata_name(buffers["TFLITE_METADATA"]) == "tiny-detector"


def test_flatbuffer_reader_refuses_foreign_and_truncated_bytes() -> None:
    with pytest.raises(FlatbufferError, match="not a TFLite model"):
        metadata_buffers(b"PK\x03\x04 this is a zip")
    data = sample_model()
    with pytest.raises(FlatbufferError):
        metadata_buffers(data[: len(data) // 3])
    assert model_metadata_name(b"\x00" * 4) == ""


def test_model_file_metadata_and_embedded_files(tmp_path: Path) -> None:
    names = json.dumps({"names": {"0": "person", "1": "car"}, "end2end": False})
    path = write(tmp_path, sample_model({"edgefirst.yaml": EDGEFIRST_YAML, "labels.txt": "person\nbicycle\n\n",
                                         "metadata.json": names, "notes.md": "ignored"}))
    model = read_model_file(path)
    assert model.metadata_name == "tiny-detector"
    assert sorted(model.files) == ["edgefirst.yaml", "labels.txt", "metadata.json"]
    assert model.labels() == ("person", "bicycle")                       # labels.txt beats metadata.json
    assert model.end_to_end() is False
    config = model.embedded_config()
    assert config is not None and config.outputs[0].shape == (1, 7, 21)
    assert "edgefirst.yaml embedded in model.tflite" in config.source
    assert [o.name for o in model.outputs] == ["extra", "detect"]


def test_ultralytics_names_when_no_labels_file(tmp_path: Path) -> None:
    meta = json.dumps({"names": {"0": "Normal", "1": "Fall"}, "end2end": True})
    model = read_model_file(write(tmp_path, sample_model({"metadata.json": meta, "config.yml": EDGEFIRST_YAML})))
    assert model.labels() == ("Normal", "Fall") and model.end_to_end() is True
    assert model.embedded_config() is not None                          # config.yml is read too


def test_model_without_metadata(tmp_path: Path) -> None:
    model = read_model_file(write(tmp_path, sample_model(name="")))
    assert model.metadata_name == "" and model.files == {} and model.labels() == ()
    assert model.embedded_config() is None


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is not a file"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_text("labels and other text"), "is not a TFLite model"),
    (lambda p: p.write_bytes(sample_model()[:300]), "is truncated or corrupt"),
])
def test_model_file_errors_are_one_line(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "model.tflite"
    make(path)  # type: ignore[operator]
    with pytest.raises(ModelFileError, match=message) as error:
        read_model_file(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_bad_embedded_config_names_the_file(tmp_path: Path) -> None:
    model = read_model_file(write(tmp_path, sample_model({"edgefirst.yaml": "outputs: [{type: wrong}]"})))
    with pytest.raises(ModelError, match=r"edgefirst\.yaml embedded in model\.tflite outputs\[0\] type"):
        model.embedded_config()


def test_config_file_yaml_json_and_errors(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(EDGEFIRST_YAML)
    (tmp_path / "c.json").write_text(json.dumps({"outputs": [{"type": "detection", "shape": [1, 7, 21]}]}))
    (tmp_path / "c.txt").write_text("x")
    assert read_config_file(tmp_path / "c.yaml").outputs[0].type == "detection"
    assert read_config_file(tmp_path / "c.json").outputs[0].shape == (1, 7, 21)
    with pytest.raises(ModelError, match="no such file"):
        read_config_file(tmp_path / "missing.yaml")
    with pytest.raises(ModelError, match=r"must be a \.yaml, \.yml or \.json"):
        read_config_file(tmp_path / "c.txt")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ModelError, match="is not valid JSON"):
        read_config_file(tmp_path / "bad.json")


def test_description_helpers() -> None:
    assert label_for(("bg", "person"), 0, 1) == "person"
    assert label_for(("person",), 4) == "4" and label_for((), 0, 2) == "2"
    assert model_format("a/yolo.tflite") == "TFLite" and model_format("m.rknn") == "RKNN"
    assert model_format("m.onnx") == "onnx" and model_format("noext") == "unknown"
    assert model_name("", "/x/yolo.tflite") == "yolo.tflite" and model_name("YOLO", "y.tflite") == "YOLO"
    assert parse_labels("a\n\nb\n\n") == ("a", "", "b")
    assert ultralytics_labels({"names": {"0": "a", "2": "c"}}) == ("a", "1", "c")
    assert ultralytics_labels({"names": ["x", "y"]}) == ("x", "y")
    assert tensor_type(np.int8) == 1 and tensor_type(np.float32) == 8 and tensor_type(np.bool_) == 0


def test_builder_rejects_mistakes() -> None:
    builder = ModelBuilder()
    with pytest.raises(ValueError, match="unknown TFLite builtin operator"):
        builder.add_operator("NOT_AN_OP", [], [])
    with pytest.raises(ValueError, match="unsupported TFLite options table"):
        options("NoSuchOptions")
    with pytest.raises(ValueError, match="Conv2DOptions has no field 'stride'"):
        options("Conv2DOptions", stride=1)
    with pytest.raises(ValueError, match="padding must be one of SAME, VALID"):
        options("Pool2DOptions", padding="FULL")
    with pytest.raises(ValueError, match="does not fill"):
        builder.add_tensor("c", [2, 2], np.float32, data=np.zeros(3, np.float32))


# -- issue 11: --edgefirst-config is read bounded, and only from a regular file --


def test_a_config_that_is_a_device_is_refused(tmp_path: Path) -> None:
    """``/dev/zero`` as the config was read until MemoryError."""
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ModelError, match=r"^--edgefirst-config .*zero\.yaml is not a regular file \(a character "
                                         r"device\)$"):
        read_config_file(link)


def test_a_config_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO with no writer made model loading hang forever in open()."""
    import os
    import threading

    from tests.helpers.timing import scaled

    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_config_file(fifo)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(scaled(10))
    if reader.is_alive():  # unblock the reader's open() before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(scaled(10))
    assert outcome and isinstance(outcome[0], ModelError), outcome
    assert str(outcome[0]) == f"--edgefirst-config {fifo} is not a regular file (a pipe)"


def test_a_huge_config_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from edgenode.adapters.model_file import MAX_CONFIG_BYTES

    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(2**40)  # sparse: 1 TiB that reading would try to hold
    with pytest.raises(ModelError, match=rf"is {2**40} bytes; a decoder config is at most {MAX_CONFIG_BYTES}"):
        read_config_file(big)


def test_a_directory_or_a_missing_file_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ModelError, match=r"dir\.yaml is not a regular file \(a directory\)$"):
        read_config_file(folder)
    with pytest.raises(ModelError, match=r"missing\.yaml: no such file$"):
        read_config_file(tmp_path / "missing.yaml")
