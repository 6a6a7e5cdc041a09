"""Assemble the report: load and merge the records, then build each section of :data:`SECTIONS` in turn.

The page is :data:`SECTIONS`, one :class:`~fnbench.report.sections.Section` per section in the order
shown: its id, title and a build that reads the shared :class:`Inputs` (the merged frame and the
tables several sections use, each made once) and returns the section's CSVs and HTML, handing each
of its figures (a :class:`~fnbench.report.sections.Plot`: name, title, caption, how to draw it) to
the drawer. The drawer takes a figure from the cache of earlier reports of the same files
(:mod:`fnbench.report.cache`) or draws it, and writes ``<name>.png`` and ``<name>.svg``. Adding a
section is adding one object to :data:`SECTIONS` (and, for a new kind of table, its renderer in
:mod:`fnbench.report.html`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import pandas as pd

from ..errors import SaveError, UserError
from ..merge import join_names, load_frame
from ..results import iter_result_files
from ..verdicts import CLAIM_COLUMNS, PAPER_KIND, claim_table
from . import breakdown as _breakdown
from . import html as _html
from . import runtime_claims as _rtc
from . import sensitivity as _sens
from . import tables as _tab
from .cache import FigureCache
from .sections import Draw, Part, Plot, Section

__all__ = ["ReportSummary", "build_report", "Inputs", "SECTIONS"]


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
    "so allocation-to-allocation swings widen it. GMAC/s = MACs / median latency; its CI inverts the latency CI. "
    "Tails: p50 / p90 / p99 of the per-iteration seconds (p99 only from 100 samples). Peak memory: what one warm "
    "forward needs at its peak above what was allocated before it (CPU: tensor storage alive at once, read after "
    "every operator; CUDA: max_memory_allocated). Timed / waited: the share of the row's wall time spent inside "
    "timed iterations, and of that the share its threads waited for a CPU (⚠ above 5%: another process shared the "
    "core, which inflates long iterations).",
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
    "GPU column (RTX 2080Ti); each row names the match. Rows of an interleaved run (every pass takes one round of "
    "each target per cycle) are resampled together at the same moments, so drift of the machine common to them "
    "cancels in a claim's ratio; the claim's note says whether its rows were paired. A row whose timed iterations "
    "waited for a CPU (another process on its core: stats.wait_fraction) is biased, not only uncertain, and its "
    "claims say so.",
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


class Inputs:
    """What the sections read: the merged records (``df``, probes included), their files, and the
    tables several sections share, each computed on first use and then kept."""

    def __init__(self, df: pd.DataFrame, files: list[Path]) -> None:
        self.df = df
        self.files = files

    @cached_property
    def measured(self) -> pd.DataFrame:
        """The rows that are not probe records."""
        return self.df[~_tab.is_probe(self.df)]

    @cached_property
    def claims(self) -> pd.DataFrame:
        """The claims table (:func:`fnbench.verdicts.claim_table`) of the measured rows."""
        return claim_table(self.measured) if len(self.measured) else pd.DataFrame(columns=CLAIM_COLUMNS)

    @cached_property
    def compact(self) -> pd.DataFrame:
        return _tab.compact_claims(self.claims)

    @cached_property
    def results(self) -> pd.DataFrame:
        return _tab.results_table(self.df)

    @cached_property
    def ceilings(self) -> pd.DataFrame:
        return _tab.ceilings(self.df)

    @cached_property
    def devices(self) -> pd.DataFrame:
        return _devices_table(self.df)


def _fig():
    """:mod:`fnbench.report.figures`, imported when a figure is first drawn (matplotlib.pyplot loads then)."""
    from . import figures

    return figures


# -- the sections, in the order of the page ----------------------------------------------------------
def _answer(i: Inputs, draw: Draw) -> Part:
    """The claims at a glance: the forest plot, the compact table, the footnotes."""
    forest = draw(
        Plot(
            "forest",
            "The paper's claims on these devices: forest plot",
            "Every measured claim's ratio with its 95% CI on one log axis; open diamonds: the paper's value.",
            lambda: _fig().forest_figure(i.compact),
        )
    )
    html = _html.answer(i.claims, forest, i.compact, _tab.unsettled_footnotes(i.claims))
    return Part(html, {"claims_compact": i.compact})


def _figure_plots(i: Inputs) -> list[Plot]:
    """The Figures section's figures, in the order shown."""
    return [
        Plot(
            "ratio_per_map",
            "FLOPS ratios per map: PConv / DWConv and PConv / GConv",
            "PConv's GMAC/s over DWConv's and over GConv's at each Table-1 map, with bootstrap 95% CIs "
            "(the claim engine on that map's rows); open diamonds: the paper's ratio for the same map.",
            lambda: _fig().ratio_per_map_figure(i.df),
        ),
        Plot(
            "table1",
            "Table 1 analog: GMAC/s per operator and map",
            'Bars: measured GMAC/s (the paper\'s "GFLOPS") per operator and map on a linear axis from zero, '
            "95% CI error bars; black diamonds: the paper's value for the same cell on its device of the same kind.",
            lambda: _fig().table1_figure(i.df),
        ),
        Plot(
            "latency_vs_macs",
            "Latency vs FLOPs (MACs), networks",
            "Per-sample latency (ms, axis from zero) against FLOPs (MACs, G) per network; grey "
            "diamonds: the paper's value for the same network, joined to ours; the dashed step line is "
            "the Pareto front (no other network has both fewer FLOPs and lower latency).",
            lambda: _fig().latency_vs_macs_figure(i.df),
        ),
        Plot(
            "flops_vs_flops",
            "FLOPS vs FLOPs (MACs), networks",
            "Achieved FLOPS (GMAC/s) against FLOPs (MACs, G) per network, grey diamonds: the paper's: a "
            "network with few FLOPs but low FLOPS is not fast.",
            lambda: _fig().flops_vs_flops_figure(i.df),
        ),
        Plot(
            "roofline",
            "Roofline per device",
            "Achieved GFLOP/s (2 × MACs / latency) against arithmetic intensity (FLOP per counted byte), log-log; "
            "lines: compute and bandwidth ceilings from probe records, where present; a red ring marks a point "
            "above a measured roof (the probe fell short).",
            lambda: _fig().roofline_figure(i.df, i.ceilings),
        ),
    ]


