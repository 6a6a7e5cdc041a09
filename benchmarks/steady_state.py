"""Steady-state CPU timing: does fnbench agree with itself and with a plain loop once the allocator is set?

Three checks, each in fresh processes, at default settings (1 thread, ``--allocator tuned``):

1. ``fnbench run --target dwconv --shape 96x56x56`` twice, with a plain in-process loop over the
   same stack (tuned glibc, 20 warm-up forwards, then 2 s of forwards; median) before, between and
   after: the two runs' medians against each other and against the loops' median.
2. The same single-target run and loop under ``--allocator system``, for the contrast.
3. ``fnbench compare pconv dwconv`` three times: its verdict and the per-map FLOPS ratios.

    python benchmarks/steady_state.py [--out results/steady-state] [--skip-compare]

Project targets: run medians within 5 % of each other and within 10 % of the loop; the same
compare verdict three times with FLOPS ratios within 5 % of each other.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

_LOOP = """
import sys, time, resource, torch
from fnbench import allocators
from fnbench.timing import reference_s
allocators.apply(sys.argv[1])
torch.set_num_threads(1)
torch.manual_seed(0)
m = torch.nn.Sequential(*[torch.nn.Conv2d(96, 96, 3, 1, 1, groups=96, bias=False) for _ in range(10)]).eval()
x = torch.randn(1, 96, 56, 56)
with torch.inference_mode():
    for _ in range(20):
        m(x)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ts, refs, end = [], [], time.perf_counter() + 2.0
    while time.perf_counter() < end:
        t0 = time.perf_counter(); m(x); ts.append(time.perf_counter() - t0)
        if len(ts) % 20 == 0:
            refs.append(reference_s())
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - 0
ts.sort()
refs.sort()
print(ts[len(ts) // 2], (f1 - f0) / len(ts), refs[len(refs) // 2])
"""


def fnbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fnbench", *args], capture_output=True, text=True)


def loop(allocator: str) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", _LOOP, allocator], capture_output=True, text=True, check=True)
    med, faults, ref = out.stdout.split()
    return float(med), float(faults), float(ref)


def run_dwconv(out: Path, allocator: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    p = fnbench(
        "run",
        "--device",
        "cpu",
        "--target",
        "dwconv",
        "--shape",
        "96x56x56",
        "--allocator",
        allocator,
        "--out",
        str(out),
        "--json",
    )
    if p.returncode != 0:
        raise SystemExit(f"fnbench run failed: {p.stderr.strip()}")
    return json.loads(p.stdout)["records"][0], time.perf_counter() - t0


def single_target(out: Path, allocator: str) -> None:
    loops, runs = [], []
    loops.append(loop(allocator))
    for _ in range(2):
        runs.append(run_dwconv(out, allocator))
        loops.append(loop(allocator))
    ref = statistics.median(m for m, _, _ in loops)
    print(f"\n[{allocator}] fnbench run --target dwconv --shape 96x56x56, two fresh invocations:")
    for i, (rec, wall) in enumerate(runs, 1):
        st = rec["stats"]
        print(
            f"  run {i}: median {st['median_s'] * 1e3:.3f} ms, 95% CI {st['ci95_low_s'] * 1e3:.3f}-"
            f"{st['ci95_high_s'] * 1e3:.3f} (±{st['rel_ci_halfwidth']:.1%}), stable {st['stable']}, "
            f"faults/iter {st['minor_faults_per_iter']:.2f}, reference kernel {st['reference_median_s'] * 1e3:.3f} ms, "
            f"{wall:.1f} s"
        )
    print(
        "  in-process loops (before, between, after): "
        + ", ".join(f"{m * 1e3:.3f} ms ({f:.0f} faults/iter, reference {r * 1e3:.3f} ms)" for m, f, r in loops)
    )
    a, b = (r["stats"]["median_s"] for r, _ in runs)
    print(
        f"  runs differ by {abs(b / a - 1):.1%}; run medians vs the loops' median {ref * 1e3:.3f} ms: "
        f"{a / ref - 1:+.1%}, {b / ref - 1:+.1%}"
    )
    ra, rb = (r["stats"]["reference_median_s"] for r, _ in runs)
    print(f"  the machine itself (reference kernel, run 2 / run 1): {rb / ra:.3f}; latency run 2 / run 1: {b / a:.3f}")


def compares() -> None:
    print("\nfnbench compare pconv dwconv, three times:")
    per_run = []
    for i in range(3):
        t0 = time.perf_counter()
        p = fnbench("compare", "pconv", "dwconv", "--json")
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"fnbench compare failed: {p.stderr.strip()}")
        d = json.loads(p.stdout)
        ratios = [1 / r["flops_ratio"] for r in d["rows"]]  # pconv FLOPS / dwconv FLOPS per map
        dw = [r["b"]["median_s"] * 1e3 for r in d["rows"]]
        per_run.append(ratios)
        s = d["summary"]
        print(
            f"  compare {i + 1} ({wall:.0f} s): PConv/DWConv FLOPS per map "
            + ", ".join(f"{x:.2f}x" for x in ratios)
            + f"; dwconv ms {', '.join(f'{x:.2f}' for x in dw)}; verdict: {s['claim_verdict']}"
        )
    spread = [max(col) / min(col) - 1 for col in zip(*per_run)]
    print("  largest spread of a map's FLOPS ratio over the three: " + ", ".join(f"{x:.1%}" for x in spread))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/steady-state")
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--skip-system", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    single_target(out, "tuned")
    if not args.skip_system:
        single_target(out, "system")
    if not args.skip_compare:
        compares()


if __name__ == "__main__":
    main()
