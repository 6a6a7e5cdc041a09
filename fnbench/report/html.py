"""Render the report as one self-contained HTML page: inline CSS, figures as base64 PNG, no scripts.

Numbers are rounded here and only here (3 significant figures unless a column says otherwise).
Each section's HTML comes from one function of the tables it shows (:func:`claims`,
:func:`results`, …), called by that section's build in :data:`fnbench.report.build.SECTIONS`;
:func:`render` puts the sections on the page in the list's order.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "Page",
    "render",
    "answer",
    "claims",
    "figure",
    "table1",
    "runtimes",
    "allocators",
    "devices",
    "paper_vs_device",
    "results",
    "failures",
    "ceilings",
    "environment",
    "method",
]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1280px;
color:#222;line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{margin-top:1.2em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f3f3f3;text-align:center}td.l,th.l{text-align:left}
tr.unstable td{background:#fff6d6}span.unstable{color:#9a6700;font-weight:600}
.v-supported{background:#d9f2d9;font-weight:600}.v-contradicted{background:#f8d4d4;font-weight:600}
.v-inconclusive{background:#eee}.v-not-measured{color:#888;font-style:italic}.v-not-claimed{color:#1f5fa8}
.muted{color:#777}.note{font-size:12.5px;color:#444}span.note{display:block;text-align:left}.warn{color:#a33}
figure{margin:1em 0 2em}figure img{width:100%;height:auto;border:1px solid #ddd}
ul.answer{font-size:15px;margin:.4em 0;padding-left:1.2em}ul.answer li{margin:.15em 0}figcaption{font-size:13px;color:#444}
code{background:#f4f4f4;padding:0 3px}
figure.forest{margin:.2em 0 .3em}.compact table{margin:.2em 0 .4em;font-size:12.5px}.compact td{padding:1px 6px}
ul.footnotes{margin:.2em 0;padding-left:0;list-style:none}span.quote{min-width:20em}
.scroll{overflow-x:auto}
"""


