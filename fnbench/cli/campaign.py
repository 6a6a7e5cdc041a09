"""``fnbench campaign``: ``fnbench run`` on every node of a Ray cluster, its progress and its tables.

The command takes ``run``'s own parameters (less those a campaign chooses itself) and hands each
node the ones given, as arguments for the node's ``fnbench run``; the driver runs in a child
process that a cluster going away cannot take this one down with (:func:`_supervise_campaign`).
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import UserError
from .app import cli
from .run import run, run_options, run_specs

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
    from .. import checks

    options = run_options(run.make_context("run", list(argv), resilient_parsing=False).params)
    checks.check_workers(options.workers)
    run_specs(options)


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

    from .. import checks
    from ..campaign import DRIVER_ENV, run_campaign
    from .console import terminal

    checks.writable_dir(out_dir)
    argv = _run_argv(ctx)
    if resume_id is not None and (argv or devices or nodes_pattern):
        raise UserError(f"--resume {resume_id} repeats the campaign's own options: drop the others")
    if resume_id is None:
        _check_run_argv(argv)
    if not os.environ.get(DRIVER_ENV):
        child = _campaign_argv(argv, address, local, devices, nodes_pattern, allow_mixed, out_dir, resume_id)
        raise SystemExit(_supervise_campaign(child, address, local, out_dir, resume_id))
    err = terminal(stderr=True)
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

    from ..campaign import DRIVER_ENV, abandon

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
    from .console import format_table, table_notes, terminal

    con = terminal()
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
    from ..merge import load_frame
    from ..report.tables import is_probe
    from ..verdicts import claim_table

    df = load_frame([path])
    if not len(df) or "status" not in df:
        return []
    df = df[~is_probe(df)]
    claims = claim_table(df)
    return [] if not len(claims) else list(claims[claims.verdict != "not measured"].answer)
