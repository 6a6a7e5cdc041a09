"""``fnbench compare A B``: two targets measured in interleaved chunks, ratios with bootstrap CIs.

Why interleave: on a shared machine the speed of the whole box drifts over seconds (a neighbour
starts, the clock steps down). Measuring all of A and then all of B puts that drift into the
ratio. Here A and B alternate in short chunks (A B B A A B …), each chunk made of rounds with
fresh allocations, and the ratio's bootstrap resamples *chunks*, pairing the A and B chunks taken
side by side so drift common to both cancels.

All ratios are B / A: ``macs_ratio`` (exact), ``latency_ratio`` (CI), ``flops_ratio`` = achieved
MAC/s of B over A's = macs_ratio / latency_ratio (CI). Over several shapes the summary is the
geometric mean of the per-shape ratios, with a CI from the same bootstrap replicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from . import allocators, stats
from .allocators import DEFAULT_ALLOCATOR
from .devices import DEFAULT_CUDA_BATCH, resolve_device
from .errors import UserError
from .runtimes import Unsupported, prepare
from .suites import TABLE1_SHAPES
from .targets import Target, TargetSpec, resolve
from .timing import fold_bn, measure

__all__ = ["Side", "ShapeComparison", "Comparison", "compare", "verdict_line", "N_BOOT"]

N_BOOT = 4000
CHUNKS = 6


@dataclass
class Side:
    """One target at one shape: its cost and raw samples, with the chunk each sample came from."""

    spec: TargetSpec
    macs: int
    mem_bytes_counted: int | None
    samples_s: list[float] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)  # chunk (or, from result files, round) of each sample
    batch: int = 1
    faults_minor: int = 0  # minor page faults over the timed iterations, and those iterations
    faults_iters: int = 0

    @property
    def minor_faults_per_iter(self) -> float | None:
        return self.faults_minor / self.faults_iters if self.faults_iters else None

    def chunk_medians(self) -> np.ndarray:
        return stats.round_medians(self.samples_s, self.chunk_ids)

    @property
    def median_s(self) -> float:
        return float(np.median(self.chunk_medians()))

    @property
    def ci95(self) -> stats.CI:
        return stats.median_ci(self.chunk_medians())

    @property
    def gmacs_per_s(self) -> float:
        return self.macs / self.median_s / 1e9

    def stable(self, precision: float) -> bool:
        """At least 5 chunks, and the CI of their median within ±``precision`` of it."""
        med = self.chunk_medians()
        return med.size >= 5 and stats.rel_halfwidth(self.ci95, float(np.median(med))) <= precision

    @property
    def intensity(self) -> float | None:
        return 2 * self.macs / self.mem_bytes_counted if self.mem_bytes_counted else None


@dataclass
class ShapeComparison:
    a: Side
    b: Side
    latency_ratio: float
    latency_ci: stats.CI
    replicates: np.ndarray  # bootstrap replicates of the latency ratio (B / A)

    @property
    def macs_ratio(self) -> float:
        return self.b.macs / self.a.macs

    @property
    def flops_ratio(self) -> float:
        return self.macs_ratio / self.latency_ratio

    @property
    def flops_ci(self) -> tuple[float, float]:
        return self.macs_ratio / self.latency_ci.high, self.macs_ratio / self.latency_ci.low


@dataclass
class Comparison:
    a_name: str
    b_name: str
    device: str
    runtime: str
    threads: int | None
    rows: list[ShapeComparison]
    precision: float = 0.10
    allocator: str = DEFAULT_ALLOCATOR

    def _geo(self, values: list[float]) -> float:
        return float(math.exp(np.mean(np.log(values))))

    @property
    def macs_ratio(self) -> float:
        return self._geo([r.macs_ratio for r in self.rows])

    @property
    def latency_ratio(self) -> float:
        return self._geo([r.latency_ratio for r in self.rows])

    @property
    def latency_ci(self) -> tuple[float, float]:
        reps = np.exp(np.mean(np.log(np.stack([r.replicates for r in self.rows])), axis=0))
        lo, hi = np.quantile(reps, [0.025, 0.975])
        return float(lo), float(hi)

    @property
    def flops_ratio(self) -> float:
        return self.macs_ratio / self.latency_ratio

    @property
    def flops_ci(self) -> tuple[float, float]:
        lo, hi = self.latency_ci
        return self.macs_ratio / hi, self.macs_ratio / lo

    @property
    def stable(self) -> bool:
        return all(r.a.stable(self.precision) and r.b.stable(self.precision) for r in self.rows)

    def flops_verdict(self) -> str:
        """The claim "A's FLOPS > B's FLOPS" (e.g. PConv's over DWConv's): supported / contradicted / inconclusive.

        Its ratio is A's achieved MAC/s over B's = 1 / ``flops_ratio``; a measurement that did not
        settle makes the verdict inconclusive, never a win.
        """
        lo, hi = self.flops_ci
        return stats.verdict((1 / hi, 1 / lo), 1.0, stable=self.stable)

    def as_dict(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            ci = s.ci95
            return {"target": s.spec.name, "shape": list(s.spec.shape), "layers": s.spec.layers, "batch": s.batch,
                    "macs": s.macs, "mem_bytes_counted": s.mem_bytes_counted,
                    "arithmetic_intensity": s.intensity, "median_s": s.median_s, "ci95_low_s": ci.low,
                    "ci95_high_s": ci.high, "gmacs_per_s": s.gmacs_per_s,
                    "gmacs_per_s_ci95": [s.macs / ci.high / 1e9, s.macs / ci.low / 1e9],
                    "samples_s": s.samples_s, "chunk_ids": s.chunk_ids,
                    "minor_faults_per_iter": s.minor_faults_per_iter}

        return {
            "a": self.a_name, "b": self.b_name, "device": self.device, "runtime": self.runtime,
            "threads": self.threads, "allocator": self.allocator, "ratios": "B / A",
            "rows": [{"a": side(r.a), "b": side(r.b), "macs_ratio": r.macs_ratio, "latency_ratio": r.latency_ratio,
                      "latency_ratio_ci95": list(r.latency_ci[:2]), "flops_ratio": r.flops_ratio,
                      "flops_ratio_ci95": list(r.flops_ci)} for r in self.rows],
            "summary": {"macs_ratio": self.macs_ratio, "latency_ratio": self.latency_ratio,
                        "latency_ratio_ci95": list(self.latency_ci), "flops_ratio": self.flops_ratio,
                        "flops_ratio_ci95": list(self.flops_ci), "stable": self.stable,
                        "claim": f"{self.a_name} FLOPS > {self.b_name} FLOPS", "claim_verdict": self.flops_verdict(),
                        "verdict": verdict_line(self)},
        }


def verdict_line(c: Comparison) -> str:
    """One sentence, e.g. ``dwconv has 6.0x fewer MACs than pconv and is 1.9x faster (CI 1.8-2.0x): FLOPS 0.32x pconv's``."""
    a, b = c.a_name, c.b_name
    m, (llo, lhi), l = c.macs_ratio, c.latency_ci, c.latency_ratio
    f, (flo, fhi) = c.flops_ratio, c.flops_ci
    macs = f"{1 / m:.1f}x fewer MACs than {a}" if m < 1 else f"{m:.1f}x the MACs of {a}"
    if l <= 1:
        speed = f"{1 / l:.2f}x faster (CI {1 / lhi:.2f}-{1 / llo:.2f}x)"
    else:
        speed = f"{l:.2f}x slower (CI {llo:.2f}-{lhi:.2f}x)"
    joint = "but is only" if (m < 1 and 1 / l < 1 / m) else "and is"
    text = f"{b} has {macs} {joint} {speed}: FLOPS {f:.2f}x {a}'s (CI {flo:.2f}-{fhi:.2f}x)"
    if not c.stable:
        text += f"; a side's chunk medians spread beyond ±{c.precision:.0%}, so the measurement counts as unsettled"
    return text


