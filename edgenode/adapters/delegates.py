"""TFLite delegate descriptors (``delegates/*.yaml``) and the choice of delegate from the settings.

``--delegate NAME`` picks a shipped descriptor, ``--delegate /path/lib.so`` a library (with the
options and environment of the descriptor naming that library, if one does), and
``--delegate FILE.yaml`` a descriptor of one's own; without ``--delegate``, ``--engine npu``
tries the shipped NPU descriptors whose library is installed and ``--engine cpu`` none. A
descriptor's ``cache`` section (the i.MX8M Plus NPU graph cache) applies only when the cache
directory can be created and written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from edgenode.config import ModelSettings
from edgenode.core.model_config import ModelError
from edgenode.logs import get_logger
from edgenode.resources import data_path

NPU_ORDER = ("vx", "neutron", "ethosu")
DEFAULT_SEARCH_PATHS = ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/usr/lib/aarch64-linux-gnu")


def _log() -> Any:
    """This module's logger, looked up when used (so tests can capture it)."""
    return get_logger("edgenode.delegates")


class DelegateError(ModelError):
    """A ``--delegate`` value or delegate descriptor that cannot be used."""


@dataclass(frozen=True)
class DelegateDescriptor:
    """One accelerator: its library, options, environment and optional cache settings."""

    name: str
    library: str
    description: str = ""
    search_paths: tuple[str, ...] = DEFAULT_SEARCH_PATHS
    devices: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    cache_options: Mapping[str, str] = field(default_factory=dict)
    cache_environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DelegatePlan:
    """A delegate to load: ``library`` is a path, or ``None`` when it is not installed."""

    descriptor: DelegateDescriptor
    library: Path | None
    options: Mapping[str, str]
    environment: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.descriptor.name


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DelegateError(f"{where} must be a mapping of names to values")
    return {str(k): str(v) for k, v in value.items()}


def parse_descriptor(data: Any, source: str) -> DelegateDescriptor:
    """A descriptor from parsed YAML; raises :class:`DelegateError` naming the bad key."""
    if not isinstance(data, Mapping) or not data.get("name") or not data.get("library"):
        raise DelegateError(f"delegate descriptor {source} needs at least 'name' and 'library'")
    cache = data.get("cache") or {}
    if not isinstance(cache, Mapping):
        raise DelegateError(f"delegate descriptor {source}: 'cache' must be a mapping")
    paths = data.get("search_paths") or DEFAULT_SEARCH_PATHS
    devices = data.get("devices") or ()
    return DelegateDescriptor(
        name=str(data["name"]), library=str(data["library"]), description=str(data.get("description", "")),
        search_paths=tuple(str(p) for p in paths), devices=tuple(str(d) for d in devices),
        options=_strings(data.get("options"), f"{source} options"),
        environment=_strings(data.get("environment"), f"{source} environment"),
        cache_options=_strings(cache.get("options"), f"{source} cache.options"),
        cache_environment=_strings(cache.get("environment"), f"{source} cache.environment"))


