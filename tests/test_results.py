"""Result files: durable appends, torn last lines, schema versions, corrupt lines, loading."""

import json
import os
import re

import pytest

from fnbench import results
from fnbench.errors import FnbenchWarning, UserError


def rec(name="pconv", shape=(96, 56, 56), median=0.005, status="ok", **kw):
    r = {
        "schema": results.SCHEMA_VERSION,
        "run_id": "20261128T043000Z-3fa2",
        "created": "2026-11-28T04:30:00Z",
        "status": status,
        "target": {"name": name, "kind": "operator", "shape": list(shape), "layers": 10, "options": {}, "batch": 1},
        "shape": list(shape),
        "batch": 1,
        "dtype": "float32",
        "device": {"kind": "cpu", "name": "Test CPU", "arch": "x86_64", "key": "cpu-abc"},
        "runtime": "eager",
        "threads": 1,
        "cost": {
            "params": 10,
            "macs": 162_000_000,
            "flops": 324_000_000,
            "mem_bytes_analytic": 100,
            "mem_bytes_counted": 200,
        },
        "samples_s": [median * 0.99, median, median * 1.01],
        "rounds": [0, 1, 2],
        "stats": {
            "median_s": median,
            "iqr_s": 0.0,
            "p90_s": median,
            "ci95_low_s": median * 0.98,
            "ci95_high_s": median * 1.02,
            "n": 3,
            "stable": True,
        },
        "env": {"torch": "2.x", "load_avg": [0.1, 0.2, 0.3]},
    }
    r.update(kw)
    return r


def test_run_id_format():
    rid = results.new_run_id()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", rid)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", results.utc_now())


def test_append_one_line_per_record_with_fsync(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "sub" / "run.jsonl"
    w = results.ResultWriter(path)
    w.write(rec("pconv"))
    assert len(path.read_text().splitlines()) == 1  # on disk before the next one starts
    w.write(rec("dwconv", stats={"median_s": float("inf")}))  # non-finite becomes null, never invalid JSON
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and len(synced) == 2
    assert json.loads(lines[1])["stats"]["median_s"] is None
    assert json.loads(lines[1])["id"] == results.record_id(rec("dwconv"))  # every record carries its id
    got = results.read_records(path)
    assert [r["target"]["name"] for r in got] == ["pconv", "dwconv"]


def test_truncated_last_line_warns_and_is_skipped(tmp_path):
    path = tmp_path / "run.jsonl"
    good = json.dumps(rec("pconv"))
    path.write_text(good + "\n" + json.dumps(rec("conv"))[:57])
    with pytest.warns(FnbenchWarning, match="line 2 is cut short"):
        got = results.read_records(path)
    assert [r["target"]["name"] for r in got] == ["pconv"]
    # resuming sets the torn piece aside (kept, not dropped) and appends after the last whole line
    with pytest.warns(FnbenchWarning, match="moved to run.jsonl.torn"):
        with results.RunFile(tmp_path, "run", resume=True) as rf:
            rf.writer.write(rec("gconv"))
    assert (tmp_path / "run.jsonl.torn").read_text() == json.dumps(rec("conv"))[:57] + "\n"
    assert [r["target"]["name"] for r in results.read_records(path)] == ["pconv", "gconv"]


def test_unknown_schema_is_a_user_error(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps(rec(schema=results.SCHEMA_VERSION + 1)) + "\n")
    with pytest.raises(UserError, match=r"newer fnbench \(schema 2.*upgrade fnbench or remove the file"):
        results.read_records(path)


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rec()) + "\n{not json\n" + json.dumps(rec("conv")) + "\n")
    with pytest.raises(UserError) as e:
        results.read_records(path)
    assert "bad.jsonl" in str(e.value) and "line 2" in str(e.value)


