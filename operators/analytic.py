"""The analytic cost model: closed-form params, MACs and memory of a layer from its shape alone, no torch.

Units: ``macs`` are multiply-adds (the paper's "FLOPs"); ``flops`` = 2 × macs; memory is counted
in *elements* here and turned into bytes by the caller's element size. The memory figures follow
the paper's idealised model: each layer reads its input once, writes its output once and reads
its weights once. Anything a real implementation does beyond that (e.g. the copy of untouched
channels in PConv's split/cat) is *not* in this model; the dispatch counter measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cost", "conv_out_hw", "conv_cost", "partial_channels"]


@dataclass(frozen=True)
class Cost:
    """Cost of one forward pass. ``macs`` multiply-adds, ``mem_elems`` elements read + written."""

    params: int
    macs: int
    mem_elems: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def mem_bytes(self, element_size: int) -> int:
        return self.mem_elems * element_size

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.mem_elems + other.mem_elems)

    def __mul__(self, n: int) -> Cost:
        return Cost(self.params * n, self.macs * n, self.mem_elems * n)

    __rmul__ = __mul__


def conv_out_hw(h: int, w: int, k: int, stride: int, padding: int) -> tuple[int, int]:
    """Output spatial size of a k×k convolution (dilation 1)."""
    return (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1


def conv_cost(
    c_in: int,
    c_out: int,
    h: int,
    w: int,
    *,
    k: int,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    batch: int = 1,
    bias: bool = False,
) -> Cost:
    """One Conv2d: macs = N·h_out·w_out·k²·c_in·c_out/g; memory = input + output + weights.

    For c_in = c_out = c, stride 1, 'same' padding this is the paper's
    ``h·w·k²·c²/g`` MACs and ``h·w·2c + k²·c²/g`` elements (per sample).
    """
    ho, wo = conv_out_hw(h, w, k, stride, padding)
    weights = k * k * (c_in // groups) * c_out
    params = weights + (c_out if bias else 0)
    macs = batch * ho * wo * k * k * (c_in // groups) * c_out
    mem = batch * (h * w * c_in + ho * wo * c_out) + params
    return Cost(params, macs, mem)


def partial_channels(c: int, n_div: int) -> int:
    """PConv's convolved channel count c_p = floor(c / n_div)."""
    return c // n_div
