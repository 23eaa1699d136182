"""`gpuplan gpus`: the GPUs in the catalog and the instances that carry them, with prices."""

from __future__ import annotations

from typing import Annotated

import typer

from gpuplan import render
from gpuplan.cli import app
from gpuplan.cli._options import CatalogOpt, FormatOpt, RegionOpt
from pricing.catalog import find_gpu, load_catalog, select_offers

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
    cat = load_catalog(catalog, region=region)
    specs = [find_gpu(cat, gpu)] if gpu else cat.gpus
    # load_catalog kept only --region's offers, so no second filter here.
    offers = select_offers(cat, gpus=[g.key for g in specs]) if gpu else cat.offers
    rows = []
    for spec in specs:
        base = {"gpu": spec.key, **spec.model_dump(exclude={"key", "source", "notes"}),
                "mixed": "bfloat16" if spec.has_bf16 else "float16"}
        mine = sorted((o for o in offers if o.gpu == spec.key), key=lambda o: (o.gpu_count, o.vcpus))
        for i, o in enumerate(mine or [None]):
            row = dict(base) if i == 0 or fmt != "table" else dict.fromkeys(base, "")
            if o is not None:
                row.update(o.model_dump(mode="json", include={"instance_type", "region", "gpu_count", "vcpus",
                                                              "on_demand_usd_per_hour", "spot_usd_per_hour",
                                                              "price_date", "price_source"}))
                row["instance"] = o.instance_type
            rows.append(row)
    if fmt == "json":
        render.out(render.dumps_json(rows))
    elif fmt == "csv":
        keys = [k for k, _, _ in GPU_COLUMNS] + ["region", "price_date"]
        render.out(render.to_csv(rows, keys))
    else:
        render.out(render.table(rows, GPU_COLUMNS))
