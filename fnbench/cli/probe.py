"""``fnbench probe``: the device's ceilings for the roofline (peak GEMM FLOP/s, copy bandwidth), and their table."""

from __future__ import annotations

import click

from .. import units
from ..options import DEFAULT_PROBE_BUDGET_S
from ..results import json_document
from .app import cli
from .params import allocator_option, device_option, out_option, threads_option
from .reexec import preloaded_or_reexec


@cli.command()
@device_option
@threads_option(", as the timing default")
@click.option("--budget", type=float, default=DEFAULT_PROBE_BUDGET_S, show_default=True, help="Seconds per probe.")
@out_option
@allocator_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def probe(device, threads, budget, out_dir, allocator, as_json) -> None:
    """Measure the device's ceilings for the roofline: peak GEMM FLOP/s and copy bandwidth."""
    from .. import checks
    from ..probe import peak_text, run_probe
    from ..results import ceilings
    from .console import progress_reporter, terminal

    checks.writable_dir(out_dir)
    preloaded_or_reexec(allocator)
    with progress_reporter(not as_json, terminal(stderr=True)) as progress:
        run_id, path, records = run_probe(
            device=device, threads=threads, budget_s=budget, out_dir=out_dir, progress=progress, allocator=allocator
        )
    best = ceilings(records)
    peak = peak_text(records[0].get("env") or {}, best.get("compute_float32_flop_per_s"))
    if as_json:
        doc = {"run_id": run_id, "path": str(path), "ceilings": best, "theoretical_peak": peak, "records": records}
        click.echo(json_document(doc))
        return
    _print_probe(run_id, path, records, best, peak)


def _print_probe(run_id: str, path, records: list[dict], best: dict[str, float], peak: str | None) -> None:
    """A row per probe (latency, its interval, the rate it reached), then the best of each kind."""
    from .console import terminal

    con = terminal()
    con.print(_probe_table(run_id, records))
    con.print(
        "ceilings (best of each kind): "
        + ", ".join(
            f"{k.replace('_flop_per_s', '')} {v / 1e9:.2f} GFLOP/s"
            if k.endswith("flop_per_s")
            else f"copy {v / 1e9:.2f} GB/s"
            for k, v in best.items()
        )
    )
    if peak:
        con.print(peak)
    con.print(f"results: {path}")


def _probe_table(run_id: str, records: list[dict]):
    from rich.table import Table

    from ..results import probe_rate
    from .console import fmt_faults

    t = Table(
        title=f"probe {run_id} ({records[0]['device']['kind']}, threads {records[0]['threads']})", title_justify="left"
    )
    for col in ("probe", "size", "latency ms", "95% CI ms", "achieved", "faults/iter", "stable"):
        t.add_column(col, justify="left" if col == "probe" else "right")
    for r in records:
        st, cost = r["stats"], r["cost"]
        kind, per_s = probe_rate(r["target"]["name"], cost["flops"], cost["mem_bytes_counted"], st["median_s"])
        rate = (
            f"{per_s / 1e9:.2f} GB/s"
            if kind == "copy_bytes_per_s"
            else f"{per_s / 1e9:.2f} GFLOP/s (= {units.gmacs_per_s(cost['macs'], st['median_s']):.2f} GMAC/s)"
        )
        opts = r["target"]["options"]
        size = f"{opts['size']}x{opts['hw']}x{opts['hw']}" if "hw" in opts else str(opts["size"])
        ci = (
            f"{units.fmt_ms(st['ci95_low_s'])}–{units.fmt_ms(st['ci95_high_s'])}"
            if st.get("rounds", 0) >= 2 and st["ci95_high_s"] > st["ci95_low_s"]
            else f"— ({st.get('rounds', 0)} round: raise --budget)"
        )
        t.add_row(
            r["target"]["name"],
            size,
            units.fmt_ms(st["median_s"]),
            ci,
            rate,
            fmt_faults(st.get("minor_faults_per_iter"), cost.get("mem_bytes_counted")),
            "yes" if st["stable"] else "no",
        )
    return t
