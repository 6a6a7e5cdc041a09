"""Device resolution errors say what is here and what to do; the fingerprint is complete and stable."""

import platform

import pytest
import torch

from fnbench import devices
from fnbench.errors import UserError


def test_cpu_resolves_to_host_kind():
    d = devices.resolve_device("cpu")
    assert d.torch_device == "cpu"
    assert d.kind == devices.host_kind()
    assert devices.resolve_device("auto").kind in ("cpu", "arm", "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_user_error():
    with pytest.raises(UserError, match="devices here: cpu|devices here: arm") as e:
        devices.resolve_device("cuda")
    assert "cuda requested" in str(e.value)
    assert devices.resolve_device("auto").kind == devices.host_kind()


@pytest.mark.skipif(platform.machine().lower() in ("aarch64", "arm64"), reason="needs an x86 host")
def test_arm_on_x86_points_to_report():
    with pytest.raises(UserError) as e:
        devices.resolve_device("arm")
    msg = str(e.value)
    assert "x86_64" in msg and "`fnbench report`" in msg and "devices here: cpu" in msg


def test_arm_host_accepts_cpu_as_alias(monkeypatch):
    monkeypatch.setattr(devices.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(devices, "_cuda_ok", lambda: False)
    assert devices.resolve_device("cpu").kind == "arm"
    assert devices.resolve_device("arm").kind == "arm"
    assert devices.resolve_device("auto").kind == "arm"


def test_device_aliases(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_ok", lambda: False)
    with pytest.raises(UserError, match="cuda requested but"):  # gpu means cuda, not "cpu?"
        devices.resolve_device("gpu")
    monkeypatch.setattr(devices.platform, "machine", lambda: "aarch64")
    assert devices.resolve_device("aarch64").kind == "arm"
    status = {k: (here, why) for k, here, why in devices.device_kinds_status()}
    assert status["arm"] == (True, "") and status["cuda"][0] is False and "torch" in status["cuda"][1]
    assert status["cpu"][0] is False and "aarch64" in status["cpu"][1]


def test_unknown_device_suggests():
    with pytest.raises(UserError, match="did you mean: cuda"):
        devices.resolve_device("cdua")


def test_fingerprint_fields_and_stable_key():
    d = devices.resolve_device("cpu")
    fp = devices.fingerprint(d, 1)
    for k in ("cpu_model", "arch", "cores_logical", "threads", "load_avg", "torch", "python", "numpy",
              "parallel_backend", "host_hash"):
        assert k in fp
    assert fp["threads"] == 1 and fp["torch"] == torch.__version__
    assert platform.node() not in str(fp["host_hash"]) or not platform.node()
    fp2 = devices.fingerprint(d, 4)
    fp2["load_avg"] = [9.0, 9.0, 9.0]
    assert devices.device_key(fp) == devices.device_key(fp2)  # threads and load are not the device
    other = dict(fp, cpu_model="Other CPU")
    assert devices.device_key(other) != devices.device_key(fp)
