"""`gpuplan gpus`: the GPUs in the catalog and the instances that carry them, with prices."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gpuplan import render
from gpuplan.cli import app
from gpuplan.cli._options import CatalogOpt, FormatOpt, RegionOpt
from pricing.catalog import find_gpu, load_catalog, select_offers
from pricing.models import GpuSpec, InstanceOffer

GPU_COLUMNS = [
    ("gpu", "gpu", None), ("name", "name", None), ("architecture", "arch", None), ("memory_gib", "GiB", None),
    ("fp32_tflops", "fp32", None), ("tf32_tflops", "tf32", None), ("fp16_tflops", "fp16 TC", None),
    ("bf16_tflops", "bf16 TC", None), ("memory_bandwidth_gbs", "GB/s", None), ("mixed", "mixed =", None),
    ("instance", "instance", None), ("gpu_count", "x", None), ("vcpus", "vCPUs", None),
    ("on_demand_usd_per_hour", "on-demand $/h", render.usd), ("spot_usd_per_hour", "spot $/h", render.usd),
]


@app.command()
def gpus(
    gpu: Annotated[str | None, typer.Option("--gpu", help="Show one GPU, e.g. a10g.")] = None,
    catalog: CatalogOpt = None,
    region: RegionOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List GPUs with peak TFLOPS and the instances that carry them. Example: gpuplan gpus --gpu a100"""
    render.check_format(fmt)
    cat = load_catalog(catalog, region=region, notes=render.note)
    specs = [find_gpu(cat, gpu)] if gpu else cat.gpus
    # load_catalog kept only --region's offers, so no second filter here.
    offers = select_offers(cat, gpus=[g.key for g in specs]) if gpu else cat.offers
    rows = [row for spec in specs for row in _gpu_rows(spec, offers)]
    render.emit(rows, GPU_COLUMNS, fmt, csv_keys=[k for k, _, _ in GPU_COLUMNS] + ["region", "price_date"],
                table_rows=_blank_repeats(rows))


def _gpu_rows(spec: GpuSpec, offers: list[InstanceOffer]) -> list[dict[str, Any]]:
    """One row per instance carrying the GPU (one row without an instance if none does)."""
    base = {"gpu": spec.key, **spec.model_dump(exclude={"key", "source", "notes"}),
            "mixed": "bfloat16" if spec.has_bf16 else "float16"}
    mine = sorted((o for o in offers if o.gpu == spec.key), key=lambda o: (o.gpu_count, o.vcpus))
    rows = []
    for o in mine or [None]:
        row = dict(base)
        if o is not None:
            row.update(o.model_dump(mode="json", include={"instance_type", "region", "gpu_count", "vcpus",
                                                          "on_demand_usd_per_hour", "spot_usd_per_hour",
                                                          "price_date", "price_source"}))
            row["instance"] = o.instance_type
        rows.append(row)
    return rows


def _blank_repeats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For reading: a GPU's specs on its first row only."""
    spec_keys = [k for k, _, _ in GPU_COLUMNS[:GPU_COLUMNS.index(("instance", "instance", None))]]
    out = []
    for i, row in enumerate(rows):
        same_gpu = i > 0 and rows[i - 1]["gpu"] == row["gpu"]
        out.append({**row, **dict.fromkeys(spec_keys, "")} if same_gpu else row)
    return out
