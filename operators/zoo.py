"""Peer networks by name from timm and torchvision (random weights, never downloaded).

Two ways to name one:

``timm:NAME``
    any model ``timm.list_models()`` knows, e.g. ``timm:mobilevit_xxs``; a pretrained tag
    (``timm:resnet50.a1_in1k``) is accepted and ignored, since weights are never loaded.
``tv:NAME``
    any torchvision *classification* model, e.g. ``tv:shufflenet_v2_x1_5``.

Short aliases for the peers in the paper's main table are registered in :data:`NETWORKS`
(``mobilevit_xxs``, ``shufflenetv2_x1_5``, ``resnet50``, …; see :data:`PEERS`). Each alias
records the input size its model was designed for: MobileViT and EdgeNeXt use 256×256, which
is the size the paper's FLOPs for them correspond to (EdgeNeXt-XXS: 0.26 G at 256, 0.20 G at
224); the others use 224×224. :func:`peer_status` says which paper peers the installed
libraries can build and why the others cannot (CycleMLP is in neither library; timm ships
PVTv2 only, so PVT v1 is unavailable and ``pvt_v2_b1`` … ``b4`` are registered as labelled
stand-ins whose sizes are close to, but not, the paper's rows).

timm and torchvision are imported only when a model is built or a name is checked, so that
importing this module stays cheap.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import NamedTuple

from torch import nn

from .registry import NETWORKS, ConfigError, Entry

__all__ = ["Peer", "PEERS", "PeerStatus", "peer_status", "resolve_zoo", "build_zoo_model", "timm_names", "tv_names"]

PREFIXES = ("timm:", "tv:")


@dataclass(frozen=True)
class Peer:
    """A network from the paper's main table and where this suite gets it."""

    paper_name: str
    alias: str | None  # name registered in NETWORKS; None if it is not built at all
    source: str | None  # "timm:NAME" / "tv:NAME"
    input_hw: int = 224
    stand_in_for: str | None = None  # set when ``source`` is not the paper's model but the nearest one
    note: str = ""


_PVT_NOTE = "PVT v1 is in neither timm nor torchvision; timm ships PVTv2 only"
_CYCLEMLP_NOTE = "CycleMLP is in neither timm nor torchvision"

PEERS: tuple[Peer, ...] = (
    Peer("ShuffleNetV2 x1.5", "shufflenetv2_x1_5", "tv:shufflenet_v2_x1_5"),
    Peer("ShuffleNetV2 x2", "shufflenetv2_x2", "tv:shufflenet_v2_x2_0"),
    Peer("MobileNetV2", "mobilenetv2", "timm:mobilenetv2_100"),
    Peer("MobileNetV2 x1.4", "mobilenetv2_x1_4", "timm:mobilenetv2_140"),
    Peer("MobileViT-XXS", "mobilevit_xxs", "timm:mobilevit_xxs", 256),
    Peer("MobileViT-XS", "mobilevit_xs", "timm:mobilevit_xs", 256),
    Peer("MobileViT-S", "mobilevit_s", "timm:mobilevit_s", 256),
    Peer("EdgeNeXt-XXS", "edgenext_xxs", "timm:edgenext_xx_small", 256),
    Peer("EdgeNeXt-XS", "edgenext_xs", "timm:edgenext_x_small", 256),
    Peer("EdgeNeXt-S", "edgenext_s", "timm:edgenext_small", 256),
    Peer("GhostNet x1.3", "ghostnet_x1_3", "timm:ghostnet_130"),
    Peer("PVT-Tiny", "pvt_v2_b1", "timm:pvt_v2_b1", stand_in_for="PVT-Tiny", note=_PVT_NOTE),
    Peer("PVT-Small", "pvt_v2_b2", "timm:pvt_v2_b2", stand_in_for="PVT-Small", note=_PVT_NOTE),
    Peer("PVT-Medium", "pvt_v2_b3", "timm:pvt_v2_b3", stand_in_for="PVT-Medium", note=_PVT_NOTE),
    Peer("PVT-Large", "pvt_v2_b4", "timm:pvt_v2_b4", stand_in_for="PVT-Large", note=_PVT_NOTE),
    Peer("CycleMLP-B1", None, None, note=_CYCLEMLP_NOTE),
    Peer("CycleMLP-B2", None, None, note=_CYCLEMLP_NOTE),
    Peer("PoolFormer-S12", "poolformer_s12", "timm:poolformer_s12"),
    Peer("PoolFormer-S24", "poolformer_s24", "timm:poolformer_s24"),
    Peer("PoolFormer-S36", "poolformer_s36", "timm:poolformer_s36"),
    Peer("PoolFormer-M36", "poolformer_m36", "timm:poolformer_m36"),
    Peer("PoolFormer-M48", "poolformer_m48", "timm:poolformer_m48"),
    Peer("ResNet50", "resnet50", "tv:resnet50"),
    Peer("ConvNeXt-T", "convnext_t", "timm:convnext_tiny"),
    Peer("ConvNeXt-S", "convnext_s", "timm:convnext_small"),
    Peer("ConvNeXt-B", "convnext_b", "timm:convnext_base"),
    Peer("Swin-T", "swin_t", "timm:swin_tiny_patch4_window7_224"),
    Peer("Swin-S", "swin_s", "timm:swin_small_patch4_window7_224"),
    Peer("Swin-B", "swin_b", "timm:swin_base_patch4_window7_224"),
)


