"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2.
Anything else that escapes is a bug in fnbench (or a failed measurement, exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["UserError", "suggest"]


class UserError(Exception):
    """Bad input or an unavailable resource; the message says what to do instead."""


def suggest(name: str, known: Iterable[str], *, limit: int = 3) -> str:
    """Return a ``" (did you mean: a, b?)"`` suffix for an unknown ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=limit, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""
