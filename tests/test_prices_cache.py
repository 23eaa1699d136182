"""The price cache (atomic writes, corrupt files) and the catalog's choice of source: --catalog file > cache >
bundled snapshot, with what it says on stderr."""

from __future__ import annotations

import datetime as dt
import os

import pytest
import yaml

from pricing.errors import PricingError
from pricing import cache as cache_mod
from pricing.cache import cache_path, cached_regions, read_cache, write_cache
from pricing.catalog import bundled_catalog, load_catalog, resolve_prices
from pricing.models import Catalog, InstanceOffer

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)


def region_catalog(region: str, od: float, *, itype: str = "g5.xlarge") -> Catalog:
    bundled = bundled_catalog()
    offer = InstanceOffer(instance_type=itype, region=region, gpu="a10g", gpu_count=1, vcpus=4, memory_gib=16.0,
                          on_demand_usd_per_hour=od, spot_usd_per_hour=od / 3, spot_usd_per_hour_min=od / 4,
                          price_source="test", price_date=NOW.date())
    return Catalog(source=f"test {region}", gpus=[bundled.gpu("a10g")], offers=[offer])


def cache_region(region: str, od: float, *, age: dt.timedelta = dt.timedelta(hours=2)) -> None:
    write_cache(region, region_catalog(region, od), NOW - age)


def g5(catalog: Catalog, region: str = "us-east-1") -> InstanceOffer:
    return next(o for o in catalog.offers if o.instance_type == "g5.xlarge" and o.region == region)


