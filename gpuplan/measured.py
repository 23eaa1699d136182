"""What an estimate takes from calibrations before it plans: the same model, and the dataset's size."""

from __future__ import annotations

from collections.abc import Sequence

from gpuplan.errors import GpuplanError
from gpuplan.measurement import CalibrationResult
from gpuplan.workload import Workload, same_architecture


def check_same_model(measured: Workload, wanted: Workload, source: str) -> None:
    """A calibration of another architecture would correct this one with the wrong lesson."""
    if not same_architecture(measured.arch, wanted.arch):
        raise GpuplanError(f"{source} measured {measured.model}, not {wanted.model}: calibrate this model, or set "
                           f"the workload's model to {measured.model}")


def with_dataset_size(wl: Workload, calibrations: Sequence[CalibrationResult], size_given: bool) -> Workload:
    """With the user's dataset measured, the plan knows its token lengths; unless a size was given, the full run is
    that dataset."""
    stats = next((c.dataset for c in calibrations if c.dataset is not None), None)
    if stats is None:
        return wl
    update: dict[str, object] = {"dataset": stats}
    if not size_given:
        update["num_examples"] = stats.num_examples
    return wl.model_copy(update=update)
