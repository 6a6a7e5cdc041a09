"""Where a network's time goes: every layer's cost and its latency, measured standalone.

How a per-layer latency is taken (``method: "standalone-replay"``):

1. **Record.** The network (in ``eval()``, BatchNorm folded as :func:`fnbench.timing.measure`
   folds it) runs once under a dispatch mode with module hooks. Every call of a *leaf* module
   (one with no children) becomes a row holding a fresh copy of its inputs; every aten op that a
   non-leaf module runs itself (PConv's ``split``/``cat``, a residual ``add``, ShuffleNet's channel
   shuffle, an attention block's ``matmul``/``softmax``) becomes a row of its own holding a copy of
   that op's arguments. Each row's MACs (``torch.utils.flop_counter``'s formulas) and counted bytes
   (:class:`fnbench.counting.ByteCounter`'s rules) are the sums over the aten ops it executed, so
   the rows partition the forward: their MACs sum exactly to the network's.
2. **Replay.** Each row is timed standalone on its recorded inputs with the same engine and
   conditions as the whole network (:func:`fnbench.timing.measure`: the same device, threads and
   allocator, rounds over fresh copies of the layer and its inputs, medians and a 95 % CI). On CUDA
   the engine synchronises around every timed block, so a row's time is its kernels' time.
3. **Check.** The whole network is measured in the same run, before and after the rows (pooled
   as one measurement), and the sum of the rows' medians (and of their means and minima) is
   reported beside its median (and mean, and minimum). The sum is a hot-cache figure: a layer
   timed alone finds its weights and input in cache, which inside the network the layers before
   it have evicted. Over the 33 networks of the ``networks`` suite on an idle x86 core the sum
   of medians came out between −32 % and +6 % of the network's median (median −9 %), short most
   for small memory-bound networks; replaying every row in network order instead (each row after
   the others: ``benchmarks/breakdown_gap.py``) takes 17–29 % longer than the rows alone, which
   is that eviction. The harness's per-call cost works the other way (it adds to every row).

Only eager PyTorch is broken down: ``torch.compile``, ONNX Runtime, OpenVINO and XNNPACK fuse and reorder
layers, so a standalone replay of a layer is not what they run (each runtime's
:attr:`~fnbench.runtimes.Runtime.no_breakdown` says why).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import flop_registry

from . import allocators, units
from .counting import ByteCounter, HookedDispatchMode
from .opkinds import DATA_OPS, kind_of_op, op_name
from .options import DEFAULT_BREAKDOWN_BUDGET_S, DEFAULT_LAYER_BUDGET_S
from .timing import Measurement, Timer, fold_bn, measure, outputs_close

__all__ = [
    "METHOD",
    "LayerCall",
    "LayerResult",
    "Breakdown",
    "record_layers",
    "module_kind",
    "op_kind",
    "measure_layers",
]

METHOD = "standalone-replay"

_ACT_NAMES = (
    "relu",
    "gelu",
    "silu",
    "swish",
    "sigmoid",
    "hardswish",
    "hardsigmoid",
    "mish",
    "tanh",
    "elu",
    "softplus",
    "quickgelu",
)


def _conv_kind(groups: int, c_in: int, kernel: tuple[int, ...]) -> str:
    if groups == 1:
        return "pwconv" if all(k == 1 for k in kernel) else "conv"
    return "dwconv" if groups == c_in else "gconv"


def _is_attention(m: nn.Module | None) -> bool:
    return m is not None and ("attention" in type(m).__name__.lower() or isinstance(m, nn.MultiheadAttention))


def _is_pconv(m: nn.Module | None) -> bool:
    return m is not None and type(m).__name__ in ("PConv", "Partial_conv3", "PartialConv")


def module_kind(module: nn.Module, parent: nn.Module | None = None) -> str | None:
    """The operator kind of a leaf module, or None when its class does not say (the ops decide then).

    A convolution is ``pconv`` inside a partial convolution (its parent is a ``PConv``), else by
    its groups and kernel: ``pwconv`` (1×1, dense), ``conv`` (k×k, dense), ``dwconv`` (groups =
    input channels), ``gconv`` (other groups).
    """
    if isinstance(module, nn.modules.conv._ConvNd):
        if _is_pconv(parent):
            return "pconv"
        return _conv_kind(module.groups, module.in_channels, tuple(module.kernel_size))
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.MultiheadAttention, nn.Softmax)):
        return "attention"
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)):
        return "norm"
    if isinstance(
        module,
        (
            nn.modules.pooling._MaxPoolNd,
            nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd,
        ),
    ):
        return "pool"
    if isinstance(module, (nn.Flatten, nn.Unflatten, nn.ChannelShuffle, nn.PixelShuffle, nn.PixelUnshuffle)):
        return "data"
    if isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)):
        return "other"
    name = type(module).__name__.lower()
    if type(module).__module__.startswith("torch.nn.modules.activation") or any(a in name for a in _ACT_NAMES):
        return "act"
    if "norm" in name:
        return "norm"
    return None


def op_kind(op: str, owner: nn.Module | None = None, conv_args: tuple[int, int, tuple[int, ...]] | None = None) -> str:
    """The operator kind of one aten op (``"aten.cat"`` or ``"cat"``) run by ``owner`` itself."""
    name = op_name(op)
    if name in ("convolution", "conv2d", "_convolution", "mkldnn_convolution") and conv_args is not None:
        return "pconv" if _is_pconv(owner) else _conv_kind(*conv_args)
    if _is_attention(owner) and name not in DATA_OPS:
        return "attention"
    return kind_of_op(name)


# -- recording ------------------------------------------------------------------------------------


class _Slot:
    """Where a recorded tensor goes back into an argument structure."""

    def __init__(self, i: int):
        self.i = i


def _fresh_copy(t: Tensor) -> Tensor:
    """A copy of ``t`` in new memory with the same sizes, strides and storage offset (a view stays a view)."""
    t = t.detach()
    if t.is_contiguous() or t.numel() == 0:
        return t.clone()
    storage = t.untyped_storage().nbytes() // t.element_size()
    base = t.as_strided((storage,), (1,), 0).clone()  # the whole storage: overlapping (expanded) views too
    return base.as_strided(t.size(), t.stride(), t.storage_offset())


def _pack(value: Any, tensors: list[Tensor]) -> Any:
    if isinstance(value, Tensor):
        tensors.append(_fresh_copy(value))
        return _Slot(len(tensors) - 1)
    if isinstance(value, (list, tuple)):
        return type(value)(_pack(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _pack(v, tensors) for k, v in value.items()}
    return value


def _unpack(value: Any, tensors: list[Tensor]) -> Any:
    if isinstance(value, _Slot):
        return tensors[value.i]
    if isinstance(value, (list, tuple)):
        return type(value)(_unpack(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _unpack(v, tensors) for k, v in value.items()}
    return value


class _Op:
    """An aten op that ``copy.deepcopy`` shares instead of copying (an op has no state)."""

    def __init__(self, func: Callable[..., Any]):
        self.name = getattr(getattr(func, "overloadpacket", None), "__name__", None)
        self.func = getattr(func, "_op", func)  # the bound C++ op: an OpOverload's Python call costs µs

    def __deepcopy__(self, memo) -> _Op:
        return self

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)


def _same_result(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        return outputs_close(a, b) if a.is_floating_point() else bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_result(x, y) for x, y in zip(a, b))
    return False


class _Replay(nn.Module):
    """One recorded call, replayable: ``forward`` ignores its argument and calls the layer (or aten
    op) on the recorded inputs. The inputs are buffers, so ``.to(device)`` moves them and
    ``copy.deepcopy`` (each round of :func:`fnbench.timing.measure`) gives fresh copies."""

    def __init__(self, fn: nn.Module | Callable[..., Any], args: tuple, kwargs: dict[str, Any]):
        super().__init__()
        tensors: list[Tensor] = []
        self._args = _pack(tuple(args), tensors)
        self._kwargs = _pack(dict(kwargs), tensors)
        self._slots = [f"in{i}" for i in range(len(tensors))]
        for name, t in zip(self._slots, tensors):
            self.register_buffer(name, t, persistent=False)
        flat = all(not isinstance(v, (list, tuple, dict)) for v in (*self._args, *self._kwargs.values()))
        self._flat = flat and not self._kwargs
        if isinstance(fn, nn.Module):
            self.layer = fn
            self._fn = None
        else:
            self._fn = _Op(fn)

    def use_public_binding(self, expected: Any) -> bool:
        """Replay an aten op through ``torch.<name>`` where that gives the same result.

        Calling an op through ``torch.ops`` boxes its arguments (several µs a call); the network
        called it through the public binding, which does not. A binding is used only if, called
        here with the recorded arguments, it returns what the op returned.
        """
        if self._fn is None or self._kwargs:
            return False
        candidate = getattr(torch, self._fn.name, None) if self._fn.name else None
        if candidate is None or not callable(candidate):
            return False
        args = _unpack(self._args, [_fresh_copy(getattr(self, n)) for n in self._slots])
        try:
            got = candidate(*args)
        except Exception:  # noqa: BLE001 — a signature that differs from the op's: keep the op
            return False
        if not _same_result(got, expected):
            return False
        self._fn = _Op(candidate)
        return True

    def forward(self, _unused: Tensor | None = None) -> Any:
        bufs = self._buffers
        tensors = [bufs[n] for n in self._slots]
        fn = self.layer if self._fn is None else self._fn
        if self._flat:  # the common case, kept cheap: the harness's cost per call is added to every row
            return fn(*[tensors[a.i] if type(a) is _Slot else a for a in self._args])
        return fn(*_unpack(self._args, tensors), **_unpack(self._kwargs, tensors))


@dataclass
class LayerCall:
    """One row of a breakdown: a leaf module's call, or one aten op run by a non-leaf module itself."""

    name: str  # module path ("stages.0.blocks.1.mlp.0"), or "<owner path>:<op>" for an own op
    kind: str
    module_type: str  # the leaf's class, or the owner's class for an own op
    op: str | None  # the aten op of an own-op row; None for a leaf module
    input_shape: list[int] | None
    params: int
    macs: int = 0
    bytes: int = 0
    ops: dict[str, int] = field(default_factory=dict)  # aten op -> calls inside this row
    replay: _Replay | None = None

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity, FLOP per counted byte."""
        return units.intensity(self.macs, self.bytes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "module_type": self.module_type,
            "op": self.op,
            "input_shape": self.input_shape,
            "params": self.params,
            "macs": self.macs,
            "bytes": self.bytes,
            "ops": dict(self.ops),
        }


def _first_shape(args: Any) -> list[int] | None:
    if isinstance(args, Tensor):
        return list(args.shape)
    if isinstance(args, (list, tuple)):
        for a in args:
            s = _first_shape(a)
            if s is not None:
                return s
    return None


class _Recorder(HookedDispatchMode):
    """Records the rows of one forward: leaf calls with their inputs, own ops with their arguments."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self._modules = dict(root.named_modules())
        self._names = {id(m): n for n, m in self._modules.items()}
        self._leaves = {id(m) for m in self._modules.values() if not any(True for _ in m.children())}
        self._stack: list[str] = []
        self._leaf_row: LayerCall | None = None
        self._leaf_depth = 0
        self._quiet = False
        self.rows: list[LayerCall] = []
        self._seen: dict[str, int] = {}
        self._hooks: list[Any] = []

    def _unique(self, name: str) -> str:
        n = self._seen.get(name, 0) + 1
        self._seen[name] = n
        return name if n == 1 else f"{name}#{n}"

    def _parent(self, name: str) -> nn.Module | None:
        if not name:
            return None
        return self._modules.get(name.rsplit(".", 1)[0] if "." in name else "")

    def _pre(self, module, args, kwargs):
        name = self._names.get(id(module))
        if name is None:
            return
        self._stack.append(name)
        if self._leaf_row is None and id(module) in self._leaves:
            self._quiet = True  # copying the inputs is the recorder's work, not the layer's
            try:
                replay = _Replay(module, args, kwargs)
            finally:
                self._quiet = False
            kind = module_kind(module, self._parent(name))
            self._leaf_row = LayerCall(
                self._unique(name),
                kind or "",
                type(module).__name__,
                None,
                _first_shape(args),
                sum(p.numel() for p in module.parameters()),
                replay=replay,
            )
            self._leaf_depth = len(self._stack)

    def _post(self, module, args, kwargs, out):
        if id(module) not in self._names or not self._stack:
            return
        if self._leaf_row is not None and len(self._stack) == self._leaf_depth:
            row = self._leaf_row
            if not row.kind:  # the class did not say: the op doing the most work decides
                row.kind = self._kind_from_ops(row, module)
            self.rows.append(row)
            self._leaf_row = None
        self._stack.pop()

    def _kind_from_ops(self, row: LayerCall, module: nn.Module) -> str:
        kinds = [op_kind(op, module) for op in row.ops]
        for k in kinds:
            if k not in ("data", "other"):
                return k
        return kinds[0] if kinds else "other"

    def _install_hooks(self) -> list:
        hooks = []
        for m in self._modules.values():  # per-module hooks: only they see keyword arguments
            hooks.append(m.register_forward_pre_hook(self._pre, with_kwargs=True))
            hooks.append(m.register_forward_hook(self._post, with_kwargs=True))
        return hooks

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._quiet:
            return func(*args, **kwargs)
        op = str(func.overloadpacket)
        own = None
        if self._leaf_row is None and self._stack:
            owner_name = self._stack[-1]
            owner = self._modules.get(owner_name)
            conv_args = None
            if op.split(".")[-1] in ("convolution", "conv2d", "_convolution") and len(args) > 1:
                w = args[1]
                groups = int(args[8]) if len(args) > 8 else int(kwargs.get("groups", 1))
                conv_args = (groups, int(w.shape[1]) * groups, tuple(int(k) for k in w.shape[2:]))
            own = LayerCall(
                self._unique(f"{owner_name}:{op.split('.')[-1]}"),
                op_kind(op, owner, conv_args),
                type(owner).__name__,
                op,
                _first_shape(args),
                0,
                replay=_Replay(func, args, kwargs),
            )  # copied before the op can mutate them
        out = func(*args, **kwargs)
        if own is not None:
            own.replay.use_public_binding(out)
        macs = 0
        if func.overloadpacket in flop_registry:
            macs = int(flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)) // 2
        read, written = (0, 0) if func.is_view else ByteCounter.op_bytes(func, op, args, kwargs, out)
        row = own if own is not None else self._leaf_row
        if row is not None:
            row.macs += macs
            row.bytes += read + written
            row.ops[op] = row.ops.get(op, 0) + 1
        if own is not None:
            self.rows.append(own)
        return out


