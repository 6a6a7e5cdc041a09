"""The deployment question: do Table 1's claims hold under the runtimes models ship with?

The paper timed PyTorch eager only, and answered a user who found PConv no faster than DWConv
under ONNX on a CPU that it compares FLOPS in PyTorch, not deployed latency. This section puts the
three Table-1 claims — PConv's FLOPS over DWConv's and over GConv's (the paper's mean-GMAC/s
ratio) and PConv's latency against Conv's (how much of the 16× FLOP cut becomes speed) — side by
side under every runtime measured on a device: the claim engine's ratio, its bootstrap 95 % CI,
the verdict, and the paper's value for the same statistic. One table and one figure per device.
"""

from __future__ import annotations

import base64

import pandas as pd

from .html import _e, _table, fmt
from .sections import Draw, Part, Plot

__all__ = ["RUNTIME_CLAIMS", "TITLE", "runtime_claims", "why_not_drawn", "figure", "section"]

#: The Table-1 claims compared across runtimes, in the order shown.
RUNTIME_CLAIMS = ("pconv_vs_dwconv_flops", "pconv_vs_gconv_flops", "pconv_latency_vs_flops")
COLUMNS = [
    "device",
    "runtime",
    "claim_id",
    "claim",
    "ratio",
    "ci95_low",
    "ci95_high",
    "threshold",
    "verdict",
    "paper_ratio",
    "unit",
]


