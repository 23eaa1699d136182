"""FLOPs of the matmuls in the graph TensorFlow traced for a training step (`opmix.op_mix` walks the graph).

Counts the matrix multiplies (MatMul, BatchMatMul) of the forward and backward pass, 2 FLOPs per multiply-add,
from the static shapes of the traced train step. Element-wise ops (GELU, softmax, layer norm, Adam's update) are
memory-bound and add about 1% of the FLOPs, so they are left out: they cost bytes, not FLOPs.
"""

from __future__ import annotations

import math
from typing import Any

# The traced graph, before grappler fuses anything; BERT in transformers uses only these two kinds.
MATMUL_OPS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}
CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}


def static_dims(tensor: Any) -> list[int] | None:
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def op_flops(op: Any) -> float | None:
    """FLOPs of one matmul-like op, or None when a shape is unknown at trace time."""
    a, b = (static_dims(t) for t in op.inputs[:2])
    if a is None or b is None:
        return None
    if op.type == "MatMul":
        k = a[0] if op.get_attr("transpose_a") else a[1]
        m = a[1] if op.get_attr("transpose_a") else a[0]
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2.0 * m * n * k
    adj_x = op.get_attr("adj_x")
    k = a[-2] if adj_x else a[-1]
    out = static_dims(op.outputs[0])
    return None if out is None else 2.0 * math.prod(out) * k
