"""Runtimes: turn a module into something to time — PyTorch eager, torch.compile, ONNX Runtime, OpenVINO, ExecuTorch.

A runtime is one :class:`Runtime` object in :data:`RUNTIMES` (:func:`register_runtime` adds one):
its name and summary, why it cannot run here (:meth:`Runtime.unavailable`), how it prepares a
model, and the few facts the run loop, the workers, ``compare`` and ``breakdown`` need about it
(whether it may run in a fresh worker, whether its batch may be halved on out-of-memory, whether
a per-layer breakdown of it means anything). Nothing outside this module names a runtime: adding
one is a :class:`Runtime` and its tests.

:func:`prepare` returns a :class:`Prepared`: ``module`` is an ``nn.Module`` whose ``forward`` runs
one inference through the runtime (so the timing engine treats every runtime alike), ``rebuild``
makes a fresh instance of it (fresh allocations for the next sampling round), and ``info`` records
how it was made (compile or export seconds, exporter, opset, graph optimisation level, …).

A model that a runtime cannot take (export or compile error) raises :class:`Unsupported` with the
reason; the runner records the target as ``unsupported`` and goes on with the suite. A runtime
that cannot run on this machine at all (ONNX Runtime without its CUDA execution provider) is
named by :func:`runtime_unavailable`: its rows are ``unsupported`` and the other runtimes of the
same run are measured. Running out of device memory is never "unsupported": it propagates as
itself, so the caller can retry at a smaller batch or record a failure.

On CUDA, ONNX Runtime is fed through IOBinding: input and output stay in device buffers (a plain
``session.run`` would copy the input to the host and the output back on every timed call), and
the session must have put ``CUDAExecutionProvider`` first, else it is refused rather than timed on
the CPU while recorded as cuda.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError, first_line
from .timing import is_out_of_memory

__all__ = [
    "RUNTIMES",
    "Runtime",
    "register_runtime",
    "get_runtime",
    "MEMORY_FORMATS",
    "DTYPES",
    "Unsupported",
    "Prepared",
    "prepare",
    "check_runtime",
    "export_onnx",
    "OrtModule",
    "runtime_unavailable",
    "OutputMismatch",
    "check_outputs",
    "graph_runtimes",
]

MEMORY_FORMATS = ("contiguous", "channels_last")
#: Half precision is applied by converting weights and inputs (``module.to(dtype)``), not autocast.
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ONNX_OPSET = 17


class Unsupported(Exception):
    """The runtime cannot run this model; the message is the reason recorded in the results."""


@dataclass
class Prepared:
    """A model made ready by a runtime: what to time, how to make a fresh instance, how it was made."""

    runtime: str
    module: nn.Module
    rebuild: Callable[[], nn.Module]
    info: dict[str, Any] = field(default_factory=dict)

    def measure(self, x: Tensor, *, peak_memory: bool = True, **options: Any):
        """Time ``module(x)`` with :func:`fnbench.timing.measure` as this runtime requires.

        Runtimes whose rounds deep-copy the module (eager: fresh allocations, no re-initialisation
        cost) pass no ``rebuild``; the others make a fresh instance their own way. Only a runtime
        that takes any batch may slice its input to a smaller batch on out-of-memory: compiled and
        exported graphs have the batch built in. ``options`` are the rest of ``measure``'s keywords
        (device, threads, budget, …); the module is already BN-folded.
        """
        from . import timing  # looked up at call time, so a test's stand-in for measure is used

        return timing.measure(self.module, x, **self._rounds(peak_memory, options))

    def sampler(self, x: Tensor, *, peak_memory: bool = True, **options: Any):
        """A :func:`fnbench.timing.open_sampler` for rounds taken one at a time, made as :meth:`measure`
        makes its rounds (a fresh instance the runtime's way; the batch halved only where it may be);
        the peak memory of a forward is read if ``peak_memory`` and the runtime allows it."""
        from . import timing

        return timing.open_sampler(self.module, x, **self._rounds(peak_memory, options))

    def _rounds(self, peak_memory: bool, options: dict[str, Any]) -> dict[str, Any]:
        """How this runtime's rounds are taken (a fresh instance, halving, peak memory), with ``options``."""
        rt = get_runtime(self.runtime)
        return dict(
            rebuild=None if rt.deepcopy_rounds else self.rebuild,
            fold=False,
            halve_on_oom=rt.halve_on_oom,
            peak_memory=peak_memory and _peak_memory_readable(rt, options.get("device", "cpu")),
            **options,
        )


def _peak_memory_readable(rt: Runtime, device: Any) -> bool:
    """Can a forward's peak memory be read under ``rt``: from CUDA's allocator, or on a CPU from the
    tensors of a runtime whose forward is PyTorch operators (not a foreign runtime's own allocator)."""
    return rt.torch_ops or torch.device(device).type == "cuda"


def _available(device: str, dtype: str) -> str | None:
    return None


def _torch_version() -> str | None:
    return torch.__version__


@dataclass(frozen=True)
class Runtime:
    """One runtime: how it prepares a model, and what the rest of fnbench must know about it.

    ``make(build, example, info, device=, threads=, memory_format=, dtype=)`` returns a
    :class:`Prepared` (``info`` holds the record's common keys; the runtime adds its own) or
    raises :class:`Unsupported`. ``why_unavailable(device, dtype)`` says why it cannot run here
    (None: it can). ``devices`` are the device kinds it serves at all (another is bad input, with
    ``devices_hint`` saying what to use). ``fresh_worker``: may it be measured on fresh worker
    processes (False: preparing it per worker costs too much, it is measured in the run's
    process). ``deepcopy_rounds``: rounds deep-copy the prepared module rather than calling
    ``rebuild``. ``halve_on_oom``: may the batch be halved on out-of-memory. ``no_breakdown``:
    why a per-layer breakdown means nothing under it (None: it can be broken down).
    ``make_graph(data, info, device=, threads=, dtype=)`` prepares an ONNX graph given as such
    (a user's ``.onnx`` target) with nothing exported and no eager model to check against; None:
    the runtime needs a PyTorch module. ``torch_ops``: its forward runs as PyTorch operators one
    by one, so the peak memory of a forward can be read from the tensors they create (on a CPU;
    CUDA's allocator counts for every runtime that allocates through it).
    """

    name: str
    summary: str
    make: Callable[..., Prepared]
    why_unavailable: Callable[[str, str], str | None] = _available
    version: Callable[[], str | None] = _torch_version
    devices: tuple[str, ...] = ("cpu", "cuda")
    devices_hint: str = ""
    fresh_worker: bool = True
    deepcopy_rounds: bool = False
    halve_on_oom: bool = False
    no_breakdown: str | None = None
    make_graph: Callable[..., Prepared] | None = None
    torch_ops: bool = False

    def unavailable(self, device: str = "cpu", dtype: str = "float32") -> str | None:
        """Why this runtime cannot run on ``device`` here with ``dtype`` (None when it can)."""
        return self.why_unavailable(device, dtype)

    def prepare(self, build: Callable[[], nn.Module], example: Tensor, **options: Any) -> Prepared:
        """:func:`prepare` under this runtime (``options``: device, threads, memory_format, dtype)."""
        return prepare(self.name, build, example, **options)


#: Every runtime, by name, in the order ``fnbench list runtimes`` shows them.
RUNTIMES: dict[str, Runtime] = {}


def register_runtime(runtime: Runtime, *, replace: bool = False) -> Runtime:
    """Add ``runtime`` to :data:`RUNTIMES`; a name already there is refused unless ``replace``."""
    if runtime.name in RUNTIMES and not replace:
        raise ValueError(f"runtime {runtime.name!r} is already registered")
    RUNTIMES[runtime.name] = runtime
    return runtime


def get_runtime(name: str) -> Runtime:
    """The registered runtime ``name``; an unknown name is bad input."""
    if name not in RUNTIMES:
        raise UserError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def check_runtime(runtime: str, device: str, *, memory_format: str = "contiguous", dtype: str = "float32") -> None:
    """Refuse combinations this machine or runtime cannot serve, before any work is done."""
    rt = get_runtime(runtime)
    if device not in rt.devices:
        raise UserError(f"--runtime {runtime} does not run on {device}; {rt.devices_hint or 'use another runtime'}")
    if memory_format not in MEMORY_FORMATS:
        raise UserError(f"unknown memory format {memory_format!r}; use one of {', '.join(MEMORY_FORMATS)}")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if dtype != "float32" and device != "cuda":
        raise UserError(f"--dtype {dtype} is measured on cuda only; on {device} use float32 (the paper's set-up)")


def runtime_unavailable(runtime: str, device: str, *, dtype: str = "float32") -> str | None:
    """Why ``runtime`` cannot run on ``device`` here (with ``dtype``), or None when it can.

    A run lists the reason on that runtime's rows (``unsupported``) and measures its other
    runtimes; a run with no runtime left refuses to start.
    """
    return get_runtime(runtime).unavailable(device, dtype)


def _onnxruntime_unavailable(device: str, dtype: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return f"onnxruntime cannot be imported ({first_line(e)}); install onnxruntime or use --runtime eager"
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return (
                f"onnxruntime {ort.__version__} here has no CUDA execution provider; install the "
                "onnxruntime-gpu package instead of onnxruntime, or use --runtime eager"
            )
        if dtype == "bfloat16":
            return (
                "bfloat16 is not measured under ONNX Runtime (numpy has no bfloat16 to bind and the CUDA "
                "execution provider lacks bfloat16 kernels for several ops); use --dtype float16 or --runtime eager"
            )
    return None


def _fresh_dynamo() -> None:
    """Forget every earlier compilation, and make dynamo's recompile limit an error.

    The Table-1 stacks are all ``nn.Sequential``: they share one ``forward`` code object, on
    which dynamo keeps one compiled entry per guard set. Without a reset, the targets of a suite
    pile up there until the recompile limit, after which dynamo silently runs the rest in eager
    while they are recorded as compiled. A reset per target starts each from nothing; should a
    target still hit the limit, ``fail_on_recompile_limit_hit`` turns that into an error.
    """
    import torch._dynamo

    torch._dynamo.reset()
    cfg = torch._dynamo.config
    if hasattr(cfg, "fail_on_recompile_limit_hit"):
        cfg.fail_on_recompile_limit_hit = True
    elif hasattr(cfg, "fail_on_cache_limit_hit"):  # the name before torch 2.6
        cfg.fail_on_cache_limit_hit = True


def _place(module: nn.Module, device: str, memory_format: str, dtype: torch.dtype) -> nn.Module:
    module = module.to(device=device, dtype=dtype)
    if memory_format == "channels_last":
        module = module.to(memory_format=torch.channels_last)
    return module.eval()


def export_onnx(module: nn.Module, example: Tensor) -> tuple[bytes, dict[str, Any]]:
    """Export ``module`` to an ONNX model (bytes) and say how.

    The TorchScript-based exporter is used where torch still has it: it is fast and writes
    exactly the module's parameters as initializers. The dynamo exporter is the fallback.
    PConv's slicing forward exports as Slice/Conv/Slice/Concat (ONNX has no in-place write).
    """
    import onnx

    t0 = time.perf_counter()
    errors = []
    for dynamo in (False, True):
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                logging.getLogger("torch.onnx").setLevel(logging.ERROR)
                if dynamo:
                    program = torch.onnx.export(module, (example,), dynamo=True, opset_version=18)
                    data = program.model_proto.SerializeToString()
                else:
                    torch.onnx.export(
                        module,
                        (example,),
                        buf,
                        dynamo=False,
                        opset_version=ONNX_OPSET,
                        input_names=["input"],
                        output_names=["output"],
                        do_constant_folding=True,
                    )
                    data = buf.getvalue()
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model)
        except Exception as e:  # noqa: BLE001 — exporters raise many types; the reason is recorded
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {first_line(e)}")
            continue
        info = {
            "exporter": "dynamo" if dynamo else "torchscript",
            "opset": model.opset_import[0].version,
            "export_s": time.perf_counter() - t0,
            "onnx_nodes": len(model.graph.node),
            "onnx_bytes": len(data),
        }
        return data, info
    raise Unsupported("ONNX export failed: " + "; ".join(errors))


class OrtModule(nn.Module):
    """An ONNX Runtime session behind an ``nn.Module`` face (tensors in, tensors out).

    On cuda the input and output are bound to device buffers (IOBinding): a call runs the graph
    on the tensors where they are, with no host round trip. The output buffer is allocated once
    per instance and reused (the binding is remade only when a different input tensor arrives).
    """

    def __init__(self, model: bytes, *, device: str, threads: int):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if device == "cuda":
            idx = torch.cuda.current_device() if torch.cuda.is_available() else 0
            providers: list[Any] = [("CUDAExecutionProvider", {"device_id": idx})]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(model, opts, providers=providers)
        check_providers(self.session.get_providers(), device)
        if not self.session.get_inputs():
            raise Unsupported("the exported ONNX graph does not depend on its input (the tracer folded it away)")
        self.input_name = self.session.get_inputs()[0].name
        out = self.session.get_outputs()[0]
        self.output_name = out.name
        self.output_shape = list(out.shape)
        self.device = device
        self.provider = self.session.get_providers()[0]
        self.graph_optimization_level = str(opts.graph_optimization_level).rsplit(".", 1)[-1]
        self.io_binding = device == "cuda"
        self._binding: Any = None
        self._bound: tuple | None = None
        self._out: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.io_binding:
            out = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0]
            return torch.from_numpy(out).to(x.device)
        x = x.detach().contiguous()
        key = (x.data_ptr(), tuple(x.shape), x.dtype)
        if self._bound != key:
            self._bind(x)
            self._bound = key
        self.session.run_with_iobinding(self._binding)  # ORT synchronises its stream before returning
        return self._out

    def _bind(self, x: Tensor) -> None:
        import numpy as np

        np_types = {torch.float32: np.float32, torch.float16: np.float16}
        if x.dtype not in np_types:
            raise Unsupported(f"ONNX Runtime IOBinding takes float32 or float16 tensors here, not {x.dtype}")
        if not all(isinstance(d, int) for d in self.output_shape):
            raise Unsupported(f"the exported graph's output shape {self.output_shape} is not static")
        kind = "cuda" if x.device.type == "cuda" else "cpu"
        dev_id = x.device.index or 0
        out = torch.empty(self.output_shape, dtype=x.dtype, device=x.device)
        io = self.session.io_binding()
        io.bind_input(self.input_name, kind, dev_id, np_types[x.dtype], list(x.shape), x.data_ptr())
        io.bind_output(self.output_name, kind, dev_id, np_types[x.dtype], list(out.shape), out.data_ptr())
        self._binding, self._out = io, out


