"""CUDA control flow without a GPU: a fake cuda device whose tensors live on the CPU, fake sessions and
compilers. What needs the real GPU is in the ``cuda``-marked smoke tests at the end (skipped here)."""

import json

import pytest
import torch
from torch import nn

import fnbench.compare as cmp
import fnbench.conditions as conditions
import fnbench.devices as devices
import fnbench.passes as passes
import fnbench.probe as probe
import fnbench.runner as runner
import fnbench.runtimes as runtimes
import fnbench.workers as workers
from fnbench.cli import main
from fnbench.options import RunOptions
from fnbench.results import read_records
from fnbench.runtimes import Prepared, Unsupported
from fnbench.targets import TargetSpec, resolve
from fnbench.timing import Measurement

FAKE_GPU = devices.Device("cuda", "cpu", "Fake GPU", "x86_64")  # kind cuda, tensors on the CPU
TINY = dict(shape="16x8x8", layers="1")


def _cpu_prepare(runtime, build, example, *, device="cpu", threads=1, memory_format="contiguous", dtype="float32"):
    """runtimes.prepare as it would go on cuda, with the module left on the CPU (eager only)."""
    reason = runtimes.runtime_unavailable(runtime, device, dtype=dtype)
    if reason:
        raise Unsupported(reason)
    m = build().eval()
    return Prepared(runtime, m, lambda: build().eval(), {"runtime": runtime, "dtype": dtype})


@pytest.fixture
def fake_cuda(monkeypatch):
    """Resolve every device to a cuda kind whose torch device is the CPU."""
    monkeypatch.setattr(conditions, "resolve_device", lambda name: FAKE_GPU)
    fp = lambda dev, threads: {"device_kind": "cuda", "gpu": "Fake GPU", "arch": "x86_64", "host_hash": "0"}  # noqa: E731
    monkeypatch.setattr(runner, "fingerprint", fp)
    monkeypatch.setattr(probe, "fingerprint", fp)
    monkeypatch.setattr(conditions, "prepare", _cpu_prepare)


# -- --batch on cuda ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_args, want", [([], 32), (["--batch", "1"], 1), (["--batch", "4"], 4)])
def test_run_batch_on_cuda_one_is_honoured(fake_cuda, tmp_path, capsys, batch_args, want):
    rc = main(
        [
            "run",
            "--device",
            "cuda",
            "--target",
            "dwconv",
            "--shape",
            TINY["shape"],
            "--layers",
            TINY["layers"],
            "--budget",
            "0.3",
            "--workers",
            "0",
            "--out",
            str(tmp_path),
            "--json",
            *batch_args,
        ]
    )
    assert rc == 0, capsys.readouterr().err
    (rec,) = read_records(json.loads(capsys.readouterr().out)["path"])
    assert rec["batch"] == want and rec["device"]["kind"] == "cuda"


@pytest.mark.parametrize("batch, want", [(None, 32), (1, 1), (2, 2)])
def test_compare_batch_on_cuda(fake_cuda, batch, want):
    c = cmp.compare("dwconv", "pconv", shape=(16, 8, 8), layers=1, batch=batch, budget_s=0.3, chunks=2)
    assert c.rows[0].a.batch == want and c.rows[0].b.batch == want


# -- ONNX Runtime on cuda ---------------------------------------------------------------------------------


