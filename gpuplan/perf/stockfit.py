"""Fit the stock Keras stack's constants on public measurements of stock Hugging Face BERT fine-tunes.

    python -m gpuplan.perf.stockfit           # fit, print the accuracy report, write stock_constants.json
    python -m gpuplan.perf.stockfit --check   # only report how well the stored constants reproduce the data

Three constants describe what the stock stack adds to the tuned stack's matmuls: a tensor-core efficiency factor,
the bandwidth efficiency of its memory-bound ops and the time of one kernel launch. Its op mix (bytes, kernels) is
not fitted: it is traced from the stack's own graph (`opmix`). PyTorch `Trainer` rows share the structure and get
one factor on those ops against Keras. Judged by leave-one-source-out: fit on every source but one, predict that one.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gpuplan.perf.fit import nelder_mead
from gpuplan.perf.stacks import STOCK_CONSTANTS_FILE, load_stock_constants, stock_step_time
from gpuplan.perf.throughput import naive_step_seconds
from gpuplan.perf.throughput import step_time as tuned_step_time
from gpuplan.stats import percentile
from gpuplan.workload import BUILTIN_MODELS
from pricing.catalog import bundled_catalog
from pricing.models import GpuSpec

DATA_FILE = "stock_stack_measurements.csv"
FIT_GPUS_FILE = "fit_gpus.csv"
REFERENCE_FRAMEWORK = "keras"
# The one published keras-xla figure: AMP + XLA against fp32 without XLA, stock TF BERT on a V100 (SST-2),
# huggingface/transformers#1441: "up to 2.5x decrease in overall time". Marked uncertain in the constants.
XLA_RATIO = 2.5
XLA_SOURCE = "https://github.com/huggingface/transformers/issues/1441 (AMP+XLA: up to 2.5x decrease in overall time)"
PARAMETERS = ("tensor_scale", "memory_efficiency", "kernel_seconds")


@dataclass(frozen=True)
class StockRow:
    id: str
    source: str
    framework: str
    model: str
    gpu: str
    precision: str
    batch_size: int
    seq_len: int
    step_seconds: float
    num_examples: float | None = None


def _csv_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("gpuplan.perf").joinpath("data", name).read_text()
    return list(csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#")))


def step_seconds(metric: str, value: float, batch_size: int, num_examples: float | None) -> float:
    """A published figure as seconds per training step."""
    if metric == "samples_per_second":
        return batch_size / value
    if metric in ("epoch_seconds", "train_seconds") and num_examples:
        return value / (num_examples / batch_size)
    raise ValueError(f"cannot turn {metric} into a step time without the number of examples")


def load_rows() -> list[StockRow]:
    return [
        StockRow(r["id"], r["source"], r["framework"], r["model"], r["gpu"], r["precision"], int(r["batch_size"]),
                 int(r["seq_len"]), step_seconds(r["metric"], float(r["value"]), int(r["batch_size"]),
                                                 float(r["num_examples"]) if r["num_examples"] else None),
                 float(r["num_examples"]) if r["num_examples"] else None)
        for r in _csv_rows(DATA_FILE)
    ]


def gpu_spec(key: str) -> GpuSpec:
    """A catalog GPU, or one of the GPUs that appear only in the fitting set."""
    try:
        return bundled_catalog().gpu(key)
    except KeyError:
        pass
    for r in _csv_rows(FIT_GPUS_FILE):
        if r["key"] == key:
            return GpuSpec(key=key, name=r["name"], architecture=r["architecture"],
                           compute_capability=float(r["compute_capability"]), memory_gib=float(r["memory_gib"]),
                           fp32_tflops=float(r["fp32_tflops"]), tf32_tflops=float(r["tf32_tflops"] or 0) or None,
                           fp16_tflops=float(r["fp16_tflops"] or r["fp32_tflops"]),
                           bf16_tflops=float(r["bf16_tflops"] or 0) or None,
                           memory_bandwidth_gbs=float(r["memory_bandwidth_gbs"]), source=r["source"])
    raise KeyError(key)


def predict(row: StockRow, constants: dict[str, Any]) -> float:
    """Another framework runs the same matmuls but its own element-wise ops and launches: its factor scales those."""
    t = stock_step_time(BUILTIN_MODELS[row.model], gpu_spec(row.gpu), row.precision, row.batch_size, row.seq_len,
                        constants=constants)
    factor = constants.get("framework_factors", {}).get(row.framework, 1.0)
    return t.compute_seconds + factor * (t.memory_seconds + t.overhead_seconds)


def predict_tuned(row: StockRow) -> float:
    return tuned_step_time(BUILTIN_MODELS[row.model], gpu_spec(row.gpu), row.precision, row.batch_size,
                           row.seq_len).seconds


def predict_naive(row: StockRow, fraction: float) -> float:
    return naive_step_seconds(BUILTIN_MODELS[row.model], gpu_spec(row.gpu), row.precision, row.batch_size,
                              row.seq_len, fraction)


def _unpack(x: list[float], frameworks: list[str]) -> dict[str, Any]:
    v = [math.exp(a) for a in x]
    return {"parameters": dict(zip(PARAMETERS, v[:3])),
            "framework_factors": {REFERENCE_FRAMEWORK: 1.0, **dict(zip(frameworks, v[3:], strict=True))}}


def _loss(x: list[float], rows: list[StockRow], frameworks: list[str]) -> float:
    c = _unpack(x, frameworks)
    penalty = max(0.0, x[1]) ** 2 * 100  # a bandwidth efficiency above 1 is impossible
    return sum((math.log(predict(r, c)) - math.log(r.step_seconds)) ** 2 for r in rows) + penalty


def fit(rows: list[StockRow]) -> dict[str, Any]:
    """The three constants, and a speed factor for each other framework when Keras rows anchor them."""
    has_reference = any(r.framework == REFERENCE_FRAMEWORK for r in rows)
    others = sorted({r.framework for r in rows} - {REFERENCE_FRAMEWORK}) if has_reference else []
    x = [math.log(v) for v in (0.5, 0.6, 1e-5)] + [0.0] * len(others)
    for _ in range(3):
        x = nelder_mead(lambda p: _loss(p, rows, others), x)
    constants = _unpack(x, others)
    constants["parameters"].update(_xla_factors(constants))
    return constants


def _xla_factors(constants: dict[str, Any]) -> dict[str, float]:
    """One factor on XLA's bytes and kernels, solved so that the published AMP+XLA vs fp32 ratio holds."""
    arch, gpu = BUILTIN_MODELS["bert-base-uncased"], gpu_spec("v100")
    fp32 = stock_step_time(arch, gpu, "fp32", 32, 128, constants=constants).seconds
    lo, hi = 0.01, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        trial = {"parameters": {**constants["parameters"], "xla_bytes_factor": mid, "xla_kernels_factor": mid}}
        ratio = fp32 / stock_step_time(arch, gpu, "mixed", 32, 128, xla=True, constants=trial).seconds
        lo, hi = (lo, mid) if ratio < XLA_RATIO else (mid, hi)
    factor = round((lo + hi) / 2, 4)
    return {"xla_bytes_factor": factor, "xla_kernels_factor": factor}


