"""This gpuplan as a wheel, so that the instance runs the client's own code (a checkout may differ from PyPI)."""

from __future__ import annotations

import functools
from pathlib import Path

from gpuplan.errors import GpuplanError


def source_checkout() -> Path | None:
    """The project folder when this gpuplan runs from a source checkout (an editable install), else None."""
    import gpuplan

    root = Path(gpuplan.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "gpuplan" / "cli").is_dir() else None


@functools.cache
def build_wheel(source: Path) -> Path:
    """Build the checkout's wheel once per process (seconds), without its dependencies."""
    import subprocess
    import sys
    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    out = Path(tempfile.mkdtemp(prefix="gpuplan-wheel-"))
    # Without build isolation when a recent enough setuptools is here (pyproject's build-system asks for 77+):
    # no download. Otherwise pip fetches the build backend, as any source install does.
    try:
        recent = int(version("setuptools").split(".")[0]) >= 77
    except (PackageNotFoundError, ValueError):
        recent = False
    isolation = ["--no-build-isolation"] if recent else []
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out),
                           str(source)], capture_output=True, text=True)
    wheels = sorted(out.glob("gpuplan-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise GpuplanError(f"could not build this gpuplan's wheel from {source} ({last}); build one with "
                           "`python -m pip wheel --no-deps -w dist .` and pass --wheel dist/gpuplan-*.whl")
    return wheels[-1]
