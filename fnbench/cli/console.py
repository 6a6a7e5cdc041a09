"""What fnbench prints on a terminal: tables of records, their footnotes, SI numbers, progress bars.

The library measures and returns records; this module (and each command's printer in
:mod:`fnbench.cli`) turns them into rich tables. Rounding happens here and only here: records keep
raw seconds.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .. import allocators
from .. import results as _results
from ..units import fmt_ms, gmacs_per_s, gmacs_per_s_ci, per_second, si

__all__ = [
    "si",
    "fmt_int",
    "fmt_si",
    "fmt_faults",
    "terminal",
    "format_table",
    "table_notes",
    "progress_bar",
    "progress_reporter",
    "stderr_console",
    "claims_table",
]


def terminal(stderr: bool = False) -> Console:
    """The console a command prints its tables (stdout) or its progress and notes (stderr) on."""
    stream = sys.stderr if stderr else sys.stdout
    # Piped output (files, CI logs, tests) gets a wide table instead of rich's 80-column default.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


def fmt_int(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def fmt_si(n: float | None, unit: str = "") -> str:
    return si(n, unit, digits=5, sep=" ", largest="T", none="—")


def fmt_faults(per_iter: float | None, mem_bytes: float | None) -> str:
    """Minor page faults per timed iteration, in red with ⚠ where they exceed the fault rule."""
    if per_iter is None:
        return "—"
    text = f"{per_iter:,.0f}" if per_iter >= 10 else f"{per_iter:.2g}"
    return f"[red]{text} ⚠[/red]" if allocators.faults_flag(per_iter, mem_bytes) else text


def stderr_console() -> Console:
    """The console progress and notes go to (stderr: stdout stays for tables and ``--json``)."""
    return Console(file=sys.stderr)


def progress_bar(console: Console | None = None, *, disable: bool = False) -> Progress:
    """A progress bar with done/total, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console or stderr_console(),
        disable=disable,
        transient=False,
    )


@contextlib.contextmanager
def progress_reporter(
    enabled: bool = True, console: Console | None = None
) -> Iterator[Callable[[str, int, int], None] | None]:
    """A ``progress(description, done, total)`` callback for the library, drawing a bar with ETA.

    The bar appears at the first call, so input refused before any measuring leaves no bar behind;
    an empty description keeps the last one. Yields None when ``enabled`` is false.
    """
    if not enabled:
        yield None
        return
    bar = progress_bar(console)
    task = None

    def update(description: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total, completed=done)
        bar.update(task, completed=done, total=total, **({"description": description} if description else {}))

    try:
        yield update
    finally:
        bar.stop()


