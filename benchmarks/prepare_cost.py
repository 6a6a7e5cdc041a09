"""Where a fresh worker's first chunk goes: start-up, imports, preparation, warm-up, rounds.

``fnbench run`` measures each target in passes; every pass forks fresh workers from a fork server
that preloaded ``torch`` and ``fnbench.workers`` (:func:`fnbench.workers._context`), and a
worker's chunk budget covers preparing the target as well as timing it. This script forks workers
the same way and runs the real chunk path (:func:`fnbench.workers._handle`, hence ``_prepare``,
:func:`fnbench.conditions.prepare_fitting`, the eager runtime and :func:`fnbench.timing.measure`),
with every stage wrapped in a timer inside the worker:

- process start (fork server → worker function) and the allocator set-up before "ready";
- every first import, timed where it happens (``importlib._bootstrap._find_and_load``, which every
  import statement, ``import_module`` and C-level import goes through, is wrapped; the outermost
  module loaded names it) and charged to no stage;
- ``targets.resolve`` (its meta-device shape check apart), ``resolve_device``, ``Target.build``,
  ``fold_bn``, the input, the runtime's prepare (``_place``);
- in ``measure``: the per-round ``copy.deepcopy``, round 0's first forward and the rest of its
  warm-up to steady state, later rounds' ``_warm_briefly``, ``reference_s()``, the timed blocks,
  ``gc.collect(1)`` and what is left (the round loop); the automatic collections (``gc.callbacks``)
  and their page faults;
- after the chunk (not part of it): ``_fold_checked`` on an unfolded build and a full ``gc.collect()``.

Each target (fasternet_t0, mobilevit_xxs and mobilenetv2 from the ``default`` suite; conv at
768x7x7 from ``table1``) gets fresh workers under five set-ups, the specs resolved in this process
first as the runner does (so a network's spec carries its shape):

- **base**: fnbench's own fork server, as ``make run`` forks workers;
- **(a) preload**: a fork server that also imported what the base workers imported while preparing
  (the first imports of 10 ms or more: torch._dynamo, sympy via symbolic_shapes, timm, …) and
  timm, torchvision and operators;
- **(a)+gc.freeze**: (a), then ``gc.freeze()`` in the fork server, so that a worker's collections
  do not traverse (and copy on write) the objects it inherited;
- **(b) prebuilt**: (a)+gc.freeze with the target resolved, built and BN-folded in the fork server,
  so that the worker inherits it (one server per target);
- **(c) no recheck**: base, but the network's spec is sent without its shape, so the worker's
  ``resolve`` does not re-run the meta-device shape check that the parent already ran (FasterNet
  only: building a timm network imports timm, which loads what the check would).

After one base worker per target (whose imports decide what (a) preloads), the set-ups take
turns worker by worker, target by target, so that the machine's drift falls on all alike. The
A/B table compares (a)+gc.freeze with (b), which differ only in where the module was built
(forked A/B/A/B with the others in between): steady-state latency
(also divided by each worker's ``reference_s()``), round medians and the minor page faults of the
set-up and of the first timed rounds. Chunks have make run's budget (``--budget 6`` over 5 passes:
1.2 s per chunk, rounds of 0.24 s, preparation included). Figures are medians over fresh workers;
a shared machine makes them indicative, and the load average is printed.

Run from the repository root (two to three minutes on a 2-core VM)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/prepare_cost.py [--reps 3] [--targets fasternet_t0 conv]

It reaches into fnbench's private functions (``workers._handle``, ``timing._warm_up``, …) to time
them in place; a rename there breaks it loudly rather than silently.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import threading
import time
from dataclasses import astuple, replace
from typing import Any

_SERVER_ENV = "PREPARE_COST_SERVER"
#: Set in a fork server this script started (``_server_setup``): its start-up and what it prebuilt.
_SERVER: dict[str, Any] | None = None
_PREBUILT: dict[str, Any] | None = None

NETWORKS = ("fasternet_t0", "mobilevit_xxs", "mobilenetv2")
CONV = ("conv", (768, 7, 7))
#: make run: --budget 6, 5 passes, 1 worker, precision 0.05 → 1.2 s chunks of 0.24 s rounds.
CHUNK_BUDGET_S = 1.2
ROUND_S = 6.0 / 25
PRECISION = 0.05
#: A first import shorter than this is not preloaded in (a) / (b).
PRELOAD_MIN_S = 0.01


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _status(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


# -- inside a worker: spans ------------------------------------------------------------------


class _Spans:
    """Nested timed spans: each records its inclusive and exclusive seconds and minor faults."""

    def __init__(self) -> None:
        self.stack: list[list] = []  # [name, child_s, child_faults, extra]
        self.done: list[tuple[str, float, float, int, dict]] = []  # name, incl, excl, excl faults, extra

    @contextlib.contextmanager
    def span(self, name: str, extra: dict | None = None):
        frame = [name, 0.0, 0, extra if extra is not None else {}]
        self.stack.append(frame)
        f0, t0 = _minflt(), time.perf_counter()
        try:
            yield frame[3]
        finally:
            dt, df = time.perf_counter() - t0, _minflt() - f0
            self.stack.pop()
            self.add(frame[0], dt, df, frame[1], frame[2], frame[3])

    def add(self, name: str, dt: float, df: int, child_s: float = 0.0, child_f: int = 0, extra=None) -> None:
        if self.stack:
            self.stack[-1][1] += dt
            self.stack[-1][2] += df
        self.done.append((name, dt, dt - child_s, df - child_f, extra if extra is not None else {}))


_SPANS = _Spans()
_WARM_LOG: list | None = None
#: Automatic collections in the worker: (generation, seconds, minor faults, the stage it fell in).
_GC_LOG: list[tuple[int, float, int, str]] = []


def _track_gc() -> None:
    import gc

    started: list = []

    def callback(phase, info):
        if phase == "start":
            started[:] = [time.perf_counter(), _minflt()]
        elif started:
            where = _SPANS.stack[-1][0] if _SPANS.stack else "-"
            _GC_LOG.append((info["generation"], time.perf_counter() - started[0], _minflt() - started[1], where))

    gc.callbacks.append(callback)


def _track_imports() -> None:
    """Time every outermost module load as a span named after the module.

    ``importlib._bootstrap._find_and_load`` is where every import statement, ``import_module``
    and C-level import loads a module that is not in ``sys.modules`` yet.
    """
    import importlib._bootstrap as bootstrap

    original = bootstrap._find_and_load
    depth = [0]

    def tracked(name, import_):
        depth[0] += 1
        if depth[0] > 1:
            try:
                return original(name, import_)
            finally:
                depth[0] -= 1
        n0, f0, t0 = len(sys.modules), _minflt(), time.perf_counter()
        try:
            return original(name, import_)
        finally:
            depth[0] = 0
            _SPANS.add(
                "import " + name, time.perf_counter() - t0, _minflt() - f0, extra={"modules": len(sys.modules) - n0}
            )

    bootstrap._find_and_load = tracked


def _wrap(owner: Any, attr: str, name: str, *, replacement=None) -> None:
    inner = replacement or getattr(owner, attr)

    def wrapped(*args, **kwargs):
        with _SPANS.span(name):
            return inner(*args, **kwargs)

    setattr(owner, attr, wrapped)


def _install(variant: str) -> None:
    """Wrap the stages of a chunk in spans (and, for (b), hand out the inherited target and module)."""
    import copy
    import types

    from fnbench import allocators, conditions, devices, runtimes, targets, timing, workers

    resolve, build = targets.resolve, targets.Target.build
    if variant == "b":
        pre = _PREBUILT

        def resolve(spec, *, check=True, _resolve=resolve):  # noqa: ANN001 — the inherited target for its own spec
            return pre["target"] if spec == pre["target"].spec else _resolve(spec, check=check)

        def build(self, seed=0, _build=build):  # noqa: ANN001 — the inherited module, once
            if self is pre["target"] and not pre.get("handed_out"):
                pre["handed_out"] = True
                return pre["built"]
            return _build(self, seed)

    _wrap(targets, "resolve", "targets.resolve", replacement=resolve)
    _wrap(targets, "_try_on_meta", "targets.resolve: meta shape check")
    _wrap(devices, "resolve_device", "resolve_device")
    _wrap(conditions, "prepare_fitting", "prepare_fitting: rest")
    _wrap(targets.Target, "build", "target.build", replacement=build)
    _wrap(targets.Target, "example_input", "input")
    _wrap(conditions, "fold_bn", "fold_bn")
    _wrap(conditions, "prepare", "runtime prepare: rest")
    _wrap(runtimes, "_place", "runtime prepare: _place")
    _wrap(runtimes.Prepared, "measure", "measure: round loop (input clone, .to, …)")
    _wrap(allocators, "state", "measure: allocators.state")
    _wrap(timing, "reference_s", "reference_s()")
    _wrap(timing, "_sample_round", "timed blocks")
    _wrap(timing, "rounds_settled", "stopping rule")
    _wrap(workers, "_handle", "_handle: rest")

    deepcopy = copy.deepcopy
    seen_warm = [False]

    def counted_deepcopy(obj, memo=None):
        with _SPANS.span("rounds>0: deepcopy" if seen_warm[0] else "round 0: deepcopy"):
            return deepcopy(obj, memo)

    timing.copy = types.SimpleNamespace(deepcopy=counted_deepcopy)

    def warm(fn, name):
        def wrapped(*args, **kwargs):
            global _WARM_LOG
            seen_warm[0] = True
            _WARM_LOG = []
            with _SPANS.span(name) as extra:
                times = fn(*args, **kwargs)
            extra["iters"], _WARM_LOG = _WARM_LOG, None
            return times

        return wrapped

    timing._warm_up = warm(timing._warm_up, "round 0: warm-up")
    timing._warm_briefly = warm(timing._warm_briefly, "rounds>0: _warm_briefly")
    make_timer = timing.make_timer

    def logged_make_timer(clock, sync):
        timer = make_timer(clock, sync)

        def logged(step, iters):
            if _WARM_LOG is None:
                return timer(step, iters)
            f0 = _minflt()
            dt = timer(step, iters)
            _WARM_LOG.append((dt, _minflt() - f0))
            return dt

        return logged

    timing.make_timer = logged_make_timer
    gc_module = workers.gc

    def collect(*args):
        with _SPANS.span(f"gc.collect({', '.join(map(str, args))})"):
            return gc_module.collect(*args)

    workers.gc = types.SimpleNamespace(collect=collect)


def _extras(req) -> dict[str, Any]:
    """After the chunk: ``_fold_checked`` on a fresh unfolded build, and a full collection."""
    import gc

    import torch

    from fnbench import targets, timing

    out: dict[str, Any] = {}
    target = targets.resolve(req.spec)
    torch.set_num_threads(1)
    m = target.build(req.seed)
    x = target.example_input(seed=req.seed)
    f0, t0 = _minflt(), time.perf_counter()
    _, folded = timing._fold_checked(m, x, lambda: target.build(req.seed))
    out["fold_checked_s"], out["fold_checked_bns"] = time.perf_counter() - t0, folded
    del m, x
    f0, t0 = _minflt(), time.perf_counter()
    gc.collect()
    out["gc_full_s"], out["gc_full_faults"] = time.perf_counter() - t0, _minflt() - f0
    return out


def _child(conn, parent_pid: int, variant: str) -> None:
    """A worker as :func:`fnbench.workers._serve` runs one, with its stages timed."""
    t_entry, f_entry = time.perf_counter(), _minflt()
    _track_imports()
    _track_gc()
    from fnbench import allocators, workers

    info = {
        "t_entry": t_entry,
        "faults_at_entry": f_entry,
        "rss_kb": _status("VmRSS"),
        "modules": len(sys.modules),
        "operators_loaded": "operators" in sys.modules,
        "server_threads": _status("Threads", os.getppid()),
        "server_rss_kb": _status("VmRSS", os.getppid()),
        "server": _SERVER,
        "prebuilt": _PREBUILT is not None and "built" in _PREBUILT,
    }
    threading.Thread(
        target=workers._watch_parent, args=(parent_pid, os.getppid()), daemon=True, name="parent-watch"
    ).start()
    allocators.apply("tuned")
    import torch  # noqa: F401 — as _serve does

    info["t_ready"] = time.perf_counter()
    conn.send(("ready", os.getpid(), info))
    req, extras = conn.recv()
    info["t_request"] = time.perf_counter()
    _install(variant)
    res = workers._handle(0, req, {})
    info["t_done"] = time.perf_counter()
    info["faults_chunk"] = _minflt() - f_entry
    info["gc"] = list(_GC_LOG)
    spans = list(_SPANS.done)
    if extras and res.status == "ok":
        info["extras"] = _extras(req)
    info["extras_s"] = time.perf_counter() - info["t_done"]
    conn.send((res, spans, info))
    conn.recv()  # the parent's "bye"


def _ping(conn) -> None:
    """Report the fork server's start-up, and its threads and RSS as the server forks (seen from here)."""
    server = os.getppid()
    conn.send(
        dict(
            _SERVER or {},
            prebuilt=_PREBUILT is not None,
            threads=_status("Threads", server),
            rss_kb=_status("VmRSS", server),
        )
    )


