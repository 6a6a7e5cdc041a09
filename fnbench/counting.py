"""Counted cost of running a module once: MACs from two independent counters, bytes from a third.

Conventions (the paper's "FLOPs" are multiply-adds):

- **fvcore** (``FlopCountAnalysis``) traces the model with TorchScript and counts one unit per
  multiply-add for conv / linear / matmul, *and* adds units for normalisation, pooling and
  upsampling ops. Its total is reported as ``macs_fvcore``; the part from MAC ops alone
  (``macs_fvcore_mac_ops``) is the figure comparable with the other counter.
- **FlopCounterMode** (``torch.utils.flop_counter``) counts FLOPs = 2 × multiply-adds, for
  matmul-type and convolution ops only. ``macs_flopcounter`` = its total / 2.
- ``macs`` (the headline figure) is ``macs_flopcounter``; ``macs_agree`` says whether the two
  counters agree on the MAC ops.

Bytes (``mem_bytes_counted``) come from a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
that sees every aten op actually executed — including 0-FLOP ops such as ``cat``, ``clone`` and
the ``copy_`` of a slice assignment — and sums the bytes each one reads and writes:

- a view op (``slice``, ``split``, ``view``…) moves nothing and counts 0;
- every other op reads each tensor argument and writes each fresh output; a tensor is counted
  by the bytes it *touches* (a strided slice by its own elements, a broadcast (stride-0)
  dimension once), not by its whole storage;
- an argument mutated in place is written; it is also read unless the op overwrites it
  (``copy_``, ``fill_``, ``zero_``, ``out=`` arguments).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from .errors import first_line
from .opkinds import is_data_movement

__all__ = ["OpStat", "CountResult", "count", "touched_bytes", "ByteCounter"]

#: fvcore operator names whose counts are multiply-adds (comparable with FlopCounterMode / 2).
FVCORE_MAC_OPS = frozenset({"conv", "linear", "matmul", "addmm", "bmm", "einsum", "mm", "baddbmm"})

_OVERWRITE = frozenset({"aten.copy_", "aten.fill_", "aten.zero_", "aten.normal_", "aten.uniform_"})


def touched_bytes(t: Tensor) -> int:
    """Bytes a tensor's elements occupy, counting each broadcast (stride-0) dimension once."""
    if t.numel() == 0:
        return 0
    n = math.prod(s for s, st in zip(t.shape, t.stride()) if st != 0)
    return n * t.element_size()


def _tensors(value: Any) -> Iterable[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


@dataclass
class OpStat:
    """Totals for one aten op (or one module): calls, MACs, bytes read and written."""

    calls: int = 0
    macs: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def add(self, macs: int, read: int, written: int) -> None:
        self.calls += 1
        self.macs += macs
        self.bytes_read += read
        self.bytes_written += written

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "macs": self.macs,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes": self.bytes,
        }


class HookedDispatchMode(TorchDispatchMode):
    """A dispatch mode that also installs module forward hooks while it is active.

    Subclasses return their hook handles from :meth:`_install_hooks`; entering the mode installs
    them and leaving it removes them, so no hook outlives the mode.
    """

    def _install_hooks(self) -> list:
        return []

    def __enter__(self):
        self._hooks = self._install_hooks()
        return super().__enter__()

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        return super().__exit__(*exc)