def load_descriptor(path: Path) -> DelegateDescriptor:
    """Read one descriptor file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DelegateError(f"--delegate {path}: no such descriptor file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DelegateError(f"--delegate {path}: cannot read the descriptor ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return parse_descriptor(data, str(path))


def shipped_descriptors(folder: Path | None = None) -> dict[str, DelegateDescriptor]:
    """The descriptors of ``delegates/`` (or ``folder``), by name."""
    root = folder if folder is not None else data_path("delegates")
    found = {}
    for path in sorted(root.glob("*.yaml")):
        descriptor = load_descriptor(path)
        found[descriptor.name] = descriptor
    return found


def find_library(descriptor: DelegateDescriptor, environ: Mapping[str, str]) -> Path | None:
    """The descriptor's library file: an absolute path as is, a name in its search paths or LD_LIBRARY_PATH."""
    library = Path(descriptor.library)
    if library.is_absolute() or "/" in descriptor.library:
        return library if library.is_file() else None
    extra = [p for p in environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    for folder in (*descriptor.search_paths, *extra):
        candidate = Path(folder) / descriptor.library
        if candidate.is_file():
            return candidate
    return None


def _is_library(value: str) -> bool:
    name = Path(value).name
    return "/" in value or name.endswith(".so") or ".so." in name


def plan_delegates(settings: ModelSettings, environ: Mapping[str, str] | None = None,
                   folder: Path | None = None) -> list[DelegatePlan]:
    """The delegates to try, in order, for ``--delegate``/``--engine`` (empty: CPU only)."""
    environ = os.environ if environ is None else environ
    choice = settings.delegate.strip()
    if not choice:
        if settings.engine != "npu":
            return []
        known = shipped_descriptors(folder)
        plans = [_plan(known[name], find_library(known[name], environ), settings.cache_dir)
                 for name in NPU_ORDER if name in known]
        present = [plan for plan in plans if plan.library is not None]
        if not present:
            looked = ", ".join(known[name].library for name in NPU_ORDER if name in known)
            _log().info(f"no NPU delegate installed (looked for {looked}); running on the CPU with XNNPACK")
        return present
    if choice.endswith((".yaml", ".yml")):
        descriptor = load_descriptor(Path(choice))
        return [_plan(descriptor, find_library(descriptor, environ), settings.cache_dir)]
    if _is_library(choice):
        path = Path(choice)
        if "/" in choice and not path.exists():
            raise DelegateError(f"--delegate {choice}: no such file")
        if path.is_dir():
            raise DelegateError(f"--delegate {choice} is a directory, not a delegate library")
        known = shipped_descriptors(folder)
        base = next((d for d in known.values() if Path(d.library).name == path.name), None)
        descriptor = replace(base, library=choice) if base is not None else DelegateDescriptor(path.stem, choice)
        return [_plan(descriptor, find_library(descriptor, environ), settings.cache_dir)]
    known = shipped_descriptors(folder)
    if choice not in known:
        raise DelegateError(f"--delegate {choice}: not a known delegate ({', '.join(sorted(known))}), "
                            "a .so path or a .yaml descriptor")
    return [_plan(known[choice], find_library(known[choice], environ), settings.cache_dir)]


def _plan(descriptor: DelegateDescriptor, library: Path | None, cache_dir: Path | None) -> DelegatePlan:
    options, environment = dict(descriptor.options), dict(descriptor.environment)
    if library is not None and (descriptor.cache_environment or descriptor.cache_options):
        folder = usable_cache_dir(cache_dir, descriptor.name)
        if folder is not None:
            options.update({k: v.replace("{dir}", str(folder)) for k, v in descriptor.cache_options.items()})
            environment.update({k: v.replace("{dir}", str(folder)) for k, v in descriptor.cache_environment.items()})
    return DelegatePlan(descriptor, library, options, environment)


PROBE_BYTES = 64 * 1024


def usable_cache_dir(cache_dir: Path | None, name: str) -> Path | None:
    """``cache_dir/name``, created if missing, or ``None`` (logged) when it cannot be written."""
    if cache_dir is None:
        _log().warning(f"no cache directory: delegate {name} runs without its compiled-graph cache")
        return None
    folder = cache_dir / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-") as probe:
            probe.write(bytes(PROBE_BYTES))  # a full file system still lets an empty file be made
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        _log().warning(f"cache directory {folder} is not writable ({exc.strerror or exc}); "
                    f"delegate {name} runs without its compiled-graph cache (--cache-dir to choose another)")
        return None
    return folder


def apply_environment(environment: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> None:
    """Set a delegate's variables before its library loads; a variable already set is left alone."""
    environ = os.environ if environ is None else environ
    for key, value in environment.items():
        if key in environ and environ[key] != value:
            _log().info(f"keeping {key}={environ[key]} from the environment (the delegate descriptor says {value})")
            continue
        environ[key] = value


def describe(plans: Sequence[DelegatePlan]) -> str:
    """``vx (/usr/lib/libvx_delegate.so)`` for logs."""
    return ", ".join(f"{p.name} ({p.library or p.descriptor.library})" for p in plans) or "none"
