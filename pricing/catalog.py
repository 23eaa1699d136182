"""Load the catalog: the bundled snapshot, overlaid by a user's YAML file; look GPUs and offers up in it.

Query functions take the catalog as an argument so tests can pass a three-row one.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gpuplan.errors import GpuplanError, did_you_mean, one_line
from pricing.models import Catalog, GpuSpec, InstanceOffer

BUNDLED = "bundled.yaml"


def _describe(err: ValidationError, doc: dict[str, Any]) -> str:
    """'offers[2] (g5.xlarge).on_demand_usd_per_hour: Input should be greater than 0' for the first error."""
    first = err.errors()[0]
    loc = list(first["loc"])
    parts: list[str] = []
    node: Any = doc
    for p in loc:
        if isinstance(p, int):
            label = ""
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict):
                label = node[p].get("instance_type") or node[p].get("key") or ""
            parts[-1] += f"[{p}]" + (f" ({label})" if label else "")
            node = node[p] if isinstance(node, list) and p < len(node) else None
        else:
            parts.append(str(p))
            node = node.get(p) if isinstance(node, dict) else None
    where = ".".join(parts) or "catalog"
    return f"{where}: {first['msg']}"


def parse_catalog(doc: Any, origin: str) -> Catalog:
    if not isinstance(doc, dict):
        raise GpuplanError(f"{origin}: a catalog is a YAML mapping with 'gpus' and/or 'offers' lists")
    try:
        return Catalog.model_validate(doc)
    except ValidationError as e:
        raise GpuplanError(f"{origin}: {_describe(e, doc)}") from None


def read_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise GpuplanError(f"{what} {path} does not exist; check the path")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise GpuplanError(f"{what} {path} is not valid YAML: {one_line(e)}") from None


@cache
def bundled_catalog() -> Catalog:
    text = resources.files("pricing").joinpath("data", BUNDLED).read_text()
    return parse_catalog(yaml.safe_load(text), f"bundled {BUNDLED}")


def overlay(base: Catalog, doc: Any, origin: str) -> Catalog:
    """Add or override GPUs (by key) and offers (by instance type and region) from a user's catalog document.

    An entry that names an existing GPU or offer only needs the fields it changes: `{instance_type: p3.2xlarge,
    on_demand_usd_per_hour: 2.1}` is a private price. A new entry needs every required field.
    """
    if not isinstance(doc, dict):
        raise GpuplanError(f"{origin}: a catalog is a YAML mapping with 'gpus' and/or 'offers' lists")
    unknown = set(doc) - {"schema_version", "source", "gpus", "offers"}
    if unknown:
        raise GpuplanError(f"{origin}: unknown top-level field(s) {', '.join(sorted(unknown))}; use gpus and offers")
    merged: dict[str, Any] = base.model_dump(mode="json")
    merged["schema_version"] = doc.get("schema_version", merged["schema_version"])
    for section, key_of in (("gpus", lambda e: e.get("key")), ("offers", _offer_key)):
        entries = doc.get(section) or []
        if not isinstance(entries, list):
            raise GpuplanError(f"{origin}: {section} must be a list")
        existing = {key_of(e): i for i, e in enumerate(merged[section])}
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise GpuplanError(f"{origin}: {section}[{n}] must be a mapping of field: value")
            k = key_of(entry)
            if k in existing:
                merged[section][existing[k]] = {**merged[section][existing[k]], **entry}
            else:
                existing[k] = len(merged[section])
                merged[section].append(entry)
    try:
        return Catalog.model_validate(merged)
    except ValidationError as e:
        raise GpuplanError(f"{origin}: {_describe(e, merged)}") from None


def _offer_key(entry: dict[str, Any]) -> tuple[Any, Any]:
    return (entry.get("instance_type"), entry.get("region", "us-east-1"))


def load_catalog(user_file: Path | None = None, base: Catalog | None = None) -> Catalog:
    """The base catalog (bundled snapshot by default) with the user's `--catalog` file laid over it."""
    catalog = base if base is not None else bundled_catalog()
    if user_file is not None:
        catalog = overlay(catalog, read_yaml(Path(user_file), "catalog file"), f"catalog file {user_file}")
    return catalog


def find_gpu(catalog: Catalog, key: str) -> GpuSpec:
    try:
        return catalog.gpu(key.lower())
    except KeyError:
        keys = [g.key for g in catalog.gpus]
        raise GpuplanError(
            f"unknown GPU {key!r}.{did_you_mean(key, keys)} Known GPUs: {', '.join(keys)} (see `gpuplan gpus`)"
        ) from None


def select_offers(
    catalog: Catalog,
    *,
    gpus: list[str] | None = None,
    instances: list[str] | None = None,
    region: str | None = None,
) -> list[InstanceOffer]:
    """Offers matching any of the GPU keys or instance types (all offers when neither is given), in a region."""
    for g in gpus or []:
        find_gpu(catalog, g)
    known_types = sorted({o.instance_type for o in catalog.offers})
    for t in instances or []:
        if t not in known_types:
            raise GpuplanError(
                f"unknown instance type {t!r}.{did_you_mean(t, known_types)} "
                "See `gpuplan gpus` for the catalog, or add it with --catalog FILE"
            )
    offers = [o for o in catalog.offers if region is None or o.region == region]
    if region is not None and not offers:
        raise GpuplanError(
            f"the catalog has no offers in region {region!r}; regions with prices: {', '.join(catalog.regions)}"
        )
    if gpus or instances:
        wanted_gpus = {g.lower() for g in gpus or []}
        offers = [o for o in offers if o.gpu in wanted_gpus or o.instance_type in (instances or [])]
        if not offers:
            raise GpuplanError(f"no instance in region {region} carries {', '.join(gpus or instances or [])}")
    return offers
