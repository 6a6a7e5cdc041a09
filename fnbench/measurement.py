"""What a latency measurement is: raw samples in rounds (and processes), their statistics, their record.

One type travels from the timing loop to the disk and back (torch.utils.benchmark keeps its
``Measurement`` below both its timer and its comparison table, and pyperf's worker sends the type
it stores): :func:`fnbench.timing.measure` returns a :class:`Measurement`, a worker process sends
it back inside its answer, :meth:`Measurement.merge` combines the chunks of a pass and the passes
of a target, and :meth:`Measurement.to_record` / :meth:`Measurement.from_record` are the only
places that know how it is laid out in a result record. This module needs numpy and
:mod:`fnbench.stats` only, so reading and reporting results never import torch.

Names follow the record: a field is stored under its own name, except the per-sample ids
(``round_ids`` → ``rounds``, ``worker_ids`` → ``workers``, ``pass_ids`` → ``passes``,
``cycle_ids`` → ``cycles``) and the per-round counters, kept together in :class:`RoundCounts`
and stored as ``faults``.

Example::

    >>> m = Measurement([1.0e-3, 1.1e-3, 1.2e-3, 1.0e-3], [0, 0, 1, 1], batch=1)
    >>> round(m.median_s * 1e3, 3), m.rounds
    (1.075, 2)
    >>> Measurement.from_record(m.to_record()).median_s == m.median_s
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import stats
from .options import DEFAULT_PRECISION

__all__ = [
    "Measurement",
    "RoundCounts",
    "DEFAULT_PRECISION",
    "DEFAULT_MIN_ROUNDS",
    "LAUNCH_BOUND_RATIO",
    "MIN_ROUNDS_PER_WORKER",
    "CONFIDENCE",
    "MIN_SAMPLES_P99",
    "workers_settled",
    "rounds_settled",
]

#: The fewest rounds whose order-statistic interval reaches 95 % ([min, max] of 6 is 96.9 %).
DEFAULT_MIN_ROUNDS = 6
#: A row is launch-bound when its GPU time is under this fraction of its wall time.
LAUNCH_BOUND_RATIO = 0.8
#: Fewest rounds each worker must contribute before a multi-worker measurement can be stable.
MIN_ROUNDS_PER_WORKER = 2
#: The confidence of every interval a measurement reports.
CONFIDENCE = 0.95
#: Fewest samples for a 99th percentile: with fewer, it is the slowest sample or an interpolation to it.
MIN_SAMPLES_P99 = 100


@dataclass
class RoundCounts:
    """What each round's timed blocks paid, one entry per round in round order (stored as ``faults``).

    ``minor``/``major``: page faults over the round's timed blocks (``getrusage`` deltas);
    ``iters``: the iterations those blocks ran; ``ref_s``: seconds of a fixed reference kernel
    timed just before the round (:func:`fnbench.timing.reference_s`: the machine's own speed at
    that moment, so a run that was slower everywhere can be told from a target that was slower);
    ``wait_s``: seconds the process's threads spent runnable but waiting for a CPU during the
    round's timed blocks (the kernel's run-queue delay, ``/proc/self/task/*/schedstat``): another
    process on the core, which the reference kernel, shorter than a scheduler slice, does not see.
    """

    minor: list[int] = field(default_factory=list)
    major: list[int] = field(default_factory=list)
    iters: list[int] = field(default_factory=list)
    ref_s: list[float] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)

    def __add__(self, other: RoundCounts) -> RoundCounts:
        return RoundCounts(
            self.minor + other.minor,
            self.major + other.major,
            self.iters + other.iters,
            self.ref_s + other.ref_s,
            self.wait_s + other.wait_s,
        )

    def per_iter(self, counts: list[int]) -> float | None:
        """``counts`` summed over the timed iterations (None where nothing was counted)."""
        total = sum(self.iters)
        return sum(counts) / total if total else None

    def to_record(self) -> dict[str, Any]:
        return {
            "minor": list(self.minor),
            "major": list(self.major),
            "iters": list(self.iters),
            "minor_per_iter": self.per_iter(self.minor),
            "major_per_iter": self.per_iter(self.major),
            "ref_s": list(self.ref_s),
            "wait_s": list(self.wait_s),
        }

    @classmethod
    def from_record(cls, block: dict[str, Any] | None, n_rounds: int) -> RoundCounts:
        """The stored ``faults`` block; counts that do not give one entry per round are left out
        (records from before faults were counted, or a pass of such a record)."""
        block = block or {}
        lists = {k: list(block.get(k) or []) for k in ("minor", "major", "iters", "ref_s", "wait_s")}
        if len(lists["iters"]) != n_rounds:
            return cls()
        for optional in ("ref_s", "wait_s"):  # taken later than the fault counts: older records lack them
            if len(lists[optional]) != n_rounds:
                lists[optional] = []
        return cls(**lists)


@dataclass
class Measurement:
    """Raw per-iteration samples of one target, grouped in rounds; statistics are derived.

    ``samples_s[i]`` is seconds per iteration (a block's time divided by ``iters_per_sample``)
    taken in round ``round_ids[i]``. Nothing here is rounded; render-time code does that.

    ``worker_ids[i]``, when given, is the worker process that took sample ``i`` (round ids are
    then unique across workers), ``pass_ids[i]`` the pass over the suite it was taken in, and
    ``cycle_ids[i]`` the cycle of that pass: the rounds of every target of an interleaved pass are
    taken in cycles, one round of each target per cycle, so rounds of two targets with the same
    pass and cycle were taken moments apart and see the same machine (:mod:`fnbench.passes`).
    With two or more workers the CI is the two-stage bootstrap over workers and rounds
    (:func:`fnbench.stats.hierarchical_median_ci`), which holds across fresh processes, and
    ``stable`` also needs every worker to have contributed ≥ 2 rounds.

    ``budget_s`` is the wall-clock budget this measurement was given (a run's: the user's
    per-target ``--budget``), ``wall_s`` the seconds it took. ``threads_used`` is the thread
    count the samples were taken with, ``allocator_state`` the allocator's
    (:func:`fnbench.allocators.state`), ``tf32`` the math mode on CUDA (None elsewhere),
    ``gpu_samples_s`` the GPU execution times per iteration (CUDA events; None elsewhere),
    ``oom_batches`` the batches that ran out of device memory before ``batch`` fitted, and
    ``peak_memory_bytes`` what one warm forward needed at its peak above what was allocated before
    it, read as ``peak_memory_method`` says (None where it could not be read).
    """

    samples_s: list[float]
    round_ids: list[int]
    batch: int
    precision: float = DEFAULT_PRECISION
    min_rounds: int = DEFAULT_MIN_ROUNDS
    iters_per_sample: int = 1
    warmup_iters: list[int] = field(default_factory=list)
    budget_s: float | None = None
    wall_s: float = 0.0
    budget_exhausted: bool = False
    device: str = "cpu"
    threads_used: int | None = None
    bn_folded: int = 0
    worker_ids: list[int] | None = None
    pass_ids: list[int] | None = None
    cycle_ids: list[int] | None = None
    counts: RoundCounts = field(default_factory=RoundCounts)
    allocator_state: dict[str, Any] | None = None
    tf32: bool | None = None
    gpu_samples_s: list[float] | None = None
    oom_batches: list[int] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    peak_memory_method: str | None = None
    _ci_memo: dict = field(default_factory=dict, repr=False, compare=False)

    # -- derived -----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.samples_s)

    @property
    def rounds(self) -> int:
        return len(set(self.round_ids))

    def round_medians_s(self) -> list[float]:
        return [float(v) for v in stats.round_medians(self.samples_s, self.round_ids)]

    @property
    def median_s(self) -> float:
        """Median of the per-round medians (the estimate the CI is about)."""
        return stats.median(stats.round_medians(self.samples_s, self.round_ids))

    @property
    def gpu_median_s(self) -> float | None:
        """Median GPU execution time per iteration (CUDA events, launch gaps excluded); None off CUDA."""
        return stats.median(self.gpu_samples_s) if self.gpu_samples_s else None

    @property
    def launch_bound(self) -> bool | None:
        """True when the GPU was busy for under :data:`LAUNCH_BOUND_RATIO` of the wall time."""
        g = self.gpu_median_s
        return None if g is None else bool(g < LAUNCH_BOUND_RATIO * self.median_s)

    @property
    def workers(self) -> int:
        """How many worker processes contributed samples (0: measured in the calling process)."""
        return len(set(self.worker_ids)) if self.worker_ids else 0

    @property
    def ci_method(self) -> str:
        if self.workers >= 2:
            return stats.HIERARCHICAL_CI_METHOD
        return "order-statistic(rounds)"

    @property
    def ci95(self) -> stats.CI:
        key = (len(self.samples_s), self.workers)
        if key not in self._ci_memo:
            self._ci_memo.clear()
            if self.workers >= 2:
                self._ci_memo[key] = stats.hierarchical_median_ci(
                    self.samples_s, self.round_ids, self.worker_ids, CONFIDENCE
                )[1]
            else:
                self._ci_memo[key] = stats.median_ci(stats.round_medians(self.samples_s, self.round_ids), CONFIDENCE)
        return self._ci_memo[key]

    @property
    def ci95_low_s(self) -> float:
        return self.ci95.low

    @property
    def ci95_high_s(self) -> float:
        return self.ci95.high

    @property
    def iqr_s(self) -> float:
        return stats.iqr(self.samples_s)

    @property
    def p50_s(self) -> float:
        return stats.percentile(self.samples_s, 50.0)

    @property
    def p90_s(self) -> float:
        return stats.p90(self.samples_s)

    @property
    def p99_s(self) -> float | None:
        """The 99th percentile of per-iteration latency; None under :data:`MIN_SAMPLES_P99` samples, where
        it would be little more than the slowest one."""
        return stats.percentile(self.samples_s, 99.0) if self.n >= MIN_SAMPLES_P99 else None

    @property
    def timed_s(self) -> float:
        """Seconds spent inside timed blocks: each round's samples times its block length."""
        c = self.counts
        if not c.iters:
            return float(np.sum(self.samples_s)) * self.iters_per_sample
        s = np.asarray(self.samples_s, dtype=float)
        _, first, inverse = np.unique(np.asarray(self.round_ids), return_index=True, return_inverse=True)
        order = np.argsort(first)  # rounds in order of appearance, as the counts are
        sums = np.bincount(inverse, weights=s)[order]
        sizes = np.bincount(inverse)[order]
        return float(np.sum(sums * np.asarray(c.iters, dtype=float) / sizes))

    @property
    def wait_fraction(self) -> float | None:
        """Seconds the timed blocks spent waiting for a CPU over their timed seconds (None where not read)."""
        if not self.counts.wait_s:
            return None
        timed = self.timed_s
        return float(sum(self.counts.wait_s)) / timed if timed > 0 else None

    @property
    def timed_fraction(self) -> float | None:
        """Timed seconds over the seconds the measurement took (preparing, warming and building rounds included)."""
        return self.timed_s / self.wall_s if self.wall_s and self.wall_s > 0 else None

    @property
    def minor_faults_per_iter(self) -> float | None:
        """Minor page faults per timed iteration (None where faults were not counted)."""
        return self.counts.per_iter(self.counts.minor)

    @property
    def major_faults_per_iter(self) -> float | None:
        return self.counts.per_iter(self.counts.major)

    @property
    def reference_median_s(self) -> float | None:
        """Median over rounds of the reference kernel's time (None where it was not timed)."""
        return stats.median(self.counts.ref_s) if self.counts.ref_s else None

    @property
    def rel_ci_halfwidth(self) -> float:
        return stats.rel_halfwidth(self.ci95, self.median_s)

    @property
    def stable(self) -> bool:
        """True when ≥ ``min_rounds`` rounds give a real 95 % CI within ±``precision`` of the median."""
        if self.workers >= 2:
            return workers_settled(
                self.samples_s, self.round_ids, self.worker_ids, self.precision, self.min_rounds, ci=self.ci95
            )
        return rounds_settled(self.samples_s, self.round_ids, self.precision, self.min_rounds)

    def to_stats(self) -> dict[str, Any]:
        """The record's ``stats`` block: every statistic derived from the samples, and how they were taken."""
        return {
            "median_s": self.median_s,
            "iqr_s": self.iqr_s,
            "p50_s": self.p50_s,
            "p90_s": self.p90_s,
            "p99_s": self.p99_s,
            "ci95_low_s": self.ci95_low_s,
            "ci95_high_s": self.ci95_high_s,
            "n": self.n,
            "stable": self.stable,
            "rounds": self.rounds,
            "rel_ci_halfwidth": self.rel_ci_halfwidth,
            "iters_per_sample": self.iters_per_sample,
            "precision": self.precision,
            "budget_s": self.budget_s,
            "wall_s": self.wall_s,
            "timed_s": self.timed_s,
            "timed_fraction": self.timed_fraction,
            "wait_fraction": self.wait_fraction,
            "budget_exhausted": self.budget_exhausted,
            "ci_method": self.ci_method,
            "workers": self.workers,
            "minor_faults_per_iter": self.minor_faults_per_iter,
            "major_faults_per_iter": self.major_faults_per_iter,
            "reference_median_s": self.reference_median_s,
            "gpu_median_s": self.gpu_median_s,
            "launch_bound": self.launch_bound,
            "oom_batches": list(self.oom_batches),
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_method": self.peak_memory_method,
        }

    # -- combining -----------------------------------------------------------------------------
    @classmethod
    def merge(
        cls,
        parts: Sequence[Measurement],
        *,
        processes: Sequence[int] | None = None,
        precision: float | None = None,
        min_rounds: int | None = None,
        budget_s: float | None = None,
    ) -> Measurement:
        """One measurement of the same thing from several: samples concatenated, ids made unique.

        ``processes[i]`` is the worker process that took part ``i`` (default: each part its own). A
        part taken on several workers keeps them apart: every distinct (process, worker) becomes one
        worker id (0, 1, … in order of appearance) and every (part, worker, round) one round id,
        so the interval of a merge over processes is the bootstrap over processes, then rounds. Only
        parts that ``processes`` puts in one process and that carry no worker ids (two measurements
        in the calling process, pooled) give a merge without worker ids. Parts must agree on the batch. What describes the
        conditions (device, threads, folding, allocator, math mode, block length) is the first
        part's; ``precision``, ``min_rounds`` and ``budget_s`` default to the first part's too, and
        ``budget_exhausted`` is whether the merge is unsettled.
        """
        if not parts:
            raise ValueError("nothing to merge")
        first = parts[0]
        batches = {p.batch for p in parts}
        if len(batches) > 1:
            raise ValueError(f"cannot merge measurements at different batches {sorted(batches)}")
        procs = list(range(len(parts))) if processes is None else list(processes)
        several = processes is None or len(set(procs)) > 1 or any(p.worker_ids for p in parts)
        worker_index: dict[tuple[int, int], int] = {}
        round_index: dict[tuple[int, int, int], int] = {}  # (part, worker, round): a part's rounds are its own
        samples: list[float] = []
        rids: list[int] = []
        wids: list[int] = []
        pids: list[int] = []
        cids: list[int] = []
        for i, (proc, p) in enumerate(zip(procs, parts)):
            workers = p.worker_ids or [0] * p.n
            for s, r, w in zip(p.samples_s, p.round_ids, workers):
                wids.append(worker_index.setdefault((proc, int(w)), len(worker_index)))
                rids.append(round_index.setdefault((i, int(w), int(r)), len(round_index)))
                samples.append(float(s))
            pids += p.pass_ids if p.pass_ids else []
            cids += p.cycle_ids if p.cycle_ids else []
        counts = RoundCounts()
        for p in parts:
            counts = counts + p.counts
        if len(counts.iters) != len(round_index):  # some part without counts: the counts say nothing
            counts = RoundCounts()
        if len(counts.ref_s) != len(round_index):
            counts.ref_s = []
        if len(counts.wait_s) != len(round_index):
            counts.wait_s = []
        gpu = [g for p in parts for g in p.gpu_samples_s or []]
        peaks = [p.peak_memory_bytes for p in parts if p.peak_memory_bytes is not None]
        m = cls(
            samples_s=samples,
            round_ids=rids,
            batch=first.batch,
            precision=first.precision if precision is None else precision,
            min_rounds=first.min_rounds if min_rounds is None else min_rounds,
            iters_per_sample=first.iters_per_sample,
            warmup_iters=[w for p in parts for w in p.warmup_iters],
            budget_s=first.budget_s if budget_s is None else budget_s,
            wall_s=float(sum(p.wall_s for p in parts)),
            device=first.device,
            threads_used=first.threads_used,
            bn_folded=first.bn_folded,
            worker_ids=wids if several else None,
            pass_ids=pids if len(pids) == len(samples) else None,
            cycle_ids=cids if len(cids) == len(samples) else None,
            counts=counts,
            allocator_state=first.allocator_state,
            tf32=first.tf32,
            gpu_samples_s=gpu or None,
            oom_batches=list(dict.fromkeys(b for p in parts for b in p.oom_batches)),
            peak_memory_bytes=max(peaks) if peaks else None,
            peak_memory_method=next((p.peak_memory_method for p in parts if p.peak_memory_method), None),
        )
        m.budget_exhausted = not m.stable
        return m

    # -- the record ------------------------------------------------------------------------------
    def to_record(self, *, raw: bool = False) -> dict[str, Any]:
        """The measurement's keys of a result record: samples with their ids, ``faults``, ``stats``.

        ``raw`` adds what combining needs later and a final record does not keep (a pass's
        warm-up iterations, GPU samples, block length, folded BNs, threads, math mode): a
        ``partial`` record is written with it, so that :meth:`from_record` of the passes gives
        back everything :meth:`merge` uses.
        """
        rec: dict[str, Any] = {"batch": self.batch, "samples_s": list(self.samples_s), "rounds": list(self.round_ids)}
        if self.worker_ids is not None:
            rec["workers"] = list(self.worker_ids)
        if self.pass_ids is not None:
            rec["passes"] = list(self.pass_ids)
        if self.cycle_ids is not None:
            rec["cycles"] = list(self.cycle_ids)
        rec["stats"] = self.to_stats()
        rec["faults"] = self.counts.to_record()
        rec["allocator_state"] = self.allocator_state
        if raw:
            rec.update(
                warmup_iters=list(self.warmup_iters),
                iters_per_sample=self.iters_per_sample,
                bn_folded=self.bn_folded,
                threads_used=self.threads_used,
                tf32=self.tf32,
                oom_batches=list(self.oom_batches),
                wall_s=self.wall_s,
            )
            if self.gpu_samples_s:
                rec["gpu_samples_s"] = list(self.gpu_samples_s)
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any], *, device: str | None = None) -> Measurement:
        """The measurement a record holds (final or partial, of any schema-1 vintage).

        Statistics are not read back: they are derived again from the samples. Older partial
        records kept the math mode in ``runtime_info.tf32`` and their wall time in ``pass_wall_s``.
        """
        st = rec.get("stats") or {}
        samples = [float(x) for x in rec["samples_s"]]
        rids = [int(r) for r in rec.get("rounds") or range(len(samples))]
        tf32 = rec["tf32"] if "tf32" in rec else (rec.get("runtime_info") or {}).get("tf32")
        wall = rec.get("wall_s", rec.get("pass_wall_s", st.get("wall_s")))
        return cls(
            samples_s=samples,
            round_ids=rids,
            batch=int(rec.get("batch") or 1),
            precision=float(st.get("precision") or DEFAULT_PRECISION),
            iters_per_sample=int(rec.get("iters_per_sample") or st.get("iters_per_sample") or 1),
            warmup_iters=list(rec.get("warmup_iters") or []),
            budget_s=st.get("budget_s"),
            wall_s=float(wall or 0.0),
            budget_exhausted=bool(st.get("budget_exhausted", False)),
            device=device or (rec.get("device") or {}).get("kind") or "cpu",
            threads_used=rec.get("threads_used"),
            bn_folded=int(rec.get("bn_folded") or 0),
            worker_ids=[int(w) for w in rec["workers"]] if rec.get("workers") else None,
            pass_ids=[int(p) for p in rec["passes"]] if rec.get("passes") else None,
            cycle_ids=[int(c) for c in rec["cycles"]] if rec.get("cycles") else None,
            counts=RoundCounts.from_record(rec.get("faults"), len(set(rids))),
            allocator_state=rec.get("allocator_state"),
            tf32=tf32,
            gpu_samples_s=list(rec.get("gpu_samples_s") or []) or None,
            oom_batches=list(rec.get("oom_batches") or st.get("oom_batches") or []),
            peak_memory_bytes=st.get("peak_memory_bytes"),
            peak_memory_method=st.get("peak_memory_method"),
        )


def workers_settled(
    samples, round_ids, worker_ids, precision: float, min_rounds: int, ci: stats.CI | None = None
) -> bool:
    """The stopping rule across workers: ≥ 2 rounds from every worker, ≥ ``min_rounds`` in all,
    and the hierarchical 95 % CI within ±``precision`` of the median of round medians."""
    if not samples:
        return False
    r = np.asarray(round_ids)
    w = np.asarray(worker_ids)
    per_worker = [np.unique(r[w == wid]).size for wid in np.unique(w)]
    if len(per_worker) < 2 or min(per_worker) < MIN_ROUNDS_PER_WORKER or sum(per_worker) < min_rounds:
        return False
    if ci is None:
        ci = stats.hierarchical_median_ci(samples, round_ids, worker_ids, CONFIDENCE)[1]
    center = stats.median(stats.round_medians(samples, round_ids))
    return stats.settled(ci, center, precision)


def rounds_settled(samples, round_ids, precision: float, min_rounds: int) -> bool:
    """The stopping rule in one process: ≥ ``min_rounds`` rounds whose order-statistic 95 % CI of the
    median of round medians reaches 95 % and lies within ±``precision`` of it."""
    if not samples:
        return False
    meds = stats.round_medians(samples, round_ids)
    if meds.size < min_rounds:
        return False
    ci = stats.median_ci(meds, CONFIDENCE)
    if ci.level < CONFIDENCE:
        return False
    return stats.settled(ci, float(np.median(meds)), precision)
