"""The start-up phases of a calibration instance, from the bootstrap's stamps and the result's own timings.

Runs on the instance, after `gpuplan calibrate` (the bootstrap calls `python -m gpuplan.cloud.phases STAMPS RESULT
LAUNCHED_AT`), and adds `phases` (seconds each) to the result. The names of the start-up model (gpuplan.perf.startup):
- boot: the client's request to EC2 until the user data starts (the kernel's uptime when the clocks disagree);
- driver: until nvidia-smi lists the GPU;
- install: fetching the inputs, the Python environment, pip installing gpuplan and TensorFlow, TensorFlow's GPU check;
- model_download: `gpuplan calibrate` until its first step (imports, model download and build, data);
- trace: the first step (it traces the graph);
then `run_<precision>`: each precision's steps, the first included, and `calibrate`: the whole calibrate command.
Pure Python and the stdlib, so it runs whatever is installed beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STARTUP_PHASES = ("boot", "driver", "install", "model_download", "trace")
MAX_BOOT_SECONDS = 3600.0  # beyond this the two clocks disagree: the uptime is the better figure


def read_stamps(text: str) -> dict[str, float]:
    stamps = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        try:
            stamps[name] = float(value)
        except ValueError:
            continue
    return stamps


def _trace_seconds(run: dict[str, Any]) -> float | None:
    """The first step's time: the warm-up minus its other steps, or all steps minus the timed ones."""
    step = run.get("step_seconds")
    if not step:
        return None
    if run.get("warmup_steps"):
        return run.get("warmup_seconds", 0.0) - (run["warmup_steps"] - 1) * step
    if run.get("train_seconds") is not None:
        return run["train_seconds"] - run.get("steps", 0) * step
    return None


def compute(stamps: dict[str, float], result: dict[str, Any], launched_at: float = 0.0) -> dict[str, float]:
    phases: dict[str, float] = {}
    start = stamps.get("start")
    if start is not None and launched_at > 0 and 0 < start - launched_at < MAX_BOOT_SECONDS:
        phases["boot"] = start - launched_at
    elif stamps.get("uptime"):
        phases["boot"] = stamps["uptime"]
    for name, begin, end in (("driver", "start", "driver"), ("install", "driver", "install"),
                             ("calibrate", "install", "calibrated")):
        if begin in stamps and end in stamps:
            phases[name] = stamps[end] - stamps[begin]
    runs = [r for r in result.get("runs", []) if isinstance(r, dict)]
    for r in runs:
        if r.get("train_seconds") is not None:
            phases[f"run_{r.get('precision')}"] = float(r["train_seconds"])
    if "calibrate" in phases:
        phases["model_download"] = phases["calibrate"] - sum(r.get("train_seconds") or 0.0 for r in runs)
    first = next((r for r in runs if r.get("step_seconds")), None)
    trace = _trace_seconds(first) if first else None
    if trace is not None:
        phases["trace"] = trace
    return {k: round(max(v, 0.0), 3) for k, v in phases.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m gpuplan.cloud.phases STAMPS RESULT LAUNCHED_AT", file=sys.stderr)
        return 2
    stamps_path, result_path, launched_at = argv
    result = json.loads(Path(result_path).read_text())
    result["phases"] = compute(read_stamps(Path(stamps_path).read_text()), result, float(launched_at or 0))
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(result_path)
    print("phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in result["phases"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
