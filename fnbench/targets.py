"""Target resolution: a name plus shape and options → a buildable module, an input and its analytic cost.

A :class:`TargetSpec` is the frozen, hashable identity of *what* is measured (the "how" — device,
runtime, threads — lives with the measurement). :func:`resolve` turns it into a :class:`Target`
or raises :class:`~fnbench.errors.UserError` with a message that says what is accepted.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from operators import NETWORKS, OPERATORS, ConfigError, Cost, Entry
from operators.fasternet import resolve_variant
from operators.zoo import resolve_zoo

from . import usertargets
from .errors import UserError, suggest
from .options import DEFAULT_LAYERS, DEFAULT_NET_SHAPE, DEFAULT_OP_SHAPE

__all__ = [
    "TargetSpec",
    "Target",
    "Stack",
    "resolve",
    "parse_shape",
    "known_names",
    "DEFAULT_OP_SHAPE",
    "DEFAULT_NET_SHAPE",
    "DEFAULT_LAYERS",
    "NETWORK_RESOLVERS",
]


#: Extra resolvers for network names that are not plain registry entries (``timm:NAME``,
#: ``tv:NAME``, ``fasternet_t0@dwconv``). Each takes a name and returns an :class:`Entry` or None.
NETWORK_RESOLVERS: list[Callable[[str], Entry | None]] = [resolve_variant, resolve_zoo]

#: Largest single dimension accepted (torch indexes many kernels with 32-bit integers).
MAX_DIM = 2**31 - 1
#: Factory keywords that have a command-line flag (``--n-div``, ``--groups``, ``--kernel``, …).
CLI_OPTIONS = ("n_div", "groups", "k", "stride", "padding", "forward")

_SHAPE_RE = re.compile(r"^\s*(\d+)\s*[x×,]\s*(\d+)\s*[x×,]\s*(\d+)\s*$")


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"96x56x56"`` (C×H×W, per sample) into a tuple of positive ints."""
    if len(text) > 100:
        raise UserError(
            f"shape {text[:20]}… is {len(text)} characters long: use CxHxW with sizes such as --shape 96x56x56"
        )
    if "-" in text:
        raise UserError(f"shape {text!r} has a negative size: use positive C, H and W, e.g. --shape 96x56x56")
    m = _SHAPE_RE.match(text)
    if not m:
        raise UserError(f"malformed shape {text!r}: use CxHxW with positive integers, e.g. --shape 96x56x56")
    if any(len(g.lstrip("0")) > len(str(MAX_DIM)) for g in m.groups()):
        raise UserError(f"shape {text!r} has a size above {MAX_DIM:,}: use sizes such as --shape 96x56x56")
    shape = tuple(int(g) for g in m.groups())
    if max(shape) > MAX_DIM:
        raise UserError(f"shape {text!r} has a size above {MAX_DIM:,}: use sizes such as --shape 96x56x56")
    if min(shape) < 1:
        raise UserError(f"shape {text!r} has a zero size: use positive C, H and W, e.g. --shape 96x56x56")
    return shape  # type: ignore[return-value]


class Stack(nn.Sequential):
    """``L`` independently initialised layers of one operator (the paper's Table-1 set-up)."""


@dataclass(frozen=True)
class TargetSpec:
    """Identity of a measured thing. ``shape`` is per sample (C, H, W); ``None`` means the default."""

    name: str
    shape: tuple[int, int, int] | None = None
    batch: int = 1
    layers: int | None = None
    options: tuple[tuple[str, Any], ...] = ()
    #: sha256 of a user target's file, pinned when it is first resolved (:mod:`fnbench.usertargets`).
    digest: str | None = None

    @staticmethod
    def make(name: str, shape=None, batch: int = 1, layers: int | None = None, **options: Any) -> TargetSpec:
        opts = tuple(sorted((k, v) for k, v in options.items() if v is not None))
        return TargetSpec(name, tuple(shape) if shape is not None else None, batch, layers, opts)

    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``pconv[n_div=8] 96x56x56 x10``."""
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        s = self.name + (f"[{opts}]" if opts else "")
        if self.shape is not None:
            s += " " + "x".join(map(str, self.shape))
        if self.layers is not None:
            s += f" L{self.layers}"
        if self.batch != 1:
            s += f" b{self.batch}"
        return s


@dataclass
class Target:
    """A resolved target: build the module, make its input, know its analytic cost."""

    spec: TargetSpec
    kind: str  # "operator" or "network"
    entry: Entry
    analytic: Cost | None
    out_shape: tuple[int, ...] | None = None
    _options: dict[str, Any] = field(default_factory=dict)
    #: A user target's origin (file or module, NAME, options, sha256): the record's ``target.source``.
    source: dict[str, Any] | None = None
    #: An ``.onnx`` target's graph, measured as given under ONNX Runtime.
    onnx: bytes | None = None

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh module in ``eval()`` mode, initialised from ``seed`` (random weights, never downloaded)."""
        torch.manual_seed(seed)
        if self.kind == "operator":
            c = self.spec.shape[0]
            module: nn.Module = Stack(*(self.entry.factory(c, **self._options) for _ in range(self.spec.layers)))
        else:
            module = self.entry.factory(**self._options)
        return module.eval()

    def record_block(self) -> dict[str, Any]:
        """A record's ``target`` block: name, kind, shape, layers, options and batch."""
        spec = self.spec
        block = {
            "name": spec.name,
            "kind": self.kind,
            "shape": list(spec.shape) if spec.shape else None,
            "layers": spec.layers,
            "options": spec.options_dict(),
            "batch": spec.batch,
        }
        if self.source is not None:
            block["source"] = dict(self.source)
        return block

    def example_input(
        self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
    ) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn((self.spec.batch, *self.spec.shape), generator=g, dtype=torch.float32)
        return x.to(device=device, dtype=dtype)


