"""Worker processes: sample a target's latency across fresh processes, not only fresh allocations.

Rounds of fresh allocations inside one process cannot sample what is fixed for the life of a
process — its heap layout, the core it settled on, what the allocator and the math libraries
decided at start-up. On a shared VM that level alone was seen to move a DWConv stack by 30 %
between two runs whose in-process intervals were ±2 % wide. Nor can one stretch of seconds sample
what drifts over minutes: on the same VM every worker saw a PConv stack go from 9.0 to 6.7 ms at
once. So :func:`fnbench.runner.run_suite` makes several passes over a suite, each pass with a
:class:`WorkerPool` of fresh processes, and builds each target's
interval over those processes and their rounds (:func:`fnbench.stats.hierarchical_median_ci`).
Chunks run one at a time, so workers never compete for a core.

A pool for cuda has each worker create its CUDA context, load cuDNN and run a small convolution
before it reports ready, so that start-up is not charged to the first round of the first target
(:func:`_warm_device`); after each chunk the worker samples the GPU's clocks and throttle
reasons while the GPU is still warm from the timed blocks (:func:`fnbench.devices.gpu_state`).

Workers are forked from a fork server that imported torch once (``forkserver``; ``spawn`` where
the platform lacks it), so a fresh pool costs a fraction of a second. A worker builds each target
itself from its :class:`~fnbench.targets.TargetSpec` (BN folded, prepared for the runtime, cached
while the same target comes back) and runs :func:`fnbench.timing.measure` for a few rounds, each
with a fresh module and input as always. It answers with raw samples, or with an
``unsupported``/``failed`` outcome and the reason: a model error never kills a worker. A worker
exits by itself when its run goes away (end of file on its pipe, or its run's pid gone), so a
killed ``fnbench run`` leaves no processes behind.

Example::

    >>> from fnbench.targets import TargetSpec
    >>> with WorkerPool(2) as pool:  # doctest: +SKIP
    ...     r = pool.run_chunk(0, ChunkRequest(TargetSpec.make("pconv", (32, 14, 14), layers=2), chunk_budget_s=1.0))
    >>> r.status, len(set(r.round_ids))  # doctest: +SKIP
    ('ok', 2)
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import allocators
from .conditions import Conditions
from .errors import first_line
from .measurement import DEFAULT_MIN_ROUNDS, DEFAULT_PRECISION, Measurement
from .targets import TargetSpec

__all__ = ["ChunkRequest", "ChunkResult", "Failure", "Prepare", "Ready", "Round", "FINISH", "WorkerPool", "WorkerError"]

#: Seconds a worker may take to start (a cold interpreter importing torch on a busy machine).
_START_TIMEOUT_S = 180.0
#: How often a worker checks that its parent is still there while it is busy measuring.
_PARENT_POLL_S = 0.5
#: What the fork server imports once, so that no worker forked from it pays for it: torch, the libraries
#: the zoo builds networks with (timm alone cost each fresh worker 1.7–1.8 s, and with it torch's
#: compiler stack, which a network's first build imports), fnbench's worker side, and last
#: :mod:`fnbench.freeze`, which freezes all of it out of the workers' garbage collections.
_PRELOAD = ["torch", "torch._dynamo", "timm", "torchvision", "fnbench.workers", "fnbench.freeze"]


def _context():
    """``forkserver`` where the platform has it (a fresh worker in ~0.05 s), else ``spawn`` (seconds).

    The fork server is a clean interpreter started once per run that imports torch and fnbench
    and then only forks: each worker is a new process with its own address space, and
    everything it measures (modules, inputs, allocator pools, thread pools) is created after the
    fork. That makes a fresh set of processes per pass over a suite cheap.
    """
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


#: One fork server per preloaded allocator: a library can only be preloaded when a process
#: starts, so jemalloc's workers fork from a server that was itself started with it preloaded.
_PRELOAD_SERVERS: dict[str, Any] = {}


@contextlib.contextmanager
def _started_under(allocator: str):
    """Start processes inside this block with ``allocator``'s library preloaded (no-op for glibc modes).

    Under ``forkserver`` the new process comes from that allocator's own fork server (started on
    first use with ``LD_PRELOAD`` set); under ``spawn`` it inherits ``LD_PRELOAD`` directly.
    """
    if allocator not in allocators.LIBRARIES:
        yield
        return
    env = allocators.preload_env(allocator)
    saved_env = os.environ.get("LD_PRELOAD")
    os.environ["LD_PRELOAD"] = env["LD_PRELOAD"]
    from multiprocessing import forkserver

    swap = hasattr(forkserver, "ForkServer") and hasattr(forkserver, "connect_to_new_process")
    saved_connect = forkserver.connect_to_new_process if swap else None
    if swap:
        server = _PRELOAD_SERVERS.get(allocator)
        if server is None:
            server = _PRELOAD_SERVERS[allocator] = forkserver.ForkServer()
            server.set_forkserver_preload(_PRELOAD)
        forkserver.connect_to_new_process = server.connect_to_new_process
    try:
        yield
    finally:
        if swap:
            forkserver.connect_to_new_process = saved_connect
        if saved_env is None:
            os.environ.pop("LD_PRELOAD", None)
        else:
            os.environ["LD_PRELOAD"] = saved_env


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk of one target's measurement: what to build, how to run it, for how long.

    ``conditions``: runtime, memory format, dtype, threads and allocator (default: eager FP32
    contiguous on one thread). ``chunk_budget_s`` is the chunk's wall-clock share of its pass
    (preparing the target included), ``round_s`` the length of one round, ``precision`` the
    run's target half-width (a chunk may stop early once its own rounds reach it).
    """

    spec: TargetSpec
    conditions: Conditions = Conditions()
    device: str = "cpu"
    chunk_budget_s: float = 1.0
    seed: int = 0
    min_rounds: int = 2
    max_rounds: int = 2
    round_s: float | None = None
    precision: float = DEFAULT_PRECISION


