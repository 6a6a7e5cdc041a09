"""``fnbench campaign`` on real local Ray clusters: one node, two nodes on one host, a lost node, a version mismatch.

Every cluster binds to 127.0.0.1 with no dashboard (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes
Ray advertise that address rather than the machine's routed one) and is shut down by its fixture.
The campaigns run the real command in a subprocess, as a user would; measurements are tiny.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

# Read when ray is first imported: without it Ray advertises the machine's routed address, not 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

from fnbench import results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: One tiny target, a few passes: each job takes seconds.
TINY = ["--target", "pconv", "--shape", "16x8x8", "--budget", "1", "--passes", "1"]
HEAD = {"num_cpus": 0, "object_store_memory": 100 * 2**20, "include_dashboard": False, "node_ip_address": "127.0.0.1"}
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20, "resources": {"fnbench": 1}, "node_ip_address": "127.0.0.1"}


def _env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["FNBENCH_NODE_DIR"] = str(tmp_path / "node")
    env.update(extra)
    return env


def _fnbench(fnbench_cmd, args, env, timeout=240):
    return subprocess.run([*fnbench_cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _campaign_dir(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if (p / "campaign.json").exists()]
    return d


def _plan(d: Path) -> dict:
    return json.loads((d / "campaign.json").read_text())


def _all_records(d: Path) -> list[dict]:
    return [r for f in sorted(d.glob("*.jsonl")) for r in results.read_records(f, partial=True)]


def _assert_loopback(addresses) -> None:
    addresses = list(addresses)
    assert addresses
    for a in addresses:
        assert ipaddress.ip_address(a).is_loopback, a


def _one_line_error(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fnbench: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# -- without a cluster -------------------------------------------------------------------------------------


def test_without_ray_says_how_to_install_it(fnbench_cmd, tmp_path):
    env = _env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "no_ray"), env["PYTHONPATH"]])
    proc = _fnbench(fnbench_cmd, ["campaign", "--local", *TINY, "--out", str(tmp_path / "out")], env)
    assert proc.returncode == 2
    assert "pip install 'fnbench[cluster]'" in _one_line_error(proc)


def test_an_address_that_does_not_answer_is_refused_quickly(fnbench_cmd, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = _fnbench(fnbench_cmd, ["campaign", "--address", f"127.0.0.1:{port}", *TINY], _env(tmp_path), timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in _one_line_error(proc)


def test_run_options_that_run_refuses_are_refused_before_connecting(fnbench_cmd, tmp_path):
    bad = ["--target", "pconv", "--suite", "quick"]
    run = _fnbench(fnbench_cmd, ["run", *bad, "--out", str(tmp_path / "r")], _env(tmp_path))
    camp = _fnbench(fnbench_cmd, ["campaign", "--address", "127.0.0.1:9", *bad], _env(tmp_path))
    assert run.returncode == camp.returncode == 2
    assert _one_line_error(camp) == _one_line_error(run)  # the same words, and nothing was dialled


# -- one local node ----------------------------------------------------------------------------------------


def test_local_campaign_streams_the_nodes_file_home(fnbench_cmd, tmp_path):
    out = tmp_path / "out"
    proc = _fnbench(fnbench_cmd, ["campaign", "--local", *TINY, "--out", str(out)], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    d = _campaign_dir(out)
    plan = _plan(d)
    assert plan["status"] == "done" and plan["run_args"][:4] == TINY[:4]
    _assert_loopback(n["address"] for n in plan["nodes"])
    (job,) = plan["jobs"]
    assert job["status"] == "done" and job["planned"] == job["finals"] == 1
    # The driver's copy holds exactly the records the node's run wrote, each stamped with the node.
    home = [json.loads(ln) for ln in (d / f"{job['device_key']}.jsonl").read_text().splitlines()]
    (node_file,) = (tmp_path / "node").rglob(f"{job['run_id']}.jsonl")
    stamp = {"id": d.name, "node": job["node"], "node_id": job["node_id"], "host": job["host"]}
    assert [r.pop("campaign") for r in home] == [stamp] * len(home)
    assert home == [json.loads(ln) for ln in node_file.read_text().splitlines()]
    final = [r for r in home if r["status"] == "ok"]
    assert [r["target"]["name"] for r in final] == ["pconv"] and final[0]["device"]["key"] == job["device_key"]
    assert f"node {job['node']}" in proc.stdout and f"fnbench report {d}" in proc.stdout


def test_a_cluster_without_fnbench_nodes_says_how_to_add_one(fnbench_cmd, tmp_path):
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args=HEAD)  # a head that advertises nothing
    try:
        proc = _fnbench(fnbench_cmd, ["campaign", "--address", c.address, *TINY], _env(tmp_path))
    finally:
        c.shutdown()
    assert proc.returncode == 2
    line = _one_line_error(proc)
    assert "advertises the resource 'fnbench'" in line and """--resources '{"fnbench": 1}'""" in line


# -- a cluster of nodes on this one machine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head that measures nothing and two nodes advertising ``fnbench`` (labels a, b), all on 127.0.0.1."""
    from ray.cluster_utils import Cluster

    os.environ["FNBENCH_NODE_DIR"] = str(tmp_path_factory.mktemp("node"))
    c = Cluster(
        initialize_head=True,
        head_node_args=HEAD,
    )
    try:
        c.nodes = {}
        for name in ("a", "b"):
            c.nodes[name] = c.add_node(**NODE, labels={"fnbench-test": name})
        ray.init(address=c.address, log_to_driver=False)
        try:
            _assert_loopback(n["NodeManagerAddress"] for n in ray.nodes())
        finally:
            ray.shutdown()
        yield c
    finally:
        c.shutdown()


