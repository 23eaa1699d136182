"""Fit the performance model's efficiency constants on published BERT training throughput.

    python -m gpuplan.perf.fit            # fit, print the accuracy report, write constants.json
    python -m gpuplan.perf.fit --check    # only report how well the stored constants reproduce the data

The fitting set is NVIDIA DeepLearningExamples' single-GPU BERT throughput (data/nvidia_dle_bert_training.csv).
Each framework (TF1, TF2, PyTorch) gets its own overall speed factor, so the constants describe the GPUs and
precisions, and what is judged is what users compare: throughput ratios between GPUs and mixed/fp32 speed-ups.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gpuplan.perf.throughput import CONSTANTS_FILE, load_constants, naive_step_seconds, step_time
from gpuplan.stats import percentile
from gpuplan.workload import BUILTIN_MODELS
from pricing.catalog import bundled_catalog

DATA_FILE = "nvidia_dle_bert_training.csv"
REFERENCE_FRAMEWORK = "tf2-ngc21.02"
MODELS = {"bert-large": "bert-large-uncased", "bert-base": "bert-base-uncased"}
PRECISIONS = {"fp32": "fp32", "amp-fp16": "mixed", "amp-bf16": "mixed"}
EFFICIENCY_KEYS = ("fp32", "tf32", "tensor16_volta", "tensor16_modern")


@dataclass(frozen=True)
class Measurement:
    source: str
    model: str
    task: str
    framework: str
    gpu: str
    precision: str
    batch_size: int
    seq_len: int
    seq_per_s: float


def load_measurements() -> list[Measurement]:
    text = resources.files("gpuplan.perf").joinpath("data", DATA_FILE).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    return [
        Measurement(r["source"], r["model"], r["task"], r["framework"], r["gpu"], PRECISIONS[r["precision"]],
                    int(r["batch_size"]), int(r["seq_len"]), float(r["seq_per_s"]))
        for r in rows
    ]


def predict(m: Measurement, constants: dict[str, Any]) -> float:
    """Predicted sequences/s for one measurement's configuration."""
    gpu = bundled_catalog().gpu(m.gpu)
    t = step_time(BUILTIN_MODELS[MODELS[m.model]], gpu, m.precision, m.batch_size, m.seq_len, constants, m.framework)
    return m.batch_size / t.seconds


def predict_naive(m: Measurement, fraction: float) -> float:
    gpu = bundled_catalog().gpu(m.gpu)
    return m.batch_size / naive_step_seconds(BUILTIN_MODELS[MODELS[m.model]], gpu, m.precision, m.batch_size,
                                             m.seq_len, fraction)


# --- fitting -------------------------------------------------------------------------------------------------

def _unpack(x: list[float], frameworks: list[str]) -> dict[str, Any]:
    """frameworks[0] is the reference (factor 1); the others' factors follow the seven model parameters."""
    v = [math.exp(a) for a in x]
    eff = dict(zip(EFFICIENCY_KEYS, v[:4]))
    reference, others = frameworks[0], frameworks[1:]
    return {
        "parameters": {
            "efficiency": eff,
            "memory_efficiency": v[4],
            "overhead_seconds_per_layer": v[5],
            "fill_tokens": v[6],
        },
        "framework_factors": {reference: 1.0, **dict(zip(others, v[7:], strict=True))},
        "default_framework": reference,
    }


def _loss(x: list[float], data: list[Measurement], frameworks: list[str]) -> float:
    c = _unpack(x, frameworks)
    # Efficiencies above 1 are physically impossible: penalise instead of clipping so the simplex turns back.
    penalty = sum(max(0.0, a) ** 2 * 100 for a in x[:5])
    return sum((math.log(predict(m, c)) - math.log(m.seq_per_s)) ** 2 for m in data) + penalty


def nelder_mead(f, x0: list[float], step: float = 0.3, iterations: int = 4000, tol: float = 1e-10) -> list[float]:
    """Plain Nelder-Mead: a dozen smooth parameters need nothing more, and it keeps the fit dependency-free."""
    n = len(x0)
    simplex = [list(x0)] + [[x0[j] + (step if j == i else 0.0) for j in range(n)] for i in range(n)]
    values = [f(p) for p in simplex]
    for _ in range(iterations):
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if abs(values[-1] - values[0]) < tol:
            break
        centroid = [sum(p[j] for p in simplex[:-1]) / n for j in range(n)]
        def towards(t: float) -> list[float]:
            return [centroid[j] + t * (simplex[-1][j] - centroid[j]) for j in range(n)]
        reflected = towards(-1.0)
        fr = f(reflected)
        if fr < values[0]:
            expanded = towards(-2.0)
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = towards(0.5)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [[best[j] + 0.5 * (p[j] - best[j]) for j in range(n)] for p in simplex[1:]]
                values = [values[0]] + [f(p) for p in simplex[1:]]
    return simplex[min(range(n + 1), key=values.__getitem__)]


