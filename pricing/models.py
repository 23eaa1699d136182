"""The price catalog's schema: GPUs, the instances that carry them, and their prices."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 2  # 2: offers carry spot_zones and the one spot rule (pricing.offers.spot_summary); nvlink5
READABLE_VERSIONS = (1, 2)  # a version-1 document (a user's --catalog file) is a valid version-2 one
DEFAULT_REGION = "us-east-1"  # an offer without a region, and AWS calls when neither --region nor the profile names one
DEFAULT_STARTUP_SECONDS = 300.0  # boot, install and model load, when the catalog says nothing better

# Every number in a catalog is finite and within a physical bound, far past any real GPU or instance (the largest
# in the bundled snapshot are in brackets): a value beyond it is a typo or a unit slip, and NaN or infinity would
# reach every plan's time and cost.
Tflops = Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]  # per GPU, dense (2,250: B300 bf16)
GpuMemoryGiB = Annotated[float, Field(gt=0, le=4_096, allow_inf_nan=False)]  # (288: B300)
BandwidthGBs = Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]  # (8,000: B300 HBM3e)
UsdPerHour = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]  # (142: p6-b300.48xlarge)
HostMemoryGiB = Annotated[float, Field(gt=0, le=65_536, allow_inf_nan=False)]  # (4,096)
GpuCount = Annotated[int, Field(ge=1, le=64)]  # (8)
VCpus = Annotated[int, Field(ge=1, le=4_096)]  # (192)

Market = Literal["on-demand", "spot"]
Interconnect = Literal["none", "pcie3", "pcie4", "pcie5", "nvlink2", "nvlink3", "nvlink4", "nvlink5"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSpec(_Strict):
    """Datasheet peaks (dense, no sparsity) of one GPU model."""

    key: str = Field(description="short name used on the command line, e.g. v100")
    name: str
    architecture: str = Field(description="Volta, Turing, Ampere, Ada Lovelace, Hopper, ...")
    compute_capability: float = Field(ge=1, le=20, allow_inf_nan=False)
    memory_gib: GpuMemoryGiB
    fp32_tflops: Tflops
    tf32_tflops: Tflops | None = Field(None, description="None: no TF32 tensor cores")
    fp16_tflops: Tflops = Field(description="fp16 tensor-core peak (dense)")
    bf16_tflops: Tflops | None = Field(None, description="None: no bfloat16 tensor cores")
    memory_bandwidth_gbs: BandwidthGBs
    aliases: tuple[str, ...] = Field((), description="other names AWS, SkyPilot or drivers give it, e.g. RTXPRO6000")
    source: str = ""
    notes: str = ""

    @property
    def has_bf16(self) -> bool:
        return self.bf16_tflops is not None

    @property
    def has_tf32(self) -> bool:
        return self.tf32_tflops is not None


class InstanceOffer(_Strict):
    """One instance type in one region, with its prices in USD per hour."""

    instance_type: str
    provider: str = "aws"
    region: str = DEFAULT_REGION
    gpu: str = Field(description="GpuSpec.key")
    gpu_count: GpuCount
    vcpus: VCpus
    memory_gib: HostMemoryGiB
    on_demand_usd_per_hour: UsdPerHour | None = None
    spot_usd_per_hour: UsdPerHour | None = Field(
        None, description="median of the latest spot price per standard zone, zones at or above on-demand left out")
    spot_usd_per_hour_min: UsdPerHour | None = Field(None, description="the cheapest of those zones")
    spot_zones: int | None = Field(None, ge=0, le=100, description="how many zones the spot median is taken over")
    price_source: str = ""
    price_date: dt.date | None = None
    interconnect: Interconnect = "none"
    allreduce_gbs: BandwidthGBs | None = Field(
        None, description="gradient all-reduce bus bandwidth between the GPUs, GB/s (multi-GPU instances)"
    )
    startup_seconds: float = Field(
        DEFAULT_STARTUP_SECONDS, ge=0, le=7 * 86_400, allow_inf_nan=False, description="boot, install and model load before training starts (billed)"
    )

    @model_validator(mode="after")
    def _multi_gpu_needs_a_link(self) -> InstanceOffer:
        if self.gpu_count > 1 and self.allreduce_gbs is None:
            raise ValueError(f"allreduce_gbs is required for a {self.gpu_count}-GPU instance")
        if self.on_demand_usd_per_hour is None and self.spot_usd_per_hour is None:
            raise ValueError("give on_demand_usd_per_hour or spot_usd_per_hour")
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.instance_type, self.region)

    def price(self, market: Market) -> float | None:
        """USD per hour in this market ('on-demand' or 'spot'), or None when the catalog has no such price."""
        return self.on_demand_usd_per_hour if market == "on-demand" else self.spot_usd_per_hour


class Catalog(_Strict):
    """GPUs and offers; every offer's GPU is in `gpus`."""

    schema_version: int = SCHEMA_VERSION
    source: str = ""
    gpus: list[GpuSpec] = []
    offers: list[InstanceOffer] = []

    @model_validator(mode="after")
    def _offers_name_known_gpus(self) -> Catalog:
        if self.schema_version not in READABLE_VERSIONS:
            raise ValueError(f"schema_version {self.schema_version} is not supported (this gpuplan reads "
                             f"{' and '.join(map(str, READABLE_VERSIONS))})")
        keys = {g.key for g in self.gpus}
        for o in self.offers:
            if o.gpu not in keys:
                raise ValueError(f"offer {o.instance_type}: gpu {o.gpu!r} is not in the catalog's gpus")
        return self

    def gpu(self, key: str) -> GpuSpec:
        for g in self.gpus:
            if g.key == key:
                return g
        raise KeyError(key)

    @property
    def regions(self) -> list[str]:
        return sorted({o.region for o in self.offers})
