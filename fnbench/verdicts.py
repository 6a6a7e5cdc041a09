"""The paper's claims as ratios with bootstrap 95 % CIs and a verdict, per device and runtime.

Every claim is one number, a threshold and a direction. The verdict is
:func:`fnbench.stats.verdict` on the bootstrap CI of that number: ``supported`` when the whole
CI lies on the claimed side of the threshold, ``contradicted`` when it lies wholly on the other
side, ``inconclusive`` otherwise — and always ``inconclusive`` when any measurement the claim
rests on is marked unstable (an unsettled number never decides a claim). A claim whose targets
were not measured (absent, failed or unsupported) on a device is ``not measured``.

The claims (``maps`` = the Table-1 feature maps measured for *both* operators, 10 layers,
default options; if there are none, any shape/layers both operators share, without a paper value):

``pconv_vs_dwconv_flops``  R = mean_maps(GMAC/s of pconv) / mean_maps(GMAC/s of dwconv) > 1.
    This is the paper's own statistic: its 6.2× (CPU), 10.5× (GPU) and 22.8× (ARM) are ratios
    of Table 1's *average* GFLOPS (39.91/6.42, 3274/313, 2.73/0.12). The paper ratio shown is
    the same statistic over the same maps, so the two numbers are comparable. It is computed from
    Table 1's cells, so it can differ slightly from the headline, which divides rounded averages
    (ARM: 2.7325 / 0.1225 = 22.3 from the cells, 22.8 from 2.73 / 0.12).
``pconv_vs_gconv_flops``   the same with gconv (paper 1.54× CPU, 1.79× GPU, 1.42× ARM).
``pconv_latency_vs_flops`` S = Σ_maps latency(conv) / Σ_maps latency(pconv), the latency
    speed-up of running the stacks, against the threshold Σ macs(conv) / Σ macs(pconv) (= 16 for
    n_div 4), the FLOP reduction. The claim "PConv's latency falls by less than its FLOPs" is
    S < threshold. Latency is per sample (per-batch latency / batch), so GPU throughput rows and
    the paper's fps compare directly.
``t0_faster_than_<peer>``  latency(peer) / latency(fasternet_t0) > 1 (per-sample latency; paper:
    CPU ms, ARM ms, GPU fps inverted), for mobilevit_xxs, mobilenetv2 and shufflenetv2_x1_5.

Uncertainty: a percentile bootstrap over each measurement independently. Where a measurement
was sampled across worker processes (records with ``workers``) it resamples workers, then rounds
within them — the scheme of the row's own CI, :func:`fnbench.stats.hierarchical_median_ci`, but
without its few-cluster widening; otherwise it resamples rounds (fresh allocations). Frames
without per-sample round ids (a bare :func:`~fnbench.results.load_results`) fall back to
resampling single iterations, which gives narrower intervals; :func:`claim_table` says so in its
``note`` column. Use :func:`fnbench.merge.load_frame` to get the round and worker ids.

Example::

    >>> from fnbench.merge import load_frame
    >>> table = claim_table(load_frame("results"))  # doctest: +SKIP
    >>> table[["device", "claim", "ratio", "verdict", "paper_ratio"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats
from .merge import device_labels, merge_repeats
from .reference import paper_networks, paper_table1

__all__ = ["Claim", "CLAIMS", "NOT_MEASURED", "VERDICT_WORDS", "CLAIM_COLUMNS", "PAPER_KIND", "claim_table"]

NOT_MEASURED = "not measured"
VERDICT_WORDS = (*stats.VERDICTS, NOT_MEASURED)
#: Which of the paper's device columns a device kind is compared with.
PAPER_KIND = {"cpu": "cpu", "cuda": "gpu", "arm": "arm"}
TABLE1_OPS = ("conv", "gconv", "dwconv", "pconv")
T0 = "fasternet_t0"
PEERS = ("mobilevit_xxs", "mobilenetv2", "shufflenetv2_x1_5")
N_BOOT = 4000
CLAIM_COLUMNS = ["device", "device_key", "device_kind", "runtime", "threads", "batch", "claim_id", "claim", "ratio",
                 "ci95_low", "ci95_high", "threshold", "direction", "verdict", "paper_ratio", "paper_device",
                 "n_rows", "unit", "note"]


@dataclass(frozen=True)
class Claim:
    """One testable statement: ``id``, the text shown, and how its number is defined."""

    id: str
    text: str
    direction: str  # '>' : supported when the ratio's CI lies above the threshold; '<' : below
    definition: str


CLAIMS: tuple[Claim, ...] = (
    Claim("pconv_vs_dwconv_flops", "PConv FLOPS > DWConv FLOPS", ">",
          "mean GMAC/s of pconv / mean GMAC/s of dwconv over the Table-1 maps measured (paper's statistic)"),
    Claim("pconv_vs_gconv_flops", "PConv FLOPS > GConv FLOPS", ">",
          "mean GMAC/s of pconv / mean GMAC/s of gconv over the Table-1 maps measured (paper's statistic)"),
    Claim("pconv_latency_vs_flops", "PConv's latency falls by less than its FLOPs", "<",
          "latency speed-up Σ latency(conv) / Σ latency(pconv) over the maps, below the FLOP reduction "
          "Σ MACs(conv) / Σ MACs(pconv)"),
    *(Claim(f"t0_faster_than_{p}", f"FasterNet-T0 is faster than {name}", ">",
            f"latency({p}) / latency({T0}), per sample")
      for p, name in zip(PEERS, ("MobileViT-XXS", "MobileNetV2", "ShuffleNetV2 x1.5"))),
)


# -- bootstrap ---------------------------------------------------------------------------------------
def _units(row) -> np.ndarray:
    """Per-round medians of a row's samples (or the samples themselves without round ids)."""
    s = np.asarray(row["samples_s"], dtype=float)
    r = row.get("round_ids")
    if isinstance(r, (list, tuple, np.ndarray)) and len(r) == len(s) and len(s):
        return stats.round_medians(s, r)
    return s


