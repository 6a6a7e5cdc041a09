"""Which estimator of a row's latency repeats best across runs, and is its interval honest?

BenchmarkTools.jl reports the minimum (it argues that noise on a shared host only ever adds
time), pyperf the mean, torch.utils.benchmark and fnbench the median. This script measures four
candidates on the same data, each computed from a row's **round medians** (the median of each
round's samples; a round is one fresh allocation in one worker process, :mod:`fnbench.timing`):

``median``   the median of the round medians (what fnbench reports today).
``p25``      their 25th percentile (``numpy.percentile``, linear interpolation between order
             statistics). Why the 25th: a table1 row has 10–25 round medians, so it rests on the
             3rd–7th lowest of them — low enough to ignore rounds a neighbour slowed down (up to
             three quarters of them), yet still an interpolation between several rounds, not one.
             A 10th percentile of 10 rounds would be the minimum again.
``min``      the smallest round median. Its population value depends on how many rounds were taken
             (the minimum of 30 draws lies below that of 10), and a bootstrap replicate can never
             fall below the sample minimum, so its interval has the sample minimum as its low end.
``trim20``   the 20 % trimmed mean: sorted, ``floor(0.2·n)`` round medians cut from each end, the
             rest averaged (Wilcox's usual choice: near the mean's efficiency on normal data,
             robust to two in ten rounds slowed down).

Each gets a 95 % interval built as fnbench builds the median's
(:func:`fnbench.stats.hierarchical_median_ci`): the two-stage percentile bootstrap — worker
processes with replacement, then rounds within each chosen process with replacement — with
the estimator applied to every replicate's round medians, 2000 replicates, seed 0, widened about
the point by ``t_{k-1, 0.975} / z_{0.975}`` for ``k`` processes and stretched to contain the
point. For the median this reproduces fnbench's interval exactly, which the script checks.

What is measured:

1. **Rows across runs.** For every pair of runs and every estimator: the rows (of 16) whose
   estimates are within 5 % of each other (``|b/a - 1|``, ``a`` the earlier run), the rows whose
   intervals overlap, the rows where each run's estimate lies in the other's interval, the median
   and largest relative difference, and the median half-width of the intervals (an interval that
   overlaps because it is wide says little).
2. **Claims across runs.** The Table-1 statistics of :mod:`fnbench.verdicts` from each
   estimator's latencies: PConv/DWConv and PConv/GConv FLOPS (the paper's statistic: mean over
   maps of GMAC/s of A over mean over maps of GMAC/s of B), PConv/DWConv and PConv/GConv latency
   (geometric mean over maps of the ratio), and Σ latency(conv) / Σ latency(pconv); and the
   PConv/DWConv FLOPS ratio of each map. Their intervals come from the rows' bootstrap
   replicates. Where both rows of a map have cycle ids, their replicates are **paired by cycle**:
   the passes both rows have are resampled, then within each chosen pass the cycles both rows
   took a round in, the same draws for both rows (rounds of one cycle were taken moments apart),
   and rounds at keys the other row lacks are left out of the replicates (not of the point); the
   maps are resampled independently. Otherwise each row is resampled alone. The output says
   which was used and how many rounds the pairing kept. Per claim: pairs of runs within 5 %, and
   pairs where each run's ratio lies inside the other's interval.
3. **Drift inside a run.** Per row and run, the median of round medians of every pass relative to
   the row's median, and the reference kernel (:func:`fnbench.timing.reference_s`, timed before
   every round) per pass: a row whose passes differ more than its interval admits drifted.
4. **Coverage on a simulated clock.** :func:`fnbench.timing.measure` with an injected clock,
   timer and rebuild (the structure of ``tests/test_timing.py``'s ``Sim``: a level per process
   and per fresh allocation drawn lognormally, noise per iteration), five "processes" per seed
   of about five rounds each, merged as a run merges its passes. Scenarios: purely
   multiplicative lognormal noise; additive noise from another tenant (small multiplicative
   jitter, plus rounds during which every iteration pays a fixed extra 5–60 % of the base time
   and single iterations that pay an exponential extra); both together; and a contended host
   (both, with 70 % of rounds paying an extra 20–300 %, as round medians spread 2–9× on a 2-core
   VM at load average 3–6). Each estimator's
   **population value** is its statistic on the distribution of round medians, from a separate
   large simulation (the pooled round medians of ``--sim-seeds`` further seeds): the median, 25th
   percentile and 20 % trimmed mean of those pooled round medians; for the minimum, which has no
   population value independent of the design, the median of its own sampling distribution at
   this design (the median over those seeds of each seed's minimum). Reported: how often the 95 %
   interval covers that value, the mean half-width, the relative sd of the point across seeds
   (the simulated analogue of "repeats"), and the point relative to the noise-free time.
5. **A decision**: the median is kept unless a candidate repeats clearly better — at least 10 %
   of the row pairs more within 5 % (and at least 2 rows), no fewer claim pairs within 5 %, a
   lower median relative difference — and its coverage is honest (≥ 90 % in every simulated
   scenario).

Run it on existing runs (each a result file, or a folder whose ``*.jsonl`` are one run each)::

    fnbench run --suite table1 --budget 6 --precision 0.05 --out /tmp/est_runs/run1   # and run2, run3
    python benchmarks/estimators.py /tmp/est_runs/run1 /tmp/est_runs/run2 /tmp/est_runs/run3

or let it take the runs first, one after another, each in its own process::

    python benchmarks/estimators.py --runs 3 --out /tmp/est_runs

``--sim-seeds`` sets the simulated seeds per scenario (default 250; ``0`` skips the simulation).
Given existing runs, the whole script takes a few minutes on a 2-core VM.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import stats as sps

from fnbench import stats
from fnbench.measurement import Measurement
from fnbench.reference import TABLE1_OPS, TABLE1_SHAPES
from fnbench.results import iter_result_files, load_records

#: The candidates, in the order they are shown.
ESTIMATORS = ("median", "p25", "min", "trim20")
_TRIM = 0.2
_LOW_Q = 0.25
N_BOOT_ROW = 2000  # as fnbench.stats.hierarchical_median_ci
N_BOOT_CLAIM = stats.N_BOOT
CONFIDENCE = 0.95
WITHIN = 0.05
MAPS = tuple("x".join(map(str, s)) for s in TABLE1_SHAPES)


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the estimators, on round medians with NaN padding ----------------------------------------------
def estimate_rows(x: np.ndarray, name: str) -> np.ndarray:
    """The estimator ``name`` of every row of ``x`` (2-D; NaN marks an empty slot), vectorised.

    Quantiles interpolate linearly between order statistics (``numpy.percentile``'s default, and
    ``numpy.median`` for the 50th); the trimmed mean cuts ``floor(0.2·n)`` values from each end.
    """
    s = np.sort(x, axis=1)  # NaN last
    n = np.sum(~np.isnan(s), axis=1)
    rows = np.arange(s.shape[0])
    if name == "min":
        return s[:, 0]
    if name in ("median", "p25"):
        h = (n - 1) * (0.5 if name == "median" else _LOW_Q)
        lo = np.floor(h).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        a, b = s[rows, lo], s[rows, hi]
        return a + (h - lo) * (b - a)
    if name == "trim20":
        g = np.floor(_TRIM * n).astype(int)
        j = np.arange(s.shape[1])[None, :]
        keep = (j >= g[:, None]) & (j < (n - g)[:, None])
        return np.where(keep, s, 0.0).sum(axis=1) / keep.sum(axis=1)
    raise ValueError(f"unknown estimator {name!r}")


def estimate(x: Sequence[float] | np.ndarray, name: str) -> float:
    return float(estimate_rows(np.asarray(x, dtype=float)[None, :], name)[0])


def few_clusters_factor(k: int) -> float:
    """``t_{k-1} / z`` at 95 %: how fnbench widens a bootstrap over ``k`` processes (1 for ``k < 2``)."""
    if k < 2:
        return 1.0
    q = 0.5 + CONFIDENCE / 2.0
    return float(sps.t.ppf(q, k - 1) / sps.norm.ppf(q))


def _tables(meds: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Round medians laid out one row per group (NaN-padded), and the count per group."""
    counts = np.array([g.size for g in groups])
    table = np.full((len(groups), counts.max()), np.nan)
    for i, g in enumerate(groups):
        table[i, : g.size] = meds[g]
    return table, counts


