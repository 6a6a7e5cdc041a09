"""Run a list of targets on one device: count, measure, append one record per target.

:func:`run_suite` is what ``fnbench run`` calls. All targets are resolved before anything is
measured, so bad input fails in a second, not after ten minutes. Each finished measurement is
appended (and fsync-ed) to ``<out_dir>/<run_id>.jsonl`` at once; ``resume=RUN_ID`` reopens that
file and measures only the targets it does not hold yet. A measurement that raises anything
other than :class:`~fnbench.errors.UserError` is recorded with ``status: failed`` and its error,
and the suite goes on.

Each target is measured in several passes over the suite (:mod:`fnbench.passes`), each pass on
fresh worker processes (:mod:`fnbench.workers`), so its interval covers process-to-process
differences and the machine's drift over the minutes a run lasts; within a pass the rounds of a
group of targets are interleaved, so rows that a claim compares see the same moments. Every pass
is stored as it finishes. ``workers=0`` measures in the calling process.

The shape of a run: :func:`run_suite` resolves the options into a plan (a :class:`_Plan`: the
settings, the targets under each set of conditions), opens the results file and starts a
:class:`_Run`, which measures the targets that run in this process first (:meth:`_Run.step_whole`),
then loops over passes and groups (:meth:`_Run.step_pass`: one interleaved pass from a
:class:`Measurer`, each target's result written as a record, :mod:`fnbench.results` builds them),
and finalizes a claim's targets together once all are settled (:meth:`_Run.settle`). Printing is
the caller's: ``progress`` and ``notify`` are callbacks (:mod:`fnbench.cli.console` draws them).

Example::

    >>> from fnbench.options import RunOptions
    >>> from fnbench.suites import get_suite
    >>> summary = run_suite(get_suite("quick").specs(), RunOptions(device="cpu", budget_s=2.0))  # doctest: +SKIP
    >>> summary.path.name  # doctest: +SKIP
    '20261128T043000Z-3fa2.jsonl'
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from . import allocators
from . import results as _results
from .checks import available_memory_bytes, max_live_processes, usable_cores
from .conditions import Conditions, RunPolicy, prepare_fitting, resolve_policy
from .devices import Device, device_record, fingerprint, gpu_memory_bytes, gpu_state
from .errors import UserError, cause_first, first_line
from .measurement import Measurement
from .options import DEFAULT_WORKERS, RunOptions
from .passes import (
    DEFAULT_PASSES,
    MIN_PASSES,
    PassResult,
    PendingTarget,
    claim_components,
    combine_passes,
    effective_passes,
    interleave_groups,
    interleaved_pass,
)
from .runtimes import Unsupported, check_runtime, get_runtime, runtime_unavailable
from .target_cost import record_cost, scale_cost
from .targets import Target, TargetSpec, resolve
from .usertargets import check_runtime_for
from .workers import WorkerError, WorkerPool

__all__ = [
    "RunSummary",
    "run_suite",
    "RunSettings",
    "Measurer",
    "ProcessMeasurer",
    "measure_in_process",
    "DEFAULT_WORKERS",
    "DEFAULT_PASSES",
    "MIN_PASSES",
    "combine_passes",
    "effective_passes",
]


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


@dataclass(frozen=True)
class RunSettings:
    """What every measurement of one run shares: device, precision target, budget, passes, workers, seed."""

    device: Device
    precision: float
    budget_s: float
    passes: int
    workers: int
    seed: int = 0

    @property
    def pass_budget_s(self) -> float:
        return self.budget_s / self.passes

    def in_process(self, conditions: Conditions) -> bool:
        """Is a target under ``conditions`` measured whole in this process (in pass 0) rather than in passes?"""
        return self.workers == 0 or not get_runtime(conditions.runtime).fresh_worker


# -- taking measurements --------------------------------------------------------------------------------


def measure_in_process(
    target: Target, device: Device, conditions: Conditions, precision: float, budget_s: float, seed: int
) -> tuple[Measurement, dict[str, Any]]:
    """Prepare ``target`` for its runtime and measure it in this process; raise :class:`Unsupported`.

    Returns the measurement and the runtime's info; how rounds get a fresh instance and whether
    the batch may be halved is the runtime's (:meth:`~fnbench.runtimes.Prepared.measure`).
    """
    prepared, x, oom_batches = prepare_fitting(target, device, conditions, seed)
    m = prepared.measure(
        x,
        device=device.torch_device,
        threads=conditions.threads,
        precision=precision,
        budget_s=budget_s,
        seed=seed,
        allocator=conditions.allocator,
    )
    m.oom_batches = oom_batches + m.oom_batches
    return m, dict(prepared.info, tf32=m.tf32)


class Measurer(Protocol):
    """Takes a run's measurements: a target whole (in this process), or one interleaved pass over a group
    of targets (on fresh processes)."""

    def whole(self, pending: PendingTarget, run: RunSettings) -> tuple[Measurement, dict[str, Any]]: ...

    def one_pass(
        self,
        tasks: list[PendingTarget],
        pass_no: int,
        run: RunSettings,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, PassResult | Exception]: ...

    def close(self) -> None: ...


class ProcessMeasurer:
    """The measurer :func:`run_suite` uses unless given another.

    Whole targets are measured here (:func:`measure_in_process`); a pass over a group of targets
    runs on a :class:`~fnbench.workers.WorkerPool` of its own, ``workers`` fresh processes per
    target, each started under its target's allocator, that lives for that pass only
    (:func:`~fnbench.passes.interleaved_pass`). ``pool_factory`` and ``pass_fn`` (default
    :class:`~fnbench.workers.WorkerPool` and :func:`~fnbench.passes.interleaved_pass`) can be replaced.
    """

    def __init__(self, pool_factory: Callable[..., Any] | None = None, pass_fn: Callable[..., dict] | None = None):
        self.pool_factory = pool_factory or WorkerPool
        self.pass_fn = pass_fn or interleaved_pass

    def whole(self, pending: PendingTarget, run: RunSettings) -> tuple[Measurement, dict[str, Any]]:
        m, info = measure_in_process(
            pending.target, run.device, pending.conditions, run.precision, run.budget_s, run.seed
        )
        if run.device.kind == "cuda":  # right after the timed blocks, as a worker does
            info["gpu_state"] = gpu_state()
        return m, info

    def one_pass(
        self,
        tasks: list[PendingTarget],
        pass_no: int,
        run: RunSettings,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, PassResult | Exception]:
        allocs = [t.conditions.allocator for t in tasks for _ in range(run.workers)]
        pool = self.pool_factory(len(allocs), allocator=allocs, device=run.device.kind)
        pool.start()  # closes what it started if it fails
        try:
            return self.pass_fn(
                pool,
                tasks,
                device=run.device,
                seed=run.seed,
                pass_no=pass_no,
                budget_s=run.budget_s,
                pass_budget_s=run.pass_budget_s,
                workers=run.workers,
                concurrency=usable_cores(),
                progress=progress,
            )
        finally:
            pool.close()

    def close(self) -> None:
        pass


def _failure(e: BaseException) -> tuple[str, str, str | None]:
    """``(status, error, traceback)`` of a measurement that raised ``e``: unsupported (a reason) or failed."""
    if isinstance(e, (Unsupported, NotImplementedError)):
        return "unsupported", str(e) if isinstance(e, Unsupported) else first_line(e), None
    message = str(e) if isinstance(e, WorkerError) else first_line(e)
    return "failed", cause_first(message), getattr(e, "remote_traceback", None) or traceback.format_exc(limit=8)


# -- the run --------------------------------------------------------------------------------------------


class _Run:
    """One run in progress: its settings, its open results file, its pending targets and the costs counted."""

    def __init__(
        self,
        plan: _Plan,
        run_file: _results.RunFile,
        pending: list[PendingTarget],
        measurer: Measurer,
        progress: Callable[[str, int, int], None] | None,
    ):
        self.run_id, self.settings, self.unavailable = plan.run_id, plan.settings, plan.unavailable
        self.run_file, self.pending, self.measurer, self.progress = run_file, pending, measurer, progress
        self.label_runtime = len(plan.conditions) > 1
        self.skipped = len(plan.keys) - len(pending)
        self.measured = 0
        self._costs: dict[int, dict[str, Any]] = {}

    @classmethod
    def start(
        cls,
        plan: _Plan,
        run_file: _results.RunFile,
        cli_options: dict[str, Any] | None,
        measurer: Measurer,
        progress: Callable[[str, int, int], None] | None,
        notify: Callable[[str], None] | None,
        resume: str | None,
    ) -> _Run:
        """Open the run's file with ``plan`` (refused if a resumed plan differs) and take up its stored passes."""
        done, stored_parts = run_file.open(plan.stored, cli=cli_options)
        dev = plan.settings.device
        pending = [
            PendingTarget(t, c, _identity(t, dev, c))
            for t in plan.targets
            for c in plan.conditions
            if _identity(t, dev, c) not in done
        ]
        for task in pending:
            task.parts = {int(r["pass"]): r for r in stored_parts.get(task.key, [])}
        run = cls(plan, run_file, pending, measurer, progress)
        if notify is not None:  # before anything is measured, so an interrupted run can be resumed by its id
            notify(
                _announcement(
                    plan.run_id,
                    run_file.path,
                    pending,
                    plan.settings.passes,
                    run.skipped,
                    resume,
                    label_runtime=run.label_runtime,
                )
            )
        return run

    def loop(self) -> None:
        """The run: targets measured in this process first, then the passes, each interleaving a group's rounds."""
        settings = self.settings
        self.show(f"{settings.device.kind} run {self.run_id}")
        for task in self.pending:
            if settings.in_process(task.conditions) and task.needs_pass(0):
                self.step_whole(task)
        components, groups = self.groups([t for t in self.pending if not settings.in_process(t.conditions)])
        for pass_no in range(settings.passes):
            for group in groups:
                tasks = [t for t in group if t.needs_pass(pass_no)]
                if tasks:
                    self.step_pass(tasks, pass_no)
                    for comp in components:
                        if any(t in tasks for t in comp):
                            self.settle(comp, pass_no)
        for task in self.pending:  # resumed with fewer passes than were stored: nothing left to measure
            if not task.done and task.parts:
                self.finalize(task)

    def groups(self, tasks: list[PendingTarget]) -> tuple[list[list[PendingTarget]], list[list[PendingTarget]]]:
        """The claims' sets of targets (:func:`~fnbench.passes.claim_components`), which stop together, and the
        groups whose rounds are interleaved (:func:`~fnbench.passes.interleave_groups`); costs counted first."""
        from .verdicts import CLAIMS

        costs = {}
        for t in tasks:
            try:
                costs[t.key] = self.cost_of(t.target, t.conditions.dtype)
            except UserError:
                raise
            except Exception:  # noqa: BLE001 — the task's own step records why
                costs[t.key] = None
        components = claim_components(tasks, [c.needs for c in CLAIMS])
        groups = interleave_groups(
            components,
            costs,
            workers=self.settings.workers,
            memory_bytes=available_memory_bytes(),
            max_processes=max_live_processes(),
            device_memory_bytes=gpu_memory_bytes(self.settings.device),
        )
        return components, groups

    def cost_of(self, target: Target, dtype: str) -> dict[str, Any]:
        """Counted once per target, whatever the runtime."""
        if id(target) not in self._costs:
            seed = self.settings.seed
            module = None if target.onnx is not None else target.build(seed)
            self._costs[id(target)] = record_cost(target, module, target.example_input("cpu", seed=seed), dtype)
        return self._costs[id(target)]

    def header(self, task: PendingTarget, fp: dict[str, Any]) -> dict[str, Any]:
        """``task``'s record header (created now) for a measurement taken under the device fingerprint ``fp``."""
        spec, cond = task.target.spec, task.conditions
        head = _results.record_header(
            run_id=self.run_id,
            target=task.target.record_block(),
            batch=spec.batch,
            device=device_record(self.settings.device, fp),
            threads=cond.threads,
            allocator=cond.allocator,
            dtype=cond.dtype,
            runtime=cond.runtime,
            memory_format=cond.memory_format,
        )
        return head

    def show(self, description: str = "", fraction: float = 0.0) -> None:
        """Tell ``progress`` where the run is: units are target passes (``fraction``: of the pass under way)."""
        if self.progress is not None:
            passes = self.settings.passes
            done = sum(t.units_done(passes) for t in self.pending)
            self.progress(description, done + fraction, len(self.pending) * passes)

    def write_final(self, task: PendingTarget, rec: dict[str, Any]) -> None:
        rec["env"]["measure_wall_s"] = task.wall_s
        self.run_file.writer.write(rec)
        self.measured += 1
        task.done = True
        self.show()

    def fail(self, task: PendingTarget, e: BaseException, env: dict[str, Any]) -> None:
        """Write ``task``'s final record for a measurement that raised ``e`` (failed, or unsupported with the reason)."""
        status, error, tb = _failure(e)
        cost = self._costs.get(id(task.target))
        self.write_final(
            task,
            _results.failure_record(
                self.header(task, env), status=status, error=error, traceback=tb, cost=cost, env=env
            ),
        )

    def ready(self, task: PendingTarget) -> dict[str, Any]:
        """``task``'s cost, once its runtime is known to be available here (raises why not)."""
        if self.unavailable.get(task.conditions.runtime):
            raise Unsupported(self.unavailable[task.conditions.runtime])
        return self.cost_of(task.target, task.conditions.dtype)

    def step_whole(self, task: PendingTarget) -> None:
        """Measure ``task`` whole in this process and write its final (or failed) record."""
        run = self.settings
        self.show(task.named(self.label_runtime))
        env = fingerprint(run.device, task.conditions.threads)  # per record: load and clocks change during a run
        t0 = time.perf_counter()
        try:
            cost = self.ready(task)
            m, info = self.measurer.whole(task, run)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 — record the failure or the reason, go on with the suite
            task.wall_s += time.perf_counter() - t0
            self.fail(task, e, env)
            return
        task.wall_s += time.perf_counter() - t0
        cost = scale_cost(cost, m.batch, task.target.spec.batch)
        self.write_final(
            task, _results.measurement_record(self.header(task, env), m, cost=cost, env=env, runtime_info=info)
        )

    def step_pass(self, tasks: list[PendingTarget], pass_no: int) -> None:
        """Pass ``pass_no`` over ``tasks``, their rounds interleaved; write each task's partial record (or its failure)."""
        run = self.settings
        envs = {t.key: fingerprint(run.device, t.conditions.threads) for t in tasks}  # taken before, not during
        ready = []
        for t in tasks:
            try:
                self.ready(t)
                ready.append(t)
            except UserError:
                raise
            except Exception as e:  # noqa: BLE001
                self.fail(t, e, envs[t.key])
        head = f"pass {pass_no + 1}/{run.passes} " if run.passes > 1 else ""
        names = [t.named(self.label_runtime) for t in ready]
        self.show(head + ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else ""))
        t0 = time.perf_counter()
        results = (
            self.measurer.one_pass(ready, pass_no, run, lambda f: self.show(fraction=f * len(ready))) if ready else {}
        )
        for t in ready:
            res = results[t.key]
            if isinstance(res, Exception):
                t.wall_s += time.perf_counter() - t0
                self.fail(t, res, envs[t.key])
                continue
            t.wall_s += res.measurement.wall_s
            env = envs[t.key]
            rec = _results.partial_record(
                self.header(t, env), res.record_block(), pass_index=pass_no, passes_planned=run.passes, env=env
            )
            self.run_file.writer.write(rec)
            t.parts[pass_no] = rec
        self.show()

    def settle(self, component: list[PendingTarget], pass_no: int) -> None:
        """Finalize a claim's set of targets after ``pass_no`` if it was the last pass or every one of them has
        settled (they stop together, so that every round of one has its cycle's rounds of the others)."""
        run = self.settings
        live = [t for t in component if not t.done and t.parts]
        if not live:
            return
        last = pass_no == run.passes - 1
        kw = dict(precision=run.precision, budget_s=run.budget_s, device=str(run.device.torch_device))
        combined = {t.key: t.combined(**kw) for t in live if len(t.parts) >= MIN_PASSES}
        if last or (len(combined) == len(live) and all(m.stable for m in combined.values())):
            for t in live:
                self.finalize(t, combined.get(t.key))

    def finalize(self, task: PendingTarget, m: Measurement | None = None, env: dict[str, Any] | None = None) -> None:
        """Write ``task``'s final record from its stored passes (``m``: their combination, if already made)."""
        run = self.settings
        parts = task.ordered_parts()
        m = (
            m
            if m is not None
            else task.combined(precision=run.precision, budget_s=run.budget_s, device=str(run.device.torch_device))
        )
        env = env if env is not None else fingerprint(run.device, task.conditions.threads)
        head = self.header(task, env)
        cost = scale_cost(self.cost_of(task.target, task.conditions.dtype), m.batch, task.target.spec.batch)
        info = dict(parts[0].get("runtime_info") or {})
        info["workers"] = {
            "n": max(len(set(r["workers"])) for r in parts),
            "passes": len(parts),
            "processes": m.workers,
            "round_s": parts[0].get("round_s"),
            "chunks": [dict(c, **{"pass": r["pass"]}) for r in parts for c in r.get("chunks") or []],
        }
        self.write_final(
            task,
            _results.measurement_record(
                head,
                m,
                cost=cost,
                env=env,
                runtime_info=info,
                stats_extra={"passes": len(parts)},
            ),
        )


