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
    instance_profile: str | None = None
    wheel: Path | None = None
    timeout_minutes: float | None = Field(None, gt=0, le=MAX_TIMEOUT_MINUTES, allow_inf_nan=False,
                                          description="None: the watchdog's minutes plus 5")
    max_minutes: int = Field(45, gt=0, le=MAX_WATCHDOG_MINUTES)
    steps: int | None = Field(None, gt=0)
    extra_calibrate_args: list[str] = []
    dataset: str | None = Field(None, description="a CSV/JSON Lines file (shipped through S3) or a Hub dataset name")
    text_column: str = "text"
    label_column: str = "label"


FLAG_OF = {"timeout_minutes": "--timeout", "max_minutes": "--max-minutes", "steps": "--steps",
           "instance_types": "--instance"}


def new_request(**fields: Any) -> LaunchRequest:
    """A LaunchRequest, with a bad value reported by the flag that set it."""
    try:
        return LaunchRequest(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        raise GpuplanError(f"{FLAG_OF.get(name, name)}: {err['msg'].lower()}, got {err.get('input')!r}") from None
