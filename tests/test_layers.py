"""Per-layer breakdown: rows partition the forward, kinds, exact sums under a cost-model clock, records, report."""

import json
import math
import subprocess

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from fnbench import layers, results
from fnbench.counting import count
from fnbench.report import breakdown as bd
from fnbench.timing import Measurement
from operators.pconv import PConv


class Mixed(nn.Module):
    """One of every kind the paper's argument is about, plus the glue between them."""

    def __init__(self):
        super().__init__()
        self.pconv = PConv(32, n_div=4)  # split, 3x3 conv on 8 channels, cat
        self.pw = nn.Conv2d(32, 64, 1)
        self.bn = nn.BatchNorm2d(64)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(64, 64, 3, padding=1, groups=64)
        self.g = nn.Conv2d(64, 64, 3, padding=1, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y = self.act(self.bn(self.pw(self.pconv(x))))
        a, b = torch.split(y, [32, 32], dim=1)
        y = torch.cat((self.dw(y)[:, :32] + a, self.g(y)[:, 32:] + b), dim=1)
        return self.fc(torch.flatten(self.pool(y), 1))


def _net():
    torch.manual_seed(0)
    net = Mixed().eval()
    with torch.no_grad():  # non-trivial running statistics, so folding changes the weights
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net, torch.randn(1, 32, 12, 12)


def test_rows_partition_the_macs_exactly_and_kinds_are_right():
    net, x = _net()
    rows = layers.record_layers(net, x)
    assert sum(r.macs for r in rows) == count(net, x, fvcore=False).macs
    kinds = {r.name: r.kind for r in rows}
    assert kinds["pconv.partial_conv3"] == "pconv"
    assert kinds["pw"] == "pwconv"
    assert kinds["bn"] == "norm"
    assert kinds["act"] == "act"
    assert kinds["dw"] == "dwconv"
    assert kinds["g"] == "gconv"
    assert kinds["pool"] == "pool"
    assert kinds["fc"] == "linear"
    assert kinds["pconv:split_with_sizes"] == "data" and kinds["pconv:cat"] == "data"
    assert (
        kinds[":split_with_sizes"] == "data" and kinds[":cat"] == "data" and kinds[":flatten"] == "data"
        if ":flatten" in kinds
        else kinds[":view"] == "data"
    )
    assert kinds[":add"] == "elementwise" and kinds[":add#2"] == "elementwise"
    # closed forms: a k×k conv is k²·C_in/groups·C_out·H·W MACs
    macs = {r.name: r.macs for r in rows}
    assert macs["pconv.partial_conv3"] == 9 * 8 * 8 * 12 * 12
    assert macs["pw"] == 32 * 64 * 12 * 12
    assert macs["dw"] == 9 * 64 * 12 * 12
    assert macs["g"] == 9 * 16 * 64 * 12 * 12
    assert macs["fc"] == 64 * 10
    params = {r.name: r.params for r in rows}
    assert params["g"] == 64 * 16 * 9 + 64 and params[":cat"] == 0
    assert [r.input_shape for r in rows if r.name == "dw"] == [[1, 64, 12, 12]]
    # the cat of PConv reads its two inputs and writes its output: 2 x 32x12x12 floats
    assert [r.bytes for r in rows if r.name == "pconv:cat"] == [2 * 32 * 12 * 12 * 4]


def test_kind_of_ops_and_modules():
    assert layers.module_kind(nn.Conv2d(8, 8, 3, groups=8)) == "dwconv"
    assert layers.module_kind(nn.Conv2d(8, 16, 3, groups=2)) == "gconv"
    assert layers.module_kind(nn.Conv2d(8, 16, 3)) == "conv"
    assert layers.module_kind(nn.Conv2d(8, 16, 1)) == "pwconv"
    assert layers.module_kind(nn.Hardswish()) == "act" and layers.module_kind(nn.LayerNorm(4)) == "norm"
    assert layers.op_kind("aten.softmax") == "attention"
    assert layers.op_kind("aten.transpose") == "data" and layers.op_kind("aten.mul") == "elementwise"


class _CostClock(TorchDispatchMode):
    """Deterministic cost model: 1 ms per executed aten op plus 1 ns per MAC."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        macs = 0
        if func.overloadpacket in flop_registry:
            macs = flop_registry[func.overloadpacket](*args, **kwargs, out_val=out) // 2
        self.seconds += 1e-3 + 1e-9 * macs
        return out


def _fake_time():
    now = [0.0]

    def clock():
        return now[0]

    def timer(step, iters):
        cost = _CostClock()
        # Outside inference mode the dispatch mode sees aten.convolution (which has a FLOP formula)
        # rather than the composite aten.conv2d: the same work, counted.
        with torch.inference_mode(False), torch.no_grad(), cost:
            step()
        seconds = max(cost.seconds, 1e-12)  # a row that runs no op (a folded BN's Identity): 1 ps, not 0
        now[0] += iters * seconds
        return iters * seconds

    return clock, timer


def test_layer_sum_equals_end_to_end_exactly_under_a_cost_model_clock():
    """Every aten op of the forward is in exactly one row: with time a function of the ops run,
    the per-layer sum is the end-to-end time to rounding."""
    net, x = _net()
    clock, timer = _fake_time()
    b = layers.measure_layers(net, x, budget_s=0.2, layer_budget_s=0.02, clock=clock, timer=timer, allocator=None)
    assert b.bn_folded == 1
    assert b.macs == count(net, x, fvcore=False).macs
    assert b.sum_s == pytest.approx(b.end_to_end.median_s, rel=1e-9)
    assert b.gap == pytest.approx(0.0, abs=1e-9) and b.gap_mean == pytest.approx(0.0, abs=1e-9)
    assert b.gap_min == pytest.approx(0.0, abs=1e-9)
    # and the arithmetic itself: the network ran N ops and M MACs
    n_ops = sum(sum(r.call.ops.values()) for r in b.rows)
    assert b.end_to_end.median_s == pytest.approx(n_ops * 1e-3 + b.macs * 1e-9, rel=1e-9)
    head = results.record_header(
        run_id="r",
        target={"name": "mixed", "shape": [32, 12, 12]},
        batch=1,
        device={"kind": "cpu", "key": "cpu-x"},
        threads=1,
        allocator="tuned",
        record=layers.RECORD,
    )
    rec = layers.breakdown_record(b, head, env={}, network_macs=b.macs, params=1, allocator_state=None)
    assert rec["record"] == "breakdown" and rec["shape"] == [32, 12, 12] and rec["method"] == layers.METHOD
    shares = [ly["share_time"] for ly in rec["layers"]]
    assert math.fsum(shares) == pytest.approx(1.0)
    assert rec["layers"][0]["round_medians_s"] and rec["cost"]["flops"] == 2 * b.macs


def test_cuda_rows_are_timed_on_the_device_by_the_engine(monkeypatch):
    """No GPU here: the control flow, with the engine faked. Every row and the whole network go to
    ``measure`` with device cuda (the engine synchronises around its timed blocks there), unfolded
    (BN was folded once, before recording), with the allocator applied once up front."""
    calls = []

    def fake_measure(module, x, *, device, budget_s, fold, allocator, **kw):
        calls.append((type(module).__name__, str(device), fold, allocator))
        return Measurement(samples_s=[1e-3] * 6, round_ids=list(range(6)), batch=1)

    applied = []
    monkeypatch.setattr(layers, "measure", fake_measure)
    monkeypatch.setattr(layers.allocators, "apply", lambda name: applied.append(name) or {})
    net, x = _net()
    b = layers.measure_layers(net, x, device="cuda", record_device="cpu", allocator="tuned")
    assert applied == ["tuned"]
    assert {c[1] for c in calls} == {"cuda"} and not any(c[2] for c in calls) and {c[3] for c in calls} == {None}
    assert calls[0][0] == calls[-1][0] == "Mixed" and len(calls) == len(b.rows) + 2
    assert all(c[0] == "_Replay" for c in calls[1:-1])
    # each replay keeps its inputs as buffers, so measure's .to(device) moves them with the layer
    assert all(len(list(r.call.replay.buffers())) >= 1 for r in b.rows if r.call.op is not None)


def test_replay_of_an_own_op_uses_fresh_copies_with_the_same_layout():
    x = torch.randn(2, 8, 4, 4)
    view = x[:, 2:6]  # not contiguous for batch 2
    r = layers._Replay(torch.ops.aten.cat.default, ([view, x[:, :2]], 1), {})
    out = r()
    assert torch.equal(out, torch.cat([view, x[:, :2]], 1))
    assert r.in0.stride() == view.stride() and r.in0.data_ptr() != view.data_ptr()
    wide = torch.randn(8, 1).expand(8, 5)  # stride 0: several elements share a location
    copy = layers._fresh_copy(wide)
    assert copy.stride() == wide.stride() and torch.equal(copy, wide) and copy.data_ptr() != wide.data_ptr()


def test_replay_of_an_op_with_a_boolean_result():
    x = torch.randn(4, 4)
    r = layers._Replay(torch.ops.aten.gt.Scalar, (x, 0.0), {})
    assert r.use_public_binding(x > 0)  # torch.gt: same booleans
    assert torch.equal(r(), x > 0)


def _record(name, key, layer_specs, e2e_s, created="2026-11-28T00:00:00Z"):
    lys = [
        {
            "name": f"l{i}",
            "kind": k,
            "macs": m,
            "bytes": by,
            "median_s": t,
            "ci95_low_s": t,
            "ci95_high_s": t,
            "params": 0,
            "input_shape": [1, 4],
            "share_time": None,
        }
        for i, (k, m, by, t) in enumerate(layer_specs)
    ]
    macs = sum(m for _, m, _, _ in layer_specs)
    return {
        "schema": 1,
        "record": "breakdown",
        "status": "ok",
        "run_id": "r",
        "created": created,
        "target": {"name": name},
        "batch": 1,
        "threads": 1,
        "runtime": "eager",
        "device": {"kind": "cpu", "key": key},
        "cost": {"macs": macs, "flops": 2 * macs},
        "layers": lys,
        "sum_s": math.fsum(t for *_, t in layer_specs),
        "gap": 0.0,
        "end_to_end": {
            "stats": {"median_s": e2e_s, "ci95_low_s": e2e_s, "ci95_high_s": e2e_s},
            "before_median_s": e2e_s,
            "after_median_s": e2e_s,
        },
    }


def test_predictions_against_closed_forms():
    ceil = {"gemm_float32_flop_per_s": 1e9, "copy_bytes_per_s": 1e8}
    rec = _record("n", "cpu-a", [("pwconv", 1000, 100, 3e-6), ("dwconv", 10, 1000, 2e-5), ("data", 0, 500, 4e-6)], 3e-5)
    p = bd.predictions(rec, ceil)
    assert p["flops_only_s"] == pytest.approx(2 * 1010 / 1e9)
    # per layer max(2·MACs/peak, bytes/bw): max(2e-6, 1e-6) + max(2e-8, 1e-5) + max(0, 5e-6)
    assert p["roofline_s"] == pytest.approx(2e-6 + 1e-5 + 5e-6)
    assert p["layer_sum_s"] == pytest.approx(2.7e-5) and p["layer_sum_error"] == pytest.approx(2.7e-5 / 3e-5 - 1)
    misses = bd.roofline_misses(rec, ceil, top=1)
    assert list(misses.name) == ["l1"] and misses.ratio[0] == pytest.approx(2e-5 / 1e-5)
    none = bd.predictions(rec, {})
    assert none["roofline_s"] is None and none["flops_only_s"] is None
    kt = bd.kind_table(rec).set_index("kind")
    assert kt.loc["pwconv", "share_macs"] == pytest.approx(1000 / 1010)
    assert kt.loc["dwconv", "share_time"] == pytest.approx(2e-5 / 2.7e-5)


def test_predictor_summary_rank_correlation_and_median_error():
    rows = [
        {
            "device_key": "d",
            "measured_s": m,
            "layer_sum_s": s,
            "layer_sum_error": s / m - 1,
            "flops_only_s": f,
            "flops_only_error": f / m - 1,
            "roofline_s": None,
            "roofline_error": None,
        }
        for m, s, f in ((1.0, 1.1, 3.0), (2.0, 2.4, 1.0), (3.0, 2.7, 2.0))
    ]
    summ = bd.predictor_summary(pd.DataFrame(rows)).set_index("predictor")
    assert summ.loc["per-layer sum", "spearman"] == pytest.approx(1.0)
    assert summ.loc["per-layer sum", "median_abs_error"] == pytest.approx(0.1)
    assert summ.loc["FLOPs-only", "spearman"] == pytest.approx(-0.5)  # ranks (3,1,2) vs (1,2,3)
    assert summ.loc["roofline", "networks"] == 0


def test_breakdown_lines_are_skipped_by_ordinary_readers(tmp_path):
    old = "tests/fixtures/20261128T044703Z-67df.jsonl"
    path = tmp_path / "mixed.jsonl"
    path.write_text(open(old).read() + json.dumps(_record("n", "k", [("conv", 1, 1, 1e-3)], 1e-3)) + "\n")
    assert len(results.read_records(path)) == len(results.read_records(old))
    assert len(results.load_results(path)) == len(results.load_results(old))
    got = results.read_breakdowns(tmp_path)
    assert [r["target"]["name"] for r in got] == ["n"]
    assert results.read_breakdowns(old) == []


def test_report_section_gives_tables_figure_and_html(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    recs = [
        _record(
            n, "cpu-a", [("pwconv", 1000 * (i + 1), 100, 3e-6 * (i + 1)), ("dwconv", 10, 1000, 2e-5)], 3e-5 * (i + 1)
        )
        for i, n in enumerate(("fasternet_t0", "mobilenetv2", "shufflenetv2_x1_5"))
    ]
    (res / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    from fnbench.report.build import _png_svg

    plots = []

    def draw(plot):
        plots.append(plot)
        return _png_svg(plot.draw())[0]

    part = bd.section([res], draw)
    assert [p.name for p in plots] == ["breakdown_kinds_cpu-a"]
    assert "No <code>fnbench probe</code> records" in part.html and 'src="data:image/png;base64,' in part.html
    pred = part.csv["breakdown_predictions"]
    assert list(pred.target) == ["fasternet_t0", "mobilenetv2", "shufflenetv2_x1_5"]
    per_net = [k for k in part.csv if k.startswith("breakdown_fasternet_t0")]
    assert len(part.csv[per_net[0]]) == 2


def test_cli_refuses_fused_runtimes_and_bad_input(fnbench_cmd, cli_env, tmp_path):
    for args, expected in (
        (["fasternet_t0", "--runtime", "onnxruntime"], "unsupported on --runtime onnxruntime"),
        (["fasternet_t0", "--runtime", "compile"], "unsupported on --runtime compile"),
        (["nosuchnet"], "unknown target"),
        ([], "name a target"),
        (["pconv", "--layer-budget", "0"], "must be positive"),
    ):
        proc = subprocess.run(
            fnbench_cmd + ["breakdown", *args, "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr
    assert not list(tmp_path.glob("*.jsonl"))


def test_cli_breakdown_json_of_a_small_stack(fnbench_cmd, cli_env, tmp_path):
    args = ["pconv", "--layers", "2", "--shape", "16x8x8"]
    proc = subprocess.run(
        fnbench_cmd
        + ["breakdown", *args, "--budget", "0.2", "--layer-budget", "0.01", "--out", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (rec,) = doc["records"]
    counted = json.loads(
        subprocess.run(
            fnbench_cmd + ["count", *args, "--json"], capture_output=True, text=True, env=cli_env, timeout=120
        ).stdout
    )
    assert rec["cost"]["macs"] == counted["macs"] == sum(ly["macs"] for ly in rec["layers"])
    assert [ly["kind"] for ly in rec["layers"]].count("pconv") == 2
    assert [ly["kind"] for ly in rec["layers"]].count("data") == 4  # a split and a cat per layer
    assert rec["record"] == "breakdown" and results.read_records(doc["path"]) == []
    assert doc["predictions"][0]["layer_sum_s"] == pytest.approx(rec["sum_s"])
