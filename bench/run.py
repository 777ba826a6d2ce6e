"""Run benchmarks: ``python bench/run.py [NAME ...]`` (default: all). Prints markdown for BENCHMARKS.md.

Each benchmark is a module ``bench/<name>.py`` with ``main(argv) -> str`` returning its markdown.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["preprocess", "decode", "tracker", "pipeline"]


def available() -> list[str]:
    present = {path.stem for path in HERE.glob("*.py")} - {"run", "common", "__init__"}
    return [name for name in ORDER if name in present] + sorted(present - set(ORDER))


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    names = [arg for arg in argv if not arg.startswith("-")] or available()
    unknown = set(names) - set(available())
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {', '.join(available())}", file=sys.stderr)
        return 2
    for name in names:
        module = importlib.import_module(name)
        print(module.main([arg for arg in argv if arg.startswith("-")]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
