"""The workload: which model of the BERT family, how much data, how many epochs, batch, sequence length and precisions.

Built from flags, from a YAML file (`--workload FILE`), or both (flags win).
"""

from __future__ import annotations

import math
import reprlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from gpuplan.errors import GpuplanError, did_you_mean, one_line
from gpuplan.models import (  # noqa: F401 - re-exported: the workload's model is one of these
    BUILTIN_MODELS, DEFAULT_MODEL, ModelArch, arch_from_config, resolve_model, same_architecture,
)

Precision = Literal["fp32", "mixed"]
PRECISION_CHOICES = ("fp32", "mixed", "both")
# The software a fine-tune runs on (perf/stacks.py models each): stock Hugging Face TF + tf-keras (what users and
# `gpuplan calibrate` run), the same under XLA, or NVIDIA's tuned code.
Stack = Literal["keras", "keras-xla", "tuned"]
STACK_CHOICES = ("keras", "keras-xla", "tuned")
DEFAULT_STACK = "keras"


class DatasetStats(BaseModel):
    """What a calibration learned about the user's texts (token lengths, host tokenizer speed)."""

    model_config = ConfigDict(extra="ignore")

    num_examples: int
    num_labels: int | None = None
    token_len_p50: float
    token_len_p90: float
    token_len_max: int
    truncated_share: float = Field(description="share of texts longer than seq_len")
    mean_padded_len: float | None = Field(
        None, description="mean length of batches padded to their longest text (dynamic padding)"
    )
    tokenize_examples_per_second: float | None = None


MAX_EXAMPLES = 10**11
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_MODEL
    arch: ModelArch
    # Upper bounds far past any real fine-tune: what lies beyond is a typo, and would overflow the arithmetic.
    num_examples: PositiveInt = Field(25_000, le=MAX_EXAMPLES)
    epochs: float = Field(2, gt=0, le=MAX_EPOCHS, allow_inf_nan=False)
    batch_size: PositiveInt = Field(32, le=MAX_BATCH)
    seq_len: PositiveInt = 128
    precisions: list[Precision] = ["fp32", "mixed"]
    stack: Stack = DEFAULT_STACK
    dataset: DatasetStats | None = None

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_examples // self.batch_size)


# The keys a workload YAML file may hold, and the type each must have.
WORKLOAD_FILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "num_examples": int,
    "epochs": (int, float),
    "batch_size": int,
    "seq_len": int,
    "precision": str,
    "stack": str,
}


# A workload file is a few lines: past this it is another file passed by mistake, refused before it is read.
MAX_WORKLOAD_FILE_BYTES = 64 * 2**10


def read_workload_file(path: Path) -> dict[str, Any]:
    """The fields of a workload YAML file, each of its expected type; a folder, an unreadable, huge, binary or
    non-UTF-8 file is one line naming it."""
    from pricing.files import read_yaml_file

    doc = read_yaml_file(path, "workload file", max_bytes=MAX_WORKLOAD_FILE_BYTES, error=GpuplanError)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise GpuplanError(f"workload file {path} must be a mapping such as `model: bert-base-uncased`")
    for key, value in doc.items():
        if key not in WORKLOAD_FILE_KEYS:
            raise GpuplanError(
                f"workload file {path}: unknown field {key!r}.{did_you_mean(str(key), WORKLOAD_FILE_KEYS)} "
                f"Fields: {', '.join(WORKLOAD_FILE_KEYS)}"
            )
        expected = WORKLOAD_FILE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            kind = expected.__name__ if isinstance(expected, type) else "number"
            raise GpuplanError(f"workload file {path}: {key} must be a {kind}, got {reprlib.repr(value)}")
    return doc


def build_workload(
    *,
    workload_file: Path | None = None,
    model: str | None = None,
    num_examples: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    seq_len: int | None = None,
    precision: str | None = None,
    stack: str | None = None,
) -> Workload:
    """Defaults, then the file, then the flags that were given."""
    values: dict[str, Any] = read_workload_file(Path(workload_file)) if workload_file else {}
    flags = dict(model=model, num_examples=num_examples, epochs=epochs, batch_size=batch_size, seq_len=seq_len,
                 precision=precision, stack=stack)
    values.update({k: v for k, v in flags.items() if v is not None})
    limits = {"num_examples": MAX_EXAMPLES, "epochs": MAX_EPOCHS, "batch_size": MAX_BATCH, "seq_len": None}
    for key, most in limits.items():
        if key not in values:
            continue
        v, name = values[key], key.replace("_", "-")
        if isinstance(v, float) and not math.isfinite(v):
            raise GpuplanError(f"{name} must be a finite number, got {v}")
        if v <= 0:
            raise GpuplanError(f"{name} must be greater than 0, got {v}")
        if most is not None and v > most:
            raise GpuplanError(f"{name} {v:g} is beyond any real fine-tune (at most {most:g}); check the value")
    prec = str(values.pop("precision", "both")).lower()
    if prec not in PRECISION_CHOICES:
        raise GpuplanError(f"unknown precision {prec!r}; use fp32, mixed or both")
    stack_name = str(values.get("stack", DEFAULT_STACK)).lower()
    if stack_name not in STACK_CHOICES:
        raise GpuplanError(f"unknown stack {stack_name!r}.{did_you_mean(stack_name, STACK_CHOICES)} "
                           f"Use one of {', '.join(STACK_CHOICES)}")
    values["stack"] = stack_name
    arch = resolve_model(values.get("model", DEFAULT_MODEL))
    seq = values.get("seq_len", 128)
    if seq > arch.max_tokens:
        raise GpuplanError(
            f"seq-len {seq} is longer than {arch.name} can take ({arch.position_limit()}); "
            f"use --seq-len {arch.max_tokens} or less"
        )
    precisions = ["fp32", "mixed"] if prec == "both" else [prec]
    try:
        return Workload(arch=arch, precisions=precisions, **values)
    except ValidationError as e:
        raise GpuplanError(f"workload: {one_line(e.errors()[0]['msg'])}") from None
