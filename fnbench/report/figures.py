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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..reference import paper_networks, paper_table1  # noqa: E402
from ..verdicts import (  # noqa: E402
    NOT_MEASURED,
    PAPER_KIND,
    claim_seed,
    evaluate,
    flops_claim,
    paper_latency_ms,
    pretty,
)
from .tables import above_roof, is_probe, panels, theoretical_roofs  # noqa: E402

__all__ = [
    "VERDICT_COLORS",
    "forest_figure",
    "ratio_per_map_figure",
    "place_labels",
    "table1_figure",
    "latency_vs_macs_figure",
    "flops_vs_flops_figure",
    "roofline_figure",
    "pareto_front",
]

OP_COLORS = {"conv": "#4c72b0", "gconv": "#dd8452", "dwconv": "#c44e52", "pconv": "#55a868"}
NET_COLOR = "#8172b3"
T0_COLOR = "#2ca02c"
UNSTABLE_NOTE = "hollow marker / hatched bar = unstable (CI did not settle)"


#: Figure width in inches: at the report's 110 dpi this is the page's content width (~1400 px).
PAGE_W = 12.5


def _grid(n: int, h: float = 4.6) -> tuple[Figure, list]:
    """Panels filling the page width: one panel uses all of it, more go two to a row."""
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE_W, (h if cols == 2 else h * 1.15) * rows + 0.6), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _footer(fig: Figure, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=7.5, color="#555", ha="left", va="bottom")


_OFFSETS = [
    (5, 4),
    (5, -11),
    (-5, 4),
    (-5, -11),
    (9, 13),
    (9, -19),
    (-9, 13),
    (-9, -19),
    (0, 22),
    (0, -27),
    (16, 0),
    (-16, 0),
]


def place_labels(ax, points, texts, *, fontsize: float = 7.5) -> list:
    """Annotate each point with its text at the first nearby offset where it overlaps no label placed so far.

    Call after the axes' limits and layout are final (positions are in display space). Where every
    offset collides, the label goes to the last one with a thin leader line. Returns the annotations.
    """
    renderer = ax.figure.canvas.get_renderer()
    placed, out = [], []
    order = sorted(range(len(texts)), key=lambda i: (points[i][1], points[i][0]), reverse=True)
    for i in order:
        x, y = points[i]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        for k, (dx, dy) in enumerate(_OFFSETS):
            last = k == len(_OFFSETS) - 1
            a = ax.annotate(
                texts[i],
                (x, y),
                textcoords="offset points",
                xytext=(dx * (2.2 if last else 1), dy),
                fontsize=fontsize,
                ha="left" if dx >= 0 else "right",
                va="center",
                arrowprops=dict(arrowstyle="-", lw=0.4, color="#888") if last else None,
            )
            bb = a.get_window_extent(renderer).expanded(1.02, 1.1)
            if last or not any(bb.overlaps(o) for o in placed):
                placed.append(bb)
                out.append(a)
                break
            a.remove()
    return out


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
            bars = ax.bar(
                x,
                v,
                width=width * 0.95,
                color=color,
                label=op,
                yerr=_yerr(v, lo, hi),
                error_kw=dict(ecolor="#222", capsize=2, lw=0.8),
            )
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
        _, hi_ = ax.get_ylim()
        ax.set_ylim(0, hi_ * 1.25)  # linear from zero: bar length is the FLOPS; room for the legend
        ax.set_xlabel("feature map C×H×W (10 layers)")
        ax.set_ylabel("FLOPS, GMAC/s")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(handles=handles, fontsize=7.5, ncol=4, loc="upper center", framealpha=0.9)
    fig.suptitle("Table 1 analog: on-device FLOPS of single operators (error bars: 95% CI)", fontsize=11)
    _footer(fig, UNSTABLE_NOTE + "\n◆ = the paper's value for the same cell, on its device of the same kind")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


# -- per-map FLOPS ratios --------------------------------------------------------------------------
RATIO_PAIRS = (("dwconv", "#c44e52"), ("gconv", "#dd8452"))


