"""A suite measured in passes: one pass interleaves the rounds of a group of targets on fresh processes.

:func:`fnbench.runner.run_suite` makes several passes over a suite. In each, every target not yet
done gets a fresh worker process that prepares it (build, runtime, warm-up) while nothing is
timed, and then the targets' rounds are taken in cycles, one round of each target per cycle in an
order drawn afresh every cycle, one measurement at a time on the host (:func:`interleaved_pass`):
every row samples the same moments, so a ratio between rows sees the same machine, as ``compare``
does for two (the runs it replaced measured a suite target after target, and a host that drifted
over minutes moved one claim by 20 % between two runs whose intervals excluded each other). Every
round keeps its pass and cycle, and the claim engine pairs the rounds of a claim's rows by them.

Which targets share a pass: the targets a claim compares (:func:`claim_components`) always, and
as many more as the memory the workers of a pass may hold allows (:func:`interleave_groups`).
A pass of a target is stored as a ``partial`` record (:class:`PassResult`); :class:`PendingTarget`
holds a target's stored passes; :func:`combine_passes` turns them into one
:class:`~fnbench.measurement.Measurement` whose interval is the bootstrap over processes, then
rounds (:func:`fnbench.stats.hierarchical_median_ci`). The targets of a claim stop together, after
:data:`MIN_PASSES` passes, once all of them are within the precision target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .allocators import DEFAULT_ALLOCATOR
from .conditions import Conditions
from .devices import Device
from .measurement import DEFAULT_MIN_ROUNDS, MIN_ROUNDS_PER_WORKER, Measurement
from .options import DEFAULT_PASSES
from .runtimes import Unsupported
from .targets import Target, TargetSpec
from .timing import ROUNDS_PER_BUDGET
from .workers import FINISH, ChunkResult, Failure, Prepare, Ready, Round, WorkerError, WorkerPool

__all__ = [
    "DEFAULT_PASSES",
    "MIN_PASSES",
    "MIN_PASS_S",
    "effective_passes",
    "PassResult",
    "interleaved_pass",
    "interleave_groups",
    "claim_components",
    "cycles_per_pass",
    "worker_bytes",
    "round_length_s",
    "combine_passes",
    "PendingTarget",
]

#: A target may stop before the last pass once this many passes give a CI within ±precision.
MIN_PASSES = 3
#: Fewest seconds a pass gives one target; a smaller ``budget_s`` means fewer passes.
MIN_PASS_S = 0.3


def effective_passes(passes: int, budget_s: float) -> int:
    """``passes``, reduced so that each pass still gives a target at least :data:`MIN_PASS_S` seconds."""
    return max(1, min(int(passes), int(budget_s / MIN_PASS_S)))


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


#: Share of the memory available when a pass starts that its live workers may take together.
WORKER_MEMORY_SHARE = 0.5
#: Private memory of a worker before it builds its target: what it writes of the fork server's pages
#: (measured: 7 MB with the server's objects frozen, :mod:`fnbench.freeze`), with room to spare.
WORKER_BASE_BYTES = 32 * 2**20


def worker_bytes(cost: dict[str, Any] | None) -> int:
    """What a worker holding a target of ``cost`` is expected to take: its base, the module three times over
    (prepared, warmed, a round's fresh copy; FP32) and a quarter of the bytes its operators move.

    Measured after two rounds (private memory, ``smaps_rollup``) against this estimate: pconv 96x56x56
    23 MB (40 estimated), FasterNet-T0 60 MB (91), MobileViT-XXS 56 MB (79), MobileNetV2 71 MB (113),
    conv 768x7x7 626 MB (691), FasterNet-L 962 MB (1306): never under.
    """
    cost = cost or {}
    return WORKER_BASE_BYTES + 12 * int(cost.get("params") or 0) + int(cost.get("mem_bytes_counted") or 0) // 4


def claim_components(tasks: Sequence[PendingTarget], linked: Sequence[Sequence[str]]) -> list[list[PendingTarget]]:
    """``tasks`` cut into the sets whose rows a claim compares, in suite order: targets named together in
    one of ``linked`` (the targets of each claim) are in one set; every other target is a set of its own.

    A set is interleaved in one group and stops together (:meth:`fnbench.runner._Run.settle`), so
    every round of one of its rows has the rounds of the others in the same cycle to be paired with.
    """
    names = {t.target.spec.name for t in tasks}
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for group in linked:
        present = [n for n in group if n in names]
        for n in present[1:]:
            parent[root(n)] = root(present[0])
    components: dict[str, list[PendingTarget]] = {}
    for t in tasks:
        components.setdefault(root(t.target.spec.name), []).append(t)
    return list(components.values())


#: GPU memory a worker's CUDA context, cuBLAS and cuDNN hold before its target is built.
CUDA_CONTEXT_BYTES = 512 * 2**20


def interleave_groups(
    components: Sequence[Sequence[PendingTarget]],
    costs: dict[str, dict[str, Any] | None],
    *,
    workers: int,
    memory_bytes: int | None,
    max_processes: int,
    device_memory_bytes: int | None = None,
) -> list[list[PendingTarget]]:
    """The groups whose rounds one pass interleaves: ``components`` (:func:`claim_components`) packed in
    suite order while their workers (``workers`` per task, :func:`worker_bytes` each by ``costs``) fit
    in :data:`WORKER_MEMORY_SHARE` of ``memory_bytes``, in ``max_processes``, and on CUDA, with a
    context each (:data:`CUDA_CONTEXT_BYTES`), in that share of the GPU's ``device_memory_bytes``.
    Only a component that alone exceeds that is cut, and its claims are then judged unpaired across
    the cut.
    """
    caps = np.array(
        [
            math.inf if memory_bytes is None else WORKER_MEMORY_SHARE * memory_bytes,
            math.inf if device_memory_bytes is None else WORKER_MEMORY_SHARE * device_memory_bytes,
            max_processes,
        ]
    )
    cuda = device_memory_bytes is not None

    def need(items: Sequence[PendingTarget]) -> np.ndarray:
        host = sum(workers * worker_bytes(costs.get(t.key)) for t in items)
        return np.array([host, host + workers * len(items) * CUDA_CONTEXT_BYTES * cuda, workers * len(items)])

    groups: list[list[PendingTarget]] = [[]]
    used = np.zeros(3)
    for comp in components:
        parts = [comp] if (need(comp) <= caps).all() else [[t] for t in comp]  # too large whole: cut where it must
        for items in parts:
            if groups[-1] and (used + need(items) > caps).any():
                groups.append([])
                used = np.zeros(3)
            groups[-1].extend(items)
            used += need(items)
    return [g for g in groups if g]


def cycles_per_pass(pass_budget_s: float, round_s: float) -> int:
    """Cycles of an interleaved pass: as many rounds as a target's share of the pass holds (at least two,
    so that every process gives the two rounds its interval needs)."""
    return max(MIN_ROUNDS_PER_WORKER, round(pass_budget_s / round_s))


def interleaved_pass(
    pool: WorkerPool,
    tasks: Sequence[PendingTarget],
    *,
    device: Device,
    seed: int,
    pass_no: int,
    budget_s: float,
    pass_budget_s: float,
    workers: int = 1,
    concurrency: int = 1,
    progress: Callable[[float], None] | None = None,
) -> dict[str, PassResult | Exception]:
    """One pass over ``tasks`` with their rounds interleaved: ``{task key: its pass, or why it has none}``.

    The pool holds ``workers`` fresh processes per task (task ``t``'s ``w``-th is worker
    ``t * workers + w``). First every worker prepares its task — build, prepare for the runtime,
    warm up — ``concurrency`` at a time, while nothing is timed. Then the rounds, one measurement
    at a time on the host: in every cycle each task takes one round, in an order drawn afresh per
    cycle (seeded by ``seed`` and the pass), so every task samples the same stretch of the run and
    a ratio between two of them sees the same machine; a task's round in cycle ``k`` goes to its
    worker ``k mod workers``. There are :func:`cycles_per_pass` cycles; a task whose rounds have
    used more than its share of the pass (``pass_budget_s``; a slow network whose three samples
    per round outlast a round) sits out the cycles left once each of its workers has two rounds.
    A failure (the runtime cannot take the model, an error, a worker that died) ends that task's
    pass as an :class:`Unsupported` or :class:`WorkerError`; the others go on. ``progress(f)``
    is told the fraction of the pass done after every cycle.
    """
    round_s = round_length_s(budget_s)
    run = _PassRun(pool, list(tasks), workers, pass_budget_s)
    run.prepare(device, seed, round_s, concurrency)
    cycles = cycles_per_pass(pass_budget_s, round_s)
    rng = np.random.default_rng([seed, pass_no])
    for k in range(cycles):
        run.cycle(k, rng)
        if progress is not None:
            progress((k + 1) / cycles)
    return run.finish(round_s)


@dataclass
class _PassRun:
    """One interleaved pass under way: which worker holds which task, what each task has spent, what failed."""

    pool: WorkerPool
    tasks: list[PendingTarget]
    workers: int
    pass_budget_s: float
    failed: dict[str, Exception] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)  # seconds preparing (the slowest of a task's workers)
    spent: dict[str, float] = field(default_factory=dict)  # seconds of the task's rounds
    last: dict[str, float] = field(default_factory=dict)  # seconds of the task's last round

    def slot(self, task: PendingTarget, w: int) -> int:
        return self.tasks.index(task) * self.workers + w

    def prepare(self, device: Device, seed: int, round_s: float, concurrency: int) -> None:
        """Every worker prepares its task, ``concurrency`` at a time; a task none of whose workers may go on fails."""
        warm_s = 0.15 * self.pass_budget_s
        requests = {
            # the peak memory of a forward is the same in every process: read once, by the first pass's first worker
            self.slot(t, w): Prepare(
                _spec_at(t), t.conditions, device.kind, seed, round_s, warm_s, not t.parts and w == 0
            )
            for t in self.tasks
            for w in range(self.workers)
        }
        answers = self.pool.ask_many(requests, concurrency)
        for t in self.tasks:
            mine = [answers[self.slot(t, w)] for w in range(self.workers)]
            self.wall[t.key] = max(seconds for _, seconds in mine)  # a task's workers prepare side by side
            self.spent[t.key] = self.last[t.key] = 0.0
            bad = [(w, a) for w, (a, _) in enumerate(mine) if isinstance(a, Failure)]
            batches = {a.batch for a, _ in mine if isinstance(a, Ready)}
            if bad:
                self.failed[t.key] = _as_error(bad[0][1], bad[0][0])
            elif len(batches) > 1:
                self.failed[t.key] = WorkerError(
                    f"the workers of {t.label} measured batches {sorted(batches)} (out of memory in one process "
                    "only); use --batch to fix the batch"
                )

    def cycle(self, k: int, rng: np.random.Generator) -> None:
        """Cycle ``k``: one round of every task still measured, in an order drawn from ``rng``."""
        active = [t for t in self.tasks if t.key not in self.failed]
        for j in rng.permutation(len(active)):
            t = active[int(j)]
            key = t.key
            if (
                k >= MIN_ROUNDS_PER_WORKER * self.workers
                and self.spent[key] + self.last[key] > 1.25 * self.pass_budget_s
            ):
                continue  # its share of the pass is used up
            t0 = time.perf_counter()
            answer = self.pool.ask(self.slot(t, k % self.workers), Round(k))
            self.last[key] = time.perf_counter() - t0
            self.spent[key] += self.last[key]
            if isinstance(answer, Failure):
                self.failed[key] = _as_error(answer, k % self.workers)

    def finish(self, round_s: float) -> dict[str, PassResult | Exception]:
        """Each task's pass from its workers' measurements (or why it has none)."""
        out: dict[str, PassResult | Exception] = dict(self.failed)
        for t in self.tasks:
            if t.key in self.failed:
                continue
            t0 = time.perf_counter()
            chunks = [self.pool.ask(self.slot(t, w), FINISH) for w in range(self.workers)]
            bad = [(w, c.failure if isinstance(c, ChunkResult) else c) for w, c in enumerate(chunks)]
            bad = [(w, f) for w, f in bad if isinstance(f, Failure)]
            if bad:
                out[t.key] = _as_error(bad[0][1], bad[0][0])
                continue
            wall = self.wall[t.key] + self.spent[t.key] + time.perf_counter() - t0
            out[t.key] = PassResult.of(chunks, wall_s=wall, pass_budget_s=self.pass_budget_s, round_s=round_s)
        return out


def _spec_at(task: PendingTarget) -> TargetSpec:
    """The task's spec at the batch its first stored pass settled on (CUDA halves it on out-of-memory)."""
    batch = task.stored_batch()
    return task.target.spec if batch is None else replace(task.target.spec, batch=batch)


def _as_error(failure: Failure, worker: int) -> Exception:
    if failure.status == "unsupported":
        return Unsupported(failure.error)
    return WorkerError(f"worker {worker}: {failure.error}", failure.traceback)


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

    def named(self, with_conditions: bool) -> str:
        """The label, with the runtime and a non-default allocator where a run measures under several."""
        if not with_conditions:
            return self.label
        c = self.conditions
        return f"{self.label} [{c.runtime}{'' if c.allocator == DEFAULT_ALLOCATOR else ' alloc=' + c.allocator}]"

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
