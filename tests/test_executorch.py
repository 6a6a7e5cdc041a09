"""ExecuTorch with XNNPACK computes what eager computes and records how much of the graph XNNPACK took."""

import pytest
import torch
from torch import nn

from fnbench.errors import UserError
from fnbench.reference import TABLE1_OPS
from fnbench.runtimes import Unsupported, check_runtime, prepare, runtime_unavailable
from fnbench.targets import TargetSpec, resolve
from fnbench.timing import fold_bn

pytest.importorskip("executorch")

SPECS = [TargetSpec.make(op, (32, 12, 10), 1, 2) for op in TABLE1_OPS] + [
    TargetSpec.make("fasternet_t0", (3, 64, 64), 1),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.label for s in SPECS])
def test_executorch_matches_eager(spec):
    target = resolve(spec)
    x = target.example_input(seed=3)

    def build():
        m = target.build(seed=4)
        fold_bn(m)
        return m

    prepared = prepare("executorch", build, x, threads=2)
    with torch.inference_mode():
        want = target.build(seed=4).eval()(x)
        torch.testing.assert_close(prepared.module(x), want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(prepared.rebuild()(x), want, rtol=1e-4, atol=1e-4)
    info = prepared.info
    assert 0 < info["delegated_nodes"] <= info["graph_nodes"]
    assert info["delegated_share"] == pytest.approx(info["delegated_nodes"] / info["graph_nodes"])
    assert info["threadpool_threads"] == 2 and info["executorch_version"]
    if spec.name == "conv":  # a plain conv stack is XNNPACK's whole: nothing left outside the delegate
        assert info["delegated_share"] == 1.0


class _BakesMean(nn.Module):
    def forward(self, x):
        return x * float(x.mean())  # a Python float of the data: torch.export refuses to guess it


def test_a_model_export_cannot_take_is_unsupported_with_the_reason():
    # (Unlike a tracer, export does not bake the value into a wrong constant; the output check against
    # eager, check_outputs, is the one OpenVINO's tests drive to a failure.)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) + 1
    with pytest.raises(Unsupported, match="ExecuTorch cannot export or lower this model: .*data-dependent"):
        prepare("executorch", _BakesMean, x)


def test_executorch_is_cpu_only_and_available_here():
    assert runtime_unavailable("executorch", "cpu") is None
    with pytest.raises(UserError, match="--device cpu"):
        check_runtime("executorch", "cuda")