def record_layers(module: nn.Module, x: Tensor) -> list[LayerCall]:
    """Run ``module(x)`` once and return its rows, in execution order (see the module docstring).

    Rows that executed no aten op at all (an ``nn.Identity``) are kept: calling them still costs
    the network a module call.
    """
    rec = _Recorder(module)
    with torch.no_grad(), rec:
        module(x)
    return rec.rows


# -- measuring --------------------------------------------------------------------------------------


@dataclass
class LayerResult:
    call: LayerCall
    m: Measurement


@dataclass
class Breakdown:
    """One network's rows with their measurements, and the network measured whole in the same run."""

    rows: list[LayerResult]
    end_to_end: Measurement
    e2e_before_s: float
    e2e_after_s: float
    bn_folded: int
    wall_s: float

    @property
    def macs(self) -> int:
        return sum(r.call.macs for r in self.rows)

    @property
    def sum_s(self) -> float:
        return math.fsum(r.m.median_s for r in self.rows)

    @property
    def gap(self) -> float:
        """(sum of per-layer medians) / (end-to-end median) − 1."""
        return self.sum_s / self.end_to_end.median_s - 1

    @property
    def sum_mean_s(self) -> float:
        return math.fsum(_mean(r.m) for r in self.rows)

    @property
    def gap_mean(self) -> float:
        """(sum of per-layer means) / (end-to-end mean) − 1.

        On a CPU shared with other work, a sample is slowed when the thread is preempted during
        it; a median of short samples leaves those out, a median of whole-network samples (each
        long enough to be preempted) cannot. Means keep the preemptions in proportion to time on
        both sides, so this gap is the fairer check on a loaded machine.
        """
        return self.sum_mean_s / _mean(self.end_to_end) - 1

    @property
    def sum_min_s(self) -> float:
        return math.fsum(_min(r.m) for r in self.rows)

    @property
    def gap_min(self) -> float:
        """(sum of per-layer minima) / (end-to-end minimum) − 1: each side's least-disturbed
        iteration, the check least moved by other work on the machine."""
        return self.sum_min_s / _min(self.end_to_end) - 1