def check_providers(providers: list[str], device: str) -> None:
    """Refuse a session that would not run where it is recorded: on cuda, CUDA's provider must come first.

    ONNX Runtime falls back to the CPU provider without an error when the CUDA provider fails to
    load (missing CUDA or cuDNN libraries); timing that session would record CPU numbers as cuda.
    """
    if device == "cuda" and (not providers or providers[0] != "CUDAExecutionProvider"):
        raise Unsupported(
            f"ONNX Runtime's session providers are {providers or 'none'}, not CUDAExecutionProvider "
            "first: it would run on the CPU (check the CUDA and cuDNN libraries onnxruntime-gpu needs)"
        )


def prepare(
    runtime: str,
    build: Callable[[], nn.Module],
    example: Tensor,
    *,
    device: str = "cpu",
    threads: int = 1,
    memory_format: str = "contiguous",
    dtype: str = "float32",
    onnx_model: bytes | None = None,
) -> Prepared:
    """Prepare the model from ``build()`` for ``runtime``; raise :class:`Unsupported` if it cannot run.

    ``example`` must already be on ``device`` with the right dtype and memory format.
    ``onnx_model``: an ONNX graph given as such (an ``.onnx`` target), run as it is by a runtime
    that takes graphs (:attr:`Runtime.make_graph`), not exported from ``build()``.
    """
    check_runtime(runtime, device, memory_format=memory_format, dtype=dtype)
    info: dict[str, Any] = {
        "runtime": runtime,
        "memory_format": memory_format,
        "dtype": dtype,
        "dtype_method": "converted weights" if dtype != "float32" else None,
    }
    rt = get_runtime(runtime)
    reason = rt.unavailable(device, dtype)
    if reason:
        raise Unsupported(reason)
    if onnx_model is not None:
        if rt.make_graph is None:
            raise Unsupported(f"{runtime} needs a PyTorch module, not an ONNX graph; use --runtime onnxruntime")
        info.update(memory_format="contiguous", dtype_method=None)
        return rt.make_graph(onnx_model, info, device=device, threads=threads, dtype=dtype)
    return rt.make(build, example, info, device=device, threads=threads, memory_format=memory_format, dtype=dtype)


