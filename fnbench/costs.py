"""Analytic and counted cost of a target, side by side (what ``fnbench count`` reports)."""

from __future__ import annotations

from typing import Any

import torch

from .counting import count
from .reference import paper_macs_for
from .targets import TargetSpec, resolve

__all__ = ["target_cost"]

ELEMENT_SIZE = torch.tensor([], dtype=torch.float32).element_size()


def target_cost(spec: TargetSpec, *, breakdown: str | None = None, fvcore: bool = True) -> dict[str, Any]:
    """Resolve, build and count ``spec``; return a JSON-ready dict (keys are the `count --json` contract)."""
    target = resolve(spec)
    spec = target.spec
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
        "arithmetic_intensity_analytic": (2 * analytic.macs / mem_a) if analytic and mem_a else None,
        "arithmetic_intensity_counted": flops / counted.mem_bytes_counted if counted.mem_bytes_counted else None,
        "units": {"macs": "multiply-adds", "flops": "2 x macs", "mem_bytes": "bytes read + written",
                  "arithmetic_intensity": "FLOP per byte"},
        "uncounted_ops": counted.uncounted_ops,
        "zero_flop_ops": counted.zero_flop_ops,
        "fvcore_unsupported": counted.fvcore_unsupported,
    }
    if breakdown == "operator":
        out["by_operator"] = {k: v.as_dict() for k, v in counted.by_operator.items()}
    elif breakdown == "module":
        out["by_module"] = {k: v.as_dict() for k, v in counted.by_module.items()}
    return out