def _min(m: Measurement) -> float:
    return min(m.samples_s) if m.samples_s else float("nan")


def _mean(m: Measurement) -> float:
    return math.fsum(m.samples_s) / len(m.samples_s) if m.samples_s else float("nan")


def _pooled(a: Measurement, b: Measurement) -> Measurement:
    """Two measurements of the same thing in this process as one (samples concatenated, ``b``'s rounds
    renumbered), with the budget both had."""
    return Measurement.merge([a, b], processes=[0, 0], budget_s=(a.budget_s or 0) + (b.budget_s or 0))


def prepare_network(module: nn.Module, x: Tensor, *, fold: bool = True) -> tuple[nn.Module, int]:
    """A copy of ``module`` in ``eval()`` with BatchNorm folded as the timing engine folds it (kept
    unfolded if folding would change the output); returns it and the number of folded pairs."""
    net = copy.deepcopy(module).eval()
    if not fold:
        return net, 0
    with torch.no_grad():
        ref = net(x)
        folded = copy.deepcopy(net)
        n = fold_bn(folded)
        if n and not outputs_close(ref, folded(x)):
            return net, 0
    return folded, n


def measure_layers(
    module: nn.Module,
    x: Tensor,
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    budget_s: float = DEFAULT_BREAKDOWN_BUDGET_S,
    layer_budget_s: float = DEFAULT_LAYER_BUDGET_S,
    precision: float = 0.02,
    layer_min_rounds: int = 3,
    allocator: str | None = allocators.DEFAULT_ALLOCATOR,
    fold: bool = True,
    clock: Callable[[], float] = time.perf_counter,
    timer: Timer | None = None,
    progress: Callable[[int, int], None] | None = None,
    record_device: str | torch.device | None = None,
) -> Breakdown:
    """Break ``module(x)`` down into rows and measure each standalone, and the whole network.

    The whole network gets ``budget_s`` seconds, half before the rows and half after (pooled, so
    drift over the run hits the reference as it hits the rows); every row gets ``layer_budget_s``
    and at least ``layer_min_rounds`` rounds. ``allocator`` is applied once, before anything is
    timed. Recording runs on ``record_device`` (default: ``device``), so the ops recorded are the
    ones the device runs. ``clock``/``timer`` are passed to :func:`fnbench.timing.measure`.
    """
    t0 = clock()
    dev = torch.device(device)
    rec_dev = torch.device(record_device) if record_device is not None else dev
    if allocator is not None:
        allocators.apply(allocator)
    net, n_folded = prepare_network(module.to(rec_dev), x.to(rec_dev), fold=fold)
    calls = record_layers(net, x.to(rec_dev))
    common = dict(
        device=dev,
        threads=threads,
        precision=precision,
        clock=clock,
        timer=timer,
        fold=False,
        allocator=None,
        peak_memory=False,  # a breakdown is of time
    )
    half = budget_s / 2
    total = len(calls) + 2
    # The layers were recorded at this batch: halving it on CUDA out-of-memory would compare
    # the whole network at one batch with its layers at another, so an OOM fails instead.
    before = measure(net, x, budget_s=half, halve_on_oom=False, **common)
    if progress:
        progress(1, total)
    dummy = torch.zeros(1)
    rows = []
    for i, call in enumerate(calls):
        m = measure(call.replay, dummy, budget_s=layer_budget_s, min_rounds=layer_min_rounds, **common)
        rows.append(LayerResult(call, m))
        if progress:
            progress(i + 2, total)
    after = measure(net, x, budget_s=half, halve_on_oom=False, **common)
    if progress:
        progress(total, total)
    return Breakdown(rows, _pooled(before, after), before.median_s, after.median_s, n_folded, clock() - t0)


