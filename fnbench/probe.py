"""Device ceilings for the roofline: peak compute from large matrix products, bandwidth from large copies.

Both are measured with the same engine as every target (:func:`fnbench.timing.measure`: rounds
of fresh allocations, medians, a 95 % CI) and stored as ordinary result records with
``target.kind == "probe"``, so reports read them like any other measurement:

- ``probe:gemm_<dtype>``: ``C = A @ B`` with N×N operands; ``cost.flops = 2·N³`` per iteration.
  Peak FLOP/s = flops / median latency. Several N are tried; reports take the best. On CUDA:
  ``gemm_float32`` in full FP32 (TF32 off), ``gemm_tf32`` (FP32 operands, TF32 tensor cores),
  ``gemm_float16`` and ``gemm_bfloat16``. Every record says whether TF32 was on
  (``runtime_info.tf32``): PyTorch's default runs FP32 convolutions in TF32 but FP32 matmuls
  not, so an FP32 roof taken with defaults sits far below what FP32-labelled convolutions reach.
- ``probe:copy``: ``dst.copy_(src)`` of E FP32 elements into a buffer allocated once per round
  (so page faults are not timed); ``cost.mem_bytes_counted = 2·E·4`` (read + write, the same
  convention as the byte counter). Bandwidth = bytes / median latency.

On CUDA each probe's module is built on the device once and reused by every round (a deep copy
per round would copy and re-upload up to 1 GiB of operands); the input is still a fresh clone per
round. Running out of memory fails the probe: its operands have no batch to halve.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from . import allocators
from . import results as _results
from .devices import device_key, fingerprint, resolve_device
from .errors import UserError
from .timing import measure

__all__ = ["ProbeSpec", "probe_specs", "run_probe", "ceilings"]


class _GEMM(nn.Module):
    def __init__(self, n: int, dtype: torch.dtype, device: str = "cpu"):
        super().__init__()
        g = torch.Generator(device=device).manual_seed(0)
        self.w = nn.Parameter(torch.randn(n, n, generator=g, device=device).to(dtype), requires_grad=False)

    def forward(self, x):
        return torch.mm(x, self.w)


class _Copy(nn.Module):
    def __init__(self, elements: int, device: str = "cpu"):
        super().__init__()
        self.register_buffer("dst", torch.empty(elements, device=device))

    def forward(self, x):
        return self.dst.copy_(x)


@dataclass(frozen=True)
class ProbeSpec:
    name: str  # probe:gemm_float32, probe:gemm_tf32, probe:copy
    size: int  # N for GEMM, elements for copy
    dtype: str = "float32"
    tf32: bool = False  # float32 operands on TF32 tensor cores (cuda only)

    def build(self, device: str = "cpu") -> tuple[nn.Module, torch.Tensor, dict[str, int]]:
        """The probe's module and input, created directly on ``device``, and its cost per iteration."""
        torch.manual_seed(0)
        g = torch.Generator(device=device).manual_seed(1)
        if self.name == "probe:copy":
            e = self.size
            x = torch.randn(e, generator=g, device=device)
            return _Copy(e, device), x, {"macs": 0, "flops": 0, "mem_bytes_counted": 2 * e * 4, "params": 0}
        dt = getattr(torch, self.dtype)
        n = self.size
        elem = torch.tensor([], dtype=dt).element_size()
        cost = {"macs": n**3, "flops": 2 * n**3, "mem_bytes_counted": 3 * n * n * elem, "params": n * n}
        return _GEMM(n, dt, device), torch.randn(n, n, generator=g, device=device).to(dt), cost


def probe_specs(kind: str) -> list[ProbeSpec]:
    """What to probe on a device kind: GEMM sizes large enough to reach the peak, copies past the caches."""
    if kind == "cuda":
        gemm = [ProbeSpec(f"probe:gemm_{name}", n, dt, name == "tf32")
                for name, dt in (("float32", "float32"), ("tf32", "float32"), ("float16", "float16"),
                                 ("bfloat16", "bfloat16")) for n in (4096, 8192)]
        return gemm + [ProbeSpec("probe:copy", e) for e in (1 << 26, 1 << 28)]
    return [ProbeSpec("probe:gemm_float32", n) for n in (512, 1024)] + \
        [ProbeSpec("probe:copy", e) for e in (1 << 24, 1 << 25)]


