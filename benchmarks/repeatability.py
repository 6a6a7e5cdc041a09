"""Does fnbench agree with itself across fresh processes? Two runs of a suite in two subprocesses.

Each run is a separate ``python -c`` process calling :func:`fnbench.runner.run_suite` at default
settings (1 thread, the default worker processes: each target sampled across fresh processes). Reported: the wall time of each run, the fraction of rows whose medians
fall inside each other's 95 % CI (both ways), and per-row medians.

    python benchmarks/repeatability.py [--suite table1] [--out results/repeatability] [--passes N]

Project targets: the Table-1 suite in ≤ 3 minutes; every row's medians within 5 % of each other,
CIs overlapping on ≥ 15 of 16 rows; steady-state page faults per iteration near zero (tuned).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from fnbench.results import read_records, record_key

_CHILD = """
import sys, json
from fnbench.options import RunOptions
from fnbench.runner import run_suite
from fnbench.suites import get_suite
kw = {"passes": int(sys.argv[3])} if len(sys.argv) > 3 else {}
s = run_suite(get_suite(sys.argv[1]).specs(), RunOptions(device="cpu", **kw), out_dir=sys.argv[2])
print(json.dumps({"path": str(s.path)}))
"""


def one_run(suite: str, out: Path, passes: int | None = None) -> tuple[Path, float]:
    t0 = time.perf_counter()
    extra = [str(passes)] if passes else []
    p = subprocess.run(
        [sys.executable, "-c", _CHILD, suite, str(out), *extra], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    return Path(json.loads(p.stdout.strip().splitlines()[-1])["path"]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="table1")
    ap.add_argument("--out", default="results/repeatability")
    ap.add_argument("--passes", type=int, default=None, help="passes per run (default: fnbench run's default)")
    args = ap.parse_args()
    out = Path(args.out)
    runs = []
    for i in range(2):
        path, wall = one_run(args.suite, out, args.passes)
        recs = read_records(path)
        st = [r["stats"] for r in recs if r.get("stats")]
        print(
            f"run {i + 1}: {path.name} in {wall:.1f} s (process wall time, imports included); "
            f"stable {sum(bool(x['stable']) for x in st)}/{len(recs)}; "
            f"CI: {st[0].get('ci_method', 'order-statistic(rounds)') if st else '-'}, "
            f"workers {st[0].get('workers', 0) if st else '-'}",
            flush=True,
        )
        runs.append({record_key(r): r for r in recs})
    a, b = runs
    keys = [k for k in a if k in b]
    overlap = both_in = within5 = 0
    worst = 0.0
    max_faults = 0.0
    print(
        f"\n{'target':26s} {'run1 ms':>9s} {'CI1 ±%':>7s} {'run2 ms':>9s} {'CI2 ±%':>7s} {'diff':>6s} "
        f"{'faults/it':>9s} {'stable':>7s} overlap"
    )
    for k in keys:
        sa, sb = a[k]["stats"], b[k]["stats"]
        intervals_overlap = sa["ci95_low_s"] <= sb["ci95_high_s"] and sb["ci95_low_s"] <= sa["ci95_high_s"]
        each_in_other = (
            sb["ci95_low_s"] <= sa["median_s"] <= sb["ci95_high_s"]
            and sa["ci95_low_s"] <= sb["median_s"] <= sa["ci95_high_s"]
        )
        overlap += intervals_overlap
        both_in += each_in_other
        diff = abs(sb["median_s"] / sa["median_s"] - 1)
        within5 += diff <= 0.05
        worst = max(worst, diff)
        faults = max(x.get("minor_faults_per_iter") or 0.0 for x in (sa, sb))
        max_faults = max(max_faults, faults)
        t = a[k]["target"]
        label = f"{t['name']} {'x'.join(map(str, t['shape']))}"
        print(
            f"{label:26s} {sa['median_s'] * 1e3:9.3f} {sa['rel_ci_halfwidth'] * 100:7.1f} "
            f"{sb['median_s'] * 1e3:9.3f} {sb['rel_ci_halfwidth'] * 100:7.1f} {diff:6.1%} {faults:9.2f} "
            f"{str(sa['stable'])[0]}/{str(sb['stable'])[0]:>5s} {'yes' if intervals_overlap else 'NO'}"
            f"{' (medians in each other CI)' if each_in_other else ''}"
        )
    n = len(keys)
    print(
        f"\nrows: {n}; CIs overlap: {overlap}/{n} = {overlap / n:.0%}; "
        f"each median inside the other's CI: {both_in}/{n} = {both_in / n:.0%}"
    )
    print(
        f"medians within 5% of each other: {within5}/{n} (largest difference {worst:.1%}); "
        f"most page faults per iteration on any row: {max_faults:.2f}"
    )


if __name__ == "__main__":
    main()
