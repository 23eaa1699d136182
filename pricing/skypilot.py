"""Prices without an AWS account: SkyPilot's public AWS catalog (the `vms.csv` its users download), read into offers.

The file has one row per instance type and Availability Zone: `Price` is the region's Linux on-demand price (the
same on every row), `SpotPrice` that zone's spot price. The spot figure follows pricing.offers.spot_summary, the
same rule as the AWS refresh and the bundled snapshot.

A download is checked before anything is written: the header, every row's field count and numbers, the file's
last line ending (a download cut mid-line fails), the length the server announced, and at least one offer of a GPU
gpuplan knows in each region asked for. Nothing here writes a file.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pricing.errors import PricingError, one_line
from pricing.models import Catalog, InstanceOffer
from pricing.offers import startup_of, Shape, gpu_key, spot_summary, template_for

# SkyPilot builds this from HOSTED_CATALOG_DIR_URL (sky/skylet/constants.py), the catalog schema version and
# 'aws/vms.csv' (sky/catalog/common.py). v9 is the folder the 2026 catalog lives in.
CATALOG_URL = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v9/aws/vms.csv"
URL_ENV = "GPUPLAN_CATALOG_URL"
REQUIRED_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "GpuInfo", "Price",
                    "SpotPrice", "Region", "AvailabilityZone")
MAX_BYTES = 64 * 2**20  # the real file is about 5 MB
KEPT = "; the previous price cache is kept"


def catalog_url(url: str | None = None) -> str:
    """--url, else $GPUPLAN_CATALOG_URL, else SkyPilot's own."""
    return url or os.environ.get(URL_ENV) or CATALOG_URL


