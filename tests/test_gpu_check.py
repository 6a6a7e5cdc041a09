"""scripts/gpu-check end to end, forced onto the CPU, in a Python where fvcore cannot be imported."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from fnbench.results import read_records

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_on_the_cpu_without_fvcore_survives_a_failed_run(tmp_path):
    # A wrapper standing in for a run that stored its records but had one failed record: exit 1.
    wrapper = tmp_path / "fnbench-one-failure"
    wrapper.write_text(
        f'#!/bin/sh\n"{sys.executable}" -m fnbench "$@"\nrc=$?\n'
        'case " $* " in *" run "*"--target"*) exit 1;; esac\nexit $rc\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "check"
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        FNBENCH=str(wrapper),
        PYTHONWARNINGS="ignore",
        PYTHONPATH=str(ROOT / "tests" / "no_fvcore"),
        GPU_CHECK_DEVICE="cpu",
        GPU_CHECK_SUITE="quick",
        GPU_CHECK_TARGETS="pconv",
        GPU_CHECK_BATCH="1",
        GPU_CHECK_PROBE_BUDGET="0.3",
        GPU_CHECK_RUN_BUDGET="0.4",
        GPU_CHECK_NET_BUDGET="0.4",
    )
    res = subprocess.run(
        ["bash", "scripts/gpu-check", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 1, res.stderr  # a step failed: said at the end, after the report
    assert "fvcore is not installed" in res.stderr
    assert "== run networks exited 1" in res.stderr
    assert (out / "report" / "index.html").exists()  # the report ran after the failed step
    recs = [r for f in sorted(out.glob("*.jsonl")) for r in read_records(f)]
    runs = [r for r in recs if r["target"]["kind"] != "probe"]
    assert sorted(r["target"]["name"] for r in runs) == ["conv", "dwconv", "gconv", "pconv", "pconv"]
    assert all(r["device"]["kind"] == "cpu" and r["batch"] == 1 for r in recs)
    assert all(r["cost"]["macs_counted"] == r["cost"]["macs"] for r in runs)  # counted without fvcore
    lines = res.stdout.rstrip().splitlines()
    assert lines[-1].endswith("FAILED steps: run networks (exit 1)")  # the summary is the last thing printed
    table = lines[lines.index(next(ln for ln in lines if ln.startswith("gpu-check: "))) :]
    for r in runs:  # one line per record, its figures as stored
        med = r["stats"]["median_s"]
        want = f"{med * 1e3:>9.3f} {1 / med:>10.1f} {r['cost']['macs'] / med / 1e9:.1f}"
        assert any(
            ln.startswith(r["target"]["name"]) and " ".join(want.split()) in " ".join(ln.split()) for ln in table
        ), (want, table)
    assert any(ln.startswith("ceilings: gemm_float32 ") and "copy " in ln for ln in table)