@dataclass(frozen=True)
class Failure:
    """Why a chunk has no measurement: ``unsupported`` (the runtime cannot take the model, with the
    reason) or ``failed`` (the error's first line and the worker's traceback)."""

    status: str  # "unsupported" or "failed"
    error: str
    traceback: str | None = None


@dataclass
class ChunkResult:
    """What a worker sends back: its measurement (round ids local to the chunk) or the failure.

    ``prepare_s`` is what building and preparing the target cost this worker (0 when it was
    already prepared for an earlier chunk), ``runtime_info`` what the runtime reports of itself,
    ``gpu_state`` the GPU's clocks and throttle reasons right after the timed blocks (CUDA only).
    """

    worker: int
    pid: int
    measurement: Measurement | None = None
    failure: Failure | None = None
    prepare_s: float = 0.0
    runtime_info: dict[str, Any] = field(default_factory=dict)
    gpu_state: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return "ok" if self.failure is None else self.failure.status

    def chunk_summary(self) -> dict[str, Any]:
        """The chunk as a partial record lists it (``chunks``): which process, how long, how prepared."""
        m = self.measurement
        out = {
            "worker": self.worker,
            "pid": self.pid,
            "rounds": m.rounds,
            "wall_s": m.wall_s,
            "iters_per_sample": m.iters_per_sample,
            "prepare_s": self.prepare_s,
        }
        if self.gpu_state:
            out["gpu_state"] = self.gpu_state  # clocks and throttle reasons right after the chunk's timed blocks
        if m.oom_batches:
            out["oom_batches"] = list(m.oom_batches)
        return out


@dataclass(frozen=True)
class Prepare:
    """Make one target ready in this worker for rounds taken on demand (an interleaved pass).

    The worker builds the target, prepares it for its runtime (halving the batch while that runs out
    of device memory) and warms it until steady within ``warm_s`` seconds: everything a process pays
    once, done before any round of the pass is timed. Each :class:`Round` then takes one round of
    ``round_s`` seconds; :data:`FINISH` returns the pass's measurement.
    """

    spec: TargetSpec
    conditions: Conditions = Conditions()
    device: str = "cpu"
    seed: int = 0
    round_s: float = 0.05
    warm_s: float = 1.0
    peak_memory: bool = True


