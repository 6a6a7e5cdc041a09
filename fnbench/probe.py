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
- ``probe:conv_<dtype>``: a dense 3×3 convolution (C→C, stride 1) at C×H×W, the kind of kernel
  the operators run; ``cost.flops = 2·H·W·9·C²``. A direct or Winograd-like kernel can beat a
  plain GEMM on the same machine, so the compute roof is the best of the GEMMs *and* the conv.
- ``probe:copy``: ``dst.copy_(src)`` of E FP32 elements into a buffer allocated once per round
  (so page faults are not timed); ``cost.mem_bytes_counted = 2·E·4`` (read + write, the same
  convention as the byte counter). Bandwidth = bytes / median latency; several E, the best wins.

On CUDA each probe's module is built on the device once and reused by every round (a deep copy
per round would copy and re-upload up to 1 GiB of operands); the input is still a fresh clone per
round. Running out of memory fails the probe: its operands have no batch to halve.

:func:`theoretical_peak` derives the CPU's FP32 peak from its flags where it can (vector lanes ×
FMA units × 2 FLOP × clock × threads); it is shown beside the measured roof, never used as one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import allocators
from . import results as _results
from .conditions import resolve_policy
from .devices import device_record, fingerprint
from .options import DEFAULT_PROBE_BUDGET_S
from .peaks import NOMINAL_CLOCK, max_clock_mhz, roof_note
from .results import ceilings  # the ceilings these probes measure, computed from their records
from .timing import measure

__all__ = ["ProbeSpec", "probe_specs", "run_probe", "ceilings", "theoretical_peak", "peak_text", "FMA_UNITS"]


class _GEMM(nn.Module):
    def __init__(self, n: int, dtype: torch.dtype, device: str = "cpu"):
        super().__init__()
        g = torch.Generator(device=device).manual_seed(0)
        self.w = nn.Parameter(torch.randn(n, n, generator=g, device=device).to(dtype), requires_grad=False)

    def forward(self, x):
        return torch.mm(x, self.w)


class _Conv(nn.Module):
    def __init__(self, c: int, dtype: torch.dtype):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False).to(dtype)

    def forward(self, x):
        return self.conv(x)


class _Copy(nn.Module):
    def __init__(self, elements: int, device: str = "cpu"):
        super().__init__()
        self.register_buffer("dst", torch.empty(elements, device=device))

    def forward(self, x):
        return self.dst.copy_(x)


@dataclass(frozen=True)
class ProbeSpec:
    name: str  # probe:gemm_float32, probe:gemm_tf32, probe:conv_float32, probe:copy
    size: int  # N for GEMM, channels C for conv, elements for copy
    dtype: str = "float32"
    tf32: bool = False  # float32 operands on TF32 tensor cores (cuda only)
    hw: int = 0  # conv: the feature map is size × hw × hw

    def build(self, device: str = "cpu") -> tuple[nn.Module, torch.Tensor, dict[str, int]]:
        """The probe's module and input, created directly on ``device``, and its cost per iteration."""
        torch.manual_seed(0)
        g = torch.Generator(device=device).manual_seed(1)
        if self.name == "probe:copy":
            e = self.size
            x = torch.randn(e, generator=g, device=device)
            return _Copy(e, device), x, {"macs": 0, "flops": 0, "mem_bytes_counted": 2 * e * 4, "params": 0}
        dt = getattr(torch, self.dtype)
        if self.name.startswith("probe:conv"):
            c, hw = self.size, self.hw
            elem = torch.tensor([], dtype=dt).element_size()
            macs = hw * hw * 9 * c * c
            cost = {
                "macs": macs,
                "flops": 2 * macs,
                "mem_bytes_counted": (2 * c * hw * hw + 9 * c * c) * elem,
                "params": 9 * c * c,
            }
            return _Conv(c, dt).to(device), torch.randn(1, c, hw, hw, generator=g, device=device).to(dt), cost
        n = self.size
        elem = torch.tensor([], dtype=dt).element_size()
        cost = {"macs": n**3, "flops": 2 * n**3, "mem_bytes_counted": 3 * n * n * elem, "params": n * n}
        return _GEMM(n, dt, device), torch.randn(n, n, generator=g, device=device).to(dt), cost


