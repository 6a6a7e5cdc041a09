"""Assemble the report: load and merge, compute tables and claims, draw, write files."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..errors import SaveError, UserError
from ..merge import join_names, load_frame
from ..results import iter_result_files
from ..verdicts import CLAIM_COLUMNS, PAPER_KIND, claim_table
from . import breakdown as _breakdown
from . import figures as _fig
from . import html as _html
from . import runtime_claims as _rtc
from . import sensitivity as _sens
from . import tables as _tab

__all__ = ["ReportSummary", "build_report"]


@dataclass
class ReportSummary:
    """What :func:`build_report` wrote and what it found."""

    out_dir: Path
    index: Path
    csv: dict[str, Path] = field(default_factory=dict)  # name → path
    figures: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # name → (png, svg)
    not_drawn: dict[str, str] = field(default_factory=dict)  # figure name → why not
    devices: list[str] = field(default_factory=list)  # device labels
    n_rows: int = 0  # measurements after merging repeats (probes included)
    n_failed: int = 0
    n_unstable: int = 0
    claims: pd.DataFrame | None = None


NOTES = [
    "Latency: median of per-iteration seconds; its 95% CI is over rounds (fresh allocations of model and input), "
    "so allocation-to-allocation swings widen it. GMAC/s = MACs / median latency; its CI inverts the latency CI.",
    "Stability, the one rule: a measurement is settled when the 95% CI of its median latency lies within "
    "±precision of the median, at the precision target it was measured with (fnbench run: ±2% unless --precision; "
    "compare: ±10%). Rows that are not are flagged in every table (⚠, yellow) and figure (hollow marker, hatched "
    "bar), and named beside each verdict that uses them.",
    "Merging: results from different devices (device_key: kind, arch, CPU/GPU model, host) stay apart, one panel "
    "or column group each. Records of the same measurement on the same device (same target, shape, layers, "
    "options, batch, dtype, runtime, threads) are repeats and are pooled: their raw samples are concatenated, "
    "each run's rounds stay separate rounds and each run's processes separate clusters, and the median and CI are "
    "recomputed (repeats that disagree widen the CI); the pooled row is settled by the rule above.",
    "Verdicts follow their intervals: supported when the whole bootstrap 95% CI of the claim's statistic lies on "
    "the claimed side of the threshold, contradicted when it lies wholly on the other side, inconclusive only "
    "when it straddles the threshold; 'not measured' when a target is absent, failed or unsupported. An unsettled "
    "row's uncertainty is inside the interval, so it does not veto a verdict. The same claim engine "
    "(fnbench.verdicts) gives `fnbench compare --from` the same numbers. That is the direction verdict, given "
    "only to what the paper states as a claim (each claim quotes its section or table); a number the paper shows "
    "without claiming it (the latency of a PConv stack against a DWConv or GConv stack) is an observation: "
    "'not claimed'. Beside it, the reproduction verdict: 'reproduces' when the 95% CI contains the paper's value "
    "of the same statistic on its device of the same class, 'higher' / 'lower' when it excludes it (measured / "
    "paper beside), 'no paper value' where the paper has none. Device classes: any x86 CPU is compared with the "
    "paper's CPU column (i9-9900X), any aarch64 CPU with its ARM column (Cortex-A72), any NVIDIA GPU with its "
    "GPU column (RTX 2080Ti); each row names the match.",
    "Allocator: every record says which memory allocator it was measured under (tuned: glibc with fixed mmap "
    "and trim thresholds, the default; system: glibc as the process got it; jemalloc/tcmalloc: preloaded). Where "
    "the files hold several, rows and claims are kept apart per allocator ('alloc=…' in the runtime label). Page "
    "faults per iteration are minor faults over the timed iterations (getrusage); a row that faults above 1% of "
    "the bytes it moves is not a steady state and is flagged ⚠.",
    "Roofline: achieved FLOP/s = 2 × MACs / latency; arithmetic intensity = FLOPs / counted bytes (bytes read + "
    "written by every executed op). Ceilings come from `fnbench probe` records when present. The theoretical "
    "FP32 peak (vector lanes × FMA units × 2 × clock) uses the highest clock the OS reports (cpufreq's "
    "cpuinfo_max_freq, else lscpu's max MHz, else /proc/cpuinfo's nominal cpu MHz) and names it; it is never "
    "drawn below a measured roof: 'measured exceeds nominal peak: the core ran above its nominal clock'.",
    "The paper's numbers: Table 1 and the main table of Chen et al., CVPR 2023 (CPU: i9-9900X 1 thread batch 1; "
    "GPU: RTX 2080Ti batch 32; ARM: Cortex-A72 1 thread batch 1).",
]


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename: ``path`` is old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SaveError(
            f"writing {path} failed ({e.strerror}); the report in {path.parent} is incomplete "
            "(no index.html): free space and run `fnbench report` again"
        ) from None


def _png_svg(fig) -> tuple[bytes, bytes]:
    import matplotlib.pyplot as plt

    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    fig.savefig(svg, format="svg")
    plt.close(fig)
    return png.getvalue(), svg.getvalue()


def _forest(compact: pd.DataFrame, summary: ReportSummary) -> bytes | str:
    """Draw and write the forest plot of every claim; its PNG for the page, or why it is not drawn."""
    fig = _fig.forest_figure(compact)
    if isinstance(fig, str):
        summary.not_drawn["forest"] = fig
        return fig
    png, svg = _png_svg(fig)
    _write_whole(summary.out_dir / "forest.png", png)
    _write_whole(summary.out_dir / "forest.svg", svg)
    summary.figures["forest"] = (summary.out_dir / "forest.png", summary.out_dir / "forest.svg")
    return png


def _devices_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (label, key), g in df.groupby(["device_label", "device_key"], sort=True):
        probe = _tab.is_probe(g)
        m = g[~probe]
        rows.append(
            dict(
                device=label,
                device_key=key,
                kind=g.device.iloc[0],
                paper_device=PAPER_KIND.get(g.device.iloc[0], "none"),
                runtimes=", ".join(sorted(map(str, m.runtime.dropna().unique()))),
                allocators=", ".join(sorted(map(str, m.allocator.dropna().unique()))) if "allocator" in m else "",
                n_ok=int((m.status == "ok").sum()),
                n_unstable=int(((m.status == "ok") & ~m.stable.fillna(False).astype(bool)).sum()),
                n_failed=int((m.status != "ok").sum()),
                n_probes=int(probe.sum()),
                nodes=_node_names(g),
            )
        )
    return pd.DataFrame(
        rows,
        columns=[
            "device",
            "device_key",
            "kind",
            "paper_device",
            "runtimes",
            "allocators",
            "n_ok",
            "n_unstable",
            "n_failed",
            "n_probes",
            "nodes",
        ],
    )


def _node_names(g: pd.DataFrame) -> str:
    """The campaign nodes (fnbench.campaign) whose records a device's rows hold; empty for plain runs."""
    if "node" not in g:
        return ""
    return join_names(g["node"]) or ""


