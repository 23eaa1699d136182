"""What calibrations teach the performance model.

A calibration on a catalog GPU replaces the model on that GPU, and its measured/predicted ratio (per precision)
carries to every other GPU: that ratio is mostly software (framework, kernels, input pipeline), which is the same
on every GPU. Any calibration, CPU included, also contributes its traced FLOPs, measured memory, dataset lengths
and the host's tokenization speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gpuplan.measurement import CalibrationResult
from gpuplan.perf.flops import train_flops_per_step
from gpuplan.perf.memory import footprint
from gpuplan.perf.stacks import step_time
from gpuplan.workload import DatasetStats, Workload
from pricing.catalog import find_gpu
from pricing.models import Catalog

# A traced count far from the analytic one means the graph holds work the model doesn't know about; beyond these
# bounds it more likely means the trace missed or double-counted ops, so we only report it.
FLOPS_SCALE_BOUNDS = (0.5, 2.0)
MEMORY_SCALE_BOUNDS = (0.5, 3.0)


@dataclass
class Lessons:
    time_factor: dict[str, float] = field(default_factory=dict)  # per precision: measured / predicted step time
    flops_scale: float = 1.0  # traced graph FLOPs / analytic FLOPs
    memory_scale: float = 1.0  # measured / modelled peak GPU memory
    tokenize_per_cpu: float | None = None  # examples a second one host CPU tokenizes
    dataset: DatasetStats | None = None
    notes: list[str] = field(default_factory=list)


def learn(workload: Workload, catalog: Catalog, calibrations: Sequence[CalibrationResult]) -> Lessons:
    lessons = Lessons(dataset=workload.dataset)
    time_logs: dict[str, list[float]] = {}
    for cal in calibrations:
        gpu = find_gpu(catalog, cal.device.gpu_key) if cal.device.kind == "gpu" and cal.device.gpu_key else None
        for run in cal.runs:
            if not run.measured or run.gpu_count != 1:
                continue
            arch = cal.workload.arch
            if run.flops_per_step:
                analytic = train_flops_per_step(arch, run.batch_size, run.seq_len)
                ratio = run.flops_per_step / analytic
                if FLOPS_SCALE_BOUNDS[0] <= ratio <= FLOPS_SCALE_BOUNDS[1]:
                    lessons.flops_scale = ratio
                else:
                    lessons.notes.append(f"traced FLOPs are {ratio:.2f}x the model's count; not used")
            if gpu is None:
                continue
            predicted = step_time(cal.workload.stack, arch, gpu, run.precision, run.batch_size, run.seq_len).seconds
            time_logs.setdefault(run.precision, []).append(math.log(run.step_seconds / predicted))
            if run.peak_memory_bytes:
                modelled = footprint(arch, run.batch_size, run.seq_len, run.precision == "mixed").total_bytes
                ratio = run.peak_memory_bytes / modelled
                lessons.memory_scale = min(max(ratio, MEMORY_SCALE_BOUNDS[0]), MEMORY_SCALE_BOUNDS[1])
        if cal.dataset is not None and lessons.dataset is None:
            lessons.dataset = cal.dataset
        rate = cal.dataset.tokenize_examples_per_second if cal.dataset else None
        if rate and cal.device.host_cpus:
            lessons.tokenize_per_cpu = rate / cal.device.host_cpus
    lessons.time_factor = {p: math.exp(sum(v) / len(v)) for p, v in time_logs.items()}
    if len(lessons.time_factor) == 1:  # one precision measured: its lesson is the best guess for the other
        only = next(iter(lessons.time_factor.values()))
        lessons.time_factor = {p: lessons.time_factor.get(p, only) for p in ("fp32", "mixed")}
    if lessons.time_factor:
        lessons.notes.append("model corrected by calibration: " + ", ".join(
            f"{p} x{c:.2f}" for p, c in sorted(lessons.time_factor.items())))
    elif abs(lessons.flops_scale - 1) > 0.02:
        lessons.notes.append(f"compute scaled by the traced graph's FLOPs: x{lessons.flops_scale:.2f}")
    return lessons


def measured_step(workload: Workload, catalog: Catalog, calibrations: Sequence[CalibrationResult],
                  gpu_key: str, gpu_count: int, precision: str) -> tuple[float, float] | None:
    """(step seconds at the workload's batch and length, warm-up seconds) from a calibration on this GPU."""
    for cal in calibrations:
        if cal.device.kind != "gpu" or cal.device.gpu_key != gpu_key:
            continue
        run = cal.run(precision, gpu_count)
        if run is None:
            continue
        gpu = find_gpu(catalog, gpu_key)
        # Carry the measurement to the workload's batch, length and stack with the model's scaling between them.
        at_measured = step_time(cal.workload.stack, cal.workload.arch, gpu, precision, run.batch_size,
                                run.seq_len).seconds
        at_workload = step_time(workload.stack, workload.arch, gpu, precision, workload.batch_size,
                                workload.seq_len).seconds
        return run.step_seconds * at_workload / at_measured, run.warmup_seconds
    return None


def dataset_notes(workload: Workload, catalog: Catalog, dataset: DatasetStats | None, gpu_key: str | None) -> list[str]:
    """What the user's texts say about the plan: truncation, and what dynamic padding would save."""
    if dataset is None:
        return []
    notes = []
    s = workload.seq_len
    if dataset.truncated_share > 0.05:
        notes.append(f"{dataset.truncated_share:.0%} of your texts are longer than seq-len {s} and will be truncated "
                     f"(p90 {dataset.token_len_p90:.0f} tokens, longest {dataset.token_len_max})")
    padded = dataset.mean_padded_len
    if padded and padded < 0.8 * s and gpu_key:
        gpu = find_gpu(catalog, gpu_key)
        full = step_time(workload.stack, workload.arch, gpu, "mixed", workload.batch_size, s).seconds
        short = step_time(workload.stack, workload.arch, gpu, "mixed", workload.batch_size,
                          max(1, round(padded))).seconds
        notes.append(f"half your texts are under {dataset.token_len_p50:.0f} tokens: padding each batch to its longest "
                     f"text (mean {padded:.0f} tokens, not {s}) would make steps about {full / short:.1f}x faster "
                     f"on {gpu_key}")
    return notes
