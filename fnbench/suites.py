"""Named suites: lists of :class:`~fnbench.targets.TargetSpec` that ``fnbench run --suite`` measures.

Operator suites:

``table1``            the paper's Table 1: conv, gconv, dwconv, pconv × its four feature maps, 10 layers.
``table1-composite``  the composite operators (PConv + PWConv, …, TConv) on the same maps.
``quick``             the four Table-1 operators at 192×28×28, 2 layers.

Network suites, over FasterNet (:mod:`operators.fasternet`) and the peer zoo (:mod:`operators.zoo`),
whose names :func:`fnbench.targets.resolve` accepts: ``fasternet_t0`` … ``fasternet_l``, the peer
aliases (``resnet50``, ``mobilevit_xxs``, …), ``fasternet_X@MIXER[:ARG][~flops]`` (the block's
spatial mixer swapped, e.g. ``fasternet_t0@dwconv~flops``), and ``timm:NAME`` / ``tv:NAME``:

``networks``  FasterNet T0–L and every buildable paper peer, each at its own input size
              (224×224, except MobileViT and EdgeNeXt at 256×256 as in the paper's FLOPs).
``swap``      FasterNet-T0 and -T2 with each mixer, as built and FLOP-matched (``~flops``).
``ratio``     FasterNet-T0 with n_div 2, 4, 8, 16 (plain, and FLOP-matched like the paper's ablation).

And ``default`` (what ``make run`` measures: ``table1`` and the paper's headline networks), ``runtimes``
(the same targets, named for a run under several runtimes) and
``allocator-sensitivity``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from operators import fasternet, zoo

from .errors import UserError, suggest
from .reference import HEADLINE_NETWORKS, TABLE1_OPS, TABLE1_SHAPES
from .targets import TargetSpec

__all__ = [
    "Suite",
    "SUITES",
    "register_suite",
    "get_suite",
    "TABLE1_SHAPES",
    "TABLE1_OPS",
    "COMPOSITE_OPS",
    "FASTERNETS",
    "SWAP_MIXERS",
    "RATIO_N_DIVS",
    "HEADLINE_NETWORKS",
    "peer_aliases",
]

COMPOSITE_OPS = ("pconv_pwconv", "dwconv_pwconv", "gconv_pwconv", "tconv")
FASTERNETS = tuple(f"fasternet_{b}" for b in fasternet.VARIANTS)
SWAP_MIXERS = fasternet.MIXERS
RATIO_N_DIVS = (2, 4, 8, 16)


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    build: Callable[[int], list[TargetSpec]]  # batch → specs

    def specs(self, batch: int = 1) -> list[TargetSpec]:
        return self.build(batch)


SUITES: dict[str, Suite] = {}


def register_suite(name: str, summary: str):
    """Decorator registering a ``batch -> list[TargetSpec]`` function as a suite; duplicates refused."""

    def wrap(fn: Callable[[int], list[TargetSpec]]):
        if name in SUITES:
            raise ValueError(f"suite {name!r} is already registered")
        SUITES[name] = Suite(name, summary, fn)
        return fn

    return wrap


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r}{suggest(name, SUITES)}; available: {', '.join(sorted(SUITES))}")
    return SUITES[name]


def peer_aliases() -> list[str]:
    """Registered aliases of the paper's peers that the installed libraries can build."""
    status = zoo.peer_status()
    return [
        p.alias
        for p in zoo.PEERS
        if p.alias is not None and (status[p.paper_name].available or status[p.paper_name].source)
    ]


def _grid(ops, shapes, batch, layers=10):
    return [TargetSpec.make(op, shape, batch, layers) for op in ops for shape in shapes]


def _networks_of(names, batch: int) -> list[TargetSpec]:
    return [TargetSpec.make(name, None, batch) for name in names]


# --------------------------------------------------------------------------- operators


@register_suite("table1", "the paper's Table 1: conv, gconv, dwconv, pconv × four maps, 10 layers")
def _table1(batch: int) -> list[TargetSpec]:
    return _grid(TABLE1_OPS, TABLE1_SHAPES, batch)


@register_suite("table1-composite", "pconv_pwconv, dwconv_pwconv, gconv_pwconv, tconv × four maps, 10 layers")
def _table1_composite(batch: int) -> list[TargetSpec]:
    return _grid(COMPOSITE_OPS, TABLE1_SHAPES, batch)


@register_suite("quick", "a fast smoke test: the four Table-1 operators at 192x28x28, 2 layers")
def _quick(batch: int) -> list[TargetSpec]:
    return _grid(TABLE1_OPS, [(192, 28, 28)], batch, layers=2)


# --------------------------------------------------------------------------- networks


@register_suite("networks", "FasterNet T0–L and the paper's buildable peers, at their own input size")
def _networks(batch: int) -> list[TargetSpec]:
    return _networks_of((*FASTERNETS, *peer_aliases()), batch)


@register_suite("swap", "FasterNet-T0/T2 with pconv, dwconv, gconv, conv as mixer; plain and FLOP-matched")
def _swap(batch: int) -> list[TargetSpec]:
    names = [
        f"fasternet_{b}@{m}{s}"
        for b in ("t0", "t2")
        for m in SWAP_MIXERS
        for s in ("", "~flops")
        if not (m == "pconv" and s)
    ]  # pconv n_div 4 is the original: matching it to itself is a no-op
    return _networks_of(names, batch)


@register_suite("ratio", "FasterNet-T0 with n_div 2, 4, 8, 16 (partial ratio 1/2 … 1/16); plain and FLOP-matched")
def _ratio(batch: int) -> list[TargetSpec]:
    names = [f"fasternet_t0@pconv:{n}{s}" for n in RATIO_N_DIVS for s in ("", "~flops") if not (n == 4 and s)]
    return _networks_of(names, batch)


# --------------------------------------------------------------------------- mixed


@register_suite("default", "what `make run` measures: table1 plus FasterNet-T0 and its three headline peers")
def _default(batch: int) -> list[TargetSpec]:
    return _table1(batch) + _networks_of(HEADLINE_NETWORKS, batch)


@register_suite(
    "allocator-sensitivity",
    "the 96x56x56 DWConv and PConv stacks and FasterNet-T0: measure under a second --allocator beside "
    "`default` to see how much the memory allocator moves them",
)
def _allocator_sensitivity(batch: int) -> list[TargetSpec]:
    return [TargetSpec.make(op, (96, 56, 56), batch, 10) for op in ("dwconv", "pconv")] + [
        TargetSpec.make("fasternet_t0", None, batch)
    ]


@register_suite(
    "runtimes",
    "table1 plus FasterNet-T0 and its three headline peers, to measure under several --runtime at once "
    "(e.g. eager, onnxruntime, openvino)",
)
def _runtimes(batch: int) -> list[TargetSpec]:
    return _default(batch)
