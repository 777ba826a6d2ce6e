"""Pure logic stays pure: core/ and messages/ import no I/O, adapters or asyncio."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgenode"
PURE = sorted([*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "messages").rglob("*.py")])
FORBIDDEN = {"zenoh", "ctypes", "mmap", "socket", "fcntl", "subprocess", "asyncio", "threading", "select",
             "edgenode.adapters", "edgenode.app", "edgenode.node", "tflite_runtime", "ai_edge_litert"}
ALLOWED_IN = {"messages/cdr.py": {"threading"}}  # one lock guarding pycdr2's lazy codec build


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=[str(p.relative_to(PACKAGE)) for p in PURE])
def test_pure_module_imports_no_io(path: Path) -> None:
    allowed = ALLOWED_IN.get(str(path.relative_to(PACKAGE)), set())
    bad = {name for name in imports(path) for banned in FORBIDDEN - allowed
           if name == banned or name.startswith(banned + ".")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_pure_modules_do_no_file_io() -> None:
    for path in PURE:
        source = path.read_text()
        for call in ("open(", ".read_text(", ".read_bytes(", ".write_text(", "os.environ"):
            assert call not in source, f"{path.name} calls {call}"