def run_suite(
    specs: Sequence[TargetSpec],
    options: RunOptions,
    *,
    out_dir: str | Path = "results",
    resume: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    measurer: Measurer | None = None,
) -> RunSummary:
    """Measure every spec on ``options.device``; append one record per target to ``<out_dir>/<run_id>.jsonl``.

    ``options`` (:class:`~fnbench.options.RunOptions`) say how: ``threads`` defaults to 1 on
    CPU/ARM (the paper's protocol) and is ignored on CUDA. On CUDA a batch-1 spec is measured at
    batch 32 (throughput, as the paper) unless ``options.batch`` says otherwise. ``budget_s`` is
    the wall-clock budget per target; ``precision`` the target relative half-width of the 95 % CI
    (the policy is :func:`fnbench.conditions.resolve_policy`'s). ``progress(description, done,
    total)`` is called as the run advances (units: target passes) and ``notify(line)`` with what
    the run will do, before anything is measured.

    Each target is measured under every runtime in ``runtimes`` (``eager``, ``compile``,
    ``onnxruntime``); a runtime that cannot take a model records it as ``unsupported`` with the
    reason, and the suite goes on.

    Sampling is spread over the whole run: ``passes`` passes over the suite (default 5; fewer
    when ``budget_s`` is too small to give each ≥ 0.3 s), each giving every target about
    ``budget_s / passes`` seconds of rounds on ``workers`` fresh processes of its own (default 1),
    prepared before any round is timed; the rounds of a group of targets are interleaved, one
    round of each per cycle (:func:`~fnbench.passes.interleaved_pass`). The targets a claim
    compares are in one group and stop together once every one of them has a CI within
    ±``precision`` after :data:`MIN_PASSES` passes. Each pass of a target is appended at once as
    a ``status: "partial"`` record; the target's final record, written after its last pass, holds
    every sample with ``workers`` (the process — pass and worker — of each sample), ``passes``
    (its pass) and ``cycles`` (its cycle), and its CI is the bootstrap over processes, then rounds.
    An interrupted run loses at most the pass in progress: ``resume`` reuses the stored passes.
    ``workers=0`` measures each target at once in this process (rounds of fresh allocations
    only), as does a runtime that cannot be prepared per worker (``compile``) whatever
    ``workers`` says.

    ``allocators`` (one mode or several, see :mod:`fnbench.allocators`) are a measurement condition
    like the runtime: every target is measured under each, on workers started under it, and
    every record says which (``allocator``, ``allocator_state``) with the page faults of its
    timed iterations per round (``faults``). In-process measurement can take one allocator only
    (and ``system`` not after ``tuned``), since a process cannot change its allocator back.
    The records come back in suite order (targets, then runtimes, then allocators).

    The run's file is locked while it is measured (a second process gets :class:`UserError`
    naming the holder) and its plan stored beside it; ``resume`` refuses a call whose targets,
    device, runtimes or measuring conditions differ from the plan's (:class:`fnbench.results.RunFile`).
    ``options`` are stored with the plan (its ``cli`` block) so that ``fnbench run --resume`` can
    repeat them.

    ``measurer`` takes the measurements (default :class:`ProcessMeasurer`: worker processes, or
    this process for ``workers=0``); tests give one that returns made-up samples.
    """
    plan = _make_plan(specs, options, resume)
    with contextlib.ExitStack() as stack:  # the run's file stays locked until the run ends, however it ends
        run_file = stack.enter_context(_results.RunFile(out_dir, plan.run_id, resume=resume is not None))
        run = _Run.start(plan, run_file, options.to_dict(), measurer or ProcessMeasurer(), progress, notify, resume)
        stack.callback(run.measurer.close)
        run.loop()
    order = {k: i for i, k in enumerate(plan.keys)}
    records = sorted(_results.read_records(run_file.path), key=lambda r: order.get(_results.record_key(r), len(order)))
    return RunSummary(plan.run_id, run_file.path, records, measured=run.measured, skipped=run.skipped)