def format_table(records: Sequence[dict[str, Any]], *, title: str | None = None) -> Table:
    """A rich table of records: cost, latency median with 95 % CI, throughput, GMAC/s with CI, page
    faults per iteration, stability (with the half-width reached when a row did not settle).

    Rounding happens here and only here; the records keep raw seconds.
    """
    table = Table(title=title, show_lines=False)
    show_runtime = any(
        r.get("runtime", "eager") != "eager" or r.get("memory_format", "contiguous") != "contiguous" for r in records
    )
    allocs = {_results.record_allocator(r) for r in records}
    show_alloc = len(allocs) > 1 or allocs - {allocators.DEFAULT_ALLOCATOR}
    table.add_column("target")
    if show_runtime:
        table.add_column("runtime")
    if show_alloc:
        table.add_column("allocator")
    table.add_column("shape")
    table.add_column("batch", justify="right")
    table.add_column("FLOPs (MACs)", justify="right")
    table.add_column("latency ms", justify="right")
    table.add_column("95% CI ms", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_column("GMAC/s", justify="right")
    table.add_column("GMAC/s 95% CI", justify="right")
    table.add_column("faults/iter", justify="right")
    table.add_column("stable")
    for r in records:
        t = r.get("target") or {}
        opts = t.get("options") or {}
        name = t.get("name", "?") + (f"[{','.join(f'{k}={v}' for k, v in sorted(opts.items()))}]" if opts else "")
        if t.get("layers"):
            name += f" ×{t['layers']}"
        shape = "x".join(map(str, r.get("shape") or [])) or "–"
        st = r.get("stats") or {}
        status = r.get("status", "ok")
        rt = (
            [r.get("runtime", "eager") + ("/cl" if r.get("memory_format") == "channels_last" else "")]
            if show_runtime
            else []
        )
        rt += [_results.record_allocator(r)] if show_alloc else []
        if status != "ok" or not st:
            table.add_row(
                name,
                *rt,
                shape,
                str(r.get("batch", "")),
                "–",
                status,
                (r.get("error") or "")[:60],
                "–",
                "–",
                "–",
                "–",
                "[red]no[/red]",
            )
            continue
        macs = (r.get("cost") or {}).get("macs")
        med, lo, hi = st.get("median_s"), st.get("ci95_low_s"), st.get("ci95_high_s")
        thr = per_second(r.get("batch", 1), med)
        gm, (glo, ghi) = gmacs_per_s(macs, med), gmacs_per_s_ci(macs, lo, hi)
        if st.get("stable"):
            stable = "[green]yes[/green]"
        else:
            hw, target = st.get("rel_ci_halfwidth"), st.get("precision")
            stable = "[yellow]no[/yellow]" + (
                f" ±{hw:.1%}>±{target:.0%}" if hw is not None and target and hw > target else ""
            )
        fpi = st.get("minor_faults_per_iter")
        faults = "–" if fpi is None else (f"{fpi:,.0f}" if fpi >= 10 else f"{fpi:.2g}")
        if st.get("faults_flag"):
            faults = f"[red]{faults} ⚠[/red]"
        if st.get("launch_bound"):  # the GPU idled between kernels: the row measures launch overhead
            stable += " [magenta]launch-bound[/magenta]"
        table.add_row(
            name,
            *rt,
            shape,
            str(r.get("batch", "")),
            si(macs),
            fmt_ms(med),
            f"{fmt_ms(lo)}–{fmt_ms(hi)}" if (st.get("rounds") or 0) >= 2 else "n/a: 1 round",
            f"{thr:.1f}" if thr else "–",
            f"{gm:.2f}" if gm is not None else "–",
            f"{glo:.2f}–{ghi:.2f}" if glo is not None and ghi is not None and (st.get("rounds") or 0) >= 2 else "–",
            faults,
            stable,
        )
    return table


def table_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    """Footnotes for :func:`format_table`: the precision rule, the fault rule, and each flagged row."""
    notes = []
    oks = [r for r in records if r.get("status", "ok") == "ok" and r.get("stats")]
    unstable = [r for r in oks if not r["stats"].get("stable")]
    if unstable:
        p = unstable[0]["stats"].get("precision")
        notes.append(
            f"stable: the 95% CI of the median is within ±{p:.0%} of it (--precision); {len(unstable)} of "
            f"{len(oks)} rows did not get there within --budget (the half-width reached is shown)."
        )
    flagged = [r for r in oks if r["stats"].get("faults_flag")]
    for r in flagged:
        notes.append(
            f"⚠ {r['target']['name']} {'x'.join(map(str, r.get('shape') or []))} "
            f"({_results.record_allocator(r)}): {r['stats']['faults_flag']}"
        )
    if oks and not flagged:
        notes.append(
            f"faults/iter: minor page faults per timed iteration; none of these rows faults above "
            f"{allocators.FAULT_FRACTION_LIMIT:.0%} of the bytes it moves."
        )
    notes += _timed_note(oks) + _contention_note(oks)
    refs = [x for r in oks for x in ((r.get("faults") or {}).get("ref_s") or [])]
    if len(refs) >= 10:
        lo, mid, hi = np.percentile(refs, [10, 50, 90])
        if hi / lo > 1.1:
            notes.append(
                f"this machine's own speed moved during the run: a fixed reference kernel timed before every "
                f"round took {fmt_ms(lo)}–{fmt_ms(hi)} ms (10th–90th percentile, median {fmt_ms(mid)}), "
                "so no row can be steadier than that (another tenant on the core or the host's clock)."
            )
    return notes


#: A row that spent less than this share of its wall time timing is named under the table.
TIMED_FRACTION_NOTE = 0.5


def _timed_note(oks: Sequence[dict[str, Any]]) -> list[str]:
    """The rows that spent under :data:`TIMED_FRACTION_NOTE` of their wall time inside timed blocks."""
    low = [
        (r, r["stats"]["timed_fraction"])
        for r in oks
        if (r["stats"].get("timed_fraction") or 1.0) < TIMED_FRACTION_NOTE
    ]
    if not low:
        return []
    rows = ", ".join(f"{r['target']['name']} {'x'.join(map(str, r.get('shape') or []))} {f:.0%}" for r, f in low)
    return [
        f"timed: {len(low)} row(s) spent under {TIMED_FRACTION_NOTE:.0%} of their wall time timing ({rows}); the rest "
        "went to preparing fresh processes and fresh copies of the model (stats.timed_fraction)"
    ]


#: A row whose timed blocks waited for a CPU more than this share of their time was not alone on its core.
WAIT_FRACTION_NOTE = 0.05


def _contention_note(oks: Sequence[dict[str, Any]]) -> list[str]:
    """The rows whose timed blocks spent over :data:`WAIT_FRACTION_NOTE` of their time waiting for a CPU."""
    busy = [
        (r, r["stats"]["wait_fraction"]) for r in oks if (r["stats"].get("wait_fraction") or 0.0) > WAIT_FRACTION_NOTE
    ]
    if not busy:
        return []
    rows = ", ".join(f"{r['target']['name']} {'x'.join(map(str, r.get('shape') or []))} {f:.0%}" for r, f in busy)
    return [
        f"⚠ contended: {len(busy)} row(s) waited for a CPU during more than {WAIT_FRACTION_NOTE:.0%} of their timed "
        f"iterations ({rows}): another process ran on their core, so their latencies are inflated (the longer an "
        "iteration, the more); measure again on a quiet machine (stats.wait_fraction)"
    ]


def _x(v) -> str:
    return "–" if v is None or v != v else f"{v:.3g}×"


def claims_table(compact, footnotes: Sequence[tuple[int, str, str]] = ()) -> tuple[Table, list[str]]:
    """The report's compact claims table for a terminal, and its footnotes (one per device and set-up).

    ``compact`` is :func:`fnbench.report.tables.compact_claims`'s frame: claim · device · ratio
    [95% CI] · paper · direction · reproduction (measured / paper).
    """
    t = Table(title="The paper's claims on these devices", title_justify="left")
    for col in ("claim", "device", "ratio [95% CI]", "paper", "direction", "reproduction"):
        t.add_column(
            col, justify="left" if col in ("claim", "device", "direction", "reproduction") else "right", no_wrap=True
        )
    several = compact.setup.nunique() > 1  # the set-up is named only where it tells rows apart
    for r in compact.itertuples():
        paper = "–" if r.paper_ratio != r.paper_ratio else f"{_x(r.paper_ratio)} ({str(r.paper_device).upper()})"
        t.add_row(
            r.claim,
            r.device + (f" ({r.setup})" if several else "") + (f" [{int(r.footnote)}]" if r.footnote else ""),
            f"{_x(r.ratio)} [{r.ci95_low:.3g}–{r.ci95_high:.3g}]",
            paper,
            r.direction,
            r.reproduction
            + ("" if r.measured_over_paper != r.measured_over_paper else f" ({_x(r.measured_over_paper)})"),
        )
    return t, [f"[{n}] {where}: {text}" for n, where, text in footnotes]
