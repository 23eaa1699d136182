"""The workload: defaults, YAML file, flags over the file, model configs, and each bad input."""

from __future__ import annotations

import json

import pytest

from gpuplan.errors import GpuplanError
from gpuplan.workload import build_workload, resolve_model


def test_defaults():
    w = build_workload()
    assert (w.model, w.num_examples, w.epochs, w.batch_size, w.seq_len) == ("bert-base-uncased", 25000, 2, 32, 128)
    assert w.precisions == ["fp32", "mixed"]


def test_flags_override_the_file(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("model: bert-large-cased\nnum_examples: 1000\nbatch_size: 16\nprecision: fp32\n")
    w = build_workload(workload_file=f, batch_size=8)
    assert (w.model, w.num_examples, w.batch_size, w.precisions) == ("bert-large-cased", 1000, 8, ["fp32"])
    assert w.arch.vocab_size == 28996 and w.arch.num_hidden_layers == 24


def test_a_config_json_or_a_model_folder(tmp_path):
    cfg = {"model_type": "bert", "vocab_size": 1000, "hidden_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 2, "intermediate_size": 256, "max_position_embeddings": 64,
           "id2label": {"0": "neg", "1": "pos", "2": "neutral"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for ref in (str(tmp_path), str(tmp_path / "config.json")):
        arch = resolve_model(ref)
        assert (arch.hidden_size, arch.num_labels, arch.source) == (128, 3, "file")
    with pytest.raises(GpuplanError, match="longer than .* can take \\(64 positions\\)"):
        build_workload(model=str(tmp_path), seq_len=128)


@pytest.mark.parametrize(("kwargs", "file_text", "message"), [
    ({"batch_size": 0}, None, "batch-size must be greater than 0"),
    ({"num_examples": -5}, None, "num-examples must be greater than 0"),
    ({"epochs": 0}, None, "epochs must be greater than 0"),
    ({"precision": "fp16"}, None, "unknown precision 'fp16'; use fp32, mixed or both"),
    ({"seq_len": 513}, None, "use --seq-len 512 or less"),
    ({"model": "bert-base-uncase"}, None, "Did you mean: bert-base-uncased"),
    ({}, "batch_size: lots\n", "batch_size must be a int, got 'lots'"),
    ({}, "epochs: true\n", "epochs must be a number"),
    ({}, "batchsize: 8\n", "unknown field 'batchsize'. Did you mean: batch_size"),
    ({}, "- 1\n", "must be a mapping"),
    ({}, "model: [\n", "is not valid YAML"),
])
def test_bad_input_says_what_and_how_to_fix(tmp_path, kwargs, file_text, message):
    if file_text is not None:
        f = tmp_path / "w.yaml"
        f.write_text(file_text)
        kwargs = {**kwargs, "workload_file": f}
    with pytest.raises(GpuplanError, match=message):
        build_workload(**kwargs)


def test_model_folder_problems(tmp_path):
    with pytest.raises(GpuplanError, match="has no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(GpuplanError, match="is not valid JSON"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 768}))
    with pytest.raises(GpuplanError, match="not a BERT-family encoder"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 0}))
    with pytest.raises(GpuplanError, match="config field"):
        resolve_model(str(tmp_path))


def test_a_hub_id_offline_explains_the_workaround(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GpuplanError, match="not reachable to fetch config.json of 'someone/tiny-bert'.*pass its path"):
        resolve_model("someone/tiny-bert")
