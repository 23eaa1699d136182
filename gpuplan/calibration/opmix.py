"""The op mix of one traced training step: matmul FLOPs by dtype, bytes moved by the memory-bound ops, kernels.

Read from the graph TensorFlow traced for Keras' train function (before grappler rewrites it), so it is the stock
stack's own work: every element-wise op, every cast the mixed policy inserts and every per-variable op of the
optimizer is a kernel launch that moves its inputs and outputs through memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuplan.calibration.graphflops import CALL_OPS, MATMUL_OPS, op_flops, static_dims

BRANCH_ATTRS = ("then_branch", "else_branch")
# Ops that launch no device kernel: graph plumbing, views, host-side shape arithmetic.
NO_KERNEL_OPS = {
    "Const", "Placeholder", "ReadVariableOp", "Identity", "IdentityN", "NoOp", "Reshape", "Shape", "ShapeN",
    "StopGradient", "IteratorGetNext", "Assert", "If", "StatelessIf", "Squeeze", "ExpandDims", "Size", "Rank",
    "BroadcastGradientArgs", "BroadcastArgs", "InvertPermutation", "Range", "Pack", "Unpack", "VarHandleOp",
    *CALL_OPS,
}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "int64": 8, "bool": 1}


@dataclass
class OpMix:
    matmul_flops: dict[str, float] = field(default_factory=dict)  # by input dtype name
    memory_bytes: float = 0.0
    kernels: int = 0
    unknown_shapes: int = 0
    unknown_matmuls: int = 0  # matmuls whose shapes were unknown at trace time: their FLOPs are missing

    def add(self, other: OpMix, times: int = 1) -> None:
        for k, v in other.matmul_flops.items():
            self.matmul_flops[k] = self.matmul_flops.get(k, 0.0) + v * times
        self.memory_bytes += other.memory_bytes * times
        self.kernels += other.kernels * times
        self.unknown_shapes += other.unknown_shapes * times
        self.unknown_matmuls += other.unknown_matmuls * times

    @property
    def total_matmul_flops(self) -> float | None:
        """All matmul FLOPs of the step, or None when some matmul's shape was unknown."""
        total = sum(self.matmul_flops.values())
        return total if total and not self.unknown_matmuls else None


def _bytes(tensor: Any) -> float | None:
    dims = static_dims(tensor)
    if dims is None:
        return None
    return math.prod(dims) * DTYPE_BYTES.get(tensor.dtype.name, 4)


def _traffic(op: Any) -> float | None:
    """Bytes an element-wise or reduction kernel reads and writes; resource inputs count as their update."""
    total = 0.0
    for t in [*op.inputs, *op.outputs]:
        if t.dtype.name == "resource":
            continue
        b = _bytes(t)
        if b is None:
            return None
        total += b
    if op.type.startswith(("Assign", "ResourceApply", "ResourceScatter")):
        total *= 2  # the variable is read and written as well as the update
    return total


def op_mix(graph: Any, _seen: set[str] | None = None) -> OpMix:
    """The op mix of a FuncGraph, nested functions and both branches of a conditional included."""
    mix = OpMix()
    for op in graph.get_operations():
        if op.type in MATMUL_OPS:
            f = op_flops(op)
            if f is None:
                mix.unknown_shapes += 1
                mix.unknown_matmuls += 1
            else:
                dt = op.inputs[0].dtype.name
                mix.matmul_flops[dt] = mix.matmul_flops.get(dt, 0.0) + f
            mix.kernels += 1
            continue
        nested = _nested_graphs(graph, op)
        if nested:
            # A conditional runs one branch: count the larger (the loss-scale update's apply branch).
            parts = [op_mix(g) for g in nested]
            mix.add(parts[0] if op.type in CALL_OPS else max(parts, key=lambda p: p.kernels))
            continue
        if op.type in NO_KERNEL_OPS:
            continue
        b = _traffic(op)
        if b is None:
            mix.unknown_shapes += 1
        else:
            mix.memory_bytes += b
        mix.kernels += 1
    return mix


def _nested_graphs(graph: Any, op: Any) -> list[Any]:
    attrs = ("f",) if op.type in CALL_OPS else BRANCH_ATTRS if op.type in ("If", "StatelessIf") else ()
    graphs = []
    for a in attrs:
        try:
            fn = graph._get_function(op.get_attr(a).name)  # noqa: SLF001 - the only way to a nested body
        except Exception:
            continue
        if fn is not None and getattr(fn, "graph", None) is not None:
            graphs.append(fn.graph)
    return graphs


# --- tracing a model's train step (TensorFlow) ------------------------------------------------------------------

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# Tiny configs (hidden, layers, heads, intermediate, batch, seq) that vary each size term apart: the fit's rows.
FIT_GRID = [(64, 2, 4, 256, 4, 32), (64, 3, 4, 256, 4, 32), (96, 2, 4, 256, 4, 32), (64, 2, 2, 256, 4, 32),
            (64, 2, 4, 128, 4, 32), (64, 2, 4, 256, 8, 32), (64, 2, 4, 256, 4, 64), (128, 1, 8, 512, 2, 16),
            (32, 4, 2, 64, 8, 16)]
