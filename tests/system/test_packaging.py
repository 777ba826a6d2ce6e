"""The wheel ships schemas/ and delegates/ inside the edgenode package, never as top-level modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_layout(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("edgenode-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level <= {"edgenode", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "edgenode/_data/schemas/edgefirst_msgs/msg/Detect.msg" in names
    assert any(name.startswith("edgenode/_data/delegates/") for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgenode = edgenode.entry:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "edgenode-foxglove = edgenode.foxglove.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "edgenode/foxglove/layout.json" in names
