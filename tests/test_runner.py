"""run_suite: one durable record per target, failures recorded and skipped past, resume measures the rest."""

import pytest

from fnbench import runner
from fnbench.cli import console
from fnbench.errors import UserError
from fnbench.options import RunOptions
from fnbench.results import read_records
from fnbench.suites import get_suite
from fnbench.timing import Measurement

CPU = RunOptions(device="cpu")
IN_PROCESS = RunOptions(device="cpu", workers=0)


def fake_measure(module, x, **kw):
    n = sum(p.numel() for p in module.parameters())
    if n == 0:
        raise RuntimeError("boom")
    base = 1e-3 * (1 + n / 1e6)
    return Measurement(samples_s=[base] * 12, round_ids=[i // 2 for i in range(12)], batch=int(x.shape[0]))


class FakeMeasurer:
    """A measurer for run_suite: builds each target and times it with ``fn`` instead of the clock."""

    def __init__(self, fn):
        self.fn = fn
        self.closed = False

    def whole(self, pending, run):
        t = pending.target
        return self.fn(t.build(run.seed), t.example_input(seed=run.seed)), {"runtime": pending.conditions.runtime}

    def one_pass(self, pending, pass_no, run):
        raise AssertionError("workers=0 measures whole targets only")

    def close(self):
        self.closed = True


class FakeCount:
    params, macs, mem_bytes_counted = 1, 7, 99


@pytest.fixture(autouse=True)
def no_counting(monkeypatch):
    """Counting has its own tests; here it would only cost time."""
    import fnbench.counting

    monkeypatch.setattr(fnbench.counting, "count", lambda module, x, **kw: FakeCount())


@pytest.fixture
def specs():
    return get_suite("quick").specs()  # conv, gconv, dwconv, pconv at 192x28x28, 2 layers


def test_records_written_failures_kept_and_resume(tmp_path, monkeypatch, specs):
    calls = []

    def measure(module, x, **kw):
        calls.append(type(module).__name__)
        if len(calls) == 3:
            raise RuntimeError("boom on the third target")
        return fake_measure(module, x)

    measurer = FakeMeasurer(measure)
    s = runner.run_suite(specs, IN_PROCESS, out_dir=tmp_path, measurer=measurer)
    assert measurer.closed
    recs = read_records(s.path)
    assert s.path == tmp_path / f"{s.run_id}.jsonl"
    assert [r["status"] for r in recs] == ["ok", "ok", "failed", "ok"]
    assert "boom on the third target" in recs[2]["error"]
    ok = recs[0]
    assert ok["schema"] == 1 and ok["threads"] == 1 and ok["runtime"] == "eager"
    assert ok["cost"]["macs"] == 2 * 28 * 28 * 9 * 192 * 192  # analytic, two layers
    assert ok["cost"]["macs_counted"] == 7 and ok["cost"]["mem_bytes_counted"] == 99
    assert ok["stats"]["median_s"] == ok["samples_s"][0] and ok["stats"]["stable"] is True
    assert len(ok["rounds"]) == len(ok["samples_s"]) == 12

    calls.clear()
    s2 = runner.run_suite(specs, IN_PROCESS, out_dir=tmp_path, resume=s.run_id, measurer=FakeMeasurer(fake_measure))
    assert s2.measured == 1 and s2.skipped == 3  # only the failed one is retried
    assert [r["status"] for r in s2.records] == ["ok", "ok", "failed", "ok", "ok"]
    table = console.format_table(s2.records)
    assert table.row_count == 5


def test_bad_input_fails_before_measuring(tmp_path, monkeypatch, specs):
    never = FakeMeasurer(lambda *a, **k: pytest.fail("measured despite bad input"))
    from fnbench.targets import TargetSpec

    with pytest.raises(UserError, match="unknown target"):
        runner.run_suite([*specs, TargetSpec.make("no_such_op")], CPU, out_dir=tmp_path, measurer=never)
    with pytest.raises(UserError, match="no run"):
        runner.run_suite(specs, CPU, out_dir=tmp_path, resume="20000101T000000Z-0000", measurer=never)
    assert list(tmp_path.iterdir()) == []


def test_rows_that_spent_little_of_their_time_timing_are_named_under_the_table():
    def rec(name, fraction):
        st = {"stable": True, "precision": 0.05, "timed_fraction": fraction}
        return {"status": "ok", "target": {"name": name}, "shape": [96, 56, 56], "stats": st}

    notes = console.table_notes([rec("pconv", 0.8), rec("fasternet_t0", 0.42), rec("old", None)])
    (line,) = [n for n in notes if n.startswith("timed:")]
    assert "1 row(s)" in line and "fasternet_t0 96x56x56 42%" in line and "pconv" not in line
    assert not [n for n in console.table_notes([rec("pconv", 0.5)]) if n.startswith("timed:")]


def test_rows_that_waited_for_a_cpu_are_flagged_as_contended():
    def rec(name, wait):
        return {
            "status": "ok",
            "target": {"name": name},
            "shape": [8],
            "stats": {"stable": True, "wait_fraction": wait},
        }

    notes = console.table_notes([rec("pconv", 0.01), rec("conv", 0.4), rec("old", None)])
    (line,) = [n for n in notes if "contended" in n]
    assert "1 row(s)" in line and "conv 8 40%" in line and "pconv" not in line
