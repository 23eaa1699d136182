"""`gpuplan prices refresh` as a library call: fetch today's AWS prices for some regions and write their cache files.

The CLI imports this module, never `pricing.aws` (which holds the AWS calls themselves).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pricing.awsclient import Backoff, default_region
from pricing.catalog import bundled_catalog


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
    progress: Callable[[str], None] = lambda _: None, backoff: Backoff = Backoff(), now: dt.datetime | None = None,
) -> list[RefreshedRegion]:
    """Fetch the regions' prices (default: the AWS profile's region; all_regions: every enabled one), then write
    one cache file per region, only after every region was fetched: a failure leaves every previous file as it was."""
    from pricing import aws
    from pricing.cache import write_cache

    if all_regions:
        wanted = aws.enabled_regions(default_region(), backoff)
        progress(f"Refreshing {len(wanted)} regions enabled for your account...")
    else:
        wanted = list(dict.fromkeys(regions or [default_region()]))
    fetched = aws.fetch_prices(wanted, bundled_catalog(), instance_types=instance_types, now=now,
                               skip_empty=all_regions, progress=progress, backoff=backoff)
    done = []
    for r in fetched:
        offers = r.catalog.offers
        done.append(RefreshedRegion(
            region=r.region, offers=len(offers), with_on_demand=sum(o.on_demand_usd_per_hour is not None for o in offers),
            with_spot=sum(o.spot_usd_per_hour is not None for o in offers),
            path=write_cache(r.region, r.catalog, r.fetched_at), notes=r.notes,
        ))
    return done
