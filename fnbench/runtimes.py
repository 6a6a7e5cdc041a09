"""Runtimes: turn a module into something to time — PyTorch eager, torch.compile, ONNX Runtime.

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
    "MEMORY_FORMATS",
    "DTYPES",
    "Unsupported",
    "Prepared",
    "prepare",
    "check_runtime",
    "export_onnx",
    "OrtModule",
    "runtime_unavailable",
]

RUNTIMES: dict[str, str] = {
    "eager": "PyTorch eager (the paper's set-up)",
    "compile": "torch.compile with the inductor backend; compile time reported apart from latency",
    "onnxruntime": "torch.onnx export, ONNX Runtime (CPU or CUDA execution provider), full graph optimisation",
}
MEMORY_FORMATS = ("contiguous", "channels_last")
#: Half precision is applied by converting weights and inputs (``module.to(dtype)``), not autocast.
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ONNX_OPSET = 17


class Unsupported(Exception):
    """The runtime cannot run this model; the message is the reason recorded in the results."""


@dataclass
class Prepared:
    runtime: str
    module: nn.Module
    rebuild: Callable[[], nn.Module]
    info: dict[str, Any] = field(default_factory=dict)


def check_runtime(runtime: str, device: str, *, memory_format: str = "contiguous", dtype: str = "float32") -> None:
    """Refuse combinations this machine or runtime cannot serve, before any work is done."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
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
    if runtime != "onnxruntime":
        return None
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
    ``onnx_model``: an ONNX graph given as such (an ``.onnx`` target), run by ONNX Runtime as it
    is, not exported from ``build()``; only ``onnxruntime`` takes it.
    """
    check_runtime(runtime, device, memory_format=memory_format, dtype=dtype)
    if onnx_model is not None:
        return _prepare_graph(runtime, onnx_model, device=device, threads=threads, dtype=dtype)
    tdtype = DTYPES[dtype]

    def placed() -> nn.Module:
        return _place(build(), device, memory_format, tdtype)

    info: dict[str, Any] = {
        "runtime": runtime,
        "memory_format": memory_format,
        "dtype": dtype,
        "dtype_method": "converted weights" if dtype != "float32" else None,
    }
    if runtime == "eager":
        return Prepared(runtime, placed(), placed, info)

    reason = runtime_unavailable(runtime, device, dtype=dtype)
    if reason:
        raise Unsupported(reason)

    if runtime == "compile":
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
        return Prepared(runtime, compiled, lambda: compiled, info)

    # onnxruntime
    if memory_format != "contiguous":
        raise Unsupported(
            "ONNX models are NCHW; ONNX Runtime picks its own internal layout (use --memory-format contiguous)"
        )
    # On cuda the graph is exported from the model as it runs there, in its dtype (a float16
    # model exports a float16 graph); on the CPU in FP32.
    if device == "cuda":
        ref_model, ref_example = placed(), example.detach()
    else:
        ref_model, ref_example = _place(build(), "cpu", "contiguous", torch.float32), example.detach().float().cpu()
    data, export_info = export_onnx(ref_model, ref_example)
    info.update(export_info)
    session = _ort_session(data, device, threads, "the exported model")
    # An exporter can bake a value it could not trace into a constant and still write a valid
    # graph that reproduces the export input exactly. One forward on a *different* input,
    # against eager, catches such a wrong graph before it is ever timed.
    probe = torch.randn(example.shape, generator=torch.Generator().manual_seed(12345)).to(
        ref_example.device, ref_example.dtype
    )
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
    return Prepared(runtime, session, lambda: OrtModule(data, device=device, threads=threads), info)


def _prepare_graph(runtime: str, data: bytes, *, device: str, threads: int, dtype: str) -> Prepared:
    """An ONNX graph from the user's file under ONNX Runtime: nothing to export and no eager model to check against."""
    if runtime != "onnxruntime":
        raise Unsupported(f"an ONNX graph runs under onnxruntime only, not {runtime}")
    reason = runtime_unavailable(runtime, device, dtype=dtype)
    if reason:
        raise Unsupported(reason)
    session = _ort_session(data, device, threads, "the graph")
    info: dict[str, Any] = {
        "runtime": runtime,
        "memory_format": "contiguous",
        "dtype": dtype,
        "exporter": "file",
        "onnx_bytes": len(data),
        "provider": session.provider,
        "graph_optimization_level": session.graph_optimization_level,
        "intra_op_threads": threads,
        "io_binding": session.io_binding,
    }
    return Prepared(runtime, session, lambda: OrtModule(data, device=device, threads=threads), info)


def _ort_session(data: bytes, device: str, threads: int, what: str) -> OrtModule:
    """An :class:`OrtModule` over ``data``; a graph ONNX Runtime cannot load is :class:`Unsupported`."""
    try:
        return OrtModule(data, device=device, threads=threads)
    except Unsupported:
        raise
    except Exception as e:  # noqa: BLE001 — ORT raises its own exception types
        raise Unsupported(f"ONNX Runtime could not load {what}: {first_line(e)}") from None