def ratio_per_map_figure(df: pd.DataFrame) -> Figure | str:
    """PConv's FLOPS over DWConv's and GConv's per Table-1 map, with bootstrap 95 % CIs, against the paper's.

    Each map's ratio and interval come from the claim engine's FLOPS claim evaluated on that map's
    rows alone (:func:`fnbench.verdicts.flops_claim`), so they match the claims table's per-map column.
    """
    ok = df[~is_probe(df) & df.target_kind.eq("operator") & df.layers.eq(10) & df.options.eq("{}") & df.status.eq("ok")]
    ps = [(t, g) for t, g in panels(ok) if "pconv" in set(g.target) and set(g.target) & {"dwconv", "gconv"}]
    if not ps:
        return "needs pconv and dwconv or gconv at the Table-1 settings: run `fnbench run --suite table1`"
    t1 = paper_table1()
    maps = [f"{c}x{h}x{w}" for c, h, w in t1[["c", "h", "w"]].drop_duplicates().itertuples(index=False)]
    fig, axes = _grid(len(ps), h=4.2)
    for ax, (title, g) in zip(axes, ps):
        kind = PAPER_KIND.get(g.device.iloc[0])
        rows = g.to_dict("records")
        for i, (other, color) in enumerate(RATIO_PAIRS):
            claim = flops_claim("pconv", other)
            x, v, lo, hi, pv = [], [], [], [], []
            for j, m in enumerate(maps):
                sub = [r for r in rows if r["shape"] == m]
                res = evaluate(claim, sub, kind=kind, seed=claim_seed(f"{claim.id}@{m}", (title,)), n_boot=2000)
                if res["verdict"] == NOT_MEASURED:
                    continue
                x.append(j + (i - 0.5) * 0.22)
                v.append(res["ratio"])
                lo.append(res["ci95_low"])
                hi.append(res["ci95_high"])
                pv.append(res["paper_ratio"])
            if not x:
                continue
            ax.errorbar(
                x,
                v,
                yerr=_yerr(v, lo, hi),
                fmt="o",
                color=color,
                ms=7,
                capsize=3,
                lw=1.2,
                label=f"PConv / {pretty(other)}, measured (95% CI)",
                zorder=4,
            )
            if kind:
                ax.scatter(
                    np.asarray(x) + 0.07,
                    pv,
                    marker="D",
                    s=36,
                    facecolors="white",
                    edgecolors=color,
                    lw=1.3,
                    label=f"PConv / {pretty(other)}, paper ({kind.upper()})",
                    zorder=3,
                )
        ax.axhline(1.0, color="#444", lw=0.8, ls="--")
        ax.text(len(maps) - 0.55, 1.0, "parity", va="bottom", ha="right", fontsize=7.5, color="#444")
        ax.set_xticks(range(len(maps)), maps)
        ax.set_xlim(-0.6, len(maps) - 0.4)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("feature map C×H×W (10 layers)")
        ax.set_ylabel("FLOPS ratio (GMAC/s of PConv / other)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9)
    fig.suptitle("PConv's FLOPS over DWConv's and GConv's, per map: measured vs the paper", fontsize=11)
    _footer(
        fig,
        "ratio > 1: PConv reaches higher FLOPS; ◇ = the paper's ratio for the same map on its device of the same kind",
    )
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


def _scatter(ax, g: pd.DataFrame, ycol: str, lo: str, hi: str) -> list[tuple[tuple[float, float], str]]:
    """Measured points with CIs; returns the labels to place once the layout is final."""
    labels = []
    for r in g.itertuples():
        color = T0_COLOR if str(r.target).startswith("fasternet") else NET_COLOR
        face = color if r.stable else "white"
        ax.errorbar(
            r.gmacs_per_sample,
            getattr(r, ycol),
            yerr=_yerr([getattr(r, ycol)], [getattr(r, lo)], [getattr(r, hi)]),
            fmt="o",
            mfc=face,
            mec=color,
            ecolor=color,
            ms=6,
            capsize=2,
            lw=0.8,
            zorder=4,
        )
        labels.append(((r.gmacs_per_sample, getattr(r, ycol)), r.target))
    return labels


def _paper_points(ax, g: pd.DataFrame, flops: bool) -> bool:
    """The paper's value for each measured network (its device of the same kind), grey diamonds joined to ours."""
    kind = PAPER_KIND.get(g.device.iloc[0])
    if kind is None:
        return False
    nets = paper_networks()
    drawn = False
    for r in g.itertuples():
        row = nets[nets.alias == r.target]
        if not len(row):
            continue
        macs = float(row.macs_g.iloc[0])
        ms = paper_latency_ms(r.target, kind)
        if not np.isfinite(ms):
            continue
        y = macs / (ms / 1e3) if flops else ms
        ax.scatter([macs], [y], marker="D", s=24, color="#777", zorder=3)
        ax.plot([r.gmacs_per_sample, macs], [r.gmacs_per_s if flops else r.ms, y], color="#bbb", lw=0.6, zorder=2)
        drawn = True
    return drawn


def _network_grid(df: pd.DataFrame):
    """``(figure, [(axes, (title, rows))…])`` with one panel per device set-up, or why there is none."""
    n = _networks(df)
    ps = panels(n) if not n.empty else []
    if not ps:
        return "no network measurements: run e.g. `fnbench run --target fasternet_t0 --target mobilenetv2`"
    fig, axes = _grid(len(ps))
    return fig, list(zip(axes, ps))


def _network_figure(df: pd.DataFrame, *, flops: bool) -> Figure | str:
    grid = _network_grid(df)
    if isinstance(grid, str):
        return grid
    fig, cells = grid
    jobs = []
    for ax, (title, g) in cells:
        if flops:
            labels = _scatter(ax, g, "gmacs_per_s", "gmacs_per_s_ci95_low", "gmacs_per_s_ci95_high")
        else:
            labels = _scatter(ax, g, "ms", "ms_lo", "ms_hi")
        paper = _paper_points(ax, g, flops)
        handles = [Line2D([], [], marker="o", ls="", color=NET_COLOR, label="measured (95% CI)")]
        if paper:
            kind = PAPER_KIND.get(g.device.iloc[0])
            handles.append(
                Line2D([], [], marker="D", ls="", color="#777", label=f"paper ({kind.upper()}), joined to ours")
            )
        if not flops and len(g) >= 2:
            f = pareto_front(g.gmacs_per_sample.to_numpy(), g.ms.to_numpy())
            ax.step(g.gmacs_per_sample.to_numpy()[f], g.ms.to_numpy()[f], where="post", ls="--", color="#444", lw=1)
            handles.append(Line2D([], [], ls="--", color="#444", label="Pareto front (fewer FLOPs and lower latency)"))
        ax.legend(handles=handles, fontsize=7.5, loc="upper left" if not flops else "lower right")
        b = int(g.batch.iloc[0])
        ax.set_xlabel("FLOPs (MACs) per sample, G")
        ax.set_ylabel(
            "FLOPS, GMAC/s" if flops else "latency per sample, ms" + (f" (batch {b})" if b != 1 else " (batch 1)")
        )
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)  # from zero: differences are not exaggerated
        jobs.append((ax, labels))
    what = (
        "FLOPS vs FLOPs (MACs) of networks (paper Fig. 2 style"
        if flops
        else "Latency vs FLOPs (MACs) of networks (paper Fig. 1 style"
    )
    fig.suptitle(what + "; error bars: 95% CI)", fontsize=11)
    _footer(fig, UNSTABLE_NOTE)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    for ax, labels in jobs:
        place_labels(ax, [p for p, _ in labels], [t for _, t in labels])
    return fig


