"""Per-layer breakdowns in the report: time and MACs by operator kind, and what the operators predict.

Reads ``record: "breakdown"`` lines (:mod:`fnbench.layers`) and the ``fnbench probe`` records of the
same device. Three predictors of a network's latency, each from the network's layers:

- **FLOPs-only**: 2 × MACs / peak GEMM FLOP/s (``probe:gemm_float32``) — FLOPs as the only cost;
- **roofline**: Σ over layers of max(2 × MACs / peak GEMM FLOP/s, counted bytes / copy bandwidth)
  (``probe:copy``), the best a layer could do on this device;
- **per-layer sum**: Σ of the layers' standalone medians.

Each is compared with the network's end-to-end median from the same run: relative error
(predicted / measured − 1), and over the networks of one device the Spearman rank correlation of
predicted with measured latency and the median absolute relative error. Without probe records on
the device the first two are not computed and the report says so.
"""

from __future__ import annotations

import base64
import html
import math
import re
from typing import Any

import pandas as pd

from ..opkinds import KINDS
from ..reference import HEADLINE_NETWORKS
from ..units import fmt_ms as _ms
from ..units import fmt_pct as _pct
from ..units import gmacs_per_s
from .sections import Draw, Part, Plot

__all__ = [
    "kind_table",
    "layer_table",
    "predictions",
    "predictor_summary",
    "roofline_misses",
    "device_ceilings",
    "kinds_figure",
    "section",
]

PREDICTORS = ("flops_only", "roofline", "layer_sum")
PREDICTOR_LABELS = {"flops_only": "FLOPs-only", "roofline": "roofline", "layer_sum": "per-layer sum"}
#: Networks drawn first, in this order, in the by-kind figure (the paper's headline comparison).
FIGURE_ORDER = HEADLINE_NETWORKS

_KIND_COLORS = {
    "conv": "#1f77b4",
    "pconv": "#17becf",
    "pwconv": "#aec7e8",
    "dwconv": "#d62728",
    "gconv": "#ff9896",
    "linear": "#9467bd",
    "attention": "#c5b0d5",
    "norm": "#8c564b",
    "act": "#2ca02c",
    "pool": "#98df8a",
    "elementwise": "#ff7f0e",
    "data": "#7f7f7f",
    "other": "#c7c7c7",
}


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status", "ok") == "ok" and r.get("layers")]


def label(rec: dict[str, Any]) -> str:
    """``fasternet_t0 cpu b1 t1`` — what distinguishes one breakdown from another in a table."""
    t = rec.get("target") or {}
    thr = rec.get("threads")
    return f"{t.get('name')} {(rec.get('device') or {}).get('kind')} b{rec.get('batch')}" + (f" t{thr}" if thr else "")


def layer_table(rec: dict[str, Any]) -> pd.DataFrame:
    """One row per layer of one breakdown record (raw samples left out)."""
    cols = [
        "name",
        "kind",
        "module_type",
        "op",
        "input_shape",
        "params",
        "macs",
        "bytes",
        "intensity_flop_per_byte",
        "median_s",
        "ci95_low_s",
        "ci95_high_s",
        "n",
        "rounds",
        "stable",
        "gmacs_per_s",
        "share_time",
        "minor_faults_per_iter",
    ]
    rows = []
    for ly in rec["layers"]:
        row = {c: ly.get(c) for c in cols}
        row["input_shape"] = "x".join(map(str, row["input_shape"])) if row["input_shape"] else None
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def kind_table(rec: dict[str, Any]) -> pd.DataFrame:
    """MACs, bytes and time per operator kind of one network, with their shares (of the per-layer totals)."""
    lt = layer_table(rec)
    g = lt.groupby("kind", sort=False).agg(
        layers=("name", "size"), macs=("macs", "sum"), bytes=("bytes", "sum"), time_s=("median_s", "sum")
    )
    g = g.reindex([k for k in KINDS if k in g.index] + [k for k in g.index if k not in KINDS])
    tm, tt = g.macs.sum(), g.time_s.sum()
    g["share_macs"] = g.macs / tm if tm else float("nan")
    g["share_time"] = g.time_s / tt if tt else float("nan")
    g["gmacs_per_s"] = [gmacs_per_s(m, t) if t > 0 else float("nan") for m, t in zip(g.macs, g.time_s)]
    return g.reset_index()


