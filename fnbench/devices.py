"""Which device a run measures, whether it is here, and a fingerprint of the machine and software.

Device kinds:

``cpu``
    The host CPU of an x86_64 machine (the paper's Intel CPU column).
``arm``
    The host CPU of an aarch64 machine (the paper's Cortex-A72 column). fnbench does not drive
    a remote board: run fnbench *on* the ARM device and merge its result files with
    ``fnbench report``.
``cuda``
    The first visible NVIDIA GPU.
``auto``
    ``cuda`` if a GPU is visible, else this host's CPU kind (``cpu`` or ``arm``).

Choice: ``cpu`` on an aarch64 host is *accepted* and resolves to kind ``arm`` — "the CPU of
this machine" is an unambiguous request and refusing it would only make scripts
architecture-specific; the result records ``arm`` so that it is grouped with other ARM results.
``arm`` on an x86_64 host is refused, since no ARM CPU is here to measure.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch

from .errors import UserError, suggest
from .options import DEFAULT_CUDA_BATCH

__all__ = [
    "Device",
    "DEVICE_KINDS",
    "DEVICE_ALIASES",
    "resolve_device",
    "available_devices",
    "device_kinds_status",
    "fingerprint",
    "device_key",
    "host_kind",
    "arm_core_name",
    "cpu_model_from",
    "physical_cores_from",
    "device_record",
    "nvidia_smi",
    "gpu_state",
    "gpu_memory_bytes",
    "smi_id",
    "throttle_reasons",
    "DEFAULT_CUDA_BATCH",
]

DEVICE_KINDS = ("auto", "cpu", "arm", "cuda")
#: Other names people type for a device kind.
DEVICE_ALIASES = {
    "gpu": "cuda",
    "nvidia": "cuda",
    "aarch64": "arm",
    "arm64": "arm",
    "x86_64": "cpu",
    "x86": "cpu",
    "amd64": "cpu",
    "host": "auto",
}
_ARM_ARCHES = {"aarch64", "arm64"}


@dataclass(frozen=True)
class Device:
    """A resolved device: ``kind`` (cpu | arm | cuda), the torch device string, a readable name."""

    kind: str
    torch_device: str
    name: str
    arch: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.name})"


def _arch() -> str:
    return platform.machine().lower() or "unknown"


def host_kind() -> str:
    """``'arm'`` on an aarch64 host, ``'cpu'`` otherwise."""
    return "arm" if _arch() in _ARM_ARCHES else "cpu"


def _cuda_ok() -> bool:
    try:
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:  # noqa: BLE001 — a broken driver install must not crash device detection
        return False


def available_devices() -> list[str]:
    """Device kinds this machine can measure, host CPU kind first."""
    kinds = [host_kind()]
    if _cuda_ok():
        kinds.append("cuda")
    return kinds


#: ``CPU implementer`` codes of aarch64 ``/proc/cpuinfo`` (the MIDR implementer byte).
ARM_IMPLEMENTERS = {
    0x41: "Arm",
    0x42: "Broadcom",
    0x43: "Cavium",
    0x46: "Fujitsu",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x51: "Qualcomm",
    0x61: "Apple",
    0xC0: "Ampere",
}
#: ``(implementer, CPU part)`` → core name, for the cores fnbench is likely to meet.
ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD46): "Cortex-A510",
    (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD48): "Cortex-X2",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x61, 0x022): "Apple M1 Icestorm",
    (0x61, 0x023): "Apple M1 Firestorm",
    (0x61, 0x032): "Apple M2 Blizzard",
    (0x61, 0x033): "Apple M2 Avalanche",
}


def _why_not(kind: str) -> str | None:
    """Why a device kind cannot be measured here (``None`` when it can)."""
    if kind == "cuda":
        if _cuda_ok():
            return None
        if torch.version.cuda is None:
            return f"torch {torch.__version__} was built without CUDA"
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
    if kind != host_kind():
        return f"this host is {_arch()}" + (" (its CPU is kind arm)" if host_kind() == "arm" else "")
    return None


def device_kinds_status() -> list[tuple[str, bool, str]]:
    """Every device kind with whether it is here and, if not, why: ``[(kind, here, why)]``."""
    return [(k, _why_not(k) is None, _why_not(k) or "") for k in ("cpu", "arm", "cuda")]


def _int(v: str) -> int | None:
    try:
        return int(v.strip(), 0)
    except ValueError:
        return None


def arm_core_name(info: str) -> str | None:
    """The core(s) named by the implementer/part fields of an aarch64 ``/proc/cpuinfo``, or None.

    aarch64 kernels print no "model name"; each processor block has ``CPU implementer`` and
    ``CPU part`` (the MIDR fields) instead. A big.LITTLE chip lists each core type with its count,
    e.g. ``"4x Cortex-A55 + 4x Cortex-A76"``. Unknown codes are shown as hex, never guessed.
    """
    cores: list[tuple[int, int]] = []
    impl = None
    for line in info.splitlines() + [""]:
        k, _, v = line.partition(":")
        k = k.strip()
        if k == "CPU implementer":
            impl = _int(v)
        elif k == "CPU part" and impl is not None:
            part = _int(v)
            if part is not None:
                cores.append((impl, part))
            impl = None
    if not cores:
        return None

    def name(code: tuple[int, int]) -> str:
        if code in ARM_PARTS:
            return ARM_PARTS[code]
        vendor = ARM_IMPLEMENTERS.get(code[0], f"implementer 0x{code[0]:02x}")
        return f"{vendor} part 0x{code[1]:03x}"

    kinds = list(dict.fromkeys(cores))
    if len(kinds) == 1:
        return name(kinds[0])
    return " + ".join(f"{cores.count(c)}x {name(c)}" for c in kinds)


def _cpuinfo_field(info: str, *keys: str) -> str | None:
    for key in keys:
        for line in info.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value:
                    return value
    return None


def _lscpu_model() -> str | None:
    exe = shutil.which("lscpu")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=5, env={"LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return _cpuinfo_field(out.stdout, "Model name")


def cpu_model_from(info: str, arch: str) -> str | None:
    """The CPU's name from ``/proc/cpuinfo`` text: "model name" on x86; decoded cores on aarch64.

    On a board that names itself (Raspberry Pi: ``Model``), the board follows the core in brackets:
    ``"Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)"``.
    """
    if arch in _ARM_ARCHES:
        core = arm_core_name(info) or _cpuinfo_field(info, "model name", "cpu model", "Processor")
        board = _cpuinfo_field(info, "Model", "Hardware")
        if core and board:
            return f"{core} ({board})"
        return core or board
    return _cpuinfo_field(info, "model name", "cpu model", "Model", "Hardware", "Processor")


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    model = cpu_model_from(info, _arch()) if info else None
    if model and model != "aarch64":
        return model
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return _lscpu_model() or platform.processor() or _arch()


def resolve_device(name: str) -> Device:
    """Turn ``auto | cpu | arm | cuda`` into a :class:`Device` that is here, or raise ``UserError``.

    The error says what *is* here and what to do instead.
    """
    key = (name or "auto").strip().lower()
    key = DEVICE_ALIASES.get(key, key)
    here = available_devices()
    arch = _arch()
    if key not in DEVICE_KINDS:
        raise UserError(
            f"unknown device {name!r}{suggest(key, [*DEVICE_KINDS, *DEVICE_ALIASES])}; use one of "
            f"{', '.join(DEVICE_KINDS)} (devices here: {', '.join(here)})"
        )
    if key == "auto":
        key = "cuda" if "cuda" in here else host_kind()
    if key == "cuda":
        if not _cuda_ok():
            raise UserError(
                f"cuda requested but {_why_not(key)}; devices here: {', '.join(here)} "
                f"(use --device {host_kind()} or --device auto)"
            )
        return Device("cuda", "cuda", torch.cuda.get_device_name(0), arch)
    if key == "arm" and host_kind() != "arm":
        raise UserError(
            f"arm requested but {_why_not(key)}: run fnbench on the ARM device and merge the "
            f"result files with `fnbench report`; devices here: {', '.join(here)}"
        )
    # 'cpu' on an aarch64 host is accepted as "this host's CPU" and recorded as arm (module docstring).
    return Device(host_kind(), "cpu", _cpu_model(), arch)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def physical_cores_from(info: str, sibling_sets: list[str] | None = None) -> int | None:
    """Physical cores: x86 ``(physical id, core id)`` pairs of ``/proc/cpuinfo``, else sysfs, else ARM blocks.

    aarch64 ``/proc/cpuinfo`` has no ``core id``: there each distinct ``thread_siblings_list`` of
    ``/sys/devices/system/cpu/cpu*/topology`` is one core (``core_id`` alone repeats across the
    clusters of a big.LITTLE chip), and without sysfs each ``processor`` block is one core (the
    ARM cores fnbench meets have no SMT).
    """
    pairs, phys, core = set(), None, None
    for line in info.splitlines():
        k, _, v = line.partition(":")
        k = k.strip()
        if k == "physical id":
            phys = v.strip()
        elif k == "core id":
            core = v.strip()
        elif not line.strip():
            if core is not None:
                pairs.add((phys, core))
            phys = core = None
    if core is not None:
        pairs.add((phys, core))
    if pairs:
        return len(pairs)
    if sibling_sets:
        return len(set(sibling_sets))
    if "CPU implementer" in info:
        return sum(1 for line in info.splitlines() if line.split(":", 1)[0].strip() == "processor") or None
    return None


def _sibling_sets() -> list[str]:
    import glob

    out = []
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list"):
        v = _read(path)
        if v:
            out.append(v)
    return out


def _physical_cores() -> int | None:
    info = _read("/proc/cpuinfo")
    if not info:
        return None
    return physical_cores_from(info, _sibling_sets())


def _cpu_freq_mhz() -> dict[str, float] | None:
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    out = {}
    for key, fname in (
        ("cur_mhz", "scaling_cur_freq"),
        ("max_mhz", "cpuinfo_max_freq"),
        ("min_mhz", "cpuinfo_min_freq"),
    ):
        v = _read(base + fname)
        if v and v.isdigit():
            out[key] = int(v) / 1000.0
    gov = _read(base + "scaling_governor")
    if gov:
        out["governor"] = gov  # type: ignore[assignment]
    if not out:
        info = _read("/proc/cpuinfo") or ""
        for line in info.splitlines():
            if line.startswith("cpu MHz"):
                try:
                    out["cur_mhz"] = float(line.split(":", 1)[1])
                except ValueError:
                    pass
                break
    return out or None


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 — a package that fails to import has no version to report
        return None
    return getattr(mod, "__version__", None)


def _parallel_backend() -> str | None:
    """The ATen backend plus the top-level library lines of ``torch.__config__.parallel_info()``."""
    try:
        info = torch.__config__.parallel_info()
    except Exception:  # noqa: BLE001 — builds without the call: the fingerprint goes without it
        return None
    lines = [ln.strip() for ln in info.splitlines() if ln.strip() and not ln[0].isspace()]
    backend = [ln for ln in lines if ln.startswith("ATen parallel backend")]
    libs = [ln for ln in lines if not ln.endswith(":") and not ln.startswith(("ATen parallel backend", "std::thread"))]
    return "; ".join(backend + libs) or None


#: What ``nvidia-smi`` is asked about a GPU; the clocks and throttle reasons are sampled again in the
#: worker right after a timed block (:func:`gpu_state`), when the GPU is under load.
GPU_STATE_FIELDS = (
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "clocks.max.mem",
    "power.draw",
    "power.limit",
    "pstate",
    "temperature.gpu",
)
#: Bits of nvidia-smi's ``clocks_event_reasons.active`` (``clocks_throttle_reasons`` before driver 535).
THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
_REASON_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")


def throttle_reasons(mask: str | int | None) -> list[str] | None:
    """Names of the bits set in a clocks-event-reasons mask (``"0x0000000000000004"`` → ``["sw_power_cap"]``)."""
    if mask is None:
        return None
    try:
        value = int(mask, 0) if isinstance(mask, str) else int(mask)
    except ValueError:
        return None
    names = [n for bit, n in THROTTLE_REASONS.items() if value & bit]
    rest = value & ~sum(THROTTLE_REASONS)
    return names + ([f"0x{rest:x}"] if rest else [])


def smi_id(torch_index: int = 0) -> str | None:
    """The ``nvidia-smi -i`` id of torch's device ``torch_index``: its UUID (or PCI bus id).

    torch numbers GPUs after ``CUDA_VISIBLE_DEVICES`` (and by speed unless
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``); nvidia-smi numbers them by PCI bus. Index 0 of one is not
    index 0 of the other, the UUID is the same in both.
    """
    try:
        props = torch.cuda.get_device_properties(torch_index)
    except Exception:  # noqa: BLE001 — no GPU, or a broken driver: nothing to query
        return None
    uuid = str(getattr(props, "uuid", "") or "")
    if uuid:
        return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        return f"{getattr(props, 'pci_domain_id', 0):08x}:{bus:02x}:{getattr(props, 'pci_device_id', 0):02x}.0"
    return None


def _smi_query(exe: str, ident: str, fields: list[str], run=subprocess.run) -> dict[str, str] | None:
    try:
        out = run(
            [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits", "-i", ident],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    if len(values) != len(fields):
        return None
    return dict(zip(fields, values))


def nvidia_smi(
    ident: str | None,
    fields=("driver_version", "uuid") + GPU_STATE_FIELDS,
    *,
    run=subprocess.run,
    exe: str | None = None,
) -> dict[str, Any]:
    """Query ``nvidia-smi`` about the GPU ``ident`` (UUID or PCI bus id); ``{}`` when it cannot.

    Keys have dots replaced by underscores; unsupported values are left out. The active clock
    event (throttle) reasons come as ``throttle_reasons`` (names) next to the raw mask.
    """
    exe = exe or shutil.which("nvidia-smi")
    if not exe or not ident:
        return {}
    got = None
    for reason in _REASON_FIELDS:  # the field was renamed; an unknown field fails the whole query
        got = _smi_query(exe, ident, list(fields) + [reason], run)
        if got is not None:
            break
    if got is None:
        got = _smi_query(exe, ident, list(fields), run)
    if got is None:
        return {}
    result: dict[str, Any] = {}
    for f, v in got.items():
        if v and "N/A" not in v and "Not Supported" not in v and "[" not in v:
            result[f.replace(".", "_")] = v
    for reason in _REASON_FIELDS:
        mask = result.pop(reason.replace(".", "_"), None)
        if mask is not None:
            result["throttle_mask"] = mask
            result["throttle_reasons"] = throttle_reasons(mask)
    return result


def gpu_memory_bytes(device: Device) -> int | None:
    """The total memory of ``device``'s GPU (None for a CPU, or where torch cannot say)."""
    if device.kind != "cuda":
        return None
    try:
        return int(torch.cuda.get_device_properties(torch.device(device.torch_device)).total_memory)
    except (RuntimeError, AssertionError, ValueError):
        return None


