"""Option aliases shared by commands, so every command spells and documents a flag the same way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from gpuplan.workload import Workload, build_workload

def finite(value: str) -> float:
    """A float flag's parser: NaN and infinity are typos, never numbers to plan with."""
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"{value!r} is not a finite number")
    return number


# The workload: what is trained. estimate, calibrate and launch take all of these.
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="bert-base-uncased (default) or another built-in name (see `gpuplan models`: "
                                 "RoBERTa, DeBERTa-v3, DistilBERT, ALBERT, ELECTRA, XLM-R, MiniLM), a path to a "
                                 "config.json or model folder of one of those types, or a Hub id."),
]
NumExamplesOpt = Annotated[int | None, typer.Option("--num-examples", help="Training examples. [default: 25000]")]
EpochsOpt = Annotated[float | None, typer.Option("--epochs", parser=finite, metavar="FLOAT",
                                                help="Passes over the data. [default: 2]")]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", help="Batch size per GPU. [default: 32]")]
SeqLenOpt = Annotated[int | None, typer.Option("--seq-len", help="Max sequence length in tokens. [default: 128]")]
PrecisionOpt = Annotated[
    str | None, typer.Option("--precision", help="fp32, mixed or both. [default: both]")
]
StackOpt = Annotated[
    str | None,
    typer.Option("--stack", help="The software the fine-tune runs on: keras (stock Hugging Face TF + tf-keras, the "
                                 "default), keras-xla (the same with jit_compile=True) or tuned (NVIDIA's "
                                 "optimised code)."),
]
WorkloadOpt = Annotated[
    Path | None, typer.Option("--workload", help="YAML file with the workload; flags override it.")
]

# The data a calibration trains on (calibrate, estimate --calibrate, launch).
DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help="Your data for the calibration: a CSV or JSON Lines file, a folder saved by "
                                   "datasets, or a Hub dataset name. [default: synthetic tokens]"),
]
TextColumnOpt = Annotated[str, typer.Option("--text-column", help="With --dataset: column with the texts.")]
LabelColumnOpt = Annotated[str, typer.Option("--label-column", help="With --dataset: column with the class labels.")]
StepsOpt = Annotated[
    int | None,
    typer.Option("--steps", min=1, max=10_000,
                 help="Timed calibration steps per precision. [default: 5 on a CPU, 30 on a GPU]"),
]

CatalogOpt = Annotated[
    Path | None, typer.Option("--catalog", help="YAML file that adds or overrides GPUs and offers (never overwritten).")
]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region whose prices to use.")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv.")]


def workload_from_flags(
    workload: Path | None,
    model: str | None,
    num_examples: int | None,
    epochs: float | None,
    batch_size: int | None,
    seq_len: int | None,
    precision: str | None,
    stack: str | None = None,
) -> Workload:
    return build_workload(
        workload_file=workload, model=model, num_examples=num_examples, epochs=epochs,
        batch_size=batch_size, seq_len=seq_len, precision=precision, stack=stack,
    )