@dataclass
class Ready:
    """A worker's answer to :class:`Prepare`: what building and preparing cost, and the batch that fitted."""

    prepare_s: float
    warm_s: float
    batch: int


@dataclass(frozen=True)
class Round:
    """Take one round now; ``cycle`` is the cycle of the pass it belongs to (kept with its samples)."""

    cycle: int


#: Ask a worker of an interleaved pass for its measurement (a :class:`ChunkResult`).
FINISH = "finish"


class WorkerError(RuntimeError):
    """A target failed inside a worker; ``remote_traceback`` is the worker's traceback."""

    def __init__(self, message: str, remote_traceback: str | None = None):
        super().__init__(message)
        self.remote_traceback = remote_traceback


# -- inside the worker ------------------------------------------------------------------------------


def _watch_parent(parent_pid: int, first_ppid: int) -> None:
    """Exit when the run that started this worker is gone.

    Under ``spawn`` the worker's parent is the run itself; under ``forkserver`` it is the fork
    server, which exits when the run does. Either way the parent pid changes (the orphan is
    re-parented) when the run dies, and the run's own pid stops existing.
    """
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != first_ppid or not _alive(parent_pid):
            os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only (PermissionError would still mean "exists")
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _warm_device(device: str) -> None:
    """Pay a device's one-time start-up before the worker reports ready (nothing to do on a CPU).

    On cuda: create the context, load cuBLAS and cuDNN, and run a small convolution under
    ``cudnn.benchmark`` (which autotunes on first use), then synchronise.
    """
    if device != "cuda":
        return
    import torch

    prev = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        torch.cuda.init()
        conv = torch.nn.Conv2d(8, 8, 3, padding=1).cuda().eval()
        x = torch.randn(2, 8, 16, 16, device="cuda")
        with torch.inference_mode():
            conv(x)
            torch.mm(x.flatten(1)[:, :64], x.flatten(1)[:, :64].t())
        torch.cuda.synchronize()
        del conv, x
    finally:
        torch.backends.cudnn.benchmark = prev


def _prepare(req: ChunkRequest | Prepare):
    from .conditions import prepare_fitting
    from .devices import resolve_device
    from .targets import resolve

    target = resolve(req.spec, check=False)  # the run checked the shape before it asked for the target
    dev = resolve_device(req.device)
    prepared, x, oom_batches = prepare_fitting(target, dev, req.conditions, req.seed)
    return prepared, x, dev, req.conditions, oom_batches


def _failed(e: BaseException) -> Failure:
    return Failure("failed", first_line(e), traceback.format_exc(limit=8))


def _handle(worker: int, req: ChunkRequest, cache: dict) -> ChunkResult:
    from .runtimes import Unsupported

    key = (req.spec, req.conditions, req.device, req.seed)
    fresh = key not in cache
    if fresh:
        cache.clear()  # one target at a time: the previous one's model and input are freed
        gc.collect(1)  # young cycles only: a full collection costs ~0.15 s with torch loaded
        t0 = time.perf_counter()
        try:
            cache[key] = (_prepare(req), time.perf_counter() - t0)
        except (Unsupported, NotImplementedError) as e:
            cache[key] = (Failure("unsupported", str(e) if isinstance(e, Unsupported) else first_line(e)), 0.0)
        except Exception as e:  # noqa: BLE001 — a model error is an outcome, not a worker crash
            cache[key] = (_failed(e), 0.0)
    prepared_or_failure, prepare_s = cache[key]
    if isinstance(prepared_or_failure, Failure):
        return ChunkResult(worker, os.getpid(), failure=prepared_or_failure)
    prepared, x, dev, cond, prepare_ooms = prepared_or_failure
    # The chunk's budget covers preparing the target (an export can take seconds), so a pass over
    # a suite takes the time it was given; at least a quarter of it is left for sampling.
    budget_s = max(req.chunk_budget_s - prepare_s, 0.25 * req.chunk_budget_s) if fresh else req.chunk_budget_s
    try:
        m = prepared.measure(
            x,
            device=dev.torch_device,
            threads=cond.threads,
            precision=req.precision,
            budget_s=budget_s,
            min_rounds=req.min_rounds,
            max_rounds=req.max_rounds,
            round_s=req.round_s,
            seed=req.seed,
            allocator=None,
        )
    except Exception as e:  # noqa: BLE001
        return ChunkResult(worker, os.getpid(), failure=_failed(e))
    m.oom_batches = list(prepare_ooms) + list(m.oom_batches)
    state = None
    if dev.kind == "cuda":  # right after the last timed block, while the GPU is still at its working clocks
        from .devices import gpu_state

        state = gpu_state()
    return ChunkResult(
        worker,
        os.getpid(),
        measurement=m,
        prepare_s=prepare_s if fresh else 0.0,
        runtime_info=dict(prepared.info),
        gpu_state=state,
    )


