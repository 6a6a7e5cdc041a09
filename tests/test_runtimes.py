"""ONNX Runtime and torch.compile compute what eager computes; exported graphs stay compact."""

import onnx
import pytest
import torch
from torch import nn

from fnbench.errors import UserError
from fnbench.options import RunOptions
from fnbench.runtimes import Unsupported, check_runtime, export_onnx, prepare
from fnbench.targets import TargetSpec, resolve
from operators import OPERATORS

SHAPE = (32, 12, 10)


def _outputs(spec, runtime):
    target = resolve(spec)
    x = target.example_input(seed=1)
    prepared = prepare(runtime, lambda: target.build(seed=2), x, threads=1)
    with torch.inference_mode():
        return target.build(seed=2)(x), prepared.module(x), prepared.info


def _op_specs():
    specs = []
    for name in OPERATORS.names():
        forwards = ("split_cat", "slicing") if OPERATORS.get(name).meta_dict().get("forwards") else (None,)
        for fwd in forwards:
            specs.append(TargetSpec.make(name, SHAPE, 2, 2, forward=fwd))
    return specs


OP_SPECS = _op_specs()


@pytest.mark.parametrize("spec", OP_SPECS, ids=[s.label for s in OP_SPECS])
def test_onnxruntime_matches_eager(spec):
    ref, out, info = _outputs(spec, "onnxruntime")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert info["provider"] == "CPUExecutionProvider" and info["graph_optimization_level"] == "ORT_ENABLE_ALL"


@pytest.mark.parametrize("spec", OP_SPECS, ids=[s.label for s in OP_SPECS])
def test_compile_matches_eager(spec):
    ref, out, info = _outputs(spec, "compile")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert info["compile_s"] > 0


@pytest.mark.parametrize("forward", ["split_cat", "slicing"])
def test_exported_pconv_graph_is_compact(forward):
    target = resolve(TargetSpec.make("pconv", (64, 14, 14), 1, 3, forward=forward))
    module = target.build()
    data, info = export_onnx(module, target.example_input())
    model = onnx.load_from_string(data)
    kinds = [n.op_type for n in model.graph.node if n.op_type != "Constant"]
    per_layer = ["Split", "Conv", "Concat"] if forward == "split_cat" else ["Slice", "Conv", "Slice", "Concat"]
    assert sorted(kinds) == sorted(per_layer * 3)
    init_bytes = sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    assert init_bytes <= param_bytes


class _NotExportable(nn.Module):
    def forward(self, x):
        return x + torch.linalg.eigvals(x[0, 0]).real.sum()  # no ONNX op for eigvals


class _LeavesTorch(nn.Module):
    def forward(self, x):
        return x + torch.from_numpy(x.numpy() * 2)  # the tracer bakes the second term into a constant


def test_export_failure_is_unsupported_with_a_reason():
    with pytest.raises(Unsupported, match="ONNX export failed: torchscript exporter: .*linalg_eigvals") as err:
        prepare("onnxruntime", _NotExportable, torch.randn(1, 1, 4, 4))
    assert "\x1b[" not in str(err.value)


def test_a_wrong_exported_graph_is_caught():
    with pytest.raises(Unsupported, match="disagrees with eager"):
        prepare("onnxruntime", _LeavesTorch, torch.randn(1, 3, 4, 4))


def test_runtime_combinations_refused_with_a_reason():
    with pytest.raises(UserError, match="unknown runtime"):
        check_runtime("tensorrt", "cpu")
    with pytest.raises(UserError, match="cuda only"):
        check_runtime("eager", "cpu", dtype="float16")
    with pytest.raises(Unsupported, match="NCHW"):
        prepare("onnxruntime", lambda: nn.Conv2d(3, 3, 3), torch.randn(1, 3, 8, 8), memory_format="channels_last")


# compile is checked on one forward only: each FasterNet compile costs tens of seconds on 2 cores
@pytest.mark.parametrize(
    "runtime, forward", [("onnxruntime", "split_cat"), ("onnxruntime", "slicing"), ("compile", "split_cat")]
)
def test_fasternet_t0_matches_eager(runtime, forward):
    from fnbench.timing import fold_bn

    target = resolve(TargetSpec.make("fasternet_t0", (3, 64, 64), 1, forward=forward))
    x = target.example_input(seed=5)

    def build():
        m = target.build(seed=6)
        fold_bn(m)
        return m

    prepared = prepare(runtime, build, x, threads=1)
    with torch.inference_mode():
        torch.testing.assert_close(prepared.module(x), target.build(seed=6)(x), rtol=1e-4, atol=1e-4)


def test_runner_records_an_export_failure_as_unsupported_and_goes_on(tmp_path, monkeypatch):
    from fnbench import runner, targets
    from fnbench.results import read_records
    from operators.registry import Entry

    def resolve_bad(name):
        return (
            Entry(name, lambda: _NotExportable(), "eigvals: no ONNX op", meta=(("input_shape", (1, 4, 4)),))
            if name == "test_not_exportable"
            else None
        )

    monkeypatch.setattr(targets, "NETWORK_RESOLVERS", [resolve_bad, *targets.NETWORK_RESOLVERS])
    specs = [TargetSpec.make("test_not_exportable"), TargetSpec.make("pconv", (16, 8, 8), 1, 1)]
    summary = runner.run_suite(
        specs, RunOptions(device="cpu", runtimes=("onnxruntime",), budget_s=0.5, workers=0), out_dir=tmp_path
    )
    recs = read_records(summary.path)
    assert [(r["target"]["name"], r["status"]) for r in recs] == [
        ("test_not_exportable", "unsupported"),
        ("pconv", "ok"),
    ]
    assert "ONNX export failed" in recs[0]["error"] and "linalg_eigvals" in recs[0]["error"]
    assert recs[1]["runtime_info"]["provider"] == "CPUExecutionProvider"