# Each family whose graph differs from BERT's gets its own profile; RoBERTa, XLM-R and ELECTRA trace within 5%
# of BERT's and use it. The tiny configs keep each family's layout (DeBERTa-v3's shared keys and log buckets).
FAMILIES: dict[str, dict[str, Any]] = {
    "bert": {"model_type": "bert"},
    "distilbert": {"model_type": "distilbert", "type_vocab_size": 0},
    "albert": {"model_type": "albert", "embedding_size": 32},
    "deberta-v2": {"model_type": "deberta-v2", "type_vocab_size": 0, "relative_attention": True,
                   "pos_att_type": ("p2c", "c2p"), "position_buckets": 16, "max_relative_positions": -1,
                   "share_att_key": True, "position_biased_input": False, "norm_rel_ebd": "layer_norm"},
}
# DeBERTa's relative span varies apart from the other terms in two more rows.
SPAN_GRID = [(64, 2, 4, 256, 4, 32, 32), (64, 3, 2, 256, 4, 64, 8)]
# Held out of the fit, to check the scaling: a deeper tiny model and the real sizes.
CHECKS = {
    "bert": [("6-layer", (64, 6, 4, 384, 4, 48)), ("bert-base-uncased", 32, 128), ("bert-large-uncased", 32, 128)],
    "distilbert": [("distilbert-base-uncased", 8, 128)],
    "albert": [("albert-base-v2", 8, 128)],
    "deberta-v2": [("microsoft/deberta-v3-base", 8, 128)],
}


def traced_step_mix(tf: Any, model: Any, batch_size: int, seq_len: int) -> OpMix:
    """Trace (not run) the compiled model's train step on a batch of that shape and count its op mix."""
    features = {"input_ids": tf.zeros([batch_size, seq_len], tf.int32),
                "attention_mask": tf.ones([batch_size, seq_len], tf.int32)}
    ds = tf.data.Dataset.from_tensors((features, tf.zeros([batch_size], tf.int32))).repeat()
    model.make_train_function()
    concrete = model.train_function.get_concrete_function(iter(ds))
    return op_mix(concrete.graph)


def tiny_arch(family: str, hidden: int, layers: int, heads: int, intermediate: int, vocab: int = 1000,
              span: int | None = None) -> Any:
    from gpuplan.models import ModelArch

    fields = {**FAMILIES[family], **({"position_buckets": span} if span else {})}
    return ModelArch(name=f"tiny-{family}", vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=intermediate, **fields)


def trace_arch(arch: Any, batch: int, seq: int, policy: str) -> dict[str, Any]:
    """Build the arch's TF classifier under a Keras policy, compile it as the calibration does, trace one step."""
    import tensorflow as tf
    from transformers import TFAutoModelForSequenceClassification

    from gpuplan.calibration.model import hf_config

    tf.keras.backend.clear_session()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        model = TFAutoModelForSequenceClassification.from_config(hf_config(arch, 2))
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-4),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        mix = traced_step_mix(tf, model, batch, seq)
        params = sum(int(v.shape.num_elements()) for v in model.trainable_variables)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    return {"family": arch.family, "hidden": arch.hidden_size, "layers": arch.num_hidden_layers,
            "heads": arch.num_attention_heads, "intermediate": arch.intermediate_size, "batch": batch, "seq": seq,
            "span": 2 * arch.rel_span if arch.relative_attention else 0, "vocab": arch.vocab_size,
            "policy": policy, "params": params, "matmul_flops": mix.matmul_flops, "memory_bytes": mix.memory_bytes,
            "kernels": mix.kernels, "unknown_shapes": mix.unknown_shapes}


def trace_config(hidden: int, layers: int, heads: int, intermediate: int, batch: int, seq: int, policy: str,
                 vocab: int = 1000, family: str = "bert", span: int | None = None) -> dict[str, Any]:
    return trace_arch(tiny_arch(family, hidden, layers, heads, intermediate, vocab, span), batch, seq, policy)


TERM_NAMES = ("layer_token_hidden", "layer_token_intermediate", "layer_token_scores", "params", "token_hidden",
              "layer_token_heads_span")


def _terms(row: dict[str, Any]) -> list[float]:
    tokens = row["batch"] * row["seq"]
    return [row["layers"] * tokens * row["hidden"], row["layers"] * tokens * row["intermediate"],
            row["layers"] * tokens * row["heads"] * row["seq"], row["params"], tokens * row["hidden"],
            row["layers"] * tokens * row["heads"] * row.get("span", 0)]


