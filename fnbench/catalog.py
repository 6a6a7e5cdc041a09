"""What ``fnbench list`` shows: names and one-line summaries per kind."""

from __future__ import annotations

import fnmatch

from operators import NETWORKS, OPERATORS  # importing the package registers every entry

from .suites import SUITES

__all__ = ["listing"]


def listing(kind: str, pattern: str = "*") -> list[tuple[str, str]]:
    """``[(name, summary)]`` of ``kind`` whose name matches ``pattern`` (fnmatch)."""
    if kind == "ops":
        return [(n, OPERATORS.get(n).summary) for n in OPERATORS.names(pattern)]
    if kind == "networks":
        return [(n, NETWORKS.get(n).summary) for n in NETWORKS.names(pattern)]
    if kind == "suites":
        return [(n, SUITES[n].summary) for n in sorted(SUITES) if fnmatch.fnmatchcase(n, pattern)]
    if kind == "devices":
        from .devices import available_devices, resolve_device

        return [(n, f"{d.name} ({d.arch})") for n in available_devices() if fnmatch.fnmatchcase(n, pattern)
                for d in [resolve_device(n)]]
    if kind == "runtimes":
        from .runtimes import RUNTIMES

        return [(n, s) for n, s in RUNTIMES.items() if fnmatch.fnmatchcase(n, pattern)]
    raise ValueError(kind)