def build_report(
    paths: str | os.PathLike | Iterable[str | os.PathLike] = ("results",),
    out_dir: str | os.PathLike = "reports",
    *,
    title: str = "fnbench report",
    runtimes: Iterable[str] | None = None,
) -> ReportSummary:
    """Read result files/directories ``paths`` and write the report into ``out_dir``.

    ``runtimes`` keeps only measurements of those runtimes (probe records are always kept).
    Raises :class:`~fnbench.errors.UserError` when the paths hold no result records.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    named = list(paths)
    paths = list(iter_result_files(named))  # once: its notes on folders are said once, not per section
    df = load_frame(paths)
    if runtimes and not df.empty:
        wanted = set(runtimes)
        df = df[df.runtime_name.isin(wanted) | _tab.is_probe(df)]
        if not (~_tab.is_probe(df)).any():
            raise UserError(
                f"no measurements with runtime {', '.join(sorted(wanted))} in {', '.join(map(str, named))}; "
                "drop --runtime or run `fnbench run --runtime …` first"
            )
    if df.empty:
        raise UserError(
            f"no result records in {', '.join(map(str, named))}; run `fnbench run` first "
            "or point `fnbench report` at a results directory"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A report killed half-way must not leave an older index.html looking current beside new files:
    # the old page goes first, every file is written whole (temporary name, then rename), the page last.
    (out / "index.html").unlink(missing_ok=True)

    results = _tab.results_table(df)
    ceil = _tab.ceilings(df)
    pvd = _tab.paper_vs_device(df)
    fails = _tab.failures(df)
    env = _tab.environment(df)
    claims = claim_table(df[~_tab.is_probe(df)]) if (~_tab.is_probe(df)).any() else pd.DataFrame(columns=CLAIM_COLUMNS)
    t1_titles, t1 = _tab.table1_wide(df)
    rt_gmacs, rt_verdicts = _tab.runtime_comparison(results, claims)
    alloc_rows, alloc_claims = _sens.allocator_table(df), _sens.allocator_claims(claims)

    compact = _tab.compact_claims(claims)
    summary = ReportSummary(out_dir=out, index=out / "index.html", claims=claims)
    for name, frame in (
        ("devices", _devices_table(df)),
        ("results", results),
        ("verdicts", claims),
        ("claims_compact", compact),
        ("paper_vs_device", pvd),
        ("failures", fails),
        ("ceilings", ceil),
        ("environment", env),
        ("runtime_comparison", rt_gmacs),
        ("allocator_sensitivity", alloc_rows),
        ("allocator_claims", alloc_claims),
    ):
        p = out / f"{name}.csv"
        _write_whole(p, frame.to_csv(index=False).encode("utf-8"))
        summary.csv[name] = p

    figs = []
    for name, (ftitle, make) in _fig.FIGURES.items():
        fig = make(df, ceil)
        if isinstance(fig, str):
            summary.not_drawn[name] = fig
            figs.append((name, ftitle, None, fig))
            continue
        png, svg = _png_svg(fig)
        _write_whole(out / f"{name}.png", png)
        _write_whole(out / f"{name}.svg", svg)
        summary.figures[name] = (out / f"{name}.png", out / f"{name}.svg")
        figs.append((name, ftitle, png, _CAPTIONS.get(name, ftitle)))

    forest = _forest(compact, summary)

    layer_sec = _breakdown.section(paths, out, _png_svg)  # per-layer breakdowns: CSVs, figure, HTML
    summary.csv.update(layer_sec.csv)
    summary.figures.update(layer_sec.figures)
    rtc_sec = _rtc.section(claims, out, _png_svg, _write_whole)  # the Table-1 claims under each runtime
    summary.csv.update(rtc_sec.csv)
    summary.figures.update(rtc_sec.figures)

    page = _html.Page(
        title=title,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        inputs=[Path(p).name or str(p) for p in named],
        devices=_devices_table(df),
        claims=claims,
        table1_titles=t1_titles,
        table1=t1,
        figures=figs,
        paper_vs_device=pvd,
        results=results,
        failures=fails,
        ceilings=ceil,
        environment=env,
        notes=NOTES,
        runtime_gmacs=rt_gmacs,
        runtime_verdicts=rt_verdicts,
        allocator_rows=alloc_rows,
        allocator_claims=alloc_claims,
        above_roof=_tab.above_roof(df, ceil),
        forest=forest,
        compact=compact,
        footnotes=_tab.unsettled_footnotes(claims),
        theoretical=_tab.theoretical_roofs(df, ceil),
        extra_sections=[
            ("runtime-claims", _rtc.TITLE, rtc_sec.html),
            ("breakdown", "Where a network's time goes: per-layer breakdown", layer_sec.html),
        ],
    )
    _write_whole(summary.index, _html.render(page).encode("utf-8"))
    summary.devices = list(_devices_table(df).device)
    summary.n_rows = len(df)
    summary.n_failed = int((df.status != "ok").sum())
    summary.n_unstable = int(((df.status == "ok") & ~df.stable.fillna(False).astype(bool)).sum())
    return summary


_CAPTIONS = {
    "ratio_per_map": "PConv's GMAC/s over DWConv's and over GConv's at each Table-1 map, with bootstrap 95% CIs "
    "(the claim engine on that map's rows); open diamonds: the paper's ratio for the same map.",
    "table1": 'Bars: measured GMAC/s (the paper\'s "GFLOPS") per operator and map on a linear axis from zero, '
    "95% CI error bars; black diamonds: the paper's value for the same cell on its device of the same kind.",
    "latency_vs_macs": "Per-sample latency (ms, axis from zero) against FLOPs (MACs, G) per network; grey "
    "diamonds: the paper's value for the same network, joined to ours; the dashed step line is "
    "the Pareto front (no other network has both fewer FLOPs and lower latency).",
    "flops_vs_flops": "Achieved FLOPS (GMAC/s) against FLOPs (MACs, G) per network, grey diamonds: the paper's: a "
    "network with few FLOPs but low FLOPS is not fast.",
    "roofline": "Achieved GFLOP/s (2 × MACs / latency) against arithmetic intensity (FLOP per counted byte), log-log; "
    "lines: compute and bandwidth ceilings from probe records, where present; a red ring marks a point "
    "above a measured roof (the probe fell short).",
}
