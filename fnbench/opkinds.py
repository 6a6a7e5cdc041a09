"""Operator kinds: the one table that says what kind of work an aten op does (no torch needed).

Two readers share it. The counter (:mod:`fnbench.counting`) asks which executed ops are data
movement: 0 FLOPs by nature, so an op without a FLOP formula there is not "uncounted". The
per-layer breakdown (:mod:`fnbench.layers`) asks each op's kind, to name the layer an op runs
outside any leaf module (PConv's ``split``/``cat``, a residual ``add``), and the report
(:mod:`fnbench.report.breakdown`) orders its tables and colours by :data:`KINDS`. Reading
records never needs torch, so this table lives below both, in the foundation layer.

Ops are named as aten names them without the namespace (``"cat"`` for ``aten.cat``). A
convolution's kind depends on its arguments (groups, kernel) and an op inside an attention block
is attention whatever it is; :func:`fnbench.layers.op_kind` decides those, then asks
:func:`kind_of_op`.

Example::

    >>> kind_of_op("aten.cat"), kind_of_op("relu_"), kind_of_op("aten.convolution")
    ('data', 'act', 'other')
"""

from __future__ import annotations

__all__ = ["KINDS", "OP_KINDS", "DATA_OPS", "op_name", "kind_of_op", "is_data_movement"]

#: Operator kinds, in the order tables and figures show them.
KINDS = (
    "conv",
    "pconv",
    "pwconv",
    "dwconv",
    "gconv",
    "linear",
    "attention",
    "norm",
    "act",
    "pool",
    "elementwise",
    "data",
    "other",
)

#: Kind → the aten ops of that kind. ``data``: ops that only move, view, copy or create data.
_OPS = {
    "data": """
        cat stack split split_with_sizes chunk slice select narrow unbind view _unsafe_view reshape flatten
        unflatten permute transpose t expand squeeze unsqueeze as_strided alias detach lift_fresh contiguous
        clone copy_ _to_copy fill_ zero_ empty empty_like empty_strided new_empty zeros zeros_like new_zeros
        ones ones_like full constant_pad_nd index index_select gather roll flip repeat channel_shuffle
        native_channel_shuffle pixel_shuffle pixel_unshuffle im2col col2im unfold upsample_nearest2d
    """,
    "elementwise": "add add_ mul mul_ sub sub_ div div_ neg pow sqrt rsqrt exp where addcmul lerp abs",
    "act": """
        relu relu_ relu6 gelu gelu_ silu silu_ sigmoid sigmoid_ tanh hardswish hardswish_ hardsigmoid
        hardsigmoid_ hardtanh hardtanh_ clamp clamp_ clamp_min clamp_min_ mish elu leaky_relu leaky_relu_ softplus
    """,
    "norm": """
        native_batch_norm _native_batch_norm_legit_no_training native_layer_norm native_group_norm batch_norm
        layer_norm group_norm var_mean rms_norm
    """,
    "pool": """
        mean avg_pool2d max_pool2d max_pool2d_with_indices adaptive_avg_pool2d _adaptive_avg_pool2d
        adaptive_max_pool2d sum amax
    """,
    "attention": """
        softmax _softmax bmm baddbmm scaled_dot_product_attention _scaled_dot_product_flash_attention_for_cpu
        _scaled_dot_product_flash_attention _scaled_dot_product_efficient_attention
        _scaled_dot_product_cudnn_attention
    """,
    "linear": "addmm mm linear matmul",
}


def _table() -> dict[str, str]:
    table: dict[str, str] = {}
    for kind, ops in _OPS.items():
        for op in ops.split():
            if op in table:  # one op, one kind: a second entry would silently lose to the first
                raise ValueError(f"aten op {op!r} is listed as {table[op]!r} and as {kind!r}")
            table[op] = kind
    return table


#: aten op name → its kind (ops not listed are ``other``, or decided by their arguments).
OP_KINDS: dict[str, str] = _table()
#: The data-movement ops: 0 FLOPs by nature.
DATA_OPS = frozenset(op for op, kind in OP_KINDS.items() if kind == "data")


def op_name(op: str) -> str:
    """``"aten.cat"`` → ``"cat"``; a bare name is returned as it is."""
    return op.split(".")[-1] if op.startswith("aten.") else op


def kind_of_op(op: str) -> str:
    """The kind of an aten op (``"aten.cat"`` or ``"cat"``) by its name alone; ``other`` when unlisted."""
    return OP_KINDS.get(op_name(op), "other")


def is_data_movement(op: str) -> bool:
    """Whether an aten op only moves, views, copies or creates data (0 FLOPs by nature)."""
    return op_name(op) in DATA_OPS
