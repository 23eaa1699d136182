"""The analytic model against real TensorFlow: a tiny model of each supported type, built by transformers from its
config as `gpuplan calibrate` builds it, has exactly the parameters param_count says, and `gpuplan calibrate`
trains it, with the matmul FLOPs of the traced train step what forward_matmul_flops says (within 2%).

Two steps each on random tokens; tracing fit's graph is most of the time (5-15 s a model on two cores).
"""

from __future__ import annotations

import json
import math

import pytest

from gpuplan.calibration.model import hf_config
from gpuplan.models import arch_from_config
from gpuplan.perf.flops import forward_matmul_flops, param_count, param_counts
from gpuplan.workload import build_workload

BATCH, SEQ = 4, 16
COMMON = {"vocab_size": 120, "max_position_embeddings": 64}
TINY = {
    "bert": {"model_type": "bert", **COMMON, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64},
    "distilbert": {"model_type": "distilbert", **COMMON, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64},
    "roberta": {"model_type": "roberta", **COMMON, "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 64, "type_vocab_size": 1, "pad_token_id": 1},
    "xlm-roberta": {"model_type": "xlm-roberta", **COMMON, "hidden_size": 48, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "intermediate_size": 96, "type_vocab_size": 1, "pad_token_id": 1},
    "electra": {"model_type": "electra", **COMMON, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 64},
    # 4 layers run from one stored layer: 4 layers of FLOPs, 1 layer of parameters.
    "albert": {"model_type": "albert", **COMMON, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 4,
               "num_attention_heads": 4, "intermediate_size": 64},
    # DeBERTa-v3's layout: shared position keys, no absolute positions, no token types; plus an embedding projection.
    "deberta-v3": {"model_type": "deberta-v2", **COMMON, "embedding_size": 24, "hidden_size": 32, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "intermediate_size": 64, "relative_attention": True,
                   "position_buckets": 16, "pos_att_type": "p2c|c2p", "share_att_key": True,
                   "position_biased_input": False, "norm_rel_ebd": "layer_norm", "type_vocab_size": 0},
    # DeBERTa-v2's other layout: own position projections, absolute positions. (TF's absolute position table is
    # hidden_size wide, so TF can't build this layout with embedding_size != hidden_size.)
    "deberta-v2": {"model_type": "deberta-v2", **COMMON, "hidden_size": 32,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                   "relative_attention": True, "max_relative_positions": 20, "pos_att_type": ["c2p", "p2c"],
                   "type_vocab_size": 2},
}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """name -> (arch, the fp32 run) of a real `gpuplan calibrate` of each tiny model from its config.json folder:
    two steps of fit on random tokens, the FLOPs counted from the graph fit traced."""
    from gpuplan.calibration.train import run_calibration

    out = {}
    for name, config in TINY.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "config.json").write_text(json.dumps(config))
        wl = build_workload(model=str(folder), batch_size=BATCH, seq_len=SEQ, num_examples=64, precision="fp32")
        result = run_calibration(wl, steps=1, warmup_steps=1)
        out[name] = (wl.arch, result.runs[0])
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_parameters_are_exactly_the_tensorflow_models(name):
    import tensorflow as tf
    from transformers import TFAutoModelForSequenceClassification

    arch = arch_from_config(TINY[name], name, "file", None)
    tf.keras.backend.clear_session()
    model = TFAutoModelForSequenceClassification.from_config(hf_config(arch, 2))  # as calibrate builds built-ins
    model(model.dummy_inputs, training=False)
    assert param_count(arch) == sum(int(v.shape.num_elements()) for v in model.trainable_variables)


@pytest.mark.parametrize("name", list(TINY))
def test_calibrate_trains_it_and_the_traced_flops_match_the_analytic_count(calibrated, name):
    arch, run = calibrated[name]
    assert run.measured and run.steps == 1 and math.isfinite(run.loss_last)
    analytic = 3 * forward_matmul_flops(arch, BATCH, SEQ)  # forward + backward (2x), as the graph holds them
    assert run.flops_per_step == pytest.approx(analytic, rel=0.02)


def test_albert_stores_one_layer_but_computes_all():
    arch = arch_from_config(TINY["albert"], "albert", "file", None)
    two = arch.model_copy(update={"num_hidden_layers": 2})
    assert param_counts(two).encoder == param_counts(arch).encoder
    assert forward_matmul_flops(arch, BATCH, SEQ) > 1.8 * forward_matmul_flops(two, BATCH, SEQ)


def test_deberta_attention_costs_more_than_berts():
    deberta, bert = (arch_from_config(TINY[n], n, "file", None) for n in ("deberta-v3", "bert"))
    assert forward_matmul_flops(deberta, BATCH, SEQ) > forward_matmul_flops(bert, BATCH, SEQ)
