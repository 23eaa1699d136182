"""Load the catalog: per region the freshest prices (the cache, else the bundled snapshot), overlaid by a user's
YAML file; look GPUs and offers up in it.

Query functions take the catalog as an argument so tests can pass a three-row one.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pricing.errors import PricingError, did_you_mean
from pricing.files import read_yaml_file
from pricing.models import DEFAULT_REGION, READABLE_VERSIONS, SCHEMA_VERSION, Catalog, GpuSpec, InstanceOffer

BUNDLED = "bundled.yaml"
BUNDLED_OFFERS = "bundled_offers.csv"  # ~600 rows: the csv module reads them in milliseconds, PyYAML in 0.35 s
OFFER_COLUMNS = [
    "instance_type", "region", "gpu", "gpu_count", "vcpus", "memory_gib", "on_demand_usd_per_hour",
    "spot_usd_per_hour", "spot_usd_per_hour_min", "spot_zones", "interconnect", "allreduce_gbs", "price_source",
    "price_date",
]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it


def _describe(err: ValidationError, doc: dict[str, Any],
              renumber: dict[tuple[str, int], int] | None = None) -> str:
    """'offers[2] (g5.xlarge).on_demand_usd_per_hour: Input should be greater than 0' for the first error.

    renumber: {(section, index in doc): index in the user's file}, so an error in a merged catalog names the entry
    where the user wrote it."""
    first = err.errors()[0]
    loc = list(first["loc"])
    given = first.get("input")
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        first["msg"] += f", got {given:g}"  # NaN and inf read 'nan' and 'inf', as YAML's .nan and .inf
    elif isinstance(given, str) and len(given) <= 40:
        first["msg"] += f", got {given!r}"  # YAML reads 1e30 (no dot) as a string that pydantic then parses
    if renumber and len(loc) > 1 and (str(loc[0]), loc[1]) in renumber:
        shown = renumber[(str(loc[0]), loc[1])]
        entry = doc[loc[0]][loc[1]]
        label = (entry.get("instance_type") or entry.get("key") or "") if isinstance(entry, dict) else ""
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[2:])
        return f"{loc[0]}[{shown}]" + (f" ({label})" if label else "") + f"{field}: {first['msg']}"
    parts: list[str] = []
    node: Any = doc
    for p in loc:
        if isinstance(p, int):
            label = ""
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict):
                label = node[p].get("instance_type") or node[p].get("key") or ""
            parts[-1] += f"[{p}]" + (f" ({label})" if label else "")
            node = node[p] if isinstance(node, list) and p < len(node) else None
        else:
            parts.append(str(p))
            node = node.get(p) if isinstance(node, dict) else None
    where = ".".join(parts) or "catalog"
    return f"{where}: {first['msg']}"


def parse_catalog(doc: Any, origin: str) -> Catalog:
    if not isinstance(doc, dict):
        raise PricingError(f"{origin}: a catalog is a YAML mapping with 'gpus' and/or 'offers' lists")
    try:
        return Catalog.model_validate(doc)
    except ValidationError as e:
        raise PricingError(f"{origin}: {_describe(e, doc)}") from None


def read_yaml(path: Path, what: str) -> Any:
    """A user's YAML file: a folder, an unreadable, huge, binary or non-UTF-8 file is one line naming it."""
    return read_yaml_file(path, what)


@cache
def bundled_catalog() -> Catalog:
    """The snapshot shipped with gpuplan: GPUs and schema in bundled.yaml, offers in bundled_offers.csv."""
    data = resources.files("pricing").joinpath("data")
    doc = yaml.load(data.joinpath(BUNDLED).read_text(), Loader=_Loader)
    with data.joinpath(BUNDLED_OFFERS).open(newline="") as f:
        offers = [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    return parse_catalog({**doc, "offers": offers}, f"bundled {BUNDLED} and {BUNDLED_OFFERS}")


def overlay(base: Catalog, doc: Any, origin: str) -> Catalog:
    """Add or override GPUs (by key) and offers (by instance type and region) from a user's catalog document.

    An entry that names an existing GPU or offer only needs the fields it changes: `{instance_type: p3.2xlarge,
    on_demand_usd_per_hour: 2.1}` is a private price. A new entry needs every required field.
    """
    if not isinstance(doc, dict):
        raise PricingError(f"{origin}: a catalog is a YAML mapping with 'gpus' and/or 'offers' lists")
    unknown = set(doc) - {"schema_version", "source", "gpus", "offers"}
    if unknown:
        raise PricingError(f"{origin}: unknown top-level field(s) {', '.join(sorted(unknown))}; use gpus and offers")
    merged: dict[str, Any] = base.model_dump(mode="json")
    if doc.get("schema_version", SCHEMA_VERSION) not in READABLE_VERSIONS:
        merged["schema_version"] = doc["schema_version"]  # the model's validator names it
    renumber: dict[tuple[str, int], int] = {}
    for section, key_of in (("gpus", lambda e: e.get("key")), ("offers", _offer_key)):
        entries = doc.get(section) or []
        if not isinstance(entries, list):
            raise PricingError(f"{origin}: {section} must be a list")
        existing = {key_of(e): i for i, e in enumerate(merged[section])}
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise PricingError(f"{origin}: {section}[{n}] must be a mapping of field: value")
            k = key_of(entry)
            if k in existing:
                merged[section][existing[k]] = {**merged[section][existing[k]], **entry}
            else:
                existing[k] = len(merged[section])
                merged[section].append(entry)
            renumber[(section, existing[k])] = n
    try:
        return Catalog.model_validate(merged)
    except ValidationError as e:
        raise PricingError(f"{origin}: {_describe(e, merged, renumber)}") from None


def _offer_key(entry: dict[str, Any]) -> tuple[Any, Any]:
    return (entry.get("instance_type"), entry.get("region", DEFAULT_REGION))


def load_catalog(
    user_file: Path | None = None,
    base: Catalog | None = None,
    *,
    region: str | None = None,
    notes: Callable[[str], None] | None = None,
    warn_stale: bool = False,
) -> Catalog:
    """The freshest prices (per region: the cache, else the bundled snapshot) with the user's `--catalog` file laid
    over them, in one region or all. Where the prices come from and how old they are goes to `notes` (the CLI
    prints them; `resolve_prices` returns them); with warn_stale, also the warning for prices older than
    STALE_AFTER (commands that price a plan ask for it; `gpus` lists specs and does not nag).

    With `base` (tests, or a caller with its own catalog) nothing is read from the cache and nothing is said.
    """
    if base is not None:
        catalog = base
        if user_file is not None:
            catalog = overlay(catalog, read_yaml(Path(user_file), "catalog file"), f"catalog file {user_file}")
        return _in_region(catalog, region) if region is not None else catalog
    resolved = resolve_prices(user_file, region)
    for line in resolved.notes if notes else []:
        notes(line)
    if notes and warn_stale and resolved.stale_warning:
        notes(resolved.stale_warning)
    return resolved.catalog


@dataclass(frozen=True)
class PriceSource:
    """Where an offer's prices come from: the cache, the bundled snapshot or the user's catalog file."""

    kind: str  # "cache" | "bundled" | "catalog file"
    where: str  # a path, or "bundled snapshot"
    as_of: dt.datetime | None  # fetched_at for the cache, the price date otherwise

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        return None if self.as_of is None else max(now - self.as_of, dt.timedelta(0))


@dataclass
class ResolvedCatalog:
    catalog: Catalog
    sources: dict[tuple[str, str], PriceSource]  # by InstanceOffer.key
    notes: list[str] = field(default_factory=list)  # where the prices come from (and unreadable caches)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    stale_warning: str | None = None  # one line when some prices are older than STALE_AFTER


def resolve_prices(
    user_file: Path | None = None, region: str | None = None, *, now: dt.datetime | None = None
) -> ResolvedCatalog:
    """Per region the freshest base (cache, else bundled), then the user's file over it, then the region filter."""
    from pricing.cache import cached_regions, read_cache

    now = now or dt.datetime.now(dt.timezone.utc)
    bundled = bundled_catalog()
    notes: list[str] = []
    sources: dict[tuple[str, str], PriceSource] = {}
    known_gpus = {g.key for g in bundled.gpus}
    cached = {}
    for r in [region] if region is not None else cached_regions():
        c, warning = read_cache(r)
        if warning:
            notes.append(warning)
        if c is not None:
            cached[r] = c
    # Per instance type and region: the cache where it has the offer, the bundled snapshot for the rest (a refresh of
    # a few instance types, or a type AWS no longer lists there, leaves the bundled row, labelled as such).
    fresh = {o.key for c in cached.values() for o in c.catalog.offers if o.gpu in known_gpus}
    offers = []
    for o in bundled.offers:
        if o.key not in fresh:
            offers.append(o)
            as_of = dt.datetime.combine(o.price_date, dt.time(), dt.timezone.utc) if o.price_date else None
            sources[o.key] = PriceSource("bundled", "bundled snapshot", as_of)
    for r, c in sorted(cached.items()):
        strangers = sorted({o.gpu for o in c.catalog.offers} - known_gpus)
        if strangers:
            notes.append(f"Skipped cached offers in {r} for GPUs gpuplan has no specs for: {', '.join(strangers)}")
        for o in c.catalog.offers:
            if o.gpu in known_gpus:
                offers.append(o)
                sources[o.key] = PriceSource("cache", str(c.path), c.fetched_at)
    catalog = Catalog(source="", gpus=bundled.gpus, offers=offers)
    if user_file is not None:
        doc = read_yaml(Path(user_file), "catalog file")
        catalog = overlay(catalog, doc, f"catalog file {user_file}")
        by_key = {o.key: o for o in catalog.offers}
        for entry in doc.get("offers") or []:
            k = _offer_key(entry)
            priced = any(f in entry for f in _PRICE_FIELDS) or k not in sources
            if k in by_key and priced:
                pd = by_key[k].price_date
                as_of = dt.datetime.combine(pd, dt.time(), dt.timezone.utc) if pd else None
                sources[k] = PriceSource("catalog file", str(user_file), as_of)
    if region is not None:  # '' too: an empty --region is a mistake, not "every region"
        catalog = _in_region(catalog, region)
    sources = {o.key: sources[o.key] for o in catalog.offers if o.key in sources}
    notes += _describe_sources(sources, now)
    summary = "; ".join(n for n in notes if n.startswith("Prices"))
    catalog = catalog.model_copy(update={"source": summary})
    return ResolvedCatalog(catalog=catalog, sources=sources, notes=notes, now=now,
                           stale_warning=_stale_warning(sources, now))


_PRICE_FIELDS = ("on_demand_usd_per_hour", "spot_usd_per_hour", "spot_usd_per_hour_min", "spot_zones")
# Cloud GPU list prices move a few times a year and the estimate shows its price date in its footer: a warning
# every week would be noise users learn to skip. A quarter old, a refresh is worth the prompt.
STALE_AFTER = dt.timedelta(days=90)


def _in_region(catalog: Catalog, region: str) -> Catalog:
    from pricing.cache import check_region

    check_region(region)
    offers = [o for o in catalog.offers if o.region == region]
    if not offers:
        have = ", ".join(catalog.regions) or "none"
        raise PricingError(
            f"no prices for region {region}: run `gpuplan prices refresh --region {region}`, or add offers for it "
            f"with --catalog FILE (regions with prices: {have})"
        )
    return catalog.model_copy(update={"offers": offers})


def age_text(age: dt.timedelta | None) -> str:
    """'40 minutes', '5 hours', '12 days'; '-' when unknown."""
    if age is None:
        return "-"
    s = age.total_seconds()
    n, unit = (max(1, round(s / 60)), "minute") if s < 3600 else \
        (round(s / 3600), "hour") if s < 2 * 86400 else (round(s / 86400), "day")
    return f"{n} {unit}{'' if n == 1 else 's'}"


_KIND_ORDER = {"catalog file": 0, "cache": 1, "bundled": 2}


def _regions_text(regions: list[str]) -> str:
    regions = sorted(set(regions))
    return ", ".join(regions) if len(regions) <= 3 else f"{len(regions)} regions"


def _describe_sources(sources: dict[tuple[str, str], PriceSource], now: dt.datetime) -> list[str]:
    """One line per source actually used (the user's file, cache files, the bundle). More than three cache files
    read as one line, and more than three regions as their number."""
    groups: dict[tuple[str, str], list[tuple[str, PriceSource]]] = {}
    for (_, region), src in sources.items():
        groups.setdefault((src.kind, src.where), []).append((region, src))
    lines: list[str] = []
    caches = sorted((k for k in groups if k[0] == "cache"), key=lambda k: groups[k][0][0])
    if len(caches) > 3:
        entries = [e for k in caches for e in groups.pop(k)]
        oldest = min(src.as_of for _, src in entries if src.as_of)
        newest = max(src.as_of for _, src in entries if src.as_of)
        lines.append(
            f"Prices for {len(caches)} regions ({len(entries)} offers): cache {Path(caches[0][1]).parent}, fetched "
            f"{oldest:%Y-%m-%d %H:%M} to {newest:%Y-%m-%d %H:%M} UTC (oldest {age_text(now - oldest)} old)"
        )
    for (kind, where), entries in sorted(groups.items(), key=lambda kv: (_KIND_ORDER[kv[0][0]], kv[0][1])):
        regions = _regions_text([r for r, _ in entries])
        dates = [src.as_of for _, src in entries if src.as_of]
        oldest = min(dates) if dates else None
        age = None if oldest is None else max(now - oldest, dt.timedelta(0))
        count = f"{len(entries)} offer{'s' if len(entries) != 1 else ''}"
        if kind == "catalog file":
            # The user's own numbers: their age is theirs to judge.
            lines.append(f"Prices for {regions} ({count}): your catalog file {where} (it wins; gpuplan never writes it)")
        elif kind == "cache":
            lines.append(f"Prices for {regions} ({count}): cache {where}, fetched {oldest:%Y-%m-%d %H:%M} UTC "
                         f"({age_text(age)} old)")
        else:
            when = f"price date {oldest:%Y-%m-%d}, {age_text(age)} old" if oldest else "undated"
            lines.append(f"Prices for {regions} ({count}): bundled snapshot ({when})")
    return lines


def _stale_warning(sources: dict[tuple[str, str], PriceSource], now: dt.datetime) -> str | None:
    """One line for every price (cache or bundle; never the user's own file) older than STALE_AFTER, or None."""
    stale = [(region, src) for (_, region), src in sources.items()
             if src.kind != "catalog file" and src.as_of and now - src.as_of > STALE_AFTER]
    if not stale:
        return None
    regions = sorted({r for r, _ in stale})
    oldest = min(src.as_of for _, src in stale if src.as_of)
    n = len(stale)
    flag = f" --region {regions[0]}" if len(regions) == 1 else ""
    return (f"Warning: prices for {n} offer{'s' if n != 1 else ''} in {_regions_text(regions)} are more than "
            f"{STALE_AFTER.days} days old (oldest from {oldest:%Y-%m-%d}); run `gpuplan prices refresh{flag}` "
            "for today's prices")


def price_dates(offers: list[InstanceOffer]) -> str:
    """'2026-04-01', or '2026-04-01 to 2026-11-20' when the offers' prices are of several dates; '' when undated."""
    dates = sorted({o.price_date for o in offers if o.price_date})
    if not dates:
        return ""
    return f"{dates[0]}" if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def find_gpu(catalog: Catalog, key: str) -> GpuSpec:
    try:
        return catalog.gpu(key.lower())
    except KeyError:
        keys = [g.key for g in catalog.gpus]
        raise PricingError(
            f"unknown GPU {key!r}.{did_you_mean(key, keys)} Known GPUs: {', '.join(keys)} (see `gpuplan gpus`)"
        ) from None


def gpu_key_for_name(gpus: list[GpuSpec], name: str, memory_gib: float | None = None) -> str | None:
    """The catalog key of a GPU as TensorFlow or EC2 names it ('Tesla T4', 'NVIDIA A100-SXM4-80GB', EC2's 'V100'
    with 32 GiB), or None when the catalog has no specs for it. The memory tells variants apart (A100 40/80 GB);
    a device reports a little less than its datasheet, but one 20% off every variant we hold is another model."""
    compact = re.sub(r"[^a-z0-9]+", "", name.lower())
    for g in gpus:  # a listed alias first: SkyPilot's 'RTXPRO6000', EC2's 'RTX PRO Server 6000'
        if compact in {re.sub(r"[^a-z0-9]+", "", a.lower()) for a in g.aliases}:
            return g.key
    words = {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}
    # Every part of the key but a memory size must be named: 'rtx-pro-6000' is not any RTX.
    candidates = [g for g in gpus if all(part in words for part in g.key.split("-")
                                         if not re.fullmatch(r"\d+gb", part))]
    if not candidates:
        return None
    named = [g for g in candidates if any(w.endswith("gb") and w in g.key.split("-") for w in words)]
    if named:
        return named[0].key
    if memory_gib:
        best = min(candidates, key=lambda g: abs(g.memory_gib - memory_gib))
        return best.key if abs(best.memory_gib - memory_gib) <= 0.2 * best.memory_gib else None
    return min(candidates, key=lambda g: len(g.key)).key


def select_offers(
    catalog: Catalog,
    *,
    gpus: list[str] | None = None,
    instances: list[str] | None = None,
    region: str | None = None,
) -> list[InstanceOffer]:
    """Offers matching any of the GPU keys or instance types (all offers when neither is given), in a region."""
    for g in gpus or []:
        find_gpu(catalog, g)
    known_types = sorted({o.instance_type for o in catalog.offers})
    for t in instances or []:
        if t not in known_types:
            raise PricingError(
                f"unknown instance type {t!r}.{did_you_mean(t, known_types)} "
                "See `gpuplan gpus` for the catalog, or add it with --catalog FILE"
            )
    offers = [o for o in catalog.offers if region is None or o.region == region]
    if region is not None and not offers:
        raise PricingError(
            f"the catalog has no offers in region {region!r}; regions with prices: {', '.join(catalog.regions)}"
        )
    if gpus or instances:
        wanted_gpus = {g.lower() for g in gpus or []}
        offers = [o for o in offers if o.gpu in wanted_gpus or o.instance_type in (instances or [])]
        if not offers:
            where = f" in region {region}" if region else ""
            raise PricingError(f"no instance{where} carries {', '.join(gpus or instances or [])}")
    return offers