def test_round_trip_under_xdg_cache_home(isolated_cache):
    path = write_cache("eu-west-1", region_catalog("eu-west-1", 1.123), NOW)
    assert path == isolated_cache / "gpuplan" / "catalog-v2" / "aws-eu-west-1.yaml"
    cached, warning = read_cache("eu-west-1")
    assert warning is None and cached.fetched_at == NOW and cached.catalog == region_catalog("eu-west-1", 1.123)
    assert cached_regions() == ["eu-west-1"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_default_location_is_home_dot_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_path("us-east-1") == tmp_path / ".cache" / "gpuplan" / "catalog-v2" / "aws-us-east-1.yaml"


@pytest.mark.parametrize("text", [
    "offers: [unclosed\n",  # not YAML
    "- just\n- a list\n",  # not a mapping
    "schema_version: 1\noffers: []\n",  # no fetched_at, no offers
    "schema_version: 1\nfetched_at: '2026-03-02T10:00:00+00:00'\noffers:\n- instance_type: g5.xlarge\n",  # fields
    "schema_version: 99\nfetched_at: '2026-03-02T10:00:00+00:00'\n",  # another gpuplan's schema
    "\x00\x01binary",
])
def test_a_corrupt_cache_falls_back_to_the_bundle_with_a_warning(text):
    path = cache_path("us-east-1")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    said: list[str] = []
    catalog = load_catalog(notes=said.append)
    err = "\n".join(said)
    assert "Warning: ignoring the unreadable price cache" in err and "gpuplan prices refresh --region us-east-1" in err
    assert "bundled snapshot" in err
    assert g5(catalog).on_demand_usd_per_hour == g5(bundled_catalog()).on_demand_usd_per_hour
    assert path.read_text() == text  # left for the next refresh to replace, never deleted


def test_interrupted_replace_keeps_the_old_cache(monkeypatch):
    cache_region("us-east-1", 1.0)
    before = cache_path("us-east-1").read_bytes()

    def power_cut(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "replace", power_cut)
    with pytest.raises(PricingError, match="could not write the price cache .* the previous cache is kept"):
        cache_region("us-east-1", 9.99)
    assert cache_path("us-east-1").read_bytes() == before
    assert [p.name for p in cache_path("us-east-1").parent.iterdir()] == ["aws-us-east-1.yaml"]


def test_serializer_dying_midway_keeps_the_old_cache(monkeypatch):
    cache_region("us-east-1", 1.0)
    before = cache_path("us-east-1").read_bytes()
    real_dump = yaml.safe_dump

    def half_then_die(doc, stream, **kw):
        stream.write(real_dump(doc, **kw)[:200])  # a partial document really reaches the temp file
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.yaml, "safe_dump", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        cache_region("us-east-1", 9.99)
    assert cache_path("us-east-1").read_bytes() == before
    assert g5(load_catalog(notes=lambda _: None)).on_demand_usd_per_hour == 1.0
    assert len(os.listdir(cache_path("us-east-1").parent)) == 1


def test_unwritable_cache_dir_is_one_error(isolated_cache):
    isolated_cache.mkdir()
    (isolated_cache / "gpuplan").write_text("a file where the folder should be")
    with pytest.raises(PricingError, match="cannot write the price cache"):
        cache_region("us-east-1", 1.0)


def test_cache_beats_bundle_and_says_so():
    cache_region("us-east-1", 0.777)
    resolved = resolve_prices(now=NOW)
    catalog, notes = resolved.catalog, resolved.notes
    assert g5(catalog).on_demand_usd_per_hour == 0.777
    assert any(o.instance_type == "p3.2xlarge" for o in catalog.offers)  # not in the cache: the bundled row stays
    assert notes[0].startswith("Prices for us-east-1 (1 offer): cache ") and "(2 hours old)" in notes[0]
    assert notes[1].startswith("Prices for 23 regions (") and "bundled snapshot (price date 2026-04-01" in notes[1]
    assert resolved.stale_warning is None and not any(n.startswith("Warning") for n in notes)
    assert "cache" in catalog.source
    later = resolve_prices(now=NOW + dt.timedelta(days=200))
    assert later.stale_warning.startswith("Warning: prices for ") and "in 23 regions" in later.stale_warning
    assert "(oldest from 2026-03-02)" in later.stale_warning  # the cache's fetch, older than the bundle's date


def test_catalog_file_beats_cache_and_is_never_written(tmp_path):
    cache_region("us-east-1", 0.777)
    mine = tmp_path / "mine.yaml"
    mine.write_text("offers:\n- instance_type: g5.xlarge\n  on_demand_usd_per_hour: 0.5\n")
    before = (mine.read_bytes(), mine.stat().st_mtime_ns)
    resolved = resolve_prices(mine, now=NOW)
    assert g5(resolved.catalog).on_demand_usd_per_hour == 0.5
    assert resolved.sources[("g5.xlarge", "us-east-1")].kind == "catalog file"
    assert any("your catalog file" in n and "never writes it" in n for n in resolved.notes)
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == before


def test_several_cached_regions_without_region_hold_all_of_them():
    cache_region("us-east-1", 1.0)
    cache_region("eu-west-1", 1.2)
    catalog = load_catalog(notes=lambda _: None)
    assert {"us-east-1", "eu-west-1"} <= set(catalog.regions)
    only_eu = load_catalog(region="eu-west-1", notes=lambda _: None)
    assert only_eu.regions == ["eu-west-1"] and g5(only_eu, "eu-west-1").on_demand_usd_per_hour == 1.2


def test_a_region_with_no_prices_is_an_error():
    with pytest.raises(PricingError, match=r"no prices for region sa-east-1: run `gpuplan prices refresh"):
        load_catalog(region="sa-east-1", notes=lambda _: None)


def test_many_cached_regions_read_as_one_line():
    for i, r in enumerate(["eu-west-1", "eu-west-2", "us-east-1", "us-west-2", "ap-south-1"]):
        cache_region(r, 1.0 + i / 10, age=dt.timedelta(days=i))
    notes = resolve_prices(now=NOW).notes
    assert notes[0].startswith("Prices for 5 regions (5 offers): cache ") and "oldest 4 days old" in notes[0]


def test_a_fresh_cache_has_no_warning():
    cache_region("us-east-1", 1.0, age=dt.timedelta(minutes=3))
    notes = resolve_prices(region="us-east-1", now=NOW).notes
    cache_line = next(n for n in notes if "cache" in n)
    assert "(3 minutes old)" in cache_line
    assert not any(n.startswith("Warning") and "1 offer " in n for n in notes)


def test_stale_cache_warns_after_90_days_only_when_asked():
    write_cache("eu-west-1", region_catalog("eu-west-1", 1.0), NOW - dt.timedelta(days=60))
    assert resolve_prices(region="eu-west-1", now=NOW).stale_warning is None  # 60 days: the footer's date says it
    write_cache("eu-west-1", region_catalog("eu-west-1", 1.0), NOW - dt.timedelta(days=100))
    resolved = resolve_prices(region="eu-west-1", now=NOW)
    assert resolved.stale_warning == (
        "Warning: prices for 1 offer in eu-west-1 are more than 90 days old (oldest from 2025-11-22); run "
        "`gpuplan prices refresh --region eu-west-1` for today's prices")
    assert not any(n.startswith("Warning") for n in resolved.notes)


def test_load_catalog_warns_only_when_asked(monkeypatch):
    import pricing.catalog as catalog_mod

    later = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    real = catalog_mod.resolve_prices
    monkeypatch.setattr(catalog_mod, "resolve_prices", lambda *a, **k: real(*a, now=later, **k))
    quiet: list[str] = []
    load_catalog(notes=quiet.append)
    loud: list[str] = []
    load_catalog(notes=loud.append, warn_stale=True)
    assert not any(n.startswith("Warning") for n in quiet)
    assert [n for n in loud if n.startswith("Warning")] == [loud[-1]] and "90 days" in loud[-1]


def test_load_catalog_hands_its_notes_over_and_the_cli_prints_them_to_stderr(capsys):
    from typer.testing import CliRunner

    from gpuplan.cli import app

    cache_region("us-east-1", 1.0)
    said: list[str] = []
    load_catalog(notes=said.append)
    assert capsys.readouterr() == ("", "")  # pricing prints nothing itself
    assert any("Prices for us-east-1 (1 offer): cache" in n for n in said)
    shown = CliRunner().invoke(app, ["gpus"])
    assert shown.exit_code == 0, shown.output
    assert "Prices for" not in shown.stdout and "Prices for us-east-1 (1 offer): cache" in shown.stderr


def test_an_explicit_base_reads_no_cache_and_says_nothing(capsys):
    cache_region("us-east-1", 0.777)
    base = region_catalog("us-east-1", 3.0)
    assert load_catalog(base=base) == base
    assert capsys.readouterr().err == ""