def _placer(build: Callable[[], nn.Module], device: str, memory_format: str, dtype: str) -> Callable[[], nn.Module]:
    return lambda: _place(build(), device, memory_format, DTYPES[dtype])


def _make_eager(build, example, info, *, device, threads, memory_format, dtype) -> Prepared:
    placed = _placer(build, device, memory_format, dtype)
    return Prepared("eager", placed(), placed, info)


def _make_compile(build, example, info, *, device, threads, memory_format, dtype) -> Prepared:
    placed = _placer(build, device, memory_format, dtype)
    _fresh_dynamo()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = torch.compile(placed(), backend="inductor", dynamic=False)
            with torch.inference_mode():
                compiled(example)  # compilation happens here
    except Exception as e:  # noqa: BLE001 — inductor raises many types; the reason is recorded
        if is_out_of_memory(e):
            raise  # the device ran out of memory: a smaller batch may fit, the model is not at fault
        raise Unsupported(f"torch.compile failed: {first_line(e)}") from None
    info.update(backend="inductor", compile_s=time.perf_counter() - t0, dynamo_reset=True)
    # Rounds reuse the compiled module (compiling a fresh instance costs seconds); inputs are
    # still fresh per round.
    return Prepared("compile", compiled, lambda: compiled, info)


def reference_on_host(build: Callable[[], nn.Module], example: Tensor) -> tuple[nn.Module, Tensor]:
    """The FP32, NCHW, CPU copy of a model and its input that an exporter traces and a check compares to."""
    return _place(build(), "cpu", "contiguous", torch.float32), example.detach().float().cpu()