@dataclass
class _Plan:
    """What a run will measure, resolved and checked before any file is touched."""

    run_id: str
    settings: RunSettings
    targets: list[Target]
    conditions: list[Conditions]
    unavailable: dict[str, str | None]  # runtime → why this machine cannot serve it
    keys: list[str]  # identity of every (target, conditions), in suite order
    stored: dict[str, Any]  # what the run file's plan holds, for --resume to compare


def _make_plan(specs: Sequence[TargetSpec], options: RunOptions, resume: str | None) -> _Plan:
    """Resolve what the run measures; raise :class:`UserError` before anything is measured.

    In one direction, each step taking only what the steps before it resolved: the device and the
    policy its kind implies (threads, batch, budget, precision, allocators:
    :func:`fnbench.conditions.resolve_policy`), then the run's settings (passes, workers), then
    the conditions every target is measured under (runtimes × allocators, checked against the
    device), then the targets at the policy's batch (checked against the runtimes), and last
    their identities (what ``--resume`` matches on).
    """
    policy = resolve_policy(
        options.device,
        threads=options.threads,
        batch=options.batch,
        budget_s=options.budget_s,
        precision=options.precision,
        allocator=options.allocators,
    )
    settings = _settings(policy, options)
    runtimes = list(dict.fromkeys(options.runtimes)) or ["eager"]
    conditions, unavailable = _conditions(policy, runtimes, options.memory_format, options.dtype, settings.workers)
    targets = [
        resolve(replace(spec, batch=policy.batch_for(spec.batch))) for spec in specs
    ]  # UserError: nothing measured
    for target in targets:
        for runtime in runtimes:
            check_runtime_for(target.spec.name, target.onnx is not None, runtime)
    # A target named twice is measured once, as a repeated --allocator or --runtime is: two final
    # records of one identity in one run share an id, and every reader refuses such a file.
    unique: dict[str, Target] = {}
    for target in targets:
        unique.setdefault(_identity(target, policy.device, conditions[0]), target)
    targets = list(unique.values())
    keys = [_identity(target, policy.device, c) for target in targets for c in conditions]
    run_id = _results.check_run_id(resume) if resume is not None else _results.new_run_id()
    return _Plan(
        run_id, settings, targets, conditions, unavailable, keys, _stored(targets, policy, runtimes, conditions, keys)
    )


