"""The CLI against a hostile but realistic user: bad input, broken files, full disks, two processes.

The contract: bad input is exit 2 with one line on stderr that says what to do (with ``--json``
also one JSON error document on stdout), a failed measurement is exit 1, never a traceback, and
nothing stored is lost. Most cases call :func:`fnbench.cli.main` in this process (an exception
escaping it is a traceback); the signal and lock cases run real processes.
"""

import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fnbench import results
from fnbench.cli import main
from fnbench.errors import SaveError, UserError, cause_first
from fnbench.merge import load_frame

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = FIXTURES / "20261128T044703Z-67df.jsonl"
TINY = ["--shape", "8x8x8", "--layers", "1", "--budget", "0.3", "--passes", "1", "--workers", "0"]

#: Every case tried, for the count in the closing summary: (name, behaved).
TRIED: list[tuple[str, bool]] = []


def call(capsys, args, cwd=None):
    """Run ``fnbench ARGS`` in this process; returns (exit code, stdout, stderr lines)."""
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        code = main([str(a) for a in args])
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return code, out, [ln for ln in err.splitlines() if ln.strip()]


def check(capsys, args, code, *, contains=None, cwd=None, max_lines=2):
    got, out, err = call(capsys, args, cwd=cwd)
    ok = got == code and not any("Traceback" in ln for ln in err) and len(err) <= max_lines
    if contains is not None:
        ok = ok and contains in " ".join(err)
    TRIED.append((" ".join(map(str, args)), ok))
    assert ok, f"exit {got} (want {code}), stderr: {err}"
    return out, err


# -- files to be hostile with ---------------------------------------------------------------------
def _rec_lines(path=GOOD):
    return [ln for ln in path.read_text().splitlines() if ln.strip()]


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    lines = _rec_lines()
    (d / "good.jsonl").write_text("\n".join(lines) + "\n")
    (d / "dup.jsonl").write_text("\n".join(lines + lines) + "\n")
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (d / "notjson.jsonl").write_text("hello, this is not a result file\n")
    (d / "middle.jsonl").write_text(lines[0] + "\n{garbage\n" + lines[1] + "\n")
    first = json.loads(lines[0])
    (d / "missing.jsonl").write_text(json.dumps({k: v for k, v in first.items() if k != "target"}) + "\n")
    (d / "wrongtype.jsonl").write_text(json.dumps(dict(first, target="pconv")) + "\n")
    (d / "badbatch.jsonl").write_text(json.dumps(dict(first, batch="one")) + "\n")
    (d / "nosamples.jsonl").write_text(json.dumps(dict(first, samples_s=[], rounds=[])) + "\n")
    (d / "newer.jsonl").write_text(json.dumps(dict(first, schema=99)) + "\n")
    (d / "a_file").write_text("x")
    return d


