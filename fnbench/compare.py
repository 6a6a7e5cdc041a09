"""``fnbench compare A B``: two targets measured in interleaved chunks, ratios with bootstrap CIs.

Why interleave: on a shared machine the speed of the whole box drifts over seconds (a neighbour
starts, the clock steps down). Measuring all of A and then all of B puts that drift into the
ratio. Here A and B alternate in short chunks (A B B A A B …), each chunk made of rounds with
fresh allocations, and the ratio's bootstrap resamples *chunks*, pairing the A and B chunks taken
side by side so drift common to both cancels.

All ratios in the table are B / A: ``macs_ratio`` (exact), ``latency_ratio`` (CI),
``flops_ratio`` = achieved MAC/s of B over A's = macs_ratio / latency_ratio (CI). Over several
shapes the table's summary is the geometric mean of the per-shape ratios.

The verdict is not computed here: the claim "A's FLOPS > B's FLOPS" is
:func:`fnbench.verdicts.flops_claim`, the same claim (statistic, interval, seed) the report
evaluates, so ``compare --from results`` and ``fnbench report results`` give the same number and
verdict. The answer ends with one sentence from A's side, and names a side that did not settle.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import allocators, stats, units
from .allocators import DEFAULT_ALLOCATOR
from .conditions import prepare_target, resolve_policy
from .errors import UserError
from .options import DEFAULT_COMPARE_BUDGET_S
from .runtimes import Unsupported
from .stats import N_BOOT
from .suites import TABLE1_SHAPES
from .targets import Target, TargetSpec, resolve
from .usertargets import check_runtime_for, onnx_cost, register_callable

__all__ = [
    "Side",
    "ShapeComparison",
    "Comparison",
    "compare",
    "compare_from_results",
    "verdict_line",
    "answer_text",
    "N_BOOT",
]

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

    settled: bool | None = None  # from a result file: the stored row's own verdict on stability

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
        return units.gmacs_per_s(self.macs, self.median_s)

    @property
    def gmacs_per_s_ci(self) -> tuple[float, float]:
        """The 95 % interval of GMAC/s: the latency interval inverted."""
        ci = self.ci95
        return units.gmacs_per_s_ci(self.macs, ci.low, ci.high)

    def stable(self, precision: float) -> bool:
        """At least 5 chunks, and :func:`fnbench.stats.settled` on the CI of their median."""
        if self.settled is not None:
            return self.settled
        med = self.chunk_medians()
        return med.size >= 5 and stats.settled(self.ci95, float(np.median(med)), precision)

    def claim_row(self, precision: float) -> dict:
        """This side as a row for the claim engine (:mod:`fnbench.verdicts`)."""
        med = float(np.median(self.chunk_medians()))
        return {
            "target": self.spec.name,
            "target_kind": "operator" if self.spec.layers else "network",
            "shape": "x".join(map(str, self.spec.shape)) if self.spec.shape else None,
            "layers": self.spec.layers,
            "options": dict(self.spec.options),
            "macs": self.macs,
            "batch": self.batch,
            "median_s": med,
            "samples_s": list(self.samples_s),
            "round_ids": list(self.chunk_ids),
            "worker_ids": None,
            "status": "ok",
            "stable": self.stable(precision),
            "precision": precision,
            "rel_ci_halfwidth": stats.rel_halfwidth(self.ci95, med),
        }

    @property
    def intensity(self) -> float | None:
        return units.intensity(self.macs, self.mem_bytes_counted)


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
    claim: dict = field(default_factory=dict)  # fnbench.verdicts.evaluate of "A's FLOPS > B's FLOPS"
    where: str = ""  # "On cpu: <name>" for the answer sentence
    source: str = "measured"  # or "results": what to do about a side that did not settle differs
    budget_s: float | None = None

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
        return stats.containing(self.latency_ratio, stats.percentile_ci(reps))[:2]

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
        """The claim "A's FLOPS > B's FLOPS" (e.g. PConv's over DWConv's): the claim engine's verdict."""
        return self.claim["verdict"]

    def unsettled_sides(self) -> list[Side]:
        return [sd for r in self.rows for sd in (r.a, r.b) if not sd.stable(self.precision)]

    def as_dict(self) -> dict[str, Any]:
        from .verdicts import paper_match

        def side(s: Side) -> dict[str, Any]:
            ci = s.ci95
            return {
                "target": s.spec.name,
                "shape": list(s.spec.shape),
                "layers": s.spec.layers,
                "batch": s.batch,
                "macs": s.macs,
                "mem_bytes_counted": s.mem_bytes_counted,
                "arithmetic_intensity": s.intensity,
                "median_s": s.median_s,
                "ci95_low_s": ci.low,
                "ci95_high_s": ci.high,
                "gmacs_per_s": s.gmacs_per_s,
                "gmacs_per_s_ci95": list(s.gmacs_per_s_ci),
                "samples_s": s.samples_s,
                "chunk_ids": s.chunk_ids,
                "minor_faults_per_iter": s.minor_faults_per_iter,
            }

        return {
            "a": self.a_name,
            "b": self.b_name,
            "device": self.device,
            "runtime": self.runtime,
            "threads": self.threads,
            "allocator": self.allocator,
            "ratios": "B / A",
            "rows": [
                {
                    "a": side(r.a),
                    "b": side(r.b),
                    "macs_ratio": r.macs_ratio,
                    "latency_ratio": r.latency_ratio,
                    "latency_ratio_ci95": list(r.latency_ci[:2]),
                    "flops_ratio": r.flops_ratio,
                    "flops_ratio_ci95": list(r.flops_ci),
                }
                for r in self.rows
            ],
            "summary": {
                "macs_ratio": self.macs_ratio,
                "latency_ratio": self.latency_ratio,
                "latency_ratio_ci95": list(self.latency_ci),
                "flops_ratio": self.flops_ratio,
                "flops_ratio_ci95": list(self.flops_ci),
                "stable": self.stable,
                "claim": f"{self.a_name} FLOPS > {self.b_name} FLOPS",
                "claim_verdict": self.flops_verdict(),
                "verdict": verdict_line(self),
                "claim_id": self.claim["claim_id"],
                "claim_statistic": self.claim["statistic"],
                "claim_ratio": self.claim["ratio"],
                "claim_ratio_ci95": [self.claim["ci95_low"], self.claim["ci95_high"]],
                "per_map_ratio": self.claim["per_map_ratio"],
                "per_map_ratio_ci95": [self.claim["per_map_ci95_low"], self.claim["per_map_ci95_high"]],
                "paper_ratio": self.claim["paper_ratio"],
                "reproduction": self.claim["reproduction"],
                "measured_over_paper": self.claim["measured_over_paper"],
                "paper_match": paper_match(self.device, self.where.removeprefix("On ")),
                "unsettled": self.claim["unsettled"],
                "answer": answer_text(self),
            },
        }


