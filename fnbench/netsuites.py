"""Network suites over FasterNet and the peer zoo.

Names resolvable through :func:`fnbench.targets.resolve`:

- ``fasternet_t0`` … ``fasternet_l`` and the peer aliases (``resnet50``, ``mobilevit_xxs``, …);
- ``fasternet_X@MIXER[:ARG][~flops]`` — the block's spatial mixer swapped
  (see :mod:`operators.fasternet`), e.g. ``fasternet_t0@dwconv~flops``;
- ``timm:NAME`` and ``tv:NAME`` — any timm / torchvision classification model (random weights).

Suites:

``networks``  FasterNet T0–L and every buildable paper peer, each at its own input size
              (224×224, except MobileViT and EdgeNeXt at 256×256 as in the paper's FLOPs).
``swap``      FasterNet-T0 and -T2 with each mixer, as built and FLOP-matched (``~flops``).
``ratio``     FasterNet-T0 with n_div 2, 4, 8, 16 (plain, and FLOP-matched like the paper's ablation).
"""

from __future__ import annotations

from operators import fasternet, zoo
from operators.zoo import PEERS

from .suites import register_suite
from .targets import TargetSpec

__all__ = ["FASTERNETS", "SWAP_MIXERS", "RATIO_N_DIVS", "HEADLINE_NETWORKS", "peer_aliases"]

FASTERNETS = tuple(f"fasternet_{b}" for b in fasternet.VARIANTS)
SWAP_MIXERS = ("pconv", "dwconv", "gconv", "conv")
RATIO_N_DIVS = (2, 4, 8, 16)


def peer_aliases() -> list[str]:
    """Registered aliases of the paper's peers that the installed libraries can build."""
    status = zoo.peer_status()
    return [p.alias for p in PEERS
            if p.alias is not None and (status[p.paper_name].available or status[p.paper_name].source)]


@register_suite("networks", "FasterNet T0–L and the paper's buildable peers, at their own input size")
def _networks(batch: int) -> list[TargetSpec]:
    return [TargetSpec.make(name, None, batch) for name in (*FASTERNETS, *peer_aliases())]


@register_suite("swap", "FasterNet-T0/T2 with pconv, dwconv, gconv, conv as mixer; plain and FLOP-matched")
def _swap(batch: int) -> list[TargetSpec]:
    names = [f"fasternet_{b}@{m}{s}" for b in ("t0", "t2") for m in SWAP_MIXERS for s in ("", "~flops")
             if not (m == "pconv" and s)]  # pconv n_div 4 is the original: matching it to itself is a no-op
    return [TargetSpec.make(name, None, batch) for name in names]


@register_suite("ratio", "FasterNet-T0 with n_div 2, 4, 8, 16 (partial ratio 1/2 … 1/16); plain and FLOP-matched")
def _ratio(batch: int) -> list[TargetSpec]:
    names = [f"fasternet_t0@pconv:{n}{s}" for n in RATIO_N_DIVS for s in ("", "~flops") if not (n == 4 and s)]
    return [TargetSpec.make(name, None, batch) for name in names]


#: The networks the paper's headline CPU claim compares (FasterNet-T0 against its closest peers).
HEADLINE_NETWORKS = ("fasternet_t0", "mobilevit_xxs", "mobilenetv2", "shufflenetv2_x1_5")


@register_suite("default", "what `make run` measures: table1 plus FasterNet-T0 and its three headline peers")
def _default(batch: int) -> list[TargetSpec]:
    from .suites import SUITES

    return SUITES["table1"].specs(batch) + [TargetSpec.make(name, None, batch) for name in HEADLINE_NETWORKS]


@register_suite("allocator-sensitivity",
                "the 96x56x56 DWConv and PConv stacks and FasterNet-T0: measure under a second --allocator beside "
                "`default` to see how much the memory allocator moves them")
def _allocator_sensitivity(batch: int) -> list[TargetSpec]:
    return [TargetSpec.make(op, (96, 56, 56), batch, 10) for op in ("dwconv", "pconv")] + [
        TargetSpec.make("fasternet_t0", None, batch)]