# -- the table: input → exit code -------------------------------------------------------------------
def test_bad_input_table(capsys, files, tmp_path):
    out = tmp_path / "out"
    nan_args = [
        ["run", "--target", "pconv", *TINY[:4], "--out", out],
        ["compare", "pconv", "dwconv", "--shape", "8x8x8"],
        ["probe", "--out", out],
    ]
    cases = [
        # output folders that cannot be written
        (["run", "--target", "pconv", *TINY, "--out", files / "a_file"], 2, "is a file"),
        (["run", "--target", "pconv", *TINY, "--out", files / "a_file" / "sub"], 2, "cannot be written"),
        (["run", "--target", "pconv", *TINY, "--out", "/proc/fnbench"], 2, "cannot be written"),
        (["run", "--target", "pconv", *TINY, "--out", "/sys/kernel"], 2, "cannot be written"),
        (["run", "--target", "pconv", *TINY, "--out", ""], 2, "--out is empty"),
        (["probe", "--out", files / "a_file"], 2, "is a file"),
        (["probe", "--out", "/proc/fnbench"], 2, "cannot be written"),
        (["report", files / "good.jsonl", "--out", "/proc/fnbench"], 2, "cannot be written"),
        (["report", files / "good.jsonl", "--out", files / "a_file"], 2, "is a file"),
        # budgets
        *[(a + ["--budget", b], 2, "positive finite") for a in nan_args for b in ("nan", "inf", "-inf")],
        (["probe", "--budget", "0", "--out", out], 2, "positive finite"),
        (["run", "--target", "pconv", "--budget", "0", "--out", out], 2, "positive finite"),
        # shapes a network cannot take, absurd sizes
        (["count", "fasternet_t0", "--shape", "3x8x8"], 2, "cannot take input 3x8x8"),
        (["run", "--target", "fasternet_t0", "--shape", "16x8x8", "--out", out], 2, "cannot take input"),
        (["compare", "fasternet_t0", "pconv", "--shape", "96x56x56"], 2, "cannot take input"),
        (["count", "pconv", "--batch", "100000000"], 2, "needs about"),
        (["count", "fasternet_t0", "--batch", "100000000"], 2, "needs about"),
        (["count", "pconv", "--shape", "1000000x1x1"], 2, "needs about"),
        (["count", "pconv", "--shape", "100000x1000x1000"], 2, "needs about"),
        (["count", "pconv", "--shape", "1" * 20 + "x8x8"], 2, "above"),
        (["count", "pconv", "--shape", "9" * 5000 + "x8x8"], 2, "characters long"),
        (["count", "pconv", "--batch", "9" * 5000], 2, "not a valid integer"),
        (["count", "pconv", "--layers", "1000000000000"], 2, "needs about"),
        # broken result files
        (["report", files / "missing.jsonl", "--out", out], 2, "'target' is missing"),
        (["report", files / "wrongtype.jsonl", "--out", out], 2, "'target' is a str"),
        (["report", files / "badbatch.jsonl", "--out", out], 2, "not an integer"),
        (["report", files / "binary.jsonl", "--out", out], 2, "not a text file"),
        (["report", files / "nosamples.jsonl", "--out", out], 2, "without samples"),
        (["report", files / "notjson.jsonl", "--out", out], 2, "not JSON: this is not an fnbench result file"),
        (["report", files / "middle.jsonl", "--out", out], 2, "line 2 is not JSON"),
        (["report", files / "newer.jsonl", "--out", out], 2, "newer fnbench"),
        (["compare", "pconv", "dwconv", "--from", files / "binary.jsonl"], 2, "not a text file"),
        (["compare", "pconv", "dwconv", "--from", "/nonexistent"], 2, "no result file"),
        # options
        (["count", "fasternet_t0", "--groups", "5"], 2, "accepts --n-div, --forward"),
        (["count", "pconv", "--kernel", "4"], 2, "is even"),
        (["count", "pconv", "--kernel", "0"], 2, None),
        (["run", "--target", "pconv", "--workers", "100000", "--out", out], 2, "--workers 100000 is more"),
        (["run", "--resume", "../x", "--out", out], 2, "takes a run id"),
        (["run", "--resume", "/etc/passwd", "--out", out], 2, "takes a run id"),
        (["run", "--resume", "20000101T000000Z-0000", "--out", out], 2, "no run"),
        (["run", "--threads", "100000", "--target", "nosuch", "--out", out], 2, "more than the"),
        # passing before: regression guards
        (["count", "nosuch"], 2, "unknown target"),
        (["count", "pconv", "--shape", "0x8x8"], 2, "zero size"),
        (["count", "pconv", "--shape", "8x-8x8"], 2, "negative"),
        (["count", "pconv", "--shape", "banana"], 2, "malformed shape"),
        (["count", "pconv", "--batch", "0"], 2, "not positive"),
        (["count", "pconv", "--layers", "0"], 2, "not positive"),
        (["count", "pconv", "--n-div", "100", "--shape", "8x8x8"], 2, "leaves no channel"),
        (["run", "--target", "pconv", "--passes", "0", "--out", out], 2, "passes 0"),
        (["run", "--target", "pconv", "--precision", "2", "--out", out], 2, "precision"),
        (["run", "--target", "pconv", "--threads", "0", "--out", out], 2, "threads 0"),
        (["run", "--suite", "nope", "--out", out], 2, "unknown suite"),
        (["run", "--device", "cuda", "--suite", "quick", "--out", out], 2, None),
        (["list", "ops", "zzz*"], 2, "no ops match"),
        (["count", "pconv", "--no-such-option"], 2, "No such option"),
    ]
    for args, code, contains in cases:
        check(capsys, args, code, contains=contains)
    # the working directory cannot be written: the default --out results is refused before any work
    check(capsys, ["run", "--target", "pconv", *TINY], 2, contains="cannot be written", cwd="/proc")
    check(capsys, ["probe", "--budget", "0.1"], 2, contains="cannot be written", cwd="/proc")
    assert not out.exists() or not any(out.iterdir())  # nothing was measured into --out
    # the good file and its repeats still report fine (a repeat is one warning line)
    gooddir = tmp_path / "gooddir"
    gooddir.mkdir()
    shutil.copy(files / "good.jsonl", gooddir / "good.jsonl")
    for args in (
        ["report", files / "good.jsonl", "--out", out / "rep"],
        ["report", files / "good.jsonl", files / "good.jsonl", "--out", out / "rep"],
        ["report", gooddir / "good.jsonl", gooddir, "--out", out / "rep"],
        ["report", files / "dup.jsonl", "--out", out / "rep"],
    ):
        check(capsys, args, 0, max_lines=4)


def test_json_errors_are_one_document_on_stdout(capsys, tmp_path):
    for args in (
        ["count", "nosuch", "--json"],
        ["run", "--target", "pconv", "--budget", "nan", "--json"],
        ["count", "pconv", "--shape", "3x3", "--json"],
        ["probe", "--budget", "inf", "--json"],
    ):
        out, err = check(capsys, args, 2)
        doc = json.loads(out)
        assert doc["exit_code"] == 2 and doc["error"] == err[0].removeprefix("fnbench: error: ")


