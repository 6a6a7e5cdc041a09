"""The user's own targets (FILE.py:NAME, package.module:NAME, model.onnx), through the real CLI.

The fixture operator (tests/fixtures/mymixer.py) is a k×k depthwise conv then a 1×1 conv without
bias, so its cost has a closed form per layer on C×H×W:
MACs = H·W·C·(k² + C); bytes counted = 4·[(2·CHW + k²C) + (2·CHW + C²)] (each conv reads its
input and weight and writes its output).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fnbench import allocators
from fnbench.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "mymixer.py"
C, H, W, L = 16, 8, 8, 2


def closed_form(c: int, h: int, w: int, layers: int, k: int = 5) -> tuple[int, int]:
    macs = h * w * c * (k * k + c) * layers
    bytes_ = 4 * ((2 * c * h * w + k * k * c) + (2 * c * h * w + c * c)) * layers
    return macs, bytes_


def _cli(fnbench_cmd, cli_env, *args, timeout=300):
    return subprocess.run(fnbench_cmd + list(args), capture_output=True, text=True, env=cli_env, timeout=timeout)


def _records(out: Path, status="ok"):
    recs = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
    return [r for r in recs if r.get("status") == status]


@pytest.fixture
def mine(tmp_path):
    """A copy of the fixture, so a test may edit it."""
    p = tmp_path / "mine.py"
    shutil.copy(FIXTURE, p)
    return p


def test_count_is_exact(fnbench_cmd, cli_env):
    proc = _cli(
        fnbench_cmd, cli_env, "count", f"{FIXTURE}:MyMixer", "--shape", f"{C}x{H}x{W}", "--layers", str(L), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    macs, bytes_ = closed_form(C, H, W, L)
    assert (doc["kind"], doc["macs"], doc["mem_bytes_counted"]) == ("operator", macs, bytes_)
    assert doc["params"] == (25 * C + C * C) * L
    assert doc["source"]["name"] == "MyMixer" and len(doc["source"]["sha256"]) == 64


def test_options_reach_the_factory(fnbench_cmd, cli_env):
    for args in (["--kernel", "3"], ["--opt", "k=3"]):
        proc = _cli(
            fnbench_cmd, cli_env, "count", f"{FIXTURE}:MyMixer", "--shape", "8x6x6", "--layers", "1", "--json", *args
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["macs"] == closed_form(8, 6, 6, 1, k=3)[0]


def test_module_syntax_counts_like_the_file(fnbench_cmd, cli_env):
    env = dict(cli_env, PYTHONPATH=os.pathsep.join([str(FIXTURE.parent), cli_env.get("PYTHONPATH", "")]))
    proc = _cli(fnbench_cmd, env, "count", "mymixer:MyMixer", "--shape", f"{C}x{H}x{W}", "--layers", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["macs"] == closed_form(C, H, W, 1)[0]


def _fresh_process_records(proc, out: Path, passes: int):
    assert proc.returncode == 0, proc.stderr
    (rec,) = _records(out)
    chunks = rec["runtime_info"]["workers"]["chunks"]
    pids = {c["pid"] for c in chunks}
    assert len(chunks) == passes and len(pids) == passes  # one fresh process per pass
    assert os.getpid() not in pids
    assert rec["cost"]["macs"] == closed_form(C, H, W, L)[0]
    assert rec["target"]["source"]["sha256"]
    return rec


def test_run_on_fresh_worker_processes(fnbench_cmd, cli_env, tmp_path):
    out = tmp_path / "res"
    proc = _cli(
        fnbench_cmd, cli_env, "run", "--target", f"{FIXTURE}:MyMixer", "--shape", f"{C}x{H}x{W}", "--layers", str(L),
        "--workers", "1", "--passes", "2", "--budget", "1", "--out", str(out),
    )  # fmt: skip
    _fresh_process_records(proc, out, 2)


@pytest.mark.skipif(allocators.find_library("jemalloc") is None, reason="jemalloc is not installed")
def test_run_under_jemalloc(fnbench_cmd, cli_env, tmp_path):
    out = tmp_path / "res"
    proc = _cli(
        fnbench_cmd, cli_env, "run", "--target", f"{FIXTURE}:MyMixer", "--shape", f"{C}x{H}x{W}", "--layers", str(L),
        "--workers", "1", "--passes", "1", "--budget", "1", "--allocator", "jemalloc", "--out", str(out),
    )  # fmt: skip
    rec = _fresh_process_records(proc, out, 1)
    assert rec["allocator"] == "jemalloc"
    assert "jemalloc" in json.dumps(rec["allocator_state"])


def test_compare_with_dwconv_gives_a_ratio_and_verdict(fnbench_cmd, cli_env):
    proc = _cli(
        fnbench_cmd, cli_env, "compare", f"{FIXTURE}:MyMixer", "dwconv", "--shape", f"{C}x{H}x{W}", "--layers", str(L),
        "--budget", "1", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["rows"]
    # dwconv's stack is the same depthwise 3x3 conv without the pointwise one: its MACs are H·W·C·9 per layer
    assert row["macs_ratio"] == pytest.approx((H * W * C * 9 * L) / closed_form(C, H, W, L)[0])
    assert row["flops_ratio"] > 0
    assert doc["summary"]["claim_verdict"] and "FLOPS" in doc["summary"]["verdict"]


def test_an_edited_file_is_a_new_identity_and_resume_refuses(fnbench_cmd, cli_env, tmp_path, mine):
    out = tmp_path / "res"
    args = ["run", "--target", f"{mine}:MyMixer", "--shape", "8x6x6", "--layers", "1", "--workers", "0",
            "--budget", "1", "--out", str(out), "--json"]  # fmt: skip
    first = _cli(fnbench_cmd, cli_env, *args)
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    mine.write_text(mine.read_text() + "\n# edited\n")
    before = sorted(p.read_bytes() for p in out.iterdir())
    resumed = _cli(fnbench_cmd, cli_env, "run", "--resume", run_id, "--out", str(out))
    assert resumed.returncode == 2
    assert "sources" in resumed.stderr and "Traceback" not in resumed.stderr
    assert sorted(p.read_bytes() for p in out.iterdir()) == before  # nothing written
    second = _cli(fnbench_cmd, cli_env, *args)
    assert second.returncode == 0, second.stderr
    a, b = _records(out)
    assert a["target"]["name"] == b["target"]["name"]
    assert a["target"]["source"]["sha256"] != b["target"]["source"]["sha256"]
    from fnbench.results import load_results, record_key

    assert record_key(a) != record_key(b)
    frame = load_results(out)
    assert frame["target"].nunique() == 2  # the versions are two rows of a report, never one
    code = main(["compare", f"{mine}:MyMixer", "dwconv", "--from", str(out)])
    assert code == 2  # compare --from asks which version, rather than pooling them


def test_breakdown_takes_a_user_target(tmp_path):
    out = tmp_path / "res"
    code = main(["breakdown", f"{FIXTURE}:MyMixer", "--shape", "8x6x6", "--layers", "2", "--budget", "0.5",
                 "--layer-budget", "0.05", "--out", str(out), "--json"])  # fmt: skip
    assert code == 0
    recs = [json.loads(line) for f in out.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert recs and all(r["target"]["source"]["name"] == "MyMixer" for r in recs)
    assert any(r["status"] == "ok" and r["cost"]["macs"] == closed_form(8, 6, 6, 2)[0] for r in recs)


def test_report_never_imports_user_code(fnbench_cmd, cli_env, tmp_path, mine):
    out = tmp_path / "res"
    proc = _cli(fnbench_cmd, cli_env, "run", "--target", f"{mine}:MyMixer", "--shape", "8x6x6", "--layers", "1",
                "--workers", "0", "--budget", "1", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    mine.write_text("raise SystemExit('imported')\n")
    rep = _cli(fnbench_cmd, cli_env, "report", str(out), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    assert "imported" not in rep.stderr + rep.stdout


# -- ONNX ------------------------------------------------------------------------------------------


@pytest.fixture
def dwconv_onnx(tmp_path):
    """A built-in (dwconv, 16x8x8, 2 layers) exported with fnbench's own exporter, BN folded."""
    from fnbench.runtimes import export_onnx
    from fnbench.targets import TargetSpec, resolve
    from fnbench.timing import fold_bn

    t = resolve(TargetSpec.make("dwconv", (C, H, W), 1, L))
    m = t.build()
    fold_bn(m)
    data, _ = export_onnx(m, t.example_input())
    p = tmp_path / "dwconv.onnx"
    p.write_bytes(data)
    return p


