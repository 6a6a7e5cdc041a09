"""The allocator as a measurement condition, and page faults as a measured quantity.

Modes are checked from inside real worker processes (the library mapped in /proc/self/maps,
the tuned thresholds' effect on a stack whose activations glibc would otherwise hand back);
fault counting against modules that touch fresh pages every call, or reuse one buffer.
"""

import mmap

import numpy as np
import pytest
import torch
from torch import nn

from fnbench import allocators
from fnbench.cli import main as cli_main
from fnbench.options import RunOptions
from fnbench.results import read_records, record_key
from fnbench.runner import run_suite
from fnbench.targets import TargetSpec
from fnbench.timing import measure
from fnbench.workers import ChunkRequest, WorkerPool

PAGE = mmap.PAGESIZE


class FreshPages(nn.Module):
    """Maps ``pages`` new anonymous pages per call and writes one byte into each: one minor fault a page,
    whatever malloc does (the mapping bypasses it)."""

    def __init__(self, pages: int):
        super().__init__()
        self.pages = pages

    def forward(self, x):
        m = mmap.mmap(-1, self.pages * PAGE)
        for i in range(self.pages):
            m[i * PAGE] = 1
        m.close()
        return x


class ReusedBuffer(nn.Module):
    """Writes into one preallocated buffer every call: no new pages after the first."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("buf", torch.zeros(n))

    def forward(self, x):
        self.buf.fill_(1.0)
        return x


def test_faults_are_counted_per_round_for_fresh_pages_and_not_for_a_reused_buffer():
    x = torch.zeros(1)
    fresh = measure(FreshPages(64), x, budget_s=0.5, min_rounds=3, allocator=None, fold=False)
    reused = measure(ReusedBuffer(64 * PAGE // 4), x, budget_s=0.5, min_rounds=3, allocator=None, fold=False)
    # one entry per round, in round order, with the iterations it covers
    assert len(fresh.counts.minor) == fresh.rounds == len(fresh.counts.iters)
    assert sum(fresh.counts.iters) == fresh.n * fresh.iters_per_sample
    assert 60 <= fresh.minor_faults_per_iter <= 80  # 64 pages, plus the odd page of the harness
    assert reused.minor_faults_per_iter < 1
    st = fresh.to_stats()
    assert st["minor_faults_per_iter"] == pytest.approx(fresh.minor_faults_per_iter)
    f = fresh.to_record()["faults"]
    assert f["minor"] == fresh.counts.minor and f["iters"] == fresh.counts.iters


def test_faults_flag_rule():
    mib = 2**20
    assert allocators.faults_flag(None, mib) is None
    assert allocators.faults_flag(0.5, mib) is None  # under one fault per iteration
    # 1% of 100 MiB is ~256 pages of 4 KiB: 200 faults stay under it, 400 do not
    assert allocators.faults_flag(200 * 4096 / PAGE, 100 * mib) is None
    flag = allocators.faults_flag(400 * 4096 / PAGE, 100 * mib)
    assert flag is not None and "page faults per iteration" in flag and "--allocator tuned" in flag
    assert allocators.faults_flag(5, None) is not None  # no byte count: any steady fault flags


def _chunk(pool, spec, budget=0.8):
    """One chunk's result and its faults per iteration after the first round (a new process's first
    round also pays first-touch of its heap, which on a slow machine is spread over few iterations)."""
    r = pool.run_chunk(0, ChunkRequest(spec, chunk_budget_s=budget, min_rounds=500, max_rounds=500, round_s=0.1))
    assert r.status == "ok", r.failure
    counts = r.measurement.counts
    assert len(counts.minor) >= 2, "the chunk took a single round; give it more budget"
    # the median round: glibc raises its mmap threshold when it frees a large mapped chunk, now and
    # then in a round of a fresh process too (seen: 676–1,001 faults per iteration in one round of
    # six, against ~1,380 in the others), and a mean over few rounds would follow that one round
    return r, float(np.median([m / i for m, i in zip(counts.minor[1:], counts.iters[1:]) if i]))


def test_tuned_and_system_workers_set_what_they_claim():
    # Four DWConv layers at 96x56x56: 1.2 MB activations, which a fresh glibc process hands back to
    # the kernel after every forward (its trim threshold is far below that) and faults in again.
    spec = TargetSpec.make("dwconv", (96, 56, 56), 1, 4)
    with WorkerPool(1, allocator="tuned") as pool:
        state = pool.allocator_states[0]
        assert state["name"] == "tuned" and state["settings"] == allocators.TUNED_SETTINGS
        assert state["library"] is None and pool.query_allocator(0)["maps"] == {}
        r, tuned_faults = _chunk(pool, spec)
        assert r.measurement.allocator_state["name"] == "tuned"
    with WorkerPool(1, allocator="system") as pool:
        assert pool.allocator_states[0]["name"] == "system" and pool.allocator_states[0]["settings"] == {}
        _, system_faults = _chunk(pool, spec)
    pages_per_forward = 4 * 96 * 56 * 56 * 4 / PAGE
    assert tuned_faults < 1, "tuned glibc still faults: freed activations were not reused"
    assert system_faults > 0.5 * pages_per_forward, "a fresh glibc process was expected to refault its activations"


@pytest.mark.parametrize("name", ["jemalloc", "tcmalloc"])
def test_preloaded_allocator_is_mapped_in_the_worker(name):
    if allocators.find_library(name) is None:
        pytest.skip(f"{allocators.LIBRARIES[name][1]} is not installed")
    with WorkerPool(1, allocator=name) as pool:
        seen = pool.query_allocator(0)
        assert name in seen["maps"], seen
        assert seen["state"]["name"] == name and seen["state"]["library"] == seen["maps"][name]
        other = ({"jemalloc", "tcmalloc"} - {name}).pop()
        assert other not in seen["maps"]
        r, _ = _chunk(pool, TargetSpec.make("dwconv", (32, 14, 14), 1, 2), budget=0.6)
        assert r.measurement.allocator_state["library"] == seen["maps"][name]
    # the parent itself is untouched: nothing preloaded here, LD_PRELOAD restored
    assert name not in allocators.loaded_libraries()


def test_missing_library_is_exit_2_naming_the_package(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(allocators, "find_library", lambda name: None)
    code = cli_main(
        [
            "run",
            "--device",
            "cpu",
            "--target",
            "dwconv",
            "--shape",
            "8x8x8",
            "--allocator",
            "jemalloc",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "apt-get install libjemalloc2" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.jsonl"))  # refused before any file was written
    assert cli_main(["compare", "pconv", "dwconv", "--shape", "8x8x8", "--allocator", "tcmalloc"]) == 2
    assert "libtcmalloc-minimal4" in capsys.readouterr().err
    assert cli_main(["probe", "--device", "cpu", "--allocator", "nope"]) == 2
    assert "unknown allocator 'nope'" in capsys.readouterr().err


def test_system_cannot_follow_tuned_in_one_process(monkeypatch):
    monkeypatch.setattr(allocators, "_applied", "tuned")
    with pytest.raises(allocators.UserError, match="already tuned"):
        allocators.apply("system")


def test_preload_env_puts_only_the_chosen_library_first():
    libs = {n: allocators.find_library(n) for n in allocators.LIBRARIES}
    if None in libs.values():
        pytest.skip("jemalloc or tcmalloc is not installed")
    env = allocators.preload_env("jemalloc", {"LD_PRELOAD": f"{libs['tcmalloc']} /x/libother.so"})
    assert env["LD_PRELOAD"].split() == [libs["jemalloc"], "/x/libother.so"]
    assert allocators.preload_env("tuned", {"LD_PRELOAD": libs["jemalloc"]}).get("LD_PRELOAD") is None


def test_loaded_libraries_reads_proc_maps_lines():
    maps = (
        "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    )
    assert allocators.loaded_libraries(maps) == {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
    assert allocators.loaded_libraries("") == {}


def test_records_and_reports_keep_allocators_apart(tmp_path):
    from fnbench.compare import compare_from_results
    from fnbench.merge import load_frame
    from fnbench.report.build import build_report

    specs = [TargetSpec.make(op, (32, 28, 28), 1, 2) for op in ("pconv", "dwconv")]
    s = run_suite(
        specs, RunOptions(device="cpu", budget_s=0.6, passes=1, allocators=("tuned", "system")), out_dir=tmp_path
    )
    recs = read_records(s.path)
    assert [(r["target"]["name"], r["allocator"]) for r in s.records] == [
        ("pconv", "tuned"),
        ("pconv", "system"),
        ("dwconv", "tuned"),
        ("dwconv", "system"),
    ]  # suite order
    assert len({record_key(r) for r in recs}) == 4
    for r in recs:
        assert r["allocator_state"]["name"] == r["allocator"]
        assert len(r["faults"]["minor"]) == len(set(r["rounds"])) == len(r["faults"]["iters"])
        assert r["stats"]["minor_faults_per_iter"] == pytest.approx(
            sum(r["faults"]["minor"]) / sum(r["faults"]["iters"])
        )
    df = load_frame([s.path])
    assert sorted(df.runtime) == ["eager", "eager", "eager alloc=system", "eager alloc=system"]
    rep = build_report([s.path], tmp_path / "report")
    sens = rep.csv["allocator_sensitivity"].read_text().splitlines()
    assert len(sens) == 1 + 4
    assert "Allocator sensitivity" in rep.index.read_text()
    for alloc in ("tuned", "system"):
        c = compare_from_results([s.path], "pconv", "dwconv", allocator=alloc)
        picked = {round(x, 12) for x in c.rows[0].a.samples_s}
        want = next(r for r in recs if r["target"]["name"] == "pconv" and r["allocator"] == alloc)
        assert picked == {round(x, 12) for x in want["samples_s"]}
        assert c.allocator == alloc


def test_legacy_records_read_as_system():
    rec = {
        "target": {"name": "pconv", "shape": [8, 8, 8], "layers": 2, "options": {}, "batch": 1},
        "device": {"kind": "cpu"},
        "runtime": "eager",
        "threads": 1,
        "dtype": "float32",
    }
    from fnbench.results import record_allocator

    assert record_allocator(rec) == "system"
    assert record_key(rec) != record_key(dict(rec, allocator="tuned"))


def test_measure_records_the_allocator_state():
    m = measure(nn.Conv2d(4, 4, 3, padding=1), torch.randn(1, 4, 8, 8), budget_s=0.3)
    assert m.allocator_state["name"] == "tuned" and m.allocator_state["settings"] == allocators.TUNED_SETTINGS
    assert np.isfinite(m.minor_faults_per_iter)
