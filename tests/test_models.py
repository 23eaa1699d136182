"""The BERT family: built-in configs, config.json of each model type, parameter counts against published sizes,
position limits, memory, and `gpuplan models` / `estimate --model NAME` offline."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gpuplan.cli import app
from gpuplan.errors import GpuplanError
from gpuplan.models import BUILTIN_MODELS, SUPPORTED_MODEL_TYPES, ModelArch, arch_from_config, same_architecture
from gpuplan.perf.flops import forward_matmul_flops, param_count, param_counts
from gpuplan.perf.memory import footprint
from gpuplan.workload import build_workload, resolve_model

M = BUILTIN_MODELS


@pytest.fixture(autouse=True)
def offline(offline_hub):
    yield


# The sizes model cards and the transformers docs publish for the bare encoder (issue 14's targets).
@pytest.mark.parametrize(("name", "published"), [
    ("distilbert-base-uncased", 66e6),  # transformers docs, DistilBERT paper: 66M
    ("roberta-base", 125e6),
    ("roberta-large", 355e6),
    ("microsoft/deberta-v3-base", 184e6),  # model card: 86M backbone + 98M embeddings
    ("microsoft/deberta-v3-large", 435e6),  # model card: 304M + 131M
    ("xlm-roberta-base", 278e6),  # the Hub's figure; the paper says 270M and fairseq's README 250M (rounder still)
    ("xlm-roberta-large", 560e6),  # fairseq README
    ("bert-base-uncased", 110e6),
    ("sentence-transformers/all-MiniLM-L6-v2", 22.7e6),
])
def test_parameters_match_the_published_size(name, published):
    assert param_counts(M[name]).base == pytest.approx(published, rel=0.01)


def test_electra_base_is_110m_with_its_head():
    # ElectraModel has no pooler: 108.9M bare (-1.0%); with the classification head it trains, 109.5M (-0.5%).
    # The paper's "110M" means "the size of BERT-Base".
    assert param_count(M["google/electra-base-discriminator"]) == pytest.approx(110e6, rel=0.01)
    assert param_count(M["google/electra-base-discriminator"]) == param_count(M["bert-base-uncased"])


@pytest.mark.parametrize(("name", "exact"), [
    ("albert-base-v2", 11_683_584),  # keras-hub preset metadata; the paper's "12M" rounds it (-2.6%)
    ("sentence-transformers/all-MiniLM-L6-v2", 22_713_216),  # the float tensors in its model.safetensors
    ("bert-base-uncased", 109_482_240),
    ("distilbert-base-uncased", 66_362_880),
    ("roberta-base", 124_645_632),
])
def test_parameters_are_exact_where_an_exact_count_is_known(name, exact):
    assert param_counts(M[name]).base == exact


def test_albert_shares_its_layers_but_computes_all_twelve():
    albert, bert = M["albert-base-v2"], M["bert-base-uncased"]
    assert param_count(albert) < param_count(bert) / 9
    # The same 12 layers of work as BERT-base, plus the 128 -> 768 embedding projection.
    extra = forward_matmul_flops(albert, 32, 128) - forward_matmul_flops(bert, 32, 128)
    assert extra == 2 * 32 * 128 * 128 * 768


def test_distilbert_has_no_token_types_and_a_pre_classifier_instead_of_a_pooler():
    d = param_counts(M["distilbert-base-uncased"])
    h = 768
    assert d.embeddings == (30522 + 512) * h + 2 * h and d.pooler == 0
    assert d.classifier - d.base == h * h + h + 2 * h + 2


def test_deberta_pays_for_disentangled_attention():
    deberta, bert = M["microsoft/deberta-v3-base"], M["bert-base-uncased"]
    # Per layer: Q and K projections of 512 relative embeddings, and c2p + p2c scores against all 512 of them.
    per_layer = 2 * 2 * 512 * 768 * 768 + 2 * 2 * 32 * 128 * 512 * 768
    assert forward_matmul_flops(deberta, 32, 128) - forward_matmul_flops(bert, 32, 128) == 12 * per_layer


def test_xlm_r_embeddings_dominate_its_optimizer_state():
    xlmr = M["xlm-roberta-base"]
    counts = param_counts(xlmr)
    assert counts.embeddings / counts.base > 0.65
    # Same layers as RoBERTa-base, 2.2x the weights and Adam moments.
    assert footprint(xlmr, 32, 128, False).optimizer_bytes > 2.2 * footprint(M["roberta-base"], 32, 128, False).optimizer_bytes


@pytest.mark.parametrize("name", ["roberta-base", "roberta-large", "xlm-roberta-base", "xlm-roberta-large"])
def test_roberta_positions_mean_512_tokens(name):
    assert M[name].max_position_embeddings == 514 and M[name].max_tokens == 512
    assert build_workload(model=name, seq_len=512).seq_len == 512
    with pytest.raises(GpuplanError, match=r"\(512 tokens: 514 positions less the 2 .*use --seq-len 512 or less"):
        build_workload(model=name, seq_len=513)


def test_every_builtin_takes_512_tokens():
    # all-MiniLM-L6-v2 too: 512 positions; sentence-transformers' 256 is its own truncation, not the model's.
    assert {m.max_tokens for m in M.values()} == {512}


def test_distilbert_config_names(tmp_path):
    cfg = {"model_type": "distilbert", "vocab_size": 500, "dim": 64, "n_layers": 3, "n_heads": 4, "hidden_dim": 128,
           "max_position_embeddings": 128}
    arch = arch_from_config(cfg, "d", "file", None)
    assert (arch.hidden_size, arch.num_hidden_layers, arch.num_attention_heads, arch.intermediate_size,
            arch.type_vocab_size) == (64, 3, 4, 128, 0)


def test_deberta_and_albert_config_fields():
    deberta = M["microsoft/deberta-v3-base"]
    assert deberta.pos_att_type == ("p2c", "c2p") and deberta.rel_span == 256 and deberta.share_att_key
    assert not deberta.position_biased_input and deberta.type_vocab_size == 0
    assert M["albert-base-v2"].embedding_size == 128 and M["google/electra-base-discriminator"].embed_dim == 768
    # Fields of other types are ignored where they mean nothing (BERT has no embedding_size).
    bert = arch_from_config({"model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 16, "embedding_size": 4}, "b", "file", None)
    assert bert.embedding_size is None


@pytest.mark.parametrize("name", list(M))
def test_the_transformers_config_round_trips(name):
    from gpuplan.calibration.model import hf_config

    config = hf_config(M[name], 3)
    assert config.model_type == M[name].model_type and config.num_labels == 3
    # A config folder saved from it reads back as the same architecture: Hub ids and folders work as built-ins do.
    assert same_architecture(arch_from_config(config.to_dict(), name, "file", None), M[name])


def test_measurements_saved_before_other_types_still_load():
    old = {"name": "bert-base-uncased", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
           "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
           "type_vocab_size": 2, "num_labels": 2, "source": "builtin", "path": None}
    assert same_architecture(ModelArch.model_validate(old), M["bert-base-uncased"])


def test_a_model_folder_of_each_type(tmp_path):
    for name, arch in M.items():
        from gpuplan.calibration.model import hf_config

        folder = tmp_path / name.replace("/", "_")
        folder.mkdir()
        (folder / "config.json").write_text(hf_config(arch, 2).to_json_string())
        assert same_architecture(resolve_model(str(folder)), arch), name


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("name", list(M))
def test_estimate_each_builtin_name_offline(small_catalog, name):
    r = invoke("estimate", "--model", name, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)


def test_an_unsupported_model_type_is_one_line_naming_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 512, "num_layers": 6}))
    r = invoke("estimate", "--model", str(tmp_path))
    assert r.exit_code != 0
    assert r.stderr.count("\n") == 1
    assert "model_type 't5' is not a BERT-family encoder" in r.stderr
    assert f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}" in r.stderr


def test_seq_len_past_the_positions_is_one_line(small_catalog):
    r = invoke("estimate", "--model", "roberta-base", "--seq-len", "513")
    assert r.exit_code != 0 and r.stderr.count("\n") == 1
    assert "use --seq-len 512 or less" in r.stderr


def test_models_lists_every_builtin_in_each_format():
    table = invoke("models")
    assert table.exit_code == 0
    assert "xlm-roberta-base" in table.stdout and "278.0M" in table.stdout and "11.7M" in table.stdout
    rows = json.loads(invoke("models", "--format", "json").stdout)
    assert [r["model"] for r in rows] == list(M)
    albert = next(r for r in rows if r["model"] == "albert-base-v2")
    assert (albert["params"], albert["layers"], albert["stored_layers"], albert["hidden_size"],
            albert["max_tokens"]) == (11_683_584, 12, 1, 768, 512)
    csv = invoke("models", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("model,model_type,params,published_params") and len(csv) == len(M) + 1