@dataclass
class _Session:
    """The target a worker of an interleaved pass holds: its sampler, and the cycle of each round taken."""

    sampler: Any
    prepared: Any
    device_kind: str
    prepare_s: float
    oom_batches: list[int]
    cycles: list[int] = field(default_factory=list)


def _open_session(req: Prepare) -> _Session | Failure:
    from .runtimes import Unsupported

    t0 = time.perf_counter()
    try:
        prepared, x, dev, cond, prepare_ooms = _prepare(req)
    except (Unsupported, NotImplementedError) as e:
        return Failure("unsupported", str(e) if isinstance(e, Unsupported) else first_line(e))
    except Exception as e:  # noqa: BLE001 — a model error is an outcome, not a worker crash
        return _failed(e)
    prepare_s = time.perf_counter() - t0
    try:
        sampler, ooms = prepared.sampler(
            x,
            device=dev.torch_device,
            threads=cond.threads,
            round_s=req.round_s,
            warm_s=req.warm_s,
            seed=req.seed,
            peak_memory=req.peak_memory,
        )
    except Exception as e:  # noqa: BLE001
        return _failed(e)
    return _Session(sampler, prepared, dev.kind, prepare_s, list(prepare_ooms) + ooms)


def _session_answer(worker: int, req: Any, session: _Session | None) -> Any:
    """What a worker of an interleaved pass answers to :class:`Round` or :data:`FINISH`."""
    if session is None:
        return Failure("failed", "no target prepared in this worker (Prepare comes first)")
    if isinstance(req, Round):
        try:
            session.sampler.take_round()
        except Exception as e:  # noqa: BLE001
            return _failed(e)
        session.cycles.append(req.cycle)
        return None
    m = session.sampler.measurement(precision=DEFAULT_PRECISION, min_rounds=DEFAULT_MIN_ROUNDS, budget_s=None)
    m.cycle_ids = [session.cycles[r] for r in m.round_ids]
    m.oom_batches = list(session.oom_batches)
    state = None
    if session.device_kind == "cuda":
        from .devices import gpu_state

        state = gpu_state()
    return ChunkResult(
        worker,
        os.getpid(),
        measurement=m,
        prepare_s=session.prepare_s,
        runtime_info=dict(session.prepared.info),
        gpu_state=state,
    )


def _answer(worker: int, req: Any, cache: dict) -> Any:
    """One request of the worker's loop: a whole chunk, or a step of an interleaved pass."""
    if isinstance(req, ChunkRequest):
        return _handle(worker, req, cache)
    if isinstance(req, Prepare):
        cache.clear()
        gc.collect(1)
        t0 = time.perf_counter()
        session = _open_session(req)
        if isinstance(session, Failure):
            return session
        cache["session"] = session
        return Ready(session.prepare_s, time.perf_counter() - t0 - session.prepare_s, session.sampler.batch)
    return _session_answer(worker, req, cache.get("session"))


