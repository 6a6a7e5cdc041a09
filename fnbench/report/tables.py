"""The report's tables as DataFrames: units in every column name, numbers unrounded.

Rounding happens only where a table is rendered (:mod:`fnbench.report.html`); the CSV files keep
full precision. Latencies are in milliseconds here (``*_ms``), rates in GMAC/s (the paper's
"GFLOPS") and GFLOP/s (2 × MACs per second), sizes in MACs and bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..peaks import roof_note
from ..reference import PAPER_ARM_CORE, is_paper_arm_core, paper_networks, paper_table1
from ..results import probe_rate, unstable_reason
from ..units import ms as _ms
from ..verdicts import CLAIMS, PAPER_KIND

__all__ = [
    "RESULT_COLUMNS",
    "results_table",
    "ceilings",
    "paper_vs_device",
    "failures",
    "environment",
    "table1_wide",
    "panels",
    "is_probe",
    "roofs",
    "above_roof",
    "COMPACT_COLUMNS",
    "compact_claims",
    "unsettled_footnotes",
    "theoretical_roofs",
]

RESULT_COLUMNS = [
    "device",
    "device_key",
    "device_kind",
    "device_name",
    "runtime",
    "threads",
    "target",
    "target_kind",
    "shape",
    "layers",
    "options",
    "batch",
    "batch_requested",
    "dtype",
    "memory_format",
    "status",
    "error",
    "stable",
    "n_samples",
    "n_rounds",
    "n_repeats",
    "n_failed_repeats",
    "params",
    "macs",
    "flops",
    "mem_bytes_analytic",
    "mem_bytes_counted",
    "median_ms",
    "ci95_low_ms",
    "ci95_high_ms",
    "iqr_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "rel_ci_halfwidth",
    "throughput_samples_per_s",
    "gmacs_per_s",
    "gmacs_per_s_ci95_low",
    "gmacs_per_s_ci95_high",
    "gflops_per_s",
    "intensity_flop_per_byte",
    "run_ids",
    "allocator",
    "minor_faults_per_iter",
    "faults_flag",
    "unstable_reason",
    "peak_memory_bytes",
    "timed_fraction",
    "wait_fraction",
]


def is_probe(df: pd.DataFrame) -> pd.Series:
    return df.target_kind.eq("probe") | df.target.astype(str).str.startswith("probe:")


def results_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per device × runtime × target × shape (× layers, options, batch, threads): results.csv."""
    d = df[~is_probe(df)] if not df.empty else df
    rows = []
    for r in d.to_dict("records"):
        ok = r.get("status") == "ok"
        rows.append(
            {
                "device": r["device_label"],
                "device_key": r["device_key"],
                "device_kind": r["device"],
                "device_name": r["device_name"],
                "runtime": r["runtime"],
                "threads": r["threads"],
                "target": r["target"],
                "target_kind": r["target_kind"],
                "shape": r["shape"],
                "layers": r["layers"],
                "options": r["options"],
                "batch": r["batch"],
                "batch_requested": r.get("batch_requested"),
                "dtype": r["dtype"],
                "memory_format": r.get("memory_format") or "contiguous",
                "status": r["status"],
                "error": r.get("error"),
                "stable": bool(r.get("stable")) if ok else False,
                "n_samples": len(r.get("samples_s") or []),
                "n_rounds": r.get("rounds"),
                "n_repeats": r.get("n_repeats", 1),
                "n_failed_repeats": r.get("n_failed_repeats", 0),
                "params": r.get("params"),
                "macs": r.get("macs"),
                "flops": r.get("flops"),
                "mem_bytes_analytic": r.get("mem_bytes_analytic"),
                "mem_bytes_counted": r.get("mem_bytes_counted"),
                "median_ms": _ms(r.get("median_s")),
                "ci95_low_ms": _ms(r.get("ci95_low_s")),
                "ci95_high_ms": _ms(r.get("ci95_high_s")),
                "iqr_ms": _ms(r.get("iqr_s")),
                "p50_ms": _ms(r.get("p50_s")),
                "p90_ms": _ms(r.get("p90_s")),
                "p99_ms": _ms(r.get("p99_s")),
                "rel_ci_halfwidth": r.get("rel_ci_halfwidth"),
                "throughput_samples_per_s": r.get("throughput_per_s"),
                "gmacs_per_s": r.get("gmacs_per_s"),
                "gmacs_per_s_ci95_low": r.get("gmacs_per_s_ci95_low"),
                "gmacs_per_s_ci95_high": r.get("gmacs_per_s_ci95_high"),
                "gflops_per_s": r.get("gflops_per_s"),
                "intensity_flop_per_byte": r.get("intensity_flop_per_byte"),
                "run_ids": r.get("run_ids"),
                "allocator": r.get("allocator"),
                "minor_faults_per_iter": r.get("minor_faults_per_iter"),
                "faults_flag": r.get("faults_flag") if ok else None,
                "unstable_reason": unstable_reason(r) if ok and not r.get("stable") else None,
                "peak_memory_bytes": r.get("peak_memory_bytes") if ok else None,
                "timed_fraction": r.get("timed_fraction") if ok else None,
                "wait_fraction": r.get("wait_fraction") if ok else None,
            }
        )
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for c in ("layers", "threads", "batch", "batch_requested", "n_rounds", "peak_memory_bytes"):
        out[c] = out[c].astype("Int64")
    return out


