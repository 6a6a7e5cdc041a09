"""One claim engine: `compare --from` and the report give the same numbers and verdicts on the same files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from fnbench.report import build_report
from fnbench.verdicts import CLAIMS

FIXTURES = Path(__file__).parent / "fixtures"
#: The top-level fixture runs (a directory is read with its subfolders, which hold other set-ups).
TOP = sorted(FIXTURES.glob("*.jsonl"))


@pytest.fixture(scope="module")
def report_claims(tmp_path_factory):
    summary = build_report(TOP, tmp_path_factory.mktemp("report"))
    return pd.read_csv(summary.csv["verdicts"]).set_index("claim_id")


@pytest.mark.parametrize("other", ["dwconv", "gconv"])
def test_compare_from_and_report_agree(fnbench_cmd, cli_env, report_claims, other):
    res = subprocess.run(
        fnbench_cmd + ["compare", "pconv", other, *[a for f in TOP for a in ("--from", str(f))], "--json"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)["summary"]
    r = report_claims.loc[f"pconv_vs_{other}_flops"]
    assert s["claim_id"] == f"pconv_vs_{other}_flops"
    # the same numbers, not merely close: same rows, same statistic, same seed
    assert s["claim_ratio"] == pytest.approx(r.ratio, rel=1e-12)
    assert s["claim_ratio_ci95"] == pytest.approx([r.ci95_low, r.ci95_high], rel=1e-12)
    assert s["per_map_ratio"] == pytest.approx(r.per_map_ratio, rel=1e-12)
    assert s["claim_verdict"] == r.verdict and s["paper_ratio"] == pytest.approx(r.paper_ratio)
    assert s["unsettled"] == r.unsettled
    # the second verdict: does this device reproduce the paper's number (same statistic, same device class)
    assert s["reproduction"] == r.reproduction and s["measured_over_paper"] == pytest.approx(r.measured_over_paper)
    assert s["paper_match"] == r.paper_match and "paper's CPU column (Intel i9-9900X" in s["paper_match"]
    # the ratio is the paper's statistic (ratio of mean GMAC/s over the maps), recomputed from the table rows
    assert s["claim_statistic"].startswith(f"mean GMAC/s of pconv / mean GMAC/s of {other}")
    rows = json.loads(res.stdout)["rows"]

    def mean(side):
        return sum(x[side]["gmacs_per_s"] for x in rows) / len(rows)

    assert s["claim_ratio"] == pytest.approx(mean("a") / mean("b"), rel=1e-9)
    # the answer sentence: the report's sentence (device wording aside), then what to do about unsettled rows
    assert s["answer"].startswith("On cpu: AMD EPYC PConv reaches")
    body = r.answer.split(") ", 1)[1]  # drop "On cpu: AMD EPYC (1 thread"
    assert body in s["answer"]
    if r.unsettled:
        assert "To settle" in s["answer"] and "fnbench run --target" in s["answer"]


def test_every_claim_is_one_entry_with_its_statistic():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    for c in CLAIMS:
        assert c.direction in (">", "<") and c.statistic and c.needs and callable(c.evaluate)
        assert c.phrase(2.0)  # every claim can state its answer


def test_verdict_follows_the_interval():
    from fnbench.verdicts import verdict

    assert verdict(1.1, 1.3, 1.0, ">") == "supported"
    assert verdict(0.7, 0.9, 1.0, ">") == "contradicted"
    assert verdict(0.9, 1.1, 1.0, ">") == "inconclusive"
    assert verdict(0.7, 0.9, 1.0, "<") == "supported"
    assert verdict(12.0, 13.0, 16.0, "<") == "supported"
    assert verdict(15.0, 17.0, 16.0, "<") == "inconclusive"
    assert verdict(17.0, 18.0, 16.0, "<") == "contradicted"
    assert verdict(float("nan"), 1.2, 1.0, ">") == "inconclusive"


def _interleaved_rows(seed, *, cycles=True):
    """PConv and DWConv at Table 1's maps, as one interleaved run would give them: 5 passes x 5 cycles, a
    host whose speed drifts from cycle to cycle (30%), the same for every row; PConv 3x DWConv's FLOPS."""
    import numpy as np

    rng = np.random.default_rng(seed)
    drift = rng.lognormal(0.0, 0.3, size=(5, 5))
    rows = []
    for shape, macs in (("96x56x56", 1.6e8), ("192x28x28", 1.6e8), ("384x14x14", 1.6e8), ("768x7x7", 1.6e8)):
        for target, gmacs in (("pconv", 30.0), ("dwconv", 10.0)):
            base = macs / (gmacs * 1e9)
            samples, rounds, workers, keys = [], [], [], []
            for p in range(5):
                for k in range(5):
                    level = base * drift[p, k] * rng.lognormal(0.0, 0.01)
                    samples += [level] * 3
                    rounds += [p * 5 + k] * 3
                    workers += [p] * 3
                    keys += [("run", p, k)] * 3
            med = float(np.median([s for s in samples[::3]]))
            rows.append(
                dict(
                    target=target,
                    shape=shape,
                    layers=10,
                    options="{}",
                    status="ok",
                    macs=macs,
                    batch=1,
                    samples_s=samples,
                    round_ids=rounds,
                    worker_ids=workers,
                    cycle_keys=keys if cycles else None,
                    median_s=med,
                    stable=True,
                )
            )
    return rows


def test_rows_of_an_interleaved_run_are_paired_by_cycle_and_the_common_drift_cancels():
    from fnbench.verdicts import evaluate

    claim = next(c for c in CLAIMS if c.id == "pconv_vs_dwconv_flops")
    paired = evaluate(claim, _interleaved_rows(0), kind="cpu", seed=1)
    alone = evaluate(claim, _interleaved_rows(0, cycles=False), kind="cpu", seed=1)
    assert "rows paired by cycle (all resampled at the same moments)" in paired["note"]
    assert "rows unpaired (measured one after another)" in alone["note"]
    assert paired["ratio"] == pytest.approx(3.0, rel=0.02) and alone["ratio"] == paired["ratio"]
    assert paired["ci95_low"] <= 3.0 <= paired["ci95_high"]
    # the host's drift hits both rows of every cycle alike: paired, it cancels; unpaired, it widens the interval
    assert (paired["ci95_high"] - paired["ci95_low"]) < 0.2 * (alone["ci95_high"] - alone["ci95_low"])


def test_claims_on_contended_rows_say_so():
    from fnbench.verdicts import evaluate

    claim = next(c for c in CLAIMS if c.id == "pconv_vs_dwconv_flops")
    rows = _interleaved_rows(0)
    rows[1]["wait_fraction"] = 0.31  # dwconv at 96x56x56 shared its core
    note = evaluate(claim, rows, kind="cpu", seed=1)["note"]
    assert "1 of 8 rows contended (waited for a CPU up to 31% of their timed time)" in note
    rows[1]["wait_fraction"] = 0.01
    assert "contended" not in evaluate(claim, rows, kind="cpu", seed=1)["note"]
