"""`gpuplan prices refresh --source aws` and `gpuplan prices show` end to end: EC2 from a moto server, the Price
List API from botocore's Stubber, the cache in a temporary XDG_CACHE_HOME. (--source catalog: test_prices_catalog.)"""

from __future__ import annotations

import json

import pytest
import yaml
from botocore.stub import ANY
import test_prices_fakes as fakes
from cli_helpers import failed
from test_prices_fakes import add_products, price_item
from typer.testing import CliRunner

from gpuplan.cli import app
from pricing import aws as aws_mod
from pricing.awsclient import Backoff
from pricing.cache import cache_path
from pricing.catalog import bundled_catalog

runner = CliRunner()
pricing_stub, no_waiting = fakes.pricing_stub, fakes.no_waiting  # fixtures, shared with test_prices_aws
AWS = ["--source", "aws"]
SOME = ["--instance-type", "g4dn.xlarge", "--instance-type", "g5.xlarge", "--instance-type", "g4dn.12xlarge"]


def invoke(*args: str, obj=None):
    """obj: a pricing.awsclient.Backoff for `prices refresh` (tests record the waits instead of sleeping)."""
    return runner.invoke(app, list(args), obj=obj)


def refresh_some(stub, obj=None) -> None:
    for t in ("g4dn.12xlarge", "g4dn.xlarge", "g5.xlarge"):  # queried in sorted order
        add_products(stub, t, ["us-east-1"])
    result = invoke("prices", "refresh", *AWS, "--region", "us-east-1", *SOME, obj=obj)
    assert result.exit_code == 0, result.output