def test_workers_bounded_by_file_descriptors(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # cores would allow 256 workers
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
    try:
        check(
            capsys,
            ["run", "--target", "pconv", "--workers", "60", "--out", tmp_path],
            2,
            contains="open-file limit 100 (ulimit -n) allows 12",
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_threads_beyond_cores_warn(capsys, tmp_path):
    _, err = check(capsys, ["run", "--threads", "1000", "--target", "nosuch", "--out", tmp_path], 2)
    assert err[0].startswith("fnbench: warning: --threads 1000 is more than the") and "RuntimeWarning" not in err[0]


# -- real runs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real run of two tiny targets, measured in this process (a few seconds)."""
    out = tmp_path_factory.mktemp("run")
    code = main(["run", "--device", "cpu", "--target", "pconv", "--target", "conv", *TINY, "--out", str(out), "--json"])
    assert code == 0
    (path,) = out.glob("*.jsonl")
    return path


def _copy_run(tiny_run, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in tiny_run.parent.glob(tiny_run.stem + ".*"):
        shutil.copy(f, dest / f.name)
    return dest / tiny_run.name


def test_resume_refuses_other_options_and_lists_what_it_finishes(capsys, tiny_run, tmp_path):
    path = _copy_run(tiny_run, tmp_path / "r")
    run_id, out = path.stem, path.parent
    for extra, flag in (
        (["--target", "dwconv"], "--target dwconv"),
        (["--threads", "2"], "--threads 2"),
        (["--batch", "2"], "--batch 2"),
        (["--runtime", "onnxruntime"], "--runtime onnxruntime"),
        (["--budget", "5"], "--budget 5"),
    ):
        check(
            capsys,
            ["run", "--resume", run_id, "--out", out, *extra],
            2,
            contains=f"options differ from the run's: {flag}",
        )
    # drop the last record: --resume alone finishes exactly that target, with the stored options
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    missing = json.loads(lines[-1])["target"]["name"]
    code, out_, err = call(capsys, ["run", "--resume", run_id, "--out", out])
    assert code == 0, err
    assert any("resuming: 1 already measured; finishing " + missing in ln for ln in err)
    recs = results.read_records(path)
    assert sorted(r["target"]["name"] for r in recs) == ["conv", "pconv"]
    TRIED.append(("run --resume ID (one target missing)", True))


def test_resume_reads_a_plan_written_before_the_defaults_were_stored(capsys, tiny_run, tmp_path):
    """Plans written by earlier versions hold None and [] for the defaults: they still finish the run."""
    path = _copy_run(tiny_run, tmp_path / "old")
    plan = results.plan_path(path.parent, path.stem)
    doc = json.loads(plan.read_text())
    doc["cli"].update(precision=None, threads=None, batch=None, runtimes=[], allocators_=[])
    doc["cli"].pop("seed", None)
    plan.write_text(json.dumps(doc))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    check(
        capsys,
        ["run", "--resume", path.stem, "--out", path.parent, "--threads", "2"],
        2,
        contains="(the run has default)",
    )
    code, _, err = call(capsys, ["run", "--resume", path.stem, "--out", path.parent])
    assert code == 0, err
    assert sorted(r["target"]["name"] for r in results.read_records(path)) == ["conv", "pconv"]
    TRIED.append(("run --resume ID with a plan of an earlier version", True))


def test_torn_last_line_is_set_aside_on_resume_and_the_run_finishes(capsys, tiny_run, tmp_path):
    path = _copy_run(tiny_run, tmp_path / "r")
    whole = path.read_bytes()
    start = whole.rstrip(b"\n").rfind(b"\n") + 1  # where the last record begins
    cut = start + (len(whole) - start) // 2  # a write cut mid-line (disk full, or a kill)
    path.write_bytes(whole[:cut])
    torn = whole[start:cut]
    # report: the torn line is named in one line and skipped; the unfinished run names its --resume
    _, err = check(capsys, ["report", path, "--out", tmp_path / "rep"], 0, max_lines=5)
    assert any("cut short" in ln for ln in err) and any(f"--resume {path.stem}" in ln for ln in err)
    # resume: the piece goes to .torn (nothing dropped), the missing target is measured, the file is whole
    code, _, err = call(capsys, ["run", "--resume", path.stem, "--out", path.parent])
    assert code == 0, err
    assert (path.parent / (path.name + ".torn")).read_bytes() == torn + b"\n"
    assert sorted(r["target"]["name"] for r in results.read_records(path)) == ["conv", "pconv"]
    check(capsys, ["report", path, "--out", tmp_path / "rep"], 0, max_lines=3)


def test_duplicated_records_do_not_narrow_the_interval(tiny_run, tmp_path):
    single = load_frame([GOOD])
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(GOOD, d / GOOD.name)
    (tmp_path / "twice.jsonl").write_text(GOOD.read_text() * 2)
    cols = ["target", "shape", "median_s", "ci95_low_s", "ci95_high_s", "n", "rounds"]
    with pytest.warns(UserWarning):
        variants = [
            load_frame([GOOD, GOOD]),
            load_frame([d / GOOD.name, d]),
            load_frame([tmp_path / "twice.jsonl"]),
            load_frame([GOOD, tmp_path / "twice.jsonl"]),
        ]
    for df in variants:
        assert df[cols].reset_index(drop=True).equals(single[cols].reset_index(drop=True))
    # the same id with other samples: refused, never pooled
    lines = _rec_lines()
    forged = json.loads(lines[0])
    forged["samples_s"] = [s * 2 for s in forged["samples_s"]]
    (tmp_path / "forged.jsonl").write_text(json.dumps(forged) + "\n")
    with pytest.raises(UserError, match="claim the same measurement"):
        load_frame([GOOD, tmp_path / "forged.jsonl"])


def test_stats_are_recomputed_from_samples(tmp_path):
    rec = json.loads(_rec_lines()[0])
    truth = load_frame([GOOD]).iloc[0]
    rec["stats"] = dict(rec["stats"], median_s=1.0, ci95_low_s=0.9, ci95_high_s=1.1, stable=True)
    (tmp_path / "lie.jsonl").write_text(json.dumps(rec) + "\n")
    row = load_frame([tmp_path / "lie.jsonl"]).iloc[0]
    assert row["median_s"] == truth["median_s"] and row["ci95_high_s"] == truth["ci95_high_s"]
    assert not row["stable"]


def test_failed_measurement_is_exit_1_with_or_without_json(capsys, tmp_path, monkeypatch):
    import fnbench.runner as runner

    def boom(*a, **k):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 409600000000 bytes. Error code 12 (Cannot allocate memory)"
        )

    monkeypatch.setattr(runner, "measure_in_process", boom)
    out, _ = check(capsys, ["run", "--target", "pconv", *TINY, "--out", tmp_path, "--json"], 1)
    (rec,) = json.loads(out)["records"]
    assert rec["status"] == "failed" and rec["error"].startswith("can't allocate 410 GB (out of memory)")
    out, err = check(capsys, ["run", "--target", "pconv", *TINY, "--out", tmp_path], 1, max_lines=6)  # + progress
    assert "can't allocate 410 GB" in out  # the table cell starts with the cause
    assert cause_first("ValueError: x") == "ValueError: x"


def test_disk_full_is_exit_1_with_what_is_saved_and_how_to_resume(capsys, tmp_path, monkeypatch):
    calls = []
    real = os.write

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, data)
        real(fd, bytes(data[: len(data) // 2]))  # half a line reaches the disk, then it is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.ResultWriter, "_write", staticmethod(full_disk))
    _, err = check(
        capsys, ["run", "--target", "pconv", "--target", "conv", *TINY, "--out", tmp_path], 1, max_lines=6
    )  # progress lines, then the error
    (line,) = [ln for ln in err if ln.startswith("fnbench: error:")]
    (path,) = tmp_path.glob("*.jsonl")
    assert "the disk is full" in line and "1 record(s) are saved" in line and f"--resume {path.stem}" in line
    assert path.read_text().endswith("\n") and len(results.read_records(path)) == 1  # no torn line left
    with pytest.raises(SaveError):
        results.ResultWriter(tmp_path / "x.jsonl").write({"run_id": "x"})
    TRIED.append(("run with a full disk", True))


def test_disk_full_on_a_real_small_tmpfs(capsys, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        w = results.ResultWriter(mnt / "r.jsonl", hint="finish with `fnbench run --resume r`")
        rec = json.loads(_rec_lines()[0])
        with pytest.raises(SaveError, match=r"disk is full\); \d+ record\(s\) are saved there; finish with"):
            for i in range(100):
                w.write(dict(rec, id=f"r{i}"))
        assert (mnt / "r.jsonl").read_text().endswith("\n")  # cut back to the last whole line
        assert len(results.read_records(mnt / "r.jsonl")) == w.written
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_report_is_written_atomically(capsys, tmp_path, monkeypatch):
    from fnbench.report import build as build_mod

    out = tmp_path / "rep"
    check(capsys, ["report", GOOD, "--out", out], 0, max_lines=3)
    assert (out / "index.html").exists()
    monkeypatch.setattr(build_mod._html, "render", lambda page: (_ for _ in ()).throw(KeyboardInterrupt()))
    code, _, err = call(capsys, ["report", GOOD, "--out", out])
    assert code == 130
    assert not (out / "index.html").exists()  # no older page left looking current
    assert not list(out.glob(".*.tmp*"))


# -- processes ----------------------------------------------------------------------------------------
def _env():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_a_locked_run_refuses_a_second_process(tiny_run, tmp_path):
    path = _copy_run(tiny_run, tmp_path / "r")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from fnbench.results import RunFile\n"
            f"with RunFile({str(path.parent)!r}, {path.stem!r}, resume=True):\n"
            "    print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = subprocess.run(
            [sys.executable, "-m", "fnbench", "run", "--resume", path.stem, "--out", str(path.parent), "--json"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=300,
        )
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"being measured by process {holder.pid}" in res.stderr
    assert json.loads(res.stdout)["exit_code"] == 2
    TRIED.append(("run --resume ID while another process holds it", True))


def test_two_resumes_at_once_never_measure_twice(tiny_run, tmp_path):
    path = _copy_run(tiny_run, tmp_path / "r")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n" if len(lines) > 2 else "")
    cmd = [sys.executable, "-m", "fnbench", "run", "--resume", path.stem, "--out", str(path.parent)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 2]), outs
    for (_, err), p in zip(outs, procs):
        assert "Traceback" not in err
        if p.returncode == 2:
            assert "being measured by process" in err
    recs = results.read_records(path)  # no two records claim one measurement
    assert sorted(r["target"]["name"] for r in recs) == ["conv", "pconv"]
    TRIED.append(("two run --resume ID at once", True))


def test_sigterm_prints_the_resume_hint(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "fnbench",
        "run",
        "--device",
        "cpu",
        "--target",
        "pconv",
        "--shape",
        "8x8x8",
        "--layers",
        "1",
        "--budget",
        "60",
        "--precision",
        "0.0001",
        "--workers",
        "0",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 240
    while time.time() < deadline and not list(tmp_path.glob("*.plan.json")):
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    (plan,) = tmp_path.glob("*.plan.json")
    run_id = plan.name.split(".")[0]
    assert proc.returncode == 143 and "Traceback" not in err
    assert f"terminated; finished measurements are saved; finish the run with `fnbench run --resume {run_id}" in err
    TRIED.append(("SIGTERM during run", True))


# -- fuzzing ------------------------------------------------------------------------------------------
_dims = st.one_of(st.integers(1, 12), st.integers(-3, 0), st.integers(10**12, 10**30))
_shape = st.one_of(
    st.tuples(_dims, _dims, _dims).map(lambda t: "x".join(map(str, t))), st.text(alphabet="0123456789x-, ", max_size=12)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["pconv", "dwconv", "gconv", "conv", "fasternet_t0", "nosuch"]),
    shape=_shape,
    batch=st.one_of(st.integers(-2, 3), st.integers(10**12, 10**20)),
    opt=st.sampled_from(
        [
            [],
            ["--kernel", "4"],
            ["--kernel", "5"],
            ["--groups", "3"],
            ["--n-div", "0"],
            ["--stride", "2"],
            ["--padding", "-1"],
            ["--layers", "2"],
        ]
    ),
)
def test_fuzzed_count_never_shows_a_traceback(capsys, target, shape, batch, opt):
    if target == "fasternet_t0" and not any(opt) and all(c.isdigit() or c == "x" for c in shape):
        opt = ["--groups", "2"]  # keep the fuzz on validation paths for networks (a real count takes seconds)
    try:
        code, out, err = call(capsys, ["count", target, "--shape", shape, "--batch", batch, *opt, "--json"])
    except BaseException as e:  # noqa: BLE001 — anything escaping main() would be a traceback for the user
        pytest.fail(f"count {target} --shape {shape!r} --batch {batch} {opt}: {type(e).__name__}: {e}")
    assert code in (0, 2) and len(err) <= 2 and not any("Traceback" in ln for ln in err)
    if code == 0:
        json.loads(out)
    else:
        assert json.loads(out.splitlines()[-1])["exit_code"] == 2
    TRIED.append((f"count {target} --shape {shape!r} --batch {batch} {' '.join(opt)}", True))


# -- stored records: every field a number depends on is checked on load ------------------------------
def _strict_json(text):
    """Parse ``text`` as RFC 8259 JSON: ``NaN`` and ``Infinity`` (which Python writes by default) are refused."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _mutated(field, value, rec=None):
    """The first good record with ``field`` (a dotted path) set to ``value``."""
    rec = json.loads(json.dumps(rec or json.loads(_rec_lines()[0])))
    *head, last = field.split(".")
    node = rec
    for k in head:
        node = node[k]
    node[last] = value
    return rec


def _write_records(path, recs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _repeat_of(recs, run_id, **changes):
    """``recs`` as another run's repeat of the same measurements, with ``changes`` applied to pconv's records."""
    out = []
    for r in recs:
        r = json.loads(json.dumps(r))
        r.pop("id", None)
        r.update(run_id=run_id, created="2026-11-29T00:00:00Z")
        if r["target"]["name"] == "pconv":
            for field, value in changes.items():
                r = _mutated(field, value(r) if callable(value) else value, r)
        out.append(r)
    return out


BAD_FIELDS = [
    ("cost", {}, "cost.macs is None"),
    ("cost.macs", 0, "needs MACs > 0"),
    ("cost.macs", "lots", "cost.macs is 'lots'"),
    ("cost.macs", -520224768, "not a non-negative integer"),
    ("cost.macs", 1.5e9, "not a non-negative integer"),
    ("cost.mem_bytes_counted", -1, "cost.mem_bytes_counted is -1"),
    ("cost.flops", "x", "cost.flops is 'x'"),
    ("cost.macs", 10**15, "beyond any cpu device"),
    ("cost", None, "without its cost"),
    ("batch", 0, "batch is 0"),
    ("batch", -3, "batch is -3"),
    ("target.batch", 0, "target batch is 0"),
    ("shape", "192x28x28", "shape is '192x28x28'"),
    ("shape", [192, 0, 28], "not a list of positive integers"),
    ("target.shape", "192x28x28", "target shape is"),
    ("target.layers", 0, "target layers is 0"),
    ("target.options", "k=3", "target options is"),
    ("target.kind", 7, "target kind is 7"),
    ("threads", "one", "threads is 'one'"),
    ("threads", 0, "threads is 0"),
    ("runtime", 3, "runtime is 3"),
    ("created", 12, "created is 12"),
    ("device.kind", None, "has no kind"),
    ("device.key", 5, "device key is 5"),
    ("run_id", "", "run_id is empty"),
    ("samples_s", [1e-12] * 68, "outside the plausible"),
    ("samples_s", [7200.0] * 68, "outside the plausible"),
    ("stats.precision", 5, "stats.precision is 5"),
    ("stats.minor_faults_per_iter", -2, "stats.minor_faults_per_iter is -2"),
]


def test_stored_record_table(capsys, tmp_path):
    """Each field the numbers depend on, broken in a stored record: report and compare --from refuse it."""
    for i, (field, value, says) in enumerate(BAD_FIELDS):
        f = _write_records(tmp_path / f"bad{i}.jsonl", [_mutated(field, value)])
        for args in (["report", f, "--out", tmp_path / "rep"], ["compare", "conv", "pconv", "--from", f, "--json"]):
            out, err = check(capsys, args, 2, contains=says, max_lines=1)
            assert "line 1" in err[0] and f.name in err[0]
    lines = [json.loads(ln) for ln in _rec_lines()]
    pairs = [r for r in lines if r["target"]["name"] in ("pconv", "dwconv")]
    # a repeat whose MACs are 100x (or negative): refused naming both lines, never pooled
    for name, macs in (("x100", lambda r: r["cost"]["macs"] * 100), ("neg", lambda r: -r["cost"]["macs"])):
        d = tmp_path / f"repeat-{name}"
        _write_records(d / "a.jsonl", pairs)
        _write_records(d / "b.jsonl", _repeat_of(pairs, "repeat", **{"cost.macs": macs}))
        want = "disagree on cost.macs" if name == "x100" else "cost.macs is -"
        for args in (["compare", "pconv", "dwconv", "--from", d], ["report", d, "--out", tmp_path / "rep"]):
            _, err = check(capsys, args, 2, contains=want, max_lines=1)
        if name == "x100":
            assert "a.jsonl line 2" in err[0] and "b.jsonl line 2" in err[0]  # the first pconv record
    # the same id with the MACs edited (a copied line): refused, not "the newer wins"
    forged = _mutated("cost.macs", lines[3]["cost"]["macs"] * 100, lines[3])
    f = _write_records(tmp_path / "forged.jsonl", [lines[3], forged])
    check(capsys, ["report", f, "--out", tmp_path / "rep"], 2, contains="with different cost", max_lines=1)
    # repeats disagreeing on the device block
    d = tmp_path / "repeat-device"
    _write_records(d / "a.jsonl", pairs)
    _write_records(d / "b.jsonl", _repeat_of(pairs, "repeat", **{"device.name": "Other CPU"}))
    check(capsys, ["compare", "pconv", "dwconv", "--from", d], 2, contains="disagree on device.name", max_lines=1)
    # an agreeing repeat is pooled and reported: the case the checks must not break
    d = tmp_path / "repeat-ok"
    _write_records(d / "a.jsonl", pairs)
    _write_records(d / "b.jsonl", _repeat_of(pairs, "repeat"))
    out, _ = check(capsys, ["compare", "pconv", "dwconv", "--from", d, "--json"], 0)
    doc = _strict_json(out)
    assert {r["a"]["shape"][0] for r in doc["rows"]} == {96, 192, 384, 768}


def test_samples_bounds_are_the_documented_ones():
    from fnbench import validation

    rec = json.loads(_rec_lines()[0])
    macs = rec["cost"]["macs"]
    at = dict(rec, samples_s=[validation.MIN_SAMPLE_S] * len(rec["samples_s"]))
    at["cost"] = dict(rec["cost"], macs=1000)
    assert validation.record_problem(at) is None  # 1e-7 s, 10^10 MAC/s: plausible
    below = dict(at, samples_s=[validation.MIN_SAMPLE_S / 2] * len(rec["samples_s"]))
    assert "outside the plausible" in validation.record_problem(below)
    # the rate bound: macs / fastest sample against 1e14 MAC/s on cpu, 1e16 on cuda
    fastest = macs / validation.MAX_MACS_PER_S["cpu"]
    just = dict(rec, samples_s=[fastest * 1.01] * len(rec["samples_s"]))
    over = dict(rec, samples_s=[fastest * 0.99] * len(rec["samples_s"]))
    assert validation.record_problem(just) is None
    assert "beyond any cpu device" in validation.record_problem(over)
    assert validation.record_problem(dict(over, device=dict(rec["device"], kind="cuda"))) is None


def test_compare_from_refuses_options_it_cannot_honour(capsys, tmp_path):
    for extra, named in (
        (["--threads", "4", "--layers", "3", "--batch", "8", "--budget", "99"], "--layers 3 --batch 8 --threads 4"),
        (["--budget", "-5", "--threads", "-3"], "--threads -3 --budget -5.0"),
        (["--budget", "8"], "--budget 8.0"),  # the default value, given: still refused
        (["--layers", "10"], "--layers 10"),
    ):
        check(capsys, ["compare", "pconv", "dwconv", "--from", GOOD, *extra], 2, contains=f"cannot apply {named}")
    # A and B at one shape under other layers or options: refused naming both set-ups
    lines = [json.loads(ln) for ln in _rec_lines()]
    one = [r for r in lines if r["target"]["name"] in ("pconv", "dwconv") and r["target"]["layers"] == 2]
    layered = [_mutated("target.layers", 3, r) if r["target"]["name"] == "dwconv" else r for r in one]
    f = _write_records(tmp_path / "layers.jsonl", layered)
    _, err = check(capsys, ["compare", "pconv", "dwconv", "--from", f], 2, contains="different layers or options")
    assert "dwconv: 192x28x28 layers 3" in err[0] and "pconv: 192x28x28 layers 2" in err[0]
    opts = [_mutated("target.options", {"k": 5}, r) if r["target"]["name"] == "dwconv" else r for r in one]
    f = _write_records(tmp_path / "opts.jsonl", opts)
    check(capsys, ["compare", "pconv", "dwconv", "--from", f], 2, contains='options {"k": 5}')


def test_compare_from_picks_a_device_by_key_name_or_kind(capsys, tmp_path):
    lines = [json.loads(ln) for ln in _rec_lines()]
    d = tmp_path / "two"
    _write_records(d / "a.jsonl", lines)
    _write_records(d / "b.jsonl", _repeat_of(lines, "other", **{}))
    other = [dict(r, device=dict(r["device"], name="Other CPU", key="cpu-otherhost1")) for r in _repeat_of(lines, "o")]
    _write_records(d / "b.jsonl", other)
    key = lines[0]["device"]["key"]
    for extra in ([], ["--device", "cpu"]):
        _, err = check(capsys, ["compare", "pconv", "dwconv", "--from", d, *extra], 2, contains="2 devices")
        assert key in err[0] and "cpu-otherhost1 (cpu: Other CPU)" in err[0]
    ratios = {}
    for pick in (key, "AMD EPYC", "cpu-otherhost1", "Other CPU"):
        out, _ = check(capsys, ["compare", "pconv", "dwconv", "--from", d, "--device", pick, "--json"], 0)
        ratios[pick] = _strict_json(out)["summary"]["flops_ratio"]
    # both devices hold the same samples: the same ratio, whichever way the device is named
    assert ratios[key] == ratios["AMD EPYC"] == ratios["cpu-otherhost1"] == ratios["Other CPU"]
    _, err = check(capsys, ["compare", "pconv", "dwconv", "--from", d, "--device", "arm"], 2, contains="they hold")
    assert "cpu-otherhost1" in err[0]


def test_folders_are_read_recursively_and_odd_entries_skipped(capsys, tmp_path):
    root = tmp_path / "results"
    deep = root / "gpu-check" / "20261201T000000Z"
    deep.mkdir(parents=True)
    shutil.copy(GOOD, deep / GOOD.name)
    os.mkfifo(root / "pipe.jsonl")  # reading it would block forever
    (root / "dir.jsonl").mkdir()
    (root / "dangling.jsonl").symlink_to(tmp_path / "nowhere")
    df = load_frame([deep / GOOD.name])
    with pytest.warns(UserWarning) as seen:
        deep_df = load_frame([root])
    said = " ".join(str(w.message) for w in seen)
    assert "1 of them in subfolders (gpu-check/20261201T000000Z/)" in said
    assert "skipped 2 entries" in said and "pipe.jsonl" in said and "dangling.jsonl" in said
    assert deep_df.median_s.tolist() == df.median_s.tolist()
    _, err = check(capsys, ["report", root, "--out", tmp_path / "rep"], 0, max_lines=3)
    assert any("in subfolders" in ln for ln in err) and any("skipped 2" in ln for ln in err)
    check(capsys, ["compare", "pconv", "dwconv", "--from", root], 0, max_lines=3)
    check(capsys, ["report", root / "pipe.jsonl", "--out", tmp_path / "rep"], 2, contains="not a regular file")
    check(capsys, ["report", root / "dangling.jsonl", "--out", tmp_path / "rep"], 2, contains="dangling link")


def test_no_read_blocks_on_a_fifo_or_a_device(capsys, tmp_path):
    """A FIFO where a run or its plan belongs would block the read forever: refused or skipped at once."""
    d = tmp_path / "fifo"
    d.mkdir()
    os.mkfifo(d / "20260101T000000Z-0000.jsonl")
    check(capsys, ["run", "--resume", "20260101T000000Z-0000", "--out", d], 2, contains="not a regular file")
    shutil.copy(GOOD, d / GOOD.name)
    os.mkfifo(results.plan_path(d, GOOD.stem))  # the plan is read for every result file
    check(capsys, ["compare", "pconv", "dwconv", "--from", d / GOOD.name], 0)
    check(capsys, ["report", "/dev/zero", "--out", tmp_path / "rep"], 2, contains="not a regular file")


def test_a_target_named_twice_is_measured_once(capsys, tmp_path):
    out = tmp_path / "d"
    args = ["run", "--device", "cpu", "--target", "dwconv", "--target", "dwconv", *TINY, "--out", out, "--json"]
    doc, _ = check(capsys, args, 0)
    recs = _strict_json(doc)["records"]
    assert [r["target"]["name"] for r in recs] == ["dwconv"]
    (path,) = out.glob("*.jsonl")
    assert len(results.read_records(path)) == 1
    check(capsys, ["report", out, "--out", tmp_path / "rep"], 0)
    plan = json.loads(results.plan_path(out, path.stem).read_text())
    assert len(plan["keys"]) == 1


def test_resume_without_a_readable_plan_names_the_options_to_repeat(capsys, tiny_run, tmp_path):
    path = _copy_run(tiny_run, tmp_path / "r")
    run_id, out = path.stem, path.parent
    plan = results.plan_path(out, run_id)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n")  # one target measured, one missing
    first = json.loads(lines[0])["target"]["name"]
    want = f"--target {first} --shape 8x8x8 --layers 1 --batch 1"
    for state, damage in (("unreadable", lambda: plan.write_text("{not json")), ("missing", plan.unlink)):
        damage()
        _, err = check(capsys, ["run", "--resume", run_id, "--out", out], 2, contains=f"plan {plan} is {state}")
        assert want in err[0] and "--workers 0" in err[0] and "--budget 0.3" in err[0]
        assert path.read_text() == lines[0] + "\n"  # nothing measured, nothing lost
    # the options repeated: the run's own records are checked against them, and a mismatch names them
    _, err = check(
        capsys, ["run", "--resume", run_id, "--out", out, "--target", "dwconv", *TINY], 2, contains="no readable plan"
    )
    assert want in err[0]
    # records of another run in the file: refused before anything is measured
    path.write_text(json.dumps(dict(json.loads(lines[0]), run_id="someone-else")) + "\n")
    plan.write_text(json.dumps({"cli": {}}))
    check(
        capsys,
        ["run", "--resume", run_id, "--out", out, "--target", first, *TINY],
        2,
        contains="is a record of run someone-else",
    )


def test_every_json_output_is_strict_json(capsys, tmp_path):
    """Each command's --json output parses with a parser that refuses NaN and Infinity."""
    out = tmp_path / "o"
    docs = {}
    for name, args in (
        ("count", ["count", "pconv", "--shape", "8x8x8", "--layers", "1", "--json"]),
        ("run", ["run", "--device", "cpu", "--target", "pconv", *TINY, "--out", out, "--json"]),
        ("compare", ["compare", "pconv", "dwconv", "--shape", "8x8x8", "--layers", "1", "--budget", "0.3", "--json"]),
        ("compare --from", ["compare", "pconv", "dwconv", "--from", GOOD, "--shape", "96x56x56", "--json"]),
        ("probe", ["probe", "--budget", "0.05", "--out", out, "--json"]),
        (
            "breakdown",
            [
                "breakdown",
                "pconv",
                "--shape",
                "8x8x8",
                "--layers",
                "1",
                "--budget",
                "0.2",
                "--layer-budget",
                "0.02",
                "--out",
                out,
                "--json",
            ],
        ),
        ("error", ["count", "nosuch", "--json"]),
    ):
        code, text, err = call(capsys, args)
        assert code in (0, 2), (name, err)
        docs[name] = _strict_json(text)
        TRIED.append((f"{name} --json is strict JSON", True))
    # a per-layer breakdown line is checked on load too
    (bd,) = [r for r in docs["breakdown"]["records"] if r.get("record") == "breakdown"]
    for field, value, says in (
        ("layers.0.macs", -1, "layers[0].macs is -1"),
        ("layers.0.median_s", 0, "layers[0].median_s is 0"),
        ("end_to_end.samples_s", [1e9], "end_to_end.samples_s is outside"),
        ("shape", "8x8x8", "shape is '8x8x8'"),
    ):
        rec = json.loads(json.dumps(bd))
        _set(rec, field, value)
        f = _write_records(tmp_path / "bd" / "bad.jsonl", [*map(json.loads, _rec_lines()), rec])
        check(capsys, ["report", f, "--out", tmp_path / "rep"], 2, contains=says, max_lines=1)
    # outside Table 1 there is no paper value: null, not NaN
    assert docs["compare"]["summary"]["paper_ratio"] is None
    assert (
        results.json_document({"a": float("nan"), "b": [float("inf")], "c": 1.5})
        == '{"a": null, "b": [null], "c": 1.5}'
    )


# -- the property: whatever a stored field becomes, no traceback and no non-finite number ------------
#: Fields of a real record that the loaders read (a trailing ``.N`` is a list index).
MUTABLE_FIELDS = [
    "cost",
    "cost.macs",
    "cost.flops",
    "cost.params",
    "cost.mem_bytes_analytic",
    "cost.mem_bytes_counted",
    "batch",
    "shape",
    "shape.0",
    "target",
    "target.name",
    "target.kind",
    "target.shape",
    "target.layers",
    "target.batch",
    "target.options",
    "device",
    "device.kind",
    "device.key",
    "device.name",
    "threads",
    "runtime",
    "dtype",
    "memory_format",
    "allocator",
    "created",
    "status",
    "schema",
    "run_id",
    "samples_s",
    "samples_s.0",
    "rounds",
    "rounds.0",
    "stats",
    "stats.precision",
    "stats.median_s",
    "stats.minor_faults_per_iter",
    "stats.stable",
    "env",
]

_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**18), 10**18),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-3, 400), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-2, 2), max_size=2),
)
#: Factors applied to a field's own value: zero, sign flips, the 100x that once passed as a claim.
_factors = st.sampled_from([0, -1, 1e-3, 0.5, 2, 100, 10**9])


