"""The ``fnbench`` group and :func:`main`, where every command's errors become one line and an exit code.

A :class:`~fnbench.errors.UserError` (or a click usage error, or an operator refusing its
arguments) is one line on stderr and exit code 2; a failure to save results exits 1, a failed
measurement 1, Ctrl-C 130 and SIGTERM 143 (both with the run's resume hint). Tracebacks are for
fnbench's own bugs only.
"""

from __future__ import annotations

import sys

import click

from ..errors import UserError
from ..results import json_document

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fnbench")
def cli() -> None:
    """Is an "efficient" operator actually faster on this hardware, and why?

    MACs are multiply-adds (the FasterNet paper's "FLOPs"); FLOPs = 2 x MACs.
    """


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """fnbench's own warnings as one ``fnbench: warning:`` line; others without their source line."""
    from ..errors import FnbenchWarning

    text = " ".join(str(message).split())
    prefix = (
        "fnbench: warning: " if issubclass(category, FnbenchWarning) else f"fnbench: warning: {category.__name__}: "
    )
    click.echo(prefix + text, err=True)


def _resume_hint() -> str:
    from .. import results

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


def _operator_errors() -> tuple[type[Exception], ...]:
    """``operators.ConfigError``, if the operators were imported (no other code raises it).

    Evaluated when an exception reaches the ``except`` clause, so ``--help`` and ``list`` never
    import the operators (and torch with them) only to name an error they cannot raise.
    """
    registry = sys.modules.get("operators.registry")
    return (registry.ConfigError,) if registry is not None else ()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2.

    With ``--json`` an error is also one JSON document on stdout: ``{"error": ..., "exit_code": N}``.
    A failure to save results (disk full) is exit 1 with one line saying what is saved.
    """
    import os
    import signal
    import warnings

    from ..errors import SaveError

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
    except _operator_errors() as e:  # an operator or network refused its arguments (n_div 0 at build time, …)
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