# -- records ----------------------------------------------------------------------------------------

#: ``record`` of a breakdown line in a results file. Readers of ordinary records skip these lines
#: (:func:`fnbench.results.read_records`); :func:`fnbench.results.read_breakdowns` returns them.
RECORD = "breakdown"


def layer_dicts(b: Breakdown) -> list[dict[str, Any]]:
    """The rows of a breakdown as stored: cost, statistics and per-round medians of each.

    A layer of a few µs gathers thousands of samples in a tenth of a second; its rounds' medians
    (what its CI is computed from) are stored instead of every sample, which keeps a network's
    line near 100 kB. The whole network's raw samples are kept (``end_to_end.samples_s``).
    """
    total = b.sum_s
    out = []
    for r in b.rows:
        m, c = r.m, r.call
        med = m.median_s
        d = c.as_dict()
        d.update(
            {
                "intensity_flop_per_byte": c.intensity,
                "median_s": med,
                "mean_s": _mean(m),
                "min_s": _min(m),
                "ci95_low_s": m.ci95_low_s,
                "ci95_high_s": m.ci95_high_s,
                "n": m.n,
                "rounds": m.rounds,
                "stable": m.stable,
                "gmacs_per_s": units.gmacs_per_s(c.macs, med) if med > 0 else None,
                "share_time": med / total if total > 0 else None,
                "minor_faults_per_iter": m.minor_faults_per_iter,
                "round_medians_s": m.round_medians_s(),
            }
        )
        out.append(d)
    return out