def run_probe(*, device: str = "auto", threads: int | None = None, budget_s: float = 4.0, out_dir: str | Path = "results",
              progress: bool = True, allocator: str = allocators.DEFAULT_ALLOCATOR,
              ) -> tuple[str, Path, list[dict[str, Any]]]:
    """Measure every probe of this device; append one record each to ``<out_dir>/<run_id>.jsonl``.

    The probes run in this process under ``allocator`` (:func:`fnbench.allocators.apply`).
    """
    dev = resolve_device(device)
    alloc_state = allocators.apply(allocator)
    threads = None if dev.kind == "cuda" else (1 if threads is None else threads)
    if threads is not None and threads < 1:
        raise UserError(f"threads {threads} is not positive: use --threads 1 or more")
    run_id = _results.new_run_id()
    path = Path(out_dir) / f"{run_id}.jsonl"
    writer = _results.ResultWriter(path)
    specs = probe_specs(dev.kind)
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=Console(file=sys.stderr), disable=not progress)
    with prog:
        task = prog.add_task("probe", total=len(specs))
        for spec in specs:
            prog.update(task, description=f"{spec.name} {spec.size}")
            on_device = dev.kind == "cuda"
            module, x, cost = spec.build(dev.torch_device if on_device else "cpu")
            fp = fingerprint(dev, threads)
            t0 = time.perf_counter()
            m = measure(module, x, device=dev.torch_device, threads=threads, budget_s=budget_s, fold=False,
                        allocator=None, tf32=spec.tf32, halve_on_oom=False,
                        rebuild=(lambda module=module: module) if on_device else None)
            fp["measure_wall_s"] = time.perf_counter() - t0
            writer.write({
                "schema": _results.SCHEMA_VERSION, "run_id": run_id, "created": _results.utc_now(), "status": "ok",
                "target": {"name": spec.name, "kind": "probe", "shape": list(x.shape), "layers": None,
                           "options": {"size": spec.size}, "batch": 1},
                "shape": list(x.shape), "batch": 1, "dtype": spec.dtype,
                "device": {"kind": dev.kind, "name": dev.name, "arch": dev.arch, "key": device_key(fp)},
                "runtime": "eager", "memory_format": "contiguous", "allocator": allocator, "threads": threads,
                "cost": cost, "samples_s": m.samples_s, "rounds": m.round_ids, "env": fp,
                "stats": dict(m.to_stats(), faults_flag=allocators.faults_flag(
                    m.minor_faults_per_iter, cost.get("mem_bytes_counted"), allocator)),
                "faults": m.faults(), "allocator_state": alloc_state,
                "runtime_info": {"tf32": m.tf32, "module_reused": on_device},
            })
            del module, x
            prog.advance(task)
    return run_id, path, _results.read_records(path)


def ceilings(records: list[dict[str, Any]]) -> dict[str, float]:
    """Best measured ceilings from probe records: ``{"gemm_float32_flop_per_s": …, "copy_bytes_per_s": …}``."""
    best: dict[str, float] = {}
    for r in records:
        name = (r.get("target") or {}).get("name", "")
        st, cost = r.get("stats") or {}, r.get("cost") or {}
        if r.get("status", "ok") != "ok" or not name.startswith("probe:") or not st.get("median_s"):
            continue
        if name == "probe:copy":
            key, value = "copy_bytes_per_s", cost["mem_bytes_counted"] / st["median_s"]
        else:
            key, value = name.split(":", 1)[1] + "_flop_per_s", cost["flops"] / st["median_s"]
        best[key] = max(best.get(key, 0.0), value)
    return best
