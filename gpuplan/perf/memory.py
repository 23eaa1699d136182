"""Memory footprint of a training step, whether it fits a GPU, and the largest batch that does."""

from __future__ import annotations

from dataclasses import dataclass

from gpuplan.perf.flops import compute_layers, param_count, relative_score_terms
from gpuplan.workload import ModelArch

# Activation elements kept for the backward pass, per layer and token. Counted from an unfused TensorFlow BERT
# layer: about 14 hidden-sized tensors (input, Q, K, V and their transposes, context, masks, layer-norm inputs and
# outputs) and 4 intermediate-sized ones (bias add, the GELU's internals, its output) = 30h, plus scores,
# softmax, dropout mask and dropout output over the attention scores = 4*a*s. Raised to 40h for the transients
# alive at the peak of the backward pass, which comes within about a third of Google's published largest batches
# for BERT on a 12 GB GPU (google-research/bert README, seq 128: BERT-Base 32, we say 39; BERT-Large 6, we say 8),
# still on the optimistic side.
# Megatron's fused kernels need about half this (Korthikanti et al. 2022: 34h + 5as bytes at 16 bits).
ACT_ELEMS_HIDDEN = 40
ACT_ELEMS_SCORES = 4
# CUDA context, cuBLAS/cuDNN workspaces and TensorFlow's own allocations.
RUNTIME_RESERVE_BYTES = 1.0 * 2**30
# Allocator fragmentation: TensorFlow's BFC allocator rarely packs better than this.
FRAGMENTATION = 1.10


@dataclass(frozen=True)
class Footprint:
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    reserve_bytes: float

    @property
    def total_bytes(self) -> float:
        core = self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes
        return core * FRAGMENTATION + self.reserve_bytes


def activation_bytes_per_sample(arch: ModelArch, seq_len: int, mixed: bool) -> float:
    """ALBERT keeps activations for every layer it runs, though it stores one layer's weights. DeBERTa keeps one
    more score-sized tensor per disentangled term (the gathered c2p / p2c scores)."""
    h, a = arch.hidden_size, arch.num_attention_heads
    scores = ACT_ELEMS_SCORES + relative_score_terms(arch)
    per_layer = seq_len * (ACT_ELEMS_HIDDEN * h + scores * a * seq_len)
    embeddings_and_head = 4 * seq_len * max(h, arch.embed_dim)
    return (compute_layers(arch) * per_layer + embeddings_and_head) * (2 if mixed else 4)


def footprint(arch: ModelArch, batch_size: int, seq_len: int, mixed: bool) -> Footprint:
    """Keras mixed precision keeps fp32 variables, gradients and Adam moments, plus 16-bit weight copies.

    Every parameter counts, the embedding tables included: Adam keeps dense moments for them, so XLM-R's 250k-row
    vocabulary (192M of its 278M parameters) is most of its weight and optimizer memory.
    """
    p = param_count(arch)
    return Footprint(
        weights_bytes=4 * p + (2 * p if mixed else 0),
        gradients_bytes=4 * p,
        optimizer_bytes=8 * p,
        activations_bytes=batch_size * activation_bytes_per_sample(arch, seq_len, mixed),
        reserve_bytes=RUNTIME_RESERVE_BYTES,
    )


def fits(arch: ModelArch, batch_size: int, seq_len: int, mixed: bool, memory_gib: float) -> bool:
    return footprint(arch, batch_size, seq_len, mixed).total_bytes <= memory_gib * 2**30


def max_batch(arch: ModelArch, seq_len: int, mixed: bool, memory_gib: float) -> int:
    """Largest per-GPU batch that fits (0 when even the weights and optimizer state don't)."""
    empty = footprint(arch, 0, seq_len, mixed)
    free = (memory_gib * 2**30 - empty.reserve_bytes) / FRAGMENTATION
    free -= empty.weights_bytes + empty.gradients_bytes + empty.optimizer_bytes
    return max(0, int(free // activation_bytes_per_sample(arch, seq_len, mixed)))
