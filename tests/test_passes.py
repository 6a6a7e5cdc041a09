"""Passes over a suite: fresh processes each pass, partial records, early stop, resume from stored passes.

The run is given a measurer whose worker pool and per-pass measurement are fakes that return
seeded samples, so the bookkeeping is checked exactly and fast; the real pool is exercised in
test_workers.py.
"""

import json
import time

import numpy as np
import pytest

from fnbench import passes, runner
from fnbench.conditions import Conditions
from fnbench.devices import Device
from fnbench.errors import UserError
from fnbench.measurement import Measurement
from fnbench.options import RunOptions
from fnbench.passes import PassResult, PendingTarget, interleaved_pass
from fnbench.results import read_records
from fnbench.runtimes import Unsupported
from fnbench.suites import get_suite
from fnbench.targets import TargetSpec, resolve
from fnbench.workers import FINISH, ChunkResult, Failure, Ready, WorkerError

CPU = Device("cpu", "cpu", "Test CPU", "x86_64")


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
    """Each task of each call: 4 rounds x 5 samples at a level drawn per pass (``noise[name]``: its
    relative sd), the rounds in cycles 0-3; ``calls`` gets (name, pool index) per task."""

    def fake(pool, tasks, *, device, seed, pass_no, budget_s, pass_budget_s, workers, concurrency, progress):
        assert pool.n == len(tasks) * workers and pool.allocator == [t.conditions.allocator for t in tasks]
        out = {}
        for t in tasks:
            calls.append((t.target.spec.name, FakePool.instances.index(pool)))
            if crash_at is not None and len(calls) == crash_at:
                raise Crash()
            rng = np.random.default_rng(len(calls))
            level = 1e-3 * (1.0 + noise[t.target.spec.name] * rng.standard_normal())
            samples = [level * (1 + 1e-4 * i) for i in range(20)]
            rounds = [i // 5 for i in range(20)]
            m = Measurement(samples, rounds, 1, warmup_iters=[1] * 4, threads_used=1, budget_s=1.0, cycle_ids=rounds)
            chunk = ChunkResult(0, 1000 + len(calls), measurement=m)
            out[t.key] = PassResult.of([chunk], wall_s=0.01, pass_budget_s=pass_budget_s, round_s=budget_s / 25)
        if progress is not None:
            progress(1.0)
        return out

    return fake


@pytest.fixture
def fakes(monkeypatch):
    import fnbench.counting

    monkeypatch.setattr(fnbench.counting, "count", lambda module, x, **kw: FakeCount())
    FakePool.instances.clear()
    return monkeypatch


def fake_measurer(calls, noise, crash_at=None):
    return runner.ProcessMeasurer(pool_factory=FakePool, pass_fn=make_fake_pass(calls, noise, crash_at))


SPECS = get_suite("quick").specs()  # conv, gconv, dwconv, pconv: the claims link them
PWCONV = TargetSpec.make("pwconv", (192, 28, 28), layers=2)  # in no claim: a group of its own
STEADY = {"conv": 0.0, "gconv": 0.0, "dwconv": 0.10, "pconv": 0.10, "pwconv": 0.0}


def test_linked_targets_stop_together_when_all_settle_an_unlinked_one_on_its_own(tmp_path, fakes):
    calls = []
    s = runner.run_suite(
        [*SPECS, PWCONV],
        RunOptions(device="cpu", budget_s=5.0, passes=5),
        out_dir=tmp_path,
        measurer=fake_measurer(calls, STEADY),
    )
    per_target = {n: sum(c[0] == n for c in calls) for n in STEADY}
    # the four operators are one group (their claims compare them): two noisy rows keep all four
    # measured to the last pass; pwconv settles alone after the minimum
    assert per_target == {"conv": 5, "gconv": 5, "dwconv": 5, "pconv": 5, "pwconv": runner.MIN_PASSES}
    pools = FakePool.instances  # one per pass: the five fit in one interleaved group
    assert len(pools) == 5 and all(p.starts == 1 and p.closed for p in pools)  # fresh processes every pass
    assert {g for n, g in calls if n == "dwconv"} == {0, 1, 2, 3, 4}
    assert {g for n, g in calls if n == "pwconv"} == {0, 1, 2}
    calls = []
    steady = dict.fromkeys(STEADY, 0.0)
    runner.run_suite(
        SPECS, RunOptions(device="cpu", budget_s=5.0, passes=5), out_dir=tmp_path, measurer=fake_measurer(calls, steady)
    )
    assert len(calls) == 4 * runner.MIN_PASSES  # all settled: the group stops after the minimum

    finals = s.records  # in suite order (the file holds pwconv's first: it finished first)
    everything = read_records(s.path, partial=True)
    assert [r["target"]["name"] for r in finals] == ["conv", "gconv", "dwconv", "pconv", "pwconv"]
    parts = [r for r in everything if r["status"] == "partial"]
    assert len(parts) == 4 * 5 + 3 and len(everything) == len(parts) + 5
    for fin in finals:
        mine = sorted((r for r in parts if r["target"]["name"] == fin["target"]["name"]), key=lambda r: r["pass"])
        # the final record is the passes' samples, in pass order, each pass one process
        assert fin["samples_s"] == [x for r in mine for x in r["samples_s"]]
        assert fin["passes"] == [r["pass"] for r in mine for _ in r["samples_s"]]
        assert fin["cycles"] == [c for r in mine for c in r["cycles"]]
        assert fin["workers"] == fin["passes"]
        assert len(set(fin["rounds"])) == 4 * len(mine) == fin["stats"]["rounds"]
        assert fin["stats"]["passes"] == len(mine) == fin["stats"]["workers"]
        assert fin["stats"]["ci_method"] == "hierarchical-bootstrap(processes,rounds)"
        assert fin["runtime_info"]["workers"]["passes"] == len(mine)
        assert fin["stats"]["stable"] is (STEADY[fin["target"]["name"]] == 0.0)


def test_resume_reuses_stored_passes_and_measures_only_the_rest(tmp_path, fakes):
    calls = []
    measurer = fake_measurer(calls, STEADY, crash_at=7)  # in the second pass: it is lost whole
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
    from fnbench.results import load_results

    df = load_results(tmp_path)
    assert list(df["status"]) == ["ok", "ok"]
    assert len(read_records(s.path)) == 2
    lines = [json.loads(x) for x in s.path.read_text().splitlines()]
    assert sum(r["status"] == "partial" for r in lines) == 2 * runner.MIN_PASSES


# -- one interleaved pass, against a scripted pool -----------------------------------------------------------


class ScriptedPool:
    """Answers an interleaved pass as workers would: Ready to Prepare, nothing to Round, a measurement
    of the rounds it took to FINISH; ``fail`` maps (worker, request kind) to a Failure; ``slow``
    workers sleep through their rounds. ``log`` is every request in the order the workers got it."""

    def __init__(self, n, fail=None, slow=(), slow_s=0.0):
        self.n, self.fail, self.slow, self.slow_s = n, fail or {}, set(slow), slow_s
        self.log, self.cycles = [], {i: [] for i in range(n)}
        self.max_busy = 0

    def ask_many(self, requests, concurrency):
        self.max_busy = max(self.max_busy, min(concurrency, len(requests)))
        out = {}
        for i, req in requests.items():
            self.log.append((i, "prepare"))
            out[i] = (self.fail.get((i, "prepare")) or Ready(0.01, 0.01, req.spec.batch), 0.02)
        return out

    def ask(self, i, req):
        if req == FINISH:
            self.log.append((i, "finish"))
            cyc = self.cycles[i]
            m = Measurement([1e-3] * (2 * len(cyc)), [r for r in range(len(cyc)) for _ in range(2)], 1)
            m.cycle_ids = [c for c in cyc for _ in range(2)]
            return ChunkResult(i, 100 + i, measurement=m)
        self.log.append((i, req.cycle))
        if i in self.slow:
            time.sleep(self.slow_s)
        if (i, req.cycle) in self.fail:
            return self.fail[i, req.cycle]
        self.cycles[i].append(req.cycle)
        return None


def _tasks(*names):
    return [PendingTarget(resolve(TargetSpec.make(n, (16, 8, 8), layers=1)), Conditions(), f"key-{n}") for n in names]


def test_an_interleaved_pass_takes_one_round_of_every_target_per_cycle_in_a_drawn_order():
    tasks = _tasks("conv", "gconv", "dwconv", "pconv")
    pool = ScriptedPool(4)
    out = interleaved_pass(pool, tasks, device=CPU, seed=3, pass_no=1, budget_s=2.5, pass_budget_s=0.5, concurrency=2)
    cycles = passes.cycles_per_pass(0.5, 0.1)
    assert cycles == 5 and pool.max_busy == 2
    assert [w for w, what in pool.log[:4]] == [0, 1, 2, 3] and {what for _, what in pool.log[:4]} == {"prepare"}
    rounds = [(w, c) for w, c in pool.log if isinstance(c, int)]
    assert [c for _, c in rounds] == [k for k in range(cycles) for _ in range(4)]  # cycle by cycle
    orders = [tuple(w for w, c in rounds if c == k) for k in range(cycles)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders) and len(set(orders)) > 1  # every target, drawn order
    again = ScriptedPool(4)
    interleaved_pass(again, tasks, device=CPU, seed=3, pass_no=1, budget_s=2.5, pass_budget_s=0.5, concurrency=2)
    assert again.log == pool.log  # the order is the seed's and the pass's
    other = ScriptedPool(4)
    interleaved_pass(other, tasks, device=CPU, seed=3, pass_no=2, budget_s=2.5, pass_budget_s=0.5, concurrency=2)
    assert other.log != pool.log
    for t in tasks:
        m = out[t.key].measurement
        assert sorted(set(m.cycle_ids)) == list(range(cycles)) and m.rounds == cycles
        assert out[t.key].round_s == pytest.approx(0.1)


def test_a_failure_ends_only_its_own_targets_pass_and_a_slow_target_sits_out_once_its_share_is_spent():
    tasks = _tasks("conv", "gconv", "dwconv", "pconv")
    fail = {(0, "prepare"): Failure("unsupported", "no such kernel"), (1, 2): Failure("failed", "boom", "tb")}
    pool = ScriptedPool(4, fail=fail, slow={3}, slow_s=0.35)
    out = interleaved_pass(pool, tasks, device=CPU, seed=0, pass_no=0, budget_s=2.5, pass_budget_s=0.5)
    assert isinstance(out["key-conv"], Unsupported) and str(out["key-conv"]) == "no such kernel"
    assert isinstance(out["key-gconv"], WorkerError) and "boom" in str(out["key-gconv"])
    assert not [c for w, c in pool.log if w == 0 and isinstance(c, int)]  # never asked for a round
    assert [c for w, c in pool.log if w == 1 and isinstance(c, int)] == [0, 1, 2]  # nothing after its failure
    assert out["key-dwconv"].measurement.rounds == 5
    # pconv's rounds take 0.35 s against a share of 0.5 s per pass: two rounds (the least), then it sits out
    assert out["key-pconv"].measurement.rounds == 2
    assert out["key-pconv"].measurement.wall_s >= 0.7


def test_with_two_workers_per_target_the_cycles_alternate_between_them():
    tasks = _tasks("dwconv", "pconv")
    pool = ScriptedPool(4)
    out = interleaved_pass(pool, tasks, device=CPU, seed=0, pass_no=0, budget_s=2.5, pass_budget_s=0.4, workers=2)
    assert {(w, c % 2) for w, c in pool.log if isinstance(c, int)} == {(0, 0), (1, 1), (2, 0), (3, 1)}
    m = out["key-dwconv"].measurement
    assert m.workers == 2 and [len(c.measurement.cycle_ids) for c in out["key-dwconv"].chunks] == [4, 4]


def test_claims_keep_their_targets_in_one_group_and_memory_cuts_only_between_claims():
    tasks = _tasks("conv", "pwconv", "dwconv", "pconv") + _tasks("gconv")
    comps = passes.claim_components(tasks, [("pconv", "dwconv"), ("pconv", "conv"), ("gconv", "x")])
    assert [[t.target.spec.name for t in c] for c in comps] == [["conv", "dwconv", "pconv"], ["pwconv"], ["gconv"]]
    costs = {t.key: {"params": 0, "mem_bytes_counted": 0} for t in tasks}
    base = passes.worker_bytes(None)
    kw = dict(workers=1, max_processes=100)
    whole = passes.interleave_groups(comps, costs, memory_bytes=100 * base, **kw)
    assert [len(g) for g in whole] == [5]
    # room for three workers at a time: the claim's three stay together, the others go on
    cut = passes.interleave_groups(comps, costs, memory_bytes=int(3 / passes.WORKER_MEMORY_SHARE * base), **kw)
    assert [[t.target.spec.name for t in g] for g in cut] == [["conv", "dwconv", "pconv"], ["pwconv", "gconv"]]
    by_procs = passes.interleave_groups(comps, costs, memory_bytes=None, workers=1, max_processes=2)
    assert [[t.target.spec.name for t in g] for g in by_procs] == [["conv", "dwconv"], ["pconv", "pwconv"], ["gconv"]]
    assert passes.worker_bytes({"params": 10, "mem_bytes_counted": 100}) == base + 120 + 25
    # on CUDA each worker also holds a context on the GPU: room there for two workers of these
    gpu = int(2 / passes.WORKER_MEMORY_SHARE * (base + passes.CUDA_CONTEXT_BYTES))
    on_gpu = passes.interleave_groups(comps, costs, memory_bytes=None, device_memory_bytes=gpu, **kw)
    assert [[t.target.spec.name for t in g] for g in on_gpu] == [["conv", "dwconv"], ["pconv", "pwconv"], ["gconv"]]