def probe_input(example: Tensor) -> Tensor:
    """A seeded input of ``example``'s shape, dtype and device that differs from it.

    An exporter can bake a value it could not trace into a constant and still write a valid graph
    that reproduces the export input exactly; a forward on a *different* input, against eager,
    catches such a wrong graph before it is ever timed.
    """
    return torch.randn(example.shape, generator=torch.Generator().manual_seed(12345)).to(example.device, example.dtype)


def _make_onnxruntime(build, example, info, *, device, threads, memory_format, dtype) -> Prepared:
    if memory_format != "contiguous":
        raise Unsupported(
            "ONNX models are NCHW; ONNX Runtime picks its own internal layout (use --memory-format contiguous)"
        )
    # On cuda the graph is exported from the model as it runs there, in its dtype (a float16
    # model exports a float16 graph); on the CPU in FP32.
    if device == "cuda":
        ref_model, ref_example = _placer(build, device, memory_format, dtype)(), example.detach()
    else:
        ref_model, ref_example = reference_on_host(build, example)
    data, export_info = export_onnx(ref_model, ref_example)
    info.update(export_info)
    session = _ort_session(data, device, threads, "the exported model")
    probe = probe_input(ref_example)
    with torch.inference_mode():
        want = ref_model(probe).float()
        got = session(probe).float()
    diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
    tol = 1e-3 if ref_example.dtype == torch.float32 else 2e-2
    if got.shape != want.shape or not torch.allclose(got, want, rtol=tol, atol=tol):
        raise Unsupported(f"the exported ONNX graph disagrees with eager (max abs difference {diff:.3g})")
    info.update(
        provider=session.provider,
        graph_optimization_level=session.graph_optimization_level,
        intra_op_threads=threads,
        max_abs_diff_vs_eager=diff,
        io_binding=session.io_binding,
        onnx_dtype=str(ref_example.dtype).replace("torch.", ""),
    )
    return Prepared("onnxruntime", session, lambda: OrtModule(data, device=device, threads=threads), info)


