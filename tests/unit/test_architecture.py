"""The layers as an allow-list: every module of ``edgenode`` belongs to a layer, and imports only what its
layer may (standard library modules included), so a new dependency across layers fails here.

- ``core`` and ``messages``: pure logic, no I/O, nothing of the daemon's config;
- ``kernels``: the native kernels core calls (C through ctypes), and their build;
- ``adapters``: one per outside system, each importing the outside library it adapts (``ADAPTS``);
- ``node``: the daemon's orchestration: adapters, core, messages, config; its I/O goes through adapters;
- the process shell (``cli``, ``app``, ``config``, ``logs``, ``resources``);
- ``tools``: developer tools, free to use anything, used by nothing of the daemon.

- ``foxglove``: the ``edgenode-foxglove`` bridge, its own process: its shell and composition over the Zenoh,
  Foxglove and MCAP adapters.

A new package or top-level module is one line in ``LAYERS`` (its name: what it may import); an adapter
for a new outside system is one line in ``ADAPTS``. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgenode"

# The standard library, split by what pure logic may use.
PURE_STDLIB = {"__future__", "abc", "bisect", "collections", "contextlib", "copy", "dataclasses", "enum",
               "functools", "heapq", "itertools", "json", "math", "numbers", "operator", "pathlib", "re",
               "statistics", "string", "struct", "types", "typing", "uuid"}
SYSTEM_STDLIB = {"argparse", "asyncio", "concurrent", "ctypes", "errno", "fcntl", "importlib", "io", "logging",
                 "mmap", "os", "platform", "select", "shutil", "signal", "socket", "stat", "subprocess", "sys",
                 "tempfile", "threading", "time", "zipfile"}
STDLIB = PURE_STDLIB | SYSTEM_STDLIB
ORCHESTRATION_STDLIB = {*PURE_STDLIB, "asyncio", "concurrent", "os", "signal", "threading", "time"}  # I/O: adapters
EVERYTHING = {"*"}

CORE = {"edgenode.core", "edgenode.messages", "edgenode.kernels", *PURE_STDLIB, "numpy", "cv2", "lap", "yaml",
        "zstandard"}
SHELL = {"edgenode.config", "edgenode.logs"}

# layer (a package under edgenode/, or a top-level module): what its modules may import
LAYERS: dict[str, set[str]] = {
    "core": CORE,
    "messages": {"edgenode.messages", *PURE_STDLIB, "numpy", "pycdr2"},
    # loading the library (ctypes) and building it (a compiler in a subprocess, by hand or from the build hook)
    "kernels": {"edgenode.kernels", *PURE_STDLIB, "ctypes", "hashlib", "os", "shlex", "subprocess", "tempfile",
                "numpy"},
    "adapters": {"edgenode.adapters", "edgenode.core", "edgenode.messages", "edgenode.resources", *SHELL, *STDLIB,
                 "numpy", "yaml"},
    "node": {"edgenode.node", "edgenode.adapters", "edgenode.core", "edgenode.messages", *SHELL, *ORCHESTRATION_STDLIB,
             "numpy", "zstandard"},
    "tools": EVERYTHING,
    "__init__": set(),
    "__main__": {"edgenode.entry", *STDLIB},
    # the console script's first step: SIGINT/SIGTERM taken before anything else is imported, then the CLI
    "entry": {"edgenode.cli", *STDLIB},
    "cli": {"edgenode.__init__", "edgenode.app", "edgenode.entry", "edgenode.fleet.command", *SHELL, *STDLIB},
    # ``edgenode status``: the fleet's status over the Zenoh adapter, with the node's zenoh flags
    "fleet": {"edgenode.fleet", "edgenode.adapters.zenoh_bus", "edgenode.core", "edgenode.cli", *SHELL,
              *PURE_STDLIB, "argparse", "os", "sys", "time"},
    # ``edgenode-foxglove``: Zenoh samples relayed to Foxglove clients and MCAP files, in a process of its own
    "foxglove": {"edgenode.foxglove", "edgenode.adapters", "edgenode.core", "edgenode.messages", "edgenode.cli",
                 "edgenode.resources", *SHELL, *STDLIB},
    # zenoh's own logging (RUST_LOG's zenoh targets) is turned on before the node is built; numpy: the process
    # checks the numpy it runs on against the floor before composing (one line, issue 14)
    "app": {"edgenode.node.compose", "edgenode.node.lifecycle", "edgenode.entry", "edgenode.adapters.zenoh_bus",
            "numpy", *SHELL, *STDLIB},
    "config": PURE_STDLIB,
    "logs": {*STDLIB, "structlog"},
    "resources": {"edgenode.messages", *STDLIB},
}

# adapter module: the outside library it adapts (only it may import that library)
ADAPTS: dict[str, set[str]] = {
    "adapters/zenoh_bus.py": {"zenoh"},
    "adapters/tflite.py": {"ai_edge_litert", "tflite_runtime"},
    "adapters/systemd.py": set(),
    "adapters/dmabuf.py": set(),
    "adapters/dma_heap.py": set(),
    "adapters/g2d.py": set(),
    "adapters/camera.py": set(),
    "adapters/delegates.py": set(),
    "adapters/model_file.py": set(),
    "adapters/foxglove.py": {"foxglove"},
    "adapters/mcap_file.py": {"mcap", "mcap_ros2"},
}

# single modules that need one thing more than their layer, and why
ALSO: dict[str, set[str]] = {
    "messages/cdr.py": {"threading"},  # one lock guarding pycdr2's lazy codec build
    "core/bytetrack.py": {"secrets"},  # the random bits of track ids (uuid4), drawn 64 ids at a time
    "node/status.py": {"edgenode.__init__"},  # the version the node's status reports
    "adapters/mcap_file.py": {"edgenode.__init__"},  # the version an MCAP file names as its writer
}

MODULES = sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports(source: str) -> set[str]:
    """Every module ``source`` imports; the package itself (``from edgenode import ...``) is ``edgenode.__init__``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {"edgenode.__init__" if name == "edgenode" else name for name in names}