@dataclass
class Page:
    """The page: its title, when and from what it was made, and each section's HTML in order."""

    title: str
    generated: str
    inputs: list[str]
    #: ``(id, title, HTML, lead)`` per section; a lead section opens the page without a heading.
    sections: list[tuple[str, str, str, bool]] = field(default_factory=list)


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def fmt(v, sig: int = 3, *, integer: bool = False) -> str:
    """Significant-figure rendering; '–' for missing values; ``integer``: a whole float shows as an integer."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) and abs(v) < 10**6:
        return str(int(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) < 10**6 and integer:
        return str(int(v))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if x == 0:
        return "0"
    if abs(x) >= 10 ** (sig + 3) or abs(x) < 1e-3:
        return f"{x:.{sig - 1}e}"
    digits = max(sig - 1 - int(math.floor(math.log10(abs(x)))), 0)
    return f"{x:,.{digits}f}"


def _ci(lo, hi) -> str:
    return "–" if (pd.isna(lo) or pd.isna(hi)) else f"{fmt(lo)}–{fmt(hi)}"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] | None = None, left: int = 1
) -> str:
    """Cells are already-escaped HTML; the first ``left`` columns are left-aligned."""
    h = "".join(f'<th class="l">{x}</th>' if i < left else f"<th>{x}</th>" for i, x in enumerate(headers))
    body = []
    for k, r in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        body.append(
            f"<tr{cls}>"
            + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r))
            + "</tr>"
        )
    return f'<div class="scroll"><table><thead><tr>{h}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _stable_mark(stable, reason=None) -> str:
    if stable is None or (isinstance(stable, float) and math.isnan(stable)):
        return ""
    if bool(stable):
        return ""
    why = reason if isinstance(reason, str) and reason else "the 95% CI did not settle"
    return f' <span class="unstable" title="{_e(why)}">⚠ unstable ({_e(why)})</span>'


def devices(table: pd.DataFrame) -> str:
    """The devices table: one row per device, what was measured on it."""
    rows = [
        [
            _e(r.device),
            f"<code>{_e(r.device_key)}</code>",
            _e(r.kind),
            _e(r.paper_device),
            _e(r.runtimes),
            _e(getattr(r, "allocators", "")),
            fmt(r.n_ok),
            fmt(r.n_unstable),
            fmt(r.n_failed),
            fmt(r.n_probes),
            _e(getattr(r, "nodes", "") or ""),
        ]
        for r in table.itertuples()
    ]
    return _table(
        [
            "device",
            "key",
            "kind",
            "paper column",
            "runtimes",
            "allocators",
            "measurements ok",
            "unstable",
            "failed / unsupported",
            "probe records",
            "campaign nodes",
        ],
        rows,
        left=6,
    )


def _verdict_span(v: str) -> str:
    return f'<span class="v-{v.replace(" ", "-")}">{_e(v)}</span>'


def answer(c: pd.DataFrame, forest: bytes | str, compact: pd.DataFrame, footnotes: list[tuple[int, str, str]]) -> str:
    """The claims at a glance: the forest plot, the compact table under it, footnotes per device.

    ``c`` is the claims table, ``forest`` the forest plot's PNG or why it is not drawn, ``compact``
    the compact table (:func:`fnbench.report.tables.compact_claims`) and ``footnotes`` the
    per-device unsettled rows.
    The sentences (``compare``'s last line, ``verdicts.csv``'s ``answer``) are folded below: eight
    near-identical sentences hide the pattern across claims that one figure shows.
    """
    if c.empty:
        return '<p class="muted">No measurements to answer with: run <code>fnbench run</code> first.</p>'
    out = []
    if isinstance(forest, bytes) and forest:
        b64 = base64.b64encode(forest).decode("ascii")
        out.append(
            f'<figure id="fig-forest" class="forest"><img alt="The paper\'s claims on these devices: forest plot" '
            f'src="data:image/png;base64,{b64}"></figure>'
        )
    elif forest:
        out.append(f'<p class="muted">Forest plot not drawn: {_e(forest)}</p>')
    out.append(_compact(compact))
    out.extend(_not_measured(c))
    if footnotes:
        notes = "".join(f"<li><sup>{n}</sup> {_e(where)}: {_e(text)}</li>" for n, where, text in footnotes)
        out.append(
            '<ul class="footnotes note">'
            + notes
            + "</ul>"
            + '<p class="note">Rows that missed their precision target do not veto a verdict: their '
            "uncertainty is inside each interval.</p>"
        )
    sentences = "".join(f"<li>{_e(a)}</li>" for a in c[c.verdict != "not measured"].answer)
    out.append(f'<details><summary>The answers as sentences</summary><ul class="answer">{sentences}</ul></details>')
    return "".join(out)


def _not_measured(c: pd.DataFrame) -> list[str]:
    """One note per set-up (device, runtime) naming the claims it did not measure.

    A claim measured under the default set-up but not under a second one (a single-map allocator
    run) would otherwise read as not measured at all.
    """
    missing = c[c.verdict == "not measured"]
    if missing.empty:
        return []
    setups = c[["device", "runtime"]].drop_duplicates()
    out = []
    for (device, runtime), g in missing.groupby(["device", "runtime"], sort=True):
        where = f" on {device} ({runtime})" if len(setups) > 1 else ""
        out.append(
            f'<p class="note">Not measured{_e(where)}: {_e("; ".join(sorted(set(g.claim))))} '
            '(reasons in <a href="#claims">the claims table</a>).</p>'
        )
    return out


_REPRO_CLASS = {"reproduces": "v-supported", "higher": "v-inconclusive", "lower": "v-inconclusive"}


def _compact(c: pd.DataFrame) -> str:
    """claim · device · ratio [CI] · paper · direction · reproduction, one line per forest line."""
    if c.empty:
        return ""
    several = c.setup.nunique() > 1
    rows = []
    for r in c.itertuples():
        dev = _e(r.device) + (f' <span class="muted">({_e(r.setup)})</span>' if several else "")
        if r.footnote:
            dev += f" <sup>{int(r.footnote)}</sup>"
        paper = "–" if pd.isna(r.paper_ratio) else f"{fmt(r.paper_ratio)}× ({_e(r.paper_device).upper()})"
        mop = "" if pd.isna(r.measured_over_paper) else f" ({fmt(r.measured_over_paper)}×)"
        rows.append(
            [
                _e(r.claim),
                dev,
                f"{fmt(r.ratio)}× [{_ci(r.ci95_low, r.ci95_high)}]",
                paper,
                _verdict_span(r.direction),
                f'<span class="{_REPRO_CLASS.get(r.reproduction, "")}">{_e(r.reproduction)}</span>{mop}',
            ]
        )
    return (
        '<div class="compact">'
        + _table(
            ["claim", "device", "ratio [95% CI]", "paper", "direction", "reproduction (measured / paper)"],
            rows,
            left=2,
        )
        + "</div>"
    )


def claims(table: pd.DataFrame) -> str:
    """The claims table (:func:`fnbench.verdicts.claim_table`): every column a verdict rests on."""
    if table.empty:
        return '<p class="muted">No measurements to test the claims on.</p>'
    rows, classes = [], []
    for r in table.itertuples():
        v = r.verdict
        measured = v != "not measured"
        thr = (
            (
                f"{r.direction} {fmt(r.threshold)}"
                + (f' <span class="muted">({_e(r.threshold_meaning)})</span>' if r.threshold_meaning else "")
            )
            if measured
            else "–"
        )
        paper = (fmt(r.paper_ratio) + "×" if not pd.isna(r.paper_ratio) else "–") + (
            f' <span class="muted">({_e(r.paper_device).upper()}, same statistic)</span>'
            if isinstance(r.paper_device, str) and not pd.isna(r.paper_ratio)
            else ""
        )
        per = (
            "–"
            if pd.isna(r.per_map_ratio)
            else (f"{fmt(r.per_map_ratio)}× ({_ci(r.per_map_ci95_low, r.per_map_ci95_high)})")
        )
        rows.append(
            [
                _e(r.device),
                _e(r.runtime) + ("" if pd.isna(r.threads) else f", {int(r.threads)} thr") + f", b{r.batch}",
                _e(r.claim)
                + (
                    f'<span class="note muted quote">{_e(r.paper_quote)}</span>'
                    if getattr(r, "paper_quote", "")
                    else ""
                ),
                f'<span class="note">{_e(r.statistic)}</span>',
                fmt(r.ratio) + ("×" if measured else ""),
                _ci(r.ci95_low, r.ci95_high),
                thr,
                _verdict_span(v),
                paper,
                _e(r.reproduction) + ("" if pd.isna(r.measured_over_paper) else f" ({fmt(r.measured_over_paper)}×)"),
                per,
                f'<span class="note">{_e(r.per_map)}</span>',
                f'<span class="note">{_e(r.unsettled) or "none"}</span>' if measured else "–",
                f'<span class="note">{_e(r.note)}</span>',
            ]
        )
        classes.append("")
    return (
        _table(
            [
                "device",
                "runtime",
                "claim",
                "statistic (the ratio)",
                "ratio",
                "95% CI",
                "threshold",
                "direction verdict",
                "paper (same statistic)",
                "reproduction (measured / paper)",
                "geometric mean of per-map ratios (95% CI)",
                "per map",
                "rows above their precision target",
                "note",
            ],
            rows,
            classes,
            left=4,
        )
        + '<p class="note">The FLOPS claims use the paper\'s statistic, a ratio of mean GMAC/s over the maps '
        "(its 6.2× on CPU is 39.91 / 6.42 GMAC/s); the geometric mean of the per-map ratios beside it is what "
        "a map-by-map comparison means. The paper column is the paper's statistic from its own Table 1 or main "
        "table, on its device of the same kind.</p>"
    )


def table1(titles: list[str], frame: pd.DataFrame) -> str:
    """The Table-1 analog (:func:`fnbench.report.tables.table1_wide`): one column group per device panel."""
    if not titles:
        return '<p class="muted">No Table-1 operator measurements (10 layers, default options). Run <code>fnbench run --suite table1</code>.</p>'
    head1 = (
        '<tr><th class="l" rowspan="2">operator</th><th class="l" rowspan="2">map C×H×W</th>'
        + "".join(f'<th colspan="4">{_e(t)}</th>' for t in titles)
        + "</tr>"
    )
    head2 = (
        "<tr>" + "<th>latency ms</th><th>GMAC/s</th><th>GMAC/s 95% CI</th><th>paper GMAC/s</th>" * len(titles) + "</tr>"
    )
    body = []
    for _, r in frame.iterrows():
        cells = [f'<td class="l">{_e(r["op"])}</td><td class="l">{_e(r["shape"])}</td>']
        for t in titles:
            st = r[f"{t}|stable"]
            cls = ' class="unstable-cell" style="background:#fff6d6"' if (not pd.isna(st) and not bool(st)) else ""
            cells.append(
                f"<td{cls}>{fmt(r[f'{t}|ms'])}</td><td{cls}>{fmt(r[f'{t}|gmacs'])}{_stable_mark(st)}</td>"
                f"<td{cls}>{_ci(r[f'{t}|gmacs_lo'], r[f'{t}|gmacs_hi'])}</td><td>{fmt(r[f'{t}|paper'])}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><thead>{head1}{head2}</thead><tbody>{"".join(body)}</tbody></table></div>'
        '<p class="note">Latency is per batch (ms); GMAC/s is the paper\'s "GFLOPS". The paper column is '
        "the paper's device of the same kind (CPU: i9-9900X, GPU: RTX 2080Ti at batch 32, ARM: Cortex-A72).</p>"
    )


def figure(name: str, title: str, caption: str, png: bytes | str) -> str:
    """One figure of the Figures section under its title, or why it is not drawn (``png`` a string)."""
    if isinstance(png, str):
        return f'<h3>{_e(title)}</h3><p class="muted">Not drawn: {_e(png)}</p>'
    b64 = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="fig-{_e(name)}"><h3>{_e(title)}</h3><img alt="{_e(title)}" '
        f'src="data:image/png;base64,{b64}"><figcaption>{_e(caption)} Files: '
        f"<code>{_e(name)}.png</code>, <code>{_e(name)}.svg</code>.</figcaption></figure>"
    )


def paper_vs_device(d: pd.DataFrame) -> str:
    """Every cell the paper reports beside this device's value (:func:`fnbench.report.tables.paper_vs_device`)."""
    if d.empty:
        return '<p class="muted">No device of a kind the paper measured (cpu, cuda, arm).</p>'
    out = []
    for (dev, runtime, threads), g in d.groupby(["device", "runtime", "threads"], dropna=False, sort=True):
        shown = g[(g.item == "operator") | (g.status == "ok")]
        missing = g[(g.item == "network") & (g.status != "ok")].paper_name.unique()
        rows, classes = [], []
        for r in shown.itertuples():
            quantity = _e(r.quantity) if r.quantity == r.unit else f"{_e(r.quantity)} ({_e(r.unit)})"
            status = _e(r.status) if r.status != "ok" else ("settled" if r.stable else "")
            rows.append(
                [
                    _e(r.item),
                    _e(r.paper_name),
                    _e(r.shape or "–"),
                    quantity,
                    fmt(r.paper_value),
                    fmt(r.measured_value) + (_stable_mark(r.stable) if r.status == "ok" else ""),
                    _ci(r.measured_ci95_low, r.measured_ci95_high),
                    (fmt(r.ratio_measured_over_paper) + "×") if not pd.isna(r.ratio_measured_over_paper) else "–",
                    status,
                ]
            )
            classes.append("unstable" if (r.status == "ok" and r.stable is False) else "")
        t = "" if pd.isna(threads) else f", {int(threads)} thread(s)"
        out.append(f"<h3>{_e(dev)} · {_e(runtime)}{t} vs the paper's {_e(g.paper_device.iloc[0]).upper()}</h3>")
        out.append(
            _table(
                [
                    "item",
                    "paper name",
                    "shape",
                    "quantity (unit)",
                    "paper",
                    "measured",
                    "measured 95% CI",
                    "measured / paper",
                    "status",
                ],
                rows,
                classes,
                left=4,
            )
        )
        note = g.device_note.iloc[0] if "device_note" in g else ""
        if isinstance(note, str) and note:
            out.append(f'<p class="note warn">{_e(note)}.</p>')
        if len(missing):
            out.append(
                f'<p class="note">{len(missing)} networks in the paper\'s table not measured here: '
                f"{_e(', '.join(missing))} (all listed in <code>paper_vs_device.csv</code>).</p>"
            )
    return "".join(out)


