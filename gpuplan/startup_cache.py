"""Start-up phases that launches measured, kept per instance family in the user's cache, for the start-up model.

$XDG_CACHE_HOME/gpuplan/startup-v1/<family>.json holds the last measurements of that family (g5, p3, ...); an
estimate uses the median of each phase in place of the model's figure. Pure file I/O, no AWS.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from gpuplan.perf.startup import PHASES, family
from pricing.cache import cache_home

KEEP = 10  # measurements per family: enough for a median, few enough that old AMIs age out


def startup_dir() -> Path:
    return cache_home() / "startup-v1"


def record_phases(instance_type: str, phases: dict[str, float], directory: Path | None = None) -> Path:
    """Add one launch's measured phases (phase -> seconds, finite and >= 0 only) to its family's file."""
    clean = {p: float(s) for p, s in phases.items() if p in PHASES and 0 <= float(s) < 86_400}
    folder = directory or startup_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{family(instance_type)}.json"
    runs = _read(path)[-(KEEP - 1):] + [{"instance_type": instance_type, "phases": clean}]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"schema_version": 1, "runs": runs}, f, indent=2)
    os.replace(tmp, path)
    return path


def measured_phases(directory: Path | None = None) -> dict[str, dict[str, float]]:
    """family -> phase -> median measured seconds, for every family a launch has measured."""
    folder = directory or startup_dir()
    out: dict[str, dict[str, float]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        per_phase: dict[str, list[float]] = {}
        for run in _read(path):
            for p, s in (run.get("phases") or {}).items():
                if p in PHASES and isinstance(s, (int, float)) and 0 <= s < 86_400:
                    per_phase.setdefault(p, []).append(float(s))
        if per_phase:
            out[path.stem] = {p: statistics.median(v) for p, v in per_phase.items()}
    return out


def _read(path: Path) -> list[dict]:
    """The runs in a family's file; a missing, corrupt or foreign file counts as none (it is only a cache)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    runs = doc.get("runs") if isinstance(doc, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