def gpu_state(torch_index: int = 0) -> dict[str, Any]:
    """Clocks, power, temperature and throttle reasons of torch's GPU ``torch_index`` now ({} if unknown).

    Called in a worker right after a timed block, so the clocks are those of a GPU under load
    (the parent's view is an idle GPU at its idle clocks).
    """
    state = nvidia_smi(smi_id(torch_index), fields=("uuid",) + GPU_STATE_FIELDS)
    state.pop("uuid", None)
    return state


def fingerprint(device: Device | str, threads: int | None) -> dict[str, Any]:
    """What machine and software a result was taken on; never raises for an unreadable field.

    The hostname is stored as a short hash (enough to tell machines apart, nothing more).
    """
    dev = device if isinstance(device, Device) else resolve_device(device)
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    fp: dict[str, Any] = {
        "device_kind": dev.kind,
        "cpu_model": _cpu_model(),
        "arch": _arch(),
        "cores_logical": os.cpu_count(),
        "cores_physical": _physical_cores(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "cpu_freq": _cpu_freq_mhz(),
        "load_avg": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "parallel_backend": _parallel_backend(),
        "host_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:12],
    }
    if dev.kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        fp.update(
            {
                "gpu": props.name,
                "gpu_memory_bytes": int(props.total_memory),
                "gpu_capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
            }
        )
        fp["tf32_default"] = {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        }
        ident = smi_id(0)
        smi = nvidia_smi(ident)
        if smi.get("uuid") and ident and ident.startswith("GPU-") and smi["uuid"] != ident:
            smi = {}  # nvidia-smi answered about another GPU: record nothing rather than the wrong one
        smi.pop("uuid", None)
        if "driver_version" in smi:
            fp["driver"] = smi.pop("driver_version")
        if smi:
            fp["gpu_clocks"] = smi  # idle clocks, read in the parent; records also hold clocks under load
        fp["gpu_smi_id"] = "uuid" if ident and ident.startswith(("GPU-", "MIG-")) else ("pci" if ident else None)
    return fp


def device_record(device: Device, fp: dict[str, Any]) -> dict[str, Any]:
    """A record's ``device`` block: kind, name, arch and :func:`device_key` of the fingerprint ``fp``."""
    return {"kind": device.kind, "name": device.name, "arch": device.arch, "key": device_key(fp)}


def device_key(fp: dict[str, Any]) -> str:
    """A stable short key for "the same device": kind, arch, CPU or GPU model, host hash.

    Software versions and load are deliberately left out: they describe a run, not a device.
    """
    kind = fp.get("device_kind", "cpu")
    model = fp.get("gpu") if kind == "cuda" else fp.get("cpu_model")
    ident = "|".join(str(v) for v in (kind, fp.get("arch"), model, fp.get("host_hash")))
    return f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"
