"""Performance-model accuracy on its fitting set, and how fast `gpuplan estimate` answers.

    python bench/bench_perf.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gpuplan.perf.fit import comparisons, fit, load_measurements, report

GPUPLAN = [str(Path(sys.executable).with_name("gpuplan"))]


def wall(cmd: list[str], repeat: int = 5) -> float:
    times = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    comps = comparisons()
    print("== Performance model vs NVIDIA DeepLearningExamples (fitting set) ==")
    print("error = |predicted ratio / published ratio - 1|; targets: median <= 10%, p90 <= 25%")
    print(report(comps))
    worst = sorted(comps, key=lambda c: c.error, reverse=True)[:3]
    print("worst: " + "; ".join(f"{c.label} {c.error:.0%}" for c in worst))
    print()
    print("== Held out: fit on two frameworks, judge on the third (ratios within a framework need no factor) ==")
    data = load_measurements()
    for held in sorted({m.framework for m in data}):
        constants = fit([m for m in data if m.framework != held])
        constants["framework_factors"].setdefault(held, 1.0)
        print(f"-- held out {held}")
        print(report(comparisons(constants, [m for m in data if m.framework == held])))
    print()
    print("== Time to answer (median of 5 runs, this machine) ==")
    est = wall(GPUPLAN + ["estimate", "--gpu", "v100"])
    tf = wall([sys.executable, "-c", "import tensorflow"])
    print(f"gpuplan estimate --gpu v100     {est:6.2f} s")
    print(f"python -c 'import tensorflow'   {tf:6.2f} s")
    print(f"ratio                           {est / tf:6.2f}   (target: well under 0.5)")
    from pricing.catalog import bundled_catalog

    loads = []
    for _ in range(5):
        bundled_catalog.cache_clear()
        t0 = time.perf_counter()
        n = len(bundled_catalog().offers)
        loads.append(time.perf_counter() - t0)
    print(f"load the bundled catalog ({n} offers) {statistics.median(loads) * 1000:6.0f} ms  (target: under 100 ms)")


if __name__ == "__main__":
    main()
