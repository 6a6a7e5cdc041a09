"""Quantities derived from a measurement, and how fnbench writes numbers: one home for each.

- GMAC/s = MACs / 1e9 / latency (the paper's "GFLOPS"); GFLOP/s = 2 × GMAC/s.
- The 95 % interval of GMAC/s is the latency interval inverted: its low end comes from the
  *slow* end of the latency interval, its high end from the fast end.
- Throughput = count (samples of a batch, FLOPs, bytes) / seconds.
- Arithmetic intensity = 2 × MACs / counted bytes (FLOP per byte).

A missing input (``None``) or a zero time gives ``None``, never a division error. Formatting
(:func:`si`, :func:`fmt_ms`, :func:`fmt_pct`) is for terminals and messages; records and tables
keep raw numbers. Nothing here imports the rest of fnbench, nor numpy, so every layer (the CLI's
start-up included) can use it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "per_second",
    "gmacs_per_s",
    "gmacs_per_s_ci",
    "gflops_per_s",
    "intensity",
    "is_missing",
    "ms",
    "fmt_ms",
    "fmt_pct",
    "si",
]

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _no_time(seconds: Any) -> bool:
    """No usable time: ``None`` or zero. An array of bootstrap draws is used as it is."""
    if seconds is None:
        return True
    try:
        return not seconds
    except ValueError:  # an array has no truth value
        return False


def per_second(count: float | None, seconds: float | None) -> float | None:
    """``count / seconds`` (samples/s of a batch, FLOP/s, bytes/s); None without a count or a time."""
    return None if count is None or _no_time(seconds) else count / seconds


def gmacs_per_s(macs: float | None, seconds: Any) -> Any:
    """GMAC/s of ``macs`` multiply-adds in ``seconds`` (a scalar or an array of draws); None without either."""
    return None if macs is None or _no_time(seconds) else macs / 1e9 / seconds


def gmacs_per_s_ci(macs: float | None, ci_low_s: float | None, ci_high_s: float | None) -> tuple[Any, Any]:
    """The 95 % interval of GMAC/s from the latency interval: ``(low, high)`` with low from the slow end."""
    return gmacs_per_s(macs, ci_high_s), gmacs_per_s(macs, ci_low_s)


def gflops_per_s(macs: float | None, seconds: float | None) -> float | None:
    """GFLOP/s: two FLOPs per multiply-add."""
    g = gmacs_per_s(macs, seconds)
    return None if g is None else 2 * g


def intensity(macs: float | None, mem_bytes: float | None) -> float | None:
    """Arithmetic intensity, FLOP per byte: ``2 × macs / mem_bytes``; None without MACs or bytes."""
    return None if macs is None or not mem_bytes else 2 * macs / mem_bytes


def is_missing(v: Any) -> bool:
    """``None``, NaN or pandas' NA: a cell with no number in it."""
    if v is None:
        return True
    try:
        return bool(v != v)
    except TypeError:  # pandas.NA refuses to be a bool
        return True


def ms(seconds: float | None) -> float:
    """Seconds as milliseconds, NaN where there is no number (table columns)."""
    return math.nan if is_missing(seconds) else float(seconds) * 1e3


def fmt_ms(seconds: float | None, none: str = "–") -> str:
    """Seconds written as milliseconds with three decimals; ``none`` where there is no number."""
    return none if is_missing(seconds) else f"{seconds * 1e3:.3f}"


def fmt_pct(fraction: float | None, none: str = "–") -> str:
    """A fraction written as a percentage with one decimal; ``none`` where there is no number."""
    return none if is_missing(fraction) else f"{100 * fraction:.1f}%"


def si(
    value: float | None, unit: str = "", *, digits: int = 3, sep: str = "", largest: str = "G", none: str = "–"
) -> str:
    """``value`` with an SI prefix up to ``largest``: ``si(4.21e9, "B") == "4.21GB"``.

    ``digits`` significant digits, ``sep`` between the number and the prefixed unit, ``none``
    for a missing value. Below 1000 the number is written as it is (and a trailing ``sep`` dropped).
    """
    if value is None:
        return none
    for scale, prefix in _PREFIXES[[p for _, p in _PREFIXES].index(largest) :]:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{sep}{prefix}{unit}"
    return f"{value:.{digits}g}{sep}{unit}".rstrip()