def probe_specs(kind: str) -> list[ProbeSpec]:
    """What to probe on a device kind: GEMM sizes large enough to reach the peak, copies past the caches."""
    if kind == "cuda":
        gemm = [
            ProbeSpec(f"probe:gemm_{name}", n, dt, name == "tf32")
            for name, dt in (
                ("float32", "float32"),
                ("tf32", "float32"),
                ("float16", "float16"),
                ("bfloat16", "bfloat16"),
            )
            for n in (4096, 8192)
        ]
        return gemm + [ProbeSpec("probe:copy", e) for e in (1 << 26, 1 << 28)]
    return (
        [ProbeSpec("probe:gemm_float32", n) for n in (256, 512, 1024)]
        + [ProbeSpec("probe:conv_float32", c, hw=hw) for c, hw in ((192, 28), (384, 14))]
        + [ProbeSpec("probe:copy", e) for e in (1 << 22, 1 << 24, 1 << 25)]
    )


#: FP32 lanes of the widest vector unit a CPU flag announces.
_LANES = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("asimd", 4), ("neon", 4), ("sse2", 4))
#: FMA units per core assumed when deriving a peak: two on current x86 server/desktop and Arm Neoverse/Cortex-A7x
#: cores (some AVX-512 parts have one; the result says it is an assumption).
FMA_UNITS = 2


