"""``fnbench report``: stored records merged into an HTML report, CSVs and figures; the claims on the terminal."""

from __future__ import annotations

import click

from .app import cli


@cli.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--out", "out_dir", default="reports", show_default=True, help="Directory for index.html, CSVs and figures."
)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    help="Only these runtimes (eager, compile, onnxruntime, openvino, …); repeatable.",
)
def report(paths, out_dir, runtimes) -> None:
    """Merge result files (default: every file in results/) into reports/index.html, CSVs and figures."""
    from .. import checks
    from ..report import build_report
    from .console import terminal

    checks.writable_dir(out_dir)
    summary = build_report(list(paths) or ["results"], out_dir, runtimes=runtimes or None)
    con = terminal()
    if len(summary.claims):
        from ..report.tables import compact_claims, unsettled_footnotes
        from .console import claims_table

        measured = summary.claims[summary.claims.verdict != "not measured"]
        table, notes = claims_table(compact_claims(summary.claims), unsettled_footnotes(summary.claims))
        con.print(table)
        for note in notes:
            con.print(note, highlight=False)
        missing = sorted(set(summary.claims.claim) - set(measured.claim))
        if missing:
            con.print(f"not measured: {'; '.join(missing)} (see verdicts.csv)")
        con.print("each claim's answer as a sentence: the answer column of verdicts.csv")
    con.print(
        f"{summary.n_rows} measurements from {len(summary.devices)} device(s); "
        f"{summary.n_unstable} unstable, {summary.n_failed} failed or unsupported"
    )
    for name, why in summary.not_drawn.items():
        con.print(f"not drawn: {name}: {why}")
    con.print(f"report: {summary.index}")
