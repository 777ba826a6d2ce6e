"""Read a model file's metadata and the ``--edgefirst-config`` file: the I/O half of model metadata.

A ``.tflite`` file is a flatbuffer, optionally followed by a ZIP archive of associated files
(``edgefirst.yaml``/``.yml``, ``config.yaml``/``.yml``, ``labels.txt``, Ultralytics'
``metadata.json``). The flatbuffer also carries named metadata buffers, among them
``TFLITE_METADATA`` with the model's name. Parsing the bytes is done by :mod:`edgenode.core`.
"""

from __future__ import annotations

import mmap
import os
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgenode.core.model_config import ModelConfig, ModelError, parse_config_text
from edgenode.core.model_description import (
    parse_labels,
    ultralytics_end_to_end,
    ultralytics_labels,
    ultralytics_metadata,
)
from edgenode.core.tensors import TensorSpec
from edgenode.core.tflite_flatbuffer import FlatbufferError, io_tensors, metadata_buffers, model_metadata_name

CONFIG_NAMES = ("edgefirst.yaml", "edgefirst.yml", "config.yaml", "config.yml")  # first found wins
WANTED = (*CONFIG_NAMES, "labels.txt", "metadata.json")
MAX_MEMBER_BYTES = 16 * 1024 * 1024  # larger archive members are not metadata: never read them
MAX_CONFIG_BYTES = 1024 * 1024  # a decoder config is a few hundred bytes


class ModelFileError(ModelError):
    """The model file is missing, empty, truncated or not a TFLite model."""


@dataclass(frozen=True)
class ModelFile:
    """What a model file says about itself."""

    path: Path
    metadata_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)

    def embedded_config(self) -> ModelConfig | None:
        """The first embedded ``edgefirst.yaml``/``.yml``/``config.yaml``/``.yml``, parsed."""
        for name in CONFIG_NAMES:
            if name in self.files:
                text = self.files[name].decode("utf-8", "replace")
                return parse_config_text(text, f"{name} embedded in {self.path.name}")
        return None

    def labels(self) -> tuple[str, ...]:
        """``labels.txt``, else the Ultralytics ``metadata.json`` names, else none (indices are used)."""
        if "labels.txt" in self.files:
            return parse_labels(self.files["labels.txt"].decode("utf-8", "replace"))
        return ultralytics_labels(self._ultralytics())

    def end_to_end(self) -> bool | None:
        """The Ultralytics export's ``end2end`` flag, when it says."""
        return ultralytics_end_to_end(self._ultralytics())

    def _ultralytics(self) -> Mapping[str, object]:
        raw = self.files.get("metadata.json")
        return ultralytics_metadata(raw.decode("utf-8", "replace")) if raw else {}


def check_model_file(path: Path) -> None:
    """One-line errors for a missing, unreadable, empty or non-TFLite model file."""
    if not path.exists():
        raise ModelFileError(f"--model {path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"--model {path} is not a file")
    try:
        with path.open("rb") as stream:
            head = stream.read(8)
    except OSError as exc:
        raise ModelFileError(f"--model {path}: cannot read it ({exc.strerror or exc})") from None
    if not head:
        raise ModelFileError(f"--model {path} is empty")
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelFileError(f"--model {path} is not a TFLite model (no TFL3 flatbuffer header)")


def read_model_file(path: Path) -> ModelFile:
    """The model's name, tensors and embedded files; :class:`ModelFileError` when it is no usable model."""
    check_model_file(path)
    try:
        with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
            buffers = metadata_buffers(data)
            inputs, outputs = io_tensors(data)
    except FlatbufferError as exc:
        raise ModelFileError(f"--model {path} is truncated or corrupt ({exc})") from None
    except OSError as exc:
        raise ModelFileError(f"--model {path}: cannot read it ({exc.strerror or exc})") from None
    name = model_metadata_name(buffers.get("TFLITE_METADATA", b""))
    return ModelFile(path, name, tuple(inputs), tuple(outputs), _embedded_files(path))


def _embedded_files(path: Path) -> dict[str, bytes]:
    if not zipfile.is_zipfile(path):
        return {}
    found: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = Path(info.filename).name
                if name in WANTED and name not in found and info.file_size <= MAX_MEMBER_BYTES:
                    found[name] = archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"--model {path}: the archive appended to the model is corrupt ({exc})") from None
    return found


_FILE_KINDS = {stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory"}


def read_config_file(path: Path) -> ModelConfig:
    """``--edgefirst-config FILE``: YAML (``.yaml``/``.yml``) or JSON (``.json``), a regular file of at
    most ``MAX_CONFIG_BYTES``. Opened without blocking, so a FIFO or a device is refused, never waited on
    or read without end."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ModelError(f"--edgefirst-config {path} must be a .yaml, .yml or .json file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ModelError(f"--edgefirst-config {path}: no such file") from None
    except OSError as exc:
        raise ModelError(f"--edgefirst-config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
            raise ModelError(f"--edgefirst-config {path} is not a regular file ({kind})")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"--edgefirst-config {path} is {info.st_size} bytes; a decoder config is at most "
                             f"{MAX_CONFIG_BYTES}")
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:  # it grew since fstat
            raise ModelError(f"--edgefirst-config {path} is over {MAX_CONFIG_BYTES} bytes")
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"--edgefirst-config {path}: cannot read it ({exc})") from None
    except OSError as exc:
        raise ModelError(f"--edgefirst-config {path}: cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    return parse_config_text(text, f"--edgefirst-config {path}", json_format=suffix == ".json")