def _default_shapes(a: str, b: str, shape) -> list:
    from operators import OPERATORS

    if shape is not None:
        return [tuple(shape)]
    if a in OPERATORS and b in OPERATORS:
        return list(TABLE1_SHAPES)
    return [None]


def compare(
    a: str,
    b: str,
    *,
    device: str = "auto",
    shape=None,
    layers: int | None = None,
    batch: int | None = None,
    threads: int | None = None,
    runtime: str = "eager",
    budget_s: float = 8.0,
    chunks: int = CHUNKS,
    precision: float = 0.10,
    seed: int = 0,
    progress=None,
    allocator: str = DEFAULT_ALLOCATOR,
) -> Comparison:
    """Measure ``a`` and ``b`` in interleaved chunks at each shape (default: the four Table-1 maps).

    ``budget_s`` is the measuring time per target per shape, split over ``chunks`` chunks. Both
    are measured in this process under ``allocator`` (:func:`fnbench.allocators.apply`), with the
    page faults of their timed iterations counted. ``batch`` defaults to 1, on cuda to 32 (the
    paper's throughput set-up); a given batch, 1 included, is used as given.
    """
    from .counting import count

    dev = resolve_device(device)
    if batch is not None and batch < 1:
        raise UserError(f"batch {batch} is not positive: use --batch 1 or more")
    if dev.kind == "cuda":
        threads = None
        batch = DEFAULT_CUDA_BATCH if batch is None else batch
    else:
        batch = 1 if batch is None else batch
        threads = 1 if threads is None else threads
        if threads < 1:
            raise UserError(f"threads {threads} is not positive: use --threads 1 or more")
    if budget_s <= 0:
        raise UserError(f"budget {budget_s} s is not positive: use e.g. --budget 8")
    allocators.apply(allocator)  # before anything is built: the models and inputs live under it
    pairs: list[tuple[Target, Target]] = []
    for sh in _default_shapes(a, b, shape):
        pairs.append(tuple(resolve(TargetSpec.make(n, sh, batch, layers)) for n in (a, b)))  # type: ignore[misc]

    rows = []
    rt_device = "cuda" if dev.kind == "cuda" else "cpu"
    if progress is not None:
        progress(0, len(pairs) * chunks)
    for i, (ta, tb) in enumerate(pairs):
        sides, modules = [], []
        for t in (ta, tb):
            counted = count(t.build(seed), t.example_input(seed=seed), fvcore=False)
            macs = t.analytic.macs if t.analytic else counted.macs
            sides.append(Side(t.spec, macs, counted.mem_bytes_counted, batch=t.spec.batch))
            x = t.example_input(seed=seed).to(dev.torch_device)

            def build(t=t):
                m = t.build(seed)
                fold_bn(m)
                return m

            prev = torch.get_num_threads()
            if threads:
                torch.set_num_threads(threads)
            try:
                prepared = prepare(runtime, build, x, device=rt_device, threads=threads or 1)
            except Unsupported as e:
                raise UserError(f"{t.spec.name} cannot run under {runtime}: {e}") from None
            finally:
                torch.set_num_threads(prev)
            modules.append((prepared, x))
        per_chunk = budget_s / chunks
        for k in range(chunks):
            order = (0, 1) if k % 2 == 0 else (1, 0)  # A B, B A, A B …: neither side always goes first
            for j in order:
                prepared, x = modules[j]
                m = measure(prepared.module, x, device=dev.torch_device, threads=threads, budget_s=per_chunk,
                            min_rounds=2, max_rounds=3, seed=seed + k,
                            rebuild=None if runtime == "eager" else prepared.rebuild, fold=False, allocator=None,
                            halve_on_oom=runtime == "eager")
                sides[j].faults_minor += sum(m.round_faults_minor)
                sides[j].faults_iters += sum(m.round_iters)
                sides[j].samples_s += m.samples_s
                sides[j].chunk_ids += [k] * m.n
                sides[j].batch = m.batch
            if progress is not None:
                progress(i * chunks + k + 1, len(pairs) * chunks)
        rows.append(_ratio_row(*sides, paired=True, seed=seed))
    return Comparison(a, b, dev.kind, runtime, threads, rows, precision, allocator)