def two_stage(
    tables: Sequence[np.ndarray], counts: np.ndarray, n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Replicates of round medians: groups with replacement, then slots within each chosen group.

    The draws are those of ``fnbench.stats._hierarchical_draws`` (same RNG calls in the same
    order); several ``tables`` of the same layout get the *same* draws (paired resampling).
    Returns one ``(n_boot, k · n_max)`` array per table, NaN where a chosen group had fewer slots.
    """
    k, n_max = tables[0].shape
    chosen = rng.integers(0, k, size=(n_boot, k)) if k > 1 else np.zeros((n_boot, 1), dtype=int)
    n_chosen = counts[chosen]
    idx = np.floor(rng.random((n_boot, k, n_max)) * n_chosen[..., None]).astype(int)
    empty = np.arange(n_max)[None, None, :] >= n_chosen[..., None]
    out = []
    for t in tables:
        v = t[chosen[..., None], idx]
        v[empty] = np.nan
        out.append(v.reshape(n_boot, -1))
    return out


# -- one row of one run -------------------------------------------------------------------------------
@dataclass
class Row:
    """A Table-1 row of one run: its round medians with the process, pass and cycle of each round."""

    label: str
    op: str
    map: str
    macs: float  # per sample
    batch: int
    meds: np.ndarray  # round medians, seconds per batch, in order of first appearance
    worker: np.ndarray
    passes: np.ndarray | None
    cycles: np.ndarray | None
    ref_s: np.ndarray | None  # reference kernel before each round
    fnbench_ci: stats.CI
    point: dict[str, float] = field(default_factory=dict)
    boot: dict[str, np.ndarray] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, rec: dict) -> Row:
        m = Measurement.from_record(rec)
        r = np.asarray(m.round_ids)
        _, first = np.unique(r, return_index=True)
        first = np.sort(first)
        meds = np.asarray(m.round_medians_s())
        w = np.asarray(m.worker_ids)[first] if m.worker_ids else np.zeros(first.size, dtype=int)
        p = np.asarray(m.pass_ids)[first] if m.pass_ids else None
        c = np.asarray(m.cycle_ids)[first] if m.cycle_ids else None
        ref = np.asarray(m.counts.ref_s) if len(m.counts.ref_s) == first.size else None
        t = rec["target"]
        shape = "x".join(map(str, t["shape"]))
        return cls(
            f"{t['name']} {shape}",
            t["name"],
            shape,
            float(rec["cost"]["macs"]) / m.batch,
            m.batch,
            meds,
            w,
            p,
            c,
            ref,
            m.ci95,
        )

    @property
    def k(self) -> int:
        return len(set(self.worker.tolist()))

    def latency(self, name: str) -> float:
        return self.point[name] / self.batch

    def compute(self, n_boot: int = N_BOOT_ROW, seed: int = 0) -> None:
        """Point, two-stage replicates and the widened interval of every estimator (fnbench's row CI)."""
        for name, (point, lo, hi, boot) in row_intervals(self.meds, self.worker, n_boot, seed).items():
            self.point[name], self.ci[name], self.boot[name] = point, (lo, hi), boot


def row_intervals(meds, worker, n_boot: int = N_BOOT_ROW, seed: int = 0) -> dict[str, tuple]:
    """``{estimator: (point, low, high, replicates)}`` on round medians grouped by process ``worker``.

    The replicates are the two-stage bootstrap (:func:`two_stage`, seeded); the interval is their
    95 % percentile interval widened about the point by :func:`few_clusters_factor` and stretched to
    contain the point, as :func:`fnbench.stats.hierarchical_median_ci` builds the median's.
    """
    meds, worker = np.asarray(meds, dtype=float), np.asarray(worker)
    workers = list(dict.fromkeys(worker.tolist()))
    table, counts = _tables(meds, [np.nonzero(worker == w)[0] for w in workers])
    (vals,) = two_stage([table], counts, n_boot, np.random.default_rng(seed))
    c = few_clusters_factor(len(workers))
    out = {}
    for name in ESTIMATORS:
        point = estimate(meds, name)
        boot = estimate_rows(vals, name)
        lo, hi = np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        if len(workers) > 1:
            lo, hi = point - c * (point - lo), point + c * (hi - point)
        out[name] = (point, float(min(lo, point)), float(max(hi, point)), boot)
    return out


# -- runs ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    rows: dict[str, Row]  # label -> row

    def get(self, op: str, m: str) -> Row:
        return self.rows[f"{op} {m}"]


def load_run(path: Path) -> Run:
    rows = {}
    for rec, _ in load_records(path):
        t = rec.get("target") or {}
        if rec.get("status", "ok") != "ok" or t.get("name") not in TABLE1_OPS or t.get("layers") != 10:
            continue
        if tuple(t.get("shape") or ()) not in TABLE1_SHAPES or (t.get("options") or {}):
            continue
        row = Row.of(rec)
        rows[row.label] = row
    return Run(path.stem if path.is_file() else path.name, rows)


def run_files(paths: Sequence[str]) -> list[Path]:
    """Every result file named or found under a named folder: one run each."""
    out: list[Path] = []
    for p in paths:
        out += list(iter_result_files(p))
    return out


def make_runs(n: int, out: Path, budget: float, precision: float) -> list[Path]:
    """``n`` table1 runs, back to back, each ``fnbench run`` in its own process; their result files."""
    files = []
    for i in range(n):
        d = out / f"run{i + 1}"
        before = set(d.glob("*.jsonl")) if d.exists() else set()
        print(f"run {i + 1}: starting ({_load()})", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "fnbench", "run", "--suite", "table1", "--budget", str(budget)]
        subprocess.run([*cmd, "--precision", str(precision), "--out", str(d)], check=True, capture_output=True)
        new = sorted(set(d.glob("*.jsonl")) - before)
        print(f"run {i + 1}: {time.perf_counter() - t0:.1f} s wall, {new[-1]} ({_load()})", flush=True)
        files.append(new[-1])
    return files


# -- claims -------------------------------------------------------------------------------------------
CLAIMS = (
    ("PConv/DWConv FLOPS", "mean GMAC/s pconv / mean GMAC/s dwconv"),
    ("PConv/GConv FLOPS", "mean GMAC/s pconv / mean GMAC/s gconv"),
    ("PConv/DWConv latency", "geo-mean over maps of latency ratio"),
    ("PConv/GConv latency", "geo-mean over maps of latency ratio"),
    ("Conv/PConv latency", "sum latency(conv) / sum latency(pconv)"),
)
#: The pairs of rows, per map, that the claims rest on: every claim's rows are a subset of these.
_PAIRS = (("pconv", "dwconv"), ("pconv", "gconv"), ("conv", "pconv"))


def claim_values(lat: Callable[[str, str], np.ndarray | float], macs: Callable[[str, str], float]) -> dict:
    """The five claim statistics and the per-map PConv/DWConv FLOPS ratios from per-map latencies.

    ``lat(op, map)`` is a latency per sample (a float or an array of replicates); broadcasting
    makes the same code give the point and the replicates.
    """

    def gmacs(op: str, m: str):
        return macs(op, m) / lat(op, m)

    def flops(a: str, b: str):
        return np.mean([gmacs(a, m) for m in MAPS], axis=0) / np.mean([gmacs(b, m) for m in MAPS], axis=0)

    def geo(a: str, b: str):
        return np.exp(np.mean([np.log(lat(a, m) / lat(b, m)) for m in MAPS], axis=0))

    out = {
        "PConv/DWConv FLOPS": flops("pconv", "dwconv"),
        "PConv/GConv FLOPS": flops("pconv", "gconv"),
        "PConv/DWConv latency": geo("pconv", "dwconv"),
        "PConv/GConv latency": geo("pconv", "gconv"),
        "Conv/PConv latency": sum(lat("conv", m) for m in MAPS) / sum(lat("pconv", m) for m in MAPS),
    }
    for m in MAPS:
        out[f"PConv/DWConv FLOPS {m}"] = gmacs("pconv", m) / gmacs("dwconv", m)
    return out


def paired_keys(a: Row, b: Row) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, int] | None:
    """Per pass both rows have: the indices of each row's rounds at the cycles both took; None if unpairable."""
    if a.passes is None or b.passes is None or a.cycles is None or b.cycles is None:
        return None
    ka = {(int(p), int(c)): i for i, (p, c) in enumerate(zip(a.passes, a.cycles))}
    kb = {(int(p), int(c)): i for i, (p, c) in enumerate(zip(b.passes, b.cycles))}
    if len(ka) != a.meds.size or len(kb) != b.meds.size:  # two rounds of one row in one cycle: no pairing
        return None
    common = sorted(set(ka) & set(kb))
    groups = []
    for p in sorted({p for p, _ in common}):
        keys = [k for k in common if k[0] == p]
        groups.append((np.array([ka[k] for k in keys]), np.array([kb[k] for k in keys])))
    if len(groups) < 2:
        return None
    return groups, len(common), a.meds.size + b.meds.size


def claim_draws(run: Run, n_boot: int, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """Replicate latencies per estimator, per pair of rows: ``{estimator: {"op map|op map": (ra, rb)}}``.

    Pairs are resampled paired by (pass, cycle) where both rows allow it (:func:`paired_keys`),
    else each row on its own (its :meth:`Row.compute` replicates, as the claim engine does).
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, dict] = {e: {} for e in ESTIMATORS}
    kept = total = paired = pairs = 0
    for a_op, b_op in _PAIRS:
        for m in MAPS:
            a, b = run.get(a_op, m), run.get(b_op, m)
            pk = paired_keys(a, b)
            pairs += 1
            if pk is None:
                for e in ESTIMATORS:
                    draws[e][f"{a.label}|{b.label}"] = (a.boot[e] / a.batch, b.boot[e] / b.batch)
                continue
            groups, n_common, n_all = pk
            paired += 1
            kept += 2 * n_common
            total += n_all
            ta, counts = _tables(a.meds, [ia for ia, _ in groups])
            tb, _ = _tables(b.meds, [ib for _, ib in groups])
            va, vb = two_stage([ta, tb], counts, n_boot, rng)
            for e in ESTIMATORS:
                draws[e][f"{a.label}|{b.label}"] = (estimate_rows(va, e) / a.batch, estimate_rows(vb, e) / b.batch)
    if paired == 0:
        note = "unpaired (no cycle ids): each row resampled alone"
    else:
        note = (
            f"paired by (pass, cycle) on {paired} of {pairs} row pairs; "
            f"{kept} of {total} rounds at keys both rows have ({kept / max(total, 1):.0%})"
        )
    return draws, note


def claims_of(run: Run, e: str, draws: dict) -> dict[str, tuple]:
    """``{statistic: (point, low, high)}`` for estimator ``e`` on ``run``."""
    point = claim_values(lambda op, m: run.get(op, m).latency(e), lambda op, m: run.get(op, m).macs)
    d = draws[e]

    def reps_for(a_op: str, b_op: str) -> dict:
        def lat(op, m):
            ra, rb = d[f"{a_op} {m}|{b_op} {m}"]
            return ra if op == a_op else rb

        return claim_values(lat, lambda op, m: run.get(op, m).macs)

    by_pair = {p: reps_for(*p) for p in _PAIRS}
    which = {
        "PConv/DWConv FLOPS": ("pconv", "dwconv"),
        "PConv/GConv FLOPS": ("pconv", "gconv"),
        "PConv/DWConv latency": ("pconv", "dwconv"),
        "PConv/GConv latency": ("pconv", "gconv"),
        "Conv/PConv latency": ("conv", "pconv"),
        **{f"PConv/DWConv FLOPS {m}": ("pconv", "dwconv") for m in MAPS},
    }
    out = {}
    for k, v in point.items():
        reps = by_pair[which[k]][k]
        ci = stats.containing(float(v), stats.percentile_ci(reps, CONFIDENCE), CONFIDENCE)
        out[k] = (float(v), ci.low, ci.high)
    return out


# -- comparison across runs ---------------------------------------------------------------------------
def rel(a: float, b: float) -> float:
    return abs(b / a - 1.0)


def inside(x: float, ci: tuple[float, float]) -> bool:
    return ci[0] <= x <= ci[1]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def halfwidth(point: float, ci: tuple[float, float]) -> float:
    return max(point - ci[0], ci[1] - point) / point


def rows_table(runs: list[Run], labels: list[str]) -> dict[str, dict]:
    pairs = list(combinations(range(len(runs)), 2))
    out = {}
    print(
        f"\n== Rows across runs: {len(pairs)} pair(s) of runs x {len(labels)} rows = {len(pairs) * len(labels)} row pairs"
    )
    pair_names = " ".join(f"{i + 1}-{j + 1}" for i, j in pairs)
    print(
        f"{'estimator':9s} {'within 5%':>10s} {'CIs overlap':>12s} {'each in other':>14s} "
        f"{'median diff':>12s} {'largest':>8s} {'median CI ±':>12s}   within 5% per pair of runs ({pair_names})"
    )
    for e in ESTIMATORS:
        diffs, ov, both, hw, per_pair = [], 0, 0, [], []
        for i, j in pairs:
            d_pair = 0
            for lab in labels:
                a, b = runs[i].rows[lab], runs[j].rows[lab]
                diffs.append(rel(a.point[e], b.point[e]))
                d_pair += diffs[-1] <= WITHIN
                ov += overlap(a.ci[e], b.ci[e])
                both += inside(a.point[e], b.ci[e]) and inside(b.point[e], a.ci[e])
            per_pair.append(d_pair)
        for r in runs:
            hw += [halfwidth(r.rows[lab].point[e], r.rows[lab].ci[e]) for lab in labels]
        n = len(diffs)
        w5 = sum(d <= WITHIN for d in diffs)
        out[e] = dict(within=w5, n=n, overlap=ov, both=both, median_diff=float(np.median(diffs)))
        print(
            f"{e:9s} {w5:>5d}/{n:<4d} {ov:>7d}/{n:<4d} {both:>9d}/{n:<4d} "
            f"{np.median(diffs):>11.1%} {max(diffs):>8.1%} {np.median(hw):>11.1%}   "
            + " ".join(f"{d}/{len(labels)}" for d in per_pair)
        )
    print(f"\nper row, largest difference between runs (and the runs' points, ms; {', '.join(r.name for r in runs)}):")
    print(f"{'row':18s} " + " ".join(f"{e:>8s}" for e in ESTIMATORS) + "   median point per run (ms)")
    for lab in labels:
        cells = []
        for e in ESTIMATORS:
            pts = [r.rows[lab].point[e] for r in runs]
            cells.append(max(rel(pts[i], pts[j]) for i, j in pairs))
        meds = " / ".join(f"{r.rows[lab].point['median'] * 1e3:.3f}" for r in runs)
        print(f"{lab:18s} " + " ".join(f"{c:>8.1%}" for c in cells) + f"   {meds}")
    return out


def claims_table(runs: list[Run], per_run: list[dict[str, dict]], notes: list[str]) -> dict[str, dict]:
    pairs = list(combinations(range(len(runs)), 2))
    print(f"\n== Claims across runs ({len(pairs)} pair(s) of runs); pairing of the replicates:")
    for r, note in zip(runs, notes):
        print(f"  {r.name}: {note}")
    print(f"{'statistic':22s} {'estimator':9s} " + " ".join(f"{'run ' + str(i + 1):>22s}" for i in range(len(runs))))
    out = {}
    for name, how in CLAIMS:
        print(f"{name} ({how}):")
        for e in ESTIMATORS:
            cells = []
            for pr in per_run:
                v, lo, hi = pr[e][name]
                cells.append(f"{v:.3f} [{lo:.3f}-{hi:.3f}]")
            print(f"{'':22s} {e:9s} " + " ".join(f"{c:>22s}" for c in cells))
    print(f"\n{'estimator':9s} {'claims within 5%':>17s} {'each in other CI':>17s} {'per-map FLOPS within 5%':>24s}")
    for e in ESTIMATORS:
        w = b = pm = 0
        for i, j in pairs:
            ci, cj = per_run[i][e], per_run[j][e]
            for name, _ in CLAIMS:
                w += rel(ci[name][0], cj[name][0]) <= WITHIN
                b += inside(ci[name][0], cj[name][1:]) and inside(cj[name][0], ci[name][1:])
            for m in MAPS:
                k = f"PConv/DWConv FLOPS {m}"
                pm += rel(ci[k][0], cj[k][0]) <= WITHIN
        nc, nm = len(pairs) * len(CLAIMS), len(pairs) * len(MAPS)
        mean = {name: float(np.mean([pr[e][name][0] for pr in per_run])) for name, _ in CLAIMS}
        out[e] = dict(within=w, n=nc, both=b, per_map=pm, n_map=nm, mean=mean)
        print(f"{e:9s} {w:>11d}/{nc:<5d} {b:>11d}/{nc:<5d} {pm:>18d}/{nm:<5d}")
    print("\nper-map PConv/DWConv FLOPS ratio, per run:")
    for m in MAPS:
        k = f"PConv/DWConv FLOPS {m}"
        for e in ESTIMATORS:
            vals = " ".join(f"{pr[e][k][0]:7.3f}" for pr in per_run)
            print(f"  {m:10s} {e:9s} {vals}")
    return out


DRIFT_SHOWN = 0.25


def drift_table(runs: list[Run], labels: list[str]) -> None:
    """Per run: each pass's median of round medians relative to the row's median (all rows' median of
    those, then every row whose passes spread by more than :data:`DRIFT_SHOWN`), and the reference
    kernel per pass. A pass slow on every row is the machine; one row's slow pass is that row."""
    print("\n== Drift inside a run: median of round medians per pass, relative to the row's median")
    print(
        f"   (every row whose pass medians spread by more than {DRIFT_SHOWN:.0%}; 'ref': the reference kernel timed "
        "before each round, median per pass, µs)"
    )
    for r in runs:
        rows = [r.rows[lab] for lab in labels if r.rows[lab].passes is not None]
        if not rows:
            print(f"  {r.name}: no pass ids")
            continue
        passes = sorted(set(np.concatenate([x.passes for x in rows]).tolist()))
        with_ref = [x for x in rows if x.ref_s is not None]
        ref_txt = "-"
        if with_ref:
            refs, rp = np.concatenate([x.ref_s for x in with_ref]), np.concatenate([x.passes for x in with_ref])
            ref_txt = " ".join(
                f"{np.median(refs[rp == p]) * 1e6:6.1f}" if np.any(rp == p) else "     -" for p in passes
            )
        rel_pass = {
            x.label: np.array(
                [
                    np.median(x.meds[x.passes == p]) / x.point["median"] if np.any(x.passes == p) else np.nan
                    for p in passes
                ]
            )
            for x in rows
        }
        allrows = np.nanmedian(np.stack(list(rel_pass.values())), axis=0)
        print(f"  {r.name}: passes {passes}; ref {ref_txt}")
        print(f"    {'all rows (median)':18s} " + " ".join(f"{v:6.3f}" for v in allrows))
        for x in rows:
            per = rel_pass[x.label]
            spread = np.nanmax(per) / np.nanmin(per) - 1
            if spread > DRIFT_SHOWN:
                cells = " ".join(f"{v:6.3f}" if np.isfinite(v) else "     -" for v in per)
                n_r = [int(np.sum(x.passes == p)) for p in passes]
                print(
                    f"    {x.label:18s} {cells}  spread {spread:5.0%}, round medians {x.meds.max() / x.meds.min():.2f}x "
                    f"max/min, CI ±{halfwidth(x.point['median'], x.ci['median']):.0%}, rounds {n_r}"
                )


# -- the simulated clock ------------------------------------------------------------------------------
class TenantSim:
    """A fake device in the spirit of ``tests/test_timing.py``'s ``Sim``, with a process level and a neighbour.

    One instance is one process: its level is drawn once (lognormal, ``proc_sd``); each fresh
    allocation (``rebuild``) draws a round level (lognormal, ``round_sd``), and with probability
    ``p_slow_round`` the round shares the core with another tenant: every iteration of it pays an
    extra ``base · U(slow_round)`` (additive). Each iteration has lognormal noise (``iter_sd``) and
    with probability ``p_slow_iter`` an additive extra ``base · Exp(slow_iter_mean)``. Time only
    advances through ``timer``, so budgets and samples are on the fake clock.
    """

    def __init__(
        self,
        seed,
        base=4e-3,
        proc_sd=0.0,
        round_sd=0.0,
        iter_sd=0.0,
        p_slow_round=0.0,
        slow_round=(0.05, 0.6),
        p_slow_iter=0.0,
        slow_iter_mean=0.5,
    ):
        self.rng = np.random.default_rng(seed)
        self.t = 0.0
        self.base, self.round_sd, self.iter_sd = base, round_sd, iter_sd
        self.p_slow_round, self.slow_round = p_slow_round, slow_round
        self.p_slow_iter, self.slow_iter_mean = p_slow_iter, slow_iter_mean
        self.proc = math.exp(self.rng.normal(0.0, proc_sd))
        self.level, self.extra = base, 0.0

    def clock(self):
        return self.t

    def rebuild(self):
        from torch import nn

        self.level = self.base * self.proc * math.exp(self.rng.normal(0.0, self.round_sd))
        slow = self.rng.random() < self.p_slow_round
        self.extra = self.base * self.rng.uniform(*self.slow_round) if slow else 0.0
        return nn.Identity()

    def timer(self, step, iters):
        z = self.rng.normal(0.0, self.iter_sd, iters) if self.iter_sd else np.zeros(iters)
        dt = self.level * np.exp(z) + self.extra
        if self.p_slow_iter:
            hit = self.rng.random(iters) < self.p_slow_iter
            dt = dt + hit * self.base * self.rng.exponential(self.slow_iter_mean, iters)
        d = float(dt.sum())
        self.t += d
        return d


#: Simulated scenarios: (name, TenantSim keywords). Levels roughly as measured on this VM
#: (README: round medians spread 9–15 % in a process, process medians 4–12 %).
SCENARIOS = (
    ("multiplicative", dict(proc_sd=0.06, round_sd=0.08, iter_sd=0.05)),
    (
        "additive",
        dict(proc_sd=0.02, round_sd=0.02, iter_sd=0.02, p_slow_round=0.25, p_slow_iter=0.05, slow_iter_mean=0.5),
    ),
    (
        "both",
        dict(proc_sd=0.06, round_sd=0.08, iter_sd=0.05, p_slow_round=0.25, p_slow_iter=0.05, slow_iter_mean=0.5),
    ),
    # an oversubscribed host, as in the runs this script was first used on: most rounds share the core
    (
        "contended",
        dict(
            proc_sd=0.06,
            round_sd=0.08,
            iter_sd=0.05,
            p_slow_round=0.7,
            slow_round=(0.2, 3.0),
            p_slow_iter=0.1,
            slow_iter_mean=1.0,
        ),
    ),
)
SIM_PROCESSES = 5
SIM_PASS_S = 1.45  # about five rounds of 0.24 s after the warm-up: a table1 pass at --budget 6
SIM_ROUND_S = 0.24


def simulate(seed: int, kw: dict) -> tuple[np.ndarray, np.ndarray]:
    """One simulated row: ``SIM_PROCESSES`` measurements by :func:`fnbench.timing.measure`, merged.

    Returns the round medians and the process of each round.
    """
    import torch
    from torch import nn

    from fnbench.timing import measure

    parts = []
    for p in range(SIM_PROCESSES):
        sim = TenantSim([seed, p], **kw)
        parts.append(
            measure(
                nn.Identity(),
                torch.zeros(1, 4),
                clock=sim.clock,
                timer=sim.timer,
                rebuild=sim.rebuild,
                budget_s=SIM_PASS_S,
                round_s=SIM_ROUND_S,
                precision=0.0,
                min_rounds=1,
                fold=False,
                allocator=None,
                peak_memory=False,
            )
        )
    m = Measurement.merge(parts)
    r = np.asarray(m.round_ids)
    _, first = np.unique(r, return_index=True)
    return np.asarray(m.round_medians_s()), np.asarray(m.worker_ids)[np.sort(first)]


def sim_table(n_seeds: int) -> dict[str, dict[str, dict]]:
    print(
        f"\n== Coverage on the simulated clock: {n_seeds} seeds per scenario, {SIM_PROCESSES} processes x "
        f"{SIM_PASS_S} s each, rounds of {SIM_ROUND_S} s; population values from {n_seeds} further seeds"
    )
    print(
        f"{'scenario':15s} {'estimator':9s} {'population/base':>15s} {'coverage':>9s} {'mean CI ±':>10s} "
        f"{'rel sd':>7s} {'point/base':>11s}"
    )
    out: dict[str, dict[str, dict]] = {}
    base = TenantSim(0).base
    for scen, kw in SCENARIOS:
        t0 = time.perf_counter()
        pop_meds, pop_min = [], []
        for s in range(n_seeds):
            meds, _ = simulate(10_000_000 + s, kw)
            pop_meds.append(meds)
            pop_min.append(meds.min())
        pooled = np.concatenate(pop_meds)
        pop = {e: estimate(pooled, e) for e in ESTIMATORS if e != "min"}
        pop["min"] = float(np.median(pop_min))
        hits = {e: 0 for e in ESTIMATORS}
        points = {e: [] for e in ESTIMATORS}
        hws = {e: [] for e in ESTIMATORS}
        n_rounds = []
        for s in range(n_seeds):
            meds, worker = simulate(s, kw)
            n_rounds.append(meds.size)
            for e, (p, lo, hi, _) in row_intervals(meds, worker, seed=s).items():
                hits[e] += lo <= pop[e] <= hi
                points[e].append(p)
                hws[e].append(max(p - lo, hi - p) / p)
        out[scen] = {}
        for e in ESTIMATORS:
            pts = np.asarray(points[e])
            cov = hits[e] / n_seeds
            out[scen][e] = dict(coverage=cov, rel_sd=float(pts.std(ddof=1) / pts.mean()))
            print(
                f"{scen:15s} {e:9s} {pop[e] / base:>15.3f} {cov:>9.1%} {np.mean(hws[e]):>10.1%} "
                f"{pts.std(ddof=1) / pts.mean():>7.2%} {np.median(pts) / base:>11.3f}"
            )
        print(
            f"{'':15s} ({np.median(n_rounds):.0f} rounds per seed, median; {len(pooled)} pooled round medians; "
            f"{time.perf_counter() - t0:.0f} s)"
        )
    return out


# -- the decision -------------------------------------------------------------------------------------
def decide(rows: dict | None, claims: dict | None, sims: dict | None) -> str:
    """The paragraph at the end: the median is kept unless a candidate is clearly better and honest."""
    parts = []
    best = None
    if rows:
        m = rows["median"]
        ranked = sorted(ESTIMATORS, key=lambda e: (-rows[e]["within"], rows[e]["median_diff"]))
        parts.append(
            "Across runs, rows within 5 %: "
            + ", ".join(f"{e} {rows[e]['within']}/{rows[e]['n']}" for e in ESTIMATORS)
            + "; median relative difference: "
            + ", ".join(f"{e} {rows[e]['median_diff']:.1%}" for e in ESTIMATORS)
            + "."
        )
        if claims:
            parts.append(
                "Claims within 5 %: "
                + ", ".join(f"{e} {claims[e]['within']}/{claims[e]['n']}" for e in ESTIMATORS)
                + "; each run's claim inside the other's interval: "
                + ", ".join(f"{e} {claims[e]['both']}/{claims[e]['n']}" for e in ESTIMATORS)
                + "."
            )
            parts.append(
                "The estimators disagree on the claims themselves (mean over runs): "
                + "; ".join(
                    f"{name} " + ", ".join(f"{e} {claims[e]['mean'][name]:.2f}" for e in ESTIMATORS)
                    for name in ("PConv/DWConv FLOPS", "Conv/PConv latency")
                )
                + "."
            )
        margin = max(2, math.ceil(0.10 * m["n"]))
        better = [
            e
            for e in ESTIMATORS
            if e != "median"
            and rows[e]["within"] >= m["within"] + margin
            and rows[e]["median_diff"] < m["median_diff"]
            and (not claims or claims[e]["within"] >= claims["median"]["within"])
        ]
        parts.append(
            f"Best by rows within 5 % is {ranked[0]}. A candidate repeats clearly better than the median if it has at "
            f"least {margin} more rows within 5 %, a lower median difference and no fewer claims within 5 %: "
            + (", ".join(better) if better else "none does")
            + "."
        )
        best = better[0] if better else None
    if sims:
        cov = {e: min(sims[s][e]["coverage"] for s in sims) for e in ESTIMATORS}
        sd = {e: max(sims[s][e]["rel_sd"] for s in sims) for e in ESTIMATORS}
        parts.append(
            "Simulated coverage (lowest over scenarios): "
            + ", ".join(f"{e} {cov[e]:.0%}" for e in ESTIMATORS)
            + "; spread of the point across seeds (largest relative sd): "
            + ", ".join(f"{e} {sd[e]:.2%}" for e in ESTIMATORS)
            + "."
        )
        honest = {e for e in ESTIMATORS if cov[e] >= 0.90}
        if best is not None and best not in honest:
            parts.append(f"{best} repeats better but its interval is not honest (coverage {cov[best]:.0%} < 90 %).")
            best = None
    if best is None:
        parts.append(
            "Recommendation: keep the median of round medians (no candidate is clearly better with honest coverage)."
        )
    else:
        parts.append(f"Recommendation: {best} repeats clearly better with honest coverage; consider switching to it.")
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="result files or folders of table1 runs (every *.jsonl is one run)")
    ap.add_argument("--runs", dest="make", type=int, default=0, help="take N table1 runs first, back to back")
    ap.add_argument("--out", default="results/estimators", help="where --runs writes (one folder per run)")
    ap.add_argument("--budget", type=float, default=6.0, help="--budget of the runs --runs takes")
    ap.add_argument("--precision", type=float, default=0.05, help="--precision of the runs --runs takes")
    ap.add_argument("--sim-seeds", type=int, default=250, help="seeds per simulated scenario (0: no simulation)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    print(f"estimators: start ({_load()})", flush=True)
    files = run_files(args.runs)
    if args.make:
        files += make_runs(args.make, Path(args.out), args.budget, args.precision)
    rows_out = claims_out = sims = None
    if len(files) == 1:
        raise SystemExit("one run given: give two or more runs (or --runs N) to compare")
    if files:
        runs = [load_run(f) for f in files]
        labels = [f"{op} {m}" for op in TABLE1_OPS for m in MAPS]
        for r in runs:
            missing = [lab for lab in labels if lab not in r.rows]
            if missing:
                raise SystemExit(
                    f"{r.name} lacks {len(missing)} Table-1 rows ({', '.join(missing[:4])}): not a table1 run"
                )
        same = 0
        for r in runs:
            for row in r.rows.values():
                row.compute()
                lo, hi = row.ci["median"]
                same += math.isclose(lo, row.fnbench_ci.low, rel_tol=1e-9) and math.isclose(
                    hi, row.fnbench_ci.high, rel_tol=1e-9
                )
        n_rows = sum(len(r.rows) for r in runs)
        print(f"{len(runs)} runs: " + ", ".join(f"{r.name} ({len(r.rows)} rows)" for r in runs))
        print(
            f"check: the median's interval here equals fnbench's row interval on {same}/{n_rows} rows; "
            f"processes per row: {sorted({row.k for r in runs for row in r.rows.values()})}, "
            f"rounds per row: {min(row.meds.size for r in runs for row in r.rows.values())}-"
            f"{max(row.meds.size for r in runs for row in r.rows.values())}"
        )
        rows_out = rows_table(runs, labels)
        per_run, notes = [], []
        for i, r in enumerate(runs):
            draws, note = claim_draws(r, N_BOOT_CLAIM, seed=1 + i)
            per_run.append({e: claims_of(r, e, draws) for e in ESTIMATORS})
            notes.append(note)
        claims_out = claims_table(runs, per_run, notes)
        drift_table(runs, labels)
    if args.sim_seeds > 0:
        sims = sim_table(args.sim_seeds)
    print("\n== Decision")
    print(decide(rows_out, claims_out, sims))
    print(f"\n({time.perf_counter() - t_start:.0f} s; {_load()})")


if __name__ == "__main__":
    main()