def latency_vs_macs_figure(df: pd.DataFrame) -> Figure | str:
    """Paper Figure 1 style: per-sample latency vs FLOPs (MACs) of each network; Pareto front dashed."""
    return _network_figure(df, flops=False)


def flops_vs_flops_figure(df: pd.DataFrame) -> Figure | str:
    """Paper Figure 2 style: achieved FLOPS (GMAC/s) vs FLOPs (MACs) of each network."""
    return _network_figure(df, flops=True)


# -- roofline --------------------------------------------------------------------------------------
def _theoretical_roof(ax, theo: pd.DataFrame, key, ys: np.ndarray) -> np.ndarray:
    """The device's theoretical FP32 peak as a dash-dot line, only where it is not below the measured roof."""
    t = theo[theo.device_key == key]
    if t.empty:
        return ys
    r = t.iloc[-1]
    if r.shown:
        ax.axhline(
            r.theoretical_peak_gflop_per_s,
            color="#555",
            ls="-.",
            lw=1,
            label=f"theoretical FP32 {r.theoretical_peak_gflop_per_s:.1f} GFLOP/s ({r.clock} clock)",
        )
        return np.append(ys, r.theoretical_peak_gflop_per_s)
    ax.text(0.02, 0.97, r.note, transform=ax.transAxes, va="top", fontsize=8, color="#a33")
    return ys