def _serve(
    conn, worker: int, parent_pid: int, allocator: str = allocators.DEFAULT_ALLOCATOR, device: str = "cpu"
) -> None:
    """A worker's main loop: answer chunk requests until ``None``, end of file or an orphaned state.

    The allocator is set first, before the worker builds anything it will measure; then the
    device is initialised (:func:`_warm_device`). The ready message carries the allocator's state
    (or the reason the allocator or the device could not be set up) back to the pool.
    """
    threading.Thread(target=_watch_parent, args=(parent_pid, os.getppid()), daemon=True, name="parent-watch").start()
    try:
        alloc = allocators.apply(allocator)
    except Exception as e:  # noqa: BLE001 — reported to the pool, which refuses to measure with it
        conn.send(("error", os.getpid(), first_line(e)))
        return
    import torch  # noqa: F401 — paid once, before the first request

    cache: dict = {}
    try:
        try:
            _warm_device(device)
        except Exception as e:  # noqa: BLE001 — reported to the pool instead of dying silently
            conn.send(("device-error", os.getpid(), f"{device} start-up failed: {first_line(e)}"))
            return
        conn.send(("ready", os.getpid(), alloc))
        while True:
            try:
                req = conn.recv()
            except (EOFError, OSError):
                return
            if req is None:
                return
            if req == "allocator":  # what the pool (and the tests) can ask besides chunks
                conn.send({"state": allocators.state(), "maps": allocators.loaded_libraries()})
                continue
            try:
                res = _answer(worker, req, cache)
            except BaseException as e:  # noqa: BLE001 — last resort: say so and keep serving
                res = ChunkResult(worker, os.getpid(), failure=_failed(e))
            try:
                conn.send(res)
            except (BrokenPipeError, OSError):
                return
    except KeyboardInterrupt:
        return


# -- in the parent --------------------------------------------------------------------------------


@contextlib.contextmanager
def _main_not_rerun():
    """Start a spawned worker without re-running the caller's ``__main__`` script in it.

    ``spawn`` normally re-imports the parent's main script in the child; the worker needs nothing
    from it, and a script without an ``if __name__ == "__main__"`` guard would start a run in
    every worker. Hiding ``__main__.__file__`` while the child is launched skips that step.
    """
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if main is None or spec_name is not None or not hasattr(main, "__file__"):
        yield
        return
    path = main.__file__
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


