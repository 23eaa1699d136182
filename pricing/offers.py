"""What the two refreshes (AWS's APIs, SkyPilot's public catalog) and the bundled snapshot share: an instance's
shape and GPU key, the one spot summary, and the bundled offer that lends interconnect figures.

The spot rule, everywhere gpuplan states a spot price: per instance type and region, take the latest spot price of
each standard Availability Zone; leave out Local Zones and Wavelength zones (another price list, few users, often
no capacity), zones without a price, and zones quoting at or above the on-demand price (a zone with no spot capacity
to sell quotes on-demand; counting it would pull the median toward a price no spot user pays). The spot price is the
median of the rest; the minimum and the number of zones are kept beside it.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from pricing.catalog import gpu_key_for_name
from pricing.models import GpuSpec, InstanceOffer

# Zone IDs ('use1-az4') and zone names ('us-east-1a') of standard zones. Local Zones ('use1-atl2-az1',
# 'us-east-1-atl-2a') and Wavelength zones ('use1-wl1-bos-wlz1', 'us-east-1-wl1-bos-wlz-1') match neither.
_STANDARD_ZONE_ID = re.compile(r"^[a-z]+\d+-az\d+$")
_STANDARD_ZONE_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+[a-z]$")


def is_standard_zone(zone: str) -> bool:
    """True for a region's own Availability Zones, by ID or by name; False for Local and Wavelength zones."""
    z = zone.strip()
    return bool(_STANDARD_ZONE_ID.match(z) or _STANDARD_ZONE_NAME.match(z))


@dataclass(frozen=True)
class SpotSummary:
    median: float
    min: float
    zones: int


def spot_summary(zone_prices: Mapping[str, float | None], on_demand: float | None) -> SpotSummary | None:
    """The spot rule (see the module's docstring) over {zone: that zone's latest spot price}; None when no zone is
    left. Without an on-demand price (p5e is sold spot and by capacity block only) no zone is left out for it."""
    kept = [p for z, p in zone_prices.items()
            if p is not None and p > 0 and is_standard_zone(z) and (on_demand is None or p < on_demand)]
    if not kept:
        return None
    return SpotSummary(median=round(float(statistics.median(kept)), 6), min=float(min(kept)), zones=len(kept))


@dataclass(frozen=True)
class Shape:
    """One instance type as EC2 or the SkyPilot catalog describes it."""

    instance_type: str
    gpu_name: str
    gpu_count: int
    gpu_memory_mib: int
    vcpus: int
    memory_mib: int
    manufacturer: str = "NVIDIA"
    partition: float = 1.0


def gpu_key(shape: Shape, gpus: list[GpuSpec]) -> str | None:
    """The catalog GPU key for an EC2 GPU ("V100" + 32 GiB -> v100-32gb), or None when gpuplan has no specs (or
    it is a fraction of a GPU, or not NVIDIA: the stack is CUDA TensorFlow)."""
    if shape.partition < 1 or shape.gpu_count < 1 or shape.manufacturer.upper() != "NVIDIA":
        return None
    return gpu_key_for_name(gpus, shape.gpu_name, shape.gpu_memory_mib / 1024 or None)


def family_of(itype: str) -> str:
    return itype.split(".")[0]


def template_for(itype: str, count: int, offers: list[InstanceOffer]) -> tuple[InstanceOffer | None, str | None]:
    """(the bundled offer that lends interconnect and startup figures, the sibling's name when it is not the type
    itself): the same type, else the same family's multi-GPU type nearest in GPU count."""
    same = [o for o in offers if o.instance_type == itype]
    if same:
        return same[0], None
    if count == 1:
        return None, None
    siblings = [o for o in offers if family_of(o.instance_type) == family_of(itype) and o.gpu_count > 1]
    if not siblings:
        return None, None
    sib = min(siblings, key=lambda o: abs(o.gpu_count - count))
    return sib, sib.instance_type


def startup_of(template: InstanceOffer | None) -> dict[str, float]:
    """The template's startup_seconds as a keyword, only where a catalog set it: an offer without one gets the
    performance model's start-up phases, not the default figure."""
    if template is not None and "startup_seconds" in template.model_fields_set:
        return {"startup_seconds": template.startup_seconds}
    return {}
