"""Wheel build hook: compiles edgenode's native kernels (edgenode/kernels) into the wheel.

The library is plain C called through ctypes (no Python headers), so the wheel is tagged
``py3-none-<platform>``: one build per machine architecture serves every CPython version.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class KernelsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        # The build module by path: importing the edgenode package would need its dependencies.
        path = Path(self.root) / "edgenode" / "kernels" / "build.py"
        spec = importlib.util.spec_from_file_location("_edgenode_kernels_build", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        library = module.build()
        build_data["pure_python"] = False
        build_data["infer_tag"] = False
        build_data["tag"] = "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["artifacts"].append(str(library.relative_to(self.root)))
