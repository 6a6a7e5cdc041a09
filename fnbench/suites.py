"""Named suites: lists of :class:`~fnbench.targets.TargetSpec` that ``fnbench run --suite`` measures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import UserError, suggest
from .targets import TargetSpec

__all__ = ["Suite", "SUITES", "register_suite", "get_suite", "TABLE1_SHAPES", "TABLE1_OPS", "COMPOSITE_OPS"]

#: The paper's four Table-1 feature maps (C, H, W).
TABLE1_SHAPES: tuple[tuple[int, int, int], ...] = ((96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7))
TABLE1_OPS = ("conv", "gconv", "dwconv", "pconv")
COMPOSITE_OPS = ("pconv_pwconv", "dwconv_pwconv", "gconv_pwconv", "tconv")


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


def _grid(ops, shapes, batch, layers=10):
    return [TargetSpec.make(op, shape, batch, layers) for op in ops for shape in shapes]


@register_suite("table1", "the paper's Table 1: conv, gconv, dwconv, pconv × four maps, 10 layers")
def _table1(batch: int) -> list[TargetSpec]:
    return _grid(TABLE1_OPS, TABLE1_SHAPES, batch)


@register_suite("table1-composite", "pconv_pwconv, dwconv_pwconv, gconv_pwconv, tconv × four maps, 10 layers")
def _table1_composite(batch: int) -> list[TargetSpec]:
    return _grid(COMPOSITE_OPS, TABLE1_SHAPES, batch)


@register_suite("quick", "a fast smoke test: the four Table-1 operators at 192x28x28, 2 layers")
def _quick(batch: int) -> list[TargetSpec]:
    return _grid(TABLE1_OPS, [(192, 28, 28)], batch, layers=2)


from . import netsuites  # noqa: E402,F401  (FasterNet + zoo networks, their resolvers, suites networks/swap/ratio)
