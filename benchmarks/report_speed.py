"""How long does ``fnbench report`` take on a results folder? Wall seconds and peak memory, fresh processes.

Each repeat runs ``python -m fnbench report FOLDER --out <temporary folder>`` as a new process
(imports included, as a user's command line pays them) and reads its wall time, its CPU time
(user + system: on a shared machine the wall time also holds the wait for a core) and its peak
resident memory (``wait4``'s ``ru_maxrss``). Printed per repeat, then the median of each.

The report keeps drawn figures in a cache keyed by the result files' contents and fnbench's
source (:mod:`fnbench.report.cache`). ``cold`` gives every repeat an empty cache, so every figure
is drawn; ``warm`` shares one cache that an untimed first report filled, as a second report of
the same files finds it. ``both`` (the default) measures both.

    python benchmarks/report_speed.py RESULTS [RESULTS...] [--repeats 5] [--cache both|cold|warm]

The fnbench that runs is the one ``python -m fnbench`` imports: set ``PYTHONPATH`` to time another
checkout (the same command before and after a change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_report(paths: list[str], out: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """``(wall s, CPU s, peak RSS MiB)`` of one ``fnbench report`` in a fresh process."""
    cmd = [sys.executable, "-m", "fnbench", "report", *paths, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def series(paths: list[str], repeats: int, cache: str, tmp: Path) -> list[tuple[float, float, float]]:
    """``repeats`` timed reports; ``cache`` is ``cold`` (an empty cache each) or ``warm`` (one filled cache)."""
    env = dict(os.environ)
    shared = tmp / f"cache-{cache}"
    if cache == "warm":
        env["FNBENCH_CACHE_DIR"] = str(shared)
        one_report(paths, tmp / "prime", env)  # untimed: fills the cache
    runs = []
    for i in range(repeats):
        if cache == "cold":
            env["FNBENCH_CACHE_DIR"] = str(tmp / f"cache-cold-{i}")
        runs.append(one_report(paths, tmp / f"{cache}-{i}", env))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="result files or folders, as `fnbench report` takes them")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache", choices=("both", "cold", "warm"), default="both")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="report-speed-") as t:
        for cache in ("cold", "warm") if args.cache == "both" else (args.cache,):
            runs = series(args.paths, args.repeats, cache, Path(t))
            for i, (wall, cpu, rss) in enumerate(runs):
                print(f"{cache} {i + 1}: {wall:6.2f} s wall  {cpu:6.2f} s CPU  {rss:7.0f} MiB peak RSS")
            wall, cpu, rss = (statistics.median(x) for x in zip(*runs))
            print(
                f"{cache}: median of {len(runs)}: {wall:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MiB peak RSS "
                f"(wall {min(r[0] for r in runs):.2f}–{max(r[0] for r in runs):.2f} s)"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
