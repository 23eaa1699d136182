"""Hostile input, as a new user and a careless script would type it: every case ends in one `Error:` line that names
what was wrong, a non-zero exit, no traceback and nothing on stdout (so never a NaN, infinite or negative figure).
Calibrate cases fail before TensorFlow is imported: its import is replaced by a trap."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shlex
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cli_helpers import failed
from typer.testing import CliRunner

from gpuplan.cli import app
from gpuplan.workload import build_workload

runner = CliRunner()

DIR, HUGE, UNREADABLE = object(), object(), object()  # files that are not files: a folder, 200 MiB, no permission
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
LATIN1 = "model: caf\xe9\n".encode("latin-1")
DEEP = b"[" * 20_000  # nests past Python's recursion limit when parsed


def _catalog(gpu: dict | None = None, offer: dict | None = None) -> bytes:
    """A --catalog file overriding one field of the small catalog's T4 or its g4dn.xlarge."""
    doc = {"gpus": [{"key": "t4", **gpu}] if gpu else [], "offers": [{"instance_type": "g4dn.xlarge", **offer}]
           if offer else []}
    return json.dumps(doc).replace("NaN", ".nan").replace("-Infinity", "-.inf").replace("Infinity", ".inf").encode()


CATALOG_CASES = [
    ("gpus --catalog {f}", BINARY, "is binary"),
    ("gpus --catalog {f}", LATIN1, "is not UTF-8 text (byte 0xe9 on line 1)"),
    ("gpus --catalog {f}", DIR, "is a folder"),
    ("gpus --catalog {f}", HUGE, "is 200 MiB"),
    ("gpus --catalog {f}", UNREADABLE, "cannot read catalog file"),
    ("gpus --catalog {f}", DEEP, "nests too deeply"),
    ("gpus --catalog {f}", b"gpus: [\n", "is not valid YAML"),
    ("gpus --catalog {f}", b"- t4\n", "a catalog is a YAML mapping"),
    ("gpus --catalog {f}", _catalog(gpu={"fp32_tflops": math.inf}), "gpus[0] (t4).fp32_tflops: Input should be a "
                                                                   "finite number, got inf"),
    ("gpus --catalog {f}", _catalog(gpu={"memory_bandwidth_gbs": math.nan}), "memory_bandwidth_gbs: Input should be "
                                                                             "a finite number, got nan"),
    ("gpus --catalog {f}", b"gpus:\n- key: t4\n  fp16_tflops: 1e30\n", "fp16_tflops: Input should be less than or "
                                                                       "equal to 100000, got '1e30'"),
    ("gpus --catalog {f}", _catalog(gpu={"memory_gib": 0}), "memory_gib: Input should be greater than 0"),
    ("gpus --catalog {f}", _catalog(gpu={"compute_capability": -math.inf}), "compute_capability"),
    ("estimate --catalog {f}", _catalog(offer={"on_demand_usd_per_hour": -1}), "offers[0] (g4dn.xlarge)."
                                                                               "on_demand_usd_per_hour: Input should "
                                                                               "be greater than 0, got -1"),
    ("estimate --catalog {f}", _catalog(offer={"on_demand_usd_per_hour": math.inf}), "on_demand_usd_per_hour: Input "
                                                                                     "should be a finite number"),
    ("estimate --spot --catalog {f}", _catalog(offer={"spot_usd_per_hour": math.nan}), "spot_usd_per_hour"),
    ("estimate --catalog {f}", _catalog(offer={"on_demand_usd_per_hour": 1e9}), "on_demand_usd_per_hour: Input "
                                                                                "should be less than or equal to "
                                                                                "10000"),
    ("estimate --catalog {f}", _catalog(offer={"gpu_count": 100_000}), "gpu_count"),
    ("estimate --catalog {f}", _catalog(offer={"startup_seconds": math.inf}), "startup_seconds"),
    ("estimate --catalog {f}", _catalog(offer={"memory_gib": -4}), "offers[0] (g4dn.xlarge).memory_gib"),
    ("prices show --catalog {f}", _catalog(offer={"spot_usd_per_hour_min": -0.5}), "spot_usd_per_hour_min"),
    ("prices show --catalog {f}", BINARY, "is binary"),
]