def ceilings(df: pd.DataFrame) -> pd.DataFrame:
    """Measured device ceilings from probe records: one row per device × probe name.

    ``probe:gemm_*``: ``peak_gflop_per_s`` = cost.flops / median_s / 1e9; ``probe:copy``:
    ``bandwidth_gb_per_s`` = cost.mem_bytes_counted / median_s / 1e9 (each record's rate from
    :func:`fnbench.results.probe_rate`). With several records per name (probe sizes) the maximum
    is the ceiling.
    """
    cols = ["device", "device_key", "probe", "peak_gflop_per_s", "bandwidth_gb_per_s", "n_records", "stable"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    p = df[is_probe(df) & df.status.eq("ok")]
    rows = []
    for (label, key, name), g in p.groupby(["device_label", "device_key", "target"], sort=True):
        rates = [probe_rate(name, f, b, t)[1] for f, b, t in zip(g.flops, g.mem_bytes_counted, g.median_s)]
        best = pd.Series(rates, dtype=float).max() / 1e9
        peak, bw = (np.nan, best) if name == "probe:copy" else (best, np.nan)
        rows.append(
            dict(
                device=label,
                device_key=key,
                probe=name,
                peak_gflop_per_s=peak,
                bandwidth_gb_per_s=bw,
                n_records=len(g),
                stable=bool(g.stable.fillna(False).astype(bool).all()),
            )
        )
    return pd.DataFrame(rows, columns=cols)


def roofs(ceil: pd.DataFrame, device_key) -> tuple[float, float]:
    """(compute roof GFLOP/s, bandwidth GB/s) of one device: the best FP32 compute probe and the best copy."""
    c = ceil[ceil.device_key == device_key] if not ceil.empty else ceil
    if c.empty:
        return np.nan, np.nan
    comp = c.dropna(subset=["peak_gflop_per_s"])
    fp32 = comp[comp.probe.str.endswith("float32")]
    peak = (fp32 if not fp32.empty else comp).peak_gflop_per_s.max() if not comp.empty else np.nan
    bw = c.bandwidth_gb_per_s.dropna().max() if c.bandwidth_gb_per_s.notna().any() else np.nan
    return float(peak), float(bw)


def above_roof(df: pd.DataFrame, ceil: pd.DataFrame) -> pd.DataFrame:
    """Measured FP32 points above their device's measured roof: the probe fell short of the real ceiling.

    The roof at a point is min(compute roof, bandwidth × intensity); a point above it means the
    probe did not find the device's best (a larger GEMM, another kernel, or a noisy probe).
    """
    cols = [
        "device",
        "device_key",
        "runtime",
        "target",
        "shape",
        "gflops_per_s",
        "intensity_flop_per_byte",
        "roof_gflop_per_s",
        "roof",
    ]
    pts = df[~is_probe(df) & df.status.eq("ok") & df.gflops_per_s.notna()] if not df.empty else df
    rows = []
    for r in pts.to_dict("records"):
        if r.get("dtype") not in (None, "float32"):
            continue
        peak, bw = roofs(ceil, r["device_key"])
        ai = r.get("intensity_flop_per_byte")
        mem = bw * ai if (np.isfinite(bw) and ai is not None and not pd.isna(ai)) else np.nan
        roof = np.nanmin([peak, mem]) if np.isfinite(peak) or np.isfinite(mem) else np.nan
        if np.isfinite(roof) and r["gflops_per_s"] > roof:
            which = "compute" if (np.isfinite(peak) and roof == peak) else "bandwidth"
            rows.append(
                dict(
                    device=r["device_label"],
                    device_key=r["device_key"],
                    runtime=r["runtime"],
                    target=r["target"],
                    shape=r["shape"],
                    gflops_per_s=r["gflops_per_s"],
                    intensity_flop_per_byte=ai,
                    roof_gflop_per_s=roof,
                    roof=which,
                )
            )
    return pd.DataFrame(rows, columns=cols)


def panels(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per device × runtime × threads, devices in a stable order."""
    out = []
    for (label, runtime, threads), g in df.groupby(["device_label", "runtime", "threads"], dropna=False, sort=True):
        t = f"{label} · {runtime}" + (
            "" if pd.isna(threads) else f" · {int(threads)} thread{'s' if threads != 1 else ''}"
        )
        out.append((t, g))
    return out


def _table1_rows(g: pd.DataFrame) -> pd.DataFrame:
    """Operator rows at Table-1 settings (10 layers, default options), status ok."""
    return g[g.target_kind.eq("operator") & g.layers.eq(10) & g.options.eq("{}") & g.status.eq("ok")]


def _pick(rows: pd.DataFrame) -> dict | None:
    if rows.empty:
        return None
    return rows.sort_values("n").iloc[-1].to_dict()


def _device_note(paper_kind: str, device_name) -> str:
    """Why a device's paper column is only indicative; "" when it is the paper's kind of device."""
    name = device_name if isinstance(device_name, str) else None
    if paper_kind == "arm" and not is_paper_arm_core(name):
        return (
            f"{name or 'this ARM CPU'} is not the paper's {PAPER_ARM_CORE} (Raspberry Pi 4B): "
            "measured / paper compares two different CPUs"
        )
    return ""


def paper_vs_device(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell the paper reports, next to this device's measurement of it (NaN: not measured).

    Table 1: GMAC/s per operator × map, and latency (CPU/ARM, ms) or throughput (GPU, samples/s).
    Networks: latency or throughput, and FLOPs (MACs). The paper column follows the device kind
    (cpu → CPU i9-9900X, cuda → GPU RTX 2080Ti, arm → Cortex-A72); ``ratio_measured_over_paper``.
    ``device_note`` says when an ARM device is not the paper's core (an Apple M-series, a Neoverse,
    a big.LITTLE phone chip): its ratios compare two different CPUs, not this suite with the paper.
    """
    cols = [
        "device",
        "device_key",
        "runtime",
        "threads",
        "paper_device",
        "item",
        "target",
        "paper_name",
        "shape",
        "quantity",
        "unit",
        "paper_value",
        "measured_value",
        "measured_ci95_low",
        "measured_ci95_high",
        "ratio_measured_over_paper",
        "batch",
        "stable",
        "status",
        "device_note",
    ]
    if df.empty:
        return pd.DataFrame(columns=cols)
    t1 = paper_table1()
    nets = paper_networks()
    out = []
    d = df[~is_probe(df)]
    for _, g in panels(d):
        r0 = g.iloc[0]
        kind = PAPER_KIND.get(r0.device)
        if kind is None:
            continue
        base = dict(
            device=r0.device_label,
            device_key=r0.device_key,
            runtime=r0.runtime,
            threads=r0.threads,
            paper_device=kind,
            device_note=_device_note(kind, r0.device_name),
        )
        ops = _table1_rows(g)

        def emit(item, target, paper_name, shape, quantity, unit, paper, rec, value, lo, hi, base=base):
            ratio = value / paper if (rec is not None and paper and not pd.isna(paper)) else np.nan
            out.append(
                dict(
                    base,
                    item=item,
                    target=target,
                    paper_name=paper_name,
                    shape=shape,
                    quantity=quantity,
                    unit=unit,
                    paper_value=paper,
                    measured_value=value,
                    measured_ci95_low=lo,
                    measured_ci95_high=hi,
                    ratio_measured_over_paper=ratio,
                    batch=rec["batch"] if rec else np.nan,
                    stable=bool(rec["stable"]) if rec else np.nan,
                    status="ok" if rec else "not measured",
                )
            )

        for t in t1.itertuples():
            shape = f"{t.c}x{t.h}x{t.w}"
            rec = _pick(ops[(ops.target == t.op) & (ops["shape"] == shape)])
            nan3 = (np.nan, np.nan, np.nan)
            g3 = (rec["gmacs_per_s"], rec["gmacs_per_s_ci95_low"], rec["gmacs_per_s_ci95_high"]) if rec else nan3
            emit("operator", t.op, t.op, shape, "GMAC/s", "GMAC/s", getattr(t, f"{kind}_gmacs_per_s"), rec, *g3)
            if kind == "gpu":
                v = (
                    (
                        rec["batch"] / rec["median_s"],
                        rec["batch"] / rec["ci95_high_s"],
                        rec["batch"] / rec["ci95_low_s"],
                    )
                    if rec
                    else nan3
                )
                emit("operator", t.op, t.op, shape, "throughput", "samples/s", t.gpu_fps_b32, rec, *v)
            else:
                v = (rec["median_s"] * 1e3, rec["ci95_low_s"] * 1e3, rec["ci95_high_s"] * 1e3) if rec else nan3
                emit("operator", t.op, t.op, shape, "latency", "ms", getattr(t, f"{kind}_ms"), rec, *v)
        nrows = g[g.target_kind.eq("network") & g.options.eq("{}") & g.status.eq("ok")]
        for n in nets.itertuples():
            alias = n.alias if isinstance(n.alias, str) else None
            rec = _pick(nrows[nrows.target == alias]) if alias else None
            shape = rec["shape"] if rec else None
            nan3 = (np.nan, np.nan, np.nan)
            if kind == "gpu":
                v = (
                    (
                        rec["batch"] / rec["median_s"],
                        rec["batch"] / rec["ci95_high_s"],
                        rec["batch"] / rec["ci95_low_s"],
                    )
                    if rec
                    else nan3
                )
                emit("network", alias or "", n.name, shape, "throughput", "samples/s", n.gpu_fps_b32, rec, *v)
            else:
                paper = getattr(n, f"{kind}_ms")
                v = (
                    (
                        rec["median_s"] / rec["batch"] * 1e3,
                        rec["ci95_low_s"] / rec["batch"] * 1e3,
                        rec["ci95_high_s"] / rec["batch"] * 1e3,
                    )
                    if rec
                    else nan3
                )
                emit("network", alias or "", n.name, shape, "latency", "ms", paper, rec, *v)
            m = rec["macs"] / rec["batch"] / 1e9 if rec and rec.get("macs") is not None else np.nan
            emit("network", alias or "", n.name, shape, "FLOPs (MACs)", "G MACs", n.macs_g, rec, m, np.nan, np.nan)
    return pd.DataFrame(out, columns=cols)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is not ``ok``: failed or unsupported, with the reason."""
    cols = [
        "device",
        "runtime",
        "threads",
        "target",
        "shape",
        "layers",
        "options",
        "batch",
        "status",
        "error",
        "run_ids",
    ]
    if df.empty:
        return pd.DataFrame(columns=cols)
    f = df[df.status != "ok"]
    return f.assign(device=f.device_label)[cols].reset_index(drop=True)


#: Environment keys that describe one record's measurement, not the device (per-row values, already shown).
#: Not listed per device: the theoretical peak is shown under the ceilings, and withheld there
#: where it lies below the measured roof (:func:`theoretical_roofs`).
_ENV_HIDDEN = {"measure_wall_s", "device_kind", "theoretical_peak_gflop_per_s"}


def environment(df: pd.DataFrame) -> pd.DataFrame:
    """Environment fingerprint per device (long form: device, key, value), from its latest record.

    Load average and clocks change during a run; the values shown are those of the latest record,
    and ``runs`` lists every run merged into the device.
    """
    cols = ["device", "device_key", "key", "value"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (label, key), g in df.groupby(["device_label", "device_key"], sort=True):
        last = g.sort_values("created").iloc[-1]
        runs = sorted({r for ids in g.run_ids.dropna() for r in str(ids).split(",")})
        env = {c[4:]: last[c] for c in sorted(c for c in g.columns if c.startswith("env_"))}
        if env.get("arch") is None or (isinstance(env.get("arch"), float) and np.isnan(env["arch"])):
            env["arch"] = last.get("device_arch")  # one arch row, from the record's env or its device
        out.append(dict(device=label, device_key=key, key="runs", value=", ".join(runs)))
        for k in sorted(env):
            v = env[k]
            if v is None or (isinstance(v, float) and np.isnan(v)) or k in _ENV_HIDDEN:
                continue
            out.append(
                dict(device=label, device_key=key, key=k, value=v if not isinstance(v, (list, dict)) else json.dumps(v))
            )
    return pd.DataFrame(out, columns=cols)


def table1_wide(df: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Table-1 analog across devices: rows op × map, one column group per device panel.

    Returns the panel titles and a frame with ``op``, ``shape``, and per panel ``<title>|ms``,
    ``<title>|gmacs``, ``<title>|gmacs_lo``, ``<title>|gmacs_hi``, ``<title>|stable``, ``<title>|paper``.
    """
    t1 = paper_table1()
    base = pd.DataFrame({"op": t1.op, "shape": [f"{c}x{h}x{w}" for c, h, w in zip(t1.c, t1.h, t1.w)]})
    titles = []
    if df.empty:
        return titles, base
    for title, g in panels(df[~is_probe(df)]):
        ops = _table1_rows(g)
        if ops.empty:
            continue
        titles.append(title)
        kind = PAPER_KIND.get(g.device.iloc[0])
        vals = {k: [] for k in ("ms", "gmacs", "gmacs_lo", "gmacs_hi", "stable", "paper")}
        for op, shape, pv in zip(base.op, base["shape"], t1[f"{kind}_gmacs_per_s"] if kind else [np.nan] * len(t1)):
            rec = _pick(ops[(ops.target == op) & (ops["shape"] == shape)])
            vals["ms"].append(rec["median_s"] * 1e3 if rec else np.nan)
            vals["gmacs"].append(rec["gmacs_per_s"] if rec else np.nan)
            vals["gmacs_lo"].append(rec["gmacs_per_s_ci95_low"] if rec else np.nan)
            vals["gmacs_hi"].append(rec["gmacs_per_s_ci95_high"] if rec else np.nan)
            vals["stable"].append(bool(rec["stable"]) if rec else np.nan)
            vals["paper"].append(pv)
        for k, v in vals.items():
            base[f"{title}|{k}"] = v
    return titles, base


def runtime_comparison(results: pd.DataFrame, claims: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GMAC/s of each target under each runtime, and each claim's verdict under each runtime.

    Only targets measured under two runtimes or more appear. Returns ``(gmacs, verdicts)``:
    ``gmacs`` has one row per device × target × shape × layers with a ``gmacs_per_s[<runtime>]``
    and ``stable[<runtime>]`` column per runtime; ``verdicts`` one row per device × claim with a
    column per runtime holding ``verdict (ratio×)``.
    """
    ok = results[results.status.eq("ok")]
    multi = ok.groupby("device").runtime.nunique()
    ok = ok[ok.device.isin(multi[multi > 1].index)]
    if ok.empty:
        return pd.DataFrame(), pd.DataFrame()
    keys = ["device", "target", "shape", "layers", "options", "batch", "threads"]
    g = ok.pivot_table(index=keys, columns="runtime", values="gmacs_per_s", aggfunc="first", dropna=False)
    s = ok.pivot_table(index=keys, columns="runtime", values="stable", aggfunc="first", dropna=False)
    gmacs = (
        g.add_prefix("gmacs_per_s[")
        .rename(columns=lambda c: c + "]")
        .join(s.add_prefix("stable[").rename(columns=lambda c: c + "]"))
        .reset_index()
    )
    gcols = [c for c in gmacs.columns if str(c).startswith("gmacs_per_s[")]
    gmacs = gmacs[gmacs[gcols].notna().sum(axis=1) >= 2]  # targets measured under two runtimes or more
    verdicts = pd.DataFrame()
    c = claims[claims.device.isin(ok.device.unique())] if not claims.empty else claims
    if not c.empty:
        c = c.assign(cell=[v if v == "not measured" else f"{v} ({ratio:.2f}×)" for v, ratio in zip(c.verdict, c.ratio)])
        verdicts = c.pivot_table(
            index=["device", "claim"], columns="runtime", values="cell", aggfunc="first"
        ).reset_index()
        verdicts.columns.name = None
    gmacs.columns.name = None
    return gmacs, verdicts


# -- the claims at a glance ----------------------------------------------------------------------------
COMPACT_COLUMNS = [
    "claim",
    "claim_id",
    "device",
    "setup",
    "ratio",
    "ci95_low",
    "ci95_high",
    "paper_ratio",
    "paper_device",
    "threshold",
    "direction",
    "reproduction",
    "measured_over_paper",
    "footnote",
]


def _setup(r) -> str:
    """The measurement group beside the device: runtime, threads, batch."""
    parts = [str(r["runtime"])]
    if r.get("threads") is not None and not pd.isna(r.get("threads")):
        parts.append(f"{int(r['threads'])} thr")
    return ", ".join(parts) + f", b{int(r['batch'])}"


def _named(unsettled) -> bool:
    """Whether a claim names unsettled rows (an empty cell reads back from CSV as NaN)."""
    return isinstance(unsettled, str) and bool(unsettled)


def _groups(claims: pd.DataFrame) -> list:
    """Device × set-up groups in their order in the claims table (the footnote numbers)."""
    keys = []
    for r in claims.to_dict("records"):
        k = (r["device"], _setup(r))
        if k not in keys:
            keys.append(k)
    return keys


def compact_claims(claims: pd.DataFrame) -> pd.DataFrame:
    """One line per measured claim × device × set-up: ratio, CI, paper, the two verdicts, a footnote number.

    ``direction`` is the direction verdict (``not claimed`` for an observation); ``footnote`` is
    the number of the device's footnote (:func:`unsettled_footnotes`) when a row it rests on did
    not settle, else 0. Rows not measured are left out (the claims table lists them with reasons).
    """
    if claims.empty:
        return pd.DataFrame(columns=COMPACT_COLUMNS)
    numbers = _footnote_numbers(claims)
    rows = []
    for r in claims[claims.verdict != "not measured"].to_dict("records"):
        k = (r["device"], _setup(r))
        rows.append(
            dict(
                claim=r["claim"],
                claim_id=r["claim_id"],
                device=r["device"],
                setup=k[1],
                ratio=r["ratio"],
                ci95_low=r["ci95_low"],
                ci95_high=r["ci95_high"],
                paper_ratio=r["paper_ratio"],
                paper_device=r["paper_device"],
                threshold=r["threshold"],
                direction=r["verdict"],
                reproduction=r["reproduction"],
                measured_over_paper=r["measured_over_paper"],
                footnote=numbers.get(k, 0) if _named(r.get("unsettled")) else 0,
            )
        )
    order = {c.id: i for i, c in enumerate(CLAIMS)}
    rows.sort(key=lambda r: (order.get(r["claim_id"], len(order)), r["device"], r["setup"]))  # the forest's order
    return pd.DataFrame(rows, columns=COMPACT_COLUMNS)


def _footnote_numbers(claims: pd.DataFrame) -> dict:
    """Footnote number per device × set-up group that has unsettled rows, 1, 2, … in table order."""
    recs = claims.to_dict("records")
    keys = [
        k for k in _groups(claims) if any((r["device"], _setup(r)) == k and _named(r.get("unsettled")) for r in recs)
    ]
    return {k: i for i, k in enumerate(keys, start=1)}


def unsettled_footnotes(claims: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(number, "device · set-up", text) per group with rows that missed their precision target.

    The rows are named once per group, not once per claim (the claims table keeps each claim's
    own list): "pconv 96x56x56 ±6.1%, dwconv 768x7x7 (1 round)".
    """
    out = []
    if claims.empty:
        return out
    for k, n in _footnote_numbers(claims).items():
        g = [r for r in claims.to_dict("records") if (r["device"], _setup(r)) == k and _named(r.get("unsettled"))]
        named, target = [], ""
        for r in g:
            head, _, rows = r["unsettled"].partition(": ")
            target = target or head.split(" rows above ", 1)[-1]
            named += [x for x in rows.split(", ") if x not in named]
        out.append((n, f"{k[0]} · {k[1]}", f"{len(named)} rows above {target}: {', '.join(named)}"))
    return out


def theoretical_roofs(df: pd.DataFrame, ceil: pd.DataFrame) -> pd.DataFrame:
    """Per CPU device: the theoretical FP32 peak its probe records carry, and whether it may be drawn.

    ``shown`` is False where the peak lies below the measured FP32 compute roof; ``note`` then
    says why (:func:`fnbench.peaks.roof_note`): a roof below the floor is never drawn.
    """
    cols = ["device", "device_key", "theoretical_peak_gflop_per_s", "basis", "clock", "measured_gflop_per_s"]
    cols += ["shown", "note"]
    col = "env_theoretical_peak_gflop_per_s"
    if df.empty or col not in df:
        return pd.DataFrame(columns=cols)
    p = df[is_probe(df) & df[col].notna()]
    rows = []
    for (label, key), g in p.groupby(["device_label", "device_key"], sort=True):
        last = g.iloc[-1]
        peak = float(last[col])
        clock = last.get("env_theoretical_peak_clock")
        clock = clock if isinstance(clock, str) and clock else None
        measured, _ = roofs(ceil, key)
        note = roof_note(peak, clock, measured if np.isfinite(measured) else None)
        rows.append(
            dict(
                device=label,
                device_key=key,
                theoretical_peak_gflop_per_s=peak,
                basis=last.get("env_theoretical_peak_basis"),
                clock=clock or "nominal (not recorded)",
                measured_gflop_per_s=measured,
                shown=note is None,
                note=note or "",
            )
        )
    return pd.DataFrame(rows, columns=cols)