# --- accuracy ------------------------------------------------------------------------------------------------

def errors(rows: list[StockRow], predicted: dict[str, float]) -> list[float]:
    return [abs(predicted[r.id] / r.step_seconds - 1) for r in rows]


def speedup_errors(rows: list[StockRow], predicted: dict[str, float]) -> list[float]:
    """Error on each published mixed/fp32 speed-up (same source, GPU, model, batch and sequence length)."""
    pairs: dict[tuple[Any, ...], dict[str, StockRow]] = {}
    for r in rows:
        pairs.setdefault((r.source, r.gpu, r.model, r.batch_size, r.seq_len, r.num_examples), {})[r.precision] = r
    out = []
    for p in pairs.values():
        if {"fp32", "mixed"} <= p.keys():
            a, b = p["fp32"], p["mixed"]
            out.append(abs((predicted[a.id] / predicted[b.id]) / (a.step_seconds / b.step_seconds) - 1))
    return out


def leave_one_source_out(rows: list[StockRow]) -> dict[str, float]:
    predicted = {}
    for source in sorted({r.source for r in rows}):
        c = fit([r for r in rows if r.source != source])
        predicted.update({r.id: predict(r, c) for r in rows if r.source == source})
    return predicted


def _summary(e: list[float]) -> str:
    return f"median {statistics.median(e):6.1%}  max {max(e):6.1%}" if e else "n/a"


