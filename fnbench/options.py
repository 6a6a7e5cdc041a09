"""What a run is measured with (:class:`RunOptions`), and the defaults every command shows in its help.

Plain values, no torch: ``fnbench --help`` reads its defaults here without loading a framework,
and the modules that apply them (:mod:`fnbench.timing`, :mod:`fnbench.passes`,
:mod:`fnbench.runner`, :mod:`fnbench.conditions`, :mod:`fnbench.targets`, the ``compare``,
``probe`` and ``breakdown`` engines; the old names are re-exported where they were) take them
from here too, so a default is written once. It sits in the foundation layer so that
:mod:`fnbench.devices` can take :data:`DEFAULT_CUDA_BATCH` from it.

:class:`RunOptions` is ``fnbench run``'s options parsed once. The command builds it from its
parameters, :func:`fnbench.runner.run_suite` measures with it, and it is stored as the run's plan
(the ``cli`` block of ``<run_id>.plan.json``), whence ``fnbench run --resume RUN_ID`` reads it back
to repeat the run. Its dictionary form (:meth:`RunOptions.to_dict`) is keyed by the command's
parameter names, which are the plan's keys::

    >>> RunOptions(targets=("pconv",), budget_s=2.0).to_dict()["budget"]
    2.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .allocators import DEFAULT_ALLOCATOR

__all__ = [
    "RunOptions",
    "DEFAULT_DEVICE",
    "DEFAULT_SUITE",
    "DEFAULT_RUNTIME",
    "DEFAULT_BATCH",
    "DEFAULT_PRECISION",
    "DEFAULT_BUDGET_S",
    "DEFAULT_PASSES",
    "DEFAULT_WORKERS",
    "DEFAULT_THREADS",
    "DEFAULT_CUDA_BATCH",
    "DEFAULT_OP_SHAPE",
    "DEFAULT_NET_SHAPE",
    "DEFAULT_LAYERS",
    "DEFAULT_ALLOCATOR",
    "DEFAULT_COMPARE_BUDGET_S",
    "DEFAULT_PROBE_BUDGET_S",
    "DEFAULT_BREAKDOWN_BUDGET_S",
    "DEFAULT_LAYER_BUDGET_S",
]

#: The device a command measures on unless told: the best this machine has (cuda, then arm or cpu).
DEFAULT_DEVICE = "auto"
#: The suite ``fnbench run`` measures when given neither a suite nor targets.
DEFAULT_SUITE = "table1"
#: The runtime a target runs under unless told (PyTorch eager).
DEFAULT_RUNTIME = "eager"
#: Batch of a target made from the command line (a batch-1 target is measured at
#: :data:`DEFAULT_CUDA_BATCH` on CUDA unless a batch is given).
DEFAULT_BATCH = 1

#: Target relative half-width of the 95 % CI of the median.
DEFAULT_PRECISION = 0.02
#: Wall-clock seconds one target may take (build, warm-up and sampling included).
DEFAULT_BUDGET_S = 9.0
#: Passes over a suite for targets measured on worker processes; each pass has fresh processes.
DEFAULT_PASSES = 5
#: Worker processes per pass (CPU, ARM and CUDA alike): the passes give the fresh processes.
DEFAULT_WORKERS = 1
#: CPU threads a measurement runs on (the paper's protocol); CUDA measurements ignore threads.
DEFAULT_THREADS = 1
#: Batch a batch-1 target is measured at on CUDA when no batch is given (the paper's throughput set-up).
DEFAULT_CUDA_BATCH = 32
#: Input shape per sample of an operator (C, H, W): the first of the paper's Table-1 maps.
DEFAULT_OP_SHAPE = (96, 56, 56)
#: Input shape per sample of a network.
DEFAULT_NET_SHAPE = (3, 224, 224)
#: Layers in an operator stack, as in the paper's Table 1.
DEFAULT_LAYERS = 10
#: Upper bound on seconds per target per shape of ``fnbench compare``.
DEFAULT_COMPARE_BUDGET_S = 8.0
#: Seconds per probe of ``fnbench probe``.
DEFAULT_PROBE_BUDGET_S = 4.0
#: Seconds ``fnbench breakdown`` measures a whole network for (half before the layers, half after).
DEFAULT_BREAKDOWN_BUDGET_S = 2.0
#: Seconds ``fnbench breakdown`` measures each layer for.
DEFAULT_LAYER_BUDGET_S = 0.1

#: Field metadata: the key a field is stored under, where it is not the field's own name.
_KEY = "key"
#: Field metadata: a field of ``(name, value)`` pairs stored as keys of their own (the operator options).
_FLAT = "flat"


@dataclass(frozen=True)
class RunOptions:
    """What a run is measured with: ``fnbench run``'s options, parsed once.

    ``targets``, ``suite``, ``shape``, ``batch``, ``layers`` and ``target_options`` name what is
    measured (the command makes the specs from them; :func:`~fnbench.runner.run_suite` takes the
    specs beside the options and stores these to repeat them); the rest say how. ``batch`` and
    ``threads`` left None take the device's default (batch 1, :data:`DEFAULT_CUDA_BATCH` on
    CUDA; :data:`DEFAULT_THREADS` thread, none on CUDA). ``budget_s`` is seconds per target,
    split over the passes. ``target_options`` holds the operator options (``n_div``, ``k``, …,
    and ``opt``, the ``--opt KEY=VALUE`` strings) as ``(name, value)`` pairs, None where not given.
    """

    device: str = DEFAULT_DEVICE
    suite: str | None = None
    targets: tuple[str, ...] = ()
    shape: str | None = None
    batch: int | None = None
    layers: int | None = None
    target_options: tuple[tuple[str, Any], ...] = field(default=(), metadata={_FLAT: True})
    runtimes: tuple[str, ...] = (DEFAULT_RUNTIME,)
    memory_format: str = "contiguous"
    dtype: str = "float32"
    threads: int | None = None
    precision: float = DEFAULT_PRECISION
    budget_s: float = field(default=DEFAULT_BUDGET_S, metadata={_KEY: "budget"})
    workers: int = DEFAULT_WORKERS
    passes: int = DEFAULT_PASSES
    allocators: tuple[str, ...] = field(default=(DEFAULT_ALLOCATOR,), metadata={_KEY: "allocators_"})
    seed: int = 0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunOptions:
        """Options from ``fnbench run``'s parameters or a stored plan, keyed as :meth:`to_dict` keys them.

        A value that is None or empty takes the field's default, as an option not given does (plans
        written before the defaults were stored hold None and ``[]`` there). A key that is no
        field's is an operator option.
        """
        by_key = {_key(f): f for f in fields(cls)}
        kw: dict[str, Any] = {}
        flat: list[tuple[str, Any]] = []
        for key, value in values.items():
            f = by_key.get(key)
            if f is None or f.metadata.get(_FLAT):
                flat.append((key, _frozen(value)))
            elif value is not None and value != () and value != []:
                kw[f.name] = _frozen(value)
        return cls(**kw, target_options=tuple(flat))

    def to_dict(self) -> dict[str, Any]:
        """The options as the plan stores them: JSON values (lists), the operator options as keys of their own."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get(_FLAT):
                out.update((k, _json(v)) for k, v in value)
            else:
                out[_key(f)] = _json(value)
        return out

    @property
    def target_kwargs(self) -> dict[str, Any]:
        """The operator options as keywords (None where not given)."""
        return dict(self.target_options)


def _key(f) -> str:
    return f.metadata.get(_KEY, f.name)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def _json(value: Any) -> Any:
    return [_json(v) for v in value] if isinstance(value, (list, tuple)) else value