def _figures(i: Inputs, draw: Draw) -> Part:
    return Part("".join(_html.figure(p.name, p.title, p.caption, draw(p)) for p in _figure_plots(i)))


def _table1(i: Inputs, draw: Draw) -> Part:
    return Part(_html.table1(*_tab.table1_wide(i.df)))


def _runtimes(i: Inputs, draw: Draw) -> Part:
    gmacs, verdicts = _tab.runtime_comparison(i.results, i.claims)
    return Part(_html.runtimes(gmacs, verdicts), {"runtime_comparison": gmacs})


def _allocators(i: Inputs, draw: Draw) -> Part:
    rows, claims = _sens.allocator_table(i.df), _sens.allocator_claims(i.claims)
    return Part(_html.allocators(rows, claims), {"allocator_sensitivity": rows, "allocator_claims": claims})


def _paper(i: Inputs, draw: Draw) -> Part:
    pvd = _tab.paper_vs_device(i.df)
    return Part(_html.paper_vs_device(pvd), {"paper_vs_device": pvd})


def _failed(i: Inputs, draw: Draw) -> Part:
    fails = _tab.failures(i.df)
    return Part(_html.failures(fails), {"failures": fails})


def _ceilings(i: Inputs, draw: Draw) -> Part:
    c = i.ceilings
    html = _html.ceilings(c, _tab.theoretical_roofs(i.df, c), _tab.above_roof(i.df, c), list(i.devices.device))
    return Part(html, {"ceilings": c})


def _environment(i: Inputs, draw: Draw) -> Part:
    env = _tab.environment(i.df)
    return Part(_html.environment(env), {"environment": env})


