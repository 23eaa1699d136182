"""What the user asked `gpuplan launch` for, checked field by field, with a bad value named by its flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from gpuplan.errors import GpuplanError
from gpuplan.workload import Workload

# Upper bounds: a calibration takes 15 to 40 minutes; hours mean something is stuck, and the presigned URLs the
# instance uses must outlive the watchdog (temporary credentials rarely last longer than a few hours).
MAX_WATCHDOG_MINUTES = 240
MAX_TIMEOUT_MINUTES = MAX_WATCHDOG_MINUTES + 60


class LaunchRequest(BaseModel):
    workload: Workload
    instance_types: list[str] = Field(min_length=1)
    region: str | None = None
    spot: bool = False
    bucket: str | None = None
    ami_id: str | None = None
    # IAM's own rule for instance profile names: 1-128 of letters, digits and +=,.@_-
    instance_profile: str | None = Field(None, pattern=r"^[\w+=,.@-]{1,128}$")
    wheel: Path | None = None
    timeout_minutes: float | None = Field(None, gt=0, le=MAX_TIMEOUT_MINUTES, allow_inf_nan=False,
                                          description="None: the watchdog's minutes plus 5")
    max_minutes: int = Field(45, gt=0, le=MAX_WATCHDOG_MINUTES)
    steps: int | None = Field(None, gt=0)
    extra_calibrate_args: list[str] = []
    save: Path | None = Field(None, description="folder to write each result into")
    dataset: str | None = Field(None, description="a CSV/JSON Lines file (shipped through S3) or a Hub dataset name")
    text_column: str = "text"
    label_column: str = "label"


FLAG_OF = {"timeout_minutes": "--timeout", "max_minutes": "--max-minutes", "steps": "--steps",
           "instance_types": "--instance", "instance_profile": "--instance-profile"}
# calibrate's counting flags, checked here so that a bad one fails before anything is paid for, not on the instance.
COUNTED_CALIBRATE_FLAGS = {"--steps": 10_000, "--warmup-steps": 1_000}


def check_calibrate_args(args: list[str]) -> None:
    """`--calibrate-arg` values that calibrate would refuse on the instance are refused here."""
    pairs = [a.split("=", 1) if "=" in a else [a, nxt] for a, nxt in zip(args, [*args[1:], ""])]
    for flag, value in pairs:
        most = COUNTED_CALIBRATE_FLAGS.get(flag)
        if most is None:
            continue
        if not value.isdigit() or not 1 <= int(value) <= most:
            raise GpuplanError(f"--calibrate-arg {flag}={value}: calibrate takes 1 to {most:,}; fix it here before "
                               "an instance is paid for")


def check_save_folder(save: Path | None) -> None:
    if save is not None and save.exists() and not save.is_dir():
        raise GpuplanError(f"--save {save} is a file; give a folder to write the results into")


def new_request(**fields: Any) -> LaunchRequest:
    """A LaunchRequest, with a bad value reported by the flag that set it."""
    check_calibrate_args(fields.get("extra_calibrate_args") or [])
    check_save_folder(fields.get("save"))
    try:
        return LaunchRequest(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        if name == "instance_profile":
            raise GpuplanError(f"--instance-profile {err.get('input')!r} is not an instance profile name (letters, "
                               "digits and +=,.@_- only, at most 128)") from None
        raise GpuplanError(f"{FLAG_OF.get(name, name)}: {err['msg'].lower()}, got {err.get('input')!r}") from None
