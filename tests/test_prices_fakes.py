"""Stand-ins for the AWS Price List API, shared by the tests/test_prices_*.py files (no tests here).

Entries are shaped like real `get_products` answers for AmazonEC2: a JSON string per product with
product.attributes and terms.OnDemand.{SKU.TERM}.priceDimensions.{SKU.TERM.RATE}.pricePerUnit.USD (and a Reserved
term the parser must ignore).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pricing.awsclient import Backoff

# Linux on-demand USD/h, us-east-1 and eu-west-1, as published in late 2025.
ON_DEMAND = {
    ("g4dn.xlarge", "us-east-1"): 0.526, ("g4dn.12xlarge", "us-east-1"): 3.912,
    ("g5.xlarge", "us-east-1"): 1.006, ("g5.12xlarge", "us-east-1"): 5.672, ("g6.xlarge", "us-east-1"): 0.8048,
    ("p4d.24xlarge", "us-east-1"): 21.957642, ("p5.48xlarge", "us-east-1"): 55.04,
    ("g5.xlarge", "eu-west-1"): 1.123, ("g4dn.xlarge", "eu-west-1"): 0.587,
}
SHAPES = {  # instance type: (gpus, vcpus, memory MiB, GPU name, GPU memory MiB)
    "g4dn.xlarge": (1, 4, 16384, "T4", 16384), "g4dn.12xlarge": (4, 48, 196608, "T4", 16384),
    "g5.xlarge": (1, 4, 16384, "A10G", 24576), "g5.12xlarge": (4, 48, 196608, "A10G", 24576),
    "g6.xlarge": (1, 4, 16384, "L4", 24576), "p4d.24xlarge": (8, 96, 1179648, "A100", 40960),
    "p5.48xlarge": (8, 192, 2097152, "H100", 81920),
}
LOCATIONS = {"us-east-1": "US East (N. Virginia)", "eu-west-1": "Europe (Ireland)"}


def _sku(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:16].upper()


def price_item(instance_type: str, region: str, usd: float, *, operation: str = "RunInstances",
               market: str = "OnDemand") -> str:
    """One PriceList entry as the API returns it: a JSON string. market="CapacityBlock": an EC2 Capacity Block
    product, which has shared tenancy, Linux, capacitystatus Used and a $0.00 OnDemand hour like the real ones."""
    gpus, vcpus, mem_mib, _, gpu_mib = SHAPES.get(instance_type, (1, 4, 16384, "T4", 16384))
    sku = _sku(instance_type, region, operation, market)
    on_demand_term, reserved_term = "JRTCKXETXF", "4NA7Y494T4"
    doc: dict[str, Any] = {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "servicecode": "AmazonEC2", "instanceType": instance_type, "instanceFamily": "GPU instance",
                "regionCode": region, "location": LOCATIONS.get(region, region), "locationType": "AWS Region",
                "vcpu": str(vcpus), "memory": f"{mem_mib // 1024:,} GiB", "gpu": str(gpus),
                "gpuMemory": f"{gpu_mib // 1024 * gpus} GB", "storage": "EBS only", "operatingSystem": "Linux",
                "tenancy": "Shared", "preInstalledSw": "NA", "licenseModel": "No License required",
                "capacitystatus": "Used", "marketoption": market, "operation": operation,
                "usagetype": f"{'BoxUsage' if market == 'OnDemand' else 'CapacityBlock'}:{instance_type}", "currentGeneration": "Yes",
                "physicalProcessor": "AMD EPYC 7R32", "networkPerformance": "Up to 25 Gigabit",
                "processorArchitecture": "64-bit", "normalizationSizeFactor": "8", "availabilityzone": "NA",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.{on_demand_term}": {
                    "priceDimensions": {
                        f"{sku}.{on_demand_term}.6YS6EN2CT7": {
                            "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                            "description": f"${usd:.4f} per On Demand Linux {instance_type} Instance Hour",
                            "rateCode": f"{sku}.{on_demand_term}.6YS6EN2CT7",
                            "pricePerUnit": {"USD": f"{usd:.10f}"},
                        }
                    },
                    "sku": sku, "effectiveDate": "2025-11-01T00:00:00Z", "offerTermCode": on_demand_term,
                    "termAttributes": {},
                }
            },
            "Reserved": {
                f"{sku}.{reserved_term}": {
                    "priceDimensions": {
                        f"{sku}.{reserved_term}.2TG2D8R56U": {
                            "unit": "Quantity", "pricePerUnit": {"USD": f"{usd * 5000:.0f}"},
                            "description": "Upfront Fee", "rateCode": f"{sku}.{reserved_term}.2TG2D8R56U",
                            "appliesTo": [], "beginRange": "0", "endRange": "Inf",
                        },
                        f"{sku}.{reserved_term}.6YS6EN2CT7": {
                            "unit": "Hrs", "pricePerUnit": {"USD": "0.0000000000"},
                            "description": "Linux/UNIX (Amazon VPC), reserved", "rateCode": f"{sku}.{reserved_term}.6YS6EN2CT7",
                            "appliesTo": [], "beginRange": "0", "endRange": "Inf",
                        },
                    },
                    "sku": sku, "effectiveDate": "2025-11-01T00:00:00Z", "offerTermCode": reserved_term,
                    "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard",
                                       "PurchaseOption": "All Upfront"},
                }
            },
        },
        "version": "20251101000000",
        "publicationDate": "2025-11-01T00:00:00Z",
    }
    return json.dumps(doc)


def expected_filters(instance_type: str, region: str | None) -> list[dict[str, str]]:
    fields = {
        "instanceType": instance_type, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
        "capacitystatus": "Used", "locationType": "AWS Region", "marketoption": "OnDemand",
    }
    if region:
        fields["regionCode"] = region
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def stubbed_pricing() -> tuple[Any, Stubber]:
    """A real botocore pricing client in us-east-1 whose answers come from the Stubber, never from the network."""
    client = boto3.client("pricing", region_name="us-east-1")
    return client, Stubber(client)


def add_products(stub: Stubber, instance_type: str, regions: list[str], *, single_region: bool = True,
                 pages: int = 1) -> None:
    """Queue the answer to the get_products query for one instance type, split over `pages` pages."""
    items = [price_item(instance_type, r, ON_DEMAND[(instance_type, r)]) for r in regions
             if (instance_type, r) in ON_DEMAND]
    chunks = [items[i::pages] for i in range(pages)]
    for n, chunk in enumerate(chunks):
        params: dict[str, Any] = {
            "ServiceCode": "AmazonEC2", "MaxResults": 100,
            "Filters": expected_filters(instance_type, regions[0] if single_region else None),
        }
        if n:
            params["NextToken"] = f"page-{n}"
        response: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": chunk}
        if n + 1 < len(chunks):
            response["NextToken"] = f"page-{n + 1}"
        stub.add_response("get_products", response, params)


def any_products_call() -> dict[str, Any]:
    return {"ServiceCode": "AmazonEC2", "MaxResults": 100, "Filters": ANY}


class Slept(list):
    """The backoff waits asked for; `.backoff` records them here instead of sleeping (pass it, or obj= to the CLI)."""

    @property
    def backoff(self) -> Backoff:
        return Backoff(sleep=self.append)


@pytest.fixture
def no_waiting(monkeypatch):
    """Backoff sleeps recorded instead of slept; botocore's own retries off so a failure shows at once."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return Slept()


@pytest.fixture
def pricing_stub(aws, monkeypatch, no_waiting):
    """EC2 answered by the moto server, the Price List API by a Stubber; nothing reaches AWS."""
    from pricing import aws as aws_mod

    client, stub = stubbed_pricing()
    real = aws_mod.make_client
    monkeypatch.setattr(aws_mod, "make_client",
                        lambda service, region: client if service == "pricing" else real(service, region))
    with stub:
        yield stub