# -- inside a fork server this script started --------------------------------------------------


def _server_setup() -> None:
    """Run when a fork server preloads this module: import what it is told, maybe build a target."""
    global _SERVER, _PREBUILT
    import importlib

    import torch

    from fnbench import allocators
    from fnbench.targets import TargetSpec, resolve
    from fnbench.timing import fold_bn

    cfg = json.loads(os.environ[_SERVER_ENV])
    server: dict[str, Any] = {"launched": cfg["launched"], "base_imports_done": time.perf_counter(), "imports": {}}
    for name in cfg["imports"]:
        t0 = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 — reported, the server keeps going
            server.setdefault("import_errors", {})[name] = repr(e)
        server["imports"][name] = time.perf_counter() - t0
    server["imports_done"] = time.perf_counter()
    if cfg.get("prebuild"):
        name, shape, batch, layers, options, digest = cfg["prebuild"]
        spec = TargetSpec(name, tuple(shape) if shape else None, batch, layers, tuple(map(tuple, options)), digest)
        allocators.apply("tuned")  # what the workers apply too, before they build
        prev = torch.get_num_threads()
        torch.set_num_threads(1)  # as prepare_target builds; no forward runs here
        try:
            t0 = time.perf_counter()
            target = resolve(spec)
            t1 = time.perf_counter()
            module = target.build(cfg["seed"])
            folded = fold_bn(module)
            t2 = time.perf_counter()
        finally:
            torch.set_num_threads(prev)
        _PREBUILT = {"target": target, "built": module, "folded": folded}
        server.update(resolve_s=t1 - t0, build_fold_s=t2 - t1)
    if cfg.get("freeze"):
        import gc

        gc.collect()
        gc.freeze()  # inherited objects out of the children's collections: no traversal, no copy-on-write
        server["frozen"] = gc.get_freeze_count()
    server["ready"] = time.perf_counter()
    _SERVER = server