class WorkerPool:
    """``n`` worker processes, started together; a context manager.

    :meth:`run_chunk` sends one request to one worker and waits for its answer (chunks are run
    one at a time on purpose: workers measuring at once would compete for cores). A worker that
    dies is replaced and the chunk reported as ``failed``. :meth:`ask` and :meth:`ask_many` serve
    an interleaved pass: its workers prepare several at a time (nothing is timed then) and take
    their rounds one at a time. ``allocator`` is one mode for every worker or one per worker.
    """

    def __init__(
        self,
        n: int,
        *,
        start_timeout_s: float = _START_TIMEOUT_S,
        allocator: str | Sequence[str] = allocators.DEFAULT_ALLOCATOR,
        device: str = "cpu",
    ):
        if n < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {n}")
        self.n = int(n)
        self.device = device  # each worker initialises it before it reports ready
        names = [allocator] * self.n if isinstance(allocator, str) else list(allocator)
        if len(names) != self.n:
            raise ValueError(f"{len(names)} allocators for {self.n} workers")
        self.allocators = [allocators.check_allocator(a) for a in names]
        for name in set(self.allocators):
            if name in allocators.LIBRARIES:
                allocators.require_library(name)
        self.allocator = self.allocators[0]
        #: Each worker's allocator state, as it reported it when ready.
        self.allocator_states: list[dict[str, Any] | None] = [None] * self.n
        self.start_timeout_s = start_timeout_s
        self._ctx = _context()
        self._procs: list[Any] = [None] * self.n
        self._conns: list[Any] = [None] * self.n
        self.pids: list[int | None] = [None] * self.n
        self.start_s = 0.0

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self, i: int) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(
            target=_serve,
            args=(child_conn, i, os.getpid(), self.allocators[i], self.device),
            daemon=True,
            name=f"fnbench-worker-{i}",
        )
        with _main_not_rerun(), _started_under(self.allocators[i]):
            p.start()
        child_conn.close()  # the child holds the only other end: its death is EOF here, ours is EOF there
        self._procs[i], self._conns[i] = p, parent_conn

    def _await_ready(self, i: int) -> None:
        conn = self._conns[i]
        if not conn.poll(self.start_timeout_s):
            raise RuntimeError(f"worker {i} did not start within {self.start_timeout_s:.0f} s")
        try:
            tag, pid, info = conn.recv()
        except (EOFError, OSError) as e:
            raise WorkerError(f"worker {i} exited while starting: {first_line(e)}") from None
        if tag == "device-error":
            raise WorkerError(f"worker {i}: {info}")
        self.pids[i] = pid
        if tag != "ready":
            raise WorkerError(f"worker {i} could not use allocator {self.allocators[i]}: {info}")
        self.allocator_states[i] = info

    def start(self) -> None:
        """Start every worker at once (they import torch in parallel) and wait until all are ready."""
        t0 = time.perf_counter()
        try:
            for i in range(self.n):
                self._spawn(i)
            for i in range(self.n):
                self._await_ready(i)
        except BaseException:
            self.close()
            raise
        self.start_s = time.perf_counter() - t0

    def run_chunk(self, i: int, req: ChunkRequest) -> ChunkResult:
        conn = self._conns[i]
        try:
            conn.send(req)
            return conn.recv()
        except (EOFError, OSError, BrokenPipeError) as e:
            p = self._procs[i]
            p.join(timeout=5)
            code = p.exitcode
            self._restart(i)
            why = f"worker process died (exit code {code}) while measuring: {first_line(e)}"
            return ChunkResult(i, self.pids[i] or -1, failure=Failure("failed", why))

    def ask(self, i: int, req: Any) -> Any:
        """Send ``req`` to worker ``i`` and wait for its answer; a worker that died answers a :class:`Failure`
        (and is not restarted: what it held is gone)."""
        self.send(i, req)
        return self.receive(i)

    def send(self, i: int, req: Any) -> None:
        try:
            self._conns[i].send(req)
        except (OSError, BrokenPipeError):
            pass  # the worker is gone; receive() says so

    def receive(self, i: int) -> Any:
        try:
            return self._conns[i].recv()
        except (EOFError, OSError) as e:
            p = self._procs[i]
            p.join(timeout=5)
            return Failure("failed", f"worker process died (exit code {p.exitcode}) while measuring: {first_line(e)}")

    def ask_many(self, requests: dict[int, Any], concurrency: int) -> dict[int, tuple[Any, float]]:
        """Send each worker its request, at most ``concurrency`` at a time; ``{worker: (answer, seconds)}``."""
        from multiprocessing.connection import wait

        todo, busy, out = list(requests), {}, {}
        while todo or busy:
            while todo and len(busy) < max(1, concurrency):
                i = todo.pop(0)
                self.send(i, requests[i])
                busy[self._conns[i]] = (i, time.perf_counter())
            for conn in wait(list(busy)):
                i, t0 = busy.pop(conn)
                out[i] = (self.receive(i), time.perf_counter() - t0)
        return out

    def query_allocator(self, i: int) -> dict[str, Any]:
        """Worker ``i``'s own view of its allocator: ``{"state": …, "maps": {library: path}}``."""
        self._conns[i].send("allocator")
        return self._conns[i].recv()

    def _restart(self, i: int) -> None:
        self._stop(i)
        self._spawn(i)
        self._await_ready(i)

    def _stop(self, i: int) -> None:
        p, conn = self._procs[i], self._conns[i]
        if conn is not None:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        if p is not None:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        if conn is not None:
            conn.close()
        self._procs[i] = self._conns[i] = None

    def close(self) -> None:
        for i in range(self.n):
            if self._conns[i] is not None and self._procs[i] is not None:
                try:
                    self._conns[i].send(None)  # ask all first, so they exit in parallel
                except (OSError, BrokenPipeError):
                    pass
        for i in range(self.n):
            self._stop(i)