def breakdown_record(
    b: Breakdown,
    header: dict[str, Any],
    *,
    env: dict[str, Any],
    network_macs: int | None,
    params: int,
    allocator_state: dict[str, Any] | None,
) -> dict[str, Any]:
    """One results-file line for one broken-down network: ``header`` (``record: "breakdown"``) and the rows."""
    e2e = b.end_to_end
    return dict(
        header,
        method=METHOD,
        bn_folded=b.bn_folded,
        cost={
            "params": params,
            "macs": b.macs,
            "flops": 2 * b.macs,
            "mem_bytes_counted": sum(r.call.bytes for r in b.rows),
            "macs_network": network_macs,
        },
        end_to_end={
            "samples_s": e2e.samples_s,
            "rounds": e2e.round_ids,
            "stats": e2e.to_stats(),
            "before_median_s": b.e2e_before_s,
            "after_median_s": b.e2e_after_s,
            "mean_s": _mean(e2e),
            "min_s": _min(e2e),
        },
        sum_s=b.sum_s,
        gap=b.gap,
        sum_mean_s=b.sum_mean_s,
        gap_mean=b.gap_mean,
        sum_min_s=b.sum_min_s,
        gap_min=b.gap_min,
        wall_s=b.wall_s,
        layers=layer_dicts(b),
        env=env,
        allocator_state=allocator_state,
    )


