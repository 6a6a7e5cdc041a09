"""The ``fnbench`` command: parse, call the library, print. No measurement logic lives here.

Errors: a :class:`~fnbench.errors.UserError` (or a click usage error) becomes one line on stderr
and exit code 2; a failed measurement exits 1. Tracebacks are for fnbench's own bugs only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import units
from .errors import UserError
from .results import json_document

__all__ = ["cli", "main"]

LIST_KINDS = ("ops", "networks", "suites", "devices", "runtimes")


def _fmt_int(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _fmt_si(n: float | None, unit: str = "") -> str:
    return units.si(n, unit, digits=5, sep=" ", largest="T", none="—")


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (files, CI logs, tests) gets a wide table instead of rich's 80-column default.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


_ALLOCATOR_HELP = (
    "Memory allocator: tuned (default: glibc with fixed mmap/trim thresholds, freed activations reused), "
    "system (malloc as the process got it), jemalloc or tcmalloc (preloaded)."
)
#: Set in the environment of a CLI re-executed with an allocator preloaded, so it is done once.
_PRELOAD_MARK = "FNBENCH_PRELOADED_ALLOCATOR"


def _preloaded_or_reexec(allocator: str) -> None:
    """For an in-process command under jemalloc/tcmalloc: re-execute this command with it preloaded.

    A library can only be preloaded when a process starts; ``compare`` and ``probe`` measure in
    their own process, so they start again with ``LD_PRELOAD`` set (once: a second time is an error).
    """
    import os

    from . import allocators

    allocators.check_allocator(allocator)
    if allocator not in allocators.LIBRARIES or allocator in allocators.loaded_libraries():
        return
    if os.environ.get(_PRELOAD_MARK) == allocator:
        raise UserError(
            f"--allocator {allocator}: {allocators.LIBRARIES[allocator][0]} was preloaded but is not "
            "mapped in the process (LD_PRELOAD ignored?); choose --allocator tuned"
        )
    env = allocators.preload_env(allocator)
    env[_PRELOAD_MARK] = allocator
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "fnbench", *sys.argv[1:]], env)


# -- target options shared by count / run / compare ------------------------------------------------
def target_options(fn):
    opts = [
        click.option(
            "--shape", metavar="CxHxW", help="Input shape per sample (operators: 96x56x56; networks: 3x224x224)."
        ),
        click.option(
            "--batch",
            type=int,
            default=None,
            help="Batch size (default 1; `run` on cuda: 32, the paper's throughput set-up).",
        ),
        click.option("--layers", type=int, help="Layers in an operator stack (default 10, as in the paper's Table 1)."),
        click.option("--n-div", "n_div", type=int, help="PConv partial ratio: c_p = C // n_div (default 4)."),
        click.option("--groups", type=int, help="Groups for gconv / gconv_pwconv (default 16)."),
        click.option(
            "--kernel",
            "k",
            type=int,
            help="Kernel size k (default 3; odd unless --padding is given: the "
            "output map is (H + 2·padding − k) // stride + 1).",
        ),
        click.option("--stride", type=int, help="Stride (default 1)."),
        click.option("--padding", type=int, help="Padding (default k // 2, 'same' at stride 1)."),
        click.option(
            "--forward", type=click.Choice(["split_cat", "slicing"]), help="PConv forward (default split_cat)."
        ),
        click.option(
            "--opt",
            "opt",
            multiple=True,
            metavar="KEY=VALUE",
            help="A keyword for a FILE.py:NAME target's factory, VALUE a Python literal (repeatable).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def make_spec(name: str, shape: str | None, batch: int, layers: int | None, **options: Any):
    from .targets import TargetSpec, parse_shape

    options = _with_opts(options)
    return TargetSpec.make(name, parse_shape(shape) if shape is not None else None, batch, layers, **options)


def _with_opts(options: dict[str, Any]) -> dict[str, Any]:
    """The flag options with ``--opt KEY=VALUE`` parsed into them (a key given both ways is refused)."""
    from .usertargets import parse_opts

    options = dict(options)
    extra = parse_opts(options.pop("opt", None) or ())
    for key, value in extra.items():
        if options.get(key) is not None:
            raise UserError(f"--opt {key} repeats an option given by its own flag; give it once")
        options[key] = value
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fnbench")
def cli() -> None:
    """Is an "efficient" operator actually faster on this hardware, and why?

    MACs are multiply-adds (the FasterNet paper's "FLOPs"); FLOPs = 2 x MACs.
    """


# -- list -------------------------------------------------------------------------------------------
@cli.command("list")
@click.argument("kind", required=False, type=click.Choice(LIST_KINDS))
@click.argument("pattern", required=False, default="*")
def list_cmd(kind: str | None, pattern: str) -> None:
    """List what exists: ops, networks, suites, devices, runtimes (PATTERN is shell-style, e.g. 'pconv*')."""
    from . import catalog

    for k in [kind] if kind else LIST_KINDS:
        rows = catalog.listing(k, pattern)
        if not kind:
            click.echo(f"{k}:")
        for name, summary in rows:
            click.echo(f"  {name:<28} {summary}" if summary else f"  {name}")
        if kind and not rows:
            raise UserError(f"no {kind} match {pattern!r}; try `fnbench list {kind}` without a pattern")


# -- count ------------------------------------------------------------------------------------------
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
    from .target_cost import target_cost

    spec = make_spec(target, shape, 1 if batch is None else batch, layers, **options)
    report = target_cost(spec, breakdown=by)
    if as_json:
        click.echo(json_document(report, indent=2))
        return
    _print_count(report, by)


def _print_count(r: dict[str, Any], by: str | None) -> None:
    from rich.table import Table

    con = _console()
    title = f"{r['target']}  {'x'.join(map(str, r['shape']))}  batch {r['batch']}"
    if r.get("layers"):
        title += f"  {r['layers']} layers"
    if r.get("options"):
        title += "  " + " ".join(f"{k}={v}" for k, v in r["options"].items())
    t = Table(title=title, title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    paper = r.get("paper_macs")
    if r["params_analytic"] is None:
        params_note = "counted from the module"
    elif r["params_analytic"] == r["params"]:
        params_note = "analytic = module"
    else:
        params_note = f"analytic {_fmt_int(r['params_analytic'])} DIFFERS"
    t.add_row("params", _fmt_int(r["params"]), params_note)
    macs_note = [f"paper {_fmt_si(paper)}"] if paper else []
    if r["macs_analytic"] is not None:
        macs_note.append(f"analytic {_fmt_si(r['macs_analytic'])}")
    t.add_row("FLOPs (MACs)", _fmt_si(r["macs"]), "; ".join(macs_note))
    t.add_row(
        "  fvcore",
        _fmt_si(r["macs_fvcore_mac_ops"]),
        r["fvcore_error"] or f"MAC ops; all ops incl. norm/pool: {_fmt_si(r['macs_fvcore'])}",
    )
    t.add_row(
        "  FlopCounterMode / 2",
        _fmt_si(r["macs_flopcounter"]),
        "agrees with fvcore" if r["macs_agree"] else "DIFFERS from fvcore" if r["macs_agree"] is False else "",
    )
    t.add_row("flops (2 x MACs)", _fmt_si(r["flops"]), "")
    t.add_row(
        "mem_bytes_analytic",
        _fmt_si(r["mem_bytes_analytic"], "B"),
        "paper's formula x element size"
        if r["mem_bytes_analytic"] is not None
        else "no analytic model (networks, your own targets)",
    )
    t.add_row("mem_bytes_counted", _fmt_si(r["mem_bytes_counted"], "B"), "every executed aten op, read + written")
    ai_a, ai_c = r["arithmetic_intensity_analytic"], r["arithmetic_intensity_counted"]
    t.add_row("arithmetic intensity", f"{ai_c:.2f}", "FLOP/byte (counted)" + (f"; analytic {ai_a:.2f}" if ai_a else ""))
    con.print(t)
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
        rows = r["by_" + by]
        bt = Table(title=f"by {by}", title_justify="left")
        for col in (by, "aten calls", "MACs", "bytes read", "bytes written"):
            bt.add_column(col, justify="left" if col == by else "right")
        for name, s in rows.items():
            bt.add_row(
                name or "(whole)",
                str(s["calls"]),
                _fmt_int(s["macs"]),
                _fmt_int(s["bytes_read"]),
                _fmt_int(s["bytes_written"]),
            )
        con.print(bt)


# -- run ----------------------------------------------------------------------------------------------
def _target_specs(suite, targets, shape, batch, layers, options):
    from .suites import get_suite

    if suite and targets:
        raise UserError("give either --suite or --target, not both")
    if targets:
        return [make_spec(t, shape, batch, layers, **options) for t in targets]
    if shape is not None or layers is not None or any(v not in (None, (), []) for v in options.values()):
        raise UserError("--shape, --layers and operator options apply to --target; suites fix their own")
    return get_suite(suite or "table1").specs(batch)


@cli.command()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, arm or cuda.")
@click.option("--suite", help="A suite from `fnbench list suites` (default: table1).")
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="A target to measure (repeatable): a name from `fnbench list`, timm:NAME, tv:NAME, "
    "FILE.py:NAME or package.module:NAME (a target file is Python that fnbench runs, here and in "
    "every worker), or model.onnx (measured under --runtime onnxruntime).",
)
@target_options
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    help="eager (default), compile, onnxruntime or openvino (`fnbench list runtimes`); repeatable.",
)
@click.option("--memory-format", default="contiguous", show_default=True, help="contiguous or channels_last.")
@click.option(
    "--dtype", default="float32", show_default=True, help="float32; float16 or bfloat16 on cuda (converted weights)."
)
@click.option("--threads", type=int, help="CPU threads (default 1, the paper's protocol).")
@click.option("--precision", type=float, default=None, help="Target relative half-width of the 95% CI (default 0.02).")
@click.option("--budget", type=float, default=None, help="Seconds of measurement per target (default 9).")
@click.option("--out", "out_dir", default="results", show_default=True, help="Directory for the results file.")
@click.option("--resume", help="RUN_ID of an interrupted run: measure only what it lacks.")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Fresh worker processes per pass (default 1; 0 = measure in this process, one pass).",
)
@click.option(
    "--passes",
    type=int,
    default=None,
    help="Passes over the suite, each on fresh processes with budget/passes per target (default 5).",
)
@click.option("--allocator", "allocators_", multiple=True, help=_ALLOCATOR_HELP + " Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (run id, path, records) on stdout.")
@click.pass_context
def run(
    ctx,
    device,
    suite,
    targets,
    shape,
    batch,
    layers,
    runtimes,
    memory_format,
    dtype,
    threads,
    precision,
    budget,
    out_dir,
    resume,
    workers,
    passes,
    allocators_,
    as_json,
    **options,
) -> None:
    """Measure a suite or targets on one device; records are appended to OUT/<run_id>.jsonl as they finish.

    --resume RUN_ID finishes an interrupted run with the options it was started with; options
    given with it must equal those.
    """
    from . import checks
    from .allocators import DEFAULT_ALLOCATOR
    from .console import format_table, progress_reporter, table_notes
    from .runner import DEFAULT_PASSES, run_suite
    from .timing import DEFAULT_BUDGET_S, DEFAULT_PRECISION

    if resume is not None:
        given = _resumed_options(ctx, resume, out_dir)
        device, suite, targets, shape, batch, layers = (
            given[k] for k in ("device", "suite", "targets", "shape", "batch", "layers")
        )
        runtimes, memory_format, dtype, threads = (given[k] for k in ("runtimes", "memory_format", "dtype", "threads"))
        precision, budget, workers, passes = (given[k] for k in ("precision", "budget", "workers", "passes"))
        allocators_ = given["allocators_"]
        options = {k: given[k] for k in options}
    checks.writable_dir(out_dir)
    checks.check_workers(workers)
    cli_options = {k: v for k, v in ctx.params.items() if k not in _NOT_STORED}
    cli_options.update(
        device=device,
        suite=suite,
        targets=list(targets),
        shape=shape,
        batch=batch,
        layers=layers,
        runtimes=list(runtimes),
        memory_format=memory_format,
        dtype=dtype,
        threads=threads,
        precision=precision,
        budget=budget,
        workers=workers,
        passes=passes,
        allocators_=list(allocators_),
        **options,
    )
    allocs = list(allocators_) or [DEFAULT_ALLOCATOR]
    if workers == 0 and len(allocs) == 1:  # measured in this process: it must start under the allocator
        _preloaded_or_reexec(allocs[0])
    # An explicit --batch (1 included) is honoured on every device; only an absent one lets cuda
    # default to 32.
    specs = _target_specs(suite, targets, shape, 1 if batch is None else batch, layers, options)
    err = _console(stderr=True)
    with progress_reporter(not as_json, err) as progress:
        summary = run_suite(
            specs,
            device=device,
            threads=threads,
            batch_override=batch,
            precision=DEFAULT_PRECISION if precision is None else precision,
            budget_s=DEFAULT_BUDGET_S if budget is None else budget,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            notify=None if as_json else (lambda line: err.print(line, highlight=False)),
            runtimes=runtimes or ("eager",),
            memory_format=memory_format,
            dtype=dtype,
            workers=workers,
            passes=DEFAULT_PASSES if passes is None else passes,
            allocator=allocs,
            cli_options=cli_options,
        )
    if as_json:
        click.echo(json_document({"run_id": summary.run_id, "path": str(summary.path), "records": summary.records}))
        if summary.failed:
            raise SystemExit(1)
        return
    con = _console()
    con.print(format_table(summary.records, title=f"run {summary.run_id}"))
    for note in table_notes(summary.records):
        con.print(note)
    con.print(f"run id: {summary.run_id}\nresults: {summary.path}")
    if summary.failed:
        raise SystemExit(1)


#: ``run`` parameters that are not part of what a run measures (not stored, free to change on resume).
_NOT_STORED = ("out_dir", "resume", "as_json")


def _resumed_options(ctx: click.Context, resume: str, out_dir: str) -> dict[str, Any]:
    """The resumed run's stored options, with those given on this command line checked against them."""
    from click.core import ParameterSource

    from .results import check_run_id, plan_path, read_plan

    rid = check_run_id(resume)
    plan = read_plan(plan_path(out_dir, rid))
    stored = (plan or {}).get("cli")
    if not isinstance(stored, dict):
        _refuse_lost_plan(ctx, rid, out_dir, plan)
        stored = {}
    values = dict(ctx.params)
    differ = []
    for name, value in ctx.params.items():
        if name in _NOT_STORED or name not in stored:
            continue
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            now = list(value) if isinstance(value, tuple) else value
            if now != stored[name]:
                flag = "--" + {
                    "targets": "target",
                    "runtimes": "runtime",
                    "k": "kernel",
                    "allocators_": "allocator",
                }.get(name, name).replace("_", "-")
                differ.append(f"{flag} {_show_opt(now)} (the run has {_show_opt(stored[name])})")
        else:
            values[name] = stored[name]
    if differ:
        raise UserError(
            f"--resume {resume}: options differ from the run's: "
            + "; ".join(differ)
            + f"; drop them to finish the run as started (`fnbench run --resume {resume}`)"
        )
    return values


def _refuse_lost_plan(ctx: click.Context, rid: str, out_dir: str, plan: dict[str, Any] | None) -> None:
    """A run whose plan is missing or unreadable is never resumed with the default suite.

    With no options given, its records say what it measured: they are the options to repeat.
    Given options are checked against the records when the file is opened (:class:`fnbench.results.RunFile`).
    """
    from pathlib import Path

    from click.core import ParameterSource

    from .results import options_from_records, plan_path, read_records

    run_path = Path(out_dir) / f"{rid}.jsonl"
    if not run_path.exists():
        return  # RunFile says there is no such run
    given = [
        n for n in ctx.params if n not in _NOT_STORED and ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE
    ]
    if given:
        return
    pp = plan_path(out_dir, rid)
    state = "missing" if not pp.exists() else ("unreadable" if plan is None else "without its options")
    flags = options_from_records(read_records(run_path, partial=True))
    raise UserError(
        f"--resume {rid}: the run's plan {pp} is {state}, so the options it was started with are not known; "
        f"its records were measured with `fnbench run --resume {rid} {flags} --out {out_dir}`: repeat those options"
    )


def _show_opt(v: Any) -> str:
    if isinstance(v, list):
        return " ".join(map(str, v)) if v else "none"
    return "default" if v is None else str(v)


# -- compare --------------------------------------------------------------------------------------------
@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, arm or cuda.")
@click.option("--shape", metavar="CxHxW", help="One shape (default: the four Table-1 maps for operators).")
@click.option("--layers", type=int, help="Layers per operator stack (default 10).")
@click.option("--batch", type=int, default=None, help="Batch size (default 1; cuda: 32 unless given, 1 included).")
@click.option("--threads", type=int, help="CPU threads (default 1).")
@click.option(
    "--runtime",
    default="eager",
    show_default=True,
    help="eager, compile, onnxruntime or openvino (`fnbench list runtimes`).",
)
@click.option(
    "--budget",
    type=float,
    default=8.0,
    show_default=True,
    help="Upper bound on seconds per target per shape; each chunk stops early once its rounds are done.",
)
@click.option(
    "--from", "from_paths", multiple=True, help="Read A and B from these result files/directories instead of measuring."
)
@click.option("--allocator", default="tuned", show_default=True, help=_ALLOCATOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_context
def compare(ctx, a, b, device, shape, layers, batch, threads, runtime, budget, from_paths, allocator, as_json) -> None:
    """Measure A and B in interleaved rounds; ratios B/A of MACs, latency and FLOPS with bootstrap CIs.

    With --from, A and B are read from stored records: --device, --shape, --runtime and
    --allocator pick among them; --layers, --batch, --threads and --budget say how to measure,
    which stored records cannot honour, and are refused.
    """
    from . import allocators
    from . import compare as cmp
    from .targets import parse_shape

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
        _preloaded_or_reexec(allocator)
        from .console import progress_reporter

        with progress_reporter(not as_json, _console(stderr=True)) as progress:
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
    from rich.table import Table

    from .compare import answer_text, verdict_line

    con = _console()
    t = Table(
        title=f"{c.a_name} vs {c.b_name} on {c.device} ({c.runtime}, threads {c.threads}, allocator "
        f"{c.allocator}); ratios are {c.b_name} / {c.a_name}",
        title_justify="left",
    )
    for col in (
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
    ):
        t.add_column(col, justify="left" if col in ("shape", "target") else "right")
    for r in c.rows:
        for side in (r.a, r.b):
            ci = side.ci95
            t.add_row(
                "x".join(map(str, side.spec.shape)),
                side.spec.name,
                _fmt_si(side.macs),
                _fmt_si(side.mem_bytes_counted, "B"),
                f"{side.intensity:.2f}" if side.intensity else "—",
                units.fmt_ms(side.median_s),
                f"{units.fmt_ms(ci.low)}–{units.fmt_ms(ci.high)}",
                f"{side.gmacs_per_s:.2f}",
                "{:.2f}–{:.2f}".format(*side.gmacs_per_s_ci),
                _fmt_faults(side.minor_faults_per_iter, side.mem_bytes_counted),
            )
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
    con.print(t)
    if len(c.rows) > 1:
        (llo, lhi), (flo, fhi) = c.latency_ci, c.flops_ci
        con.print(
            f"geometric mean over {len(c.rows)} shapes: MACs {c.macs_ratio:.3f}x, latency {c.latency_ratio:.3f}x "
            f"(CI {llo:.3f}–{lhi:.3f}), FLOPS {c.flops_ratio:.3f}x (CI {flo:.3f}–{fhi:.3f})"
        )
    con.print(f"{verdict_line(c)}.")
    cl = c.claim
    if cl["verdict"] != "not measured":
        per = ""
        if cl["per_map_ratio"] == cl["per_map_ratio"]:
            per = (
                f"; geometric mean of per-map ratios {cl['per_map_ratio']:.3g}x "
                f"(CI {cl['per_map_ci95_low']:.3g}–{cl['per_map_ci95_high']:.3g})"
            )
        con.print(
            f'claim "{cl["claim"]}": {cl["statistic"]} = {cl["ratio"]:.3g}x '
            f"(CI {cl['ci95_low']:.3g}–{cl['ci95_high']:.3g}){per}"
        )
    con.print(f"[bold]{answer_text(c)}[/bold]")


def _fmt_faults(per_iter: float | None, mem_bytes: float | None) -> str:
    from .allocators import faults_flag

    if per_iter is None:
        return "—"
    text = f"{per_iter:,.0f}" if per_iter >= 10 else f"{per_iter:.2g}"
    return f"[red]{text} ⚠[/red]" if faults_flag(per_iter, mem_bytes) else text


# -- probe ----------------------------------------------------------------------------------------------
@cli.command()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, arm or cuda.")
@click.option("--threads", type=int, help="CPU threads (default 1, as the timing default).")
@click.option("--budget", type=float, default=4.0, show_default=True, help="Seconds per probe.")
@click.option("--out", "out_dir", default="results", show_default=True, help="Directory for the results file.")
@click.option("--allocator", default="tuned", show_default=True, help=_ALLOCATOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def probe(device, threads, budget, out_dir, allocator, as_json) -> None:
    """Measure the device's ceilings for the roofline: peak GEMM FLOP/s and copy bandwidth."""
    from . import checks
    from .console import progress_reporter
    from .probe import peak_text, run_probe
    from .results import ceilings, probe_rate

    checks.writable_dir(out_dir)
    _preloaded_or_reexec(allocator)
    with progress_reporter(not as_json, _console(stderr=True)) as progress:
        run_id, path, records = run_probe(
            device=device, threads=threads, budget_s=budget, out_dir=out_dir, progress=progress, allocator=allocator
        )
    best = ceilings(records)
    peak = peak_text(records[0].get("env") or {}, best.get("compute_float32_flop_per_s"))
    if as_json:
        doc = {"run_id": run_id, "path": str(path), "ceilings": best, "theoretical_peak": peak, "records": records}
        click.echo(json_document(doc))
        return
    from rich.table import Table

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
            _fmt_faults(st.get("minor_faults_per_iter"), cost.get("mem_bytes_counted")),
            "yes" if st["stable"] else "no",
        )
    con = _console()
    con.print(t)
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


# -- breakdown ------------------------------------------------------------------------------------------
@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--suite", help="Break down every target of a suite (e.g. networks) instead of TARGETS.")
@target_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, arm or cuda.")
@click.option(
    "--runtime",
    default="eager",
    show_default=True,
    help="eager; compile, onnxruntime and openvino fuse layers and are refused (no honest per-layer time).",
)
@click.option("--threads", type=int, help="CPU threads (default 1, the paper's protocol).")
@click.option(
    "--budget",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds for the whole network (half before the layers, half after).",
)
@click.option("--layer-budget", type=float, default=0.1, show_default=True, help="Seconds per layer.")
@click.option("--top", type=int, default=12, show_default=True, help="Layers to print, slowest first (all are stored).")
@click.option("--out", "out_dir", default="results", show_default=True, help="Directory for the results file.")
@click.option("--allocator", default="tuned", show_default=True, help=_ALLOCATOR_HELP)
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
    from .console import progress_reporter
    from .layers import run_breakdown

    if not targets and not suite:
        raise UserError("name a target (e.g. `fnbench breakdown fasternet_t0`) or a suite (--suite networks)")
    if top < 0:
        raise UserError(f"--top {top} is negative: use 0 or more layers")
    _preloaded_or_reexec(allocator)
    specs = _target_specs(suite, list(targets), shape, 1 if batch is None else batch, layers, options)
    with progress_reporter(not as_json, _console(stderr=True)) as progress:
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
    from .report import breakdown as bd
    from .results import iter_result_files, read_records

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
        _console().print(f"run id: {run_id}\nresults: {path}")
    if failed:
        raise SystemExit(1)


def pd_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=None if rows else ["device_key"])


def _print_breakdown(records, preds, probes, top, bd) -> None:
    from rich.table import Table

    con = _console()

    def ms(v):
        return units.fmt_ms(v, none="—")

    def pct(v):
        return units.fmt_pct(v, none="—")

    for rec in records:
        if rec.get("status") != "ok":
            con.print(f"{bd.label(rec)}: {rec.get('status')}: {rec.get('error')}")
            continue
        e2e = rec["end_to_end"]["stats"]
        kt = bd.kind_table(rec)
        t = Table(
            title=f"{bd.label(rec)}: by operator kind ({len(rec['layers'])} layers, each timed standalone)",
            title_justify="left",
        )
        for col in ("kind", "layers", "FLOPs (MACs)", "share of MACs", "time ms", "share of time", "GMAC/s"):
            t.add_column(col, justify="left" if col == "kind" else "right")
        for r in kt.itertuples():
            t.add_row(
                r.kind,
                str(r.layers),
                _fmt_si(r.macs),
                pct(r.share_macs),
                ms(r.time_s),
                pct(r.share_time),
                "—" if r.gmacs_per_s != r.gmacs_per_s or not r.macs else f"{r.gmacs_per_s:.2f}",
            )
        con.print(t)
        if top:
            lt = bd.layer_table(rec).sort_values("median_s", ascending=False).head(top)
            t = Table(title=f"slowest {len(lt)} layers", title_justify="left")
            for col in (
                "layer",
                "kind",
                "input",
                "params",
                "MACs",
                "bytes",
                "FLOP/B",
                "ms",
                "95% CI ms",
                "GMAC/s",
                "share",
            ):
                t.add_column(col, justify="left" if col in ("layer", "kind", "input") else "right")
            for r in lt.itertuples():
                t.add_row(
                    r.name or "(root)",
                    r.kind,
                    r.input_shape or "—",
                    _fmt_int(r.params),
                    _fmt_si(r.macs),
                    _fmt_si(r.bytes, "B"),
                    "—"
                    if r.intensity_flop_per_byte is None or r.intensity_flop_per_byte != r.intensity_flop_per_byte
                    else f"{r.intensity_flop_per_byte:.1f}",
                    ms(r.median_s),
                    f"{ms(r.ci95_low_s)}–{ms(r.ci95_high_s)}",
                    f"{r.gmacs_per_s:.2f}" if r.macs else "—",
                    pct(r.share_time),
                )
            con.print(t)
        con.print(
            f"sum of per-layer medians {ms(rec['sum_s'])} ms vs end-to-end {ms(e2e['median_s'])} ms "
            f"(95% CI {ms(e2e['ci95_low_s'])}–{ms(e2e['ci95_high_s'])}; before the layers "
            f"{ms(rec['end_to_end']['before_median_s'])}, after {ms(rec['end_to_end']['after_median_s'])}): "
            f"gap {pct(rec['gap'])}"
        )
        if rec.get("gap_mean") is not None:
            con.print(
                f"sum of per-layer means {ms(rec['sum_mean_s'])} ms vs end-to-end mean "
                f"{ms(rec['end_to_end']['mean_s'])} ms: gap {pct(rec['gap_mean'])}; minima "
                f"{ms(rec['sum_min_s'])} vs {ms(rec['end_to_end']['min_s'])} ms: gap {pct(rec['gap_min'])}"
            )
    if not preds:
        return
    t = Table(title="predicted vs measured latency (ms; error = predicted / measured - 1)", title_justify="left")
    for col in ("network", "measured", "FLOPs-only", "error", "roofline", "error", "per-layer sum", "error"):
        t.add_column(col, justify="left" if col == "network" else "right")
    for p in preds:
        t.add_row(
            p["network"],
            ms(p["measured_s"]),
            *[x for k in bd.PREDICTORS for x in (ms(p[f"{k}_s"]), pct(p[f"{k}_error"]))],
        )
    con.print(t)
    if any(p["roofline_s"] is None for p in preds):
        con.print(
            "no `fnbench probe` records for this device in the results directory: FLOPs-only and roofline "
            "not predicted (run `fnbench probe --out` to the same directory)"
        )
    ceil = bd.device_ceilings(probes, preds[0]["device_key"])
    for rec in records:
        if rec.get("status") != "ok":
            continue
        misses = bd.roofline_misses(rec, ceil, top=3)
        if len(misses):
            con.print(
                f"{bd.label(rec)}: roofline misjudges most: "
                + "; ".join(
                    f"{m.name} ({m.kind}) {ms(m.measured_s)} ms measured vs {ms(m.roofline_s)} ms"
                    for m in misses.itertuples()
                )
            )
    if len(preds) >= 2:
        summ = bd.predictor_summary(pd_frame(preds))
        t = Table(title=f"one number per predictor over {len(preds)} networks", title_justify="left")
        for col in ("predictor", "networks", "Spearman rank corr.", "median |error|", "median error"):
            t.add_column(col, justify="left" if col == "predictor" else "right")
        for r in summ.itertuples():
            t.add_row(
                r.predictor,
                str(r.networks),
                "—" if r.spearman is None or r.spearman != r.spearman else f"{r.spearman:.2f}",
                pct(r.median_abs_error),
                pct(r.median_error),
            )
        con.print(t)


# -- report ---------------------------------------------------------------------------------------------
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
    from . import checks
    from .report import build_report

    checks.writable_dir(out_dir)
    summary = build_report(list(paths) or ["results"], out_dir, runtimes=runtimes or None)
    con = _console()
    if len(summary.claims):
        from .console import claims_table
        from .report.tables import compact_claims, unsettled_footnotes

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


# -- campaign -------------------------------------------------------------------------------------------
#: ``run`` options a campaign does not pass on: it chooses each node's device, output and resume itself.
_CAMPAIGN_OWN = ("device", "out_dir", "resume", "as_json")


def _run_argv(ctx: click.Context) -> list[str]:
    """The ``fnbench run`` options given on this command line, as arguments for each node's run."""
    from click.core import ParameterSource

    argv: list[str] = []
    for p in run.params:
        name = p.name
        if name in _CAMPAIGN_OWN or ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[name]
        if getattr(p, "is_flag", False):
            argv += [p.opts[0]] if value else []
        elif getattr(p, "multiple", False):
            argv += [x for v in value for x in (p.opts[0], str(v))]
        else:
            argv += [p.opts[0], str(value)]
    return argv


def _check_run_argv(argv: list[str]) -> None:
    """Refuse what ``fnbench run`` would refuse without measuring (same words), before any task starts."""
    from . import checks

    sub = run.make_context("run", list(argv), resilient_parsing=False)
    kw = dict(sub.params)
    checks.check_workers(kw["workers"])
    import inspect

    names = set(inspect.signature(run.callback).parameters)  # run's own; the rest are target options
    options = {k: v for k, v in kw.items() if k not in names}
    batch = kw["batch"]
    _target_specs(kw["suite"], kw["targets"], kw["shape"], 1 if batch is None else batch, kw["layers"], options)


@cli.command(params=[p for p in run.params if p.name not in _CAMPAIGN_OWN])
@click.option("--address", help="An existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT.")
@click.option("--local", is_flag=True, help="Start a throwaway one-node Ray on this machine (127.0.0.1 only).")
@click.option(
    "--device",
    "devices",
    multiple=True,
    help="auto (default: each node's own best device), or kinds (cpu, arm, cuda) each node measures if it has them.",
)
@click.option("--nodes", "nodes_pattern", help="Only nodes whose name, address, id or label matches this pattern.")
@click.option("--allow-mixed", is_flag=True, help="Measure nodes that run another fnbench version (recorded).")
@click.option("--out", "out_dir", default="results", show_default=True, help="Directory for OUT/<campaign_id>/.")
@click.option("--resume", "resume_id", help="CAMPAIGN_ID of an unfinished campaign: measure only what it lacks.")
@click.pass_context
def campaign(ctx, address, local, devices, nodes_pattern, allow_mixed, out_dir, resume_id, **_run_options) -> None:
    """Measure `fnbench run`'s suite or targets on every node of a Ray cluster that advertises `fnbench`.

    Each device joins with `ray start --address HEAD:6379 --resources '{"fnbench": 1}'`. Records
    stream to OUT/<campaign_id>/<device key>.jsonl as the nodes write them; two nodes on one machine
    measure one after the other. `fnbench report OUT/<campaign_id>` gives the full report.
    """
    import os

    from . import checks
    from .campaign import DRIVER_ENV, run_campaign

    checks.writable_dir(out_dir)
    argv = _run_argv(ctx)
    if resume_id is not None and (argv or devices or nodes_pattern):
        raise UserError(f"--resume {resume_id} repeats the campaign's own options: drop the others")
    if resume_id is None:
        _check_run_argv(argv)
    if not os.environ.get(DRIVER_ENV):
        child = _campaign_argv(argv, address, local, devices, nodes_pattern, allow_mixed, out_dir, resume_id)
        raise SystemExit(_supervise_campaign(child, address, local, out_dir, resume_id))
    err = _console(stderr=True)
    view = _CampaignView(err, os.environ[DRIVER_ENV])
    try:
        with view:
            summary = run_campaign(
                argv,
                address=address,
                local=local,
                devices=list(devices) or ["auto"],
                nodes=nodes_pattern,
                allow_mixed=allow_mixed,
                out_dir=out_dir,
                resume=resume_id,
                on_event=view.event,
                on_plan=view.plan,
            )
    except KeyboardInterrupt:
        cid = view.summary.campaign_id if view.summary else None
        hint = f"; finish it with `{_campaign_resume(cid, address, local, out_dir)}`" if cid else ""
        click.echo(f"fnbench: interrupted: the records that arrived are saved{hint}", err=True)
        raise SystemExit(130) from None
    _print_campaign(summary)
    failed = [j for j in summary.jobs if j.status == "failed"]
    if summary.unfinished:
        cmd = _campaign_resume(summary.campaign_id, address, local, out_dir)
        for j in summary.unfinished:
            click.echo(f"fnbench: {j.key}: {j.error or j.status}", err=True)
        click.echo(f"fnbench: campaign unfinished; measure what is missing with `{cmd}`", err=True)
        raise SystemExit(2 if failed and not any(j.records for j in failed) else 1)
    if any(r.get("status") == "failed" for j in summary.jobs for r in summary.records_of(j)):
        raise SystemExit(1)


def _campaign_argv(argv, address, local, devices, nodes_pattern, allow_mixed, out_dir, resume_id) -> list[str]:
    """This command line again, for the process that holds the Ray connection."""
    out = ["campaign", *argv, "--out", out_dir]
    out += ["--address", address] if address else []
    out += ["--local"] if local else []
    out += [x for d in devices for x in ("--device", d)]
    out += ["--nodes", nodes_pattern] if nodes_pattern else []
    out += ["--allow-mixed"] if allow_mixed else []
    return out + (["--resume", resume_id] if resume_id else [])


def _supervise_campaign(child_argv: list[str], address, local: bool, out_dir: str, resume_id: str | None) -> int:
    """Run the campaign in a child process; if the cluster took it down mid-campaign, close the campaign.

    Ray ends the process connected to it, with no Python handler run, when the cluster's head (and
    its object store) goes away; this process outlives it, marks every unfinished job lost, and
    prints the resume hint (exit 1), as for a lost node. The child has its own process group and
    gets Ctrl-C (and SIGTERM) once, forwarded from here: it cancels the tasks itself, and a second
    interrupt would cut its clean-up short. Where Ray instead keeps a cut-off driver waiting, it
    gives up on the cluster after its GCS reconnect timeout (60 s by default) and ends it the same way.
    """
    import os
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    from .campaign import DRIVER_ENV, abandon

    fd, id_file = tempfile.mkstemp(prefix="fnbench-campaign-", suffix=".id")
    os.close(fd)
    code = "import sys; from fnbench.cli import main; sys.exit(main(sys.argv[1:]))"
    try:
        # Its own process group: a Ctrl-C at the terminal reaches it once, forwarded from here.
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *child_argv], env=dict(os.environ, **{DRIVER_ENV: id_file}), process_group=0
        )
        sigs = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.signal(s, lambda n, _f: proc.send_signal(n)) for s in sigs}
        try:
            rc = proc.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        cid = Path(id_file).read_text(encoding="utf-8").strip() or resume_id
    finally:
        Path(id_file).unlink(missing_ok=True)
    path = Path(out_dir) / cid / "campaign.json" if cid else None
    status = json.loads(path.read_text(encoding="utf-8")).get("status") if path and path.exists() else None
    if status != "running":  # the child ended the campaign itself, or never began one
        if rc < 0:  # killed as it exited (Ray's threads can crash a process's shutdown): the plan says how it ended
            return {"interrupted": 130, "unfinished": 1}.get(status, 128 - rc)
        return rc
    lost = abandon(out_dir, cid, f"the cluster went away (Ray ended the driver's connection, exit {rc})")
    for j in lost:
        click.echo(f"fnbench: {j.key}: {j.error}", err=True)
    cmd = _campaign_resume(cid, address, local, out_dir)
    click.echo(
        f"fnbench: the Ray cluster went away mid-campaign; the records that arrived are saved in "
        f"{Path(out_dir) / cid}; measure what is missing with `{cmd}`",
        err=True,
    )
    return 1