WORKLOAD_CASES = [
    ("estimate --workload {f}", BINARY, "workload file {f} is binary"),
    ("estimate --workload {f}", LATIN1, "workload file {f} is not UTF-8"),
    ("estimate --workload {f}", DIR, "workload file {f} is a folder"),
    ("estimate --workload {f}", HUGE, "workload file {f} is 200 MiB"),
    ("estimate --workload {f}", UNREADABLE, "cannot read workload file {f}"),
    ("estimate --workload {f}", DEEP, "nests too deeply"),
    ("estimate --workload {f}", b"epochs: .inf\n", "epochs must be a finite number"),
    ("estimate --workload {f}", b"epochs: .nan\n", "epochs must be a finite number"),
    ("estimate --workload {f}", b"num_examples: -10\n", "num-examples must be greater than 0"),
    ("estimate --workload {f}", b"batch_size: 1000000000\n", "batch-size 1e+09 is beyond any real fine-tune"),
    ("estimate --workload {f}", b"epochs: [1, 2]\n", "epochs must be a number"),
    ("estimate --workload {f}", b"a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nepochs: [*a, *a, *a, *a, *a, *a, *a]\n",
     "unknown field 'a'"),
    ("calibrate --workload {f}", BINARY, "workload file {f} is binary"),
    ("calibrate --workload {f}", b"seq_len: 0\n", "seq-len must be greater than 0"),
]

