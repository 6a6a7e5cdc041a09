"""What does a campaign add over a plain run of the same suite? Wall seconds, measured, in alternation.

Each repeat runs ``fnbench run`` and ``fnbench campaign --local`` with the same options, each as a
fresh process (imports included), in alternating order so that drift hits both alike. Reported
per repeat and as medians: the wall time of each, the difference (the campaign's overhead), and
where the campaign's time went: before its node's run started (starting Ray, checking the node),
the node's run itself (a plain run in a child process), and after it (records home, tables).

    python benchmarks/campaign_overhead.py [--suite quick] [--budget 2] [--repeats 3] [--out results/campaign-overhead]

Only the loopback address is used (``--local`` binds Ray to 127.0.0.1, no dashboard).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """``(epoch at start, wall seconds, process)`` of one command."""
    start, t0 = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return start, wall, proc


def one_pair(run_args: list[str], out: Path, i: int, campaign_first: bool) -> dict:
    fnbench = [sys.executable, "-m", "fnbench"]
    run_cmd = [*fnbench, "run", *run_args, "--out", str(out / f"run-{i}")]
    camp_out = out / f"campaign-{i}"
    camp_cmd = [*fnbench, "campaign", "--local", *run_args, "--out", str(camp_out)]
    order = [("campaign", camp_cmd), ("run", run_cmd)] if campaign_first else [("run", run_cmd), ("campaign", camp_cmd)]
    got = {name: _timed(cmd) for name, cmd in order}
    (plan_path,) = camp_out.glob("*/campaign.json")
    (job,) = json.loads(plan_path.read_text())["jobs"]
    start, wall, _ = got["campaign"]
    return {
        "run_s": got["run"][1],
        "campaign_s": wall,
        "overhead_s": wall - got["run"][1],
        "before_node_run_s": job["started"] - start,
        "node_run_s": job["finished"] - job["started"],
        "after_node_run_s": start + wall - job["finished"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--budget", default="2", help="seconds per target (both commands)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="results/campaign-overhead")
    args = ap.parse_args()
    out = Path(args.out)
    run_args = ["--suite", args.suite, "--budget", args.budget]
    rows = []
    for i in range(args.repeats):
        row = one_pair(run_args, out, i, campaign_first=i % 2 == 1)
        rows.append(row)
        print(
            f"repeat {i + 1}: run {row['run_s']:.1f} s, campaign {row['campaign_s']:.1f} s "
            f"(before the node's run {row['before_node_run_s']:.1f} s, the run {row['node_run_s']:.1f} s, "
            f"after {row['after_node_run_s']:.1f} s): overhead {row['overhead_s']:+.1f} s"
        )
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"median of {len(rows)}: run {med['run_s']:.1f} s, campaign {med['campaign_s']:.1f} s, "
        f"overhead {med['overhead_s']:+.1f} s (before the node's run {med['before_node_run_s']:.1f} s, "
        f"after {med['after_node_run_s']:.1f} s); suite {args.suite}, --budget {args.budget}"
    )
    (out / "overhead.json").write_text(json.dumps({"args": vars(args), "repeats": rows, "median": med}, indent=1))


if __name__ == "__main__":
    main()