def _get(rec, field):
    node = rec
    for k in field.split("."):
        node = node[int(k)] if isinstance(node, list) else node[k]
    return node


def _set(rec, field, value):
    *head, last = field.split(".")
    node = rec
    for k in head:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _finite_everywhere(doc) -> bool:
    if isinstance(doc, dict):
        return all(_finite_everywhere(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_finite_everywhere(v) for v in doc)
    return not isinstance(doc, float) or math.isfinite(doc)


def _csvs_finite(out: Path) -> bool:
    import numpy as np
    import pandas as pd

    for f in out.glob("*.csv"):
        try:
            df = pd.read_csv(f)
        except pd.errors.EmptyDataError:  # a table with no rows (no failures, no probes)
            continue
        num = df.select_dtypes("number")
        if len(num) and np.isinf(num.to_numpy(dtype=float)).any():
            return False
    return True


def _one_error_line(err) -> bool:
    return sum(ln.startswith("fnbench: error: ") for ln in err) == 1 and all(
        ln.startswith(("fnbench: error: ", "fnbench: warning: ")) for ln in err
    )


_PAIR = [json.loads(ln) for ln in _rec_lines() if json.loads(ln)["target"]["name"] in ("pconv", "dwconv")]
_PAIR = [r for r in _PAIR if r["target"]["layers"] == 10]  # the paper's four maps: a claim is judged


def _mutated_file(d: Path, index, field, value, factor, as_repeat) -> tuple[Path, str] | None:
    """The pconv/dwconv Table-1 records with one field of one record changed (in place, or in an
    added repeat from another run); None where the field's path no longer exists."""
    recs = json.loads(json.dumps(_PAIR))
    rec = json.loads(json.dumps(recs[index]))
    try:
        old = _get(rec, field)
    except (KeyError, IndexError, TypeError):
        old = None
    if factor is not None and isinstance(old, (int, float)) and not isinstance(old, bool):
        value = type(old)(old * factor) if isinstance(old, int) and float(factor).is_integer() else old * factor
    try:
        _set(rec, field, value)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if as_repeat:  # another run's repeat of the same measurement, beside the untouched original
        rec.pop("id", None)
        if field != "run_id":
            rec["run_id"] = "repeat-run"
        recs.append(rec)
    else:
        recs[index] = rec
    f = d / "run.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return f, f"{field}={value!r} ({'repeat' if as_repeat else 'in place'})"


def _exit_0_finite_or_2_one_line(capsys, args, label, finite) -> None:
    try:
        code, out, err = call(capsys, args)
    except BaseException as e:  # noqa: BLE001 — anything escaping main() would be a traceback for the user
        pytest.fail(f"{args[0]} with {label}: {type(e).__name__}: {e}")
    assert code in (0, 2), (label, code, err)
    event(f"{args[0]}: exit {code}")  # `pytest --hypothesis-show-statistics` shows how many were refused
    if code == 2:
        assert _one_error_line(err), (label, err)
    else:
        assert finite(out), label
    TRIED.append((f"{args[0]} of a mutated record: {label}", True))


_mutation = dict(
    index=st.integers(0, len(_PAIR) - 1),
    field=st.sampled_from(MUTABLE_FIELDS),
    value=_any_value,
    factor=st.one_of(st.none(), _factors),
    as_repeat=st.booleans(),
)

#: Examples of the two property tests (compare --from is a fraction of a second; a report draws figures).
COMPARE_EXAMPLES, REPORT_EXAMPLES = 100, 50


@settings(max_examples=COMPARE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**_mutation)
def test_mutated_records_compare_from(capsys, tmp_path_factory, index, field, value, factor, as_repeat):
    """Real records with one field changed: ``compare --from --json`` exits 0 with finite numbers
    everywhere (strict JSON), or 2 with one error line; a scaled field (``factor``) keeps its type,
    so the plausibility and agreement checks are what stands between it and the claim."""
    made = _mutated_file(tmp_path_factory.mktemp("mutated"), index, field, value, factor, as_repeat)
    if made is not None:
        f, label = made
        args = ["compare", "pconv", "dwconv", "--from", f, "--json"]
        _exit_0_finite_or_2_one_line(capsys, args, label, lambda out: _finite_everywhere(_strict_json(out)))


@settings(max_examples=REPORT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**_mutation)
def test_mutated_records_report(capsys, tmp_path_factory, index, field, value, factor, as_repeat):
    """The same mutations through ``report``: exit 0 with no infinite number in any CSV, or 2 with one line."""
    d = tmp_path_factory.mktemp("mutated")
    made = _mutated_file(d, index, field, value, factor, as_repeat)
    if made is not None:
        f, label = made
        _exit_0_finite_or_2_one_line(
            capsys, ["report", f, "--out", d / "rep"], label, lambda out: _csvs_finite(d / "rep")
        )


def test_mutated_records_in_a_real_process(fnbench_cmd, cli_env, tmp_path):
    """A few of the mutations through the installed command: one line, exit 2, no traceback."""
    cases = [
        ("cost", {}, "cost.macs is None"),
        ("shape", "96x56x56", "shape is '96x56x56'"),
        ("batch", 0, "batch is 0"),
    ]
    for field, value, says in cases:
        recs = json.loads(json.dumps(_PAIR))
        _set(recs[0], field, value)
        f = _write_records(tmp_path / f"{field}.jsonl", recs)
        for args in (
            ["compare", "pconv", "dwconv", "--from", str(f)],
            ["report", str(f), "--out", str(tmp_path / "r")],
        ):
            res = subprocess.run(fnbench_cmd + args, capture_output=True, text=True, env=cli_env, timeout=300)
            err = [ln for ln in res.stderr.splitlines() if ln.strip()]
            assert res.returncode == 2 and len(err) == 1 and says in err[0] and "Traceback" not in res.stderr
            TRIED.append((f"{' '.join(args[:1])} with {field}={value!r} (subprocess)", True))


def test_zz_count_of_inputs_tried(capsys):
    """Prints how many hostile inputs were tried in this module and how many behaved (all)."""
    bad = [name for name, ok in TRIED if not ok]
    with capsys.disabled():
        print(f"\nhostile inputs tried: {len(TRIED)}, behaved: {len(TRIED) - len(bad)}")
    assert not bad
