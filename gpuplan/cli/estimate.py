"""`gpuplan estimate`: rank every GPU, precision and market for the workload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpuplan import render
from gpuplan.cli import app
from gpuplan.cli._options import (
    BatchSizeOpt, CatalogOpt, DatasetOpt, EpochsOpt, FormatOpt, LabelColumnOpt, ModelOpt, NumExamplesOpt,
    PrecisionOpt, RegionOpt, SeqLenOpt, StepsOpt, TextColumnOpt, WorkloadOpt, workload_from_flags,
)
from gpuplan.errors import GpuplanError
from gpuplan.measured import check_same_model, with_dataset_size
from gpuplan.measurement import CalibrationResult
from gpuplan.plan import Estimate, LocalMachine, check_sort, make_estimate
from gpuplan.plot import check_plot_path
from gpuplan.workload import Workload, read_workload_file
from pricing.catalog import load_catalog, select_offers

GpusOpt = Annotated[list[str] | None, typer.Option("--gpu", metavar="KEY", help="GPU key (repeatable), e.g. v100, "
                                                   "a10g; 'local' adds this machine (needs --calibrate or "
                                                   "--calibration).")]
InstancesOpt = Annotated[list[str] | None, typer.Option("--instance", metavar="TYPE",
                                                        help="Instance type (repeatable).")]
SpotOpt = Annotated[bool, typer.Option("--spot", help="Also price spot instances.")]
DeadlineOpt = Annotated[float | None, typer.Option("--deadline", help="Hours: recommend the cheapest plan that "
                                                   "finishes in time.")]
BudgetOpt = Annotated[float | None, typer.Option("--budget", help="USD: recommend the fastest plan within it.")]
BaselineOpt = Annotated[str | None, typer.Option("--baseline", help="GPU whose fp32 plan the saving is measured "
                                                 "against. [default: the slowest fp32 plan]")]
SortOpt = Annotated[str, typer.Option("--sort", help="cost or time.")]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write a time-vs-cost chart (PNG).")]
CalibrationOpt = Annotated[Path | None, typer.Option("--calibration", help="A `gpuplan calibrate --output` file "
                                                     "whose measurement the estimate uses.")]
CalibrateOpt = Annotated[bool, typer.Option("--calibrate", help="Run `gpuplan calibrate` on this machine first, "
                                            "with the same workload, and use what it measures.")]
LocalPriceOpt = Annotated[float, typer.Option("--local-price", help="USD/hour of this machine for --gpu local.")]

PLAN_COLUMNS = [
    ("instance", "instance", None),
    ("gpu", "gpu", None),
    ("gpu_count", "gpus", None),
    ("precision", "precision", None),
    ("dtype", "dtype", None),
    ("market", "market", None),
    ("samples_per_second", "samples/s", render.rate),
    ("train_seconds", "train", render.duration),
    ("total_seconds", "total", render.duration),
    ("cost_usd", "cost", render.usd),
    ("price_per_hour", "$/h", render.usd),
    ("fits_memory", "fits", None),
    ("source", "source", None),
    ("pareto", "front", lambda p: "*" if p else ""),
]
CSV_KEYS = [
    "instance", "region", "gpu", "gpu_count", "precision", "dtype", "market", "batch_size", "samples_per_second",
    "samples_per_second_per_gpu", "step_seconds", "steps", "hours", "cost_usd", "price_per_hour", "billed_seconds",
    "fits_memory", "max_batch_size", "scaling_efficiency", "source", "pareto",
]


def render_estimate(est: Estimate, fmt: str, plot: Path | None = None) -> None:
    """Table, JSON or CSV on stdout; the recommendation and notes as the table's footer (table) or in the JSON."""
    render.check_format(fmt)
    for n in est.notes:
        render.note(f"note: {n}")
    multi_region = len({p.region for p in est.plans if p.region}) > 1
    columns = PLAN_COLUMNS[:1] + [("region", "region", None)] + PLAN_COLUMNS[1:] if multi_region else PLAN_COLUMNS
    render.emit([p.model_dump(mode="json") for p in est.plans], columns, fmt,
                json_payload=est.model_dump(mode="json"), csv_keys=CSV_KEYS, footer=_recommendation_text(est))
    if fmt == "table":  # JSON and CSV carry each plan's notes in their rows
        for line in _plan_notes(est):
            render.note(line)
    if plot is not None:
        from gpuplan.plot import plot_estimate

        plot_estimate(est, plot)
        render.note(f"wrote {plot}")


