"""`gpuplan prices refresh --source catalog` against a real HTTP server on 127.0.0.1 serving 17 verbatim rows of
SkyPilot's AWS vms.csv (tests/data/skypilot_vms_sample.csv: a Local Zone, a zone quoting spot at on-demand, empty
prices, a fractional L4, an arm64 T4g, an AMD GPU, a CPU-only type), and the one spot rule it shares with the AWS
refresh and the bundled snapshot."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from cli_helpers import failed
import yaml
from typer.testing import CliRunner

from gpuplan.cli import app
from pricing.cache import cache_path, cached_regions
from pricing.offers import is_standard_zone, spot_summary

SAMPLE = (Path(__file__).parent / "data" / "skypilot_vms_sample.csv").read_bytes()
runner = CliRunner()


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, tuple[int, bytes, int | None]] = {}  # path: (status, body, Content-Length to announce)

    def do_GET(self):  # noqa: N802 (http.server's name)
        status, body, length = self.files.get(self.path, (404, b"Not Found", None))
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def serve(server, monkeypatch):
    """serve(path, body, status=200, length=None) -> its URL; GPUPLAN_CATALOG_URL points at /vms.csv."""
    _Files.files = {"/vms.csv": (200, SAMPLE, None)}
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("GPUPLAN_CATALOG_URL", f"{base}/vms.csv")

    def put(path: str, body: bytes, status: int = 200, length: int | None = None) -> str:
        _Files.files[path] = (status, body, length)
        return base + path

    return put


def invoke(*args: str):
    return runner.invoke(app, list(args))


def offers(region: str) -> dict[str, dict]:
    return {o["instance_type"]: o for o in yaml.safe_load(cache_path(region).read_text())["offers"]}


def test_the_default_refresh_reads_the_catalog_into_every_region(serve):
    result = invoke("prices", "refresh")
    assert result.exit_code == 0, result.output
    assert cached_regions() == ["ap-northeast-3", "us-east-1", "us-east-2", "us-west-2"]
    east = offers("us-east-1")
    assert set(east) == {"g4dn.xlarge", "g5.xlarge", "g7e.2xlarge", "p3dn.24xlarge", "p5.4xlarge", "p5.48xlarge",
                         "p6-b200.48xlarge"}  # not g4ad (AMD), g5g (arm64), g6f (an eighth of an L4), a1 (no GPU)
    assert east["g7e.2xlarge"]["gpu"] == "rtx-pro-6000" and east["p6-b200.48xlarge"]["gpu"] == "b200"
    p5 = east["p5.48xlarge"]  # Atlanta Local Zone 17.0252 and use1-az1 at on-demand 55.04 left out
    assert (p5["spot_usd_per_hour"], p5["spot_usd_per_hour_min"], p5["spot_zones"]) == (16.9508, 16.9508, 1)
    assert (p5["interconnect"], p5["allreduce_gbs"]) == ("nvlink4", 400.0)  # lent by the bundled p5.48xlarge
    assert east["p5.4xlarge"]["on_demand_usd_per_hour"] == 6.88 and east["p5.4xlarge"].get("spot_usd_per_hour") is None
    west = offers("us-west-2")  # only Los Angeles Local Zone rows: on-demand, no spot
    assert west["g4dn.xlarge"]["on_demand_usd_per_hour"] == 0.526 and west["g4dn.xlarge"].get("spot_usd_per_hour") is None
    assert offers("us-east-2")["p5e.48xlarge"]["spot_usd_per_hour"] == 15.476  # p5e: spot only, no on-demand
    assert "Radeon Pro V520" in result.stderr and "T4g" in result.stderr  # said, not silently dropped
    assert "us-east-1" in result.stdout and "7" in result.stdout
    doc = yaml.safe_load(cache_path("us-east-1").read_text())
    assert doc["schema_version"] == 2 and "SkyPilot catalog" in doc["source"]


def test_show_uses_what_the_catalog_refresh_cached(serve):
    assert invoke("prices", "refresh", "--region", "us-east-1").exit_code == 0
    assert cached_regions() == ["us-east-1"]
    rows = json.loads(invoke("prices", "show", "--gpu", "rtx-pro-6000", "--region", "us-east-1",
                             "--format", "json").stdout)
    g7e = {r["instance_type"]: r for r in rows}["g7e.2xlarge"]
    assert g7e["source"] == "cache" and g7e["spot_usd_per_hour"] == 1.0284 and g7e["spot_zones"] == 1


def test_url_option_beats_the_environment(serve):
    url = serve("/elsewhere/vms.csv", SAMPLE)
    serve("/vms.csv", b"", status=500)
    result = invoke("prices", "refresh", "--url", url, "--instance-type", "g5.xlarge")
    assert result.exit_code == 0, result.output
    assert cached_regions() == ["us-east-1"] and set(offers("us-east-1")) == {"g5.xlarge"}


_HEADER, _, _ROWS = SAMPLE.partition(b"\n")


@pytest.mark.parametrize(("name", "body", "status", "length", "fragments"), [
    ("cut mid-line", SAMPLE[:-40], 200, None, ["does not end with a line break", "previous price cache is kept"]),
    ("server stops early", SAMPLE[:3000], 200, len(SAMPLE), ["stopped after 3,000 of", "cache is kept"]),
    ("not the catalog", b"<html>rate limited</html>\n", 200, None, ["no column InstanceType"]),
    ("a field lost", _HEADER + b"\n" + _ROWS.replace(b",0.526,", b",", 1), 200, None, ["fields where the header"]),
    ("a price garbled", SAMPLE.replace(b",55.04,", b",55.O4,", 1), 200, None, ["'55.O4' is not a number"]),
    ("only CPU rows", _HEADER + b"\n" + _ROWS.split(b"\n")[0] + b"\n", 200, None, ["no GPU instance rows"]),
    ("HTTP error", b"Not Found", 404, None, ["HTTP 404", "--url"]),
])
def test_a_bad_download_keeps_the_cache(serve, name, body, status, length, fragments):
    assert invoke("prices", "refresh").exit_code == 0
    before = {r: cache_path(r).read_bytes() for r in cached_regions()}
    url = serve("/bad.csv", body, status, length)
    failed(invoke("prices", "refresh", "--url", url), *fragments)
    assert {r: cache_path(r).read_bytes() for r in cached_regions()} == before


def test_a_region_the_download_lacks_is_an_error_and_writes_nothing(serve):
    failed(invoke("prices", "refresh", "--region", "us-east-1", "--region", "eu-west-1"),
           "prices none of the GPUs gpuplan knows in eu-west-1", "partial download")
    assert cached_regions() == []


def test_nothing_listening_keeps_the_cache(serve):
    import socket

    assert invoke("prices", "refresh").exit_code == 0
    before = cache_path("us-east-1").read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/vms.csv"
    failed(invoke("prices", "refresh", "--url", closed), "cannot download the SkyPilot catalog", "--source aws")
    assert cache_path("us-east-1").read_bytes() == before


def test_source_and_url_are_checked():
    failed(invoke("prices", "refresh", "--source", "azure"), "use catalog or aws")
    failed(invoke("prices", "refresh", "--source", "aws", "--url", "https://example.com/vms.csv"),
           "use it with --source catalog")


@pytest.mark.parametrize(("zone", "standard"), [
    ("use1-az4", True), ("us-east-1a", True), ("apne3-az1", True), ("eu-central-1c", True),
    ("use1-atl2-az1", False), ("usw2-lax1-az1", False), ("us-east-1-atl-2a", False), ("us-west-2-lax-1b", False),
    ("use1-wl1-bos-wlz1", False), ("us-east-1-wl1-bos-wlz-1", False),
])
def test_standard_zones(zone, standard):
    assert is_standard_zone(zone) is standard


def test_spot_rule_p5_48xlarge_us_east_1():
    """The catalog's seven us-east-1 rows for p5.48xlarge (2026-Q2): four zones count."""
    zones = {"use1-az2": 18.734, "use1-az3": 18.1597, "use1-az5": 18.6838, "use1-az6": 16.9508,
             "use1-az1": 55.04, "use1-az4": 55.04, "use1-atl2-az1": 17.0252}
    s = spot_summary(zones, on_demand=55.04)
    assert (s.median, s.min, s.zones) == (18.42175, 16.9508, 4)  # $18.42/h


@pytest.mark.parametrize(("zones", "on_demand", "expected"), [
    ({"use1-az1": 1.0, "use1-az2": None}, 2.0, (1.0, 1.0, 1)),  # a zone without a price
    ({"use1-az1": 2.0, "use1-az2": 3.0}, 2.0, None),  # every zone at or above on-demand: no spot figure
    ({"use1-az1": 15.0, "use1-az2": 14.0}, None, (14.5, 14.0, 2)),  # no on-demand price (p5e): nothing to compare
    ({"usw2-lax1-az1": 0.07}, 0.526, None),  # a Local Zone only
])
def test_spot_rule_edges(zones, on_demand, expected):
    s = spot_summary(zones, on_demand)
    assert (None if s is None else (s.median, s.min, s.zones)) == expected