def allowed(name: str, allow: set[str]) -> bool:
    return "*" in allow or any(name == entry or name.startswith(entry + ".") for entry in allow)


def violations(relative: str, source: str) -> list[str]:
    """What module ``relative`` (a path under edgenode/) imports beyond its allow-list."""
    layer = relative.split("/", maxsplit=1)[0].removesuffix(".py")
    allow = LAYERS[layer] | ADAPTS.get(relative, set()) | ALSO.get(relative, set())
    return sorted(name for name in imports(source) if not allowed(name, allow))


def test_every_module_belongs_to_a_layer_and_every_adapter_says_what_it_adapts() -> None:
    assert {layer_of(path) for path in MODULES} <= set(LAYERS), "a new package: add its line to LAYERS"
    adapters = {str(p.relative_to(PACKAGE)) for p in MODULES if layer_of(p) == "adapters" and p.stem != "__init__"}
    assert adapters == set(ADAPTS), "a new adapter: add its line to ADAPTS"
    assert set(ALSO) <= {str(p.relative_to(PACKAGE)) for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_module_imports_only_what_its_layer_may(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    assert violations(relative, path.read_text()) == [], f"{relative} imports beyond its layer ({layer_of(path)})"


def test_the_standard_library_lists_name_only_standard_modules() -> None:
    assert set(sys.stdlib_module_names) | {"__future__"} >= STDLIB


@pytest.mark.parametrize(("module", "source"), [
    ("core/stats.py", "import threading"),
    ("core/bytetrack.py", "from edgenode.config import TrackSettings"),
    ("core/nms.py", "def f():\n    import zenoh"),
    ("messages/cdr.py", "import zstandard"),
    ("adapters/g2d.py", "import zenoh"),
    ("adapters/camera.py", "from edgenode.node.stages import PostStage"),
    ("node/stages.py", "from edgenode.tools.viewer import main"),
    ("node/compose.py", "import ctypes"),
    ("cli.py", "from edgenode.tools.demo import cli"),
    ("config.py", "import os"),
])
def test_a_new_crossing_fails(module: str, source: str) -> None:
    assert violations(module, source) != []


def test_pure_modules_do_no_file_io() -> None:
    for path in MODULES:
        if layer_of(path) not in ("core", "messages"):
            continue
        source = path.read_text()
        for call in ("open(", ".read_text(", ".read_bytes(", ".write_text(", "os.environ"):
            assert call not in source, f"{path.name} calls {call}"
