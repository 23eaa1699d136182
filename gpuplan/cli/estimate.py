"""`gpuplan estimate`: rank every GPU, precision and market for the workload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gpuplan import render
from gpuplan.cli import app, examples
from gpuplan.cli._options import (
    BatchSizeOpt, CatalogOpt, DatasetOpt, EpochsOpt, FormatOpt, LabelColumnOpt, ModelOpt, NumExamplesOpt,
    PrecisionOpt, RegionOpt, SeqLenOpt, StackOpt, StepsOpt, TextColumnOpt, WorkloadOpt, finite, workload_from_flags,
)
from gpuplan.errors import GpuplanError
from gpuplan.measured import check_same_model, with_dataset_size
from gpuplan.measurement import CalibrationResult
from gpuplan.plan import Estimate, LocalMachine, Plan, Recommendation, check_sort, make_estimate
from gpuplan.plot import check_plot_path
from gpuplan.startup_cache import measured_phases
from gpuplan.workload import Workload, read_workload_file
from pricing.catalog import load_catalog, price_dates, select_offers

GpusOpt = Annotated[list[str] | None, typer.Option("--gpu", metavar="KEY", help="GPU key (repeatable), e.g. v100, "
                                                   "a10g; 'local' adds this machine (needs --calibrate or "
                                                   "--calibration).")]
InstancesOpt = Annotated[list[str] | None, typer.Option("--instance", metavar="TYPE",
                                                        help="Instance type (repeatable).")]
SpotOpt = Annotated[bool, typer.Option("--spot", help="Also price spot instances.")]
DeadlineOpt = Annotated[float | None, typer.Option("--deadline", parser=finite, metavar="HOURS",
                                                   help="Hours: recommend the cheapest plan that "
                                                   "finishes in time.")]
BudgetOpt = Annotated[float | None, typer.Option("--budget", parser=finite, metavar="USD",
                                                 help="USD: recommend the fastest plan within it.")]
BaselineOpt = Annotated[str | None, typer.Option("--baseline", help="GPU whose fp32 plan the saving is measured "
                                                 "against. [default: the slowest fp32 plan]")]
SortOpt = Annotated[str, typer.Option("--sort", help="cost or time.")]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write a time-vs-cost chart (PNG).")]
CalibrationOpt = Annotated[Path | None, typer.Option("--calibration", help="A `gpuplan calibrate --output` file "
                                                     "whose measurement the estimate uses.")]
CalibrateOpt = Annotated[bool, typer.Option("--calibrate", help="Run `gpuplan calibrate` on this machine first, "
                                            "with the same workload, and use what it measures.")]
LocalPriceOpt = Annotated[float, typer.Option("--local-price", parser=finite, metavar="USD",
                                              help="USD/hour of this machine for --gpu local.")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Every column of each plan, not just the 100-column view.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every plan, not just the Pareto front and the cheapest others.")]
TopOpt = Annotated[int, typer.Option("--top", min=0, max=1000, metavar="N",
                                     help="How many plans to show besides the Pareto front and the baseline.")]


def _print_schema(value: bool) -> None:
    if value:
        from gpuplan.schema import schema_text

        render.out(schema_text())
        raise typer.Exit()


SchemaOpt = Annotated[bool, typer.Option("--schema", is_eager=True, callback=_print_schema,
                                         help="Print the JSON Schema of --format json and exit.")]

# The default view fits 100 columns: what a plan is, what it takes, and one marker column.
MARKS = (("*", "Pareto front (nothing else is both faster and cheaper)"), ("x", "does not fit in GPU memory"),
         ("m", "measured, not modelled"))
TABLE_COLUMNS = [
    ("instance", "instance", None),
    ("gpus", "GPU x count", None),
    ("precision", "precision", None),
    ("market", "market", None),
    ("total_seconds", "time", render.duration),
    ("cost_usd", "cost", render.usd),
    ("price_per_hour", "$/h", render.usd),
    ("mark", "", None),
]
OTHERS_SHOWN = 10  # besides the Pareto front, by default


def _front(p: bool) -> str:
    return "*" if p else ""


# --wide: every scalar field of a plan (the lists, notes and start-up phases, are in the JSON and CSV).
WIDE_COLUMNS = [
    ("instance", "instance", None), ("region", "region", None), ("gpu", "gpu", None), ("gpu_count", "gpus", None),
    ("precision", "precision", None), ("dtype", "dtype", None), ("stack", "stack", None), ("market", "market", None),
    ("batch_size", "batch", None), ("samples_per_second", "samples/s", render.rate),
    ("step_seconds", "step s", render.rate), ("steps", "steps", None),
    ("warmup_seconds", "warm-up", render.duration), ("train_seconds", "train", render.duration),
    ("startup_seconds", "start-up", render.duration), ("total_seconds", "total", render.duration),
    ("cost_usd", "cost", render.usd), ("price_per_hour", "$/h", render.usd), ("memory_bytes", "memory", render.gib),
    ("fits_memory", "fits", None), ("max_batch_size", "max batch", None), ("scaling_efficiency", "scaling", None),
    ("source", "source", None), ("correction", "correction", None), ("input_bound", "input-bound", None),
    ("pareto", "front", _front),
]


def render_estimate(est: Estimate, fmt: str, plot: Path | None = None, *, wide: bool = False,
                    all_plans: bool = False, others: int = OTHERS_SHOWN, deadline_hours: float | None = None,
                    budget_usd: float | None = None, prices_of: str = "") -> None:
    """Table, JSON or CSV on stdout; the recommendation and notes as the table's footer (table) or in the JSON.

    JSON and CSV always hold every plan; the table shows the Pareto front and the cheapest others unless --all.
    """
    render.check_format(fmt)
    for n in est.notes:
        render.note(f"note: {n}")
    rows = [p.model_dump(mode="json") for p in est.plans]
    shown, hidden = (est.plans, 0) if all_plans or fmt != "table" else _shown_plans(est, others)
    table_rows = [_table_row(p) for p in shown]
    if wide:
        columns = [c for c in WIDE_COLUMNS if not rows or c[0] in rows[0]]
    else:
        multi_region = len({p.region for p in est.plans if p.region}) > 1
        columns = TABLE_COLUMNS[:1] + [("region", "region", None)] + TABLE_COLUMNS[1:] if multi_region \
            else TABLE_COLUMNS
    more = f"... {hidden} more plan{'s' if hidden != 1 else ''} (--all)" if hidden else None
    render.emit(rows, columns, fmt, json_payload=est.model_dump(mode="json"),
                csv_keys=list(rows[0]) if rows else list(Plan.model_json_schema(mode="serialization")["properties"]),
                table_rows=table_rows, tight=True,
                footer="\n".join(filter(None, [more, footer_text(est, table_rows, prices_of)])))
    if fmt == "table":  # JSON and CSV carry each plan's notes in their rows
        for line in _plan_notes(est):
            render.note(line)
    if plot is not None:
        from gpuplan.plot import plot_estimate

        plot_estimate(est, plot, deadline_hours=deadline_hours, budget_usd=budget_usd)
        render.note(f"wrote {plot}")


def _shown_plans(est: Estimate, others_shown: int = OTHERS_SHOWN) -> tuple[list[Plan], int]:
    """The Pareto front, the first `others_shown` others in the chosen order, and the baseline: what a reader
    needs."""
    b = est.recommendation.baseline if est.recommendation else None
    others = 0
    shown = []
    for p in est.plans:
        is_baseline = b is not None and (p.instance, p.precision, p.market) == (b.instance, b.precision, b.market)
        if p.pareto or is_baseline:
            shown.append(p)
        elif others < others_shown:
            shown.append(p)
            others += 1
    return shown, len(est.plans) - len(shown)


def _table_row(p: Plan) -> dict[str, Any]:
    row = p.model_dump(mode="json")
    row["gpus"] = f"{p.gpu} x{p.gpu_count}"
    row["mark"] = "".join(m for m, on in zip("*xm", (p.pareto, not p.fits_memory, p.source == "measured")) if on)
    return row


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
        from gpuplan.measurement import calibrations_dir, save_somewhere

        # A measurement took minutes: keep it, so the next estimate can reuse it with --calibration.
        stamp = calibrations[-1].created_at.strftime("%Y%m%d-%H%M%S")
        saved, notes = save_somewhere(calibrations[-1], calibrations_dir() / f"calibration-{stamp}.json")
        if saved is not None and not notes:
            notes = [f"measurement saved to {saved}; reuse it with --calibration {saved}"]
        for n in notes:
            render.note(f"note: {n}")
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


def footer_text(est: Estimate, table_rows: list[dict[str, Any]], prices_of: str = "") -> str:
    """Under the table, in plain words: the workload, what the marks mean, what mixed precision buys on the
    recommended GPU, and the recommendation against a baseline (each wrapped to the table's 100 columns)."""
    r, w = est.recommendation, est.workload
    marks = "".join(row.get("mark", "") for row in table_rows)
    legend = "; ".join(["time = start-up + training"] + [f"{m} {text}" for m, text in MARKS if m in marks])
    paras = [f"{w.model}, {w.num_examples:,} examples x {w.epochs:g} epochs, batch {w.batch_size}/GPU, "
             f"seq-len {w.seq_len}, stack {w.stack}." + (f" Prices of {prices_of}." if prices_of else ""),
             legend + "."]
    if r is None:
        paras.append("No recommendation: no plan fits in GPU memory. Lower --batch-size or --seq-len.")
    else:
        paras += [_mixed_text(r), _recommendation_text(r)]
    return "\n" + "\n".join(render.wrap(p) for p in paras if p)


def _mixed_text(r: Recommendation) -> str | None:
    m = r.mixed_precision
    if m is None:
        return None
    on = f"Mixed precision on {m.instance} ({m.gpu}, {m.market})"
    times = f"{render.duration(m.mixed_train_seconds)} instead of {render.duration(m.fp32_train_seconds)}"
    if m.train_speedup < 1:
        return f"{on}: training is {1 / m.train_speedup:.2f}x slower than fp32 ({times}): keep fp32 there."
    saving = f"saves {render.usd(m.train_saving_usd)}" if m.train_saving_usd >= 0.0005 else "costs nothing more"
    return f"{on}: training {m.train_speedup:.2f}x faster than fp32 ({times}); {saving} (start-up not counted)."


def _recommendation_text(r: Recommendation) -> str:
    where = f" in {r.region}" if r.region else ""
    text = (f"Recommendation ({r.reason}): {r.instance}{where}, {r.precision} ({r.dtype}), {r.market}: "
            f"{render.duration(r.total_seconds)}, {render.usd(r.cost_usd)}")
    b = r.baseline
    if b is None or r.speedup is None or r.saving_usd is None:
        return text + "."
    if (b.instance, b.precision, b.market) == (r.instance, r.precision, r.market):
        return text + f"; it is also the baseline, {b.why}."
    training = f" ({r.train_speedup:.2f}x in training)" if r.train_speedup is not None else ""
    if abs(r.saving_usd) < 0.0005:
        money = "at the same cost"
    elif r.saving_usd > 0:
        money = f"{render.usd(r.saving_usd)}" + (f" ({r.saving_pct:.0%})" if r.saving_pct is not None else "") + \
            " cheaper"
    else:
        money = f"{render.usd(-r.saving_usd)} dearer"
    return (f"{text}: {r.speedup:.2f}x faster{training} and {money} than {b.instance} {b.precision} {b.market}, "
            f"{b.why} ({render.duration(b.total_seconds)}, {render.usd(b.cost_usd)}).")


@app.command(epilog=examples(
    "gpuplan estimate --gpu t4 --gpu a10g --spot",
    "gpuplan estimate --deadline 1 --budget 5 --plot plans.png",
    "gpuplan estimate --gpu t4 --baseline v100 --format json",
))
def estimate(
    gpu: GpusOpt = None, instance: InstancesOpt = None,
    model: ModelOpt = None, seq_len: SeqLenOpt = None, batch_size: BatchSizeOpt = None,
    num_examples: NumExamplesOpt = None, epochs: EpochsOpt = None, precision: PrecisionOpt = None,
    stack: StackOpt = None, workload: WorkloadOpt = None, catalog: CatalogOpt = None, spot: SpotOpt = False,
    region: RegionOpt = None,
    deadline: DeadlineOpt = None, budget: BudgetOpt = None, baseline: BaselineOpt = None, sort: SortOpt = "cost",
    fmt: FormatOpt = "table", plot: PlotOpt = None, wide: WideOpt = False, all_plans: AllOpt = False,
    top: TopOpt = OTHERS_SHOWN, schema: SchemaOpt = False,
    calibration: CalibrationOpt = None, calibrate: CalibrateOpt = False, dataset: DatasetOpt = None,
    text_column: TextColumnOpt = "text", label_column: LabelColumnOpt = "label", steps: StepsOpt = None,
    local_price: LocalPriceOpt = 0.0,
) -> None:
    """Time and cost of the fine-tune on each GPU, fp32 vs mixed.

    Prints the Pareto front (no plan is both faster and cheaper) and the 10 (--top) cheapest other plans, what mixed
    precision buys on the recommended GPU, and the recommendation against a baseline.
    """
    render.check_format(fmt)
    check_sort(sort)
    if plot is not None:
        check_plot_path(plot)
    if local_price < 0:
        raise GpuplanError(f"--local-price must be 0 or more USD/hour, got {local_price:g}")
    wl = workload_from_flags(workload, model, num_examples, epochs, batch_size, seq_len, precision, stack)
    cat = load_catalog(catalog, region=region, notes=render.note, warn_stale=True)
    gpus = [g for g in gpu or [] if g.lower() != "local"]
    local = LocalMachine(price_per_hour=local_price) if len(gpus) < len(gpu or []) else None
    calibrations = _calibrations(wl, calibration, calibrate, dataset, text_column, label_column, steps)
    wl = _sized(wl, calibrations, num_examples, workload)
    offers = select_offers(cat, gpus=gpus, instances=instance)  # the catalog holds only --region's offers already
    est = make_estimate(wl, offers, cat, calibrations=calibrations, spot=spot, deadline_hours=deadline,
                        budget_usd=budget, sort=sort, baseline_gpu=baseline, local=local,
                        measured_startup=measured_phases())
    render_estimate(est, fmt, plot, wide=wide, all_plans=all_plans, others=top, deadline_hours=deadline,
                    budget_usd=budget, prices_of=price_dates(offers))