def report(rows: list[StockRow], constants: dict[str, Any]) -> list[str]:
    fitted = {r.id: predict(r, constants) for r in rows}
    loso = leave_one_source_out(rows)
    tuned = {r.id: predict_tuned(r) for r in rows}
    fraction = math.exp(statistics.fmean(math.log(predict_naive(r, 1.0) / r.step_seconds) for r in rows))
    naive = {r.id: predict_naive(r, fraction) for r in rows}
    lines = [f"stock-stack rows: {len(rows)} from {len({r.source for r in rows})} sources"]
    for name, pred in (("keras model, fitted on all", fitted), ("keras model, leave-one-source-out", loso),
                       ("tuned model (NVIDIA constants)", tuned), ("naive fraction of peak", naive)):
        lines.append(f"{name:36s} step time: {_summary(errors(rows, pred))}   "
                     f"mixed speed-up: {_summary(speedup_errors(rows, pred))}")
    for source in sorted({r.source for r in rows}):
        sel = [r for r in rows if r.source == source]
        lines.append(f"  held out {source:24s} n={len(sel):2d}  step time {_summary(errors(sel, loso))}"
                     f"   speed-up {_summary(speedup_errors(sel, loso))}")
    return lines


def accuracy(constants: dict[str, Any] | None = None) -> dict[str, Any]:
    """The numbers `make bench` prints: leave-one-source-out errors beside the baselines'."""
    rows = load_rows()
    c = constants or load_stock_constants()
    loso = leave_one_source_out(rows)
    tuned = {r.id: predict_tuned(r) for r in rows}
    return {"rows": len(rows), "loso": errors(rows, loso), "loso_speedup": speedup_errors(rows, loso),
            "fitted": errors(rows, {r.id: predict(r, c) for r in rows}), "tuned": errors(rows, tuned),
            "tuned_speedup": speedup_errors(rows, tuned), "p90": percentile}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gpuplan.perf.stockfit", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report on the stored constants, write nothing")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = load_rows()
    if args.check:
        constants = load_stock_constants()
    else:
        constants = fit(rows)
        constants["provenance"] = {
            "fitted_on": f"gpuplan/perf/data/{DATA_FILE}: {len(rows)} rows of stock Hugging Face BERT fine-tunes "
                         f"({', '.join(sorted({r.source for r in rows}))})",
            "gpus_in_fitting_set": sorted({r.gpu for r in rows}),
            "shared_with_tuned": "fp32/TF32 matmul efficiencies and fill_tokens come from constants.json (the same "
                                 "cuBLAS matmuls); tensor_scale multiplies the tuned tensor-core efficiency",
            "op_mix": "gpuplan/perf/data/opmix_keras.json (traced, not fitted)",
            "xla": f"xla_*_factor solved from one published ratio, uncertain: {XLA_SOURCE}",
            "method": "least squares on log step time, Nelder-Mead; one speed factor per framework against keras",
            "script": "python -m gpuplan.perf.stockfit",
        }
        target = args.output or Path(str(resources.files("gpuplan.perf").joinpath(STOCK_CONSTANTS_FILE)))
        target.write_text(json.dumps(constants, indent=2) + "\n")
        print(f"wrote {target}")
        print(json.dumps({k: constants[k] for k in ("parameters", "framework_factors")}, indent=2))
    print("\n".join(report(rows, constants)))


if __name__ == "__main__":
    main()
