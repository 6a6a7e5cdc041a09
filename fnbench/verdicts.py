"""The claim engine: each claim defined once, evaluated the same way by ``report`` and ``compare``.

A :class:`Claim` carries everything that decides it: the statistic (how its number is made from
the rows), the threshold and direction, the targets it needs, and the phrase that states its
answer. :func:`evaluate` runs one claim on the rows of one measurement group (device × runtime ×
threads × batch; a layout or precision other than NCHW FP32 is part of the runtime label, and
further conditions are one more entry in :data:`GROUP_KEYS`). ``fnbench report`` calls it through
:func:`claim_table`, ``fnbench compare`` (live or ``--from``) through :func:`evaluate` on the same
rows with the same seed, so the same data give the same number, interval and verdict everywhere.

Verdicts follow their intervals (:func:`verdict`): ``supported`` when the bootstrap 95 % CI lies
wholly on the claimed side of the threshold, ``contradicted`` when it lies wholly on the other
side, ``inconclusive`` only when it straddles the threshold (or is not finite), and
``not measured`` when a target the claim needs is absent, failed or unsupported. A row that did
not settle (see :func:`fnbench.stats.settled`, the one stability rule) does not veto a verdict:
its uncertainty is already inside the interval, and it is named next to the verdict
(``unsettled`` column: "1 of 8 rows above their ±2% target: dwconv 96x56x56 ±3.1%").

Two verdicts per row, kept apart. ``verdict`` is the **direction**: does the paper's claim hold
here (the interval against the claim's threshold, as above). ``reproduction`` asks whether this
device reproduces the paper's *number*: ``reproduces`` when the 95 % CI contains the paper's
value of the same statistic for the same device class, ``higher`` / ``lower`` when it excludes
it (``measured_over_paper`` beside), ``no paper value`` where the paper has none. A device is
matched to a paper column by its class and the match is named in ``paper_match`` and the note
(an AMD EPYC is compared with the paper's CPU column, the i9-9900X; a Neoverse with its ARM
column, the Cortex-A72; an H200 with its GPU column, the RTX 2080Ti). Each :class:`Claim` quotes
where the paper states it (``quote``); a number the paper shows but states no claim about is an
**observation** (``observation=True``): it gets a reproduction and the direction verdict
``not claimed``, because a verdict on an unstated sentence marks red a number that agrees with
the paper (Table 1's PConv stack is slower than its DWConv stack on CPU, 5.46 vs 3.59 ms).

The statistics, and which is the paper's:

``pconv_vs_dwconv_flops``, ``pconv_vs_gconv_flops``  R = mean_maps(GMAC/s of pconv) /
    mean_maps(GMAC/s of the other) > 1 over the Table-1 maps measured for both. This is the
    **paper's statistic**: its 6.2× (CPU), 10.5× (GPU) and 22.8× (ARM) divide Table 1's average
    GFLOPS (39.91/6.42, 3274/313, 2.73/0.12). ``paper_ratio`` is the same statistic over the same
    maps from Table 1's cells (ARM: 2.7325 / 0.1225 = 22.3 from the cells). Beside it, the
    geometric mean of the per-map ratios (``per_map_ratio``, with its own CI), which is what a
    map-by-map comparison means; ``per_map`` lists each map's ratio.
``pconv_vs_dwconv_latency``, ``pconv_vs_gconv_latency``  observations: the geometric mean over
    the maps of latency(pconv stack) / latency(other stack); ``per_map`` lists each map. Paper
    value: the same from Table 1's latencies (GPU: inverted fps).
``pconv_latency_vs_flops``  S = Σ_maps latency(conv) / Σ_maps latency(pconv) against the FLOP
    reduction Σ MACs(conv) / Σ MACs(pconv) (= 16 for n_div 4): "PConv's latency falls by less
    than its FLOPs" is S < threshold.
``t0_faster_than_<peer>``  latency(peer) / latency(fasternet_t0) > 1, per sample.

Uncertainty: a percentile bootstrap of the claim's statistic. Rows of an interleaved run (each
round keeps the pass and cycle it was taken in, :mod:`fnbench.passes`) are resampled together,
at the same moments: the same processes, then the same cycles, for every row of the claim
(:func:`fnbench.pairing.joint_draws`), so drift of the host common to the rows cancels in their
ratio; where the rows share too few cycles, pair by pair; ``compare``'s side-by-side chunks are
paired by chunk. Rows without cycles (runs that measured one target after another) are resampled
each on its own: workers, then rounds (:func:`fnbench.stats.hierarchical_median_draws`), or rounds
(fresh allocations); rows without round ids fall back to single iterations. Each claim's note
says which. The percentile interval of the replicates is widened for the few processes behind
them (``t_{k-1} / z`` for ``k`` processes: 1.42 for a run's five passes), as a row's interval is
(:func:`fnbench.stats.hierarchical_median_ci`): two quiet runs of ``make run`` gave PConv/DWConv
FLOPS of 3.641 and 3.712, and the unwidened interval of the second, 3.660–3.759, missed the
first run's value (``benchmarks/repeatability.py``). The RNG seed is derived from the claim and
the group, not from their order.

Example::

    >>> from fnbench.merge import load_frame
    >>> table = claim_table(load_frame("results"))  # doctest: +SKIP
    >>> print(table.answer.iloc[0])  # doctest: +SKIP
    On cpu: AMD EPYC PConv reaches 3.6× DWConv's FLOPS (95% CI 3.6–3.7×; paper 6.2×): supported, below the paper's value.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import stats
from .merge import device_labels, merge_repeats
from .pairing import Rounds, joint_draws, rounds_of
from .reference import FASTERNET_T0 as T0
from .reference import HEADLINE_PEERS, paper_networks, paper_table1
from .stats import N_BOOT
from .units import gmacs_per_s

__all__ = [
    "Claim",
    "Evidence",
    "CLAIMS",
    "NOT_MEASURED",
    "NOT_CLAIMED",
    "VERDICT_WORDS",
    "REPRODUCTION_WORDS",
    "PAPER_DEVICES",
    "CLAIM_COLUMNS",
    "PAPER_KIND",
    "GROUP_KEYS",
    "claim_table",
    "evaluate",
    "flops_claim",
    "latency_claim",
    "verdict",
    "reproduction",
    "answer_sentence",
    "unsettled_text",
    "claim_seed",
    "pretty",
    "paper_latency_ms",
    "op_pairs",
]

NOT_MEASURED = "not measured"
#: The direction verdict of an observation: the paper shows the number but states no claim about it.
NOT_CLAIMED = "not claimed"
VERDICT_WORDS = (*stats.VERDICTS, NOT_CLAIMED, NOT_MEASURED)
NO_PAPER_VALUE = "no paper value"
#: Does the 95 % CI contain the paper's value (``reproduces``) or lie wholly above / below it?
REPRODUCTION_WORDS = ("reproduces", "higher", "lower", NO_PAPER_VALUE, NOT_MEASURED)
#: Which of the paper's device columns a device kind is compared with: every x86 CPU with its CPU
#: column, every aarch64 CPU with its ARM column, every NVIDIA GPU with its GPU column.
PAPER_KIND = {"cpu": "cpu", "cuda": "gpu", "arm": "arm"}
#: The device behind each of the paper's columns, named wherever a device is compared with it.
PAPER_DEVICES = {
    "cpu": "Intel i9-9900X, 1 thread, batch 1",
    "gpu": "NVIDIA RTX 2080Ti, batch 32",
    "arm": "Cortex-A72 (Raspberry Pi 4B), 1 thread, batch 1",
}
#: The measurement conditions a claim is evaluated within; a new condition is one more column here.
GROUP_KEYS = ("device_key", "runtime", "threads", "batch_group")
CLAIM_COLUMNS = [
    "device",
    "device_key",
    "device_kind",
    "runtime",
    "threads",
    "batch",
    "claim_id",
    "claim",
    "paper_quote",
    "statistic",
    "ratio",
    "ci95_low",
    "ci95_high",
    "threshold",
    "threshold_meaning",
    "direction",
    "verdict",
    "paper_ratio",
    "paper_device",
    "reproduction",
    "measured_over_paper",
    "paper_match",
    "per_map_ratio",
    "per_map_ci95_low",
    "per_map_ci95_high",
    "per_map",
    "unsettled",
    "n_rows",
    "unit",
    "note",
    "answer",
]
_NAMES = {
    "pconv": "PConv",
    "dwconv": "DWConv",
    "gconv": "GConv",
    "conv": "Conv",
    "pwconv": "PWConv",
    T0: "FasterNet-T0",
    "mobilevit_xxs": "MobileViT-XXS",
    "mobilenetv2": "MobileNetV2",
    "shufflenetv2_x1_5": "ShuffleNetV2 x1.5",
}


def pretty(name: str) -> str:
    """Display name of a target (``pconv`` → PConv); unknown names are shown as they are."""
    return _NAMES.get(name, name)


@dataclass
class Evidence:
    """What a claim's statistic gives on one group's rows, before the verdict."""

    ratio: float
    reps: np.ndarray  # bootstrap replicates of ``ratio``
    threshold: float
    paper_ratio: float
    rows: list[dict]
    note: str = ""
    pairing: str = ""  # how the rows' replicates were drawn together (or not)
    per_map: list[tuple[str, float]] = field(default_factory=list)  # (map, ratio) per map
    per_map_ratio: float = float("nan")  # geometric mean of the per-map ratios
    per_map_reps: np.ndarray | None = None


@dataclass(frozen=True)
class Claim:
    """One testable statement, defined once.

    ``evaluate(rows, kind, rng, n_boot, paired)`` returns :class:`Evidence` or a string saying
    what was missing; ``phrase(ratio)`` states the measured answer ("PConv reaches 3.6× DWConv's
    FLOPS"); ``needs`` names the targets it rests on.
    """

    id: str
    text: str
    direction: str  # '>' : supported when the CI lies above the threshold; '<' : below
    statistic: str
    unit: str
    needs: tuple[str, ...]
    evaluate: Callable[..., "Evidence | str"] = field(compare=False, repr=False)
    phrase: Callable[[float], str] = field(compare=False, repr=False)
    per_map_range: bool = False  # the answer sentence also gives the range of the per-map ratios
    threshold_meaning: str = "parity"  # what the threshold stands for, shown beside it
    #: Where the paper states it, and what it states (section or table, short and factual).
    quote: str = ""
    #: True for a number the paper shows but states no claim about: reproduced, never given a direction verdict.
    observation: bool = False


# -- bootstrap ---------------------------------------------------------------------------------------
def _has_round_ids(rows: Sequence) -> bool:
    return all(
        isinstance(r.get("round_ids"), (list, tuple, np.ndarray)) and len(r["round_ids"]) == len(r["samples_s"])
        for r in rows
    )


def _units(row) -> np.ndarray:
    """Per-round medians of a row's samples (or the samples themselves without round ids)."""
    s = np.asarray(row["samples_s"], dtype=float)
    if _has_round_ids([row]) and len(set(row["round_ids"])) > 1:
        return stats.round_medians(s, row["round_ids"])
    return s  # no round ids, or a single round: iterations are all there is to resample


def _latency(row) -> float:
    """The row's median latency per sample (seconds)."""
    return float(row["median_s"]) / row["batch"]


def _draws(row, rng: np.random.Generator, n_boot: int, idx: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap replicates of the row's median latency per sample (seconds).

    ``idx`` (n_boot × units) resamples with given indices: the pairing of interleaved chunks.
    """
    w = row.get("worker_ids")
    if (
        idx is None
        and _has_round_ids([row])
        and isinstance(w, (list, tuple, np.ndarray))
        and len(w) == len(row["samples_s"])
        and len(set(w)) > 1
    ):
        return stats.hierarchical_median_draws(row["samples_s"], row["round_ids"], w, n_boot, rng) / row["batch"]
    u = _units(row)
    if idx is None:
        idx = rng.integers(0, u.size, size=(n_boot, u.size))
    return np.median(u[idx], axis=1) / row["batch"]


def _pair_draws(a, b, rng, n_boot, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    ua, ub = _units(a), _units(b)
    if paired and ua.size == ub.size:
        idx = rng.integers(0, ua.size, size=(n_boot, ua.size))
        return _draws(a, rng, n_boot, idx), _draws(b, rng, n_boot, idx)
    return _draws(a, rng, n_boot), _draws(b, rng, n_boot)


def _rounds(row) -> Rounds | None:
    """The row's rounds with the moment each was taken, where an interleaved run stored it (else None)."""
    return rounds_of(row["samples_s"], row.get("round_ids") or [], row.get("cycle_keys"))


def _claim_draws(pairs, rng, n_boot, paired: bool) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Bootstrap replicates of each pair's latencies per sample, and how the rows were paired.

    ``paired``: the rows of each pair were taken in side-by-side chunks (``compare``), resampled
    with shared indices. Otherwise, rows of an interleaved run are resampled jointly by the moment
    each round was taken (:func:`fnbench.pairing.joint_draws`): every row of the claim together,
    else each pair by itself; rows without cycles (runs that measured one target after another)
    are resampled each on its own, as before.
    """
    if paired:
        return [_pair_draws(a, b, rng, n_boot, True) for a, b in pairs], "rows paired by chunk (measured side by side)"
    rows = [r for pr in pairs for r in pr]
    rounds = [_rounds(r) for r in rows]
    joint = joint_draws(rounds, n_boot, rng) if all(rounds) else None
    if joint is not None:
        d = [x / r["batch"] for x, r in zip(joint, rows)]
        return list(zip(d[::2], d[1::2])), "rows paired by cycle (all resampled at the same moments)"
    out, n_paired = [], 0
    for (a, b), ra, rb in zip(pairs, rounds[::2], rounds[1::2]):
        pj = joint_draws([ra, rb], n_boot, rng) if ra and rb else None
        n_paired += pj is not None
        out.append(
            (pj[0] / a["batch"], pj[1] / b["batch"]) if pj is not None else _pair_draws(a, b, rng, n_boot, False)
        )
    if n_paired == len(pairs):
        return out, "rows paired by cycle, map by map"
    if n_paired:
        return out, f"rows paired by cycle at {n_paired} of {len(pairs)} maps (the others share too few cycles)"
    if any(rounds):
        return out, "rows unpaired (too few rounds in common cycles)"
    return out, "rows unpaired (measured one after another)"


def _geo(x) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(x, dtype=float)))))


# -- selecting the rows a claim rests on -----------------------------------------------------------
def _shape_tuple(shape: str | None):
    return tuple(int(v) for v in shape.split("x")) if isinstance(shape, str) and shape else None


def _table1_keys() -> set:
    t = paper_table1()
    return {(int(c), int(h), int(w)) for c, h, w in zip(t.c, t.h, t.w)}


def _options(v) -> dict:
    return json.loads(v) if isinstance(v, str) else dict(v or {})


def op_pairs(rows: list[dict], a: str, b: str) -> tuple[list[tuple[dict, dict]], bool, str]:
    """Matched (a, b) rows per shape: Table-1 settings first, else any shared shape/layers/options.

    Returns the pairs, whether they are Table-1 cells, and a note on what was missing.
    """
    mine = [r for r in rows if r.get("target") in (a, b)]
    ok = [r for r in mine if r.get("status", "ok") == "ok"]

    def index(op):
        return {
            (r["shape"], r.get("layers"), json.dumps(_options(r.get("options")), sort_keys=True)): r
            for r in ok
            if r["target"] == op
        }

    ia, ib = index(a), index(b)
    common = [k for k in ia if k in ib]
    t1 = _table1_keys()
    table1 = [k for k in common if _shape_tuple(k[0]) in t1 and k[1] == 10 and k[2] == "{}"]
    if table1:
        return [(ia[k], ib[k]) for k in sorted(table1, key=lambda k: _shape_tuple(k[0]))], True, ""
    if common:
        return (
            [(ia[k], ib[k]) for k in sorted(common, key=lambda k: str(k))],
            False,
            "not at the paper's Table-1 settings; no paper value",
        )
    return [], False, _missing_note(mine, [a, b])


def _missing_note(rows: list[dict], names: Sequence[str]) -> str:
    parts = []
    for n in names:
        r = [x for x in rows if x.get("target") == n]
        if not r:
            parts.append(f"{n} absent")
        elif not any(x.get("status", "ok") == "ok" for x in r):
            parts.append(f"{n} {r[-1].get('status')}: {r[-1].get('error')}")
    return "; ".join(parts) or "no shape measured for both"


# -- paper values ----------------------------------------------------------------------------------
@functools.cache
def _table1_cells() -> dict[tuple, dict]:
    """Table 1's rows by (operator, C, H, W), read once: a claim table looks cells up dozens of times."""
    return {(r["op"], int(r["c"]), int(r["h"]), int(r["w"])): r for r in paper_table1().to_dict("records")}


def _paper_cell(op: str, shape: str, kind: str, col: str) -> float:
    row = _table1_cells().get((op, *_shape_tuple(shape)))
    return float(row[f"{kind}_{col}"]) if row is not None else float("nan")


def _paper_latency_ms(op_or_net: str, kind: str, shape: str | None = None) -> float:
    """The paper's per-sample latency in ms for a Table-1 cell (shape given) or a network."""
    if shape is not None:
        if kind == "gpu":
            return 1e3 / _paper_cell(op_or_net, shape, "gpu", "fps_b32")
        return _paper_cell(op_or_net, shape, kind, "ms")
    n = paper_networks()
    row = n[n.alias == op_or_net]
    if not len(row):
        return float("nan")
    if kind == "gpu":
        return 1e3 / float(row.gpu_fps_b32.iloc[0])
    v = row[f"{kind}_ms"].iloc[0]
    return float(v) if pd.notna(v) else float("nan")


#: The paper's per-sample latency (ms) of a Table-1 cell or a network, for its device of a kind.
paper_latency_ms = _paper_latency_ms


# -- the statistics ----------------------------------------------------------------------------------
def _maps_note(note: str, pairs) -> str:
    return "; ".join(x for x in (note, "maps: " + ", ".join(str(p["shape"]) for p, _ in pairs)) if x)


def flops_claim(a: str, b: str, claim_id: str | None = None, quote: str = "") -> Claim:
    """ "A's FLOPS > B's FLOPS": ratio of mean GMAC/s over the shapes measured for both (paper's statistic).

    ``quote`` is the paper's statement where it makes this claim (the built-in pairs in :data:`CLAIMS`);
    any other pair (``fnbench compare conv pwconv``) is the same test with no quote.
    """

    def run(rows, kind, rng, n_boot, paired=False):
        pairs, is_t1, note = op_pairs(rows, a, b)
        if not pairs:
            return note
        ga = np.array([gmacs_per_s(p["macs"], p["median_s"]) for p, _ in pairs])
        gb = np.array([gmacs_per_s(o["macs"], o["median_s"]) for _, o in pairs])
        draws, how = _claim_draws(pairs, rng, n_boot, paired)
        ba = np.stack([gmacs_per_s(p["macs"] / p["batch"], da) for (p, _), (da, _) in zip(pairs, draws)])
        bb = np.stack([gmacs_per_s(o["macs"] / o["batch"], db) for (_, o), (_, db) in zip(pairs, draws)])
        paper = float("nan")
        if is_t1 and kind is not None:
            pa = [_paper_cell(a, p["shape"], kind, "gmacs_per_s") for p, _ in pairs]
            pb = [_paper_cell(b, p["shape"], kind, "gmacs_per_s") for p, _ in pairs]
            paper = float(np.mean(pa) / np.mean(pb))
        per = ga / gb
        return Evidence(
            ratio=float(ga.mean() / gb.mean()),
            reps=ba.mean(axis=0) / bb.mean(axis=0),
            threshold=1.0,
            paper_ratio=paper,
            rows=[r for pr in pairs for r in pr],
            note=_maps_note(note, pairs),
            pairing=how,
            per_map=[(p["shape"], float(v)) for (p, _), v in zip(pairs, per)],
            per_map_ratio=_geo(per),
            per_map_reps=np.exp(np.mean(np.log(ba / bb), axis=0)),
        )

    return Claim(
        claim_id or f"{a}_vs_{b}_flops",
        f"{pretty(a)} FLOPS > {pretty(b)} FLOPS",
        ">",
        f"mean GMAC/s of {a} / mean GMAC/s of {b} over the maps (the paper's statistic)",
        "× (GMAC/s ratio)",
        (a, b),
        run,
        lambda r: f"{pretty(a)} reaches {_x(r)} {pretty(b)}'s FLOPS",
        quote=quote,
    )


def latency_claim(a: str, b: str, claim_id: str | None = None, *, quote: str = "", observation: bool = False) -> Claim:
    """ "An A stack is faster than a B stack": geometric mean over maps of latency(A) / latency(B) < 1.

    With ``observation`` the ratio is only compared with the paper's (its Table 1 shows a PConv
    stack *slower* than a DWConv stack on CPU, 5.46 vs 3.59 ms at 96×56×56, and states no claim
    about it: a direction verdict there would mark red a number that reproduces the paper).
    """

    def run(rows, kind, rng, n_boot, paired=False):
        pairs, is_t1, note = op_pairs(rows, a, b)
        if not pairs:
            return note
        per = np.array([_latency(p) / _latency(o) for p, o in pairs])
        draws, how = _claim_draws(pairs, rng, n_boot, paired)
        reps = np.exp(np.mean(np.log(np.stack([da / db for da, db in draws])), axis=0))
        paper = float("nan")
        if is_t1 and kind is not None:
            paper = _geo(
                [_paper_latency_ms(a, kind, p["shape"]) / _paper_latency_ms(b, kind, p["shape"]) for p, _ in pairs]
            )
        return Evidence(
            ratio=_geo(per),
            reps=reps,
            threshold=1.0,
            paper_ratio=paper,
            rows=[r for pr in pairs for r in pr],
            note=_maps_note(note, pairs),
            pairing=how,
            per_map=[(p["shape"], float(v)) for (p, _), v in zip(pairs, per)],
        )

    text = (
        f"{pretty(a)} stack latency / {pretty(b)} stack latency"
        if observation
        else f"{pretty(a)} stack is faster than {pretty(b)} stack"
    )
    return Claim(
        claim_id or f"{a}_vs_{b}_latency",
        text,
        "<",
        f"geometric mean over the maps of latency({a}) / latency({b})",
        "× (latency ratio)",
        (a, b),
        run,
        lambda r: f"a {pretty(a)} stack takes {_x(r)} the latency of a {pretty(b)} stack",
        True,
        quote=quote,
        observation=observation,
    )


def _latency_vs_flops(rows, kind, rng, n_boot, paired=False):
    pairs, is_t1, note = op_pairs(rows, "conv", "pconv")
    if not pairs:
        return note
    lc = sum(_latency(c) for c, _ in pairs)
    lp = sum(_latency(p) for _, p in pairs)
    mc = sum(c["macs"] / c["batch"] for c, _ in pairs)
    mp = sum(p["macs"] / p["batch"] for _, p in pairs)
    draws, how = _claim_draws(pairs, rng, n_boot, paired)
    reps = sum(dc for dc, _ in draws) / sum(dp for _, dp in draws)
    paper = float("nan")
    if is_t1 and kind is not None:
        paper = float(
            sum(_paper_latency_ms("conv", kind, c["shape"]) for c, _ in pairs)
            / sum(_paper_latency_ms("pconv", kind, c["shape"]) for c, _ in pairs)
        )
    return Evidence(
        ratio=lc / lp,
        reps=reps,
        threshold=mc / mp,
        paper_ratio=paper,
        rows=[r for pr in pairs for r in pr],
        note=_maps_note(note, pairs),
        pairing=how,
        per_map=[(c["shape"], _latency(c) / _latency(p)) for c, p in pairs],
    )


#: Table 3's statement per headline peer: FasterNet-T0 against it at similar accuracy (top-1 %, latency).
_PEER_QUOTES = {
    "mobilevit_xxs": "Abstract and Table 3: FasterNet-T0 (71.9% top-1) is 2.8×, 3.3× and 2.4× faster than "
    "MobileViT-XXS (69.0%) on GPU, CPU and ARM (CPU 9.2 vs 30.8 ms)",
    "mobilenetv2": "Table 3: FasterNet-T0 (71.9% top-1) runs faster than MobileNetV2 at similar accuracy "
    "(GPU 6807 vs 4198 fps, CPU 9.2 vs 12.2 ms, ARM 143 vs 442 ms)",
    "shufflenetv2_x1_5": "Table 3: FasterNet-T0 (71.9% top-1) runs faster than ShuffleNetV2 ×1.5 at similar accuracy "
    "(GPU 6807 vs 4878 fps, CPU 9.2 vs 12.1 ms, ARM 143 vs 266 ms)",
}


def _network_claim(peer: str) -> Claim:
    def run(rows, kind, rng, n_boot, paired=False):
        nets = [
            r
            for r in rows
            if r.get("target_kind") == "network" and r.get("target") in (T0, peer) and _options(r.get("options")) == {}
        ]
        ok = [r for r in nets if r.get("status", "ok") == "ok"]
        t0 = [r for r in ok if r["target"] == T0]
        pr = [r for r in ok if r["target"] == peer]
        if not t0 or not pr:
            return _missing_note(nets, [T0, peer])
        # one row each; with several (e.g. input sizes) take the most samples
        a = max(pr, key=lambda r: len(r["samples_s"]))
        b = max(t0, key=lambda r: len(r["samples_s"]))
        ((da, db),), how = _claim_draws([(a, b)], rng, n_boot, paired)
        paper = _paper_latency_ms(peer, kind) / _paper_latency_ms(T0, kind) if kind is not None else float("nan")
        return Evidence(
            ratio=_latency(a) / _latency(b), reps=da / db, threshold=1.0, paper_ratio=paper, rows=[a, b], pairing=how
        )

    return Claim(
        f"t0_faster_than_{peer}",
        f"FasterNet-T0 is faster than {pretty(peer)}",
        ">",
        f"latency({peer}) / latency({T0}), per sample",
        "× (latency ratio)",
        (T0, peer),
        run,
        lambda r: f"FasterNet-T0 runs {_x(r)} as fast as {pretty(peer)}",
        quote=_PEER_QUOTES.get(peer, ""),
    )


def _num(r: float) -> str:
    """A ratio for a sentence: two significant figures below 1, one decimal below 10, three figures above."""
    return f"{r:.2g}" if r < 1 else f"{r:.1f}" if r < 10 else f"{r:.3g}"


def _x(r: float) -> str:
    return _num(r) + "×"


def _span(lo: float, hi: float) -> str:
    """An interval for a sentence, one figure finer where both ends would round alike ("3.67–3.73×", not "3.7–3.7×")."""
    a, b = _num(lo), _num(hi)
    if a == b:
        a, b = (f"{r:.3g}" if r < 1 else f"{r:.2f}" if r < 10 else f"{r:.4g}" for r in (lo, hi))
    return f"{a}–{b}×"


CLAIMS: tuple[Claim, ...] = (
    flops_claim(
        "pconv",
        "dwconv",
        "pconv_vs_dwconv_flops",
        "§3.1 and Table 1: PConv has a higher FLOPS than DWConv, 10.5×, 6.2× and 22.8× on GPU, CPU and ARM "
        "(mean GFLOPS 3274/313, 39.91/6.42, 2.73/0.12)",
    ),
    flops_claim(
        "pconv",
        "gconv",
        "pconv_vs_gconv_flops",
        "§3.1 and Table 1: PConv has a higher FLOPS than GConv (mean GFLOPS 3274 vs 1833 on GPU, 39.91 vs 25.93 "
        "on CPU, 2.73 vs 1.92 on ARM)",
    ),
    latency_claim(
        "pconv",
        "dwconv",
        "pconv_vs_dwconv_latency",
        quote="Table 1 shows, and does not claim: a PConv stack is slower than a DWConv stack on CPU "
        "(5.46 vs 3.59 ms at 96×56×56)",
        observation=True,
    ),
    latency_claim(
        "pconv",
        "gconv",
        "pconv_vs_gconv_latency",
        quote="Table 1 shows, and does not claim: PConv and GConv stacks of the same FLOPs at different "
        "latencies (CPU 5.46 vs 21.90 ms at 96×56×56)",
        observation=True,
    ),
    Claim(
        "pconv_latency_vs_flops",
        "PConv's latency falls by less than its FLOPs",
        "<",
        "latency speed-up Σ latency(conv) / Σ latency(pconv) over the maps, against the FLOP reduction "
        "Σ MACs(conv) / Σ MACs(pconv)",
        "× (latency speed-up)",
        ("conv", "pconv"),
        _latency_vs_flops,
        lambda r: f"PConv stacks run {_x(r)} faster than Conv stacks",
        threshold_meaning="the FLOP reduction Σ MACs(conv) / Σ MACs(pconv)",
        quote="§3.1 and Table 1: with r = 1/4 PConv has 1/16 of a regular Conv's FLOPs, and its latency falls "
        "by less (CPU: 35.67 vs 5.46 ms at 96×56×56)",
    ),
    *(_network_claim(p) for p in HEADLINE_PEERS),
)


# -- verdicts and sentences --------------------------------------------------------------------------
def verdict(ci_low: float, ci_high: float, threshold: float, direction: str) -> str:
    """The interval decides: supported / contradicted when it lies on one side of ``threshold``."""
    if direction == ">":
        return stats.verdict((ci_low, ci_high), threshold)
    # "below the threshold": the same test on reciprocals
    if not (ci_low > 0 and ci_high > 0):
        return "inconclusive"
    return stats.verdict((1.0 / ci_high, 1.0 / ci_low), 1.0 / threshold)


def reproduction(ci_low: float, ci_high: float, paper: float) -> str:
    """Does the interval reproduce the paper's value: ``reproduces`` (inside), ``higher`` / ``lower``.

    ``no paper value`` where the paper has none for this device class and statistic; an interval
    that is not finite cannot exclude anything, so it is read as reproducing only if it is.
    """
    if paper is None or not math.isfinite(paper):
        return NO_PAPER_VALUE
    if math.isfinite(ci_low) and ci_low > paper:
        return "higher"
    if math.isfinite(ci_high) and ci_high < paper:
        return "lower"
    return "reproduces"


_REPRO_PHRASE = {
    "reproduces": "at the paper's value",
    "higher": "above the paper's value",
    "lower": "below the paper's value",
    NO_PAPER_VALUE: "no paper value",
}


def paper_match(device_kind: str, device: str) -> str:
    """Which paper column a device is compared with, named: never a silent match (AMD EPYC → CPU)."""
    kind = PAPER_KIND.get(device_kind)
    if kind is None:
        return f"the paper has no {device_kind} device: no paper value"
    name = device.split(": ", 1)[-1]
    return f"{name} compared with the paper's {kind.upper()} column ({PAPER_DEVICES[kind]})"


def _row_label(r: dict) -> str:
    return f"{r['target']} {r.get('shape') or ''}".strip()


def _n_rounds(r: dict) -> int | None:
    ids = r.get("round_ids")
    return len(set(ids)) if isinstance(ids, (list, tuple, np.ndarray)) and len(ids) else None


def unsettled_text(rows: Sequence[dict], *, detail: bool = True) -> str:
    """Rows that missed their precision target, counted and named ('' when every row settled).

    ``detail`` adds each row's half-width (or its single round); without it at most three rows
    are named, for a sentence.
    """
    bad = [r for r in rows if not r.get("stable")]
    if not bad:
        return ""
    parts = []
    for r in bad:
        hw = r.get("rel_ci_halfwidth")
        if not detail:
            have = ""
        elif _n_rounds(r) == 1:
            have = " (1 round)"
        elif isinstance(hw, (int, float)) and math.isfinite(hw):
            have = f" ±{hw:.1%}"
        else:
            have = ""
        parts.append(_row_label(r) + have)
    if not detail and len(parts) > 3:
        parts = parts[:3] + [f"{len(parts) - 3} more"]
    targets = {
        r.get("precision")
        for r in bad
        if isinstance(r.get("precision"), (int, float)) and not math.isnan(r.get("precision"))
    }
    target = f" their ±{targets.pop():.0%} target" if len(targets) == 1 else " their precision target"
    return f"{len(bad)} of {len(rows)} rows above{target}: " + ", ".join(parts)


def _where(device: str, runtime, threads) -> str:
    extra = [str(runtime)] if runtime not in (None, "eager") else []
    if threads is not None and not (isinstance(threads, float) and math.isnan(threads)):
        extra.append(f"{int(threads)} thread" + ("s" if int(threads) != 1 else ""))
    return f"On {device}" + (f" ({', '.join(extra)})" if extra else "")


def answer_sentence(row: dict | pd.Series, claim: Claim | None = None, *, where: str | None = None) -> str:
    """The answer in one sentence, e.g. ``On cpu: X PConv reaches 3.6× DWConv's FLOPS (95% CI 3.6–3.7×; paper 6.2×): supported.``"""
    claim = claim or _BY_ID[row["claim_id"]]
    where = where if where is not None else _where(row["device"], row["runtime"], row.get("threads"))
    if row["verdict"] == NOT_MEASURED:
        return f"{where}: {claim.text}: not measured ({row['note']})."
    paper = row.get("paper_ratio")
    paper_txt = f"; paper {_x(paper)}" if paper is not None and not pd.isna(paper) else ""
    thr = (
        ""
        if pd.isna(row["threshold"]) or row["threshold"] == 1.0
        else f"; threshold {row['direction']} {row['threshold']:.3g}×"
    )
    per = row.get("per_map")
    per_txt = ""
    if claim.per_map_range and isinstance(per, str) and per:
        vals = [float(p.split(" ")[1].rstrip("×")) for p in per.split(", ")]
        per_txt = f", {_num(min(vals))}–{_x(max(vals))} per map" if len(vals) > 1 else ""
    text = (
        f"{where} {claim.phrase(row['ratio'])} (95% CI {_span(row['ci95_low'], row['ci95_high'])}"
        f"{per_txt}{thr}{paper_txt}): "
    )
    repro = _REPRO_PHRASE.get(row.get("reproduction"), "")
    if row["verdict"] == NOT_CLAIMED:
        text += f"{repro} (an observation, not a claim of the paper)"
    else:
        text += row["verdict"] + (f", {repro}" if repro else "")
    if row.get("unsettled"):
        bad = row["unsettled"].split(" rows above", 1)[0]
        text += f"; {bad} rows unsettled"
    return text + "."


def _processes(rows: Sequence[dict]) -> int:
    """The fewest processes any of ``rows`` was sampled in (0 where a row was sampled in one process)."""
    counts = []
    for r in rows:
        w = r.get("worker_ids")
        ok = isinstance(w, (list, tuple, np.ndarray)) and len(w) == len(r["samples_s"])
        counts.append(len(set(w)) if ok else 0)
    return min(counts, default=0)


def _interval(point: float, reps: np.ndarray, k: int) -> tuple[float, float]:
    """The claim's 95 % interval: the percentile interval of its replicates, widened for ``k`` processes
    (the rows' processes are the clusters both the rows' and the paired bootstrap resample: five passes
    see five process levels, which a percentile interval alone under-covers) and stretched to hold the point."""
    ci = stats.percentile_ci(reps)
    if k >= 2:
        ci = stats.widened_for_clusters(point, ci, k)
    return stats.containing(point, ci)[:2]


#: A row whose timed iterations waited for a CPU more than this share of their time had company on its core.
CONTENDED = 0.05


def contention_note(rows: Sequence[dict]) -> str:
    """Which of ``rows`` were contended (their timed blocks waited for a CPU, ``wait_fraction``): another
    process on the core inflates long iterations more than short ones, so a ratio of such rows is biased,
    and its interval, which covers noise, does not cover that."""
    busy = [r for r in rows if isinstance(r.get("wait_fraction"), float) and r["wait_fraction"] > CONTENDED]
    if not busy:
        return ""
    worst = max(r["wait_fraction"] for r in busy)
    return (
        f"{len(busy)} of {len(rows)} rows contended (waited for a CPU up to {worst:.0%} of their timed time): "
        "the ratio may be biased; measure again on a quiet machine"
    )


def claim_seed(claim_id: str, key: Sequence) -> int:
    """A seed from the claim and its group, so every caller draws the same replicates."""
    return zlib.crc32(
        repr((claim_id, *[None if (isinstance(k, float) and math.isnan(k)) else k for k in key])).encode()
    )


def evaluate(
    claim: Claim, rows: list[dict], *, kind: str | None, seed: int, n_boot: int = N_BOOT, paired: bool = False
) -> dict:
    """One claim on one group's rows: the claim-table columns that do not describe the group."""
    rng = np.random.default_rng(seed)
    res = claim.evaluate(rows, kind, rng, n_boot, paired)
    out = dict(
        claim_id=claim.id,
        claim=claim.text,
        paper_quote=claim.quote,
        statistic=claim.statistic,
        direction=claim.direction,
        threshold_meaning=claim.threshold_meaning,
    )
    if isinstance(res, str):
        out.update(
            ratio=np.nan,
            ci95_low=np.nan,
            ci95_high=np.nan,
            threshold=np.nan,
            verdict=NOT_MEASURED,
            paper_ratio=np.nan,
            reproduction=NOT_MEASURED,
            measured_over_paper=np.nan,
            per_map_ratio=np.nan,
            per_map_ci95_low=np.nan,
            per_map_ci95_high=np.nan,
            per_map="",
            unsettled="",
            n_rows=0,
            unit="",
            note=res,
        )
        return out
    k = _processes(res.rows)
    lo, hi = _interval(res.ratio, res.reps, k)
    plo = phi = np.nan
    if res.per_map_reps is not None:
        plo, phi = _interval(res.per_map_ratio, res.per_map_reps, k)
    notes = [n for n in (res.note.strip("; "), res.pairing, contention_note(res.rows)) if n]
    if not _has_round_ids(res.rows):
        notes.append("no round ids: bootstrap over iterations (CI too narrow)")
    if kind is None:
        notes.append("the paper has no such device")
    if claim.observation:  # reproduced only: no threshold, no direction, no direction verdict
        out.update(direction="", threshold_meaning="")
    out.update(
        ratio=res.ratio,
        ci95_low=lo,
        ci95_high=hi,
        threshold=np.nan if claim.observation else res.threshold,
        verdict=NOT_CLAIMED if claim.observation else verdict(lo, hi, res.threshold, claim.direction),
        paper_ratio=res.paper_ratio,
        reproduction=reproduction(lo, hi, res.paper_ratio),
        measured_over_paper=res.ratio / res.paper_ratio if math.isfinite(res.paper_ratio) else np.nan,
        per_map_ratio=res.per_map_ratio,
        per_map_ci95_low=plo,
        per_map_ci95_high=phi,
        per_map=", ".join(f"{m} {v:.3g}×" for m, v in res.per_map),
        unsettled=unsettled_text(res.rows),
        n_rows=len(res.rows),
        unit=claim.unit,
        note="; ".join(notes),
    )
    return out


_BY_ID = {c.id: c for c in CLAIMS}


def claim_table(
    df: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0, claims: Sequence[Claim] = CLAIMS
) -> pd.DataFrame:
    """One row per group (:data:`GROUP_KEYS`) × claim; see the module docstring.

    Columns: ``device`` (label "kind: name"), ``device_key``, ``device_kind``, ``runtime``,
    ``threads``, ``batch``, ``claim_id``, ``claim``, ``paper_quote`` (where the paper states it),
    ``statistic`` (how ``ratio`` is made),
    ``ratio``, ``ci95_low``, ``ci95_high``, ``threshold``, ``direction`` ('>' or '<': the side of
    the threshold the claim asserts; empty for an observation), ``verdict`` (supported |
    contradicted | inconclusive | not claimed | not measured), ``paper_ratio`` (the same statistic
    from the paper's figures for this device kind; NaN where it has none), ``paper_device``,
    ``reproduction`` (reproduces | higher | lower | no paper value | not measured),
    ``measured_over_paper`` (ratio / paper_ratio), ``paper_match`` (the paper column this device
    is compared with, named), ``per_map_ratio`` with ``per_map_ci95_low/high``
    (FLOPS claims: geometric mean of per-map ratios), ``per_map`` (each map's ratio),
    ``unsettled`` (rows that missed their precision target), ``n_rows``, ``unit``, ``note``,
    ``answer`` (:func:`answer_sentence`). Repeats are pooled first (:func:`fnbench.merge.merge_repeats`).
    """
    if df.empty:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    df = merge_repeats(df)
    labels = device_labels(df)
    df = df.assign(batch_group=df["batch_requested"].fillna(df["batch"]) if "batch_requested" in df else df["batch"])
    out = []
    for key, g in df.groupby(list(GROUP_KEYS), dropna=False, sort=True):
        dkey, runtime, threads, batch = key
        dkind = g.device.iloc[0]
        kind = PAPER_KIND.get(dkind)
        base = dict(
            device=labels[dkey],
            device_key=dkey,
            device_kind=dkind,
            runtime=runtime,
            threads=None if pd.isna(threads) else int(threads),
            batch=int(batch),
            paper_device=kind,
            paper_match=paper_match(dkind, labels[dkey]),
        )
        rows = g.to_dict("records")
        for claim in claims:
            row = dict(base, **evaluate(claim, rows, kind=kind, seed=seed + claim_seed(claim.id, key), n_boot=n_boot))
            if kind is None and row["verdict"] != NOT_MEASURED:
                row["note"] = row["note"].replace("such device", f"{dkind} device")
            elif kind is not None and math.isfinite(row["paper_ratio"]):
                row["note"] = "; ".join(x for x in (base["paper_match"], row["note"]) if x)
            row["answer"] = answer_sentence(row, claim)
            out.append(row)
    return pd.DataFrame(out, columns=CLAIM_COLUMNS)
