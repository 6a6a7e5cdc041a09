"""What fraction of rows can two runs agree on, if fnbench's 95 % intervals are exactly right?

Simulates pairs of runs of one target drawn from the same population (``--processes``
processes with a random level each, rounds with their own level, right-skewed iterations), builds
fnbench's interval for each (:func:`fnbench.stats.hierarchical_median_ci`: bootstrap over
processes, then rounds) and counts two things: how often a run's interval covers the true median
(the interval's promise), and how often each run's median falls inside the other run's interval
(the cross-run check of ``benchmarks/repeatability.py``).

For two independent estimates with equal spread and exact 95 % intervals the second fraction is
P(|Z| < 1.96 / √2) ≈ 83 %: a median is itself noisy, so it lands outside another run's correct
interval more often than the true median does.

    python benchmarks/ci_calibration.py [--pairs 300] [--processes 5]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats as sps

from fnbench.stats import hierarchical_median_ci

#: Levels are log-symmetric about 0 and an iteration is exp(|N(0, 1 %)|) of its round's level, whose
#: median is exp(0.6745 %): the population median the estimate aims at.
TRUE_MEDIAN = float(np.exp(0.01 * sps.norm.ppf(0.75)))


def one_run(
    rng: np.random.Generator,
    processes: int,
    process_sd: float,
    rounds: int = 4,
    per_round: int = 10,
    round_sd: float = 0.02,
):
    s, r, w = [], [], []
    rid = 0
    for p in range(processes):
        level = np.exp(rng.normal(0.0, process_sd))
        for _ in range(rounds):
            rl = level * np.exp(rng.normal(0.0, round_sd))
            s += list(rl * np.exp(np.abs(rng.normal(0.0, 0.01, per_round))))  # iterations only get slower
            r += [rid] * per_round
            w += [p] * per_round
            rid += 1
    return hierarchical_median_ci(s, r, w, n_boot=1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--processes", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"exact 95% intervals, equal spread: each median inside the other's interval "
        f"{2 * sps.norm.cdf(1.96 / np.sqrt(2)) - 1:.1%}"
    )
    for process_sd in (0.05, 0.2):
        both = covers = 0
        for _ in range(args.pairs):
            m1, c1 = one_run(rng, args.processes, process_sd)
            m2, c2 = one_run(rng, args.processes, process_sd)
            both += (c1.low <= m2 <= c1.high) and (c2.low <= m1 <= c2.high)
            covers += c1.low <= TRUE_MEDIAN <= c1.high
        print(
            f"process-level sd {process_sd:.0%}, {args.processes} processes: interval covers the true median "
            f"{covers / args.pairs:.0%}; each median inside the other's interval {both / args.pairs:.0%} "
            f"({args.pairs} pairs)"
        )


if __name__ == "__main__":
    main()
