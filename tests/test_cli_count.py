"""The real `fnbench` command, run as a user would, in a subprocess."""

import json
import subprocess

import pytest
from conftest import has_fvcore

from fnbench.counting import FVCORE_MISSING

BAD_INPUTS = [
    (["count", "pconvv"], "unknown target 'pconvv' (did you mean: pconv"),
    (["count", "pconv", "--shape", "96x56"], "malformed shape"),
    (["count", "pconv", "--shape", "96x56xfoo"], "malformed shape"),
    (["count", "conv", "--shape", "0x56x56"], "zero size"),
    (["count", "conv", "--shape", "-96x56x56"], "negative size"),
    (["count", "gconv", "--groups", "5"], "groups=5 does not divide 96 channels"),
    (["count", "pconv", "--n-div", "200"], "leaves no channel to convolve"),
    (["count", "conv", "--batch", "0"], "batch 0 is not positive"),
    (["count", "conv", "--batch", "-3"], "batch -3 is not positive"),
    (["count", "conv", "--layers", "0"], "layers 0 is not positive"),
    (["count", "conv", "--batch", "abc"], "not a valid integer"),
    (["count", "conv", "--groups", "4"], "conv does not take --groups"),
    (["count", "pconv", "--stride", "2"], "needs stride 1"),
    (["list", "ops", "zzz*"], "no ops match"),
    (["nosuchcommand"], "No such command"),
]


@pytest.mark.parametrize("args, expected", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(fnbench_cmd, cli_env, args, expected):
    proc = subprocess.run(fnbench_cmd + args, capture_output=True, text=True, env=cli_env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("fnbench: error: ")
    assert expected in lines[0]
    assert proc.stdout == ""


def test_count_json_is_one_document_with_the_contract_keys(fnbench_cmd, cli_env):
    proc = subprocess.run(
        fnbench_cmd + ["count", "pconv", "--shape", "64x20x30", "--layers", "3", "--json"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for key in (
        "target",
        "shape",
        "batch",
        "params",
        "macs",
        "flops",
        "mem_bytes_analytic",
        "mem_bytes_counted",
        "uncounted_ops",
    ):
        assert key in doc
    c, h, w, c_p, k, layers = 64, 20, 30, 16, 3, 3
    assert doc["target"] == "pconv" and doc["shape"] == [c, h, w] and doc["batch"] == 1
    assert doc["macs"] == layers * h * w * k * k * c_p * c_p
    assert doc["flops"] == 2 * doc["macs"]
    assert doc["params"] == layers * k * k * c_p * c_p
    assert doc["mem_bytes_analytic"] == layers * 4 * (h * w * 2 * c_p + k * k * c_p * c_p)
    # split_cat: + the concatenation's read and write of all c channels per layer
    assert doc["mem_bytes_counted"] == doc["mem_bytes_analytic"] + layers * 4 * h * w * 2 * c
    assert doc["macs_flopcounter"] == doc["macs"]
    if has_fvcore():
        assert doc["macs_fvcore_mac_ops"] == doc["macs"]
    else:  # optional: counting works without it and says the cross-check was skipped
        assert doc["macs_fvcore_mac_ops"] is None and doc["fvcore_error"] == FVCORE_MISSING
    assert doc["uncounted_ops"] == {}


def test_count_table_and_breakdown(fnbench_cmd, cli_env):
    proc = subprocess.run(
        fnbench_cmd + ["count", "tconv", "--shape", "32x8x8", "--by", "operator"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "FLOPs (MACs)" in out and "mem_bytes_counted" in out and "by operator" in out
    assert "aten.convolution" in out
    # tconv's add of the two branches is arithmetic without a FLOP formula: reported, not hidden
    assert "executed but not counted" in out and "aten.add" in out


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("devices", "cpu"),
        ("runtimes", "onnxruntime"),
        ("suites", "table1-composite"),
        ("networks", "fasternet_t0"),
    ],
)
def test_list_every_kind(fnbench_cmd, cli_env, kind, expected):
    pattern = ["fasternet*"] if kind == "networks" else []
    proc = subprocess.run(
        fnbench_cmd + ["list", kind, *pattern], capture_output=True, text=True, env=cli_env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    if kind == "networks":
        assert names == ["fasternet_l", "fasternet_m", "fasternet_s", "fasternet_t0", "fasternet_t1", "fasternet_t2"]
    elif kind == "devices":
        import platform

        # every kind is listed, with whether it is here and why not
        assert names == ["cpu", "arm", "cuda"]
        lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
        host = "arm" if platform.machine() in ("aarch64", "arm64") else "cpu"
        assert "  here: " in lines[host]
        other = "cpu" if host == "arm" else "arm"
        assert "not here: this host is" in lines[other] and "--device gpu" in lines["cuda"]
    else:
        assert expected in names