def runtime_claims(claims: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``claims`` (:func:`fnbench.verdicts.claim_table`) for :data:`RUNTIME_CLAIMS`, one per device × runtime × claim."""
    if claims is None or claims.empty or "claim_id" not in claims:
        return pd.DataFrame(columns=COLUMNS)
    c = claims[claims.claim_id.isin(RUNTIME_CLAIMS)].copy()
    if c.empty:
        return pd.DataFrame(columns=COLUMNS)
    c["_order"] = c.claim_id.map({k: i for i, k in enumerate(RUNTIME_CLAIMS)})
    c = c.sort_values(["device", "_order", "runtime"], kind="stable")
    return c[[k for k in COLUMNS if k in c.columns]].reset_index(drop=True)


def why_not_drawn(table: pd.DataFrame) -> str | None:
    """Why :func:`figure` has nothing to draw for ``table``, or ``None`` when it has."""
    if table.empty:
        return "no Table-1 claim was evaluated (measure pconv, dwconv, gconv and conv on the Table-1 maps)"
    if table.runtime.nunique() < 2:
        return (
            "one runtime measured; run `fnbench run --suite runtimes --runtime eager --runtime onnxruntime "
            "--runtime openvino` to compare runtimes"
        )
    return None


def figure(table: pd.DataFrame):
    """One panel per device: each claim's ratio per runtime with its 95 % CI, the paper's value and the threshold.

    Returns a matplotlib figure, or a string saying why there is nothing to draw (:func:`why_not_drawn`).
    """
    why = why_not_drawn(table)
    if why:
        return why
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(dict.fromkeys(table.device))
    runtimes = list(dict.fromkeys(table.runtime))
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 3.8), squeeze=False)
    width = 0.8 / len(runtimes)
    for ax, dev in zip(axes[0], devices):
        d = table[table.device == dev]
        for j, rt in enumerate(runtimes):
            for i, cid in enumerate(RUNTIME_CLAIMS):
                r = d[(d.runtime == rt) & (d.claim_id == cid)]
                if r.empty or pd.isna(r.ratio.iloc[0]):
                    continue
                r = r.iloc[0]
                x = i - 0.4 + width * (j + 0.5)
                err = [[max(r.ratio - r.ci95_low, 0)], [max(r.ci95_high - r.ratio, 0)]]
                ax.errorbar([x], [r.ratio], yerr=err, fmt="o", color=f"C{j}", capsize=3, label=rt if i == 0 else None)
        for i, cid in enumerate(RUNTIME_CLAIMS):
            r = d[d.claim_id == cid]
            if r.empty:
                continue
            paper, thr = r.paper_ratio.iloc[0], r.threshold.iloc[0]
            if pd.notna(paper):
                ax.plot([i], [paper], "D", mfc="none", mec="k", ms=8, label="paper" if i == 0 else None)
            if pd.notna(thr):
                ax.hlines(thr, i - 0.45, i + 0.45, colors="grey", linestyles="dashed", lw=1)
        ax.set_yscale("log")
        ax.set_xticks(range(len(RUNTIME_CLAIMS)))
        ax.set_xticklabels(["PConv/DWConv\nGMAC/s", "PConv/GConv\nGMAC/s", "Conv/PConv\nlatency"])
        ax.set_title(str(dev), fontsize=10)
        ax.set_ylabel("ratio (log)")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _cell(r) -> str:
    if pd.isna(r.ratio):
        return "–"
    ci = "" if pd.isna(r.ci95_low) else f" [{fmt(r.ci95_low)}, {fmt(r.ci95_high)}]"
    return f"{fmt(r.ratio)}{ci}"


def table_html(table: pd.DataFrame) -> str:
    """Per device: one row per claim and runtime, with the ratio, its CI, the threshold, the verdict and the paper's value."""
    out = []
    for dev, d in table.groupby("device", sort=False):
        rows = []
        for r in d.itertuples(index=False):
            verdict = str(r.verdict)
            rows.append(
                [
                    _e(r.claim),
                    _e(r.runtime),
                    _cell(r),
                    "–" if pd.isna(r.threshold) else fmt(r.threshold),
                    f'<span class="v-{_e(verdict.replace(" ", "-"))}">{_e(verdict)}</span>',
                    "–" if pd.isna(r.paper_ratio) else fmt(r.paper_ratio),
                ]
            )
        out.append(f"<h3>{_e(dev)}</h3>")
        out.append(_table(["claim", "runtime", "ratio [95% CI]", "threshold", "verdict", "paper"], rows, left=2))
    return "".join(out)


TITLE = "The Table-1 claims under each runtime"
_CAPTION = (
    "Each claim's ratio under each runtime with its bootstrap 95% CI (log axis); open diamonds: the paper's value "
    "(PyTorch eager on its device of the same kind); dashed: the claim's threshold (1 for the FLOPS ratios, the "
    "FLOP reduction for Conv/PConv latency: below it, PConv's latency falls by less than its FLOPs)."
)


def section(claims: pd.DataFrame, draw: Draw) -> Part:
    """``runtime_claims.csv``, the figure (handed to ``draw``) and the section's HTML."""
    table = runtime_claims(claims)
    if table.empty:
        html = (
            '<p class="muted">No Table-1 claim was evaluated. Measure <code>fnbench run --suite runtimes '
            "--runtime eager --runtime onnxruntime --runtime openvino</code>.</p>"
        )
        return Part(html=html, csv={"runtime_claims": table})
    why = why_not_drawn(table)
    if why:  # said on the page; the one-runtime case is the Figures section's per-map plot
        return Part(html=table_html(table) + f'<p class="muted">{_e(why)}</p>', csv={"runtime_claims": table})
    plot = Plot("runtime_claims", TITLE, _CAPTION, lambda: figure(table))
    png = draw(plot)
    if isinstance(png, str):
        return Part(html=table_html(table) + f'<p class="muted">{_e(png)}</p>', csv={"runtime_claims": table})
    b64 = base64.b64encode(png).decode("ascii")
    img = (
        f'<figure id="fig-runtime_claims"><img alt="{_e(TITLE)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{_e(_CAPTION)} Files: runtime_claims.png, runtime_claims.svg, runtime_claims.csv."
        "</figcaption></figure>"
    )
    return Part(html=table_html(table) + img, csv={"runtime_claims": table})