def results(d: pd.DataFrame) -> str:
    """All measurements (:func:`fnbench.report.tables.results_table`), one table per device."""
    if d.empty:
        return '<p class="muted">No measurements.</p>'
    out = []
    for dev, g in d.groupby("device", sort=True):
        rows, classes = [], []
        g = g.assign(_area=[_shape_key(x) for x in g["shape"]], _net=g.target_kind.ne("operator")).sort_values(
            ["_net", "target", "options", "layers", "_area", "runtime", "threads", "batch"],
            kind="stable",
            na_position="last",
        )
        for r in g.itertuples():
            name = r.target + (f" {r.options}" if r.options not in ("{}", None) else "")
            layers = "" if pd.isna(r.layers) else f" L{int(r.layers)}"
            alloc = _e(getattr(r, "allocator", None) or "–")
            if r.status != "ok":
                rows.append(
                    [
                        _e(name),
                        _e(f"{r.shape or '–'}{layers}"),
                        _e(r.runtime),
                        alloc,
                        fmt(r.batch, integer=True),
                        fmt(r.macs),
                        f'<span class="warn">{_e(r.status)}</span>',
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                    ]
                )
                classes.append("")
                continue
            rows.append(
                [
                    _e(name),
                    _e(f"{r.shape or '–'}{layers}"),
                    _e(r.runtime),
                    alloc,
                    fmt(r.batch, integer=True),
                    fmt(r.macs / 1e6),
                    fmt(r.median_ms) + _stable_mark(r.stable, getattr(r, "unstable_reason", None)),
                    _ci(r.ci95_low_ms, r.ci95_high_ms),
                    _tails(getattr(r, "p50_ms", None), getattr(r, "p90_ms", None), getattr(r, "p99_ms", None)),
                    fmt(r.gmacs_per_s),
                    _ci(r.gmacs_per_s_ci95_low, r.gmacs_per_s_ci95_high),
                    fmt(r.intensity_flop_per_byte),
                    _faults(getattr(r, "minor_faults_per_iter", None), getattr(r, "faults_flag", None)),
                    _mib(getattr(r, "peak_memory_bytes", None)),
                    _share(getattr(r, "timed_fraction", None), getattr(r, "wait_fraction", None)),
                    fmt(r.n_samples),
                    fmt(r.n_repeats),
                ]
            )
            classes.append("" if r.stable else "unstable")
        out.append(f"<h3>{_e(dev)}</h3>")
        out.append(
            _table(
                [
                    "target",
                    "shape / layers",
                    "runtime",
                    "allocator",
                    "batch",
                    "FLOPs (MACs), M",
                    "latency ms (median)",
                    "latency 95% CI, ms",
                    "p50 / p90 / p99, ms",
                    "GMAC/s",
                    "GMAC/s 95% CI",
                    "intensity FLOP/byte",
                    "page faults / iteration",
                    "peak memory of a forward, MiB",
                    "timed / waited for a CPU",
                    "samples",
                    "repeats",
                ],
                rows,
                classes,
                left=4,
            )
        )
    return "".join(out)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _tails(p50, p90, p99) -> str:
    """Per-iteration latency percentiles (p99 only from 100 samples, else –)."""
    return " / ".join("–" if _missing(v) else fmt(v) for v in (p50, p90, p99))


