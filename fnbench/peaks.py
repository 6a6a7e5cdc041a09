"""Theoretical peaks: the clock one is computed at, and whether one may be shown beside a measured roof.

A CPU's FP32 peak (vector lanes × FMA units × 2 FLOP × clock, :func:`fnbench.probe.theoretical_peak`)
is only as good as its clock. :func:`max_clock_mhz` finds the highest clock the OS reports and
says where it came from; :func:`roof_note` refuses a peak that lies below what a probe measured.
Both are plain text and arithmetic, so the report reads them without torch.

Example::

    >>> roof_note(78.24, NOMINAL_CLOCK, 80.33)
    'measured exceeds nominal peak: the core ran above its nominal clock'
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["NOMINAL_CLOCK", "max_clock_mhz", "roof_note"]

#: The label of a clock that is not the highest the core can run at (``/proc/cpuinfo``'s ``cpu MHz``).
NOMINAL_CLOCK = "nominal"
_READ = object()


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _lscpu_text() -> str | None:
    if not shutil.which("lscpu"):
        return None
    try:
        return subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def max_clock_mhz(cpuinfo: str | None = None, *, cpufreq=_READ, lscpu=_READ) -> tuple[float | None, str]:
    """The highest clock the OS says the core can run at, in MHz, and where it came from.

    ``cpufreq``'s ``cpuinfo_max_freq`` first (kHz), then ``lscpu``'s "CPU max MHz"; without either
    (virtual machines often expose neither) ``/proc/cpuinfo``'s ``cpu MHz``, labelled
    :data:`NOMINAL_CLOCK`: a guest reports its base clock there while the core boosts above it,
    which is how a 256×256 GEMM measured 80.33 GFLOP/s against a "peak" of 78.3 at 2445 MHz.
    ``cpufreq`` and ``lscpu`` are the texts to parse (``None``: not available); by default they
    are read from this machine.
    """
    if cpufreq is _READ:
        cpufreq = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        if cpufreq and float(cpufreq.strip()) > 0:
            return float(cpufreq.strip()) / 1e3, "cpufreq cpuinfo_max_freq"
    except ValueError:
        pass
    if lscpu is _READ:
        lscpu = _lscpu_text()
    for line in (lscpu or "").splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == "cpu max mhz":
            try:
                if float(v) > 0:
                    return float(v), "lscpu CPU max MHz"
            except ValueError:
                pass
    if cpuinfo is None:
        cpuinfo = _read_text("/proc/cpuinfo") or ""
    mhz = []
    for line in cpuinfo.splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == "cpu mhz":
            try:
                mhz.append(float(v))
            except ValueError:
                pass
    return (max(mhz), NOMINAL_CLOCK) if mhz else (None, NOMINAL_CLOCK)


def roof_note(theoretical_gflop_per_s: float, clock: str | None, measured_gflop_per_s: float | None) -> str | None:
    """``None`` when a theoretical peak may be shown; else what to say instead of a roof below the floor.

    A theoretical peak below a measured FP32 ceiling is never printed or drawn: it would be a
    precise wrong number. Below a nominal clock the reason is known (the core ran above it);
    below a max clock the assumption of lanes × FMA units is what is wrong.
    """
    if measured_gflop_per_s is None or not measured_gflop_per_s == measured_gflop_per_s:  # None or NaN
        return None
    if theoretical_gflop_per_s >= measured_gflop_per_s:
        return None
    if clock in (None, "", NOMINAL_CLOCK) or str(clock).startswith(NOMINAL_CLOCK):
        return "measured exceeds nominal peak: the core ran above its nominal clock"
    return f"measured exceeds the peak at the {clock} clock: the assumed vector lanes × FMA units are too few"