def _ort_graph(data: bytes, info: dict[str, Any], *, device: str, threads: int, dtype: str) -> Prepared:
    """An ONNX graph from the user's file under ONNX Runtime: nothing to export and no eager model to check against."""
    session = _ort_session(data, device, threads, "the graph")
    info.update(
        exporter="file",
        onnx_bytes=len(data),
        provider=session.provider,
        graph_optimization_level=session.graph_optimization_level,
        intra_op_threads=threads,
        io_binding=session.io_binding,
    )
    return Prepared("onnxruntime", session, lambda: OrtModule(data, device=device, threads=threads), info)


def _ort_session(data: bytes, device: str, threads: int, what: str) -> OrtModule:
    """An :class:`OrtModule` over ``data``; a graph ONNX Runtime cannot load is :class:`Unsupported`."""
    try:
        return OrtModule(data, device=device, threads=threads)
    except Unsupported:
        raise
    except Exception as e:  # noqa: BLE001 — ORT raises its own exception types
        raise Unsupported(f"ONNX Runtime could not load {what}: {first_line(e)}") from None


def graph_runtimes() -> list[str]:
    """The runtimes that can run an ONNX graph given as such (an ``.onnx`` target)."""
    return [name for name, rt in RUNTIMES.items() if rt.make_graph is not None]


