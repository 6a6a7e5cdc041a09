"""`fnbench run`, `compare` and `probe` as a user runs them: real subprocesses, real files."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from fnbench.results import read_records


def _run(cmd, env, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kw)


def test_sigkill_mid_suite_then_resume_measures_only_the_rest(fnbench_cmd, cli_env, tmp_path):
    out = tmp_path / "results"
    # 3 passes of 0.5 s per target: the suite's first pass is four pass records
    args = ["run", "--device", "cpu", "--suite", "quick", "--budget", "1.5", "--passes", "3", "--out", str(out)]
    proc = subprocess.Popen(fnbench_cmd + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env)
    deadline = time.time() + 300
    path = None
    while time.time() < deadline:
        files = list(out.glob("*.jsonl")) if out.exists() else []
        if files and files[0].read_text().count("\n") >= 3:
            path = files[0]
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert path is not None, "no record was written before the deadline"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = path.read_text()
    first = read_records(path, partial=True)
    assert 3 <= len(first) < 12, "the kill came after the suite finished; nothing left to resume"
    assert read_records(path) == []  # no target had all its passes yet
    run_id = path.stem
    done = _run(fnbench_cmd + args + ["--resume", run_id], cli_env)
    assert done.returncode == 0, done.stderr
    assert path.read_text().startswith(before)  # nothing stored was lost or rewritten
    records = read_records(path)
    names = [r["target"]["name"] for r in records]
    assert sorted(names) == ["conv", "dwconv", "gconv", "pconv"]  # each target exactly once
    everything = read_records(path, partial=True)
    stored = {(r["target"]["name"], r["pass"]) for r in first}
    added = [(r["target"]["name"], r["pass"]) for r in everything[len(first) :] if r["status"] == "partial"]
    assert not stored & set(added)  # a pass stored before the kill is not measured again
    for r in records:
        mine = sorted(
            (p for p in everything if p["status"] == "partial" and p["target"]["name"] == r["target"]["name"]),
            key=lambda p: p["pass"],
        )
        assert r["samples_s"] == [x for p in mine for x in p["samples_s"]]  # stored passes are in the result
    assert f"run id: {run_id}" in done.stdout


def test_run_writes_records_with_the_schema(fnbench_cmd, cli_env, tmp_path):
    res = _run(
        fnbench_cmd
        + [
            "run",
            "--device",
            "cpu",
            "--target",
            "pconv",
            "--target",
            "dwconv",
            "--shape",
            "32x14x14",
            "--layers",
            "2",
            "--runtime",
            "eager",
            "--runtime",
            "onnxruntime",
            "--budget",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ],
        cli_env,
    )
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    recs = read_records(doc["path"])
    assert [(r["target"]["name"], r["runtime"]) for r in recs] == [
        ("pconv", "eager"),
        ("pconv", "onnxruntime"),
        ("dwconv", "eager"),
        ("dwconv", "onnxruntime"),
    ]
    for r in recs:
        assert r["schema"] == 1 and r["status"] == "ok" and r["threads"] == 1
        assert r["cost"]["macs"] == (
            2 * 14 * 14 * 9 * 8 * 8 if r["target"]["name"] == "pconv" else 2 * 14 * 14 * 9 * 32
        )
        assert len(r["samples_s"]) == len(r["rounds"]) == r["stats"]["n"] > 0
        assert r["stats"]["ci95_low_s"] <= r["stats"]["median_s"] <= r["stats"]["ci95_high_s"]
        assert r["env"]["torch"] and r["env"]["cpu_model"]
    ort = [r for r in recs if r["runtime"] == "onnxruntime"]
    assert all(r["runtime_info"]["intra_op_threads"] == 1 for r in ort)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--device", "cuda", "--suite", "quick"], "devices here"),
        (["run", "--device", "arm", "--suite", "quick"], "fnbench report"),
        (["run", "--device", "cpu", "--suite", "nope"], "unknown suite"),
        (["run", "--device", "cpu", "--runtime", "tensorrt", "--suite", "quick"], "unknown runtime"),
        (["run", "--device", "cpu", "--resume", "20000101T000000Z-0000", "--suite", "quick"], "no run"),
        (["run", "--device", "cpu", "--suite", "quick", "--dtype", "float16"], "cuda only"),
        (["run", "--device", "cpu", "--suite", "quick", "--passes", "0"], "passes 0"),
        (["compare", "pconv", "nosuch"], "unknown target"),
        (["compare", "pconv", "dwconv", "--from", "/nonexistent/dir"], "no result file or directory"),
    ],
)
def test_run_and_compare_bad_input(fnbench_cmd, cli_env, tmp_path, args, expected):
    if args[:3] == ["run", "--device", "arm"] and os.uname().machine == "aarch64":
        pytest.skip("arm is this machine")
    if args[:3] == ["run", "--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("cuda is here")
    res = _run(fnbench_cmd + args + (["--out", str(tmp_path)] if args[0] == "run" else []), cli_env)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert expected in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_compare_json_ratios_are_consistent(fnbench_cmd, cli_env):
    res = _run(
        fnbench_cmd
        + [
            "compare",
            "conv",
            "pconv",
            "--device",
            "cpu",
            "--shape",
            "64x14x14",
            "--layers",
            "2",
            "--budget",
            "1.5",
            "--json",
        ],
        cli_env,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    row = doc["rows"][0]
    assert row["macs_ratio"] == pytest.approx(1 / 16)  # pconv (n_div 4) has 1/16 of conv's MACs
    assert row["flops_ratio"] == pytest.approx(row["macs_ratio"] / row["latency_ratio"])
    lo, hi = row["latency_ratio_ci95"]
    assert lo <= row["latency_ratio"] <= hi
    assert doc["summary"]["claim_verdict"] in ("supported", "contradicted", "inconclusive")
    assert doc["summary"]["verdict"].startswith("pconv has 16.0x fewer MACs than conv")


def test_probe_and_compare_from_results(fnbench_cmd, cli_env, tmp_path):
    # --device cpu throughout: `auto` is the GPU on a CUDA machine, with other probes and GEMM sizes
    res = _run(fnbench_cmd + ["probe", "--device", "cpu", "--budget", "0.5", "--out", str(tmp_path), "--json"], cli_env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ceilings"]["gemm_float32_flop_per_s"] > 0 and doc["ceilings"]["copy_bytes_per_s"] > 0
    gemm = [r for r in doc["records"] if r["target"]["name"] == "probe:gemm_float32"]
    # sizes the budget cannot afford 5 rounds of are skipped, never measured into a zero-width interval
    assert {2 * 256**3} <= {r["cost"]["flops"] for r in gemm} <= {2 * 256**3, 2 * 512**3, 2 * 1024**3}
    conv = [r for r in doc["records"] if r["target"]["name"] == "probe:conv_float32"]
    assert conv and doc["ceilings"]["compute_float32_flop_per_s"] == max(
        doc["ceilings"]["gemm_float32_flop_per_s"], doc["ceilings"]["conv_float32_flop_per_s"]
    )
    assert all(r["stats"]["ci95_high_s"] > r["stats"]["ci95_low_s"] for r in doc["records"])  # no zero-width CI
    run = _run(
        fnbench_cmd
        + [
            "run",
            "--device",
            "cpu",
            "--target",
            "pconv",
            "--target",
            "dwconv",
            "--shape",
            "32x14x14",
            "--layers",
            "2",
            "--budget",
            "1",
            "--out",
            str(tmp_path),
        ],
        cli_env,
    )
    assert run.returncode in (0, 1), run.stderr
    cmp = _run(
        fnbench_cmd + ["compare", "pconv", "dwconv", "--device", "cpu", "--from", str(tmp_path), "--json"], cli_env
    )
    assert cmp.returncode == 0, cmp.stderr
    row = json.loads(cmp.stdout)["rows"][0]
    assert row["macs_ratio"] == pytest.approx((9 * 32) / (9 * 8 * 8))  # dwconv 9·c vs pconv 9·c_p² per pixel
