"""The Python API for notebooks: :func:`count`, :func:`run` and :func:`compare`, over the CLI's engine.

In the style of torch.utils.benchmark: a call takes a target and returns what the command would
print, as data. A target is anything the CLI takes (``"pconv"``, ``"timm:resnet50"``,
``"mine.py:MyMixer"``, ``"model.onnx"``) or a zero-argument callable returning an ``nn.Module``.
A callable exists only in the calling process: a worker process cannot import it, so it is
measured in this process (``workers=0``, one pass), and its records carry no file digest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .options import (
    DEFAULT_ALLOCATOR,
    DEFAULT_BUDGET_S,
    DEFAULT_COMPARE_BUDGET_S,
    DEFAULT_PASSES,
    DEFAULT_WORKERS,
    RunOptions,
)
from .targets import TargetSpec
from .usertargets import is_in_process_only, parse_opts, register_callable

__all__ = ["count", "run", "compare"]


def _name(target: str | Callable[[], Any]) -> str:
    return target if isinstance(target, str) else register_callable(target)


def _spec(target, shape, batch, layers, options: dict[str, Any]) -> TargetSpec:
    opts = dict(options)
    opts.update(parse_opts(opts.pop("opt", ())))
    return TargetSpec.make(_name(target), tuple(shape) if shape else None, batch, layers, **opts)


def count(target, *, shape=None, batch: int = 1, layers: int | None = None, by: str | None = None, **options):
    """What ``fnbench count TARGET`` prints, as the dict of its ``--json`` (MACs, bytes, params, source).

    ``options`` are the factory keywords (``k=5``, ``n_div=4``, or any keyword a user target takes).
    """
    from .target_cost import target_cost

    return target_cost(_spec(target, shape, batch, layers, options), breakdown=by)


def run(
    targets,
    *,
    shape=None,
    batch: int = 1,
    layers: int | None = None,
    device: str = "cpu",
    budget_s: float = DEFAULT_BUDGET_S,
    workers: int | None = None,
    passes: int = DEFAULT_PASSES,
    out_dir: str = "results",
    allocator: str = DEFAULT_ALLOCATOR,
    runtimes: Sequence[str] = ("eager",),
    **options,
) -> list[dict[str, Any]]:
    """Measure ``targets`` (one or a list) as ``fnbench run --target …`` does; return the records.

    The records are also written to ``out_dir/<run_id>.jsonl``, exactly as the CLI writes them.
    A callable target is measured in this process (``workers=0``): worker processes cannot
    import it.
    """
    from .runner import run_suite

    items = [targets] if isinstance(targets, str) or callable(targets) else list(targets)
    specs = [_spec(t, shape, batch, layers, options) for t in items]
    if any(is_in_process_only(s.name) for s in specs):
        workers = 0
    options = RunOptions(
        device=device,
        budget_s=budget_s,
        workers=DEFAULT_WORKERS if workers is None else workers,
        passes=passes,
        allocators=(allocator,),
        runtimes=tuple(runtimes),
    )
    summary = run_suite(specs, options, out_dir=out_dir)
    return summary.records


def compare(
    a,
    b,
    *,
    shape=None,
    layers: int | None = None,
    device: str = "cpu",
    budget_s: float = DEFAULT_COMPARE_BUDGET_S,
    **kw,
):
    """``fnbench compare A B`` in this process (interleaved rounds); returns the ``--json`` dict.

    A and B may be callables: compare always measures in this process.
    """
    from .compare import compare_targets

    return compare_targets(a, b, shape=shape, layers=layers, device=device, budget_s=budget_s, **kw)
