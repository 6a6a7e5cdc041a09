"""Statistics on raw samples: closed forms, exact order-statistic levels, coverage on simulated data."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from fnbench import stats


def test_median_iqr_p90_closed_form():
    x = np.arange(1, 101, dtype=float)  # 1..100
    assert stats.median(x) == 50.5
    assert stats.iqr(x) == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
    assert stats.iqr(x) == pytest.approx(49.5)
    assert stats.p90(x) == pytest.approx(90.1)


def test_median_ci_exact_order_statistics():
    x = np.arange(1, 21, dtype=float)  # n = 20: k = 6, level = 1 - 2 P(B <= 5)
    ci = stats.median_ci(x)
    assert (ci.low, ci.high) == (6.0, 15.0)
    assert ci.level == pytest.approx(1 - 2 * sps.binom.cdf(5, 20, 0.5))
    assert ci.level >= 0.95


def test_median_ci_small_n_reports_lower_level():
    ci = stats.median_ci([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (ci.low, ci.high) == (1.0, 5.0)
    assert ci.level == pytest.approx(1 - 2 * 0.5**5)  # 0.9375 < 0.95: callers must check
    assert stats.median_ci(np.arange(6.0)).level == pytest.approx(1 - 2 * 0.5**6)


def test_median_ci_takes_the_order_statistics_of_scipys_binomial():
    """The exact integer tail picks the same k as scipy.stats.binom.cdf, its level differs by an ulp at most."""
    for n in range(1, 400):
        x = np.arange(float(n))
        for confidence in (0.9, 0.95, 0.99):
            cdf = sps.binom.cdf(np.arange(n), n, 0.5)
            ok = np.nonzero(cdf <= (1 - confidence) / 2)[0]
            lo, hi, level = stats.median_ci(x, confidence)
            if ok.size == 0:
                assert (lo, hi) == (0.0, n - 1.0)
                continue
            k = int(ok[-1]) + 1
            assert (lo, hi) == (x[k - 1], x[n - k])
            assert level == pytest.approx(1 - 2 * cdf[k - 1], rel=1e-14, abs=0)


def test_median_ci_beyond_the_exact_tail_uses_scipy():
    n = stats._EXACT_TAIL_MAX_N + 1
    cdf = sps.binom.cdf(np.arange(n), n, 0.5)
    k = int(np.nonzero(cdf <= 0.025)[0][-1]) + 1
    lo, hi, level = stats.median_ci(np.arange(float(n)))
    assert (lo, hi, level) == (k - 1.0, float(n - k), 1 - 2 * float(cdf[k - 1]))


def test_few_clusters_factor_is_students_t_over_the_normal_quantile():
    """The 95 % table and scipy.special agree with scipy.stats to the last bit, past the table's end too."""
    assert len(stats._FEW_CLUSTERS_95) == 63
    for k in range(2, 200):
        for confidence in (0.9, 0.95, 0.99):
            q = 0.5 + confidence / 2
            assert stats._few_clusters_factor(k, confidence) == sps.t.ppf(q, k - 1) / sps.norm.ppf(q)


def test_row_medians_are_nanmedians_bit_for_bit():
    rng = np.random.default_rng(3)
    for width in (1, 2, 7, 40, 650):  # np.nanmedian takes another path from 600 values on
        vals = np.round(rng.lognormal(-5, 0.5, (300, width)), 5)  # ties too
        counts = rng.integers(1, width + 1, 300)
        vals[np.arange(width)[None, :] >= counts[:, None]] = np.nan
        vals = rng.permuted(vals, axis=1)
        assert np.array_equal(stats._row_medians(vals, counts), np.nanmedian(vals, axis=1))


def test_median_ci_coverage_near_95_percent():
    rng = np.random.default_rng(1)
    true_median = 1.0  # lognormal(0, s) has median exp(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        x = rng.lognormal(0.0, 0.3, 25)
        lo, hi, _ = stats.median_ci(x)
        hits += lo <= true_median <= hi
    level = stats.median_ci(np.zeros(25)).level  # exact level for n = 25
    assert level == pytest.approx(1 - 2 * sps.binom.cdf(7, 25, 0.5))
    se = math.sqrt(level * (1 - level) / trials)
    assert abs(hits / trials - level) < 4 * se


def test_round_interval_uses_round_medians():
    samples = [1.0, 1.1, 0.9, 2.0, 2.1, 1.9, 3.0, 3.0, 3.0]
    rids = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    meds = stats.round_medians(samples, rids)
    assert list(meds) == [1.0, 2.0, 3.0]
    assert stats.median(meds) == 2.0
    ci = stats.median_ci(meds)
    assert (ci.low, ci.high) == (1.0, 3.0)


