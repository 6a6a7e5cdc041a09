"""FasterNet T0…L (Chen et al., CVPR 2023) built from this package's :class:`~operators.pconv.PConv`.

Layout (PAPER.md, "The networks"):

- embedding: 4×4 stride-4 conv + BN, no activation;
- four stages of ``dim·2^i`` channels; stages 1–3 start with a 2×2 stride-2 merging conv + BN
  that doubles the channels;
- block: spatial mixer (PConv 3×3, n_div 4) → 1×1 conv c→2c → BN → act → 1×1 conv 2c→c,
  added to the block's input (DropPath on the branch while training);
- head: global average pool → 1×1 conv to 1280 (no bias) → act → linear to the classes.

The parameter names follow timm's ``fasternet_*`` models (and the official code), so their
``state_dict`` loads into these modules with ``strict=True``. The code is independent of timm.

The spatial mixer is swappable so that a network-level swap can be measured, not just a single
operator: ``pconv`` (any ``n_div``), ``dwconv`` (depthwise 3×3), ``gconv`` (group 3×3, 16 groups
or the largest divisor of the channel count not above 16) and ``conv`` (dense 3×3). A swapped
network can be re-widened so that its total MACs equal the original's (:func:`match_width`).

Variant names (resolved by :func:`resolve_variant`)::

    BASE '@' MIXER [':' ARG] ['~flops']

    BASE   fasternet_t0 | fasternet_t1 | fasternet_t2 | fasternet_s | fasternet_m | fasternet_l
    MIXER  pconv[:N_DIV] | dwconv | gconv[:MAX_GROUPS] | conv
    ~flops widen or narrow the base width so that total MACs match BASE (PConv, n_div 4)
           within 2 %; the width used is in the entry's meta and on the module (``width``,
           ``stage_dims``). Where no doubling width w, 2w, 4w, 8w is close enough (e.g. T0 with
           a dense conv) the four widths are scaled together and rounded one by one.

e.g. ``fasternet_t0@dwconv``, ``fasternet_t0@pconv:8``, ``fasternet_t2@gconv~flops``.

MAC convention: the paper counted with fvcore's default ``FlopCountAnalysis`` before BN fusion.
That total is the multiply-adds of the convolutions and the classifier *plus* fvcore's two per
element for every eval-mode BatchNorm and one per element for the global pool; it reproduces
every entry of the paper's "FLOPs" column to the printed digit (T2: 1.9106 G → 1.91). The
convolution and linear multiply-adds alone (= torch's ``FlopCounterMode`` total / 2) are
0.2–0.8 % lower and round to 1.90 / 4.55 / 8.72 / 15.49 G for T2 / S / M / L.
:func:`analytic_macs` gives either (``norm=True`` for fvcore's, the default; ``False`` for pure MACs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from .pconv import FORWARDS, PConv
from .registry import NETWORKS, ConfigError, Entry

__all__ = [
    "FasterNet",
    "FasterNetBlock",
    "PatchEmbed",
    "PatchMerging",
    "Stage",
    "DropPath",
    "VARIANTS",
    "MIXERS",
    "VariantSpec",
    "build_fasternet",
    "gconv_groups",
    "stage_dims",
    "analytic_macs",
    "match_width",
    "parse_variant",
    "resolve_variant",
    "MATCH_TOLERANCE",
]

MIXERS = ("pconv", "dwconv", "gconv", "conv")
HEAD_DIM = 1280
DEFAULT_INPUT = (3, 224, 224)
#: Relative MAC tolerance of a FLOP-matched (``~flops``) variant.
MATCH_TOLERANCE = 0.02


@dataclass(frozen=True)
class _Variant:
    dim: int
    depths: tuple[int, int, int, int]
    act: str
    drop_path_rate: float  # the official training recipe's value; only matters in train()
    params_m: float  # paper, Table "The networks"
    macs_g: float
    top1: float


VARIANTS: dict[str, _Variant] = {
    "t0": _Variant(40, (1, 2, 8, 2), "gelu", 0.0, 3.9, 0.34, 71.9),
    "t1": _Variant(64, (1, 2, 8, 2), "gelu", 0.02, 7.6, 0.85, 76.2),
    "t2": _Variant(96, (1, 2, 8, 2), "relu", 0.05, 15.0, 1.91, 78.9),
    "s": _Variant(128, (1, 2, 13, 2), "relu", 0.1, 31.1, 4.56, 81.3),
    "m": _Variant(144, (3, 4, 18, 3), "relu", 0.2, 53.5, 8.74, 83.0),
    "l": _Variant(192, (3, 4, 18, 3), "relu", 0.3, 93.5, 15.52, 83.5),
}


# --------------------------------------------------------------------------- building blocks


def gconv_groups(c: int, max_groups: int = 16) -> int:
    """Largest divisor of ``c`` not above ``max_groups`` (16 → 16 whenever 16 divides ``c``)."""
    return max(g for g in range(1, min(max_groups, c) + 1) if c % g == 0)


def _make_act(act: str) -> nn.Module:
    # Exact (erf) GELU and in-place ReLU, as in the official code and timm.
    return nn.GELU() if act == "gelu" else nn.ReLU(inplace=True)


def _make_mixer(c: int, mixer: str, n_div: int, max_groups: int, forward: str) -> nn.Module:
    if mixer == "pconv":
        return PConv(c, n_div, forward)
    if mixer == "dwconv":
        return nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
    if mixer == "gconv":
        return nn.Conv2d(c, c, 3, 1, 1, groups=gconv_groups(c, max_groups), bias=False)
    if mixer == "conv":
        return nn.Conv2d(c, c, 3, 1, 1, bias=False)
    raise ConfigError(f"unknown mixer {mixer!r}; use one of {', '.join(MIXERS)}")


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: drop whole samples with probability ``p`` in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed(nn.Module):
    """4×4 stride-4 conv + BN (no activation)."""

    def __init__(self, in_chans: int, dim: int, patch: int = 4) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch, bias=False)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x))


class PatchMerging(nn.Module):
    """2×2 stride-2 conv + BN between stages, ``c_in → c_out`` (the paper doubles: c → 2c)."""

    def __init__(self, c_in: int, c_out: int, patch: int = 2) -> None:
        super().__init__()
        self.reduction = nn.Conv2d(c_in, c_out, patch, patch, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.reduction(x))


class FasterNetBlock(nn.Module):
    """Mixer → 1×1 c→2c → BN → act → 1×1 2c→c, plus the input (the residual).

    The mixer's output is not added: the shortcut is the block's input, which the mixer must
    leave untouched (this package's PConv never writes into its input).
    """

    def __init__(
        self,
        c: int,
        *,
        act: str,
        mixer: str = "pconv",
        n_div: int = 4,
        max_groups: int = 16,
        forward: str = "split_cat",
        drop_path: float = 0.0,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        hidden = int(c * mlp_ratio)
        self.spatial_mixing = _make_mixer(c, mixer, n_div, max_groups, forward)
        self.mlp = nn.Sequential(
            nn.Conv2d(c, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            _make_act(act),
            nn.Conv2d(hidden, c, 1, bias=False),
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.mlp(self.spatial_mixing(x)))


class Stage(nn.Module):
    """Optional merging (``downsample``) followed by ``depth`` blocks."""

    def __init__(self, c_in: int, c: int, depth: int, *, merge: bool, drop_paths: Sequence[float], **block_kw) -> None:
        super().__init__()
        self.downsample = PatchMerging(c_in, c) if merge else nn.Identity()
        self.blocks = nn.Sequential(*(FasterNetBlock(c, drop_path=dp, **block_kw) for dp in drop_paths))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class FasterNet(nn.Module):
    """FasterNet with a swappable spatial mixer.

    ``dims`` are the four stage widths (the paper uses ``dim·(1, 2, 4, 8)``). Attributes record
    what was built: ``variant``, ``width`` (stage-0 width), ``stage_dims``, ``mixer``, ``n_div``,
    ``groups`` (per-stage group count for ``gconv``, else ``None``).

    >>> m = FasterNet((40, 80, 160, 320), (1, 2, 8, 2), act="gelu").eval()
    >>> m(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 1000])
    """

    def __init__(
        self,
        dims: Sequence[int],
        depths: Sequence[int],
        *,
        act: str = "relu",
        mixer: str = "pconv",
        n_div: int = 4,
        max_groups: int = 16,
        forward: str = "split_cat",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        head_dim: int = HEAD_DIM,
        variant: str | None = None,
    ) -> None:
        super().__init__()
        dims, depths = tuple(int(d) for d in dims), tuple(int(d) for d in depths)
        _validate(dims, depths, mixer, n_div, max_groups, forward, num_classes)
        self.variant = variant
        self.width = dims[0]
        self.stage_dims = dims
        self.depths = depths
        self.mixer = mixer
        self.n_div = n_div if mixer == "pconv" else None
        self.groups = tuple(gconv_groups(c, max_groups) for c in dims) if mixer == "gconv" else None
        self.flop_matched = False

        self.patch_embed = PatchEmbed(in_chans, dims[0])
        # Stochastic depth grows linearly over all blocks (official recipe).
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, start = [], 0
        for i, (c, depth) in enumerate(zip(dims, depths)):
            stages.append(
                Stage(
                    dims[i - 1] if i else c,
                    c,
                    depth,
                    merge=i > 0,
                    drop_paths=rates[start : start + depth],
                    act=act,
                    mixer=mixer,
                    n_div=n_div,
                    max_groups=max_groups,
                    forward=forward,
                )
            )
            start += depth
        self.stages = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(dims[-1], head_dim, 1, bias=False)
        self.act = _make_act(act)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(head_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.patch_embed(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv_head(self.global_pool(self.forward_features(x))))
        return self.classifier(self.flatten(x))


def _validate(dims, depths, mixer, n_div, max_groups, forward, num_classes) -> None:
    if len(dims) != len(depths) or not dims:
        raise ConfigError(f"{len(dims)} stage widths for {len(depths)} stages; give one width per stage")
    if min(dims) < 1:
        raise ConfigError(f"stage widths {dims} must be positive")
    if mixer not in MIXERS:
        raise ConfigError(f"unknown mixer {mixer!r}; use one of {', '.join(MIXERS)}")
    if forward not in FORWARDS:
        raise ConfigError(f"unknown PConv forward {forward!r}; use one of {', '.join(FORWARDS)}")
    if mixer == "pconv":
        if n_div < 1:
            raise ConfigError(f"n_div={n_div} is not positive; use 1 or more (the paper uses 4)")
        if min(dims) // n_div < 1:
            raise ConfigError(
                f"n_div={n_div} leaves no channel to convolve in a {min(dims)}-channel stage; use n_div <= {min(dims)}"
            )
    if mixer == "gconv" and max_groups < 1:
        raise ConfigError(f"gconv groups={max_groups} is not positive; use 1 or more (the paper uses 16)")
    if num_classes < 0:
        raise ConfigError(f"num_classes={num_classes} is negative; use 0 (no classifier) or more")


def stage_dims(width: int, n_stages: int = 4) -> tuple[int, ...]:
    """The paper's stage widths: ``width·2^i``."""
    return tuple(width * 2**i for i in range(n_stages))