def _node_names(plan: dict) -> dict[str, str]:
    """Test label of each node → its display name in the campaign."""
    return {n["name"]: n["name"] for n in plan["nodes"]}


def test_two_nodes_on_one_host_take_turns(fnbench_cmd, tmp_path, cluster):
    out = tmp_path / "out"
    args = ["campaign", "--address", cluster.address, "--nodes", "fnbench-test=[ab]", *TINY, "--out", str(out)]
    proc = _fnbench(fnbench_cmd, args, _env(tmp_path))
    print(f"$ fnbench {' '.join(args)}\n{proc.stderr}{proc.stdout}")  # shown with pytest -s
    assert proc.returncode == 0, proc.stderr
    plan = _plan(_campaign_dir(out))
    jobs = plan["jobs"]
    assert len(jobs) == 2 and all(j["status"] == "done" for j in jobs)
    assert len({j["node_id"] for j in jobs}) == 2  # both nodes took part …
    assert len({j["host"] for j in jobs}) == 1  # … recognised as one machine …
    (a, b) = sorted(jobs, key=lambda j: j["started"])
    assert a["finished"] <= b["started"]  # … and never measured at the same time (node clocks, one machine)
    recs = _all_records(_campaign_dir(out))
    assert {r["run_id"] for r in recs} == {a["run_id"], b["run_id"]}
    for j in jobs:  # each node's table in the merged output names it
        assert f"node {j['node']} (cpu, host {j['host']}): run {j['run_id']}" in proc.stdout
    _assert_loopback(n["address"] for n in plan["nodes"])
    # The merged report: one device (one machine, one file), holding the records of both nodes.
    from fnbench.report.build import build_report

    assert {r["campaign"]["node"] for r in recs} == {a["node"], b["node"]}
    report = build_report([_campaign_dir(out)], tmp_path / "report")
    devices = pd.read_csv(report.csv["devices"])
    assert len(devices) == 1 and devices.device_key[0] == a["device_key"] == b["device_key"]
    assert devices.nodes[0].split(", ") == sorted([a["node"], b["node"]])
    page = report.index.read_text()
    assert "campaign nodes" in page and all(j["node"] in page for j in jobs)


def test_nodes_pattern_matching_nothing_lists_the_nodes(fnbench_cmd, tmp_path, cluster):
    proc = _fnbench(
        fnbench_cmd, ["campaign", "--address", cluster.address, "--nodes", "nomatch*", *TINY], _env(tmp_path)
    )
    assert proc.returncode == 2
    line = _one_line_error(proc)
    assert "--nodes 'nomatch*' matches none of the nodes: 127.0.0.1#" in line and line.count("127.0.0.1#") == 2


