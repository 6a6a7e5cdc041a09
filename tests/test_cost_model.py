"""Analytic cost model vs closed forms, vs fvcore, vs FlopCounterMode, vs the module itself."""

import math

import pytest
import torch
from conftest import has_fvcore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fnbench.counting import FVCORE_MISSING, count
from fnbench.targets import TargetSpec, resolve
from operators import OPERATORS
from operators.analytic import conv_cost

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Per-operator option strategies: channel counts are drawn so that the operator is valid.
GROUPS = st.sampled_from([1, 2, 4, 8])


@st.composite
def op_case(draw, name):
    opts = {}
    k = draw(st.sampled_from([1, 3, 5]))
    h, w = draw(st.integers(4, 13)), draw(st.integers(4, 13))  # non-square maps included
    stride = 1
    if name in ("conv", "gconv", "dwconv", "dwconv_pwconv", "gconv_pwconv", "pwconv"):
        stride = draw(st.sampled_from([1, 1, 2, 3]))
    if name == "pwconv":
        k = 1
    else:
        opts["k"] = k
    if stride != 1:
        opts["stride"] = stride
    if name in ("gconv", "gconv_pwconv"):
        g = draw(GROUPS)
        c = g * draw(st.integers(1, 6))
        opts["groups"] = g
    else:
        c = draw(st.integers(1, 40))
    if name in ("pconv", "pconv_pwconv", "tconv"):
        n_div = draw(st.integers(1, 8))
        c = max(c, n_div)  # c_p >= 1; c need not be divisible by n_div
        opts["n_div"] = n_div
        if name != "tconv":
            opts["forward"] = draw(st.sampled_from(["split_cat", "slicing"]))
    layers = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    return TargetSpec.make(name, (c, h, w), batch, layers, **opts)


def _check_against_counters(spec):
    target = resolve(spec)
    module = target.build()
    counted = count(module, target.example_input())
    assert counted.macs_flopcounter == target.analytic.macs
    if has_fvcore():
        assert counted.macs_fvcore_mac_ops == target.analytic.macs
    else:
        assert counted.macs_fvcore_mac_ops is None and counted.fvcore_error == FVCORE_MISSING
    assert counted.params == target.analytic.params == sum(p.numel() for p in module.parameters())
    return target, counted


@pytest.mark.parametrize("name", OPERATORS.names())
def test_analytic_macs_and_params_match_both_counters(name):
    @SETTINGS
    @given(op_case(name))
    def check(spec):
        target, counted = _check_against_counters(spec)
        if name in ("conv", "gconv", "dwconv", "pwconv"):
            # A single convolution moves exactly what the paper's formula says.
            assert counted.mem_bytes_counted == target.analytic.mem_bytes(4)

    check()


@pytest.mark.parametrize(
    "name, shape, paper_mmacs",
    [
        ("conv", (96, 56, 56), 2601),
        ("gconv", (96, 56, 56), 162),
        ("pconv", (96, 56, 56), 162),
        ("dwconv", (96, 56, 56), 27.09),
        ("dwconv", (192, 28, 28), 13.54),
        ("dwconv", (384, 14, 14), 6.77),
        ("dwconv", (768, 7, 7), 3.38),
    ],
)
def test_table1_flops_match_the_paper(name, shape, paper_mmacs):
    """The paper truncates its FLOPs (MACs) figures: 162.57 M is printed as 162 M, 13.5475 M as 13.54 M."""
    macs = resolve(TargetSpec.make(name, shape, 1, 10)).analytic.macs
    digits = 2 if paper_mmacs < 100 else 0
    assert math.floor(macs / 1e6 * 10**digits) / 10**digits == pytest.approx(paper_mmacs, abs=1e-9)


def test_closed_forms_from_the_paper():
    h, w, k, c, g = 56, 56, 3, 96, 16
    c_p = c // 4
    assert conv_cost(c, c, h, w, k=k, padding=1).macs == h * w * k * k * c * c
    assert conv_cost(c, c, h, w, k=k, padding=1).mem_elems == h * w * 2 * c + k * k * c * c
    assert conv_cost(c, c, h, w, k=k, padding=1, groups=g).mem_elems == h * w * 2 * c + k * k * c * c // g
    assert conv_cost(c, c, h, w, k=k, padding=1, groups=c).mem_elems == h * w * 2 * c + k * k * c
    pconv = resolve(TargetSpec.make("pconv", (c, h, w), 1, 1)).analytic
    assert pconv.macs == h * w * k * k * c_p * c_p
    assert pconv.mem_elems == h * w * 2 * c_p + k * k * c_p * c_p
    assert resolve(TargetSpec.make("pconv_pwconv", (c, h, w), 1, 1)).analytic.macs == h * w * (k * k * c_p**2 + c * c)
    assert resolve(TargetSpec.make("tconv", (c, h, w), 1, 1)).analytic.macs == h * w * (k * k * c_p * c + c * (c - c_p))
    # stride 2 on a non-square map: output is ceil-ish per conv arithmetic
    strided = resolve(TargetSpec.make("conv", (8, 9, 6), 1, 1, stride=2)).analytic
    assert strided.macs == 5 * 3 * 9 * 8 * 8
    assert strided.mem_elems == 9 * 6 * 8 + 5 * 3 * 8 + 9 * 64
    # c not divisible by n_div: c_p = floor(c / n_div)
    assert resolve(TargetSpec.make("pconv", (10, 5, 5), 1, 1, n_div=4)).analytic.params == 9 * 2 * 2