def _plan_notes(est: Estimate) -> list[str]:
    """The same lesson (batch too big for a 16 GiB GPU) holds for every instance carrying that GPU: say it once."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for p in est.plans:
        for n in p.notes:
            instances = seen.setdefault((p.gpu, p.precision, n), [])
            if p.instance not in instances:
                instances.append(p.instance)
    return [f"note: {gpu} {precision} ({', '.join(instances)}): {n}" for (gpu, precision, n), instances in seen.items()]


def _calibrations(wl: Workload, calibration: Path | None, calibrate: bool, dataset: str | None, text_column: str,
                  label_column: str, steps: int | None) -> list[CalibrationResult]:
    """The measurements the estimate uses: a saved file, then a fresh calibration on this machine."""
    if dataset is not None and not calibrate:
        raise GpuplanError("--dataset is read by the calibration: add --calibrate")
    calibrations = []
    if calibration is not None:
        from gpuplan.measurement import load_result

        calibrations.append(load_result(calibration))
        check_same_model(calibrations[-1].workload, wl, str(calibration))
    if calibrate:
        from gpuplan.calibration.progress import ProgressBar
        from gpuplan.calibration.train import run_calibration

        calibrations.append(run_calibration(wl, steps=steps, dataset=dataset, text_column=text_column,
                                            label_column=label_column, progress=ProgressBar(),
                                            notify=lambda m: render.note(f"note: {m}")))
    return calibrations


def _sized(wl: Workload, calibrations: list[CalibrationResult], num_examples: int | None,
           workload_file: Path | None) -> Workload:
    """With the user's dataset measured and no --num-examples given, the full run is that dataset."""
    if not any(c.dataset is not None for c in calibrations):  # only then does it matter whether the size was given
        return wl
    given = num_examples is not None or (workload_file is not None
                                         and "num_examples" in read_workload_file(workload_file))
    sized = with_dataset_size(wl, calibrations, size_given=given)
    if not given:
        render.note(f"note: the full run is your dataset's {sized.num_examples:,} examples "
                    "(set --num-examples to change)")
    return sized


def _recommendation_text(est: Estimate) -> str:
    r = est.recommendation
    w = est.workload
    head = (f"\n{w.model}, {w.num_examples:,} examples x {w.epochs:g} epochs, batch {w.batch_size}/GPU, "
            f"seq-len {w.seq_len}.  * = Pareto front (nothing else is both faster and cheaper).")
    if r is None:
        return head + "\nNo recommendation: no plan fits in GPU memory. Lower --batch-size or --seq-len."
    where = f" in {r.region}" if r.region else ""
    text = (f"{head}\nRecommendation ({r.reason}): {r.instance}{where}, {r.precision} ({r.dtype}), {r.market}: "
            f"{render.duration(r.total_seconds)}, {render.usd(r.cost_usd)}.")
    if r.baseline is not None and r.speedup is not None and r.saving_usd is not None:
        b = r.baseline
        text += (f"\nAgainst {b.instance} {b.precision} {b.market} ({render.duration(b.total_seconds)}, "
                 f"{render.usd(b.cost_usd)}): {r.speedup:.2f}x faster, ")
        if abs(r.saving_usd) < 0.005:
            text += "same cost."
        elif r.saving_usd > 0:
            text += f"saves {render.usd(r.saving_usd)}" + (f" ({r.saving_pct:.0%})." if r.saving_pct is not None else ".")
        else:
            text += f"costs {render.usd(-r.saving_usd)} more."
    return text


@app.command()
def estimate(
    gpu: GpusOpt = None, instance: InstancesOpt = None,
    model: ModelOpt = None, seq_len: SeqLenOpt = None, batch_size: BatchSizeOpt = None,
    num_examples: NumExamplesOpt = None, epochs: EpochsOpt = None, precision: PrecisionOpt = None,
    workload: WorkloadOpt = None, catalog: CatalogOpt = None, spot: SpotOpt = False, region: RegionOpt = None,
    deadline: DeadlineOpt = None, budget: BudgetOpt = None, baseline: BaselineOpt = None, sort: SortOpt = "cost",
    fmt: FormatOpt = "table", plot: PlotOpt = None,
    calibration: CalibrationOpt = None, calibrate: CalibrateOpt = False, dataset: DatasetOpt = None,
    text_column: TextColumnOpt = "text", label_column: LabelColumnOpt = "label", steps: StepsOpt = None,
    local_price: LocalPriceOpt = 0.0,
) -> None:
    """Estimate time and cost of the fine-tune on each GPU, fp32 vs mixed. Example: gpuplan estimate --gpu v100"""
    render.check_format(fmt)
    check_sort(sort)
    if plot is not None:
        check_plot_path(plot)
    if local_price < 0:
        raise GpuplanError(f"--local-price must be 0 or more USD/hour, got {local_price:g}")
    wl = workload_from_flags(workload, model, num_examples, epochs, batch_size, seq_len, precision)
    cat = load_catalog(catalog, region=region, notes=render.note)
    gpus = [g for g in gpu or [] if g.lower() != "local"]
    local = LocalMachine(price_per_hour=local_price) if len(gpus) < len(gpu or []) else None
    calibrations = _calibrations(wl, calibration, calibrate, dataset, text_column, label_column, steps)
    wl = _sized(wl, calibrations, num_examples, workload)
    offers = select_offers(cat, gpus=gpus, instances=instance)  # the catalog holds only --region's offers already
    est = make_estimate(wl, offers, cat, calibrations=calibrations, spot=spot, deadline_hours=deadline,
                        budget_usd=budget, sort=sort, baseline_gpu=baseline, local=local)
    render_estimate(est, fmt, plot)
