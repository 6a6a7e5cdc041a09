"""Which levels of variation are left in a CPU latency once the allocator is controlled?

For each allocator and target, ``--processes`` fresh worker processes are started one after
another (spread over the minutes the script runs, as a run's passes are); each measures every
target for ``--chunk`` seconds in rounds of ``--round`` seconds (a fresh module and input per
round, as fnbench always does). Printed per target:

- ``round cv``: the spread of round medians inside one process (median over processes of their
  coefficient of variation) — what rounds of fresh allocations sample;
- ``process cv``: the spread of the processes' medians, and ``expected`` what the round spread
  alone would give for that many rounds (cv / √rounds) — a process level exists where the first
  is well above the second;
- ``drift``: the last process's median over the first one's — what minutes of run time add;
- faults per iteration.

    python benchmarks/variance_levels.py [--allocator tuned --allocator system] [--processes 6]

Used to choose fnbench run's sampling design (see fnbench/timing.py's docstring and the README).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from fnbench.targets import TargetSpec
from fnbench.workers import ChunkRequest, WorkerPool

DEFAULT_TARGETS = [
    "dwconv:96x56x56",
    "dwconv:768x7x7",
    "pconv:96x56x56",
    "pconv:384x14x14",
    "gconv:96x56x56",
    "conv:384x14x14",
]


def parse(t: str) -> TargetSpec:
    name, shape = t.split(":")
    return TargetSpec.make(name, tuple(int(v) for v in shape.split("x")), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allocator", action="append", default=None)
    ap.add_argument("--target", action="append", default=None, help="NAME:CxHxW (repeatable)")
    ap.add_argument("--processes", type=int, default=6)
    ap.add_argument("--chunk", type=float, default=1.2, help="seconds per target per process")
    ap.add_argument("--round", type=float, default=0.1, help="seconds per round")
    ap.add_argument(
        "--same-process",
        action="store_true",
        help="one long-lived worker per allocator for every pass instead of a fresh one per pass: "
        "separates a process level from a time level",
    )
    args = ap.parse_args()
    allocs = args.allocator or ["tuned"]
    specs = [parse(t) for t in (args.target or DEFAULT_TARGETS)]
    # per (allocator, target): per process, the round medians; and fault totals
    data: dict[tuple[str, str], list[np.ndarray]] = {}
    faults: dict[tuple[str, str], list[float]] = {}
    t0 = time.perf_counter()
    kept = {a: WorkerPool(1, allocator=a).__enter__() for a in allocs} if args.same_process else {}
    for p in range(args.processes):
        for a in allocs:
            with contextlib.nullcontext(kept[a]) if kept else WorkerPool(1, allocator=a) as pool:
                for spec in specs:
                    req = ChunkRequest(
                        spec,
                        chunk_budget_s=args.chunk,
                        min_rounds=500,
                        max_rounds=500,
                        round_s=args.round,
                        precision=1e-9,
                    )
                    r = pool.run_chunk(0, req)
                    if r.failure is not None:
                        raise SystemExit(f"{spec.label} under {a}: {r.status}: {r.failure.error}")
                    m = r.measurement
                    s, ids = np.asarray(m.samples_s), np.asarray(m.round_ids)
                    meds = np.array([np.median(s[ids == i]) for i in np.unique(ids)])
                    key = (a, spec.label)
                    data.setdefault(key, []).append(meds)
                    faults.setdefault(key, []).append(sum(m.counts.minor) / max(sum(m.counts.iters), 1))
        print(f"pass {p + 1}/{args.processes} done at {time.perf_counter() - t0:.0f} s", flush=True)
    for pool in kept.values():
        pool.close()
    level = "chunk (same process)" if kept else "process"
    print(f"\nper-{level} spread below is between {args.processes} {'chunks' if kept else 'processes'}")
    print(
        f"\n{'allocator':9s} {'target':22s} {'median ms':>9s} {'round cv':>8s} {'rounds':>6s} {'process cv':>10s} "
        f"{'expected':>8s} {'ratio':>6s} {'drift':>6s} {'faults/iter':>11s}"
    )
    for (a, label), per_proc in data.items():
        proc_meds = np.array([np.median(m) for m in per_proc])
        round_cv = float(np.median([np.std(m, ddof=1) / np.median(m) for m in per_proc if m.size > 1]))
        n_rounds = float(np.median([m.size for m in per_proc]))
        proc_cv = float(np.std(proc_meds, ddof=1) / np.median(proc_meds))
        # the median of n rounds has sd ≈ 1.25 σ / √n for normal round medians
        expected = 1.2533 * round_cv / np.sqrt(n_rounds)
        drift = proc_meds[-1] / proc_meds[0]
        print(
            f"{a:9s} {label:22s} {np.median(proc_meds) * 1e3:9.3f} {round_cv:8.2%} {n_rounds:6.0f} {proc_cv:10.2%} "
            f"{expected:8.2%} {proc_cv / expected:6.1f} {drift:6.3f} {np.mean(faults[(a, label)]):11.2f}"
        )


if __name__ == "__main__":
    main()