if os.environ.get(_SERVER_ENV) and __name__ != "__main__":
    _server_setup()


# -- in the parent ------------------------------------------------------------------------------


class _Server:
    """A fork server of our own (fnbench's ``_started_under`` swaps servers the same way)."""

    def __init__(self, imports: list[str], prebuild=None, *, freeze: bool = False, seed: int = 0):
        from multiprocessing import forkserver

        from fnbench.workers import _PRELOAD

        self.server = forkserver.ForkServer()
        self.server.set_forkserver_preload([*_PRELOAD, "prepare_cost"])
        cfg = {"launched": time.perf_counter(), "imports": imports, "seed": seed, "freeze": freeze}
        if prebuild is not None:
            cfg["prebuild"] = list(astuple(prebuild))
        saved = os.environ.get("PYTHONPATH")
        here = os.path.dirname(os.path.abspath(__file__))
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, saved) if p)
        os.environ[_SERVER_ENV] = json.dumps(cfg)
        try:
            self.server.ensure_running()  # the server process inherits this environment
        finally:
            del os.environ[_SERVER_ENV]
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved

    @contextlib.contextmanager
    def selected(self):
        from multiprocessing import forkserver

        saved = forkserver.connect_to_new_process
        forkserver.connect_to_new_process = self.server.connect_to_new_process
        try:
            yield
        finally:
            forkserver.connect_to_new_process = saved

    def ping(self) -> dict[str, Any]:
        """Fork one process that only reports the server's start-up: waits until the server is ready."""
        import prepare_cost

        from fnbench.workers import _context, _main_not_rerun

        ctx = _context()
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        p = ctx.Process(target=prepare_cost._ping, args=(child_conn,), daemon=True)
        with _main_not_rerun(), self.selected():
            p.start()
        child_conn.close()
        info = parent_conn.recv()
        p.join(10)
        return info

    def stop(self) -> None:
        self.server._stop()