#: The report, section by section in the order of the page: adding a section is adding one object here.
SECTIONS: tuple[Section, ...] = (
    Section("answer", "The claims at a glance", _answer, lead=True),
    Section(
        "claims",
        "The paper's claims on these devices",
        lambda i, d: Part(_html.claims(i.claims), {"verdicts": i.claims}),
    ),
    Section("figures", "Figures", _figures),
    Section("table1", "Table 1 analog: on-device FLOPS of single operators", _table1),
    Section("runtimes", "Runtimes: GMAC/s and claims per runtime", _runtimes),
    Section("allocators", "Allocator sensitivity: tuned, system, jemalloc, tcmalloc", _allocators),
    Section("runtime-claims", _rtc.TITLE, lambda i, draw: _rtc.section(i.claims, draw)),
    Section(
        "breakdown",
        "Where a network's time goes: per-layer breakdown",
        lambda i, draw: _breakdown.section(i.files, draw),
    ),
    Section("devices", "Devices", lambda i, d: Part(_html.devices(i.devices), {"devices": i.devices})),
    Section("paper", "The paper vs this device", _paper),
    Section("results", "All measurements", lambda i, d: Part(_html.results(i.results), {"results": i.results})),
    Section("failed", "Failed and unsupported measurements", _failed),
    Section("ceilings", "Device ceilings (roofline)", _ceilings),
    Section("environment", "Environment per device", _environment),
    Section("method", "How the numbers are made", lambda i, d: Part(_html.method(NOTES))),
)


class _Drawer:
    """What the sections hand their figures to: each is taken from the cache or drawn, then written whole."""

    def __init__(self, out: Path, summary: ReportSummary, cache: FigureCache) -> None:
        self.out, self.summary, self.cache = out, summary, cache

    def __call__(self, plot: Plot) -> bytes | str:
        got = self.cache.get(plot.name)
        if got is None:
            fig = plot.draw()
            got = fig if isinstance(fig, str) else _png_svg(fig)
            self.cache.put(plot.name, got)
        if isinstance(got, str):
            self.summary.not_drawn[plot.name] = got
            return got
        png, svg = got
        files = (self.out / f"{plot.name}.png", self.out / f"{plot.name}.svg")
        _write_whole(files[0], png)
        _write_whole(files[1], svg)
        self.summary.figures[plot.name] = files
        return png


def _load(files: list[Path], named: list, runtimes: Iterable[str] | None) -> pd.DataFrame:
    """The merged frame of ``files``, only ``runtimes`` (probes kept) when given; a UserError when empty."""
    df = load_frame(files)
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
    return df


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
    files = list(iter_result_files(named))  # once: its notes on folders are said once, not per section
    runtimes = list(runtimes) if runtimes else None
    df = _load(files, named, runtimes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A report killed half-way must not leave an older index.html looking current beside new files:
    # the old page goes first, every file is written whole (temporary name, then rename), the page last.
    (out / "index.html").unlink(missing_ok=True)
    inputs = Inputs(df, files)
    summary = ReportSummary(out_dir=out, index=out / "index.html", claims=inputs.claims)
    cache = FigureCache(files, runtimes)
    draw = _Drawer(out, summary, cache)
    html = {}
    for section in sorted(SECTIONS, key=lambda s: s.lead):  # the lead, a summary of the rest, last
        part = section.build(inputs, draw)
        for name, frame in part.csv.items():
            summary.csv[name] = out / f"{name}.csv"
            _write_whole(summary.csv[name], frame.to_csv(index=False).encode("utf-8"))
        html[section.id] = part.html
    page = _html.Page(
        title=title,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        inputs=[Path(p).name or str(p) for p in named],
        sections=[(s.id, s.title, html[s.id], s.lead) for s in SECTIONS],
    )
    _write_whole(summary.index, _html.render(page).encode("utf-8"))
    cache.save()
    summary.devices = list(inputs.devices.device)
    summary.n_rows = len(df)
    summary.n_failed = int((df.status != "ok").sum())
    summary.n_unstable = int(((df.status == "ok") & ~df.stable.fillna(False).astype(bool)).sum())
    return summary
