"""The op mix traced from a real TensorFlow graph agrees with the bundled profile, scaled to that config."""

from __future__ import annotations

import pytest

from gpuplan.perf.opmix import step_mix
from gpuplan.workload import ModelArch


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_traced_tiny_bert_matches_the_bundled_profile(policy):
    from gpuplan.calibration.opmix import trace_config

    # A config outside the profile's fitting grid.
    traced = trace_config(48, 2, 4, 192, 2, 24, policy, vocab=500)
    arch = ModelArch(name="tiny", vocab_size=500, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=192)
    predicted = step_mix(arch, 2, 24, policy)
    assert predicted.kernels == pytest.approx(traced["kernels"], rel=0.10)
    assert predicted.memory_bytes == pytest.approx(traced["memory_bytes"], rel=0.10)
    dtype = "float32" if policy == "float32" else "float16"
    assert traced["matmul_flops"][dtype] == pytest.approx(predicted.matmul_flops, rel=0.05)