def _config(**fields) -> bytes:
    base = {"model_type": "bert", "vocab_size": 1000, "hidden_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 256, "max_position_embeddings": 512}
    return json.dumps({**base, **fields}).encode()


# Model configs transformers can't build, refused before a calibration imports it.
MODEL_CASES = [
    ("estimate --model {f}.json", _config(hidden_size=100, num_attention_heads=12),
     "hidden_size 100 is not a multiple of num_attention_heads 12"),
    ("calibrate --model {f}.json", _config(hidden_size=100, num_attention_heads=12), "transformers cannot build"),
    ("estimate --model {f}.json", _config(num_hidden_layers=0), "config field num_hidden_layers: Input should be "
                                                                "greater than 0"),
    ("calibrate --model {f}.json", _config(hidden_size=-128), "config field hidden_size: Input should be greater"),
    ("estimate --model {f}.json", _config(vocab_size=10**9), "config field vocab_size: Input should be less than"),
    ("estimate --model {f}.json", BINARY, "is binary"),
    ("calibrate --model {f}.json", LATIN1, "is not UTF-8 text"),
    ("estimate --model {f}.json", b"[1, 2]", "is not a JSON object"),
    ("estimate --model {f}.json", b'{"model_type": "bert",', "is not valid JSON"),
    ("estimate --model {f}", DIR, "has no config.json"),
    ("calibrate --model {f}", DIR, "has no config.json"),
    ("estimate --model {f}.json", _config(model_type="t5"), "model_type 't5' is not a BERT-family encoder"),
]

FLAG_CASES = [
    ("estimate --epochs nan", None, "'nan' is not a finite number"),
    ("estimate --deadline inf", None, "'inf' is not a finite number"),
    ("estimate --budget -5", None, "budget"),
    ("estimate --gpu local --local-price -inf", None, "'-inf' is not a finite number"),
    ("estimate --num-examples 1000000000000000", None, "num-examples 1e+15 is beyond any real fine-tune"),
    ("estimate --seq-len 100000", None, "seq-len 100000 is longer than"),
    ("estimate --region mars", None, "'mars' is not an AWS region name"),
    ("estimate --calibration {f}", BINARY, "is not a gpuplan calibration result"),
    ("estimate --calibration {f}", DIR, "is a folder"),
    ("gpus --region 'us east 1'", None, "'us east 1' is not an AWS region name"),
    ("gpus --gpu h9000", None, "unknown GPU 'h9000'"),
    ("gpus --format xml", None, "unknown format 'xml'"),
    ("gpus --gpu ''", None, "unknown GPU ''"),
    ("gpus --region ''", None, "'' is not an AWS region name"),
    ("calibrate --steps 0", None, "'--steps': Input should be greater than or equal to 1"),
    ("calibrate --warmup-steps -1", None, "'--warmup-steps': Input should be greater than or equal to 1"),
    ("calibrate --steps 1000000000", None, "'--steps': Input should be less than or equal to 10000"),
    ("calibrate --warmup-steps 5000", None, "'--warmup-steps': Input should be less than or equal to 1000"),
    ("calibrate --steps nan", None, "'--steps'"),
    ("calibrate --epochs inf", None, "'inf' is not a finite number"),
    ("calibrate --batch-size 0", None, "batch-size must be greater than 0"),
    ("calibrate --output {f}", DIR, "--output {f} is a folder"),
    ("calibrate --dataset {f}.csv", BINARY, "is binary"),
    ("calibrate --format xml", None, "unknown format 'xml'"),
    ("prices show --region 'us east'", None, "'us east' is not an AWS region name"),
    ("prices show --gpu nope", None, "unknown GPU 'nope'"),
    ("prices show --format yaml", None, "unknown format 'yaml'"),
    ("prices show --region ''", None, "'' is not an AWS region name"),
    ("prices show --gpu ''", None, "unknown GPU ''"),
    ("prices refresh --region ../../etc", None, "'../../etc' is not an AWS region name"),
    ("prices refresh --instance-type 'g5.xlarge;rm'", None, "'g5.xlarge;rm' is not an EC2 instance type name"),
    ("prices refresh --source ftp", None, "'ftp': use catalog or aws"),
    ("prices refresh --url file:///etc/passwd", None, "is not http(s)"),
    ("prices refresh --region us-east-1 --all-regions", None, "not both"),
]

# launch: only what the launch refuses today before any AWS call (issue 10 owns the rest; see the report).
LAUNCH_CASES = [
    ("launch --dry-run --instance nope.xlarge", None, "unknown instance type 'nope.xlarge'"),
    ("launch --dry-run --instance g4dn.xlarge --region 'us east'", None, "is not an EC2 region"),
    ("launch --dry-run --instance g4dn.xlarge --timeout nan", None, "--timeout: input should be a finite number"),
    ("launch --dry-run --instance g4dn.xlarge --timeout inf", None, "--timeout: input should be a finite number"),
    ("launch --dry-run --instance g4dn.xlarge --max-minutes 0", None, "--max-minutes: input should be greater than 0"),
    ("launch --dry-run --instance g4dn.xlarge --max-minutes 100000", None, "--max-minutes: input should be less"),
    ("launch --dry-run --instance g4dn.xlarge --steps -3", None, "'--steps': Input should be greater than or equal to 1"),
    ("launch --dry-run --instance g4dn.xlarge --epochs nan", None, "'nan' is not a finite number"),
    ("launch --dry-run --instance g4dn.xlarge --workload {f}", BINARY, "workload file {f} is binary"),
    ("launch --dry-run --instance g4dn.xlarge --catalog {f}", _catalog(offer={"on_demand_usd_per_hour": math.nan}),
     "on_demand_usd_per_hour: Input should be a finite number"),
    ("launch --dry-run --instance g4dn.xlarge --dataset {f}.csv", BINARY, "is binary"),
]


def _make(tmp_path: Path, content, suffix: str, monkeypatch) -> Path:
    path = tmp_path / f"hostile{suffix}"
    if content is DIR:
        path.mkdir()
    elif content is HUGE:
        with path.open("wb") as f:
            f.truncate(200 * 2**20)  # sparse: 200 MiB on paper, nothing on disk
    elif content is UNREADABLE:
        path.write_text("epochs: 1\n")
        path.chmod(0)
        if os.geteuid() == 0:  # root reads anything: make the OS's refusal happen anyway
            real_open = Path.open

            def refusing_open(self, *args, **kwargs):
                if self == path:
                    raise PermissionError(13, "Permission denied", str(self))
                return real_open(self, *args, **kwargs)

            monkeypatch.setattr(Path, "open", refusing_open)
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def no_training(monkeypatch, offline_hub):
    """A calibrate case that gets as far as importing TensorFlow has failed: each is refused before it, in seconds.
    Offline, so a dataset case never waits on the Hub."""
    import gpuplan.calibration.train

    def trap(*args, **kwargs):
        raise AssertionError("hostile input reached TensorFlow")

    monkeypatch.setattr(gpuplan.calibration.train, "import_tf", trap)


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """launch cases: no credentials, and an endpoint nothing listens on, so a call that slips through fails."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def _run_case(tmp_path, monkeypatch, command: str, content, says: str) -> None:
    args = shlex.split(command)
    if content is not None:
        stem = next(a for a in args if "{f}" in a)
        suffix = stem.split("{f}")[1] or ".yaml"
        path = _make(tmp_path, content, suffix, monkeypatch)
        base = str(path)[: len(str(path)) - len(suffix)] if stem.split("{f}")[1] else str(path)
        args = [a.replace("{f}", base) for a in args]
        says = says.replace("{f}", str(path))
    started = time.monotonic()
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    failed(result, says)
    assert result.stdout == "", result.stdout  # nothing planned, so no figure at all
    assert time.monotonic() - started < 20  # refused up front, not after minutes of work


def _ids(cases):
    return [c[0].split()[0] + ": " + c[0].split(" ", 1)[1].replace("{f}", "FILE") + (
        "" if c[1] is None else f" [{_kind(c[1])}]") for c in cases]


def _kind(content) -> str:
    return {id(DIR): "folder", id(HUGE): "huge", id(UNREADABLE): "unreadable", id(BINARY): "binary",
            id(LATIN1): "latin-1", id(DEEP): "deep"}.get(id(content)) or content[:40].decode(errors="replace")


@pytest.mark.parametrize(("command", "content", "says"), CATALOG_CASES, ids=_ids(CATALOG_CASES))
def test_hostile_catalog_files(small_catalog, no_training, tmp_path, monkeypatch, command, content, says):
    _run_case(tmp_path, monkeypatch, command, content, says)


@pytest.mark.parametrize(("command", "content", "says"), WORKLOAD_CASES, ids=_ids(WORKLOAD_CASES))
def test_hostile_workload_files(small_catalog, no_training, tmp_path, monkeypatch, command, content, says):
    _run_case(tmp_path, monkeypatch, command, content, says)


@pytest.mark.parametrize(("command", "content", "says"), MODEL_CASES, ids=_ids(MODEL_CASES))
def test_hostile_model_configs(small_catalog, no_training, tmp_path, monkeypatch, command, content, says):
    _run_case(tmp_path, monkeypatch, command, content, says)


@pytest.mark.parametrize(("command", "content", "says"), FLAG_CASES, ids=_ids(FLAG_CASES))
def test_hostile_flags_and_files(small_catalog, no_training, tmp_path, monkeypatch, command, content, says):
    _run_case(tmp_path, monkeypatch, command, content, says)


@pytest.mark.parametrize(("command", "content", "says"), LAUNCH_CASES, ids=_ids(LAUNCH_CASES))
def test_hostile_launch_input_is_refused_before_any_aws_call(small_catalog, no_aws, tmp_path, monkeypatch, command,
                                                             content, says):
    _run_case(tmp_path, monkeypatch, command, content, says)


def test_a_cache_fetched_in_the_future_is_ignored_with_a_warning(small_catalog):
    from pricing.cache import read_cache, write_cache
    from pricing.models import Catalog

    offers = [o.model_copy(update={"region": "eu-west-1"}) for o in small_catalog.offers]
    catalog = Catalog(gpus=small_catalog.gpus, offers=offers)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    write_cache("eu-west-1", catalog, now)
    cached, warning = read_cache("eu-west-1")
    assert cached is not None and warning is None
    write_cache("eu-west-1", catalog, now + dt.timedelta(days=400))  # a wrong clock, or a hand-edited file
    cached, warning = read_cache("eu-west-1")
    assert cached is None and "is in the future" in warning and "prices refresh --region eu-west-1" in warning


@pytest.mark.parametrize(("content", "says"), [
    (BINARY, "(it is binary, not a text file)"), (LATIN1, "(it is not UTF-8 text (byte 0xe9 on line 1))"),
    (b"fetched_at: 2026-03-02T10:00:00Z\noffers:\n- {instance_type: g5.xlarge, gpu: a10g, gpu_count: 1, vcpus: 4, "
     b"memory_gib: 16, on_demand_usd_per_hour: .nan}\n", "(offers[0].on_demand_usd_per_hour: Input should be a finite"),
])
def test_a_broken_cache_file_is_ignored_with_one_warning_and_the_estimate_goes_on(small_catalog, content, says):
    from pricing.cache import cache_path

    path = cache_path("us-east-1")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    result = runner.invoke(app, ["estimate", "--format", "json"])
    assert result.exit_code == 0 and "Traceback" not in result.output
    warning = [line for line in result.stderr.splitlines() if "unreadable price cache" in line]
    assert len(warning) == 1 and says in warning[0] and "prices refresh --region us-east-1" in warning[0]
    plans = json.loads(result.stdout)["plans"]
    assert plans and all(math.isfinite(p["total_seconds"]) and p["cost_usd"] >= 0 for p in plans)


def test_a_writer_killed_mid_write_leaves_no_temp_file_for_long(small_catalog, isolated_cache):
    from pricing.cache import cache_dir, write_cache
    from pricing.models import Catalog

    folder = cache_dir()
    folder.mkdir(parents=True)
    old = folder / ".aws-us-east-1.yaml.k3j_x9.tmp"  # as mkstemp names them
    young = folder / ".aws-eu-west-1.yaml.q81z2b.tmp"  # a refresh running beside this one
    mine = folder / "notes.tmp"  # not a cache temp file: never touched
    for p in (old, young, mine):
        p.write_text("offers:\n- instance_type: g5.x")  # cut off mid-write
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(mine, (two_hours_ago, two_hours_ago))
    write_cache("us-east-1", Catalog(gpus=small_catalog.gpus, offers=small_catalog.offers),
                dt.datetime.now(dt.timezone.utc))
    assert not old.exists() and young.exists() and mine.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([young.name, mine.name, "aws-us-east-1.yaml"])


def test_the_bundled_catalog_is_within_the_physical_bounds():
    """The bounds refuse typos, never a real GPU or instance: every bundled row passes them with room to spare."""
    from pricing.catalog import bundled_catalog

    catalog = bundled_catalog()
    assert max(g.fp16_tflops for g in catalog.gpus) * 10 < 100_000
    assert max(o.on_demand_usd_per_hour or 0 for o in catalog.offers) * 10 < 10_000


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(num_examples=st.integers(-10, 10**12) | st.none(),
       epochs=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
       batch_size=st.integers(-2, 10**6) | st.none(),
       seq_len=st.integers(-2, 1024) | st.none(),
       precision=st.sampled_from(["fp32", "mixed", "both", "fp8"]) | st.none(),
       stack=st.sampled_from(["keras", "keras-xla", "tuned", "jax"]) | st.none(),
       model=st.sampled_from(["bert-base-uncased", "bert-large-uncased", "distilbert-base-uncased"]) | st.none())
def test_any_workload_build_workload_accepts_plans_to_finite_non_negative_times_and_costs(
        small_catalog, num_examples, epochs, batch_size, seq_len, precision, stack, model):
    from gpuplan.errors import GpuplanError
    from gpuplan.plan import make_estimate
    from pricing.catalog import select_offers

    try:
        wl = build_workload(model=model, num_examples=num_examples, epochs=epochs, batch_size=batch_size,
                            seq_len=seq_len, precision=precision, stack=stack)
    except GpuplanError as e:
        assert "\n" not in str(e)
        return  # refused, in one line: nothing to plan
    est = make_estimate(wl, select_offers(small_catalog), small_catalog)
    assert est.plans
    for p in est.plans:
        for v in (p.total_seconds, p.train_seconds, p.cost_usd, p.step_seconds, p.samples_per_second):
            assert isinstance(v, float) and math.isfinite(v) and v >= 0, (p, v)
