"""Parameters, FLOPs and bytes moved per training step of a BERT-family classifier, from its config alone.

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
# DeBERTa, per disentangled term: the score matmul's s x 2k output written and gathered, then the gathered s x s
# scores scaled and added to the content scores.
PASSES_PER_RELATIVE_POSITION = 2
PASSES_PER_RELATIVE_SCORE = 3
BACKWARD_BYTES_FACTOR = 2.0
# Adam reads weights, gradients and both moments and writes three of them back: 7 fp32 passes per parameter,
# plus the gradient's own write.
OPTIMIZER_PASSES = 8
OPTIMIZER_FLOPS_PER_PARAM = 12


def layer_params(h: int, i: int) -> int:
    """One encoder layer: Q, K, V and output projections, the feed-forward pair, two layer norms."""
    return 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h


def compute_layers(arch: ModelArch) -> int:
    """Layers a token goes through. ALBERT stores one group of layers and runs it num_hidden_layers times."""
    return arch.num_hidden_layers * arch.inner_group_num


def has_projection(arch: ModelArch) -> bool:
    """A dense E -> H after the embeddings: always in ALBERT, in ELECTRA and DeBERTa when E != H."""
    return arch.family == "albert" or (arch.family in ("electra", "deberta-v2") and arch.embed_dim != arch.hidden_size)


def position_projections(arch: ModelArch) -> int:
    """DeBERTa: how many h x h projections of the relative embeddings each layer runs. Shared keys (v3) reuse the
    content query and key weights, and transformers' TF code projects both whatever pos_att_type holds."""
    if arch.family != "deberta-v2" or not arch.relative_attention:
        return 0
    if arch.share_att_key:
        return 2
    return sum(t in arch.pos_att_type for t in ("c2p", "p2c"))


def relative_score_terms(arch: ModelArch) -> int:
    """DeBERTa: extra score matmuls per layer (c2p: queries x position keys; p2c: keys x position queries)."""
    if arch.family != "deberta-v2" or not arch.relative_attention:
        return 0
    return sum(t in arch.pos_att_type for t in ("c2p", "p2c"))


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by part. `base` is the bare encoder model cards publish; `classifier` is what fine-tuning trains."""

    embeddings: int  # lookup tables and their layer norm: looked up, never multiplied
    projection: int  # E -> H after the embeddings (ALBERT, ELECTRA/DeBERTa when E != H)
    encoder: int  # stored layer weights (ALBERT: one group, reused by every layer)
    relative: int  # DeBERTa: relative position embeddings, their layer norm, the optional convolution
    pooler: int  # the bare model's pooler (BERT, RoBERTa, ALBERT); the classifier may drop it
    head: int  # the classifier's own: one h x h dense (pooler, pre_classifier, head dense) + h x labels

    @property
    def base(self) -> int:
        return self.embeddings + self.projection + self.encoder + self.relative + self.pooler

    @property
    def classifier(self) -> int:
        # Every sequence classifier keeps exactly one h x h dense before its output layer, counted in head.
        return self.base - self.pooler + self.head


def param_counts(arch: ModelArch) -> ParamCounts:
    """Mirrors the modules of transformers (4.57) per model type; exact against the TF models' variables."""
    h, i, e, fam = arch.hidden_size, arch.intermediate_size, arch.embed_dim, arch.family
    positions = arch.max_position_embeddings
    if fam == "deberta-v2" and not arch.position_biased_input:
        positions = 0
    tables = (arch.vocab_size + positions + arch.type_vocab_size) * e
    norm = 2 * (h if fam == "deberta-v2" else e)  # DeBERTa normalises after its projection
    projection = 0
    if has_projection(arch):
        projection = e * h + (0 if fam == "deberta-v2" else h)  # DeBERTa's embed_proj has no bias
    stored_layers = arch.num_hidden_groups * arch.inner_group_num if fam == "albert" else arch.num_hidden_layers
    per_layer = layer_params(h, i)
    if not arch.share_att_key:
        per_layer += position_projections(arch) * (h * h + h)  # pos_key_proj / pos_query_proj
    relative = 0
    if fam == "deberta-v2" and arch.relative_attention:
        relative = 2 * arch.rel_span * h + (2 * h if "layer_norm" in arch.norm_rel_ebd else 0)
    if fam == "deberta-v2" and arch.conv_kernel_size:
        relative += arch.conv_kernel_size * h * h + h + 2 * h  # ConvLayer: conv weights, bias, layer norm
    pooler = h * h + h if fam in ("bert", "roberta", "albert") else 0
    return ParamCounts(
        embeddings=tables + norm, projection=projection, encoder=stored_layers * per_layer, relative=relative,
        pooler=pooler, head=(h * h + h) + (h * arch.num_labels + arch.num_labels),
    )


def param_count(arch: ModelArch) -> int:
    """Parameters of the sequence classifier that fine-tuning trains (and Adam keeps two moments of)."""
    return param_counts(arch).classifier


def encoder_param_count(arch: ModelArch) -> int:
    """Weights multiplied per token, layer by layer (ALBERT's shared layers count each time they run)."""
    h, i = arch.hidden_size, arch.intermediate_size
    return compute_layers(arch) * (4 * h * h + 2 * h * i)


def forward_matmul_flops(arch: ModelArch, batch_size: int, seq_len: int) -> float:
    """2 FLOPs per multiply-add: dense layers per token, plus QK^T and attention x V that grow with seq_len^2.

    DeBERTa adds, per layer, the projections of its 2k relative embeddings (k = rel_span, batch-independent) and a
    score matmul per disentangled term against all 2k positions (gathered to s x s afterwards), so at s < 2k its
    attention costs more than BERT's.
    """
    h, layers = arch.hidden_size, compute_layers(arch)
    tokens = batch_size * seq_len
    dense = 2.0 * encoder_param_count(arch) * tokens
    attention = layers * 2.0 * 2.0 * seq_len * h * tokens
    rel_rows = 2 * arch.rel_span
    relative = layers * (position_projections(arch) * 2.0 * rel_rows * h * h
                         + relative_score_terms(arch) * 2.0 * tokens * rel_rows * h)
    projection = 2.0 * tokens * arch.embed_dim * h if has_projection(arch) else 0.0
    conv = 2.0 * tokens * arch.conv_kernel_size * h * h if arch.family == "deberta-v2" else 0.0
    head = 2.0 * batch_size * (h * h + h * arch.num_labels)
    return dense + attention + relative + projection + conv + head


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
    rel = relative_score_terms(arch)
    per_token_layer = (PASSES_PER_HIDDEN * h + PASSES_PER_INTERMEDIATE * i
                       + (PASSES_PER_SCORE + rel * PASSES_PER_RELATIVE_SCORE) * a * seq_len
                       + rel * PASSES_PER_RELATIVE_POSITION * a * 2 * arch.rel_span)
    forward = tokens * compute_layers(arch) * per_token_layer * act_bytes_per_elem
    params = param_count(arch)
    # Mixed precision also casts the fp32 weights to 16 bits each step (read 4 bytes, write 2).
    cast = 6 * params if act_bytes_per_elem == 2 else 0
    return StepWork(
        matmul_flops=3.0 * forward_matmul_flops(arch, batch_size, seq_len),
        activation_bytes=forward * (1 + BACKWARD_BYTES_FACTOR),
        optimizer_bytes=OPTIMIZER_PASSES * 4 * params + cast,
        params=params,
    )
