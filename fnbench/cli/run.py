"""``fnbench run``: measure a suite or targets on one device, resume an interrupted run, print its table."""

from __future__ import annotations

from typing import Any

import click

from ..errors import UserError
from ..results import json_document
from .app import cli
from .params import ALLOCATOR_HELP, target_options, target_specs
from .reexec import preloaded_or_reexec


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
@click.option("--allocator", "allocators_", multiple=True, help=ALLOCATOR_HELP + " Repeatable.")
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
    from .. import checks
    from ..allocators import DEFAULT_ALLOCATOR
    from ..runner import DEFAULT_PASSES, run_suite
    from ..timing import DEFAULT_BUDGET_S, DEFAULT_PRECISION
    from .console import format_table, progress_reporter, table_notes, terminal

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
        preloaded_or_reexec(allocs[0])
    # An explicit --batch (1 included) is honoured on every device; only an absent one lets cuda
    # default to 32.
    specs = target_specs(suite, targets, shape, 1 if batch is None else batch, layers, options)
    err = terminal(stderr=True)
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
    con = terminal()
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

    from ..results import check_run_id, plan_path, read_plan

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

    from ..results import options_from_records, plan_path, read_records

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
