"""`gpuplan calibrate`: time a short real fine-tune of the workload's BERT here, fp32 and mixed precision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gpuplan import render
from gpuplan.measurement import CalibrationResult, check_writable, save_somewhere
from gpuplan.cli import app, examples
from gpuplan.cli._options import (
    BatchSizeOpt, DatasetOpt, EpochsOpt, FormatOpt, LabelColumnOpt, ModelOpt, NumExamplesOpt, PrecisionOpt, SeqLenOpt,
    StepsOpt, TextColumnOpt, WorkloadOpt, workload_from_flags,
)

RUN_COLUMNS = [
    ("precision", "precision", None),
    ("dtype", "dtype", None),
    ("gpu_count", "devices", None),
    ("batch_size", "batch", None),
    ("warmup_seconds", "warm-up", lambda s: f"{s:.1f}s"),
    ("step_seconds", "step", lambda s: "-" if s is None else f"{s:.3g}s"),
    ("step_seconds_p90", "p90", lambda s: "-" if s is None else f"{s:.3g}s"),
    ("samples_per_second", "samples/s", render.rate),
    ("train_seconds", "wall", lambda s: "-" if s is None else f"{s:.1f}s"),
    ("flops_per_step", "TFLOP/step", lambda f: "-" if f is None else f"{f / 1e12:.3g}"),
    ("flops_vs_model", "vs model", None),
    ("peak_memory_bytes", "peak mem", render.gib),
    ("loss", "loss first->last", None),
]
CSV_KEYS = [
    "precision", "dtype", "gpu_count", "steps", "warmup_steps", "batch_size", "seq_len", "warmup_seconds",
    "step_seconds", "step_seconds_p90", "step_seconds_mean", "samples_per_second", "train_seconds", "flops_per_step",
    "flops_per_step_model", "peak_memory_bytes", "loss_first", "loss_last", "largest_batch_that_fits",
    "skipped_reason",
]


@app.command(epilog=examples(
    "gpuplan calibrate --batch-size 8 -o cal.json",
    "gpuplan calibrate --dataset reviews.csv --steps 5 -o cal.json",
    "gpuplan estimate --calibration cal.json --gpu local",
))
def calibrate(
    model: ModelOpt = None,
    seq_len: SeqLenOpt = None,
    batch_size: BatchSizeOpt = None,
    num_examples: NumExamplesOpt = None,
    epochs: EpochsOpt = None,
    precision: PrecisionOpt = None,
    workload: WorkloadOpt = None,
    dataset: DatasetOpt = None,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "label",
    steps: StepsOpt = None,
    warmup_steps: Annotated[int | None, typer.Option("--warmup-steps", min=1, max=1_000,
                                                     help="Steps timed apart first (tracing). "
                                                     "[default: 1 on a CPU, 3 on a GPU]")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result (JSON) here, for "
                                                "`estimate --calibration`.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    fmt: FormatOpt = "table",
    xla: Annotated[bool, typer.Option("--xla", help="Compile the train step with XLA (jit_compile=True): measures "
                                      "the keras-xla stack.")] = False,
) -> None:
    """Time a short real fine-tune here, fp32 and mixed."""
    from gpuplan.calibration.progress import ProgressBar
    from gpuplan.calibration.train import run_calibration

    render.check_format(fmt)
    if output is not None:
        check_writable(output)
    wl = workload_from_flags(workload, model, num_examples, epochs, batch_size, seq_len, precision,
                             "keras-xla" if xla else "keras")
    result = run_calibration(
        wl, steps=steps, warmup_steps=warmup_steps, dataset=dataset, text_column=text_column,
        label_column=label_column, progress=None if quiet else ProgressBar(),
        notify=lambda m: render.note(f"note: {m}"),
    )
    if output is not None:
        saved, notes = save_somewhere(result, output)
        for n in notes:
            render.note(f"note: {n}")
        if saved == output:
            render.note(f"wrote {output}")
        elif saved is None:
            render.out(result.model_dump_json(indent=2))
            return
    render_result(result, fmt)


def render_result(result: CalibrationResult, fmt: str) -> None:
    skipped = [f"{r.precision}: not measured: {r.skipped_reason}" for r in result.runs if r.skipped_reason]
    dataset = [dataset_line(result)] if result.dataset is not None else []
    render.emit([_row(r) for r in result.runs], RUN_COLUMNS, fmt, json_payload=result.model_dump(mode="json"),
                csv_keys=CSV_KEYS, header=summary_header(result), footer="\n".join(skipped + dataset))


def summary_header(result: CalibrationResult) -> str:
    d, w = result.device, result.workload
    where = f"{d.count} x {d.name}" if d.kind == "gpu" else f"{d.name} CPU ({d.host_cpus} cores)"
    steps = next((f"{r.warmup_steps} warm-up + {r.steps} timed steps" for r in result.runs if r.measured), "")
    return (f"{w.model} on {where}, batch {w.batch_size}, seq-len {w.seq_len}, stack {w.stack}, {steps}; "
            f"weights: {result.weights}; data: {result.data_source}")


def dataset_line(result: CalibrationResult) -> str:
    s, w = result.dataset, result.workload
    padded = f", {s.mean_padded_len:.0f} mean padded length per batch" if s.mean_padded_len is not None else ""
    speed = (f"; tokenizer: {render.rate(s.tokenize_examples_per_second)} texts/s on this host"
             if s.tokenize_examples_per_second else "")
    return (f"dataset: {s.num_examples:,} examples, {s.num_labels} classes; tokens p50 {s.token_len_p50:.0f}, "
            f"p90 {s.token_len_p90:.0f}, max {s.token_len_max}; {s.truncated_share:.1%} truncated at "
            f"{w.seq_len}{padded}{speed} ({result.tokenizer})")


def _row(r: Any) -> dict[str, Any]:
    row = r.model_dump(mode="json")
    if r.flops_per_step and r.flops_per_step_model:
        diff = r.flops_per_step / r.flops_per_step_model - 1
        row["flops_vs_model"] = f"{r.flops_per_step_model / 1e12:.3g} ({diff:+.1%})"
    if r.loss_first is not None:
        row["loss"] = f"{r.loss_first:.3f}->{r.loss_last:.3f}"
    return row
