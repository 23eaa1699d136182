"""Calibration files with impossible content are refused by the schema, once for every reader; any result the
schema accepts plans to finite, non-negative times and costs."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gpuplan.cli import app
from gpuplan.errors import GpuplanError
from gpuplan.measurement import RESULT_SCHEMA_VERSION, CalibrationResult, DeviceInfo, RunResult, load_result
from gpuplan.plan import LocalMachine, make_estimate
from gpuplan.workload import build_workload

runner = CliRunner()
WORKLOAD = build_workload(num_examples=1000, epochs=1, batch_size=8, seq_len=64)


def _doc(**run_fields) -> dict:
    run = {"precision": "fp32", "dtype": "float32", "batch_size": 8, "seq_len": 64, "steps": 3, "warmup_steps": 1,
           "warmup_seconds": 2.0, "step_seconds": 0.5, **run_fields}
    return {"schema_version": RESULT_SCHEMA_VERSION, "created_at": "2026-11-25T12:00:00Z", "gpuplan_version": "0",
            "device": {"kind": "cpu", "name": "CPU", "count": 1, "host_cpus": 2},
            "workload": json.loads(WORKLOAD.model_dump_json()), "runs": [run]}


@pytest.mark.parametrize(("change", "says"), [
    ({"step_seconds": 0}, "step_seconds"),
    ({"step_seconds": -1.0}, "step_seconds"),
    ({"step_seconds": "NaN"}, "step_seconds"),
    ({"step_seconds": "Infinity"}, "step_seconds"),
    ({"step_seconds": 1e-300}, "step_seconds"),
    ({"step_seconds": 1e300}, "step_seconds"),
    ({"warmup_seconds": -3.0}, "warmup_seconds"),
    ({"peak_memory_bytes": -1}, "peak_memory_bytes"),
    ({"batch_size": 0}, "batch_size"),
    ({"gpu_count": 2}, "device has 1"),
    ({"dtype": "mixed_float16", "precision": "mixed"}, "GPU-only"),
])
def test_impossible_runs_are_refused_with_the_field_named(tmp_path, change, says):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(_doc(**change)))
    with pytest.raises(GpuplanError, match="is not a gpuplan calibration result") as err:
        load_result(path)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_no_runs_a_future_schema_and_all_skipped_are_refused(tmp_path):
    path = tmp_path / "cal.json"
    doc = _doc()
    doc["runs"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(GpuplanError, match="runs"):
        load_result(path)
    path.write_text(json.dumps({**_doc(), "schema_version": RESULT_SCHEMA_VERSION + 1}))
    with pytest.raises(GpuplanError, match="newer gpuplan"):
        load_result(path)
    path.write_text(json.dumps(_doc(step_seconds=None, skipped_reason="out of memory at batch 8 per device")))
    with pytest.raises(GpuplanError, match="no measured run .out of memory"):
        load_result(path)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00binary", "caf\xe9".encode("latin-1"), b"", b"[1, 2]"])
def test_files_that_are_not_results_are_refused(tmp_path, content):
    path = tmp_path / "cal.json"
    path.write_bytes(content)
    with pytest.raises(GpuplanError, match="is not a gpuplan calibration result"):
        load_result(path)


def test_a_folder_or_a_huge_file_is_refused_without_reading_it(tmp_path):
    with pytest.raises(GpuplanError, match="is a folder"):
        load_result(tmp_path)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(64 * 2**20)  # sparse: 64 MiB on paper, nothing on disk
    with pytest.raises(GpuplanError, match="64 MiB"):
        load_result(huge)


def test_a_diverged_loss_is_kept_as_unknown_not_lost():
    run = RunResult(precision="fp32", dtype="float32", batch_size=8, seq_len=64, step_seconds=0.5,
                    loss_first=float("nan"), loss_last=float("inf"))
    assert run.loss_first is None and run.loss_last is None and run.measured


def test_the_cli_says_it_in_one_line(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(_doc(step_seconds=-2)))
    result = runner.invoke(app, ["estimate", "--calibration", str(path), "--gpu", "local"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "step_seconds" in errors[0]


finite = st.floats(allow_nan=True, allow_infinity=True, min_value=None, max_value=None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step=finite, warmup=finite, mean=finite | st.none(), warmup_steps=st.integers(-3, 50),
       price=st.floats(min_value=0, max_value=1e4, allow_nan=False))
def test_any_accepted_result_plans_to_finite_non_negative_time_and_cost(step, warmup, mean, warmup_steps, price):
    try:
        run = RunResult(precision="fp32", dtype="float32", batch_size=8, seq_len=64, steps=3,
                        warmup_steps=warmup_steps, warmup_seconds=warmup, step_seconds=step, step_seconds_mean=mean)
        cal = CalibrationResult(created_at=dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc), gpuplan_version="0",
                                device=DeviceInfo(kind="cpu", name="CPU"), workload=WORKLOAD, runs=[run])
    except ValueError:
        return  # refused: nothing to plan
    est = make_estimate(WORKLOAD, [], _empty_catalog(), calibrations=[cal], local=LocalMachine(price_per_hour=price))
    for p in est.plans:
        for v in (p.total_seconds, p.train_seconds, p.cost_usd, p.step_seconds, p.samples_per_second):
            assert math.isfinite(v) and v >= 0


def _empty_catalog():
    from pricing.models import Catalog

    return Catalog(gpus=[], offers=[])


def test_an_unwritable_output_is_refused_before_any_step(tmp_path):
    result = runner.invoke(app, ["calibrate", "--output", str(tmp_path / "missing" / "cal.json")])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["calibrate", "--output", str(tmp_path)])
    assert result.exit_code == 1 and "is a folder" in result.output


def test_a_finished_measurement_is_saved_elsewhere_when_its_file_cannot_be_written(tmp_path, monkeypatch):
    from gpuplan.measurement import save_somewhere

    monkeypatch.chdir(tmp_path)
    cal = CalibrationResult.model_validate(_doc())
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")  # e.g. replaced during the run
    target = blocker / "cal.json"
    saved, notes = save_somewhere(cal, target)
    assert saved is not None and saved.exists() and saved.resolve().parent == tmp_path.resolve()
    assert load_result(saved).runs[0].step_seconds == 0.5
    assert any(f"could not write {target}" in n for n in notes)
    assert any(f"--calibration {saved}" in n for n in notes)


@pytest.mark.parametrize("args", [
    ["--epochs", "nan"], ["--epochs", "inf"], ["--epochs", "-1"], ["--epochs", "1e9"],
    ["--deadline", "nan"], ["--deadline", "0"], ["--budget", "inf"], ["--budget", "-5"],
    ["--local-price", "-inf", "--gpu", "local"], ["--num-examples", "1000000000000000"],
    ["--batch-size", "0"], ["--batch-size", "100000000"], ["--stack", "nope"],
])
def test_non_finite_and_absurd_flags_are_one_line_errors(small_catalog, args):
    result = runner.invoke(app, ["estimate", *args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_non_finite_numbers_in_a_workload_file_are_refused(small_catalog, tmp_path, value):
    wl = tmp_path / "w.yaml"
    wl.write_text(f"epochs: {value}\n")
    result = runner.invoke(app, ["estimate", "--workload", str(wl)])
    assert result.exit_code == 1 and "Error: epochs must be" in result.output


def test_a_plausible_but_absurd_workload_warns_and_prints_finite_numbers(small_catalog):
    result = runner.invoke(app, ["estimate", "--epochs", "9000", "--num-examples", "90000000000", "--format", "json"])
    assert result.exit_code == 0
    assert "years" in result.stderr and "check the number of examples" in result.stderr
    data = json.loads(result.stdout)
    assert all(math.isfinite(p["total_seconds"]) and math.isfinite(p["cost_usd"]) for p in data["plans"])


def test_hostile_dataset_files_are_refused_early(tmp_path):
    from gpuplan import dataset

    binary = tmp_path / "d.csv"
    binary.write_bytes(b"text,label\x00\x01\x02")
    with pytest.raises(GpuplanError, match="is binary"):
        dataset.load_labeled_file(binary)
    latin = tmp_path / "l.csv"
    latin.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(GpuplanError, match="not UTF-8"):
        dataset.load_labeled_file(latin)
    with pytest.raises(GpuplanError, match="is a folder"):
        dataset.load_labeled_file(tmp_path)
    # A misspelt column is refused from the header, before the rows are read: the broken byte far down the file
    # would say "not UTF-8" if they were.
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.write(b"review,sentiment\n" + b"a fine film,1\n" * 50_000 + b"caf\xe9,0\n")
    with pytest.raises(GpuplanError, match="no column 'text'.*--text-column"):
        dataset.load_labeled_file(big)
    with pytest.raises(GpuplanError, match="not UTF-8 text past its beginning"):
        dataset.load_labeled_file(big, "review", "sentiment")


def test_a_big_dataset_is_counted_whole_and_sampled(tmp_path):
    from gpuplan import dataset

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"text {i}", "label": i % 3}) + "\n" for i in range(5000)))
    data = dataset.load_labeled_file(path, max_rows=1000)
    assert data.total_examples == 5000 and len(data.texts) == 1000
    assert data.class_names == ["0", "1", "2"]
    assert dataset.load_labeled_file(path, max_rows=1000).texts == data.texts  # seeded: the same sample every time
