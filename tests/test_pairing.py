"""The paired bootstrap of interleaved rows: common drift cancels, the interval still covers, no pairing without cycles."""

import numpy as np
import pytest

from fnbench import stats
from fnbench.pairing import MIN_COMMON_SHARE, Rounds, joint_draws, rounds_of


def _run(rng, *, passes=5, cycles=5, ratio=2.0, drift_sd=0.15, proc_sd=0.05, round_sd=0.02):
    """Two rows of one interleaved run: per-cycle host drift common to both, per-process and per-round noise
    of their own; b is ``ratio`` times slower than a."""
    rows = []
    drift = {(p, k): rng.lognormal(0, drift_sd) for p in range(passes) for k in range(cycles)}
    for base in (1e-3, ratio * 1e-3):
        proc = {p: rng.lognormal(0, proc_sd) for p in range(passes)}
        keys = [("run", p, k) for p in range(passes) for k in range(cycles)]
        meds = np.array([base * drift[p, k] * proc[p] * rng.lognormal(0, round_sd) for _, p, k in keys])
        rows.append(Rounds(meds, keys, [k[:-1] for k in keys]))
    return rows


def _unpaired(rows, n_boot, rng):
    """The bootstrap each row gets on its own: processes, then rounds (fnbench.stats)."""
    out = []
    for r in rows:
        proc_ids = [hash(p) % 1000 for p in r.processes]
        samples = list(r.medians)
        out.append(stats.hierarchical_median_draws(samples, list(range(len(samples))), proc_ids, n_boot, rng))
    return out


def test_drift_common_to_both_rows_cancels_in_the_paired_ratio():
    rng = np.random.default_rng(1)
    rows = _run(rng, drift_sd=0.3, proc_sd=0.02)  # the host's drift dominates, as on a shared VM
    pa, pb = joint_draws(rows, 2000, np.random.default_rng(0))
    ua, ub = _unpaired(rows, 2000, np.random.default_rng(0))
    paired, unpaired = stats.percentile_ci(pb / pa), stats.percentile_ci(ub / ua)
    assert paired.high - paired.low < 0.5 * (unpaired.high - unpaired.low)
    assert paired.low < 2.0 * 1.1 and paired.high > 2.0 / 1.1


def test_the_paired_interval_covers_the_true_ratio():
    """Over many simulated runs the 95% interval of the ratio of medians covers the true ratio about 95% of
    the time (process-level noise of each row is what is left after pairing, and 5 passes sample it)."""
    hits = trials = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        rows = _run(rng, drift_sd=0.2, proc_sd=0.04, round_sd=0.03)
        pa, pb = joint_draws(rows, 1000, np.random.default_rng(seed))
        point = np.median(rows[1].medians) / np.median(rows[0].medians)
        ci = stats.containing(point, stats.percentile_ci(pb / pa))
        hits += ci.low <= 2.0 <= ci.high
        trials += 1
    assert 0.85 <= hits / trials <= 1.0


def test_rows_without_cycles_or_mostly_in_other_cycles_are_not_paired():
    rng = np.random.default_rng(0)
    a, b = _run(rng)
    assert joint_draws([a, None], 10, rng) is None
    n = len(b.keys)
    keep = int(MIN_COMMON_SHARE * n) - 1  # b sat out too many of a's cycles
    short = Rounds(b.medians[:keep], b.keys[:keep], b.processes[:keep])
    assert joint_draws([a, short], 10, rng) is None
    ok = int(np.ceil(MIN_COMMON_SHARE * n))
    assert joint_draws([a, Rounds(b.medians[:ok], b.keys[:ok], b.processes[:ok])], 10, rng) is not None


def test_rounds_of_a_record_keep_one_moment_per_round():
    samples = [1.0, 3.0, 2.0, 2.0, 10.0]
    r = rounds_of(samples, [0, 0, 1, 1, 2], [("x", 0, 0)] * 2 + [("x", 0, 1)] * 2 + [("x", 1, 0)])
    assert list(r.medians) == [2.0, 2.0, 10.0] and r.keys == [("x", 0, 0), ("x", 0, 1), ("x", 1, 0)]
    assert r.processes == [("x", 0), ("x", 0), ("x", 1)]
    assert rounds_of(samples, [0, 0, 1, 1, 2], None) is None
    assert rounds_of(samples, [0, 0, 1, 1, 2], [("x", 0, 0)] * 5) is None  # three rounds in one cycle
    with pytest.raises(TypeError):
        rounds_of(samples, [0, 0, 1, 1, 2], [0, 0, 1, 1, 2])  # keys are (run, pass, cycle)
