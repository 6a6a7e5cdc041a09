"""Rows measured side by side, resampled together: the paired bootstrap of an interleaved run.

In an interleaved pass (:mod:`fnbench.passes`) every target takes one round per cycle, so the
rounds of two rows with the same pass and cycle were taken moments apart and saw the same machine.
A ratio of two such rows is then best judged by resampling the *moments*, not each row on its own:
the same passes (processes), then the same cycles within them, for every row of a claim, so that
a slow stretch of the host that slowed both rows is drawn for both and cancels in their ratio,
as ``compare`` does with its side-by-side chunks. Rows without cycles (runs that measured targets
one after another) cannot be paired; :func:`joint_draws` says so by returning None.

Example::

    >>> import numpy as np
    >>> a = Rounds(np.array([1.0, 2.0]), [("r", 0, 0), ("r", 0, 1)], [0, 0])
    >>> b = Rounds(np.array([2.0, 4.0]), [("r", 0, 0), ("r", 0, 1)], [0, 0])
    >>> da, db = joint_draws([a, b], 100, np.random.default_rng(0))
    >>> bool(np.allclose(db / da, 2.0))  # the drift common to both rows cancels in every replicate
    True
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Rounds", "rounds_of", "joint_draws", "MIN_COMMON_SHARE"]

#: Pair only rows whose rounds are mostly taken in common cycles: at least this share of every
#: row's rounds (a row whose rounds outlasted its share of a pass sits out some cycles).
MIN_COMMON_SHARE = 0.8


@dataclass
class Rounds:
    """A row's round medians with, per round, the moment it was taken (``keys``: run, pass, cycle) and
    the process that took it (``processes``: rounds of one pass share it)."""

    medians: np.ndarray
    keys: list[Hashable]
    processes: list[Hashable]


def rounds_of(samples, round_ids, cycle_keys) -> Rounds | None:
    """A row's :class:`Rounds` from its samples, round ids and per-sample cycle keys ``(run, pass, cycle)``;
    None without cycle keys, or when one round's samples claim two moments."""
    if cycle_keys is None or len(cycle_keys) != len(samples) or len(round_ids) != len(samples):
        return None
    s = np.asarray(samples, dtype=float)
    r = np.asarray(round_ids)
    _, first, inverse = np.unique(r, return_index=True, return_inverse=True)
    order = np.argsort(first)
    meds = np.array([np.median(s[inverse == i]) for i in order])
    keys = [tuple(cycle_keys[j]) for j in first[order]]
    if len(set(keys)) != len(keys):
        return None  # two rounds at one moment: not rounds of an interleaved pass
    return Rounds(meds, keys, [k[:-1] for k in keys])


def joint_draws(rows: Sequence[Rounds], n_boot: int, rng: np.random.Generator) -> list[np.ndarray] | None:
    """Bootstrap replicates of each row's median of round medians, drawn jointly over common moments.

    The rounds every row has (same run, pass and cycle) are kept; each replicate resamples the
    processes (passes) with replacement, then within each chosen process its cycles with
    replacement, and applies the same draw to every row. Returns one array of ``n_boot`` replicates
    per row, or None when the rows cannot be paired: a row without cycles, or fewer common rounds
    than :data:`MIN_COMMON_SHARE` of some row's.
    """
    if not rows or any(r is None for r in rows):
        return None
    common = set(rows[0].keys).intersection(*(r.keys for r in rows[1:]))
    if not common or any(len(common) < MIN_COMMON_SHARE * len(r.keys) for r in rows):
        return None
    keys = sorted(common, key=repr)
    procs = list(dict.fromkeys(k[:-1] for k in keys))
    by_proc = [[k for k in keys if k[:-1] == p] for p in procs]
    n_max = max(len(g) for g in by_proc)
    counts = np.array([len(g) for g in by_proc])
    chosen = rng.integers(0, len(procs), size=(n_boot, len(procs)))
    n_chosen = counts[chosen]
    idx = np.floor(rng.random((n_boot, len(procs), n_max)) * n_chosen[..., None]).astype(int)
    missing = np.arange(n_max)[None, None, :] >= n_chosen[..., None]
    out = []
    for row in rows:
        at = {k: v for k, v in zip(row.keys, row.medians)}
        table = np.full((len(procs), n_max), np.nan)
        for i, g in enumerate(by_proc):
            table[i, : len(g)] = [at[k] for k in g]
        vals = table[chosen[..., None], idx]
        vals[missing] = np.nan
        out.append(np.nanmedian(vals.reshape(n_boot, -1), axis=1))
    return out
