"""Step time per software stack: the stock Keras stack users run, the same with XLA, and NVIDIA's tuned code.

tuned      NVIDIA DeepLearningExamples (fused kernels, XLA, fused Adam): `throughput.step_time`, fitted on
           NVIDIA's rows.
keras      Hugging Face TFBertForSequenceClassification + tf-keras `fit`, a Keras mixed-precision policy, no XLA:
           matmuls at the tuned stack's cuBLAS efficiency (scaled by one fitted factor on tensor cores), plus the
           memory-bound bytes and kernel launches of its own traced graph (`opmix`), which barely shrink under
           mixed precision: that is what holds its mixed speed-up near 1.5x where the tuned stack gets 3-4x.
keras-xla  the same graph under `jit_compile=True`: XLA fuses the element-wise ops, so fewer bytes and kernels.
Constants: `stock_constants.json` (`python -m gpuplan.perf.stockfit`), with their provenance.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from gpuplan.perf.opmix import step_mix
from gpuplan.perf.throughput import StepTime, load_constants, precision_path, tensor_peak_flops
from gpuplan.perf.throughput import step_time as tuned_step_time
from gpuplan.workload import STACK_CHOICES as STACKS
from gpuplan.workload import ModelArch, Workload
from pricing.models import GpuSpec

STACK_HELP = {
    "keras": "stock Hugging Face TF + tf-keras fit, Keras mixed policy, no XLA (what `gpuplan calibrate` runs)",
    "keras-xla": "the same with jit_compile=True (XLA fuses the element-wise ops)",
    "tuned": "NVIDIA-optimised code as published by NVIDIA (fused kernels, XLA, fused Adam)",
}
STOCK_CONSTANTS_FILE = "stock_constants.json"


@cache
def load_stock_constants() -> dict[str, Any]:
    return json.loads(resources.files("gpuplan.perf").joinpath(STOCK_CONSTANTS_FILE).read_text())


def keras_dtype(gpu: GpuSpec, precision: str) -> str:
    """The Keras policy a precision runs under on this GPU (TF32 is not a policy: fp32 matmuls use it)."""
    return "float32" if precision == "fp32" else precision_path(gpu, precision).dtype


def stock_step_time(arch: ModelArch, gpu: GpuSpec, precision: str, batch_size: int, seq_len: int, *,
                    xla: bool = False, flops_scale: float = 1.0, constants: dict[str, Any] | None = None,
                    tuned_constants: dict[str, Any] | None = None) -> StepTime:
    c = (constants or load_stock_constants())["parameters"]
    tuned = (tuned_constants or _tuned())["parameters"]
    path = precision_path(gpu, precision)
    mix = step_mix(arch, batch_size, seq_len, keras_dtype(gpu, precision))
    tokens = batch_size * seq_len
    fill = tokens / (tokens + tuned["fill_tokens"])
    efficiency = tuned["efficiency"][path.efficiency_key]
    if precision == "mixed":
        efficiency *= c["tensor_scale"]
    peak = tensor_peak_flops(gpu, path)
    compute = mix.matmul_flops * flops_scale / (peak * min(efficiency, 1.0) * fill)
    memory_bytes, kernels = mix.memory_bytes, mix.kernels
    if xla:
        memory_bytes *= c["xla_bytes_factor"]
        kernels *= c["xla_kernels_factor"]
    memory = memory_bytes / (gpu.memory_bandwidth_gbs * 1e9 * c["memory_efficiency"])
    return StepTime(compute, memory, kernels * c["kernel_seconds"], 1.0)


def step_time(stack: str, arch: ModelArch, gpu: GpuSpec, precision: str, batch_size: int, seq_len: int, *,
              flops_scale: float = 1.0) -> StepTime:
    """One training step on one GPU under a stack."""
    if stack == "tuned":
        return tuned_step_time(arch, gpu, precision, batch_size, seq_len, flops_scale=flops_scale)
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}")
    return stock_step_time(arch, gpu, precision, batch_size, seq_len, xla=stack == "keras-xla",
                           flops_scale=flops_scale)


# A stack that would change a step's time by less than this is not worth a note.
NOTE_THRESHOLD = 1.15


def stack_notes(workload: Workload, gpu: GpuSpec, instance: str, precision: str) -> list[str]:
    """One note when another stack the user could switch to would change the answer: XLA under stock Keras."""
    if workload.stack != "keras":
        return []
    args = (workload.arch, gpu, precision, workload.batch_size, workload.seq_len)
    gain = step_time("keras", *args).seconds / step_time("keras-xla", *args).seconds
    if gain < NOTE_THRESHOLD:
        return []
    return [f"with XLA (compile with jit_compile=True; --stack keras-xla): training steps about {gain:.1f}x faster "
            f"on {instance} ({precision}); `gpuplan calibrate --xla` measures it"]


def _tuned() -> dict[str, Any]:
    return load_constants()
