"""`--stack` on the command line: the stock stack by default, XLA and NVIDIA's tuned code on request."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gpuplan.cli import app
from gpuplan.startup_cache import record_phases

runner = CliRunner()


def _plans(*args: str) -> dict:
    result = runner.invoke(app, ["estimate", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _mixed_speedup(data: dict, instance: str) -> float:
    by = {p["precision"]: p for p in data["plans"] if p["instance"] == instance}
    return by["fp32"]["train_seconds"] / by["mixed"]["train_seconds"]


def test_the_default_stack_is_stock_keras_and_every_plan_says_so(small_catalog):
    data = _plans("--gpu", "t4")
    assert data["workload"]["stack"] == "keras"
    assert {p["stack"] for p in data["plans"]} == {"keras"}
    # The stock stack's mixed precision buys far less than NVIDIA's tuned code: the headline answer.
    assert 1.1 < _mixed_speedup(data, "g4dn.xlarge") < 2.0


@pytest.mark.parametrize("stack", ["keras", "keras-xla", "tuned"])
def test_each_stack_prices_every_plan(small_catalog, stack):
    data = _plans("--stack", stack)
    assert data["plans"] and {p["stack"] for p in data["plans"]} == {stack}
    assert all(p["total_seconds"] > p["train_seconds"] > 0 for p in data["plans"])


def test_tuned_code_gets_the_big_speedup_and_runs_faster(small_catalog):
    keras, tuned = _plans("--gpu", "v100"), _plans("--gpu", "v100", "--stack", "tuned")
    assert _mixed_speedup(tuned, "p3.2xlarge") > 2.5 > _mixed_speedup(keras, "p3.2xlarge")
    k = {p["precision"]: p["train_seconds"] for p in keras["plans"]}
    t = {p["precision"]: p["train_seconds"] for p in tuned["plans"]}
    assert t["mixed"] < k["mixed"] and t["fp32"] < k["fp32"]


def test_the_header_line_names_the_stack_and_a_note_offers_xla(small_catalog):
    result = runner.invoke(app, ["estimate", "--gpu", "v100"])
    assert result.exit_code == 0, result.output
    assert "stack keras" in result.stdout
    assert "--stack keras-xla" in result.output and "jit_compile=True" in result.output


def test_a_workload_file_can_choose_the_stack(small_catalog, tmp_path):
    wl = tmp_path / "w.yaml"
    wl.write_text("model: bert-base-uncased\nstack: keras-xla\n")
    assert _plans("--workload", str(wl))["workload"]["stack"] == "keras-xla"


@pytest.mark.parametrize("bad", ["pytorch", "kers"])
def test_an_unknown_stack_is_one_line_with_the_choices(small_catalog, bad):
    result = runner.invoke(app, ["estimate", "--stack", bad])
    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert f"unknown stack {bad!r}" in result.output and "keras, keras-xla, tuned" in result.output


def test_plans_carry_start_up_phases_and_a_measured_family_replaces_the_model(small_catalog, isolated_cache):
    before = {p["instance"]: p for p in _plans("--gpu", "v100")["plans"]}["p3.2xlarge"]
    phases = {ph["phase"]: ph for ph in before["startup_phases"]}
    assert set(phases) == {"boot", "driver", "install", "model_download", "trace"}
    assert before["startup_seconds"] == pytest.approx(sum(ph["seconds"] for ph in phases.values()), abs=0.5)
    record_phases("p3.8xlarge", {"boot": 95.0, "install": 600.0})  # a launch on the same family
    after = {p["instance"]: p for p in _plans("--gpu", "v100")["plans"]}["p3.2xlarge"]
    measured = {ph["phase"]: ph for ph in after["startup_phases"]}
    assert measured["boot"] == {"phase": "boot", "seconds": 95.0, "source": "measured"}
    assert measured["trace"]["source"] == "model"
    assert after["startup_seconds"] > before["startup_seconds"]