def device_ceilings(probe_records: list[dict[str, Any]], device_key: str | None) -> dict[str, float]:
    """Peak GEMM FLOP/s and copy bandwidth from the probe records of one device (best measured)."""
    from ..results import ceilings

    return ceilings([r for r in probe_records if (r.get("device") or {}).get("key") == device_key])


def _roofline_s(layer: dict[str, Any], peak: float, bw: float) -> float:
    return max(2 * (layer.get("macs") or 0) / peak, (layer.get("bytes") or 0) / bw)


def predictions(rec: dict[str, Any], ceil: dict[str, float]) -> dict[str, Any]:
    """Measured end-to-end latency of one network and the three predictions with their errors."""
    measured = rec["end_to_end"]["stats"]["median_s"]
    peak, bw = ceil.get("gemm_float32_flop_per_s"), ceil.get("copy_bytes_per_s")
    pred = {"layer_sum": rec["sum_s"], "flops_only": None, "roofline": None}
    if peak:
        pred["flops_only"] = rec["cost"]["flops"] / peak
    if peak and bw:
        pred["roofline"] = math.fsum(_roofline_s(ly, peak, bw) for ly in rec["layers"])
    row: dict[str, Any] = {
        "network": label(rec),
        "target": rec["target"]["name"],
        "device_key": rec["device"].get("key"),
        "macs": rec["cost"]["macs"],
        "measured_s": measured,
        "measured_ci95_low_s": rec["end_to_end"]["stats"].get("ci95_low_s"),
        "measured_ci95_high_s": rec["end_to_end"]["stats"].get("ci95_high_s"),
    }
    for k in PREDICTORS:
        row[f"{k}_s"] = pred[k]
        row[f"{k}_error"] = pred[k] / measured - 1 if pred[k] is not None else None
    return row


def roofline_misses(rec: dict[str, Any], ceil: dict[str, float], top: int = 5) -> pd.DataFrame:
    """The layers whose roofline time is furthest (in seconds) from their measured time."""
    peak, bw = ceil.get("gemm_float32_flop_per_s"), ceil.get("copy_bytes_per_s")
    if not (peak and bw):
        return pd.DataFrame(columns=["name", "kind", "measured_s", "roofline_s", "ratio"])
    rows = [
        {"name": ly["name"], "kind": ly["kind"], "measured_s": ly["median_s"], "roofline_s": _roofline_s(ly, peak, bw)}
        for ly in rec["layers"]
    ]
    df = pd.DataFrame(rows)
    df["ratio"] = df.measured_s / df.roofline_s.where(df.roofline_s > 0)
    df["miss_s"] = (df.measured_s - df.roofline_s).abs()
    return df.sort_values("miss_s", ascending=False).head(top).drop(columns="miss_s").reset_index(drop=True)


def _spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = pd.Series(a).rank(), pd.Series(b).rank()
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(ra.corr(rb))


def predictor_summary(pred: pd.DataFrame) -> pd.DataFrame:
    """Per device and predictor: networks, Spearman rank correlation with measured, median |error|."""
    rows = []
    for key, g in pred.groupby("device_key", sort=True):
        for k in PREDICTORS:
            ok = g[g[f"{k}_s"].notna()]
            rows.append(
                {
                    "device_key": key,
                    "predictor": PREDICTOR_LABELS[k],
                    "networks": len(ok),
                    "spearman": _spearman(list(ok[f"{k}_s"]), list(ok.measured_s)),
                    "median_abs_error": float(ok[f"{k}_error"].abs().median()) if len(ok) else None,
                    "median_error": float(ok[f"{k}_error"].median()) if len(ok) else None,
                }
            )
    return pd.DataFrame(
        rows, columns=["device_key", "predictor", "networks", "spearman", "median_abs_error", "median_error"]
    )


