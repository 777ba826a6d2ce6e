"""C sources of the tests' doubles for native libraries (``libg2d.so.2``, a TFLite external delegate);
the tests that use them compile them with gcc."""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> Path:
    """The C source ``name`` (``fake_g2d.c``, ``fake_delegate.c``)."""
    return Path(__file__).resolve().parent / name
