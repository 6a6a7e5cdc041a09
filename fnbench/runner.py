"""Run a list of targets on one device: count, measure, append one record per target, show a table.

:func:`run_suite` is what ``fnbench run`` calls. All targets are resolved before anything is
measured, so bad input fails in a second, not after ten minutes. Each finished measurement is
appended (and fsync-ed) to ``<out_dir>/<run_id>.jsonl`` at once; ``resume=RUN_ID`` reopens that
file and measures only the targets it does not hold yet. A measurement that raises anything
other than :class:`~fnbench.errors.UserError` is recorded with ``status: failed`` and its error,
and the suite goes on.

Each target is measured across a pool of worker processes (:mod:`fnbench.workers`, 3 on CPU/ARM
and 1 on CUDA by default) in interleaved chunks of :data:`CHUNK_ROUNDS` rounds, so its interval
covers process-to-process differences too; ``workers=0`` measures in the calling process.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import counting
from . import results as _results
from .devices import Device, device_key, fingerprint, resolve_device
from .errors import UserError
from .runtimes import DTYPES, Unsupported, check_runtime, prepare
from .targets import Target, TargetSpec, resolve
from .timing import (
    _ROUNDS_PER_BUDGET,
    DEFAULT_BUDGET_S,
    DEFAULT_MIN_ROUNDS,
    DEFAULT_PRECISION,
    Measurement,
    fold_bn,
    measure,
    workers_settled,
)
from .workers import ChunkRequest, WorkerError, WorkerPool

__all__ = ["RunSummary", "run_suite", "format_table", "prepare_target", "default_workers", "DEFAULT_CUDA_BATCH",
           "DEFAULT_CPU_WORKERS"]

#: Batch used on CUDA when a spec asks for batch 1 and no override is given (paper: throughput at 32).
DEFAULT_CUDA_BATCH = 32
#: Worker processes on CPU/ARM: each target is sampled across this many fresh processes.
DEFAULT_CPU_WORKERS = 3
#: Runtimes measured in the calling process even with workers: compiling once per worker would
#: cost K compilations per target (minutes), so torch.compile keeps the in-process path.
IN_PROCESS_RUNTIMES = ("compile",)


@dataclass(frozen=True)
class _How:
    """How a target is measured, besides the device: runtime, layout, precision, threads."""

    runtime: str = "eager"
    memory_format: str = "contiguous"
    dtype: str = "float32"
    threads: int | None = 1


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
                                 dtype=how.dtype, memory_format=how.memory_format)


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
        "threads": how.threads,
    }


def _cost(target: Target, module: torch.nn.Module, x: torch.Tensor, dtype: str) -> dict[str, Any]:
    """Analytic and counted cost. Counting runs in FP32 on the CPU; byte counts scale to ``dtype``."""
    elem = torch.tensor([], dtype=DTYPES[dtype]).element_size()
    scale_bytes = elem / 4
    a = target.analytic
    cost: dict[str, Any] = {
        "params": a.params if a is not None else None,
        "macs": a.macs if a is not None else None,
        "flops": a.flops if a is not None else None,
        "mem_bytes_analytic": a.mem_bytes(elem) if a is not None else None,
        "mem_bytes_counted": None,
        "macs_counted": None,
    }
    try:
        c = counting.count(module, x)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — a counter failure must not cost the latency measurement
        cost["count_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        return cost
    cost["macs_counted"] = int(c.macs)
    cost["mem_bytes_counted"] = int(c.mem_bytes_counted * scale_bytes)
    if cost["params"] is None:
        cost["params"] = int(c.params)
    if cost["macs"] is None:  # networks: no analytic model, the counted figure is the figure
        cost["macs"] = int(c.macs)
        cost["flops"] = 2 * int(c.macs)
    return cost


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


def _scale_cost(cost: dict[str, Any], measured_batch: int, batch: int) -> dict[str, Any]:
    cost = dict(cost)
    if measured_batch != batch and cost.get("macs") is not None:
        # OOM halved the batch: the cost scales with it (it was counted at `batch`).
        f = measured_batch / batch
        for k in ("macs", "flops", "mem_bytes_analytic", "macs_counted", "mem_bytes_counted"):
            if cost.get(k) is not None:
                cost[k] = int(round(cost[k] * f))
    return cost


def _measure_one(target: Target, device: Device, how: _How, precision: float, budget_s: float,
                 seed: int, batch: int, cost: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    """Prepare ``target`` for ``how.runtime`` and measure it in this process; raise :class:`Unsupported`."""
    prepared, x = prepare_target(target, device, how, seed)
    # Eager rounds deep-copy the prepared module (fresh allocations, no re-initialisation cost);
    # the other runtimes say how to make a fresh instance.
    rebuild = None if how.runtime == "eager" else prepared.rebuild
    m = measure(prepared.module, x, device=device.torch_device, threads=how.threads, precision=precision,
                budget_s=budget_s, seed=seed, rebuild=rebuild, fold=False)
    return m, _scale_cost(cost, m.batch, batch), prepared.info


#: Rounds per chunk a worker measures before the next worker takes over.
CHUNK_ROUNDS = 2


def _measure_workers(pool: WorkerPool, target: Target, device: Device, how: _How, precision: float,
                     budget_s: float, seed: int, batch: int, cost: dict[str, Any]):
    """Measure ``target`` in interleaved chunks over the pool's workers (w0, w1, …, w0, …).

    Round ids are made unique across the whole measurement and each sample keeps its worker id.
    After every full cycle over the workers the measurement stops if the hierarchical 95 % CI is
    within ±``precision`` and every worker gave ≥ 2 rounds; it also stops when the next chunk
    would overrun ``budget_s`` (the first cycle always completes, so every worker is sampled).
    """
    k = pool.n
    round_s = max(budget_s / _ROUNDS_PER_BUDGET, 1e-3)
    chunk_budget = max(3.0 * CHUNK_ROUNDS * round_s, 0.05)
    t0 = time.perf_counter()
    deadline = t0 + budget_s
    samples: list[float] = []
    rids: list[int] = []
    wids: list[int] = []
    warm: list[int] = []
    first = None
    next_rid = 0
    last_chunk = 0.0
    cycles = 0
    chunks: list[dict[str, Any]] = []
    done = False
    while not done:
        for w in range(k):
            now = time.perf_counter()
            if cycles > 0 and (now >= deadline or now + last_chunk > deadline + 0.25 * last_chunk):
                done = True
                break
            req = ChunkRequest(target.spec, how, device.kind, chunk_budget, seed, CHUNK_ROUNDS, CHUNK_ROUNDS,
                               round_s, precision)
            res = pool.run_chunk(w, req)
            if res.status == "unsupported":
                raise Unsupported(res.error)
            if res.status != "ok":
                raise WorkerError(f"worker {w}: {res.error}", res.traceback)
            if first is None:
                first = res
            local = sorted(set(res.round_ids))
            remap = {r: next_rid + i for i, r in enumerate(local)}
            next_rid += len(local)
            samples += res.samples_s
            rids += [remap[r] for r in res.round_ids]
            wids += [w] * len(res.samples_s)
            warm += res.warmup_iters
            chunks.append({"worker": w, "pid": res.pid, "rounds": len(local), "wall_s": res.wall_s,
                           "iters_per_sample": res.iters_per_sample, "prepare_s": res.prepare_s})
            last_chunk = time.perf_counter() - now
        else:
            cycles += 1
            if workers_settled(samples, rids, wids, precision, DEFAULT_MIN_ROUNDS):
                done = True
    m = Measurement(samples_s=samples, round_ids=rids, batch=first.batch, precision=precision,
                    min_rounds=DEFAULT_MIN_ROUNDS, iters_per_sample=first.iters_per_sample, warmup_iters=warm,
                    budget_s=budget_s, wall_s=time.perf_counter() - t0, device=str(device.torch_device),
                    threads=first.threads, bn_folded=first.bn_folded, worker_ids=wids)
    m.budget_exhausted = not m.stable
    info = dict(first.runtime_info)
    info["workers"] = {"n": k, "pids": list(pool.pids), "chunk_rounds": CHUNK_ROUNDS, "round_s": round_s,
                       "cycles": cycles, "chunks": chunks}
    return m, _scale_cost(cost, m.batch, batch), info


def default_workers(device_kind: str) -> int:
    """Worker processes per run when not given: 1 on CUDA (one GPU), :data:`DEFAULT_CPU_WORKERS` elsewhere."""
    return 1 if device_kind == "cuda" else DEFAULT_CPU_WORKERS


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
) -> RunSummary:
    """Measure every spec on ``device``; append one record per target to ``<out_dir>/<run_id>.jsonl``.

    ``threads`` defaults to 1 on CPU/ARM (the paper's protocol) and is ignored on CUDA. On CUDA a
    batch-1 spec is measured at batch 32 (throughput, as the paper) unless ``batch_override``
    says otherwise. ``budget_s`` is the wall-clock budget per target; ``precision`` the target
    relative half-width of the 95 % CI. Progress (with ETA) goes to stderr.

    Each target is measured under every runtime in ``runtimes`` (``eager``, ``compile``,
    ``onnxruntime``); a runtime that cannot take a model records it as ``unsupported`` with the
    reason, and the suite goes on.

    ``workers`` worker processes (default :func:`default_workers`: 3 on CPU/ARM, 1 on CUDA) are
    started once for the run; each target is measured in interleaved chunks over them and its CI
    is the two-stage bootstrap over workers and rounds, which holds across fresh processes.
    Each record then has ``workers`` (worker id per sample, parallel to ``samples_s`` and
    ``rounds``). ``workers=0`` measures in this process (rounds of fresh allocations only), as
    does the ``compile`` runtime whatever ``workers`` says (:data:`IN_PROCESS_RUNTIMES`).
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
    if budget_s <= 0:
        raise UserError(f"budget {budget_s} s is not positive: use e.g. --budget 10")
    workers = default_workers(dev.kind) if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"workers {workers} is negative: use --workers 0 (in-process) or more")
    if not 0 < precision < 1:
        raise UserError(f"precision {precision} is not a fraction in (0, 1): use e.g. --precision 0.02 for ±2%")
    runtimes = list(dict.fromkeys(runtimes)) or ["eager"]
    for rt in runtimes:
        check_runtime(rt, dev.kind if dev.kind == "cuda" else "cpu", memory_format=memory_format, dtype=dtype)
    hows = [_How(rt, memory_format, dtype, threads) for rt in runtimes]

    def batch_for(spec: TargetSpec) -> int:
        if batch_override is not None:
            return batch_override
        return DEFAULT_CUDA_BATCH if (dev.kind == "cuda" and spec.batch == 1) else spec.batch

    from dataclasses import replace

    targets = [resolve(replace(s, batch=batch_for(s))) for s in specs]  # UserError here: nothing measured yet

    out_dir = Path(out_dir)
    if resume is not None:
        run_id = resume
        path = out_dir / f"{run_id}.jsonl"
        if not path.exists():
            raise UserError(f"no run {run_id!r} to resume: {path} does not exist; see `ls {out_dir}/`")
        done = _results.measured_keys(path)
    else:
        run_id = _results.new_run_id()
        path = out_dir / f"{run_id}.jsonl"
        done = set()
    writer = _results.ResultWriter(path)
    todo = [(t, h) for t in targets for h in hows if _key_for(t, dev, h) not in done]
    skipped = len(targets) * len(hows) - len(todo)

    err_console = console or Console(file=sys.stderr)
    prog = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=err_console, disable=not progress, transient=False,
    )
    measured = 0
    costs: dict[int, dict[str, Any]] = {}
    need_pool = workers > 0 and any(h.runtime not in IN_PROCESS_RUNTIMES for _, h in todo)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(WorkerPool(workers)) if need_pool else None
        stack.enter_context(prog)
        task = prog.add_task(f"{dev.kind} run {run_id}", total=len(todo))
        for target, how in todo:
            label = target.spec.label + ("" if len(hows) == 1 else f" [{how.runtime}]")
            prog.update(task, description=label)
            fp = fingerprint(dev, how.threads)  # per record: load average and clocks change during a run
            rec = _base_record(run_id, target, dev, fp, how)
            t0 = time.perf_counter()
            try:
                if id(target) not in costs:  # counted once per target, whatever the runtime
                    costs[id(target)] = _cost(target, target.build(seed), target.example_input("cpu", seed=seed),
                                              how.dtype)
                if pool is not None and how.runtime not in IN_PROCESS_RUNTIMES:
                    m, cost, info = _measure_workers(pool, target, dev, how, precision, budget_s, seed,
                                                     target.spec.batch, costs[id(target)])
                else:
                    m, cost, info = _measure_one(target, dev, how, precision, budget_s, seed, target.spec.batch,
                                                 costs[id(target)])
            except UserError:
                raise
            except (Unsupported, NotImplementedError) as e:
                reason = str(e) if isinstance(e, Unsupported) else f"{type(e).__name__}: {e}".splitlines()[0]
                rec.update(status="unsupported", error=reason, cost=costs.get(id(target)), samples_s=[], rounds=[],
                           stats=None, env=fp)
            except Exception as e:  # noqa: BLE001 — record the failure and go on with the suite
                error = str(e) if isinstance(e, WorkerError) else f"{type(e).__name__}: {e}".splitlines()[0]
                rec.update(status="failed", error=error,
                           traceback=getattr(e, "remote_traceback", None) or traceback.format_exc(limit=8))
                rec.update(cost=costs.get(id(target)), samples_s=[], rounds=[], stats=None, env=fp)
            else:
                rec.update(batch=m.batch, cost=cost, samples_s=m.samples_s, rounds=m.round_ids,
                           stats=m.to_stats(), env=fp, runtime_info=info)
                if m.worker_ids is not None:
                    rec["workers"] = m.worker_ids
            rec["env"]["measure_wall_s"] = time.perf_counter() - t0
            writer.write(rec)
            measured += 1
            prog.advance(task)
    return RunSummary(run_id=run_id, path=path, records=_results.read_records(path), measured=measured,
                      skipped=skipped)


