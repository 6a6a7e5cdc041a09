"""The report built from recorded result files: CSV contents, figure files, HTML, and a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fnbench.errors import UserError
from fnbench.report import build_report
from fnbench.results import read_records
from fnbench.verdicts import CLAIM_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
#: The top-level fixture runs (a directory is read with its subfolders, which hold other set-ups).
TOP = sorted(FIXTURES.glob("*.jsonl"))
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
FIGURES = ("ratio_per_map", "table1", "latency_vs_macs", "flops_vs_flops", "roofline")
PAGE_IMAGES = len(FIGURES) + 1  # and the forest plot at the top


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(TOP, out)


def _records():
    return [r for f in sorted(FIXTURES.glob("*.jsonl")) for r in read_records(f)]


def _write(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _fixtures_copy(tmp_path: Path) -> Path:
    """The recorded fixtures copied into ``tmp_path/in``, for a test to add its own records beside them."""
    d = tmp_path / "in"
    d.mkdir()
    for f in FIXTURES.glob("*.jsonl"):
        shutil.copy(f, d / f.name)
    return d


def _probe(name, *, flops=None, mem=None, median_s, size, device):
    return {
        "schema": 1,
        "run_id": "probe-run",
        "created": "2026-11-28T05:00:00Z",
        "status": "ok",
        "target": {"name": name, "kind": "probe", "shape": [size], "layers": None, "options": {}, "batch": 1},
        "shape": [size],
        "batch": 1,
        "dtype": "float32",
        "device": device,
        "runtime": "eager",
        "threads": 1,
        "cost": {"macs": flops // 2 if flops else None, "flops": flops, "mem_bytes_counted": mem},
        "samples_s": [median_s] * 5,
        "rounds": [0, 1, 2, 3, 4],
        "stats": {"median_s": median_s, "ci95_low_s": median_s, "ci95_high_s": median_s, "n": 5, "stable": True},
        "env": {},
    }


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """Fixtures + the same records as a second device + a repeat run + a failure + probe records."""
    d = tmp_path_factory.mktemp("merged_in")
    recs = _records()
    for f in FIXTURES.glob("*.jsonl"):
        shutil.copy(f, d / f.name)
    # a repeat of the operator run on the same device (another run id, later)
    ops = [
        dict(r, run_id="repeat-run", created="2026-11-29T00:00:00Z") for r in recs if r["target"]["kind"] == "operator"
    ]
    _write(d / "repeat-run.jsonl", ops)
    # the same records as if taken on another machine: a different device key and name
    other = []
    for r in recs:
        r = json.loads(json.dumps(r))
        r["device"].update(name="Other CPU", key="cpu-otherhost1")
        r["run_id"] = "other-run"
        other.append(r)
    failed = dict(
        json.loads(json.dumps(other[0])),
        status="failed",
        error="RuntimeError: synthetic out of memory",
        samples_s=[],
        rounds=[],
        stats=None,
        cost=None,
    )
    failed["target"] = dict(failed["target"], name="tconv")
    other.append(failed)
    _write(d / "other-run.jsonl", other)
    dev = recs[0]["device"]
    probes = [
        _probe("probe:gemm_float32", flops=2 * 10**9, median_s=0.05, size=512, device=dev),
        _probe("probe:gemm_float32", flops=16 * 10**9, median_s=0.2, size=1024, device=dev),  # the max: 80 GFLOP/s
        _probe("probe:copy", mem=4 * 10**8, median_s=0.04, size=10**8, device=dev),
    ]  # 10 GB/s
    _write(d / "probe-run.jsonl", probes)
    return build_report([d], tmp_path_factory.mktemp("merged_out")), recs


def test_files_written(report):
    out = report.out_dir
    assert report.index == out / "index.html" and report.index.exists()
    for name in ("results", "verdicts", "paper_vs_device", "failures", "ceilings", "environment"):
        assert (out / f"{name}.csv").exists()
    assert set(report.figures) == {*FIGURES, "forest"} and not report.not_drawn
    assert report.devices == ["cpu: AMD EPYC"] and report.n_rows == len(_records())


def test_results_csv_units_and_values(report):
    res = pd.read_csv(report.csv["results"])
    for col in (
        "median_ms",
        "ci95_low_ms",
        "ci95_high_ms",
        "gmacs_per_s",
        "gmacs_per_s_ci95_low",
        "gmacs_per_s_ci95_high",
        "throughput_samples_per_s",
        "macs",
        "intensity_flop_per_byte",
        "stable",
    ):
        assert col in res.columns
    recs = {(r["target"]["name"], "x".join(map(str, r["shape"])), r["target"]["layers"]): r for r in _records()}
    assert len(res) == len(recs)
    for row in res.itertuples():
        layers = None if pd.isna(row.layers) else int(row.layers)
        rec = recs[(row.target, row.shape, layers)]
        med = rec["stats"]["median_s"]
        assert row.median_ms == pytest.approx(med * 1e3, rel=1e-12)
        assert row.gmacs_per_s == pytest.approx(row.macs / (row.median_ms / 1e3) / 1e9, rel=1e-9)
        assert row.gmacs_per_s_ci95_low <= row.gmacs_per_s <= row.gmacs_per_s_ci95_high
        assert row.intensity_flop_per_byte == pytest.approx(2 * row.macs / row.mem_bytes_counted)
        assert bool(row.stable) == bool(rec["stats"]["stable"])
        # tails of the raw samples (recomputed on load, so older records have them too); p99 from 100 samples
        s = np.asarray(rec["samples_s"])
        assert row.p50_ms == pytest.approx(np.median(s) * 1e3) and row.p90_ms == pytest.approx(
            np.percentile(s, 90) * 1e3
        )
        if s.size >= 100:
            assert row.p99_ms == pytest.approx(np.percentile(s, 99) * 1e3)
        else:
            assert np.isnan(row.p99_ms)
        assert 0 < row.timed_fraction <= 1  # timed seconds from the samples over the stored wall time


def test_peak_memory_timed_and_wait_shares_reach_the_csv_and_the_page(tmp_path):
    d = _fixtures_copy(tmp_path)
    recs = [json.loads(line) for line in (d / TOP[0].name).read_text().splitlines()]
    for r in recs:
        if r.get("status", "ok") == "ok":
            r["stats"].update(peak_memory_bytes=3 * 2**20, peak_memory_method="test")
            rounds = list(dict.fromkeys(r["rounds"]))  # a recording from before faults were counted: count them now
            iters = [r["rounds"].count(k) for k in rounds]
            r["faults"] = {"minor": [0] * len(iters), "major": [0] * len(iters), "iters": iters}
            r["faults"]["wait_s"] = [0.0] * len(iters)
    _write(d / TOP[0].name, recs)
    out = build_report([d], tmp_path / "out")
    res = pd.read_csv(out.csv["results"])
    mine = res[res.run_ids.astype(str).str.contains(recs[0]["run_id"])]
    assert (mine.peak_memory_bytes == 3 * 2**20).all() and (mine.wait_fraction == 0).all()
    page = (out.out_dir / "index.html").read_text()
    assert "peak memory of a forward, MiB" in page and ">3.00<" in page and "p50 / p90 / p99, ms" in page


def test_verdicts_and_paper_csv(report):
    v = pd.read_csv(report.csv["verdicts"])
    assert list(v.columns) == CLAIM_COLUMNS and len(v) == 8
    p = pd.read_csv(report.csv["paper_vs_device"])
    ops = p[p.item == "operator"]
    assert len(ops) == 32 and set(ops.quantity) == {"GMAC/s", "latency"}  # 16 cells × (GMAC/s, ms) on a CPU
    cell = ops[(ops.target == "pconv") & (ops["shape"] == "96x56x56") & (ops.quantity == "GMAC/s")].iloc[0]
    assert cell.paper_value == 29.67 and cell.unit == "GMAC/s"
    assert cell.ratio_measured_over_paper == pytest.approx(cell.measured_value / 29.67)
    t0 = p[(p.target == "fasternet_t0") & (p.quantity == "latency")].iloc[0]
    assert t0.paper_value == 9.2 and t0.unit == "ms" and t0.status == "ok"
    assert (p[p.paper_name == "Swin-B"].status == "not measured").all()


def test_figures_are_valid_png_and_svg(report):
    for name in FIGURES:
        png, svg = report.figures[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            assert im.size[0] > 300 and im.size[1] > 200
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg")


def test_html_is_self_contained(report):
    html = report.index.read_text()
    assert html.count("<img") == PAGE_IMAGES and html.count('src="data:image/png;base64,') == PAGE_IMAGES
    for bad in ("<script", "<link", "http://", "https://", "@import", "url("):
        assert bad not in html
    for unit in ("GMAC/s", "ms", "FLOPs (MACs)"):
        assert unit in html
    assert "⚠ unstable" in html  # the fixtures hold unstable rows; they are flagged
    assert "No probe records for cpu: AMD EPYC" in html


def test_cross_device_merge_repeats_failures_and_ceilings(merged):
    summary, recs = merged
    assert summary.devices == ["cpu: AMD EPYC", "cpu: Other CPU"]
    res = pd.read_csv(summary.csv["results"])
    # two devices stay apart; the repeat run pooled into the first device's operator rows
    assert set(res.device) == {"cpu: AMD EPYC", "cpu: Other CPU"}
    here = res[res.device == "cpu: AMD EPYC"]
    n_ops = sum(r["target"]["kind"] == "operator" for r in recs)
    assert len(here) == len(recs) and (here[here.target_kind == "operator"].n_repeats == 2).sum() == n_ops
    pooled = here[(here.target == "pconv") & (here.layers == 10) & (here["shape"] == "192x28x28")].iloc[0]
    rec = next(
        r
        for r in recs
        if r["target"]["name"] == "pconv" and r["target"]["layers"] == 10 and r["shape"] == [192, 28, 28]
    )
    assert pooled.n_samples == 2 * len(rec["samples_s"]) and pooled.run_ids.count(",") == 1
    assert pooled.median_ms == pytest.approx(rec["stats"]["median_s"] * 1e3, rel=0.1)
    # failures listed with their reason
    f = pd.read_csv(summary.csv["failures"])
    assert list(f.target) == ["tconv"] and "synthetic out of memory" in f.error.iloc[0]
    assert summary.n_failed == 1
    html = summary.index.read_text()
    assert "synthetic out of memory" in html and "Other CPU" in html
    # verdicts: one set of claims per device
    v = pd.read_csv(summary.csv["verdicts"])
    assert v.groupby("device").size().to_dict() == {"cpu: AMD EPYC": 8, "cpu: Other CPU": 8}
    # ceilings: max over probe sizes; bandwidth from probe:copy
    c = pd.read_csv(summary.csv["ceilings"]).set_index("probe")
    assert c.loc["probe:gemm_float32", "peak_gflop_per_s"] == pytest.approx(80.0)
    assert c.loc["probe:copy", "bandwidth_gb_per_s"] == pytest.approx(10.0)
    assert "probe:" not in " ".join(res.target)  # probes are ceilings, not results
    assert "No probe records for cpu: Other CPU" in html and "No probe records for cpu: AMD EPYC" not in html
    env = pd.read_csv(summary.csv["environment"])
    assert {"torch", "cpu_model", "runs"} <= set(env.key)
    # the Table-1 analog has one column group per device
    assert html.count('<th colspan="4">') == 2


def test_empty_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no result records"):
        build_report([tmp_path], tmp_path / "out")


_CHECK = """<script>window.__errs=[];
window.addEventListener('error',function(e){window.__errs.push(String(e.message||('resource: '+(e.target&&(e.target.src||e.target.href)||'?')).slice(0,80)))},true);
var _ce=console.error;console.error=function(){window.__errs.push(Array.prototype.join.call(arguments,' '));_ce.apply(console,arguments)};
window.addEventListener('load',function(){var imgs=Array.prototype.map.call(document.images,function(i){return {alt:i.alt,complete:i.complete,w:i.naturalWidth}});
var d=document.createElement('pre');d.id='fnbench-check';d.textContent=JSON.stringify({images:imgs,errors:window.__errs});document.body.appendChild(d)});</script>"""


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={user_dir}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _run_check(report, script: str, marker: str, user_dir: Path, *args: str):
    """Load a copy of the page with ``script`` first in <head> (the page itself has no script) and read
    back the JSON it leaves in ``<pre id=marker>``."""
    probe_page = report.out_dir / f"index.{marker}.html"
    probe_page.write_text(report.index.read_text().replace("<head>", "<head>" + script, 1))
    try:
        r = _chromium(*args, "--virtual-time-budget=5000", "--dump-dom", probe_page.as_uri(), user_dir=user_dir)
    finally:
        probe_page.unlink()
    assert r.returncode == 0, r.stderr[-2000:]
    start = r.stdout.index(f'<pre id="{marker}">') + len(f'<pre id="{marker}">')
    return r, json.loads(unescape(r.stdout[start : r.stdout.index("</pre>", start)]))


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package `chromium`); `make test` installs it"
)
def test_index_html_in_headless_chromium(report, tmp_path):
    r, check = _run_check(report, _CHECK, "fnbench-check", tmp_path / "ud1")
    assert len(check["images"]) == PAGE_IMAGES
    assert all(i["complete"] and i["w"] > 0 for i in check["images"]), check["images"]
    assert check["errors"] == []
    console_errors = [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln and "ERROR" in ln.upper()]
    assert console_errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    r = _chromium(
        "--hide-scrollbars",
        "--window-size=1300,2400",
        f"--screenshot={shot}",
        report.index.as_uri(),
        user_dir=tmp_path / "ud2",
    )
    assert r.returncode == 0 and shot.exists()
    with Image.open(shot) as im:
        assert im.size == (1300, 2400)


RUNTIME_FIXTURE = FIXTURES / "runtimes"  # a real run: pconv and dwconv 64x28x28 ×3 under eager, onnxruntime, compile


def test_runtime_comparison_from_a_real_multi_runtime_run(tmp_path):
    summary = build_report([RUNTIME_FIXTURE], tmp_path / "rt")
    import pandas as pd

    table = pd.read_csv(summary.csv["runtime_comparison"])
    assert sorted(table.target) == ["dwconv", "pconv"]
    recs = [r for f in RUNTIME_FIXTURE.glob("*.jsonl") for r in read_records(f)]
    for r in recs:
        row = table[table.target == r["target"]["name"]].iloc[0]
        want = r["cost"]["macs"] / r["stats"]["median_s"] / 1e9
        assert row[f"gmacs_per_s[{r['runtime']}]"] == pytest.approx(want, rel=1e-9)
    html = summary.index.read_text()
    assert "GMAC/s per runtime" in html and "Does each claim hold under each runtime?" in html


def test_report_runtime_filter(tmp_path):
    import pandas as pd

    summary = build_report([RUNTIME_FIXTURE], tmp_path / "ort", runtimes=["onnxruntime"])
    results = pd.read_csv(summary.csv["results"])
    assert set(results.runtime) == {"onnxruntime"} and len(results) == 2
    with pytest.raises(UserError, match="no measurements with runtime tensorrt"):
        build_report([RUNTIME_FIXTURE], tmp_path / "none", runtimes=["tensorrt"])


def test_channels_last_is_kept_apart_from_contiguous(tmp_path):
    """A real run: pconv ×2 under eager in channels_last (and onnxruntime refusing it)."""
    import pandas as pd

    summary = build_report([RUNTIME_FIXTURE, FIXTURES / "channels_last"], tmp_path / "cl")
    results = pd.read_csv(summary.csv["results"])
    cl = results[results.memory_format == "channels_last"]
    assert set(cl.runtime) == {"eager channels_last", "onnxruntime channels_last"}
    assert (cl[cl.runtime == "onnxruntime channels_last"].status == "unsupported").all()
    assert set(results[results.memory_format == "contiguous"].runtime) == {"eager", "onnxruntime", "compile"}
    only_eager = pd.read_csv(
        build_report([FIXTURES / "channels_last"], tmp_path / "e", runtimes=["eager"]).csv["results"]
    )
    assert list(only_eager.runtime) == ["eager channels_last"]


@pytest.mark.parametrize(
    "name, noted",
    [
        ("Apple M2", True),
        ("4x Cortex-A55 + 4x Cortex-A76", True),
        ("Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)", False),
    ],
)
def test_an_arm_device_that_is_not_the_papers_core_is_flagged(tmp_path, name, noted):
    from fnbench.merge import load_frame
    from fnbench.report.tables import paper_vs_device

    recs = []
    for r in _records():
        r = json.loads(json.dumps(r))
        r["device"].update(kind="arm", name=name, arch="arm64", key="arm-host1")
        recs.append(r)
    _write(tmp_path / "arm.jsonl", recs)
    pvd = paper_vs_device(load_frame([tmp_path]))
    assert not pvd.empty and set(pvd.paper_device) == {"arm"}
    notes = set(pvd.device_note)
    if noted:
        assert notes == {
            f"{name} is not the paper's Cortex-A72 (Raspberry Pi 4B): measured / paper compares two different CPUs"
        }
    else:
        assert notes == {""}
    html = build_report([tmp_path], tmp_path / "report").index.read_text()
    assert ("is not the paper&#x27;s Cortex-A72" in html or "is not the paper's Cortex-A72" in html) is noted


def test_cpu_devices_carry_no_device_note(report):
    p = pd.read_csv(report.csv["paper_vs_device"])
    assert p.device_note.isna().all() or set(p.device_note.fillna("")) == {""}


_FIRST_SCREEN = """<script>window.addEventListener('load',function(){
var h=window.innerHeight,w=window.innerWidth;function box(e){var r=e.getBoundingClientRect();return {top:r.top,bottom:r.bottom,w:r.width}}
var forest=document.querySelector('#fig-forest img');
var rows=Array.prototype.map.call(document.querySelectorAll('.compact tbody tr'),function(tr){var b=box(tr);b.text=tr.textContent;return b});
var imgs=Array.prototype.map.call(document.images,function(i){return i.getBoundingClientRect().width});
var d=document.createElement('pre');d.id='fnbench-screen';
d.textContent=JSON.stringify({w:w,h:h,forest:forest?box(forest):null,rows:rows,imgs:imgs});
document.body.appendChild(d)});</script>"""


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package `chromium`); `make test` installs it"
)
def test_first_screen_holds_the_forest_plot_and_the_compact_table(report, tmp_path):
    """At 1400×900 the forest plot and the whole compact table are on the first screen, before any scrolling."""
    _, screen = _run_check(report, _FIRST_SCREEN, "fnbench-screen", tmp_path / "ud", "--window-size=1400,900")
    assert 700 <= screen["h"] <= 900  # the viewport of a 1400×900 window (headless keeps some for its frame)
    f = screen["forest"]
    assert f and f["top"] >= 0 and f["bottom"] <= screen["h"] and f["w"] >= 1200, f
    compact = pd.read_csv(report.csv["claims_compact"])
    assert len(screen["rows"]) == len(compact) >= 6
    assert all(f["bottom"] <= r["top"] and r["bottom"] <= screen["h"] for r in screen["rows"]), screen["rows"]
    for row, c in zip(screen["rows"], compact.itertuples()):  # the table under the plot, in the CSV's order
        assert c.claim in row["text"] and c.direction in row["text"] and c.reproduction in row["text"]
    # figures fill the page's content width (1400 px window: at least 1200 px of image)
    assert screen["imgs"] and min(screen["imgs"]) >= 1200


def test_compact_table_and_forest_plot_show_every_measured_claim(report):
    """One forest line per measured claim: its point at the ratio, coloured by its direction verdict."""
    from matplotlib.colors import to_hex

    from fnbench.report.figures import VERDICT_COLORS, forest_figure
    from fnbench.report.tables import compact_claims

    claims = report.claims
    compact = compact_claims(claims)
    measured = claims[claims.verdict != "not measured"]
    assert len(compact) == len(measured) and list(compact.claim_id) == list(measured.claim_id)
    assert (compact.direction == measured.verdict.to_numpy()).all()
    assert (compact.reproduction == measured.reproduction.to_numpy()).all()
    fig = forest_figure(compact)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(compact) and all("AMD EPYC" in t for t in labels)
    # the ratio points (size 28) and the paper diamonds, by y: top line first
    from matplotlib.collections import PathCollection

    marks = [c for c in ax.collections if isinstance(c, PathCollection)]
    pts = [c for c in marks if c.get_sizes()[0] == 28]
    by_y = sorted(pts, key=lambda c: -c.get_offsets()[0][1])
    for c, r, label in zip(by_y, compact.itertuples(), labels):
        assert label.startswith(r.claim)
        assert c.get_offsets()[0][0] == pytest.approx(r.ratio)
        assert to_hex(c.get_facecolor()[0]) == VERDICT_COLORS[r.direction]
    # the whiskers span each claim's 95% CI
    from matplotlib.collections import LineCollection

    whiskers = [c.get_segments()[0] for c in ax.collections if isinstance(c, LineCollection)]
    whiskers = sorted(whiskers, key=lambda seg: -seg[0][1])
    assert len(whiskers) == len(compact)
    for seg, r in zip(whiskers, compact.itertuples()):
        assert sorted([seg[0][0], seg[1][0]]) == pytest.approx([r.ci95_low, r.ci95_high])
    assert ax.get_xscale() == "log"
    diamonds = [c for c in marks if c.get_sizes()[0] == 30]
    assert sorted(c.get_offsets()[0][0] for c in diamonds) == pytest.approx(sorted(compact.paper_ratio.dropna()))
    import matplotlib.pyplot as plt

    plt.close(fig)
    # the unsettled rows are named once per device, in a footnote the table's device cell points to
    page = report.index.read_text()
    assert page.index('id="fig-forest"') < page.index('class="compact"') < page.index('class="footnotes')
    assert "<sup>1</sup> cpu: AMD EPYC · eager, 1 thr, b1:" in page


def test_a_theoretical_roof_below_the_measured_one_is_never_drawn(tmp_path):
    """Nominal 2445 MHz × 8 lanes × 2 FMA × 2 = 78.24 GFLOP/s against a GEMM measured at 80.33 GFLOP/s."""
    from fnbench.merge import load_frame
    from fnbench.report import figures, tables

    d = _fixtures_copy(tmp_path)
    dev = _records()[0]["device"]

    def probes(peak, clock):
        env = {
            "theoretical_peak_gflop_per_s": peak,
            "theoretical_peak_basis": f"8 FP32 lanes × 2 FMA units (assumed) × 2 FLOP × 2445 MHz ({clock}) × 1 thread(s)",
            "theoretical_peak_mhz": 2445.0,
            "theoretical_peak_clock": clock,
        }
        gemm = _probe("probe:gemm_float32", flops=2 * 256**3, median_s=2 * 256**3 / 80.33e9, size=256, device=dev)
        copy = _probe("probe:copy", mem=4 * 10**8, median_s=0.02, size=10**8, device=dev)
        return [dict(r, env=env) for r in (gemm, copy)]

    _write(d / "probe.jsonl", probes(78.24, "nominal"))
    df = load_frame([d])
    ceil = tables.ceilings(df)
    t = tables.theoretical_roofs(df, ceil)
    assert len(t) == 1 and not t.shown.iloc[0] and t.measured_gflop_per_s.iloc[0] == pytest.approx(80.33)
    fig = figures.roofline_figure(df, ceil)
    drawn = [ln.get_ydata()[0] for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == "-."]
    texts = [x.get_text() for ax in fig.axes for x in ax.texts]
    assert drawn == [] and "measured exceeds nominal peak: the core ran above its nominal clock" in texts
    page = build_report([d], tmp_path / "out").index.read_text()
    assert "measured exceeds nominal peak: the core ran above its nominal clock" in page
    assert "78.2" not in page
    # a peak above the measured roof, at the max clock, is drawn and names its clock
    _write(d / "probe.jsonl", probes(166.2, "cpufreq cpuinfo_max_freq"))
    df = load_frame([d])
    fig = figures.roofline_figure(df, tables.ceilings(df))
    drawn = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == "-."]
    assert [ln.get_ydata()[0] for ln in drawn] == [pytest.approx(166.2)]
    assert "cpufreq cpuinfo_max_freq clock" in drawn[0].get_label()


def test_points_above_a_measured_roof_are_flagged(tmp_path):
    """A probe that fell short (20 GFLOP/s GEMM, 10 GB/s copy): every point above min(roof, bw × intensity) is named."""
    from fnbench.merge import load_frame
    from fnbench.report import tables

    d = _fixtures_copy(tmp_path)
    dev = _records()[0]["device"]
    _write(
        d / "probe.jsonl",
        [
            _probe("probe:gemm_float32", flops=2 * 10**9, median_s=0.1, size=512, device=dev),
            _probe("probe:copy", mem=4 * 10**8, median_s=0.04, size=10**8, device=dev),
        ],
    )
    df = load_frame([d])
    over = tables.above_roof(df, tables.ceilings(df))
    pts = df[df.target_kind.ne("probe") & df.status.eq("ok")]
    want = sorted(
        (r.target, r.shape, r.gflops_per_s)
        for r in pts.itertuples()
        if r.gflops_per_s > min(20.0, 10.0 * r.intensity_flop_per_byte)
    )
    assert want and sorted((r.target, r.shape, r.gflops_per_s) for r in over.itertuples()) == want
    assert set(over.roof) <= {"compute", "bandwidth"}
    summary = build_report([d], tmp_path / "out")
    page = summary.index.read_text()
    assert f"{len(want)} measured point(s) above a measured roof" in page


def test_tables_are_tidy(report):
    page = report.index.read_text()
    assert "GMAC/s (GMAC/s)" not in page
    env = pd.read_csv(report.csv["environment"])
    assert (env.key == "arch").sum() == 1 and "measure_wall_s" not in set(env.key) and "device_arch" not in set(env.key)
    results = page[page.index('id="results"') : page.index('id="failed"')]
    assert "<td>1.00</td>" not in results  # batch is an integer
    # "All measurements" is sorted: by kind, target, then feature map from large to small
    import re

    names = re.findall(r'<tr[^>]*><td class="l">([a-z0-9_]+)</td><td class="l">([0-9x]+)', results)
    assert names == sorted(names, key=lambda n: (n[0] not in ("conv", "dwconv", "gconv", "pconv"), n[0]))


def test_report_command_prints_the_compact_table(fnbench_cmd, cli_env, tmp_path):
    """`fnbench report` prints the compact table (one line per measured claim) and each device's footnote."""
    res = subprocess.run(
        fnbench_cmd + ["report", *map(str, TOP), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**cli_env, "COLUMNS": "250"},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    compact = pd.read_csv(tmp_path / "out" / "claims_compact.csv")
    lines = res.stdout.splitlines()
    for c in compact.itertuples():
        row = next(ln for ln in lines if c.claim in ln)
        assert c.direction in row and c.reproduction in row and f"{c.ratio:.3g}×" in row
    assert any(ln.startswith("[1] cpu: AMD EPYC · eager, 1 thr, b1: ") for ln in lines)
    assert "; 3 of 8 rows unsettled." not in res.stdout  # the sentences stay in verdicts.csv


def test_campaign_answers_are_the_reports_with_rounds_resampled(tmp_path):
    """The sentences `fnbench campaign` ends with are the report's, from frames that carry rounds.

    A plain frame of records has no round ids, and the claim engine then resamples iterations:
    an interval several times too narrow for rows this wide.
    """
    from fnbench.cli.campaign import _campaign_answers
    from fnbench.merge import load_frame
    from fnbench.results import load_results
    from fnbench.verdicts import claim_table

    for f in TOP:
        (tmp_path / f.name).write_text(f.read_text())
    want = claim_table(load_frame(TOP))
    want = list(want[want.verdict != "not measured"].answer)
    assert want and _campaign_answers(tmp_path) == want
    narrow = claim_table(load_results(TOP))
    assert all("no round ids" in n for n in narrow[narrow.verdict != "not measured"].note)


# -- the figure cache ---------------------------------------------------------------------------------
def _page(summary) -> str:
    return re.sub(r"Generated [^<]* UTC", "Generated <time>", summary.index.read_text())


def test_a_second_report_of_the_same_files_draws_nothing_and_writes_the_same(tmp_path, monkeypatch):
    from fnbench.report import figures

    cache = tmp_path / "cache"
    monkeypatch.setenv("FNBENCH_CACHE_DIR", str(cache))
    first = build_report(TOP, tmp_path / "a")
    assert len(list((cache / "report-figures").iterdir())) == len(FIGURES) + 1  # and the forest plot

    def no_drawing(*args, **kwargs):
        raise AssertionError("drawn again")

    for name in ("ratio_per_map_figure", "table1_figure", "latency_vs_macs_figure", "roofline_figure"):
        monkeypatch.setattr(figures, name, no_drawing)
    second = build_report(TOP, tmp_path / "b")
    assert _page(first) == _page(second) and set(second.figures) == set(first.figures)
    for name, (png, svg) in first.figures.items():
        assert second.figures[name][0].read_bytes() == png.read_bytes()
        assert second.figures[name][1].read_bytes() == svg.read_bytes()
    for name, path in first.csv.items():
        assert second.csv[name].read_bytes() == path.read_bytes()


def test_changed_files_or_no_cache_draw_afresh(tmp_path, monkeypatch):
    from fnbench.report import figures

    monkeypatch.setenv("FNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    d = _fixtures_copy(tmp_path)
    build_report([d], tmp_path / "a")
    drawn = []
    real = figures.table1_figure
    monkeypatch.setattr(figures, "table1_figure", lambda df: drawn.append(1) or real(df))
    recs = read_records(TOP[0])
    _write(d / TOP[0].name, recs[:-1])  # one record fewer: another report
    build_report([d], tmp_path / "b")
    build_report([d], tmp_path / "c", runtimes=["eager"])  # another filter: another report
    monkeypatch.setenv("FNBENCH_CACHE_DIR", "")  # set and empty: no cache
    build_report([d], tmp_path / "d")
    assert len(drawn) == 3


def test_a_damaged_cache_entry_is_drawn_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FNBENCH_CACHE_DIR", str(cache))
    first = build_report(TOP, tmp_path / "a")
    for entry in (cache / "report-figures").iterdir():
        entry.write_bytes(entry.read_bytes()[:40])
    second = build_report(TOP, tmp_path / "b")
    assert _page(first) == _page(second)


def test_nothing_is_kept_when_the_files_change_during_the_report(tmp_path, monkeypatch):
    from fnbench.report import cache as cache_mod

    monkeypatch.setenv("FNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    d = _fixtures_copy(tmp_path)
    c = cache_mod.FigureCache(sorted(d.glob("*.jsonl")))
    c.put("table1", "not drawn: a reason")
    with open(sorted(d.glob("*.jsonl"))[0], "a") as f:
        f.write("\n")  # a run still appending
    c.save()
    assert not (tmp_path / "cache" / "report-figures").exists()


def test_cache_entries_read_back_whole_or_not_at_all():
    from fnbench.report.cache import _decode, _encode

    for drawn in ((b"\x89PNG-bytes", b"<svg/>"), "no network measurements: run …"):
        data = _encode(drawn)
        assert _decode(data) == drawn
        assert all(_decode(data[:n]) is None for n in range(len(data)))  # every cut is refused
        assert _decode(data[:-1] + bytes([data[-1] ^ 1])) is None


def test_the_report_command_imports_no_torch(tmp_path):
    """`fnbench report` reads records and draws: importing torch would cost it seconds (and 1 GB)."""
    code = (
        "import sys\nfrom fnbench.cli import main\n"
        f"code = main(['report', *{[str(p) for p in TOP]!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "assert code == 0, code\nassert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "index.html").exists()
