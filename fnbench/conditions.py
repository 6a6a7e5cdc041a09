"""How a target is measured: the run policy, the conditions of one record, and the target made ready.

Three commands measure — ``run``, ``probe`` and ``compare`` (and ``breakdown``, which shares
``run``'s options) — and all of them take the same policy decisions from :func:`resolve_policy`:

- **threads**: 1 on a CPU or ARM core unless given (the paper's protocol); not set on CUDA;
- **batch**: as given, 1 included; when not given, 1 on a CPU and :data:`DEFAULT_CUDA_BATCH` on
  CUDA for a batch-1 target (the paper's throughput set-up);
- **budget** and **precision**: positive, finite; precision a fraction;
- **allocators**: known names, their libraries present (:mod:`fnbench.allocators`).

The result is a :class:`RunPolicy`. Each record is then measured under one :class:`Conditions`
(runtime, memory format, dtype, threads, allocator) — what, besides the device and the target,
makes two measurements comparable. :func:`prepare_target` builds a target and prepares it for
its runtime under those conditions; the run loop and the worker processes both call it, which is
why it lives here, below both (:mod:`fnbench.runner` and :mod:`fnbench.workers` never import each
other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from . import allocators, checks
from .devices import DEFAULT_CUDA_BATCH, Device, resolve_device
from .errors import UserError
from .options import DEFAULT_THREADS
from .runtimes import DTYPES, Prepared, prepare
from .targets import Target, resolve
from .timing import DEFAULT_BUDGET_S, DEFAULT_PRECISION, drop_frames, fold_bn, free_device_memory, is_out_of_memory

__all__ = ["Conditions", "RunPolicy", "resolve_policy", "prepare_target", "prepare_fitting", "DEFAULT_CUDA_BATCH"]


@dataclass(frozen=True)
class Conditions:
    """How one record is measured, besides the device and the target: runtime, layout, dtype, threads, allocator.

    ``threads`` is None on CUDA (the host's thread count does not set the GPU's speed).
    """

    runtime: str = "eager"
    memory_format: str = "contiguous"
    dtype: str = "float32"
    threads: int | None = 1
    allocator: str = allocators.DEFAULT_ALLOCATOR


@dataclass(frozen=True)
class RunPolicy:
    """What a measuring command resolved from the user's options: one device and its defaults applied."""

    device: Device
    threads: int | None
    batch: int | None  # as the user gave it; None: the device's default (:meth:`batch_for`)
    budget_s: float
    precision: float
    allocators: tuple[str, ...]

    def batch_for(self, spec_batch: int = 1) -> int:
        """The batch a target of batch ``spec_batch`` is measured at under this policy."""
        if self.batch is not None:
            return self.batch
        return DEFAULT_CUDA_BATCH if (self.device.kind == "cuda" and spec_batch == 1) else spec_batch

    def conditions(
        self,
        runtime: str = "eager",
        memory_format: str = "contiguous",
        dtype: str = "float32",
        allocator: str | None = None,
    ) -> Conditions:
        return Conditions(runtime, memory_format, dtype, self.threads, allocator or self.allocators[0])


def resolve_policy(
    device: str = "auto",
    *,
    threads: int | None = None,
    batch: int | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    precision: float = DEFAULT_PRECISION,
    allocator: str | Sequence[str] = allocators.DEFAULT_ALLOCATOR,
    budget_example: str = "10",
) -> RunPolicy:
    """Check the options every measuring command shares and apply the defaults; raise :class:`UserError`.

    ``budget_example`` is the value the error message suggests (each command's own default).
    """
    dev = resolve_device(device)
    if dev.kind == "cuda":
        threads = None
    else:
        threads = DEFAULT_THREADS if threads is None else int(threads)
        if threads < 1:
            raise UserError(f"threads {threads} is not positive: use --threads 1 or more")
        checks.check_threads(threads)  # more threads than cores: a warning, the timings measure contention
    if batch is not None and batch < 1:
        raise UserError(f"batch {batch} is not positive: use --batch 1 or more")
    if not (isinstance(budget_s, (int, float)) and 0 < budget_s and math.isfinite(budget_s)):
        raise UserError(f"budget {budget_s} s is not a positive finite number: use e.g. --budget {budget_example}")
    if not 0 < precision < 1:
        raise UserError(f"precision {precision} is not a fraction in (0, 1): use e.g. --precision 0.02 for ±2%")
    names = [allocator] if isinstance(allocator, str) else list(dict.fromkeys(allocator))
    names = [allocators.check_allocator(a) for a in names] or [allocators.DEFAULT_ALLOCATOR]
    for name in names:
        if name in allocators.LIBRARIES:
            allocators.require_library(name)
    return RunPolicy(dev, threads, batch, float(budget_s), float(precision), tuple(names))


def prepare_target(target: Target, device: Device, conditions: Conditions, seed: int) -> tuple[Prepared, torch.Tensor]:
    """Build ``target`` (BN folded), make its input and prepare both for the runtime on ``device``.

    Returns ``(prepared, x)``; raises :class:`~fnbench.runtimes.Unsupported` if the runtime cannot
    take the model. BN is folded into the convs before the runtime sees the model (the paper's
    protocol), so eager, compiled and exported models compute the same folded network. Used
    in-process and by the worker processes alike.
    """

    def build() -> torch.nn.Module:
        module = target.build(seed)
        fold_bn(module)
        return module

    x = target.example_input("cpu", torch.float32, seed=seed).to(device.torch_device, DTYPES[conditions.dtype])
    if conditions.memory_format == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    prev_threads = torch.get_num_threads()
    if conditions.threads:  # compile and export under the thread count they will be timed with
        torch.set_num_threads(conditions.threads)
    try:
        prepared = prepare(
            conditions.runtime,
            build,
            x,
            device=device.kind if device.kind == "cuda" else "cpu",
            threads=conditions.threads or 1,
            memory_format=conditions.memory_format,
            dtype=conditions.dtype,
            # only an .onnx target hands its graph over (every other call stays as it was)
            **({"onnx_model": target.onnx} if target.onnx is not None else {}),
        )
    finally:
        torch.set_num_threads(prev_threads)
    return prepared, x


def prepare_fitting(
    target: Target, device: Device, conditions: Conditions, seed: int
) -> tuple[Prepared, torch.Tensor, list[int]]:
    """:func:`prepare_target`, halving the batch while preparing runs out of device memory.

    Uploading weights, compiling (autotuning) and exporting can each run out of memory before a
    single timed iteration. Returns ``(prepared, x, batches that did not fit)``.
    """
    failed: list[int] = []
    while True:
        try:
            prepared, x = prepare_target(target, device, conditions, seed)
            return prepared, x, failed
        except Exception as e:  # noqa: BLE001 — only out-of-memory is handled here
            if not (is_out_of_memory(e) and target.spec.batch > 1):
                raise
            drop_frames(e)
        failed.append(target.spec.batch)  # out of the handler: the failed attempt's tensors can be freed
        target = resolve(replace(target.spec, batch=target.spec.batch // 2), check=False)
        free_device_memory(device.torch_device)
