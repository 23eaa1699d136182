"""The stock stack's work per training step, scaled from the op mix traced on its own graphs.

`gpuplan/perf/data/opmix_keras.json` holds, per Keras dtype policy, how many bytes the memory-bound ops of a
Hugging Face TF BERT train step (tf-keras `fit`, Adam, no XLA) move per unit of each size term, and how many
kernels it launches per layer. The coefficients were fitted on graphs traced from tiny configs
(`python -m gpuplan.calibration.opmix`), and are checked against traced 6-layer, BERT-base and BERT-large graphs.
Pure Python: `estimate` never imports TensorFlow for this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from gpuplan.perf.flops import param_count, step_work
from gpuplan.workload import ModelArch

PROFILE_FILE = "data/opmix_keras.json"
# The size terms the bytes grow with, in the order the profile's coefficients are stored.
TERMS = ("layer_token_hidden", "layer_token_intermediate", "layer_token_scores", "params", "token_hidden",
         "layer_token_heads_span")
# Families whose traced graphs are within 5% of BERT's (RoBERTa, XLM-R, ELECTRA) use BERT's profile.
FALLBACK_FAMILY = "bert"


@dataclass(frozen=True)
class StepMix:
    """One train step of the stock graph: matmul FLOPs, memory-bound bytes and kernel launches."""

    matmul_flops: float
    memory_bytes: float
    kernels: int


@cache
def load_profile() -> dict[str, Any]:
    return json.loads(resources.files("gpuplan.perf").joinpath(PROFILE_FILE).read_text())


def size_terms(arch: ModelArch, batch_size: int, seq_len: int) -> dict[str, float]:
    tokens = batch_size * seq_len
    layers = arch.num_hidden_layers
    return {
        "layer_token_hidden": float(layers * tokens * arch.hidden_size),
        "layer_token_intermediate": float(layers * tokens * arch.intermediate_size),
        "layer_token_scores": float(layers * tokens * arch.num_attention_heads * seq_len),
        "params": float(param_count(arch)),
        "token_hidden": float(tokens * arch.hidden_size),
        # DeBERTa: each head's scores against the 2k relative positions, content-to-position and back.
        "layer_token_heads_span": float(layers * tokens * arch.num_attention_heads * 2 * arch.rel_span
                                        if arch.relative_attention else 0),
    }


def step_mix(arch: ModelArch, batch_size: int, seq_len: int, dtype: str,
             profile: dict[str, Any] | None = None) -> StepMix:
    """dtype: the Keras policy, float32, mixed_float16 or mixed_bfloat16."""
    families = (profile or load_profile())["families"]
    prof = families.get(arch.family, families[FALLBACK_FAMILY])["policies"][dtype]
    terms = size_terms(arch, batch_size, seq_len)
    memory = sum(prof["bytes_per_term"].get(t, 0.0) * terms[t] for t in TERMS)
    kernels = prof["kernels_per_layer"] * arch.num_hidden_layers + prof["kernels_fixed"]
    flops = step_work(arch, batch_size, seq_len, 2 if dtype != "float32" else 4).matmul_flops
    return StepMix(matmul_flops=flops, memory_bytes=max(memory, 0.0), kernels=int(kernels))
