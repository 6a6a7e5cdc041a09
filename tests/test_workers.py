"""Worker processes: round trip on a tiny target, failures as outcomes, merged records, no orphans."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from fnbench.conditions import Conditions
from fnbench.options import RunOptions
from fnbench.results import read_records
from fnbench.runner import run_suite
from fnbench.targets import TargetSpec
from fnbench.workers import ChunkRequest, WorkerPool

ROOT = Path(__file__).resolve().parent.parent
TINY = TargetSpec.make("pconv", (16, 8, 8), layers=1)


def test_pool_round_trip_and_a_model_error_does_not_kill_the_worker():
    with WorkerPool(2) as pool:
        assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids
        req = ChunkRequest(TINY, Conditions(), "cpu", chunk_budget_s=0.5, min_rounds=2, max_rounds=2, round_s=0.02)
        a = pool.run_chunk(0, req)
        assert a.status == "ok", a.failure
        m = a.measurement
        assert a.pid == pool.pids[0] and a.worker == 0 and m.batch == 1 and m.iters_per_sample >= 1
        assert sorted(set(m.round_ids)) == [0, 1] and len(m.samples_s) == len(m.round_ids) >= 6
        assert a.prepare_s > 0
        again = pool.run_chunk(0, req)  # same target: the prepared model is reused, nothing is prepared again
        assert again.status == "ok" and again.prepare_s == 0.0
        bad = pool.run_chunk(1, ChunkRequest(TargetSpec.make("no_such_op", (16, 8, 8), layers=1), Conditions(), "cpu"))
        assert bad.status == "failed" and "no_such_op" in bad.failure.error and bad.failure.traceback
        assert pool.run_chunk(1, req).status == "ok"  # the worker survived its failure
        procs = list(pool._procs)
    assert all(not p.is_alive() for p in procs)


def test_run_suite_samples_every_pass_on_fresh_worker_processes(tmp_path):
    s = run_suite([TINY], RunOptions(device="cpu", budget_s=1.5, workers=2, passes=3), out_dir=tmp_path)
    (rec,) = read_records(s.path)
    parts = [r for r in read_records(s.path, partial=True) if r["status"] == "partial"]
    assert rec["status"] == "ok" and [p["pass"] for p in parts] == [0, 1, 2]
    n = len(rec["samples_s"])
    assert n == len(rec["rounds"]) == len(rec["workers"]) == len(rec["passes"]) == rec["stats"]["n"] > 0
    assert set(rec["workers"]) == set(range(6))  # 3 passes x 2 workers: six processes
    for proc in range(6):  # each process gave whole rounds of one pass; no round id is shared
        assert len({r for r, k in zip(rec["rounds"], rec["workers"]) if k == proc}) >= 1
        assert len({p for p, k in zip(rec["passes"], rec["workers"]) if k == proc}) == 1
    pairs = set(zip(rec["rounds"], rec["workers"]))
    assert len({r for r, _ in pairs}) == len(pairs) == rec["stats"]["rounds"]
    assert rec["stats"]["ci_method"] == "hierarchical-bootstrap(processes,rounds)"
    assert rec["stats"]["workers"] == 6 and rec["stats"]["passes"] == 3
    assert rec["stats"]["ci95_low_s"] <= rec["stats"]["median_s"] <= rec["stats"]["ci95_high_s"]
    info = rec["runtime_info"]["workers"]
    pids = [c["pid"] for c in info["chunks"]]
    assert info["n"] == 2 and len(pids) == 6 and len(set(pids)) == 6  # fresh processes every pass
    assert [c["pass"] for c in info["chunks"]] == [0, 0, 1, 1, 2, 2]
    assert rec["samples_s"] == [x for p in parts for x in p["samples_s"]]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # exited, waiting to be reaped


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = textwrap.dedent("""
        import sys, threading, time
        from fnbench.conditions import Conditions
        from fnbench.targets import TargetSpec
        from fnbench.workers import ChunkRequest, WorkerPool
        pool = WorkerPool(2)
        pool.start()
        busy = ChunkRequest(TargetSpec.make("conv", (64, 28, 28), layers=4), Conditions(), "cpu", chunk_budget_s=30.0,
                            min_rounds=50, max_rounds=50, round_s=0.5)
        threading.Thread(target=pool.run_chunk, args=(0, busy), daemon=True).start()  # worker 0 busy
        time.sleep(1.0)
        print(*pool.pids, flush=True)
        time.sleep(120)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line
        assert not any(_gone(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.time() + 10
        while time.time() < deadline and not all(_gone(p) for p in pids):
            time.sleep(0.1)
        assert all(_gone(p) for p in pids), [p for p in pids if not _gone(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