def known_names() -> list[str]:
    return OPERATORS.names() + NETWORKS.names()


#: Factory keyword → CLI flag, where they differ.
_FLAGS = {"k": "kernel"}


def _flag(key: str) -> str:
    return "--" + _FLAGS.get(key, key).replace("_", "-")


def _check_options(entry: Entry, options: dict[str, Any]) -> None:
    accepted = [p for p in inspect.signature(entry.factory).parameters if p != "c" and p in CLI_OPTIONS]
    for key in options:
        if key not in accepted:
            what = (
                f"it accepts {', '.join(_flag(a) for a in accepted)}" if accepted else "it takes none of these options"
            )
            raise UserError(f"{entry.name} does not take {_flag(key)}; {what}")


def resolve(spec: TargetSpec, *, check: bool = True) -> Target:
    """Resolve ``spec`` into a :class:`Target`, filling defaults; raise ``UserError`` on bad input.

    ``check=False`` skips trying a network on the meta device (the shape it takes, the memory it
    needs) for a spec resolved and checked before: a worker process resolving its run's target would
    otherwise import torch's compiler stack for it, 1.2–3.4 s per fresh process.
    """
    if spec.batch < 1:
        raise UserError(f"batch {spec.batch} is not positive: use --batch 1 or more")
    options = spec.options_dict()
    if spec.name not in OPERATORS and spec.name not in NETWORKS and usertargets.is_user_target(spec.name):
        return _resolve_user(spec, options)
    if spec.name in OPERATORS:
        entry = OPERATORS.get(spec.name)
        layers = DEFAULT_LAYERS if spec.layers is None else spec.layers
        if layers < 1:
            raise UserError(f"layers {layers} is not positive: use --layers 1 or more (the paper uses 10)")
        shape = spec.shape or DEFAULT_OP_SHAPE
        if min(shape) < 1:
            raise UserError(f"shape {'x'.join(map(str, shape))} has a zero or negative size: use positive C, H and W")
        _check_options(entry, options)
        if options.get("k") is not None and options["k"] % 2 == 0 and options.get("padding") is None:
            raise UserError(
                f"--kernel {options['k']} is even: the default padding k // 2 = {options['k'] // 2} makes "
                "each layer's map 1 larger ((H + 2·padding − k) // stride + 1); use an odd kernel "
                "or give --padding"
            )
        spec = replace(spec, shape=tuple(shape), layers=layers)
        try:
            if entry.validate is not None:
                entry.validate(*shape, **options)
            first, _out = entry.cost(*shape, batch=spec.batch, **options)
            # before the per-layer sums: an absurd --layers is refused at once, not after 10^12 steps
            _check_memory(spec, 2 * first.params * layers + 3 * _numel(shape) * spec.batch)
            total, cur = Cost(0, 0, 0), tuple(shape)
            for _ in range(layers):
                cost, cur = entry.cost(*cur, batch=spec.batch, **options)
                total = total + cost
                if entry.validate is not None and _ != layers - 1:
                    entry.validate(*cur, **options)
        except ConfigError as e:
            raise UserError(f"{spec.name}: {e}") from None
        act = max(_numel(shape), _numel(cur)) * spec.batch
        _check_memory(spec, 2 * total.params + 3 * act)
        return Target(spec, "operator", entry, total, (spec.batch, *cur), options)

    entry = NETWORKS.get(spec.name) if spec.name in NETWORKS else None
    if entry is None:
        for resolver in NETWORK_RESOLVERS:
            try:
                entry = resolver(spec.name)
            except ConfigError as e:
                raise UserError(f"{spec.name}: {e}") from None
            if entry is not None:
                break
    if entry is None:
        raise UserError(
            f"unknown target {spec.name!r}{suggest(spec.name, known_names())}; "
            "see `fnbench list ops` and `fnbench list networks`"
        )
    if spec.layers is not None:
        raise UserError(f"{spec.name} is a network; --layers applies to operator stacks only")
    _check_options(entry, options)
    default_shape = entry.meta_dict().get("input_shape", DEFAULT_NET_SHAPE)
    given = spec.shape is not None
    spec = replace(spec, shape=tuple(spec.shape or default_shape))
    if check and (given or spec.batch > _TRY_BATCH):
        params, act = _try_on_meta(entry, options, spec.shape, default_shape)
        _check_memory(spec, 2 * params + 3 * act * spec.batch)
    return Target(spec, "network", entry, None, None, options)