def _campaign_resume(cid: str, address: str | None, local: bool, out_dir: str) -> str:
    where = "--local" if local else f"--address {address}"
    return f"fnbench campaign --resume {cid} {where}" + ("" if out_dir == "results" else f" --out {out_dir}")


class _CampaignView:
    """One progress line per job (final records of the run's plan), and a line when a job starts or ends."""

    def __init__(self, console, id_file: str):
        from .console import progress_bar

        self.console, self.bar, self.tasks, self.summary = console, progress_bar(console), {}, None
        self.id_file = id_file

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tasks:
            self.bar.stop()

    def plan(self, summary) -> None:
        self.summary = summary
        from pathlib import Path

        Path(self.id_file).write_text(summary.campaign_id, encoding="utf-8")  # for the supervising process
        self.console.print(
            f"campaign {summary.campaign_id}: {len(summary.jobs)} job(s) on "
            f"{len({j.node for j in summary.jobs})} node(s), writing {summary.path} "
            f"(resume with --resume {summary.campaign_id})",
            highlight=False,
        )
        for line in summary.skipped:
            self.console.print(f"skipped: {line}", highlight=False)
        for line in summary.notes:
            self.console.print(f"note: {line}", highlight=False)

    def event(self, job, kind: str, payload) -> None:
        if kind == "started":
            if not self.tasks:
                self.bar.start()
            self.tasks[job.key] = self.bar.add_task(
                f"{job.key} run {job.run_id}", total=job.planned, completed=job.finals
            )
        elif kind == "record" and job.key in self.tasks:
            self.bar.update(self.tasks[job.key], completed=job.finals)
        elif kind != "record":
            self.bar.console.print(
                f"{job.key}: {job.status}" + (f" ({job.error})" if job.error else ""), highlight=False
            )


