"""A target measured in passes over a suite: one pass on fresh worker processes, passes combined, pending state.

:func:`fnbench.runner.run_suite` makes several passes over a suite; each pass gives every target
that is not done yet ``budget_s / passes`` seconds on a pool of fresh processes
(:func:`measure_pass`), and stores what it got as a ``partial`` record. :class:`PendingTarget`
holds a target's stored passes; :func:`combine_passes` turns them into one
:class:`~fnbench.timing.Measurement` whose interval is the bootstrap over processes, then rounds
(:func:`fnbench.stats.hierarchical_median_ci`). A target whose interval is within the precision
target after :data:`MIN_PASSES` passes is done early.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .conditions import Conditions
from .devices import Device
from .options import DEFAULT_PASSES
from .runtimes import Unsupported
from .targets import Target
from .timing import DEFAULT_MIN_ROUNDS, ROUNDS_PER_BUDGET, Measurement
from .workers import ChunkRequest, WorkerError, WorkerPool

__all__ = [
    "DEFAULT_PASSES",
    "MIN_PASSES",
    "MIN_PASS_S",
    "FRESH_PROCESS_PER_TARGET",
    "effective_passes",
    "measure_pass",
    "combine_passes",
    "PendingTarget",
]

#: Allocators whose state depends on what the process allocated before (glibc's dynamic mmap and
#: trim thresholds rise after a large free): under these every target of every pass gets a fresh
#: worker, so it is measured as a fresh process would run it, not after the targets before it.
FRESH_PROCESS_PER_TARGET = ("system",)
#: A target may stop before the last pass once this many passes give a CI within ±precision.
MIN_PASSES = 3
#: Fewest seconds a pass gives one target; a smaller ``budget_s`` means fewer passes.
MIN_PASS_S = 0.3
#: Rounds a chunk may take: the chunk runs until its share of the pass budget is spent.
CHUNK_MAX_ROUNDS = 500


def effective_passes(passes: int, budget_s: float) -> int:
    """``passes``, reduced so that each pass still gives a target at least :data:`MIN_PASS_S` seconds."""
    return max(1, min(int(passes), int(budget_s / MIN_PASS_S)))


def measure_pass(
    pool: WorkerPool,
    target: Target,
    device: Device,
    conditions: Conditions,
    precision: float,
    budget_s: float,
    pass_budget_s: float,
    seed: int,
    batch: int | None,
) -> dict[str, Any]:
    """One pass over one target: a chunk on each of the pool's (fresh) workers, one after another.

    Each chunk has ``pass_budget_s / workers`` seconds (preparing the target included) and takes
    rounds of ``budget_s / 25`` seconds until they are spent. ``batch``, once a first pass has
    settled it (CUDA halves it on out-of-memory), is asked for again. Returns the pass's raw
    samples with chunk-local round ids and the worker index per sample; raises
    :class:`Unsupported` or :class:`WorkerError`.
    """
    spec = target.spec if batch is None else replace(target.spec, batch=batch)
    round_s = max(budget_s / ROUNDS_PER_BUDGET, 1e-3)
    per_worker = pass_budget_s / pool.n
    out: dict[str, Any] = {
        "samples_s": [],
        "rounds": [],
        "workers": [],
        "warmup_iters": [],
        "chunks": [],
        "faults": {"minor": [], "major": [], "iters": [], "ref_s": []},
    }
    first = None
    t0 = time.perf_counter()
    for worker in range(pool.n):
        req = ChunkRequest(
            spec, conditions, device.kind, per_worker, seed, CHUNK_MAX_ROUNDS, CHUNK_MAX_ROUNDS, round_s, precision
        )
        res = pool.run_chunk(worker, req)
        if res.status == "unsupported":
            raise Unsupported(res.error)
        if res.status != "ok":
            raise WorkerError(f"worker {worker}: {res.error}", res.traceback)
        if first is None:
            first = res
        elif res.batch != first.batch:
            raise WorkerError(
                f"worker {worker} measured batch {res.batch}, worker 0 batch {first.batch} "
                "(out of memory in one process only); use --batch to fix the batch"
            )
        out["samples_s"] += res.samples_s
        out["rounds"] += res.round_ids
        out["workers"] += [worker] * len(res.samples_s)
        out["warmup_iters"] += res.warmup_iters
        out["faults"]["minor"] += res.faults_minor
        out["faults"]["major"] += res.faults_major
        out["faults"]["iters"] += res.round_iters
        out["faults"]["ref_s"] += res.round_ref_s
        if res.gpu_samples_s:
            out.setdefault("gpu_samples_s", []).extend(res.gpu_samples_s)
        chunk = {
            "worker": worker,
            "pid": res.pid,
            "rounds": len(set(res.round_ids)),
            "wall_s": res.wall_s,
            "iters_per_sample": res.iters_per_sample,
            "prepare_s": res.prepare_s,
        }
        if res.gpu_state:
            chunk["gpu_state"] = res.gpu_state  # clocks and throttle reasons right after the chunk's timed blocks
        if res.oom_batches:
            chunk["oom_batches"] = res.oom_batches
        out["chunks"].append(chunk)
    out.update(
        batch=first.batch,
        iters_per_sample=first.iters_per_sample,
        bn_folded=first.bn_folded,
        threads_used=first.threads,
        runtime_info=dict(first.runtime_info, tf32=first.tf32),
        wall_s=time.perf_counter() - t0,
        round_s=round_s,
        budget_s=pass_budget_s,
        allocator_state=first.allocator,
    )
    return out


def combine_passes(
    parts: Sequence[dict[str, Any]], *, precision: float, budget_s: float | None, device: str
) -> Measurement:
    """One :class:`Measurement` from the partial records of a target's passes.

    Every (pass, worker) is one process: it becomes one cluster id in ``worker_ids`` (0, 1, … in
    pass order), and every (pass, worker, round) one round id, so the interval is the bootstrap
    over processes, then rounds.
    """
    samples: list[float] = []
    rids: list[int] = []
    procs: list[int] = []
    warm: list[int] = []
    faults: dict[str, list] = {"minor": [], "major": [], "iters": [], "ref_s": []}
    gpu: list[float] = []
    proc_index: dict[tuple[int, int], int] = {}
    round_index: dict[tuple[int, int, int], int] = {}
    parts = sorted(parts, key=lambda r: r["pass"])
    for rec in parts:
        pass_no = int(rec["pass"])
        for sample, round_id, worker in zip(rec["samples_s"], rec["rounds"], rec["workers"]):
            procs.append(proc_index.setdefault((pass_no, int(worker)), len(proc_index)))
            rids.append(round_index.setdefault((pass_no, int(worker), int(round_id)), len(round_index)))
            samples.append(float(sample))
        warm += rec.get("warmup_iters") or []
        stored = rec.get("faults") or {}
        for key in faults:
            faults[key] += list(stored.get(key) or [])
        gpu += rec.get("gpu_samples_s") or []  # absent in records from before GPU time was taken
    first = parts[0]
    m = Measurement(
        samples_s=samples,
        round_ids=rids,
        batch=int(first["batch"]),
        precision=precision,
        min_rounds=DEFAULT_MIN_ROUNDS,
        iters_per_sample=int(first.get("iters_per_sample") or 1),
        warmup_iters=warm,
        budget_s=budget_s,
        wall_s=float(sum(r.get("pass_wall_s") or 0.0 for r in parts)),
        device=device,
        threads=first.get("threads_used"),
        bn_folded=int(first.get("bn_folded") or 0),
        worker_ids=procs,
        allocator=first.get("allocator_state"),
        gpu_samples_s=gpu or None,
        tf32=(first.get("runtime_info") or {}).get("tf32"),
    )
    if len(faults["iters"]) == len(round_index):  # passes without fault counts (older files) leave them out
        m.round_faults_minor, m.round_faults_major, m.round_iters = faults["minor"], faults["major"], faults["iters"]
        m.round_ref_s = faults["ref_s"] if len(faults["ref_s"]) == len(round_index) else []
    m.budget_exhausted = not m.stable
    return m


@dataclass
class PendingTarget:
    """A target under one set of conditions, still being measured: its stored passes and whether it is done."""

    target: Target
    conditions: Conditions
    key: str
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    done: bool = False
    wall_s: float = 0.0

    @property
    def label(self) -> str:
        return self.target.spec.label

    def units_done(self, passes: int) -> int:
        """Progress units: one per pass, all of them once the target is done."""
        return passes if self.done else min(len(self.parts), passes)

    def needs_pass(self, pass_no: int) -> bool:
        return not self.done and pass_no not in self.parts

    def stored_batch(self) -> int | None:
        """The batch the first stored pass settled on (CUDA halves it on out-of-memory), or None."""
        return int(self.parts[min(self.parts)]["batch"]) if self.parts else None

    def ordered_parts(self) -> list[dict[str, Any]]:
        return [self.parts[p] for p in sorted(self.parts)]

    def combined(self, *, precision: float, budget_s: float, device: str) -> Measurement:
        return combine_passes(self.ordered_parts(), precision=precision, budget_s=budget_s, device=device)

    def settled_after(
        self, pass_no: int, passes: int, *, precision: float, budget_s: float, device: str
    ) -> tuple[bool, Measurement | None]:
        """After pass ``pass_no`` is stored: is the target done, and its combined measurement if it was needed."""
        enough = len(self.parts) >= MIN_PASSES
        combined = self.combined(precision=precision, budget_s=budget_s, device=device) if enough else None
        return pass_no == passes - 1 or (combined is not None and combined.stable), combined