def build_fasternet(
    base: str,
    *,
    n_div: int = 4,
    forward: str = "split_cat",
    mixer: str = "pconv",
    width: int | Sequence[int] | None = None,
    num_classes: int = 1000,
    max_groups: int = 16,
) -> FasterNet:
    """Build ``fasternet_<base>`` (``base`` in t0, t1, t2, s, m, l), random weights.

    ``width``: ``None`` for the paper's, an int stage-0 width (stages double), or four stage widths.
    """
    v = VARIANTS[base]
    if width is None:
        dims = stage_dims(v.dim)
    elif isinstance(width, int):
        if width < 1:
            raise ConfigError(f"width={width} is not positive; use the stage-0 channel count, e.g. {v.dim}")
        dims = stage_dims(width)
    else:
        dims = tuple(int(d) for d in width)
    return FasterNet(
        dims,
        v.depths,
        act=v.act,
        mixer=mixer,
        n_div=n_div,
        max_groups=max_groups,
        forward=forward,
        num_classes=num_classes,
        drop_path_rate=v.drop_path_rate,
        variant=f"fasternet_{base}",
    )


# --------------------------------------------------------------------------- analytic cost


def _mixer_macs(c: int, hw: int, mixer: str, n_div: int, max_groups: int) -> int:
    if mixer == "pconv":
        return hw * 9 * (c // n_div) ** 2
    if mixer == "dwconv":
        return hw * 9 * c
    if mixer == "gconv":
        return hw * 9 * c * c // gconv_groups(c, max_groups)
    return hw * 9 * c * c


def analytic_macs(
    dims: Sequence[int],
    depths: Sequence[int],
    *,
    mixer: str = "pconv",
    n_div: int = 4,
    max_groups: int = 16,
    input_shape: Sequence[int] = DEFAULT_INPUT,
    num_classes: int = 1000,
    head_dim: int = HEAD_DIM,
    norm: bool = True,
) -> int:
    """MACs of one sample, before BN folding.

    ``norm=False``: multiply-adds of the convolutions and the classifier only (what
    ``FlopCounterMode`` / 2 reports). ``norm=True`` adds fvcore's count for eval-mode BN (two per
    output element) and the global average pool (one per input element), which is the paper's
    convention and equals ``fvcore.nn.FlopCountAnalysis(model, x).total()`` exactly.
    """
    cin, h, w = input_shape
    h, w = h // 4, w // 4
    macs = h * w * 16 * cin * dims[0]
    extra = 2 * h * w * dims[0]
    for i, (c, depth) in enumerate(zip(dims, depths)):
        if i:
            h, w = h // 2, w // 2
            macs += h * w * 4 * dims[i - 1] * c
            extra += 2 * h * w * c
        macs += depth * (_mixer_macs(c, h * w, mixer, n_div, max_groups) + h * w * 4 * c * c)
        extra += depth * 2 * h * w * 2 * c
    extra += h * w * dims[-1]
    return macs + dims[-1] * head_dim + head_dim * num_classes + (extra if norm else 0)


def _scaled_dims(base_dims: Sequence[int], last: int) -> tuple[int, ...]:
    """Stage widths scaled by ``last / base_dims[-1]``, each rounded on its own."""
    return tuple(max(1, round(d * last / base_dims[-1])) for d in base_dims[:-1]) + (last,)


def match_width(
    base: str,
    mixer: str,
    *,
    n_div: int = 4,
    max_groups: int = 16,
    input_shape: Sequence[int] = DEFAULT_INPUT,
    tolerance: float = MATCH_TOLERANCE,
) -> tuple[tuple[int, ...], int, int]:
    """Stage widths whose total MACs (:func:`analytic_macs`, fvcore's convention) come closest to
    ``fasternet_<base>``'s own (PConv, n_div 4).

    First every integer stage-0 width from 1/4× to 4× the base is tried with the paper's doubling
    (``w, 2w, 4w, 8w``); for ``gconv`` only widths that keep the requested group count from stage 1
    on, so narrowing never turns it into a near-dense conv. One channel at stage 0 moves T0's MACs
    by ~5 %, so if no such width is within ``tolerance`` the four stage widths are scaled together
    and rounded one by one (``round(α·w·2^i)``), which moves in ~0.3 % steps. Returns
    ``(stage_dims, macs, target_macs)``; raises :class:`ConfigError` if nothing is within ``tolerance``.
    """
    v = VARIANTS[base]
    base_dims = stage_dims(v.dim)
    target = analytic_macs(base_dims, v.depths, input_shape=input_shape)

    def pick(candidates) -> tuple[tuple[int, ...], int] | None:
        best = None
        for dims in candidates:
            if mixer == "pconv" and min(dims) // n_div < 1:
                continue
            macs = analytic_macs(
                dims, v.depths, mixer=mixer, n_div=n_div, max_groups=max_groups, input_shape=input_shape
            )
            if best is None or abs(macs - target) < abs(best[1] - target):
                best = (dims, macs)
        return best

    def doubling_ok(w: int) -> bool:
        return mixer != "gconv" or max_groups > 2 * w or (2 * w) % max_groups == 0

    best = pick(stage_dims(w) for w in range(max(1, v.dim // 4), 4 * v.dim + 1) if doubling_ok(w))
    if best is None or abs(best[1] - target) > tolerance * target:
        last = base_dims[-1]
        fine = pick(_scaled_dims(base_dims, s) for s in range(max(1, last // 4), 4 * last + 1))
        if fine is not None and (best is None or abs(fine[1] - target) < abs(best[1] - target)):
            best = fine
    if best is None or abs(best[1] - target) > tolerance * target:
        got = "no valid width" if best is None else f"closest widths {best[0]} give {best[1] / target - 1:+.1%}"
        raise ConfigError(
            f"cannot match fasternet_{base}'s MACs within {tolerance:.0%} with mixer {mixer} ({got}); drop '~flops'"
        )
    return best[0], best[1], target


# --------------------------------------------------------------------------- registry


def _register(base: str) -> None:
    v = VARIANTS[base]
    name = f"fasternet_{base}"

    def factory(
        n_div: int = 4,
        forward: str = "split_cat",
        mixer: str = "pconv",
        width: int | None = None,
        num_classes: int = 1000,
    ) -> FasterNet:
        return build_fasternet(base, n_div=n_div, forward=forward, mixer=mixer, width=width, num_classes=num_classes)

    factory.__name__ = name
    factory.__doc__ = f"FasterNet-{base.upper()}: dim {v.dim}, depths {'-'.join(map(str, v.depths))}, {v.act.upper()}."
    NETWORKS.register(
        name,
        summary=f"FasterNet-{base.upper()} (dim {v.dim}, depths {'-'.join(map(str, v.depths))}, {v.act.upper()})",
        input_shape=DEFAULT_INPUT,
        family="fasternet",
        paper_params_m=v.params_m,
        paper_macs_g=v.macs_g,
        paper_top1=v.top1,
        width=v.dim,
        depths=v.depths,
        act=v.act,
    )(factory)


for _base in VARIANTS:
    _register(_base)


@dataclass(frozen=True)
class VariantSpec:
    """A parsed ``BASE@MIXER[:ARG][~flops]`` name."""

    base: str  # "t0", …
    mixer: str
    n_div: int = 4
    max_groups: int = 16
    match_flops: bool = False


_SYNTAX = "fasternet_<t0|t1|t2|s|m|l>@<pconv[:N_DIV]|dwconv|gconv[:GROUPS]|conv>[~flops]"


def parse_variant(name: str) -> VariantSpec | None:
    """Parse a variant name; ``None`` if ``name`` is not of the form ``fasternet_X@…``."""
    if "@" not in name or not name.startswith("fasternet_"):
        return None
    base_name, _, rest = name.partition("@")
    base = base_name[len("fasternet_") :]
    if base not in VARIANTS:
        raise ConfigError(
            f"unknown FasterNet {base_name!r}; use one of "
            f"{', '.join('fasternet_' + b for b in VARIANTS)} (syntax: {_SYNTAX})"
        )
    match_flops = False
    if "~" in rest:
        rest, _, suffix = rest.partition("~")
        if suffix != "flops":
            raise ConfigError(f"unknown suffix '~{suffix}'; the only one is '~flops' (syntax: {_SYNTAX})")
        match_flops = True
    mixer, _, arg = rest.partition(":")
    if mixer not in MIXERS:
        raise ConfigError(f"unknown mixer {mixer!r}; use one of {', '.join(MIXERS)} (syntax: {_SYNTAX})")
    n_div, max_groups = 4, 16
    if arg:
        if mixer not in ("pconv", "gconv"):
            raise ConfigError(f"mixer {mixer} takes no ':{arg}'; only pconv:N_DIV and gconv:GROUPS do")
        if not arg.isdigit() or int(arg) < 1:
            raise ConfigError(
                f"':{arg}' is not a positive integer; use e.g. {base_name}@{mixer}:{8 if mixer == 'pconv' else 16}"
            )
        if mixer == "pconv":
            n_div = int(arg)
        else:
            max_groups = int(arg)
    dim = VARIANTS[base].dim
    if mixer == "pconv" and dim // n_div < 1:
        raise ConfigError(
            f"n_div={n_div} leaves no channel to convolve in {base_name}'s {dim}-channel first stage; "
            f"use n_div between 1 and {dim}"
        )
    return VariantSpec(base, mixer, n_div, max_groups, match_flops)


def resolve_variant(name: str) -> Entry | None:
    """Network resolver for ``fasternet_X@MIXER[:ARG][~flops]`` names (see the module docstring)."""
    spec = parse_variant(name)
    if spec is None:
        return None
    v = VARIANTS[spec.base]
    base_macs = analytic_macs(stage_dims(v.dim), v.depths)
    if spec.match_flops:
        dims, macs, _ = match_width(spec.base, spec.mixer, n_div=spec.n_div, max_groups=spec.max_groups)
    else:
        dims = stage_dims(v.dim)
        macs = analytic_macs(dims, v.depths, mixer=spec.mixer, n_div=spec.n_div, max_groups=spec.max_groups)
    width = dims[0]
    build_width = width if dims == stage_dims(width) else dims

    def factory(forward: str = "split_cat", num_classes: int = 1000) -> FasterNet:
        model = build_fasternet(
            spec.base,
            n_div=spec.n_div,
            forward=forward,
            mixer=spec.mixer,
            width=build_width,
            num_classes=num_classes,
            max_groups=spec.max_groups,
        )
        model.variant = name
        model.flop_matched = spec.match_flops
        return model

    factory.__name__ = name
    meta = {
        "input_shape": DEFAULT_INPUT,
        "family": "fasternet",
        "base": f"fasternet_{spec.base}",
        "mixer": spec.mixer,
        "width": width,
        "base_width": v.dim,
        "stage_dims": dims,
        "width_mult": dims[-1] / stage_dims(v.dim)[-1],
        "flop_matched": spec.match_flops,
        "macs_analytic": macs,
        "base_macs_analytic": base_macs,
        "macs_ratio": macs / base_macs,
    }
    if spec.mixer == "pconv":
        meta["n_div"] = spec.n_div
    if spec.mixer == "gconv":
        meta["groups"] = tuple(gconv_groups(c, spec.max_groups) for c in dims)
    what = {
        "pconv": f"PConv n_div {spec.n_div}",
        "dwconv": "depthwise 3×3",
        "conv": "dense 3×3",
        "gconv": f"group 3×3 (groups {'/'.join(map(str, meta.get('groups', ())))})",
    }[spec.mixer]
    shown = "/".join(map(str, dims)) if isinstance(build_width, tuple) else str(width)
    summary = f"FasterNet-{spec.base.upper()} with {what} as mixer, width {shown}"
    if spec.match_flops:
        summary += f" (MACs matched: {macs / base_macs - 1:+.1%})"
    return Entry(name, factory, summary, None, None, tuple(sorted(meta.items())))