def _package_version(name: str) -> Callable[[], str | None]:
    def version() -> str | None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as _v

        try:
            return _v(name)
        except PackageNotFoundError:
            return None

    return version


_FUSES = "break down --runtime eager"
_ON_CUDA = "use --device cpu, or --runtime eager or onnxruntime on cuda"
register_runtime(
    Runtime(
        "eager",
        "PyTorch eager (the paper's set-up)",
        _make_eager,
        fresh_worker=True,
        deepcopy_rounds=True,
        halve_on_oom=True,
        torch_ops=True,
    )
)
register_runtime(
    Runtime(
        "compile",
        "torch.compile with the inductor backend; compile time reported apart from latency",
        _make_compile,
        # Compiling once per worker would cost K compilations per target (minutes): measured in the run's process.
        fresh_worker=False,
        no_breakdown="torch.compile fuses layers into generated kernels, so a layer replayed on its own is not "
        f"what runs; {_FUSES}",
    )
)
register_runtime(
    Runtime(
        "onnxruntime",
        "torch.onnx export, ONNX Runtime (CPU or CUDA execution provider), full graph optimisation",
        _make_onnxruntime,
        why_unavailable=_onnxruntime_unavailable,
        version=_package_version("onnxruntime"),
        make_graph=_ort_graph,
        no_breakdown=f"ONNX Runtime fuses and reorders nodes and offers no honest per-layer timing of the fused graph; {_FUSES}",
    )
)


# -- OpenVINO -------------------------------------------------------------------------------------------

#: What the OpenVINO CPU plugin is asked for. ``INFERENCE_NUM_THREADS`` is ``--threads``; the latency
#: hint with one stream and pinned threads is the single-request set-up the other runtimes are timed
#: under. The precision hint is FP32 because the CPU plugin otherwise runs in bf16 on cores with
#: AMX or AVX512-BF16, which would time a different computation than eager's.
OPENVINO_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": True}
OPENVINO_PRECISION = "f32"
#: The compiled model's properties read back and recorded (what is actually in force).
OPENVINO_PROPERTIES = (
    "INFERENCE_NUM_THREADS",
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "ENABLE_CPU_PINNING",
    "INFERENCE_PRECISION_HINT",
    "EXECUTION_MODE_HINT",
    "ENABLE_HYPER_THREADING",
    "SCHEDULING_CORE_TYPE",
)


class OutputMismatch(RuntimeError):
    """A runtime computed something other than eager: the row is failed, never timed."""


def _openvino_unavailable(device: str, dtype: str) -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        return f"openvino cannot be imported ({first_line(e)}); install openvino or use --runtime onnxruntime"
    return None


def _property_value(value: Any) -> Any:
    """A compiled-model property as JSON: numbers and booleans as they are, enums and types by name."""
    if isinstance(value, (bool, int, float, str)):
        return value
    text = str(value)
    return text.rsplit(".", 1)[-1] if text.startswith(type(value).__name__ + ".") else text.strip("<>")


