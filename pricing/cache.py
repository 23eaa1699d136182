"""The price cache: one YAML file per AWS region under $XDG_CACHE_HOME/gpuplan/catalog-v2/, written by
`gpuplan prices refresh` (either source: SkyPilot's catalog or AWS's APIs) and read by every estimate.

A cache file has the bundled catalog's schema plus `fetched_at` (UTC, ISO 8601). Writes are atomic (a temp file in
the same folder, fsync, os.replace), so an interrupted refresh leaves the previous file as it was. A file that does not
parse is ignored with a warning, never deleted: the next successful refresh replaces it. A writer killed mid-write
leaves a hidden temp file, which the next write removes once it is an hour old.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pricing.errors import PricingError, one_line
from pricing.files import read_yaml_file
from pricing.models import SCHEMA_VERSION, Catalog

# The folder name carries the schema version, so a gpuplan that reads another schema never trips over these files
# (and version-1 caches, whose spot figure followed an older rule, are left alone rather than read).
CACHE_SUBDIR = Path("gpuplan") / f"catalog-v{SCHEMA_VERSION}"
_FILE = re.compile(r"^aws-([a-z0-9-]+)\.yaml$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def cache_home() -> Path:
    """gpuplan's folder in the user's cache ($XDG_CACHE_HOME, else ~/.cache): prices, measurements, phases."""
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "gpuplan"


def cache_dir() -> Path:
    return cache_home() / CACHE_SUBDIR.name


def check_region(region: str) -> str:
    if not _REGION.match(region):
        raise PricingError(f"{region!r} is not an AWS region name; use one like us-east-1 or eu-west-1")
    return region


def cache_path(region: str) -> Path:
    return cache_dir() / f"aws-{check_region(region)}.yaml"


@dataclass(frozen=True)
class CachedPrices:
    """One region's cache file, parsed."""

    region: str
    path: Path
    fetched_at: dt.datetime
    catalog: Catalog


def cached_regions() -> list[str]:
    d = cache_dir()
    if not d.is_dir():
        return []
    return sorted(m.group(1) for p in d.iterdir() if (m := _FILE.match(p.name)) and _REGION.match(m.group(1)))


def read_cache(region: str) -> tuple[CachedPrices | None, str | None]:
    """(the region's cache, None); (None, None) when there is none; (None, warning) when it is unreadable."""
    path = cache_path(region)
    if not path.is_file():
        return None, None
    try:
        return _parse(path, region), None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, ValidationError, PricingError) as e:
        if isinstance(e, ValidationError):
            first = e.errors()[0]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
            reason = f"{where}: {first['msg']}" if where else first["msg"]
        else:
            reason = "it " + e.problem if hasattr(e, "problem") else one_line(e)
        return None, (
            f"Warning: ignoring the unreadable price cache {path} ({reason[:160]}); "
            f"run `gpuplan prices refresh --region {region}` to rebuild it"
        )


# Clocks disagree by seconds, not hours: a fetched_at further ahead than this was not written by a refresh here, and
# would make stale prices look fresh for as long as it stays ahead.
CLOCK_SKEW = dt.timedelta(hours=1)


def _parse(path: Path, region: str) -> CachedPrices:
    doc = read_yaml_file(path, "price cache")
    if not isinstance(doc, dict):
        raise ValueError("not a YAML mapping")
    doc = dict(doc)
    fetched = doc.pop("fetched_at", None)
    if fetched is None:
        raise ValueError("no fetched_at")
    if isinstance(fetched, str):
        fetched = dt.datetime.fromisoformat(fetched)
    if not isinstance(fetched, dt.datetime):
        raise ValueError(f"fetched_at {fetched!r} is not a date and time")
    if fetched.tzinfo is None:
        fetched = fetched.replace(tzinfo=dt.timezone.utc)
    if fetched > dt.datetime.now(dt.timezone.utc) + CLOCK_SKEW:
        raise ValueError(f"fetched_at {fetched:%Y-%m-%d %H:%M} UTC is in the future")
    catalog = Catalog.model_validate(doc)
    if not catalog.offers:
        raise ValueError("no offers")
    strays = {o.region for o in catalog.offers} - {region}
    if strays:
        raise ValueError(f"offers for {', '.join(sorted(strays))} in the file for {region}")
    return CachedPrices(region=region, path=path, fetched_at=fetched, catalog=catalog)


def write_cache(region: str, catalog: Catalog, fetched_at: dt.datetime) -> Path:
    """Replace the region's cache file atomically; on any failure the previous file is untouched."""
    path = cache_path(region)
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "fetched_at": fetched_at.isoformat()}
    # Only the fields that were set: a default written out would read back as the catalog's own figure.
    doc.update(catalog.model_dump(mode="json", exclude={"schema_version"}, exclude_unset=True))
    header = (
        "# gpuplan price cache, written by `gpuplan prices refresh`. Rewritten on every refresh: put your own\n"
        "# prices in a file you pass with --catalog instead.\n"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise PricingError(f"cannot write the price cache in {path.parent}: {one_line(e)}; check its permissions") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(header)
            yaml.safe_dump(doc, f, sort_keys=False, width=120)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, Exception):
            raise PricingError(
                f"could not write the price cache {path}: {one_line(e)}; the previous cache is kept"
            ) from None
        raise
    _fsync_dir(path.parent)
    return path


# A writer killed mid-write (SIGKILL, power loss) leaves its temp file; a write in progress is done in seconds.
STALE_TEMP_AFTER = dt.timedelta(hours=1)
_TEMP = re.compile(r"^\.aws-[a-z0-9-]+\.yaml\..+\.tmp$")  # what write_cache's mkstemp names


def remove_stale_temp_files(folder: Path, now: float | None = None) -> list[Path]:
    """Delete the temp files of writers that died more than STALE_TEMP_AFTER ago (never a younger one: it may be a
    refresh running beside this one); return them."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not _TEMP.match(p.name):
            continue
        try:
            if now - p.lstat().st_mtime > STALE_TEMP_AFTER.total_seconds() and p.is_file():
                p.unlink()
                removed.append(p)
        except OSError:
            pass  # gone already, or not ours to delete: the write goes on
    return removed


def _fsync_dir(d: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, and harmless to skip there.
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

