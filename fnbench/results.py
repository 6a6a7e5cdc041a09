"""What a number is: the versioned result record, crash-safe append, and loading into pandas.

One JSON object per line (JSON Lines), one file per run: ``results/<run_id>.jsonl``. Each line is
written, flushed and ``fsync``-ed as soon as its measurement finishes, so an interrupted run loses
at most the measurement in progress (and a torn last line, which :func:`read_records` skips with a
warning); ``fnbench run --resume RUN_ID`` then measures only what is missing.

Record keys (``SCHEMA_VERSION`` 1)::

    schema, run_id, created (UTC ISO-8601), status ('ok' | 'failed' | 'unsupported' | 'partial'), error?,
    target {name, kind, shape, layers, options, batch}, shape, batch (used), dtype,
    device {kind, name, arch, key}, runtime, threads,
    cost {params, macs, flops, mem_bytes_analytic, mem_bytes_counted, ...},
    samples_s (raw seconds per iteration), rounds (round id per sample),
    workers? (process id per sample, 0, 1, …, when measured on worker processes),
    passes? (pass over the suite per sample), pass? (a partial record's pass),
    stats {median_s, iqr_s, p90_s, ci95_low_s, ci95_high_s, n, stable, ci_method, workers, ...}, env {...}

Units live in key names: ``*_s`` seconds, ``macs`` multiply-adds, ``flops`` = 2 × macs.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = [
    "ROW_KINDS",
    "is_probe_record",
    "SCHEMA_VERSION",
    "STATUSES",
    "new_run_id",
    "utc_now",
    "ResultWriter",
    "read_records",
    "iter_result_files",
    "load_results",
    "record_key",
    "identity_key",
    "measured_keys",
]

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "unsupported", "partial")


def utc_now() -> str:
    """Current UTC time, ISO-8601 with a ``Z`` suffix, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """``20261128T043000Z-3fa2``: sortable UTC timestamp plus a short random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no inf/nan; None means "not available"
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
        return _jsonable(v.item())
    return v


class ResultWriter:
    """Append records to a JSON Lines file, one durable line per call.

    Each :meth:`write` serialises the record, appends it with a newline, flushes Python's buffer
    and ``os.fsync``-s the file: after ``write`` returns the line survives a crash or power loss.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._ensure_newline()

    def _ensure_newline(self) -> None:
        # A torn last line from an earlier crash must not swallow the next record.
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                last = f.read(1)
            if last != b"\n":
                with open(self.path, "ab") as f:
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(_jsonable(record), allow_nan=False, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_records(path: str | os.PathLike, *, partial: bool = False) -> list[dict[str, Any]]:
    """All records of one result file (without ``status: "partial"`` pass records unless ``partial``).

    A pass record holds one pass of a target that is still being measured (what ``--resume``
    continues from); the target's final record repeats its samples, so readers skip them. A truncated *last* line (an interrupted write) is skipped with a warning. A non-JSON line
    elsewhere, or a record written by a newer schema, raises :class:`UserError` naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"result file {path} does not exist; see `ls results/` for the runs there") from None
    lines = text.split("\n")
    # index of the last non-empty line
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    records = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            if i == last:
                warnings.warn(f"{path}: skipping truncated last line {i + 1} (an interrupted write)",
                              RuntimeWarning, stacklevel=2)
                continue
            raise UserError(f"{path}, line {i + 1}: not a valid result record (corrupt JSON); "
                            "repair or remove that line") from None
        schema = rec.get("schema")
        if not isinstance(schema, int):
            raise UserError(f"{path}, line {i + 1}: no schema version; this is not an fnbench result file")
        if schema > SCHEMA_VERSION:
            raise UserError(f"{path} was written by a newer fnbench (schema {schema}; this one reads "
                            f"{SCHEMA_VERSION}); upgrade fnbench or remove the file")
        if schema < 1:
            raise UserError(f"{path}, line {i + 1}: unknown schema version {schema}; remove the file")
        if partial or rec.get("status") != "partial":
            records.append(rec)
    return records


def iter_result_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Expand files and directories (their ``*.jsonl``, sorted) into result file paths."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(p.glob("*.jsonl"))
        elif p.exists():
            yield p
        else:
            raise UserError(f"no result file or directory at {p}")


#: The allocator of a record written before the allocator was a recorded condition: those runs
#: left glibc's malloc as each worker process got it, which is what ``system`` means.
LEGACY_ALLOCATOR = "system"


def record_allocator(rec: dict[str, Any]) -> str:
    """The allocator mode a record was measured under (``system`` for records that predate it)."""
    return rec.get("allocator") or LEGACY_ALLOCATOR


def identity_key(*, name: str, shape, layers, options, batch: int, device_kind: str, runtime: str,
                 threads, dtype: str, memory_format: str = "contiguous", allocator: str = LEGACY_ALLOCATOR) -> str:
    """Canonical identity of a measurement (what ``--resume`` matches on), as a JSON string."""
    opts = sorted((str(k), v) for k, v in (options.items() if isinstance(options, dict) else options))
    return json.dumps([name, list(shape) if shape is not None else None, layers, opts, int(batch),
                       device_kind, runtime, threads, dtype, memory_format, allocator], separators=(",", ":"))


def record_key(rec: dict[str, Any]) -> str:
    t = rec.get("target", {})
    return identity_key(
        name=t.get("name"), shape=t.get("shape"), layers=t.get("layers"), options=t.get("options") or {},
        batch=t.get("batch", rec.get("batch", 1)), device_kind=(rec.get("device") or {}).get("kind"),
        runtime=rec.get("runtime"), threads=rec.get("threads"), dtype=rec.get("dtype"),
        memory_format=rec.get("memory_format", "contiguous"), allocator=record_allocator(rec),
    )


def measured_keys(path: str | os.PathLike, *, statuses: tuple[str, ...] = ("ok", "unsupported")) -> set[str]:
    """Identity keys of records already in ``path`` with one of ``statuses``.

    Failed measurements are not included, so a resumed run retries them.
    """
    if not Path(path).exists():
        return set()
    return {record_key(r) for r in read_records(path) if r.get("status", "ok") in statuses}


def _shape_str(shape) -> str | None:
    return "x".join(map(str, shape)) if shape else None


def _flatten(rec: dict[str, Any], source: Path) -> dict[str, Any]:
    t = rec.get("target") or {}
    dev = rec.get("device") or {}
    cost = rec.get("cost") or {}
    st = rec.get("stats") or {}
    env = rec.get("env") or {}
    batch = rec.get("batch")
    macs = cost.get("macs")
    row: dict[str, Any] = {
        "run_id": rec.get("run_id"),
        "created": rec.get("created"),
        "status": rec.get("status", "ok"),
        "error": rec.get("error"),
        "target": t.get("name"),
        "target_kind": t.get("kind"),
        "shape": _shape_str(rec.get("shape") or t.get("shape")),
        "layers": t.get("layers"),
        "options": json.dumps(t.get("options") or {}, sort_keys=True),
        "batch": batch,
        "batch_requested": t.get("batch", batch),
        "dtype": rec.get("dtype"),
        "device": dev.get("kind"),
        "device_name": dev.get("name"),
        "device_arch": dev.get("arch"),
        "device_key": dev.get("key"),
        "runtime": rec.get("runtime"),
        "memory_format": rec.get("memory_format", "contiguous"),
        "allocator": record_allocator(rec),
        "threads": rec.get("threads"),
        "params": cost.get("params"),
        "macs": macs,
        "flops": cost.get("flops"),
        "mem_bytes_analytic": cost.get("mem_bytes_analytic"),
        "mem_bytes_counted": cost.get("mem_bytes_counted"),
    }
    for k in ("median_s", "iqr_s", "p90_s", "ci95_low_s", "ci95_high_s", "n", "stable", "rounds", "rel_ci_halfwidth",
              "precision", "minor_faults_per_iter", "major_faults_per_iter", "faults_flag", "unstable_reason"):
        row[k] = st.get(k)
    med, lo, hi = st.get("median_s"), st.get("ci95_low_s"), st.get("ci95_high_s")

    def per_s(num, t):
        return num / t if (num is not None and t) else None

    row["throughput_per_s"] = per_s(batch, med)
    g = macs / 1e9 if macs is not None else None
    row["gmacs_per_s"] = per_s(g, med)
    row["gmacs_per_s_ci95_low"] = per_s(g, hi)  # slower end of latency = lower throughput
    row["gmacs_per_s_ci95_high"] = per_s(g, lo)
    row["gflops_per_s"] = 2 * row["gmacs_per_s"] if row["gmacs_per_s"] is not None else None
    mb = cost.get("mem_bytes_counted")
    row["intensity_flop_per_byte"] = (2 * macs / mb) if (macs is not None and mb) else None
    row["samples_s"] = rec.get("samples_s") or []
    row["schema"] = rec.get("schema")
    for k, v in env.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            row[f"env_{k}"] = v
    row["source"] = str(source)
    return row


#: What :func:`load_results` returns: operator and network measurements, device probes, or both.
ROW_KINDS = ("measurements", "probes", "all")


def is_probe_record(rec: dict[str, Any]) -> bool:
    """A ``fnbench probe`` record (a device ceiling), not a measurement of an operator or network."""
    t = rec.get("target") or {}
    return t.get("kind") == "probe" or str(t.get("name", "")).startswith("probe:")


def load_results(paths: str | os.PathLike | Iterable[str | os.PathLike] = "results", *, rows: str = "measurements"):
    """Load result files and directories into a ``pandas.DataFrame``, one row per record.

    ``rows`` keeps probe records apart from measurements: ``"measurements"`` (default) gives
    operator and network rows only, ``"probes"`` the device-ceiling rows of ``fnbench probe``
    only, ``"all"`` both, told apart by the ``row_kind`` column ("measurement" | "probe").
    Columns carry their units: ``median_s``, ``ci95_low_s``, ``macs``, ``gmacs_per_s`` (with
    ``gmacs_per_s_ci95_low``/``_high``), ``throughput_per_s`` (samples/s), ``env_*``; raw
    samples stay in ``samples_s``. Results from several devices merge into one frame; group by
    ``device_key`` to keep one device's rows together.
    """
    import pandas as pd

    if rows not in ROW_KINDS:
        raise ValueError(f"rows={rows!r}: use one of {', '.join(ROW_KINDS)}")
    out = []
    for f in iter_result_files(paths):
        for r in read_records(f):
            probe = is_probe_record(r)
            if (rows == "measurements" and probe) or (rows == "probes" and not probe):
                continue
            out.append(dict(_flatten(r, f), row_kind="probe" if probe else "measurement"))
    return pd.DataFrame(out)
