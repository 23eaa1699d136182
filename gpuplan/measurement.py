"""What a calibration measured: a JSON contract for scripts, for `estimate --calibration` and for `launch`.

Pure pydantic: reading a result never imports TensorFlow.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from gpuplan.errors import GpuplanError, one_line
from gpuplan.workload import DatasetStats, Precision, Workload
from pricing.cache import cache_home

RESULT_SCHEMA_VERSION = 1
# Every time and size a result holds is a finite number: NaN or infinity in a file is a broken file.
# Bounds are physical: no training step takes under a microsecond or over a day.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
StepSeconds = Annotated[float, Field(ge=1e-6, le=86_400, allow_inf_nan=False)]
WallSeconds = Annotated[float, Field(ge=0, le=30 * 86_400, allow_inf_nan=False)]
Rate = Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


def _nan_to_none(v: Any) -> Any:
    """A loss that diverged to NaN or infinity is reported as unknown, never lost with the measurement."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


Loss = Annotated[float | None, BeforeValidator(_nan_to_none)]


class DeviceInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["gpu", "cpu"]
    name: str = Field(description="e.g. 'NVIDIA A10G' or the CPU model")
    gpu_key: str | None = Field(None, description="catalog GPU key when the GPU is in the catalog")
    count: int = Field(1, ge=1, le=64, description="devices visible to TensorFlow")
    compute_capability: float | None = Field(None, ge=1, le=20, allow_inf_nan=False)
    host_cpus: int | None = Field(None, ge=1)
    instance_type: str | None = Field(None, description="EC2 instance type when run by `gpuplan launch`")


class RunResult(BaseModel):
    """One precision's measurement. `skipped_reason` set means no number was taken, and why."""

    model_config = ConfigDict(extra="ignore")

    precision: Precision
    dtype: str = Field(description="Keras policy: float32, mixed_float16 or mixed_bfloat16")
    gpu_count: int = Field(1, ge=1, le=64)
    steps: Count = Field(0, description="timed steps, after the warm-up steps")
    warmup_steps: Count = Field(0, description="steps timed apart as warm-up; the first one traces the graph")
    batch_size: int = Field(ge=1, description="per device")
    seq_len: int = Field(ge=1)
    warmup_seconds: WallSeconds = Field(0.0, description="first steps: tracing and compilation")
    step_seconds: StepSeconds | None = Field(None, description="median step time after warm-up")
    step_seconds_p90: StepSeconds | None = None
    step_seconds_mean: StepSeconds | None = Field(
        None, description="mean step time after warm-up: above the median when other work interrupted some steps"
    )
    samples_per_second: Rate | None = None
    train_seconds: WallSeconds | None = Field(None, description="wall time of all steps, including the first")
    flops_per_step: Seconds | None = Field(None, description="from the traced graph")
    flops_per_step_model: Seconds | None = Field(None, description="the performance model's analytic count")
    peak_memory_bytes: Count | None = None
    memory_bytes_per_step: Seconds | None = Field(
        None, description="bytes the traced graph's memory-bound ops move per step (before grappler/XLA fusion)")
    kernels_per_step: Count | None = Field(None, description="kernels the traced graph launches per step")
    matmul_flops_by_dtype: dict[str, Seconds] = Field(default_factory=dict,
                                                      description="traced matmul FLOPs by dtype")
    loss_first: Loss = None
    loss_last: Loss = None
    largest_batch_that_fits: Count | None = Field(None, description="set when the requested batch ran out of memory")
    skipped_reason: str | None = None

    @property
    def measured(self) -> bool:
        return self.skipped_reason is None and self.step_seconds is not None


class CalibrationResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = RESULT_SCHEMA_VERSION
    created_at: dt.datetime
    gpuplan_version: str
    device: DeviceInfo
    versions: dict[str, str] = Field(default_factory=dict, description="python, tensorflow, transformers, ...")
    workload: Workload
    weights: Literal["random", "pretrained"] = "random"
    dataset: DatasetStats | None = None
    model_source: str | None = Field(None, description="where the model and its weights came from")
    data_source: str | None = Field(None, description="'synthetic' or the dataset file, folder or Hub name")
    tokenizer: str | None = Field(None, description="which tokenizer measured the token lengths")
    runs: list[RunResult] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list)
    phases: dict[str, Seconds] = Field(default_factory=dict, description=(
        "seconds of each start-up phase when `gpuplan launch` ran it: boot, driver, install, model_download, trace "
        "(the start-up model's names), run_<precision>, calibrate"))

    @model_validator(mode="after")
    def _consistent(self) -> CalibrationResult:
        if self.schema_version > RESULT_SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} was written by a newer gpuplan (this one reads "
                             f"{RESULT_SCHEMA_VERSION}); upgrade gpuplan")
        for r in self.runs:
            if r.gpu_count > self.device.count:
                raise ValueError(f"a {r.precision} run on {r.gpu_count} devices, but the device has "
                                 f"{self.device.count}")
            if self.device.kind == "cpu" and r.dtype == "mixed_float16":
                raise ValueError("a mixed_float16 run on a CPU device: float16 mixed precision is GPU-only")
        return self

    @property
    def measured_runs(self) -> list[RunResult]:
        return [r for r in self.runs if r.measured]

    def run(self, precision: str, gpu_count: int = 1) -> RunResult | None:
        for r in self.runs:
            if r.precision == precision and r.gpu_count == gpu_count and r.measured:
                return r
        return None

    def save(self, path: Path) -> None:
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        try:
            tmp.write_text(self.model_dump_json(indent=2))
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def check_writable(path: Path) -> None:
    """Before the first (paid-for) step: can the result be written there at the end?"""
    path = Path(path)
    if path.is_dir():
        raise GpuplanError(f"--output {path} is a folder; give a file name such as {path / 'calibration.json'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise GpuplanError(f"--output {path}: folder {parent} does not exist; create it or write elsewhere")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GpuplanError(f"--output {path} is not writable; choose a file in a folder you can write to")


def calibrations_dir() -> Path:
    return cache_home() / "calibrations"


def save_somewhere(result: CalibrationResult, wanted: Path | None) -> tuple[Path | None, list[str]]:
    """Save a finished measurement: where asked, else beside the working directory, else in the cache.
    Returns where it went (None: nowhere could be written; the caller prints it) and what to tell the user."""
    stamp = result.created_at.strftime("%Y%m%d-%H%M%S")
    fallbacks = [Path(f"gpuplan-calibration-{stamp}.json"), calibrations_dir() / f"calibration-{stamp}.json"]
    notes = []
    for i, path in enumerate(([wanted] if wanted else []) + fallbacks):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            result.save(path)
        except OSError as e:
            if wanted is not None and i == 0:
                notes.append(f"could not write {wanted} ({one_line(e)}); the measurement is kept elsewhere")
            continue
        if path != wanted:
            notes.append(f"measurement saved to {path}; reuse it with --calibration {path}")
        return path, notes
    return None, notes + ["no file could be written; the measurement follows as JSON on stdout"]


MAX_RESULT_BYTES = 20 * 2**20  # a result is kilobytes; anything this large is not one


def load_result(path: Path) -> CalibrationResult:
    """A calibration file, checked: a one-line error for anything that is not a usable measurement."""
    path = Path(path)
    fix = "create one with `gpuplan calibrate --output FILE`"
    if path.is_dir():
        raise GpuplanError(f"calibration file {path} is a folder; pass the JSON file that "
                           "`gpuplan calibrate --output` wrote")
    if not path.is_file():
        raise GpuplanError(f"calibration file {path} does not exist; {fix}")
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise GpuplanError(f"{path} is {path.stat().st_size / 2**20:.0f} MiB: not a gpuplan calibration result "
                               f"(those are a few KB); {fix}")
        result = CalibrationResult.model_validate_json(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise GpuplanError(f"cannot read calibration file {path}: {one_line(e)}") from None
    except (ValidationError, ValueError, UnicodeDecodeError) as e:
        detail = e.errors()[0] if isinstance(e, ValidationError) else None
        where = f" ({'.'.join(map(str, detail['loc']))}: {one_line(detail['msg'])})" if detail else \
            f" ({one_line(e)[:120]})"
        raise GpuplanError(f"{path} is not a gpuplan calibration result{where}; {fix}") from None
    if not result.measured_runs:
        reasons = "; ".join(sorted({r.skipped_reason or "no step time" for r in result.runs}))
        raise GpuplanError(f"{path} holds no measured run ({reasons}); rerun `gpuplan calibrate` with a smaller "
                           "--batch-size or --seq-len")
    return result
