"""benchmarks/estimators.py's pure helpers: the vectorised estimators and the two-stage bootstrap."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from fnbench import stats

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "estimators.py"
_spec = importlib.util.spec_from_file_location("estimators_bench", _PATH)
est = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = est  # dataclasses look their module up while the class is made
_spec.loader.exec_module(est)


def _padded(rows):
    out = np.full((len(rows), max(len(r) for r in rows)), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def test_estimators_match_numpy_and_scipy_with_nan_padding():
    rng = np.random.default_rng(0)
    rows = [rng.lognormal(0.0, 0.2, n) for n in (1, 2, 5, 6, 10, 17, 25)]
    x = _padded(rows)
    np.testing.assert_allclose(est.estimate_rows(x, "median"), [np.median(r) for r in rows], rtol=1e-12)
    np.testing.assert_allclose(est.estimate_rows(x, "p25"), [np.percentile(r, 25) for r in rows], rtol=1e-12)
    np.testing.assert_allclose(est.estimate_rows(x, "min"), [r.min() for r in rows], rtol=1e-12)
    np.testing.assert_allclose(est.estimate_rows(x, "trim20"), [sps.trim_mean(r, 0.2) for r in rows], rtol=1e-12)
    with pytest.raises(ValueError):
        est.estimate_rows(x, "mode")


def test_median_interval_is_fnbench_row_interval():
    """The two-stage bootstrap with the median applied is fnbench's hierarchical interval, draw for draw."""
    rng = np.random.default_rng(1)
    samples, rounds, workers = [], [], []
    rid = 0
    for w, n_rounds in enumerate((3, 5, 2, 4, 5)):
        for _ in range(n_rounds):
            level = rng.lognormal(0.0, 0.1)
            k = int(rng.integers(3, 9))
            samples += list(level * rng.lognormal(0.0, 0.05, k))
            rounds += [rid] * k
            workers += [w] * k
            rid += 1
    point, ci = stats.hierarchical_median_ci(samples, rounds, workers)
    meds = stats.round_medians(samples, rounds)
    per_round_worker = [workers[rounds.index(r)] for r in range(rid)]
    got = est.row_intervals(meds, per_round_worker)["median"]
    assert got[0] == pytest.approx(point, rel=1e-12)
    assert got[1] == pytest.approx(ci.low, rel=1e-12) and got[2] == pytest.approx(ci.high, rel=1e-12)


def test_paired_draws_share_indices():
    a = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]])
    va, vb = est.two_stage([a, a * 10.0], np.array([2, 3]), 50, np.random.default_rng(0))
    assert np.array_equal(np.isnan(va), np.isnan(vb))
    np.testing.assert_allclose(vb[~np.isnan(vb)], 10.0 * va[~np.isnan(va)])
