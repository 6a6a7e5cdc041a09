"""What a number is: the versioned result record, crash-safe append, and loading into pandas.

One JSON object per line (JSON Lines), one file per run: ``results/<run_id>.jsonl``. Each line is
written, flushed and ``fsync``-ed as soon as its measurement finishes, so an interrupted run loses
at most the measurement in progress (and a torn last line, which :func:`read_records` skips with a
warning and :class:`RunFile` sets aside into ``<run_id>.jsonl.torn``); ``fnbench run --resume RUN_ID``
then measures only what is missing.

A run's file is owned by one process: :class:`RunFile` holds an exclusive ``fcntl`` lock on
``<run_id>.jsonl.lock`` (which names the holder's pid) while it measures, and writes the run's
plan to ``<run_id>.plan.json`` so that ``--resume`` finishes the same measurements with the same
options. Every record carries an ``id`` unique to the measurement (run, identity, pass, status);
loading drops exact repeats of an id (a file named twice, a copied file) with a warning and refuses
records that claim one id with different samples. Statistics are recomputed from ``samples_s`` on
load: the samples are the truth, the stored ``stats`` block only a cache.

Record keys (``SCHEMA_VERSION`` 1)::

    schema, id? (older files: derived on load), run_id, created (UTC ISO-8601), status ('ok' | 'failed' | 'unsupported' | 'partial'), error?,
    target {name, kind, shape, layers, options, batch}, shape, batch (used), dtype,
    device {kind, name, arch, key}, runtime, threads,
    cost {params, macs, flops, mem_bytes_analytic, mem_bytes_counted, ...},
    samples_s (raw seconds per iteration), rounds (round id per sample),
    workers? (process id per sample, 0, 1, …, when measured on worker processes),
    passes? (pass over the suite per sample), pass? (a partial record's pass),
    stats {median_s, iqr_s, p90_s, ci95_low_s, ci95_high_s, n, stable, ci_method, workers, ...}, env {...}

A line with ``record: "breakdown"`` is a per-layer breakdown of one network (:mod:`fnbench.layers`:
the same identity keys plus ``method``, ``end_to_end``, ``sum_s``, ``gap`` and a ``layers`` list);
ordinary readers skip it. A line without ``record`` is a measurement.

Units live in key names: ``*_s`` seconds, ``macs`` multiply-adds, ``flops`` = 2 × macs.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import stat as _stat
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import allocators, units, validation
from .errors import SaveError, UserError, warn
from .measurement import Measurement

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
    "record_id",
    "load_records",
    "check_run_id",
    "RunFile",
    "plan_path",
    "read_plan",
    "plan_differences",
    "options_from_records",
    "dedupe",
    "frame_of",
    "read_breakdowns",
    "record_header",
    "json_document",
    "measurement_record",
    "partial_record",
    "failure_record",
    "unstable_reason",
    "probe_rate",
    "ceilings",
]

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "unsupported", "partial")


def utc_now() -> str:
    """Current UTC time, ISO-8601 with a ``Z`` suffix, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """``20261128T043000Z-3fa2``: sortable UTC timestamp plus a short random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


# -- building records -----------------------------------------------------------------------------------
# Every measuring command (run, probe, breakdown) starts its records with the same header; a run's
# target then gets partial records (one per pass), and one final, failed or unsupported record.


def record_header(
    *,
    run_id: str,
    target: dict[str, Any],
    batch: int,
    device: dict[str, Any],
    threads: int | None,
    allocator: str,
    dtype: str = "float32",
    runtime: str = "eager",
    memory_format: str = "contiguous",
    record: str | None = None,
) -> dict[str, Any]:
    """The keys every record starts with: schema, run, creation time, status ``ok``, what was measured and how.

    ``target`` is the ``{name, kind, shape, layers, options, batch}`` block (its shape is also the
    record's ``shape``); ``device`` the ``{kind, name, arch, key}`` block
    (:func:`fnbench.devices.device_record`); ``record`` names a line that is not a measurement
    (``"breakdown"``).
    """
    head: dict[str, Any] = {"schema": SCHEMA_VERSION}
    if record is not None:
        head["record"] = record
    head.update(
        {
            "run_id": run_id,
            "created": utc_now(),
            "status": "ok",
            "target": target,
            "shape": list(target["shape"]) if target.get("shape") else None,
            "batch": batch,
            "dtype": dtype,
            "device": device,
            "runtime": runtime,
            "memory_format": memory_format,
            "allocator": allocator,
            "threads": threads,
        }
    )
    return head


def unstable_reason(st: dict[str, Any]) -> str:
    """Why a row did not settle, in one phrase: the half-width reached against the target.

    Takes a record's ``stats`` or a loaded row (the report's tables; a pooled row is unstable only
    when its interval misses the target, :mod:`fnbench.merge`).
    """
    hw, target = st.get("rel_ci_halfwidth"), st.get("precision")
    if units.is_missing(hw) or units.is_missing(target):
        return "too few rounds for a 95% interval"
    if hw <= target:  # within the target but short of rounds or processes
        return f"±{hw:.1%} reached with too few rounds or processes for the ±{target:.0%} target"
    return f"95% CI ±{hw:.1%} > ±{target:.0%} target within the budget"


def _with_flags(st: dict[str, Any], m: Measurement, cost: dict[str, Any]) -> dict[str, Any]:
    """A record's ``stats``, plus why a row is not to be trusted as is: ``faults_flag`` when the timed
    iterations still page-fault (not a steady state, :func:`fnbench.allocators.faults_flag`),
    ``unstable_reason`` when the CI missed the precision target, with the half-width reached."""
    st["faults_flag"] = allocators.faults_flag(
        m.minor_faults_per_iter, cost.get("mem_bytes_counted"), (m.allocator_state or {}).get("name")
    )
    st["unstable_reason"] = None if st["stable"] else unstable_reason(st)
    return st


def measurement_record(
    header: dict[str, Any],
    m: Measurement,
    *,
    cost: dict[str, Any],
    env: dict[str, Any],
    runtime_info: dict[str, Any],
    batch: int | None = None,
    stats_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A finished measurement: the header, cost, then the measurement's own keys
    (:meth:`~fnbench.measurement.Measurement.to_record`: raw samples with their round, worker and
    pass ids, faults, stats with the flags of :func:`_with_flags`), env and runtime info.

    ``batch`` is the batch measured (default: the measurement's; a probe's input is not a batch);
    ``stats_extra`` adds keys to ``stats``.
    """
    body = m.to_record()
    body["stats"] = dict(_with_flags(body["stats"], m, cost), **(stats_extra or {}))
    if batch is not None:
        body["batch"] = batch
    return dict(header, cost=cost, **body, env=env, runtime_info=runtime_info)