def _si(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    for scale, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{p}{unit}"
    return f"{v:.3g}{unit}"


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1e3:.3f}"


def format_table(records: Sequence[dict[str, Any]], *, title: str | None = None) -> Table:
    """A rich table of records: cost, latency median with 95 % CI, throughput, GMAC/s with CI, stability.

    Rounding happens here and only here; the records keep raw seconds.
    """
    table = Table(title=title, show_lines=False)
    show_runtime = any(r.get("runtime", "eager") != "eager" or r.get("memory_format", "contiguous") != "contiguous"
                       for r in records)
    table.add_column("target")
    if show_runtime:
        table.add_column("runtime")
    table.add_column("shape")
    table.add_column("batch", justify="right")
    table.add_column("FLOPs (MACs)", justify="right")
    table.add_column("latency ms", justify="right")
    table.add_column("95% CI ms", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_column("GMAC/s", justify="right")
    table.add_column("GMAC/s 95% CI", justify="right")
    table.add_column("stable")
    for r in records:
        t = r.get("target") or {}
        opts = t.get("options") or {}
        name = t.get("name", "?") + (f"[{','.join(f'{k}={v}' for k, v in sorted(opts.items()))}]" if opts else "")
        if t.get("layers"):
            name += f" ×{t['layers']}"
        shape = "x".join(map(str, r.get("shape") or [])) or "–"
        st = r.get("stats") or {}
        status = r.get("status", "ok")
        rt = [r.get("runtime", "eager") + ("/cl" if r.get("memory_format") == "channels_last" else "")] if show_runtime else []
        if status != "ok" or not st:
            table.add_row(name, *rt, shape, str(r.get("batch", "")), "–", status, (r.get("error") or "")[:60],
                          "–", "–", "–", "[red]no[/red]")
            continue
        macs = (r.get("cost") or {}).get("macs")
        med, lo, hi = st.get("median_s"), st.get("ci95_low_s"), st.get("ci95_high_s")
        thr = r.get("batch", 1) / med if med else None
        g = (lambda t_: macs / t_ / 1e9 if (macs is not None and t_) else None)
        gm, glo, ghi = g(med), g(hi), g(lo)
        stable = "[green]yes[/green]" if st.get("stable") else "[yellow]no[/yellow]"
        table.add_row(
            name, *rt, shape, str(r.get("batch", "")), _si(macs), _ms(med),
            f"{_ms(lo)}–{_ms(hi)}" if (st.get("rounds") or 0) >= 2 else "n/a: 1 round",
            f"{thr:.1f}" if thr else "–",
            f"{gm:.2f}" if gm is not None else "–",
            f"{glo:.2f}–{ghi:.2f}" if glo is not None and ghi is not None and (st.get("rounds") or 0) >= 2 else "–",
            stable,
        )
    return table
