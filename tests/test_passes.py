"""Passes over a suite: fresh processes each pass, partial records, early stop, resume from stored passes.

The run is given a measurer whose worker pool and per-pass measurement are fakes that return
seeded samples, so the bookkeeping is checked exactly and fast; the real pool is exercised in
test_workers.py.
"""

import json

import numpy as np
import pytest

from fnbench import runner
from fnbench.errors import UserError
from fnbench.options import RunOptions
from fnbench.results import read_records
from fnbench.suites import get_suite


class FakeCount:
    params, macs, mem_bytes_counted = 1, 7, 99


class FakePool:
    """Stands in for WorkerPool: records starts and closes, never forks anything."""

    instances: list = []

    def __init__(self, n, allocator="tuned", device="cpu"):
        self.n = n
        self.allocator = allocator
        self.device = device
        self.starts = 0
        self.closed = False
        FakePool.instances.append(self)

    def start(self):
        self.starts += 1

    def close(self):
        self.closed = True


class Crash(BaseException):
    """Not an Exception: run_suite does not record it, it stops the run (as SIGINT would)."""


def make_fake_pass(calls, noise, crash_at=None):
    """Each call: 4 rounds x 5 samples at a level drawn per pass; ``noise[name]`` is its relative sd."""

    def fake(pool, target, device, how, precision, budget_s, pass_budget_s, seed, batch):
        calls.append((target.spec.name, FakePool.instances.index(pool)))
        if crash_at is not None and len(calls) == crash_at:
            raise Crash()
        rng = np.random.default_rng(len(calls))
        level = 1e-3 * (1.0 + noise[target.spec.name] * rng.standard_normal())
        samples = [level * (1 + 1e-4 * i) for i in range(20)]
        return {
            "samples_s": samples,
            "rounds": [i // 5 for i in range(20)],
            "workers": [0] * 20,
            "warmup_iters": [1] * 4,
            "chunks": [{"worker": 0, "pid": 1000 + len(calls), "rounds": 4}],
            "batch": 1,
            "iters_per_sample": 1,
            "bn_folded": 0,
            "threads_used": 1,
            "runtime_info": {},
            "wall_s": 0.01,
            "round_s": budget_s / 25,
            "budget_s": pass_budget_s,
        }

    return fake


@pytest.fixture
def fakes(monkeypatch):
    import fnbench.counting

    monkeypatch.setattr(fnbench.counting, "count", lambda module, x, **kw: FakeCount())
    FakePool.instances.clear()
    return monkeypatch


def fake_measurer(calls, noise, crash_at=None):
    return runner.ProcessMeasurer(pool_factory=FakePool, pass_fn=make_fake_pass(calls, noise, crash_at))


SPECS = get_suite("quick").specs()  # conv, gconv, dwconv, pconv
STEADY = {"conv": 0.0, "gconv": 0.0, "dwconv": 0.10, "pconv": 0.10}


def test_steady_targets_stop_after_min_passes_noisy_ones_use_every_pass(tmp_path, fakes):
    calls = []
    measurer = fake_measurer(calls, STEADY)
    s = runner.run_suite(SPECS, RunOptions(device="cpu", budget_s=5.0, passes=5), out_dir=tmp_path, measurer=measurer)
    per_target = {n: sum(c[0] == n for c in calls) for n in STEADY}
    assert per_target == {"conv": runner.MIN_PASSES, "gconv": runner.MIN_PASSES, "dwconv": 5, "pconv": 5}
    pools = FakePool.instances
    assert len(pools) == 5 and all(p.starts == 1 and p.closed for p in pools)  # fresh processes every pass
    assert {g for n, g in calls if n == "dwconv"} == {0, 1, 2, 3, 4}

    finals = read_records(s.path)
    everything = read_records(s.path, partial=True)
    assert [r["target"]["name"] for r in finals] == ["conv", "gconv", "dwconv", "pconv"]
    parts = [r for r in everything if r["status"] == "partial"]
    assert len(parts) == 3 + 3 + 5 + 5 and len(everything) == len(parts) + 4
    for fin in finals:
        mine = sorted((r for r in parts if r["target"]["name"] == fin["target"]["name"]), key=lambda r: r["pass"])
        # the final record is the passes' samples, in pass order, each pass one process
        assert fin["samples_s"] == [x for r in mine for x in r["samples_s"]]
        assert fin["passes"] == [r["pass"] for r in mine for _ in r["samples_s"]]
        assert fin["workers"] == fin["passes"]
        assert len(set(fin["rounds"])) == 4 * len(mine) == fin["stats"]["rounds"]
        assert fin["stats"]["passes"] == len(mine) == fin["stats"]["workers"]
        assert fin["stats"]["ci_method"] == "hierarchical-bootstrap(processes,rounds)"
        assert fin["runtime_info"]["workers"]["passes"] == len(mine)
        assert fin["stats"]["stable"] is (STEADY[fin["target"]["name"]] == 0.0)


def test_resume_reuses_stored_passes_and_measures_only_the_rest(tmp_path, fakes):
    calls = []
    measurer = fake_measurer(calls, STEADY, crash_at=7)
    with pytest.raises(Crash):
        runner.run_suite(SPECS, RunOptions(device="cpu", budget_s=5.0, passes=5), out_dir=tmp_path, measurer=measurer)
    (path,) = tmp_path.glob("*.jsonl")
    before = path.read_text()
    stored = read_records(path, partial=True)
    assert [(r["target"]["name"], r["pass"]) for r in stored] == [
        ("conv", 0),
        ("gconv", 0),
        ("dwconv", 0),
        ("pconv", 0),
        ("conv", 1),
        ("gconv", 1),
    ]
    assert read_records(path) == []  # no target finished yet

    calls2 = []
    measurer = fake_measurer(calls2, STEADY)
    s = runner.run_suite(
        SPECS, RunOptions(device="cpu", budget_s=5.0, passes=5), out_dir=tmp_path, resume=path.stem, measurer=measurer
    )
    assert path.read_text().startswith(before)  # nothing stored was rewritten
    done = {(r["target"]["name"], r["pass"]) for r in stored}
    again = read_records(path, partial=True)[len(stored) :]
    new_parts = [(r["target"]["name"], r["pass"]) for r in again if r["status"] == "partial"]
    assert not done & set(new_parts)  # no stored pass was measured twice
    assert len(calls2) == len(new_parts)
    finals = {r["target"]["name"]: r for r in s.records}
    assert sorted(finals) == ["conv", "dwconv", "gconv", "pconv"] and s.measured == 4
    conv0 = next(r for r in stored if r["target"]["name"] == "conv" and r["pass"] == 0)
    assert finals["conv"]["samples_s"][:20] == conv0["samples_s"]  # the stored pass is in the result
    assert len(finals["dwconv"]["samples_s"]) == 5 * 20


def test_pass_count_follows_the_budget_and_is_validated(tmp_path, fakes):
    assert runner.effective_passes(5, 9.0) == 5
    assert runner.effective_passes(5, 1.0) == 3  # each pass keeps >= MIN_PASS_S
    assert runner.effective_passes(5, 0.1) == 1
    calls = []
    measurer = fake_measurer(calls, {k: 0.1 for k in STEADY})
    s = runner.run_suite(
        SPECS[:1], RunOptions(device="cpu", budget_s=0.9, passes=5), out_dir=tmp_path, measurer=measurer
    )
    assert len(calls) == 3 and s.records[0]["stats"]["passes"] == 3
    with pytest.raises(UserError, match="passes 0"):
        runner.run_suite(SPECS, RunOptions(device="cpu", passes=0), out_dir=tmp_path)


def test_partial_records_are_invisible_to_readers(tmp_path, fakes):
    calls = []
    measurer = fake_measurer(calls, STEADY)
    s = runner.run_suite(
        SPECS[:2], RunOptions(device="cpu", budget_s=5.0, passes=5), out_dir=tmp_path, measurer=measurer
    )
    from fnbench.results import load_results, measured_keys

    df = load_results(tmp_path)
    assert list(df["status"]) == ["ok", "ok"]
    assert len(measured_keys(s.path)) == 2
    lines = [json.loads(x) for x in s.path.read_text().splitlines()]
    assert sum(r["status"] == "partial" for r in lines) == 2 * runner.MIN_PASSES
