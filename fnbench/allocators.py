"""The memory allocator as a measurement condition: set it, verify it, record it.

Why it matters (measured on a 2-core x86 VM, 1 thread, a stack of ten 3×3 DWConv layers at
96×56×56): glibc serves large requests with ``mmap`` and, by default, gives freed memory back to
the kernel as soon as the top of its heap holds more than ``M_TRIM_THRESHOLD`` bytes. Both
thresholds start at 128 KiB / 256 KiB and rise *dynamically* when the process frees a large
mmap-ed block. In a fresh process that has not yet freed one, every freed activation is returned
to the kernel and the next forward touches fresh zero pages: about one minor page fault per
4 KiB of every activation, every forward (~3,700 faults and 13 ms per forward, against 3.7 ms and
none once the thresholds are fixed). What a process freed before therefore decides the latency,
and memory-bound operators (DWConv, PConv's concatenation) are hit hardest.

Modes (``--allocator``):

- ``tuned`` (default): glibc with both thresholds fixed by ``mallopt`` before anything is built,
  so freed activations are reused, as in a long-running inference server. Fixing the mmap
  threshold also switches glibc's dynamic adjustment off, so the state no longer depends on
  history. :data:`TUNED_SETTINGS` holds the values.
- ``system``: the allocator exactly as the process got it: what an untuned deployment sees.
- ``jemalloc`` / ``tcmalloc``: Debian's ``libjemalloc2`` / ``libtcmalloc-minimal4``, preloaded
  (``LD_PRELOAD``) into the processes that measure; the library must be mapped in the process,
  which :func:`state` checks from ``/proc/self/maps``.

Preloading happens at process start, so it is a property of worker processes (and of a CLI that
re-executes itself with the library preloaded, see :func:`preload_env`); ``tuned`` can be set in
any running process with glibc, but not undone: glibc has no call that re-enables its dynamic
thresholds, so a process that was tuned cannot measure ``system`` afterwards (:func:`apply`
refuses).

Example::

    >>> apply("tuned")["name"]  # doctest: +SKIP
    'tuned'
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .errors import UserError, suggest

__all__ = [
    "ALLOCATORS",
    "DEFAULT_ALLOCATOR",
    "TUNED_SETTINGS",
    "LIBRARIES",
    "apply",
    "state",
    "find_library",
    "preload_env",
    "loaded_libraries",
    "check_allocator",
    "FAULT_PAGE_BYTES",
    "FAULT_FRACTION_LIMIT",
    "faults_flag",
]

ALLOCATORS = ("tuned", "system", "jemalloc", "tcmalloc")
DEFAULT_ALLOCATOR = "tuned"

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: ``tuned``: no request below 32 MiB (glibc's largest allowed mmap threshold on 64-bit) is
#: mmap-ed, and the heap keeps up to 1 GiB of free memory at its top instead of trimming it.
TUNED_SETTINGS = {"M_MMAP_THRESHOLD": 32 * 2**20, "M_TRIM_THRESHOLD": 2**30}

#: allocator → (shared-object name to preload, Debian package that provides it).
LIBRARIES = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
}

#: Environment variables through which glibc's malloc is tuned from outside; recorded when set.
_GLIBC_ENV = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_ARENA_MAX",
    "GLIBC_TUNABLES",
)

#: What this process did to its allocator (``apply``), so a contradictory request is refused.
_applied: str | None = None


def check_allocator(name: str) -> str:
    """``name`` if it is a known mode, else a :class:`UserError` naming the modes."""
    if name not in ALLOCATORS:
        raise UserError(f"unknown allocator {name!r}{suggest(name, ALLOCATORS)}; choose one of {', '.join(ALLOCATORS)}")
    return name


def _search_dirs() -> list[Path]:
    machine = platform.machine()
    multiarch = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "arm64": "aarch64-linux-gnu"}.get(
        machine, f"{machine}-linux-gnu"
    )
    return [
        Path(p)
        for p in (
            f"/usr/lib/{multiarch}",
            f"/lib/{multiarch}",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/lib",
            "/lib64",
            "/lib",
        )
    ]


def find_library(name: str) -> str | None:
    """Absolute path of the shared object for ``jemalloc``/``tcmalloc``, or None where it is absent."""
    soname = LIBRARIES[name][0]
    for d in _search_dirs():
        p = d / soname
        if p.exists():
            return str(p)
    try:  # elsewhere (another distribution's layout): ask the dynamic linker's cache
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.strip().startswith(soname) and "=>" in line:
            return line.split("=>", 1)[1].strip()
    return None


def require_library(name: str) -> str:
    """The library's path, or a :class:`UserError` that names the package to install."""
    path = find_library(name)
    if path is None:
        soname, package = LIBRARIES[name]
        raise UserError(
            f"--allocator {name} needs {soname}, which is not installed: install it "
            f"(Debian/Ubuntu: apt-get install {package}) or choose --allocator tuned"
        )
    return path


