"""What TensorFlow trains on here, which mixed-precision policy suits it, and how much memory a run took."""

from __future__ import annotations

import contextlib
import os
import re
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuplan.measurement import DeviceInfo

# CPU flags that give oneDNN native bfloat16 matrix multiplies; without them TF emulates bf16 (slowly).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence TensorFlow's C++ start-up lines (oneDNN, CUDA probing) that env vars can't: they print before
    absl logging is initialised. GPUPLAN_DEBUG=1 keeps them."""
    if os.environ.get("GPUPLAN_DEBUG") == "1":
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tf() -> Any:
    """TensorFlow with the Keras 2 (tf-keras) that transformers' TF classes need, imported once and quietly."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import warnings

    with quiet_native_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA probing prints here on machines without a GPU
        import transformers

    transformers.logging.set_verbosity_error()
    # transformers warns on every TF class that TF support ends in v5; the pin in pyproject.toml handles that.
    warnings.filterwarnings("ignore", message=".*TensorFlow and JAX classes are deprecated.*")
    return tf


def cpu_info(cpuinfo: str | None = None) -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; ('CPU', set()) where there is none (macOS, containers)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    name = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
    return (name.group(1).strip() if name else "CPU"), set(flags.group(1).split() if flags else ())


def gpu_key_for(device_name: str, memory_gib: float | None = None) -> str | None:
    """The bundled catalog's key of a GPU TensorFlow names, e.g. 'Tesla T4' -> 't4'."""
    from pricing.catalog import bundled_catalog, gpu_key_for_name

    return gpu_key_for_name(bundled_catalog().gpus, device_name, memory_gib)


def detect_device(tf: Any) -> DeviceInfo:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        name, _ = cpu_info()
        return DeviceInfo(kind="cpu", name=name, count=1, host_cpus=os.cpu_count())
    details = tf.config.experimental.get_device_details(gpus[0])
    name = details.get("device_name", "GPU")
    cc = details.get("compute_capability")
    return DeviceInfo(
        kind="gpu", name=name, gpu_key=gpu_key_for(name), count=len(gpus),
        compute_capability=float(f"{cc[0]}.{cc[1]}") if cc else None, host_cpus=os.cpu_count(),
    )


@dataclass(frozen=True)
class MixedChoice:
    policy: str | None  # None: don't measure mixed here
    skipped_reason: str | None = None
    note: str | None = None


def choose_mixed_policy(device: DeviceInfo, cpu_flags: set[str] | None = None) -> MixedChoice:
    """mixed_bfloat16 where the hardware does bf16 natively, else mixed_float16 with loss scaling on a GPU with
    Tensor Cores; otherwise say why a number would mislead."""
    if device.kind == "gpu":
        cc = device.compute_capability
        if cc is None:
            return MixedChoice("mixed_float16", note="GPU compute capability unknown; measured mixed_float16")
        if cc >= 8.0:
            return MixedChoice("mixed_bfloat16")
        if cc >= 7.0:
            return MixedChoice("mixed_float16")
        return MixedChoice(None, skipped_reason=(
            f"{device.name} (compute capability {cc}) has no Tensor Cores: mixed precision runs no faster than "
            "fp32 there, and TensorFlow warns it may run slower"))
    flags = cpu_info()[1] if cpu_flags is None else cpu_flags
    native = [f for f in CPU_BF16_FLAGS if f in flags]
    if native:
        return MixedChoice("mixed_bfloat16", note=f"CPU bfloat16 via {', '.join(native).upper()}")
    return MixedChoice("mixed_bfloat16", note=(
        "this CPU has no native bfloat16 (no AVX512_BF16 or AMX): TensorFlow emulates it, so the mixed run here "
        "is slower than fp32 and says nothing about mixed precision on a GPU"))


class PeakMemory:
    """Peak memory of one run: the GPU allocator's peak, or on a CPU the process's peak resident set."""

    def __init__(self, tf: Any, device: DeviceInfo):
        self.tf, self.device = tf, device

    def reset(self) -> None:
        if self.device.kind == "gpu":
            for i in range(self.device.count):
                with contextlib.suppress(Exception):
                    self.tf.config.experimental.reset_memory_stats(f"GPU:{i}")
        else:
            # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each precision gets its own peak.
            with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def peak_bytes(self) -> int | None:
        if self.device.kind == "gpu":
            try:
                return max(int(self.tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"])
                           for i in range(self.device.count))
            except Exception:
                return None
        try:
            status = Path("/proc/self/status").read_text()
            hwm = re.search(r"^VmHWM:\s*(\d+)\s*kB", status, re.M)
            if hwm:
                return int(hwm.group(1)) * 1024
        except OSError:
            pass
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