def partial_record(
    header: dict[str, Any], block: dict[str, Any], *, pass_index: int, passes_planned: int, env: dict[str, Any]
) -> dict[str, Any]:
    """One pass over a target (``status: "partial"``): ``block`` is the pass's raw measurement, chunks
    and runtime info (:meth:`fnbench.passes.PassResult.record_block`)."""
    return dict(header, **block, status="partial", **{"pass": pass_index}, passes_planned=passes_planned, env=env)


def failure_record(
    header: dict[str, Any],
    *,
    status: str,
    error: str,
    traceback: str | None,
    cost: dict[str, Any] | None,
    env: dict[str, Any],
) -> dict[str, Any]:
    """A target that could not be measured: ``failed`` (with the traceback) or ``unsupported`` (with the reason)."""
    rec = dict(header, status=status, error=error)
    if status == "failed":
        rec["traceback"] = traceback
    rec.update(cost=cost, samples_s=[], rounds=[], stats=None, env=env)
    return rec


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no inf/nan; None means "not available"
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist") and callable(v.tolist) and getattr(v, "ndim", 0):  # numpy / torch arrays
        return _jsonable(v.tolist())
    if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
        return _jsonable(v.item())
    if v is not None and type(v).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    return v


def json_document(obj: Any, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON (RFC 8259): every non-finite number becomes ``null``.

    Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which JavaScript's
    ``JSON.parse`` and other strict parsers reject; ``compare --json`` once printed a bare ``NaN``
    for ``paper_ratio`` at any shape outside Table 1. Every ``--json`` output goes through here.
    """
    return json.dumps(_jsonable(obj), allow_nan=False, indent=indent)


class ResultWriter:
    """Append records to a JSON Lines file, one durable line per call.

    Each :meth:`write` serialises the record (adding its ``id``), appends it with a newline and
    ``os.fsync``-s the file: after ``write`` returns the line survives a crash or power loss. A
    write that fails (disk full, I/O error) is cut back to the last whole line and raises
    :class:`~fnbench.errors.SaveError` saying how many records the file holds and how to go on
    (``hint``).
    """

    #: The raw write call (a seam for tests that simulate a full disk).
    _write = staticmethod(os.write)

    def __init__(self, path: str | os.PathLike, *, hint: str = "") -> None:
        self.path = Path(path)
        self.hint = hint
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {self.path.parent}: {e.strerror}; give a writable --out") from None
        self.written = 0

    def _saved(self) -> int:
        try:
            text = self.path.read_bytes()
        except OSError:
            return 0
        return sum(1 for ln in text.split(b"\n") if ln.strip().startswith(b"{") and ln.rstrip().endswith(b"}"))

    def write(self, record: dict[str, Any]) -> None:
        if "id" not in record:
            record["id"] = record_id(record)
        data = (json.dumps(_jsonable(record), allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        size = None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                view = memoryview(data)
                while view:
                    n = self._write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            except OSError:
                if size is not None:
                    with _suppress_oserror():
                        os.ftruncate(fd, size)  # no torn line left behind where it can be avoided
                raise
            finally:
                os.close(fd)
        except OSError as e:
            why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else e.strerror
            raise SaveError(
                f"writing {self.path} failed ({why}); {self._saved()} record(s) are saved there"
                + (f"; {self.hint}" if self.hint else "")
            ) from None
        self.written += 1


class _suppress_oserror:
    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        return et is not None and issubclass(et, OSError)


def _read_text(path: Path) -> str:
    if path.exists() and not path.is_dir():
        why = _not_readable(path)
        if why:  # a FIFO or device would block the read, or never end it
            raise UserError(f"{path} {why}; give a result file (results/<run_id>.jsonl) or its directory")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"result file {path} does not exist; see `ls results/` for the runs there") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory; give a result file or the directory itself") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path} is not a text file (binary data at byte {e.start}); it is not an fnbench "
            "result file: give a results/<run_id>.jsonl file or its directory"
        ) from None


def _split_torn(text: str) -> tuple[list[tuple[int, str]], tuple[int, str] | None]:
    """Numbered non-empty lines, and the torn last line (no newline and not JSON) if there is one."""
    lines = [(i + 1, ln) for i, ln in enumerate(text.split("\n")) if ln.strip()]
    if lines and not text.endswith("\n"):
        n, last = lines[-1]
        try:
            json.loads(last)
        except ValueError:
            # a lone line that does not even start like a record is not a torn record
            if len(lines) > 1 or last.lstrip().startswith("{"):
                return lines[:-1], (n, last)
    return lines, None


def _bad(path: Path, n: int, problem: str) -> UserError:
    return UserError(f"{path}, line {n}: {problem}; remove that line (or the file) or measure it again")


def _is_num_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _check_record(rec: dict[str, Any], path: Path, n: int) -> None:
    """Refuse a record that readers cannot use: missing keys, wrong types, measured without samples."""
    for key, typ in (("run_id", str), ("target", dict), ("device", dict)):
        if not isinstance(rec.get(key), typ):
            what = "missing" if key not in rec else f"a {type(rec[key]).__name__}, not a {typ.__name__}"
            raise _bad(path, n, f"not a valid result record: {key!r} is {what}")
    if not isinstance(rec["target"].get("name"), str):
        raise _bad(path, n, "not a valid result record: target has no name")
    status = rec.get("status", "ok")
    if status not in STATUSES:
        raise _bad(path, n, f"unknown status {status!r} (known: {', '.join(STATUSES)})")
    for key, typ in (("stats", dict), ("cost", dict), ("env", dict)):
        if rec.get(key) is not None and not isinstance(rec[key], typ):
            raise _bad(path, n, f"not a valid result record: {key!r} is a {type(rec[key]).__name__}, not an object")
    if "batch" in rec and (not isinstance(rec["batch"], int) or isinstance(rec["batch"], bool)):
        raise _bad(path, n, f"not a valid result record: batch is {rec['batch']!r}, not an integer")
    samples = rec.get("samples_s")
    if samples is not None and not _is_num_list(samples):
        raise _bad(path, n, "not a valid result record: samples_s is not a list of seconds")
    if status in ("ok", "partial"):
        if not samples:
            raise _bad(
                path, n, f"a {status!r} record without samples (samples_s is empty): its statistics cannot be checked"
            )
        if not all(math.isfinite(x) and x > 0 for x in samples):
            raise _bad(path, n, "samples_s holds a non-positive or non-finite time")
        for key in ("rounds", "workers", "passes", "cycles"):
            v = rec.get(key)
            if v is not None and (not _is_num_list(v) or len(v) != len(samples)):
                raise _bad(path, n, f"{key} does not give one integer per sample")
    if status == "partial" and not isinstance(rec.get("pass"), int):
        raise _bad(path, n, "a partial record without its pass number")
    problem = validation.record_problem(rec)
    if problem:
        raise _bad(path, n, problem)


def read_records(
    path: str | os.PathLike, *, partial: bool = False, records_of: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """All records of one result file (without ``status: "partial"`` pass records unless ``partial``).

    Lines with a ``record`` key other than ``"measurement"`` (a per-layer ``"breakdown"``) are not
    measurements of a target and are left out; ``records_of`` returns only the lines of those kinds.

    A pass record holds one pass of a target that is still being measured (what ``--resume``
    continues from); the target's final record repeats its samples, so readers skip them. A torn
    *last* line (an interrupted write: no newline and not JSON) is skipped with a warning. A
    non-JSON line elsewhere, a record that misses keys or samples, a binary file, or a record
    written by a newer schema raises :class:`UserError` naming the file and line. Exact repeats
    of a record id are dropped (:func:`dedupe`). Every measurement record passes
    :func:`fnbench.validation.record_problem` (cost, shape, batch, plausible samples, identity).
    """
    return [r for r, _, _ in _read_numbered(path, partial=partial, records_of=records_of)]


def _read_numbered(
    path: str | os.PathLike, *, partial: bool = False, records_of: tuple[str, ...] = ()
) -> list[tuple[dict[str, Any], Path, int]]:
    """:func:`read_records` as ``(record, file, line)``, so that later checks can name the line."""
    path = Path(path)
    lines, torn = _split_torn(_read_text(path))
    if torn is not None:
        warn(
            f"{path}: line {torn[0]} is cut short (an interrupted write) and is skipped; "
            f"`fnbench run --resume {path.stem}` sets it aside and measures it again"
        )
    records = []
    for i, ln in lines:
        try:
            rec = json.loads(ln)
        except ValueError:
            if not records and i == lines[0][0]:
                raise UserError(
                    f"{path}, line {i} is not JSON: this is not an fnbench result file "
                    "(those hold one JSON record per line)"
                ) from None
            raise UserError(f"{path}, line {i} is not JSON (a corrupt record); repair or remove that line") from None
        if not isinstance(rec, dict):
            raise UserError(
                f"{path}, line {i} is JSON but not a record (a {type(rec).__name__}): "
                "this is not an fnbench result file"
            )
        schema = rec.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise UserError(f"{path}, line {i}: no schema version; this is not an fnbench result file")
        if schema > SCHEMA_VERSION:
            raise UserError(
                f"{path} was written by a newer fnbench (schema {schema}; this one reads "
                f"{SCHEMA_VERSION}); upgrade fnbench or remove the file"
            )
        if schema < 1:
            raise UserError(f"{path}, line {i}: unknown schema version {schema}; remove the file")
        if rec.get("record", "measurement") != "measurement":  # a per-layer breakdown, not a measurement
            if rec.get("record") in records_of:
                problem = validation.breakdown_problem(rec) if rec.get("record") == "breakdown" else None
                if problem:
                    raise _bad(path, i, problem)
                records.append((rec, path, i))
            continue
        if records_of:
            continue
        _check_record(rec, path, i)
        if partial or rec.get("status") != "partial":
            records.append((rec, path, i))
    return dedupe(records)


def read_breakdowns(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The per-layer breakdown records (``record: "breakdown"``, :mod:`fnbench.layers`) of result
    files and directories; :func:`read_records` and :func:`load_results` leave them out."""
    return [r for f in iter_result_files(paths) for r in read_records(f, records_of=("breakdown",))]


def record_id(rec: dict[str, Any]) -> str:
    """The record's ``id``, or for a record written before ids existed the one it would have had.

    The id names one measurement of one run: run id, identity (:func:`record_key`), pass (a
    partial record's pass, or ``final``) and status. The same id twice is the same line read twice.
    """
    if isinstance(rec.get("id"), str):
        return rec["id"]
    which = rec.get("pass") if rec.get("status") == "partial" else "final"
    blob = json.dumps([rec.get("run_id"), record_key(rec), which, rec.get("status", "ok")], separators=(",", ":"))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def dedupe(items: Iterable[tuple[dict[str, Any], Path, int]]) -> list[tuple[dict[str, Any], Path, int]]:
    """Drop exact repeats of a record id (keeping the last) with one warning; refuse conflicting ones.

    ``items`` are ``(record, file, line)``. Two records with one id and different contents cannot
    both be true (two processes measured one run, or one was edited: a copy whose MACs were changed
    must not silently win): :class:`UserError` names both places and what differs.
    """
    seen: dict[str, tuple[dict[str, Any], Path, int]] = {}
    dropped = 0
    for rec, src, line in items:
        rid = record_id(rec)
        if rid in seen:
            prev, psrc, pline = seen[rid]
            if prev != rec:
                t = rec.get("target") or {}
                diff = [k for k in dict(prev, **rec) if prev.get(k) != rec.get(k)]
                what = "different samples" if "samples_s" in diff or "rounds" in diff else f"different {diff[0]}"
                raise UserError(
                    f"{psrc} line {pline} and {src} line {line} claim the same measurement (id {rid}: "
                    f"run {rec.get('run_id')}, {t.get('name')}) with {what}; two processes "
                    "wrote one run, or one was edited: keep one of the two lines, or measure again"
                )
            dropped += 1
        seen[rid] = (rec, src, line)
    if dropped:
        warn(
            f"{dropped} duplicate record(s) skipped (the same measurement read twice: a file named twice, "
            "a copied file or a repeated line); each counts once"
        )
    return list(seen.values())


def _recompute_stats(rec: dict[str, Any]) -> dict[str, Any]:
    """The record with its statistics recomputed from ``samples_s`` (the stored block is only a cache)."""
    st = dict(rec.get("stats") or {})
    m = Measurement.from_record(rec)
    fresh = {
        "median_s": m.median_s,
        "iqr_s": m.iqr_s,
        "p50_s": m.p50_s,
        "p90_s": m.p90_s,
        "p99_s": m.p99_s,
        "timed_s": m.timed_s,
        "timed_fraction": m.timed_fraction,
        "wait_fraction": m.wait_fraction,
        "ci95_low_s": m.ci95_low_s,
        "ci95_high_s": m.ci95_high_s,
        "n": m.n,
        "rounds": m.rounds,
        "rel_ci_halfwidth": m.rel_ci_halfwidth,
    }
    old = st.get("median_s")
    if not (isinstance(old, (int, float)) and math.isclose(old, fresh["median_s"], rel_tol=1e-9)):
        st["stable"] = False  # a stats block that does not match its samples says nothing about stability
        st["stats_recomputed"] = True
    if st.get("precision") and fresh["rel_ci_halfwidth"] > st["precision"]:
        st["stable"] = False
    st.update(fresh)
    return dict(rec, stats=st)


def load_records(
    paths: str | os.PathLike | Iterable[str | os.PathLike] = "results",
) -> list[tuple[dict[str, Any], Path]]:
    """Every final record of ``paths`` (files and directories) with its file, de-duplicated across files,
    statistics recomputed from the samples. Unfinished runs are named with the ``--resume`` that finishes them."""
    items = []
    for f in iter_result_files(paths):
        numbered = _read_numbered(f, partial=True)
        _note_unfinished(f, [r for r, _, _ in numbered])
        items += [(r, src, line) for r, src, line in numbered if r.get("status") != "partial"]
    items = dedupe(items)
    validation.identity_conflict([it for it in items if it[0].get("status", "ok") == "ok"], record_key)
    return [(_recompute_stats(r) if r.get("status", "ok") == "ok" else r, f) for r, f, _ in items]


def _note_unfinished(path: Path, recs: list[dict[str, Any]]) -> None:
    final = {record_key(r) for r in recs if r.get("status") != "partial"}
    open_keys = {record_key(r) for r in recs if r.get("status") == "partial"} - final
    plan = read_plan(plan_path(path.parent, path.stem))
    planned = set(plan.get("keys") or []) if plan else set()
    missing = (open_keys | planned) - final
    if missing:
        run_id = recs[0].get("run_id") if recs else path.stem
        warn(
            f"run {run_id} is unfinished ({len(missing)} measurement(s) missing from {path.name}); finish it "
            f"with `fnbench run --resume {run_id} --out {path.parent}`"
        )


def iter_result_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Expand files and directories (their ``*.jsonl`` at any depth, sorted) into result file paths.

    Directories are read recursively: ``scripts/gpu-check`` writes into
    ``results/gpu-check/<time>/``, and a report of ``results`` that skipped those without a word
    would leave a device out. When subfolders contribute, one warning says how many files came
    from where. Anything found that is not a regular readable file (a FIFO, which would block the
    read forever, a device, a dangling link, a file without read permission) is skipped with one
    warning; named explicitly it is refused.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = _files_under(p)
        elif p.exists() or p.is_symlink():
            why = _not_readable(p)
            if why:
                raise UserError(f"{p} {why}; give a result file (results/<run_id>.jsonl) or its directory")
            found = [p]
        else:
            raise UserError(f"no result file or directory at {p}")
        for f in found:  # a file named twice, or a file and its directory, is read once
            if f.resolve() not in seen:
                seen.add(f.resolve())
                yield f


def _not_readable(f: Path) -> str | None:
    """Why ``f`` cannot be read as a result file (not a regular file, no permission), or None."""
    try:
        st = os.stat(f)
    except OSError:
        return "is a dangling link" if f.is_symlink() else "cannot be read"
    if not _stat.S_ISREG(st.st_mode):
        return "is not a regular file (a FIFO, socket or device)"
    if not os.access(f, os.R_OK):
        return "is not readable (permission denied)"
    return None


def _files_under(d: Path) -> list[Path]:
    found, skipped = [], []
    for f in sorted(d.rglob("*.jsonl")):
        if f.is_dir() and not f.is_symlink():
            continue
        why = _not_readable(f)
        if why:
            skipped.append(f"{f.relative_to(d)} ({why})")
        else:
            found.append(f)
    if skipped:
        warn(
            f"{d}: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} that are not readable files: "
            + ", ".join(skipped[:3])
            + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        )
    deep = sorted({str(f.parent.relative_to(d)) for f in found if f.parent != d})
    if deep:
        n_deep = sum(1 for f in found if f.parent != d)
        warn(
            f"{d}: read {len(found)} result file(s), {n_deep} of them in subfolders ("
            + ", ".join(x + "/" for x in deep[:3])
            + (f" and {len(deep) - 3} more" if len(deep) > 3 else "")
            + "); name a file or subfolder to read fewer"
        )
    return found


#: The allocator of a record written before the allocator was a recorded condition: those runs
#: left glibc's malloc as each worker process got it, which is what ``system`` means.
LEGACY_ALLOCATOR = "system"


def record_allocator(rec: dict[str, Any]) -> str:
    """The allocator mode a record was measured under (``system`` for records that predate it)."""
    return rec.get("allocator") or LEGACY_ALLOCATOR


def identity_key(
    *,
    name: str,
    shape,
    layers,
    options,
    batch: int,
    device_kind: str,
    runtime: str,
    threads,
    dtype: str,
    memory_format: str = "contiguous",
    allocator: str = LEGACY_ALLOCATOR,
    digest: str | None = None,
) -> str:
    """Canonical identity of a measurement (what ``--resume`` matches on), as a JSON string.

    ``digest``: a user target's sha256 (its file's bytes): an edited file is another target. It is
    appended only when present, so built-in targets keep the keys they always had.
    """
    opts = sorted((str(k), v) for k, v in (options.items() if isinstance(options, dict) else options))
    return json.dumps(
        [
            name if digest is None else [name, digest],
            list(shape) if shape is not None else None,
            layers,
            opts,
            int(batch),
            device_kind,
            runtime,
            threads,
            dtype,
            memory_format,
            allocator,
        ],
        separators=(",", ":"),
    )


def record_key(rec: dict[str, Any]) -> str:
    t = rec.get("target", {})
    return identity_key(
        name=t.get("name"),
        shape=t.get("shape"),
        layers=t.get("layers"),
        options=t.get("options") or {},
        batch=t.get("batch", rec.get("batch", 1)),
        device_kind=(rec.get("device") or {}).get("kind"),
        runtime=rec.get("runtime"),
        threads=rec.get("threads"),
        dtype=rec.get("dtype"),
        memory_format=rec.get("memory_format", "contiguous"),
        allocator=record_allocator(rec),
        digest=(t.get("source") or {}).get("sha256"),
    )


def _shape_str(shape) -> str | None:
    return "x".join(map(str, shape)) if shape else None


def _target_label(t: dict[str, Any]) -> str | None:
    """A frame's target name: a user target's name carries its file's digest (``mine.py:MyMixer#1a2b3c4d``),
    so that the rows of an edited file never pool with the old version's."""
    sha = (t.get("source") or {}).get("sha256")
    return f"{t.get('name')}#{sha[:8]}" if sha else t.get("name")


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
        "target": _target_label(t),
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
    for k in (
        "median_s",
        "iqr_s",
        "p50_s",
        "p90_s",
        "p99_s",
        "ci95_low_s",
        "ci95_high_s",
        "n",
        "stable",
        "rounds",
        "rel_ci_halfwidth",
        "precision",
        "minor_faults_per_iter",
        "major_faults_per_iter",
        "faults_flag",
        "unstable_reason",
        "wall_s",
        "timed_s",
        "timed_fraction",
        "wait_fraction",
        "peak_memory_bytes",
    ):
        row[k] = st.get(k)
    med = st.get("median_s")
    row["throughput_per_s"] = units.per_second(batch, med)
    row["gmacs_per_s"] = units.gmacs_per_s(macs, med)
    row["gmacs_per_s_ci95_low"], row["gmacs_per_s_ci95_high"] = units.gmacs_per_s_ci(
        macs, st.get("ci95_low_s"), st.get("ci95_high_s")
    )
    row["gflops_per_s"] = units.gflops_per_s(macs, med)
    row["intensity_flop_per_byte"] = units.intensity(macs, cost.get("mem_bytes_counted"))
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


def probe_rate(
    name: str, flops: float | None, mem_bytes_counted: float | None, median_s: float | None
) -> tuple[str, float | None]:
    """What one probe measures, and how fast: ``("copy_bytes_per_s", bytes/s)`` for ``probe:copy``,
    ``("<gemm_float32…>_flop_per_s", FLOP/s)`` for a compute probe; the rate is None without a count or a time.
    """
    if name == "probe:copy":
        return "copy_bytes_per_s", units.per_second(mem_bytes_counted, median_s)
    return name.split(":", 1)[-1] + "_flop_per_s", units.per_second(flops, median_s)


def ceilings(records: list[dict[str, Any]]) -> dict[str, float]:
    """Best measured ceilings from probe records: ``{"gemm_float32_flop_per_s": …, "copy_bytes_per_s": …}``.

    ``compute_float32_flop_per_s`` is the compute roof: the best of every FP32 GEMM and conv probe.
    """
    best: dict[str, float] = {}
    for r in records:
        name = (r.get("target") or {}).get("name", "")
        st, cost = r.get("stats") or {}, r.get("cost") or {}
        if r.get("status", "ok") != "ok" or not name.startswith("probe:") or not st.get("median_s"):
            continue
        key, value = probe_rate(name, cost.get("flops"), cost.get("mem_bytes_counted"), st["median_s"])
        if value is None:
            continue
        best[key] = max(best.get(key, 0.0), value)
        if key.endswith("float32_flop_per_s"):
            best["compute_float32_flop_per_s"] = max(best.get("compute_float32_flop_per_s", 0.0), value)
    return best


def load_results(paths: str | os.PathLike | Iterable[str | os.PathLike] = "results", *, rows: str = "measurements"):
    """Load result files and directories into a ``pandas.DataFrame``, one row per record.

    ``rows`` keeps probe records apart from measurements: ``"measurements"`` (default) gives
    operator and network rows only, ``"probes"`` the device-ceiling rows of ``fnbench probe``
    only, ``"all"`` both, told apart by the ``row_kind`` column ("measurement" | "probe").
    Columns carry their units: ``median_s``, ``ci95_low_s``, ``macs``, ``gmacs_per_s`` (with
    ``gmacs_per_s_ci95_low``/``_high``), ``throughput_per_s`` (samples/s), ``env_*``; raw
    samples stay in ``samples_s``. Results from several devices merge into one frame; group by
    ``device_key`` to keep one device's rows together. Records are de-duplicated by id and their
    statistics recomputed from the samples (:func:`load_records`).
    """
    return frame_of(load_records(paths), rows=rows)


def frame_of(pairs: Iterable[tuple[dict[str, Any], Path]], *, rows: str = "measurements"):
    """One DataFrame row per ``(record, file)`` pair of the ``rows`` kind (:func:`load_results`' columns)."""
    import pandas as pd

    if rows not in ROW_KINDS:
        raise ValueError(f"rows={rows!r}: use one of {', '.join(ROW_KINDS)}")
    out = []
    for r, f in pairs:
        probe = is_probe_record(r)
        if (rows == "measurements" and probe) or (rows == "probes" and not probe):
            continue
        out.append(dict(_flatten(r, f), row_kind="probe" if probe else "measurement"))
    return pd.DataFrame(out)


# -- a run's file, owned by one process ----------------------------------------------------------------
#: ``(run_id, out_dir)`` of the run this process opened last (for the hint after an interruption).
last_run: tuple[str, Path] | None = None

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_id(run_id: str) -> str:
    """``run_id`` if it names a run in the results directory (a bare id, ``.jsonl`` allowed), else UserError."""
    rid = run_id[: -len(".jsonl")] if run_id.endswith(".jsonl") else run_id
    if not _RUN_ID_RE.match(rid):
        raise UserError(
            f"--resume takes a run id such as 20261128T043000Z-3fa2 (a file name in --out, without "
            f"a path), not {run_id!r}; see `ls results/`"
        )
    return rid


def plan_path(out_dir: str | os.PathLike, run_id: str) -> Path:
    """Where a run's plan (what it measures, with which options) is kept: ``<out_dir>/<run_id>.plan.json``."""
    return Path(out_dir) / f"{run_id}.plan.json"


def read_plan(path: str | os.PathLike) -> dict[str, Any] | None:
    """A run's stored plan, or None when there is none (runs written before plans existed) or it is unreadable.

    A plan that is not a regular file (a FIFO would block the read forever) is unreadable.
    """
    if Path(path).exists() and _not_readable(Path(path)):
        return None
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) else None


