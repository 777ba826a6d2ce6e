"""Build edgenode's native kernels: every ``*.c`` beside this file into one shared library.

``python -m edgenode.kernels.build`` (after editing a kernel; ``pip install`` runs it through the wheel's
build hook, ``hatch_build.py``, and the test session runs :func:`ensure`). Standard library only, so that
the build hook can load it before anything is installed. The library is stamped with the hash of its
sources; the loader refuses a library built from other sources, naming this command.

Compiler: ``$CC`` or ``cc``. Flags: optimised, position-independent, hidden symbols but the exported
kernels, and ``-ffp-contract=off``: no fused multiply-add, so every float operation rounds as numpy's
separate operations do and x86 and aarch64 give the same bits.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBRARY = HERE / "_kernels.so"
FLAGS = ("-O3", "-std=c11", "-fPIC", "-shared", "-fvisibility=hidden", "-ffp-contract=off", "-fno-math-errno",
         "-Wall", "-Wextra", "-Werror")


def sources(directory: Path = HERE) -> list[Path]:
    """The C sources and headers the library is built from, in a stable order."""
    return sorted([*directory.glob("*.c"), *directory.glob("*.h")])


def source_hash(directory: Path = HERE) -> str:
    """sha256 over the flags and the sources' names and bytes (16 hex digits): what the library is stamped with.

    (A library built by hand with other flags counts as stale. ``$CC`` does not count: the loader checks the
    stamp wherever the library runs, whatever that environment's ``CC``; after ``CC="cc -fsanitize=..."``,
    build again without it.)"""
    digest = hashlib.sha256(" ".join(FLAGS).encode() + b"\0")
    for path in sources(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build(target: Path = LIBRARY, directory: Path = HERE) -> Path:
    """Compile ``directory``'s kernels into ``target`` (replaced atomically); raises with the compiler's output."""
    compiler = shlex.split(os.environ.get("CC", "cc"))
    c_files = [str(path) for path in sources(directory) if path.suffix == ".c"]
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        output = Path(scratch) / target.name
        command = [*compiler, *FLAGS, f'-DEDGENODE_SOURCE_HASH="{source_hash(directory)}"', *c_files, "-lm",
                   "-o", str(output)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise RuntimeError(f"edgenode's native kernels need a C compiler: {compiler[0]} was not found "
                               "(install gcc, or set CC)") from None
        if result.returncode:
            raise RuntimeError(f"building edgenode's native kernels failed:\n{shlex.join(command)}\n"
                               f"{result.stdout}{result.stderr}")
        os.replace(output, target)
    return target


MARK = b"edgenode-kernels-source:"


def built_hash(library: Path = LIBRARY) -> str | None:
    """The source hash ``library`` was stamped with (read from its bytes, not loaded), or ``None``."""
    try:
        data = library.read_bytes()
    except OSError:
        return None
    at = data.find(MARK)
    return data[at + len(MARK):at + len(MARK) + 16].decode("ascii", "replace") if at >= 0 else None


def ensure(target: Path = LIBRARY, directory: Path = HERE) -> bool:
    """Build when the library is missing or was built from other sources; True when it built."""
    if built_hash(target) == source_hash(directory):
        return False
    build(target, directory)
    return True


if __name__ == "__main__":
    path = build()
    print(f"built {path} from sources {source_hash()}")
