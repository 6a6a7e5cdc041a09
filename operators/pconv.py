"""Partial convolution (PConv) and the composites the paper compares it with.

PConv convolves only the first ``c_p = floor(c / n_div)`` channels with a dense k×k kernel and
passes the other ``c - c_p`` channels through. Two forwards exist:

``split_cat``
    split into the two channel groups, convolve the first, concatenate. Allocates a new output.
``slicing``
    copy the input once, then overwrite its first ``c_p`` channels with the convolution. The
    official code writes into its *input* instead; inside a residual block whose shortcut is
    that same tensor, that silently corrupts the shortcut. Here the copy is always made, so the
    caller's tensor is never touched (the paper's pitfall list explains why this matters).

Both forwards compute the same function; they differ in memory traffic, which
:mod:`fnbench.counting` measures.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .analytic import Cost, conv_cost, partial_channels
from .conv import check_common, check_groups, conv_layer_cost, resolve_padding
from .registry import OPERATORS, ConfigError

__all__ = ["PConv", "TConv", "FORWARDS"]

FORWARDS = ("split_cat", "slicing")


class PConv(nn.Module):
    """Partial k×k convolution over the first ``c // n_div`` channels (no bias)."""

    def __init__(self, c: int, n_div: int = 4, forward: str = "split_cat", *, k: int = 3, padding: int | None = None):
        super().__init__()
        if forward not in FORWARDS:
            raise ConfigError(f"unknown PConv forward {forward!r}; use one of {', '.join(FORWARDS)}")
        self.dim_conv3 = partial_channels(c, n_div)
        if self.dim_conv3 < 1:
            raise ConfigError(
                f"n_div={n_div} leaves no channel to convolve (c_p = {c} // {n_div} = 0); use n_div <= {c}"
            )
        self.dim_untouched = c - self.dim_conv3
        self.forward_mode = forward
        # Attribute name matches the official code and timm, so their weights load as they are.
        self.partial_conv3 = nn.Conv2d(self.dim_conv3, self.dim_conv3, k, 1, resolve_padding(k, padding), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.forward_mode == "slicing":
            if torch.onnx.is_in_onnx_export():
                # ONNX has no in-place write: a slice assignment would export as a bloated
                # ScatterND graph. Slice both parts and concatenate: same function, compact graph.
                c_p = self.dim_conv3
                return torch.cat((self.partial_conv3(x[:, :c_p]), x[:, c_p:]), dim=1)
            out = x.clone()
            out[:, : self.dim_conv3] = self.partial_conv3(x[:, : self.dim_conv3])
            return out
        x1, x2 = torch.split(x, [self.dim_conv3, self.dim_untouched], dim=1)
        return torch.cat((self.partial_conv3(x1), x2), dim=1)

    def extra_repr(self) -> str:
        return f"c_p={self.dim_conv3}, untouched={self.dim_untouched}, forward={self.forward_mode}"


class TConv(nn.Module):
    """The paper's "T-shaped" conv (eq. 6): k×k over the first c_p input channels plus 1×1 over the rest.

    Equal to one k×k conv whose kernel is zero outside a T-shaped receptive field, computed
    without the zeros: ``h·w·(k²·c_p·c + c·(c - c_p))`` MACs.
    """

    def __init__(self, c: int, n_div: int = 4, *, k: int = 3, padding: int | None = None):
        super().__init__()
        self.c_p = partial_channels(c, n_div)
        if self.c_p < 1:
            raise ConfigError(
                f"n_div={n_div} leaves no channel to convolve (c_p = {c} // {n_div} = 0); use n_div <= {c}"
            )
        self.spatial = nn.Conv2d(self.c_p, c, k, 1, resolve_padding(k, padding), bias=False)
        self.point = nn.Conv2d(c - self.c_p, c, 1, bias=False) if c > self.c_p else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.spatial(x[:, : self.c_p])
        if self.point is not None:
            y = y + self.point(x[:, self.c_p :])
        return y


def _check_partial(c, h, w, *, k=3, stride=1, padding=None, n_div=4, forward="split_cat", **_):
    check_common(c, h, w, k, stride, resolve_padding(k, padding))
    if stride != 1:
        raise ConfigError("PConv passes c - c_p channels through unchanged, so it needs stride 1; drop --stride")
    if n_div < 1:
        raise ConfigError(f"n_div={n_div} is not positive; use 1 or more (the paper uses 4)")
    if partial_channels(c, n_div) < 1:
        raise ConfigError(f"n_div={n_div} leaves no channel to convolve (c_p = {c} // {n_div} = 0); use n_div <= {c}")
    if forward not in FORWARDS:
        raise ConfigError(f"unknown PConv forward {forward!r}; use one of {', '.join(FORWARDS)}")


def _pconv_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None, n_div=4, forward="split_cat"):
    """The paper's PConv: h·w·k²·c_p² MACs, h·w·2c_p + k²·c_p² elements (untouched channels not counted)."""
    c_p = partial_channels(c, n_div)
    cost = conv_cost(c_p, c_p, h, w, k=k, padding=resolve_padding(k, padding), batch=batch)
    return cost, (c, h, w)