def _print_campaign(summary) -> None:
    """The run table of every job, then the merged answers (``fnbench report`` has the rest)."""
    from .console import format_table, table_notes

    con = _console()
    for job in summary.jobs:
        recs = summary.records_of(job)
        if recs:
            con.print(format_table(recs, title=f"node {job.node} ({job.device}, host {job.host}): run {job.run_id}"))
            for note in table_notes(recs):
                con.print(note)
    answers = _campaign_answers(summary.path)
    for a in answers:
        con.print(a)
    con.print(f"campaign {summary.campaign_id}: " + ", ".join(f"{j.key} {j.status}" for j in summary.jobs))
    con.print(f"results: {summary.path}\nfull report: fnbench report {summary.path}")


def _campaign_answers(path) -> list[str]:
    """The claims' sentences over a campaign's folder, as ``fnbench report`` judges them.

    Read through :func:`fnbench.merge.load_frame`, which carries each sample's round: a plain
    frame of records has none, and the claim engine would then resample single iterations, an
    interval many times too narrow (5.8-5.9x where the rows were ±20-40%).
    """
    from .merge import load_frame
    from .report.tables import is_probe
    from .verdicts import claim_table

    df = load_frame([path])
    if not len(df) or "status" not in df:
        return []
    df = df[~is_probe(df)]
    claims = claim_table(df)
    return [] if not len(claims) else list(claims[claims.verdict != "not measured"].answer)


