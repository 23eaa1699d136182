"""`gpuplan prices refresh` and `gpuplan prices show` end to end: EC2 from a moto server, the Price List API from
botocore's Stubber, the cache in a temporary XDG_CACHE_HOME."""

from __future__ import annotations

import json

import pytest
import yaml
from botocore.stub import ANY
from test_prices_fakes import add_products, no_waiting, price_item, pricing_stub  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from gpuplan.cli import app
from pricing import aws as aws_mod
from pricing.awsclient import Backoff
from pricing.cache import cache_path
from pricing.catalog import bundled_catalog

runner = CliRunner()
SOME = ["--instance-type", "g4dn.xlarge", "--instance-type", "g5.xlarge", "--instance-type", "g4dn.12xlarge"]


def invoke(*args: str, obj=None):
    """obj: a pricing.awsclient.Backoff for `prices refresh` (tests record the waits instead of sleeping)."""
    return runner.invoke(app, list(args), obj=obj)


def failed(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def refresh_some(stub, obj=None) -> None:
    for t in ("g4dn.12xlarge", "g4dn.xlarge", "g5.xlarge"):  # queried in sorted order
        add_products(stub, t, ["us-east-1"])
    result = invoke("prices", "refresh", "--region", "us-east-1", *SOME, obj=obj)
    assert result.exit_code == 0, result.output


def test_refresh_writes_the_region_cache(pricing_stub, isolated_cache):
    refresh_some(pricing_stub)
    path = isolated_cache / "gpuplan" / "catalog-v1" / "aws-us-east-1.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["schema_version"] == 1 and "fetched_at" in doc
    offers = {o["instance_type"]: o for o in doc["offers"]}
    assert set(offers) == {"g4dn.xlarge", "g4dn.12xlarge", "g5.xlarge"}
    g5 = offers["g5.xlarge"]
    assert g5["on_demand_usd_per_hour"] == 1.006 and g5["gpu"] == "a10g" and g5["gpu_count"] == 1
    assert g5["vcpus"] == 4 and g5["memory_gib"] == 16.0
    assert g5["spot_usd_per_hour"] == pytest.approx(0.00001)  # moto's placeholder spot price, in every zone
    four = offers["g4dn.12xlarge"]
    assert (four["gpu_count"], four["interconnect"], four["allreduce_gbs"]) == (4, "pcie3", 8.0)  # from the bundle
    pricing_stub.assert_no_pending_responses()


def test_refresh_of_a_whole_region_skips_gpus_without_specs(pricing_stub, aws):
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    bundled = bundled_catalog()
    expected = []
    for t, shape in aws_mod.gpu_shapes(ec2, "us-east-1").items():
        key = aws_mod.gpu_key(shape, bundled.gpus)
        if key and (shape.gpu_count == 1 or aws_mod._template(t, shape.gpu_count, bundled)[0]):
            expected.append(t)
    for t in sorted(expected):
        pricing_stub.add_response(
            "get_products", {"FormatVersion": "aws_v1", "PriceList": [price_item(t, "us-east-1", 1.5)]},
            {"ServiceCode": "AmazonEC2", "MaxResults": 100, "Filters": ANY},
        )
    result = invoke("prices", "refresh", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    assert "Skipped GPU models gpuplan has no specs for" in result.stderr and "B200" in result.stderr
    doc = yaml.safe_load(cache_path("us-east-1").read_text())
    assert {o["instance_type"] for o in doc["offers"]} == set(expected)
    assert "g5.xlarge" in expected and "p4de.24xlarge" in expected
    assert not any(o["gpu"] not in {g.key for g in bundled.gpus} for o in doc["offers"])


def test_enabled_regions_come_from_describe_regions(aws):
    regions = aws_mod.enabled_regions("us-east-1")
    assert {"us-east-1", "eu-west-1", "ap-south-1"} <= set(regions) and regions == sorted(regions)


def test_all_regions_prices_each_type_once(pricing_stub, monkeypatch):
    # moto builds a backend per region on first use (seconds each): three regions show the same as thirty.
    monkeypatch.setattr(aws_mod, "enabled_regions", lambda home, backoff=None: ["ap-south-1", "eu-west-1", "us-east-1"])
    add_products(pricing_stub, "g5.xlarge", ["us-east-1", "eu-west-1"], single_region=False, pages=2)
    result = invoke("prices", "refresh", "--all-regions", "--instance-type", "g5.xlarge")
    assert result.exit_code == 0, result.output
    eu = yaml.safe_load(cache_path("eu-west-1").read_text())["offers"][0]
    assert eu["region"] == "eu-west-1" and eu["on_demand_usd_per_hour"] == 1.123
    show = invoke("prices", "show", "--gpu", "a10g", "--format", "json")
    rows = json.loads(show.stdout)
    g5 = {r["region"]: r for r in rows if r["instance_type"] == "g5.xlarge"}
    assert set(g5) == {"ap-south-1", "eu-west-1", "us-east-1"} and all(r["source"] == "cache" for r in g5.values())
    assert g5["ap-south-1"]["on_demand_usd_per_hour"] is None  # no price list entry: spot only
    assert g5["ap-south-1"]["spot_usd_per_hour"] is not None
    others = [r for r in rows if r["instance_type"] != "g5.xlarge"]
    assert others and all(r["source"] == "bundled" and r["region"] == "us-east-1" for r in others)


def test_show_prefers_the_cache_and_says_how_old(pricing_stub):
    refresh_some(pricing_stub)
    result = invoke("prices", "show", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    by_type = {ln.split()[0]: ln for ln in result.stdout.splitlines()[2:]}
    assert "cache" in by_type["g5.xlarge"] and "minute" in by_type["g5.xlarge"]
    assert "bundled" in by_type["p3.2xlarge"] and "days" in by_type["p3.2xlarge"]  # not refreshed: bundle
    assert "Prices for us-east-1 (3 offers): cache" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_show_formats(fmt):
    result = invoke("prices", "show", "--gpu", "v100", "--format", fmt)
    assert result.exit_code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.stdout)
        assert {r["instance_type"] for r in rows} == {"p3.2xlarge", "p3.8xlarge", "p3.16xlarge"}
        assert rows[0]["source"] == "bundled" and rows[0]["age_days"] > 7 and rows[0]["as_of"].startswith("2025-12-01")
    elif fmt == "csv":
        lines = result.stdout.splitlines()
        assert lines[0].startswith("instance_type,region,gpu,gpu_count")
        assert len(lines) == 4 and all(",bundled," in ln for ln in lines[1:])
    else:
        assert "source" in result.stdout.splitlines()[0] and "age" in result.stdout.splitlines()[0]
        assert "bundled" in result.stdout
    assert "Warning: prices for 19 offers in us-east-1 are more than 7 days old" in result.stderr


def test_show_typo_and_unknown_region():
    failed(invoke("prices", "show", "--gpu", "a10"), "unknown GPU", "Did you mean")
    failed(invoke("prices", "show", "--region", "eu-west-1"), "no prices for region eu-west-1",
           "gpuplan prices refresh --region eu-west-1")
    failed(invoke("prices", "show", "--format", "xml"), "unknown format")


def _cached_bytes(pricing_stub) -> bytes:
    refresh_some(pricing_stub)
    return cache_path("us-east-1").read_bytes()


def test_no_credentials_keeps_the_cache(pricing_stub, monkeypatch, tmp_path):
    before = _cached_bytes(pricing_stub)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups from a laptop or CI
    failed(invoke("prices", "refresh", "--region", "us-east-1", *SOME), "no AWS credentials", "aws configure")
    assert cache_path("us-east-1").read_bytes() == before


def test_no_network_keeps_the_cache(pricing_stub, monkeypatch):
    import socket

    before = _cached_bytes(pricing_stub)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    failed(invoke("prices", "refresh", "--region", "us-east-1", *SOME), "cannot reach AWS", "check your network")
    assert cache_path("us-east-1").read_bytes() == before


def test_access_denied_keeps_the_cache(pricing_stub):
    before = _cached_bytes(pricing_stub)
    pricing_stub.add_client_error("get_products", service_error_code="AccessDeniedException",
                                  service_message="User is not authorized to perform: pricing:GetProducts",
                                  http_status_code=400)
    failed(invoke("prices", "refresh", "--region", "us-east-1", *SOME), "access denied", "pricing:GetProducts")
    assert cache_path("us-east-1").read_bytes() == before


def test_throttling_retries_then_gives_up_keeping_the_cache(pricing_stub, no_waiting):
    before = _cached_bytes(pricing_stub)
    for _ in range(Backoff().retries + 1):
        pricing_stub.add_client_error("get_products", service_error_code="ThrottlingException",
                                      service_message="Rate exceeded", http_status_code=400)
    failed(invoke("prices", "refresh", "--region", "us-east-1", *SOME, obj=no_waiting.backoff), "throttling",
           "wait a minute")
    assert len(no_waiting) == Backoff().retries and no_waiting == sorted(no_waiting)
    assert cache_path("us-east-1").read_bytes() == before


def test_throttling_that_passes_is_invisible(pricing_stub, no_waiting):
    pricing_stub.add_client_error("get_products", service_error_code="ThrottlingException", http_status_code=400)
    refresh_some(pricing_stub, obj=no_waiting.backoff)
    assert len(no_waiting) == 1


def test_a_region_without_the_instance(pricing_stub):
    # moto's EC2 has no p3 instance types: exactly what a region without p3 looks like.
    failed(invoke("prices", "refresh", "--region", "us-east-1", "--instance-type", "p3.2xlarge"),
           "region us-east-1 does not offer p3.2xlarge")
    assert not cache_path("us-east-1").exists()


def test_region_and_all_regions_conflict():
    failed(invoke("prices", "refresh", "--region", "us-east-1", "--all-regions"), "not both")


def test_not_a_region_name(pricing_stub):
    failed(invoke("prices", "refresh", "--region", "US East"), "not an AWS region name")
