"""Rebuild bundled_offers.csv, the offers of the bundled snapshot, from an extract of SkyPilot's AWS catalog, with the same code a
`gpuplan prices refresh --source catalog` runs (pricing.skypilot.offers_from_rows: the one spot rule).

    python pricing/data/build_bundled.py [pricing/data/skypilot_vms_v9_gpus.csv]

The extract (skypilot_vms_v9_gpus.csv, not shipped) holds the GPU rows of skypilot-org/skypilot-catalog
catalogs/v9/aws/vms.csv at commit 2c3d7ea7d76bf84cf80d382e946c1609571485fd, transcribed with GpuInfo reduced to
GpuName, GpuManufacturer and GpuMemoryMiB (Arch and the disk columns dropped; every row is x86_64). The GPUs, the
file's header and source text are kept as they are in bundled.yaml: edit them by hand; this script rewrites only
the offers, into bundled_offers.csv (one row per offer: a price table diffs well, and the
csv module reads 600 rows in milliseconds where PyYAML takes a third of a second).

PRICE_DATE: the catalog file is undated and the commit's date could not be read; its content places it in 2026-Q2
(it lists g7e and p6-b300, and its reference rows were read in that quarter). 2026-04-01 is the first day that
quarter allows, so the age gpuplan shows is never less than the real one.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from pricing.models import Catalog, InstanceOffer  # noqa: E402
from pricing.offers import Shape, family_of  # noqa: E402
from pricing.catalog import BUNDLED_OFFERS, OFFER_COLUMNS  # noqa: E402
from pricing.skypilot import Row, offers_from_rows  # noqa: E402

PRICE_DATE = dt.date(2026, 4, 1)
PRICE_SOURCE = "SkyPilot catalog v9 aws/vms.csv @2c3d7ea7 (2026-Q2)"
FAMILIES = {"p3", "p3dn", "g4dn", "g5", "g6", "g6e", "g7e", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300"}

# Per family: how its GPUs talk, and nccl-tests all_reduce bus bandwidth (GB/s) by GPU count. The figures of the
# 2025 snapshot are kept (p3 100/130, g4dn 8, g5/g6 15 and 12, p4d 230, p5 400); a family new here takes its
# interconnect's figure. NVLink 5 (B200, B300) doubles NVLink 4's per-GPU bandwidth (18 links x 100 GB/s = 1.8 TB/s
# vs 900 GB/s), and PCIe 5.0 doubles PCIe 4.0: those two figures are 2x the previous generation's, an estimate.
LINKS: dict[str, tuple[str, dict[int, float]]] = {
    "p3": ("nvlink2", {4: 100, 8: 130}), "p3dn": ("nvlink2", {8: 130}),
    "g4dn": ("pcie3", {4: 8, 8: 8}),
    "g5": ("pcie4", {4: 15, 8: 12}), "g6": ("pcie4", {4: 15, 8: 12}), "g6e": ("pcie4", {4: 15, 8: 12}),
    "g7e": ("pcie5", {2: 30, 4: 30, 8: 24}),
    "p4d": ("nvlink3", {8: 230}), "p4de": ("nvlink3", {8: 230}),
    "p5": ("nvlink4", {8: 400}), "p5e": ("nvlink4", {8: 400}), "p5en": ("nvlink4", {8: 400}),
    "p6-b200": ("nvlink5", {8: 800}), "p6-b300": ("nvlink5", {8: 800}),
}


def read_extract(path: Path) -> list[Row]:
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if family_of(r["InstanceType"]) not in FAMILIES:
                continue
            count = float(r["AcceleratorCount"])
            shape = Shape(instance_type=r["InstanceType"], gpu_name=r["AcceleratorName"], gpu_count=int(count),
                          gpu_memory_mib=int(r["GpuMemoryMiB"]), vcpus=int(float(r["vCPUs"])),
                          memory_mib=int(float(r["MemoryGiB"]) * 1024), manufacturer=r["GpuManufacturer"])
            rows.append(Row(shape=shape, arch="x86_64", on_demand=float(r["Price"]) if r["Price"] else None,
                            spot=float(r["SpotPrice"]) if r["SpotPrice"] else None, region=r["Region"],
                            zone=r["AvailabilityZone"]))
    return rows


def link_for(itype: str, count: int) -> tuple[InstanceOffer | None, str | None]:
    if count == 1:
        return None, None
    interconnect, by_count = LINKS[family_of(itype)]
    return InstanceOffer(instance_type=itype, gpu="t4", gpu_count=count, vcpus=1, memory_gib=1.0,
                         on_demand_usd_per_hour=1.0, interconnect=interconnect,
                         allreduce_gbs=by_count[count]), None


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "skypilot_vms_v9_gpus.csv"
    target = HERE / "bundled.yaml"
    text = target.read_text()
    head = text[:text.index("\noffers:\n") + 1] if "\noffers:\n" in text else text
    doc = yaml.safe_load(head)
    base = Catalog.model_validate({**doc, "offers": []})
    found = offers_from_rows(read_extract(src), base, price_source=PRICE_SOURCE, price_date=PRICE_DATE,
                             templates=link_for)
    offers = sorted((o for region_offers in found.offers.values() for o in region_offers),
                    key=lambda o: (family_of(o.instance_type), o.gpu_count, o.vcpus, o.instance_type, o.region))
    Catalog.model_validate({**doc, "offers": [o.model_dump(mode="json", exclude_unset=True) for o in offers]})
    with (HERE / BUNDLED_OFFERS).open("w", newline="") as f:
        w = csv.DictWriter(f, OFFER_COLUMNS, lineterminator="\n")
        w.writeheader()
        for o in offers:
            entry = o.model_dump(mode="json", include=set(OFFER_COLUMNS))
            w.writerow({k: "" if v is None or (k, v) == ("interconnect", "none") else v for k, v in entry.items()})
    if "\noffers:" in text:
        target.write_text(head)
    for n in found.notes:
        print("note:", n, file=sys.stderr)
    print(f"{len(offers)} offers, {len({o.region for o in offers})} regions, "
          f"{len({family_of(o.instance_type) for o in offers})} families -> {HERE / BUNDLED_OFFERS}", file=sys.stderr)


if __name__ == "__main__":
    main()
