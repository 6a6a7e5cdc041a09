"""Statistics on raw latency samples: pure numpy (and scipy's special functions), nothing rounded, nothing stored.

Why medians: latency distributions are skewed to the right (interrupts, page faults, a
neighbour on a shared core make single iterations slower, never faster), so the mean chases
outliers while the median describes a typical iteration. Why distribution-free intervals: the
shape of that distribution changes from machine to machine, and a normal approximation would
claim a precision it does not have.

Two levels of sampling matter. Within one allocation of a model and its input, iterations are
strongly correlated; across fresh allocations the level itself moves (cache colouring, page
placement, thread placement). A confidence interval that treats every iteration as independent
is therefore far too narrow. :func:`round_medians` summarises each round (one fresh
allocation) by its median; the interval is built over those (:func:`median_ci` of them).

A third level sits above rounds: the process. What is fixed for a process's life (heap layout,
core placement) moved a DWConv stack by 30 % between two runs whose round intervals were ±2 %
wide. :func:`hierarchical_median_ci` takes rounds from several worker processes and bootstraps
workers, then rounds within them, so its interval holds across fresh processes.

Only numpy is imported with this module: the binomial tail of :func:`median_ci` is summed
exactly in integers, the Student t quantiles of the 95 % interval over few workers are a table,
and scipy's special functions are imported only for another level or worker count (importing
``scipy.stats`` alone took longer than reading a results folder).

Example::

    >>> import numpy as np
    >>> x = np.random.default_rng(0).lognormal(0.0, 0.1, 200)
    >>> lo, hi, level = median_ci(x)
    >>> lo < median(x) < hi and level >= 0.95
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "CI",
    "median",
    "iqr",
    "percentile",
    "p90",
    "median_ci",
    "median_ci_level",
    "round_medians",
    "hierarchical_median_ci",
    "hierarchical_median_draws",
    "HIERARCHICAL_CI_METHOD",
    "rel_halfwidth",
    "bootstrap_ratio_ci",
    "percentile_ci",
    "containing",
    "widened_for_clusters",
    "N_BOOT",
    "verdict",
    "VERDICTS",
    "settled",
]

VERDICTS = ("supported", "contradicted", "inconclusive")
#: Bootstrap replicates behind every ratio's interval (``compare``, the claim engine).
N_BOOT = 4000


class CI(NamedTuple):
    """A confidence interval ``[low, high]`` and the confidence ``level`` it actually achieves.

    ``level`` can exceed the requested confidence (order statistics give discrete levels) or fall
    short of it when there are too few observations; callers decide what that means.
    """

    low: float
    high: float
    level: float


def _arr(x: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise ValueError("no samples")
    return a


def median(x: Sequence[float] | np.ndarray) -> float:
    return float(np.median(_arr(x)))


def percentile(x: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0–100), linear interpolation between order statistics."""
    return float(np.percentile(_arr(x), q))


def p90(x: Sequence[float] | np.ndarray) -> float:
    return percentile(x, 90.0)


def iqr(x: Sequence[float] | np.ndarray) -> float:
    """Interquartile range (p75 − p25): the spread measure that outliers do not move."""
    a = _arr(x)
    q75, q25 = np.percentile(a, [75.0, 25.0])
    return float(q75 - q25)


def median_ci_level(n: int) -> float:
    """The highest confidence any order-statistic interval of the median reaches with ``n`` values.

    That is the level of ``[min, max]``: ``1 - 2 * 0.5**n`` (0.969 for n = 6, 0.9375 for n = 5).
    """
    return 1.0 - 2.0 * 0.5**n if n > 0 else 0.0


def median_ci(x: Sequence[float] | np.ndarray, confidence: float = 0.95) -> CI:
    """Distribution-free confidence interval of the population median from order statistics.

    The number of observations below the true median is Binomial(n, 1/2), so
    ``[x_(k), x_(n-k+1)]`` covers the median with probability ``1 - 2·P(B ≤ k-1)``. The
    narrowest such interval whose level is at least ``confidence`` is returned, with its exact
    level. With too few values for any interval to reach ``confidence`` (n ≤ 5 at 95 %) the
    result is ``[min, max]`` and its (lower) level — check ``ci.level``.
    """
    a = np.sort(_arr(x))
    n = a.size
    alpha = 1.0 - confidence
    cdf = _half_binomial_cdf(n, alpha / 2.0)  # P(B <= j) for j = 0, 1, … while it is <= alpha/2
    if not cdf:
        return CI(float(a[0]), float(a[-1]), median_ci_level(n))
    k = len(cdf)  # the largest k (1-based) with P(B <= k-1) <= alpha/2
    level = 1.0 - 2.0 * float(cdf[k - 1])
    return CI(float(a[k - 1]), float(a[n - k]), level)