class ByteCounter(HookedDispatchMode):
    """Dispatch mode that accounts every executed aten op to itself and to the enclosing modules."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self._names = {id(m): name for name, m in root.named_modules()}
        self._stack: list[str] = []
        self.by_operator: dict[str, OpStat] = defaultdict(OpStat)
        self.by_module: dict[str, OpStat] = defaultdict(OpStat)
        self.views: set[str] = set()
        self._hooks: list[Any] = []

    # -- module attribution -------------------------------------------------------------------
    def _pre(self, module, args):
        name = self._names.get(id(module))
        if name is not None:
            self._stack.append(name)

    def _post(self, module, args, out):
        if id(module) in self._names and self._stack:
            self._stack.pop()

    def _install_hooks(self) -> list:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        return [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]

    # -- accounting -----------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = str(func.overloadpacket)
        flops = 0
        if func.overloadpacket in flop_registry:
            flops = int(flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
        if func.is_view:
            self.views.add(op)
            read, written = 0, 0
        else:
            read, written = self.op_bytes(func, op, args, kwargs, out)
        macs = flops // 2
        self.by_operator[op].add(macs, read, written)
        for name in dict.fromkeys(self._stack):  # each enclosing module once
            self.by_module[name].add(macs, read, written)
        return out

    @staticmethod
    def op_bytes(func, op: str, args, kwargs, out) -> tuple[int, int]:
        read = written = 0
        schema = func._schema
        for i, arg in enumerate(schema.arguments):
            if i < len(args):
                value = args[i]
            elif arg.name in kwargs:
                value = kwargs[arg.name]
            else:
                continue
            mutated = arg.alias_info is not None and arg.alias_info.is_write
            for t in _tensors(value):
                nbytes = touched_bytes(t)
                if mutated:
                    written += nbytes
                    if op not in _OVERWRITE and arg.name != "out":
                        read += nbytes
                else:
                    read += nbytes
        outs = out if isinstance(out, (list, tuple)) else (out,)
        for ret, value in zip(schema.returns, outs):
            if ret.alias_info is None:  # a fresh output (aliases of mutated args are counted above)
                written += sum(touched_bytes(t) for t in _tensors(value))
        return read, written


@dataclass
class CountResult:
    """Counted cost of one forward pass. All MAC figures are multiply-adds; bytes are bytes."""

    params: int
    macs_flopcounter: int
    macs_fvcore: int | None
    macs_fvcore_mac_ops: int | None
    mem_bytes_counted: int
    by_operator: dict[str, OpStat]
    by_module: dict[str, OpStat]
    fvcore_by_operator: dict[str, int] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    zero_flop_ops: dict[str, int] = field(default_factory=dict)
    fvcore_unsupported: dict[str, int] = field(default_factory=dict)
    fvcore_error: str | None = None

    @property
    def macs(self) -> int:
        return self.macs_flopcounter

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def macs_agree(self) -> bool | None:
        return None if self.macs_fvcore_mac_ops is None else self.macs_fvcore_mac_ops == self.macs_flopcounter


#: What ``fvcore_error`` says where fvcore is not installed: it is optional, FlopCounterMode's count stands.
FVCORE_MISSING = "fvcore is not installed: its cross-check was skipped"


def _fvcore(module: nn.Module, x: Tensor) -> tuple[int, int, dict[str, int], dict[str, int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        fca = FlopCountAnalysis(module, (x,)).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        fca.tracer_warnings("none")
        by_op = {k: int(v) for k, v in fca.by_operator().items()}
        total = int(fca.total())
        unsupported = dict(fca.unsupported_ops())
    mac_ops = sum(v for k, v in by_op.items() if k in FVCORE_MAC_OPS)
    return total, mac_ops, by_op, unsupported


def count(module: nn.Module, x: Tensor, *, fvcore: bool = True) -> CountResult:
    """Count ``module(x)`` once: MACs with FlopCounterMode and fvcore, bytes with :class:`ByteCounter`.

    The module runs in ``eval()`` and ``no_grad``; it is not modified. Ops that do arithmetic but
    have no FLOP formula are listed in ``uncounted_ops`` (never silently dropped).
    """
    module = module.eval()
    params = sum(p.numel() for p in module.parameters())
    with torch.no_grad():
        fcm = FlopCounterMode(display=False)
        with fcm:
            module(x)
        counter = ByteCounter(module)
        with counter:
            module(x)
    uncounted, zero = {}, {}
    counted_ops = {str(p) for p in flop_registry}
    for op, stat in counter.by_operator.items():
        if op in counted_ops:
            continue
        (zero if (op in counter.views or is_data_movement(op)) else uncounted)[op] = stat.calls
    result = CountResult(
        params=params,
        macs_flopcounter=int(fcm.get_total_flops()) // 2,
        macs_fvcore=None,
        macs_fvcore_mac_ops=None,
        mem_bytes_counted=sum(s.bytes for s in counter.by_operator.values()),
        by_operator=dict(counter.by_operator),
        by_module=dict(counter.by_module),
        uncounted_ops=uncounted,
        zero_flop_ops=zero,
    )
    if fvcore:
        try:
            with torch.no_grad():
                total, mac_ops, by_op, unsupported = _fvcore(module, x)
        except ImportError:
            result.fvcore_error = FVCORE_MISSING
        except Exception as e:  # noqa: BLE001 — fvcore's tracer fails on some models; say so, keep the rest
            result.fvcore_error = first_line(e)
        else:
            result.macs_fvcore, result.macs_fvcore_mac_ops = total, mac_ops
            result.fvcore_by_operator, result.fvcore_unsupported = by_op, unsupported
    return result
