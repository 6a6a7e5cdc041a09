"""Single convolutions: dense (``conv``), group (``gconv``), depthwise (``dwconv``), pointwise (``pwconv``).

Every operator keeps its channel count (c → c) so that a stack of L layers is well defined, and
has no bias: the paper measures with BN merged, and the bias add of a merged BN is not part of
its FLOP formulas. Each entry registers a factory and the matching pure cost function.
"""

from __future__ import annotations

from torch import nn

from .analytic import Cost, conv_cost, conv_out_hw
from .registry import OPERATORS, ConfigError

__all__ = ["make_conv", "conv_layer_cost", "check_common", "check_groups", "resolve_padding"]

Shape = tuple[int, int, int]


def check_common(c: int, h: int, w: int, k: int, stride: int, padding: int) -> None:
    """Validate the arguments every operator shares; raise :class:`ConfigError`."""
    if min(c, h, w) < 1:
        raise ConfigError(f"shape {c}x{h}x{w} has a zero or negative size; use positive C, H and W")
    if k < 1:
        raise ConfigError(f"kernel size {k} is not positive; use e.g. --kernel 3")
    if stride < 1:
        raise ConfigError(f"stride {stride} is not positive; use 1 or more")
    if padding < 0:
        raise ConfigError(f"padding {padding} is negative; use 0 or more")
    ho, wo = conv_out_hw(h, w, k, stride, padding)
    if ho < 1 or wo < 1:
        raise ConfigError(f"a {k}x{k} kernel does not fit a {h}x{w} map with padding {padding}; use a larger map")


def resolve_padding(k: int, padding: int | None) -> int:
    """The padding of a k×k convolution: the one given, else k // 2 ('same' for odd k at stride 1)."""
    return k // 2 if padding is None else padding


def make_conv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c, c, k, stride=stride, padding=resolve_padding(k, padding), groups=groups, bias=False)


def conv_layer_cost(
    c: int, h: int, w: int, *, batch: int = 1, k: int = 3, stride: int = 1, padding: int | None = None, groups: int = 1
) -> tuple[Cost, Shape]:
    p = resolve_padding(k, padding)
    ho, wo = conv_out_hw(h, w, k, stride, p)
    return conv_cost(c, c, h, w, k=k, stride=stride, padding=p, groups=groups, batch=batch), (c, ho, wo)


def check_groups(c: int, groups: int) -> None:
    if groups < 1 or c % groups:
        raise ConfigError(
            f"groups={groups} does not divide {c} channels; use a divisor of {c} (e.g. --groups 16 with C=96)"
        )


def _check(c, h, w, *, k=3, stride=1, padding=None, **_):
    check_common(c, h, w, k, stride, resolve_padding(k, padding))


@OPERATORS.register("conv", summary="dense k×k convolution, c→c", cost=conv_layer_cost, validate=_check)
def conv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None) -> nn.Module:
    return make_conv(c, k=k, stride=stride, padding=padding)


def _gconv_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None, groups=16):
    return conv_layer_cost(c, h, w, batch=batch, k=k, stride=stride, padding=padding, groups=groups)


def _check_g(c, h, w, *, k=3, stride=1, padding=None, groups=16, **_):
    _check(c, h, w, k=k, stride=stride, padding=padding)
    check_groups(c, groups)


@OPERATORS.register(
    "gconv", summary="group k×k convolution (groups=16 by default)", cost=_gconv_cost, validate=_check_g
)
def gconv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None, groups: int = 16) -> nn.Module:
    return make_conv(c, k=k, stride=stride, padding=padding, groups=groups)


def _dw_cost(c, h, w, *, batch=1, k=3, stride=1, padding=None):
    return conv_layer_cost(c, h, w, batch=batch, k=k, stride=stride, padding=padding, groups=c)


@OPERATORS.register("dwconv", summary="depthwise k×k convolution (groups = channels)", cost=_dw_cost, validate=_check)
def dwconv(c: int, *, k: int = 3, stride: int = 1, padding: int | None = None) -> nn.Module:
    return make_conv(c, k=k, stride=stride, padding=padding, groups=c)


def _pw_cost(c, h, w, *, batch=1, stride=1):
    return conv_layer_cost(c, h, w, batch=batch, k=1, stride=stride, padding=0)


def _check_pw(c, h, w, *, stride=1, **_):
    check_common(c, h, w, 1, stride, 0)


@OPERATORS.register("pwconv", summary="pointwise 1×1 convolution", cost=_pw_cost, validate=_check_pw, kernel=False)
def pwconv(c: int, *, stride: int = 1) -> nn.Module:
    return make_conv(c, k=1, stride=stride, padding=0)
