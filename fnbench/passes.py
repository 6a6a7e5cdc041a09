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

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .conditions import Conditions
from .devices import Device
from .measurement import DEFAULT_MIN_ROUNDS, Measurement
from .runtimes import Unsupported
from .targets import Target
from .timing import ROUNDS_PER_BUDGET
from .workers import ChunkRequest, ChunkResult, WorkerError, WorkerPool

__all__ = [
    "DEFAULT_PASSES",
    "MIN_PASSES",
    "MIN_PASS_S",
    "FRESH_PROCESS_PER_TARGET",
    "effective_passes",
    "measure_pass",
    "PassResult",
    "round_length_s",
    "combine_passes",
    "PendingTarget",
]

#: Allocators whose state depends on what the process allocated before (glibc's dynamic mmap and
#: trim thresholds rise after a large free): under these every target of every pass gets a fresh
#: worker, so it is measured as a fresh process would run it, not after the targets before it.
FRESH_PROCESS_PER_TARGET = ("system",)
#: Passes over a suite for targets measured on worker processes; each pass has fresh processes.
DEFAULT_PASSES = 5
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
) -> list[ChunkResult]:
    """One pass over one target: a chunk on each of the pool's (fresh) workers, one after another.

    Each chunk has ``pass_budget_s / workers`` seconds (preparing the target included) and takes
    rounds of ``budget_s / 25`` seconds (``budget_s``: the target's whole budget) until they are
    spent. ``batch``, once a first pass has settled it (CUDA halves it on out-of-memory), is asked
    for again. Returns the workers' answers, each with its measurement; raises
    :class:`Unsupported` or :class:`WorkerError`.
    """
    spec = target.spec if batch is None else replace(target.spec, batch=batch)
    req = ChunkRequest(
        spec,
        conditions,
        device.kind,
        chunk_budget_s=pass_budget_s / pool.n,
        seed=seed,
        min_rounds=CHUNK_MAX_ROUNDS,
        max_rounds=CHUNK_MAX_ROUNDS,
        round_s=round_length_s(budget_s),
        precision=precision,
    )
    chunks: list[ChunkResult] = []
    for worker in range(pool.n):
        res = pool.run_chunk(worker, req)
        if res.failure is not None and res.failure.status == "unsupported":
            raise Unsupported(res.failure.error)
        if res.failure is not None:
            raise WorkerError(f"worker {worker}: {res.failure.error}", res.failure.traceback)
        if chunks and res.measurement.batch != chunks[0].measurement.batch:
            raise WorkerError(
                f"worker {worker} measured batch {res.measurement.batch}, worker 0 batch "
                f"{chunks[0].measurement.batch} (out of memory in one process only); use --batch to fix the batch"
            )
        chunks.append(res)
    return chunks


def round_length_s(budget_s: float) -> float:
    """The length of one round for a target whose whole budget is ``budget_s`` seconds."""
    return max(budget_s / ROUNDS_PER_BUDGET, 1e-3)


@dataclass
class PassResult:
    """One pass over one target as the run stores it: the workers' answers and their merged measurement."""

    chunks: list[ChunkResult]
    measurement: Measurement
    round_s: float

    @classmethod
    def of(cls, chunks: list[ChunkResult], *, wall_s: float, pass_budget_s: float, round_s: float) -> PassResult:
        """The pass's chunks merged (one process each), timed ``wall_s`` by the run, with ``pass_budget_s`` to spend."""
        m = Measurement.merge([c.measurement for c in chunks], min_rounds=DEFAULT_MIN_ROUNDS, budget_s=pass_budget_s)
        m.wall_s = wall_s
        return cls(chunks, m, round_s)

    def record_block(self) -> dict[str, Any]:
        """What a ``partial`` record holds besides its header: the raw measurement, the chunks, the runtime's info."""
        m = self.measurement
        return dict(
            m.to_record(raw=True),
            chunks=[c.chunk_summary() for c in self.chunks],
            runtime_info=dict(self.chunks[0].runtime_info, tf32=m.tf32),
            round_s=self.round_s,
            pass_wall_s=m.wall_s,
        )


def combine_passes(
    parts: Sequence[dict[str, Any]], *, precision: float, budget_s: float | None, device: str
) -> Measurement:
    """One :class:`Measurement` from the partial records of a target's passes.

    Every (pass, worker) is one process: it becomes one worker id (0, 1, … in pass order), and
    every (pass, worker, round) one round id, so the interval is the bootstrap over processes,
    then rounds (:meth:`Measurement.merge`); every sample keeps its pass.
    """
    parts = sorted(parts, key=lambda r: r["pass"])
    ms = [Measurement.from_record(rec, device=device) for rec in parts]
    for m, rec in zip(ms, parts):
        m.pass_ids = [int(rec["pass"])] * m.n
    return Measurement.merge(ms, precision=precision, min_rounds=DEFAULT_MIN_ROUNDS, budget_s=budget_s)


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
