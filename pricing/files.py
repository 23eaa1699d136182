"""Read a small text file a user hands in (a catalog or workload YAML) or one gpuplan keeps (the price cache): one
line saying what is wrong with it when it is a folder, unreadable, huge, binary or not UTF-8, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pricing.errors import PricingError, one_line

# A workload is a few lines, a user's catalog or a region's cache file some kilobytes; the bundled snapshot's YAML is
# under 20 KB. Anything past this is another file passed by mistake, and is refused before it is read.
MAX_YAML_BYTES = 8 * 2**20


def read_text(path: Path, what: str, *, max_bytes: int = MAX_YAML_BYTES,
              error: type[PricingError] = PricingError) -> str:
    """The UTF-8 text of `path`, checked; `what` names it in messages ('catalog file', 'workload file').

    The error raised carries `.problem`, the message without the file's name and the fix ('is binary'), for a
    caller that words its own (the price cache's warning)."""
    path = Path(path)

    def fail(problem: str, fix: str = "check the path") -> PricingError:
        err = error(f"{what} {path} {problem}; {fix}")
        err.problem = problem  # type: ignore[attr-defined]
        return err

    if path.is_dir():
        raise fail("is a folder", "pass the file itself")
    if not path.is_file():
        raise fail("does not exist")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise fail(f"is {_size(size)}: too large to be one (those are a few KB)")
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        err = error(f"cannot read {what} {path}: {e.strerror or one_line(e)}; check its permissions")
        err.problem = f"cannot be read: {e.strerror or one_line(e)}"  # type: ignore[attr-defined]
        raise err from None
    if len(data) > max_bytes:  # grew since stat, or a special file with no size
        raise fail(f"is larger than {_size(max_bytes)}: too large to be one")
    if b"\x00" in data[:8192]:
        raise fail("is binary, not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise fail(f"is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line})", "save it as UTF-8") from None


def read_yaml_file(path: Path, what: str, *, max_bytes: int = MAX_YAML_BYTES,
                   error: type[PricingError] = PricingError) -> Any:
    """The YAML document in `path`, checked as read_text does, then parsed safely."""
    text = read_text(path, what, max_bytes=max_bytes, error=error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{what} {path} is not valid YAML: {one_line(e)}") from None
    except RecursionError:  # a deeply nested flow sequence, '[[[[...' : not a catalog or workload
        raise error(f"{what} {path} nests too deeply to be valid YAML here; check the file") from None


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"
