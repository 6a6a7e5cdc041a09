"""``fnbench run``: measure a suite or targets on one device, resume an interrupted run, print its table."""

from __future__ import annotations

from typing import Any

import click

from ..errors import UserError
from ..options import (
    DEFAULT_BATCH,
    DEFAULT_BUDGET_S,
    DEFAULT_PASSES,
    DEFAULT_PRECISION,
    DEFAULT_RUNTIME,
    DEFAULT_SUITE,
    DEFAULT_WORKERS,
    RunOptions,
)
from ..results import json_document
from .app import cli
from .params import ALLOCATOR_HELP, device_option, out_option, target_options, target_specs, threads_option
from .reexec import preloaded_or_reexec

#: The options not given: the defaults of the parameters that have a value of their own.
_DEFAULT = RunOptions()


@cli.command()
@device_option
@click.option("--suite", help=f"A suite from `fnbench list suites` (default: {DEFAULT_SUITE}).")
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
    help=f"{DEFAULT_RUNTIME} (default), compile, onnxruntime or openvino (`fnbench list runtimes`); repeatable.",
)
@click.option("--memory-format", default=_DEFAULT.memory_format, show_default=True, help="contiguous or channels_last.")
@click.option(
    "--dtype",
    default=_DEFAULT.dtype,
    show_default=True,
    help="float32; float16 or bfloat16 on cuda (converted weights).",
)
@threads_option(", the paper's protocol")
@click.option(
    "--precision",
    type=float,
    default=None,
    help=f"Target relative half-width of the 95% CI (default {DEFAULT_PRECISION:g}).",
)
@click.option(
    "--budget", type=float, default=None, help=f"Seconds of measurement per target (default {DEFAULT_BUDGET_S:g})."
)
@out_option
@click.option("--resume", help="RUN_ID of an interrupted run: measure only what it lacks.")
@click.option(
    "--workers",
    type=int,
    default=None,
    help=f"Fresh worker processes per pass (default {DEFAULT_WORKERS}; 0 = measure in this process, one pass).",
)
@click.option(
    "--passes",
    type=int,
    default=None,
    help=f"Passes over the suite, each on fresh processes with budget/passes per target (default {DEFAULT_PASSES}).",
)
@click.option("--allocator", "allocators_", multiple=True, help=ALLOCATOR_HELP + " Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (run id, path, records) on stdout.")
@click.pass_context
def run(ctx, out_dir, resume, as_json, **values) -> None:
    """Measure a suite or targets on one device; records are appended to OUT/<run_id>.jsonl as they finish.

    --resume RUN_ID finishes an interrupted run with the options it was started with; options
    given with it must equal those.
    """
    from .. import checks
    from ..runner import run_suite
    from .console import progress_reporter, terminal

    options = RunOptions.from_dict(values)
    if resume is not None:
        options = _resumed_options(ctx, options, resume, out_dir)
    checks.writable_dir(out_dir)
    checks.check_workers(options.workers)
    if options.workers == 0 and len(options.allocators) == 1:  # measured in this process: it must start under it
        preloaded_or_reexec(options.allocators[0])
    specs = run_specs(options)
    err = terminal(stderr=True)
    with progress_reporter(not as_json, err) as progress:
        summary = run_suite(
            specs,
            options,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            notify=None if as_json else (lambda line: err.print(line, highlight=False)),
        )
    if as_json:
        click.echo(json_document({"run_id": summary.run_id, "path": str(summary.path), "records": summary.records}))
    else:
        _print_run(summary)
    if summary.failed:
        raise SystemExit(1)


#: ``run``'s parameters that are not :class:`RunOptions` (not stored, free to change on resume).
NOT_OPTIONS = ("out_dir", "resume", "as_json")


def run_options(params: dict[str, Any]) -> RunOptions:
    """The options of a parsed ``fnbench run`` command line (``ctx.params``)."""
    return RunOptions.from_dict({k: v for k, v in params.items() if k not in NOT_OPTIONS})


def run_specs(options: RunOptions) -> list:
    """The targets ``options`` name (or their suite), as specs."""
    # An explicit --batch (1 included) is honoured on every device; only an absent one lets cuda
    # default to 32.
    batch = DEFAULT_BATCH if options.batch is None else options.batch
    return target_specs(options.suite, options.targets, options.shape, batch, options.layers, options.target_kwargs)


def _print_run(summary) -> None:
    from .console import format_table, table_notes, terminal

    con = terminal()
    con.print(format_table(summary.records, title=f"run {summary.run_id}"))
    for note in table_notes(summary.records):
        con.print(note)
    con.print(f"run id: {summary.run_id}\nresults: {summary.path}")


def _given(ctx: click.Context, options: RunOptions) -> set[str]:
    """The options given on this command line (by their keys: the parameters' names)."""
    from click.core import ParameterSource

    return {k for k in options.to_dict() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}


def _resumed_options(ctx: click.Context, options: RunOptions, resume: str, out_dir: str) -> RunOptions:
    """The resumed run's stored options, with those given on this command line checked against them."""
    from ..results import check_run_id, plan_path, read_plan

    rid = check_run_id(resume)
    plan = read_plan(plan_path(out_dir, rid))
    stored = (plan or {}).get("cli")
    given = _given(ctx, options)
    if not isinstance(stored, dict):
        _refuse_lost_plan(rid, out_dir, plan, given)
        stored = {}
    now = options.to_dict()
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    differ = [
        f"{flags[k]} {_show_opt(v)} (the run has {_show_opt(stored[k])})"
        for k, v in now.items()
        if k in given and k in stored and v != stored[k]
    ]
    if differ:
        raise UserError(
            f"--resume {resume}: options differ from the run's: "
            + "; ".join(differ)
            + f"; drop them to finish the run as started (`fnbench run --resume {resume}`)"
        )
    return RunOptions.from_dict({k: stored[k] if k in stored and k not in given else v for k, v in now.items()})


def _refuse_lost_plan(rid: str, out_dir: str, plan: dict[str, Any] | None, given: set[str]) -> None:
    """A run whose plan is missing or unreadable is never resumed with the default suite.

    With no options given, its records say what it measured: they are the options to repeat.
    Given options are checked against the records when the file is opened (:class:`fnbench.results.RunFile`).
    """
    from pathlib import Path

    from ..results import options_from_records, plan_path, read_records

    run_path = Path(out_dir) / f"{rid}.jsonl"
    if not run_path.exists():
        return  # RunFile says there is no such run
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