def verdict_line(c: Comparison) -> str:
    """One sentence, e.g. ``dwconv has 6.0x fewer MACs than pconv and is 1.9x faster (CI 1.8-2.0x): FLOPS 0.32x pconv's``."""
    a, b = c.a_name, c.b_name
    m, (llo, lhi), lat = c.macs_ratio, c.latency_ci, c.latency_ratio
    f, (flo, fhi) = c.flops_ratio, c.flops_ci
    macs = f"{1 / m:.1f}x fewer MACs than {a}" if m < 1 else f"{m:.1f}x the MACs of {a}"
    if lat <= 1:
        speed = f"{1 / lat:.2f}x faster (CI {1 / lhi:.2f}-{1 / llo:.2f}x)"
    else:
        speed = f"{lat:.2f}x slower (CI {llo:.2f}-{lhi:.2f}x)"
    joint = "but is only" if (m < 1 and 1 / lat < 1 / m) else "and is"
    return f"{b} has {macs} {joint} {speed}: FLOPS {f:.2f}x {a}'s (CI {flo:.2f}-{fhi:.2f}x)"


def answer_text(c: Comparison) -> str:
    """The claim's answer sentence, then, for each side that did not settle, what to do about it."""
    from .verdicts import answer_sentence, flops_claim

    text = answer_sentence(c.claim, flops_claim(c.a_name, c.b_name), where=c.where)
    bad = c.unsettled_sides()
    if bad:
        names = sorted({sd.spec.name for sd in bad})
        if c.source == "results":
            todo = (
                f"measure them again (`fnbench run {' '.join('--target ' + n for n in names)}`; repeats are pooled) "
                "or compare them live with a larger --budget"
            )
        else:
            todo = f"rerun with a larger budget (e.g. --budget {2 * (c.budget_s or 8.0):g})"
        text += f" To settle {', '.join(names)}: {todo}."
    return text


def _default_shapes(a: str, b: str, shape) -> list:
    from operators import OPERATORS

    if shape is not None:
        return [tuple(shape)]
    if all(n in OPERATORS or _user_operator(n) for n in (a, b)):
        return list(TABLE1_SHAPES)
    return [None]


