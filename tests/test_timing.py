"""The timing engine against a fake clock with seeded noise; BN folding against the unfolded module."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fnbench import stats
from fnbench.timing import Measurement, fold_bn, measure


class Sim:
    """A fake device: each fresh allocation (rebuild) draws a level, each iteration lognormal noise.

    Time only advances when the engine "runs" iterations through the injected timer, so the
    budget and the samples are both on the fake clock and the test is deterministic.
    """

    def __init__(self, seed=0, base=1e-3, round_sd=0.0, iter_sd=0.0, cold_factor=1.0):
        self.rng = np.random.default_rng(seed)
        self.t = 0.0
        self.base, self.round_sd, self.iter_sd, self.cold = base, round_sd, iter_sd, cold_factor
        self.level = base
        self.calls_in_round = 0
        self.rounds = 0

    def clock(self):
        return self.t

    def rebuild(self):
        self.rounds += 1
        self.level = self.base * math.exp(self.rng.normal(0.0, self.round_sd))
        self.calls_in_round = 0
        return nn.Identity()

    def timer(self, step, iters):
        dt = 0.0
        for _ in range(iters):
            f = self.cold if self.calls_in_round == 0 else 1.0
            dt += f * self.level * math.exp(self.rng.normal(0.0, self.iter_sd))
            self.calls_in_round += 1
        self.t += dt
        return dt


def run(sim, **kw):
    kw.setdefault("budget_s", 2.0)
    return measure(nn.Identity(), torch.zeros(1, 4), clock=sim.clock, timer=sim.timer, rebuild=sim.rebuild, **kw)


def test_noise_free_target_stops_early_and_is_stable():
    sim = Sim(base=1e-3)
    m = run(sim, budget_s=10.0, precision=0.02)
    assert m.stable and not m.budget_exhausted
    assert m.rounds == 6  # the minimum for a 95 % order-statistic interval
    assert m.median_s == pytest.approx(1e-3)
    assert m.ci95_low_s == pytest.approx(1e-3) and m.ci95_high_s == pytest.approx(1e-3)
    assert m.wall_s < 10.0 * 0.25  # stopped long before the budget
    assert sim.rounds == m.rounds


def test_noisy_target_with_tiny_budget_is_unstable():
    sim = Sim(base=1e-3, round_sd=0.3, iter_sd=0.1)
    m = run(sim, budget_s=0.02, precision=0.01)
    assert not m.stable
    assert m.budget_exhausted
    assert m.wall_s <= 0.02 * 1.5


def test_cold_first_iteration_is_discarded_by_warm_up():
    sim = Sim(base=1e-3, cold_factor=50.0)
    m = run(sim, budget_s=5.0)
    assert max(m.samples_s) == pytest.approx(1e-3)
    assert all(w >= 1 for w in m.warmup_iters)


def test_samples_keep_round_ids_and_stats_are_derived():
    sim = Sim(seed=3, base=2e-3, round_sd=0.05, iter_sd=0.02)
    m = run(sim, budget_s=3.0, precision=0.0)  # never settles: runs to the budget
    assert len(m.samples_s) == len(m.round_ids) == m.n
    assert m.rounds == len(set(m.round_ids)) > 6
    meds = stats.round_medians(m.samples_s, m.round_ids)
    assert m.median_s == pytest.approx(float(np.median(meds)))
    ci = stats.median_ci(meds)
    assert (m.ci95_low_s, m.ci95_high_s) == (ci.low, ci.high)
    assert m.ci95_low_s <= m.median_s <= m.ci95_high_s
    d = m.to_stats()
    assert set(d) >= {"median_s", "iqr_s", "p90_s", "ci95_low_s", "ci95_high_s", "n", "stable"}
    assert d["n"] == m.n and d["stable"] is False
    # round trip from the raw data alone
    again = Measurement(samples_s=m.samples_s, round_ids=m.round_ids, batch=1, precision=m.precision)
    assert again.median_s == m.median_s and again.ci95_high_s == m.ci95_high_s


def test_ci_covers_true_median_near_95_percent_over_seeds():
    """Round effects dominate: the interval over rounds must still cover the true median ~95 %."""
    hits, naive_hits, trials = 0, 0, 150
    for seed in range(trials):
        sim = Sim(seed=seed, base=1e-3, round_sd=0.1, iter_sd=0.02)
        m = run(sim, budget_s=0.4, round_s=0.02, precision=0.0, min_rounds=1)
        hits += m.ci95_low_s <= 1e-3 <= m.ci95_high_s
        lo, hi, _ = stats.median_ci(m.samples_s)  # treating iterations as independent
        naive_hits += lo <= 1e-3 <= hi
    cov = hits / trials
    assert 0.90 <= cov <= 1.0
    assert naive_hits / trials < 0.6  # why rounds: the per-iteration interval is far too narrow


def test_precision_reached_means_stable():
    sim = Sim(seed=1, base=1e-3, round_sd=0.005, iter_sd=0.01)
    m = run(sim, budget_s=20.0, precision=0.02)
    assert m.stable and not m.budget_exhausted
    assert m.rel_ci_halfwidth <= 0.02


def test_threads_are_set_and_restored():
    before = torch.get_num_threads()
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x

    measure(Probe(), torch.zeros(1), budget_s=0.05, threads=1)
    assert set(seen) == {1}
    assert torch.get_num_threads() == before


def test_real_module_smoke_and_callers_module_untouched():
    conv = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    m = measure(conv, torch.randn(2, 4, 8, 8), budget_s=0.3)
    assert m.batch == 2 and m.n >= 1 and m.median_s > 0
    assert m.bn_folded == 1
    assert isinstance(conv[1], nn.BatchNorm2d)  # deep copies were measured, not the caller's module


def _random_bn(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)


class ConvBnAct(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def test_fold_bn_matches_unfolded_output():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        ConvBnAct(8),
        nn.Sequential(nn.Conv2d(8, 8, 1, groups=2), nn.BatchNorm2d(8)),
    ).eval()
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            _random_bn(mod)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
    n = fold_bn(model)
    assert n == 3
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in model.modules())
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_fold_bn_keeps_timm_batchnormact_activation():
    timm_layers = pytest.importorskip("timm.layers")
    torch.manual_seed(0)
    block = timm_layers.ConvNormAct(4, 6, kernel_size=3, act_layer=nn.ReLU).eval()
    for mod in block.modules():
        if isinstance(mod, nn.BatchNorm2d):
            _random_bn(mod)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        ref = block(x)
    assert fold_bn(block) == 1
    with torch.no_grad():
        assert torch.allclose(block(x), ref, atol=1e-5, rtol=1e-5)
    assert (ref < 0).sum() == 0  # the ReLU survived folding


def test_fold_bn_skips_mismatched_pairs_and_needs_eval():
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5)).eval()  # not a real pair
    assert fold_bn(m) == 0
    with pytest.raises(ValueError, match="eval"):
        fold_bn(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))


def test_measure_is_a_top_level_library_call():
    from torch import nn

    import fnbench

    m = fnbench.measure(nn.Conv2d(4, 4, 3, padding=1), torch.randn(1, 4, 8, 8), budget_s=0.3, min_rounds=2)
    assert isinstance(m, fnbench.Measurement) and fnbench.measure is measure
    assert m.n == len(m.samples_s) > 0 and m.rounds >= 1
    assert m.ci95_low_s <= m.median_s <= m.ci95_high_s
    q25, q75, q90 = np.percentile(m.samples_s, [25, 75, 90])
    assert m.iqr_s == pytest.approx(q75 - q25) and m.p90_s == pytest.approx(q90)
    with pytest.raises(AttributeError, match="no attribute"):
        _ = fnbench.no_such_thing


# -- CUDA control flow with fakes: start-up cost, out-of-memory backoff, TF32, GPU time ---------------


class SlowStart(Sim):
    """A fresh worker on CUDA: the very first iteration pays context creation and autotuning."""

    def __init__(self, first_s, **kw):
        super().__init__(**kw)
        self.first_s, self.calls = first_s, 0

    def timer(self, step, iters):
        self.calls += 1
        if self.calls == 1:
            self.t += self.first_s
            return self.first_s
        return super().timer(step, iters)


def test_start_up_cost_is_left_out_of_the_round_length_estimate():
    # budget 2 s, rounds of 0.08 s; the first iteration costs 1.5 s. Predicting round 1 from the whole
    # of round 0 (≈1.6 s) would stop the chunk after one round; its sampling part predicts 0.08 s.
    sim = SlowStart(1.5, base=1e-3, iter_sd=0.01, round_sd=0.05)
    m = run(sim, budget_s=2.0, precision=1e-9, min_rounds=2, max_rounds=500)
    assert m.rounds >= 4
    assert m.wall_s <= 2.0 + 0.1  # and the budget still holds


class Oom(nn.Module):
    """Runs out of memory above ``limit`` samples, raising ``exc``."""

    def __init__(self, limit, exc):
        super().__init__()
        self.limit, self.exc = limit, exc

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise self.exc
        return x * 2


def _oom_run(limit, exc, x, **kw):
    import gc
    import weakref

    alive = weakref.WeakSet()
    seen_alive = []

    def rebuild():
        gc.collect()
        seen_alive.append(len(alive))  # modules of a failed attempt still reachable when the next starts
        m = Oom(limit, exc)
        alive.add(m)
        return m

    sim = Sim(base=1e-3)

    def timer(step, iters):
        step()  # the fake clock does not run the model; this does, once per block
        return sim.timer(step, iters)

    m = measure(Oom(limit, exc), x, clock=sim.clock, timer=timer, rebuild=rebuild, budget_s=0.5, **kw)
    return m, seen_alive


@pytest.mark.parametrize(
    "exc",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    ],
)
def test_out_of_memory_halves_the_batch_after_freeing_the_failed_attempt(exc):
    m, seen_alive = _oom_run(8, exc, torch.zeros(32, 4))
    assert m.batch == 8 and m.oom_batches == [32, 16]
    assert m.to_stats()["oom_batches"] == [32, 16]
    # each retry starts with the failed attempt's module released (not held by a traceback)
    assert seen_alive[0] == 0 and seen_alive[1] == 0 and seen_alive[2] == 0


def test_other_errors_and_unbatched_inputs_are_not_halved():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _oom_run(8, RuntimeError("shape mismatch"), torch.zeros(32, 4))
    with pytest.raises(ValueError):  # "out of memory" in the text of another type is not an OOM
        _oom_run(8, ValueError("out of memory"), torch.zeros(32, 4))
    with pytest.raises(torch.cuda.OutOfMemoryError):  # a 1-D probe input has no batch to halve
        _oom_run(8, torch.cuda.OutOfMemoryError("oom"), torch.zeros(64))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        _oom_run(8, torch.cuda.OutOfMemoryError("oom"), torch.zeros(32, 4), halve_on_oom=False)


def test_tf32_is_set_for_the_measurement_recorded_and_restored(monkeypatch):
    import fnbench.timing as timing

    seen = []

    def fake_rounds(sampler, budget_s, precision, min_rounds, max_rounds):
        seen.append(
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
                sampler.gpu_timer is not None,
            )
        )
        return Measurement([1e-3] * 6, list(range(6)), sampler.batch)

    monkeypatch.setattr(timing.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(timing, "_rounds_until_settled", fake_rounds)
    monkeypatch.setattr(timing, "_cuda_gpu_timer", lambda dev: lambda step, iters, hold: 0.0)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default: convolutions in TF32
    try:
        m = measure(nn.Identity(), torch.zeros(2, 4), device="cuda")
        assert seen[-1] == (False, False, True, True) and m.tf32 is False
        m = measure(nn.Identity(), torch.zeros(2, 4), device="cuda", tf32=True)
        assert seen[-1][:2] == (True, True) and m.tf32 is True
        assert torch.backends.cudnn.allow_tf32 is True  # the caller's setting is back
        assert measure(nn.Identity(), torch.zeros(2, 4), device="cpu").tf32 is None
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_gpu_time_beside_wall_time_flags_launch_bound_rows():
    sim = Sim(base=1e-3)
    gpu_calls = []

    def gpu_timer(step, iters, hold_s):
        gpu_calls.append((iters, hold_s))
        return 0.25e-3 * iters  # the GPU is busy a quarter of the wall time: launch-bound

    m = run(sim, budget_s=1.0, gpu_timer=gpu_timer)
    assert len(m.gpu_samples_s) == 3 * m.rounds
    assert m.gpu_median_s == pytest.approx(0.25e-3) and m.launch_bound is True
    assert all(h > 1e-3 for _, h in gpu_calls)  # the stream is held longer than one iteration's launch
    st = m.to_stats()
    assert st["launch_bound"] is True and st["gpu_median_s"] == pytest.approx(0.25e-3)
    m2 = run(Sim(base=1e-3), budget_s=1.0, gpu_timer=lambda step, iters, hold: 0.95e-3)
    assert m2.launch_bound is False
    assert run(Sim(base=1e-3), budget_s=1.0).launch_bound is None  # no GPU time on a CPU


class Allocates(nn.Module):
    """A forward that holds a 4 MB and a 2 MB scratch at once, frees both, and returns a copy of its input."""

    def forward(self, x):
        a = torch.empty(1_000_000)
        a.fill_(1.0)
        b = torch.empty(500_000)
        b.fill_(2.0)
        del a, b
        return x * 2


def test_peak_memory_of_a_forward_is_the_tensor_bytes_it_holds_at_once():
    from fnbench.timing import peak_memory_bytes

    x = torch.zeros(1000)
    with torch.inference_mode():
        assert peak_memory_bytes(lambda: Allocates()(x), torch.device("cpu")) == 4_000_000 + 2_000_000
        # an output larger than the scratch is the peak, views and in-place results counted once
        big = torch.zeros(2_000_000)
        assert peak_memory_bytes(lambda: (big * 2).add_(1)[:10], torch.device("cpu")) == 8_000_000
        assert peak_memory_bytes(lambda: x.view(10, 100), torch.device("cpu")) == 0  # a view allocates nothing
    m = measure(Allocates(), x, budget_s=0.3, fold=False)
    assert m.peak_memory_bytes == 6_000_000 and "tensor storage" in m.peak_memory_method
    assert m.to_stats()["peak_memory_bytes"] == 6_000_000
    assert measure(Allocates(), x, budget_s=0.3, fold=False, peak_memory=False).peak_memory_bytes is None


def test_time_spent_waiting_for_a_cpu_is_counted_per_round():
    """A busy process on the same core takes about half of it: the timed blocks wait for it, and say so."""
    import os
    import subprocess
    import sys

    from fnbench.timing import runq_wait_s

    if runq_wait_s() is None or not hasattr(os, "sched_setaffinity"):
        pytest.skip("the kernel reports no run-queue delay here")
    core = sorted(os.sched_getaffinity(0))[0]
    before = os.sched_getaffinity(0)
    busy = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        os.sched_setaffinity(0, {core})
        m = measure(nn.Conv2d(16, 16, 3, padding=1), torch.randn(1, 16, 32, 32), budget_s=1.0, round_s=0.1)
    finally:
        busy.kill()
        busy.wait()
        os.sched_setaffinity(0, before)
    assert len(m.counts.wait_s) == m.rounds
    assert m.wait_fraction > 0.2 and m.to_stats()["wait_fraction"] == m.wait_fraction
