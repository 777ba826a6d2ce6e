"""Shared benchmark helpers: interleaved side-by-side timing, machine description, markdown rows.

Machines here are noisy (2 vCPUs shared with other work), so every benchmark times its
contenders interleaved in one run (A, B, A, B, ...) and reports the ratio of medians, which
survives noise far better than absolute times.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    """Wall times of one contender, in seconds."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, Timing]:
    """Time each contender ``repeats`` times, alternating between them so noise hits all alike.

    The order rotates every round, so that no contender always runs first: on these machines the
    first of a round ran 3-10% slower than the same code in another slot (measured A/A, issue 17).
    """
    for _ in range(warmup):
        for run in contenders.values():
            run()
    timings = {name: Timing(name) for name in contenders}
    entries = list(contenders.items())
    for round_index in range(repeats):
        shift = round_index % len(entries)
        for name, run in entries[shift:] + entries[:shift]:
            start = time.perf_counter()
            run()
            timings[name].samples.append(time.perf_counter() - start)
    return timings


def numpy_call() -> Callable[[], object]:
    """A contender that makes one small numpy call (adding two 10-element float64 arrays): the unit
    in which a benchmark can state what a native contender's time buys in numpy calls."""
    import numpy as np

    ten = np.zeros(10)
    return lambda: ten + ten


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), e.g. ``AMD EPYC`` or ``Intel(R) Xeon(R) ...``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> str:
    """One line describing this machine: CPU model, cores, kernel, Python."""
    return f"{cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(title: str, command: Sequence[str] | None = None) -> str:
    """Markdown heading block: command, date, machine, revision."""
    shown = " ".join(command if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]])
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"### {title}\n\n- command: `{shown}`\n- date: {today}\n- machine: {machine()}\n"
            f"- revision: {git_revision()}\n")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save(name: str, markdown: str, data: object) -> Path:
    """Write ``bench/results/<name>.md`` and ``.json``; returns the markdown path."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=_jsonable))
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path


def _jsonable(value: object) -> object:
    if isinstance(value, Timing):
        return asdict(value)
    return str(value)
