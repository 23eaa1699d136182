"""Parameters, FLOPs and bytes moved per training step of a BERT classifier, from its config alone.

A step is forward + backward (twice the forward's matmul FLOPs) + the Adam update. Matmuls are compute-bound;
layer norm, softmax, GELU, dropout, bias adds and the optimizer are memory-bound, so they are counted as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuplan.workload import ModelArch

# Passes (reads + writes) over each activation tensor in one layer's forward, counted from the ops a
# TensorFlow BERT layer runs unfused: bias adds, dropout (with its mask), residual adds, two layer norms,
# GELU, and scale + mask + softmax + dropout over the attention scores. Backward moves about twice as much.
PASSES_PER_HIDDEN = 24
PASSES_PER_INTERMEDIATE = 6
PASSES_PER_SCORE = 10
BACKWARD_BYTES_FACTOR = 2.0
# Adam reads weights, gradients and both moments and writes three of them back: 7 fp32 passes per parameter,
# plus the gradient's own write.
OPTIMIZER_PASSES = 8
OPTIMIZER_FLOPS_PER_PARAM = 12


def param_count(arch: ModelArch) -> int:
    h, i, layers = arch.hidden_size, arch.intermediate_size, arch.num_hidden_layers
    embeddings = (arch.vocab_size + arch.max_position_embeddings + arch.type_vocab_size) * h + 2 * h
    per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
    pooler = h * h + h
    classifier = h * arch.num_labels + arch.num_labels
    return embeddings + layers * per_layer + pooler + classifier


def encoder_param_count(arch: ModelArch) -> int:
    """Parameters that take part in matmuls per token (everything but the embedding tables)."""
    h, i = arch.hidden_size, arch.intermediate_size
    return arch.num_hidden_layers * (4 * h * h + 2 * h * i)


def forward_matmul_flops(arch: ModelArch, batch_size: int, seq_len: int) -> float:
    """2 FLOPs per multiply-add: dense layers per token, plus QK^T and attention x V that grow with seq_len^2."""
    h, layers = arch.hidden_size, arch.num_hidden_layers
    tokens = batch_size * seq_len
    dense = 2.0 * encoder_param_count(arch) * tokens
    attention = layers * 2.0 * 2.0 * seq_len * h * tokens
    head = 2.0 * batch_size * (h * h + h * arch.num_labels)
    return dense + attention + head


def train_flops_per_step(arch: ModelArch, batch_size: int, seq_len: int) -> float:
    """Forward + backward matmul FLOPs (3x the forward) plus the optimizer update."""
    return 3.0 * forward_matmul_flops(arch, batch_size, seq_len) + OPTIMIZER_FLOPS_PER_PARAM * param_count(arch)


@dataclass(frozen=True)
class StepWork:
    """The work in one training step, in raw units."""

    matmul_flops: float
    activation_bytes: float  # memory-bound element-wise traffic, forward + backward
    optimizer_bytes: float  # Adam update and gradient traffic, independent of batch size
    params: int


def step_work(arch: ModelArch, batch_size: int, seq_len: int, act_bytes_per_elem: int) -> StepWork:
    """act_bytes_per_elem: 4 in fp32, 2 under mixed precision (activations in float16/bfloat16)."""
    h, i, a = arch.hidden_size, arch.intermediate_size, arch.num_attention_heads
    tokens = batch_size * seq_len
    per_token_layer = PASSES_PER_HIDDEN * h + PASSES_PER_INTERMEDIATE * i + PASSES_PER_SCORE * a * seq_len
    forward = tokens * arch.num_hidden_layers * per_token_layer * act_bytes_per_elem
    params = param_count(arch)
    # Mixed precision also casts the fp32 weights to 16 bits each step (read 4 bytes, write 2).
    cast = 6 * params if act_bytes_per_elem == 2 else 0
    return StepWork(
        matmul_flops=3.0 * forward_matmul_flops(arch, batch_size, seq_len),
        activation_bytes=forward * (1 + BACKWARD_BYTES_FACTOR),
        optimizer_bytes=OPTIMIZER_PASSES * 4 * params + cast,
        params=params,
    )
