"""One run policy: run, probe, compare and breakdown resolve threads, batch, budget and allocator alike."""

import math

import pytest

import fnbench.conditions as conditions
from fnbench.compare import compare
from fnbench.devices import Device
from fnbench.errors import UserError
from fnbench.layers import run_breakdown
from fnbench.options import RunOptions
from fnbench.probe import run_probe
from fnbench.runner import run_suite
from fnbench.targets import TargetSpec

FAKE_GPU = Device("cuda", "cpu", "Fake GPU", "x86_64")  # kind cuda, tensors on the CPU


def test_cpu_defaults_are_the_papers_protocol():
    p = conditions.resolve_policy("cpu")
    assert p.device.kind == "cpu" and p.threads == 1 and p.batch is None
    assert p.batch_for(1) == 1 and p.batch_for(4) == 4
    assert p.allocators == ("tuned",) and p.conditions("onnxruntime") == conditions.Conditions(
        "onnxruntime", "contiguous", "float32", 1, "tuned"
    )


def test_cuda_defaults_to_batch_32_unless_a_batch_is_given(monkeypatch):
    monkeypatch.setattr(conditions, "resolve_device", lambda name: FAKE_GPU)
    p = conditions.resolve_policy("cuda", threads=4)
    assert p.threads is None  # the host's threads do not set a GPU's speed
    assert p.batch_for(1) == conditions.DEFAULT_CUDA_BATCH == 32 and p.batch_for(8) == 8
    assert conditions.resolve_policy("cuda", batch=1).batch_for(1) == 1  # an explicit 1 is honoured


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threads": 0}, "threads 0 is not positive: use --threads 1 or more"),
        ({"batch": 0}, "batch 0 is not positive: use --batch 1 or more"),
        ({"budget_s": 0.0}, "budget 0.0 s is not a positive finite number: use e.g. --budget 10"),
        ({"budget_s": math.inf}, "budget inf s is not a positive finite number"),
        ({"budget_s": math.nan}, "budget nan s is not a positive finite number"),
        ({"precision": 1.5}, r"precision 1.5 is not a fraction in \(0, 1\)"),
        ({"allocator": "nosuch"}, "nosuch"),
    ],
)
def test_bad_options_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(UserError, match=message):
        conditions.resolve_policy("cpu", **kwargs)


def test_every_measuring_command_applies_the_same_policy(tmp_path):
    """The same bad --threads is refused in the same words by run, probe, compare and breakdown."""
    spec = TargetSpec.make("pconv", (16, 8, 8), 1, 1)
    calls = {
        "run": lambda **kw: run_suite([spec], RunOptions(**kw), out_dir=tmp_path),
        "probe": lambda **kw: run_probe(out_dir=tmp_path, **kw),
        "compare": lambda **kw: compare("pconv", "dwconv", shape=(16, 8, 8), layers=1, **kw),
        "breakdown": lambda **kw: run_breakdown([spec], out_dir=tmp_path, **kw),
    }
    for call in calls.values():
        with pytest.raises(UserError, match="threads 0 is not positive: use --threads 1 or more"):
            call(device="cpu", threads=0)
        with pytest.raises(UserError, match="budget -1.0 s is not a positive finite number"):
            call(device="cpu", budget_s=-1.0)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
