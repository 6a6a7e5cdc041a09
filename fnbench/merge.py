"""One analysis frame from many result files: per-sample round ids attached, repeats merged.

:func:`fnbench.results.load_results` gives one row per record but keeps only the *number* of
rounds, not which round each sample came from. Confidence intervals that respect the
correlation of iterations inside one fresh allocation need the per-sample ids, so
:func:`load_frame` reads them from the raw records (``record["rounds"]``) into ``round_ids``.

Merging (:func:`merge_repeats`). Records are repeats of one measurement when they share the
device (``device_key``) and the measurement identity: target, shape, layers, options, batch,
dtype, runtime, threads. Repeats are **pooled**: their raw samples are concatenated, round ids
are renumbered so that every (run, round) stays its own round, and worker ids so that every
worker process of every repeat is its own cluster (a repeat sampled in one process is one
cluster). The median of the pooled round medians and its 95 % CI are then recomputed by
:func:`fnbench.stats.hierarchical_median_ci`, which resamples those clusters and the rounds
inside them, so repeats that disagree widen the interval. Pooling rather than "latest wins"
because every run adds fresh allocations and processes, which is exactly the variation the
interval must cover. The pooled row keeps the latest successful repeat's other columns, with
throughput and GMAC/s taken from the pooled median. It is stable by the one rule,
:func:`fnbench.stats.settled`: its interval lies within the loosest precision target of its repeats. Failed or unsupported repeats
are dropped when at least one repeat succeeded (and counted in ``n_failed_repeats``); if none
did, the latest failure is kept. Different devices are never merged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import stats, units
from .allocators import DEFAULT_ALLOCATOR
from .measurement import MIN_SAMPLES_P99
from .results import LEGACY_ALLOCATOR, frame_of, load_records

#: The precision target of records that do not store one (the default of ``fnbench run``).
DEFAULT_PRECISION = 0.02

__all__ = ["IDENTITY_COLUMNS", "load_frame", "merge_repeats", "device_labels", "join_names"]

#: Columns that identify "the same measurement on the same device".
IDENTITY_COLUMNS = (
    "device_key",
    "target",
    "shape",
    "layers",
    "options",
    "batch_requested",
    "batch",
    "dtype",
    "runtime",
    "threads",
)


def load_frame(
    paths: str | os.PathLike | Iterable[str | os.PathLike] = "results", *, merge: bool = True
) -> pd.DataFrame:
    """Load result files/directories; add ``round_ids`` (one id per sample) and merge repeats.

    Returns the :func:`~fnbench.results.load_results` columns plus ``round_ids``, ``n_repeats``,
    ``n_failed_repeats``, ``run_ids`` and ``device_label`` (see :func:`device_labels`).
    """
    pairs = load_records(paths)
    df = frame_of(pairs, rows="all")  # the report draws its roofline ceilings from the probe rows
    raw = [rec for rec, _ in pairs]
    if df.empty:
        return df
    # A layout or precision other than the paper's (NCHW, FP32) is a different set-up: it joins the
    # runtime's label, so every grouping by runtime (repeats, claims, panels) keeps it apart.
    # ``runtime_name`` keeps the bare runtime for filtering.
    df["runtime_name"] = df["runtime"]
    fmt = df.get("memory_format", pd.Series("contiguous", index=df.index)).fillna("contiguous")
    # The allocator too (see fnbench.allocators), where the files hold more than one: ``tuned`` is
    # the default set-up and adds nothing; ``system`` (also every record older than the allocator
    # field) and the preloaded ones do. Files of one allocator keep plain labels; the ``allocator``
    # column (shown in the report's tables) still says which.
    alloc = df.get("allocator", pd.Series(LEGACY_ALLOCATOR, index=df.index)).fillna(LEGACY_ALLOCATOR)
    several = alloc.nunique() > 1
    df["runtime"] = [
        r
        + ("" if f == "contiguous" else f" {f}")
        + ("" if d in (None, "float32") else f" {d}")
        + ("" if (a == DEFAULT_ALLOCATOR or not several) else f" alloc={a}")
        for r, f, d, a in zip(df["runtime"], fmt, df["dtype"], alloc)
    ]
    # The Ray node that measured a record, where a campaign stored it (fnbench.campaign): two nodes
    # of one machine share a device key, and only this tells their records apart.
    df["node"] = [
        (rec.get("campaign") or {}).get("node") if isinstance(rec.get("campaign"), dict) else None for rec in raw
    ]
    df["round_ids"] = [rec.get("rounds") or [] for rec in raw]
    df["worker_ids"] = [rec.get("workers") or None for rec in raw]
    df["cycle_keys"] = [_cycle_keys(rec) for rec in raw]
    df["n_repeats"] = 1
    df["n_failed_repeats"] = 0
    df["run_ids"] = df["run_id"]
    if merge:
        df = merge_repeats(df)
    df["device_label"] = df["device_key"].map(device_labels(df))
    return df


def _cycle_keys(rec: dict) -> list[tuple] | None:
    """Per sample, the moment its round was taken in an interleaved run: ``(run, pass, cycle)``; None for
    records of runs that measured their targets one after another (no ``cycles``)."""
    passes, cycles = rec.get("passes"), rec.get("cycles")
    n = len(rec.get("samples_s") or [])
    if not passes or not cycles or len(passes) != n or len(cycles) != n:
        return None
    run = rec.get("run_id")
    return [(run, int(p), int(c)) for p, c in zip(passes, cycles)]


def device_labels(df: pd.DataFrame) -> dict[str, str]:
    """``device_key -> "kind: name"``; a short key is appended where two devices share a name."""
    first = df.drop_duplicates("device_key")
    labels = {k: f"{kind}: {name}" for k, kind, name in zip(first.device_key, first.device, first.device_name)}
    counts: dict[str, int] = {}
    for v in labels.values():
        counts[v] = counts.get(v, 0) + 1
    return {k: (f"{v} [{k}]" if counts[v] > 1 else v) for k, v in labels.items()}


def _has_ids(row) -> bool:
    r = row.get("round_ids")
    return isinstance(r, (list, tuple, np.ndarray)) and len(r) == len(row["samples_s"])


def _has_workers(row) -> bool:
    w = row.get("worker_ids")
    return isinstance(w, (list, tuple, np.ndarray)) and len(w) == len(row["samples_s"])


def _round_ids(row) -> np.ndarray:
    if _has_ids(row):
        return np.asarray(row["round_ids"])
    return np.arange(len(row["samples_s"]))  # no ids recorded: every sample is its own round


def join_names(values: pd.Series) -> str | None:
    """The distinct non-empty names in ``values`` (each may itself be ``", "``-joined), sorted, ``", "``-joined."""
    names = sorted({n for v in values.dropna() for n in str(v).split(", ") if n})
    return ", ".join(names) or None


def _pool(group: pd.DataFrame) -> dict:
    ok = group[group.status == "ok"]
    latest = group.sort_values("created").iloc[-1]
    if ok.empty:
        row = latest.to_dict()
        row.update(n_repeats=len(group), n_failed_repeats=len(group), run_ids=",".join(map(str, group.run_id)))
        if "node" in group:
            row["node"] = join_names(group["node"])
        return row
    ok = ok.sort_values("created")
    row = ok.iloc[-1].to_dict()
    row.update(n_repeats=len(group), n_failed_repeats=len(group) - len(ok), run_ids=",".join(map(str, ok.run_id)))
    if "node" in group:  # every node that measured a repeat (a campaign's two nodes of one machine)
        row["node"] = join_names(group["node"])
    if len(ok) == 1:
        return row
    samples, rids, clusters, moments = [], [], [], []
    offset = cluster_offset = 0
    for _, repeat in ok.iterrows():
        rep_samples = np.asarray(repeat["samples_s"], dtype=float)
        _, rounds = np.unique(_round_ids(repeat), return_inverse=True)
        samples.append(rep_samples)
        rids.append(rounds + offset)
        moments.append(repeat.get("cycle_keys"))
        offset += int(rounds.max()) + 1 if rounds.size else 0
        # Process level: each worker of each repeat is a cluster; a repeat without worker ids
        # (in-process sampling) is one process, so one cluster.
        if _has_workers(repeat):
            workers = np.unique(np.asarray(repeat.get("worker_ids")), return_inverse=True)[1]
        else:
            workers = np.zeros(rep_samples.size, dtype=int)
        clusters.append(workers + cluster_offset)
        cluster_offset += int(workers.max()) + 1 if workers.size else 0
    s_all = np.concatenate(samples)
    r_all = np.concatenate(rids)
    c_all = np.concatenate(clusters)
    med, ci = stats.hierarchical_median_ci(s_all, r_all, c_all)
    meds = stats.round_medians(s_all, r_all)
    stable = stats.settled(ci, med, _precision(ok))
    macs, batch, mb = row.get("macs"), row.get("batch"), row.get("mem_bytes_counted")
    row.update(
        samples_s=s_all.tolist(),
        round_ids=r_all.tolist(),
        worker_ids=c_all.tolist(),
        median_s=med,
        ci95_low_s=ci.low,
        ci95_high_s=ci.high,
        n=int(s_all.size),
        rounds=int(meds.size),
        stable=stable,
        iqr_s=stats.iqr(s_all),
        p50_s=stats.median(s_all),
        p90_s=stats.p90(s_all),
        p99_s=stats.percentile(s_all, 99.0) if s_all.size >= MIN_SAMPLES_P99 else None,
        cycle_keys=[k for m in moments for k in m] if all(m is not None for m in moments) else None,
        rel_ci_halfwidth=stats.rel_halfwidth(ci, med),
    )
    if not all(_has_ids(r) for _, r in ok.iterrows()):
        row["round_ids"] = None  # no real round ids to pass on: consumers must know the CI is per iteration
    row["throughput_per_s"] = units.per_second(batch, med) if batch else None
    if macs is not None and not pd.isna(macs):
        glo, ghi = units.gmacs_per_s_ci(macs, ci.low, ci.high)
        row.update(
            gmacs_per_s=units.gmacs_per_s(macs, med),
            gmacs_per_s_ci95_low=glo,
            gmacs_per_s_ci95_high=ghi,
            gflops_per_s=units.gflops_per_s(macs, med),
        )
        row["intensity_flop_per_byte"] = units.intensity(macs, mb)
    return row


def _precision(rows: pd.DataFrame) -> float:
    """The precision target of pooled repeats: the loosest one they were measured with (default ±2%)."""
    p = rows["precision"].dropna() if "precision" in rows else pd.Series(dtype=float)
    return float(p.max()) if len(p) else DEFAULT_PRECISION


def merge_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """Pool records that are repeats of one measurement on one device (see the module docstring).

    Idempotent: a frame without repeats comes back unchanged (apart from the bookkeeping columns).
    """
    if df.empty:
        return df
    df = df.copy()
    for c, default in (
        ("round_ids", None),
        ("worker_ids", None),
        ("cycle_keys", None),
        ("n_repeats", 1),
        ("n_failed_repeats", 0),
    ):
        if c not in df:
            df[c] = [default] * len(df)
    if "run_ids" not in df:
        df["run_ids"] = df["run_id"]
    keys = [c for c in IDENTITY_COLUMNS if c in df]
    rows = []
    for _, g in df.groupby(keys, dropna=False, sort=False):
        rows.append(g.iloc[0].to_dict() if len(g) == 1 else _pool(g))
    return pd.DataFrame(rows, columns=df.columns).reset_index(drop=True)