def run_breakdown(
    specs,
    *,
    device: str = "auto",
    threads: int | None = None,
    batch: int | None = None,
    budget_s: float = DEFAULT_BREAKDOWN_BUDGET_S,
    layer_budget_s: float = DEFAULT_LAYER_BUDGET_S,
    runtime: str = "eager",
    out_dir="results",
    allocator: str = allocators.DEFAULT_ALLOCATOR,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[str, Any, list[dict[str, Any]], int]:
    """Break down each target of ``specs`` on one device; append one record each to ``<out_dir>/<run_id>.jsonl``.

    Threads, batch (``None``: 1 on a CPU, 32 on CUDA for a batch-1 target), budget and allocator
    follow the policy of every measuring command (:func:`fnbench.conditions.resolve_policy`).
    Returns ``(run_id, path, records, failed)``. Bad input (an unsupported runtime, an unknown
    target, a device that is not here) raises :class:`~fnbench.errors.UserError` before anything is
    measured; a target whose measurement fails gets a ``status: "failed"`` record and the rest go on.
    """
    from dataclasses import replace
    from pathlib import Path

    from . import results as _results
    from .conditions import resolve_policy
    from .counting import count
    from .devices import device_record, fingerprint
    from .errors import UserError, first_line
    from .runtimes import get_runtime
    from .targets import resolve

    why_not = get_runtime(runtime).no_breakdown
    if why_not:
        raise UserError(f"per-layer timing is unsupported on --runtime {runtime}: {why_not}")
    if not layer_budget_s > 0:
        raise UserError("--budget and --layer-budget must be positive seconds, e.g. --budget 2 --layer-budget 0.1")
    policy = resolve_policy(
        device, threads=threads, batch=batch, budget_s=budget_s, allocator=allocator, budget_example="2"
    )
    dev, threads = policy.device, policy.threads
    targets = [resolve(replace(s, batch=policy.batch_for(s.batch))) for s in specs]  # every name checked first
    alloc_state = allocators.apply(allocator)
    run_id = _results.new_run_id()
    path = Path(out_dir) / f"{run_id}.jsonl"
    writer = _results.ResultWriter(path)
    failed = 0
    for i, t in enumerate(targets):
        fp = fingerprint(dev, threads)
        head = _results.record_header(
            run_id=run_id,
            target=t.record_block(),
            batch=t.spec.batch,
            device=device_record(dev, fp),
            threads=threads,
            allocator=allocator,
            record=RECORD,
        )

        def tick(done: int, total: int, name=t.spec.name, i=i) -> None:
            if progress:
                progress(f"{name} ({i + 1}/{len(targets)})", done, total)

        try:
            module, x = t.build(0), t.example_input()
            counted = count(module, x, fvcore=False)
            b = measure_layers(
                module,
                x,
                device=dev.torch_device,
                threads=threads,
                budget_s=policy.budget_s,
                layer_budget_s=layer_budget_s,
                allocator=None,
                progress=tick,
            )
        except (RuntimeError, ValueError, torch.cuda.OutOfMemoryError) as e:
            failed += 1
            writer.write(dict(head, status="failed", error=first_line(e), method=METHOD, env=fp))
            continue
        writer.write(
            breakdown_record(
                b, head, env=fp, network_macs=counted.macs, params=counted.params, allocator_state=alloc_state
            )
        )
    return run_id, path, _results.read_breakdowns(path), failed