def _roofline_points(ax, g: pd.DataFrame, above: pd.DataFrame) -> list[tuple[tuple[float, float], str]]:
    """One panel's points (● operator, ▲ network; hollow: unstable), a red ring on each of ``above``;
    returns the labels to place once the layout is final."""
    labels = []
    for r in g.itertuples():
        if r.target_kind == "operator":
            color, marker = OP_COLORS.get(r.target, "#777"), "o"
        else:
            color, marker = (T0_COLOR if str(r.target).startswith("fasternet") else NET_COLOR), "^"
        ax.scatter(
            r.intensity_flop_per_byte,
            r.gflops_per_s,
            marker=marker,
            s=30,
            edgecolors=color,
            facecolors=color if r.stable else "white",
            zorder=4,
        )
        if ((above.target == r.target) & (above["shape"] == r.shape) & (above.runtime == r.runtime)).any():
            ax.scatter(
                r.intensity_flop_per_byte,
                r.gflops_per_s,
                marker="o",
                s=140,
                facecolors="none",
                edgecolors="#d62728",
                lw=1.4,
                zorder=5,
            )
        name = (
            r.target
            if r.target_kind != "operator"
            else f"{r.target} {r.shape}" + ("" if r.layers == 10 else f" ×{int(r.layers)}")
        )
        labels.append(((r.intensity_flop_per_byte, r.gflops_per_s), name))
    return labels


def roofline_figure(df: pd.DataFrame, ceil: pd.DataFrame) -> Figure | str:
    """Roofline per device: achieved GFLOP/s (2·MACs/latency) vs arithmetic intensity (FLOP/byte).

    Ceilings come from probe records (``ceil``, see :func:`fnbench.report.tables.ceilings`);
    without them only the points are drawn and the panel says so.
    """
    pts = df[~is_probe(df) & df.status.eq("ok") & df.intensity_flop_per_byte.notna() & df.gflops_per_s.notna()]
    ps = panels(pts) if not pts.empty else []
    if not ps:
        return "no measurement with counted memory bytes (mem_bytes_counted) to place on a roofline"
    fig, axes = _grid(len(ps), h=5.2)
    over = above_roof(df, ceil)
    jobs = []
    for ax, (title, g) in zip(axes, ps):
        key = g.device_key.iloc[0]
        c = ceil[ceil.device_key == key] if not ceil.empty else ceil
        mine = over[(over.device_key == key)]
        jobs.append((ax, _roofline_points(ax, g, mine)))
        if len(mine):
            ax.text(
                0.02,
                0.03,
                f"{len(mine)} point(s) above a measured roof (red ring): the probe fell short",
                transform=ax.transAxes,
                fontsize=8,
                color="#d62728",
            )
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
                roof = (
                    np.minimum(p.peak_gflop_per_s, bw * xx)
                    if not np.isnan(bw)
                    else np.full_like(xx, p.peak_gflop_per_s)
                )
                ax.plot(
                    xx,
                    roof,
                    lw=1.4 if p.probe.endswith("float32") else 1.0,
                    ls="-" if p.probe.endswith("float32") else "--",
                    label=f"{p.probe.removeprefix('probe:')} {p.peak_gflop_per_s:.1f} GFLOP/s",
                )
            ys = np.concatenate([ys, peaks.peak_gflop_per_s.to_numpy(dtype=float)]) if not peaks.empty else ys
            ys = _theoretical_roof(ax, theoretical_roofs(df, ceil), key, ys)
        else:
            ax.text(
                0.02,
                0.97,
                "no probe records: ceilings not measured\n(run `fnbench probe` on this device)",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
                color="#a33",
            )
        kinds = [o for o in OP_COLORS if o in set(g.target)] + sorted(
            set(g[g.target_kind == "operator"].target) - set(OP_COLORS)
        )
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
    fig.suptitle(
        "Roofline: operators (●, labelled with their map) and networks (▲) against measured ceilings", fontsize=11
    )
    _footer(fig, UNSTABLE_NOTE + "; 1 MAC = 2 FLOP")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    for ax, labels in jobs:
        place_labels(ax, [p for p, _ in labels], [t for _, t in labels], fontsize=6.5)
    return fig


