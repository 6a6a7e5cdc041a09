"""The report's figures (matplotlib, Agg backend): each function returns a Figure, or a reason.

Every figure has one panel per device × runtime × threads. Conventions shared by all: error bars
are 95 % CIs; a hollow marker or hatched bar is a measurement that did not settle (unstable);
axis labels carry units, and "FLOPs (MACs)" means multiply-adds as in the paper.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..reference import paper_table1  # noqa: E402
from ..verdicts import PAPER_KIND  # noqa: E402
from .tables import is_probe, panels  # noqa: E402

__all__ = ["FIGURES", "table1_figure", "latency_vs_macs_figure", "flops_vs_flops_figure", "roofline_figure",
           "pareto_front"]

OP_COLORS = {"conv": "#4c72b0", "gconv": "#dd8452", "dwconv": "#c44e52", "pconv": "#55a868"}
NET_COLOR = "#8172b3"
T0_COLOR = "#2ca02c"
UNSTABLE_NOTE = "hollow marker / hatched bar = unstable (CI did not settle)"


def _grid(n: int, w: float = 6.0, h: float = 4.2) -> tuple[Figure, list]:
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.6), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _footer(fig: Figure, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=7.5, color="#555", ha="left", va="bottom")


def _yerr(v, lo, hi) -> np.ndarray:
    v, lo, hi = (np.asarray(x, dtype=float) for x in (v, lo, hi))
    return np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


# -- Table 1 ---------------------------------------------------------------------------------------
def table1_figure(df: pd.DataFrame) -> Figure | str:
    """GMAC/s per operator per Table-1 map, one panel per device; the paper's value as a black diamond."""
    ok = df[~is_probe(df) & df.target_kind.eq("operator") & df.layers.eq(10) & df.options.eq("{}") & df.status.eq("ok")]
    ps = panels(ok)
    if not ps:
        return "no Table-1 operator measurements (10 layers, default options): run `fnbench run --suite table1`"
    t1 = paper_table1()
    maps = [f"{c}x{h}x{w}" for c, h, w in t1[["c", "h", "w"]].drop_duplicates().itertuples(index=False)]
    ops = [o for o in OP_COLORS if o in set(ok.target)] + sorted(set(ok.target) - set(OP_COLORS))
    fig, axes = _grid(len(ps))
    width = 0.8 / max(len(ops), 1)
    for ax, (title, g) in zip(axes, ps):
        kind = PAPER_KIND.get(g.device.iloc[0])
        for i, op in enumerate(ops):
            x, v, lo, hi, st, pv = [], [], [], [], [], []
            for j, m in enumerate(maps):
                r = g[(g.target == op) & (g["shape"] == m)]
                if r.empty:
                    continue
                r = r.sort_values("n").iloc[-1]
                x.append(j + (i - (len(ops) - 1) / 2) * width)
                v.append(r.gmacs_per_s)
                lo.append(r.gmacs_per_s_ci95_low)
                hi.append(r.gmacs_per_s_ci95_high)
                st.append(bool(r.stable))
                c, h, w = (int(s) for s in m.split("x"))
                p = t1[(t1.op == op) & (t1.c == c) & (t1.h == h) & (t1.w == w)]
                pv.append(float(p[f"{kind}_gmacs_per_s"].iloc[0]) if (kind and len(p)) else np.nan)
            if not x:
                continue
            color = OP_COLORS.get(op, "#777")
            bars = ax.bar(x, v, width=width * 0.95, color=color, label=op, yerr=_yerr(v, lo, hi),
                          error_kw=dict(ecolor="#222", capsize=2, lw=0.8))
            for b, s in zip(bars, st):
                if not s:
                    b.set_hatch("///")
                    b.set_edgecolor("#222")
                    b.set_facecolor(matplotlib.colors.to_rgba(color, 0.45))
            ax.scatter(x, pv, marker="D", s=22, color="black", zorder=5)
        handles = [Patch(facecolor=OP_COLORS.get(op, "#777"), label=op) for op in ops]
        handles.append(Patch(facecolor="white", edgecolor="#222", hatch="///", label="unstable"))
        if kind:
            handles.append(Line2D([], [], marker="D", ls="", color="black", label=f"paper ({kind.upper()})"))
        ax.set_xticks(range(len(maps)), maps)
        ax.set_yscale("log")
        lo_, hi_ = ax.get_ylim()
        ax.set_ylim(lo_, hi_ * 6)  # room for the legend above the bars
        ax.set_xlabel("feature map C×H×W (10 layers)")
        ax.set_ylabel("FLOPS, GMAC/s (log)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(handles=handles, fontsize=7.5, ncol=4, loc="upper center", framealpha=0.9)
    fig.suptitle("Table 1 analog: on-device FLOPS of single operators (error bars: 95% CI)", fontsize=11)
    _footer(fig, UNSTABLE_NOTE + "\n◆ = the paper's value for the same cell, on its device of the same kind")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


# -- networks --------------------------------------------------------------------------------------
def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both (lower x and lower y), sorted by x."""
    order = np.lexsort((y, x))
    front, best = [], np.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=int)


def _networks(df: pd.DataFrame) -> pd.DataFrame:
    n = df[~is_probe(df) & df.target_kind.eq("network") & df.status.eq("ok") & df.macs.notna()].copy()
    if n.empty:
        return n
    n["gmacs_per_sample"] = n.macs / n.batch / 1e9
    n["ms"] = n.median_s / n.batch * 1e3
    n["ms_lo"] = n.ci95_low_s / n.batch * 1e3
    n["ms_hi"] = n.ci95_high_s / n.batch * 1e3
    return n


def _scatter(ax, g: pd.DataFrame, ycol: str, lo: str, hi: str) -> None:
    for r in g.itertuples():
        color = T0_COLOR if str(r.target).startswith("fasternet") else NET_COLOR
        face = color if r.stable else "white"
        ax.errorbar(r.gmacs_per_sample, getattr(r, ycol), yerr=_yerr([getattr(r, ycol)], [getattr(r, lo)], [getattr(r, hi)]),
                    fmt="o", mfc=face, mec=color, ecolor=color, ms=6, capsize=2, lw=0.8)
        ax.annotate(r.target, (r.gmacs_per_sample, getattr(r, ycol)), textcoords="offset points", xytext=(5, 4),
                    fontsize=7.5)


def _network_grid(df: pd.DataFrame):
    """``(figure, [(axes, (title, rows))…])`` with one panel per device set-up, or why there is none."""
    n = _networks(df)
    ps = panels(n) if not n.empty else []
    if not ps:
        return "no network measurements: run e.g. `fnbench run --target fasternet_t0 --target mobilenetv2`"
    fig, axes = _grid(len(ps))
    return fig, list(zip(axes, ps))


def latency_vs_macs_figure(df: pd.DataFrame) -> Figure | str:
    """Paper Figure 1 style: per-sample latency vs FLOPs (MACs) of each network; Pareto front dashed."""
    grid = _network_grid(df)
    if isinstance(grid, str):
        return grid
    fig, cells = grid
    for ax, (title, g) in cells:
        _scatter(ax, g, "ms", "ms_lo", "ms_hi")
        if len(g) >= 2:
            f = pareto_front(g.gmacs_per_sample.to_numpy(), g.ms.to_numpy())
            ax.step(g.gmacs_per_sample.to_numpy()[f], g.ms.to_numpy()[f], where="post", ls="--", color="#444",
                    lw=1, label="Pareto front (fewer FLOPs and lower latency)")
            ax.legend(fontsize=7.5, loc="upper left")
        b = int(g.batch.iloc[0])
        ax.set_xlabel("FLOPs (MACs) per sample, G")
        ax.set_ylabel("latency per sample, ms" + (f" (batch {b})" if b != 1 else " (batch 1)"))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("Latency vs FLOPs (MACs) of networks (paper Fig. 1 style; error bars: 95% CI)", fontsize=11)
    _footer(fig, UNSTABLE_NOTE)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


def flops_vs_flops_figure(df: pd.DataFrame) -> Figure | str:
    """Paper Figure 2 style: achieved FLOPS (GMAC/s) vs FLOPs (MACs) of each network."""
    grid = _network_grid(df)
    if isinstance(grid, str):
        return grid
    fig, cells = grid
    for ax, (title, g) in cells:
        _scatter(ax, g, "gmacs_per_s", "gmacs_per_s_ci95_low", "gmacs_per_s_ci95_high")
        ax.set_xlabel("FLOPs (MACs) per sample, G")
        ax.set_ylabel("FLOPS, GMAC/s")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.suptitle("FLOPS vs FLOPs (MACs) of networks (paper Fig. 2 style; error bars: 95% CI)", fontsize=11)
    _footer(fig, UNSTABLE_NOTE)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


# -- roofline --------------------------------------------------------------------------------------
def roofline_figure(df: pd.DataFrame, ceil: pd.DataFrame) -> Figure | str:
    """Roofline per device: achieved GFLOP/s (2·MACs/latency) vs arithmetic intensity (FLOP/byte).

    Ceilings come from probe records (``ceil``, see :func:`fnbench.report.tables.ceilings`);
    without them only the points are drawn and the panel says so.
    """
    pts = df[~is_probe(df) & df.status.eq("ok") & df.intensity_flop_per_byte.notna() & df.gflops_per_s.notna()]
    ps = panels(pts) if not pts.empty else []
    if not ps:
        return "no measurement with counted memory bytes (mem_bytes_counted) to place on a roofline"
    fig, axes = _grid(len(ps), w=6.2, h=4.6)
    for ax, (title, g) in zip(axes, ps):
        key = g.device_key.iloc[0]
        c = ceil[ceil.device_key == key] if not ceil.empty else ceil
        for r in g.itertuples():
            if r.target_kind == "operator":
                color, marker = OP_COLORS.get(r.target, "#777"), "o"
            else:
                color, marker = (T0_COLOR if str(r.target).startswith("fasternet") else NET_COLOR), "^"
            ax.scatter(r.intensity_flop_per_byte, r.gflops_per_s, marker=marker, s=30, edgecolors=color,
                       facecolors=color if r.stable else "white", zorder=4)
            if r.target_kind != "operator":  # operators: colour says which; labels would pile up
                ax.annotate(r.target, (r.intensity_flop_per_byte, r.gflops_per_s), textcoords="offset points",
                            xytext=(4, 3), fontsize=6.5)
        xs = g.intensity_flop_per_byte.to_numpy(dtype=float)
        ys = g.gflops_per_s.to_numpy(dtype=float)
        xlo, xhi = 10 ** math.floor(math.log10(xs.min()) - 0.3), 10 ** math.ceil(math.log10(xs.max()) + 0.3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        bw = c.bandwidth_gb_per_s.dropna().max() if not c.empty else np.nan
        peaks = c.dropna(subset=["peak_gflop_per_s"]) if not c.empty else c
        xx = np.logspace(math.log10(xlo), math.log10(xhi), 200)
        if not peaks.empty or not np.isnan(bw):
            if not np.isnan(bw):
                ax.plot(xx, bw * xx, color="#999", ls=":", lw=1, label=f"bandwidth {bw:.1f} GB/s (probe:copy)")
            for p in peaks.itertuples():
                roof = np.minimum(p.peak_gflop_per_s, bw * xx) if not np.isnan(bw) else np.full_like(xx, p.peak_gflop_per_s)
                ax.plot(xx, roof, lw=1.4 if p.probe.endswith("float32") else 1.0,
                        ls="-" if p.probe.endswith("float32") else "--",
                        label=f"{p.probe.removeprefix('probe:')} {p.peak_gflop_per_s:.1f} GFLOP/s")
            ys = np.concatenate([ys, peaks.peak_gflop_per_s.to_numpy(dtype=float)]) if not peaks.empty else ys
        else:
            ax.text(0.02, 0.97, "no probe records: ceilings not measured\n(run `fnbench probe` on this device)",
                    transform=ax.transAxes, va="top", fontsize=8, color="#a33")
        kinds = [o for o in OP_COLORS if o in set(g.target)] + sorted(set(g[g.target_kind == "operator"].target) - set(OP_COLORS))
        handles = [Line2D([], [], marker="o", ls="", color=OP_COLORS.get(o, "#777"), label=o) for o in kinds]
        if (g.target_kind != "operator").any():
            handles.append(Line2D([], [], marker="^", ls="", color=NET_COLOR, label="network"))
        h0, _ = ax.get_legend_handles_labels()
        ax.legend(handles=h0 + handles, fontsize=7, loc="lower right", framealpha=0.9)
        ax.set_xlim(xlo, xhi)
        ax.set_ylim(10 ** math.floor(math.log10(np.nanmin(ys)) - 0.2), 10 ** math.ceil(math.log10(np.nanmax(ys)) + 0.2))
        ax.set_xlabel("arithmetic intensity, FLOP/byte (counted bytes)")
        ax.set_ylabel("achieved GFLOP/s (2 × MACs / latency)")
        ax.set_title(title, fontsize=10)
        ax.grid(which="both", alpha=0.25)
    fig.suptitle("Roofline: operators (●) and networks (▲) against measured ceilings", fontsize=11)
    _footer(fig, UNSTABLE_NOTE + "; 1 MAC = 2 FLOP")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


#: name → (title, function of (df, ceilings)); the order the report shows them in.
FIGURES = {
    "table1": ("Table 1 analog: GMAC/s per operator and map", lambda df, c: table1_figure(df)),
    "latency_vs_macs": ("Latency vs FLOPs (MACs), networks", lambda df, c: latency_vs_macs_figure(df)),
    "flops_vs_flops": ("FLOPS vs FLOPs (MACs), networks", lambda df, c: flops_vs_flops_figure(df)),
    "roofline": ("Roofline per device", roofline_figure),
}
