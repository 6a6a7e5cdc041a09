"""How a latency is taken: warm-up, synchronisation, rounds over fresh allocations, adaptive stopping.

The rules, and why:

- **Inference as deployed.** ``eval()``, ``torch.inference_mode()`` and BatchNorm folded into the
  preceding convolution (:func:`fold_bn`), as the paper measured: an unfolded BN adds a full
  read and write of every feature map that a deployed model never pays for.
- **Warm-up until steady.** The first iterations of a fresh module pay for lazy initialisation
  (oneDNN/cuDNN primitive creation, allocator growth, page faults, cold caches). They are run and
  thrown away until iteration times stop falling, within a bound.
- **The allocator is a condition, not noise.** The 2–5× swings first blamed on the VM were
  glibc's malloc: in a fresh process it hands every freed activation back to the kernel and the
  next forward faults it in again (one minor fault per 4 KiB: ~3,700 faults and 13–15 ms per
  forward of a 96×56×56 DWConv stack, against 3.8–4.3 ms and none with fixed thresholds), and
  whether it does depends on what the process freed before. ``allocator="tuned"`` (the default)
  fixes glibc's thresholds first (:mod:`fnbench.allocators`); the minor and major page faults of
  every round's timed blocks are counted (``getrusage``) and kept, so a measurement that still
  faults shows it.
- **Rounds over fresh allocations.** Each round builds a fresh module (``rebuild()`` or a deep
  copy) and a fresh clone of the input, warms briefly and takes a block of samples; every raw
  sample and its round are kept. With the allocator controlled, rounds no longer differ by
  allocation; what still moves them is time (below).
- **Medians, and intervals over rounds.** The latency is the median of the per-round medians and
  its 95 % interval is the distribution-free order-statistic interval over those round medians
  (:func:`fnbench.stats.median_ci` of :func:`fnbench.stats.round_medians`), so it accounts for allocation-to-allocation swings,
  which an interval over correlated iterations does not. What stays fixed for a process's life
  is sampled one level up: :mod:`fnbench.workers` runs chunks of rounds in several processes and
  a :class:`Measurement` with ``worker_ids`` uses the bootstrap over workers and rounds.
- **What is left, measured** (``benchmarks/variance_levels.py``; 2-core x86 VM, tuned, six
  targets of Table 1, 1.2 s per target per process, rounds of 0.1 s). Round medians inside one
  process spread by 9–15 % (coefficient of variation). The medians of six fresh processes spread
  by 4–12 %, 0.9–1.9× what that round spread alone predicts; six chunks taken at the same moments
  in *one* long-lived process spread by 7–18 %, 1.8–8.8× — no less. So the level above rounds is
  time, not the process: a pure-Python loop on the same VM moved from 1.0 to 1.9 ms from one
  second to the next with 100 % CPU and no steal time reported (another tenant on the core's SMT
  sibling or the host's clock, which a guest cannot see). The run design follows: a target's
  samples are spread over the whole run in passes (:mod:`fnbench.runner`), and its interval is
  the bootstrap over those passes' processes, then rounds, which covers what a run at another
  moment would see. Fresh processes cost 0.05 s from the fork server and are kept: they cost
  nothing measurable and they are what makes ``allocator="system"`` mean a fresh process (the
  runner gives every ``system`` target its own). Per-process intervals would be 2–4× narrower
  here, and wrong.
- **Synchronisation amortised.** On CUDA, kernels are asynchronous: a block of iterations is
  timed between two ``torch.cuda.synchronize()`` calls and divided by its length, with the block
  long enough that the sync costs well under a percent. On CPU a block is one iteration unless an
  iteration is shorter than the timer resolution warrants.
- **GPU time beside wall time.** At batch 32 on a fast GPU a stack of small depthwise convs
  finishes sooner than Python can launch its kernels: the wall time then measures dispatch, not
  the GPU. Each CUDA round also times a single iteration with CUDA events while the stream is
  held busy (``torch.cuda._sleep``) until the whole iteration is queued, which is the GPU's
  execution time without launch gaps. A row whose GPU time is under :data:`LAUNCH_BOUND_RATIO`
  of its wall time is flagged ``launch_bound``.
- **Math mode set, not inherited.** PyTorch's defaults run FP32 convolutions in TF32 on cuDNN
  and FP32 matmuls in full FP32, so "float32" would mean two different precisions. ``measure``
  sets both deliberately (``tf32``, default off: FP32 means FP32, as on the paper's RTX 2080Ti,
  which has no TF32) and records the choice.
- **Adaptive stopping.** Rounds continue until the interval is within ±``precision`` of the
  median (relative) or ``budget_s`` of wall time is spent. A measurement that ran out of budget
  first is ``stable=False``: it is reported as such, never silently.

Example::

    >>> from torch import nn
    >>> import torch
    >>> m = measure(nn.Conv2d(8, 8, 3, padding=1), torch.randn(1, 8, 16, 16), budget_s=1.0)
    >>> m.median_s > 0 and m.rounds >= 1
    True
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import os
import resource
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import allocators
from .measurement import (
    DEFAULT_MIN_ROUNDS,
    DEFAULT_PRECISION,
    LAUNCH_BOUND_RATIO,
    Measurement,
    RoundCounts,
    rounds_settled,
)
from .options import DEFAULT_BUDGET_S

__all__ = [
    "Measurement",
    "measure",
    "fold_bn",
    "DEFAULT_PRECISION",
    "DEFAULT_BUDGET_S",
    "DEFAULT_MIN_ROUNDS",
    "Timer",
    "LAUNCH_BOUND_RATIO",
    "is_out_of_memory",
    "free_device_memory",
    "drop_frames",
    "outputs_close",
    "make_timer",
    "Sampler",
    "open_sampler",
    "peak_memory_bytes",
    "PEAK_MEMORY_METHODS",
    "ROUNDS_PER_BUDGET",
    "MIN_BLOCK_S",
]

#: Target number of rounds a budget is split into (rounds are the unit of the CI).
ROUNDS_PER_BUDGET = 25
_MIN_SAMPLES_PER_ROUND = 3
_MAX_SAMPLES_PER_ROUND = 2000
#: An iteration this long needs no second warm-up iteration after a fresh copy (:func:`_warm_briefly`).
LONG_ITERATION_S = 0.02
#: A round samples for at least this many times what its fresh instance and brief warm-up took.
SETUP_SHARE = 2.0
#: Shortest timed block: on CUDA long enough to amortise the synchronisation, on CPU the timer.
MIN_BLOCK_S = {"cuda": 2e-3, "cpu": 2e-5}

#: ``timer(step, iters) -> seconds`` runs ``step`` ``iters`` times and returns the elapsed time.
Timer = Callable[[Callable[[], Any], int], float]
#: ``gpu_timer(step, iters, hold_s) -> seconds`` of GPU execution of ``iters`` calls (launch gaps excluded).
GpuTimer = Callable[[Callable[[], Any], int, float], float]
_GPU_SAMPLES_PER_ROUND = 3


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is the device running out of memory.

    ``torch.cuda.OutOfMemoryError`` is what the caching allocator raises. cuBLAS and cuDNN
    failing to allocate their workspaces still surface as a plain ``RuntimeError``
    (``CUBLAS_STATUS_ALLOC_FAILED``, ``CUDNN_STATUS_ALLOC_FAILED``, ``CUDA error: out of memory``)
    with no specific type; only for exactly ``RuntimeError`` is the message read.
    """
    seen: set[int] = set()
    while e is not None and id(e) not in seen:  # torch.compile wraps what its backend raised
        seen.add(id(e))
        if isinstance(e, torch.cuda.OutOfMemoryError):
            return True
        if type(e) is RuntimeError:
            text = str(e)
            if "out of memory" in text.lower() or "STATUS_ALLOC_FAILED" in text:
                return True
        e = getattr(e, "inner_exception", None) or e.__cause__ or e.__context__
    return False


