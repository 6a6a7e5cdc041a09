"""The CI across worker processes: coverage of the true median over simulated fresh processes."""

import numpy as np
import pytest

from fnbench import stats
from fnbench.measurement import Measurement, workers_settled

TRUE_MEDIAN = 1e-3


def fake_run(rng, workers=3, rounds=6, process_sd=0.10, round_sd=0.05, per_round=5, seed_noise=0.02):
    """One simulated run: each worker (a fresh process) draws its own level, each round its own.

    Latency = true × exp(process effect + round effect) × (1 + |iteration noise|) / that
    noise's median, so the population median over fresh processes is exactly ``TRUE_MEDIAN``.
    """
    med_noise = seed_noise * 0.6744897501960817  # median of |N(0, sd)|
    s, r, w = [], [], []
    rid = 0
    for k in range(workers):
        a = rng.normal(0.0, process_sd)
        for _ in range(rounds):
            b = rng.normal(0.0, round_sd)
            x = TRUE_MEDIAN * np.exp(a + b + np.abs(rng.normal(0.0, seed_noise, per_round)) - med_noise)
            s += x.tolist()
            r += [rid] * per_round
            w += [k] * per_round
            rid += 1
    return np.array(s), np.array(r), np.array(w)


def coverage(n_runs, **kw):
    rng = np.random.default_rng(12345)
    hier = rounds_only = 0
    for i in range(n_runs):
        s, r, w = fake_run(rng, **kw)
        _, ci = stats.hierarchical_median_ci(s, r, w, n_boot=1000, seed=i)
        hier += ci.low <= TRUE_MEDIAN <= ci.high
        cr = stats.median_ci(stats.round_medians(s, r))
        rounds_only += cr.low <= TRUE_MEDIAN <= cr.high
    return hier / n_runs, rounds_only / n_runs


@pytest.mark.parametrize("workers,rounds", [(3, 6), (5, 4)])
def test_hierarchical_ci_covers_across_fresh_processes_where_the_round_ci_does_not(workers, rounds):
    hier, rounds_only = coverage(300, workers=workers, rounds=rounds, process_sd=0.10, round_sd=0.05)
    assert 0.91 <= hier <= 0.995, hier  # ≈ 95 % (binomial sd over 300 runs ≈ 1.3 %)
    assert rounds_only < 0.85, rounds_only  # rounds of one process cannot see the process level


def test_without_a_process_effect_the_interval_is_conservative_not_wrong():
    hier, rounds_only = coverage(150, workers=3, rounds=6, process_sd=0.0, round_sd=0.05)
    assert hier >= 0.93 and rounds_only >= 0.9


def test_hierarchical_ci_is_seeded_contains_the_point_and_checks_lengths():
    rng = np.random.default_rng(0)
    s, r, w = fake_run(rng)
    p1, c1 = stats.hierarchical_median_ci(s, r, w, seed=3)
    p2, c2 = stats.hierarchical_median_ci(s, r, w, seed=3)
    assert (p1, c1) == (p2, c2)
    assert c1.low <= p1 <= c1.high and c1.level == 0.95
    assert p1 == pytest.approx(np.median(stats.round_medians(s, r)))
    with pytest.raises(ValueError, match="worker ids"):
        stats.hierarchical_median_ci(s, r, w[:-1])
    # a single worker: only rounds are resampled, no few-cluster widening
    one = stats.hierarchical_median_ci(s[w == 0], r[w == 0], w[w == 0])[1]
    assert one.low <= p1 * 2 and one.high > one.low


def test_measurement_with_workers_uses_the_hierarchical_ci_and_stopping_rule():
    rng = np.random.default_rng(1)
    s, r, w = fake_run(rng, process_sd=0.001, round_sd=0.002, seed_noise=0.001)
    m = Measurement(samples_s=s.tolist(), round_ids=r.tolist(), batch=1, worker_ids=w.tolist())
    st = m.to_stats()
    assert st["ci_method"] == stats.HIERARCHICAL_CI_METHOD and st["workers"] == 3
    assert st["stable"] is True and st["rel_ci_halfwidth"] <= 0.02
    # a worker with a single round: not settled, whatever the width
    keep = ~((w == 2) & (r != r[w == 2][0]))
    assert not workers_settled(s[keep].tolist(), r[keep].tolist(), w[keep].tolist(), 0.02, 6)
    plain = Measurement(samples_s=s.tolist(), round_ids=r.tolist(), batch=1)
    assert plain.to_stats()["ci_method"] == "order-statistic(rounds)" and plain.to_stats()["workers"] == 0