def _mib(nbytes) -> str:
    return "–" if _missing(nbytes) else f"{float(nbytes) / 2**20:,.2f}"


def _share(timed, wait) -> str:
    """The share of the row's wall time spent timing, and of its timed time spent waiting for a CPU (⚠ above 5%)."""
    if _missing(timed):
        return "–"
    text = f"{timed:.0%}"
    if not _missing(wait):
        text += f" / {wait:.0%}" + (" ⚠" if wait > 0.05 else "")
    return text


def _faults(per_iter, flag) -> str:
    """Minor page faults per timed iteration; a red ⚠ with the reason where the row still faults."""
    if per_iter is None or (isinstance(per_iter, float) and math.isnan(per_iter)):
        return "–"
    text = f"{per_iter:,.0f}" if per_iter >= 10 else f"{per_iter:.2g}"
    if flag and not (isinstance(flag, float) and math.isnan(flag)):
        return f'<span class="warn" title="{_e(flag)}">{text} ⚠</span>'
    return text


def allocators(d: pd.DataFrame, c: pd.DataFrame) -> str:
    """The same measurements under each allocator, and the claims under each (:mod:`fnbench.report.sensitivity`)."""
    if d.empty:
        return (
            '<p class="muted">Every measurement here was taken under one allocator. Measure a target under two '
            "with <code>fnbench run --allocator tuned --allocator system …</code> to see how much the memory "
            "allocator moves it.</p>"
        )
    head = (
        '<p class="note">The same measurement under each allocator: <b>tuned</b> (glibc with fixed mmap and trim '
        "thresholds, so freed activations are reused, as in a long-running server), <b>system</b> (glibc as a "
        "fresh process gets it: freed activations go back to the kernel and every forward page-faults them in "
        "again), and the preloaded jemalloc/tcmalloc. Page faults are counted over the timed iterations "
        "(getrusage); ⚠ marks a row that still faults above 1% of the bytes it moves.</p>"
    )
    rows, classes = [], []
    for r in d.itertuples():
        layers = "" if pd.isna(r.layers) else f" L{int(r.layers)}"
        rows.append(
            [
                _e(r.device),
                _e(r.runtime),
                _e(r.target),
                _e(f"{r.shape or '–'}{layers}"),
                _e(r.allocator),
                fmt(r.median_ms) + _stable_mark(r.stable, r.unstable_reason),
                _ci(r.ci95_low_ms, r.ci95_high_ms),
                fmt(r.gmacs_per_s),
                _faults(r.minor_faults_per_iter, r.faults_flag),
                "–" if pd.isna(r.latency_vs_tuned) else f"{r.latency_vs_tuned:.2f}×",
            ]
        )
        classes.append("" if r.stable else "unstable")
    out = [
        head,
        _table(
            [
                "device",
                "runtime",
                "target",
                "shape / layers",
                "allocator",
                "latency ms (median)",
                "latency 95% CI, ms",
                "GMAC/s",
                "page faults / iteration",
                "latency vs tuned",
            ],
            rows,
            classes,
            left=5,
        ),
    ]
    if not c.empty:
        allocs = [x for x in c.columns if x not in ("device", "runtime", "claim")]
        out.append("<h3>The claims under each allocator</h3>")
        out.append(
            _table(
                ["device", "runtime", "claim", *allocs],
                [[_e(x) for x in row] for row in c[["device", "runtime", "claim", *allocs]].values],
                left=3 + len(allocs),
            )
        )
    return "".join(out)


