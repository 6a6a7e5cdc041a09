"""Probe ceilings: the compute roof is the best of the GEMM and conv probes; the theoretical peak from CPU flags."""

import pytest

from fnbench.probe import FMA_UNITS, ProbeSpec, ceilings, probe_specs, theoretical_peak


def _rec(name, median_s, *, flops=0, mem=0):
    return {
        "target": {"name": name},
        "status": "ok",
        "stats": {"median_s": median_s},
        "cost": {"flops": flops, "mem_bytes_counted": mem},
    }


def test_compute_roof_is_the_best_of_gemm_and_conv():
    recs = [
        _rec("probe:gemm_float32", 0.1, flops=5 * 10**9),
        _rec("probe:gemm_float32", 0.1, flops=6 * 10**9),
        _rec("probe:conv_float32", 0.1, flops=8 * 10**9),
        _rec("probe:copy", 0.01, mem=10**8),
        _rec("probe:copy", 0.01, mem=3 * 10**8),
    ]
    best = ceilings(recs)
    assert best["gemm_float32_flop_per_s"] == pytest.approx(60e9)
    assert best["conv_float32_flop_per_s"] == pytest.approx(80e9)
    assert best["compute_float32_flop_per_s"] == pytest.approx(80e9)
    assert best["copy_bytes_per_s"] == pytest.approx(30e9)


def test_cpu_probes_cover_several_sizes_and_a_dense_conv():
    specs = probe_specs("cpu")
    names = [s.name for s in specs]
    assert names.count("probe:gemm_float32") >= 3 and names.count("probe:copy") >= 3 and "probe:conv_float32" in names
    conv = next(s for s in specs if s.name == "probe:conv_float32")
    _, x, cost = conv.build()
    c, h, w = x.shape[1:]
    assert cost["macs"] == h * w * 9 * c * c and cost["flops"] == 2 * cost["macs"]
    assert ProbeSpec("probe:gemm_float32", 64).build()[2]["flops"] == 2 * 64**3


def test_theoretical_peak_from_flags():
    info = "processor : 0\nflags : fpu sse2 avx fma avx2\ncpu MHz : 3000.000\n"
    p = theoretical_peak(2, cpuinfo=info, max_mhz=None)
    # 8 FP32 lanes (AVX2) x FMA units x 2 FLOP x 3.0 GHz x 2 threads
    assert p["gflop_per_s"] == pytest.approx(8 * FMA_UNITS * 2 * 3.0 * 2) and p["lanes"] == 8
    assert "assumed" in p["basis"]
    p512 = theoretical_peak(1, cpuinfo=info.replace("avx2", "avx2 avx512f"), max_mhz=2000.0)
    assert p512["gflop_per_s"] == pytest.approx(16 * FMA_UNITS * 2 * 2.0)
    arm = theoretical_peak(1, cpuinfo="Features : fp asimd evtstrm\n", max_mhz=1500.0)
    assert arm["gflop_per_s"] == pytest.approx(4 * FMA_UNITS * 2 * 1.5)
    assert theoretical_peak(1, cpuinfo="flags : fpu\n", max_mhz=1000.0) is None  # no vector unit known
