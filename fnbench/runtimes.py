"""Runtimes: turn a module into something to time — PyTorch eager, torch.compile, ONNX Runtime.

:func:`prepare` returns a :class:`Prepared`: ``module`` is an ``nn.Module`` whose ``forward`` runs
one inference through the runtime (so the timing engine treats every runtime alike), ``rebuild``
makes a fresh instance of it (fresh allocations for the next sampling round), and ``info`` records
how it was made (compile or export seconds, exporter, opset, graph optimisation level, …).

A model that a runtime cannot take (export or compile error) raises :class:`Unsupported` with the
reason; the runner records the target as ``unsupported`` and goes on with the suite.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError

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


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


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
    if runtime == "onnxruntime" and device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError(
                f"onnxruntime {ort.__version__} here has no CUDA execution provider; "
                "install the onnxruntime-gpu package instead of onnxruntime, or use --runtime eager"
            )


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
                    torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=ONNX_OPSET,
                                      input_names=["input"], output_names=["output"], do_constant_folding=True)
                    data = buf.getvalue()
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model)
        except Exception as e:  # noqa: BLE001 — exporters raise many types; the reason is recorded
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {_first_line(e)}")
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
    """An ONNX Runtime session behind an ``nn.Module`` face (tensors in, tensors out)."""

    def __init__(self, model: bytes, *, device: str, threads: int):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(model, opts, providers=providers)
        if not self.session.get_inputs():
            raise Unsupported("the exported ONNX graph does not depend on its input (the tracer folded it away)")
        self.input_name = self.session.get_inputs()[0].name
        self.device = device
        self.provider = self.session.get_providers()[0]
        self.graph_optimization_level = str(opts.graph_optimization_level).rsplit(".", 1)[-1]

    def forward(self, x: Tensor) -> Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def prepare(
    runtime: str,
    build: Callable[[], nn.Module],
    example: Tensor,
    *,
    device: str = "cpu",
    threads: int = 1,
    memory_format: str = "contiguous",
    dtype: str = "float32",
) -> Prepared:
    """Prepare the model from ``build()`` for ``runtime``; raise :class:`Unsupported` if it cannot run.

    ``example`` must already be on ``device`` with the right dtype and memory format.
    """
    check_runtime(runtime, device, memory_format=memory_format, dtype=dtype)
    tdtype = DTYPES[dtype]

    def placed() -> nn.Module:
        return _place(build(), device, memory_format, tdtype)

    info: dict[str, Any] = {"runtime": runtime, "memory_format": memory_format, "dtype": dtype,
                            "dtype_method": "converted weights" if dtype != "float32" else None}
    if runtime == "eager":
        return Prepared(runtime, placed(), placed, info)

    if runtime == "compile":
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled = torch.compile(placed(), backend="inductor", dynamic=False)
                with torch.inference_mode():
                    compiled(example)  # compilation happens here
        except Exception as e:  # noqa: BLE001 — inductor raises many types; the reason is recorded
            raise Unsupported(f"torch.compile failed: {_first_line(e)}") from None
        info.update(backend="inductor", compile_s=time.perf_counter() - t0)
        # Rounds reuse the compiled module: compiling a fresh instance costs seconds and, past
        # dynamo's recompile limit, silently falls back to eager. Inputs are still fresh per round.
        return Prepared(runtime, compiled, lambda: compiled, info)

    # onnxruntime
    if memory_format != "contiguous":
        raise Unsupported("ONNX models are NCHW; ONNX Runtime picks its own internal layout (use --memory-format contiguous)")
    cpu_model = _place(build(), "cpu", "contiguous", torch.float32)
    data, export_info = export_onnx(cpu_model, example.detach().float().cpu())
    info.update(export_info)
    try:
        session = OrtModule(data, device=device, threads=threads)
    except Unsupported:
        raise
    except Exception as e:  # noqa: BLE001 — ORT raises its own exception types
        raise Unsupported(f"ONNX Runtime could not load the exported model: {_first_line(e)}") from None
    # An exporter can bake a value it could not trace into a constant and still write a valid
    # graph that reproduces the export input exactly. One forward on a *different* input,
    # against eager, catches such a wrong graph before it is ever timed.
    probe = torch.randn(example.shape, generator=torch.Generator().manual_seed(12345))
    with torch.inference_mode():
        want = cpu_model(probe)
        got = session(probe)
    diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
    if not torch.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise Unsupported(f"the exported ONNX graph disagrees with eager (max abs difference {diff:.3g})")
    info.update(provider=session.provider, graph_optimization_level=session.graph_optimization_level,
                intra_op_threads=threads, max_abs_diff_vs_eager=diff)
    return Prepared(runtime, session, lambda: OrtModule(data, device=device, threads=threads), info)
