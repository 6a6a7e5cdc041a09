"""Device resolution errors say what is here and what to do; the fingerprint is complete and stable."""

import platform

import pytest
import torch

from fnbench import devices, reference
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
    for k in (
        "cpu_model",
        "arch",
        "cores_logical",
        "threads",
        "load_avg",
        "torch",
        "python",
        "numpy",
        "parallel_backend",
        "host_hash",
    ):
        assert k in fp
    assert fp["threads"] == 1 and fp["torch"] == torch.__version__
    assert platform.node() not in str(fp["host_hash"]) or not platform.node()
    fp2 = devices.fingerprint(d, 4)
    fp2["load_avg"] = [9.0, 9.0, 9.0]
    assert devices.device_key(fp) == devices.device_key(fp2)  # threads and load are not the device
    other = dict(fp, cpu_model="Other CPU")
    assert devices.device_key(other) != devices.device_key(fp)


# -- ARM naming and core counts from /proc/cpuinfo texts; nvidia-smi answers -------------------------

FIX = __import__("pathlib").Path(__file__).parent / "fixtures"


def _cpuinfo(name):
    return (FIX / "cpuinfo" / name).read_text()


@pytest.mark.parametrize(
    "name, model, cores",
    [
        ("raspberry-pi-4b.txt", "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)", 4),
        ("neoverse-n1.txt", "Neoverse-N1", 4),
        ("neoverse-v2.txt", "Neoverse-V2", 2),
        ("rk3588-big-little.txt", "4x Cortex-A55 + 4x Cortex-A76", 8),
        ("apple-m1-linux.txt", "4x Apple M1 Icestorm + 4x Apple M1 Firestorm", 8),
    ],
)
def test_aarch64_cpuinfo_is_decoded(name, model, cores):
    info = _cpuinfo(name)
    assert devices.cpu_model_from(info, "aarch64") == model
    assert devices.physical_cores_from(info) == cores


@pytest.mark.parametrize(
    "impl, part, want",
    [
        (0x41, 0xD08, "Cortex-A72"),
        (0x41, 0xD0C, "Neoverse-N1"),
        (0x41, 0xD40, "Neoverse-V1"),
        (0x41, 0xD4F, "Neoverse-V2"),
        (0x41, 0xD0B, "Cortex-A76"),
        (0x41, 0xD03, "Cortex-A53"),
        (0x41, 0xD07, "Cortex-A57"),
        (0x41, 0xD05, "Cortex-A55"),
        (0x41, 0xD41, "Cortex-A78"),
        (0x61, 0x999, "Apple part 0x999"),
        (0x99, 0x001, "implementer 0x99 part 0x001"),
    ],
)
def test_arm_parts(impl, part, want):
    assert devices.arm_core_name(f"CPU implementer\t: 0x{impl:x}\nCPU part\t: 0x{part:x}\n") == want


def test_x86_cpuinfo_and_sysfs_core_counts():
    info = _cpuinfo("x86-smt.txt")
    assert devices.cpu_model_from(info, "x86_64") == "Intel(R) Core(TM) i9-9900X CPU @ 3.50GHz"
    assert devices.physical_cores_from(info) == 2  # 4 logical CPUs, two per core
    # aarch64 with sysfs: one core per distinct sibling set, whatever cpuinfo's block count
    assert devices.physical_cores_from(_cpuinfo("neoverse-n1.txt"), ["0", "1", "2-3", "2-3"]) == 3
    assert devices.physical_cores_from("") is None


def test_paper_arm_core():
    assert reference.is_paper_arm_core("Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)")
    assert not reference.is_paper_arm_core("Apple M2")
    assert not reference.is_paper_arm_core("4x Cortex-A53 + 4x Cortex-A72")
    assert not reference.is_paper_arm_core(None)


def test_arm_host_fingerprint_names_the_core(monkeypatch):
    monkeypatch.setattr(devices.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(devices, "_cuda_ok", lambda: False)
    real_read = devices._read
    monkeypatch.setattr(
        devices, "_read", lambda p: _cpuinfo("neoverse-n1.txt") if p == "/proc/cpuinfo" else real_read(p)
    )
    monkeypatch.setattr(devices, "_sibling_sets", lambda: [])
    d = devices.resolve_device("auto")
    assert (d.kind, d.name) == ("arm", "Neoverse-N1")
    fp = devices.fingerprint(d, 1)
    assert fp["cpu_model"] == "Neoverse-N1" and fp["cores_physical"] == 4


class _FakeSmi:
    """Answers like nvidia-smi from a fixture file; records the command lines it was given."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        rc, name = self.answers.pop(0)
        text = (FIX / "nvidia-smi" / name).read_text()
        return __import__("subprocess").CompletedProcess(cmd, rc, stdout=text if rc == 0 else "", stderr=text)


def test_nvidia_smi_is_asked_by_uuid_and_decodes_throttle_reasons():
    uuid = "GPU-5f1c2c2e-9a3b-4c1d-8e2f-0a1b2c3d4e5f"
    fake = _FakeSmi((0, "state-under-load.csv"))
    got = devices.nvidia_smi(uuid, fields=("uuid",) + devices.GPU_STATE_FIELDS, run=fake, exe="nvidia-smi")
    assert fake.calls[0][-2:] == ["-i", uuid]
    assert got["uuid"] == uuid and got["clocks_sm"] == "1980" and got["pstate"] == "P0"
    assert got["throttle_mask"] == "0x0000000000000024"
    assert got["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]


def test_nvidia_smi_falls_back_to_the_old_reason_field_and_drops_na():
    fake = _FakeSmi((6, "bad-field.txt"), (0, "fingerprint-idle.csv"))
    got = devices.nvidia_smi("GPU-x", run=fake, exe="nvidia-smi")
    assert "clocks_event_reasons.active" in fake.calls[0][1]
    assert "clocks_throttle_reasons.active" in fake.calls[1][1]
    assert got["driver_version"] == "570.86.15" and "power_draw" not in got  # [N/A] is left out
    assert got["throttle_reasons"] == ["gpu_idle"]
    assert devices.nvidia_smi(None, run=fake, exe="nvidia-smi") == {}


def test_smi_id_follows_torch_device_uuid(monkeypatch):
    class Props:
        uuid = "5f1c2c2e-9a3b-4c1d-8e2f-0a1b2c3d4e5f"

    seen = []
    monkeypatch.setattr(devices.torch.cuda, "get_device_properties", lambda i: seen.append(i) or Props())
    assert devices.smi_id(0) == "GPU-5f1c2c2e-9a3b-4c1d-8e2f-0a1b2c3d4e5f"
    assert seen == [0]  # torch's index 0 (after CUDA_VISIBLE_DEVICES), never nvidia-smi's index
