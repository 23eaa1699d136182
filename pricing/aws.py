"""Today's AWS prices for GPU instances: on-demand from the Price List API, spot from EC2's spot price history,
shapes (GPU model and count, vCPUs, memory) from EC2's instance types.

boto3 is imported inside functions: `gpuplan estimate` never pays for it. Every AWS failure becomes one PricingError
line with a fix; nothing here writes a file (the caller writes the cache only after every region succeeded).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pricing.awsclient import Backoff, make_client, translate
from pricing.awsclient import call as aws_call
from pricing.errors import PricingError, did_you_mean
from pricing.models import Catalog, InstanceOffer
from pricing.offers import startup_of, Shape, family_of, gpu_key, spot_summary, template_for

# The Price List API has endpoints in us-east-1, eu-central-1 and ap-south-1 only; us-east-1 serves every region.
PRICING_REGION = "us-east-1"
NEEDS = ("the credentials need pricing:GetProducts, ec2:DescribeSpotPriceHistory, ec2:DescribeInstanceTypes, "
         "ec2:DescribeRegions")
KEPT = "; the previous price cache is kept"
_SPOT_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]


def explain(err: BaseException, what: str, region: str) -> PricingError | None:
    """The one-line message with a fix for an AWS failure while reading prices, or None for a bug."""
    return translate(err, what, region=region, needs=NEEDS, after=KEPT)


def client(service: str, region: str) -> Any:
    """make_client with its failures (a missing profile, a bad config file) explained like a call's."""
    try:
        return make_client(service, region)
    except Exception as e:
        mapped = explain(e, f"set up the {service} client", region)
        if mapped is None:
            raise
        raise mapped from None


def call(fn: Callable[..., Any], what: str, region: str, *, backoff: Backoff = Backoff(), **kwargs: Any) -> Any:
    """fn(**kwargs), retrying a throttle, with a failure explained in one line that says the cache is kept."""
    return aws_call(fn, what, region, backoff=backoff, needs=NEEDS, after=KEPT, **kwargs)


