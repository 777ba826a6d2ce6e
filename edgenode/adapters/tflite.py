"""TFLite runtime adapter: the interpreter over ``ai_edge_litert`` or ``tflite_runtime``, with delegates.

The runtime is whichever works with the installed numpy: ``ai_edge_litert`` first under numpy 2
(``tflite_runtime`` 2.14 imports there but breaks when an interpreter is built), the BSP's
``tflite_runtime`` first under numpy 1. A delegate that fails to load or to take the model is
logged with its reason and the model runs on the CPU (XNNPACK) instead. Loading runs one
warm-up invoke, so the first frame does not pay the delegate's graph compile.

A :class:`TFLiteRuntime` is used from one thread at a time (the pipeline calls it from an
executor); its calls block. ``input_view`` is a persistent numpy view of the input tensor that
preprocessing writes in place; ``output_views`` are views valid until the next ``invoke``.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgenode.adapters.delegates import DelegatePlan, apply_environment, plan_delegates
from edgenode.adapters.model_file import ModelFileError, check_model_file
from edgenode.config import ModelSettings
from edgenode.core.model_config import ModelError
from edgenode.core.tensors import TensorSpec
from edgenode.logs import get_logger

RUNTIMES = ("ai_edge_litert", "tflite_runtime")


def _log() -> Any:
    """This module's logger, looked up when used (so tests can capture it)."""
    return get_logger("edgenode.tflite")


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite Python runtime: its name, ``Interpreter`` class and ``load_delegate``."""

    name: str
    interpreter: Any
    load_delegate: Any


def runtime_order(numpy_version: str = np.__version__) -> tuple[str, ...]:
    """Runtimes to try for this numpy: ``tflite_runtime`` 2.14 only works with numpy 1."""
    major = int(numpy_version.split(".", 1)[0])
    return RUNTIMES if major >= 2 else RUNTIMES[::-1]


def import_runtimes(order: Sequence[str] | None = None) -> list[Runtime]:
    """The installed runtimes, in preference order."""
    found = []
    for name in order or runtime_order():
        try:
            module = importlib.import_module(f"{name}.interpreter")
        except ImportError:
            continue
        found.append(Runtime(name, module.Interpreter, module.load_delegate))
    if not found:
        raise ModelError("no TFLite runtime installed: pip install ai-edge-litert (numpy 2), "
                         "or use tflite-runtime with numpy<2")
    return found


def tensor_spec(detail: Mapping[str, Any]) -> TensorSpec:
    """A :class:`TensorSpec` from an interpreter's tensor details."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(str(detail["name"]), tuple(int(s) for s in detail["shape"]), np.dtype(detail["dtype"]),
                      float(scale), int(zero_point), int(detail["index"]))


class TFLiteRuntime:
    """A loaded model: its input/output specs, the input to write, ``invoke`` and the outputs."""

    def __init__(self, interpreter: Any, runtime: str, delegate: str | None, threads: int = 0,
                 spare: Callable[[], Any] | None = None) -> None:
        self._interpreter = interpreter
        self.runtime = runtime
        self.delegate = delegate
        self.threads = threads  # the interpreter's CPU threads (XNNPACK and CPU ops)
        self._spare = spare  # a new CPU interpreter of the same model, to try a resize on first
        self._views()
        # The public invoke() refuses to run while numpy views of tensors exist (it cannot know
        # whether the arena will move). The arena only moves in allocate_tensors(), which this
        # adapter calls after loading only in resize_batch, taking new views, so the input views stay valid.
        self._invoke = self._invoker()

    def _invoker(self) -> Any:
        wrapper = getattr(self._interpreter, "_interpreter", None)
        return getattr(wrapper, "Invoke", None) or self._interpreter.invoke

    def _views(self) -> None:
        interpreter = self._interpreter
        self.inputs = [tensor_spec(d) for d in interpreter.get_input_details()]
        self.outputs = [tensor_spec(d) for d in interpreter.get_output_details()]
        self._input_views = [interpreter.tensor(spec.index)() for spec in self.inputs]
        self._output_getters = [interpreter.tensor(spec.index) for spec in self.outputs]

    def resize_batch(self, batch: int) -> None:
        """Make input 0 take ``batch`` frames (the outputs follow); ModelError when the model cannot, and it
        stays as it was. Earlier :meth:`input_view` arrays are invalid afterwards: take new ones."""
        spec = self.inputs[0]
        interpreter = self._interpreter
        shape = [batch, *spec.shape[1:]]
        if self._spare is not None and list(spec.shape) != shape:
            # Tried on a spare interpreter first: after a failed allocate_tensors, tflite-runtime 2.14's
            # interpreter crashes (SIGSEGV) on the next one, so the one that serves must never fail it.
            spare = self._spare()
            try:
                spare.resize_tensor_input(spec.index, shape)
                spare.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"the model's input cannot take {batch} frames: {_one_line(exc)}") from None
            finally:
                del spare
        # allocate_tensors refuses while anything holds the interpreter's wrapper (a numpy view of the arena,
        # which moves, or our bound Invoke)
        self._input_views, self._invoke = [], None
        try:
            interpreter.resize_tensor_input(spec.index, shape)
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            interpreter.resize_tensor_input(spec.index, list(spec.shape))
            interpreter.allocate_tensors()
            raise ModelError(f"the model's input cannot take {batch} frames: {_one_line(exc)}") from None
        finally:
            self._views()
            self._invoke = self._invoker()

    def input_view(self, index: int = 0) -> np.ndarray:
        """A persistent, writable view of input ``index``: fill it, then :meth:`invoke`."""
        view: np.ndarray = self._input_views[index]
        return view

    def set_input(self, values: np.ndarray, index: int = 0) -> None:
        """Copy ``values`` into input ``index`` (same shape; cast to the input's type)."""
        np.copyto(self._input_views[index], values, casting="unsafe")

    def invoke(self) -> None:
        """Run the model (blocking; releases the GIL while it runs)."""
        self._invoke()

    def output_views(self) -> list[np.ndarray]:
        """Zero-copy views of the outputs, in output order, valid until the next :meth:`invoke`."""
        return [get() for get in self._output_getters]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and systemd narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _BrokenRuntime(Exception):
    """This Python runtime cannot build interpreters here (tflite_runtime 2.14 under numpy 2)."""