def _shape_key(shape) -> tuple:
    """Sort key of a "CxHxW" shape: the feature map from large to small, as in Table 1."""
    if not isinstance(shape, str) or not shape:
        return (1, 0, 0)
    dims = [int(v) for v in shape.split("x")]
    return (0, -(dims[-1] * dims[-2]) if len(dims) >= 2 else 0, dims[0])


def failures(table: pd.DataFrame) -> str:
    """Failed and unsupported measurements with their reasons."""
    if table.empty:
        return '<p class="muted">None: every measurement finished.</p>'
    rows = [
        [_e(r.device), _e(r.target), _e(r.shape or "–"), _e(r.runtime), _e(r.status), _e(r.error)]
        for r in table.itertuples()
    ]
    return _table(["device", "target", "shape", "runtime", "status", "reason"], rows, left=6)


def ceilings(c: pd.DataFrame, theoretical: pd.DataFrame, above_roof: pd.DataFrame, devices: list[str]) -> str:
    """Measured ceilings per device, its theoretical peak where it may be shown, and points above a roof."""
    head = (
        '<p class="note">Peak compute from <code>probe:gemm_*</code> and <code>probe:conv_*</code> records '
        "(FLOP/s = flops / median; the roofline's compute roof is the best FP32 one), bandwidth from "
        "<code>probe:copy</code> (bytes read + written / median); the maximum over probe sizes.</p>"
    )
    have = set(c.device) if not c.empty else set()
    missing = [d for d in devices if d not in have]
    out = [head]
    if not c.empty:
        rows = [
            [
                _e(r.device),
                _e(r.probe),
                fmt(r.peak_gflop_per_s),
                fmt(r.bandwidth_gb_per_s),
                fmt(r.n_records),
                "yes" if r.stable else '<span class="unstable">⚠ no</span>',
            ]
            for r in c.itertuples()
        ]
        out.append(_table(["device", "probe", "peak GFLOP/s", "bandwidth GB/s", "records", "stable"], rows, left=2))
    for r in theoretical.itertuples() if not theoretical.empty else ():
        if r.shown:
            out.append(
                f'<p class="note">{_e(r.device)}: theoretical FP32 peak {fmt(r.theoretical_peak_gflop_per_s)} '
                f"GFLOP/s ({_e(r.basis)}; {_e(r.clock)} clock), drawn dash-dot on the roofline.</p>"
            )
        else:
            out.append(
                f'<p class="warn">{_e(r.device)}: {_e(r.note)} (measured FP32 roof '
                f"{fmt(r.measured_gflop_per_s)} GFLOP/s; the peak at the {_e(r.clock)} clock is not drawn).</p>"
            )
    if not above_roof.empty:
        rows = [
            [
                _e(r.device),
                _e(r.target),
                _e(r.shape or "–"),
                _e(r.runtime),
                fmt(r.gflops_per_s),
                fmt(r.roof_gflop_per_s),
                _e(r.roof),
            ]
            for r in above_roof.itertuples()
        ]
        out.append(
            f'<p class="warn">{len(above_roof)} measured point(s) above a measured roof: the probe fell '
            "short of the device's real ceiling (run <code>fnbench probe</code> with a larger --budget). "
            "They are ringed in red on the roofline.</p>"
        )
        out.append(
            _table(["device", "target", "shape", "runtime", "achieved GFLOP/s", "roof GFLOP/s", "roof"], rows, left=4)
        )
    if missing:
        out.append(
            f'<p class="warn">No probe records for {_e(", ".join(missing))}: the roofline shows measured '
            "points only, without ceilings. Run <code>fnbench probe</code> on that device and include its result file.</p>"
        )
    return "".join(out)


