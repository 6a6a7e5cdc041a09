"""The ``fnbench`` command: parse, call the library, print. No measurement logic lives here.

One module per command, each with its terminal printer: ``list_``, ``count``, ``run``,
``compare``, ``probe``, ``breakdown``, ``report``, ``campaign``. Shared by them: ``app`` (the
click group and :func:`main`, where a :class:`~fnbench.errors.UserError` becomes one line and exit
code 2), ``params`` (options several commands take), ``reexec`` (the allocator re-exec) and
``console`` (terminal tables, footnotes, progress bars).

A command is a module whose function is decorated with ``@cli.command()``; importing it below
registers it.
"""

from . import breakdown, campaign, compare, count, list_, probe, report, run  # noqa: F401 (each registers its command)
from .app import cli, main

__all__ = ["cli", "main"]
