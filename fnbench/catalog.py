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
        from .devices import DEVICE_ALIASES, device_kinds_status, resolve_device

        aliases = {k: [a for a, v in DEVICE_ALIASES.items() if v == k] for k in ("cpu", "arm", "cuda")}
        out = []
        for n, here, why in device_kinds_status():
            if not fnmatch.fnmatchcase(n, pattern):
                continue
            also = f"; also --device {', '.join(aliases[n])}" if aliases[n] else ""
            if here:
                d = resolve_device(n)
                out.append((n, f"here: {d.name} ({d.arch}){also}"))
            elif n == "arm":
                out.append(
                    (
                        n,
                        f"not here: {why}; run fnbench on the ARM machine and merge its results "
                        f"with `fnbench report`{also}",
                    )
                )
            else:
                out.append((n, f"not here: {why}{also}"))
        return out
    if kind == "runtimes":
        from .runtimes import RUNTIMES

        out = []
        for n, rt in RUNTIMES.items():
            if fnmatch.fnmatchcase(n, pattern):
                why = rt.unavailable("cpu")
                out.append(
                    (n, rt.summary + (f"; not here: {why}" if why else f"; {rt.version() or 'version unknown'}"))
                )
        return out
    raise ValueError(kind)
