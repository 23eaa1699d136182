"""The JSON Schema of `gpuplan estimate --format json`, generated from the pydantic models that write that JSON.

`estimate.schema.json` beside this file is the copy shipped in the package for other tools; `gpuplan estimate
--schema` prints it. After changing a model (gpuplan/plan.py, gpuplan/workload.py, ...) regenerate it with

    python -m gpuplan.schema

(tests/test_render_schema.py fails until the shipped copy equals the generated one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("estimate.schema.json")


def estimate_schema() -> dict[str, Any]:
    from gpuplan.plan import SCHEMA_VERSION, Estimate

    schema = Estimate.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gpuplan estimate",
        "description": f"`gpuplan estimate --format json`, schema_version {SCHEMA_VERSION}: the workload, every plan "
                       "(instance x precision x market), the recommendation and the notes. Seconds, USD and bytes.",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(estimate_schema(), indent=2) + "\n"
