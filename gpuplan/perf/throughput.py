"""Step time of a BERT training step on a GPU: compute time + memory time + per-step overhead.

compute = matmul FLOPs / (peak of the precision's path x path efficiency x fill), where fill = T / (T + T0)
          models small batches (T tokens per step) leaving the GPU under-occupied;
memory  = bytes moved by element-wise work and the optimizer / (bandwidth x memory efficiency);
overhead= kernel launches and host work per layer.
The efficiencies are fitted on published measurements (`python -m gpuplan.perf.fit`) and stored in
`constants.json` with their provenance; they are data, not code.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from gpuplan.perf.flops import step_work
from gpuplan.workload import ModelArch
from pricing.models import GpuSpec

CONSTANTS_FILE = "constants.json"
CLOCKS_FILE = "sustained_clocks.csv"
# Tensor-core generations: Volta and Turing (fp16 only) vs Ampere and newer (fp16, bf16, TF32).
MODERN_ARCHITECTURES = ("Ampere", "Ada Lovelace", "Hopper", "Blackwell")


@dataclass(frozen=True)
class PrecisionPath:
    """How a precision runs on a GPU: the Keras dtype policy, the peak it runs at and its efficiency key."""

    precision: str
    dtype: str
    peak_tflops: float
    efficiency_key: str
    act_bytes: int


def precision_path(gpu: GpuSpec, precision: str) -> PrecisionPath:
    """fp32 is TF32 where the GPU has it (TensorFlow's default); mixed is bfloat16 on Ampere+, float16 before."""
    modern = gpu.architecture in MODERN_ARCHITECTURES
    if precision == "fp32":
        if gpu.tf32_tflops is not None:
            return PrecisionPath("fp32", "float32 (TF32 matmuls)", gpu.tf32_tflops, "tf32", 4)
        return PrecisionPath("fp32", "float32", gpu.fp32_tflops, "fp32", 4)
    if precision == "mixed":
        if gpu.bf16_tflops is not None:
            return PrecisionPath("mixed", "mixed_bfloat16", gpu.bf16_tflops, "tensor16_modern" if modern else "tensor16_volta", 2)
        return PrecisionPath("mixed", "mixed_float16", gpu.fp16_tflops, "tensor16_modern" if modern else "tensor16_volta", 2)
    raise ValueError(f"unknown precision {precision!r}")


@dataclass(frozen=True)
class StepTime:
    compute_seconds: float
    memory_seconds: float
    overhead_seconds: float
    framework_factor: float

    @property
    def seconds(self) -> float:
        return (self.compute_seconds + self.memory_seconds + self.overhead_seconds) * self.framework_factor


@cache
def sustained_fractions() -> dict[str, float]:
    """Share of the datasheet tensor peak a power-capped GPU holds under load (1.0 where none was measured)."""
    text = resources.files("gpuplan.perf").joinpath("data", CLOCKS_FILE).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    return {r["gpu"]: float(r["sustained_fraction"]) for r in rows}


def tensor_peak_flops(gpu: GpuSpec, path: PrecisionPath) -> float:
    """The peak a precision path runs at, in FLOP/s: a power-capped GPU's tensor cores hold only part of theirs."""
    sustained = sustained_fractions().get(gpu.key, 1.0) if path.precision == "mixed" else 1.0
    return path.peak_tflops * 1e12 * sustained


@cache
def load_constants() -> dict[str, Any]:
    return json.loads(resources.files("gpuplan.perf").joinpath(CONSTANTS_FILE).read_text())


def step_time(
    arch: ModelArch,
    gpu: GpuSpec,
    precision: str,
    batch_size: int,
    seq_len: int,
    constants: dict[str, Any] | None = None,
    framework: str | None = None,
    flops_scale: float = 1.0,
) -> StepTime:
    """flops_scale: traced graph FLOPs / analytic FLOPs, when a calibration measured them."""
    c = (constants or load_constants())["parameters"]
    path = precision_path(gpu, precision)
    work = step_work(arch, batch_size, seq_len, path.act_bytes)
    tokens = batch_size * seq_len
    fill = tokens / (tokens + c["fill_tokens"])
    peak = tensor_peak_flops(gpu, path)
    compute = work.matmul_flops * flops_scale / (peak * c["efficiency"][path.efficiency_key] * fill)
    memory = (work.activation_bytes + work.optimizer_bytes) / (gpu.memory_bandwidth_gbs * 1e9 * c["memory_efficiency"])
    overhead = arch.num_hidden_layers * c["overhead_seconds_per_layer"]
    factors = (constants or load_constants())["framework_factors"]
    factor = factors[framework or (constants or load_constants())["default_framework"]]
    return StepTime(compute, memory, overhead, factor)


def naive_step_seconds(arch: ModelArch, gpu: GpuSpec, precision: str, batch_size: int, seq_len: int,
                       fraction_of_peak: float) -> float:
    """The peers' model: every step runs at a constant fraction of the precision's peak FLOPs."""
    path = precision_path(gpu, precision)
    work = step_work(arch, batch_size, seq_len, path.act_bytes)
    return work.matmul_flops / (path.peak_tflops * 1e12 * fraction_of_peak)


def allreduce_seconds(params: int, gpu_count: int, bus_gbs: float | None) -> float:
    """Ring all-reduce of fp32 gradients: each GPU sends and receives 2(n-1)/n of the gradient bytes."""
    if gpu_count <= 1:
        return 0.0
    if not bus_gbs:
        raise ValueError("a multi-GPU instance needs its all-reduce bandwidth")
    return 2 * (gpu_count - 1) / gpu_count * 4 * params / (bus_gbs * 1e9)