# -- the claims at a glance ---------------------------------------------------------------------------
#: Colour of a line in the forest plot: its direction verdict (an observation has none).
VERDICT_COLORS = {
    "supported": "#2e7d32",
    "contradicted": "#c62828",
    "inconclusive": "#8a8a8a",
    "not claimed": "#1f5fa8",
}
_VERDICT_LABELS = {
    "supported": "supported",
    "contradicted": "contradicted",
    "inconclusive": "inconclusive",
    "not claimed": "observation (no claim)",
}


def _superscript(n: int) -> str:
    return str(int(n)).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def forest_figure(compact: pd.DataFrame) -> Figure | str:
    """Every measured claim on one log axis: ratio and 95 % CI, the paper's value, the threshold.

    One line per claim × device × set-up (``compact``: :func:`fnbench.report.tables.compact_claims`,
    in its order, so the table under the figure reads line by line with it),
    coloured by the direction verdict; an open diamond is the paper's value of the same statistic on
    its device of the same class, a short orange bar the claim's threshold (none for an observation).
    The right margin gives the reproduction verdict and measured / paper.
    """
    c = compact[np.isfinite(compact.ratio.astype(float))] if not compact.empty else compact
    if c.empty:
        return "no claim measured"
    several = c.setup.nunique() > 1
    n = len(c)
    fig, ax = plt.subplots(figsize=(PAGE_W, 0.27 * n + 1.05))
    ys = np.arange(n)[::-1]
    labels = []
    for y, r in zip(ys, c.itertuples()):
        color = VERDICT_COLORS.get(r.direction, "#555")
        lo, hi = float(r.ci95_low), float(r.ci95_high)
        if np.isfinite(lo) and np.isfinite(hi):  # the 95% CI as whiskers
            err = [[max(r.ratio - lo, 0.0)], [max(hi - r.ratio, 0.0)]]
            ax.errorbar([r.ratio], [y], xerr=err, fmt="none", ecolor=color, elinewidth=1.8, capsize=3, zorder=3)
        ax.scatter([r.ratio], [y], color=color, s=28, zorder=4, edgecolors="white", linewidths=0.5)
        if np.isfinite(float(r.paper_ratio)):
            ax.scatter([r.paper_ratio], [y], marker="D", s=30, facecolors="none", edgecolors="black", lw=1.1, zorder=5)
        if np.isfinite(float(r.threshold)):
            ax.plot([r.threshold] * 2, [y - 0.38, y + 0.38], color="#e07b00", lw=1.6, zorder=2)
        dev = r.device.split(": ", 1)[-1]
        labels.append(
            f"{r.claim} · {dev}"
            + (f" ({r.setup})" if several else "")
            + (f"  {_superscript(r.footnote)}" if r.footnote else "")
        )
        mop = "" if not np.isfinite(float(r.measured_over_paper)) else f" {r.measured_over_paper:.2f}× paper"
        ax.annotate(
            f"{r.reproduction}{mop}",
            xy=(1.005, y),
            xycoords=("axes fraction", "data"),
            fontsize=7.5,
            va="center",
            color="#333",
        )
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    vals = np.concatenate(
        [c[k].astype(float).to_numpy() for k in ("ratio", "ci95_low", "ci95_high", "paper_ratio", "threshold")]
    )
    vals = vals[np.isfinite(vals) & (vals > 0)]
    ax.set_xlim(vals.min() / 1.5, vals.max() * 1.5)
    ax.set_ylim(-0.7, n - 0.3)
    ax.axvline(1.0, color="#bbb", lw=0.8, zorder=1)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_xlabel("measured ratio (log scale): the claim's statistic, 95% CI", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=8)
    handles = [
        Line2D([], [], color=VERDICT_COLORS[v], lw=2.2, marker="o", ms=4, label=_VERDICT_LABELS[v])
        for v in VERDICT_COLORS
        if v in set(c.direction)
    ]
    handles += [
        Line2D([], [], marker="D", ls="", mfc="none", mec="black", label="paper (same statistic, device class)"),
        Line2D([], [], color="#e07b00", lw=1.6, label="claim's threshold"),
    ]
    # across the whole figure, above the axes: anchored to the axes it ran past the figure's right edge
    fig.legend(handles=handles, fontsize=7.5, ncol=len(handles), loc="upper center", frameon=False)
    fig.tight_layout(rect=(0, 0, 0.9, 1.0 - 0.32 / fig.get_figheight()))  # 0.32 in: the legend's row
    return fig
