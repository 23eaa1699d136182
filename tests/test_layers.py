"""The layers of DESIGN.md hold: pricing stands alone, nothing below calibration imports it, the CLI stays thin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    out = []
    for part in parts:
        p = ROOT / part
        out += [p] if p.is_file() else sorted(p.rglob("*.py"))
    return out


def test_pricing_imports_nothing_from_gpuplan():
    code = ("import pricing, pricing.refresh, pricing.aws, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('gpuplan')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_nothing_below_calibration_imports_it():
    for f in _files("gpuplan/perf", "gpuplan/plan.py", "gpuplan/cloud", "pricing", "gpuplan/measurement.py",
                    "gpuplan/workload.py", "gpuplan/dataset.py"):
        assert not any(m.startswith("gpuplan.calibration") for m in _imports(f)), f


def test_the_cli_imports_no_boto3_tensorflow_or_pricing_aws():
    for f in _files("gpuplan/cli"):
        bad = {m for m in _imports(f) if m.split(".")[0] in ("boto3", "botocore", "tensorflow") or m == "pricing.aws"}
        assert not bad, (f, bad)