def test_load_results_flattens_with_units(tmp_path):
    d = tmp_path / "results"
    results.ResultWriter(d / "a.jsonl").write(rec("pconv", median=0.005))
    results.ResultWriter(d / "b.jsonl").write(rec("dwconv", median=0.002))
    df = results.load_results(d)
    assert list(df["target"]) == ["pconv", "dwconv"]
    row = df.iloc[0]
    assert row["median_s"] == 0.005 and row["shape"] == "96x56x56"
    assert row["gmacs_per_s"] == pytest.approx(0.162 / 0.005)
    assert row["gflops_per_s"] == pytest.approx(2 * 0.162 / 0.005)
    # statistics come from the samples (3 rounds: the CI is their range), not the stored block
    assert row["gmacs_per_s_ci95_low"] == pytest.approx(0.162 / (0.005 * 1.01))
    assert row["gmacs_per_s_ci95_high"] == pytest.approx(0.162 / (0.005 * 0.99))
    assert row["throughput_per_s"] == pytest.approx(200.0)
    assert row["env_torch"] == "2.x" and row["device_key"] == "cpu-abc"
    assert len(results.load_results([d / "a.jsonl"])) == 1
    with pytest.raises(UserError, match="no result file"):
        results.load_results(tmp_path / "missing")


def test_load_results_keeps_probe_rows_apart(tmp_path):
    d = tmp_path / "results"
    probe = rec("probe:gemm_float32", median=0.01)
    probe["target"]["kind"] = "probe"
    results.ResultWriter(d / "a.jsonl").write(rec("pconv", median=0.005))
    results.ResultWriter(d / "p.jsonl").write(probe)
    assert list(results.load_results(d).target) == ["pconv"]
    assert list(results.load_results(d, rows="probes").target) == ["probe:gemm_float32"]
    both = results.load_results(d, rows="all")
    assert dict(zip(both.target, both.row_kind)) == {"pconv": "measurement", "probe:gemm_float32": "probe"}
    with pytest.raises(ValueError, match="use one of measurements, probes, all"):
        results.load_results(d, rows="operators")


def test_unstable_reason_says_how_far_the_ci_got():
    assert (
        results.unstable_reason({"rel_ci_halfwidth": 0.05, "precision": 0.02})
        == "95% CI ±5.0% > ±2% target within the budget"
    )
    assert "reached with too few rounds" in results.unstable_reason({"rel_ci_halfwidth": 0.01, "precision": 0.02})
    for st in (
        {},
        {"rel_ci_halfwidth": float("nan"), "precision": 0.02},
        {"rel_ci_halfwidth": 0.05, "precision": None},
        {"rel_ci_halfwidth": 0.05, "precision": float("nan")},
    ):  # a loaded row without a target
        assert results.unstable_reason(st) == "too few rounds for a 95% interval"


def test_probe_rate_and_ceilings():
    assert results.probe_rate("probe:copy", 0, 8e9, 2.0) == ("copy_bytes_per_s", 4e9)
    assert results.probe_rate("probe:gemm_float32", 2e9, 1e6, 0.5) == ("gemm_float32_flop_per_s", 4e9)
    assert results.probe_rate("probe:gemm_float32", None, 1e6, 0.5) == ("gemm_float32_flop_per_s", None)

    def rec(name, flops, mem, med):
        return {
            "target": {"name": name},
            "cost": {"flops": flops, "mem_bytes_counted": mem},
            "stats": {"median_s": med},
        }

    best = results.ceilings(
        [
            rec("probe:gemm_float32", 2e9, 1, 0.5),
            rec("probe:gemm_float32", 2e9, 1, 1.0),
            rec("probe:conv_float32", 6e9, 1, 1.0),
            rec("probe:copy", 0, 8e9, 2.0),
        ]
    )
    assert best == {
        "gemm_float32_flop_per_s": 4e9,
        "conv_float32_flop_per_s": 6e9,
        "compute_float32_flop_per_s": 6e9,
        "copy_bytes_per_s": 4e9,
    }
