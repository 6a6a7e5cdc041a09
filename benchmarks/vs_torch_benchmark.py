"""fnbench's timing engine against torch.utils.benchmark on the Table-1 suite, interleaved, 1 thread.

For every target, fnbench's :func:`fnbench.timing.measure` (rounds over fresh allocations) and
``torch.utils.benchmark.Timer.adaptive_autorange`` (one allocation, blocked loop) are run back to
back, alternating which goes first so slow drift hits both alike. Printed per row: both medians,
their ratio, both stability flags and the seconds each tool took.

    python benchmarks/vs_torch_benchmark.py [--budget 9] [--suite table1]

Project target: medians within 3 % of torch.utils.benchmark where both are stable.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.utils.benchmark as tb

from fnbench.suites import get_suite
from fnbench.targets import resolve
from fnbench.timing import DEFAULT_BUDGET_S, DEFAULT_PRECISION, fold_bn, measure


def torch_timer(module, x, max_run_time: float):
    module = module.eval()
    fold_bn(module)
    with torch.inference_mode():
        t = tb.Timer("m(x)", globals={"m": module, "x": x}, num_threads=1)
        t0 = time.perf_counter()
        m = t.adaptive_autorange(threshold=0.02, max_run_time=max_run_time)
        wall = time.perf_counter() - t0
    stable = (m.iqr / m.median) <= 0.1 and not m.has_warnings
    return m.median, stable, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="table1")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S)
    ap.add_argument("--precision", type=float, default=DEFAULT_PRECISION)
    ap.add_argument("--torch-max-s", type=float, default=8.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    fn_total = th_total = 0.0
    print(f"{'target':28s} {'fnbench ms':>11s} {'torch ms':>10s} {'ratio':>7s} {'fn stable':>9s} "
          f"{'tb stable':>9s} {'fn s':>6s} {'tb s':>6s}", flush=True)
    for i, spec in enumerate(get_suite(args.suite).specs()):
        target = resolve(spec)
        x = target.example_input()

        def run_fn():
            t0 = time.perf_counter()
            m = measure(target.build(0), x, threads=1, precision=args.precision, budget_s=args.budget,
                        rebuild=lambda: target.build(0))
            return m, time.perf_counter() - t0

        def run_tb():
            return torch_timer(target.build(0), x.clone(), args.torch_max_s)

        if i % 2 == 0:
            (fm, fw), (tmed, tstable, tw) = run_fn(), run_tb()
        else:
            (tmed, tstable, tw), (fm, fw) = run_tb(), run_fn()
        torch.set_num_threads(1)
        ratio = fm.median_s / tmed
        fn_total += fw
        th_total += tw
        rows.append((spec.label, ratio, fm.stable, tstable))
        print(f"{spec.label:28s} {fm.median_s * 1e3:11.3f} {tmed * 1e3:10.3f} {ratio:7.3f} {str(fm.stable):>9s} "
              f"{str(tstable):>9s} {fw:6.1f} {tw:6.1f}", flush=True)
    both = [r for r in rows if r[2] and r[3]]
    within = [r for r in both if abs(r[1] - 1) <= 0.03]
    print(f"\nrows: {len(rows)}; both stable: {len(both)}; of those within 3%: {len(within)}")
    print(f"fnbench stable rows: {sum(r[2] for r in rows)}/{len(rows)}; torch stable rows: {sum(r[3] for r in rows)}/{len(rows)}")
    all_within = sum(abs(r[1] - 1) <= 0.03 for r in rows)
    print(f"all rows within 3%: {all_within}/{len(rows)}; |ratio-1| median "
          f"{sorted(abs(r[1] - 1) for r in rows)[len(rows) // 2] * 100:.1f}%")
    print(f"time: fnbench {fn_total:.1f} s, torch.utils.benchmark {th_total:.1f} s")


if __name__ == "__main__":
    main()
