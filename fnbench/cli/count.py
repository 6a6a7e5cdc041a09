"""``fnbench count``: a target's parameters, MACs, bytes and arithmetic intensity, and their table."""

from __future__ import annotations

from typing import Any

import click

from ..options import DEFAULT_BATCH
from ..results import json_document
from .app import cli
from .params import make_spec, target_options


@cli.command()
@click.argument("target")
@target_options
@click.option(
    "--by", type=click.Choice(["module", "operator"]), help="Also break the counts down per module or per aten op."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")
def count(target: str, shape, batch, layers, by, as_json, **options) -> None:
    """Params, MACs, FLOPs, memory bytes (analytic and counted) and arithmetic intensity of TARGET.

    TARGET is a name from `fnbench list`, timm:NAME, tv:NAME, FILE.py:NAME or package.module:NAME
    (a target file is Python that fnbench runs), or model.onnx (counted from the graph).
    """
    from ..target_cost import target_cost

    spec = make_spec(target, shape, DEFAULT_BATCH if batch is None else batch, layers, **options)
    report = target_cost(spec, breakdown=by)
    if as_json:
        click.echo(json_document(report, indent=2))
        return
    _print_count(report, by)


def _print_count(r: dict[str, Any], by: str | None) -> None:
    """The counts as a table, the ops that were not counted, and the breakdown ``--by`` asks for."""
    from .console import terminal

    con = terminal()
    con.print(_count_table(r))
    if r["uncounted_ops"]:
        con.print(
            "executed but not counted (arithmetic, no FLOP formula): "
            + ", ".join(f"{k} x{v}" for k, v in r["uncounted_ops"].items())
        )
    if r["zero_flop_ops"]:
        con.print(
            "zero-FLOP data movement (bytes counted): " + ", ".join(f"{k} x{v}" for k, v in r["zero_flop_ops"].items())
        )
    if by:
        con.print(_by_table(r["by_" + by], by))


def _count_table(r: dict[str, Any]):
    """One row per quantity, each with what it was checked against (the paper, the analytic model, fvcore)."""
    from rich.table import Table

    from .console import fmt_int, fmt_si

    title = f"{r['target']}  {'x'.join(map(str, r['shape']))}  batch {r['batch']}"
    if r.get("layers"):
        title += f"  {r['layers']} layers"
    if r.get("options"):
        title += "  " + " ".join(f"{k}={v}" for k, v in r["options"].items())
    t = Table(title=title, title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("params", fmt_int(r["params"]), _params_note(r))
    macs_note = [f"paper {fmt_si(r['paper_macs'])}"] if r.get("paper_macs") else []
    if r["macs_analytic"] is not None:
        macs_note.append(f"analytic {fmt_si(r['macs_analytic'])}")
    t.add_row("FLOPs (MACs)", fmt_si(r["macs"]), "; ".join(macs_note))
    t.add_row(
        "  fvcore",
        fmt_si(r["macs_fvcore_mac_ops"]),
        r["fvcore_error"] or f"MAC ops; all ops incl. norm/pool: {fmt_si(r['macs_fvcore'])}",
    )
    t.add_row(
        "  FlopCounterMode / 2",
        fmt_si(r["macs_flopcounter"]),
        "agrees with fvcore" if r["macs_agree"] else "DIFFERS from fvcore" if r["macs_agree"] is False else "",
    )
    t.add_row("flops (2 x MACs)", fmt_si(r["flops"]), "")
    t.add_row(
        "mem_bytes_analytic",
        fmt_si(r["mem_bytes_analytic"], "B"),
        "paper's formula x element size"
        if r["mem_bytes_analytic"] is not None
        else "no analytic model (networks, your own targets)",
    )
    t.add_row("mem_bytes_counted", fmt_si(r["mem_bytes_counted"], "B"), "every executed aten op, read + written")
    ai_a, ai_c = r["arithmetic_intensity_analytic"], r["arithmetic_intensity_counted"]
    t.add_row("arithmetic intensity", f"{ai_c:.2f}", "FLOP/byte (counted)" + (f"; analytic {ai_a:.2f}" if ai_a else ""))
    return t


def _params_note(r: dict[str, Any]) -> str:
    from .console import fmt_int

    if r["params_analytic"] is None:
        return "counted from the module"
    if r["params_analytic"] == r["params"]:
        return "analytic = module"
    return f"analytic {fmt_int(r['params_analytic'])} DIFFERS"


def _by_table(rows: dict[str, dict[str, Any]], by: str):
    """Calls, MACs and bytes per module or per aten op (``--by``)."""
    from rich.table import Table

    from .console import fmt_int

    t = Table(title=f"by {by}", title_justify="left")
    for col in (by, "aten calls", "MACs", "bytes read", "bytes written"):
        t.add_column(col, justify="left" if col == by else "right")
    for name, s in rows.items():
        t.add_row(
            name or "(whole)",
            str(s["calls"]),
            fmt_int(s["macs"]),
            fmt_int(s["bytes_read"]),
            fmt_int(s["bytes_written"]),
        )
    return t