def _ratio_row(sa: Side, sb: Side, *, paired: bool, seed: int) -> ShapeComparison:
    """Latency ratio B / A of per-sample latency with a percentile bootstrap over chunks (rounds).

    Paired: chunk k of A and of B were taken side by side and are resampled together.
    """
    a, b = sa.chunk_medians() / sa.batch, sb.chunk_medians() / sb.batch
    rng = np.random.default_rng(seed)
    if paired and a.size == b.size:
        idx = rng.integers(0, a.size, size=(N_BOOT, a.size))
        reps = np.median(b[idx], axis=1) / np.median(a[idx], axis=1)
    else:
        reps = (np.median(b[rng.integers(0, b.size, size=(N_BOOT, b.size))], axis=1)
                / np.median(a[rng.integers(0, a.size, size=(N_BOOT, a.size))], axis=1))
    lo, hi = np.quantile(reps, [0.025, 0.975])
    ratio = float(np.median(b) / np.median(a))
    return ShapeComparison(sa, sb, ratio, stats.CI(float(lo), float(hi), 0.95), reps)


def compare_from_results(paths, a: str, b: str, *, device: str | None = None, shape=None,
                         runtime: str = "eager", seed: int = 0, precision: float = 0.10,
                         allocator: str = DEFAULT_ALLOCATOR) -> Comparison:
    """The same comparison from stored result records (not interleaved: an unpaired bootstrap over rounds).

    Picks, per shape present for both targets on one device, the latest ``ok`` record of each
    (NCHW, FP32 records under ``allocator`` only: the set-up `compare` itself measures).
    """
    from .results import iter_result_files, read_records, record_allocator

    recs = [r for f in iter_result_files(paths) for r in read_records(f)
            if r.get("status", "ok") == "ok" and r.get("runtime", "eager") == runtime
            and r.get("memory_format", "contiguous") == "contiguous" and r.get("dtype", "float32") == "float32"
            and record_allocator(r) == allocator
            and (device is None or (r.get("device") or {}).get("kind") == device)]
    latest: dict[tuple, dict] = {}
    for r in sorted(recs, key=lambda r: r.get("created", "")):
        t = r["target"]
        key = (t["name"], tuple(r.get("shape") or ()), (r.get("device") or {}).get("key"))
        latest[key] = r
    devices = {k[2] for k in latest}
    rows, kinds = [], set()
    for dkey in sorted(devices, key=str):
        shapes_a = {k[1] for k in latest if k[0] == a and k[2] == dkey}
        shapes_b = {k[1] for k in latest if k[0] == b and k[2] == dkey}
        for sh in sorted(shapes_a & shapes_b):
            if shape is not None and sh != tuple(shape):
                continue
            sides = []
            for name in (a, b):
                r = latest[(name, sh, dkey)]
                t = r["target"]
                spec = TargetSpec(name, sh, r.get("batch", 1), t.get("layers"), tuple(sorted((t.get("options") or {}).items())))
                f = r.get("faults") or {}
                sides.append(Side(spec, r["cost"]["macs"], r["cost"].get("mem_bytes_counted"), list(r["samples_s"]),
                                  list(r.get("rounds") or [0] * len(r["samples_s"])), r.get("batch", 1),
                                  int(sum(f.get("minor") or [])), int(sum(f.get("iters") or []))))
                kinds.add((r.get("device") or {}).get("kind"))
            rows.append(_ratio_row(*sides, paired=False, seed=seed))
    if not rows:
        raise UserError(f"the result files hold no shape measured for both {a!r} and {b!r} (runtime {runtime}, "
                        f"allocator {allocator}); run `fnbench run --target {a} --target {b}` first")
    if len(devices) > 1:
        raise UserError(f"{a} and {b} were measured on {len(devices)} devices; pick one with --device")
    return Comparison(a, b, kinds.pop() or "?", runtime, recs[0].get("threads"), rows, precision, allocator)
