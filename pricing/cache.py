"""The price cache: one YAML file per AWS region under $XDG_CACHE_HOME/gpuplan/catalog-v2/, written by
`gpuplan prices refresh` (either source: SkyPilot's catalog or AWS's APIs) and read by every estimate.

A cache file has the bundled catalog's schema plus `fetched_at` (UTC, ISO 8601). Writes are atomic (a temp file in
the same folder, fsync, os.replace), so an interrupted refresh leaves the previous file as it was. A file that does not
parse is ignored with a warning, never deleted: the next successful refresh replaces it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pricing.errors import PricingError, one_line
from pricing.models import SCHEMA_VERSION, Catalog

# The folder name carries the schema version, so a gpuplan that reads another schema never trips over these files
# (and version-1 caches, whose spot figure followed an older rule, are left alone rather than read).
CACHE_SUBDIR = Path("gpuplan") / f"catalog-v{SCHEMA_VERSION}"
_FILE = re.compile(r"^aws-([a-z0-9-]+)\.yaml$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / CACHE_SUBDIR


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
        reason = e.errors()[0]["msg"] if isinstance(e, ValidationError) else one_line(e)
        return None, (
            f"Warning: ignoring the unreadable price cache {path} ({reason[:160]}); "
            f"run `gpuplan prices refresh --region {region}` to rebuild it"
        )


def _parse(path: Path, region: str) -> CachedPrices:
    doc = yaml.safe_load(path.read_text())
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