def _draws(row, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap replicates of the row's median latency per sample (seconds).

    With worker ids (sampling across processes) the resampling is two-stage, workers then
    rounds, as in the row's own CI (:func:`fnbench.stats.hierarchical_median_ci`).
    """
    w = row.get("worker_ids")
    if _has_round_ids([row]) and isinstance(w, (list, tuple, np.ndarray)) and len(w) == len(row["samples_s"]) \
            and len(set(w)) > 1:
        return stats.hierarchical_median_draws(row["samples_s"], row["round_ids"], w, n_boot, rng) / row["batch"]
    u = _units(row)
    return np.median(u[rng.integers(0, u.size, size=(n_boot, u.size))], axis=1) / row["batch"]


def _has_round_ids(rows: Sequence) -> bool:
    return all(isinstance(r.get("round_ids"), (list, tuple, np.ndarray)) and len(r["round_ids"]) == len(r["samples_s"])
               for r in rows)


# -- selecting the rows a claim rests on -----------------------------------------------------------
def _shape_tuple(shape: str | None):
    return tuple(int(v) for v in shape.split("x")) if isinstance(shape, str) and shape else None


def _table1_keys() -> set:
    t = paper_table1()
    return {(int(c), int(h), int(w)) for c, h, w in zip(t.c, t.h, t.w)}


def _op_pairs(g: pd.DataFrame, a: str, b: str) -> tuple[list[tuple[dict, dict]], bool, str]:
    """Matched (a, b) rows per map: Table-1 settings first, else any shared shape/layers/options.

    Returns the pairs, whether they are Table-1 cells, and a note on what was missing.
    """
    ops = g[g.target_kind.eq("operator") & g.target.isin([a, b])]
    ok = ops[ops.status == "ok"]
    if ok.empty:
        return [], False, _missing_note(ops, [a, b])

    def index(op):
        return {(r["shape"], r["layers"], r["options"]): r for r in ok[ok.target == op].to_dict("records")}

    ia, ib = index(a), index(b)
    common = [k for k in ia if k in ib]
    t1 = _table1_keys()
    table1 = [k for k in common if _shape_tuple(k[0]) in t1 and k[1] == 10 and json.loads(k[2]) == {}]
    if table1:
        return [(ia[k], ib[k]) for k in sorted(table1, key=lambda k: _shape_tuple(k[0]))], True, ""
    if common:
        return [(ia[k], ib[k]) for k in common], False, "not at the paper's Table-1 settings; no paper value"
    return [], False, _missing_note(ops, [a, b])


def _missing_note(rows: pd.DataFrame, names: Sequence[str]) -> str:
    parts = []
    for n in names:
        r = rows[rows.target == n]
        if r.empty:
            parts.append(f"{n} absent")
        elif not (r.status == "ok").any():
            parts.append(f"{n} {r.status.iloc[-1]}: {r.error.iloc[-1]}")
    return "; ".join(parts) or "no shape measured for both"


# -- paper values ----------------------------------------------------------------------------------
def _paper_cell(op: str, shape: str, kind: str, col: str) -> float:
    t = paper_table1()
    c, h, w = _shape_tuple(shape)
    row = t[(t.op == op) & (t.c == c) & (t.h == h) & (t.w == w)]
    return float(row[f"{kind}_{col}"].iloc[0]) if len(row) else float("nan")


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


# -- the claims --------------------------------------------------------------------------------------
def _flops_claim(g, other: str, kind: str | None, rng, n_boot):
    pairs, is_t1, note = _op_pairs(g, "pconv", other)
    if not pairs:
        return None, note
    gp = np.array([p["macs"] / 1e9 / (p["median_s"]) for p, _ in pairs])
    go = np.array([o["macs"] / 1e9 / (o["median_s"]) for _, o in pairs])
    ratio = float(gp.mean() / go.mean())
    bp = np.stack([p["macs"] / p["batch"] / 1e9 / _draws(p, rng, n_boot) for p, _ in pairs])
    bo = np.stack([o["macs"] / o["batch"] / 1e9 / _draws(o, rng, n_boot) for _, o in pairs])
    reps = bp.mean(axis=0) / bo.mean(axis=0)
    paper = float("nan")
    if is_t1 and kind is not None:
        pp = [_paper_cell("pconv", p["shape"], kind, "gmacs_per_s") for p, _ in pairs]
        po = [_paper_cell(other, p["shape"], kind, "gmacs_per_s") for p, _ in pairs]
        paper = float(np.mean(pp) / np.mean(po))
    rows = [r for pair in pairs for r in pair]
    return dict(ratio=ratio, reps=reps, threshold=1.0, paper_ratio=paper, rows=rows, unit="× (GMAC/s ratio)",
                note=note + ("; maps: " + ", ".join(p["shape"] for p, _ in pairs))), None


def _latency_claim(g, kind: str | None, rng, n_boot):
    pairs, is_t1, note = _op_pairs(g, "conv", "pconv")
    if not pairs:
        return None, note
    lc = sum(c["median_s"] / c["batch"] for c, _ in pairs)
    lp = sum(p["median_s"] / p["batch"] for _, p in pairs)
    mc = sum(c["macs"] / c["batch"] for c, _ in pairs)
    mp = sum(p["macs"] / p["batch"] for _, p in pairs)
    reps = sum(_draws(c, rng, n_boot) for c, _ in pairs) / sum(_draws(p, rng, n_boot) for _, p in pairs)
    paper = float("nan")
    if is_t1 and kind is not None:
        paper = float(sum(_paper_latency_ms("conv", kind, c["shape"]) for c, _ in pairs)
                      / sum(_paper_latency_ms("pconv", kind, c["shape"]) for c, _ in pairs))
    rows = [r for pair in pairs for r in pair]
    return dict(ratio=lc / lp, reps=reps, threshold=mc / mp, paper_ratio=paper, rows=rows,
                unit="× (latency speed-up)", note=note + ("; maps: " + ", ".join(c["shape"] for c, _ in pairs))), None


def _network_claim(g, peer: str, kind: str | None, seed: int, n_boot):
    nets = g[g.target_kind.eq("network") & g.target.isin([T0, peer]) & g.options.eq("{}")]
    ok = nets[nets.status == "ok"]
    t0 = ok[ok.target == T0]
    pr = ok[ok.target == peer]
    if t0.empty or pr.empty:
        return None, _missing_note(nets, [T0, peer])
    # one row each; with several (e.g. input sizes) take the most samples
    a = pr.sort_values("n").iloc[-1].to_dict()
    b = t0.sort_values("n").iloc[-1].to_dict()
    rng = np.random.default_rng(seed)
    reps = _draws(a, rng, n_boot) / _draws(b, rng, n_boot)
    ratio = float(np.median(_units(a)) / a["batch"]) / float(np.median(_units(b)) / b["batch"])
    paper = float("nan")
    if kind is not None:
        paper = _paper_latency_ms(peer, kind) / _paper_latency_ms(T0, kind)
    return dict(ratio=ratio, reps=reps, threshold=1.0, paper_ratio=paper, rows=[a, b], unit="× (latency ratio)",
                note=""), None


def _verdict(ci_low: float, ci_high: float, threshold: float, direction: str, stable: bool) -> str:
    if direction == ">":
        return stats.verdict((ci_low, ci_high), threshold, stable=stable)
    # "below the threshold": the same test on reciprocals
    return stats.verdict((1.0 / ci_high, 1.0 / ci_low), 1.0 / threshold, stable=stable)


def claim_table(df: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per device × runtime (× threads, batch) × claim; see the module docstring.

    Columns: ``device`` (label "kind: name"), ``device_key``, ``device_kind``, ``runtime``,
    ``threads``, ``batch``, ``claim_id``, ``claim``, ``ratio``, ``ci95_low``, ``ci95_high``,
    ``threshold``, ``direction`` ('>' or '<': the side of the threshold the claim asserts),
    ``verdict`` (supported | contradicted | inconclusive | not measured), ``paper_ratio`` (the
    same statistic from the paper's figures for this device kind; NaN where it has none),
    ``paper_device`` (cpu | gpu | arm), ``n_rows`` (measurements used), ``unit``, ``note``.
    Repeats of a measurement are pooled first (:func:`fnbench.merge.merge_repeats`).
    """
    if df.empty:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    df = merge_repeats(df)
    labels = device_labels(df)
    df = df.assign(batch_group=df["batch_requested"].fillna(df["batch"]) if "batch_requested" in df else df["batch"])
    out = []
    keys = ["device_key", "runtime", "threads", "batch_group"]
    for i, ((dkey, runtime, threads, batch), g) in enumerate(df.groupby(keys, dropna=False, sort=True)):
        dkind = g.device.iloc[0]
        kind = PAPER_KIND.get(dkind)
        base = dict(device=labels[dkey], device_key=dkey, device_kind=dkind, runtime=runtime,
                    threads=None if pd.isna(threads) else int(threads), batch=int(batch), paper_device=kind)
        for j, claim in enumerate(CLAIMS):
            cseed = seed + 1000 * i + j
            rng = np.random.default_rng(cseed)
            if claim.id == "pconv_vs_dwconv_flops":
                res, note = _flops_claim(g, "dwconv", kind, rng, n_boot)
            elif claim.id == "pconv_vs_gconv_flops":
                res, note = _flops_claim(g, "gconv", kind, rng, n_boot)
            elif claim.id == "pconv_latency_vs_flops":
                res, note = _latency_claim(g, kind, rng, n_boot)
            else:
                res, note = _network_claim(g, claim.id.removeprefix("t0_faster_than_"), kind, cseed, n_boot)
            row = dict(base, claim_id=claim.id, claim=claim.text, direction=claim.direction)
            if res is None:
                row.update(ratio=np.nan, ci95_low=np.nan, ci95_high=np.nan, threshold=np.nan, verdict=NOT_MEASURED,
                           paper_ratio=np.nan, n_rows=0, unit="", note=note)
                out.append(row)
                continue
            if "ci" in res:
                lo, hi = res["ci"].low, res["ci"].high
            else:
                lo, hi = (float(v) for v in np.quantile(res["reps"], [0.025, 0.975]))
            stable = all(bool(r.get("stable")) for r in res["rows"])
            notes = [n for n in (res["note"].strip("; "),) if n]
            if not stable:
                unstable = sorted({f"{r['target']} {r['shape'] or ''}".strip() for r in res["rows"] if not r.get("stable")})
                notes.append("unstable: " + ", ".join(unstable))
            if not _has_round_ids(res["rows"]):
                notes.append("no round ids: bootstrap over iterations (CI too narrow)")
            if kind is None:
                notes.append(f"the paper has no {dkind} device")
            row.update(ratio=res["ratio"], ci95_low=lo, ci95_high=hi, threshold=res["threshold"],
                       verdict=_verdict(lo, hi, res["threshold"], claim.direction, stable),
                       paper_ratio=res["paper_ratio"], n_rows=len(res["rows"]), unit=res["unit"], note="; ".join(notes))
            out.append(row)
    return pd.DataFrame(out, columns=CLAIM_COLUMNS)
