"""Run a list of targets on one device: count, measure, append one record per target, show a table.

:func:`run_suite` is what ``fnbench run`` calls. All targets are resolved before anything is
measured, so bad input fails in a second, not after ten minutes. Each finished measurement is
appended (and fsync-ed) to ``<out_dir>/<run_id>.jsonl`` at once; ``resume=RUN_ID`` reopens that
file and measures only the targets it does not hold yet. A measurement that raises anything
other than :class:`~fnbench.errors.UserError` is recorded with ``status: failed`` and its error,
and the suite goes on.

Each target is measured in several passes over the suite (:data:`DEFAULT_PASSES`), each pass on
fresh worker processes (:mod:`fnbench.workers`), so its interval covers process-to-process
differences and the machine's drift over the minutes a run lasts; every pass is stored as it
finishes. ``workers=0`` measures in the calling process.

Example::

    >>> from fnbench.suites import get_suite
    >>> summary = run_suite(get_suite("quick").specs(), budget_s=2.0, progress=False)  # doctest: +SKIP
    >>> summary.path.name  # doctest: +SKIP
    '20261128T043000Z-3fa2.jsonl'
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import allocators
from . import results as _results
from .devices import DEFAULT_CUDA_BATCH, Device, device_key, fingerprint, gpu_state, resolve_device
from .errors import UserError, cause_first
from .runtimes import DTYPES, Unsupported, check_runtime, prepare, runtime_unavailable
from .target_cost import record_cost, scale_cost
from .targets import Target, TargetSpec, resolve
from .timing import (
    _ROUNDS_PER_BUDGET,
    DEFAULT_BUDGET_S,
    DEFAULT_MIN_ROUNDS,
    DEFAULT_PRECISION,
    Measurement,
    _drop_frames,
    fold_bn,
    free_device_memory,
    is_out_of_memory,
    measure,
)
from .workers import ChunkRequest, WorkerError, WorkerPool

__all__ = ["RunSummary", "run_suite", "unstable_reason", "prepare_target",
           "prepare_fitting", "DEFAULT_CUDA_BATCH",
           "DEFAULT_WORKERS", "DEFAULT_PASSES", "MIN_PASSES", "combine_passes", "effective_passes"]

#: Worker processes per pass (CPU, ARM and CUDA alike): the passes give the fresh processes.
DEFAULT_WORKERS = 1
#: Runtimes measured in the calling process even with workers: compiling once per worker would
#: cost K compilations per target (minutes), so torch.compile keeps the in-process path.
IN_PROCESS_RUNTIMES = ("compile",)


@dataclass(frozen=True)
class _How:
    """How a target is measured, besides the device: runtime, layout, precision, threads, allocator."""

    runtime: str = "eager"
    memory_format: str = "contiguous"
    dtype: str = "float32"
    threads: int | None = 1
    allocator: str = allocators.DEFAULT_ALLOCATOR


@dataclass
class RunSummary:
    """The outcome of :func:`run_suite`: the run, its file, and every record the file holds."""

    run_id: str
    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    measured: int = 0  # records written by this call (the rest were already there on resume)
    skipped: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]


def _key_for(target: Target, device: Device, how: _How) -> str:
    s = target.spec
    return _results.identity_key(name=s.name, shape=s.shape, layers=s.layers, options=s.options_dict(),
                                 batch=s.batch, device_kind=device.kind, runtime=how.runtime, threads=how.threads,
                                 dtype=how.dtype, memory_format=how.memory_format, allocator=how.allocator)


def _base_record(run_id: str, target: Target, device: Device, fp: dict[str, Any], how: _How) -> dict[str, Any]:
    s = target.spec
    return {
        "schema": _results.SCHEMA_VERSION,
        "run_id": run_id,
        "created": _results.utc_now(),
        "status": "ok",
        "target": {"name": s.name, "kind": target.kind, "shape": list(s.shape) if s.shape else None,
                   "layers": s.layers, "options": s.options_dict(), "batch": s.batch},
        "shape": list(s.shape) if s.shape else None,
        "batch": s.batch,
        "dtype": how.dtype,
        "device": {"kind": device.kind, "name": device.name, "arch": device.arch, "key": device_key(fp)},
        "runtime": how.runtime,
        "memory_format": how.memory_format,
        "allocator": how.allocator,
        "threads": how.threads,
    }


def prepare_target(target: Target, device: Device, how: _How, seed: int):
    """Build ``target`` (BN folded), make its input and prepare both for ``how.runtime`` on ``device``.

    Returns ``(prepared, x)``; raises :class:`Unsupported` if the runtime cannot take the model.
    BN is folded into the convs before the runtime sees the model (the paper's protocol), so
    eager, compiled and exported models compute the same folded network. Used in-process and
    by the worker processes alike.
    """

    def build() -> torch.nn.Module:
        m = target.build(seed)
        fold_bn(m)
        return m

    x = target.example_input("cpu", torch.float32, seed=seed).to(device.torch_device, DTYPES[how.dtype])
    if how.memory_format == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    prev_threads = torch.get_num_threads()
    if how.threads:  # compile and export under the thread count they will be timed with
        torch.set_num_threads(how.threads)
    try:
        prepared = prepare(how.runtime, build, x, device=device.kind if device.kind == "cuda" else "cpu",
                           threads=how.threads or 1, memory_format=how.memory_format, dtype=how.dtype)
    finally:
        torch.set_num_threads(prev_threads)
    return prepared, x


def prepare_fitting(target: Target, device: Device, how: _How, seed: int):
    """:func:`prepare_target`, halving the batch while preparing runs out of device memory.

    Uploading weights, compiling (autotuning) and exporting can each run out of memory before a
    single timed iteration. Returns ``(prepared, x, batches that did not fit)``.
    """
    from dataclasses import replace

    failed: list[int] = []
    while True:
        try:
            prepared, x = prepare_target(target, device, how, seed)
            return prepared, x, failed
        except Exception as e:  # noqa: BLE001 — only out-of-memory is handled here
            if not (is_out_of_memory(e) and target.spec.batch > 1):
                raise
            _drop_frames(e)
        failed.append(target.spec.batch)  # out of the handler: the failed attempt's tensors can be freed
        target = resolve(replace(target.spec, batch=target.spec.batch // 2))
        free_device_memory(device.torch_device)


def _measure_one(target: Target, device: Device, how: _How, precision: float, budget_s: float,
                 seed: int, batch: int, cost: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    """Prepare ``target`` for ``how.runtime`` and measure it in this process; raise :class:`Unsupported`."""
    prepared, x, oom_batches = prepare_fitting(target, device, how, seed)
    # Eager rounds deep-copy the prepared module (fresh allocations, no re-initialisation cost);
    # the other runtimes say how to make a fresh instance. Only eager may slice its input to a
    # smaller batch on out-of-memory: compiled and exported graphs have the batch built in.
    rebuild = None if how.runtime == "eager" else prepared.rebuild
    m = measure(prepared.module, x, device=device.torch_device, threads=how.threads, precision=precision,
                budget_s=budget_s, seed=seed, rebuild=rebuild, fold=False, allocator=how.allocator,
                halve_on_oom=how.runtime == "eager")
    m.oom_batches = oom_batches + m.oom_batches
    info = dict(prepared.info, tf32=m.tf32)
    return m, scale_cost(cost, m.batch, batch), info


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
_CHUNK_MAX_ROUNDS = 500


def effective_passes(passes: int, budget_s: float) -> int:
    """``passes``, reduced so that each pass still gives a target at least :data:`MIN_PASS_S` seconds."""
    return max(1, min(int(passes), int(budget_s / MIN_PASS_S)))


def _measure_pass(pool: WorkerPool, target: Target, device: Device, how: _How, precision: float, budget_s: float,
                  pass_budget_s: float, seed: int, batch: int | None) -> dict[str, Any]:
    """One pass over one target: a chunk on each of the pool's (fresh) workers, one after another.

    Each chunk has ``pass_budget_s / workers`` seconds (preparing the target included) and takes
    rounds of ``budget_s / 25`` seconds until they are spent. ``batch``, once a first pass has
    settled it (CUDA halves it on out-of-memory), is asked for again. Returns the pass's raw
    samples with chunk-local round ids and the worker index per sample; raises
    :class:`Unsupported` or :class:`WorkerError`.
    """
    from dataclasses import replace

    spec = target.spec if batch is None else replace(target.spec, batch=batch)
    round_s = max(budget_s / _ROUNDS_PER_BUDGET, 1e-3)
    per_worker = pass_budget_s / pool.n
    out: dict[str, Any] = {"samples_s": [], "rounds": [], "workers": [], "warmup_iters": [], "chunks": [],
                           "faults": {"minor": [], "major": [], "iters": [], "ref_s": []}}
    first = None
    t0 = time.perf_counter()
    for w in range(pool.n):
        req = ChunkRequest(spec, how, device.kind, per_worker, seed, _CHUNK_MAX_ROUNDS, _CHUNK_MAX_ROUNDS, round_s,
                           precision)
        res = pool.run_chunk(w, req)
        if res.status == "unsupported":
            raise Unsupported(res.error)
        if res.status != "ok":
            raise WorkerError(f"worker {w}: {res.error}", res.traceback)
        if first is None:
            first = res
        elif res.batch != first.batch:
            raise WorkerError(f"worker {w} measured batch {res.batch}, worker 0 batch {first.batch} "
                              "(out of memory in one process only); use --batch to fix the batch")
        out["samples_s"] += res.samples_s
        out["rounds"] += res.round_ids
        out["workers"] += [w] * len(res.samples_s)
        out["warmup_iters"] += res.warmup_iters
        out["faults"]["minor"] += res.faults_minor
        out["faults"]["major"] += res.faults_major
        out["faults"]["iters"] += res.round_iters
        out["faults"]["ref_s"] += res.round_ref_s
        if res.gpu_samples_s:
            out.setdefault("gpu_samples_s", []).extend(res.gpu_samples_s)
        chunk = {"worker": w, "pid": res.pid, "rounds": len(set(res.round_ids)), "wall_s": res.wall_s,
                 "iters_per_sample": res.iters_per_sample, "prepare_s": res.prepare_s}
        if res.gpu_state:
            chunk["gpu_state"] = res.gpu_state  # clocks and throttle reasons right after the chunk's timed blocks
        if res.oom_batches:
            chunk["oom_batches"] = res.oom_batches
        out["chunks"].append(chunk)
    out.update(batch=first.batch, iters_per_sample=first.iters_per_sample, bn_folded=first.bn_folded,
               threads_used=first.threads, runtime_info=dict(first.runtime_info, tf32=first.tf32),
               wall_s=time.perf_counter() - t0, round_s=round_s, budget_s=pass_budget_s,
               allocator_state=first.allocator)
    return out


def combine_passes(parts: Sequence[dict[str, Any]], *, precision: float, budget_s: float | None,
                   device: str) -> Measurement:
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
        p = int(rec["pass"])
        for s_, r_, w_ in zip(rec["samples_s"], rec["rounds"], rec["workers"]):
            procs.append(proc_index.setdefault((p, int(w_)), len(proc_index)))
            rids.append(round_index.setdefault((p, int(w_), int(r_)), len(round_index)))
            samples.append(float(s_))
        warm += rec.get("warmup_iters") or []
        f = rec.get("faults") or {}
        for k in faults:
            faults[k] += list(f.get(k) or [])
        gpu += rec.get("gpu_samples_s") or []  # absent in records from before GPU time was taken
    first = parts[0]
    m = Measurement(samples_s=samples, round_ids=rids, batch=int(first["batch"]), precision=precision,
                    min_rounds=DEFAULT_MIN_ROUNDS, iters_per_sample=int(first.get("iters_per_sample") or 1),
                    warmup_iters=warm, budget_s=budget_s, wall_s=float(sum(r.get("pass_wall_s") or 0.0 for r in parts)),
                    device=device, threads=first.get("threads_used"), bn_folded=int(first.get("bn_folded") or 0),
                    worker_ids=procs, allocator=first.get("allocator_state"), gpu_samples_s=gpu or None,
                    tf32=(first.get("runtime_info") or {}).get("tf32"))
    if len(faults["iters"]) == len(round_index):  # passes without fault counts (older files) leave them out
        m.round_faults_minor, m.round_faults_major, m.round_iters = faults["minor"], faults["major"], faults["iters"]
        m.round_ref_s = faults["ref_s"] if len(faults["ref_s"]) == len(round_index) else []
    m.budget_exhausted = not m.stable
    return m


def run_suite(
    specs: Sequence[TargetSpec],
    *,
    device: str = "cpu",
    threads: int | None = None,
    batch_override: int | None = None,
    precision: float = DEFAULT_PRECISION,
    budget_s: float = DEFAULT_BUDGET_S,
    out_dir: str | Path = "results",
    resume: str | None = None,
    progress: bool = True,
    console: Console | None = None,
    seed: int = 0,
    runtimes: Sequence[str] = ("eager",),
    memory_format: str = "contiguous",
    dtype: str = "float32",
    workers: int | None = None,
    passes: int = DEFAULT_PASSES,
    allocator: str | Sequence[str] = allocators.DEFAULT_ALLOCATOR,
    cli_options: dict[str, Any] | None = None,
) -> RunSummary:
    """Measure every spec on ``device``; append one record per target to ``<out_dir>/<run_id>.jsonl``.

    ``threads`` defaults to 1 on CPU/ARM (the paper's protocol) and is ignored on CUDA. On CUDA a
    batch-1 spec is measured at batch 32 (throughput, as the paper) unless ``batch_override``
    says otherwise. ``budget_s`` is the wall-clock budget per target; ``precision`` the target
    relative half-width of the 95 % CI. Progress (with ETA) goes to stderr.

    Each target is measured under every runtime in ``runtimes`` (``eager``, ``compile``,
    ``onnxruntime``); a runtime that cannot take a model records it as ``unsupported`` with the
    reason, and the suite goes on.

    Sampling is spread over the whole run: ``passes`` passes over the suite (default 5; fewer
    when ``budget_s`` is too small to give each ≥ 0.3 s), each giving every target
    ``budget_s / passes`` seconds on a pool of ``workers`` fresh processes (default 1). A target
    whose CI over the processes so far is within ±``precision`` after :data:`MIN_PASSES` passes
    skips the rest. Each pass of a target is appended at once as a ``status: "partial"`` record;
    the target's final record, written after its last pass, holds every sample with ``workers``
    (the process — pass and worker — of each sample) and ``passes`` (its pass), and its CI is
    the bootstrap over processes, then rounds. An interrupted run loses at most the pass in
    progress: ``resume`` reuses the stored passes. ``workers=0`` measures each target at once in
    this process (rounds of fresh allocations only), as does the ``compile`` runtime whatever
    ``workers`` says (:data:`IN_PROCESS_RUNTIMES`).

    ``allocator`` (one mode or several, see :mod:`fnbench.allocators`) is a measurement condition
    like the runtime: every target is measured under each, on workers started under it, and
    every record says which (``allocator``, ``allocator_state``) with the page faults of its
    timed iterations per round (``faults``). In-process measurement can take one allocator only
    (and ``system`` not after ``tuned``), since a process cannot change its allocator back.
    The records come back in suite order (targets, then runtimes, then allocators).

    The run's file is locked while it is measured (a second process gets :class:`UserError`
    naming the holder) and its plan stored beside it; ``resume`` refuses a call whose targets,
    device, runtimes or measuring conditions differ from the plan's (:class:`fnbench.results.RunFile`).
    ``cli_options`` are stored with the plan so that ``fnbench run --resume`` can repeat them.
    """
    dev = resolve_device(device)
    if dev.kind == "cuda":
        threads = None
    else:
        threads = 1 if threads is None else int(threads)
        if threads < 1:
            raise UserError(f"threads {threads} is not positive: use --threads 1 or more")
    if batch_override is not None and batch_override < 1:
        raise UserError(f"batch {batch_override} is not positive: use --batch 1 or more")
    if not 0 < budget_s < float("inf"):
        raise UserError(f"budget {budget_s} s is not a positive finite number: use e.g. --budget 10")
    workers = DEFAULT_WORKERS if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"workers {workers} is negative: use --workers 0 (in-process) or more")
    if int(passes) < 1:
        raise UserError(f"passes {passes} is not positive: use --passes 1 or more")
    passes = effective_passes(passes, budget_s) if workers > 0 else 1
    if not 0 < precision < 1:
        raise UserError(f"precision {precision} is not a fraction in (0, 1): use e.g. --precision 0.02 for ±2%")
    runtimes = list(dict.fromkeys(runtimes)) or ["eager"]
    rt_device = dev.kind if dev.kind == "cuda" else "cpu"
    for rt in runtimes:
        check_runtime(rt, rt_device, memory_format=memory_format, dtype=dtype)
    # A runtime this machine cannot serve (ONNX Runtime without its CUDA provider) costs only its own
    # rows, recorded as unsupported with the reason; a run left with no runtime at all is refused.
    unavailable = {rt: runtime_unavailable(rt, rt_device, dtype=dtype) for rt in runtimes}
    if all(unavailable.values()):
        raise UserError(unavailable[runtimes[0]])
    alloc_names = [allocator] if isinstance(allocator, str) else list(dict.fromkeys(allocator))
    alloc_names = [allocators.check_allocator(a) for a in alloc_names] or [allocators.DEFAULT_ALLOCATOR]
    for a in alloc_names:
        if a in allocators.LIBRARIES:
            allocators.require_library(a)
    in_process_only = workers == 0 or all(rt in IN_PROCESS_RUNTIMES for rt in runtimes)
    if len(alloc_names) > 1 and (workers == 0 or any(rt in IN_PROCESS_RUNTIMES for rt in runtimes)):
        raise UserError("several allocators need worker processes (a process cannot change its allocator back): "
                        "drop --workers 0 / the compile runtime, or give one --allocator")
    if in_process_only:
        for a in alloc_names:
            if a in allocators.LIBRARIES and a not in allocators.loaded_libraries():
                raise UserError(f"--allocator {a} in this process needs {allocators.LIBRARIES[a][0]} preloaded "
                                f"(LD_PRELOAD); measure on worker processes (--workers 1) instead")
    hows = [_How(rt, memory_format, dtype, threads, a) for rt in runtimes for a in alloc_names]

    def batch_for(spec: TargetSpec) -> int:
        if batch_override is not None:
            return batch_override
        return DEFAULT_CUDA_BATCH if (dev.kind == "cuda" and spec.batch == 1) else spec.batch

    from dataclasses import replace

    targets = [resolve(replace(s, batch=batch_for(s))) for s in specs]  # UserError here: nothing measured yet

    out_dir = Path(out_dir)
    run_id = _results.check_run_id(resume) if resume is not None else _results.new_run_id()
    planned = [_key_for(t, dev, h) for t in targets for h in hows]
    conditions = {f: list(dict.fromkeys(getattr(h, f) for h in hows)) for f in asdict(hows[0]) if f != "runtime"}
    plan = {"targets": [t.spec.label for t in targets], "device": dev.kind, "runtimes": list(runtimes),
            **{f: v[0] if len(v) == 1 else v for f, v in conditions.items()}, "keys": planned}
    stack = contextlib.ExitStack()  # the run's file stays locked until the run ends, however it ends
    run_file = stack.enter_context(_results.RunFile(out_dir, run_id, resume=resume is not None))
    try:
        done, stored_parts = run_file.open(plan, cli=cli_options)
    except BaseException:
        stack.close()
        raise
    path, writer = run_file.path, run_file.writer
    todo = [_Open(t, h, _key_for(t, dev, h)) for t in targets for h in hows if _key_for(t, dev, h) not in done]
    for o in todo:
        o.parts = {int(r["pass"]): r for r in stored_parts.get(o.key, [])}
    skipped = len(targets) * len(hows) - len(todo)

    err_console = console or Console(file=sys.stderr)
    prog = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=err_console, disable=not progress, transient=False,
    )
    if progress:  # before anything is measured, so an interrupted run can be resumed by its id
        err_console.print(f"run {run_id}: {len(todo)} to measure in {passes} pass{'es' if passes > 1 else ''}, "
                          f"writing {path} (resume with --resume {run_id})", highlight=False)
        if resume is not None:
            err_console.print(f"resuming: {skipped} already measured; finishing "
                              + (", ".join(f"{o.target.spec.label}" + (f" [{o.how.runtime}]" if len(hows) > 1 else "")
                                           + (f" ({len(o.parts)} pass(es) stored)" if o.parts else "") for o in todo)
                                 or "nothing"), highlight=False)
    measured = 0
    costs: dict[int, dict[str, Any]] = {}
    pass_budget = budget_s / passes

    def cost_of(target: Target, how: _How) -> dict[str, Any]:
        if id(target) not in costs:  # counted once per target, whatever the runtime
            costs[id(target)] = record_cost(target, target.build(seed), target.example_input("cpu", seed=seed), how.dtype)
        return costs[id(target)]

    def show_progress(task) -> None:
        prog.update(task, completed=sum(x.units_done(passes) for x in todo))

    def finish(o: _Open, rec: dict[str, Any], task) -> None:
        nonlocal measured
        rec["env"]["measure_wall_s"] = o.wall_s
        writer.write(rec)
        measured += 1
        o.final = True
        show_progress(task)

    def fail(o: _Open, e: BaseException, fp: dict[str, Any], task) -> None:
        rec = _base_record(run_id, o.target, dev, fp, o.how)
        if isinstance(e, (Unsupported, NotImplementedError)):
            reason = str(e) if isinstance(e, Unsupported) else f"{type(e).__name__}: {e}".splitlines()[0]
            rec.update(status="unsupported", error=reason)
        else:
            rec.update(status="failed", error=cause_first(str(e) if isinstance(e, WorkerError) else
                                                      f"{type(e).__name__}: {e}".splitlines()[0]),
                       traceback=getattr(e, "remote_traceback", None) or traceback.format_exc(limit=8))
        rec.update(cost=costs.get(id(o.target)), samples_s=[], rounds=[], stats=None, env=fp)
        finish(o, rec, task)

    def combined(o: _Open) -> Measurement:
        return combine_passes([o.parts[p] for p in sorted(o.parts)], precision=precision, budget_s=budget_s,
                              device=str(dev.torch_device))

    def finalize(o: _Open, fp: dict[str, Any], task, m: Measurement | None = None) -> None:
        parts = [o.parts[p] for p in sorted(o.parts)]
        m = m if m is not None else combined(o)
        rec = _base_record(run_id, o.target, dev, fp, o.how)
        cost = scale_cost(cost_of(o.target, o.how), m.batch, o.target.spec.batch)
        info = dict(parts[0].get("runtime_info") or {})
        info["workers"] = {"n": max(len(set(r["workers"])) for r in parts), "passes": len(parts),
                           "processes": m.workers, "round_s": parts[0].get("round_s"),
                           "chunks": [dict(c, **{"pass": r["pass"]}) for r in parts for c in r.get("chunks") or []]}
        st = _stats_with_flags(m, cost)
        st["passes"] = len(parts)
        rec.update(batch=m.batch, cost=cost, samples_s=m.samples_s, rounds=m.round_ids, workers=m.worker_ids,
                   passes=[int(r["pass"]) for r in parts for _ in r["samples_s"]], stats=st, env=fp,
                   runtime_info=info, faults=m.faults(), allocator_state=m.allocator)
        finish(o, rec, task)

    pools: dict[str, WorkerPool] = {}  # allocator → this pass's workers

    def close_pools() -> None:
        while pools:
            pools.popitem()[1].close()

    with stack:
        stack.callback(close_pools)
        stack.enter_context(prog)
        task = prog.add_task(f"{dev.kind} run {run_id}", total=len(todo) * passes)
        show_progress(task)
        pool_pass = -1
        for p in range(passes):
            for o in todo:
                if o.final or p in o.parts:
                    continue
                in_process = workers == 0 or o.how.runtime in IN_PROCESS_RUNTIMES
                if in_process and p > 0:
                    continue  # measured whole in pass 0
                label = o.target.spec.label + ("" if len(hows) == 1 else f" [{o.how.runtime}]")
                prog.update(task, description=(f"pass {p + 1}/{passes} " if passes > 1 and not in_process else "")
                            + label)
                fp = fingerprint(dev, o.how.threads)  # per record: load average and clocks change during a run
                t0 = time.perf_counter()
                if unavailable[o.how.runtime]:
                    fail(o, Unsupported(unavailable[o.how.runtime]), fp, task)
                    continue
                try:
                    cost = cost_of(o.target, o.how)
                    if in_process:
                        m, cost, info = _measure_one(o.target, dev, o.how, precision, budget_s, seed,
                                                     o.target.spec.batch, cost)
                        if dev.kind == "cuda":  # right after the timed blocks, as a worker does
                            info["gpu_state"] = gpu_state()
                    else:
                        if pools and pool_pass != p:
                            close_pools()  # every pass on fresh processes
                        pool = pools.get(o.how.allocator)
                        if pool is None:
                            fresh = WorkerPool(workers, allocator=o.how.allocator, device=dev.kind)
                            fresh.start()  # closes what it started if it fails; the next target retries
                            pools[o.how.allocator], pool_pass = fresh, p
                            pool = fresh
                        batch = int(o.parts[min(o.parts)]["batch"]) if o.parts else None
                        try:
                            part = _measure_pass(pool, o.target, dev, o.how, precision, budget_s, pass_budget, seed,
                                                 batch)
                        finally:
                            if o.how.allocator in FRESH_PROCESS_PER_TARGET:
                                pools.pop(o.how.allocator).close()
                except UserError:
                    raise
                except Exception as e:  # noqa: BLE001 — record the failure or the reason, go on with the suite
                    o.wall_s += time.perf_counter() - t0
                    fail(o, e, fp, task)
                    continue
                o.wall_s += time.perf_counter() - t0
                if in_process:
                    rec = _base_record(run_id, o.target, dev, fp, o.how)
                    rec.update(batch=m.batch, cost=cost, samples_s=m.samples_s, rounds=m.round_ids,
                               stats=_stats_with_flags(m, cost), env=fp, runtime_info=info, faults=m.faults(),
                               allocator_state=m.allocator)
                    finish(o, rec, task)
                    continue
                rec = _base_record(run_id, o.target, dev, fp, o.how)
                rec.update(part)
                rec.update({"status": "partial", "pass": p, "passes_planned": passes, "pass_wall_s": part["wall_s"],
                            "env": fp})
                writer.write(rec)
                o.parts[p] = rec
                show_progress(task)
                m = combined(o) if len(o.parts) >= MIN_PASSES else None
                if p == passes - 1 or (m is not None and m.stable):
                    finalize(o, fp, task, m)
        for o in todo:  # resumed with fewer passes than were stored: nothing left to measure
            if not o.final and o.parts:
                finalize(o, fingerprint(dev, o.how.threads), task)
    order = {k: i for i, k in enumerate(planned)}
    records = sorted(_results.read_records(path), key=lambda r: order.get(_results.record_key(r), len(order)))
    return RunSummary(run_id=run_id, path=path, records=records, measured=measured, skipped=skipped)


def _stats_with_flags(m: Measurement, cost: dict[str, Any]) -> dict[str, Any]:
    """The record's ``stats``: the measurement's, plus why a row is not to be trusted as is.

    ``faults_flag`` says when the timed iterations still page-fault (not a steady state, see
    :func:`fnbench.allocators.faults_flag`); ``unstable_reason`` when the CI missed the precision
    target, with the half-width reached.
    """
    st = m.to_stats()
    st["faults_flag"] = allocators.faults_flag(m.minor_faults_per_iter, cost.get("mem_bytes_counted"),
                                               (m.allocator or {}).get("name"))
    st["unstable_reason"] = None if st["stable"] else unstable_reason(st)
    return st


def unstable_reason(st: dict[str, Any]) -> str:
    """Why a row did not settle, in one phrase: the half-width reached against the target."""
    hw, target = st.get("rel_ci_halfwidth"), st.get("precision")
    if hw is None or target is None or hw != hw:
        return "too few rounds for a 95% interval"
    if hw <= target:  # within the target but short of rounds or processes
        return f"±{hw:.1%} reached with too few rounds or processes for the ±{target:.0%} target"
    return f"95% CI ±{hw:.1%} > ±{target:.0%} target within the budget"


@dataclass
class _Open:
    """A target (under one runtime) still being measured: its stored passes and whether it is done."""

    target: Target
    how: _How
    key: str
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    final: bool = False
    wall_s: float = 0.0

    def units_done(self, passes: int) -> int:
        return passes if self.final else min(len(self.parts), passes)