def _run_worker(spec, variant: str, server: _Server | None, *, budget_s: float, extras: bool) -> dict[str, Any]:
    """Fork one worker, send it one chunk, collect its stage spans."""
    import prepare_cost  # this file as a module, so the worker unpickles its function from it

    from fnbench.conditions import Conditions
    from fnbench.workers import ChunkRequest, _context, _main_not_rerun

    ctx = _context()
    parent_conn, child_conn = ctx.Pipe(duplex=True)
    p = ctx.Process(target=prepare_cost._child, args=(child_conn, os.getpid(), variant), daemon=True)
    with _main_not_rerun(), server.selected() if server else contextlib.nullcontext():
        t_spawn = time.perf_counter()
        p.start()
    child_conn.close()
    try:
        if not parent_conn.poll(180):
            raise RuntimeError(f"{variant} worker did not start")
        _tag, pid, info = parent_conn.recv()
        req = ChunkRequest(spec, Conditions(), "cpu", budget_s, 0, 500, 500, ROUND_S, PRECISION)
        parent_conn.send((req, extras))
        res, spans, info2 = parent_conn.recv()
        t_answer = time.perf_counter()
        parent_conn.send("bye")
    finally:
        p.join(10)
        if p.is_alive():
            p.terminate()
            p.join(5)
    info.update(info2)
    if res.status != "ok":
        raise RuntimeError(f"{spec.label} ({variant}): {res.status}: {res.failure.error}\n{res.failure.traceback}")
    info.update(t_spawn=t_spawn, t_answer=t_answer, res=res, spans=spans, variant=variant, pid=pid)
    return info


