"""One table of aten op kinds serves the counter, the per-layer breakdown and the report."""

import pytest

from fnbench import opkinds


def test_every_listed_op_has_one_kind_of_the_shown_kinds():
    assert set(opkinds.OP_KINDS.values()) <= set(opkinds.KINDS)
    assert opkinds.DATA_OPS == {op for op, kind in opkinds.OP_KINDS.items() if kind == "data"}


@pytest.mark.parametrize(
    "op, kind",
    [("aten.cat", "data"), ("split", "data"), ("aten.full", "data"), ("add_", "elementwise"), ("aten.relu", "act")],
)
def test_names_with_and_without_the_aten_namespace(op, kind):
    assert opkinds.kind_of_op(op) == kind
    assert opkinds.is_data_movement(op) is (kind == "data")


def test_an_unlisted_op_is_other_and_not_data_movement():
    assert opkinds.kind_of_op("aten.convolution") == "other"  # told apart by its arguments, in fnbench.layers
    assert not opkinds.is_data_movement("aten.convolution")


def test_a_second_kind_for_one_op_is_refused(monkeypatch):
    monkeypatch.setitem(opkinds._OPS, "act", opkinds._OPS["act"] + " cat")
    with pytest.raises(ValueError, match="'cat' is listed as 'data' and as 'act'"):
        opkinds._table()
