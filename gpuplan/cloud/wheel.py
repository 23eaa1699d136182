"""This gpuplan as a wheel, so that the instance runs the client's own code: gpuplan is never installed from an index
(it is not published there, and a release may differ from what runs here).

From a source checkout the wheel is built (pip, seconds); from an installed gpuplan its installed files are packed
into one (no source tree, no build). The temporary folders go when the process ends.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import tempfile
import zipfile
from pathlib import Path

from gpuplan.errors import GpuplanError

TOP_LEVEL = ("gpuplan", "pricing")  # the packages pyproject.toml ships
# Kept alive until the interpreter exits, when their finalizers delete the folders.
_TEMP_DIRS: list[tempfile.TemporaryDirectory] = []


def _temp_dir() -> Path:
    folder = tempfile.TemporaryDirectory(prefix="gpuplan-wheel-")
    _TEMP_DIRS.append(folder)
    return Path(folder.name)


def source_checkout() -> Path | None:
    """The project folder when this gpuplan runs from a source checkout (an editable install), else None."""
    import gpuplan

    root = Path(gpuplan.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "gpuplan" / "cli").is_dir() else None


def describe_source() -> str:
    """Where the shipped code comes from, for the plan."""
    source = source_checkout()
    return f"built as a wheel from the checkout {source}" if source else "packed from the installed gpuplan's files"


def ship_wheel(wheel: Path | None = None) -> Path:
    """The wheel to install on the instance: --wheel, else this checkout's, else the installed files packed."""
    if wheel is not None:
        return Path(wheel)
    source = source_checkout()
    return build_wheel(source) if source is not None else pack_installed()


@functools.cache
def build_wheel(source: Path) -> Path:
    """Build the checkout's wheel once per process (seconds), without its dependencies."""
    import shutil
    import subprocess
    import sys
    from importlib.metadata import PackageNotFoundError, version

    out = _temp_dir()
    # Without build isolation when a recent enough setuptools is here (pyproject's build-system asks for 77+):
    # no download. Otherwise pip fetches the build backend, as any source install does.
    try:
        recent = int(version("setuptools").split(".")[0]) >= 77
    except (PackageNotFoundError, ValueError):
        recent = False
    isolation = ["--no-build-isolation"] if recent else []
    had_build = (source / "build").exists()
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out),
                           str(source)], capture_output=True, text=True)
    if not had_build:  # setuptools builds in the checkout: leave it as it was
        shutil.rmtree(source / "build", ignore_errors=True)
    wheels = sorted(out.glob("gpuplan-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise GpuplanError(f"could not build this gpuplan's wheel from {source} ({last}); build one with "
                           "`python -m pip wheel --no-deps -w dist .` and pass --wheel dist/gpuplan-*.whl")
    return wheels[-1]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@functools.cache
def pack_installed() -> Path:
    """A py3-none-any wheel of the installed gpuplan, from the files its RECORD lists (importlib.metadata)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("gpuplan")
    except PackageNotFoundError:
        raise GpuplanError("this gpuplan is neither a source checkout nor an installed package, so there is nothing "
                           "to ship to the instance; pass --wheel") from None
    version = dist.version
    info = f"gpuplan-{version}.dist-info"
    files = [f for f in (dist.files or [])
             if f.parts and f.parts[0] in TOP_LEVEL and "__pycache__" not in f.parts and f.suffix != ".pyc"]
    if not any(f.parts[-1] == "bootstrap.sh" for f in files):
        raise GpuplanError("the installed gpuplan's file list (RECORD) lacks its package files; reinstall it, or "
                           "pass --wheel")
    path = _temp_dir() / f"gpuplan-{version}-py3-none-any.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        def add(name: str, data: bytes) -> None:
            zf.writestr(name, data)
            record.append(f"{name},{_record_hash(data)},{len(data)}")

        for f in sorted(files, key=str):
            add(f.as_posix(), Path(dist.locate_file(f)).read_bytes())
        add(f"{info}/METADATA", (dist.read_text("METADATA") or f"Metadata-Version: 2.1\nName: gpuplan\n"
                                                                  f"Version: {version}\n").encode())
        add(f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: gpuplan (packed from an install)\n"
                             b"Root-Is-Purelib: true\nTag: py3-none-any\n")
        for extra in ("entry_points.txt", "top_level.txt"):
            if (text := dist.read_text(extra)) is not None:
                add(f"{info}/{extra}", text.encode())
        zf.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path