#: Above this many values the binomial tail is scipy's (floating point) rather than an exact sum.
_EXACT_TAIL_MAX_N = 10_000


def _half_binomial_cdf(n: int, upto: float) -> list[float]:
    """``P(B <= j)`` for ``B ~ Binomial(n, 1/2)`` and ``j = 0, 1, …`` while it is ``<= upto`` (``j < n``).

    Each value is the exact integer sum of binomial coefficients over ``2**n``, rounded once. That
    costs O(n²) bit operations, a millisecond for a thousand rounds; beyond
    :data:`_EXACT_TAIL_MAX_N` values scipy's binomial distribution gives them instead.
    """
    if n > _EXACT_TAIL_MAX_N:
        from scipy import stats as sps

        cdf = sps.binom.cdf(np.arange(n), n, 0.5)
        return [float(v) for v in cdf[: int(np.count_nonzero(cdf <= upto))]]
    out: list[float] = []
    term, total, whole = 1, 0, 1 << n  # term = C(n, j)
    for j in range(n):
        total += term
        p = total / whole  # int / int: correctly rounded
        if p > upto:
            break
        out.append(p)
        term = term * (n - j) // (j + 1)
    return out


def round_medians(samples: Sequence[float] | np.ndarray, round_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Median of each round's samples, in order of first appearance of the round id."""
    s = _arr(samples)
    r = np.asarray(round_ids).ravel()
    if r.size != s.size:
        raise ValueError(f"{s.size} samples but {r.size} round ids")
    _, first = np.unique(r, return_index=True)
    order = r[np.sort(first)]
    return np.array([np.median(s[r == rid]) for rid in order])


#: How :func:`hierarchical_median_ci` builds its interval (stored in result records as ``ci_method``).
HIERARCHICAL_CI_METHOD = "hierarchical-bootstrap(processes,rounds)"


def widened_for_clusters(point: float, ci: CI | tuple[float, float], k: int, confidence: float = 0.95) -> CI:
    """``ci``, a percentile bootstrap interval over ``k`` clusters (processes), widened about ``point`` by
    :func:`_few_clusters_factor`, as :func:`hierarchical_median_ci` widens a row's: a claim built from
    rows sampled in ``k`` processes has the same few process levels behind it."""
    f = _few_clusters_factor(k, confidence)
    lo, hi = float(ci[0]), float(ci[1])
    return CI(point - f * (point - lo), point + f * (hi - point), confidence)


def _few_clusters_factor(k: int, confidence: float) -> float:
    """How much a percentile bootstrap over ``k`` clusters is widened to keep its level: ``t_{k-1} / z``.

    Resampling ``k`` processes sees only ``k`` process levels, so the spread between them is
    itself uncertain (``k - 1`` degrees of freedom): 2.19 for 3 workers, 1.42 for 5, → 1 as
    ``k`` grows. Simulated with process-level effects it brings 3–5 workers to ≈ 95 % coverage
    where the plain percentile interval covers 83–92 % (tests/test_stats_workers.py).
    """
    if k < 2:
        return 1.0
    if confidence == 0.95 and k - 2 < len(_FEW_CLUSTERS_95):
        return _FEW_CLUSTERS_95[k - 2]
    from scipy import special  # what scipy.stats' t.ppf and norm.ppf compute, without importing scipy.stats

    q = 0.5 + confidence / 2.0
    return float(special.stdtrit(k - 1, q) / special.ndtri(q))


#: :func:`_few_clusters_factor` at 95 % for k = 2, 3, … 64 workers, the values scipy.special's
#: ``stdtrit(k - 1, 0.975) / ndtri(0.975)`` gives (tests/test_stats.py checks each): every record
#: of a report has its interval recomputed on loading, and importing scipy for that took longer
#: than the arithmetic.
# fmt: off
_FEW_CLUSTERS_95 = (
    6.482876642836102, 2.195271323191772, 1.6237269308958933, 1.4165796550845007, 1.3115454446677266,
    1.2484473543625838, 1.206463113733027, 1.1765543415050645, 1.1541830261381394, 1.1368264261800467,
    1.122972247170218, 1.1116596258163038, 1.1022491604455509, 1.0942990304085216, 1.087494240900536,
    1.0816042110685693, 1.0764562994398224, 1.0719186968805772, 1.0678890382261181, 1.0642866214479845,
    1.06104696878688, 1.0581179471982505, 1.0554569506053968, 1.0530288198700553, 1.0508042846698586,
    1.048758780700374, 1.0468715408369043, 1.045124889004502, 1.0435036859172993, 1.0419948899114588,
    1.0405872059302264, 1.039270802691872, 1.0380370830777175, 1.0368784964151403, 1.0357883840027549,
    1.0347608512083881, 1.0337906609567609, 1.0328731445476205, 1.0320041266020645, 1.0311798615935077,
    1.0303969799298647, 1.0296524419513906, 1.028943498521011, 1.0282676571308076, 1.027622652644557,
    1.0270064219531037, 1.026417081945443, 1.025852910300323, 1.0253123286858903, 1.024793888022443,
    1.0242962555186732, 1.023818203237336, 1.0233585979839106, 1.0229163923430677, 1.022490616713774,
    1.0220803722156016, 1.0216848243570795, 1.021303197372262, 1.0209347691446697, 1.020578866648752,
    1.0202348618483374, 1.01990216799952, 1.0195802363121957,
)
# fmt: on


def hierarchical_median_ci(
    samples: Sequence[float] | np.ndarray,
    round_ids: Sequence[int] | np.ndarray,
    worker_ids: Sequence[int] | np.ndarray,
    confidence: float = 0.95,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    few_clusters_correction: bool = True,
) -> tuple[float, CI]:
    """Median of round medians and a CI that holds across fresh *processes*, not only rounds.

    Two-stage percentile bootstrap: resample the workers (processes) with replacement, then,
    inside each chosen worker, its rounds with replacement; the statistic is the median of the
    resampled round medians. A round id must be unique across workers (a round belongs to one
    worker). With few workers a percentile bootstrap is too narrow (it sees only ``k`` process
    levels); unless ``few_clusters_correction`` is off, the interval is widened about the point
    estimate by :func:`_few_clusters_factor`. With a single worker the process level cannot be
    sampled: the result is the bootstrap over rounds alone (check the caller's worker count).
    The RNG is seeded, so the same data give the same interval.
    """
    point, boot, k = _hierarchical_draws(samples, round_ids, worker_ids, n_boot, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    if few_clusters_correction and k > 1:
        c = _few_clusters_factor(k, confidence)
        lo, hi = point - c * (point - lo), point + c * (hi - point)
    return point, CI(float(min(lo, point)), float(max(hi, point)), confidence)


def _hierarchical_draws(
    samples, round_ids, worker_ids, n_boot: int, rng: np.random.Generator
) -> tuple[float, np.ndarray, int]:
    """(median of round medians, ``n_boot`` two-stage bootstrap replicates of it, number of workers)."""
    s = _arr(samples)
    r = np.asarray(round_ids).ravel()
    w = np.asarray(worker_ids).ravel()
    if not (r.size == s.size == w.size):
        raise ValueError(f"{s.size} samples, {r.size} round ids, {w.size} worker ids")
    _, first = np.unique(r, return_index=True)
    order = r[np.sort(first)]
    meds = np.array([np.median(s[r == rid]) for rid in order])
    rw = np.array([w[r == rid][0] for rid in order])
    point = float(np.median(meds))
    workers = list(dict.fromkeys(rw.tolist()))
    k = len(workers)
    groups = [meds[rw == wid] for wid in workers]
    n_max = max(g.size for g in groups)
    table = np.full((k, n_max), np.nan)
    counts = np.array([g.size for g in groups])
    for i, g in enumerate(groups):
        table[i, : g.size] = g
    chosen = rng.integers(0, k, size=(n_boot, k)) if k > 1 else np.zeros((n_boot, 1), dtype=int)
    n_chosen = counts[chosen]  # (n_boot, k)
    idx = np.floor(rng.random((n_boot, k, n_max)) * n_chosen[..., None]).astype(int)
    vals = table[chosen[..., None], idx]
    vals[np.arange(n_max)[None, None, :] >= n_chosen[..., None]] = np.nan
    return point, _row_medians(vals.reshape(n_boot, -1), n_chosen.sum(axis=1)), k


def _row_medians(vals: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``np.nanmedian(vals, axis=1)`` where row ``i`` holds ``counts[i]`` numbers and NaN elsewhere.

    Sorted, a row's numbers come first and its NaNs last; its median is the middle number, or half
    the sum of the two middle ones: the operations ``np.nanmedian`` performs, so the same bits, at a
    fraction of the time its masked arrays take on thousands of short rows.
    """
    s = np.sort(vals, axis=1)
    rows = np.arange(s.shape[0])
    return (s[rows, (counts - 1) // 2] + s[rows, counts // 2]) / 2.0


def hierarchical_median_draws(samples, round_ids, worker_ids, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Two-stage bootstrap replicates (workers, then rounds) of the median of round medians.

    The raw replicates behind :func:`hierarchical_median_ci`, for statistics built from several
    measurements (ratios of medians); no few-cluster widening is applied to them.
    """
    return _hierarchical_draws(samples, round_ids, worker_ids, n_boot, rng)[1]


def rel_halfwidth(ci: CI | tuple[float, float], center: float) -> float:
    """Largest distance from ``center`` to either end of ``ci``, relative to ``center``.

    Order-statistic intervals are asymmetric; the larger side is what "±p %" has to bound.
    Returns ``inf`` for a non-positive or non-finite centre.
    """
    lo, hi = ci[0], ci[1]
    if not np.isfinite(center) or center <= 0 or not (np.isfinite(lo) and np.isfinite(hi)):
        return float("inf")
    return float(max(center - lo, hi - center) / center)


def settled(ci: CI | tuple[float, float], center: float, precision: float) -> bool:
    """The one stability rule: a measurement is settled when its 95 % CI lies within ±``precision`` of its median.

    Everything that calls a row stable or unstable (the adaptive stop, pooled repeats, both sides
    of ``compare``) asks this question; the precision is the target the row was measured with.
    """
    return rel_halfwidth(ci, center) <= precision


def _cluster_medians(x: np.ndarray, rounds: Sequence[int] | np.ndarray | None) -> np.ndarray:
    return x if rounds is None else round_medians(x, rounds)


def percentile_ci(draws: Sequence[float] | np.ndarray, confidence: float = 0.95) -> CI:
    """The percentile interval of bootstrap ``draws``: their (1 ± confidence) / 2 quantiles.

    The quantile levels are written as percentages (2.5 and 97.5 at 95 %), which are exact in
    binary; ``1 - confidence`` is not, and would move the low end by an ulp.
    """
    lo, hi = np.percentile(draws, [50.0 - 50.0 * confidence, 50.0 + 50.0 * confidence])
    return CI(float(lo), float(hi), confidence)


def containing(point: float, ci: CI | tuple[float, float], confidence: float = 0.95) -> CI:
    """``ci`` stretched, where it must be, to contain its own point estimate.

    A percentile bootstrap of a median over few units is discrete and can be skewed: with two
    rows of five rounds each, the replicates of a ratio of medians can all fall on one side of
    the ratio the full data give (a claim printed "11.8× (95% CI 11.6–11.7×)"). The point is not
    a bootstrap draw, so nothing forces it inside; an interval that excludes its own estimate is
    read as a contradiction, so it is widened to reach it, as the per-row intervals are
    (:func:`hierarchical_median_ci`). A non-finite point leaves the interval as it is.
    """
    lo, hi = float(ci[0]), float(ci[1])
    if math.isfinite(point):
        lo, hi = min(lo, point), max(hi, point)
    return CI(lo, hi, confidence)


def bootstrap_ratio_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    paired: bool = False,
    a_rounds: Sequence[int] | np.ndarray | None = None,
    b_rounds: Sequence[int] | np.ndarray | None = None,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
    return_draws: bool = False,
) -> tuple[float, CI] | tuple[float, CI, np.ndarray]:
    """Percentile-bootstrap CI of ``median(a) / median(b)`` with a seeded RNG.

    With ``a_rounds``/``b_rounds`` the resampling unit is the round (per-round medians are
    resampled), which respects the correlation of iterations inside one allocation. ``paired``
    resamples the same indices on both sides — use it when element *i* of ``a`` and of ``b`` were
    taken together (interleaved rounds), so shared drift cancels in the ratio. Unpaired, ``a`` is
    resampled first, then ``b``.
    Returns the point ratio and the interval, and with ``return_draws`` the ``n_boot`` replicate
    ratios too (to combine several ratios' replicates).
    """
    xa = _cluster_medians(_arr(a), a_rounds)
    xb = _cluster_medians(_arr(b), b_rounds)
    point = float(np.median(xa) / np.median(xb))
    rng = np.random.default_rng(seed)
    if paired:
        if xa.size != xb.size:
            raise ValueError(f"paired bootstrap needs equal sizes, got {xa.size} and {xb.size}")
        idx = rng.integers(0, xa.size, size=(n_boot, xa.size))
        ra = np.median(xa[idx], axis=1)
        rb = np.median(xb[idx], axis=1)
    else:
        ra = np.median(xa[rng.integers(0, xa.size, size=(n_boot, xa.size))], axis=1)
        rb = np.median(xb[rng.integers(0, xb.size, size=(n_boot, xb.size))], axis=1)
    ratios = ra / rb
    ci = containing(point, percentile_ci(ratios, confidence), confidence)
    return (point, ci, ratios) if return_draws else (point, ci)


def verdict(ratio_ci: CI | tuple[float, float], threshold: float = 1.0, *, stable: bool = True) -> str:
    """``'supported'`` if the whole CI lies above ``threshold``, ``'contradicted'`` if wholly below.

    Anything else — a CI that straddles the threshold, a non-finite bound, or input marked
    unstable — is ``'inconclusive'``: an unsettled measurement never decides a claim.
    """
    lo, hi = float(ratio_ci[0]), float(ratio_ci[1])
    if not stable or not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        return "inconclusive"
    if lo > threshold:
        return "supported"
    if hi < threshold:
        return "contradicted"
    return "inconclusive"