#: Networks are tried on the meta device (shapes only, no memory) when a shape is given or the
#: batch exceeds this: what they accept and how large their activations are.
_TRY_BATCH = 64


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _try_on_meta(entry: Entry, options: dict[str, Any], shape: tuple[int, ...], default_shape) -> tuple[int, int]:
    """Run ``entry`` on a meta tensor of ``shape`` (batch 1): its parameter count and largest activation
    (elements); a shape it cannot take is a UserError with the network's own reason."""
    sizes: list[int] = [_numel(shape)]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel())

    try:
        with torch.device("meta"):
            m = entry.factory(**options).eval()
    except Exception:  # noqa: BLE001 — a factory that cannot build on meta is built for real later
        return 0, _numel(shape)
    handles = [mod.register_forward_hook(hook) for mod in m.modules()]
    try:
        with torch.no_grad():
            m(torch.empty((1, *shape), device="meta"))
    except NotImplementedError:  # an op without a meta kernel: the shape cannot be checked here
        pass
    except Exception as e:  # noqa: BLE001 — the network refused the shape; its message says why
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{entry.name} cannot take input {'x'.join(map(str, shape))} ({why}); use its input "
            f"shape, e.g. --shape {'x'.join(map(str, default_shape))}"
        ) from None
    finally:
        for h in handles:
            h.remove()
    return sum(p.numel() for p in m.parameters()), max(sizes)


def _check_memory(spec: TargetSpec, elements: int) -> None:
    from .checks import check_memory

    check_memory(4 * elements, f"{spec.label}", "use a smaller --shape, --batch or --layers")


def _resolve_user(spec: TargetSpec, options: dict[str, Any]) -> Target:
    """A user target (``FILE.py:NAME``, ``package.module:NAME``, ``model.onnx``): imported here, checked, pinned.

    The file's sha256 goes into the spec (``digest``), so that a worker resolving the same spec
    refuses a file edited since. User operators have no analytic cost: their cost is counted.
    """
    src = usertargets.load(spec.name, options, spec.digest, flag=_flag)
    spec = replace(spec, digest=src.block["sha256"])
    if src.kind == "onnx":
        return _resolve_onnx(spec, src)
    if src.kind == "network":
        if spec.layers is not None:
            raise UserError(f"{spec.name} is a network (it takes no channel count); drop --layers")
        spec = replace(spec, shape=tuple(spec.shape or DEFAULT_NET_SHAPE))
        module = usertargets.build_checked(spec.name, lambda: src.entry.factory(**options))
        usertargets.probe_shape(spec.name, module, spec.shape)
        return Target(spec, "network", src.entry, None, None, options, source=src.block)
    layers = DEFAULT_LAYERS if spec.layers is None else spec.layers
    if layers < 1:
        raise UserError(f"layers {layers} is not positive: use --layers 1 or more (the paper uses 10)")
    shape = tuple(spec.shape or DEFAULT_OP_SHAPE)
    spec = replace(spec, shape=shape, layers=layers)
    layer = usertargets.build_checked(spec.name, lambda: src.entry.factory(shape[0], **options))
    _check_memory(spec, 2 * sum(p.numel() for p in layer.parameters()) * layers + 3 * _numel(shape) * spec.batch)
    out = usertargets.probe_shape(spec.name, layer, shape)
    if out and out != shape and layers > 1:
        raise UserError(
            f"{spec.name} maps {'x'.join(map(str, shape))} to {'x'.join(map(str, out))}: a stack of {layers} "
            "needs layers that keep the shape; use --layers 1"
        )
    out_shape = (spec.batch, *(out or shape))
    return Target(spec, "operator", src.entry, None, out_shape, options, source=src.block)


def _resolve_onnx(spec: TargetSpec, src) -> Target:
    """An ``.onnx`` file: its input shape from the graph (``--shape`` only where the graph leaves it open)."""
    if spec.layers is not None:
        raise UserError(f"{spec.name} is an ONNX graph; --layers applies to operator stacks only")
    graph_shape = src.onnx_shape
    if spec.shape is None and graph_shape is None:
        raise UserError(f"{spec.name}'s input has dynamic C, H or W: give them with --shape CxHxW")
    if spec.shape is not None and graph_shape is not None and tuple(spec.shape) != graph_shape:
        raise UserError(
            f"{spec.name} takes input {'x'.join(map(str, graph_shape))} (fixed in the graph); drop --shape "
            f"or give --shape {'x'.join(map(str, graph_shape))}"
        )
    if src.onnx_batch is not None and spec.batch != src.onnx_batch:
        raise UserError(f"{spec.name} has a fixed batch of {src.onnx_batch} in its graph: use --batch {src.onnx_batch}")
    spec = replace(spec, shape=tuple(spec.shape or graph_shape))
    return Target(spec, "network", src.entry, None, None, {}, source=src.block, onnx=src.onnx)
