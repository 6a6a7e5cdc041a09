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

__all__ = ["Device", "DEVICE_KINDS", "DEVICE_ALIASES", "resolve_device", "available_devices", "device_kinds_status",
           "fingerprint", "device_key", "host_kind"]

DEVICE_KINDS = ("auto", "cpu", "arm", "cuda")
#: Other names people type for a device kind.
DEVICE_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "aarch64": "arm", "arm64": "arm", "x86_64": "cpu", "x86": "cpu",
                  "amd64": "cpu", "host": "auto"}
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
    except Exception:  # a broken driver install must not crash device detection
        return False


def available_devices() -> list[str]:
    """Device kinds this machine can measure, host CPU kind first."""
    kinds = [host_kind()]
    if _cuda_ok():
        kinds.append("cuda")
    return kinds


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


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = f.read()
    except OSError:
        info = ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in info.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value:
                    return value
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or _arch()


def resolve_device(name: str) -> Device:
    """Turn ``auto | cpu | arm | cuda`` into a :class:`Device` that is here, or raise ``UserError``.

    The error says what *is* here and what to do instead.
    """
    key = (name or "auto").strip().lower()
    key = DEVICE_ALIASES.get(key, key)
    here = available_devices()
    arch = _arch()
    if key not in DEVICE_KINDS:
        raise UserError(f"unknown device {name!r}{suggest(key, [*DEVICE_KINDS, *DEVICE_ALIASES])}; use one of "
                        f"{', '.join(DEVICE_KINDS)} (devices here: {', '.join(here)})")
    if key == "auto":
        key = "cuda" if "cuda" in here else host_kind()
    if key == "cuda":
        if not _cuda_ok():
            raise UserError(f"cuda requested but {_why_not(key)}; devices here: {', '.join(here)} "
                            f"(use --device {host_kind()} or --device auto)")
        return Device("cuda", "cuda", torch.cuda.get_device_name(0), arch)
    if key == "arm" and host_kind() != "arm":
        raise UserError(f"arm requested but {_why_not(key)}: run fnbench on the ARM device and merge the "
                        f"result files with `fnbench report`; devices here: {', '.join(here)}")
    # 'cpu' on an aarch64 host is accepted as "this host's CPU" and recorded as arm (module docstring).
    return Device(host_kind(), "cpu", _cpu_model(), arch)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _physical_cores() -> int | None:
    info = _read("/proc/cpuinfo")
    if not info:
        return None
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
    return len(pairs) or None


def _cpu_freq_mhz() -> dict[str, float] | None:
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    out = {}
    for key, fname in (("cur_mhz", "scaling_cur_freq"), ("max_mhz", "cpuinfo_max_freq"), ("min_mhz", "cpuinfo_min_freq")):
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
    except Exception:
        return None
    return getattr(mod, "__version__", None)


def _parallel_backend() -> str | None:
    """The ATen backend plus the top-level library lines of ``torch.__config__.parallel_info()``."""
    try:
        info = torch.__config__.parallel_info()
    except Exception:
        return None
    lines = [ln.strip() for ln in info.splitlines() if ln.strip() and not ln[0].isspace()]
    backend = [ln for ln in lines if ln.startswith("ATen parallel backend")]
    libs = [ln for ln in lines if not ln.endswith(":") and not ln.startswith(("ATen parallel backend", "std::thread"))]
    return "; ".join(backend + libs) or None


def _nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    fields = ["driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem", "power.limit", "pstate"]
    try:
        out = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    result: dict[str, Any] = {}
    for f, v in zip(fields, values):
        if v and "N/A" not in v and "Not Supported" not in v:
            result[f.replace(".", "_")] = v
    return result


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
        fp.update({
            "gpu": props.name,
            "gpu_memory_bytes": int(props.total_memory),
            "gpu_capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        })
        smi = _nvidia_smi()
        if "driver_version" in smi:
            fp["driver"] = smi.pop("driver_version")
        if smi:
            fp["gpu_clocks"] = smi
    return fp


def device_key(fp: dict[str, Any]) -> str:
    """A stable short key for "the same device": kind, arch, CPU or GPU model, host hash.

    Software versions and load are deliberately left out: they describe a run, not a device.
    """
    kind = fp.get("device_kind", "cpu")
    model = fp.get("gpu") if kind == "cuda" else fp.get("cpu_model")
    ident = "|".join(str(v) for v in (kind, fp.get("arch"), model, fp.get("host_hash")))
    return f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"
