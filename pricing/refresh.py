"""`gpuplan prices refresh` as a library call: fetch today's prices for some regions and write their cache files.

Two sources, one cache format: SOURCE_CATALOG downloads SkyPilot's public AWS catalog (no AWS account needed; as
fresh as SkyPilot's last update of it), SOURCE_AWS asks AWS's Price List API and EC2 spot price history (needs
credentials; today's prices). The CLI imports this module, never `pricing.aws` or `pricing.skypilot`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pricing.awsclient import Backoff
# bundled_catalog is looked up when called, not bound at import: tests swap pricing.catalog.bundled_catalog for a
# small catalog, and this module first imported under that swap would otherwise keep it for the whole session.
from pricing import catalog as _catalog
from pricing.errors import PricingError

SOURCE_CATALOG = "catalog"
SOURCE_AWS = "aws"
SOURCES = (SOURCE_CATALOG, SOURCE_AWS)


@dataclass(frozen=True)
class RefreshedRegion:
    region: str
    offers: int
    with_on_demand: int
    with_spot: int
    path: Path
    notes: list[str] = field(default_factory=list)


def refresh_prices(
    regions: list[str] | None = None, *, all_regions: bool = False, instance_types: list[str] | None = None,
    source: str = SOURCE_CATALOG, url: str | None = None,
    progress: Callable[[str], None] = lambda _: None, backoff: Backoff = Backoff(), now: dt.datetime | None = None,
) -> list[RefreshedRegion]:
    """Fetch the regions' prices, then write one cache file per region, only after every region was fetched and
    checked: a failure leaves every previous file as it was.

    catalog: every region the catalog prices (or only `regions`); aws: the AWS profile's region (or `regions`, or
    with all_regions every region enabled for the account).
    """
    from pricing.cache import write_cache

    if source not in SOURCES:
        raise PricingError(f"unknown price source {source!r}; use {' or '.join(SOURCES)}")
    for t in instance_types or []:  # before any download or AWS call
        check_instance_type(t)
    if source == SOURCE_CATALOG:
        from pricing.skypilot import fetch_catalog

        got = fetch_catalog(_catalog.bundled_catalog(), url=url, regions=None if all_regions else regions,
                            instance_types=instance_types, now=now, progress=progress)
        for n in got.notes:  # about the whole file, not one region
            progress(f"note: {n}")
        fetched = [(region, cat, got.fetched_at, []) for region, cat in sorted(got.catalogs.items())]
    else:
        fetched = _fetch_aws(regions, all_regions, instance_types, progress, backoff, now)
    done = []
    for region, catalog, fetched_at, notes in fetched:
        offers = catalog.offers
        done.append(RefreshedRegion(
            region=region, offers=len(offers), with_on_demand=sum(o.on_demand_usd_per_hour is not None for o in offers),
            with_spot=sum(o.spot_usd_per_hour is not None for o in offers),
            path=write_cache(region, catalog, fetched_at), notes=notes,
        ))
    return done


_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,30}\.[a-z0-9-]{1,30}$")  # g5.xlarge, p6-b200.48xlarge


def check_instance_type(name: str) -> str:
    if not _INSTANCE_TYPE.match(name):
        raise PricingError(f"{name!r} is not an EC2 instance type name; use one like g5.xlarge (see `gpuplan gpus`)")
    return name


def _fetch_aws(regions: list[str] | None, all_regions: bool, instance_types: list[str] | None,
               progress: Callable[[str], None], backoff: Backoff, now: dt.datetime | None) -> list[tuple]:
    from pricing import aws
    from pricing.awsclient import default_region

    if all_regions:
        wanted = aws.enabled_regions(default_region(), backoff)
        progress(f"Refreshing {len(wanted)} regions enabled for your account...")
    else:
        wanted = list(dict.fromkeys(regions or [default_region()]))
    fetched = aws.fetch_prices(wanted, _catalog.bundled_catalog(), instance_types=instance_types, now=now,
                               skip_empty=all_regions, progress=progress, backoff=backoff)
    return [(r.region, r.catalog, r.fetched_at, r.notes) for r in fetched]
