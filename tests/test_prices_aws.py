"""pricing.aws piece by piece: Price List parsing, GPU name mapping, spot statistics, retries, error messages."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore import exceptions as bx
from botocore.stub import Stubber
from test_prices_fakes import add_products, expected_filters, no_waiting, price_item, stubbed_pricing  # noqa: F401

from pricing.awsclient import Backoff
from pricing.errors import PricingError
from pricing import aws as aws_mod
from pricing.catalog import bundled_catalog

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)


def test_parse_price_item_reads_the_on_demand_hourly_price_only():
    itype, region, usd, attrs = aws_mod.parse_price_item(price_item("g5.xlarge", "eu-west-1", 1.123))
    assert (itype, region, usd) == ("g5.xlarge", "eu-west-1", 1.123)  # not the reserved upfront fee or its $0 hours
    assert attrs["operatingSystem"] == "Linux" and attrs["tenancy"] == "Shared"


def test_parse_price_item_without_a_price():
    item = '{"product": {"attributes": {"instanceType": "g5.xlarge", "regionCode": "us-east-1"}}, "terms": {}}'
    assert aws_mod.parse_price_item(item)[2] is None


def _shape(name: str, mib: int, *, count: int = 1, partition: float = 1.0, maker: str = "NVIDIA") -> aws_mod.Shape:
    return aws_mod.Shape("x.large", name, count, mib, 8, 32768, manufacturer=maker, partition=partition)


@pytest.mark.parametrize(("name", "mib", "key"), [
    ("V100", 16384, "v100"), ("V100", 32768, "v100-32gb"), ("A100", 40960, "a100"), ("A100", 81920, "a100-80gb"),
    ("A10G", 22888, "a10g"), ("L4", 22888, "l4"), ("L40S", 45776, "l40s"), ("T4", 16384, "t4"),
    ("H100", 81920, "h100"), ("H200", 144384, "h200"), ("B200", 183359, "b200"), ("B300", 275040, "b300"),
    ("RTX PRO Server 6000", 98304, "rtx-pro-6000"),  # EC2's GpuInfo name for g7e
    ("RTXPRO6000", 98304, "rtx-pro-6000"),  # SkyPilot's AcceleratorName for g7e
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", 97887, "rtx-pro-6000"),  # what the driver says on g7e
    ("V100-32GB", 32768, "v100-32gb"), ("A100-80GB", 81920, "a100-80gb"),  # SkyPilot's names for p3dn and p4de
    ("T4g", 16384, None), ("M60", 8192, None),
])
def test_gpu_key(name, mib, key):
    assert aws_mod.gpu_key(_shape(name, mib), bundled_catalog().gpus) == key


def test_gpu_key_skips_fractions_and_other_makers():
    gpus = bundled_catalog().gpus
    assert aws_mod.gpu_key(_shape("L4", 2861, partition=0.125), gpus) is None
    assert aws_mod.gpu_key(_shape("Radeon Pro V520", 8192, maker="AMD"), gpus) is None


def test_gpu_shapes_from_moto(aws):
    shapes = aws_mod.gpu_shapes(boto3.client("ec2", region_name="us-east-1"), "us-east-1")
    g5 = shapes["g5.xlarge"]
    assert (g5.gpu_name, g5.gpu_count, g5.vcpus, g5.memory_mib) == ("A10G", 1, 4, 16384)
    assert shapes["p4d.24xlarge"].gpu_count == 8
    assert "m5.large" not in shapes and "p3.2xlarge" not in shapes  # moto has no p3


def test_on_demand_prices_one_region_filters_and_pages():
    client, stub = stubbed_pricing()
    add_products(stub, "g5.xlarge", ["us-east-1"])
    add_products(stub, "p5.48xlarge", ["us-east-1"])
    with stub:
        prices = aws_mod.on_demand_prices(client, ["p5.48xlarge", "g5.xlarge"], ["us-east-1"])
        stub.assert_no_pending_responses()
    assert prices == {("g5.xlarge", "us-east-1"): 1.006, ("p5.48xlarge", "us-east-1"): 55.04}


def test_capacity_blocks_are_not_on_demand_prices():
    """A Capacity Block product passes every other filter and lists $0.00 hours: the query asks for OnDemand only,
    and one that still comes back is no price (whatever its amount)."""
    client, stub = stubbed_pricing()
    items = [price_item("p5.48xlarge", "us-east-1", 0.0, market="CapacityBlock", operation="RunInstances"),
             price_item("p5.48xlarge", "us-east-1", 31.464, market="CapacityBlock"),
             price_item("p5.48xlarge", "us-east-1", 55.04)]
    stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": items},
                      {"ServiceCode": "AmazonEC2", "MaxResults": 100,
                       "Filters": expected_filters("p5.48xlarge", "us-east-1")})
    with stub:
        prices = aws_mod.on_demand_prices(client, ["p5.48xlarge"], ["us-east-1"])
        stub.assert_no_pending_responses()
    assert prices == {("p5.48xlarge", "us-east-1"): 55.04}
    assert {"Type": "TERM_MATCH", "Field": "marketoption", "Value": "OnDemand"} in expected_filters("p5.48xlarge", None)
    assert aws_mod.parse_price_item(items[1])[2] is None


def test_on_demand_prices_many_regions_drops_unwanted_and_prefers_plain_run_instances():
    client, stub = stubbed_pricing()
    items = [price_item("g5.xlarge", "us-east-1", 1.006), price_item("g5.xlarge", "eu-west-1", 1.123),
             price_item("g5.xlarge", "us-east-1", 0.5, operation="RunInstances:0g00"),
             price_item("g5.xlarge", "sa-east-1", 2.0)]
    stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": items[:2], "NextToken": "t1"},
                      {"ServiceCode": "AmazonEC2", "MaxResults": 100, "Filters": expected_filters("g5.xlarge", None)})
    stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": items[2:]},
                      {"ServiceCode": "AmazonEC2", "MaxResults": 100, "NextToken": "t1",
                       "Filters": expected_filters("g5.xlarge", None)})
    with stub:
        prices = aws_mod.on_demand_prices(client, ["g5.xlarge"], ["us-east-1", "eu-west-1"])
    assert prices == {("g5.xlarge", "us-east-1"): 1.006, ("g5.xlarge", "eu-west-1"): 1.123}


def _spot(itype: str, az: str, price: str, minutes_ago: int) -> dict:
    return {"AvailabilityZone": az, "InstanceType": itype, "ProductDescription": "Linux/UNIX",
            "SpotPrice": price, "Timestamp": NOW - dt.timedelta(minutes=minutes_ago)}


def test_spot_prices_latest_per_zone():
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    history = [
        _spot("g5.xlarge", "us-east-1a", "0.40", 5), _spot("g5.xlarge", "us-east-1a", "0.90", 90),  # older: ignored
        _spot("g5.xlarge", "us-east-1b", "0.50", 30), _spot("g5.xlarge", "us-east-1c", "0.70", 10),
        _spot("g4dn.xlarge", "us-east-1a", "0.21", 3),
    ]
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history}, {
            "InstanceTypes": ["g4dn.xlarge", "g5.xlarge"], "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            "StartTime": NOW, "MaxResults": 1000,
        })
        spot = aws_mod.spot_prices(ec2, "us-east-1", ["g5.xlarge", "g4dn.xlarge"], NOW)
    assert spot == {"g5.xlarge": {"us-east-1a": 0.40, "us-east-1b": 0.50, "us-east-1c": 0.70},
                    "g4dn.xlarge": {"us-east-1a": 0.21}}


def test_spot_prices_from_moto(aws):
    spot = aws_mod.spot_prices(boto3.client("ec2", region_name="us-east-1"), "us-east-1", ["g5.xlarge"], NOW)
    assert set(spot) == {"g5.xlarge"} and all(p == pytest.approx(1e-05) for p in spot["g5.xlarge"].values())


def test_a_refreshed_offer_follows_the_one_spot_rule():
    """The AWS refresh summarises spot prices with pricing.offers.spot_summary, like the catalog refresh and the
    bundle: a Local Zone and a zone quoting on-demand are left out; the median, min and zone count are kept."""
    shape = aws_mod.Shape("p5.48xlarge", "H100", 8, 81920, 192, 2097152)
    bundled = bundled_catalog()
    template, _ = aws_mod._template("p5.48xlarge", 8, bundled)
    plan = aws_mod._RegionPlan(ec2=None, wanted={"p5.48xlarge": (shape, "h100", template)}, notes=[])
    zones = {"us-east-1a": 18.734, "us-east-1b": 18.1597, "us-east-1c": 18.6838, "us-east-1d": 16.9508,
             "us-east-1e": 55.04, "us-east-1f": 55.04, "us-east-1-atl-2a": 17.0252}
    [offer] = aws_mod._priced_offers("us-east-1", plan, {("p5.48xlarge", "us-east-1"): 55.04},
                                     {"p5.48xlarge": zones}, NOW)
    assert (offer.spot_usd_per_hour, offer.spot_usd_per_hour_min, offer.spot_zones) == (18.42175, 16.9508, 4)
    assert (offer.interconnect, offer.allreduce_gbs) == ("nvlink4", 400.0)
    assert "startup_seconds" not in offer.model_fields_set  # the start-up model decides, not a copied default


def _client_error(code: str) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "GetProducts")


def test_call_retries_a_throttle_with_growing_waits(no_waiting):  # noqa: F811
    answers = [_client_error("Throttling"), _client_error("RequestLimitExceeded"), {"ok": True}]

    def flaky(**_):
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert aws_mod.call(flaky, "read prices", "us-east-1", backoff=no_waiting.backoff) == {"ok": True}
    assert len(no_waiting) == 2 and 1 <= no_waiting[0] <= 2 and 2 <= no_waiting[1] <= 4


def test_call_gives_up_after_its_retries(no_waiting):  # noqa: F811
    def always(**_):
        raise _client_error("ThrottlingException")

    with pytest.raises(PricingError, match="throttling .* after retries with backoff"):
        aws_mod.call(always, "read prices", "us-east-1", backoff=no_waiting.backoff)
    assert len(no_waiting) == Backoff().retries


@pytest.mark.parametrize(("err", "fragment"), [
    (bx.NoCredentialsError(), "no AWS credentials found"),
    (bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), "no AWS credentials found"),
    (bx.EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), "cannot reach AWS"),
    (bx.ConnectTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), "cannot reach AWS"),
    (_client_error("AccessDeniedException"), "access denied"),
    (_client_error("UnauthorizedOperation"), "ec2:DescribeSpotPriceHistory"),
    (_client_error("AuthFailure"), "rejected your credentials"),
    (_client_error("ExpiredToken"), "renew them"),
    (_client_error("OptInRequired"), "not enabled for your account"),
    (_client_error("InternalError"), "InternalError"),
])
def test_explain_gives_one_line_with_a_fix(err, fragment):
    msg = str(aws_mod.explain(err, "read spot price history", "us-east-1"))
    assert fragment in msg and "\n" not in msg
    assert "previous price cache is kept" in msg


def test_explain_suggests_a_region_for_a_typo():
    err = bx.EndpointConnectionError(endpoint_url="https://ec2.us-est-1.amazonaws.com")
    msg = str(aws_mod.explain(err, "describe instance types", "us-est-1"))
    assert "Is 'us-est-1' a region? Did you mean:" in msg and "us-east-1" in msg


def test_explain_leaves_bugs_alone():
    assert aws_mod.explain(KeyError("x"), "read prices", "us-east-1") is None
