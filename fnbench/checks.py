"""Checks made before any work: every one raises :class:`~fnbench.errors.UserError` with what to do.

A measurement that would run for minutes must not fail after them because its output folder is
read-only, its budget is ``nan``, it asks for more worker processes than the machine has file
descriptors, or its input needs more memory than there is (the kernel's OOM killer ends such a
process with nothing on stderr). These run first, so bad input costs a second.
"""

from __future__ import annotations

import os
import resource
import tempfile
from pathlib import Path

from .errors import UserError, warn
from .units import si

__all__ = [
    "writable_dir",
    "max_workers",
    "check_workers",
    "check_threads",
    "usable_cores",
    "max_live_processes",
    "available_memory_bytes",
    "check_memory",
    "fmt_bytes",
]

#: Worker processes allowed per CPU core (workers run their chunks one after another, but all
#: start at once and each holds a copy of the model).
WORKERS_PER_CORE = 4
#: File descriptors the parent holds per worker (its pipe end and the process sentinel), plus slack.
_FDS_PER_WORKER = 3
_FD_RESERVE = 64


def writable_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove it writable (a file is created and removed), else UserError."""
    text = os.fspath(path)
    if not text.strip():
        raise UserError(f"{flag} is empty: give a directory, e.g. {flag} results")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {text} is a file, not a directory: give a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as e:
        where = "" if p.is_absolute() else f" (in {os.getcwd()})"
        raise UserError(f"{flag} {text}{where} cannot be written ({e.strerror}): give a writable directory") from None
    return p


def max_workers() -> tuple[int, str]:
    """The most worker processes this machine allows, and why: cores and open-file limit."""
    cores = os.cpu_count() or 1
    by_cores = WORKERS_PER_CORE * cores
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    by_fds = by_cores if soft == resource.RLIM_INFINITY else max(0, (soft - _FD_RESERVE) // _FDS_PER_WORKER)
    if by_fds < by_cores:
        return by_fds, f"the open-file limit {soft} (ulimit -n) allows {by_fds}"
    return by_cores, f"{WORKERS_PER_CORE} per core on {cores} core(s)"


def check_workers(n: int | None) -> None:
    if n is None or n <= 1:
        return
    limit, why = max_workers()
    if n > limit:
        raise UserError(
            f"--workers {n} is more than this machine allows ({why}): use --workers {max(limit, 1)} or fewer"
        )


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; all of them where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def max_live_processes() -> int:
    """How many worker processes the open-file limit lets one pass hold at once."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 16 if soft == resource.RLIM_INFINITY else max(1, (soft - _FD_RESERVE) // _FDS_PER_WORKER)


def check_threads(n: int | None) -> None:
    """Warn (not refuse) when ``--threads`` exceeds the cores: the timings then measure oversubscription."""
    cores = usable_cores()
    if n is not None and n > cores:
        warn(
            f"--threads {n} is more than the {cores} core(s) this process may use; the threads will share "
            "cores and the timings measure that contention"
        )


def available_memory_bytes() -> int | None:
    """Memory available to new allocations (``MemAvailable``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def fmt_bytes(n: float) -> str:
    if n >= 1e19:  # past 10⁴ PB: an exponent rather than 1e+04
        return f"{n / 1e15:.3e} PB"
    return si(n, "B", sep=" ", largest="P") if n >= 1e3 else f"{int(n)} B"


def check_memory(needed: int, what: str, advice: str) -> None:
    """Refuse ``what`` when its estimated ``needed`` bytes exceed the memory available now."""
    avail = available_memory_bytes()
    if avail is not None and needed > avail:
        raise UserError(
            f"{what} needs about {fmt_bytes(needed)} of memory and {fmt_bytes(avail)} is available: {advice}"
        )
