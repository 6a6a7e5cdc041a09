"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2.
Anything else that escapes is a bug in fnbench (or a failed measurement, exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .units import si

__all__ = ["UserError", "SaveError", "FnbenchWarning", "suggest", "warn", "cause_first", "first_line"]


class UserError(Exception):
    """Bad input or an unavailable resource; the message says what to do instead."""


def suggest(name: str, known: Iterable[str], *, limit: int = 3) -> str:
    """Return a ``" (did you mean: a, b?)"`` suffix for an unknown ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=limit, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


class FnbenchWarning(UserWarning):
    """Something the user should know that does not stop the command (shown as one line on stderr)."""


def warn(message: str) -> None:
    """Issue an :class:`FnbenchWarning`; the CLI prints it as ``fnbench: warning: …`` on one line."""
    import warnings

    warnings.warn(message, FnbenchWarning, stacklevel=2)


class SaveError(Exception):
    """Results could not be written (disk full, I/O error); the message says what is saved and how to go on.

    The CLI prints it on one line and exits 1: the measurement was fine, storing it failed.
    """


def first_line(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (colour codes removed), just the type name when it is empty.

    What a table cell or a record's ``error`` shows of an exception; the traceback is kept elsewhere.
    """
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def cause_first(text: str) -> str:
    """An error message with its useful cause in front: ``"can't allocate 400 GB (out of memory); …"``.

    Allocator failures reach us as ``RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0.
    DefaultCPUAllocator: can't allocate memory: you tried to allocate 400000000000 bytes…``, whose
    first words say nothing; a table cell shows only the first words.
    """
    import re

    text = re.sub(r"\[enforce fail at [^\]]*\]\s*(err == 0\.)?\s*", "", text)
    m = re.search(r"tried to allocate (\d+(?:\.\d+)?)\s*(bytes|[KMGT]i?B)", text)
    if m:
        amount = m.group(1) + " " + m.group(2)
        if m.group(2) == "bytes":
            n = float(m.group(1))
            amount = si(n, "B", sep=" ", largest="T") if n >= 1e3 else f"{int(n)} bytes"
        return f"can't allocate {amount} (out of memory); {text}"
    return text