# -- stages of one worker ------------------------------------------------------------------------


def _stages(w: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage (exclusive of nested stages and of imports), in table order."""
    rows: dict[str, float] = {}

    def add(name, s):
        rows[name] = rows.get(name, 0.0) + s

    add("process start (fork server → worker)", w["t_entry"] - w["t_spawn"])
    add("allocator, parent watch, ready", w["t_ready"] - w["t_entry"])
    add("ready → request (pipe)", w["t_request"] - w["t_ready"])
    for name, _incl, excl, _f, extra in w["spans"]:
        if name.startswith("import "):
            add(name, excl)
        elif name.endswith("warm-up") or name.endswith("_warm_briefly"):
            first = extra["iters"][0][0] if extra.get("iters") else 0.0
            what = "round 0" if name.startswith("round 0") else "rounds>0"
            add(f"{what}: first forward", first)
            add(f"{what}: rest of warm-up", excl - first)
        else:
            add(name, excl)
    add("answer (pickle, pipe)", w["t_answer"] - w["t_done"] - w["extras_s"])
    rows["total (spawn → answer)"] = w["t_answer"] - w["t_spawn"] - w["extras_s"]
    return rows


_ORDER = [
    "process start (fork server → worker)",
    "allocator, parent watch, ready",
    "ready → request (pipe)",
    "gc.collect(1)",
    "IMPORTS",
    "targets.resolve",
    "targets.resolve: meta shape check",
    "resolve_device",
    "target.build",
    "fold_bn",
    "input",
    "runtime prepare: _place",
    "runtime prepare: rest",
    "prepare_fitting: rest",
    "measure: allocators.state",
    "round 0: deepcopy",
    "round 0: first forward",
    "round 0: rest of warm-up",
    "rounds>0: deepcopy",
    "rounds>0: first forward",
    "rounds>0: rest of warm-up",
    "reference_s()",
    "timed blocks",
    "stopping rule",
    "measure: round loop (input clone, .to, …)",
    "_handle: rest",
    "answer (pickle, pipe)",
]


def _med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def _worker_facts(w: dict[str, Any]) -> dict[str, Any]:
    """Warm-up, steady state, first rounds, page faults and collections of one worker's chunk."""
    import numpy as np

    res = w["res"]
    m = res.measurement
    samples, rids = np.asarray(m.samples_s), np.asarray(m.round_ids)
    rounds = sorted(set(m.round_ids))
    meds = [float(np.median(samples[rids == r])) for r in rounds]
    warm0 = next((e for n, _i, _x, _f, e in w["spans"] if n == "round 0: warm-up"), {})
    later = [e for n, _i, _x, _f, e in w["spans"] if n == "rounds>0: _warm_briefly"]
    fpi = [f / max(i, 1) for f, i in zip(m.counts.minor, m.counts.iters)]
    set_up = ("round 0: deepcopy", "round 0: warm-up", "runtime prepare: _place", "input")
    gcs = w.get("gc") or []
    return {
        "samples": len(m.samples_s),
        "rounds": len(rounds),
        "steady": float(np.median(meds)) if meds else None,
        "steady_per_ref": float(np.median(meds) / np.median(m.counts.ref_s)) if meds and m.counts.ref_s else None,
        "r0_over_later": meds[0] / float(np.median(meds[1:])) if len(meds) > 1 else None,
        "r0": meds[0] if meds else None,
        "r1": meds[1] if len(meds) > 1 else None,
        "rest": float(np.median(meds[2:])) if len(meds) > 2 else None,
        "warm_iters": len(warm0.get("iters", [])),
        "first_fwd": warm0["iters"][0][0] if warm0.get("iters") else None,
        "first_fwd_later": _med([e["iters"][0][0] for e in later if e.get("iters")]),
        "first_fwd_faults": warm0["iters"][0][1] if warm0.get("iters") else None,
        "set_up_faults": sum(f for n, _i, _x, f, _e in w["spans"] if n in set_up),
        "fpi_r0": fpi[0] if fpi else None,
        "fpi_r1": fpi[1] if len(fpi) > 1 else None,
        "fpi_rest": _med(fpi[2:]) if len(fpi) > 2 else None,
        "faults_chunk": w["faults_chunk"],
        "gc_n": len(gcs),
        "gc2_n": sum(1 for g in gcs if g[0] == 2),
        "gc_s": sum(g[1] for g in gcs),
        "gc_faults": sum(g[2] for g in gcs),
        "gc_deepcopy_s": sum(g[1] for g in gcs if g[3].endswith("deepcopy")),
        "start_s": w["t_entry"] - w["t_spawn"],
        "prepare_s": res.prepare_s,
        "rss_mb": w["rss_kb"] / 1024,
    }


# -- printing ------------------------------------------------------------------------------------

VARIANTS = [
    ("base", "base"),
    ("a", "(a) preload"),
    ("f", "(a)+gc.freeze"),
    ("b", "(b) prebuilt"),
    ("c", "(c) no recheck"),
]


def _fmt(x, scale=1.0, digits=2, unit="") -> str:
    return "-" if x is None or x != x else f"{scale * x:.{digits}f}{unit}"


def _stage_table(label: str, runs: dict[str, list[dict]]) -> list[str]:
    variants = [(v, h) for v, h in VARIANTS if runs.get(v)]
    per = {v: [_stages(w) for w in runs[v]] for v, _ in variants}
    names = {n for rows in per.values() for r in rows for n in r}

    def med(v, n):
        return _med([r.get(n, 0.0) for r in per[v]])

    imports = sorted((n for n in names if n.startswith("import ")), key=lambda n: -max(med(v, n) for v, _ in variants))
    big = [n for n in imports if max(med(v, n) for v, _ in variants) >= 0.005]
    small = [n for n in imports if n not in big]
    for rows in per.values():
        for r in rows:
            r["imports: other"] = sum(r.get(n, 0.0) for n in small)
    order: list[str] = []
    for n in _ORDER:
        if n == "IMPORTS":
            order += big + (["imports: other"] if small else [])
        elif n in names:
            order.append(n)
    totals = {v: med(v, "total (spawn → answer)") for v, _ in variants}
    n_min = min(len(per[v]) for v, _ in variants)
    out = [f"== {label}: seconds per fresh worker, median of {n_min}+ workers per column ==", ""]
    out[-1] = f"{'stage':<44}" + "".join(f"{h:>17}" for _, h in variants)
    for n in order:
        vals = {v: med(v, n) for v, _ in variants}
        if max(vals.values()) < 0.0005:
            continue
        cells = "".join(f"{vals[v]:>10.3f}{100 * vals[v] / totals[v]:>6.1f}%" for v, _ in variants)
        out.append(f"{n[:44]:<44}{cells}")
    out.append(f"{'total (spawn → answer)':<44}" + "".join(f"{totals[v]:>10.3f}{'':>7}" for v, _ in variants))
    facts = {v: [_worker_facts(w) for w in runs[v]] for v, _ in variants}

    def line(title, key, **fmt):
        out.append(
            f"{title:<44}" + "".join(f"{_fmt(_med([f[key] for f in facts[v]]), **fmt):>17}" for v, _ in variants)
        )

    line("prepare_s (as the worker reports it), s", "prepare_s", digits=3)
    line("samples in the chunk", "samples", digits=0)
    line("  rounds", "rounds", digits=0)
    line("round 0 warm-up iterations", "warm_iters", digits=0)
    line("steady: median of round medians, ms", "steady", scale=1e3)
    line("  the same ÷ the worker's reference_s()", "steady_per_ref", digits=1)
    line("round 0 median / later rounds' median", "r0_over_later")
    line("round 0 first forward, ms", "first_fwd", scale=1e3)
    line("  its minor faults", "first_fwd_faults", digits=0)
    line("first forward of a later round, ms", "first_fwd_later", scale=1e3)
    line("automatic gc collections", "gc_n", digits=0)
    line("  of them gen 2", "gc2_n", digits=0)
    line("  their seconds (inside the stages above)", "gc_s", digits=3)
    line("  of which inside a deepcopy", "gc_deepcopy_s", digits=3)
    line("  their minor faults", "gc_faults", digits=0)
    line("minor faults, whole chunk", "faults_chunk", digits=0)
    return out


def _ab_table(ab: dict[str, dict[str, list[dict]]]) -> list[str]:
    out = [
        "== Built in the worker ((a)+gc.freeze, 'A') vs built in the fork server and inherited ((b), 'B') ==",
        "   both servers preload the same modules and freeze; forked A/B/A/B (others in between); medians.",
        "   r0, r1, rest: round medians (ms) of round 0, round 1 and later rounds; flt/it: minor faults per",
        "   timed iteration; set-up flt: faults of input, _place, round 0 deepcopy and warm-up",
        f"{'target':<18}{'':<3}{'start ms':>9}{'RSS MB':>8}{'prep s':>8}{'steady':>8}{'B/A':>7}{'r0':>7}{'r1':>7}"
        f"{'rest':>7}{'set-up flt':>11}{'flt/it r0':>10}{'r1':>6}{'rest':>6}{'chunk flt':>10}",
    ]
    for label, runs in ab.items():
        facts = {v: [_worker_facts(w) for w in runs[v]] for v in ("f", "b")}
        steady_a = _med([f["steady"] for f in facts["f"]])
        for v, tag in (("f", "A"), ("b", "B")):
            fs = facts[v]

            def m(key, fs=fs):
                return _med([f[key] for f in fs])

            ratio = f"{m('steady') / steady_a:.3f}" if v == "b" else ""
            out.append(
                f"{label[:17]:<18}{tag:<3}{_fmt(m('start_s'), 1e3, 1):>9}{m('rss_mb'):>8.0f}{m('prepare_s'):>8.3f}"
                f"{_fmt(m('steady'), 1e3):>8}{ratio:>7}{_fmt(m('r0'), 1e3):>7}{_fmt(m('r1'), 1e3):>7}"
                f"{_fmt(m('rest'), 1e3):>7}{m('set_up_faults'):>11.0f}{_fmt(m('fpi_r0'), digits=1):>10}"
                f"{_fmt(m('fpi_r1'), digits=1):>6}{_fmt(m('fpi_rest'), digits=1):>6}{m('faults_chunk'):>10.0f}"
            )
        pairs = [fb["steady"] / fa["steady"] for fa, fb in zip(facts["f"], facts["b"])]
        norm = [fb["steady_per_ref"] / fa["steady_per_ref"] for fa, fb in zip(facts["f"], facts["b"])]
        out.append(
            f"{'':<21}B/A steady per pair: {', '.join(f'{r:.3f}' for r in pairs)}; divided by each worker's "
            f"reference_s(): {', '.join(f'{r:.3f}' for r in norm)} (median {_med(norm):.3f})"
        )
    return out


# -- main --------------------------------------------------------------------------------------


def _specs(only: list[str] | None):
    from fnbench.suites import get_suite
    from fnbench.targets import resolve

    default = {s.name: s for s in get_suite("default").specs(1) if s.shape is None}
    conv = next(s for s in get_suite("table1").specs(1) if s.name == CONV[0] and tuple(s.shape) == CONV[1])
    specs = [default[n] for n in NETWORKS] + [conv]
    resolved = [resolve(s).spec for s in specs]  # as the runner sends them: shape filled in
    return [s for s in resolved if not only or s.name in only]


def _from_zoo(spec) -> bool:
    from fnbench.targets import resolve

    return resolve(spec).entry.meta_dict().get("family") == "zoo"


def _say(t_start: float, what: str) -> None:
    print(f"  {what} ({time.perf_counter() - t_start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="fresh workers per target and set-up (default 3)")
    ap.add_argument("--chunk-budget", type=float, default=CHUNK_BUDGET_S, help="seconds per chunk (default 1.2)")
    ap.add_argument("--targets", nargs="*", help="a subset of fasternet_t0 mobilevit_xxs mobilenetv2 conv")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    from fnbench.workers import _PRELOAD, _context

    specs = _specs(args.targets)
    budget = args.chunk_budget
    print(f"targets: {', '.join(s.label for s in specs)}; chunks of {budget} s, rounds of {ROUND_S} s", flush=True)

    # fnbench's own fork server: its start is paid by the first worker of a run.
    _context()
    first = _run_worker(specs[-1], "base", None, budget_s=0.3, extras=False)
    _say(t_start, "fnbench's fork server started")

    runs: dict[str, dict[str, list]] = {s.label: {v: [] for v, _ in VARIANTS} for s in specs}
    # (c) only where it can differ: an operator's resolve has no meta check, and building a timm or
    # torchvision network imports timm / torchvision, which load torch._dynamo and sympy anyway.
    recheck = {s.label for s in specs if s.layers is None and not _from_zoo(s)}
    # First one base worker per target: what they import decides what (a) preloads (first imports of
    # 10 ms or more, in the order they came, and timm, torchvision and operators).
    for spec in specs:
        runs[spec.label]["base"].append(_run_worker(spec, "base", None, budget_s=budget, extras=True))
    _say(t_start, "one base worker per target")
    imports: list[str] = []
    for target_runs in runs.values():
        for w in target_runs["base"]:
            for name, incl, _x, _f, _e in w["spans"]:
                mod = name[len("import ") :]
                if name.startswith("import ") and incl >= PRELOAD_MIN_S and mod not in imports:
                    imports.append(mod)
    for name in ("timm", "torchvision", "operators"):
        if name not in imports:
            imports.append(name)
    # Then, target by target, every set-up in turn, worker by worker (base, (c), (a), (a)+gc.freeze,
    # (b), base, …), so that the machine's drift falls on all of them alike.
    servers: dict[str, dict] = {}
    server_a, server_f = _Server(imports), None
    try:
        servers["(a)"] = server_a.ping()  # started and ready before any measured worker forks from it
        server_f = _Server(imports, freeze=True)
        servers["(a)+gc.freeze"] = server_f.ping()
        for spec in specs:
            server_b = _Server(imports, prebuild=spec, freeze=True)
            try:
                servers[f"(b) {spec.label}"] = info = server_b.ping()
                if not info["prebuilt"]:
                    raise RuntimeError(f"{spec.label}: the (b) fork server did not prebuild it: {info}")
                for rep in range(args.reps):
                    if rep:
                        runs[spec.label]["base"].append(_run_worker(spec, "base", None, budget_s=budget, extras=False))
                    if spec.label in recheck:
                        c_spec = replace(spec, shape=None)
                        runs[spec.label]["c"].append(_run_worker(c_spec, "c", None, budget_s=budget, extras=False))
                    for v, server in (("a", server_a), ("f", server_f), ("b", server_b)):
                        runs[spec.label][v].append(_run_worker(spec, v, server, budget_s=budget, extras=False))
            finally:
                server_b.stop()
            _say(t_start, spec.label)
    finally:
        server_a.stop()
        if server_f is not None:
            server_f.stop()
    load1 = os.getloadavg()

    print()
    print("Where a fresh worker's first chunk goes. Each stage excludes the stages nested in it and the")
    print("first imports it triggered (shown apart, named after the module loaded); 'share' is of the")
    print("column's median total, and medians of rows need not add up to the median total.")
    print(f"  base: fnbench's fork server (preload {', '.join(_PRELOAD)}); operators loaded in a base")
    print(f"        worker before its chunk: {first['operators_loaded']}")
    print(f"  (a) preload: the fork server also imports {', '.join(imports)}")
    print("  (a)+gc.freeze: (a), then gc.freeze() in the fork server")
    print("  (b) prebuilt: (a)+gc.freeze with the target resolved, built and BN-folded in the fork server")
    print("  (c) no recheck: base, the network's spec sent without its shape (no meta-device re-check);")
    print("        not run for timm/torchvision networks: 'import timm' itself loads torch._dynamo and sympy")
    for spec in specs:
        print()
        for line in _stage_table(spec.label, runs[spec.label]):
            print(line)
        ex = [w["extras"] for w in runs[spec.label]["base"] if w.get("extras")]
        if ex:
            e = ex[0]
            print(
                f"after the chunk, not on the worker path: _fold_checked {e['fold_checked_s']:.3f} s "
                f"({e['fold_checked_bns']} BNs: forward, fold, forward on an unfolded build); "
                f"full gc.collect() {e['gc_full_s']:.3f} s"
            )
    print()
    for line in _ab_table({s.label: runs[s.label] for s in specs}):
        print(line)
    print()
    print("Fork servers (paid once per run, or once per target for (b)); seconds from launch:")
    for name, srv in servers.items():
        extra = (
            f", resolve {srv['resolve_s']:.2f} s, build + fold {srv['build_fold_s']:.2f} s"
            if "resolve_s" in srv
            else ""
        )
        print(
            f"  {name}: torch + fnbench.workers {srv['base_imports_done'] - srv['launched']:.2f} s, the other imports "
            f"{srv['imports_done'] - srv['base_imports_done']:.2f} s{extra}; ready at {srv['ready'] - srv['launched']:.2f} s; "
            f"{srv['threads']} threads, RSS {srv['rss_kb'] / 1024:.0f} MB"
        )
    print(
        f"  fnbench's own: first worker forked {first['t_entry'] - first['t_spawn']:.2f} s after it was asked for; "
        f"{first['server_threads']} threads, RSS {first['server_rss_kb'] / 1024:.0f} MB"
    )
    print(
        f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; took {time.perf_counter() - t_start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