def test_unavailable_onnxruntime_costs_only_its_rows(fake_cuda, tmp_path, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    s = runner.run_suite(
        [TargetSpec.make("dwconv", (16, 8, 8), 1, 1)],
        RunOptions(device="cuda", runtimes=("eager", "onnxruntime"), budget_s=0.3, workers=0),
        out_dir=tmp_path,
    )
    by_rt = {r["runtime"]: r for r in s.records}
    assert by_rt["eager"]["status"] == "ok" and by_rt["eager"]["stats"]["n"] > 0
    assert by_rt["onnxruntime"]["status"] == "unsupported"
    assert "no CUDA execution provider" in by_rt["onnxruntime"]["error"]
    # only onnxruntime asked for, and it cannot run: refused before anything is written
    with pytest.raises(runner.UserError, match="onnxruntime-gpu"):
        runner.run_suite(
            [TargetSpec.make("dwconv", (16, 8, 8), 1, 1)],
            RunOptions(device="cuda", runtimes=("onnxruntime",), budget_s=0.3, workers=0),
            out_dir=tmp_path / "none",
        )
    assert not (tmp_path / "none").exists()


def test_runtime_unavailable_reasons(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtimes.runtime_unavailable("onnxruntime", "cuda") is None
    assert runtimes.runtime_unavailable("onnxruntime", "cuda", dtype="float16") is None
    assert "bfloat16" in runtimes.runtime_unavailable("onnxruntime", "cuda", dtype="bfloat16")
    assert runtimes.runtime_unavailable("eager", "cuda", dtype="bfloat16") is None
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert "onnxruntime-gpu" in runtimes.runtime_unavailable("onnxruntime", "cuda")
    assert runtimes.runtime_unavailable("onnxruntime", "cpu") is None


def test_a_session_that_fell_back_to_the_cpu_is_refused(monkeypatch):
    import onnxruntime as ort

    real = ort.InferenceSession
    asked = []

    class FellBack(real):
        def __init__(self, model, opts, providers):
            asked.append(providers)
            super().__init__(model, opts, providers=["CPUExecutionProvider"])  # what a failed CUDA load leaves

    monkeypatch.setattr(ort, "InferenceSession", FellBack)
    target = resolve(TargetSpec.make("conv", (4, 6, 6), 1, 1))
    data, _ = runtimes.export_onnx(target.build(), target.example_input())
    with pytest.raises(Unsupported, match="not CUDAExecutionProvider first"):
        runtimes.OrtModule(data, device="cuda", threads=1)
    assert asked[0][0][0] == "CUDAExecutionProvider"
    runtimes.check_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda")  # accepted
    runtimes.check_providers(["CPUExecutionProvider"], "cpu")


def test_io_binding_runs_on_the_callers_buffers_and_matches_run():
    # The binding code path on CPU buffers (on cuda the same calls bind device pointers).
    target = resolve(TargetSpec.make("pconv", (16, 8, 8), 2, 2))
    data, _ = runtimes.export_onnx(target.build(), target.example_input())
    sess = runtimes.OrtModule(data, device="cpu", threads=1)
    x = target.example_input(seed=3)
    want = sess(x).clone()
    sess.io_binding = True
    out1 = sess(x)
    out2 = sess(x)
    assert out1.data_ptr() == out2.data_ptr()  # one output buffer, reused: no allocation per timed call
    torch.testing.assert_close(out1, want)
    y = target.example_input(seed=4)
    torch.testing.assert_close(sess(y), target.build()(y), rtol=1e-4, atol=1e-4)  # a new input is rebound


# -- torch.compile -------------------------------------------------------------------------------------------


def test_compile_resets_dynamo_per_target_and_oom_is_not_unsupported(monkeypatch):
    import torch._dynamo

    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    calls = []

    def fake_compile(module, **kw):
        calls.append(kw)

        def run(x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    x = torch.zeros(2, 4, 3, 3)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        runtimes.prepare("compile", lambda: nn.Conv2d(4, 4, 1), x)
    assert len(resets) == 1 and torch._dynamo.config.fail_on_recompile_limit_hit is True

    def broken(module, **kw):
        def run(x):
            raise ValueError("lowering failed: no kernel for this op")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(Unsupported, match="torch.compile failed"):
        runtimes.prepare("compile", lambda: nn.Conv2d(4, 4, 1), x)
    assert len(resets) == 2  # every target starts from a reset


def test_hitting_the_recompile_limit_is_an_error_not_silent_eager():
    import torch._dynamo

    runtimes._fresh_dynamo()
    f = torch.compile(lambda x: x * 2 + 1, backend="eager", dynamic=False)
    with torch._dynamo.config.patch(recompile_limit=1):
        f(torch.zeros(2))
        with pytest.raises(torch._dynamo.exc.FailOnRecompileLimitHit):
            f(torch.zeros(3))  # a second shape would need a second compiled entry
    torch._dynamo.reset()


# -- out of memory while preparing -------------------------------------------------------------------------------


def test_oom_while_preparing_halves_the_batch(monkeypatch):
    seen = []

    def prepare_target(target, device, how, seed):
        seen.append(target.spec.batch)
        if target.spec.batch > 8:
            raise RuntimeError("CUDA error: out of memory")  # as cuDNN's workspace allocation reports it
        return "prepared", torch.zeros(target.spec.batch, 1)

    monkeypatch.setattr(conditions, "prepare_target", prepare_target)
    t = resolve(TargetSpec.make("dwconv", (16, 8, 8), 32, 1))
    prepared, x, failed = conditions.prepare_fitting(t, FAKE_GPU, conditions.Conditions(), 0)
    assert seen == [32, 16, 8] and failed == [32, 16] and x.shape[0] == 8
    monkeypatch.setattr(conditions, "prepare_target", lambda *a: (_ for _ in ()).throw(RuntimeError("bad model")))
    with pytest.raises(RuntimeError, match="bad model"):
        conditions.prepare_fitting(t, FAKE_GPU, conditions.Conditions(), 0)


# -- the worker on cuda --------------------------------------------------------------------------------------------


def test_worker_samples_gpu_state_after_measuring_and_keeps_gpu_time(monkeypatch):
    import fnbench.timing as timing

    order = []

    def fake_measure(module, x, **kw):
        order.append(("measure", kw["halve_on_oom"]))
        return Measurement([1e-3] * 4, [0, 0, 1, 1], 32, gpu_samples_s=[2e-4] * 6, tf32=False, oom_batches=[64])

    monkeypatch.setattr(timing, "measure", fake_measure)
    monkeypatch.setattr(devices, "gpu_state", lambda: order.append("state") or {"clocks_sm": "1980"})
    how = conditions.Conditions(threads=None)
    req = workers.ChunkRequest(TargetSpec.make("dwconv", (16, 8, 8), 32, 1), how, "cuda")
    prepared = Prepared("eager", nn.Identity(), nn.Identity, {"runtime": "eager"})
    cache = {
        (req.spec, req.conditions, req.device, req.seed): (
            (prepared, torch.zeros(32, 1), FAKE_GPU, how, [128]),
            0.1,
        )
    }
    res = workers._handle(0, req, cache)
    assert res.status == "ok" and order == [("measure", True), "state"]  # sampled after the timed blocks
    m = res.measurement
    assert res.gpu_state == {"clocks_sm": "1980"} and m.gpu_samples_s == [2e-4] * 6
    assert m.tf32 is False and m.oom_batches == [128, 64]


def test_a_worker_for_cuda_initialises_it_before_it_reports_ready():
    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU (the warm-up must fail here)")
    with pytest.raises(RuntimeError, match="cuda start-up failed"):
        workers.WorkerPool(1, device="cuda").start()


def test_pass_records_carry_gpu_time_tf32_and_gpu_state():
    class Pool:
        n = 1

        def ask_many(self, requests, concurrency):
            return {i: (workers.Ready(0.1, 0.05, 32), 0.2) for i in requests}

        def ask(self, i, req):
            if req == workers.FINISH:
                m = Measurement([1e-3, 1e-3], [0, 1], 32, gpu_samples_s=[5e-4, 5e-4], tf32=False, cycle_ids=[0, 1])
                return workers.ChunkResult(0, 123, measurement=m, gpu_state={"pstate": "P0"})
            return None

    t = resolve(TargetSpec.make("dwconv", (16, 8, 8), 32, 1))
    task = passes.PendingTarget(t, conditions.Conditions(threads=None), "k")
    out = passes.interleaved_pass(Pool(), [task], device=FAKE_GPU, seed=0, pass_no=0, budget_s=1.0, pass_budget_s=1.0)
    part = out["k"].record_block()
    assert part["gpu_samples_s"] == [5e-4, 5e-4] and part["runtime_info"]["tf32"] is False
    assert part["chunks"][0]["gpu_state"] == {"pstate": "P0"}
    part["pass"] = 0
    m = passes.combine_passes([part], precision=0.02, budget_s=1.0, device="cuda")
    assert m.gpu_median_s == pytest.approx(5e-4) and m.launch_bound is True and m.tf32 is False
    old = {k: v for k, v in part.items() if k != "gpu_samples_s"}  # a record from before GPU time was kept
    assert passes.combine_passes([old], precision=0.02, budget_s=1.0, device="cpu").launch_bound is None


# -- probe on cuda -----------------------------------------------------------------------------------------------------


def test_cuda_probes_tf32_and_modules_built_once(fake_cuda, tmp_path, monkeypatch):
    specs = probe.probe_specs("cuda")
    names = {(s.name, s.dtype, s.tf32) for s in specs}
    assert {
        ("probe:gemm_float32", "float32", False),
        ("probe:gemm_tf32", "float32", True),
        ("probe:gemm_float16", "float16", False),
        ("probe:gemm_bfloat16", "bfloat16", False),
    } <= names
    monkeypatch.setattr(
        probe,
        "probe_specs",
        lambda kind: [probe.ProbeSpec("probe:gemm_tf32", 8, "float32", True), probe.ProbeSpec("probe:copy", 64)],
    )
    seen = []

    def fake_measure(module, x, **kw):
        seen.append((kw["tf32"], kw["halve_on_oom"], kw["rebuild"]() is module, kw["rebuild"]() is module))
        # six rounds around 1 ms: a real (non-zero-width) interval, so the probe takes it at once
        return Measurement([1e-3 * (1 + 1e-3 * (i - 2.5)) for i in range(6)], list(range(6)), 1, tf32=kw["tf32"])

    monkeypatch.setattr(probe, "measure", fake_measure)
    _, _, recs = probe.run_probe(device="cuda", out_dir=tmp_path, budget_s=0.1)
    assert seen == [(True, False, True, True), (False, False, True, True)]  # the same module every round
    assert [r["runtime_info"]["tf32"] for r in recs] == [True, False]
    assert probe.ceilings(recs)["gemm_tf32_flop_per_s"] == pytest.approx(2 * 8**3 / 1e-3)


# -- smoke tests on a real GPU ---------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_measure_records_tf32_and_gpu_time():
    from fnbench.timing import measure

    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    m = measure(nn.Conv2d(32, 32, 3, padding=1, groups=32), torch.randn(32, 32, 14, 14), device="cuda", budget_s=1.0)
    assert m.tf32 is False and m.gpu_samples_s and m.gpu_median_s > 0 and m.launch_bound in (True, False)
    assert m.gpu_median_s <= 1.05 * m.median_s  # execution alone cannot take longer than launch + execution
    after = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    assert after == before


@pytest.mark.cuda
def test_cuda_worker_pool_and_run_with_batch_one(tmp_path, fnbench_cmd, cli_env):
    import subprocess

    with workers.WorkerPool(1, device="cuda") as pool:
        r = pool.run_chunk(
            0,
            workers.ChunkRequest(
                TargetSpec.make("dwconv", (32, 14, 14), 32, 2),
                conditions.Conditions(threads=None),
                "cuda",
                chunk_budget_s=1.0,
                round_s=0.05,
            ),
        )
    assert r.status == "ok", r.failure
    m = r.measurement
    assert len(set(m.round_ids)) >= 2 and m.gpu_samples_s and m.tf32 is False
    res = subprocess.run(
        fnbench_cmd
        + [
            "run",
            "--device",
            "cuda",
            "--target",
            "dwconv",
            "--shape",
            "32x14x14",
            "--layers",
            "2",
            "--batch",
            "1",
            "--budget",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = read_records(json.loads(res.stdout)["path"])
    assert rec["batch"] == 1 and rec["stats"]["gpu_median_s"] > 0 and rec["env"]["gpu"]


@pytest.mark.cuda
def test_cuda_onnxruntime_io_binding():
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime here has no CUDA execution provider")
    t = resolve(TargetSpec.make("pconv", (32, 14, 14), 4, 2))
    x = t.example_input(seed=1).cuda()
    p = runtimes.prepare("onnxruntime", t.build, x, device="cuda")
    assert p.info["provider"] == "CUDAExecutionProvider" and p.info["io_binding"] is True
    out = p.module(x)
    assert out.is_cuda
    torch.testing.assert_close(out, t.build().cuda()(x), rtol=1e-3, atol=1e-3)