def _figure_order(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(r):
        name = r["target"]["name"]
        return (FIGURE_ORDER.index(name) if name in FIGURE_ORDER else len(FIGURE_ORDER), name)

    return sorted(recs, key=key)


#: Networks per row of the by-kind figure: a whole suite wraps onto several rows instead of one
#: unreadably wide one.
FIGURE_PER_ROW = 8


def kinds_figure(recs: list[dict[str, Any]]):
    """Stacked bars, two per network (share of MACs, share of time), coloured by operator kind.

    The paper's four headline networks come first; more than :data:`FIGURE_PER_ROW` networks wrap
    onto further rows with a shared legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = _figure_order(recs)
    per_row = min(len(recs), FIGURE_PER_ROW) or 1
    rows = -(-len(recs) // per_row)
    fig, axes = plt.subplots(rows, 1, figsize=(max(5.0, 1.5 * per_row + 2.5), 4.0 * rows), squeeze=False)
    seen: dict[str, Any] = {}
    for r, ax in enumerate(axes[:, 0]):
        chunk = recs[r * per_row : (r + 1) * per_row]
        ticks, names = [], []
        for i, rec in enumerate(chunk):
            kt = kind_table(rec).set_index("kind")
            for j, col in enumerate(("share_macs", "share_time")):
                x = 3 * i + j
                bottom = 0.0
                for kind in kt.index:
                    v = float(kt.loc[kind, col]) if kt.loc[kind, col] == kt.loc[kind, col] else 0.0
                    bars = ax.bar(
                        x,
                        v,
                        bottom=bottom,
                        color=_KIND_COLORS.get(kind, "#000000"),
                        width=0.9,
                        edgecolor="white",
                        linewidth=0.4,
                    )
                    seen.setdefault(kind, bars)
                    bottom += v
                ticks.append(x)
                names.append("MACs" if j == 0 else "time")
            ax.text(3 * i + 0.5, 1.03, rec["target"]["name"], ha="center", fontsize=8)
        ax.set_xticks(ticks, names, fontsize=8)
        ax.set_xlim(-1, 3 * per_row - 1)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("share of the network")
    kinds = sorted(seen, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS))
    axes[0, 0].legend(
        [seen[k] for k in kinds], kinds, fontsize=7, ncol=1, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False
    )
    axes[0, 0].set_title("Share of MACs vs share of time per operator kind", fontsize=10)
    fig.tight_layout()
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _fmt(v, sig: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{sig}g}"
    return html.escape(str(v))


def _html_table(df: pd.DataFrame, fmt: dict[str, Any] | None = None) -> str:
    fmt = fmt or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{fmt.get(c, _fmt)(v)}</td>" for c, v in row.items()) + "</tr>"
        for row in df.to_dict("records")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_INTRO = (
    '<p class="note">Each layer (a leaf module, or an op a block runs itself: split, cat, residual add) is '
    "timed standalone on its recorded input with the same engine, threads and allocator as the whole "
    "network, which is measured in the same run before and after the layers. Shares are of the per-layer "
    "totals. Predictions: FLOPs-only = 2·MACs / peak GEMM FLOP/s; roofline = Σ per layer max(2·MACs / "
    "peak GEMM FLOP/s, counted bytes / copy bandwidth), ceilings from <code>fnbench probe</code>; per-layer "
    "sum = Σ standalone medians.</p>"
)
_CAPTION = "Per network: left bar share of MACs, right bar share of time, by operator kind."


def section(paths, draw: Draw) -> Part:
    """The breakdowns in ``paths``: per-network and prediction tables (CSV), a figure per device, the HTML.

    Each device's figure is handed to ``draw`` (:class:`fnbench.report.sections.Plot`).
    """
    from ..results import iter_result_files, read_breakdowns, read_records

    recs = _ok(read_breakdowns(paths))
    if not recs:
        return Part(
            '<p class="note">No per-layer breakdowns in these results; '
            "<code>fnbench breakdown TARGET</code> measures one.</p>"
        )
    probes = [
        r for f in iter_result_files(paths) for r in read_records(f) if (r.get("target") or {}).get("kind") == "probe"
    ]
    latest: dict[tuple, dict[str, Any]] = {}
    for r in sorted(recs, key=lambda r: r.get("created") or ""):
        latest[(r["device"].get("key"), label(r))] = r  # a later breakdown of the same network replaces it
    recs = list(latest.values())
    parts, csv, pred_rows = [_INTRO], {}, []
    for key in sorted({r["device"].get("key") for r in recs}):
        dev_recs = [r for r in recs if r["device"].get("key") == key]
        ceil = device_ceilings(probes, key)
        parts.append(_device_figure(key, dev_recs, draw))
        if not ceil.get("gemm_float32_flop_per_s") or not ceil.get("copy_bytes_per_s"):
            parts.append(
                '<p class="note">No <code>fnbench probe</code> records for this device: the FLOPs-only and '
                "roofline predictions are not computed (run <code>fnbench probe</code>).</p>"
            )
        for rec in _figure_order(dev_recs):
            name = f"breakdown_{_slug(label(rec))}_{_slug(key)}"
            csv[name] = layer_table(rec)
            pred_rows.append(predictions(rec, ceil))
            parts.append(_network_html(rec, name, len(csv[name]), ceil))
    pred = pd.DataFrame(pred_rows)
    summ = predictor_summary(pred)
    csv.update(breakdown_predictions=pred, breakdown_predictors=summ)
    err = {f"{k}_error": _pct for k in PREDICTORS}
    ms = {c: _ms for c in pred.columns if c.endswith("_s")}
    parts.append(
        "<h3>Predicted vs measured latency (ms)</h3>"
        + _html_table(pred.drop(columns=["device_key", "target"]), {**err, **ms})
        + "<h3>One number per predictor</h3>"
        + _html_table(summ, {"median_abs_error": _pct, "median_error": _pct})
    )
    return Part("".join(parts), csv)


def _device_figure(key: str, recs: list[dict[str, Any]], draw: Draw) -> str:
    """The by-kind figure of one device's networks, drawn through ``draw``, as HTML."""
    name = f"breakdown_kinds_{_slug(key)}"
    png = draw(Plot(name, key, _CAPTION, lambda: kinds_figure(recs)))
    if isinstance(png, str):
        return f'<h3>{html.escape(key)}</h3><p class="muted">Not drawn: {html.escape(png)}</p>'
    b64 = base64.b64encode(png).decode("ascii")
    return (
        f'<h3>{html.escape(key)}</h3><figure><img src="data:image/png;base64,{b64}" alt="share of MACs vs time per '
        f'operator kind"><figcaption>{_CAPTION} Files: <code>{name}.png</code>, <code>{name}.svg</code>.'
        "</figcaption></figure>"
    )


def _network_html(rec: dict[str, Any], name: str, n_layers: int, ceil: dict[str, float]) -> str:
    """One network's line (sum of layers vs end to end), its by-kind table and the layers the roofline misjudges."""
    kt = kind_table(rec)
    e2e = rec["end_to_end"]["stats"]
    out = (
        f"<h4>{html.escape(label(rec))}</h4><p>{n_layers} layers; sum of per-layer medians "
        f"{_ms(rec['sum_s'])} ms vs end-to-end {_ms(e2e['median_s'])} ms (95% CI {_ms(e2e.get('ci95_low_s'))}–"
        f"{_ms(e2e.get('ci95_high_s'))}), gap {_pct(rec['gap'])}"
        + (
            f"; means: {_ms(rec['sum_mean_s'])} vs {_ms(rec['end_to_end'].get('mean_s'))} ms, gap "
            f"{_pct(rec['gap_mean'])}; minima: {_ms(rec.get('sum_min_s'))} vs "
            f"{_ms(rec['end_to_end'].get('min_s'))} ms, gap {_pct(rec.get('gap_min'))}"
            if rec.get("gap_mean") is not None
            else ""
        )
        + "; "
        f'<a href="{name}.csv">all layers (CSV)</a></p>'
        + _html_table(
            kt[["kind", "layers", "macs", "share_macs", "time_s", "share_time", "gmacs_per_s"]],
            {"share_macs": _pct, "share_time": _pct, "time_s": _ms},
        )
    )
    misses = roofline_misses(rec, ceil)
    if len(misses):
        out += "<p>Layers the roofline misjudges most (measured − roofline, seconds):</p>" + _html_table(
            misses, {"measured_s": _ms, "roofline_s": _ms}
        )
    return out
