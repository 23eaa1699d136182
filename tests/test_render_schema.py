"""The JSON contract: a schema generated from the models, shipped in the package, and real output valid against it."""

from __future__ import annotations

import json

import jsonschema
import pytest
from typer.testing import CliRunner

from gpuplan.cli import app
from gpuplan.schema import SCHEMA_FILE, estimate_schema, schema_text

runner = CliRunner()


def test_the_shipped_schema_is_the_one_the_models_generate():
    assert SCHEMA_FILE.read_text() == schema_text(), "models changed: regenerate with `python -m gpuplan.schema`"


def test_estimate_schema_prints_it():
    result = runner.invoke(app, ["estimate", "--schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == estimate_schema()


@pytest.mark.parametrize("args", [
    ["--gpu", "t4", "--gpu", "v100", "--spot", "--deadline", "1"],
    ["--model", "bert-large-uncased", "--batch-size", "64", "--gpu", "t4"],  # nothing fits: no recommendation
    ["--gpu", "a10g", "--baseline", "v100", "--precision", "both"],
])
def test_real_output_validates_against_the_schema(args):
    result = runner.invoke(app, ["estimate", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, estimate_schema(), cls=jsonschema.Draft202012Validator)
    assert set(data["plans"][0]) == set(estimate_schema()["$defs"]["Plan"]["properties"])


def test_the_schema_rejects_what_is_not_an_estimate():
    with pytest.raises(jsonschema.ValidationError, match="'plans' is a required property"):
        jsonschema.validate({"schema_version": 1, "workload": {}, "recommendation": None}, estimate_schema())
