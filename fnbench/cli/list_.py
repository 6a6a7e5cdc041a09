"""``fnbench list``: what exists (operators, networks, suites, devices, runtimes)."""

from __future__ import annotations

import click

from ..errors import UserError
from .app import cli

LIST_KINDS = ("ops", "networks", "suites", "devices", "runtimes")


@cli.command("list")
@click.argument("kind", required=False, type=click.Choice(LIST_KINDS))
@click.argument("pattern", required=False, default="*")
def list_cmd(kind: str | None, pattern: str) -> None:
    """List what exists: ops, networks, suites, devices, runtimes (PATTERN is shell-style, e.g. 'pconv*')."""
    from .. import catalog

    for k in [kind] if kind else LIST_KINDS:
        rows = catalog.listing(k, pattern)
        if not kind:
            click.echo(f"{k}:")
        for name, summary in rows:
            click.echo(f"  {name:<28} {summary}" if summary else f"  {name}")
        if kind and not rows:
            raise UserError(f"no {kind} match {pattern!r}; try `fnbench list {kind}` without a pattern")