class OpenVinoModule(nn.Module):
    """An OpenVINO compiled model behind an ``nn.Module`` face: one synchronous infer request per instance.

    The input is shared with OpenVINO (no copy in); the output comes back as a new tensor, as ONNX
    Runtime's does on the CPU.
    """

    def __init__(self, model: Any, threads: int):
        super().__init__()
        import openvino as ov

        config = dict(OPENVINO_CONFIG, INFERENCE_NUM_THREADS=threads, INFERENCE_PRECISION_HINT=OPENVINO_PRECISION)
        t0 = time.perf_counter()
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.compile_s = time.perf_counter() - t0
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    def properties(self) -> dict[str, Any]:
        out = {}
        for name in OPENVINO_PROPERTIES:
            try:
                out[name] = _property_value(self.compiled.get_property(name))
            except Exception:  # noqa: BLE001 — a property this plugin version does not report
                out[name] = None
        return out

    def forward(self, x: Tensor) -> Tensor:
        res = self.request.infer({0: x.detach().contiguous().numpy()}, share_inputs=True)
        return torch.from_numpy(res[self.output])


def check_outputs(runtime: str, got: Any, want: Any) -> float:
    """The largest absolute difference of ``got`` from eager's ``want``; raise :class:`OutputMismatch` if not close.

    "Close" is :func:`fnbench.timing.outputs_close`, the tolerance BN folding is held to.
    """
    from .timing import outputs_close

    diff = float((got.float() - want.float()).abs().max()) if got.shape == want.shape else float("inf")
    if not outputs_close(want, got):
        raise OutputMismatch(
            f"{runtime} disagrees with eager (max abs difference {diff:.3g}, shape {tuple(got.shape)} vs "
            f"{tuple(want.shape)}): not timed"
        )
    return diff


def _conversion_reason(e: Exception) -> str:
    """The line of a conversion error that names what failed (the ops without a rule), else its first line.

    OpenVINO's converter starts its message with the source location of a failed check; the ops it
    has no conversion rule for come on a later "Summary" line.
    """
    lines = [ln.strip(" -") for ln in str(e).splitlines()]
    named = [ln for ln in lines if "aten::" in ln or "prim::" in ln]
    return "; ".join(named) if named else first_line(e)


def _make_openvino(build, example, info, *, device, threads, memory_format, dtype) -> Prepared:
    import openvino as ov

    if memory_format != "contiguous":
        raise Unsupported(
            "OpenVINO takes NCHW input and picks its own internal layout (use --memory-format contiguous)"
        )
    ref_model, ref_example = reference_on_host(build, example)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model = ov.convert_model(ref_model, example_input=ref_example)
            model.reshape({0: ov.PartialShape(list(ref_example.shape))})  # static: compiled for this shape only
    except Exception as e:  # noqa: BLE001 — the converter raises many types; the reason is recorded
        raise Unsupported(f"OpenVINO cannot convert this model: {_conversion_reason(e)}") from None
    convert_s = time.perf_counter() - t0
    try:
        session = OpenVinoModule(model, threads)
    except Exception as e:  # noqa: BLE001 — the CPU plugin raises its own exception types
        raise Unsupported(f"OpenVINO's CPU plugin cannot compile this model: {first_line(e)}") from None
    probe = probe_input(ref_example)
    with torch.inference_mode():
        diff = check_outputs("OpenVINO", session(probe), ref_model(probe))
    info.update(
        openvino_version=ov.__version__,
        openvino_device="CPU",
        openvino_device_name=str(ov.Core().get_property("CPU", "FULL_DEVICE_NAME")),
        openvino_properties=session.properties(),
        convert_s=convert_s,
        compile_s=session.compile_s,
        openvino_ops=len(model.get_ordered_ops()),
        max_abs_diff_vs_eager=diff,
    )
    return Prepared("openvino", session, lambda: OpenVinoModule(model, threads), info)


register_runtime(
    Runtime(
        "openvino",
        "OpenVINO on the CPU: the BN-folded model converted, compiled with the latency hint, one stream, "
        "--threads threads, FP32",
        _make_openvino,
        why_unavailable=_openvino_unavailable,
        version=_package_version("openvino"),
        devices=("cpu",),
        devices_hint=f"OpenVINO is measured on CPUs (x86 and ARM): {_ON_CUDA}",
        no_breakdown=f"OpenVINO fuses and reorders nodes when it compiles; {_FUSES}",
    )
)


# -- ExecuTorch with the XNNPACK delegate --------------------------------------------------------------