# --------------------------------------------------------------------------- library look-ups


@functools.cache
def timm_names() -> frozenset[str]:
    """Every model name the installed timm can build."""
    import timm

    return frozenset(timm.list_models())


@functools.cache
def tv_names() -> frozenset[str]:
    """Every classification model name the installed torchvision can build."""
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def _split(name: str) -> tuple[str, str] | None:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return prefix[:-1], name[len(prefix) :]
    return None


def _library_version(lib: str) -> str:
    if lib == "timm":
        import timm

        return timm.__version__
    import torchvision

    return torchvision.__version__


def _check(lib: str, model: str) -> str:
    """The library's own model name for ``model`` (tag stripped); ``ConfigError`` if unknown."""
    known = timm_names() if lib == "timm" else tv_names()
    base = model.split(".", 1)[0] if lib == "timm" else model
    if base in known:
        return base
    close = difflib.get_close_matches(base, sorted(known), n=5, cutoff=0.6)
    hint = (
        f"did you mean: {', '.join(lib + ':' + c for c in close)}?"
        if close
        else (
            "list them with timm.list_models()"
            if lib == "timm"
            else "list them with torchvision.models.list_models(module=torchvision.models)"
        )
    )
    what = "timm" if lib == "timm" else "torchvision classification"
    raise ConfigError(f"{what} has no model {base!r} (version {_library_version(lib)}); {hint}")


def _native_hw(lib: str, model: str) -> int:
    if lib == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(model)
        size = getattr(cfg, "input_size", None) if cfg is not None else None
        if size and len(size) == 3 and size[1] == size[2]:
            return int(size[1])
    return 299 if model == "inception_v3" else 224


def build_zoo_model(source: str, num_classes: int = 1000) -> nn.Module:
    """Build ``timm:NAME`` or ``tv:NAME`` with random weights."""
    parts = _split(source)
    if parts is None:
        raise ConfigError(f"{source!r} names no library; use timm:NAME or tv:NAME")
    lib, model = parts
    model = _check(lib, model)
    if lib == "timm":
        import timm

        return timm.create_model(model, pretrained=False, num_classes=num_classes)
    import torchvision

    return torchvision.models.get_model(model, weights=None, num_classes=num_classes)


def resolve_zoo(name: str) -> Entry | None:
    """Network resolver for ``timm:NAME`` and ``tv:NAME``; ``None`` for other names."""
    parts = _split(name)
    if parts is None:
        return None
    lib, model = parts
    if not model:
        raise ConfigError(f"{name!r} has no model name; use e.g. timm:resnet50 or tv:shufflenet_v2_x1_5")
    model = _check(lib, model)
    source = f"{lib}:{model}"

    def factory(num_classes: int = 1000) -> nn.Module:
        return build_zoo_model(source, num_classes)

    factory.__name__ = name
    hw = _native_hw(lib, model)
    meta = {
        "input_shape": (3, hw, hw),
        "family": "zoo",
        "source": source,
        "library": lib,
        "library_version": _library_version(lib),
    }
    what = "timm" if lib == "timm" else "torchvision"
    return Entry(name, factory, f"{what} {model} (random weights)", None, None, tuple(sorted(meta.items())))


# --------------------------------------------------------------------------- aliases


def _register(peer: Peer) -> None:
    source = peer.source

    def factory(num_classes: int = 1000) -> nn.Module:
        return build_zoo_model(source, num_classes)

    factory.__name__ = peer.alias
    summary = f"{peer.paper_name} ({source}, random weights)"
    if peer.stand_in_for:
        summary = f"stand-in for {peer.stand_in_for}: {source} (random weights; {peer.note})"
    meta = {
        "input_shape": (3, peer.input_hw, peer.input_hw),
        "family": "zoo",
        "source": source,
        "paper_name": peer.paper_name,
    }
    if peer.stand_in_for:
        meta["stand_in_for"] = peer.stand_in_for
    NETWORKS.register(peer.alias, summary=summary, **meta)(factory)


for _peer in PEERS:
    if _peer.alias is not None:
        _register(_peer)


class PeerStatus(NamedTuple):
    available: bool  # the paper's own model can be built from an installed library
    source: str | None  # what this suite builds for it (a stand-in when ``available`` is False)
    reason: str


def peer_status() -> dict[str, PeerStatus]:
    """Paper peer name → whether it can be built here, from where, and if not, why.

    A stand-in (PVTv2 for PVT) is reported as not available, with the stand-in as ``source``.
    """
    rows: dict[str, PeerStatus] = {}
    for peer in PEERS:
        if peer.source is None:
            rows[peer.paper_name] = PeerStatus(False, None, peer.note)
            continue
        lib, model = _split(peer.source)
        known = model in (timm_names() if lib == "timm" else tv_names())
        if not known:
            rows[peer.paper_name] = PeerStatus(False, None, f"{lib} {_library_version(lib)} has no model {model!r}")
        elif peer.stand_in_for:
            rows[peer.paper_name] = PeerStatus(
                False, peer.source, f"{peer.note}; alias {peer.alias} builds {peer.source} as the nearest stand-in"
            )
        else:
            size = f"input {peer.input_hw}x{peer.input_hw}"
            rows[peer.paper_name] = PeerStatus(True, peer.source, f"alias {peer.alias}, {size}")
    return rows