@pytest.fixture
def extra_node(cluster):
    """Nodes added for one test (label, env for its raylet) and removed after it, dead or alive."""
    added = []

    def add(name, **env):
        node = cluster.add_node(**NODE, labels={"fnbench-test": name}, env_vars=env or None)
        added.append(node)
        return node

    yield add
    for node in added:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)


def test_a_node_with_another_fnbench_is_refused(fnbench_cmd, tmp_path, cluster, extra_node):
    extra_node("c", FNBENCH_TEST_NODE_VERSION="0.0.9")
    out = tmp_path / "out"
    args = ["campaign", "--address", cluster.address, "--nodes", "fnbench-test=c", *TINY, "--out", str(out)]
    proc = _fnbench(fnbench_cmd, args, _env(tmp_path))
    assert proc.returncode == 2
    assert "runs fnbench 0.0.9, this machine 0.1.0" in _one_line_error(proc)
    assert not out.exists() or not list(out.iterdir())  # refused before anything was stored or measured
    proc = _fnbench(fnbench_cmd, [*args, "--allow-mixed"], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    plan = _plan(_campaign_dir(out))
    assert plan["allow_mixed"] is True and plan["nodes"][0]["fnbench"] == "0.0.9"
    assert any("0.0.9" in n and "--allow-mixed" in n for n in plan["notes"])


#: Two targets over three passes: a job long enough to be interrupted between its passes.
LONGER = ["--target", "pconv", "--target", "dwconv", "--shape", "16x8x8", "--budget", "3", "--passes", "3"]


def _wait_for_records(out: Path, node_id: str | None = None, timeout_s: float = 180) -> None:
    """Until a job (on ``node_id``, if given) is running and has sent a record home (campaign.json says)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        plans = list(out.glob("*/campaign.json")) if out.exists() else []
        jobs = json.loads(plans[0].read_text()).get("jobs", []) if plans else []
        if any(j["status"] == "running" and j["records"] >= 1 and node_id in (None, j["node_id"]) for j in jobs):
            return
        time.sleep(0.1)
    pytest.fail("no job streamed a record")


def test_a_lost_node_leaves_a_resumable_campaign(fnbench_cmd, tmp_path, cluster, extra_node):
    """Node d dies while its run streams; a's job finishes; --resume measures d's rest on a (same host), once."""
    extra_node("d")
    out = tmp_path / "out"
    args = ["campaign", "--address", cluster.address, "--nodes", "fnbench-test=[ad]", *LONGER, "--out", str(out)]
    env = _env(tmp_path)
    proc = subprocess.Popen([*fnbench_cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        d_node = next(n for n in cluster.worker_nodes if n not in cluster.nodes.values())
        _wait_for_records(out, d_node.node_id)  # d's run has sent some of its passes home
        cluster.remove_node(d_node, allow_graceful=False)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    d = _campaign_dir(out)
    cid = d.name
    assert f"fnbench campaign --resume {cid} --address {cluster.address}" in stderr
    plan = _plan(d)
    lost = [j for j in plan["jobs"] if j["status"] == "lost"]
    assert len(lost) == 1 and lost[0]["node_id"] == d_node.node_id and lost[0]["records"] >= 1
    assert [j["status"] for j in plan["jobs"] if j is not lost[0]] == ["done"]
    before = {r["id"] for r in _all_records(d)}

    proc = _fnbench(fnbench_cmd, ["campaign", "--resume", cid, "--address", cluster.address, "--out", str(out)], env)
    assert proc.returncode == 0, proc.stderr
    plan = _plan(d)
    assert plan["status"] == "done" and all(j["status"] == "done" for j in plan["jobs"])
    recs = _all_records(d)
    assert before <= {r["id"] for r in recs}  # what arrived before the loss is kept
    assert len({r["id"] for r in recs}) == len(recs)  # and no record came twice
    for job in plan["jobs"]:
        mine = [r for r in recs if r["run_id"] == job["run_id"]]
        finals = [results.record_key(r) for r in mine if r["status"] != "partial"]
        parts = [(results.record_key(r), r["pass"]) for r in mine if r["status"] == "partial"]
        assert sorted(finals) == sorted(set(finals)) and len(finals) == job["planned"] == 2
        assert len(parts) == len(set(parts))  # no pass of any target measured twice
    resumed = next(j for j in plan["jobs"] if j["key"] == lost[0]["key"])
    assert resumed["node_id"] != d_node.node_id  # finished on the node of the same host that is there
    proc = _fnbench(fnbench_cmd, ["campaign", "--resume", cid, "--address", cluster.address, "--out", str(out)], env)
    assert proc.returncode == 2 and "is finished" in _one_line_error(proc)


def test_resume_of_an_unknown_campaign_is_refused(fnbench_cmd, tmp_path):
    args = ["campaign", "--resume", "20261202T000000Z-0000", "--address", "127.0.0.1:9", "--out", str(tmp_path)]
    proc = _fnbench(fnbench_cmd, args, _env(tmp_path))
    assert proc.returncode == 2
    assert "no campaign '20261202T000000Z-0000' to resume" in _one_line_error(proc)


def test_ctrl_c_cancels_and_leaves_a_resumable_campaign(fnbench_cmd, tmp_path, cluster):
    out = tmp_path / "out"
    args = ["campaign", "--address", cluster.address, "--nodes", "fnbench-test=a", *LONGER, "--out", str(out)]
    env = _env(tmp_path)
    proc = subprocess.Popen([*fnbench_cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for_records(out)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    d = _campaign_dir(out)
    assert proc.returncode == 130, stderr
    assert f"fnbench campaign --resume {d.name} --address {cluster.address}" in stderr
    plan = _plan(d)
    assert plan["status"] == "interrupted" and plan["jobs"][0]["status"] == "cancelled"
    node_files = list((Path(os.environ["FNBENCH_NODE_DIR"]) / d.name).rglob("*.jsonl.lock"))
    assert not node_files  # the node's run stopped (its lock is gone): nothing measures on
    proc = _fnbench(fnbench_cmd, ["campaign", "--resume", d.name, "--address", cluster.address, "--out", str(out)], env)
    assert proc.returncode == 0, proc.stderr
    recs = _all_records(d)
    finals = [results.record_key(r) for r in recs if r["status"] != "partial"]
    assert len(finals) == len(set(finals)) == 2 and len({r["id"] for r in recs}) == len(recs)


def test_the_cluster_going_away_leaves_every_job_lost(fnbench_cmd, tmp_path):
    """The head dies while a node's run streams: the driver keeps what arrived, marks the job lost, exits 1."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args=HEAD)
    try:
        node = c.add_node(**NODE)
        out = tmp_path / "out"
        args = ["campaign", "--address", c.address, *LONGER, "--out", str(out)]
        proc = subprocess.Popen(
            [*fnbench_cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path)
        )
        try:
            _wait_for_records(out, node.node_id)
            arrived = {r["id"] for r in _all_records(_campaign_dir(out))}
            address = c.address
            c.head_node.kill_all_processes(check_alive=False, allow_graceful=False)
            t0 = time.monotonic()
            stdout, stderr = proc.communicate(timeout=150)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        with contextlib.suppress(Exception):  # noqa: BLE001 — the head is already gone
            c.shutdown()
        for n in c.list_all_nodes():
            with contextlib.suppress(Exception):  # noqa: BLE001
                n.kill_all_processes(check_alive=False, allow_graceful=False)
    print(f"rc {proc.returncode} after {took:.1f} s\n{stderr}\n{stdout}")
    assert proc.returncode == 1, stderr
    d = _campaign_dir(out)
    assert f"fnbench campaign --resume {d.name} --address {address}" in stderr
    plan = _plan(d)
    assert plan["status"] == "unfinished" and [j["status"] for j in plan["jobs"]] == ["lost"]
    assert "the cluster went away" in plan["jobs"][0]["error"]
    assert arrived and arrived <= {r["id"] for r in _all_records(d)}  # every record that arrived is kept