def _pid_of(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip() or "?"
    except OSError:
        return "?"


class RunFile:
    """A run's result file, owned by this process while it is open (a context manager).

    Entering takes an exclusive ``fcntl.flock`` on ``<run_id>.jsonl.lock`` (holding this pid);
    if another process holds it, :class:`UserError` names that process. On ``resume`` the file
    must exist and be a readable result file; a torn last line is moved to
    ``<run_id>.jsonl.torn`` (appended, never dropped) and the file cut back to its last whole
    line. ``writer`` then appends records; ``plan`` is the stored plan, if any.
    """

    def __init__(self, out_dir: str | os.PathLike, run_id: str, *, resume: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.run_id = run_id
        self.resume = resume
        self.path = self.out_dir / f"{run_id}.jsonl"
        self.lock_path = self.out_dir / f"{run_id}.jsonl.lock"
        self.plan: dict[str, Any] | None = None
        self.torn_bytes = 0
        self._fd: int | None = None
        self.writer = ResultWriter(
            self.path, hint=f"free space, then finish with `fnbench run --resume {run_id} --out {self.out_dir}`"
        )

    def __enter__(self) -> RunFile:
        if self.resume and not self.path.exists():
            raise UserError(f"no run {self.run_id!r} to resume: {self.path} does not exist; see `ls {self.out_dir}/`")
        self._lock()
        global last_run
        last_run = (self.run_id, self.out_dir)
        try:
            if self.resume:
                why = _not_readable(self.path)
                if why:
                    raise UserError(f"--resume {self.run_id}: {self.path} {why}; it is not a run's result file")
                _read_text(self.path)  # a binary or unreadable file is refused before anything is changed
                self.torn_bytes = self._heal()
                self.plan = read_plan(plan_path(self.out_dir, self.run_id))
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._unlock()

    def _lock(self) -> None:
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise UserError(f"cannot create {self.lock_path}: {e.strerror}; give a writable --out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _pid_of(fd)
                os.close(fd)
                raise UserError(
                    f"run {self.run_id} is being measured by process {pid}; wait for it to finish "
                    f"(or stop it: kill {pid}) and --resume it then"
                ) from None
            try:  # the holder before us may have removed the file we opened: lock the current one
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is None:
            return
        with _suppress_oserror():
            os.unlink(self.lock_path)
        os.close(self._fd)
        self._fd = None

    def _heal(self) -> int:
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return 0
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail)
            whole = True  # a complete record that only lacks its newline
        except ValueError:
            whole = False
        try:
            if whole:
                with open(self.path, "ab") as f:
                    f.write(b"\n")
                    os.fsync(f.fileno())
                return 0
            torn = self.path.with_name(self.path.name + ".torn")
            with open(torn, "ab") as f:
                f.write(tail + b"\n")
                os.fsync(f.fileno())
            os.truncate(self.path, cut)
        except OSError as e:
            raise SaveError(f"cannot repair the cut-short last line of {self.path}: {e.strerror}") from None
        warn(
            f"{self.path}: the cut-short last line ({len(tail)} bytes, an interrupted write) was moved to "
            f"{torn.name}; its measurement is taken again"
        )
        return len(tail)

    def open(
        self,
        plan: dict[str, Any],
        *,
        cli: dict[str, Any] | None = None,
    ) -> tuple[set[str], dict[str, list[dict[str, Any]]]]:
        """Start the run under ``plan`` or check a resumed one against its stored plan.

        ``plan`` holds the measurement ``keys`` (:func:`identity_key`) and the fields a resume must
        repeat (targets, device, runtimes, threads, …). A new run stores it (with ``cli``, the
        command's options). A resumed run with a stored plan must match it field by field; one
        without (written before plans existed) must hold only measurements of ``plan``. Returns
        the keys already measured and the stored pass records by key.
        """
        if not self.resume:
            self.write_plan(dict(plan, run_id=self.run_id, created=utc_now(), cli=cli or {}))
            return set(), {}
        keys = set(plan["keys"])
        numbered = _read_numbered(self.path, partial=True)
        records = [r for r, _, _ in numbered]
        for r, src, line in numbered:
            if r.get("run_id") != self.run_id:
                raise UserError(
                    f"--resume {self.run_id}: {src} line {line} is a record of run {r.get('run_id')}, not of "
                    f"{self.run_id}; this file is not that run's own: move it aside and start a new run with "
                    f"`fnbench run {options_from_records(records)}`"
                )
        if self.plan is not None:
            stored = {k: v for k, v in self.plan.items() if k not in ("keys", "cli", "run_id", "created")}
            diffs = plan_differences(stored, {k: v for k, v in plan.items() if k != "keys"})
            if not diffs and set(self.plan.get("keys") or []) != keys:
                diffs = ["the measurements (same targets and options, other details)"]
        else:
            foreign = sorted({(r.get("target") or {}).get("name", "?") for r in records if record_key(r) not in keys})
            if foreign:  # no plan to go back to: the records say what the run measured
                raise UserError(
                    f"--resume {self.run_id}: this call differs from the run in targets or options (it holds "
                    f"{', '.join(foreign)} measured otherwise) and the run has no readable plan; the records "
                    f"were measured with `fnbench run --resume {self.run_id} {options_from_records(records)} "
                    f"--out {self.out_dir}`: repeat those options"
                )
            diffs = []
        if diffs:
            raise UserError(
                f"--resume {self.run_id}: this call differs from the run in "
                + "; ".join(diffs)
                + f"; run `fnbench run --resume {self.run_id}` without those options to finish it as started"
            )
        done = {record_key(r) for r in records if r.get("status", "ok") in ("ok", "unsupported")}
        parts: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            if r.get("status") == "partial":
                parts.setdefault(record_key(r), []).append(r)
        return done, parts

    def write_plan(self, plan: dict[str, Any]) -> None:
        """Store the run's plan atomically (temporary file, then rename)."""
        target = plan_path(self.out_dir, self.run_id)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps(_jsonable(plan), indent=1), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as e:
            with _suppress_oserror():
                tmp.unlink()
            raise SaveError(
                f"writing {target} failed ({e.strerror}); nothing was measured: free space and run again"
            ) from None
        self.plan = plan


#: ``fnbench run`` flags of target options whose record key is not the flag's name.
_OPTION_FLAGS = {"k": "kernel", "n_div": "n-div"}


def options_from_records(records: list[dict[str, Any]]) -> str:
    """The ``fnbench run`` options that measure what ``records`` hold, as one command-line string.

    For a run whose plan is missing or unreadable: the records still say which targets, shape,
    layers, batch, operator options, device, runtimes, allocators, threads, budget, passes and
    workers were used. A run of several shapes (a suite) gives its targets without ``--shape``.
    """
    recs = [r for r in records if isinstance(r.get("target"), dict)]
    flags: list[str] = []

    def distinct(values) -> list:
        return [v for v in dict.fromkeys(values) if v is not None]

    def one(flag: str, values, skip=()) -> None:
        vals = distinct(values)
        if len(vals) == 1 and vals[0] not in skip:
            flags.extend([flag, str(vals[0])])

    def each(flag: str, values) -> None:
        for v in distinct(values):
            flags.extend([flag, str(v)])

    one("--device", ((r.get("device") or {}).get("kind") for r in recs))
    each("--target", (r["target"].get("name") for r in recs))
    one("--shape", (_shape_str(r["target"].get("shape")) for r in recs))
    one("--layers", (r["target"].get("layers") for r in recs))
    one("--batch", (r["target"].get("batch") for r in recs))
    opts = [r["target"].get("options") or {} for r in recs]
    for k in distinct(k for o in opts for k in o):
        one("--" + _OPTION_FLAGS.get(k, k.replace("_", "-")), (o.get(k) for o in opts))
    each("--runtime", (r.get("runtime") for r in recs))
    each("--allocator", (r.get("allocator") for r in recs))
    one("--memory-format", (r.get("memory_format") for r in recs), skip=("contiguous",))
    one("--dtype", (r.get("dtype") for r in recs), skip=("float32",))
    one("--threads", (r.get("threads") for r in recs))
    finals = [r.get("stats") or {} for r in recs if r.get("status", "ok") == "ok"]
    one("--budget", (st.get("budget_s") for st in finals))
    one("--passes", [r.get("passes_planned") for r in recs] + [st.get("passes") for st in finals])
    one("--workers", (st.get("workers") for st in finals), skip=(1,))
    return " ".join(flags)


def plan_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: now X, the run has Y"`` for every plan field that differs (fields missing from either are skipped)."""
    out = []
    for k, v in current.items():
        if k in stored and stored[k] != _jsonable(v):
            out.append(f"{k} {_show(v)} (the run has {_show(stored[k])})")
    return out


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "none"
    return str(v)
