"""The native kernels' library: built from the sources beside it, refused when built from others."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edgenode.kernels import KernelsUnavailable, library, load
from edgenode.kernels.build import HERE, LIBRARY, build, built_hash, ensure, source_hash

REPO = Path(__file__).resolve().parents[2]


def test_the_loaded_library_was_built_from_these_sources() -> None:
    library()  # the session built it when it was missing or stale (tests/conftest.py)
    assert built_hash(LIBRARY) == source_hash()


def test_the_library_needs_no_glibc_newer_than_2_17() -> None:
    # The board's wheel is built in a Debian bookworm root (glibc 2.36); the BSPs have 2.35 (kirkstone) and
    # 2.39 (scarthgap). Needing nothing past manylinux2014's 2.17, it loads on any of them.
    versions = {tuple(int(part) for part in found.split(b"."))
                for found in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)", LIBRARY.read_bytes())}
    assert all(version <= (2, 17) for version in versions), sorted(versions)


def _copy_sources(tmp_path: Path) -> Path:
    directory = tmp_path / "kernels"
    directory.mkdir()
    for path in HERE.iterdir():
        if path.suffix in (".c", ".h"):
            shutil.copy(path, directory)
    return directory


def test_a_library_built_from_other_sources_is_refused_with_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    directory = _copy_sources(tmp_path)
    target = directory / "_kernels.so"
    assert ensure(target, directory) is True
    assert ensure(target, directory) is False  # up to date: not built again
    assert built_hash(target) == source_hash(directory)
    with (directory / "abi.c").open("a") as source:
        source.write("\n/* an edit */\n")
    with pytest.raises(KernelsUnavailable, match=r"stale .* python -m edgenode\.kernels\.build"):
        load(target)
    assert ensure(target, directory) is True
    fresh = directory / "_kernels_rebuilt.so"  # (a path this process has not loaded: dlopen would reuse that)
    shutil.copy(target, fresh)
    load(fresh)


def test_a_missing_library_names_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(KernelsUnavailable, match=r"not built .* python -m edgenode\.kernels\.build"):
        load(tmp_path / "_kernels.so")


def test_a_compiler_error_is_raised_with_the_compilers_output(tmp_path: Path) -> None:
    directory = _copy_sources(tmp_path)
    (directory / "broken.c").write_text("int broken(void) { return undefined_name; }\n")
    with pytest.raises(RuntimeError, match="undefined_name"):
        build(directory / "_kernels.so", directory)
    assert not (directory / "_kernels.so").exists()


@pytest.mark.timeout(300)
def test_the_wheel_carries_the_library_and_is_tagged_for_this_platform_only(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.name.endswith(f"-py3-none-{platform}.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "edgenode/kernels/_kernels.so" in archive.namelist()
