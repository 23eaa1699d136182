"""`gpuplan estimate` and `gpuplan gpus` as a user runs them: flags, formats, files, errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gpuplan.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def run_json(*args):
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_estimate_v100_ranks_fp32_and_mixed_with_a_recommendation():
    result = run("estimate", "--gpu", "v100")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "p3.2xlarge" in out and "p3.16xlarge" in out and "g5.xlarge" not in out
    assert "v100 x8" in out and "mixed" in out and "fp32" in out
    assert "Mixed precision on p3.2xlarge (v100, on-demand): training" in out
    assert "Recommendation (cheapest): p3.2xlarge in us-east-1, mixed" in " ".join(out.split())
    assert "cheaper than p3.2xlarge fp32 on-demand, the cheapest single-GPU instance" in " ".join(out.split())


def test_json_is_the_documented_contract():
    data = run_json("estimate", "--gpu", "a10g", "--spot")
    assert set(data) == {"schema_version", "workload", "plans", "recommendation", "notes"}
    assert data["schema_version"] == 1
    required = {"instance", "gpu", "gpu_count", "precision", "dtype", "samples_per_second",
                "samples_per_second_per_gpu", "hours", "cost_usd", "price_per_hour", "market", "fits_memory", "source"}
    for plan in data["plans"]:
        assert required <= set(plan)
        assert plan["precision"] in ("fp32", "mixed") and plan["market"] in ("on-demand", "spot")
        assert plan["source"] == "model" and plan["gpu"] == "a10g"
    assert {p["market"] for p in data["plans"]} == {"on-demand", "spot"}
    assert data["workload"]["model"] == "bert-base-uncased"
    assert data["recommendation"]["instance"] in {p["instance"] for p in data["plans"]}


def test_csv_has_a_header_and_one_row_per_plan():
    result = run("estimate", "--instance", "g4dn.xlarge", "--instance", "p3.2xlarge", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4
    assert {r["instance"] for r in rows} == {"g4dn.xlarge", "p3.2xlarge"}
    assert all(float(r["cost_usd"]) > 0 for r in rows)


def test_without_flags_every_instance_is_considered(small_catalog):
    data = run_json("estimate")
    assert len({p["instance"] for p in data["plans"]}) == len(small_catalog.offers) == 3


def test_the_estimate_table_exactly(small_catalog, golden):
    result = run("estimate", "--spot")
    assert result.exit_code == 0, result.output
    golden("estimate_table.txt", result.stdout)
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    wide = run("estimate", "--spot", "--wide")
    golden("estimate_table_wide.txt", wide.stdout)
    assert max(len(line) for line in wide.stdout.splitlines()) > 100  # every column: the point of --wide
    golden("estimate_v100_csv.csv", run("estimate", "--gpu", "v100", "--format", "csv").stdout)


def test_the_default_table_is_the_front_and_ten_cheapest_others_and_all_shows_every_plan():
    data = run_json("estimate", "--spot")
    table = run("estimate", "--spot").stdout.splitlines()
    rows = table[2:table.index("")]
    more = rows.pop()
    base = data["recommendation"]["baseline"]
    others = [p for p in data["plans"] if not p["pareto"]]
    expected = [p for p in data["plans"] if p["pareto"] or p in others[:10]
                or (p["instance"], p["precision"], p["market"]) == (base["instance"], "fp32", "on-demand")]
    assert len(others) > 10
    assert [r.split()[0] for r in rows] == [p["instance"] for p in expected]  # in the plans' order, cheapest first
    assert more == f"... {len(data['plans']) - len(expected)} more plans (--all)"
    assert max(len(line) for line in table) <= 100
    every = run("estimate", "--spot", "--all").stdout.splitlines()
    assert len(every[2:every.index("")]) == len(data["plans"]) and not any("more plans" in s for s in every)


def test_csv_has_every_plan_field_of_the_json_with_the_same_names():
    data = run_json("estimate", "--gpu", "t4", "--spot")
    rows = list(csv.DictReader(io.StringIO(run("estimate", "--gpu", "t4", "--spot", "--format", "csv").stdout)))
    assert list(rows[0]) == list(data["plans"][0])
    for row, plan in zip(rows, data["plans"]):
        assert row["instance"] == plan["instance"] and float(row["train_seconds"]) == plan["train_seconds"]
        assert row["fits_memory"] == ("true" if plan["fits_memory"] else "false")
        assert json.loads(row["notes"]) == plan["notes"]  # lists travel as JSON in one cell


def test_baseline_is_checked_and_its_plans_are_added_when_absent(small_catalog):
    data = run_json("estimate", "--gpu", "t4", "--baseline", "v100")
    assert {p["instance"] for p in data["plans"]} == {"g4dn.xlarge", "p3.2xlarge"}
    base = data["recommendation"]["baseline"]
    assert (base["instance"], base["precision"], base["market"]) == ("p3.2xlarge", "fp32", "on-demand")
    table = run("estimate", "--gpu", "t4", "--baseline", "v100")
    assert "note: --baseline v100: added p3.2xlarge's plans to compare with" in table.stderr
    assert "than p3.2xlarge fp32 on-demand, the cheapest v100 instance, your --baseline" in " ".join(table.stdout.split())
    default = run_json("estimate")["recommendation"]["baseline"]
    assert (default["instance"], default["why"]) == ("g4dn.xlarge", "the cheapest single-GPU instance")


@pytest.mark.parametrize(("args", "message"), [
    (["--baseline", "t5"], "Error: --baseline t5: unknown GPU 't5'. Did you mean: t4"),
    (["--baseline", "v100-32gb"], "Error: --baseline v100-32gb: no instance in the catalog carries a v100-32gb"),
    (["--baseline", "local"], "Error: --baseline local compares with this machine: add --gpu local"),
    (["--baseline", "v100", "--precision", "mixed"], "Error: --baseline v100 compares with fp32"),
])
def test_baseline_errors_are_one_line(small_catalog, args, message):
    result = run("estimate", *args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith(message), result.stderr


@pytest.mark.parametrize(("name", "args"), [
    ("unknown_gpu", ["--gpu", "v10"]),
    ("unknown_instance", ["--instance", "g5.xlarg"]),
    ("seq_len_too_long", ["--seq-len", "1024"]),
    ("bad_format", ["--format", "xml"]),
    ("local_without_measurement", ["--gpu", "local"]),
])
def test_the_main_errors_exactly(small_catalog, golden, name, args):
    result = run("estimate", *args)
    assert result.exit_code != 0 and result.stdout == ""
    golden(f"error_{name}.txt", result.stderr.splitlines()[-1] + "\n")


def test_workload_flags_change_the_answer():
    base = run_json("estimate", "--gpu", "t4", "--precision", "fp32")
    bigger = run_json("estimate", "--gpu", "t4", "--precision", "fp32", "--num-examples", "50000")
    longer = run_json("estimate", "--gpu", "t4", "--precision", "fp32", "--seq-len", "256", "--batch-size", "16")
    large = run_json("estimate", "--gpu", "t4", "--precision", "fp32", "--model", "bert-large-uncased",
                     "--epochs", "1", "--batch-size", "8")
    key = lambda d: {p["instance"]: p for p in d["plans"]}["g4dn.xlarge"]  # noqa: E731
    assert all(p["precision"] == "fp32" for p in base["plans"])
    assert key(bigger)["hours"] > key(base)["hours"]
    assert key(longer)["samples_per_second"] < key(base)["samples_per_second"]
    assert key(large)["samples_per_second"] < key(base)["samples_per_second"] / 2


def test_workload_file_with_a_flag_override(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("model: bert-base-cased\nnum_examples: 5000\nepochs: 1\nprecision: mixed\n")
    data = run_json("estimate", "--gpu", "l4", "--workload", str(f), "--batch-size", "16")
    assert data["workload"]["model"] == "bert-base-cased"
    assert data["workload"]["batch_size"] == 16 and data["workload"]["num_examples"] == 5000
    assert {p["precision"] for p in data["plans"]} == {"mixed"}


def test_catalog_file_sets_a_private_price(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("offers:\n  - {instance_type: g6.xlarge, on_demand_usd_per_hour: 0.01}\n")
    data = run_json("estimate", "--gpu", "l4", "--catalog", str(f))
    g6 = [p for p in data["plans"] if p["instance"] == "g6.xlarge"]
    assert {p["price_per_hour"] for p in g6} == {0.01}
    assert data["recommendation"]["instance"] == "g6.xlarge"


def test_deadline_budget_sort_baseline():
    fast = run_json("estimate", "--deadline", "0.1")
    assert fast["recommendation"]["hours"] <= 0.1
    assert "within 0.1 h" in fast["recommendation"]["reason"]
    cheap = run_json("estimate", "--budget", "0.5")
    assert cheap["recommendation"]["cost_usd"] <= 0.5
    by_time = run_json("estimate", "--gpu", "a100", "--gpu", "t4", "--sort", "time")
    hours = [p["hours"] for p in by_time["plans"] if p["fits_memory"]]
    assert hours == sorted(hours)
    base = run_json("estimate", "--gpu", "v100", "--gpu", "a10g", "--baseline", "v100")
    assert base["recommendation"]["baseline"]["instance"].startswith("p3")


def test_region_without_prices_is_an_error():
    result = run("estimate", "--region", "eu-west-9")
    assert result.exit_code == 1
    assert "no prices for region eu-west-9: run `gpuplan prices refresh --region eu-west-9`" in result.output


def test_plot_writes_a_png_with_the_deadline_and_the_budget(tmp_path, monkeypatch):
    import gpuplan.plot

    drawn = {}
    real = gpuplan.plot.plot_estimate
    monkeypatch.setattr(gpuplan.plot, "plot_estimate", lambda est, path, **kw: drawn.update(kw) or real(est, path, **kw))
    out = tmp_path / "plans.png"
    result = run("estimate", "--gpu", "t4", "--gpu", "a10g", "--spot", "--deadline", "0.25", "--budget", "0.15",
                 "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert drawn == {"deadline_hours": 0.25, "budget_usd": 0.15}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize(("seconds", "unit"), [([300, 3000], "minutes"), ([300, 7200], "hours")])
def test_the_plot_counts_in_minutes_or_hours_as_fits(seconds, unit):
    from gpuplan.plot import time_unit, wide

    assert time_unit(seconds)[0] == unit
    assert wide([300, 18000]) and not wide([300, 600])


def test_data_goes_to_stdout_and_notes_to_stderr():
    result = run("estimate", "--model", "bert-large-uncased", "--batch-size", "64", "--gpu", "t4", "--format", "json")
    data = json.loads(result.stdout)  # nothing but JSON on stdout
    assert data["recommendation"] is None
    assert not any(p["fits_memory"] for p in data["plans"])
    assert "no plan fits in GPU memory" in result.stderr
    table = run("estimate", "--model", "bert-large-uncased", "--batch-size", "64", "--gpu", "t4")
    assert "No recommendation: no plan fits in GPU memory" in table.stdout
    assert "batch 64 needs" in table.stderr and "GiB" in table.stderr and "--batch-size" in table.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--gpu", "v10"], "unknown GPU 'v10'. Did you mean: v100"),
    (["--instance", "p3.2xlarg"], "unknown instance type 'p3.2xlarg'. Did you mean: p3.2xlarge"),
    (["--batch-size", "0"], "batch-size must be greater than 0"),
    (["--num-examples", "-1"], "num-examples must be greater than 0"),
    (["--epochs", "0"], "epochs must be greater than 0"),
    (["--seq-len", "1024"], "seq-len 1024 is longer than bert-base-uncased can take (512 positions)"),
    (["--precision", "half"], "unknown precision 'half'"),
    (["--batch-size", "many"], "Invalid value for '--batch-size'"),
    (["--workload", "/nonexistent.yaml"], "workload file /nonexistent.yaml does not exist"),
    (["--model", "/nonexistent/config.json"], "unknown model '/nonexistent/config.json'"),
    (["--catalog", "/nonexistent.yaml"], "catalog file /nonexistent.yaml does not exist"),
    (["--format", "xml"], "unknown format 'xml'"),
    (["--sort", "speed"], "unknown sort 'speed'"),
    (["--deadline", "-2"], "--deadline must be a positive"),
    (["--budget", "0"], "--budget must be a positive"),
    (["--gpu", "local"], "--gpu local needs a measurement of this machine"),
    (["--calibration", "/nonexistent.json"], "calibration file /nonexistent.json does not exist"),
    (["--plot", "chart.svg"], "--plot writes a PNG"),
    (["--frobnicate"], "No such option: --frobnicate"),
])
def test_bad_input_is_one_error_line_without_traceback(args, message):
    result = run("estimate", *args)
    assert result.exit_code != 0
    assert message in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], result.output
    assert result.stdout == "" and "Traceback" not in result.output


@pytest.mark.parametrize(("text", "message"), [
    ("batch_size: lots\n", "batch_size must be a int"),
    ("{{{\n", "is not valid YAML"),
    ("precision: fp16\n", "unknown precision 'fp16'"),
])
def test_bad_workload_file(tmp_path, text, message):
    f = tmp_path / "w.yaml"
    f.write_text(text)
    result = run("estimate", "--workload", str(f))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_bad_catalog_file_names_the_field(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("offers:\n  - {instance_type: p3.2xlarge, vcpus: eight}\n")
    result = run("estimate", "--catalog", str(f))
    assert result.exit_code == 1
    assert "offers[0] (p3.2xlarge).vcpus: Input should be a valid integer" in result.output


def test_calibration_file_that_is_not_one(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"hello": 1}')
    result = run("estimate", "--calibration", str(f))
    assert result.exit_code == 1 and "is not a gpuplan calibration result" in result.output


def test_gpus_lists_every_gpu_with_its_instances(small_catalog, golden):
    result = run("gpus")
    assert result.exit_code == 0
    for key in ("t4", "v100", "a10g", "l4", "l40s", "a100", "h100", "h200"):
        assert key in result.stdout
    golden("gpus_table.txt", result.stdout)
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    wide = run("gpus", "--wide")
    golden("gpus_table_wide.txt", wide.stdout)
    assert "NVIDIA A10G" in wide.stdout and "vCPUs" in wide.stdout
    one = json.loads(run("gpus", "--gpu", "a10g", "--format", "json").stdout)
    assert {r["instance"] for r in one} == {"g5.xlarge"}
    assert all(r["gpu"] == "a10g" and r["mixed"] == "bfloat16" for r in one)
    rows = list(csv.DictReader(io.StringIO(run("gpus", "--format", "csv").stdout)))
    with_instance = [r for r in rows if r["instance"]]
    assert len(with_instance) == len(small_catalog.offers) == 3  # one row per offer, and one per GPU without one
    assert len(rows) == 3 + len({g.key for g in small_catalog.gpus} - {o.gpu for o in small_catalog.offers})
    bad = run("gpus", "--gpu", "x100")
    assert bad.exit_code == 1 and "Did you mean" in bad.output


def test_estimate_answers_without_importing_tensorflow():
    code = ("import sys; from gpuplan.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['estimate', '--gpu', 'v100']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'transformers', 'boto3', "
            "'tf_keras', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_console_script_and_module_entry_points():
    out = subprocess.run([sys.executable, "-m", "gpuplan", "estimate", "--gpu", "h100", "--format", "json"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert json.loads(out.stdout)["plans"][0]["gpu"] == "h100"
    bad = subprocess.run([sys.executable, "-m", "gpuplan", "estimate", "--gpu", "nope"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.splitlines()[-1].startswith("Error: unknown GPU") and "Traceback" not in bad.stderr


def _write_calibration(path, kind="cpu", gpu_key=None, batch=32, seq=128, model="bert-base-uncased"):
    import datetime as dt

    from gpuplan.measurement import CalibrationResult, DeviceInfo, RunResult
    from gpuplan.workload import DatasetStats, build_workload

    wl = build_workload(model=model, batch_size=batch, seq_len=seq)
    runs = [RunResult(precision=p, dtype=d, steps=5, batch_size=batch, seq_len=seq, warmup_seconds=12.0,
                      step_seconds=s, samples_per_second=batch / s, train_seconds=12.0 + 4 * s)
            for p, d, s in (("fp32", "float32", 9.0), ("mixed", "mixed_bfloat16", 6.0))]
    stats = DatasetStats(num_examples=600, num_labels=2, token_len_p50=30, token_len_p90=80, token_len_max=200,
                         truncated_share=0.02, mean_padded_len=70, tokenize_examples_per_second=3000)
    CalibrationResult(created_at=dt.datetime(2026, 11, 24), gpuplan_version="0.1.0",
                      device=DeviceInfo(kind=kind, name="Test CPU" if kind == "cpu" else "NVIDIA A10G",
                                        gpu_key=gpu_key, host_cpus=2),
                      workload=wl, dataset=stats, runs=runs).save(path)
    return path


def test_local_plan_from_a_calibration_file(tmp_path):
    cal = _write_calibration(tmp_path / "cal.json")
    data = run_json("estimate", "--gpu", "local", "--calibration", str(cal), "--num-examples", "3200",
                    "--epochs", "1", "--local-price", "0.05")
    local = {p["precision"]: p for p in data["plans"] if p["instance"] == "local"}
    assert local["fp32"]["source"] == "measured"
    assert local["fp32"]["hours"] * 3600 == pytest.approx(12 + 100 * 9.0)
    assert local["mixed"]["cost_usd"] == pytest.approx((12 + 100 * 6.0) / 3600 * 0.05)
    from pricing.catalog import bundled_catalog

    every = {o.instance_type for o in bundled_catalog().offers if o.on_demand_usd_per_hour}  # p5e: spot only
    assert {p["instance"] for p in data["plans"]} == every | {"local"}  # this machine beside every catalog instance
    assert data["workload"]["dataset"]["num_examples"] == 600


def test_a_gpu_calibration_file_makes_its_gpu_measured(tmp_path):
    cal = _write_calibration(tmp_path / "cal.json", kind="gpu", gpu_key="a10g", batch=32)
    data = run_json("estimate", "--gpu", "a10g", "--gpu", "l4", "--calibration", str(cal))
    by = {(p["instance"], p["precision"]): p for p in data["plans"]}
    assert by[("g5.xlarge", "fp32")]["source"] == "measured"
    assert by[("g5.xlarge", "fp32")]["step_seconds"] == pytest.approx(9.0)
    assert by[("g6.xlarge", "fp32")]["source"] == "model" and by[("g6.xlarge", "fp32")]["correction"] > 1
    assert any("model corrected by calibration" in n for n in data["notes"])


def test_a_calibration_of_another_model_is_refused(tmp_path):
    cal = _write_calibration(tmp_path / "cal.json", model="bert-large-uncased")
    result = run("estimate", "--calibration", str(cal))
    assert result.exit_code == 1
    assert "measured bert-large-uncased, not bert-base-uncased" in result.output


def test_dataset_needs_calibrate():
    result = run("estimate", "--dataset", "x.csv")
    assert result.exit_code == 1 and "--dataset is read by the calibration: add --calibrate" in result.output


@pytest.mark.parametrize("command", [[], ["estimate"], ["gpus"], ["calibrate"], ["launch"], ["instances"],
                                     ["instances", "terminate"], ["prices"], ["prices", "refresh"], ["prices", "show"]])
def test_every_help_shows_real_examples_and_no_description_is_cut(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    examples = result.stdout.split("Examples:\n")[1].splitlines()
    assert 2 <= len([e for e in examples if e.strip().startswith("gpuplan ")]) <= 3
    listing = result.stdout.split("Commands:\n")[1].split("\n\n")[0] if "Commands:" in result.stdout else ""
    assert "..." not in listing, listing
