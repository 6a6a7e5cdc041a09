"""A command that measures in its own process starts again under a preloaded allocator (``LD_PRELOAD``)."""

from __future__ import annotations

import sys

from ..errors import UserError

__all__ = ["preloaded_or_reexec"]

#: Set in the environment of a CLI re-executed with an allocator preloaded, so it is done once.
_PRELOAD_MARK = "FNBENCH_PRELOADED_ALLOCATOR"


def preloaded_or_reexec(allocator: str) -> None:
    """For an in-process command under jemalloc/tcmalloc: re-execute this command with it preloaded.

    A library can only be preloaded when a process starts; ``compare`` and ``probe`` measure in
    their own process, so they start again with ``LD_PRELOAD`` set (once: a second time is an error).
    """
    import os

    from .. import allocators

    allocators.check_allocator(allocator)
    if allocator not in allocators.LIBRARIES or allocator in allocators.loaded_libraries():
        return
    if os.environ.get(_PRELOAD_MARK) == allocator:
        raise UserError(
            f"--allocator {allocator}: {allocators.LIBRARIES[allocator][0]} was preloaded but is not "
            "mapped in the process (LD_PRELOAD ignored?); choose --allocator tuned"
        )
    env = allocators.preload_env(allocator)
    env[_PRELOAD_MARK] = allocator
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "fnbench", *sys.argv[1:]], env)