@OPERATORS.register(
    "pconv",
    summary="partial conv: k×k on c/n_div channels, rest passed through",
    cost=_pconv_cost,
    validate=_check_partial,
    partial=True,
    forwards=True,
)
def pconv(
    c: int, *, k: int = 3, stride: int = 1, padding: int | None = None, n_div: int = 4, forward: str = "split_cat"
) -> nn.Module:
    return PConv(c, n_div, forward, k=k, padding=padding)


def _pconv_pw_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None, n_div=4, forward="split_cat"):
    first, shape = _pconv_cost(c, h, w, batch=batch, k=k, padding=padding, n_div=n_div)
    second, shape = conv_layer_cost(*shape, batch=batch, k=1, padding=0)
    return first + second, shape


@OPERATORS.register(
    "pconv_pwconv",
    summary="PConv followed by a 1×1 conv (FasterNet's spatial + channel mix)",
    cost=_pconv_pw_cost,
    validate=_check_partial,
    partial=True,
    forwards=True,
)
def pconv_pwconv(
    c: int, *, k: int = 3, stride: int = 1, padding: int | None = None, n_div: int = 4, forward: str = "split_cat"
) -> nn.Module:
    return nn.Sequential(PConv(c, n_div, forward, k=k, padding=padding), nn.Conv2d(c, c, 1, bias=False))


def _dw_pw_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None):
    first, shape = conv_layer_cost(c, h, w, batch=batch, k=k, stride=stride, padding=padding, groups=c)
    second, shape = conv_layer_cost(*shape, batch=batch, k=1, padding=0)
    return first + second, shape


def _check_plain(c, h, w, *, k=3, stride=1, padding=None, **_):
    check_common(c, h, w, k, stride, resolve_padding(k, padding))


@OPERATORS.register(
    "dwconv_pwconv", summary="depthwise k×k then 1×1 (depthwise-separable)", cost=_dw_pw_cost, validate=_check_plain
)
def dwconv_pwconv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c, c, k, stride, resolve_padding(k, padding), groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False)
    )


def _g_pw_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None, groups=16):
    first, shape = conv_layer_cost(c, h, w, batch=batch, k=k, stride=stride, padding=padding, groups=groups)
    second, shape = conv_layer_cost(*shape, batch=batch, k=1, padding=0)
    return first + second, shape


def _check_g_pw(c, h, w, *, k=3, stride=1, padding=None, groups=16, **_):
    check_common(c, h, w, k, stride, resolve_padding(k, padding))
    check_groups(c, groups)


@OPERATORS.register("gconv_pwconv", summary="group k×k (groups=16) then 1×1", cost=_g_pw_cost, validate=_check_g_pw)
def gconv_pwconv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None, groups: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c, c, k, stride, resolve_padding(k, padding), groups=groups, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
    )


def _tconv_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None, n_div=4):
    """Eq. 6: h·w·(k²·c_p·c + c·(c - c_p)) MACs; memory as one op: input + output + weights."""
    c_p = partial_channels(c, n_div)
    params = k * k * c_p * c + (c - c_p) * c
    macs = batch * h * w * params
    return Cost(params, macs, batch * 2 * c * h * w + params), (c, h, w)


@OPERATORS.register(
    "tconv",
    summary="T-shaped conv (paper eq. 6): k×k on c_p channels + 1×1 on the rest",
    cost=_tconv_cost,
    validate=_check_partial,
    partial=True,
)
def tconv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None, n_div: int = 4) -> nn.Module:
    return TConv(c, n_div, k=k, padding=padding)