def test_refresh_writes_the_region_cache(pricing_stub, isolated_cache):
    refresh_some(pricing_stub)
    path = isolated_cache / "gpuplan" / "catalog-v2" / "aws-us-east-1.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["schema_version"] == 2 and "fetched_at" in doc
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
    result = invoke("prices", "refresh", *AWS, "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    assert "Skipped GPU models gpuplan has no specs for" in result.stderr and "T4g" in result.stderr
    assert "B200" not in result.stderr.split("no specs for")[1]  # B200 and RTX PRO Server 6000 map now
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
    result = invoke("prices", "refresh", *AWS, "--all-regions", "--instance-type", "g5.xlarge")
    assert result.exit_code == 0, result.output
    eu = yaml.safe_load(cache_path("eu-west-1").read_text())["offers"][0]
    assert eu["region"] == "eu-west-1" and eu["on_demand_usd_per_hour"] == 1.123
    show = invoke("prices", "show", "--gpu", "a10g", "--format", "json")
    rows = json.loads(show.stdout)
    g5 = {r["region"]: r for r in rows if r["instance_type"] == "g5.xlarge" and r["source"] == "cache"}
    assert set(g5) == {"ap-south-1", "eu-west-1", "us-east-1"}
    assert g5["ap-south-1"]["on_demand_usd_per_hour"] is None  # no price list entry: spot only
    assert g5["ap-south-1"]["spot_usd_per_hour"] is not None
    others = [r for r in rows if r["instance_type"] != "g5.xlarge" or r["region"] not in g5]
    assert others and all(r["source"] == "bundled" and r["price_date"] == "2026-04-01" for r in others)


def test_show_prefers_the_cache_and_says_how_old(pricing_stub):
    refresh_some(pricing_stub)
    result = invoke("prices", "show", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    by_type = {ln.split()[0]: ln for ln in result.stdout.splitlines()[2:]}
    assert "cache" in by_type["g5.xlarge"] and "minute" in by_type["g5.xlarge"]
    assert "bundled" in by_type["p3.2xlarge"] and "2026-04-01" in by_type["p3.2xlarge"]  # not refreshed: bundle
    assert "Prices for us-east-1 (3 offers): cache" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_show_formats(fmt):
    result = invoke("prices", "show", "--gpu", "v100", "--region", "us-east-1", "--format", fmt)
    assert result.exit_code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.stdout)
        assert {r["instance_type"] for r in rows} == {"p3.2xlarge", "p3.8xlarge", "p3.16xlarge"}
        assert rows[0]["source"] == "bundled" and rows[0]["as_of"].startswith("2026-04-01")
        assert all(r["spot_zones"] >= 1 for r in rows)
    elif fmt == "csv":
        lines = result.stdout.splitlines()
        assert lines[0].startswith("instance_type,region,gpu,gpu_count") and "spot_zones,price_date" in lines[0]
        assert len(lines) == 4 and all(",bundled," in ln for ln in lines[1:])
    else:
        assert "source" in result.stdout.splitlines()[0] and "zones" in result.stdout.splitlines()[0]
        assert "bundled" in result.stdout
    assert "bundled snapshot (price date 2026-04-01" in result.stderr


def test_show_lists_the_2026_families_with_the_zone_median():
    rows = json.loads(invoke("prices", "show", "--format", "json").stdout)
    by_key = {(r["instance_type"], r["region"]): r for r in rows}
    families = {r["instance_type"].split(".")[0] for r in rows}
    assert {"g6e", "g7e", "p5e", "p5en", "p6-b200"} <= families
    assert all(r["price_date"].startswith("2026-") for r in rows)
    assert len({r["region"] for r in rows}) > 20
    p5 = by_key[("p5.48xlarge", "us-east-1")]  # median of the four standard zones below on-demand
    assert (p5["spot_usd_per_hour"], p5["spot_usd_per_hour_min"], p5["spot_zones"]) == (18.42175, 16.9508, 4)
    assert by_key[("g7e.2xlarge", "us-east-1")]["gpu"] == "rtx-pro-6000"
    assert by_key[("g5.xlarge", "us-east-1")]["spot_usd_per_hour"] == 0.4423
    assert by_key[("p5.4xlarge", "us-east-1")]["spot_usd_per_hour"] == 6.004
    assert by_key[("g6e.2xlarge", "us-east-1")]["spot_usd_per_hour"] is not None
    assert not any(f in families for f in ("trn1", "g4ad", "g5g", "g6f"))  # not this stack's hardware


def test_staleness_warns_once_past_90_days_and_never_on_gpus(monkeypatch):
    import datetime as dt

    import pricing.catalog as catalog_mod

    date = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
    assert catalog_mod.resolve_prices(now=date + dt.timedelta(days=89)).stale_warning is None
    warning = catalog_mod.resolve_prices(now=date + dt.timedelta(days=91)).stale_warning
    assert warning.startswith("Warning: prices for 582 offers in 23 regions are more than 90 days old")
    shown = invoke("prices", "show", "--region", "us-east-1")  # today is past the 90 days: one warning
    assert shown.stderr.count("Warning:") == (1 if shown.stderr.count("more than 90 days") else 0)
    gpus = invoke("gpus")
    assert gpus.exit_code == 0 and "Warning" not in gpus.stderr


def test_show_typo_and_unknown_region():
    failed(invoke("prices", "show", "--gpu", "a10"), "unknown GPU", "Did you mean")
    failed(invoke("prices", "show", "--region", "eu-east-7"), "no prices for region eu-east-7",
           "gpuplan prices refresh --region eu-east-7")
    failed(invoke("prices", "show", "--format", "xml"), "unknown format")


def _cached_bytes(pricing_stub) -> bytes:
    refresh_some(pricing_stub)
    return cache_path("us-east-1").read_bytes()


def test_no_credentials_keeps_the_cache(pricing_stub, monkeypatch, tmp_path):
    before = _cached_bytes(pricing_stub)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups from a laptop or CI
    failed(invoke("prices", "refresh", *AWS, "--region", "us-east-1", *SOME), "no AWS credentials", "aws configure")
    assert cache_path("us-east-1").read_bytes() == before


def test_no_network_keeps_the_cache(pricing_stub, monkeypatch):
    import socket

    before = _cached_bytes(pricing_stub)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    failed(invoke("prices", "refresh", *AWS, "--region", "us-east-1", *SOME), "cannot reach AWS", "check your network")
    assert cache_path("us-east-1").read_bytes() == before


def test_access_denied_keeps_the_cache(pricing_stub):
    before = _cached_bytes(pricing_stub)
    pricing_stub.add_client_error("get_products", service_error_code="AccessDeniedException",
                                  service_message="User is not authorized to perform: pricing:GetProducts",
                                  http_status_code=400)
    failed(invoke("prices", "refresh", *AWS, "--region", "us-east-1", *SOME), "access denied", "pricing:GetProducts")
    assert cache_path("us-east-1").read_bytes() == before


def test_throttling_retries_then_gives_up_keeping_the_cache(pricing_stub, no_waiting):
    before = _cached_bytes(pricing_stub)
    for _ in range(Backoff().retries + 1):
        pricing_stub.add_client_error("get_products", service_error_code="ThrottlingException",
                                      service_message="Rate exceeded", http_status_code=400)
    failed(invoke("prices", "refresh", *AWS, "--region", "us-east-1", *SOME, obj=no_waiting.backoff), "throttling",
           "wait a minute")
    assert len(no_waiting) == Backoff().retries and no_waiting == sorted(no_waiting)
    assert cache_path("us-east-1").read_bytes() == before


def test_throttling_that_passes_is_invisible(pricing_stub, no_waiting):
    pricing_stub.add_client_error("get_products", service_error_code="ThrottlingException", http_status_code=400)
    refresh_some(pricing_stub, obj=no_waiting.backoff)
    assert len(no_waiting) == 1


def test_a_region_without_the_instance(pricing_stub):
    # moto's EC2 has no p3 instance types: exactly what a region without p3 looks like.
    failed(invoke("prices", "refresh", *AWS, "--region", "us-east-1", "--instance-type", "p3.2xlarge"),
           "region us-east-1 does not offer p3.2xlarge")
    assert not cache_path("us-east-1").exists()


def test_region_and_all_regions_conflict():
    failed(invoke("prices", "refresh", *AWS, "--region", "us-east-1", "--all-regions"), "not both")


def test_not_a_region_name(pricing_stub):
    failed(invoke("prices", "refresh", *AWS, "--region", "US East"), "not an AWS region name")
