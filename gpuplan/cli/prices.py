"""`gpuplan prices refresh` and `gpuplan prices show`: current AWS prices into the cache (from SkyPilot's public
catalog, or from AWS's own APIs), and what estimates use."""

from __future__ import annotations

from typing import Annotated

import typer

from gpuplan import render
from gpuplan.cli import app, examples
from gpuplan.cli._options import CatalogOpt, FormatOpt
from gpuplan.errors import GpuplanError
from pricing.catalog import age_text, find_gpu, resolve_prices
from pricing.models import DEFAULT_REGION

prices_app = typer.Typer(
    name="prices", no_args_is_help=True, rich_markup_mode=None,
    help="Refresh AWS prices; show which ones estimates use.\n\nrefresh fills the cache from SkyPilot's public "
         "catalog or AWS's APIs; show lists the prices estimates use and how old they are.",
    epilog=examples("gpuplan prices refresh --region us-east-1", "gpuplan prices show --gpu a10g"),
)
app.add_typer(prices_app, name="prices")

RegionsOpt = Annotated[
    list[str] | None,
    typer.Option("--region", metavar="REGION", help="AWS region to refresh; repeat for several. [default: catalog: "
                                                    "every region it prices; aws: your AWS default region, else "
                                                    f"{DEFAULT_REGION}]"),
]
AllRegionsOpt = Annotated[bool, typer.Option("--all-regions", help="aws: every region enabled for your account "
                                                                   "(catalog: every region, its default).")]
SourceOpt = Annotated[str, typer.Option("--source", metavar="catalog|aws", help="catalog: SkyPilot's public AWS "
                                        "catalog over HTTPS, no AWS account needed; aws: the Price List API and EC2 "
                                        "spot price history, with your AWS credentials.")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="catalog: download vms.csv from here instead (also "
                                            "GPUPLAN_CATALOG_URL). [default: SkyPilot's catalog on GitHub]")]
ShowRegionOpt = Annotated[str | None, typer.Option("--region", help="Only this region's prices. [default: all]")]
InstanceTypesOpt = Annotated[
    list[str] | None,
    typer.Option("--instance-type", metavar="TYPE", help="Only this instance type, e.g. g5.xlarge; repeat for several. "
                                         "[default: every GPU type gpuplan has specs for]"),
]
GpuOpt = Annotated[str | None, typer.Option("--gpu", help="Only instances with this GPU, e.g. a10g.")]

SHOW_COLUMNS = [
    ("instance_type", "instance", None), ("region", "region", None), ("gpu", "gpu", None), ("gpu_count", "x", None),
    ("vcpus", "vCPUs", None), ("memory_gib", "GiB", None),
    ("on_demand_usd_per_hour", "on-demand $/h", render.usd), ("spot_usd_per_hour", "spot $/h", render.usd),
    ("spot_usd_per_hour_min", "spot min", render.usd), ("spot_zones", "zones", None), ("price_date", "date", None),
    ("source", "source", None), ("age", "age", None),
]
CSV_KEYS = [
    "instance_type", "region", "gpu", "gpu_count", "vcpus", "memory_gib", "on_demand_usd_per_hour",
    "spot_usd_per_hour", "spot_usd_per_hour_min", "spot_zones", "price_date", "source", "as_of", "age_days", "where",
]
REFRESH_COLUMNS = [
    ("region", "region", None), ("offers", "instance types", None), ("with_on_demand", "on-demand", None),
    ("with_spot", "spot", None), ("path", "cache file", None),
]


@prices_app.command(epilog=examples("gpuplan prices refresh --region us-east-1",
                                    "gpuplan prices refresh --all-regions"))
def refresh(
    ctx: typer.Context, regions: RegionsOpt = None, all_regions: AllRegionsOpt = False,
    instance_types: InstanceTypesOpt = None, source: SourceOpt = "catalog", url: UrlOpt = None,
) -> None:
    """Fetch current on-demand and spot prices into the cache."""
    from pricing.awsclient import Backoff
    from pricing.refresh import SOURCE_CATALOG, SOURCES, refresh_prices

    if source not in SOURCES:
        raise typer.BadParameter(f"{source!r}: use {' or '.join(SOURCES)}", param_hint="--source")
    if regions and all_regions:
        raise typer.BadParameter("give --region or --all-regions, not both", param_hint="--all-regions")
    if url and source != SOURCE_CATALOG:
        raise typer.BadParameter("--url is where the catalog is downloaded from: use it with --source catalog",
                                 param_hint="--url")
    # Tests hand in a Backoff that records its waits instead of sleeping (CliRunner.invoke(..., obj=...)).
    backoff = ctx.obj if isinstance(ctx.obj, Backoff) else Backoff()
    done = refresh_prices(regions, all_regions=all_regions, instance_types=instance_types, source=source, url=url,
                          progress=render.note, backoff=backoff)
    for r in done:
        for n in r.notes:
            render.note(f"note: {r.region}: {n}")
    render.out(render.table([{**vars(r), "path": str(r.path)} for r in done], REFRESH_COLUMNS))


@prices_app.command(epilog=examples("gpuplan prices show", "gpuplan prices show --gpu a10g --format csv"))
def show(gpu: GpuOpt = None, region: ShowRegionOpt = None, catalog: CatalogOpt = None, fmt: FormatOpt = "table") -> None:
    """The prices estimates use, with source and age per row."""
    render.check_format(fmt)
    resolved = resolve_prices(catalog, region)
    # Where the prices come from (pricing returns it, the CLI says it), then the one staleness warning if any.
    for line in resolved.notes + ([resolved.stale_warning] if resolved.stale_warning else []):
        render.note(line)
    cat = resolved.catalog
    key = find_gpu(cat, gpu).key if gpu is not None else None
    rows = []
    for o in sorted(cat.offers, key=lambda o: (o.gpu, o.gpu_count, o.instance_type, o.region)):
        if key and o.gpu != key:
            continue
        src = resolved.sources.get(o.key)
        age = src.age(resolved.now) if src else None
        rows.append({
            **o.model_dump(mode="json", include={"instance_type", "region", "gpu", "gpu_count", "vcpus", "memory_gib",
                                                 "on_demand_usd_per_hour", "spot_usd_per_hour",
                                                 "spot_usd_per_hour_min", "spot_zones", "price_date"}),
            "source": src.kind if src else "-", "where": src.where if src else None,
            "as_of": src.as_of.isoformat() if src and src.as_of else None,
            "age": age_text(age), "age_days": round(age.total_seconds() / 86400, 2) if age is not None else None,
        })
    if not rows:
        where = f" in {region}" if region else ""
        raise GpuplanError(f"no instance{where} carries {gpu}; see `gpuplan prices show` for every offer")
    render.emit(rows, SHOW_COLUMNS, fmt, csv_keys=CSV_KEYS)
