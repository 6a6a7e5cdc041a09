"""The measurement type: statistics derived from raw samples, merging, and the record round trip.

No torch here: reading and reporting use this module alone (tests/test_import_layers.py holds that).
"""

import numpy as np
import pytest

from fnbench.measurement import MIN_SAMPLES_P99, Measurement, RoundCounts


def _m(n_rounds, per_round, *, level=1e-3, step=1e-5, **kw):
    s = [level + step * i for i in range(n_rounds * per_round)]
    return Measurement(s, [i // per_round for i in range(len(s))], 1, **kw)


def test_tails_p99_only_with_enough_samples():
    few = _m(9, 11)  # 99 samples
    assert few.p99_s is None and few.to_stats()["p99_s"] is None
    enough = _m(10, 10)
    assert enough.n == MIN_SAMPLES_P99
    assert enough.p99_s == pytest.approx(np.percentile(enough.samples_s, 99))
    assert enough.p50_s == pytest.approx(np.median(enough.samples_s))
    assert enough.p90_s == pytest.approx(np.percentile(enough.samples_s, 90))
    st = enough.to_stats()
    assert st["p50_s"] <= st["p90_s"] <= st["p99_s"] <= max(enough.samples_s)


def test_timed_seconds_weigh_each_round_by_its_block_length():
    # round 0: 2 samples of blocks of 4 iterations; round 1: 3 samples of single iterations
    m = Measurement([1.0, 3.0, 2.0, 2.0, 2.0], [0, 0, 1, 1, 1], 1, iters_per_sample=4, wall_s=40.0)
    m.counts = RoundCounts(minor=[0, 0], major=[0, 0], iters=[8, 3], ref_s=[])
    assert m.timed_s == pytest.approx((1.0 + 3.0) * 4 + (2.0 + 2.0 + 2.0) * 1)
    assert m.timed_fraction == pytest.approx(22.0 / 40.0)
    plain = Measurement([1.0, 3.0], [0, 0], 1, iters_per_sample=2)  # no counts: the block length of all
    assert plain.timed_s == pytest.approx(8.0) and plain.timed_fraction is None


def test_merge_keeps_processes_rounds_passes_and_cycles_apart():
    a = _m(2, 3, cycle_ids=[0, 0, 0, 1, 1, 1], pass_ids=[0] * 6, wall_s=1.0, peak_memory_bytes=100)
    b = _m(2, 3, level=2e-3, cycle_ids=[0, 0, 0, 1, 1, 1], pass_ids=[1] * 6, wall_s=2.0, peak_memory_bytes=300)
    for part in (a, b):
        part.counts = RoundCounts([1, 2], [0, 0], [3, 3], [1e-4, 1e-4])
    m = Measurement.merge([a, b], precision=0.05, min_rounds=2, budget_s=9.0)
    assert m.worker_ids == [0] * 6 + [1] * 6 and m.round_ids == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert m.pass_ids == [0] * 6 + [1] * 6 and m.cycle_ids == a.cycle_ids + b.cycle_ids
    assert m.counts.minor == [1, 2, 1, 2] and m.counts.iters == [3, 3, 3, 3]
    assert m.wall_s == 3.0 and m.budget_s == 9.0 and m.precision == 0.05 and m.peak_memory_bytes == 300
    assert m.workers == 2 and m.budget_exhausted is (not m.stable)
    same = Measurement.merge([a, b], processes=[0, 0])  # one process, no worker ids: none after
    assert same.worker_ids is None and same.rounds == 4
    with pytest.raises(ValueError, match="different batches"):
        Measurement.merge([a, Measurement([1e-3], [0], 2)])
    a.counts = RoundCounts()  # a part without counts: the merge has none
    assert Measurement.merge([a, b]).counts.iters == []


def test_the_record_round_trip_keeps_what_merging_needs():
    m = _m(3, 4, wall_s=1.5, cycle_ids=[c for c in range(3) for _ in range(4)], pass_ids=[2] * 12)
    m.worker_ids, m.threads_used, m.bn_folded, m.tf32 = [0] * 12, 1, 3, False
    m.counts = RoundCounts([5, 0, 0], [0, 0, 0], [4, 4, 4], [1e-4, 2e-4, 1e-4], [0.0, 1e-3, 0.0])
    m.gpu_samples_s, m.oom_batches, m.peak_memory_bytes, m.peak_memory_method = [5e-4] * 3, [64], 4096, "x"
    rec = m.to_record(raw=True)
    assert rec["rounds"] == m.round_ids and rec["cycles"] == m.cycle_ids and rec["passes"] == m.pass_ids
    assert rec["faults"]["minor"] == [5, 0, 0] and rec["faults"]["minor_per_iter"] == pytest.approx(5 / 12)
    assert rec["stats"]["p50_s"] == pytest.approx(m.p50_s) and rec["stats"]["peak_memory_bytes"] == 4096
    back = Measurement.from_record(rec)
    for f in ("samples_s", "round_ids", "worker_ids", "pass_ids", "cycle_ids", "counts", "warmup_iters"):
        assert getattr(back, f) == getattr(m, f), f
    for f in ("iters_per_sample", "bn_folded", "threads_used", "tf32", "gpu_samples_s", "oom_batches", "wall_s"):
        assert getattr(back, f) == getattr(m, f), f
    assert back.peak_memory_bytes == 4096 and back.median_s == m.median_s and back.ci95 == m.ci95
    assert back.wait_fraction == pytest.approx(1e-3 / m.timed_s)
    final = m.to_record()  # a final record keeps samples and statistics, not what only merging needs
    assert "warmup_iters" not in final and "gpu_samples_s" not in final and final["stats"] == rec["stats"]
    old = {"samples_s": [1e-3, 2e-3], "rounds": [0, 1], "batch": 4, "faults": {"minor": [1], "iters": [1]}}
    legacy = Measurement.from_record(old)  # fault counts that do not give one per round are left out
    assert legacy.batch == 4 and legacy.counts.iters == [] and legacy.cycle_ids is None
