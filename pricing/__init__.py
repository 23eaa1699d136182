"""GPU specs, instance offers and prices: the catalog gpuplan plans against."""

from pricing.catalog import bundled_catalog, find_gpu, load_catalog, select_offers
from pricing.models import Catalog, GpuSpec, InstanceOffer

__all__ = ["Catalog", "GpuSpec", "InstanceOffer", "bundled_catalog", "find_gpu", "load_catalog", "select_offers"]
