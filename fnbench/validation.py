"""What a stored record must satisfy before any number is derived from it.

Every reader of result files (:func:`fnbench.results.read_records`, and through it
:func:`~fnbench.results.load_records`, :func:`fnbench.merge.load_frame`, the report and
``compare --from``) passes each measurement record through :func:`record_problem`, and the
records of all files through :func:`identity_conflict`. A record that fails is refused with its
file, line and field (exit 2), never read around: a hand-edited ``cost.macs`` 100× too large once
turned a 2.69× FLOPS ratio into "269×: supported", and a negative one into "−2.69×: contradicted".

The rules, and why:

- **Identity fields** (run id, target name and kind, device kind and key, runtime, dtype, memory
  format, allocator, threads, layers, options) have their written types: they group records into
  repeats, and a number or ``null`` where a name belongs merges what is not the same measurement.
- **Shape and batch** are lists of positive integers and a positive integer: throughput is
  batch / latency, and a shape written as a string is not a shape.
- **Cost** (``params``, ``macs``, ``flops``, ``mem_bytes_analytic``, ``mem_bytes_counted``) is
  absent, ``null`` or a non-negative integer (a count of operations or bytes); an ``ok`` record of
  an operator or network needs ``macs`` > 0, since its FLOPS figure is MACs / latency (a probe's
  copy kernel has 0 MACs and states a bandwidth instead).
- **Samples** (seconds per iteration) are finite and within [``MIN_SAMPLE_S``, ``MAX_SAMPLE_S``]
  = [100 ns, 1 h]: no forward of a module through PyTorch's dispatcher completes in less than a
  microsecond on any device (CUDA kernels alone take a few µs to launch; timed blocks amortise
  launches, never below 100 ns), and a run's budget is seconds per target, so a single iteration
  of an hour is not a measurement fnbench took. The fastest sample must also not imply more than
  ``MAX_MACS_PER_S`` for the device kind: 10^14 MAC/s on a CPU or ARM device (100 TMAC/s, over 20×
  the FP32 peak of a two-socket AVX-512 server) and 10^16 MAC/s on CUDA (10 PMAC/s, about 10× the
  densest FP16 tensor-core peak of current GPUs). A record beyond these is a corrupt or forged
  one, not a fast machine. Page faults per iteration lie in [0, 10^9] (``MAX_FAULTS_PER_ITER``:
  a billion 4 KiB faults is 4 TB touched in one forward).
- **Breakdown lines** (``record: "breakdown"``) follow the same identity, size and cost rules;
  their whole-network samples the same bounds; each layer's counts are non-negative integers
  and its median a positive time (:func:`breakdown_problem`).
- **Repeats agree**: records of one measurement identity on one device (what
  :mod:`fnbench.merge` pools) must state the same cost, target block and device block; two that
  disagree are refused naming both lines, and nothing is pooled across them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = [
    "MIN_SAMPLE_S",
    "MAX_SAMPLE_S",
    "MAX_MACS_PER_S",
    "MAX_FAULTS_PER_ITER",
    "COST_FIELDS",
    "record_problem",
    "breakdown_problem",
    "identity_conflict",
]

#: Shortest plausible seconds per iteration on any device (see the module docstring).
MIN_SAMPLE_S = 1e-7
#: Longest plausible seconds per iteration: one hour.
MAX_SAMPLE_S = 3600.0
#: Highest plausible MAC/s of one device, by kind (others: the CUDA bound).
MAX_MACS_PER_S = {"cpu": 1e14, "arm": 1e14, "cuda": 1e16}
#: Most page faults one iteration can take: 10^9 faults of 4 KiB is 4 TB touched in one forward.
MAX_FAULTS_PER_ITER = 1e9
#: Cost fields the numbers depend on: counts of operations or bytes.
COST_FIELDS = ("params", "macs", "flops", "mem_bytes_analytic", "mem_bytes_counted")

_STR_FIELDS = ("runtime", "dtype", "memory_format", "allocator", "created")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _shape_problem(v: Any, where: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v or not all(_positive_int(d) for d in v):
        return f"{where} is {v!r}, not a list of positive integers (e.g. [96, 56, 56])"
    return None


def _unprintable(rec: dict[str, Any]) -> str | None:
    """The first identity name holding a control character (a CR or NUL breaks every CSV row it lands in)."""
    t, dev = rec["target"], rec["device"]
    names = [("run_id", rec.get("run_id")), ("target name", t.get("name")), ("target kind", t.get("kind"))]
    names += [(f"device {k}", dev.get(k)) for k in ("kind", "name", "key", "arch")]
    names += [(k, rec.get(k)) for k in ("runtime", *_STR_FIELDS)]
    for where, v in names:
        if isinstance(v, str) and not v.isprintable():
            return f"{where} is {v!r}: a name with control characters"
    return None


def _identity_problem(rec: dict[str, Any]) -> str | None:
    t, dev = rec["target"], rec["device"]
    if _unprintable(rec):
        return _unprintable(rec)
    if not rec["run_id"]:
        return "run_id is empty"
    if not t["name"]:
        return "target name is empty"
    for block, key, name in ((t, "kind", "target kind"), (dev, "kind", "device kind"), (dev, "key", "device key")):
        if block.get(key) is not None and not isinstance(block[key], str):
            return f"{name} is {block[key]!r}, not a name"
    if not isinstance(dev.get("kind"), str):
        return "the device has no kind (cpu, arm or cuda)"
    if not isinstance(rec.get("runtime"), str) or not rec["runtime"]:  # every report label starts with it
        return f"runtime is {rec.get('runtime')!r}, not a runtime's name (eager, compile, onnxruntime, …)"
    for key in _STR_FIELDS:
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return f"{key} is {rec[key]!r}, not a name"
    if rec.get("threads") is not None and not _positive_int(rec["threads"]):
        return f"threads is {rec['threads']!r}, not a positive integer"
    if t.get("layers") is not None and not _positive_int(t["layers"]):
        return f"target layers is {t['layers']!r}, not a positive integer"
    if t.get("options") is not None and not isinstance(t["options"], dict):
        return f"target options is {t['options']!r}, not an object"
    return None


def _size_problem(rec: dict[str, Any]) -> str | None:
    t = rec["target"]
    for v, where in ((rec.get("shape"), "shape"), (t.get("shape"), "target shape")):
        problem = _shape_problem(v, where)
        if problem:
            return problem
    for block, where in ((rec, "batch"), (t, "target batch")):
        if "batch" in block and not _positive_int(block["batch"]):  # absent: a record older than the field
            return f"{where} is {block['batch']!r}, not a positive integer"
    return None


def _cost_problem(rec: dict[str, Any], status: str) -> str | None:
    cost = rec.get("cost")
    if cost is None:
        return "an 'ok' record without its cost" if status == "ok" else None
    for key in COST_FIELDS:
        v = cost.get(key)
        if v is not None and not (_is_int(v) and v >= 0):
            return f"cost.{key} is {v!r}, not a non-negative integer count"
    probe = rec["target"].get("kind") == "probe"
    if status == "ok" and not probe and not _positive_int(cost.get("macs")):
        return f"cost.macs is {cost.get('macs')!r}: an operator or network measured 'ok' needs MACs > 0 for its FLOPS"
    return None


def _samples_problem(rec: dict[str, Any]) -> str | None:
    samples = rec.get("samples_s") or []
    if not samples:
        return None
    lo, hi = min(samples), max(samples)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "samples_s holds a non-finite time"
    if lo < MIN_SAMPLE_S or hi > MAX_SAMPLE_S:
        bad = lo if lo < MIN_SAMPLE_S else hi
        return f"samples_s holds {bad!r} s, outside the plausible {MIN_SAMPLE_S:g}–{MAX_SAMPLE_S:g} s per iteration"
    macs = (rec.get("cost") or {}).get("macs")
    kind = rec["device"]["kind"]
    ceiling = MAX_MACS_PER_S.get(kind, MAX_MACS_PER_S["cuda"])
    if _is_int(macs) and macs / lo > ceiling:
        return (
            f"cost.macs {macs} in {lo:g} s is {macs / lo:.3g} MAC/s, beyond any {kind} device "
            f"({ceiling:.0e} MAC/s): the cost or the samples are wrong"
        )
    return None


def _stats_problem(rec: dict[str, Any]) -> str | None:
    st = rec.get("stats") or {}
    p = st.get("precision")
    if p is not None and not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p < 1):
        return f"stats.precision is {p!r}, not a fraction between 0 and 1"
    for key in ("minor_faults_per_iter", "major_faults_per_iter"):
        v = st.get(key)
        if v is not None and not (
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= MAX_FAULTS_PER_ITER
        ):
            return f"stats.{key} is {v!r}, not a number of page faults between 0 and {MAX_FAULTS_PER_ITER:.0e}"
    return None


def record_problem(rec: dict[str, Any]) -> str | None:
    """The first field of a measurement record that no number may be derived from, in words, or None.

    ``rec`` has passed :func:`fnbench.results.read_records`' structural checks (``run_id`` a
    string, ``target`` and ``device`` objects, the target named, a known status, numeric samples).
    """
    status = rec.get("status", "ok")
    for check in (_identity_problem, _size_problem, _stats_problem):
        problem = check(rec)
        if problem:
            return problem
    return _cost_problem(rec, status) or _samples_problem(rec)


def _finite_positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def breakdown_problem(rec: dict[str, Any]) -> str | None:
    """:func:`record_problem` for a per-layer breakdown line (:mod:`fnbench.layers`), or None.

    The same identity, size and cost rules; the whole network's samples (``end_to_end``) within
    the sample bounds; each layer's counts non-negative integers and its median a positive time.
    """
    if not isinstance(rec.get("run_id"), str) or not isinstance(rec.get("target"), dict):
        return "not a valid breakdown record: run_id or target is missing"
    if not isinstance(rec["target"].get("name"), str) or not isinstance(rec.get("device"), dict):
        return "not a valid breakdown record: the target has no name or the device is missing"
    for check in (_identity_problem, _size_problem):
        problem = check(rec)
        if problem:
            return problem
    cost = rec.get("cost")
    if cost is not None and not isinstance(cost, dict):
        return "cost is not an object"
    for key in COST_FIELDS:
        v = (cost or {}).get(key)
        if v is not None and not (_is_int(v) and v >= 0):
            return f"cost.{key} is {v!r}, not a non-negative integer count"
    e2e = rec.get("end_to_end")
    if rec.get("status", "ok") == "ok":
        if not isinstance(e2e, dict) or not isinstance(e2e.get("stats"), dict):
            return "end_to_end (the whole network's measurement) is missing"
        samples = e2e.get("samples_s") or []
        if not isinstance(samples, list) or not all(_finite_positive(x) for x in samples):
            return "end_to_end.samples_s is not a list of positive finite seconds"
        if samples and (min(samples) < MIN_SAMPLE_S or max(samples) > MAX_SAMPLE_S):
            return f"end_to_end.samples_s is outside the plausible {MIN_SAMPLE_S:g}–{MAX_SAMPLE_S:g} s per iteration"
        if not _finite_positive(e2e["stats"].get("median_s")):
            return f"end_to_end.stats.median_s is {e2e['stats'].get('median_s')!r}, not a positive time"
    layers = rec.get("layers")
    if layers is not None and not (isinstance(layers, list) and all(isinstance(x, dict) for x in layers)):
        return "layers is not a list of objects"
    for i, layer in enumerate(layers or []):
        for key in ("params", "macs", "bytes"):
            v = layer.get(key)
            if v is not None and not (_is_int(v) and v >= 0):
                return f"layers[{i}].{key} is {v!r}, not a non-negative integer count"
        if layer.get("median_s") is not None and not _finite_positive(layer["median_s"]):
            return f"layers[{i}].median_s is {layer['median_s']!r}, not a positive time"
    return None


def _pooling_identity(rec: dict[str, Any], key: str) -> tuple:
    dev = rec.get("device") or {}
    return (dev.get("key"), key, rec.get("batch"))


def _agreeing_part(rec: dict[str, Any]) -> dict[str, Any]:
    cost = rec.get("cost") or {}
    dev = rec.get("device") or {}
    t = rec.get("target") or {}
    return {
        "cost": {k: cost.get(k) for k in COST_FIELDS},
        "target": {k: t.get(k) for k in ("kind", "layers", "options")},
        "device": {k: dev.get(k) for k in ("kind", "name", "arch")},
    }


def identity_conflict(items: list[tuple[dict[str, Any], Path, int]], key_of) -> None:
    """Refuse repeats of one measurement that disagree on cost, target block or device block.

    ``items`` are ``(record, file, line)`` of successful records; ``key_of`` gives a record's
    identity (:func:`fnbench.results.record_key`). Raises :class:`UserError` naming both lines and
    the first field that differs.
    """
    first: dict[tuple, tuple[dict[str, Any], Path, int]] = {}
    for rec, src, line in items:
        ident = _pooling_identity(rec, key_of(rec))
        if ident not in first:
            first[ident] = (rec, src, line)
            continue
        prev, psrc, pline = first[ident]
        a, b = _agreeing_part(prev), _agreeing_part(rec)
        for block in a:
            diff = [k for k in a[block] if a[block][k] != b[block][k]]
            if diff:
                k = diff[0]
                raise UserError(
                    f"{psrc} line {pline} and {src} line {line} are repeats of one measurement "
                    f"({rec['target'].get('name')} on {(rec.get('device') or {}).get('key')}) but disagree on "
                    f"{block}.{k} ({a[block][k]!r} vs {b[block][k]!r}); they are not pooled: remove the wrong "
                    "line (or file), or measure again"
                )
