"""``fnbench campaign`` on real local Ray clusters: one node, two nodes on one host, a lost node, a version mismatch.

Every cluster binds to 127.0.0.1 with no dashboard (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes
Ray advertise that address rather than the machine's routed one) and is shut down by its fixture.
The campaigns run the real command in a subprocess, as a user would; measurements are tiny.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from fnbench import results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: One tiny target, a few passes: each job takes seconds.
TINY = ["--target", "pconv", "--shape", "16x8x8", "--budget", "1", "--passes", "1"]
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
    # The driver's copy holds exactly the lines the node's run wrote, in its own file.
    home = (d / f"{job['device_key']}.jsonl").read_text().splitlines()
    (node_file,) = (tmp_path / "node").rglob(f"{job['run_id']}.jsonl")
    assert home == node_file.read_text().splitlines()
    final = [json.loads(ln) for ln in home if json.loads(ln)["status"] == "ok"]
    assert [r["target"]["name"] for r in final] == ["pconv"] and final[0]["device"]["key"] == job["device_key"]
    assert f"node {job['node']}" in proc.stdout and f"fnbench report {d}" in proc.stdout
