"""The performance model: counts against known figures, memory fit, and accuracy on its fitting set."""

from __future__ import annotations

import pytest

from gpuplan.perf import fit as perf_fit
from gpuplan.perf.flops import forward_matmul_flops, param_count, step_work, train_flops_per_step
from gpuplan.perf.memory import fits, footprint, max_batch
from gpuplan.perf.throughput import allreduce_seconds, precision_path, step_time
from gpuplan.stats import percentile
from gpuplan.workload import BUILTIN_MODELS
from pricing import bundled_catalog

BASE = BUILTIN_MODELS["bert-base-uncased"]
LARGE = BUILTIN_MODELS["bert-large-uncased"]


@pytest.mark.parametrize(("arch", "published"), [(BASE, 110e6), (LARGE, 340e6)])
def test_parameter_count_matches_the_published_size(arch, published):
    assert param_count(arch) == pytest.approx(published, rel=0.02)


def test_bert_base_parameter_count_is_exact():
    # The Hugging Face bert-base-uncased checkpoint with a 2-class head has 109,483,778 parameters.
    assert param_count(BASE) == 109_483_778


def test_training_flops_are_about_six_per_parameter_per_token_at_short_lengths():
    tokens = 32 * 128
    dense_params = param_count(BASE) - (BASE.vocab_size + 512 + 2) * BASE.hidden_size
    assert train_flops_per_step(BASE, 32, 128) == pytest.approx(6 * dense_params * tokens, rel=0.10)


def test_attention_flops_grow_with_the_square_of_the_length():
    # Same tokens per step, 4x the length: the dense part is equal, attention scores quadruple per token.
    short = forward_matmul_flops(BASE, 32, 128)
    long = forward_matmul_flops(BASE, 8, 512)
    attention_short = BASE.num_hidden_layers * 4 * 128 * BASE.hidden_size * 32 * 128
    assert long - short == pytest.approx(3 * attention_short, rel=0.01)


def test_mixed_precision_halves_activation_traffic():
    fp32 = step_work(BASE, 32, 128, 4)
    mixed = step_work(BASE, 32, 128, 2)
    assert mixed.activation_bytes == fp32.activation_bytes / 2
    assert mixed.matmul_flops == fp32.matmul_flops


def test_memory_grows_with_batch_and_mixed_needs_less():
    small, big = footprint(BASE, 8, 128, False), footprint(BASE, 64, 128, False)
    assert big.total_bytes > small.total_bytes
    assert footprint(BASE, 64, 128, True).total_bytes < big.total_bytes


@pytest.mark.parametrize(("arch", "published_max"), [(BASE, 32), (LARGE, 6)])
def test_largest_batch_on_12_gb_is_close_to_googles_published_table(arch, published_max):
    # google-research/bert README: on a 12 GB GPU at seq 128, BERT-Base fits 32 and BERT-Large 6 (fp32 Adam).
    got = max_batch(arch, 128, False, 12)
    assert published_max <= got <= published_max * 1.4


def test_largest_batch_is_the_boundary_of_fits():
    n = max_batch(LARGE, 384, False, 16)
    assert fits(LARGE, n, 384, False, 16)
    assert not fits(LARGE, n + 1, 384, False, 16)


def test_bert_large_at_512_does_not_fit_a_t4_at_batch_32():
    assert not fits(LARGE, 32, 512, False, 16)


@pytest.mark.parametrize(("gpu", "precision", "dtype"), [
    ("v100", "fp32", "float32"), ("v100", "mixed", "mixed_float16"), ("t4", "mixed", "mixed_float16"),
    ("a100", "fp32", "float32 (TF32 matmuls)"), ("a100", "mixed", "mixed_bfloat16"), ("h100", "mixed", "mixed_bfloat16"),
])
def test_precision_path_follows_the_architecture(gpu, precision, dtype):
    assert precision_path(bundled_catalog().gpu(gpu), precision).dtype == dtype


def test_mixed_precision_is_faster_on_every_gpu_and_bigger_gpus_are_faster():
    cat = bundled_catalog()
    times = {g.key: {p: step_time(BASE, g, p, 32, 128).seconds for p in ("fp32", "mixed")} for g in cat.gpus}
    for key, t in times.items():
        assert t["mixed"] < t["fp32"], key
    assert times["h100"]["mixed"] < times["a100"]["mixed"] < times["v100"]["mixed"] < times["t4"]["mixed"]


def test_allreduce_is_zero_on_one_gpu_and_shrinks_with_bandwidth():
    p = param_count(BASE)
    assert allreduce_seconds(p, 1, None) == 0
    assert allreduce_seconds(p, 8, 400) < allreduce_seconds(p, 8, 10)
    # Ring all-reduce of 110M fp32 gradients over 8 GPUs at 100 GB/s: 2*7/8*438 MB / 100 GB/s = 7.7 ms.
    assert allreduce_seconds(p, 8, 100) == pytest.approx(2 * 7 / 8 * 4 * p / 100e9)


def test_stored_constants_reproduce_the_published_measurements():
    comps = perf_fit.comparisons()
    errors = [c.error for c in comps]
    naive = [c.naive_error for c in comps]
    assert len(comps) == 50
    assert percentile(errors, 50) <= 0.10
    assert percentile(errors, 90) <= 0.25
    # The point of the model: it beats the constant-fraction-of-peak model peers use.
    assert percentile(naive, 50) > 2 * percentile(errors, 50)


def test_refitting_gives_the_stored_constants(tmp_path):
    out = tmp_path / "constants.json"
    perf_fit.main(["--output", str(out)])
    import json

    fresh = json.loads(out.read_text())
    stored = perf_fit.load_constants()
    for key, value in stored["parameters"]["efficiency"].items():
        assert fresh["parameters"]["efficiency"][key] == pytest.approx(value, rel=1e-3)