def theoretical_peak(
    threads: int = 1, cpuinfo: str | None = None, max_mhz: float | None = None, *, clock: str | None = None
) -> dict[str, Any] | None:
    """The FP32 peak a CPU's flags imply: lanes × FMA units × 2 FLOP × clock × threads, or ``None``.

    The clock is the highest one the OS reports (:func:`fnbench.peaks.max_clock_mhz`:
    ``cpuinfo_max_freq``, else lscpu's max MHz, else ``cpu MHz`` labelled nominal); ``max_mhz``
    with ``clock`` (its source) gives it instead. Returns ``{"gflop_per_s", "lanes",
    "fma_units", "mhz", "clock", "threads", "basis"}``; :func:`fnbench.peaks.roof_note` says
    whether it may be shown beside a measured ceiling.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() in ("flags", "features"):
            flags |= set(v.split())
    if max_mhz is None:
        max_mhz, clock = max_clock_mhz(cpuinfo)
    clock = clock or NOMINAL_CLOCK
    lanes = next((n for f, n in _LANES if f in flags), None)
    if not lanes or not max_mhz or ("fma" not in flags and lanes in (8, 16)):
        return None
    g = lanes * FMA_UNITS * 2 * max_mhz / 1e3 * threads
    return {
        "gflop_per_s": g,
        "lanes": lanes,
        "fma_units": FMA_UNITS,
        "mhz": max_mhz,
        "clock": clock,
        "threads": threads,
        "basis": f"{lanes} FP32 lanes × {FMA_UNITS} FMA units (assumed) × 2 FLOP × {max_mhz:.0f} MHz ({clock}) × "
        f"{threads} thread(s)",
    }


def peak_text(env: dict[str, Any], measured_flop_per_s: float | None) -> str | None:
    """The console's line on the theoretical peak (``None`` without one), never a roof below the measured one.

    Records written before the clock was recorded are read as nominal (that code fell back to
    ``cpu MHz`` where cpufreq was absent).
    """
    peak = env.get("theoretical_peak_gflop_per_s")
    if not peak:
        return None
    measured = None if measured_flop_per_s is None else measured_flop_per_s / 1e9
    note = roof_note(peak, env.get("theoretical_peak_clock"), measured)
    if note is None:
        return f"theoretical FP32 peak: {peak:.1f} GFLOP/s ({env.get('theoretical_peak_basis', '')})"
    mhz = env.get("theoretical_peak_mhz")
    need = f"; it takes at least {math.ceil(mhz * measured / peak)} MHz at the same lanes × FMA units" if mhz else ""
    return f"{note} (best FP32 compute probe {measured:.2f} GFLOP/s{need})"


def run_probe(
    *,
    device: str = "auto",
    threads: int | None = None,
    budget_s: float = DEFAULT_PROBE_BUDGET_S,
    out_dir: str | Path = "results",
    progress: Callable[[str, int, int], None] | None = None,
    allocator: str = allocators.DEFAULT_ALLOCATOR,
) -> tuple[str, Path, list[dict[str, Any]]]:
    """Measure every probe of this device; append one record each to ``<out_dir>/<run_id>.jsonl``.

    The probes run in this process under ``allocator`` (:func:`fnbench.allocators.apply`), with
    the threads and budget policy of every measuring command (:func:`fnbench.conditions.resolve_policy`).
    ``progress(description, done, total)`` is called as probes finish.
    """
    policy = resolve_policy(device, threads=threads, budget_s=budget_s, allocator=allocator, budget_example="4")
    dev, threads, budget_s = policy.device, policy.threads, policy.budget_s
    alloc_state = allocators.apply(allocator)
    run_id = _results.new_run_id()
    path = Path(out_dir) / f"{run_id}.jsonl"
    writer = _results.ResultWriter(path, hint="free space and run `fnbench probe` again")
    specs = probe_specs(dev.kind)
    on_device = dev.kind == "cuda"

    def show(description: str, done: int) -> None:
        if progress is not None:
            progress(description, done, len(specs))

    for i, spec in enumerate(specs):
        show(f"{spec.name} {spec.size}", i)
        module, x, cost = spec.build(dev.torch_device if on_device else "cpu")
        smallest = i == 0 or specs[i - 1].name != spec.name
        need = _budget_for_rounds(module, x.to(dev.torch_device), dev.torch_device)
        if need > budget_s and not smallest:
            continue  # too large for this budget to give an interval: the smaller sizes stand
        fp = fingerprint(dev, threads)
        t0 = time.perf_counter()
        # the smallest size of each probe always gets enough time for an interval; where a slow
        # moment left it with a zero-width one (one round), it is measured again with twice the time
        b = max(budget_s, need)
        for _ in range(3):
            m = measure(
                module,
                x.to(dev.torch_device),
                device=dev.torch_device,
                threads=threads,
                budget_s=b,
                fold=False,
                allocator=None,
                tf32=spec.tf32,
                halve_on_oom=False,
                rebuild=(lambda module=module: module) if on_device else None,
                peak_memory=False,  # a probe is a rate, not a model
            )
            if m.rounds >= 2 and m.ci95_high_s > m.ci95_low_s:
                break
            b *= 2
        fp["measure_wall_s"] = time.perf_counter() - t0
        if not on_device:
            peak = theoretical_peak(threads or 1)
            if peak is not None:
                fp["theoretical_peak_gflop_per_s"] = peak["gflop_per_s"]
                fp["theoretical_peak_basis"] = peak["basis"]
                fp["theoretical_peak_mhz"] = peak["mhz"]
                fp["theoretical_peak_clock"] = peak["clock"]
        target = {
            "name": spec.name,
            "kind": "probe",
            "shape": list(x.shape),
            "layers": None,
            "options": {"size": spec.size, **({"hw": spec.hw} if spec.hw else {})},
            "batch": 1,
        }
        head = _results.record_header(
            run_id=run_id,
            target=target,
            batch=1,
            device=device_record(dev, fp),
            threads=threads,
            allocator=allocator,
            dtype=spec.dtype,
        )
        m.allocator_state = alloc_state  # the probes ran in this process, under the state it was set to
        writer.write(
            _results.measurement_record(
                head, m, cost=cost, env=fp, batch=1, runtime_info={"tf32": m.tf32, "module_reused": on_device}
            )
        )
        del module, x
    show("probe", len(specs))
    return run_id, path, _results.read_records(path)


#: Rounds (of at least 3 iterations) a probe's budget must afford for its interval to mean something.
MIN_PROBE_ROUNDS = 5


def _budget_for_rounds(module: nn.Module, x: torch.Tensor, device: str) -> float:
    """Seconds that afford :data:`MIN_PROBE_ROUNDS` rounds of this size (one iteration timed after a warm call)."""
    module = module.to(device).eval()
    with torch.inference_mode():
        module(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        module(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return 3 * MIN_PROBE_ROUNDS * dt / 0.7
