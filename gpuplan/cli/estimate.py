"""`gpuplan estimate`: rank every GPU, precision and market for the workload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpuplan import render
from gpuplan.cli import app
from gpuplan.cli._options import (
    BatchSizeOpt, CatalogOpt, EpochsOpt, FormatOpt, ModelOpt, NumExamplesOpt, PrecisionOpt, RegionOpt, SeqLenOpt,
    WorkloadOpt, workload_from_flags,
)
from gpuplan.measurement import CalibrationResult
from gpuplan.errors import GpuplanError
from gpuplan.plan import Estimate, LocalMachine, make_estimate
from gpuplan.plot import check_plot_path
from gpuplan.workload import Workload, read_workload_file, same_architecture
from pricing.catalog import load_catalog, select_offers

PLAN_COLUMNS = [
    ("instance", "instance", None),
    ("gpu", "gpu", None),
    ("gpu_count", "gpus", None),
    ("precision", "precision", None),
    ("dtype", "dtype", None),
    ("market", "market", None),
    ("samples_per_second", "samples/s", render.rate),
    ("train_seconds", "train", render.duration),
    ("hours", "total", lambda h: render.duration(h * 3600)),
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
    if fmt == "json":
        render.out(render.dumps_json(est.model_dump(mode="json")))
    elif fmt == "csv":
        render.out(render.to_csv([p.model_dump(mode="json") for p in est.plans], CSV_KEYS))
    else:
        rows = [p.model_dump() for p in est.plans]
        multi_region = len({p.region for p in est.plans if p.region}) > 1
        cols = PLAN_COLUMNS[:1] + [("region", "region", None)] + PLAN_COLUMNS[1:] if multi_region else PLAN_COLUMNS
        render.out(render.table(rows, cols))
        render.out(_recommendation_text(est))
        # The same lesson (batch too big for a 16 GiB GPU) holds for every instance carrying that GPU: say it once.
        seen: dict[tuple[str, str, str], list[str]] = {}
        for p in est.plans:
            for n in p.notes:
                instances = seen.setdefault((p.gpu, p.precision, n), [])
                if p.instance not in instances:
                    instances.append(p.instance)
        for (gpu, precision, n), instances in seen.items():
            render.note(f"note: {gpu} {precision} ({', '.join(instances)}): {n}")
    if plot is not None:
        from gpuplan.plot import plot_estimate

        plot_estimate(est, plot)
        render.note(f"wrote {plot}")


def check_same_model(measured: Workload, wanted: Workload, path: Path) -> None:
    """A calibration of another architecture would correct this one with the wrong lesson."""
    if not same_architecture(measured.arch, wanted.arch):
        raise GpuplanError(f"{path} measured {measured.model}, not {wanted.model}: calibrate this model, or pass "
                           f"--model {measured.model}")


def with_dataset_size(wl: Workload, calibrations: list[CalibrationResult], explicit: bool) -> Workload:
    """With the user's dataset measured and no --num-examples given, the full run is that dataset."""
    stats = next((c.dataset for c in calibrations if c.dataset is not None), None)
    if stats is None:
        return wl
    update: dict[str, object] = {"dataset": stats}
    if not explicit:
        update["num_examples"] = stats.num_examples
        render.note(f"note: the full run is your dataset's {stats.num_examples:,} examples (set --num-examples to change)")
    return wl.model_copy(update=update)


def _file_sets(path: Path | None, key: str) -> bool:
    return path is not None and key in read_workload_file(path)


