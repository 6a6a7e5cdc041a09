"""``fnbench breakdown``: where a network's time goes, layer by layer and by operator kind, and its tables."""

from __future__ import annotations

import click

from .. import units
from ..errors import UserError
from ..options import DEFAULT_BATCH, DEFAULT_BREAKDOWN_BUDGET_S, DEFAULT_LAYER_BUDGET_S, DEFAULT_RUNTIME
from ..results import json_document
from .app import cli
from .params import allocator_option, device_option, out_option, target_options, target_specs, threads_option
from .reexec import preloaded_or_reexec


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--suite", help="Break down every target of a suite (e.g. networks) instead of TARGETS.")
@target_options
@device_option
@click.option(
    "--runtime",
    default=DEFAULT_RUNTIME,
    show_default=True,
    help="eager; compile, onnxruntime and openvino fuse layers and are refused (no honest per-layer time).",
)
@threads_option(", the paper's protocol")
@click.option(
    "--budget",
    type=float,
    default=DEFAULT_BREAKDOWN_BUDGET_S,
    show_default=True,
    help="Seconds for the whole network (half before the layers, half after).",
)
@click.option(
    "--layer-budget", type=float, default=DEFAULT_LAYER_BUDGET_S, show_default=True, help="Seconds per layer."
)
@click.option("--top", type=int, default=12, show_default=True, help="Layers to print, slowest first (all are stored).")
@out_option
@allocator_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (run id, path, records) on stdout.")
def breakdown(
    targets,
    suite,
    shape,
    batch,
    layers,
    device,
    runtime,
    threads,
    budget,
    layer_budget,
    top,
    out_dir,
    allocator,
    as_json,
    **options,
) -> None:
    """Where TARGET's time goes: every layer's kind, cost and standalone latency, grouped by operator kind.

    Each layer is timed on its recorded input with the engine and conditions of the whole network,
    which is measured in the same run; the sum of the layers is printed beside it, and with
    `fnbench probe` records in OUT the FLOPs-only and roofline predictions of the latency too.
    """
    from ..layers import run_breakdown
    from .console import progress_reporter, terminal

    if not targets and not suite:
        raise UserError("name a target (e.g. `fnbench breakdown fasternet_t0`) or a suite (--suite networks)")
    if top < 0:
        raise UserError(f"--top {top} is negative: use 0 or more layers")
    preloaded_or_reexec(allocator)
    specs = target_specs(suite, list(targets), shape, DEFAULT_BATCH if batch is None else batch, layers, options)
    with progress_reporter(not as_json, terminal(stderr=True)) as progress:
        run_id, path, records, failed = run_breakdown(
            specs,
            device=device,
            threads=threads,
            batch=batch,
            budget_s=budget,
            layer_budget_s=layer_budget,
            runtime=runtime,
            out_dir=out_dir,
            allocator=allocator,
            progress=progress,
        )
    from ..report import breakdown as bd
    from ..results import iter_result_files, read_records

    probes = [
        r for f in iter_result_files(out_dir) for r in read_records(f) if (r.get("target") or {}).get("kind") == "probe"
    ]
    ok = [r for r in records if r.get("status") == "ok"]
    preds = [bd.predictions(r, bd.device_ceilings(probes, r["device"]["key"])) for r in ok]
    if as_json:
        click.echo(
            json_document(
                {
                    "run_id": run_id,
                    "path": str(path),
                    "records": records,
                    "predictions": preds,
                    "predictors": bd.predictor_summary(pd_frame(preds)).to_dict("records"),
                }
            )
        )
    else:
        _print_breakdown(records, preds, probes, top, bd)
        terminal().print(f"run id: {run_id}\nresults: {path}")
    if failed:
        raise SystemExit(1)


def pd_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=None if rows else ["device_key"])


# -- the printer: per network its kinds, slowest layers and gap, then the predictions over all of them ----------
def _ms(v) -> str:
    return units.fmt_ms(v, none="—")


def _pct(v) -> str:
    return units.fmt_pct(v, none="—")


def _nan(v) -> bool:
    return v is None or v != v


def _table(title: str, columns, left=()):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, justify="left" if col in left else "right")
    return t


def _print_breakdown(records, preds, probes, top, bd) -> None:
    from .console import terminal

    con = terminal()
    for rec in records:
        if rec.get("status") != "ok":
            con.print(f"{bd.label(rec)}: {rec.get('status')}: {rec.get('error')}")
            continue
        con.print(_kind_table(rec, bd))
        if top:
            con.print(_slowest_layers(rec, top, bd))
        for line in _gap_lines(rec):
            con.print(line)
    if preds:
        _print_predictions(con, records, preds, probes, bd)