# -- BatchNorm folding ------------------------------------------------------------------------


def _bn_replacement(bn: nn.BatchNorm2d) -> nn.Module | None:
    """What stays after the normalisation is folded away, or None if we do not know the subclass."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    # timm's BatchNormAct2d: BN, then ``drop``, then ``act`` in its forward.
    if type(bn).__name__ == "BatchNormAct2d" and hasattr(bn, "act") and hasattr(bn, "drop"):
        return nn.Sequential(bn.drop, bn.act)
    return None


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and isinstance(bn, nn.BatchNorm2d)
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
        and _bn_replacement(bn) is not None
    )


def fold_bn(module: nn.Module) -> int:
    """Fold every ``Conv2d → BatchNorm2d`` pair into the conv, in place; return how many were folded.

    A pair is two consecutive children of one parent: consecutive entries of an
    ``nn.Sequential`` (always executed in order), or consecutive attributes of any other module
    (timm's ``ConvNormAct``: ``conv`` then ``bn``). The BN becomes ``nn.Identity`` (or, for
    timm's ``BatchNormAct2d``, its activation). The module must be in ``eval()`` mode: folding
    uses the running statistics. For a non-sequential parent the attribute order is a heuristic;
    :func:`measure` checks the folded output against the unfolded one and keeps the unfolded
    module if they differ.
    """
    if module.training:
        raise ValueError("fold_bn needs a module in eval() mode (it folds the running statistics)")
    pairs: list[tuple[nn.Module, str, str]] = []
    for parent in module.modules():
        names = [k for k, v in parent._modules.items() if v is not None]
        i = 0
        while i < len(names) - 1:
            a, b = names[i], names[i + 1]
            if _foldable(parent._modules[a], parent._modules[b]):
                pairs.append((parent, a, b))
                i += 2
            else:
                i += 1
    with torch.no_grad():
        for parent, a, b in pairs:
            conv, bn = parent._modules[a], parent._modules[b]
            parent._modules[a] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
            parent._modules[b] = _bn_replacement(bn)
    return len(pairs)


# -- measuring --------------------------------------------------------------------------------


_REF_A: torch.Tensor | None = None
_REF_OUT: torch.Tensor | None = None


def reference_s() -> float:
    """Seconds for a fixed CPU kernel: four 128×128 FP32 matrix products (≈17 MFLOP, in L2),
    median of three, on one thread. It does not depend on the target, so its changes over a run
    are the machine's own speed (clock, a busy SMT sibling), which a guest VM cannot see otherwise.
    """
    global _REF_A, _REF_OUT
    if _REF_A is None:
        g = torch.Generator().manual_seed(0)
        _REF_A, _REF_OUT = torch.randn(128, 128, generator=g), torch.empty(128, 128)
    a, out = _REF_A, _REF_OUT  # nothing is allocated: the reference must not move the target's heap
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(4):
                torch.mm(a, a, out=out)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(prev)
    return sorted(times)[1]


def runq_wait_s() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU since they started
    (the second field of ``/proc/self/task/*/schedstat``); None where the kernel does not say."""
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def _sync_for(dev: torch.device) -> Callable[[], None]:
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def make_timer(clock: Callable[[], float], sync: Callable[[], None]) -> Timer:
    def timer(step: Callable[[], Any], iters: int) -> float:
        sync()
        t0 = clock()
        for _ in range(iters):
            step()
        sync()
        return clock() - t0

    return timer


def _cuda_gpu_timer(dev: torch.device) -> GpuTimer:
    """Time ``iters`` calls on the GPU with events, the stream held busy while the CPU queues them.

    ``torch.cuda._sleep`` spins the GPU for a number of cycles; it is queued first, for longer
    than the CPU needs to launch the block (``hold_s``), so the start event fires only once every
    kernel of the block is waiting behind it and the events time execution alone.
    """
    cycles_per_s: list[float] = []

    def calibrate() -> float:
        if not cycles_per_s:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(2):  # the first call pays for loading the kernel
                a.record()
                torch.cuda._sleep(1_000_000)
                b.record()
                b.synchronize()
            cycles_per_s.append(1_000_000 / max(a.elapsed_time(b) / 1e3, 1e-6))
        return cycles_per_s[0]

    def timer(step: Callable[[], Any], iters: int, hold_s: float) -> float:
        cps = calibrate()
        torch.cuda.synchronize(dev)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(int(min(hold_s, 0.5) * cps))
        start.record()
        for _ in range(iters):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timer


def _warm_up(timer: Timer, step, *, min_iters: int, window: int, max_iters: int, max_s: float) -> list[float]:
    """Run single iterations until the last ``window`` no longer set a new low (within 2 %)."""
    times: list[float] = []
    while True:
        times.append(timer(step, 1))
        n = len(times)
        if n >= max_iters or (n >= min_iters and sum(times) >= max_s):
            return times
        if n >= min_iters and n > window and min(times[-window:]) >= 0.98 * min(times[:-window]):
            return times


def _warm_briefly(timer: Timer, step, *, steady_s: float, max_iters: int, max_s: float) -> list[float]:
    """A later round's warm-up: two iterations, more only while still clearly slower than steady state.

    The primitives and caches that round 0 warmed are process-wide; what a fresh allocation pays
    for is first-touch of its own memory. One iteration does not absorb it all: measured on a
    4-layer DWConv stack at 96x56x56 under the tuned allocator, the first timed iteration after a
    one-iteration warm-up faulted in 294 pages (one 1.2 MB activation: the second forward on a
    fresh module copy placed one activation in memory the first had not touched), every round;
    after two warm-up iterations the rounds' timed blocks faulted 0–12 pages in all. A page
    faulted in costs about a microsecond, so those few hundred pages matter to an iteration of a
    millisecond and not to one of :data:`LONG_ITERATION_S` or more (under 2 %, in one sample of a
    round's median): there one warm-up iteration is enough, which spares a dense 768x7x7 conv
    stack 80 ms of every round.
    """
    times = [timer(step, 1)]
    if steady_s < LONG_ITERATION_S:
        times.append(timer(step, 1))
    while times[-1] > 1.5 * steady_s and len(times) < max_iters and sum(times) < max_s:
        times.append(timer(step, 1))
    return times


def outputs_close(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return False
        scale = float(a.detach().abs().max()) if a.numel() else 0.0
        return bool(torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4 * max(scale, 1.0)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return all(outputs_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(outputs_close(a[k], b[k]) for k in a)
    return True  # nothing comparable: trust the structural folding rule


def measure(
    module: nn.Module,
    example_input: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    precision: float = DEFAULT_PRECISION,
    budget_s: float = DEFAULT_BUDGET_S,
    min_rounds: int = DEFAULT_MIN_ROUNDS,
    max_rounds: int = 500,
    round_s: float | None = None,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    timer: Timer | None = None,
    rebuild: Callable[[], nn.Module] | None = None,
    fold: bool = True,
    allocator: str | None = allocators.DEFAULT_ALLOCATOR,
    tf32: bool = False,
    gpu_timer: GpuTimer | None = None,
    halve_on_oom: bool = True,
    peak_memory: bool = True,
) -> Measurement:
    """Measure the per-iteration latency of ``module(example_input)`` in rounds of fresh allocations.

    Each round gets a fresh module — ``rebuild()`` if given, else ``copy.deepcopy(module)``; the
    caller's module is never modified — prepared with ``eval()``, :func:`fold_bn` and ``.to(device)``,
    and a fresh clone of the input. It warms up until steady and takes samples for about
    ``round_s`` seconds (default: ``budget_s / 25``, at least 3 samples). Rounds stop when the
    95 % CI of the median of round medians is within ±``precision`` (relative) after at least
    ``min_rounds`` rounds, or when ``budget_s`` seconds (by ``clock``) are spent.

    On CPU the torch thread count is set to ``threads`` (default 1, the paper's protocol) and
    restored afterwards. On CUDA ``cudnn.benchmark`` is on for the duration, TF32 for convolutions
    and matmuls is ``tf32`` (recorded in :attr:`Measurement.tf32`), each round adds GPU-time
    samples (:attr:`Measurement.gpu_samples_s`), and running out of memory
    (:func:`is_out_of_memory`) halves the batch (slicing the input) and starts over, after the
    failed attempt's module and input are released; the batch actually used is
    :attr:`Measurement.batch`, the ones that failed :attr:`Measurement.oom_batches`. The batch is
    never halved when ``halve_on_oom`` is false or the input has no batch dimension (a 1-D input).

    ``allocator`` puts this process under that allocator first (:func:`fnbench.allocators.apply`:
    ``"tuned"``, the default, fixes glibc's mmap and trim thresholds so freed activations are
    reused; ``"system"`` leaves malloc as the process got it; ``"jemalloc"``/``"tcmalloc"`` must be
    preloaded); None leaves the process as it is. Tuning is process-wide and cannot be undone.
    The minor and major page faults of every round's timed blocks are counted (``getrusage``).

    ``peak_memory``: after the warm-up, one forward's peak memory above what was allocated before it
    is read (:func:`peak_memory_bytes`) into :attr:`Measurement.peak_memory_bytes`.

    ``clock`` and ``timer`` are injectable for tests: ``timer(step, iters)`` must return the
    seconds ``iters`` calls of ``step()`` took (the default syncs the device around them and reads
    ``clock``); ``clock`` also enforces the budget.
    """
    dev = torch.device(device)
    if not budget_s or budget_s <= 0:
        raise ValueError(f"budget_s must be positive seconds, got {budget_s!r}")
    if min_rounds < 1:
        raise ValueError("min_rounds must be at least 1")
    round_s = round_s if round_s is not None else max(budget_s / ROUNDS_PER_BUDGET, 1e-3)
    with _device_state(dev, threads, tf32, allocator) as alloc_state:

        def attempt(batch: int) -> Measurement:
            sampler = Sampler(
                module,
                example_input[:batch],
                device=dev,
                round_s=round_s,
                seed=seed,
                clock=clock,
                timer=timer,
                rebuild=rebuild,
                fold=fold,
                gpu_timer=gpu_timer,
                peak_memory=peak_memory,
            )
            return _rounds_until_settled(sampler, budget_s, precision, min_rounds, max_rounds)

        m, failed = _halving_on_oom(attempt, example_input, dev, halve_on_oom)
    m.allocator_state = alloc_state
    m.tf32 = bool(tf32) if dev.type == "cuda" else None
    m.oom_batches = failed
    return m


def open_sampler(
    module: nn.Module,
    example_input: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    round_s: float,
    warm_s: float,
    seed: int = 0,
    rebuild: Callable[[], nn.Module] | None = None,
    fold: bool = True,
    tf32: bool = False,
    halve_on_oom: bool = True,
    peak_memory: bool = True,
) -> tuple[Sampler, list[int]]:
    """A :class:`Sampler` warmed for rounds taken one at a time, and the batches that ran out of memory.

    For a process that measures this one target (a worker of an interleaved pass): the device
    state :func:`measure` sets for its duration (threads, cuDNN autotuning, the math mode) is set
    here for the rest of the process, under the allocator the process already has. The warm-up
    (at most ``warm_s`` seconds) is done now, before any round, and out of memory during it halves
    the batch as :func:`measure` does.
    """
    dev = torch.device(device)
    alloc_state, _ = _set_device_state(dev, threads, tf32, None)  # not restored: the process is this target's

    def attempt(batch: int) -> Sampler:
        sampler = Sampler(
            module,
            example_input[:batch],
            device=dev,
            round_s=round_s,
            seed=seed,
            rebuild=rebuild,
            fold=fold,
            peak_memory=peak_memory,
            first_is_module=True,
        )
        sampler.warm(warm_s)
        return sampler

    sampler, failed = _halving_on_oom(attempt, example_input, dev, halve_on_oom)
    sampler.allocator_state = alloc_state
    sampler.tf32 = bool(tf32) if dev.type == "cuda" else None
    return sampler, failed


@contextlib.contextmanager
def _device_state(dev: torch.device, threads: int | None, tf32: bool, allocator: str | None):
    """Set what a measurement runs under (:func:`_set_device_state`) for the block, restore the rest
    after it; yields the allocator's state."""
    alloc_state, restore = _set_device_state(dev, threads, tf32, allocator)
    try:
        yield alloc_state
    finally:
        restore()


def _set_device_state(
    dev: torch.device, threads: int | None, tf32: bool, allocator: str | None
) -> tuple[dict[str, Any], Callable[[], None]]:
    """Put this process under ``allocator`` (None: as it is), set the CPU threads (default 1), and on
    CUDA cuDNN autotuning and the TF32 math mode; ``(allocator state, a function that restores the rest)``."""
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("measure(device='cuda') but CUDA is not available")
    alloc_state = allocators.apply(allocator) if allocator is not None else allocators.state()
    prev_threads = torch.get_num_threads()
    prev_cudnn = torch.backends.cudnn.benchmark
    prev_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if dev.type == "cpu":
        torch.set_num_threads(1 if threads is None else int(threads))
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(tf32)

    def restore() -> None:
        torch.set_num_threads(prev_threads)
        torch.backends.cudnn.benchmark = prev_cudnn
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev_tf32

    return alloc_state, restore


def _halving_on_oom(attempt: Callable[[int], Any], example_input: torch.Tensor, dev: torch.device, halve: bool):
    """``(attempt(batch), batches that ran out of memory)``: the batch halved after each out-of-memory.

    The batch is never halved when ``halve`` is false or the input has no batch dimension (1-D).
    """
    batch = int(example_input.shape[0]) if example_input.dim() > 0 else 1
    can_halve = halve and example_input.dim() >= 2
    failed: list[int] = []
    while True:
        try:
            return attempt(batch), failed
        except Exception as e:  # noqa: BLE001 — only out-of-memory is handled; the rest is re-raised
            if not (is_out_of_memory(e) and can_halve and batch > 1):
                raise
            drop_frames(e)
        # Out of the handler, the exception and its traceback are gone, and with them the
        # frames that held the failed attempt's module, input and outputs: now they can be freed.
        failed.append(batch)
        batch //= 2
        free_device_memory(dev)


def drop_frames(e: BaseException) -> None:
    """Clear the locals of the frames ``e``'s traceback holds (module, input, partial outputs).

    Whoever still holds the exception (a caller's log, a test) would otherwise keep the failed
    attempt's tensors alive, and emptying the cache would free nothing.
    """
    import traceback as _tb

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        _tb.clear_frames(e.__traceback__)
        e.__traceback__ = None
        e = e.__context__ or e.__cause__


def free_device_memory(dev: torch.device | str) -> None:
    """Collect garbage and return the CUDA caching allocator's free blocks (after an out-of-memory)."""
    gc.collect()
    if torch.device(dev).type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class _Rounds:
    """What the rounds of one measurement have gathered so far, per sample and per round."""

    samples: list[float] = field(default_factory=list)
    rids: list[int] = field(default_factory=list)
    warm_counts: list[int] = field(default_factory=list)
    counts: RoundCounts = field(default_factory=RoundCounts)
    gpu_samples: list[float] = field(default_factory=list)


def _fold_checked(m: nn.Module, x: torch.Tensor, fresh_module: Callable[[], nn.Module]) -> tuple[nn.Module, int]:
    """Fold ``m``'s BatchNorms, keeping them only if the output stays the same; ``(module, BNs folded)``.

    If folding changed the output, a fresh unfolded module comes back with 0, and a warning says so.
    """
    with torch.inference_mode():
        ref = m(x) if _has_bn(m) else None
    n_fold = fold_bn(m)
    if n_fold and ref is not None:
        with torch.inference_mode():
            ok = outputs_close(ref, m(x))
        if not ok:
            warnings.warn(
                "folding BatchNorm changed the module's output; measuring it unfolded", RuntimeWarning, stacklevel=4
            )
            return fresh_module(), 0
    return m, n_fold


class Sampler:
    """One target measured in rounds of fresh allocations, in this process, a round at a time.

    :meth:`warm` makes round 0's instance (a fresh module, BN folded and checked, a fresh clone of
    the input) and warms it until steady, which also fixes the block length; :meth:`take_round`
    takes one round's samples (the warmed instance for the first, a fresh one, warmed briefly,
    for every later one); :meth:`measurement` is what the rounds gathered. :func:`measure` takes
    rounds until they settle or the budget is spent; a worker process takes them one at a time
    as its run asks, interleaved with other targets' rounds (:mod:`fnbench.workers`).
    ``example_input`` is used at its batch; the device state (threads, math mode) is the caller's.
    ``first_is_module``: the module belongs to the sampler (a worker built it for this), so round 0
    runs it rather than a copy; :func:`measure` never touches its caller's module.
    """

    def __init__(
        self,
        module: nn.Module,
        example_input: torch.Tensor,
        *,
        device: torch.device,
        round_s: float,
        seed: int = 0,
        clock: Callable[[], float] = time.perf_counter,
        timer: Timer | None = None,
        rebuild: Callable[[], nn.Module] | None = None,
        fold: bool = True,
        gpu_timer: GpuTimer | None = None,
        peak_memory: bool = False,
        first_is_module: bool = False,
    ):
        torch.manual_seed(seed)
        self.module, self.x, self.dev, self.round_s = module, example_input, device, round_s
        self.clock, self.rebuild, self.fold = clock, rebuild, fold
        self.timer = timer or make_timer(clock, _sync_for(device))
        if gpu_timer is None and device.type == "cuda":
            gpu_timer = _cuda_gpu_timer(device)
        self.gpu_timer = gpu_timer
        self.threads = torch.get_num_threads() if device.type == "cpu" else None
        self.acc = _Rounds()
        self.block = 1
        self.per_sample = 0.0  # seconds per block, estimated in round 0
        self.folded = 0
        self.t_start = clock()
        self._warmed: tuple[nn.Module, torch.Tensor] | None = None
        self.allocator_state: dict[str, Any] | None = None
        self.tf32: bool | None = None
        self.peak_memory = peak_memory
        self.peak_memory_bytes: int | None = None
        self.peak_memory_s = 0.0  # seconds reading it took (outside any budget)
        self.first_is_module = first_is_module
        self.setup_s = 0.0  # seconds the last round spent on its fresh instance and warm-up

    @property
    def batch(self) -> int:
        return int(self.x.shape[0]) if self.x.dim() > 0 else 1

    @property
    def rounds(self) -> int:
        return len(self.acc.warm_counts) - (self._warmed is not None)

    def _fresh_module(self) -> nn.Module:
        m = self.rebuild() if self.rebuild is not None else copy.deepcopy(self.module)
        return m.eval().to(self.dev)

    def _instance(self) -> tuple[nn.Module, torch.Tensor]:
        return self._fresh_module(), self.x.detach().clone().to(self.dev)

    def warm(self, max_s: float) -> None:
        """Round 0's instance, BN folded (kept unfolded if folding changes the output) and warmed until
        steady within ``max_s`` seconds; the block length and the seconds per block follow from it."""
        if self.first_is_module:  # the module is this sampler's own: it is round 0's fresh instance
            m, x = self.module.eval().to(self.dev), self.x.detach().clone().to(self.dev)
        else:
            m, x = self._instance()
        if self.fold:
            m, self.folded = _fold_checked(m, x, self._fresh_module)
            self.fold = self.folded > 0 or not _has_bn(m)  # unfolded from here on if folding changed the output
        with torch.inference_mode():
            warm = _warm_up(self.timer, lambda: m(x), min_iters=3, window=2, max_iters=50, max_s=max(max_s, 1e-3))
        t_iter = float(np.median(warm[-3:]))
        min_block_s = MIN_BLOCK_S["cuda" if self.dev.type == "cuda" else "cpu"]
        self.block = max(1, math.ceil(min_block_s / max(t_iter, 1e-12)))
        self.per_sample = t_iter * self.block
        self.acc.warm_counts.append(len(warm))
        if self.peak_memory:  # warm: what one forward needs, not what the first one initialised
            t0 = time.perf_counter()
            with torch.inference_mode():
                self.peak_memory_bytes = peak_memory_bytes(lambda: m(x), self.dev)
            self.peak_memory_s = time.perf_counter() - t0
        self._warmed = (m, x)

    def take_round(self, deadline: float = math.inf) -> None:
        """One round: ``round_s`` seconds of samples (at least 3) on a fresh instance, stopping early at ``deadline``."""
        r = self.rounds
        t_setup = self.clock()
        if self._warmed is not None:
            (m, x), self._warmed = self._warmed, None
        else:
            m, x = self._instance()
            if self.fold:
                fold_bn(m)
        with torch.inference_mode():

            def step(m=m, x=x):
                return m(x)

            if r > 0:
                warm = _warm_briefly(
                    self.timer,
                    step,
                    steady_s=self.per_sample / self.block,
                    max_iters=10,
                    max_s=max(0.5 * self.round_s, 1e-3),
                )
                self.acc.warm_counts.append(len(warm))
                self.setup_s = self.clock() - t_setup
            # A round samples for round_s, and at least twice as long as its fresh copy and warm-up took,
            # so that a model whose copy is heavy (conv 768x7x7: 212 MB of weights) spends its rounds timing.
            want = max(self.round_s, SETUP_SHARE * self.setup_s) / self.per_sample
            n = int(min(max(round(want), _MIN_SAMPLES_PER_ROUND), _MAX_SAMPLES_PER_ROUND))
            taken = _sample_round(
                self.acc, r, self.timer, step, self.block, n, dev=self.dev, clock=self.clock, deadline=deadline
            )
            # the next round's length follows this round's speed, not the warm-up's alone: a warm-up
            # taken while other processes prepared their targets can be several times slower
            self.per_sample = float(np.median(self.acc.samples[-taken:])) * self.block
            if self.gpu_timer is not None:  # after the fault count: these iterations are not in the round's iters
                hold_s = 2.0 * self.per_sample / self.block + 1e-3  # longer than the CPU takes to queue one iteration
                self.acc.gpu_samples += [self.gpu_timer(step, 1, hold_s) for _ in range(_GPU_SAMPLES_PER_ROUND)]
        del m, x, step

    def settled(self, precision: float, min_rounds: int) -> bool:
        return rounds_settled(self.acc.samples, self.acc.rids, precision, min_rounds)

    def measurement(
        self, *, precision: float, min_rounds: int, budget_s: float | None, exhausted: bool = False
    ) -> Measurement:
        """What the rounds so far gathered (raw samples, round ids, counts), with the settings they ran under."""
        acc = self.acc
        return Measurement(
            samples_s=[float(v) for v in acc.samples],
            round_ids=list(acc.rids),
            batch=self.batch,
            precision=precision,
            min_rounds=min_rounds,
            iters_per_sample=self.block,
            warmup_iters=list(acc.warm_counts),
            budget_s=budget_s,
            wall_s=self.clock() - self.t_start,
            budget_exhausted=exhausted,
            device=str(self.dev),
            threads_used=self.threads,
            bn_folded=self.folded,
            counts=acc.counts,
            allocator_state=self.allocator_state,
            tf32=self.tf32,
            gpu_samples_s=list(acc.gpu_samples) or None,
            peak_memory_bytes=self.peak_memory_bytes,
            peak_memory_method=PEAK_MEMORY_METHODS[self.dev.type] if self.peak_memory_bytes is not None else None,
        )


def _sample_round(
    acc: _Rounds,
    r: int,
    timer: Timer,
    step: Callable[[], Any],
    block: int,
    n_samples: int,
    *,
    dev: torch.device,
    clock: Callable[[], float],
    deadline: float,
) -> int:
    """Take round ``r``'s timed blocks (garbage collection off), with the page faults they paid; return how many."""
    gc_was = gc.isenabled()
    if dev.type == "cpu":
        acc.counts.ref_s.append(reference_s())
    gc.disable()  # a collection inside a timed block is noise from the harness, not the model
    taken = 0
    wait0 = runq_wait_s()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        for _ in range(n_samples):
            acc.samples.append(timer(step, block) / block)
            acc.rids.append(r)
            taken += 1
            if clock() >= deadline:
                break
    finally:
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        wait1 = runq_wait_s()
        if gc_was:
            gc.enable()
    if wait0 is not None and wait1 is not None:
        acc.counts.wait_s.append(wait1 - wait0)
    # The whole process's faults over the round's timed blocks (the clock reads between
    # blocks allocate nothing that could fault): what the timed iterations paid.
    acc.counts.minor.append(ru1.ru_minflt - ru0.ru_minflt)
    acc.counts.major.append(ru1.ru_majflt - ru0.ru_majflt)
    acc.counts.iters.append(taken * block)
    return taken


def _rounds_until_settled(
    sampler: Sampler, budget_s: float, precision: float, min_rounds: int, max_rounds: int
) -> Measurement:
    """Take ``sampler``'s rounds until they settle (after ``min_rounds``) or the next would overrun ``budget_s``."""
    clock = sampler.clock
    sampler.warm(0.15 * budget_s)
    # reading the peak memory is no part of the measurement: its first use in a process imports
    # torch's dispatch machinery (about a second), which the budget is not for
    deadline = sampler.t_start + budget_s + sampler.peak_memory_s
    exhausted = False
    for r in range(max_rounds):
        t_round = clock()
        sampler.take_round(deadline)
        now = clock()
        # The next round is predicted from this one; round 0's first-time costs (CUDA context,
        # cuDNN autotuning, lazy initialisation, the long warm-up) do not recur, so only its
        # sampling counts. Otherwise one slow start makes every chunk stop after a single round.
        last_round_s = now - t_round
        if r + 1 >= min_rounds and sampler.settled(precision, min_rounds):
            break
        if now >= deadline or now + last_round_s > deadline + 0.25 * last_round_s:
            exhausted = not sampler.settled(precision, min_rounds)
            break
    else:
        exhausted = not sampler.settled(precision, min_rounds)
    return sampler.measurement(precision=precision, min_rounds=min_rounds, budget_s=budget_s, exhausted=exhausted)


#: How :func:`peak_memory_bytes` reads a forward's peak, by device type (stored beside the figure).
PEAK_MEMORY_METHODS = {
    "cuda": "torch.cuda.max_memory_allocated above memory_allocated before one forward",
    "cpu": "peak bytes of tensor storage created by one forward and alive at once, read after every operator",
}


class _LiveTensorBytes(TorchDispatchMode):
    """While active, the peak bytes of CPU tensor storage created and alive at the same time.

    Every operator's outputs are noted (by storage, so views and in-place results count once) with a
    weak reference to each tensor; after every operator the storages some tensor still holds are
    summed. Frees happen between operators (Python drops the last reference), so the peak at
    operator granularity is the peak of tensor memory; an operator's own scratch (a library's
    workspace freed before it returns) is not a tensor and is not seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, tuple[int, list]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        seen = {a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0] if _is_cpu_tensor(a)}
        for t in tree_flatten(out)[0]:
            if _is_cpu_tensor(t):
                st = t.untyped_storage()
                entry = self.storages.get(st.data_ptr())
                if entry is None and st.data_ptr() in seen:
                    continue  # a view of (or in place on) memory allocated before the forward
                if entry is None or not _any_alive(entry[1]):  # new, or an address freed and given out again
                    self.storages[st.data_ptr()] = (st.nbytes(), [weakref.ref(t)])
                else:
                    entry[1].append(weakref.ref(t))
        live = 0
        for ptr, (nbytes, refs) in list(self.storages.items()):
            if _any_alive(refs):
                live += nbytes
            else:
                del self.storages[ptr]
        self.peak = max(self.peak, live)
        return out


def _is_cpu_tensor(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "cpu"


def _any_alive(refs: list) -> bool:
    return any(r() is not None for r in refs)


def peak_memory_bytes(step: Callable[[], Any], dev: torch.device) -> int:
    """The memory one call of ``step`` (a forward) needs at its peak, above what was allocated before it.

    CUDA: the caching allocator's ``max_memory_allocated`` over the call, after its peak is reset,
    less ``memory_allocated`` before (workspaces included). CPU: the peak of tensor storage the call
    creates and holds at once (:class:`_LiveTensorBytes`), which glibc's own counters cannot give
    (they keep no high-water mark of bytes in use); weights and the input, allocated before, are
    not in it, the output is.
    """
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        step()
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - before)
    tracker = _LiveTensorBytes()
    with tracker:
        step()
    return int(tracker.peak)


def _has_bn(m: nn.Module) -> bool:
    return any(isinstance(c, nn.BatchNorm2d) for c in m.modules())