# -- entry point ------------------------------------------------------------------------------------
def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """fnbench's own warnings as one ``fnbench: warning:`` line; others without their source line."""
    from .errors import FnbenchWarning

    text = " ".join(str(message).split())
    prefix = (
        "fnbench: warning: " if issubclass(category, FnbenchWarning) else f"fnbench: warning: {category.__name__}: "
    )
    click.echo(prefix + text, err=True)


def _resume_hint() -> str:
    from . import results

    if results.last_run is None:
        return "finished measurements are saved (see --resume)"
    run_id, out = results.last_run
    return f"finished measurements are saved; finish the run with `fnbench run --resume {run_id} --out {out}`"


class _Terminated(BaseException):
    """SIGTERM arrived: handled like Ctrl-C, and like it not an Exception, so no measurement records it as a failure."""


def _on_sigterm(main_pid: int):
    import os
    import signal

    def handler(signum, frame):
        if os.getpid() != main_pid:  # a forked worker: die as SIGTERM says
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise _Terminated()

    return handler


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2.

    With ``--json`` an error is also one JSON document on stdout: ``{"error": ..., "exit_code": N}``.
    A failure to save results (disk full) is exit 1 with one line saying what is saved.
    """
    import os
    import signal
    import warnings

    from operators.registry import ConfigError

    from .errors import SaveError

    args = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in args

    def fail(msg: str, code: int) -> int:
        click.echo(f"fnbench: error: {msg}", err=True)
        if as_json:
            click.echo(json_document({"error": msg, "exit_code": code}))
        return code

    old_show = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm(os.getpid()))
    except ValueError:  # not the main thread (embedded use): keep the default
        old_term = None
    try:
        cli.main(args=args, prog_name="fnbench", standalone_mode=False)
    except UserError as e:
        return fail(" ".join(str(e).split()), 2)
    except ConfigError as e:  # an operator or network refused its arguments (n_div 0 at build time, …)
        return fail(" ".join(str(e).split()), 2)
    except SaveError as e:
        return fail(" ".join(str(e).split()), 1)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
        return 0
    except click.ClickException as e:
        hint = f"; see `{e.ctx.command_path} --help`" if getattr(e, "ctx", None) else ""
        msg = " ".join(e.format_message().split()).rstrip(".")
        return fail(f"{msg}{hint}", 2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"fnbench: interrupted; {_resume_hint()}", err=True)
        return 130
    except _Terminated:
        click.echo(f"fnbench: terminated; {_resume_hint()}", err=True)
        return 143
    except SystemExit as e:
        return int(e.code or 0)
    except BrokenPipeError:
        return 0
    finally:
        warnings.showwarning = old_show
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return 0


if __name__ == "__main__":
    sys.exit(main())
