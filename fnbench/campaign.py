"""Campaigns: the ordinary ``fnbench run`` on every node of a Ray cluster, its records streamed home.

A user with a GPU server, a laptop and a Raspberry Pi starts one Ray cluster (each device joins it
advertising the resource ``fnbench``) and measures all of them with one command. Ray places the
tasks and carries the records; fnbench adds nothing of its own on the wire. The rules, and why:

- **Each node runs the ordinary run.** A node's task starts ``python -m fnbench run`` as a child
  process with the campaign's run options (fresh worker processes, the allocator, the lock and the
  crash-safe file on the node's disk), not ``run_suite`` inside the Ray worker: that process holds
  Ray's threads and heap, and a measurement taken in it (``--workers 0``, ``compile``) would time
  Ray as well. The child dies with the task (``PR_SET_PDEATHSIG``), so a lost node leaves no
  orphan measuring against the next one.
- **Records stream as they are written.** The task follows the node's result file and yields each
  whole line as it appears (a Ray streaming generator), so what reaches the driver is exactly what
  the node fsync-ed. The driver stamps each one with the node that measured it (a ``campaign``
  block: campaign id, node, node id, host) and appends it (fsync-ed again) to
  ``OUT/<campaign_id>/<device key>.jsonl``; what arrived is kept whatever happens after.
- **One measurement per physical host at a time.** Two Ray nodes on one machine (the same
  ``/etc/machine-id``) would measure each other's contention; the driver runs one job per host at a
  time, hosts in parallel. Every job also takes the node's ``fnbench`` resource, so two campaigns on
  one cluster queue rather than overlap.
- **Same software, checked before anything is measured.** Each node reports its fnbench, torch and
  Python versions; a node with another fnbench is refused (``allow_mixed`` proceeds, and says so
  in the plan). The plan (options, nodes, versions, jobs) is ``OUT/<campaign_id>/campaign.json``.
- **Faults.** A node that dies or is cut off leaves its job ``lost`` with the records that
  arrived; the others finish and the campaign asks to be resumed. ``resume`` sends each unfinished
  job's records back to a node of the same host, where ``fnbench run --resume`` measures only what
  is missing (the run's own resume: stored passes are reused). Tasks are never retried by Ray: a
  retried stream would send records twice. The cluster going away entirely (its head, hence the
  object store the driver is attached to) is the same for every job: Ray ends the driver's process
  at once, so ``fnbench campaign`` runs the driver in a child process and, when that dies with the
  campaign still running, marks every unfinished job lost (:func:`abandon`) and asks to be resumed.

The driver side is :func:`run_campaign`; printing is the caller's (``on_event`` callbacks).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from . import results as _results
from .errors import UserError

__all__ = [
    "CLUSTER_HINT",
    "RESOURCE",
    "CampaignSummary",
    "Job",
    "abandon",
    "connect",
    "host_key",
    "node_facts",
    "run_campaign",
    "campaign_path",
    "read_campaign",
]

CLUSTER_HINT = "pip install 'fnbench[cluster]'"
#: The custom resource a node advertises to take part (``ray start --resources '{"fnbench": 1}'``).
RESOURCE = "fnbench"
#: ``--local``: a small object store (records are a few KB each) and one CPU for the tasks' bookkeeping.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
LOCAL_NUM_CPUS = 1
#: Seconds an address has to answer before the campaign gives up on it (Ray itself would wait minutes).
CONNECT_TIMEOUT_S = 10.0
#: Where a node keeps its own copy of a job's run (the driver's copy is the one that counts).
NODE_DIR_ENV = "FNBENCH_NODE_DIR"
#: Test hook: the fnbench version a node reports instead of its own (read by :func:`node_facts` only).
TEST_VERSION_ENV = "FNBENCH_TEST_NODE_VERSION"
#: How often a node looks for new lines in its run's file.
POLL_S = 0.2


def import_ray():
    """Ray, or :class:`UserError` saying how to install it (it is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise UserError(f"fnbench campaign needs Ray, which is not installed: {CLUSTER_HINT}") from None
    return ray


# -- connecting -----------------------------------------------------------------------------------------


def _check_answers(address: str) -> None:
    """Refuse an address that does not accept a connection, at once: Ray would retry for minutes."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--address {address!r}: give auto, HOST:PORT or ray://HOST:PORT (the head's `ray start` prints it)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UserError(
            f"no Ray cluster answers at {address} ({why}): start its head with `ray start --head --port {port}` "
            "or give the address it printed"
        ) from None


def _resolve_auto(ray) -> str:
    """The address ``auto`` means (``RAY_ADDRESS``, else the cluster last started on this machine)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except (ImportError, ConnectionError, ValueError):
        found = None
    if not found:
        raise UserError(
            "--address auto: no Ray cluster was started on this machine; start one with "
            "`ray start --head --port 6379` or give --address HOST:PORT (or --local)"
        )
    return found


@contextlib.contextmanager
def connect(address: str | None, local: bool) -> Iterator[str]:
    """Connect to the cluster at ``address`` (or start a throwaway one with ``local``); yield its address.

    ``local`` binds Ray to 127.0.0.1 with no dashboard, and sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``:
    without it Ray advertises the machine's routed address even when told 127.0.0.1. The node it
    starts advertises ``fnbench`` itself. Disconnects (and stops a local cluster) on exit.
    """
    if bool(address) == bool(local):
        raise UserError("give --address ADDR (an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT) or --local")
    if local:  # read when ray is first imported
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = import_ray()
    import logging

    if local:
        info = ray.init(
            address="local",
            num_cpus=LOCAL_NUM_CPUS,
            resources={RESOURCE: 1},
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        where = "local (127.0.0.1)"
    else:
        target = _resolve_auto(ray) if address == "auto" else address
        _check_answers(target)
        try:
            info = ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as e:
            raise UserError(f"cannot join the Ray cluster at {target}: {str(e).splitlines()[0]}") from None
        where = target
    try:
        yield getattr(info, "address_info", {}).get("gcs_address") or where
    finally:
        ray.shutdown()


# -- what a node is -------------------------------------------------------------------------------------


def host_key() -> str:
    """A short hash naming this physical machine, the same for every Ray node started on it.

    ``/etc/machine-id`` (systemd; containers and boards copy it from the image, so the hostname is
    mixed in) names the installation; without one, the hostname alone.
    """
    mid = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            mid = Path(path).read_text().strip()
        if mid:
            break
    return hashlib.sha256(f"{mid}|{platform.node()}".encode()).hexdigest()[:12]


def node_facts() -> dict[str, Any]:
    """This node's software and devices, checked by the driver before anything is measured.

    Runs on the node. ``device_keys`` are the keys its records will carry (:func:`fnbench.devices.device_key`).
    """
    import torch

    from .devices import available_devices, device_key, fingerprint, resolve_device

    kinds = available_devices()
    return {
        "fnbench": os.environ.get(TEST_VERSION_ENV) or __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": host_key(),
        "hostname": platform.node(),
        "devices": kinds,
        "auto": resolve_device("auto").kind,
        "device_keys": {k: device_key(fingerprint(resolve_device(k), None)) for k in kinds},
    }


# The child process: dies with the Ray worker that started it (SIGTERM, which `fnbench run` handles
# like Ctrl-C: the finished measurements stay and the run can be resumed).
_CHILD = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != parent:
    sys.exit(143)
from fnbench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _seed(job_dir: Path, seed: dict[str, Any]) -> int:
    """Write a resumed job's run back on the node (its plan and the records that arrived); return the file's size."""
    run_id = seed["run_id"]
    if seed.get("plan"):
        _results.plan_path(job_dir, run_id).write_text(json.dumps(seed["plan"], indent=1), encoding="utf-8")
    data = "".join(ln if ln.endswith("\n") else ln + "\n" for ln in seed.get("lines") or [])
    path = job_dir / f"{run_id}.jsonl"
    path.write_text(data, encoding="utf-8")
    return len(data.encode("utf-8"))


class _Follow:
    """Whole new lines of a run's file, from a byte offset on (the run's own file: nothing is re-encoded)."""

    def __init__(self, path: Path, offset: int = 0):
        self.path, self.offset = path, offset

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        return [ln.decode("utf-8") for ln in data[:cut].splitlines() if ln.strip()]


def _new_run_id(job_dir: Path, proc: subprocess.Popen) -> str | None:
    """The run id of the run started in ``job_dir`` (its plan is written before anything is measured)."""
    while proc.poll() is None:
        plans = list(job_dir.glob("*.plan.json"))
        if plans:
            return plans[0].name[: -len(".plan.json")]
        time.sleep(POLL_S)
    plans = list(job_dir.glob("*.plan.json"))
    return plans[0].name[: -len(".plan.json")] if plans else None


def node_run(job_dir: str, run_args: list[str], seed: dict[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
    """Run ``fnbench run RUN_ARGS --out JOB_DIR`` on this node, yielding its events as they happen.

    ``("started", {run_id, plan, t})`` once the run's plan is stored, ``("record", line)`` for every
    line the run appends, ``("finished", {rc, t, log})`` at the end. With ``seed`` (a resumed job)
    the run's records are written back first and the run resumed. Cancelling the task (Ctrl-C on the
    driver) stops the child with SIGTERM: its file stays resumable.
    """
    d = Path(job_dir)
    d.mkdir(parents=True, exist_ok=True)
    offset, args = 0, list(run_args)
    if seed is not None:
        offset = _seed(d, seed)
        args = ["--resume", seed["run_id"]]
    t0 = time.time()
    with open(d / "run.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(os.getpid()), "run", *args, "--out", str(d)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        run_id = seed["run_id"] if seed is not None else _new_run_id(d, proc)
        if run_id is not None:
            yield "started", {"run_id": run_id, "plan": _results.read_plan(_results.plan_path(d, run_id)), "t": t0}
            follow = _Follow(d / f"{run_id}.jsonl", offset)
            while proc.poll() is None:
                for line in follow.lines():
                    yield "record", line
                time.sleep(POLL_S)
            for line in follow.lines():
                yield "record", line
        rc = proc.wait()
        text = (d / "run.log").read_text(encoding="utf-8", errors="replace")
        yield "finished", {"rc": rc, "t": time.time(), "log": text[-4000:]}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the campaign's plan --------------------------------------------------------------------------------


@dataclass
class Job:
    """One node's run on one of its device kinds: where, which run, how far it got."""

    key: str  # "<node>/<device kind>", unique in the campaign
    node: str  # the node's display name
    node_id: str
    host: str
    device: str
    device_key: str
    run_id: str | None = None
    status: str = "pending"  # pending | running | done | failed | lost | cancelled
    records: int = 0  # records that arrived (partial passes included)
    planned: int = 0  # measurements the run plans (final records)
    finals: int = 0  # final records that arrived (ok, failed, unsupported)
    started: float | None = None  # node clock, seconds since the epoch
    finished: float | None = None
    error: str | None = None
    run_plan: dict[str, Any] | None = None


def campaign_path(out_dir: str | os.PathLike, campaign_id: str) -> Path:
    return Path(out_dir) / campaign_id / "campaign.json"


def read_campaign(out_dir: str | os.PathLike, campaign_id: str) -> dict[str, Any]:
    """A stored campaign's plan, or :class:`UserError` if there is none (or it is unreadable)."""
    cid = _results.check_run_id(campaign_id).strip()
    path = campaign_path(out_dir, cid)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no campaign {cid!r} to resume: {path} does not exist; see `ls {out_dir}/`") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} cannot be read as a campaign ({e}); start a new campaign") from None
    return plan


def _display_names(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Node id → a name to show: the node's name, with a short id where several nodes share it."""
    names = [n.get("NodeName") or n.get("NodeManagerAddress") or "?" for n in nodes]
    out = {}
    for n, name in zip(nodes, names):
        out[n["NodeID"]] = name if names.count(name) == 1 else f"{name}#{n['NodeID'][:6]}"
    return out


def _matches(node: dict[str, Any], name: str, pattern: str) -> bool:
    labels = node.get("Labels") or {}
    words = [name, node.get("NodeName") or "", node.get("NodeManagerAddress") or "", node["NodeID"]]
    words += [f"{k}={v}" for k, v in labels.items()] + list(labels.values())
    return any(fnmatch.fnmatch(w, pattern) for w in words if w)


def select_nodes(ray, pattern: str | None, where: str) -> list[tuple[str, dict[str, Any]]]:
    """``(display name, node)`` of the live nodes that advertise ``fnbench`` (and match ``pattern``)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    names = _display_names(alive)
    ours = [(names[n["NodeID"]], n) for n in alive if (n.get("Resources") or {}).get(RESOURCE, 0) > 0]
    if not ours:
        raise UserError(
            f"no node of the cluster at {where} advertises the resource {RESOURCE!r}: on each device run "
            f"`ray start --address HEAD:6379 --resources '{{\"{RESOURCE}\": 1}}'`"
        )
    if pattern:
        picked = [(nm, n) for nm, n in ours if _matches(n, nm, pattern)]
        if not picked:
            raise UserError(
                f"--nodes {pattern!r} matches none of the nodes: {', '.join(nm for nm, _ in ours)} "
                "(a pattern matches a node's name, address, id or label)"
            )
        ours = picked
    return sorted(ours, key=lambda p: p[0])


def plan_jobs(
    nodes: list[tuple[str, dict[str, Any]]], facts: dict[str, dict[str, Any]], devices: list[str]
) -> tuple[list[Job], list[str]]:
    """The jobs (node × device kind) and the nodes skipped, each with why."""
    jobs, skipped = [], []
    for name, node in nodes:
        f = facts[node["NodeID"]]
        kinds = [f["auto"]] if devices == ["auto"] else devices
        for kind in kinds:
            if kind not in f["devices"]:
                skipped.append(f"{name}: no {kind} (it has {', '.join(f['devices'])})")
                continue
            jobs.append(Job(f"{name}/{kind}", name, node["NodeID"], f["host"], kind, f["device_keys"][kind]))
    return jobs, skipped


def check_versions(
    nodes: list[tuple[str, dict[str, Any]]], facts: dict[str, dict[str, Any]], allow_mixed: bool
) -> list[str]:
    """Refuse a node with another fnbench than this driver's (unless ``allow_mixed``); return notes on the rest."""
    notes = []
    for name, node in nodes:
        f = facts[node["NodeID"]]
        if f["fnbench"] != __version__:
            if not allow_mixed:
                raise UserError(
                    f"node {name} runs fnbench {f['fnbench']}, this machine {__version__}: install the same "
                    "version there (or give --allow-mixed to measure anyway; the plan records it)"
                )
            notes.append(f"node {name}: fnbench {f['fnbench']} (this machine {__version__}), allowed by --allow-mixed")
    for key in ("torch", "python"):
        seen = {facts[n["NodeID"]][key] for _, n in nodes}
        if len(seen) > 1:
            notes.append(f"the nodes run {key} {', '.join(sorted(seen))} (recorded in every record's env)")
    return notes


# -- the driver -----------------------------------------------------------------------------------------


@dataclass
class CampaignSummary:
    """The outcome of :func:`run_campaign`: where it is stored and how each job ended."""

    campaign_id: str
    path: Path  # OUT/<campaign_id>
    jobs: list[Job]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs if j.status != "done"]

    def records_of(self, job: Job) -> list[dict[str, Any]]:
        """The final records of ``job``'s run, from the campaign's files."""
        out = []
        for f in sorted(self.path.glob("*.jsonl")):
            out += [r for r in _results.read_records(f) if r.get("run_id") == job.run_id]
        return out


def _heal(path: Path) -> None:
    """Cut a torn last line (a driver killed mid-write) into ``<file>.torn`` before appending again."""
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path.with_name(path.name + ".torn"), "ab") as f:
        f.write(data[cut:] + b"\n")
    os.truncate(path, cut)


class _Driver:
    """A campaign in progress: its plan on disk, its files, one thread per host."""

    def __init__(self, ray, plan: dict[str, Any], jobs: list[Job], root: Path, on_event):
        self.ray, self.plan, self.jobs, self.root, self.on_event = ray, plan, jobs, root, on_event
        self.lock = threading.Lock()
        self.writers: dict[str, _results.ResultWriter] = {}
        self.gens: dict[str, Any] = {}
        self.cancelled = False

    def save(self) -> None:
        """Store the plan with every job's state (atomically: temporary file, then rename)."""
        self.plan["jobs"] = [asdict(j) for j in self.jobs]
        path = self.root / "campaign.json"
        tmp = path.with_name(f"campaign.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.plan, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def writer(self, device_key: str) -> _results.ResultWriter:
        if device_key not in self.writers:
            path = self.root / f"{device_key}.jsonl"
            _heal(path)
            self.writers[device_key] = _results.ResultWriter(
                path, hint=f"free space, then finish with `fnbench campaign --resume {self.plan['campaign_id']}`"
            )
        return self.writers[device_key]

    def seed(self, job: Job) -> dict[str, Any] | None:
        """What a resumed job's node needs: the run's plan and every line of it that arrived."""
        if job.run_id is None:
            return None
        path = self.root / f"{job.device_key}.jsonl"
        lines = []
        if path.exists():
            for ln in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    if json.loads(ln).get("run_id") == job.run_id:
                        lines.append(ln)
        return {"run_id": job.run_id, "plan": job.run_plan, "lines": lines}

    def stamp(self, job: Job) -> dict[str, Any]:
        """Which campaign and node measured a record, added to each one the driver stores.

        Two nodes of one machine share a device key, hence one file; only this block tells their
        records apart (the report's devices table lists it). Neither the record's ``id`` nor its
        identity key reads it, so a resumed run still knows what it has measured.
        """
        return {"id": self.plan["campaign_id"], "node": job.node, "node_id": job.node_id, "host": job.host}

    def handle(self, job: Job, kind: str, payload: Any) -> None:
        with self.lock:
            if kind == "started":
                job.run_id, job.run_plan, job.status = payload["run_id"], payload["plan"], "running"
                job.planned = len((payload["plan"] or {}).get("keys") or [])
                job.started = job.started or payload["t"]
                self.save()
            elif kind == "record":
                rec = json.loads(payload)
                rec["campaign"] = self.stamp(job)
                self.writer((rec.get("device") or {}).get("key") or job.device_key).write(rec)
                job.records += 1
                job.finals += rec.get("status", "ok") != "partial"
                self.save()  # the plan says how far every job got, for a reader and for resume
            elif kind == "finished":
                job.finished = payload["t"]
                if payload["rc"] in (0, 1):  # 1: some measurement failed, and is recorded as such
                    job.status, job.error = "done", None
                else:
                    lines = [ln for ln in payload["log"].splitlines() if ln.strip()]
                    job.status, job.error = "failed", (lines[-1] if lines else f"exit {payload['rc']}")
                self.save()
            else:
                job.status, job.error = kind, payload
                self.save()
        self.on_event(job, kind, payload)

    def run_job(self, job: Job, run_args: list[str], node_dir: str) -> None:
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(node_run).options(
            num_cpus=0,
            resources={RESOURCE: 1},
            max_retries=0,
            retry_exceptions=False,
            scheduling_strategy=NodeAffinitySchedulingStrategy(job.node_id, soft=False),
            name=f"fnbench:{job.key}",
        )
        job_dir = str(Path(node_dir) / self.plan["campaign_id"] / job.key.replace("/", "-").replace(":", "-"))
        with self.lock:
            if self.cancelled:
                return
            gen = task.remote(job_dir, run_args, self.seed(job))
            self.gens[job.key] = gen
        try:
            for ref in gen:
                kind, payload = ray.get(ref)
                self.handle(job, kind, payload)
        except ray.exceptions.TaskCancelledError:
            self.handle(job, "cancelled", "cancelled (Ctrl-C)")
        except ray.exceptions.RayError as e:
            why = (
                "cancelled (Ctrl-C)" if self.cancelled else f"lost: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            )
            self.handle(job, "cancelled" if self.cancelled else "lost", why)
        finally:
            with self.lock:
                self.gens.pop(job.key, None)
        if job.status == "running":  # the stream ended without its last event
            self.handle(job, "lost", "lost: the node's stream ended early")

    def host_loop(self, jobs: list[Job], run_args: list[str], node_dir: str) -> None:
        for job in jobs:  # one after the other: never two measurements on one machine
            if self.cancelled:
                return
            self.run_job(job, run_args, node_dir)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            gens = list(self.gens.values())
        for gen in gens:
            with contextlib.suppress(Exception):  # noqa: BLE001 — a task already gone needs no cancelling
                self.ray.cancel(gen)


#: Set in the process that holds the campaign's Ray connection: the file it names receives the campaign id.
DRIVER_ENV = "FNBENCH_CAMPAIGN_DRIVER"


def abandon(out_dir: str | os.PathLike, campaign_id: str, why: str) -> list[Job]:
    """Mark every unfinished job of a campaign whose driver died ``lost``; return those jobs.

    The process connected to Ray is Ray's to end: when the cluster's head goes, its object store
    goes with it and Ray terminates the connected process at once (no Python handler runs), so the
    campaign's plan would say ``running`` for ever. The process that started it calls this: the
    records that arrived are already in the campaign's files (each fsync-ed as it came), and
    ``resume`` measures the rest.
    """
    root = Path(out_dir) / campaign_id
    plan = json.loads((root / "campaign.json").read_text(encoding="utf-8"))
    lost = []
    for d in plan.get("jobs") or []:
        if d.get("status") in ("pending", "running"):
            d["status"], d["error"] = "lost", f"lost: {why}"
            lost.append(Job(**d))
    plan["status"] = "unfinished"
    tmp = root / f"campaign.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    os.replace(tmp, root / "campaign.json")
    return lost


def _resume_jobs(
    stored: list[dict[str, Any]], nodes: list[tuple[str, dict[str, Any]]], facts: dict[str, dict[str, Any]]
) -> list[Job]:
    """Every stored job, the unfinished ones moved to a node of their host that has their device now."""
    jobs = []
    for d in stored:
        job = Job(**d)
        if job.status != "done":
            here = [(nm, n) for nm, n in nodes if facts[n["NodeID"]]["host"] == job.host]
            here = [(nm, n) for nm, n in here if job.device in facts[n["NodeID"]]["devices"]]
            same = [p for p in here if p[0] == job.node] or here
            if same:
                job.node, job.node_id = same[0][0], same[0][1]["NodeID"]
                job.status, job.error = "pending", None
            else:
                job.status, job.error = "lost", f"lost: no node of host {job.host} with {job.device} is in the cluster"
        jobs.append(job)
    return jobs


def _start(ray, where, run_args, devices, nodes_pattern, allow_mixed, stored):
    """The campaign's plan and jobs, new or resumed (``stored``), after every node's software is checked."""
    nodes = select_nodes(ray, nodes_pattern, where)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(node_facts)
    refs = {
        n["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for _, n in nodes
    }
    facts, gone = {}, []
    for (name, _), (nid, ref) in zip(nodes, refs.items()):
        try:
            facts[nid] = ray.get(ref, timeout=120)
        except (ray.exceptions.RayError, TimeoutError) as e:  # died since ray.nodes() listed it: not there
            gone.append(f"{name}: did not answer ({type(e).__name__})")
    nodes = [(nm, n) for nm, n in nodes if n["NodeID"] in facts]
    if not nodes:
        raise UserError(f"no node of the cluster at {where} answered: {'; '.join(gone)}")
    if stored is not None:
        plan = stored
        allow_mixed = allow_mixed or bool(plan.get("allow_mixed"))
        notes = check_versions(nodes, facts, allow_mixed)
        jobs = _resume_jobs(plan.get("jobs") or [], nodes, facts)
        skipped = list(plan.get("skipped") or [])
    else:
        notes = check_versions(nodes, facts, allow_mixed)
        jobs, skipped = plan_jobs(nodes, facts, devices)
        if not jobs:
            raise UserError(f"no node has the device(s) asked for: {'; '.join(skipped)}")
        cid = _results.new_run_id()
        plan = {
            "campaign_id": cid,
            "created": _results.utc_now(),
            "fnbench": __version__,
            "address": where,
            "run_args": list(run_args),
            "devices": list(devices),
            "nodes_pattern": nodes_pattern,
            "allow_mixed": bool(allow_mixed),
            "skipped": skipped,
        }
    plan["nodes"] = [
        {"name": nm, "node_id": n["NodeID"], "address": n.get("NodeManagerAddress"), **facts[n["NodeID"]]}
        for nm, n in nodes
    ]
    plan["notes"] = notes = notes + gone
    plan["status"] = "running"
    return plan, jobs, skipped, notes


def run_campaign(
    run_args: list[str],
    *,
    address: str | None = None,
    local: bool = False,
    devices: list[str] | tuple[str, ...] = ("auto",),
    nodes: str | None = None,
    allow_mixed: bool = False,
    out_dir: str | os.PathLike = "results",
    resume: str | None = None,
    on_event: Callable[[Job, str, Any], None] | None = None,
    on_plan: Callable[[CampaignSummary], None] | None = None,
) -> CampaignSummary:
    """Measure ``fnbench run RUN_ARGS`` on every node of the cluster that advertises ``fnbench``.

    ``run_args`` are ``fnbench run`` options (without ``--device``, ``--out``, ``--resume``); each job
    (node × device kind of ``devices``: ``auto`` is each node's own best) runs them on its node.
    Records land in ``<out_dir>/<campaign_id>/<device key>.jsonl`` as they are written there.
    ``resume`` (a campaign id) measures what its unfinished jobs lack. ``on_plan`` is called once
    the plan is stored, ``on_event(job, kind, payload)`` for every event of every job. A
    ``KeyboardInterrupt`` cancels the tasks, stores what arrived and is raised again.
    """
    devices = list(devices) or ["auto"]
    stored = None
    if resume is not None:  # refused before connecting: an unknown or finished campaign
        stored = read_campaign(out_dir, resume)
        if stored.get("status") == "done":
            raise UserError(
                f"campaign {resume} is finished: nothing to resume; see `fnbench report {Path(out_dir) / resume}`"
            )
    with connect(address, local) as where:
        ray = import_ray()
        plan, jobs, skipped, notes = _start(ray, where, run_args, devices, nodes, allow_mixed, stored)
        root = Path(out_dir) / plan["campaign_id"]
        root.mkdir(parents=True, exist_ok=True)
        driver = _Driver(ray, plan, jobs, root, on_event or (lambda *a: None))
        driver.save()
        summary = CampaignSummary(plan["campaign_id"], root, jobs, skipped, notes)
        if on_plan is not None:
            on_plan(summary)
        node_dir = os.environ.get(NODE_DIR_ENV) or str(Path(tempfile.gettempdir()) / "fnbench-campaigns")
        args = list(plan["run_args"])
        by_host: dict[str, list[Job]] = {}
        for j in jobs:
            if j.status == "pending":
                by_host.setdefault(j.host, []).append(j)
        threads = [
            threading.Thread(target=driver.host_loop, args=(hj, args, node_dir), name=f"host-{h}", daemon=True)
            for h, hj in by_host.items()
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)
        except KeyboardInterrupt:
            driver.cancel()
            for t in threads:
                t.join(60)
            for j in jobs:
                if j.status in ("pending", "running"):
                    j.status, j.error = "cancelled", "cancelled (Ctrl-C)"
            plan["status"] = "interrupted"
            driver.save()
            raise
        plan["status"] = "done" if all(j.status == "done" for j in jobs) else "unfinished"
        driver.save()
    return summary