def _user_operator(name: str) -> bool:
    """Whether ``name`` is the user's own operator (``mine.py:MyMixer`` taking a channel count)."""
    from .usertargets import is_user_target

    return is_user_target(name) and resolve(TargetSpec.make(name)).kind == "operator"


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
    budget_s: float = DEFAULT_COMPARE_BUDGET_S,
    chunks: int = CHUNKS,
    precision: float = 0.10,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    allocator: str = DEFAULT_ALLOCATOR,
) -> Comparison:
    """Measure ``a`` and ``b`` in interleaved chunks at each shape (default: the four Table-1 maps).

    ``budget_s`` is the measuring time per target per shape, split over ``chunks`` chunks. Both
    are measured in this process under ``allocator`` (:func:`fnbench.allocators.apply`), with the
    page faults of their timed iterations counted. ``batch`` defaults to 1, on cuda to 32 (the
    paper's throughput set-up); a given batch, 1 included, is used as given.
    """
    from .counting import count

    policy = resolve_policy(
        device,
        threads=threads,
        batch=batch,
        budget_s=budget_s,
        precision=precision,
        allocator=allocator,
        budget_example="8",
    )
    dev, threads, batch = policy.device, policy.threads, policy.batch_for(1)
    conditions = policy.conditions(runtime)
    allocators.apply(allocator)  # before anything is built: the models and inputs live under it
    pairs: list[tuple[Target, Target]] = []
    for sh in _default_shapes(a, b, shape):
        pairs.append(tuple(resolve(TargetSpec.make(n, sh, batch, layers)) for n in (a, b)))  # type: ignore[misc]

    rows = []
    if progress is not None:
        progress(f"compare {a} vs {b}", 0, len(pairs) * chunks)
    for i, (ta, tb) in enumerate(pairs):
        sides, modules = [], []
        for t in (ta, tb):
            check_runtime_for(t.spec.name, t.onnx is not None, runtime)
            if t.onnx is not None:
                c = onnx_cost(t.onnx, t.spec.batch, t.spec.shape)
                macs, mem = c["macs"], c["mem_bytes_counted"]
            else:
                counted = count(t.build(seed), t.example_input(seed=seed), fvcore=False)
                macs, mem = (t.analytic.macs if t.analytic else counted.macs), counted.mem_bytes_counted
            sides.append(Side(t.spec, macs, mem, batch=t.spec.batch))
            try:
                prepared, x = prepare_target(t, dev, conditions, seed)
            except Unsupported as e:
                raise UserError(f"{t.spec.name} cannot run under {runtime}: {e}") from None
            modules.append((prepared, x))
        per_chunk = budget_s / chunks
        for k in range(chunks):
            order = (0, 1) if k % 2 == 0 else (1, 0)  # A B, B A, A B …: neither side always goes first
            for j in order:
                prepared, x = modules[j]
                m = prepared.measure(
                    x,
                    device=dev.torch_device,
                    threads=threads,
                    budget_s=per_chunk,
                    min_rounds=2,
                    max_rounds=3,
                    seed=seed + k,
                    allocator=None,
                    peak_memory=False,  # compare reports latency and faults only
                )
                sides[j].faults_minor += sum(m.counts.minor)
                sides[j].faults_iters += sum(m.counts.iters)
                sides[j].samples_s += m.samples_s
                sides[j].chunk_ids += [k] * m.n
                sides[j].batch = m.batch
            if progress is not None:
                progress("", i * chunks + k + 1, len(pairs) * chunks)
        rows.append(_ratio_row(*sides, paired=True, seed=seed))
    c = Comparison(
        a,
        b,
        dev.kind,
        runtime,
        threads,
        rows,
        precision,
        allocator,
        where=f"On {dev.kind}: {dev.name}",
        budget_s=budget_s,
    )
    c.claim = _evaluate(c, kind=dev.kind, key=(dev.kind, runtime, threads, batch), paired=True, seed=seed)
    return c


def _evaluate(c: Comparison, *, kind: str, key, paired: bool, seed: int = 0, rows: list[dict] | None = None) -> dict:
    from .verdicts import PAPER_KIND, claim_seed, evaluate, flops_claim

    claim = flops_claim(c.a_name, c.b_name)
    if rows is None:
        rows = [sd.claim_row(c.precision) for r in c.rows for sd in (r.a, r.b)]
    return evaluate(claim, rows, kind=PAPER_KIND.get(kind), seed=seed + claim_seed(claim.id, key), paired=paired)


def _ratio_row(sa: Side, sb: Side, *, paired: bool, seed: int) -> ShapeComparison:
    """Latency ratio B / A of per-sample latency with a percentile bootstrap over chunks (rounds).

    Paired: chunk k of A and of B were taken side by side and are resampled together.
    """
    a, b = sa.chunk_medians() / sa.batch, sb.chunk_medians() / sb.batch
    ratio, ci, reps = stats.bootstrap_ratio_ci(b, a, paired=paired and a.size == b.size, seed=seed, return_draws=True)
    return ShapeComparison(sa, sb, ratio, ci, reps)


