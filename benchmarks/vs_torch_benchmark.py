"""fnbench's timing engine against torch.utils.benchmark on one suite, interleaved, 1 thread.

Both tools see the same conditions: the suite is measured in ``--passes`` passes, each pass in a
fresh Python process (as ``fnbench run`` does), and inside a pass every target is measured by
both tools back to back, alternating which goes first, on modules built the same way (BN folded,
``eval()``, inference mode, one thread). Per tool and pass:

- fnbench: :func:`fnbench.timing.measure` with ``budget / passes`` seconds (rounds over fresh
  allocations); across passes its estimate and CI are what ``fnbench run`` reports (median of
  round medians, bootstrap over processes then rounds).
- torch.utils.benchmark: ``Timer.blocked_autorange(min_run_time=budget / passes)`` on one
  allocation; across passes its estimate is the median of the pass medians and it counts as
  stable when no pass raised its own warning (IQR above 10 % of the median).

Printed per row: both medians, their ratio, the paired ratio (median over passes of the
in-pass ratios) with a 95 % bootstrap CI, both stability flags, the seconds each tool took.
Last column, the timing mechanics alone: on one module and input per pass, fnbench's timer
(the blocks :func:`~fnbench.timing.measure` takes) and ``blocked_autorange`` alternate in short
turns, so the machine's drift hits both alike; the median of the per-turn ratios and its CI.

    python benchmarks/vs_torch_benchmark.py [--suite table1] [--budget 9] [--passes 5]

Project target: medians within 3 % of torch.utils.benchmark where both are stable.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

_CHILD = "--child-pass"
#: Same-allocation check: alternations per target and pass, and seconds each tool gets per turn.
_PAIRS = 6
_PAIR_S = 0.05


def child(suite: str, budget_s: float, passes: int, index: int) -> None:
    """One pass in this (fresh) process: both tools on every target, one JSON line per target."""
    import torch
    import torch.utils.benchmark as tb

    from fnbench.suites import get_suite
    from fnbench.targets import resolve
    from fnbench.timing import MIN_BLOCK_S, fold_bn, make_timer, measure

    torch.set_num_threads(1)
    per_tool = budget_s / passes
    for i, spec in enumerate(get_suite(suite).specs()):
        target = resolve(spec)
        x = target.example_input()

        def build():
            m = target.build(0).eval()
            fold_bn(m)
            return m

        def run_fn():
            t0 = time.perf_counter()
            m = measure(build(), x, threads=1, budget_s=per_tool, rebuild=build, min_rounds=500, fold=False)
            return {"samples_s": m.samples_s, "rounds": m.round_ids, "wall_s": time.perf_counter() - t0}

        def run_tb():
            t0 = time.perf_counter()
            module = build()
            with torch.inference_mode():
                module(x)  # first call: primitive creation, outside the timed blocks
                t = tb.Timer("m(x)", globals={"m": module, "x": x.clone()}, num_threads=1)
                res = t.blocked_autorange(min_run_time=per_tool)
            return {"median_s": res.median, "warning": bool(res.has_warnings), "wall_s": time.perf_counter() - t0}

        def same_allocation():
            """fnbench's timer and torch.utils.benchmark alternating on one module and input."""
            module, xx = build(), x.clone()
            timer = make_timer(time.perf_counter, lambda: None)
            out = []
            with torch.inference_mode():
                step = lambda: module(xx)
                for _ in range(3):
                    step()
                t_iter = timer(step, 1)
                block = max(1, math.ceil(MIN_BLOCK_S["cpu"] / t_iter))  # as measure() picks it
                n = max(3, round(_PAIR_S / (t_iter * block)))
                t = tb.Timer("m(x)", globals={"m": module, "x": xx}, num_threads=1)
                for j in range(_PAIRS):
                    fn_first = (j + index) % 2 == 0
                    if not fn_first:
                        tb_med = t.blocked_autorange(min_run_time=_PAIR_S).median
                    fn_med = float(np.median([timer(step, block) / block for _ in range(n)]))
                    if fn_first:
                        tb_med = t.blocked_autorange(min_run_time=_PAIR_S).median
                    out.append([fn_med, tb_med])
            return out

        if (i + index) % 2 == 0:
            fn, th = run_fn(), run_tb()
        else:
            th, fn = run_tb(), run_fn()
        pairs = same_allocation()
        torch.set_num_threads(1)
        print(json.dumps({"label": spec.label, "pass": index, "fn": fn, "tb": th, "pairs": pairs}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="table1")
    ap.add_argument("--budget", type=float, default=9.0, help="seconds per target and tool, over all passes")
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--precision", type=float, default=0.02)
    ap.add_argument(_CHILD, type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_pass is not None:
        child(args.suite, args.budget, args.passes, args.child_pass)
        return

    from fnbench.measurement import DEFAULT_MIN_ROUNDS, workers_settled
    from fnbench.stats import HIERARCHICAL_CI_METHOD, hierarchical_median_ci, round_medians

    rows: dict[str, list[dict]] = {}
    t_start = time.perf_counter()
    for p in range(args.passes):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--suite",
                args.suite,
                "--budget",
                str(args.budget),
                "--passes",
                str(args.passes),
                _CHILD,
                str(p),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in out.stdout.splitlines():
            rec = json.loads(line)
            rows.setdefault(rec["label"], []).append(rec)
        print(f"pass {p + 1}/{args.passes} done at {time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)

    print(
        f"{'target':26s} {'fnbench ms':>10s} {'torch ms':>9s} {'ratio':>6s} {'paired ratio [95% CI]':>22s} "
        f"{'fn stable':>9s} {'tb stable':>9s} {'fn s':>6s} {'tb s':>6s}  same-allocation ratio [95% CI]"
    )
    results = []
    rng = np.random.default_rng(0)
    fn_total = tb_total = 0.0
    for label, recs in rows.items():
        s, r, w = [], [], []
        for k, rec in enumerate(recs):
            s += rec["fn"]["samples_s"]
            r += [k * 10_000 + x for x in rec["fn"]["rounds"]]
            w += [k] * len(rec["fn"]["samples_s"])
        fn_med, ci = hierarchical_median_ci(s, r, w)
        fn_stable = workers_settled(s, r, w, args.precision, DEFAULT_MIN_ROUNDS, ci=ci)  # fnbench run's rule
        tb_meds = np.array([rec["tb"]["median_s"] for rec in recs])
        tb_med = float(np.median(tb_meds))
        tb_stable = not any(rec["tb"]["warning"] for rec in recs)
        per_pass = (
            np.array([float(np.median(round_medians(rec["fn"]["samples_s"], rec["fn"]["rounds"]))) for rec in recs])
            / tb_meds
        )
        boot = np.median(per_pass[rng.integers(0, per_pass.size, (4000, per_pass.size))], axis=1)
        lo, hi = np.quantile(boot, [0.025, 0.975])
        pr = np.array([a / b for rec in recs for a, b in rec["pairs"]])
        pboot = np.median(pr[rng.integers(0, pr.size, (4000, pr.size))], axis=1)
        same = (float(np.median(pr)), *np.quantile(pboot, [0.025, 0.975]))
        fn_s = sum(rec["fn"]["wall_s"] for rec in recs)
        tb_s = sum(rec["tb"]["wall_s"] for rec in recs)
        fn_total += fn_s
        tb_total += tb_s
        ratio = fn_med / tb_med
        results.append((label, ratio, fn_stable, tb_stable, float(np.median(per_pass)), lo, hi, *same))
        print(
            f"{label:26s} {fn_med * 1e3:10.3f} {tb_med * 1e3:9.3f} {ratio:6.3f} "
            f"{np.median(per_pass):8.3f} [{lo:.3f}, {hi:.3f}] {str(fn_stable):>9s} {str(tb_stable):>9s} "
            f"{fn_s:6.1f} {tb_s:6.1f}  {same[0]:.3f} [{same[1]:.3f}, {same[2]:.3f}]"
        )
    n = len(results)
    both = [x for x in results if x[2] and x[3]]
    print(f"\nrows: {n}; passes: {args.passes} fresh processes; fnbench CI: {HIERARCHICAL_CI_METHOD}")
    print(f"both stable: {len(both)}; of those within 3%: {sum(abs(x[1] - 1) <= 0.03 for x in both)}")
    print(f"fnbench stable rows: {sum(x[2] for x in results)}/{n}; torch stable rows: {sum(x[3] for x in results)}/{n}")
    print(
        f"all rows within 3%: {sum(abs(x[1] - 1) <= 0.03 for x in results)}/{n}; "
        f"|ratio-1| median {np.median([abs(x[1] - 1) for x in results]) * 100:.1f}%"
    )
    print(
        f"paired ratio CI inside [0.97, 1.03]: {sum(x[5] >= 0.97 and x[6] <= 1.03 for x in results)}/{n}; "
        f"CI contains 1: {sum(x[5] <= 1 <= x[6] for x in results)}/{n}"
    )
    print(
        f"same allocation, alternating timers ({_PAIRS} turns x {args.passes} passes): ratio within 3%: "
        f"{sum(abs(x[7] - 1) <= 0.03 for x in results)}/{n}; CI inside [0.97, 1.03]: "
        f"{sum(x[8] >= 0.97 and x[9] <= 1.03 for x in results)}/{n}; "
        f"|ratio-1| median {np.median([abs(x[7] - 1) for x in results]) * 100:.1f}%"
    )
    print(f"time: fnbench {fn_total:.1f} s, torch.utils.benchmark {tb_total:.1f} s")


if __name__ == "__main__":
    main()
