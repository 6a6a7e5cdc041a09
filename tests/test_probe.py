"""Probe ceilings: the compute roof is the best of the GEMM and conv probes; the theoretical peak from CPU flags."""

import pytest

from fnbench.peaks import NOMINAL_CLOCK, max_clock_mhz, roof_note
from fnbench.probe import FMA_UNITS, ProbeSpec, ceilings, peak_text, probe_specs, theoretical_peak


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
    p = theoretical_peak(2, cpuinfo=info, max_mhz=3000.0, clock=NOMINAL_CLOCK)
    # 8 FP32 lanes (AVX2) x FMA units x 2 FLOP x 3.0 GHz x 2 threads
    assert p["gflop_per_s"] == pytest.approx(8 * FMA_UNITS * 2 * 3.0 * 2) and p["lanes"] == 8
    assert "assumed" in p["basis"] and "3000 MHz (nominal)" in p["basis"] and p["clock"] == NOMINAL_CLOCK
    p512 = theoretical_peak(1, cpuinfo=info.replace("avx2", "avx2 avx512f"), max_mhz=2000.0)
    assert p512["gflop_per_s"] == pytest.approx(16 * FMA_UNITS * 2 * 2.0)
    arm = theoretical_peak(1, cpuinfo="Features : fp asimd evtstrm\n", max_mhz=1500.0)
    assert arm["gflop_per_s"] == pytest.approx(4 * FMA_UNITS * 2 * 1.5)
    assert theoretical_peak(1, cpuinfo="flags : fpu\n", max_mhz=1000.0) is None  # no vector unit known


def test_the_clock_is_the_highest_the_os_reports_and_says_which():
    info = "processor : 0\ncpu MHz : 2445.000\nprocessor : 1\ncpu MHz : 2400.000\n"
    lscpu = "Model name:   AMD EPYC\nCPU max MHz:                 3700.0000\nCPU min MHz: 1500.0000\n"
    assert max_clock_mhz(info, cpufreq="3500000\n", lscpu=lscpu) == (3500.0, "cpufreq cpuinfo_max_freq")
    assert max_clock_mhz(info, cpufreq=None, lscpu=lscpu) == (3700.0, "lscpu CPU max MHz")
    assert max_clock_mhz(info, cpufreq=None, lscpu="Model name: AMD EPYC\n") == (2445.0, NOMINAL_CLOCK)
    assert max_clock_mhz("", cpufreq=None, lscpu=None) == (None, NOMINAL_CLOCK)


def test_a_theoretical_roof_is_never_below_a_measured_one():
    """The issue's case: 8 lanes × 2 FMA × 2 FLOP × 2445 MHz = 78.2 GFLOP/s against a measured 80.33."""
    info = "flags : fpu sse2 avx fma avx2\ncpu MHz : 2445.000\n"
    p = theoretical_peak(1, cpuinfo=info, max_mhz=2445.0, clock=NOMINAL_CLOCK)
    assert p["gflop_per_s"] == pytest.approx(8 * 2 * 2 * 2.445)
    env = {
        "theoretical_peak_gflop_per_s": p["gflop_per_s"],
        "theoretical_peak_basis": p["basis"],
        "theoretical_peak_mhz": p["mhz"],
        "theoretical_peak_clock": p["clock"],
    }
    text = peak_text(env, 80.33e9)
    assert text.startswith("measured exceeds nominal peak: the core ran above its nominal clock")
    assert "78." not in text and "80.33 GFLOP/s" in text
    assert "at least 2511 MHz" in text  # 80.33 / (8 × 2 × 2) GHz
    # above the measured roof it is shown, with its clock
    assert peak_text(env, 70e9) == f"theoretical FP32 peak: {p['gflop_per_s']:.1f} GFLOP/s ({p['basis']})"
    # below it at a max clock: the assumption is wrong, not the clock
    assert "assumed vector lanes" in roof_note(50.0, "cpufreq cpuinfo_max_freq", 60.0)
    assert roof_note(50.0, NOMINAL_CLOCK, float("nan")) is None and peak_text({}, 1e9) is None
    # a record from before the clock was stored is read as nominal
    old = {k: v for k, v in env.items() if k != "theoretical_peak_clock"}
    assert peak_text(old, 80.33e9).startswith("measured exceeds nominal peak")