def _recommendation_text(est: Estimate) -> str:
    r = est.recommendation
    w = est.workload
    head = (f"\n{w.model}, {w.num_examples:,} examples x {w.epochs:g} epochs, batch {w.batch_size}/GPU, "
            f"seq-len {w.seq_len}.  * = Pareto front (nothing else is both faster and cheaper).")
    if r is None:
        return head + "\nNo recommendation: no plan fits in GPU memory. Lower --batch-size or --seq-len."
    where = f" in {r.region}" if r.region else ""
    text = (f"{head}\nRecommendation ({r.reason}): {r.instance}{where}, {r.precision} ({r.dtype}), {r.market}: "
            f"{render.duration(r.hours * 3600)}, {render.usd(r.cost_usd)}.")
    if r.baseline is not None and r.speedup is not None and r.saving_usd is not None:
        b = r.baseline
        text += (f"\nAgainst {b.instance} {b.precision} {b.market} ({render.duration(b.hours * 3600)}, "
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
    gpu: Annotated[list[str] | None, typer.Option("--gpu", metavar="KEY", help="GPU key (repeatable), e.g. v100, a10g; 'local' "
                                                  "adds this machine (needs --calibrate or --calibration).")] = None,
    instance: Annotated[list[str] | None, typer.Option("--instance", metavar="TYPE", help="Instance type (repeatable).")] = None,
    model: ModelOpt = None,
    seq_len: SeqLenOpt = None,
    batch_size: BatchSizeOpt = None,
    num_examples: NumExamplesOpt = None,
    epochs: EpochsOpt = None,
    precision: PrecisionOpt = None,
    workload: WorkloadOpt = None,
    catalog: CatalogOpt = None,
    spot: Annotated[bool, typer.Option("--spot", help="Also price spot instances.")] = False,
    region: RegionOpt = None,
    deadline: Annotated[float | None, typer.Option("--deadline", help="Hours: recommend the cheapest plan that "
                                                   "finishes in time.")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="USD: recommend the fastest plan within it.")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="GPU whose fp32 plan the saving is measured "
                                                 "against. [default: the slowest fp32 plan]")] = None,
    sort: Annotated[str, typer.Option("--sort", help="cost or time.")] = "cost",
    fmt: FormatOpt = "table",
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a time-vs-cost chart (PNG).")] = None,
    calibration: Annotated[Path | None, typer.Option("--calibration", help="A `gpuplan calibrate --output` file "
                                                     "whose measurement the estimate uses.")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="Run `gpuplan calibrate` on this machine first, "
                                            "with the same workload, and use what it measures.")] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", help="With --calibrate: your data (CSV, JSON Lines, a "
                                                "saved dataset folder). [default: synthetic tokens]")] = None,
    text_column: Annotated[str, typer.Option("--text-column", help="With --dataset: column with the texts.")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="With --dataset: column with the labels.")] = "label",
    steps: Annotated[int | None, typer.Option("--steps", help="With --calibrate: timed steps per precision.")] = None,
    local_price: Annotated[float, typer.Option("--local-price", help="USD/hour of this machine for --gpu local.")] = 0.0,
) -> None:
    """Estimate time and cost of the fine-tune on each GPU, fp32 vs mixed. Example: gpuplan estimate --gpu v100"""
    render.check_format(fmt)
    if sort not in ("cost", "time"):
        raise GpuplanError(f"unknown sort {sort!r}; use cost or time")
    if plot is not None:
        check_plot_path(plot)
    if local_price < 0:
        raise GpuplanError(f"--local-price must be 0 or more USD/hour, got {local_price:g}")
    wl = workload_from_flags(workload, model, num_examples, epochs, batch_size, seq_len, precision)
    cat = load_catalog(catalog, region=region)
    gpus = [g for g in gpu or [] if g.lower() != "local"]
    local = LocalMachine(price_per_hour=local_price) if len(gpus) < len(gpu or []) else None
    if dataset is not None and not calibrate:
        raise GpuplanError("--dataset is read by the calibration: add --calibrate")
    calibrations = []
    if calibration is not None:
        from gpuplan.measurement import load_result

        calibrations.append(load_result(calibration))
        check_same_model(calibrations[-1].workload, wl, calibration)
    if calibrate:
        from gpuplan.calibration.progress import ProgressBar
        from gpuplan.calibration.train import run_calibration

        calibrations.append(run_calibration(wl, steps=steps, dataset=dataset, text_column=text_column,
                                            label_column=label_column, progress=ProgressBar(),
                                            notify=lambda m: render.note(f"note: {m}")))
    if any(c.dataset is not None for c in calibrations):  # only then does it matter whether the size was given
        wl = with_dataset_size(wl, calibrations,
                               explicit=num_examples is not None or _file_sets(workload, "num_examples"))
    offers = select_offers(cat, gpus=gpus, instances=instance)  # the catalog holds only --region's offers already
    est = make_estimate(wl, offers, cat, calibrations=calibrations, spot=spot, deadline_hours=deadline,
                        budget_usd=budget, sort=sort, baseline_gpu=baseline, local=local)
    render_estimate(est, fmt, plot)
