"""The paper's published figures, typed from its tables, as pandas DataFrames.

Units follow the column names. The paper's "FLOPs" are multiply-adds, so its FLOPs columns are
``macs`` here and its "GFLOPS" (FLOPs per second) are ``gmacs_per_s``.

``paper_table1()``
    Table 1, one row per operator × feature map: ``op, c, h, w, layers``,
    ``paper_mmacs_10_layers`` (the paper's FLOPs of the 10-layer stack, millions of MACs),
    ``gpu_fps_b32`` (RTX 2080Ti, batch 32), ``gpu_gmacs_per_s``, ``cpu_ms`` (i9-9900X, 1 thread,
    batch 1), ``cpu_gmacs_per_s``, ``arm_ms`` (Cortex-A72, 1 thread, batch 1), ``arm_gmacs_per_s``.
``paper_networks()``
    The main table: ``name`` (as printed), ``alias`` (the registered network name; empty where
    the model cannot be built here), ``params_m``, ``macs_g``, ``gpu_fps_b32``, ``cpu_ms``,
    ``arm_ms`` (empty where ``arm_oom``), ``arm_oom``, ``top1`` (FasterNet rows only), ``note``.
``paper_ratio()``
    The partial-ratio ablation on FasterNet-T0 (width adjusted by the authors).

And the paper's lists, each defined here only: :data:`TABLE1_SHAPES` and :data:`TABLE1_OPS` (Table 1's
feature maps and operators), :data:`HEADLINE_PEERS` (the networks its headline CPU claim compares
FasterNet-T0 with; :data:`HEADLINE_NETWORKS` is T0 and them), and :data:`PAPER_ARM_CORE` (the core
of its ARM column, :func:`is_paper_arm_core` to recognise it).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = [
    "paper_table1",
    "paper_networks",
    "paper_ratio",
    "paper_macs_for",
    "TABLE1_SHAPES",
    "TABLE1_OPS",
    "FASTERNET_T0",
    "HEADLINE_PEERS",
    "HEADLINE_NETWORKS",
    "PAPER_ARM_CORE",
    "is_paper_arm_core",
]

#: The paper's four Table-1 feature maps (C, H, W).
TABLE1_SHAPES: tuple[tuple[int, int, int], ...] = ((96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7))
#: The paper's four Table-1 operators.
TABLE1_OPS = ("conv", "gconv", "dwconv", "pconv")
FASTERNET_T0 = "fasternet_t0"
#: The networks the paper's headline CPU claim compares FasterNet-T0 with (its closest peers).
HEADLINE_PEERS = ("mobilevit_xxs", "mobilenetv2", "shufflenetv2_x1_5")
HEADLINE_NETWORKS = (FASTERNET_T0, *HEADLINE_PEERS)
#: The core of the paper's ARM column (Raspberry Pi 4B).
PAPER_ARM_CORE = "Cortex-A72"


def is_paper_arm_core(cpu_model: str | None) -> bool:
    """Whether a CPU name is (only) the paper's ARM core, Cortex-A72."""
    return bool(cpu_model) and PAPER_ARM_CORE in cpu_model and "+" not in cpu_model


_PARSED: dict[str, pd.DataFrame] = {}


def _read(name: str, **kwargs) -> pd.DataFrame:
    """The CSV ``name`` parsed once per process (a claim table asks for Table 1 dozens of times);
    each call gets its own copy, free to change."""
    key = f"{name} {sorted(kwargs.items())!r}"
    if key not in _PARSED:
        with resources.files(__name__).joinpath(name).open("r", encoding="utf-8") as f:
            _PARSED[key] = pd.read_csv(f, **kwargs)
    return _PARSED[key].copy()


def paper_table1() -> pd.DataFrame:
    """Table 1 (on-device FLOPS of single operators); a fresh DataFrame on every call."""
    return _read("paper_table1.csv")


def paper_networks() -> pd.DataFrame:
    """The paper's network table (FasterNet T0–L and its peers); a fresh DataFrame on every call."""
    df = _read("paper_networks.csv", dtype={"alias": "string", "note": "string"}, keep_default_na=True)
    df["arm_oom"] = df["arm_oom"].astype(bool)
    return df


def paper_ratio() -> pd.DataFrame:
    """The partial-ratio ablation (FasterNet-T0, r = 1/2, 1/4, 1/8)."""
    return _read("paper_ratio.csv")


def paper_macs_for(spec) -> float | None:
    """The paper's printed FLOPs (MACs) for exactly this target, or ``None`` where it gives none.

    Operators: Table 1's 10-layer figure, for the paper's settings only (default options, 10
    layers, batch 1, one of the four maps). Networks: the main table's figure, batch 1. The
    paper truncates (162.57 M is printed as 162 M); the value is returned as printed.
    """
    if spec.batch != 1 or spec.options:
        return None
    if spec.layers is not None:
        if spec.layers != 10 or spec.shape is None:
            return None
        t = paper_table1()
        c, h, w = spec.shape
        row = t[(t.op == spec.name) & (t.c == c) & (t.h == h) & (t.w == w)]
        return float(row.paper_mmacs_10_layers.iloc[0]) * 1e6 if len(row) else None
    n = paper_networks()
    row = n[n.alias == spec.name]
    return float(row.macs_g.iloc[0]) * 1e9 if len(row) else None
