"""Allocator sensitivity: the same measurement under two or more allocators, side by side.

A target measured under ``tuned`` and ``system`` (or jemalloc/tcmalloc) on one device, runtime,
layout, dtype and thread count gets one row per allocator: latency with its CI, GMAC/s, minor page
faults per iteration, and its latency relative to the ``tuned`` row. The claims, computed per
runtime label (which carries the allocator when the files hold several, see
:func:`fnbench.merge.load_frame`), are laid out per allocator so a reader sees whether a verdict
survives the allocator and by how much the untuned one moves its ratio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..allocators import DEFAULT_ALLOCATOR, faults_flag
from ..results import unstable_reason
from ..units import ms as _ms

__all__ = ["SENSITIVITY_COLUMNS", "allocator_table", "allocator_claims"]

SENSITIVITY_COLUMNS = [
    "device",
    "runtime",
    "target",
    "shape",
    "layers",
    "allocator",
    "median_ms",
    "ci95_low_ms",
    "ci95_high_ms",
    "gmacs_per_s",
    "minor_faults_per_iter",
    "faults_flag",
    "latency_vs_tuned",
    "stable",
    "unstable_reason",
]

#: What makes two rows the same measurement apart from the allocator.
_SAME = [
    "device_label",
    "runtime_name",
    "memory_format",
    "dtype",
    "threads",
    "target",
    "shape",
    "layers",
    "options",
    "batch",
]


def allocator_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (measurement, allocator) for every measurement taken under ≥ 2 allocators."""
    if df.empty or "allocator" not in df or df.allocator.nunique() < 2:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    d = df[df.status.eq("ok") & ~df.target_kind.eq("probe")].copy()
    d["options"] = d["options"].astype(str)
    rows = []
    for _, g in d.groupby(_SAME, dropna=False, sort=False):
        if g.allocator.nunique() < 2:
            continue
        ref = g[g.allocator.eq(DEFAULT_ALLOCATOR)]
        ref_med = float(ref.median_s.iloc[0]) if not ref.empty else np.nan
        order = {a: i for i, a in enumerate((DEFAULT_ALLOCATOR, "system", "jemalloc", "tcmalloc"))}
        for r in sorted(g.to_dict("records"), key=lambda r: order.get(r["allocator"], 9)):
            fpi = r.get("minor_faults_per_iter")
            fpi = None if fpi is None or pd.isna(fpi) else float(fpi)
            rows.append(
                dict(
                    device=r["device_label"],
                    runtime=r["runtime_name"],
                    target=r["target"],
                    shape=r["shape"],
                    layers=r["layers"],
                    allocator=r["allocator"],
                    median_ms=_ms(r["median_s"]),
                    ci95_low_ms=_ms(r["ci95_low_s"]),
                    ci95_high_ms=_ms(r["ci95_high_s"]),
                    gmacs_per_s=r.get("gmacs_per_s"),
                    minor_faults_per_iter=fpi,
                    faults_flag=faults_flag(fpi, r.get("mem_bytes_counted"), r["allocator"]),
                    latency_vs_tuned=float(r["median_s"]) / ref_med if ref_med == ref_med else np.nan,
                    stable=bool(r.get("stable")),
                    unstable_reason=None if r.get("stable") else unstable_reason(r),
                )
            )
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def _allocator_of(runtime_label: str) -> tuple[str, str]:
    """``"eager alloc=system"`` → (``"eager"``, ``"system"``); a label without it is ``tuned``."""
    if " alloc=" in runtime_label:
        base, alloc = runtime_label.rsplit(" alloc=", 1)
        return base, alloc
    return runtime_label, DEFAULT_ALLOCATOR


def allocator_claims(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims table laid out per allocator: one row per (device, runtime, claim) with, per
    allocator, ``ratio [CI]`` and the verdict. Empty unless some claim was evaluated under ≥ 2."""
    cols = ["device", "runtime", "claim"]
    if claims.empty or "runtime" not in claims:
        return pd.DataFrame(columns=cols)
    c = claims.copy()
    split = [_allocator_of(str(rt)) for rt in c.runtime]
    c["runtime_base"] = [b for b, _ in split]
    c["allocator"] = [a for _, a in split]
    if c.allocator.nunique() < 2:
        return pd.DataFrame(columns=cols)
    allocs = [a for a in (DEFAULT_ALLOCATOR, "system", "jemalloc", "tcmalloc") if a in set(c.allocator)]
    out = []
    for (dev, rt, claim), g in c.groupby(["device", "runtime_base", "claim"], sort=False):
        if g.allocator.nunique() < 2 or g.ratio.isna().all():
            continue
        row = {"device": dev, "runtime": rt, "claim": claim}
        for a in allocs:
            h = g[g.allocator.eq(a)]
            if h.empty:
                row[a] = "–"
                continue
            r = h.iloc[0]
            if r.ratio is None or pd.isna(r.ratio):
                row[a] = str(r.verdict)
                continue
            row[a] = f"{r.ratio:.2f}x [{r.ci95_low:.2f}–{r.ci95_high:.2f}]: {r.verdict}"
        out.append(row)
    return pd.DataFrame(out, columns=cols + allocs)
