"""The calibration's pure parts: reading datasets, labels, length statistics, device choices, the OOM search."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gpuplan.calibration.data import load_labeled_texts
from gpuplan.dataset import encode_labels
from gpuplan.calibration.device import choose_mixed_policy, cpu_info, gpu_key_for
from gpuplan.calibration.progress import ProgressBar
from gpuplan.measurement import DeviceInfo
from gpuplan.calibration.tokenize import mean_padded_len, pad_to, train_wordpiece
from gpuplan.stats import percentile
from gpuplan.calibration.train import largest_fitting_batch
from gpuplan.errors import GpuplanError

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    "values, classes, names",
    [
        (["neg", "pos", "pos"], [0, 1, 1], ["neg", "pos"]),
        (["1", "0", "2"], [1, 0, 2], ["0", "1", "2"]),
        ([1.0, 0.0, 1.0], [1, 0, 1], ["0", "1"]),  # whole floats are what pandas makes of ints
        ([True, False], [1, 0], ["0", "1"]),
        ([5, -1, 5], [1, 0, 1], ["-1", "5"]),
    ],
)
def test_labels_that_are_classes(values, classes, names):
    assert encode_labels(values, "data", "label") == (classes, names)


@pytest.mark.parametrize(
    "values, match",
    [
        ([0.5, 1.0, 0.2], "fractional numbers such as 0.5"),
        (["0.25", "1"], "fractional numbers"),
        ([1, None], "example 2 has no 'label'"),
        ([1, ""], "example 2 has no 'label'"),
        (["pos", "pos"], "one class only"),
        ([[0, 1], [1]], "single-label"),
    ],
)
def test_labels_that_are_not_classes(values, match):
    with pytest.raises(GpuplanError, match=match):
        encode_labels(values, "data", "label")


def test_csv_with_named_columns():
    data = load_labeled_texts(DATA / "reviews.csv", "review", "sentiment")
    assert len(data.texts) == 96 and data.class_names == ["neg", "pos"]
    assert data.labels[:2] == [0, 1] and data.texts[0].startswith("really plot terrible")


def test_json_lines():
    data = load_labeled_texts(DATA / "reviews.jsonl")
    assert len(data.texts) == 32 and data.num_classes == 2


def test_json_array_and_tsv(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps([{"text": "a b", "label": "x"}, {"text": "c", "label": "y"}]))
    (tmp_path / "d.tsv").write_text("text\tlabel\nhello, world\t1\nbye\t0\n")
    assert load_labeled_texts(tmp_path / "d.json").class_names == ["x", "y"]
    assert load_labeled_texts(tmp_path / "d.tsv").texts == ["hello, world", "bye"]


def test_saved_dataset_folder_with_class_labels(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    ds = datasets.Dataset.from_dict({"text": ["bad", "good", "fine"], "label": [0, 1, 1]}, features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    data = load_labeled_texts(tmp_path / "saved")
    assert data.class_names == ["neg", "pos"] and data.labels == [0, 1, 1]


@pytest.mark.parametrize(
    "content, name, kwargs, match",
    [
        (None, "nope.csv", {}, "does not exist"),
        ("", "empty.csv", {}, "is empty"),
        ("text,label\n", "header_only.csv", {}, "has no rows"),
        ("txt,label\nhi,1\nho,0\n", "cols.csv", {}, r"no column 'text'\. Did you mean: txt\?"),
        ("text,labels\nhi,1\nho,0\n", "cols.csv", {}, "no column 'label'.*--label-column"),
        ('{"text": "a", "label": 1}\nnot json\n', "bad.jsonl", {}, "not valid JSON Lines"),
        ("[1, 2]", "list.json", {}, "must be a JSON object"),
    ],
)
def test_bad_dataset_files(tmp_path, content, name, kwargs, match):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(GpuplanError, match=match):
        load_labeled_texts(tmp_path / name, **kwargs)


def test_hub_dataset_name_offline_says_what_to_do():
    with pytest.raises(GpuplanError, match="can't be reached.*CSV or JSON Lines"):
        load_labeled_texts("imdb", online=False)


def test_folder_not_saved_by_datasets(tmp_path):
    with pytest.raises(GpuplanError, match="not saved by `datasets`"):
        load_labeled_texts(tmp_path)


def test_percentile_matches_numpy_default():
    import numpy as np

    values = [3, 1, 4, 1, 5, 9, 2, 6]
    for q in (0, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_dynamic_padding_is_mean_of_batch_maxima():
    assert mean_padded_len([10] * 8, batch_size=4, seq_len=128) == 10
    # One long text per batch of two pads both to it; seq_len caps it.
    assert mean_padded_len([5, 300, 5, 300], batch_size=4, seq_len=128) == 128
    assert mean_padded_len([5, 20, 5, 20, 5, 20], batch_size=1, seq_len=128) == pytest.approx(12.5)


def test_pad_to_truncates_keeping_the_last_token():
    ids, mask = pad_to([[2, 7, 8, 3], [2, 5, 6, 7, 8, 9, 3]], seq_len=5, pad_id=0)
    assert ids.tolist() == [[2, 7, 8, 3, 0], [2, 5, 6, 7, 3]]
    assert mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


def test_wordpiece_trained_on_the_data_adds_cls_and_sep():
    tok = train_wordpiece(["good film", "bad film", "good plot"] * 5, vocab_size=1000)
    enc = tok.encode("good film")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]" and tok.get_vocab_size() <= 1000


@pytest.mark.parametrize(
    "name, key",
    [
        ("Tesla T4", "t4"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("Tesla V100-SXM2-32GB", "v100-32gb"),
        ("NVIDIA A100-SXM4-40GB", "a100"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_gpu_names_map_to_catalog_keys(name, key):
    assert gpu_key_for(name) == key


@pytest.mark.parametrize(
    "device, flags, policy, skipped, note",
    [
        (DeviceInfo(kind="gpu", name="NVIDIA A10G", compute_capability=8.6), None, "mixed_bfloat16", None, None),
        (DeviceInfo(kind="gpu", name="Tesla T4", compute_capability=7.5), None, "mixed_float16", None, None),
        (DeviceInfo(kind="gpu", name="Tesla P100", compute_capability=6.0), None, None, "no Tensor Cores", None),
        (DeviceInfo(kind="cpu", name="x"), {"avx512f", "avx512_bf16"}, "mixed_bfloat16", None, "AVX512_BF16"),
        (DeviceInfo(kind="cpu", name="x"), {"avx2", "fma"}, "mixed_bfloat16", None, "emulates"),
    ],
)
def test_mixed_policy_follows_the_hardware(device, flags, policy, skipped, note):
    choice = choose_mixed_policy(device, cpu_flags=flags)
    assert choice.policy == policy
    assert (skipped or "") in (choice.skipped_reason or "")
    assert (note or "") in (choice.note or "")


def test_cpu_info_parses_name_and_flags():
    name, flags = cpu_info("processor : 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu avx512_bf16 amx_bf16\n")
    assert name == "Intel(R) Xeon(R)" and {"avx512_bf16", "amx_bf16"} <= flags
    assert cpu_info("") == ("CPU", set())


@pytest.mark.parametrize("limit, requested", [(11, 32), (32, 64), (1, 16), (100, 128), (0, 8)])
def test_oom_search_finds_the_largest_batch_within_an_eighth(limit, requested):
    probes: list[int] = []

    def fits(b: int) -> bool:
        probes.append(b)
        return b <= limit

    found = largest_fitting_batch(fits, requested)
    if limit == 0:
        assert found is None
    else:
        assert found <= limit and found >= limit - max(1, limit // 8)
    assert len(probes) <= 8  # each probe is a model build and a trace


def test_progress_bar_without_a_terminal_prints_tenths():
    buf = io.StringIO()
    bar = ProgressBar(buf)
    bar.start("fp32 (float32)", 20)
    for i in range(1, 21):
        bar.step(i, 9.0 if i == 1 else 0.5)
    bar.finish()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "fp32 (float32): 20 steps (the first traces the graph)"
    assert "first step (trace) 9.0s" in lines[1]
    assert lines[-1].endswith("20/20  0.50 s/step  ~0s left") and len(lines) <= 12