def _kind_table(rec, bd):
    """Where the time goes by operator kind: each kind's share of the MACs beside its share of the time."""
    from .console import fmt_si

    t = _table(
        f"{bd.label(rec)}: by operator kind ({len(rec['layers'])} layers, each timed standalone)",
        ("kind", "layers", "FLOPs (MACs)", "share of MACs", "time ms", "share of time", "GMAC/s"),
        left=("kind",),
    )
    for r in bd.kind_table(rec).itertuples():
        t.add_row(
            r.kind,
            str(r.layers),
            fmt_si(r.macs),
            _pct(r.share_macs),
            _ms(r.time_s),
            _pct(r.share_time),
            "—" if _nan(r.gmacs_per_s) or not r.macs else f"{r.gmacs_per_s:.2f}",
        )
    return t


def _slowest_layers(rec, top: int, bd):
    """The ``top`` slowest layers: cost, intensity, latency with its interval, and share of the time."""
    from .console import fmt_int, fmt_si

    lt = bd.layer_table(rec).sort_values("median_s", ascending=False).head(top)
    columns = ("layer", "kind", "input", "params", "MACs", "bytes", "FLOP/B", "ms", "95% CI ms", "GMAC/s", "share")
    t = _table(f"slowest {len(lt)} layers", columns, left=("layer", "kind", "input"))
    for r in lt.itertuples():
        t.add_row(
            r.name or "(root)",
            r.kind,
            r.input_shape or "—",
            fmt_int(r.params),
            fmt_si(r.macs),
            fmt_si(r.bytes, "B"),
            "—" if _nan(r.intensity_flop_per_byte) else f"{r.intensity_flop_per_byte:.1f}",
            _ms(r.median_s),
            f"{_ms(r.ci95_low_s)}–{_ms(r.ci95_high_s)}",
            f"{r.gmacs_per_s:.2f}" if r.macs else "—",
            _pct(r.share_time),
        )
    return t


def _gap_lines(rec) -> list[str]:
    """The sum of the layers against the whole network: medians, and means and minima where stored."""
    e2e, whole = rec["end_to_end"]["stats"], rec["end_to_end"]
    lines = [
        f"sum of per-layer medians {_ms(rec['sum_s'])} ms vs end-to-end {_ms(e2e['median_s'])} ms "
        f"(95% CI {_ms(e2e['ci95_low_s'])}–{_ms(e2e['ci95_high_s'])}; before the layers "
        f"{_ms(whole['before_median_s'])}, after {_ms(whole['after_median_s'])}): gap {_pct(rec['gap'])}"
    ]
    if rec.get("gap_mean") is not None:
        lines.append(
            f"sum of per-layer means {_ms(rec['sum_mean_s'])} ms vs end-to-end mean "
            f"{_ms(whole['mean_s'])} ms: gap {_pct(rec['gap_mean'])}; minima "
            f"{_ms(rec['sum_min_s'])} vs {_ms(whole['min_s'])} ms: gap {_pct(rec['gap_min'])}"
        )
    return lines


def _print_predictions(con, records, preds, probes, bd) -> None:
    """Predicted against measured latency per network, the layers the roofline misjudges, one number per predictor."""
    t = _table(
        "predicted vs measured latency (ms; error = predicted / measured - 1)",
        ("network", "measured", "FLOPs-only", "error", "roofline", "error", "per-layer sum", "error"),
        left=("network",),
    )
    for p in preds:
        t.add_row(
            p["network"],
            _ms(p["measured_s"]),
            *[x for k in bd.PREDICTORS for x in (_ms(p[f"{k}_s"]), _pct(p[f"{k}_error"]))],
        )
    con.print(t)
    if any(p["roofline_s"] is None for p in preds):
        con.print(
            "no `fnbench probe` records for this device in the results directory: FLOPs-only and roofline "
            "not predicted (run `fnbench probe --out` to the same directory)"
        )
    ceil = bd.device_ceilings(probes, preds[0]["device_key"])
    for rec in records:
        misses = bd.roofline_misses(rec, ceil, top=3) if rec.get("status") == "ok" else ()
        if len(misses):
            con.print(
                f"{bd.label(rec)}: roofline misjudges most: "
                + "; ".join(
                    f"{m.name} ({m.kind}) {_ms(m.measured_s)} ms measured vs {_ms(m.roofline_s)} ms"
                    for m in misses.itertuples()
                )
            )
    if len(preds) >= 2:
        con.print(_predictor_table(preds, bd))


def _predictor_table(preds, bd):
    """Each predictor over the networks: rank correlation with the measured latency, median errors."""
    t = _table(
        f"one number per predictor over {len(preds)} networks",
        ("predictor", "networks", "Spearman rank corr.", "median |error|", "median error"),
        left=("predictor",),
    )
    for r in bd.predictor_summary(pd_frame(preds)).itertuples():
        t.add_row(
            r.predictor,
            str(r.networks),
            "—" if _nan(r.spearman) else f"{r.spearman:.2f}",
            _pct(r.median_abs_error),
            _pct(r.median_error),
        )
    return t
