"""Run a list of targets on one device: count, measure, append one record per target, show a table.

:func:`run_suite` is what ``fnbench run`` calls. All targets are resolved before anything is
measured, so bad input fails in a second, not after ten minutes. Each finished measurement is
appended (and fsync-ed) to ``<out_dir>/<run_id>.jsonl`` at once; ``resume=RUN_ID`` reopens that
file and measures only the targets it does not hold yet. A measurement that raises anything
other than :class:`~fnbench.errors.UserError` is recorded with ``status: failed`` and its error,
and the suite goes on.

Example::

    >>> from fnbench.suites import get_suite
    >>> summary = run_suite(get_suite("quick").specs(), budget_s=2.0, progress=False)  # doctest: +SKIP
    >>> summary.path.name  # doctest: +SKIP
    '20261128T043000Z-3fa2.jsonl'
"""

from __future__ import annotations

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

from . import results as _results
from .devices import Device, device_key, fingerprint, resolve_device
from .errors import UserError
from .runtimes import DTYPES, Unsupported, check_runtime, prepare
from .targets import Target, TargetSpec, resolve
from .timing import DEFAULT_BUDGET_S, DEFAULT_PRECISION, Measurement, fold_bn, measure

__all__ = ["RunSummary", "run_suite", "format_table", "DEFAULT_CUDA_BATCH"]

#: Batch used on CUDA when a spec asks for batch 1 and no override is given (paper: throughput at 32).
DEFAULT_CUDA_BATCH = 32


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
        from .counting import count

        c = count(module, x)
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


def _measure_one(target: Target, device: Device, how: _How, precision: float, budget_s: float,
                 seed: int, batch: int, cost: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    """Prepare ``target`` for ``how.runtime`` and measure it; raise :class:`Unsupported` if it cannot run.

    BN is folded into the convs before the runtime sees the model (the paper's protocol), so
    eager, compiled and exported models compute the same folded network.
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
    # Eager rounds deep-copy the prepared module (fresh allocations, no re-initialisation cost);
    # the other runtimes say how to make a fresh instance.
    rebuild = None if how.runtime == "eager" else prepared.rebuild
    m = measure(prepared.module, x, device=device.torch_device, threads=how.threads, precision=precision,
                budget_s=budget_s, seed=seed, rebuild=rebuild, fold=False)
    cost = dict(cost)
    if m.batch != batch and cost.get("macs") is not None:
        # OOM halved the batch: the cost scales with it (it was counted at `batch`).
        f = m.batch / batch
        for k in ("macs", "flops", "mem_bytes_analytic", "macs_counted", "mem_bytes_counted"):
            if cost.get(k) is not None:
                cost[k] = int(round(cost[k] * f))
    return m, cost, prepared.info


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
) -> RunSummary:
    """Measure every spec on ``device``; append one record per target to ``<out_dir>/<run_id>.jsonl``.

    ``threads`` defaults to 1 on CPU/ARM (the paper's protocol) and is ignored on CUDA. On CUDA a
    batch-1 spec is measured at batch 32 (throughput, as the paper) unless ``batch_override``
    says otherwise. ``budget_s`` is the wall-clock budget per target; ``precision`` the target
    relative half-width of the 95 % CI. Progress (with ETA) goes to stderr.

    Each target is measured under every runtime in ``runtimes`` (``eager``, ``compile``,
    ``onnxruntime``); a runtime that cannot take a model records it as ``unsupported`` with the
    reason, and the suite goes on.
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
    with prog:
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
                m, cost, info = _measure_one(target, dev, how, precision, budget_s, seed, target.spec.batch,
                                             costs[id(target)])
            except UserError:
                raise
            except (Unsupported, NotImplementedError) as e:
                reason = str(e) if isinstance(e, Unsupported) else f"{type(e).__name__}: {e}".splitlines()[0]
                rec.update(status="unsupported", error=reason, cost=costs.get(id(target)), samples_s=[], rounds=[],
                           stats=None, env=fp)
            except Exception as e:  # noqa: BLE001 — record the failure and go on with the suite
                rec.update(status="failed", error=f"{type(e).__name__}: {e}".splitlines()[0],
                           traceback=traceback.format_exc(limit=8))
                rec.update(cost=costs.get(id(target)), samples_s=[], rounds=[], stats=None, env=fp)
            else:
                rec.update(batch=m.batch, cost=cost, samples_s=m.samples_s, rounds=m.round_ids,
                           stats=m.to_stats(), env=fp, runtime_info=info)
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
            name, *rt, shape, str(r.get("batch", "")), _si(macs), _ms(med), f"{_ms(lo)}–{_ms(hi)}",
            f"{thr:.1f}" if thr else "–",
            f"{gm:.2f}" if gm is not None else "–",
            f"{glo:.2f}–{ghi:.2f}" if glo is not None and ghi is not None else "–",
            stable,
        )
    return table
