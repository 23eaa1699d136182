"""The price catalog: bundled data, a user's overlay file, look-ups with suggestions."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from pricing.errors import PricingError
from pricing import Catalog, bundled_catalog, find_gpu, load_catalog, select_offers

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def _reference_rows(name: str) -> list[dict[str, str]]:
    lines = [l for l in (REFERENCE / name).read_text().splitlines() if l and not l.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference is beside the checkout only in CI and dev")
def test_bundled_catalog_matches_the_2026_reference_rows():
    """The us-east-1 rows read from the same SkyPilot catalog by hand (on-demand, shape) agree with the bundle; its
    spot column used all zones, so only our rule's bounds are checked: the min is the cheapest standard zone."""
    cat = bundled_catalog()
    assert {r["gpu"] for r in _reference_rows("gpu_specs.csv")} <= {g.key for g in cat.gpus}
    ours = {o.instance_type: o for o in cat.offers if o.region == "us-east-1"}
    ref = [r for r in _reference_rows("aws_gpu_instances_2026q2.csv") if r["instance_type"].split(".")[0] in
           {"p3", "p3dn", "g4dn", "g5", "g6", "g6e", "g7e", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200"}]
    assert len(ref) >= 19
    for r in ref:
        o = ours[r["instance_type"]]
        assert o.on_demand_usd_per_hour == pytest.approx(float(r["ondemand_usd_h"])), r["instance_type"]
        assert (o.gpu_count, o.vcpus) == (int(r["gpu_count"]), int(r["vcpus"])), r["instance_type"]


def test_the_bundle_holds_each_family_everywhere_the_catalog_prices_it():
    cat = bundled_catalog()
    families = {o.instance_type.split(".")[0] for o in cat.offers}
    assert families == {"p3", "p3dn", "g4dn", "g5", "g6", "g6e", "g7e", "p4d", "p4de", "p5", "p5e", "p5en",
                        "p6-b200", "p6-b300"}
    assert len(cat.regions) == 23 and {"us-east-1", "eu-west-1", "ap-northeast-1"} <= set(cat.regions)
    assert all(o.price_date.isoformat() == "2026-04-01" and "SkyPilot" in o.price_source for o in cat.offers)
    assert all(o.spot_zones for o in cat.offers if o.spot_usd_per_hour is not None)
    assert all(o.spot_usd_per_hour < o.on_demand_usd_per_hour for o in cat.offers
               if o.spot_usd_per_hour and o.on_demand_usd_per_hour)  # zones at on-demand never count
    assert {o.on_demand_usd_per_hour for o in cat.offers if o.instance_type == "p5e.48xlarge"} == {None}


def test_bundled_data_says_where_it_came_from():
    cat = bundled_catalog()
    assert "SkyPilot" in cat.source
    assert all(o.price_source and o.price_date for o in cat.offers)
    assert all(g.source for g in cat.gpus)


def test_every_multi_gpu_instance_has_an_interconnect():
    for o in bundled_catalog().offers:
        assert (o.gpu_count == 1) == (o.allreduce_gbs is None), o.instance_type


def test_a_private_price_overrides_only_that_field(tmp_path):
    f = tmp_path / "prices.yaml"
    f.write_text("offers:\n  - instance_type: p3.2xlarge\n    on_demand_usd_per_hour: 2.0\n")
    cat = load_catalog(f)
    p3 = next(o for o in cat.offers if o.instance_type == "p3.2xlarge" and o.region == "us-east-1")
    assert p3.on_demand_usd_per_hour == 2.0
    assert p3.gpu == "v100" and p3.vcpus == 8
    assert len(cat.offers) == len(bundled_catalog().offers)


def test_a_new_cloud_and_gpu_can_be_added(tmp_path):
    f = tmp_path / "other.yaml"
    f.write_text(
        "gpus:\n"
        "  - {key: rtx4090, name: RTX 4090, architecture: Ada Lovelace, compute_capability: 8.9, memory_gib: 24,\n"
        "     fp32_tflops: 82.6, tf32_tflops: 82.6, fp16_tflops: 165, bf16_tflops: 165, memory_bandwidth_gbs: 1008}\n"
        "offers:\n"
        "  - {instance_type: 1x-4090, provider: lambda, region: us-west, gpu: rtx4090, gpu_count: 1, vcpus: 16,\n"
        "     memory_gib: 64, on_demand_usd_per_hour: 0.5}\n"
    )
    cat = load_catalog(f)
    assert find_gpu(cat, "rtx4090").memory_gib == 24
    assert [o.instance_type for o in select_offers(cat, gpus=["rtx4090"])] == ["1x-4090"]


@pytest.mark.parametrize(("text", "message"), [
    ("offers:\n  - instance_type: p3.2xlarge\n    on_demand_usd_per_hour: -1\n",
     r"offers\[0\] \(p3.2xlarge\)\.on_demand_usd_per_hour: Input should be greater than 0"),
    ("offers:\n  - instance_type: x1\n    gpu: v100\n", r"offers\[0\] \(x1\)\.gpu_count: Field required"),
    ("offers:\n  - {instance_type: x1, gpu: nope, gpu_count: 1, vcpus: 1, memory_gib: 1, on_demand_usd_per_hour: 1}\n",
     r"gpu 'nope' is not in the catalog's gpus"),
    ("gpus: {key: a}\n", "gpus must be a list"),
    ("prices: []\n", "unknown top-level field"),
    ("offers: [\n", "is not valid YAML"),
    ("- just a list\n", "a catalog is a YAML mapping"),
    ("offers:\n  - instance_type: p3.2xlarge\n    colour: red\n", r"colour: Extra inputs are not permitted"),
])
def test_a_malformed_catalog_names_the_bad_field(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(PricingError, match=message):
        load_catalog(f)


def test_a_missing_catalog_file_says_so(tmp_path):
    with pytest.raises(PricingError, match="does not exist"):
        load_catalog(tmp_path / "none.yaml")


def test_unknown_names_suggest_the_nearest():
    cat = bundled_catalog()
    with pytest.raises(PricingError, match="Did you mean: a10g, a100"):
        find_gpu(cat, "a10O")
    with pytest.raises(PricingError, match="Did you mean: g5.xlarge"):
        select_offers(cat, instances=["g5.xlarg"])


def test_select_offers_by_gpu_instance_and_region():
    cat = bundled_catalog()
    assert {o.instance_type for o in select_offers(cat, gpus=["a10g"])} == {
        f"g5.{size}" for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge", "12xlarge", "24xlarge",
                                  "48xlarge")}
    assert {o.instance_type for o in select_offers(cat, gpus=["t4"], instances=["p5.4xlarge"], region="us-east-1")} \
        == {f"g4dn.{size}" for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge", "12xlarge", "metal")} \
        | {"p5.4xlarge"}
    with pytest.raises(PricingError, match="no offers in region 'mars-1'"):
        select_offers(cat, region="mars-1")


def test_a_gpu_no_offer_carries_names_no_region_when_none_was_asked():
    cat = load_catalog(base=Catalog(gpus=bundled_catalog().gpus, offers=[
        o for o in bundled_catalog().offers if o.gpu == "t4"]))
    with pytest.raises(PricingError, match=r"^no instance carries v100$"):
        select_offers(cat, gpus=["v100"])


def test_price_for_a_market():
    offer = next(o for o in bundled_catalog().offers if o.spot_usd_per_hour)
    assert offer.price("on-demand") == offer.on_demand_usd_per_hour
    assert offer.price("spot") == offer.spot_usd_per_hour


def test_pricing_imports_nothing_from_gpuplan():
    import subprocess
    import sys

    code = "import pricing, pricing.refresh, pricing.aws, sys; assert not [m for m in sys.modules if m.startswith('gpuplan')]"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
