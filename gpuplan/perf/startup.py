"""Start-up: what an instance spends before its first training step, in phases, each with its source.

boot -> driver ready -> install (TensorFlow with CUDA: download, then unpack) -> model download -> graph trace.
All billed. The figures are data (`data/startup.json`); a phase measured by `gpuplan launch` on an instance
family replaces the model's figure for that family.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel

from gpuplan.perf.flops import param_count
from gpuplan.perf.opmix import step_mix
from gpuplan.workload import ModelArch

PHASES = ("boot", "driver", "install", "model_download", "trace")


class StartupPhase(BaseModel):
    phase: str
    seconds: float
    source: str  # "model" (data/startup.json) or "measured" (a launch of that family)


@cache
def load_startup() -> dict[str, Any]:
    return json.loads(resources.files("gpuplan.perf").joinpath("data", "startup.json").read_text())


def family(instance_type: str) -> str:
    """An instance family (g5, p3, ...): its members share an AMI, a boot and an install."""
    return instance_type.split(".")[0]


def modelled_phases(arch: ModelArch, dtype: str = "float32", data: dict[str, Any] | None = None) -> dict[str, float]:
    d = data or load_startup()
    rate = d["download_bytes_per_second"]["value"]
    wheels = d["install_download_bytes"]["value"]
    weights = 4.0 * param_count(arch)  # safetensors of fp32 weights
    return {
        "boot": d["boot_seconds"]["value"],
        "driver": d["driver_seconds"]["value"],
        "install": wheels / rate + wheels / d["install_bytes_per_second"]["value"],
        "model_download": weights / rate,
        "trace": step_mix(arch, 1, 128, dtype).kernels * d["trace_seconds_per_kernel"]["value"],
    }


def startup_phases(arch: ModelArch, dtype: str = "float32", measured: dict[str, float] | None = None,
                   data: dict[str, Any] | None = None) -> list[StartupPhase]:
    """The phases of one instance's start-up; `measured` (phase -> seconds) wins where a launch timed it."""
    measured = measured or {}
    modelled = modelled_phases(arch, dtype, data)
    return [StartupPhase(phase=p, seconds=round(measured.get(p, modelled[p]), 1),
                         source="measured" if p in measured else "model") for p in PHASES]


def startup_seconds(phases: list[StartupPhase]) -> float:
    return sum(p.seconds for p in phases)