def _versioned(df: pd.DataFrame, name: str) -> str:
    """A user target's name as the frame holds it (``mine.py:MyMixer#1a2b3c4d``): the one version stored,
    or a UserError listing them when the files hold several."""
    names = set(df.target.dropna())
    if name in names:
        return name
    versions = sorted(n for n in names if n.startswith(name + "#"))
    if len(versions) > 1:
        raise UserError(
            f"{name} was measured in {len(versions)} versions of its file ({', '.join(versions)}); name one, "
            f"e.g. `fnbench compare {versions[-1]} …`"
        )
    return versions[0] if versions else name


def compare_from_results(
    paths,
    a: str,
    b: str,
    *,
    device: str | None = None,
    shape=None,
    runtime: str = "eager",
    seed: int = 0,
    precision: float | None = None,
    allocator: str = DEFAULT_ALLOCATOR,
) -> Comparison:
    """The same comparison from stored result records, read exactly as the report reads them.

    :func:`fnbench.merge.load_frame` pools repeats; the rows of one group (device, runtime,
    threads, batch; NCHW FP32 under ``allocator``, or the one allocator the files hold, unless
    ``runtime`` names another set-up as the report labels it, e.g. "eager channels_last") go to
    the claim engine with the report's seed, so the claim's number and verdict are the report's.
    The per-shape table bootstraps rounds, unpaired (the records were not interleaved).
    ``precision`` defaults to the records' own target.
    """
    from .merge import load_frame
    from .results import LEGACY_ALLOCATOR
    from .verdicts import GROUP_KEYS, op_pairs

    df = load_frame(list(paths))
    if not df.empty:
        a, b = _versioned(df, a), _versioned(df, b)
        alloc = df.get("allocator", pd.Series(LEGACY_ALLOCATOR, index=df.index)).fillna(LEGACY_ALLOCATOR)
        plain = (
            df.runtime_name.eq(runtime)
            & df.memory_format.fillna("contiguous").eq("contiguous")
            & df.dtype.fillna("float32").eq("float32")
            & df.target.isin([a, b])
        )
        # as in the report: files of one allocator are that allocator's answer; with several, ``allocator`` picks
        if alloc[plain].nunique() == 1:
            allocator = str(alloc[plain].iloc[0])
        plain &= alloc.eq(allocator)
        labelled = df.runtime.eq(runtime) & df.runtime.ne(df.runtime_name)  # e.g. "eager channels_last"
        df = df[df.target_kind.ne("probe") & (plain | labelled) & df.target.isin([a, b]) & df.status.eq("ok")]
        if device is not None:
            df = _on_device(df, device, a, b)
    if not df.empty:
        df = df.assign(batch_group=df["batch_requested"].fillna(df["batch"]))
        if shape is not None:
            df = df[df["shape"].eq("x".join(map(str, shape)))]
    groups = []
    for key, g in df.groupby(list(GROUP_KEYS), dropna=False, sort=True) if not df.empty else []:
        both = sorted(set(g[g.target.eq(a)]["shape"]) & set(g[g.target.eq(b)]["shape"]), key=str)
        if both:
            groups.append((key, g, both))
    if not groups:
        raise UserError(
            f"the result files hold no shape measured for both {a!r} and {b!r} (runtime {runtime}, "
            f"allocator {allocator}); run `fnbench run --target {a} --target {b}` first"
        )
    if len(groups) > 1:
        devices = {k[0] for k, _, _ in groups}
        if len(devices) > 1:
            raise UserError(
                f"{a} and {b} were measured on {len(devices)} devices: {_device_choices(df[df.device_key.isin(devices)])}; "
                "pick one with --device KEY (a kind or name picks it where only one device has it)"
            )
        raise UserError(
            f"{a} and {b} were measured under {len(groups)} set-ups (threads or batch) on one device; "
            "keep one set-up's files in the --from paths"
        )
    key, g, _ = groups[0]
    recs = g.to_dict("records")
    if precision is None:
        p = g["precision"].dropna() if "precision" in g else []
        precision = float(max(p)) if len(p) else 0.02
    rows = []
    pairs = op_pairs(recs, a, b)[0]
    if not pairs:
        raise UserError(_unpaired(g, a, b))
    for pair in pairs:
        sides = []
        for r in pair:
            sh = r["shape"]
            dims = tuple(int(v) for v in sh.split("x")) if isinstance(sh, str) else ()
            layers = None if pd.isna(r.get("layers")) else int(r["layers"])
            spec = TargetSpec(
                r["target"], dims, int(r["batch"]), layers, tuple(sorted(json.loads(r["options"]).items()))
            )
            rid = r.get("round_ids")
            rid = (
                list(rid)
                if isinstance(rid, (list, tuple, np.ndarray)) and len(rid) == len(r["samples_s"])
                else list(range(len(r["samples_s"])))
            )
            faults = r.get("minor_faults_per_iter")
            per_iter = None if faults is None or pd.isna(faults) else float(faults)
            sides.append(
                Side(
                    spec,
                    int(r["macs"]),
                    None if pd.isna(r.get("mem_bytes_counted")) else int(r["mem_bytes_counted"]),
                    list(r["samples_s"]),
                    rid,
                    int(r["batch"]),
                    # the merged row keeps a rate: stored as faults over a million iterations
                    faults_minor=0 if per_iter is None else round(per_iter * 10**6),
                    faults_iters=0 if per_iter is None else 10**6,
                    settled=bool(r.get("stable")),
                )
            )
        rows.append(_ratio_row(*sides, paired=False, seed=seed))
    threads = None if pd.isna(key[2]) else int(key[2])
    c = Comparison(
        a,
        b,
        recs[0]["device"],
        runtime,
        threads,
        rows,
        precision,
        allocator,
        where=f"On {recs[0]['device_label']}",
        source="results",
    )
    c.claim = _evaluate(c, kind=recs[0]["device"], key=key, paired=False, seed=seed, rows=recs)
    return c