def _settings(policy: RunPolicy, options: RunOptions) -> RunSettings:
    """The run's settings on ``policy``'s device: workers and passes checked, passes fitted to the budget."""
    workers = int(options.workers)
    if workers < 0:
        raise UserError(f"workers {workers} is negative: use --workers 0 (in-process) or more")
    if int(options.passes) < 1:
        raise UserError(f"passes {options.passes} is not positive: use --passes 1 or more")
    passes = effective_passes(options.passes, policy.budget_s) if workers > 0 else 1
    return RunSettings(policy.device, policy.precision, policy.budget_s, passes, workers, options.seed)


def _stored(
    targets: list[Target], policy: RunPolicy, runtimes: list[str], conditions: list[Conditions], keys: list[str]
) -> dict[str, Any]:
    """What the run file's plan holds, for ``--resume`` to compare."""
    shared = {
        f: list(dict.fromkeys(getattr(c, f) for c in conditions)) for f in asdict(conditions[0]) if f != "runtime"
    }
    stored = {
        "targets": [target.spec.label for target in targets],
        "device": policy.device.kind,
        "runtimes": list(runtimes),
        **{f: v[0] if len(v) == 1 else v for f, v in shared.items()},
        "keys": keys,
    }
    sources = [f"{t.spec.name} sha256 {t.spec.digest[:12]}" for t in targets if t.spec.digest]
    if sources:  # an edited user file: --resume says which one differs
        stored["sources"] = sources
    return stored


