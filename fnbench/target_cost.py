"""A target's cost: analytic and counted side by side (``fnbench count``), and the ``cost`` block of a record.

The analytic figures (operators only) are each operator's registered cost function (closed forms from
:mod:`operators.analytic`); the counted ones are :mod:`fnbench.counting`'s.
"""

from __future__ import annotations

from typing import Any

import torch

from . import counting, units
from .counting import count
from .errors import UserError, first_line
from .reference import paper_macs_for
from .runtimes import DTYPES
from .targets import Target, TargetSpec, resolve
from .usertargets import onnx_cost

__all__ = ["target_cost", "record_cost", "scale_cost"]

ELEMENT_SIZE = torch.tensor([], dtype=torch.float32).element_size()


def target_cost(spec: TargetSpec, *, breakdown: str | None = None, fvcore: bool = True) -> dict[str, Any]:
    """Resolve, build and count ``spec``; return a JSON-ready dict (keys are the `count --json` contract)."""
    target = resolve(spec)
    spec = target.spec
    if target.onnx is not None:
        if breakdown:
            raise UserError(f"--by {breakdown} needs a PyTorch module; {spec.name} is an ONNX graph: drop --by")
        return _onnx_target_cost(target)
    module = target.build()
    x = target.example_input()
    counted = count(module, x, fvcore=fvcore)
    analytic = target.analytic
    mem_a = analytic.mem_bytes(ELEMENT_SIZE) if analytic else None
    flops = counted.flops
    out: dict[str, Any] = {
        "target": spec.name,
        "kind": target.kind,
        "shape": list(spec.shape),
        "batch": spec.batch,
        "layers": spec.layers,
        "options": spec.options_dict(),
        "dtype": "float32",
        "params": counted.params,
        "params_analytic": analytic.params if analytic else None,
        "macs": counted.macs,
        "flops": flops,
        "macs_analytic": analytic.macs if analytic else None,
        "paper_macs": paper_macs_for(spec),
        "macs_flopcounter": counted.macs_flopcounter,
        "macs_fvcore": counted.macs_fvcore,
        "macs_fvcore_mac_ops": counted.macs_fvcore_mac_ops,
        "macs_agree": counted.macs_agree,
        "fvcore_error": counted.fvcore_error,
        "mem_bytes_analytic": mem_a,
        "mem_bytes_counted": counted.mem_bytes_counted,
        "arithmetic_intensity_analytic": units.intensity(analytic.macs, mem_a) if analytic else None,
        "arithmetic_intensity_counted": flops / counted.mem_bytes_counted if counted.mem_bytes_counted else None,
        "units": {
            "macs": "multiply-adds",
            "flops": "2 x macs",
            "mem_bytes": "bytes read + written",
            "arithmetic_intensity": "FLOP per byte",
        },
        "uncounted_ops": counted.uncounted_ops,
        "zero_flop_ops": counted.zero_flop_ops,
        "fvcore_unsupported": counted.fvcore_unsupported,
    }
    if target.source is not None:
        out["source"] = target.source
    if breakdown == "operator":
        out["by_operator"] = {k: v.as_dict() for k, v in counted.by_operator.items()}
    elif breakdown == "module":
        out["by_module"] = {k: v.as_dict() for k, v in counted.by_module.items()}
    return out


def _onnx_target_cost(target: Target) -> dict[str, Any]:
    """``count``'s report for an ``.onnx`` target: counted from the graph (:func:`fnbench.usertargets.onnx_cost`)."""
    spec = target.spec
    c = onnx_cost(target.onnx, spec.batch, spec.shape)
    flops = 2 * c["macs"]
    keys = ("params_analytic", "macs_analytic", "paper_macs", "macs_flopcounter", "macs_fvcore", "macs_fvcore_mac_ops")
    return {
        "target": spec.name,
        "kind": target.kind,
        "shape": list(spec.shape),
        "batch": spec.batch,
        "layers": None,
        "options": {},
        "dtype": "float32",
        "params": c["params"],
        "macs": c["macs"],
        "flops": flops,
        **dict.fromkeys(keys),
        "macs_agree": None,
        "fvcore_error": "an ONNX graph: MACs and bytes counted from the graph with onnx-tool",
        "mem_bytes_analytic": None,
        "mem_bytes_counted": c["mem_bytes_counted"],
        "arithmetic_intensity_analytic": None,
        "arithmetic_intensity_counted": flops / c["mem_bytes_counted"] if c["mem_bytes_counted"] else None,
        "units": {"macs": "multiply-adds", "flops": "2 x macs", "mem_bytes": "bytes read + written"},
        "uncounted_ops": {},
        "zero_flop_ops": {},
        "fvcore_unsupported": {},
        "source": target.source,
        "counter": "onnx-tool",
    }


def record_cost(target: Target, module: torch.nn.Module | None, x: torch.Tensor, dtype: str) -> dict[str, Any]:
    """A record's ``cost`` block: analytic and counted. Counting runs in FP32 on the CPU; byte counts scale to ``dtype``.

    An ``.onnx`` target (``module`` None) is counted from its graph.
    """
    if target.onnx is not None:
        c = onnx_cost(target.onnx, target.spec.batch, target.spec.shape)
        return {
            "params": c["params"],
            "macs": c["macs"],
            "flops": 2 * c["macs"],
            "mem_bytes_analytic": None,
            "mem_bytes_counted": c["mem_bytes_counted"],
            "macs_counted": c["macs"],
            "counter": "onnx-tool",
        }
    elem = torch.tensor([], dtype=DTYPES[dtype]).element_size()
    scale_bytes = elem / 4
    analytic = target.analytic
    cost: dict[str, Any] = {
        "params": analytic.params if analytic is not None else None,
        "macs": analytic.macs if analytic is not None else None,
        "flops": analytic.flops if analytic is not None else None,
        "mem_bytes_analytic": analytic.mem_bytes(elem) if analytic is not None else None,
        "mem_bytes_counted": None,
        "macs_counted": None,
    }
    try:
        counted = counting.count(module, x)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — a counter failure must not cost the latency measurement
        cost["count_error"] = first_line(e)
        return cost
    cost["macs_counted"] = int(counted.macs)
    cost["mem_bytes_counted"] = int(counted.mem_bytes_counted * scale_bytes)
    if cost["params"] is None:
        cost["params"] = int(counted.params)
    if cost["macs"] is None:  # networks: no analytic model, the counted figure is the figure
        cost["macs"] = int(counted.macs)
        cost["flops"] = 2 * int(counted.macs)
    return cost


def scale_cost(cost: dict[str, Any], measured_batch: int, batch: int) -> dict[str, Any]:
    """``cost`` as counted at ``batch``, scaled to the ``measured_batch`` that fitted in memory."""
    cost = dict(cost)
    if measured_batch != batch and cost.get("macs") is not None:
        # OOM halved the batch: the cost scales with it (it was counted at `batch`).
        f = measured_batch / batch
        for k in ("macs", "flops", "mem_bytes_analytic", "macs_counted", "mem_bytes_counted"):
            if cost.get(k) is not None:
                cost[k] = int(round(cost[k] * f))
    return cost