def test_an_exported_builtin_counts_within_one_percent(fnbench_cmd, cli_env, dwconv_onnx):
    from fnbench.counting import count
    from fnbench.targets import TargetSpec, resolve
    from fnbench.timing import fold_bn

    t = resolve(TargetSpec.make("dwconv", (C, H, W), 1, L))
    m = t.build()
    fold_bn(m)  # the graph holds the folded network: compare like with like
    ref = count(m, t.example_input(), fvcore=False)
    proc = _cli(fnbench_cmd, cli_env, "count", str(dwconv_onnx), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["shape"] == [C, H, W] and doc["source"]["sha256"]
    assert doc["macs"] == pytest.approx(ref.macs, rel=0.01)
    assert doc["mem_bytes_counted"] == pytest.approx(ref.mem_bytes_counted, rel=0.01)


def test_an_onnx_file_runs_under_onnxruntime(fnbench_cmd, cli_env, tmp_path, dwconv_onnx):
    out = tmp_path / "res"
    proc = _cli(fnbench_cmd, cli_env, "run", "--target", str(dwconv_onnx), "--runtime", "onnxruntime",
                "--workers", "1", "--passes", "1", "--budget", "1", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (rec,) = _records(out)
    assert rec["runtime"] == "onnxruntime" and rec["runtime_info"]["exporter"] == "file"
    assert rec["cost"]["macs"] == H * W * C * 9 * L


# -- bad input: exit 2, one line naming the file or name, nothing written ------------------------------


GOOD = "from torch import nn\n\ndef grow(dim):\n    return nn.Conv2d(dim, 2 * dim, 1)\n\nTHING = 3\n"
FILES = {
    "syn.py": "x = (\n",
    "imp.py": "import no_such_mod_zz\n",
    "g.py": GOOD,
    "r.py": "def f(dim):\n    raise ValueError('bad dim')\n",
    "n.py": "def f(dim):\n    return 3\n",
    "bad.onnx": "not a graph",
}
#: case → (target, extra arguments, what the one line must say); {d} is the directory of FILES.
BAD = {
    "missing file": ("{d}/nope.py:X", [], "nope.py: no such file"),
    "syntax error": ("{d}/syn.py:X", [], "syn.py:1: syntax error"),
    "import error": ("{d}/imp.py:X", [], "No module named 'no_such_mod_zz'"),
    "no such NAME": ("{d}/g.py:Nope", [], "has no 'Nope'; it defines grow"),
    "not callable": ("{d}/g.py:THING", [], "THING is a int, not a class"),
    "factory raises": ("{d}/r.py:f", [], "building it raised ValueError: bad dim"),
    "not a module": ("{d}/n.py:f", [], "returned a int, not an nn.Module"),
    "changes the shape": ("{d}/g.py:grow", [], "use --layers 1"),
    "onnx does not load": ("{d}/bad.onnx", [], "does not load as an ONNX"),
    "opt does not parse": (f"{FIXTURE}:MyMixer", ["--opt", "k=five"], "not a Python literal"),
    "opt unknown keyword": (f"{FIXTURE}:MyMixer", ["--opt", "zz=1"], "has no keyword 'zz'"),
    "flag unknown keyword": (f"{FIXTURE}:MyMixer", ["--groups", "2"], "(from --groups); it takes k"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    target, extra, expected = BAD[case]
    target = target.format(d=tmp_path)
    for argv in (["count", target, *extra], ["run", "--target", target, *extra, "--out", str(tmp_path / "res")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], err
        assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_onnx_with_two_inputs_and_eager_are_refused(tmp_path, capsys, dwconv_onnx):
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2, 3, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", [a, b], [y])
    two = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph), two)
    assert main(["count", str(two)]) == 2
    assert "has 2 inputs (a, b)" in capsys.readouterr().err
    assert main(["run", "--target", str(dwconv_onnx), "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip()
    assert "eager needs a PyTorch module; use --runtime onnxruntime" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


# -- the Python API ----------------------------------------------------------------------------------


def test_import_fnbench_stays_torch_free():
    import sys

    code = "import sys, fnbench; assert callable(fnbench.__getattr__); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_api_count_run_and_compare(tmp_path):
    from torch import nn

    import fnbench

    doc = fnbench.count(f"{FIXTURE}:MyMixer", shape=(C, H, W), layers=L)
    assert (doc["macs"], doc["mem_bytes_counted"]) == closed_form(C, H, W, L)

    def mixer():
        return nn.Sequential(nn.Conv2d(C, C, 5, padding=2, groups=C, bias=False), nn.Conv2d(C, C, 1, bias=False))

    recs = fnbench.run(mixer, shape=(C, H, W), budget_s=1, out_dir=str(tmp_path))
    (rec,) = [r for r in recs if r["status"] == "ok"]
    assert rec["cost"]["macs"] == closed_form(C, H, W, 1)[0]
    assert rec["target"]["source"]["callable"].endswith("mixer")
    assert _records(tmp_path)[0]["id"] == rec["id"]  # the same record is in the JSONL file
    c = fnbench.compare(f"{FIXTURE}:MyMixer", "dwconv", shape=(C, H, W), layers=L, budget_s=1)
    assert c["rows"][0]["macs_ratio"] == pytest.approx(H * W * C * 9 * L / closed_form(C, H, W, L)[0])


def test_a_worker_refuses_a_file_edited_since_the_run_resolved_it(mine):
    from dataclasses import replace

    from fnbench.errors import UserError
    from fnbench.targets import TargetSpec, resolve

    t = resolve(TargetSpec.make(f"{mine}:MyMixer", (8, 6, 6), 1, 1))
    assert resolve(t.spec).source["sha256"] == t.spec.digest  # the same file resolves again
    mine.write_text(mine.read_text() + "\n# edited\n")
    with pytest.raises(UserError, match="changed since it was resolved"):
        resolve(t.spec)  # what a worker does with the spec it is sent
    assert resolve(replace(t.spec, digest=None)).spec.digest != t.spec.digest