def download(url: str, timeout: float = 60.0) -> str:
    """The catalog's text; a PricingError saying what failed and that the cache is kept."""
    import http.client
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise PricingError(f"the catalog URL {url!r} is not http(s); pass --url https://... or unset {URL_ENV}")
    req = urllib.request.Request(url, headers={"User-Agent": "gpuplan (prices refresh --source catalog)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(MAX_BYTES + 1)
            announced = resp.headers.get("Content-Length")
    except urllib.error.HTTPError as e:
        raise PricingError(f"downloading the SkyPilot catalog from {url} failed: HTTP {e.code} {e.reason}; check "
                           f"the URL (--url or {URL_ENV}){KEPT}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise PricingError(f"cannot download the SkyPilot catalog from {url} ({one_line(Exception(reason))[:160]}): "
                           f"check your network or proxy, or use --source aws{KEPT}") from None
    if len(body) > MAX_BYTES:
        raise PricingError(f"the catalog at {url} is larger than {MAX_BYTES // 2**20} MB: not SkyPilot's vms.csv{KEPT}")
    if announced is not None and announced.isdigit() and int(announced) != len(body):
        raise PricingError(f"the download of {url} stopped after {len(body):,} of {int(announced):,} bytes; run the "
                           f"refresh again{KEPT}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise PricingError(f"the catalog at {url} is not UTF-8 text: not SkyPilot's vms.csv{KEPT}") from None


@dataclass(frozen=True)
class Row:
    """One (instance type, zone) row of vms.csv, with the GPU fields read out of GpuInfo."""

    shape: Shape
    arch: str
    on_demand: float | None
    spot: float | None
    region: str
    zone: str


def _number(text: str, what: str, line: int, origin: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        raise PricingError(f"{origin}, line {line}: {what} {text[:40]!r} is not a number: a malformed or partial "
                           f"download{KEPT}") from None
    if v != v or v < 0:
        raise PricingError(f"{origin}, line {line}: {what} {text[:40]!r} is not a price{KEPT}")
    return v


def _gpu_info(text: str) -> dict[str, Any]:
    """GpuInfo is a Python dict literal: {'Gpus': [{'Name', 'Manufacturer', 'Count', 'GpuPartitionSize',
    'MemoryInfo': {'SizeInMiB'}}], 'TotalGpuMemoryInMiB'}; literal_eval reads it without running anything."""
    try:
        info = ast.literal_eval(text)
        return dict(info["Gpus"][0])
    except (ValueError, SyntaxError, KeyError, IndexError, TypeError, MemoryError, RecursionError):
        return {}


def parse_vms(text: str, origin: str) -> list[Row]:
    """The GPU rows of a vms.csv (rows without an accelerator are skipped unread), validated."""
    if not text.strip():
        raise PricingError(f"{origin} is empty{KEPT}")
    if not text.endswith("\n"):
        raise PricingError(f"{origin} does not end with a line break: the download was cut off{KEPT}")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PricingError(f"{origin} is not SkyPilot's AWS vms.csv: no column {', '.join(missing)} in its header"
                           f"{KEPT}")
    col = {name: header.index(name) for name in header}
    rows: list[Row] = []
    shapes: dict[str, tuple[Shape, str]] = {}  # GpuInfo is the same on every row of a type: read it once
    for n, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise PricingError(f"{origin}, line {n}: {len(fields)} fields where the header has {len(header)}: a "
                               f"malformed or partial download{KEPT}")
        itype = fields[col["InstanceType"]]
        on_demand = _number(fields[col["Price"]], "Price", n, origin)
        spot = _number(fields[col["SpotPrice"]], "SpotPrice", n, origin)
        if not fields[col["AcceleratorName"]].strip():
            continue
        if itype not in shapes:
            gpu = _gpu_info(fields[col["GpuInfo"]])
            count = _number(fields[col["AcceleratorCount"]], "AcceleratorCount", n, origin) or 0.0
            shape = Shape(
                instance_type=itype, gpu_name=fields[col["AcceleratorName"]].strip(),
                gpu_count=int(count) if count >= 1 else 0,
                gpu_memory_mib=int((gpu.get("MemoryInfo") or {}).get("SizeInMiB", 0) or 0),
                vcpus=int(_number(fields[col["vCPUs"]], "vCPUs", n, origin) or 0),
                memory_mib=int((_number(fields[col["MemoryGiB"]], "MemoryGiB", n, origin) or 0) * 1024),
                manufacturer=str(gpu.get("Manufacturer", "")),
                partition=float(gpu.get("GpuPartitionSize", 1.0) or 1.0) if count >= 1 else count,
            )
            shapes[itype] = (shape, str(gpu.get("Name", "")))
        shape, _ = shapes[itype]
        rows.append(Row(shape=shape, arch=fields[col["Arch"]] if "Arch" in col else "x86_64",
                        on_demand=on_demand, spot=spot, region=fields[col["Region"]].strip(),
                        zone=fields[col["AvailabilityZone"]].strip()))
    return rows


@dataclass
class CatalogOffers:
    """Per region the offers gpuplan can plan with, and what it left out and why."""

    offers: dict[str, list[InstanceOffer]]
    notes: list[str] = field(default_factory=list)


def offers_from_rows(
    rows: Iterable[Row], bundled: Catalog, *, price_source: str, price_date: dt.date,
    regions: list[str] | None = None, instance_types: list[str] | None = None,
    templates: Callable[[str, int], tuple[InstanceOffer | None, str | None]] | None = None,
) -> CatalogOffers:
    """Offers of the GPUs gpuplan has specs for (x86_64, whole NVIDIA GPUs), one per instance type and region.

    templates(instance type, GPU count) lends the interconnect of a multi-GPU type (default: the bundled offer of
    the type, else its family's nearest sibling); a multi-GPU type without one is left out with a note.
    """
    lend = templates or (lambda itype, count: template_for(itype, count, bundled.offers))
    wanted_regions = set(regions or [])
    grouped: dict[tuple[str, str], list[Row]] = {}
    unknown: dict[str, set[str]] = {}
    notes: list[str] = []
    for r in rows:
        if wanted_regions and r.region not in wanted_regions:
            continue
        if instance_types and r.shape.instance_type not in instance_types:
            continue
        if r.arch != "x86_64" or gpu_key(r.shape, bundled.gpus) is None:
            if r.shape.partition >= 1 and r.shape.gpu_count >= 1:
                unknown.setdefault(f"{r.shape.manufacturer} {r.shape.gpu_name} ({r.arch})".strip(), set()).add(
                    r.shape.instance_type)
            continue
        grouped.setdefault((r.shape.instance_type, r.region), []).append(r)
    if unknown:
        notes.append("left out (not an x86_64 NVIDIA GPU gpuplan has specs for): " + "; ".join(
            f"{m}: {', '.join(sorted(ts)[:3])}{', ...' if len(ts) > 3 else ''}" for m, ts in sorted(unknown.items())))
    out: dict[str, list[InstanceOffer]] = {}
    no_link: set[str] = set()
    for (itype, region), zone_rows in sorted(grouped.items()):
        shape = zone_rows[0].shape
        key = gpu_key(shape, bundled.gpus)
        template, _ = lend(itype, shape.gpu_count)
        if shape.gpu_count > 1 and (template is None or template.allreduce_gbs is None):
            no_link.add(itype)
            continue
        ods = [r.on_demand for r in zone_rows if r.on_demand]
        od = min(ods) if ods else None
        spot = spot_summary({r.zone: r.spot for r in zone_rows}, od)
        if od is None and spot is None:
            continue
        multi = shape.gpu_count > 1 and template is not None
        out.setdefault(region, []).append(InstanceOffer(
            instance_type=itype, provider="aws", region=region, gpu=key, gpu_count=shape.gpu_count,
            vcpus=shape.vcpus, memory_gib=round(shape.memory_mib / 1024, 2), on_demand_usd_per_hour=od,
            spot_usd_per_hour=spot.median if spot else None, spot_usd_per_hour_min=spot.min if spot else None,
            spot_zones=spot.zones if spot else None, price_source=price_source, price_date=price_date,
            interconnect=template.interconnect if multi else "none",  # type: ignore[union-attr]
            allreduce_gbs=template.allreduce_gbs if multi else None,  # type: ignore[union-attr]
            **startup_of(template),
        ))
    if no_link:
        notes.append(f"left out, no interconnect figures for their family: {', '.join(sorted(no_link))} (add them "
                     "with allreduce_gbs in a --catalog file)")
    return CatalogOffers(offers=out, notes=notes)


@dataclass
class CatalogRefresh:
    url: str
    fetched_at: dt.datetime
    catalogs: dict[str, Catalog]  # by region
    notes: list[str]


def fetch_catalog(
    bundled: Catalog, *, url: str | None = None, regions: list[str] | None = None,
    instance_types: list[str] | None = None, now: dt.datetime | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> CatalogRefresh:
    """Download, check and read SkyPilot's catalog into one Catalog per region (every region it prices a known GPU
    in, or only `regions`, each of which must have one). Writes nothing."""
    from pricing.cache import check_region

    for r in regions or []:
        check_region(r)
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    where = catalog_url(url)
    progress(f"Downloading the SkyPilot AWS catalog from {where}...")
    text = download(where)
    rows = parse_vms(text, f"the catalog from {where}")
    if not rows:
        raise PricingError(f"the catalog from {where} has no GPU instance rows: not SkyPilot's AWS vms.csv, or a "
                           f"partial download{KEPT}")
    stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    found = offers_from_rows(rows, bundled, regions=regions, instance_types=instance_types,
                             price_source=f"SkyPilot catalog {where}, downloaded {stamp}", price_date=now.date())
    missing = [r for r in regions or [] if r not in found.offers]
    if missing or not found.offers:
        what = f"instance types {', '.join(instance_types)}" if instance_types else "GPUs gpuplan knows"
        priced = sorted({r.region for r in rows})
        raise PricingError(
            f"the catalog from {where} prices none of the {what} in {', '.join(missing) or 'any region'} (it has GPU "
            f"rows for {len(priced)} regions{': ' + ', '.join(priced[:6]) + ', ...' if priced else ''}); a partial "
            f"download, or pick another region{KEPT}")
    catalogs = {}
    for region, offers in found.offers.items():
        used = {o.gpu for o in offers}
        catalogs[region] = Catalog(
            source=f"AWS {region} from the SkyPilot catalog ({where}), downloaded {stamp}: on-demand = its Price; "
                   "spot = median of the latest price per standard zone below on-demand (min and zones kept). GPU "
                   "specs and interconnects: bundled.",
            gpus=[g for g in bundled.gpus if g.key in used],
            offers=sorted(offers, key=lambda o: (o.gpu, o.gpu_count, o.instance_type)),
        )
    return CatalogRefresh(url=where, fetched_at=now, catalogs=catalogs, notes=found.notes)
