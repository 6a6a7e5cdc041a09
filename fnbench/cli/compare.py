"""``fnbench compare A B``: ratios of MACs, latency and FLOPS with their intervals, and their table."""

from __future__ import annotations

import click

from .. import units
from ..errors import UserError
from ..options import DEFAULT_BATCH, DEFAULT_COMPARE_BUDGET_S, DEFAULT_CUDA_BATCH, DEFAULT_LAYERS, DEFAULT_RUNTIME
from ..results import json_document
from .app import cli
from .params import allocator_option, device_option, threads_option
from .reexec import preloaded_or_reexec


@cli.command()
@click.argument("a")
@click.argument("b")
@device_option
@click.option("--shape", metavar="CxHxW", help="One shape (default: the four Table-1 maps for operators).")
@click.option("--layers", type=int, help=f"Layers per operator stack (default {DEFAULT_LAYERS}).")
@click.option(
    "--batch",
    type=int,
    default=None,
    help=f"Batch size (default {DEFAULT_BATCH}; cuda: {DEFAULT_CUDA_BATCH} unless given, {DEFAULT_BATCH} included).",
)
@threads_option()
@click.option(
    "--runtime",
    default=DEFAULT_RUNTIME,
    show_default=True,
    help="eager, compile, onnxruntime or openvino (`fnbench list runtimes`).",
)
@click.option(
    "--budget",
    type=float,
    default=DEFAULT_COMPARE_BUDGET_S,
    show_default=True,
    help="Upper bound on seconds per target per shape; each chunk stops early once its rounds are done.",
)
@click.option(
    "--from", "from_paths", multiple=True, help="Read A and B from these result files/directories instead of measuring."
)
@allocator_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_context
def compare(ctx, a, b, device, shape, layers, batch, threads, runtime, budget, from_paths, allocator, as_json) -> None:
    """Measure A and B in interleaved rounds; ratios B/A of MACs, latency and FLOPS with bootstrap CIs.

    With --from, A and B are read from stored records: --device, --shape, --runtime and
    --allocator pick among them; --layers, --batch, --threads and --budget say how to measure,
    which stored records cannot honour, and are refused.
    """
    from .. import allocators
    from .. import compare as cmp
    from ..targets import parse_shape

    allocators.check_allocator(allocator)
    sh = parse_shape(shape) if shape else None
    if from_paths:
        _refuse_measuring_options(ctx, ("layers", "batch", "threads", "budget"))
        result = cmp.compare_from_results(
            list(from_paths),
            a,
            b,
            device=None if device == "auto" else device,
            shape=sh,
            runtime=runtime,
            allocator=allocator,
        )
    else:
        preloaded_or_reexec(allocator)
        from .console import progress_reporter, terminal

        with progress_reporter(not as_json, terminal(stderr=True)) as progress:
            result = cmp.compare(
                a,
                b,
                device=device,
                shape=sh,
                layers=layers,
                batch=batch,
                threads=threads,
                runtime=runtime,
                budget_s=budget,
                progress=progress,
                allocator=allocator,
            )
    if as_json:
        click.echo(json_document(result.as_dict()))
        return
    _print_compare(result)


def _refuse_measuring_options(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Refuse options given on the command line that only a measurement can honour (``compare --from``)."""
    from click.core import ParameterSource

    given = [n for n in names if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
    if given:
        flags = " ".join(f"--{n} {ctx.params[n]}" for n in given)
        raise UserError(
            f"compare --from reads stored records and cannot apply {flags}: drop "
            f"{'it' if len(given) == 1 else 'them'} (the records say how they were measured), or measure "
            "anew without --from"
        )


def _print_compare(c) -> None:
    """Both targets and their ratio per shape, the geometric means, the verdict, the claim and the answer."""
    from ..compare import answer_text, verdict_line
    from .console import terminal

    con = terminal()
    con.print(_compare_table(c))
    if len(c.rows) > 1:
        (llo, lhi), (flo, fhi) = c.latency_ci, c.flops_ci
        con.print(
            f"geometric mean over {len(c.rows)} shapes: MACs {c.macs_ratio:.3f}x, latency {c.latency_ratio:.3f}x "
            f"(CI {llo:.3f}–{lhi:.3f}), FLOPS {c.flops_ratio:.3f}x (CI {flo:.3f}–{fhi:.3f})"
        )
    con.print(f"{verdict_line(c)}.")
    if c.claim["verdict"] != "not measured":
        con.print(_claim_line(c.claim))
    con.print(f"[bold]{answer_text(c)}[/bold]")


_COLUMNS = (
    "shape",
    "target",
    "FLOPs (MACs)",
    "bytes (counted)",
    "FLOP/byte",
    "latency ms",
    "95% CI ms",
    "GMAC/s",
    "GMAC/s 95% CI",
    "faults/iter",
)


def _compare_table(c):
    """A row per target per shape, then the ratio B/A with its interval, one section per shape."""
    from rich.table import Table

    t = Table(
        title=f"{c.a_name} vs {c.b_name} on {c.device} ({c.runtime}, threads {c.threads}, allocator "
        f"{c.allocator}); ratios are {c.b_name} / {c.a_name}",
        title_justify="left",
    )
    for col in _COLUMNS:
        t.add_column(col, justify="left" if col in ("shape", "target") else "right")
    for r in c.rows:
        for side in (r.a, r.b):
            t.add_row(*_side_row(side))
        flo, fhi = r.flops_ci
        t.add_row(
            "",
            "[bold]ratio[/bold]",
            f"{r.macs_ratio:.3f}x",
            "",
            "",
            f"{r.latency_ratio:.3f}x",
            f"{r.latency_ci.low:.3f}–{r.latency_ci.high:.3f}x",
            f"{r.flops_ratio:.3f}x",
            f"{flo:.3f}–{fhi:.3f}x",
            "",
            end_section=True,
        )
    return t


def _side_row(side) -> tuple[str, ...]:
    from .console import fmt_faults, fmt_si

    ci = side.ci95
    return (
        "x".join(map(str, side.spec.shape)),
        side.spec.name,
        fmt_si(side.macs),
        fmt_si(side.mem_bytes_counted, "B"),
        f"{side.intensity:.2f}" if side.intensity else "—",
        units.fmt_ms(side.median_s),
        f"{units.fmt_ms(ci.low)}–{units.fmt_ms(ci.high)}",
        f"{side.gmacs_per_s:.2f}",
        "{:.2f}–{:.2f}".format(*side.gmacs_per_s_ci),
        fmt_faults(side.minor_faults_per_iter, side.mem_bytes_counted),
    )


def _claim_line(cl: dict) -> str:
    """The paper's claim these two targets test, with its statistic and interval."""
    per = ""
    if cl["per_map_ratio"] == cl["per_map_ratio"]:
        per = (
            f"; geometric mean of per-map ratios {cl['per_map_ratio']:.3g}x "
            f"(CI {cl['per_map_ci95_low']:.3g}–{cl['per_map_ci95_high']:.3g})"
        )
    return f'claim "{cl["claim"]}": {cl["statistic"]} = {cl["ratio"]:.3g}x (CI {cl["ci95_low"]:.3g}–{cl["ci95_high"]:.3g}){per}'