def environment(e: pd.DataFrame) -> str:
    """The environment fingerprint of each device (:func:`fnbench.report.tables.environment`)."""
    if e.empty:
        return ""
    out = []
    for dev, g in e.groupby("device", sort=True):
        rows = [
            [_e(r.key), fmt(r.value, 4) if isinstance(r.value, (float, np.floating)) else _e(r.value)]
            for r in g.itertuples()
        ]
        out.append(f"<h3>{_e(dev)}</h3>" + _table(["key", "value"], rows, left=2))
    return "".join(out)


def runtimes(g: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """GMAC/s per runtime and each claim's verdict per runtime (:func:`fnbench.report.tables.runtime_comparison`)."""
    if g.empty:
        return (
            '<p class="muted">One runtime per device. Measure others with '
            "<code>fnbench run --suite runtimes --runtime eager --runtime onnxruntime --runtime openvino</code>.</p>"
        )
    rts = [c[len("gmacs_per_s[") : -1] for c in g.columns if c.startswith("gmacs_per_s[")]
    rows = []
    for r in g.to_dict("records"):
        cells = []
        for rt in rts:
            v, st = r.get(f"gmacs_per_s[{rt}]"), r.get(f"stable[{rt}]")
            cells.append(
                "–" if v is None or pd.isna(v) else fmt(v) + ("" if st is True else ' <span class="unstable">⚠</span>')
            )
        layers = "" if pd.isna(r["layers"]) else f" ×{int(r['layers'])}"
        rows.append([_e(r["device"]), _e(r["target"]), _e(f"{r['shape'] or '–'}{layers}"), *cells])
    out = [
        "<h3>GMAC/s per runtime</h3>",
        _table(["device", "target", "shape", *(f"{rt} GMAC/s" for rt in rts)], rows, left=3),
    ]
    if not verdicts.empty:
        vr = [c for c in verdicts.columns if c not in ("device", "claim")]
        out.append("<h3>Does each claim hold under each runtime?</h3>")
        out.append(
            _table(
                ["device", "claim", *vr],
                [[_e(x) for x in row] for row in verdicts[["device", "claim", *vr]].fillna("–").values],
                left=2 + len(vr),
            )
        )
    return "".join(out)


def method(notes: list[str]) -> str:
    """How the numbers are made: one item per note."""
    return '<ul class="note">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"


def render(p: Page) -> str:
    """The whole page as a string: the lead sections, the contents, then every other section under its title."""
    inputs = ", ".join(f"<code>{_e(x)}</code>" for x in p.inputs) or "–"
    lead = "".join(f'<section id="{sid}">{content}</section>' for sid, _, content, first in p.sections if first)
    rest = [(sid, t, content) for sid, t, content, first in p.sections if not first]
    toc = " · ".join(f'<a href="#{sid}">{_e(t)}</a>' for sid, t, _ in rest)
    body = "".join(f'<section id="{sid}"><h2>{_e(t)}</h2>{content}</section>' for sid, t, content in rest)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(p.title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>'
        f"<h1>{_e(p.title)}</h1>{lead}"
        f'<p class="note">Generated {_e(p.generated)} from {inputs}. '
        'FLOPs (MACs) are multiply-adds as in the paper; GMAC/s is the paper\'s "GFLOPS"; FLOP/s = 2 × MAC/s.</p>'
        f'<nav class="note">{toc}</nav>{body}</body></html>\n'
    )
