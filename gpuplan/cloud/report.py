"""What the launches brought back: the measurements (named after their instance), the failures, and the estimate
with the measured rows. The CLI renders it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gpuplan.cloud.fleet import Outcome
from gpuplan.cloud.launchplan import LaunchPlan
from gpuplan.cloud.wait import LaunchFailed
from gpuplan.errors import GpuplanError
from gpuplan.measurement import CalibrationResult
from gpuplan.plan import Estimate, make_estimate
from gpuplan.workload import Workload
from pricing.models import Catalog


PHASE_LABELS = {"model_download": "model download", "trace": "trace (first step)", "calibrate": "calibrate in all"}


def _seconds(v: float) -> str:
    return f"{v:.0f}s" if v < 120 else f"{v / 60:.1f} min"


def complete_device(result: CalibrationResult, catalog: Catalog, instance_type: str) -> CalibrationResult:
    """Name the instance and, when the instance's calibrate did not recognise its GPU, the catalog's GPU key."""
    result = result.model_copy(deep=True)
    result.device.instance_type = result.device.instance_type or instance_type
    offer = next((o for o in catalog.offers if o.instance_type == instance_type), None)
    if result.device.kind == "gpu" and result.device.gpu_key is None and offer is not None:
        result.device.gpu_key = offer.gpu
        result.notes.append(f"gpu_key {offer.gpu} set by `gpuplan launch` from the catalog entry of {instance_type}")
    return result


class LaunchReport(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    measured: list[tuple[Outcome, CalibrationResult]]
    failed: list[Outcome]

    @property
    def results(self) -> list[CalibrationResult]:
        return [r for _, r in self.measured]

    @property
    def log_tails(self) -> list[tuple[str, LaunchFailed]]:
        """(instance type, its failure) for the failed launches whose instance left a log: its last lines say why."""
        return [(o.target.instance_type, o.error) for o in self.failed
                if isinstance(o.error, LaunchFailed) and o.error.log_tail]

    def phase_lines(self) -> list[str]:
        """What each instance spent before and during its calibration, as measured there."""
        lines = []
        for o, result in self.measured:
            if result.phases:
                parts = [f"{PHASE_LABELS.get(k, k.replace('run_', '').replace('_', ' '))} "
                         f"{_seconds(v)}" for k, v in result.phases.items()]
                lines.append(f"{o.target.instance_type} phases (measured): {', '.join(parts)}")
        return lines

    def startup_phases(self) -> list[tuple[str, dict[str, float]]]:
        """(instance type, the start-up model's phases) for each measured launch, to keep in the user's cache."""
        from gpuplan.cloud.phases import STARTUP_PHASES

        return [(o.target.instance_type, {k: v for k, v in r.phases.items() if k in STARTUP_PHASES})
                for o, r in self.measured if r.phases]

    def save(self, folder: Path) -> list[Path]:
        """Each measurement as `<launch id>-<instance type>.json` in the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for o, result in self.measured:
            paths.append(folder / f"{o.target.launch_id}-{o.target.instance_type}.json")
            result.save(paths[-1])
        return paths

    def nothing_measured(self) -> GpuplanError | None:
        """The error to raise when no launch gave a result: the one failure itself (its traceback stays useful
        under GPUPLAN_DEBUG=1), or all of them in one line."""
        if self.measured:
            return None
        if len(self.failed) == 1 and self.failed[0].error is not None:
            return self.failed[0].error
        return GpuplanError("; ".join(f"{o.target.instance_type}: {o.error}" for o in self.failed))

    def some_failed(self) -> GpuplanError | None:
        """The error to raise after the estimate when some launches gave no result."""
        if not self.failed:
            return None
        return GpuplanError(f"{len(self.failed)} of {len(self.failed) + len(self.measured)} launches gave no result "
                            "(see above); the estimate uses the others")


def collect(outcomes: list[Outcome], catalog: Catalog) -> LaunchReport:
    return LaunchReport(
        measured=[(o, complete_device(o.result, catalog, o.target.instance_type)) for o in outcomes if o.result],
        failed=[o for o in outcomes if o.result is None],
    )


def launch_estimate(report: LaunchReport, workload: Workload, catalog: Catalog, plan: LaunchPlan,
                    spot: bool) -> Estimate:
    """The estimate over the launch region's offers (every offer when the catalog has none there), measured rows in."""
    offers = [o for o in catalog.offers if o.region == plan.region] or list(catalog.offers)
    return make_estimate(workload, offers, catalog, calibrations=report.results, spot=spot)