def load_runtime(path: Path, settings: ModelSettings, *, environ: Mapping[str, str] | None = None,
                 descriptors: Path | None = None, runtimes: Sequence[Runtime] | None = None) -> TFLiteRuntime:
    """Load ``path`` with the delegate ``settings`` ask for (CPU when it cannot load) and warm it up."""
    check_model_file(path)
    cores = available_cores()
    threads = settings.threads or cores
    if threads > cores:  # more threads than cores only makes them wait for each other, every invoke
        _log().warning(f"--threads {threads} is more than the {cores} cores this process may run on; using {cores}")
        threads = cores
    plans = plan_delegates(settings, environ, descriptors)
    problems = []
    for runtime in runtimes or import_runtimes():
        try:
            return _load(runtime, path, plans, threads)
        except _BrokenRuntime as exc:
            problems.append(f"{runtime.name}: {exc}")
    raise ModelError(f"no TFLite runtime works with numpy {np.__version__} ({'; '.join(problems)}); "
                     "pip install ai-edge-litert, or numpy<2 for tflite-runtime")


def _load(runtime: Runtime, path: Path, plans: Sequence[DelegatePlan], threads: int) -> TFLiteRuntime:
    for plan in plans:
        loaded = _with_delegate(runtime, path, plan, threads)
        if loaded is not None:
            return loaded
    interpreter = _interpreter(runtime, path, threads, [])
    _warm_up(interpreter)
    _log().info(f"model {path.name} on the CPU (XNNPACK, {threads} threads, {runtime.name})")
    return TFLiteRuntime(interpreter, runtime.name, None, threads, spare=_spare(runtime, path))


def _interpreter(runtime: Runtime, path: Path, threads: int, delegates: list[Any]) -> Any:
    try:
        interpreter = runtime.interpreter(model_path=str(path), num_threads=threads,
                                          experimental_delegates=delegates or None)
        interpreter.allocate_tensors()
    except (SystemError, AttributeError, ImportError) as exc:
        raise _BrokenRuntime(f"{type(exc).__name__}: {_one_line(exc)}") from None
    except ValueError as exc:
        if delegates:
            raise
        raise ModelFileError(f"--model {path} is not a valid TFLite model, truncated or corrupt? "
                             f"({str(exc).splitlines()[0]})") from None
    except RuntimeError as exc:
        if delegates:
            raise
        raise ModelFileError(f"--model {path}: TFLite cannot prepare it ({str(exc).splitlines()[0]})") from None
    return interpreter


def _spare(runtime: Runtime, path: Path) -> Callable[[], Any]:
    """A maker of new CPU interpreters of the model at ``path`` (one thread, tensors not allocated)."""
    return lambda: runtime.interpreter(model_path=str(path), num_threads=1)


def _warm_up(interpreter: Any) -> None:
    """One invoke at load (zeros in), as the reference node does: compiles delegate graphs now."""
    wrapper = getattr(interpreter, "_interpreter", None)
    (getattr(wrapper, "Invoke", None) or interpreter.invoke)()


def _with_delegate(runtime: Runtime, path: Path, plan: DelegatePlan, threads: int) -> TFLiteRuntime | None:
    """The model on ``plan``'s delegate, or ``None`` (logged) when it does not load or run."""
    fallback = "running on the CPU with XNNPACK"
    if plan.library is None:
        _log().warning(f"delegate {plan.name}: {plan.descriptor.library} is not installed "
                    f"(searched {', '.join(plan.descriptor.search_paths)}); {fallback}")
        return None
    problem = external_delegate_problem(plan.library)
    if problem:
        _log().warning(f"delegate {plan.name}: {problem}; {fallback}")
        return None
    apply_environment(plan.environment)
    try:
        delegate = runtime.load_delegate(str(plan.library), dict(plan.options))
    except (OSError, ValueError, RuntimeError) as exc:
        _log().warning(f"delegate {plan.name} ({plan.library}) failed to load: {_one_line(exc)}; {fallback}")
        return None
    try:
        interpreter = _interpreter(runtime, path, threads, [delegate])
        _warm_up(interpreter)
    except (ValueError, RuntimeError) as exc:
        _log().warning(f"delegate {plan.name} ({plan.library}) cannot run this model: {_one_line(exc)}; {fallback}")
        return None
    _log().info(f"model {path.name} on delegate {plan.name} ({plan.library}, {runtime.name})")
    return TFLiteRuntime(interpreter, runtime.name, plan.name, threads, spare=_spare(runtime, path))


def external_delegate_problem(library: Path) -> str:
    """Why ``library`` cannot be a TFLite external delegate (``""`` when it can be tried)."""
    try:
        handle = ctypes.CDLL(str(library))
    except OSError as exc:
        return f"cannot load {library}: {_one_line(exc)}"
    missing = [name for name in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")
               if not hasattr(handle, name)]
    if missing:
        return f"{library} is not a TFLite external delegate (no {' or '.join(missing)})"
    return ""


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (runtimes append the delegate's own report on a second)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return ": ".join(lines) if lines else type(exc).__name__