def preload_env(name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) whose processes start with ``name`` preloaded.

    ``tuned``/``system`` need no preload: the copy has none of the other libraries in ``LD_PRELOAD``.
    """
    env = dict(os.environ if env is None else env)
    others = {find_library(n) for n in LIBRARIES} - {None}
    kept = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p not in others]
    if name in LIBRARIES:
        kept.insert(0, require_library(name))
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    else:
        env.pop("LD_PRELOAD", None)
    return env


def loaded_libraries(maps: str | None = None) -> dict[str, str]:
    """Which of jemalloc/tcmalloc are mapped into this process: ``{name: path}`` (from /proc/self/maps)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return {}
    found: dict[str, str] = {}
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        path = parts[-1]
        base = os.path.basename(path)
        for n, (soname, _) in LIBRARIES.items():
            stem = soname.split(".so")[0]
            if base.startswith(stem + ".so") or base.startswith(stem + "_debug.so"):
                found.setdefault(n, path)
    return found


def _libc():
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else ctypes.CDLL(None)
    except OSError:
        return None
    return lib if hasattr(lib, "mallopt") else None


def _glibc_env() -> dict[str, str]:
    return {k: os.environ[k] for k in _GLIBC_ENV if k in os.environ}


def apply(name: str) -> dict[str, Any]:
    """Put this process under allocator ``name`` (before anything is measured); return :func:`state`.

    ``tuned`` calls glibc's ``mallopt`` with :data:`TUNED_SETTINGS`; ``system`` changes nothing;
    ``jemalloc``/``tcmalloc`` must already be preloaded (they can only be chosen when a process
    starts: see :func:`preload_env`). Raises :class:`UserError` when the process cannot be put in
    that state: a library that is not mapped, ``system`` after ``tuned``, ``tuned`` without glibc.
    """
    global _applied
    check_allocator(name)
    loaded = loaded_libraries()
    if name in LIBRARIES:
        if name not in loaded:
            require_library(name)  # absent: say which package to install
            raise UserError(
                f"--allocator {name}: {LIBRARIES[name][0]} is not preloaded in this process; measure in "
                "worker processes (fnbench run) or start the process with LD_PRELOAD set"
            )
    elif loaded:
        other = next(iter(loaded))
        raise UserError(
            f"--allocator {name} asked for, but {other} is preloaded in this process ({loaded[other]}); "
            f"unset LD_PRELOAD or choose --allocator {other}"
        )
    elif name == "tuned":
        lib = _libc()
        if lib is None:
            raise UserError(
                "--allocator tuned needs glibc's mallopt, which this platform lacks; choose --allocator system"
            )
        ok = [
            lib.mallopt(_M_MMAP_THRESHOLD, TUNED_SETTINGS["M_MMAP_THRESHOLD"]),
            lib.mallopt(_M_TRIM_THRESHOLD, TUNED_SETTINGS["M_TRIM_THRESHOLD"]),
        ]
        if not all(ok):
            raise UserError("glibc refused the tuned malloc settings (mallopt returned 0); choose --allocator system")
    elif name == "system" and _applied == "tuned":
        raise UserError(
            "--allocator system cannot be measured in a process whose allocator was already tuned "
            "(glibc cannot undo it); measure it in fresh worker processes (fnbench run)"
        )
    _applied = name
    return state(name)


def state(name: str | None = None) -> dict[str, Any]:
    """The allocator this process measures under, as recorded in every result.

    ``{"name", "library", "settings", "env"}``: the mode (``name``, default what :func:`apply` set),
    the preloaded library's path (None for glibc), the mallopt settings applied (``tuned``), and any
    glibc tuning variables found in the environment (which make even ``system`` not the default).
    """
    name = name or _applied or "system"
    loaded = loaded_libraries()
    return {
        "name": name,
        "library": loaded.get(name),
        "settings": dict(TUNED_SETTINGS) if name == "tuned" else {},
        "env": _glibc_env(),
    }


# -- page faults ------------------------------------------------------------------------------------

#: Bytes one minor fault maps in (the base page size).
FAULT_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: A measurement still faults when its faults per iteration map in more than this fraction of the
#: bytes one iteration moves (counted bytes): 1 % means the steady state is not steady. A fresh
#: allocation per activation, as under an untrimmed glibc, refaults ~100 % of the output bytes.
FAULT_FRACTION_LIMIT = 0.01


def faults_flag(
    minor_faults_per_iter: float | None, mem_bytes_counted: float | None, allocator: str | None = None
) -> str | None:
    """A one-line reason when a measurement page-faults in its timed iterations, else None.

    The rule: at least one fault per iteration, and faulted bytes (faults × page size) above
    :data:`FAULT_FRACTION_LIMIT` of the bytes one iteration moves. Without a byte count, ≥ 1
    fault per iteration flags. The advice depends on ``allocator``: under ``system`` (or unknown)
    the allocator is the likely cause; under the others, first-touch of a heap that was still
    growing (or a library mapping its own buffers), which a longer budget amortises.
    """
    if minor_faults_per_iter is None or minor_faults_per_iter < 1:
        return None
    if allocator in (None, "system"):
        advice = "measure with --allocator tuned"
    else:
        advice = f"under {allocator}: a heap still growing or a library mapping its own buffers; a longer --budget amortises it"
    if mem_bytes_counted:
        frac = minor_faults_per_iter * FAULT_PAGE_BYTES / mem_bytes_counted
        if frac <= FAULT_FRACTION_LIMIT:
            return None
        return (
            f"{minor_faults_per_iter:,.0f} page faults per iteration ({frac:.0%} of the bytes it moves): "
            f"not a steady state; {advice}"
        )
    return f"{minor_faults_per_iter:,.0f} page faults per iteration: not a steady state; {advice}"
