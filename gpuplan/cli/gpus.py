"""`gpuplan gpus`: the GPUs in the catalog and the instances that carry them, with prices."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gpuplan import render
from gpuplan.cli import app, examples
from gpuplan.cli._options import CatalogOpt, FormatOpt, RegionOpt
from pricing.catalog import find_gpu, load_catalog, select_offers
from pricing.models import GpuSpec, InstanceOffer

GPU_COLUMNS = [  # --wide
    ("gpu", "gpu", None), ("name", "name", None), ("architecture", "arch", None), ("memory_gib", "GiB", None),
    ("fp32_tflops", "fp32", None), ("tf32_tflops", "tf32", None), ("fp16_tflops", "fp16 TC", None),
    ("bf16_tflops", "bf16 TC", None), ("memory_bandwidth_gbs", "GB/s", None), ("mixed", "mixed =", None),
    ("instance", "instance", None), ("gpu_count", "GPUs", None), ("vcpus", "vCPUs", None),
    ("on_demand_usd_per_hour", "on-demand $/h", render.usd), ("spot_usd_per_hour", "spot $/h", render.usd),
]
# The default view fits 100 columns: peak TFLOPS of the three paths TensorFlow takes (fp32, TF32, the 16-bit tensor
# cores that mixed precision uses), memory, and the instances with their prices.
COMPACT_COLUMNS = [
    ("gpu", "gpu", None), ("memory_gib", "GiB", None), ("memory_bandwidth_gbs", "GB/s", None),
    ("fp32_tflops", "fp32", None), ("tf32_tflops", "tf32", None), ("mixed_tflops", "mixed", None),
    ("mixed", "as", lambda v: {"float16": "fp16", "bfloat16": "bf16"}.get(v, v)), ("instance", "instance", None), ("gpu_count", "GPUs", None),
    ("on_demand_usd_per_hour", "$/h", render.usd), ("spot_usd_per_hour", "spot $/h", render.usd),
]
CSV_KEYS = [k for k, _, _ in GPU_COLUMNS] + ["mixed_tflops", "region", "price_date"]


@app.command(epilog=examples("gpuplan gpus", "gpuplan gpus --gpu a100 --wide", "gpuplan gpus --format csv"))
def gpus(
    gpu: Annotated[str | None, typer.Option("--gpu", help="Show one GPU, e.g. a10g.")] = None,
    catalog: CatalogOpt = None,
    region: RegionOpt = None,
    fmt: FormatOpt = "table",
    wide: Annotated[bool, typer.Option("--wide", help="Every column (names, fp16 and bf16 peaks, vCPUs).")] = False,
) -> None:
    """List GPUs with peak TFLOPS and the instances that carry them."""
    render.check_format(fmt)
    cat = load_catalog(catalog, region=region, notes=render.note)
    specs = [find_gpu(cat, gpu)] if gpu is not None else cat.gpus
    # load_catalog kept only --region's offers, so no second filter here.
    offers = select_offers(cat, gpus=[g.key for g in specs]) if gpu is not None else cat.offers
    rows = [row for spec in specs for row in _gpu_rows(spec, offers)]
    columns = GPU_COLUMNS if wide else COMPACT_COLUMNS
    regions = {r["region"] for r in rows if r.get("region")}
    shown = rows if wide or len(regions) < 2 else _lowest_price(rows)
    footer = "\n" + render.wrap("Peak dense TFLOPS; mixed = the 16-bit tensor cores, as fp16 or bf16. --wide: names, "
                               "vCPUs" + (f"; prices: the lowest of {len(regions)} regions (--region R for one)."
                                          if shown is not rows else "."))
    render.emit(rows, columns, fmt, csv_keys=CSV_KEYS, table_rows=_blank_repeats(shown, columns),
                footer=None if wide else footer, tight=True)


def _gpu_rows(spec: GpuSpec, offers: list[InstanceOffer]) -> list[dict[str, Any]]:
    """One row per instance carrying the GPU (one row without an instance if none does)."""
    base = {"gpu": spec.key, **spec.model_dump(exclude={"key", "source", "notes"}),
            "mixed": "bfloat16" if spec.has_bf16 else "float16",
            "mixed_tflops": spec.bf16_tflops if spec.has_bf16 else spec.fp16_tflops}
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


def _lowest_price(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per GPU and instance type, at its lowest on-demand and spot price over the regions that sell it."""
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        cur = out.setdefault((row["gpu"], row.get("instance")), dict(row))
        for key in ("on_demand_usd_per_hour", "spot_usd_per_hour"):
            prices = [v for v in (cur.get(key), row.get(key)) if v is not None]
            cur[key] = min(prices) if prices else None
    return list(out.values())


def _blank_repeats(rows: list[dict[str, Any]], columns: list[Any]) -> list[dict[str, Any]]:
    """For reading: a GPU's specs on its first row only."""
    keys = [k for k, _, _ in columns]
    spec_keys = keys[:keys.index("instance")]
    out = []
    for i, row in enumerate(rows):
        same_gpu = i > 0 and rows[i - 1]["gpu"] == row["gpu"]
        out.append({**row, **dict.fromkeys(spec_keys, "")} if same_gpu else row)
    return out