def test_rel_halfwidth_takes_larger_side():
    assert stats.rel_halfwidth((0.9, 1.3), 1.0) == pytest.approx(0.3)
    assert stats.rel_halfwidth((0.95, 1.01), 1.0) == pytest.approx(0.05)
    assert stats.rel_halfwidth((0.9, 1.1), 0.0) == math.inf


def test_bootstrap_ratio_ci_is_seeded_and_covers_true_ratio():
    rng = np.random.default_rng(0)
    a = 2.0 * rng.lognormal(0, 0.05, 200)
    b = 1.0 * rng.lognormal(0, 0.05, 200)
    r1, ci1 = stats.bootstrap_ratio_ci(a, b, seed=3)
    r2, ci2 = stats.bootstrap_ratio_ci(a, b, seed=3)
    assert ci1 == ci2 and r1 == r2
    assert ci1.low < 2.0 < ci1.high
    assert ci1.low < r1 < ci1.high
    assert stats.verdict(ci1, 1.0) == "supported"


def test_percentile_ci_takes_the_2_5_and_97_5_percent_quantiles_exactly():
    draws = np.random.default_rng(1).lognormal(0, 0.3, stats.N_BOOT)
    ci = stats.percentile_ci(draws)
    assert (ci.low, ci.high) == tuple(np.quantile(draws, [0.025, 0.975])) and ci.level == 0.95


def test_bootstrap_ratio_ci_returns_its_draws_on_request():
    rng = np.random.default_rng(2)
    a, b = rng.lognormal(0, 0.1, 8), rng.lognormal(0, 0.1, 8)
    r, ci = stats.bootstrap_ratio_ci(a, b, paired=True, seed=4)
    r2, ci2, draws = stats.bootstrap_ratio_ci(a, b, paired=True, seed=4, return_draws=True)
    assert (r, ci) == (r2, ci2) and draws.shape == (stats.N_BOOT,)
    assert ci == stats.percentile_ci(draws)


def test_paired_bootstrap_cancels_shared_drift():
    rng = np.random.default_rng(5)
    drift = rng.lognormal(0, 0.3, 60)  # shared per-round level, large
    a = 1.5 * drift * rng.lognormal(0, 0.01, 60)
    b = 1.0 * drift * rng.lognormal(0, 0.01, 60)
    _, paired = stats.bootstrap_ratio_ci(a, b, paired=True, seed=0)
    _, unpaired = stats.bootstrap_ratio_ci(a, b, paired=False, seed=0)
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 3


def test_bootstrap_with_rounds_resamples_round_medians():
    a = [2.0] * 10 + [2.2] * 10
    b = [1.0] * 20
    ra = [0] * 10 + [1] * 10
    rb = [0] * 10 + [1] * 10
    r, ci = stats.bootstrap_ratio_ci(a, b, a_rounds=ra, b_rounds=rb, seed=0)
    assert r == pytest.approx(2.1)
    assert ci.low == pytest.approx(2.0) and ci.high == pytest.approx(2.2)


@pytest.mark.parametrize(
    "ci, expected",
    [
        ((1.1, 1.5), "supported"),
        ((0.5, 0.9), "contradicted"),
        ((0.9, 1.1), "inconclusive"),
        ((1.0, 1.2), "inconclusive"),
        ((float("nan"), 2.0), "inconclusive"),
    ],
)
def test_verdict(ci, expected):
    assert stats.verdict(ci, 1.0) == expected


def test_verdict_unstable_is_inconclusive():
    assert stats.verdict((2.0, 3.0), 1.0, stable=False) == "inconclusive"
    assert stats.verdict((2.0, 3.0), 2.5) == "inconclusive"


def test_an_interval_is_stretched_to_contain_its_own_point_estimate():
    # the claim sentence once printed "11.8x (95% CI 11.6-11.7x)": a percentile interval of
    # combined bootstrap replicates need not contain the full-data estimate
    ci = stats.containing(11.8, stats.CI(11.6, 11.7, 0.95))
    assert (ci.low, ci.high) == (11.6, 11.8)
    ci = stats.containing(11.5, stats.CI(11.6, 11.7, 0.95))
    assert (ci.low, ci.high) == (11.5, 11.7)
    # a point already inside leaves the interval exactly as it was
    ci = stats.containing(11.65, stats.CI(11.6, 11.7, 0.95))
    assert (ci.low, ci.high) == (11.6, 11.7)
    # a non-finite point (nothing measured) leaves it alone
    ci = stats.containing(float("nan"), stats.CI(11.6, 11.7, 0.95))
    assert (ci.low, ci.high) == (11.6, 11.7)