def fit(data: list[Measurement]) -> dict[str, Any]:
    # TF2 is the reference: gpuplan's calibration runs TensorFlow 2, so its factor is the default for predictions.
    frameworks = sorted({m.framework for m in data}, key=lambda f: (f != REFERENCE_FRAMEWORK, f))
    x = [math.log(v) for v in (0.6, 0.5, 0.4, 0.5, 0.6, 1e-3, 500.0)] + [0.0] * (len(frameworks) - 1)
    for _ in range(4):  # restarts shake the simplex out of the flat valleys that fill and overhead make
        x = nelder_mead(lambda p: _loss(p, data, frameworks), x)
    constants = _unpack(x, frameworks)
    naive = math.exp(statistics.fmean(
        math.log(m.seq_per_s / predict_naive(m, 1.0)) for m in data
    ))
    constants["naive_fraction_of_peak"] = naive
    constants["provenance"] = {
        "fitted_on": f"gpuplan/perf/data/{DATA_FILE}: {len(data)} rows of NVIDIA/DeepLearningExamples BERT "
                     "single-GPU training throughput (TF1 20.06, TF2 21.02, PyTorch 21.11 containers)",
        "gpus_in_fitting_set": sorted({m.gpu for m in data}),
        "method": "least squares on log throughput, Nelder-Mead, one speed factor per framework",
        "script": "python -m gpuplan.perf.fit",
        "rms_log_error": math.sqrt(_loss(x, data, frameworks) / len(data)),
        "extrapolated": "T4, A10G, L4, L40S, H100, H200 use the efficiency of their tensor-core generation "
                        "(tensor16_volta for Turing; tensor16_modern and tf32 for Ampere and newer)",
    }
    return constants


# --- accuracy ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    kind: str  # "gpu ratio" or "mixed speed-up"
    label: str
    published: float
    predicted: float
    naive: float

    @property
    def error(self) -> float:
        return abs(self.predicted / self.published - 1)

    @property
    def naive_error(self) -> float:
        return abs(self.naive / self.published - 1)


def comparisons(constants: dict[str, Any] | None = None, data: list[Measurement] | None = None) -> list[Comparison]:
    """GPU-vs-GPU throughput ratios within one source, task and precision; mixed/fp32 speed-up per GPU."""
    c = constants or load_constants()
    data = data if data is not None else load_measurements()
    pred = {m: predict(m, c) for m in data}
    naive = {m: predict_naive(m, c["naive_fraction_of_peak"]) for m in data}
    out: list[Comparison] = []
    groups: dict[tuple[str, ...], list[Measurement]] = {}
    for m in data:
        groups.setdefault((m.framework, m.model, m.task, m.precision), []).append(m)
    for (fw, model, task, prec), rows in sorted(groups.items()):
        for a, b in itertools.combinations(sorted(rows, key=lambda r: r.gpu), 2):
            out.append(Comparison("gpu ratio", f"{fw} {model} {task} {prec}: {a.gpu}/{b.gpu}",
                                  a.seq_per_s / b.seq_per_s, pred[a] / pred[b], naive[a] / naive[b]))
    by_gpu: dict[tuple[str, ...], dict[str, Measurement]] = {}
    for m in data:
        by_gpu.setdefault((m.framework, m.model, m.task, m.gpu), {})[m.precision] = m
    for (fw, model, task, gpu), precs in sorted(by_gpu.items()):
        if {"fp32", "mixed"} <= precs.keys():
            a, b = precs["mixed"], precs["fp32"]
            out.append(Comparison("mixed speed-up", f"{fw} {model} {task} {gpu}: mixed/fp32",
                                  a.seq_per_s / b.seq_per_s, pred[a] / pred[b], naive[a] / naive[b]))
    return out


def report(comps: list[Comparison]) -> str:
    lines = []
    for kind in ("gpu ratio", "mixed speed-up", None):
        sel = [c for c in comps if kind is None or c.kind == kind]
        name = kind or "all"
        e = [c.error for c in sel]
        n = [c.naive_error for c in sel]
        lines.append(
            f"{name:15s} n={len(sel):3d}  model: median {statistics.median(e):6.1%}  p90 {percentile(e, 90):6.1%}"
            f"   naive constant-fraction-of-peak: median {statistics.median(n):6.1%}  p90 {percentile(n, 90):6.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gpuplan.perf.fit", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report on the stored constants, write nothing")
    parser.add_argument("--details", action="store_true", help="print every comparison")
    parser.add_argument("--output", type=Path, default=None, help="where to write the constants")
    args = parser.parse_args(argv)
    if args.check:
        constants = load_constants()
    else:
        constants = fit(load_measurements())
        target = args.output or Path(str(resources.files("gpuplan.perf").joinpath(CONSTANTS_FILE)))
        target.write_text(json.dumps(constants, indent=2) + "\n")
        print(f"wrote {target}")
        print(json.dumps({k: constants[k] for k in ("parameters", "framework_factors", "naive_fraction_of_peak")},
                         indent=2))
    comps = comparisons(constants)
    if args.details:
        for c in comps:
            print(f"{c.label:70s} published {c.published:6.3f}  model {c.predicted:6.3f} ({c.error:5.1%})"
                  f"  naive {c.naive:6.3f} ({c.naive_error:5.1%})")
    print(report(comps))


if __name__ == "__main__":
    main()