def _device_choices(df: pd.DataFrame) -> str:
    """``"KEY (kind: name), …"`` for every device in ``df``."""
    first = df.drop_duplicates("device_key").sort_values("device_key")
    return ", ".join(
        f"{k} ({kind}: {name})" for k, kind, name in zip(first.device_key, first.device, first.device_name)
    )


def _on_device(df: pd.DataFrame, device: str, a: str, b: str) -> pd.DataFrame:
    """The rows of the device ``device`` names: its key, its name or its kind (cpu, arm, cuda).

    Two machines of one kind share ``--device cpu``; their keys (the ``device_key`` column of the
    report's results.csv, and the error that lists the choices) tell them apart, so a key or a
    name is accepted where a kind is not enough.
    """
    picked = df[df.device_key.eq(device) | df.device_name.eq(device) | df.device.eq(device)]
    if picked.empty:
        raise UserError(
            f"no record of {a} or {b} on a device {device!r} in the result files; "
            f"they hold {_device_choices(df) or 'none'}: give --device as one of those keys, names or kinds"
        )
    return picked


def _unpaired(g: pd.DataFrame, a: str, b: str) -> str:
    """Why A and B share a shape yet no row pairs: they were measured under other layers or options."""

    def setups(name: str) -> str:
        rows = g[g.target.eq(name)].drop_duplicates(["shape", "layers", "options"])
        return "; ".join(
            f"{sh} layers {'-' if pd.isna(lay) else int(lay)} options {opt}"
            for sh, lay, opt in zip(rows["shape"], rows["layers"], rows["options"])
        )

    return (
        f"{a} and {b} were measured at one shape but under different layers or options ({a}: {setups(a)}; "
        f"{b}: {setups(b)}); measure both with the same --layers and options (`fnbench run --target {a} "
        f"--target {b}`), or compare them live with `fnbench compare {a} {b}`"
    )


def compare_targets(
    a,
    b,
    *,
    shape=None,
    layers: int | None = None,
    device: str = "cpu",
    budget_s: float = DEFAULT_COMPARE_BUDGET_S,
    **kw,
):
    """``fnbench compare A B`` in this process (interleaved rounds); returns the ``--json`` dict.

    A and B may be names or zero-argument callables returning a module: compare always measures
    in this process, so a callable (which no worker could import) is measured like a name.
    """

    def name(target) -> str:
        return target if isinstance(target, str) else register_callable(target)

    result = compare(
        name(a), name(b), device=device, shape=tuple(shape) if shape else None, layers=layers, budget_s=budget_s, **kw
    )
    return result.as_dict()


class _CallableModule(type(sys.modules[__name__])):
    """``fnbench.compare(a, b)`` is the notebook API (:func:`compare_targets`), and ``fnbench.compare``
    is also this module: importing a submodule binds its name on the package, so the function cannot
    hold the name alone. Calling the module calls the API."""

    def __call__(self, a, b, **kw):
        return compare_targets(a, b, **kw)


sys.modules[__name__].__class__ = _CallableModule