def fit_profile(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Bytes: least squares on the size terms; kernels: per layer + fixed (exact: the graph repeats per layer)."""
    import numpy as np

    policies = {}
    for policy in POLICIES:
        fit_rows = [r for r in rows if r["policy"] == policy]
        x = np.array([_terms(r) for r in fit_rows])
        coef, *_ = np.linalg.lstsq(x, np.array([r["memory_bytes"] for r in fit_rows]), rcond=None)
        k, *_ = np.linalg.lstsq(np.array([[r["layers"], 1.0] for r in fit_rows]),
                                np.array([r["kernels"] for r in fit_rows], dtype=float), rcond=None)
        policies[policy] = {
            "bytes_per_term": dict(zip(TERM_NAMES, (round(float(c), 3) for c in coef))),
            "kernels_per_layer": round(float(k[0]), 2), "kernels_fixed": round(float(k[1]), 2),
        }
    return policies


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("tensorflow", "tf-keras", "transformers")}


def _check_archs(family: str) -> list[tuple[str, Any, int, int]]:
    from gpuplan.models import BUILTIN_MODELS

    out = []
    for name, *rest in CHECKS[family]:
        if len(rest) == 1:  # a tiny config: (hidden, layers, heads, intermediate, batch, seq)
            h, layers, a, i, b, s = rest[0]
            out.append((name, tiny_arch(family, h, layers, a, i), b, s))
        else:
            out.append((name, BUILTIN_MODELS[name], rest[0], rest[1]))
    return out


def profile_family(family: str, checks: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Trace a family's grid, fit its profile, and check it on the held-out configs."""
    rows = []
    for policy in POLICIES:
        for cfg in FIT_GRID:
            rows.append(trace_config(*cfg, policy, family=family))
        for *cfg, span in (SPAN_GRID if family == "deberta-v2" else []):
            rows.append(trace_config(*cfg, policy, family=family, span=span))
        print(f"traced {family} {policy}", flush=True)
    policies = fit_profile(rows)
    results = []
    for name, arch, batch, seq in _check_archs(family) if checks else []:
        for policy in POLICIES:
            t0 = time.perf_counter()
            row = trace_arch(arch, batch, seq, policy)
            p = policies[policy]
            predicted = sum(c * t for c, t in zip(p["bytes_per_term"].values(), _terms(row)))
            kernels = p["kernels_per_layer"] * row["layers"] + p["kernels_fixed"]
            results.append({"name": name, **{k: row[k] for k in ("family", "policy", "hidden", "layers", "heads",
                                                                   "intermediate", "batch", "seq", "span", "vocab",
                                                                   "params")},
                            "traced_memory_bytes": row["memory_bytes"], "predicted_memory_bytes": round(predicted),
                            "traced_kernels": row["kernels"], "predicted_kernels": round(kernels),
                            "traced_matmul_flops": row["matmul_flops"],
                            "trace_seconds": round(time.perf_counter() - t0, 1)})
            print(f"checked {name} {policy}: bytes {predicted / row['memory_bytes']:.3f}x, kernels "
                  f"{kernels / row['kernels']:.3f}x", flush=True)
    return {"policies": policies}, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Trace the stock Keras train step of each BERT family and write "
                                                 "the op-mix profile")
    parser.add_argument("--output", type=Path, default=Path(__file__).parents[1] / "perf" / "data" / "opmix_keras.json")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma-separated families to (re)trace; the others are kept from --output")
    parser.add_argument("--no-checks", action="store_true", help="skip tracing the full-size models (minutes)")
    args = parser.parse_args(argv)
    old = json.loads(args.output.read_text()) if args.output.is_file() else {}
    families, checks = dict(old.get("families", {})), list(old.get("checks", []))
    for family in args.families.split(","):
        families[family], new_checks = profile_family(family, not args.no_checks)
        checks = [c for c in checks if c.get("family", "bert") != family] + new_checks
    profile = {
        "schema_version": 2,
        "provenance": {
            "what": "op mix of a Hugging Face TFAutoModelForSequenceClassification train step under tf-keras "
                    "(compile with Adam, model.fit's train function, no XLA), traced before grappler rewrites it, "
                    "per model family",
            "script": "python -m gpuplan.calibration.opmix", "traced_on": dt.date.today().isoformat(),
            "versions": _versions(), "fit_grid": [list(c) for c in FIT_GRID],
            "span_grid_deberta": [list(c) for c in SPAN_GRID],
            "family_templates": {f: {k: list(v) if isinstance(v, tuple) else v for k, v in t.items()}
                                 for f, t in FAMILIES.items()},
            "terms": "layer_token_hidden = layers*tokens*hidden, layer_token_intermediate = layers*tokens*"
                     "intermediate, layer_token_scores = layers*tokens*heads*seq, params = trainable parameters, "
                     "token_hidden = tokens*hidden, layer_token_heads_span = layers*tokens*heads*2*relative span "
                     "(DeBERTa); tokens = batch*seq",
        },
        "families": families,
        "checks": checks,
    }
    args.output.write_text(json.dumps(profile, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
