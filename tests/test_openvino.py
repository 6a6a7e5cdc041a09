"""OpenVINO on the CPU computes what eager computes, under the settings it was asked for, and says so in its records."""

import json
import subprocess

import pytest
import torch
from torch import nn

from fnbench.errors import UserError
from fnbench.options import RunOptions
from fnbench.reference import TABLE1_OPS
from fnbench.runtimes import OutputMismatch, Unsupported, check_outputs, check_runtime, prepare
from fnbench.targets import TargetSpec, resolve
from fnbench.timing import fold_bn

pytest.importorskip("openvino")

# Small maps keep the conversions quick on two cores; the ops are the same at the paper's sizes.
SPECS = [TargetSpec.make(op, (32, 12, 10), 1, 2) for op in TABLE1_OPS] + [
    TargetSpec.make("pconv", (32, 12, 10), 1, 2, forward="slicing"),
    TargetSpec.make("fasternet_t0", (3, 64, 64), 1),
]


def _folded(target, seed):
    def build():
        m = target.build(seed=seed)
        fold_bn(m)
        return m

    return build


@pytest.mark.parametrize("spec", SPECS, ids=[s.label for s in SPECS])
def test_openvino_matches_eager(spec):
    target = resolve(spec)
    x = target.example_input(seed=3)
    build = _folded(target, 4)
    prepared = prepare("openvino", build, x, threads=1)
    with torch.inference_mode():
        want = target.build(seed=4).eval()(x)  # unfolded eager: folding and conversion together
        torch.testing.assert_close(prepared.module(x), want, rtol=1e-4, atol=1e-4)
        fresh = prepared.rebuild()  # a round's fresh instance computes the same
        torch.testing.assert_close(fresh(x), want, rtol=1e-4, atol=1e-4)
    info = prepared.info
    assert info["max_abs_diff_vs_eager"] < 1e-3 and info["openvino_ops"] > 0
    assert info["convert_s"] > 0 and info["compile_s"] > 0


def test_the_compiled_model_has_the_settings_asked_for():
    target = resolve(TargetSpec.make("dwconv", (16, 8, 8), 1, 1))
    x = target.example_input()
    info = prepare("openvino", _folded(target, 0), x, threads=2).info
    props = info["openvino_properties"]
    assert props["INFERENCE_NUM_THREADS"] == 2 and props["NUM_STREAMS"] == 1
    assert props["PERFORMANCE_HINT"] == "LATENCY" and props["ENABLE_CPU_PINNING"] is True
    assert "32" in str(props["INFERENCE_PRECISION_HINT"])  # FP32, not the plugin's bf16 default on AMX cores
    import openvino as ov

    assert info["openvino_version"] == ov.__version__
    assert info["openvino_device_name"] == ov.Core().get_property("CPU", "FULL_DEVICE_NAME")


class _BakesMean(nn.Module):
    def forward(self, x):
        return x * float(x.mean())  # the tracer makes the mean of the conversion input a constant


def test_a_converted_graph_that_disagrees_is_a_failure_with_the_difference():
    with pytest.raises(OutputMismatch, match=r"max abs difference \d"):
        prepare("openvino", _BakesMean, torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) + 1)


class _NoOpenVinoOp(nn.Module):
    def forward(self, x):
        return x + torch.linalg.eigvals(x[0, 0]).real.sum()  # no OpenVINO operation for eigvals


def test_a_model_openvino_cannot_convert_is_unsupported_with_the_reason():
    with pytest.raises(Unsupported, match="OpenVINO cannot convert this model: .*eigvals"):
        prepare("openvino", _NoOpenVinoOp, torch.randn(1, 1, 4, 4))


def test_check_outputs_passes_what_is_close_and_gives_the_largest_difference():
    a = torch.ones(2, 3)
    assert check_outputs("x", a + 1e-6, a) == pytest.approx(1e-6, rel=0.1)
    b = a.clone()
    b[1, 2] += 0.5
    with pytest.raises(OutputMismatch, match="0.5"):
        check_outputs("x", b, a)
    with pytest.raises(OutputMismatch, match="shape"):
        check_outputs("x", a[:1], a)


def test_what_openvino_cannot_take_is_refused_with_a_reason():
    with pytest.raises(UserError, match="--device cpu"):
        check_runtime("openvino", "cuda")
    with pytest.raises(Unsupported, match="NCHW"):
        prepare("openvino", lambda: nn.Conv2d(3, 3, 3), torch.randn(1, 3, 8, 8), memory_format="channels_last")


def test_run_records_threads_version_and_device_and_marks_only_its_unsupported_rows(fnbench_cmd, cli_env, tmp_path):
    args = ["run", "--device", "cpu", "--target", "dwconv", "--shape", "16x8x8", "--layers", "1", "--threads", "2"]
    args += ["--runtime", "eager", "--runtime", "openvino", "--memory-format", "channels_last"]
    args += ["--budget", "0.5", "--passes", "1", "--out", str(tmp_path), "--json"]
    proc = subprocess.run(fnbench_cmd + args, capture_output=True, text=True, env=cli_env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    recs = {r["runtime"]: r for r in json.loads(proc.stdout)["records"]}
    assert recs["eager"]["status"] == "ok"  # channels_last is fine for eager, not for OpenVINO
    assert recs["openvino"]["status"] == "unsupported" and "NCHW" in recs["openvino"]["error"]

    args = [a for a in args if a not in ("--memory-format", "channels_last")]
    proc = subprocess.run(fnbench_cmd + args, capture_output=True, text=True, env=cli_env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ov_rec = next(r for r in json.loads(proc.stdout)["records"] if r["runtime"] == "openvino")
    info = ov_rec["runtime_info"]
    assert ov_rec["status"] == "ok" and ov_rec["stats"]["median_s"] > 0
    assert info["openvino_properties"]["INFERENCE_NUM_THREADS"] == 2
    assert info["openvino_version"] and info["openvino_device_name"]


def test_openvino_on_cuda_is_bad_input_naming_what_to_use(monkeypatch, tmp_path):
    from fnbench import conditions, devices, runner

    fake_gpu = devices.Device("cuda", "cpu", "Fake GPU", "x86_64")
    monkeypatch.setattr(conditions, "resolve_device", lambda name: fake_gpu)
    specs = [TargetSpec.make("dwconv", (16, 8, 8), 1, 1)]
    with pytest.raises(UserError, match="use --device cpu, or --runtime eager or onnxruntime on cuda"):
        runner.run_suite(
            specs, RunOptions(device="cuda", runtimes=("eager", "openvino"), budget_s=0.5), out_dir=tmp_path
        )
    assert not list(tmp_path.glob("*.jsonl"))  # refused before anything was measured or written


def test_compare_takes_openvino_as_it_takes_eager():
    from fnbench.compare import compare

    c = compare("pconv", "dwconv", device="cpu", shape=(16, 8, 8), layers=1, runtime="openvino", budget_s=0.3, chunks=2)
    assert c.runtime == "openvino" and len(c.rows) == 1
    row = c.rows[0]
    assert row.a.samples_s and row.b.samples_s and row.latency_ci.low <= row.latency_ratio <= row.latency_ci.high