def _executorch_unavailable(device: str, dtype: str) -> str | None:
    """Found without importing it: importing executorch (and torchao with it) costs seconds, paid in ``make``."""
    import importlib.util

    if importlib.util.find_spec("executorch") is None:
        return (
            "executorch is not installed: pip install 'fnbench[executorch]' (executorch 1.5.1 runs beside "
            "torch 2.14.1), or use --runtime openvino"
        )
    return None


def delegated_share(edge: Any) -> tuple[int, int]:
    """``(operator nodes XNNPACK took, all operator nodes)`` of a lowered edge program.

    Each delegated subgraph keeps the program it replaced (``original_module``), so its nodes are
    counted there; what stays outside is the top graph's calls other than the delegate calls and
    the ``getitem`` that unpacks their results.
    """
    import operator

    gm = edge.exported_program().graph_module
    taken = sum(
        sum(1 for n in sub.original_module.graph.nodes if n.op == "call_function")
        for _, sub in gm.named_children()
        if hasattr(sub, "original_module")
    )
    left = sum(
        1
        for n in gm.graph.nodes
        if n.op == "call_function"
        and n.target is not operator.getitem
        and getattr(n.target, "__name__", "") != "executorch_call_delegate"
    )
    return taken, taken + left


class ExecuTorchModule(nn.Module):
    """An ExecuTorch program's ``forward`` method behind an ``nn.Module`` face (one load per instance)."""

    def __init__(self, program: bytes):
        super().__init__()
        from executorch.runtime import Runtime as _EtRuntime

        t0 = time.perf_counter()
        self.method = _EtRuntime.get().load_program(program).load_method("forward")
        self.load_s = time.perf_counter() - t0

    def forward(self, x: Tensor) -> Tensor:
        return self.method.execute([x.detach().contiguous()])[0]


def _executorch_threads(threads: int) -> int | None:
    """Set the ExecuTorch thread pool (which XNNPACK runs on) to ``threads``; the count read back."""
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        return None
    portable_lib._unsafe_reset_threadpool(threads)
    return int(portable_lib._threadpool_get_thread_count())


def _make_executorch(build, example, info, *, device, threads, memory_format, dtype) -> Prepared:
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as e:
        raise Unsupported(f"executorch is installed but cannot be imported: {first_line(e)}") from None
    if memory_format != "contiguous":
        raise Unsupported("ExecuTorch programs here take NCHW input (use --memory-format contiguous)")
    ref_model, ref_example = reference_on_host(build, example)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            edge = to_edge_transform_and_lower(
                torch.export.export(ref_model, (ref_example,)), partitioner=[XnnpackPartitioner()]
            )
            taken, nodes = delegated_share(edge)
            program = edge.to_executorch().buffer
    except Exception as e:  # noqa: BLE001 — export and lowering raise many types; the reason is recorded
        raise Unsupported(f"ExecuTorch cannot export or lower this model: {first_line(e)}") from None
    lower_s = time.perf_counter() - t0
    pool = _executorch_threads(threads)
    session = ExecuTorchModule(program)
    probe = probe_input(ref_example)
    with torch.inference_mode():
        diff = check_outputs("ExecuTorch", session(probe), ref_model(probe))
    info.update(
        executorch_version=_package_version("executorch")(),
        backend="XnnpackBackend",
        delegated_nodes=taken,
        graph_nodes=nodes,
        delegated_share=taken / nodes if nodes else None,
        threadpool_threads=pool,
        lower_s=lower_s,
        load_s=session.load_s,
        program_bytes=len(program),
        max_abs_diff_vs_eager=diff,
    )
    return Prepared("executorch", session, lambda: ExecuTorchModule(program), info)


register_runtime(
    Runtime(
        "executorch",
        "ExecuTorch with the XNNPACK delegate on the CPU (pip install 'fnbench[executorch]'); the share of "
        "the graph XNNPACK took is recorded",
        _make_executorch,
        why_unavailable=_executorch_unavailable,
        version=_package_version("executorch"),
        devices=("cpu",),
        devices_hint=f"ExecuTorch's XNNPACK delegate runs on CPUs (x86 and ARM): {_ON_CUDA}",
        no_breakdown=f"XNNPACK runs the delegated subgraphs as fused kernels; {_FUSES}",
    )
)
