"""The stack-aware performance model: op-mix scaling, the stock stack's step time, the start-up phases."""

from __future__ import annotations

import pytest

from gpuplan.perf import stacks
from gpuplan.perf.opmix import load_profile, size_terms, step_mix
from gpuplan.perf.startup import PHASES, modelled_phases, startup_phases, startup_seconds
from gpuplan.perf.stockfit import fit, leave_one_source_out, load_rows, predict, step_seconds
from gpuplan.workload import BUILTIN_MODELS, ModelArch
from pricing.catalog import bundled_catalog

BASE = BUILTIN_MODELS["bert-base-uncased"]
LARGE = BUILTIN_MODELS["bert-large-uncased"]


def _arch(hidden: int, layers: int, heads: int, intermediate: int, vocab: int = 1000) -> ModelArch:
    return ModelArch(name="tiny", vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=intermediate)


@pytest.mark.parametrize("check", load_profile()["checks"], ids=lambda c: f"{c['name']}-{c['policy']}")
def test_bundled_profile_scales_to_the_traced_graphs_it_was_not_fitted_on(check):
    arch = BUILTIN_MODELS.get(check["name"]) or _arch(check["hidden"], check["layers"], check["heads"],
                                                     check["intermediate"], check["vocab"])
    mix = step_mix(arch, check["batch"], check["seq"], check["policy"])
    assert mix.memory_bytes == pytest.approx(check["traced_memory_bytes"], rel=0.10)
    assert mix.kernels == pytest.approx(check["traced_kernels"], rel=0.10)


def test_op_mix_grows_with_each_size_term():
    small = step_mix(BASE, 8, 128, "float32")
    assert step_mix(BASE, 16, 128, "float32").memory_bytes > small.memory_bytes
    assert step_mix(LARGE, 8, 128, "float32").kernels > small.kernels
    # seq_len^2 attention: doubling the sequence more than doubles the per-token score traffic term
    t1, t2 = size_terms(BASE, 8, 128), size_terms(BASE, 8, 256)
    assert t2["layer_token_scores"] == 4 * t1["layer_token_scores"]


def test_mixed_precision_barely_shrinks_the_stock_graphs_memory_traffic():
    fp32, mixed = step_mix(BASE, 32, 128, "float32"), step_mix(BASE, 32, 128, "mixed_float16")
    assert 0.6 < mixed.memory_bytes / fp32.memory_bytes < 0.9  # not the 0.5 a pure 16-bit graph would move
    assert mixed.kernels > fp32.kernels  # the casts the mixed policy inserts


@pytest.mark.parametrize("gpu", ["t4", "v100"])
def test_stock_mixed_speedup_is_far_below_the_tuned_one(gpu):
    g = bundled_catalog().gpu(gpu)

    def speedup(stack: str) -> float:
        return (stacks.step_time(stack, BASE, g, "fp32", 32, 128).seconds
                / stacks.step_time(stack, BASE, g, "mixed", 32, 128).seconds)

    assert 1.2 < speedup("keras") < 2.0
    assert speedup("tuned") > 2.2
    assert speedup("keras") < speedup("keras-xla") < speedup("tuned")


def test_a_power_capped_t4_holds_only_part_of_its_tensor_peak():
    from gpuplan.perf.throughput import precision_path, sustained_fractions, tensor_peak_flops

    t4 = bundled_catalog().gpu("t4")
    assert 0.3 < sustained_fractions()["t4"] < 1.0
    assert tensor_peak_flops(t4, precision_path(t4, "mixed")) == pytest.approx(
        65e12 * sustained_fractions()["t4"])
    assert tensor_peak_flops(t4, precision_path(t4, "fp32")) == pytest.approx(8.1e12)


def test_xla_is_faster_than_plain_keras_and_unknown_stacks_are_refused():
    g = bundled_catalog().gpu("a10g")
    assert (stacks.step_time("keras-xla", BASE, g, "mixed", 32, 128).seconds
            < stacks.step_time("keras", BASE, g, "mixed", 32, 128).seconds)
    with pytest.raises(ValueError, match="unknown stack"):
        stacks.step_time("jax", BASE, g, "mixed", 32, 128)


@pytest.mark.parametrize(("metric", "value", "batch", "examples", "expected"), [
    ("samples_per_second", 16.0, 4, None, 0.25),
    ("epoch_seconds", 35.0, 32, 3648, 35.0 / 114),
    ("train_seconds", 100.0, 10, 1000, 1.0),
])
def test_published_figures_become_step_times(metric, value, batch, examples, expected):
    assert step_seconds(metric, value, batch, examples) == pytest.approx(expected)


def test_epoch_time_without_its_size_is_refused():
    with pytest.raises(ValueError, match="number of examples"):
        step_seconds("epoch_seconds", 35.0, 32, None)


def test_stock_fit_reproduces_the_keras_rows_and_the_v100_speedup():
    rows = load_rows()
    constants = fit(rows)
    keras = {(r.gpu, r.precision): r for r in rows if r.framework == "keras"}
    for r in keras.values():
        assert predict(r, constants) == pytest.approx(r.step_seconds, rel=0.15)
    published = keras[("v100", "fp32")].step_seconds / keras[("v100", "mixed")].step_seconds
    predicted = predict(keras[("v100", "fp32")], constants) / predict(keras[("v100", "mixed")], constants)
    assert predicted == pytest.approx(published, rel=0.10)


def test_leave_one_source_out_predicts_every_row_once():
    rows = load_rows()
    predicted = leave_one_source_out(rows)
    assert set(predicted) == {r.id for r in rows}
    assert all(v > 0 for v in predicted.values())


def test_startup_phases_add_up_and_measured_phases_win():
    phases = startup_phases(BASE)
    assert [p.phase for p in phases] == list(PHASES)
    assert startup_seconds(phases) == pytest.approx(sum(modelled_phases(BASE).values()), abs=0.5)
    measured = startup_phases(BASE, measured={"boot": 61.0, "install": 420.0})
    by = {p.phase: p for p in measured}
    assert by["boot"].seconds == 61.0 and by["boot"].source == "measured"
    assert by["trace"].source == "model"
    assert startup_seconds(measured) > startup_seconds(phases)


def test_a_bigger_model_takes_longer_to_download_and_trace():
    base, large = modelled_phases(BASE), modelled_phases(LARGE)
    assert large["model_download"] > base["model_download"] * 2.5
    assert large["trace"] > base["trace"] * 1.5
    assert large["install"] == base["install"]
