"""Does fnbench agree with itself? Two (or more) runs of a suite back to back, rows and claims compared.

Each run is ``fnbench run`` in a fresh subprocess (default: ``--suite default --budget 6 --precision
0.05``, what ``make run`` measures), into a folder of its own; ``--code DIR`` puts another checkout
of fnbench on that subprocess's ``PYTHONPATH``, so that a run with today's code and one with an
older commit can be compared with the same analysis (records from runs that did not interleave
their targets carry no cycles and are judged unpaired). ``--from DIR DIR …`` analyses folders
already measured.

For every pair of runs it prints:

- each row: both medians, their 95 % half-widths, the difference, whether the intervals overlap;
- each Table-1 claim (the claim engine's statistic, :func:`fnbench.verdicts.claim_table`): both
  ratios with their intervals, the difference, and whether each run's ratio lies inside the other's
  interval;
- PConv/DWConv FLOPS per map (GMAC/s of pconv over GMAC/s of dwconv at each Table-1 map).

Targets (the project's issue on repeatable claims): every Table-1 claim ratio within 5 % of the other
run's and inside its 95 % CI; PConv/DWConv FLOPS per map within 5 % on every map.

    python benchmarks/repeatability.py [--runs 2] [--suite default] [--budget 6] [--precision 0.05]
                                       [--out results/repeatability] [--code DIR] [--from DIR DIR ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TABLE1_CLAIMS = (
    "pconv_vs_dwconv_flops",
    "pconv_vs_gconv_flops",
    "pconv_vs_dwconv_latency",
    "pconv_vs_gconv_latency",
    "pconv_latency_vs_flops",
)


def one_run(i: int, args) -> Path:
    """``fnbench run`` in a subprocess into ``OUT/run<i>``; returns that folder."""
    out = (Path(args.out) / f"run{i}").resolve()
    env, cwd = dict(os.environ), None
    if args.code:  # run from that checkout too: `python -m` puts the working directory before PYTHONPATH
        cwd = str(Path(args.code).resolve())
        env["PYTHONPATH"] = cwd
    cmd = [sys.executable, "-m", "fnbench", "run", "--device", "cpu", "--suite", args.suite]
    cmd += ["--budget", str(args.budget), "--precision", str(args.precision), "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    print(f"run {i}: {out} in {time.perf_counter() - t0:.0f} s (load average {load:.2f})", flush=True)
    return out


def rows_table(fa, fb) -> None:
    """Row by row: medians, half-widths, difference, overlap of the intervals."""
    key = ["target", "shape", "runtime", "allocator"]
    m = fa.merge(fb, on=key, suffixes=("_a", "_b"))
    m = m[(m.status_a == "ok") & (m.status_b == "ok")]
    within = overlap = 0
    print(f"\n{'row':34s} {'run A ms':>9s} {'±%':>6s} {'run B ms':>9s} {'±%':>6s} {'diff':>7s}  overlap")
    for r in m.itertuples():
        diff = r.median_s_b / r.median_s_a - 1
        ov = r.ci95_low_s_a <= r.ci95_high_s_b and r.ci95_low_s_b <= r.ci95_high_s_a
        within += abs(diff) <= 0.05
        overlap += ov
        print(
            f"{r.target + ' ' + str(r.shape):34s} {r.median_s_a * 1e3:9.3f} {r.rel_ci_halfwidth_a:6.1%} "
            f"{r.median_s_b * 1e3:9.3f} {r.rel_ci_halfwidth_b:6.1%} {diff:+7.1%}  {'yes' if ov else 'NO'}"
        )
    diffs = np.abs(m.median_s_b / m.median_s_a - 1)
    print(
        f"rows within 5%: {within}/{len(m)}; intervals overlapping: {overlap}/{len(m)}; "
        f"median |difference| {float(np.median(diffs)):.1%}"
    )


def claims_table(ca, cb) -> tuple[int, int, int]:
    """Each Table-1 claim of both runs: ratio, interval, difference, each inside the other's interval."""
    key = ["claim_id", "runtime"]
    m = ca.merge(cb, on=key, suffixes=("_a", "_b"))
    m = m[m.claim_id.isin(TABLE1_CLAIMS) & m.ratio_a.notna() & m.ratio_b.notna()]
    within = inside = 0
    print(f"\n{'claim':26s} {'run A':>7s} {'95% CI':>15s} {'run B':>7s} {'95% CI':>15s} {'diff':>7s}  inside  paired")
    for r in m.itertuples():
        diff = r.ratio_b / r.ratio_a - 1
        a_in_b = r.ci95_low_b <= r.ratio_a <= r.ci95_high_b
        b_in_a = r.ci95_low_a <= r.ratio_b <= r.ci95_high_a
        within += abs(diff) <= 0.05
        inside += a_in_b and b_in_a
        paired = "/".join("yes" if "paired by cycle" in str(n) else "no" for n in (r.note_a, r.note_b))
        print(
            f"{r.claim_id:26s} {r.ratio_a:7.3f} {r.ci95_low_a:7.3f}–{r.ci95_high_a:<7.3f} {r.ratio_b:7.3f} "
            f"{r.ci95_low_b:7.3f}–{r.ci95_high_b:<7.3f} {diff:+7.1%}  {'yes' if a_in_b and b_in_a else 'NO':6s}  "
            f"{paired}"
        )
    print(f"claims within 5%: {within}/{len(m)}; each inside the other's 95% CI: {inside}/{len(m)}")
    return within, inside, len(m)


def per_map_table(fa, fb) -> None:
    """PConv/DWConv FLOPS at each Table-1 map, both runs."""

    def ratios(f):
        ok = f[(f.status == "ok") & (f.runtime == "eager") & (f.allocator == "tuned")]
        g = ok.set_index(["target", "shape"]).gmacs_per_s
        return {
            s: g[("pconv", s)] / g[("dwconv", s)]
            for s in ok["shape"].unique()
            if ("pconv", s) in g and ("dwconv", s) in g
        }

    ra, rb = ratios(fa), ratios(fb)
    within = 0
    print(f"\n{'PConv/DWConv FLOPS':20s} {'run A':>7s} {'run B':>7s} {'diff':>7s}")
    for s in sorted(set(ra) & set(rb), key=lambda x: -int(x.split("x")[1])):
        diff = rb[s] / ra[s] - 1
        within += abs(diff) <= 0.05
        print(f"{s:20s} {ra[s]:7.3f} {rb[s]:7.3f} {diff:+7.1%}")
    print(f"maps within 5%: {within}/{len(set(ra) & set(rb))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--suite", default="default")
    ap.add_argument("--budget", type=float, default=6.0)
    ap.add_argument("--precision", type=float, default=0.05)
    ap.add_argument("--out", default="results/repeatability")
    ap.add_argument("--code", help="a checkout of fnbench to measure with (its directory on PYTHONPATH)")
    ap.add_argument("--from", dest="from_dirs", nargs="+", help="analyse these run folders instead of measuring")
    args = ap.parse_args()
    from fnbench.merge import load_frame
    from fnbench.verdicts import claim_table

    folders = [Path(d) for d in args.from_dirs] if args.from_dirs else [one_run(i, args) for i in range(args.runs)]
    frames = [load_frame(str(d)) for d in folders]
    claims = [claim_table(f) for f in frames]
    for (i, fa), (j, fb) in itertools.combinations(enumerate(frames), 2):
        print(f"\n=== {folders[i]} (A) vs {folders[j]} (B) ===")
        rows_table(fa, fb)
        claims_table(claims[i], claims[j])
        per_map_table(fa, fb)


if __name__ == "__main__":
    main()
