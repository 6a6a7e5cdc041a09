"""Options several commands share, and the targets they name.

``target_options`` (shape, batch, layers and the operator options) is taken by ``count``, ``run``
and ``breakdown`` (and ``campaign``, through ``run``'s parameters); :func:`target_specs` turns
them, or a suite, into the specs a command measures. The defaults the help texts name are
:mod:`fnbench.options`' constants, which import no torch.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import UserError
from ..options import (
    DEFAULT_ALLOCATOR,
    DEFAULT_BATCH,
    DEFAULT_CUDA_BATCH,
    DEFAULT_DEVICE,
    DEFAULT_LAYERS,
    DEFAULT_NET_SHAPE,
    DEFAULT_OP_SHAPE,
    DEFAULT_SUITE,
    DEFAULT_THREADS,
)

__all__ = [
    "ALLOCATOR_HELP",
    "target_options",
    "device_option",
    "threads_option",
    "allocator_option",
    "out_option",
    "make_spec",
    "target_specs",
    "shape_text",
]

ALLOCATOR_HELP = (
    "Memory allocator: tuned (default: glibc with fixed mmap/trim thresholds, freed activations reused), "
    "system (malloc as the process got it), jemalloc or tcmalloc (preloaded)."
)


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape as the command line writes it (``96x56x56``)."""
    return "x".join(map(str, shape))


def _options(fn, opts: list):
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def target_options(fn):
    """``--shape``, ``--batch``, ``--layers`` and the operator options (``--n-div``, ``--kernel``, …, ``--opt``)."""
    return _options(
        fn,
        [
            click.option(
                "--shape",
                metavar="CxHxW",
                help=f"Input shape per sample (operators: {shape_text(DEFAULT_OP_SHAPE)}; "
                f"networks: {shape_text(DEFAULT_NET_SHAPE)}).",
            ),
            click.option(
                "--batch",
                type=int,
                default=None,
                help=f"Batch size (default {DEFAULT_BATCH}; `run` on cuda: {DEFAULT_CUDA_BATCH}, the paper's "
                "throughput set-up).",
            ),
            click.option(
                "--layers",
                type=int,
                help=f"Layers in an operator stack (default {DEFAULT_LAYERS}, as in the paper's Table 1).",
            ),
            # The operators' own defaults (operators/), which the help repeats: fnbench passes None on.
            click.option("--n-div", "n_div", type=int, help="PConv partial ratio: c_p = C // n_div (default 4)."),
            click.option("--groups", type=int, help="Groups for gconv / gconv_pwconv (default 16)."),
            click.option(
                "--kernel",
                "k",
                type=int,
                help="Kernel size k (default 3; odd unless --padding is given: the "
                "output map is (H + 2·padding − k) // stride + 1).",
            ),
            click.option("--stride", type=int, help="Stride (default 1)."),
            click.option("--padding", type=int, help="Padding (default k // 2, 'same' at stride 1)."),
            click.option(
                "--forward", type=click.Choice(["split_cat", "slicing"]), help="PConv forward (default split_cat)."
            ),
            click.option(
                "--opt",
                "opt",
                multiple=True,
                metavar="KEY=VALUE",
                help="A keyword for a FILE.py:NAME target's factory, VALUE a Python literal (repeatable).",
            ),
        ],
    )


def device_option(fn):
    return click.option("--device", default=DEFAULT_DEVICE, show_default=True, help="auto, cpu, arm or cuda.")(fn)


def threads_option(why: str = ""):
    """``--threads``; ``why`` follows the default in the help (", the paper's protocol")."""
    return click.option("--threads", type=int, help=f"CPU threads (default {DEFAULT_THREADS}{why}).")


def allocator_option(fn):
    """One ``--allocator`` (the commands that measure in their own process)."""
    return click.option("--allocator", default=DEFAULT_ALLOCATOR, show_default=True, help=ALLOCATOR_HELP)(fn)


def out_option(fn):
    """``--out``, the directory of the results file."""
    return click.option(
        "--out", "out_dir", default="results", show_default=True, help="Directory for the results file."
    )(fn)


def make_spec(name: str, shape: str | None, batch: int, layers: int | None, **options: Any):
    from ..targets import TargetSpec, parse_shape

    options = _with_opts(options)
    return TargetSpec.make(name, parse_shape(shape) if shape is not None else None, batch, layers, **options)


def _with_opts(options: dict[str, Any]) -> dict[str, Any]:
    """The flag options with ``--opt KEY=VALUE`` parsed into them (a key given both ways is refused)."""
    from ..usertargets import parse_opts

    options = dict(options)
    extra = parse_opts(options.pop("opt", None) or ())
    for key, value in extra.items():
        if options.get(key) is not None:
            raise UserError(f"--opt {key} repeats an option given by its own flag; give it once")
        options[key] = value
    return options


def target_specs(suite, targets, shape, batch, layers, options):
    from ..suites import get_suite

    if suite and targets:
        raise UserError("give either --suite or --target, not both")
    if targets:
        return [make_spec(t, shape, batch, layers, **options) for t in targets]
    if shape is not None or layers is not None or any(v not in (None, (), []) for v in options.values()):
        raise UserError("--shape, --layers and operator options apply to --target; suites fix their own")
    return get_suite(suite or DEFAULT_SUITE).specs(batch)
