"""What a calibration measured: a JSON contract for scripts, for `estimate --calibration` and for `launch`.

Pure pydantic: reading a result never imports TensorFlow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuplan.errors import GpuplanError, one_line
from gpuplan.workload import DatasetStats, Precision, Workload

RESULT_SCHEMA_VERSION = 1


class DeviceInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["gpu", "cpu"]
    name: str = Field(description="e.g. 'NVIDIA A10G' or the CPU model")
    gpu_key: str | None = Field(None, description="catalog GPU key when the GPU is in the catalog")
    count: int = Field(1, description="devices visible to TensorFlow")
    compute_capability: float | None = None
    host_cpus: int | None = None
    instance_type: str | None = Field(None, description="EC2 instance type when run by `gpuplan launch`")


class RunResult(BaseModel):
    """One precision's measurement. `skipped_reason` set means no number was taken, and why."""

    model_config = ConfigDict(extra="ignore")

    precision: Precision
    dtype: str = Field(description="Keras policy: float32, mixed_float16 or mixed_bfloat16")
    gpu_count: int = 1
    steps: int = Field(0, description="timed steps, after the warm-up steps")
    warmup_steps: int = Field(0, description="steps timed apart as warm-up; the first one traces the graph")
    batch_size: int = Field(description="per device")
    seq_len: int
    warmup_seconds: float = Field(0.0, description="first steps: tracing and compilation")
    step_seconds: float | None = Field(None, description="median step time after warm-up")
    step_seconds_p90: float | None = None
    step_seconds_mean: float | None = Field(
        None, description="mean step time after warm-up: above the median when other work interrupted some steps"
    )
    samples_per_second: float | None = None
    train_seconds: float | None = Field(None, description="wall time of all steps, including the first")
    flops_per_step: float | None = Field(None, description="from the traced graph")
    flops_per_step_model: float | None = Field(None, description="the performance model's analytic count")
    peak_memory_bytes: int | None = None
    memory_bytes_per_step: float | None = Field(
        None, description="bytes the traced graph's memory-bound ops move per step (before grappler/XLA fusion)")
    kernels_per_step: int | None = Field(None, description="kernels the traced graph launches per step")
    matmul_flops_by_dtype: dict[str, float] = Field(default_factory=dict, description="traced matmul FLOPs by dtype")
    loss_first: float | None = None
    loss_last: float | None = None
    largest_batch_that_fits: int | None = Field(None, description="set when the requested batch ran out of memory")
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
    runs: list[RunResult]
    notes: list[str] = Field(default_factory=list)

    def run(self, precision: str, gpu_count: int = 1) -> RunResult | None:
        for r in self.runs:
            if r.precision == precision and r.gpu_count == gpu_count and r.measured:
                return r
        return None

    def save(self, path: Path) -> None:
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)


def load_result(path: Path) -> CalibrationResult:
    path = Path(path)
    if not path.is_file():
        raise GpuplanError(f"calibration file {path} does not exist; create one with `gpuplan calibrate --output FILE`")
    try:
        return CalibrationResult.model_validate_json(path.read_text())
    except (ValidationError, ValueError, UnicodeDecodeError) as e:
        detail = e.errors()[0] if isinstance(e, ValidationError) else None
        where = f" ({'.'.join(map(str, detail['loc']))}: {detail['msg']})" if detail else f" ({one_line(e)[:120]})"
        raise GpuplanError(
            f"{path} is not a gpuplan calibration result{where}; create one with `gpuplan calibrate --output FILE`"
        ) from None