def _pages(fn: Callable[..., Any], what: str, region: str, key: str, backoff: Backoff, **kwargs: Any) -> Iterable[Any]:
    token: str | None = None
    while True:
        page = call(fn, what, region, backoff=backoff, **kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


# --- instance shapes -------------------------------------------------------------------------------------------


def gpu_shapes(ec2: Any, region: str, backoff: Backoff = Backoff()) -> dict[str, Shape]:
    """The GPU instance types offered in the region (all NVIDIA and other GPU types start with g or p)."""
    shapes: dict[str, Shape] = {}
    for t in _pages(ec2.describe_instance_types, "describe instance types", region, "InstanceTypes", backoff,
                    Filters=[{"Name": "instance-type", "Values": ["g*", "p*"]}]):
        gpus = (t.get("GpuInfo") or {}).get("Gpus") or []
        if not gpus:
            continue
        g = gpus[0]
        shapes[t["InstanceType"]] = Shape(
            instance_type=t["InstanceType"], gpu_name=g.get("Name", "?"), gpu_count=int(g.get("Count", 0)),
            gpu_memory_mib=int((g.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
            vcpus=int(t["VCpuInfo"]["DefaultVCpus"]), memory_mib=int(t["MemoryInfo"]["SizeInMiB"]),
            manufacturer=g.get("Manufacturer", ""), partition=float(g.get("GpuPartitionSize", 1.0) or 1.0),
        )
    return shapes


# --- prices ----------------------------------------------------------------------------------------------------


def parse_price_item(item: str | dict[str, Any]) -> tuple[str, str, float | None, dict[str, Any]]:
    """(instance type, region code, USD per hour or None, attributes) from one Price List entry (a JSON string)."""
    doc = json.loads(item) if isinstance(item, str) else item
    attrs = doc.get("product", {}).get("attributes", {})
    usd: float | None = None
    if attrs.get("marketoption", "OnDemand") != "OnDemand":  # capacity blocks list $0.00 hours: not a price
        return attrs.get("instanceType", ""), attrs.get("regionCode", ""), None, attrs
    for term in (doc.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            if dim.get("unit", "Hrs") not in ("Hrs", "Hours"):
                continue
            try:
                v = float(dim.get("pricePerUnit", {}).get("USD", "nan"))
            except ValueError:
                continue
            if v > 0 and (usd is None or v < usd):
                usd = v
    return attrs.get("instanceType", ""), attrs.get("regionCode", ""), usd, attrs


def on_demand_prices(pricing: Any, instance_types: Iterable[str], regions: list[str], backoff: Backoff = Backoff(),
                     ) -> dict[tuple[str, str], float]:
    """{(instance type, region): Linux on-demand USD/h}, one paginated query per instance type."""
    wanted = set(regions)
    prices: dict[tuple[str, str], tuple[int, float]] = {}
    for itype in sorted(set(instance_types)):
        filters = {
            "instanceType": itype, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
            "capacitystatus": "Used", "locationType": "AWS Region", "marketoption": "OnDemand",
        }
        if len(wanted) == 1:
            filters["regionCode"] = regions[0]
        for item in _pages(
            pricing.get_products, "read the AWS Price List", PRICING_REGION, "PriceList", backoff, ServiceCode="AmazonEC2",
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()], MaxResults=100,
        ):
            t, region, usd, attrs = parse_price_item(item)
            if t != itype or region not in wanted or usd is None:
                continue
            # Plain RunInstances beats variants (capacity blocks, licensed AMIs) that slip through the filters.
            rank = 0 if attrs.get("operation", "RunInstances") == "RunInstances" else 1
            old = prices.get((t, region))
            if old is None or (rank, usd) < old:
                prices[(t, region)] = (rank, usd)
    return {k: v for k, (_, v) in prices.items()}


def spot_prices(ec2: Any, region: str, instance_types: Iterable[str], now: dt.datetime, backoff: Backoff = Backoff(),
                ) -> dict[str, dict[str, float]]:
    """{instance type: {zone: its latest Linux spot price}}; pricing.offers.spot_summary makes one figure of them."""
    types = sorted(set(instance_types))
    if not types:
        return {}
    latest: dict[tuple[str, str], tuple[dt.datetime, float]] = {}
    for rec in _pages(ec2.describe_spot_price_history, "read spot price history", region, "SpotPriceHistory", backoff,
                      InstanceTypes=types, ProductDescriptions=_SPOT_PRODUCTS, StartTime=now, MaxResults=1000):
        key = (rec["InstanceType"], rec["AvailabilityZone"])
        price = float(rec["SpotPrice"])
        when = rec["Timestamp"]
        if price > 0 and (key not in latest or when > latest[key][0]):
            latest[key] = (when, price)
    by_type: dict[str, dict[str, float]] = {}
    for (itype, zone), (_, price) in latest.items():
        by_type.setdefault(itype, {})[zone] = price
    return by_type


# --- one refresh -----------------------------------------------------------------------------------------------


@dataclass
class RegionPrices:
    region: str
    catalog: Catalog
    fetched_at: dt.datetime
    with_spot: int = 0
    notes: list[str] = field(default_factory=list)


def _template(itype: str, count: int, bundled: Catalog) -> tuple[InstanceOffer | None, str | None]:
    return template_for(itype, count, bundled.offers)


@dataclass
class _RegionPlan:
    """What to price in one region: per instance type its shape, GPU key and the bundled offer lending figures."""

    ec2: Any
    wanted: dict[str, tuple[Shape, str, InstanceOffer | None]]
    notes: list[str]


def fetch_prices(
    regions: list[str], bundled: Catalog, *, instance_types: list[str] | None = None, now: dt.datetime | None = None,
    skip_empty: bool = False, progress: Callable[[str], None] = lambda _: None, backoff: Backoff = Backoff(),
) -> list[RegionPrices]:
    """Shapes, on-demand and spot prices for the GPU instance types of each region (or only `instance_types`).

    Writes nothing. skip_empty (--all-regions): a region without any of the types is skipped, not an error.
    """
    from pricing.cache import check_region

    for region in regions:
        check_region(region)
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    plans: dict[str, _RegionPlan] = {}
    unknown_models: dict[str, set[str]] = {}
    for region in regions:
        progress(f"Reading GPU instance types in {region}...")
        plan = _plan_region(region, bundled, instance_types, skip_empty, unknown_models, backoff)
        if plan.wanted:
            plans[region] = plan
        else:
            progress(f"Skipping {region}: no GPU instance types gpuplan knows")
    if not plans:
        raise PricingError("none of the regions offers a GPU instance type gpuplan has specs for")
    if unknown_models:
        listed = "; ".join(f"{m} ({', '.join(sorted(ts)[:3])}{', ...' if len(ts) > 3 else ''})"
                           for m, ts in sorted(unknown_models.items()))
        progress(f"Skipped GPU models gpuplan has no specs for: {listed}")

    types = {t for p in plans.values() for t in p.wanted}
    progress(f"Reading on-demand prices from the AWS Price List API ({len(types)} instance types)...")
    on_demand = on_demand_prices(client("pricing", PRICING_REGION), types, list(plans), backoff)

    results: list[RegionPrices] = []
    for region, plan in plans.items():
        progress(f"Reading spot prices in {region}...")
        spot = spot_prices(plan.ec2, region, plan.wanted, now, backoff)
        offers = _priced_offers(region, plan, on_demand, spot, now)
        if not offers:
            msg = f"AWS lists no prices in {region} for the GPU instance types it offers there; pick another region"
            if not skip_empty:
                raise PricingError(msg)
            progress(f"Skipping {region}: no prices")
            continue
        used = {o.gpu for o in offers}
        catalog = Catalog(
            source=f"AWS {region}: Price List API (on-demand, Linux, shared tenancy) and EC2 spot price history "
                   f"(latest per standard zone below on-demand: median, min, zones), fetched {_stamp(now)}. "
                   "GPU specs and interconnects: bundled.",
            gpus=[g for g in bundled.gpus if g.key in used],
            offers=sorted(offers, key=lambda o: (o.gpu, o.gpu_count, o.instance_type)),
        )
        results.append(RegionPrices(region=region, catalog=catalog, fetched_at=now,
                                    with_spot=sum(o.spot_usd_per_hour is not None for o in offers),
                                    notes=plan.notes))
    return results


def _stamp(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M UTC")


def _plan_region(region: str, bundled: Catalog, instance_types: list[str] | None, skip_empty: bool,
                 unknown_models: dict[str, set[str]], backoff: Backoff) -> _RegionPlan:
    """The region's GPU instance types gpuplan has specs for (or only `instance_types`, each of which must be)."""
    ec2 = client("ec2", region)
    plan = _RegionPlan(ec2=ec2, wanted={}, notes=[])
    shapes = gpu_shapes(ec2, region, backoff)
    if instance_types:
        missing = [t for t in instance_types if t not in shapes]
        if missing and not skip_empty:
            hint = did_you_mean(missing[0], list(shapes))
            raise PricingError(
                f"region {region} does not offer {', '.join(missing)} (or it is not a GPU instance type).{hint} "
                "Pick another region, or see `gpuplan prices show` for where it is priced"
            )
        shapes = {t: s for t, s in shapes.items() if t in instance_types}
    for itype, shape in sorted(shapes.items()):
        key = gpu_key(shape, bundled.gpus)
        if key is None and not instance_types:
            if shape.partition >= 1:
                unknown_models.setdefault(f"{shape.manufacturer} {shape.gpu_name}".strip(), set()).add(itype)
            continue
        if instance_types and key is None:
            raise PricingError(f"{itype} carries a {shape.manufacturer} {shape.gpu_name}, a GPU gpuplan has no "
                               "specs for; add the GPU and the offer with --catalog FILE")
        template, borrowed = _template(itype, shape.gpu_count, bundled)
        if shape.gpu_count > 1 and template is None:
            plan.notes.append(f"{itype}: {shape.gpu_count} GPUs but no interconnect data for the "
                              f"{family_of(itype)} family; skipped (add it with allreduce_gbs in a --catalog file)")
            continue
        if borrowed:
            plan.notes.append(f"{itype}: interconnect figures borrowed from {borrowed}")
        plan.wanted[itype] = (shape, key, template)
    if not plan.wanted and not skip_empty:
        raise PricingError(f"region {region} offers none of the GPU instance types gpuplan has specs for; pick "
                           "another region (see `gpuplan prices show` for regions with prices)")
    return plan


def _priced_offers(region: str, plan: _RegionPlan, on_demand: dict[tuple[str, str], float],
                   spot: dict[str, dict[str, float]], now: dt.datetime) -> list[InstanceOffer]:
    offers: list[InstanceOffer] = []
    unpriced: list[str] = []
    for itype, (shape, key, template) in plan.wanted.items():
        od = on_demand.get((itype, region))
        sp = spot_summary(spot.get(itype, {}), od)
        if od is None and sp is None:
            unpriced.append(itype)
            continue
        multi = template is not None and shape.gpu_count > 1
        offers.append(InstanceOffer(
            instance_type=itype, provider="aws", region=region, gpu=key, gpu_count=shape.gpu_count,
            vcpus=shape.vcpus, memory_gib=round(shape.memory_mib / 1024, 2), on_demand_usd_per_hour=od,
            spot_usd_per_hour=sp.median if sp else None, spot_usd_per_hour_min=sp.min if sp else None,
            spot_zones=sp.zones if sp else None,
            price_source=f"AWS Price List API (on-demand) and EC2 spot price history, fetched {_stamp(now)}",
            price_date=now.date(),
            interconnect=template.interconnect if multi else "none",  # type: ignore[union-attr]
            allreduce_gbs=template.allreduce_gbs if multi else None,  # type: ignore[union-attr]
            **startup_of(template),
        ))
    if unpriced:
        plan.notes.append(f"no Linux on-demand or spot price for {', '.join(unpriced)}; left out")
    return offers


def enabled_regions(home_region: str, backoff: Backoff = Backoff()) -> list[str]:
    ec2 = client("ec2", home_region)
    regions = call(ec2.describe_regions, "list regions", home_region, backoff=backoff)
    return sorted(r["RegionName"] for r in regions.get("Regions", []))