def _conditions(
    policy: RunPolicy, runtimes: list[str], memory_format: str, dtype: str, workers: int
) -> tuple[list[Conditions], dict[str, str | None]]:
    """Every set of conditions the run measures each target under (runtimes × allocators), checked
    against ``policy``'s device; also, per runtime, why this machine cannot serve it (None where it can)."""
    kind = "cuda" if policy.device.kind == "cuda" else "cpu"  # what the runtimes know: an ARM core is a CPU
    for runtime in runtimes:
        check_runtime(runtime, kind, memory_format=memory_format, dtype=dtype)
    # A runtime this machine cannot serve (ONNX Runtime without its CUDA provider) costs only its own
    # rows, recorded as unsupported with the reason; a run left with no runtime at all is refused.
    unavailable = {runtime: runtime_unavailable(runtime, kind, dtype=dtype) for runtime in runtimes}
    if all(unavailable.values()):
        raise UserError(unavailable[runtimes[0]])
    in_process = [workers == 0 or not get_runtime(runtime).fresh_worker for runtime in runtimes]
    if len(policy.allocators) > 1 and any(in_process):
        raise UserError(
            "several allocators need worker processes (a process cannot change its allocator back): "
            "drop --workers 0 / the compile runtime, or give one --allocator"
        )
    if all(in_process):
        for allocator in policy.allocators:
            if allocator in allocators.LIBRARIES and allocator not in allocators.loaded_libraries():
                raise UserError(
                    f"--allocator {allocator} in this process needs {allocators.LIBRARIES[allocator][0]} preloaded "
                    f"(LD_PRELOAD); measure on worker processes (--workers 1) instead"
                )
    conditions = [
        policy.conditions(runtime, memory_format, dtype, allocator)
        for runtime in runtimes
        for allocator in policy.allocators
    ]
    return conditions, unavailable


def _identity(target: Target, device: Device, cond: Conditions) -> str:
    spec = target.spec
    return _results.identity_key(
        name=spec.name,
        shape=spec.shape,
        layers=spec.layers,
        options=spec.options_dict(),
        batch=spec.batch,
        device_kind=device.kind,
        runtime=cond.runtime,
        threads=cond.threads,
        dtype=cond.dtype,
        memory_format=cond.memory_format,
        allocator=cond.allocator,
        digest=spec.digest,
    )


def _announcement(
    run_id: str,
    path: Path,
    pending: list[PendingTarget],
    passes: int,
    skipped: int,
    resume: str | None,
    *,
    label_runtime: bool,
) -> str:
    """What the run will do, in a line or two: how much, where, how to resume it."""
    text = (
        f"run {run_id}: {len(pending)} to measure in {passes} pass{'es' if passes > 1 else ''}, "
        f"writing {path} (resume with --resume {run_id})"
    )
    if resume is not None:
        text += f"\nresuming: {skipped} already measured; finishing " + (
            ", ".join(
                task.named(label_runtime) + (f" ({len(task.parts)} pass(es) stored)" if task.parts else "")
                for task in pending
            )
            or "nothing"
        )
    return text