@settings(max_examples=15, deadline=None)
@given(
    c=st.integers(1, 48),
    h=st.integers(3, 12),
    w=st.integers(3, 12),
    n_div=st.integers(1, 6),
    layers=st.integers(1, 3),
    batch=st.integers(1, 2),
)
def test_split_cat_extra_bytes_are_the_concat_copies(c, h, w, n_div, layers, batch):
    """split_cat moves, per layer, exactly the paper's bytes plus the concatenation:

    cat reads the c_p convolved and the c - c_p untouched channels and writes all c of them, so
    extra = layers · batch · h · w · (2·(c - c_p) [untouched copy] + 2·c_p [conv output re-copied]) · 4 bytes
          = layers · batch · h · w · 2c · 4.
    The slicing forward instead clones the input (2c) and copies the conv result in (2c_p).
    """
    c = max(c, n_div)
    c_p = c // n_div
    for forward, extra_elems in (("split_cat", 2 * (c - c_p) + 2 * c_p), ("slicing", 2 * c + 2 * c_p)):
        target = resolve(TargetSpec.make("pconv", (c, h, w), batch, layers, n_div=n_div, forward=forward))
        counted = count(target.build(), target.example_input(), fvcore=False)
        extra = counted.mem_bytes_counted - target.analytic.mem_bytes(4)
        assert extra == layers * batch * h * w * extra_elems * 4


@pytest.mark.parametrize("name", ["pconv", "pconv_pwconv"])
@pytest.mark.parametrize("shape", [(96, 56, 56), (10, 7, 9), (7, 5, 5)])
def test_pconv_forwards_agree_and_leave_input_intact(name, shape):
    outs = []
    for forward in ("split_cat", "slicing"):
        target = resolve(TargetSpec.make(name, shape, 2, 3, forward=forward))
        module, x = target.build(seed=3), target.example_input(seed=4)
        before = x.clone()
        with torch.no_grad():
            outs.append(module(x))
        assert torch.equal(x, before), f"{forward} modified its input"
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_slicing_is_safe_in_a_residual_block():
    from operators import PConv

    torch.manual_seed(0)
    pconv = PConv(16, 4, "slicing").eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        y = x + pconv(x)  # the shortcut is the very tensor PConv receives
        ref = x + PConv.forward.__get__(pconv)(x.clone())
    torch.testing.assert_close(y, ref)
    untouched = slice(pconv.dim_conv3, None)
    torch.testing.assert_close(y[:, untouched], 2 * x[:, untouched])


def test_tconv_equals_a_masked_dense_conv():
    from operators import TConv

    torch.manual_seed(1)
    c, k = 12, 3
    t = TConv(c, 4, k=k).eval()
    dense = torch.nn.Conv2d(c, c, k, padding=1, bias=False)
    with torch.no_grad():
        dense.weight.zero_()
        dense.weight[:, : t.c_p] = t.spatial.weight
        dense.weight[:, t.c_p :, k // 2, k // 2] = t.point.weight[:, :, 0, 0]
        x = torch.randn(2, c, 9, 7)
        torch.testing.assert_close(t(x), dense(x), rtol=1e-5, atol=1e-5)


def test_module_breakdown_is_inclusive_and_sums_to_the_total():
    target = resolve(TargetSpec.make("pconv_pwconv", (32, 10, 10), 1, 2))
    counted = count(target.build(), target.example_input(), fvcore=False)
    whole = counted.by_module[""]
    assert whole.macs == counted.macs == target.analytic.macs
    assert whole.bytes == counted.mem_bytes_counted
    layers = [counted.by_module[str(i)] for i in range(2)]
    assert sum(s.macs for s in layers) == whole.macs
    assert sum(s.bytes for s in layers) == whole.bytes
    # inside one layer: PConv's conv and the 1x1 conv each account their own MACs
    c, c_p, hw = 32, 8, 100
    assert counted.by_module["0.0.partial_conv3"].macs == hw * 9 * c_p * c_p
    assert counted.by_module["0.1"].macs == hw * c * c
    assert counted.by_operator["aten.cat"].macs == 0
    assert counted.by_operator["aten.cat"].bytes == 2 * (2 * 4 * hw * c)  # 2 layers, each reads + writes c channels


def test_broadcast_views_count_touched_bytes_once():
    from fnbench.counting import touched_bytes

    x = torch.zeros(8, 1)
    assert touched_bytes(x.expand(8, 1000)) == 8 * 4
    assert touched_bytes(torch.zeros(4, 6)[:, :2]) == 4 * 2 * 4
