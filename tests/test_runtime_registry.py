"""A runtime is one registered object: run, compare and the report take a new one with no other change."""

import pandas as pd
import pytest
import torch
from torch import fx

from fnbench import runtimes
from fnbench.catalog import listing
from fnbench.compare import compare
from fnbench.errors import UserError
from fnbench.options import RunOptions
from fnbench.report import build_report
from fnbench.results import read_records
from fnbench.runner import run_suite
from fnbench.targets import TargetSpec

OPS = ("conv", "gconv", "dwconv", "pconv")


def _make_fx(build, example, info, *, device, threads, memory_format, dtype):
    """torch.fx: the model traced to a graph and run as generated Python code (a different code path from eager)."""
    ref, x = runtimes.reference_on_host(build, example)
    traced = fx.symbolic_trace(ref)
    probe = runtimes.probe_input(x)
    with torch.inference_mode():
        info["max_abs_diff_vs_eager"] = runtimes.check_outputs("fx", traced(probe), ref(probe))
    info["fx_nodes"] = len(traced.graph.nodes)
    return runtimes.Prepared("fx", traced, lambda: fx.symbolic_trace(build().eval()), info)


@pytest.fixture
def fx_runtime():
    rt = runtimes.register_runtime(
        runtimes.Runtime(
            "fx",
            "torch.fx symbolic trace, run as generated code",
            _make_fx,
            devices=("cpu",),
            devices_hint="use --device cpu",
            fresh_worker=False,  # registered in this process only: a fresh worker would not know it
            no_breakdown="a test runtime",
        )
    )
    yield rt
    del runtimes.RUNTIMES["fx"]


def test_a_registered_runtime_is_run_compared_and_reported(fx_runtime, tmp_path):
    specs = [TargetSpec.make(op, (16, 8, 8), 1, 1) for op in OPS]
    options = RunOptions(device="cpu", runtimes=("eager", "fx"), budget_s=0.3, passes=1)
    summary = run_suite(specs, options, out_dir=tmp_path / "res")
    recs = read_records(summary.path)
    fx_recs = [r for r in recs if r["runtime"] == "fx"]
    assert len(fx_recs) == len(OPS) and all(r["status"] == "ok" for r in fx_recs)
    assert all(r["runtime_info"]["fx_nodes"] > 2 for r in fx_recs)

    rep = build_report([tmp_path / "res"], tmp_path / "rep")
    table = pd.read_csv(rep.csv["runtime_claims"])
    assert set(table.runtime) == {"eager", "fx"}
    assert set(table.claim_id) == {"pconv_vs_dwconv_flops", "pconv_vs_gconv_flops", "pconv_latency_vs_flops"}
    # The FLOPS claim is the paper's statistic: mean GMAC/s of pconv over mean GMAC/s of dwconv, here one map.
    by = {r["target"]["name"]: r for r in fx_recs}
    gmacs = {op: by[op]["cost"]["macs"] / (by[op]["stats"]["median_s"] / by[op]["batch"]) for op in ("pconv", "dwconv")}
    row = table[(table.runtime == "fx") & (table.claim_id == "pconv_vs_dwconv_flops")].iloc[0]
    assert row.ratio == pytest.approx(gmacs["pconv"] / gmacs["dwconv"], rel=1e-6)
    assert row.ci95_low <= row.ratio <= row.ci95_high
    assert "runtime_claims" in rep.figures and 'id="runtime-claims"' in rep.index.read_text()
    assert "fx" in listing("runtimes", "fx")[0][0]

    c = compare("pconv", "dwconv", device="cpu", shape=(16, 8, 8), layers=1, runtime="fx", budget_s=0.2, chunks=2)
    assert c.runtime == "fx" and len(c.rows) == 1 and c.rows[0].latency_ratio > 0
    assert c.rows[0].a.samples_s and c.rows[0].b.samples_s


def test_the_registry_refuses_a_second_runtime_of_the_same_name_and_unknown_names(fx_runtime):
    with pytest.raises(ValueError, match="already registered"):
        runtimes.register_runtime(fx_runtime)
    with pytest.raises(UserError, match="use one of eager, compile, onnxruntime, openvino"):
        runtimes.get_runtime("tensorrt")
    with pytest.raises(UserError, match="does not run on cuda; use --device cpu"):
        runtimes.check_runtime("fx", "cuda")


def test_the_shipped_runtimes_keep_their_flags():
    r = runtimes.RUNTIMES
    assert r["eager"].deepcopy_rounds and r["eager"].halve_on_oom and r["eager"].no_breakdown is None
    assert not r["compile"].fresh_worker and not r["compile"].halve_on_oom
    for name in ("compile", "onnxruntime", "openvino", "executorch"):
        assert r[name].no_breakdown and "--runtime eager" in r[name].no_breakdown
    assert r["openvino"].devices == ("cpu",) and r["onnxruntime"].devices == ("cpu", "cuda")


def test_the_runtimes_suite_is_table1_and_the_headline_networks():
    from fnbench.reference import HEADLINE_NETWORKS, TABLE1_OPS, TABLE1_SHAPES
    from fnbench.suites import get_suite

    specs = get_suite("runtimes").specs()
    ops = {(s.name, s.shape, s.layers) for s in specs if s.shape is not None}
    assert ops == {(op, tuple(sh), 10) for op in TABLE1_OPS for sh in TABLE1_SHAPES}
    assert [s.name for s in specs if s.shape is None] == list(HEADLINE_NETWORKS)
    assert "fasternet_t0" in HEADLINE_NETWORKS and len(HEADLINE_NETWORKS) == 4
