"""Shared fixtures: an AWS stand-in (a real moto server on 127.0.0.1) and an isolated home for caches."""

from __future__ import annotations

import os
import socket
import urllib.request

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """One moto server for the session, bound to loopback only; tests reach it through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch, tmp_path):
    """Fake credentials and a clean moto state for each test; boto3 clients made after this talk to moto."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return moto_server


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real ~/.cache/gpuplan."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache"


SMALL_CATALOG_INSTANCES = ("g4dn.xlarge", "g5.xlarge", "p3.2xlarge")  # T4, A10G, V100: one of each generation


@pytest.fixture
def small_catalog(monkeypatch):
    """Three us-east-1 offers in place of the bundled snapshot, so CLI tests stay exact however the bundled snapshot
    changes: their prices and the ten GPUs are frozen in tests/data/small_catalog.yaml, not read from the bundle.
    The CLI reads its base catalog through `pricing.catalog.bundled_catalog` (a cache or `--catalog` file is only
    laid over it), so that function is the seam."""
    import pathlib

    import yaml

    import pricing.catalog
    from pricing.models import Catalog

    doc = yaml.safe_load((pathlib.Path(__file__).parent / "data" / "small_catalog.yaml").read_text())
    catalog = Catalog.model_validate(doc)
    assert {o.instance_type for o in catalog.offers} == set(SMALL_CATALOG_INSTANCES)
    monkeypatch.setattr(pricing.catalog, "bundled_catalog", lambda: catalog)
    return catalog


@pytest.fixture
def golden(request):
    """Compare text with tests/golden/NAME; GPUPLAN_REGOLDEN=1 rewrites the file instead (review the diff)."""
    import pathlib

    def check(name: str, text: str) -> None:
        path = pathlib.Path(__file__).parent / "golden" / name
        if os.environ.get("GPUPLAN_REGOLDEN") == "1":
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
        assert text == path.read_text(), f"{name} changed; GPUPLAN_REGOLDEN=1 rewrites it"

    return check


@pytest.fixture
def offline_hub(monkeypatch):
    """The Hugging Face Hub counts as unreachable (as it is here), whatever an earlier test found."""
    from gpuplan.calibration.hub import hub_online

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_online.cache_clear()
    yield
    hub_online.cache_clear()
