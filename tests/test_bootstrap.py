"""The bootstrap script executed for real with bash, in a sandbox: stand-ins only for `shutdown`, `systemctl`,
`nvidia-smi`, the package install (GPUPLAN_PIP) and, in the end-to-end test, TensorFlow's GPU check; S3 is the moto
server, reached with curl through presigned URLs; in the end-to-end test the real `gpuplan calibrate` trains a tiny
BERT on this CPU, launched by the real `gpuplan launch` from the user data EC2 (moto) stored, and the client refuses
that CPU result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cloud_helpers import (ACCOUNT, ENDPOINT, FAST, FakeInstances, gpuplan_bucket, gpuplan_instances, live_instances, s3,
                           tags, user_data)
from typer.testing import CliRunner

import gpuplan
from gpuplan.measurement import CalibrationResult
from gpuplan.cli import app
from gpuplan.cloud.bootstrap import BootstrapParams, render_user_data

BUCKET = "gpuplan-test-bucket"
WHEEL = "gpuplan-0.1.0-py3-none-any.whl"
TINY = {"model_type": "bert", "vocab_size": 500, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128, "max_position_embeddings": 64}


@pytest.fixture
def sandbox(aws, tmp_path, monkeypatch):
    """A folder with fake `shutdown`, `systemctl`, `pip` (all record their arguments) and `nvidia-smi` first on PATH,
    and the env that points the script at them instead of the machine."""
    ENDPOINT[:] = [aws]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    for name, rc in (("shutdown", 0), ("systemctl", 0), ("pip", 0), ("failing-pip", 1)):
        script = bin_dir / name
        script.write_text(f'#!/bin/bash\necho "{name.replace("failing-", "")} $*" >> {calls}\n'
                          + ('[ "$1 $2" = "install --upgrade" ] && exit 0\n' if rc else "") + f"exit {rc}\n")
        script.chmod(0o755)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/bash\necho 'GPU 0: Tesla T4 (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    (tmp_path / "systemd").mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GPUPLAN_WORKDIR": str(tmp_path / "work"),
           "GPUPLAN_PYTHON": sys.executable, "GPUPLAN_PIP": str(bin_dir / "pip"), "CUDA_VISIBLE_DEVICES": "",
           "GPUPLAN_SYSTEMD_DIR": str(tmp_path / "systemd"), "GPUPLAN_TF_GPU_CHECK": "echo 1"}
    s3().create_bucket(Bucket=BUCKET)
    yield {"env": env, "calls": calls, "work": tmp_path / "work", "bin": bin_dir, "tmp": tmp_path}
    assert live_instances() == [], "an instance was left pending or running"
    ENDPOINT.clear()


def run_script(script: str, env: dict[str, str], tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    path = tmp / "user-data.sh"
    path.write_text(script)
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=timeout)


def get(key: str) -> str | None:
    try:
        return s3().get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    except s3().exceptions.NoSuchKey:
        return None


def url(method: str, key: str) -> str:
    from botocore.config import Config

    import boto3

    signer = boto3.client("s3", region_name="us-east-1", endpoint_url=ENDPOINT[0],
                          config=Config(signature_version="s3v4"))
    return signer.generate_presigned_url(method, Params={"Bucket": BUCKET, "Key": key, "ExpectedBucketOwner": ACCOUNT},
                                         ExpiresIn=600)


def params(**kw) -> BootstrapParams:
    base = dict(launch_id="L1", region="us-east-1", bucket_owner=ACCOUNT, launched_at=0.0,
                result_url=url("put_object", "gpuplan/L1/result.json"),
                log_url=url("put_object", "gpuplan/L1/bootstrap.log"), max_minutes=30,
                wheel_url=url("get_object", f"gpuplan/L1/{WHEEL}"), wheel_name=WHEEL)
    return BootstrapParams(**{**base, **kw})


def test_the_script_is_valid_bash_and_carries_no_credentials(aws, monkeypatch):
    ENDPOINT[:] = [aws]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-shipped")
    script = render_user_data(params(calibrate_args=["--model", "it's quoted; rm -rf /"]))
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "CALIBRATE_ARGS=(--model 'it'\"'\"'s quoted; rm -rf /')" in script
    # URLs carry a key id, a signature and (temporary credentials) the session token; never the secret.
    assert "s3cr3t-never-shipped" not in script and "AWS_SECRET" not in script and "AWS_SESSION_TOKEN" not in script
    assert script.index('shutdown -h "+$MAX_MINUTES"') < script.index("nvidia-smi -L") < script.index(
        "pip_install --upgrade pip")
    ENDPOINT.clear()
    if shutil.which("shellcheck"):
        assert subprocess.run(["shellcheck", "-s", "bash", "-"], input=script, text=True).returncode == 0


def test_a_failed_install_still_uploads_the_log_and_shuts_down(sandbox):
    s3().put_object(Bucket=BUCKET, Key=f"gpuplan/L1/{WHEEL}", Body=b"PK not really a wheel")
    s3().put_object(Bucket=BUCKET, Key="gpuplan/L1/model/config.json", Body=json.dumps(TINY).encode())
    env = {**sandbox["env"], "GPUPLAN_PIP": str(sandbox["bin"] / "failing-pip")}
    script = render_user_data(params(model_url=url("get_object", "gpuplan/L1/model/config.json")))
    done = run_script(script, env, sandbox["tmp"], timeout=120)
    assert done.returncode == 1, done.stderr
    calls = sandbox["calls"].read_text().splitlines()
    # The watchdog first (and its reboot-proof timer), then the install (of the shipped wheel), then the
    # immediate shutdown of the trap.
    assert calls == ["shutdown -h +30", "systemctl daemon-reload", "systemctl enable --now gpuplan-watchdog.timer",
                     "pip install --upgrade pip", f"pip install {sandbox['work']}/{WHEEL} tensorflow[and-cuda]==2.21.*",
                     "shutdown -h now"]
    timer = (sandbox["tmp"] / "systemd" / "gpuplan-watchdog.timer").read_text()
    assert "Persistent=true" in timer and "OnCalendar=20" in timer and "WantedBy=timers.target" in timer
    assert "shutdown -h now" in (sandbox["tmp"] / "systemd" / "gpuplan-watchdog.service").read_text()
    assert (sandbox["work"] / WHEEL).read_bytes() == b"PK not really a wheel"  # fetched with curl and its URL
    assert json.loads((sandbox["work"] / "model" / "config.json").read_text()) == TINY
    log = get("gpuplan/L1/bootstrap.log")
    assert log is not None
    assert "step: watchdog: power off in 30 minutes" in log and "GPU 0: Tesla T4" in log
    assert "FAILED (exit 1) during: install" in log
    assert get("gpuplan/L1/result.json") is None


def test_without_nvidia_smi_the_instance_reports_no_gpu_and_shuts_down(sandbox):
    (sandbox["bin"] / "nvidia-smi").unlink()
    assert shutil.which("nvidia-smi", path=sandbox["env"]["PATH"]) is None
    done = run_script(render_user_data(params()), sandbox["env"], sandbox["tmp"], timeout=60)
    assert done.returncode == 3
    error = json.loads(get("gpuplan/L1/result.json"))
    assert error == {"gpuplan_error": "no_gpu", "message": "nvidia-smi is not installed: the AMI has no NVIDIA driver",
                     "launch_id": "L1"}
    calls = sandbox["calls"].read_text().splitlines()
    assert not any(c.startswith("pip") for c in calls) and calls[-1] == "shutdown -h now"  # nothing installed
    assert "FAILED (exit 3) during: GPU: nvidia-smi" in get("gpuplan/L1/bootstrap.log")


def test_when_tensorflow_sees_no_gpu_the_instance_says_so(sandbox):
    fake_tf = sandbox["tmp"] / "fake-tf" / "tensorflow"
    fake_tf.mkdir(parents=True)
    (fake_tf / "__init__.py").write_text("class config:\n    list_physical_devices = staticmethod(lambda k=None: [])\n")
    env = {**sandbox["env"], "PYTHONPATH": str(fake_tf.parent)}
    del env["GPUPLAN_TF_GPU_CHECK"]  # the real check, against a TensorFlow that lists no GPU
    s3().put_object(Bucket=BUCKET, Key=f"gpuplan/L1/{WHEEL}", Body=b"PK")
    done = run_script(render_user_data(params()), env, sandbox["tmp"], timeout=60)
    assert done.returncode == 3
    error = json.loads(get("gpuplan/L1/result.json"))
    assert error["gpuplan_error"] == "no_gpu" and "sees no GPU although nvidia-smi does" in error["message"]


def test_with_an_instance_profile_the_script_uses_s3_and_falls_back_to_the_aws_cli(sandbox):
    # A system python without boto3 (before the venv exists): the AMI's AWS CLI moves the files.
    fake_aws = sandbox["bin"] / "aws"
    fake_aws.write_text(f'#!/bin/bash\necho "aws $*" >> {sandbox["calls"]}\n')
    fake_aws.chmod(0o755)
    no_boto = sandbox["bin"] / "python-no-boto3"
    no_boto.write_text(f'#!/bin/bash\nexec {sys.executable} -S "$@"\n')  # -S: no site-packages, so no boto3
    no_boto.chmod(0o755)
    env = {**sandbox["env"], "GPUPLAN_PYTHON": str(no_boto), "GPUPLAN_PIP": str(sandbox["bin"] / "failing-pip")}
    log_uri = f"s3://{BUCKET}/gpuplan/L1/bootstrap.log"
    done = run_script(render_user_data(params(result_url=f"s3://{BUCKET}/gpuplan/L1/result.json", log_url=log_uri,
                                              wheel_url=f"s3://{BUCKET}/gpuplan/L1/{WHEEL}")),
                      env, sandbox["tmp"], timeout=60)
    assert done.returncode == 1
    calls = sandbox["calls"].read_text().splitlines()
    owner = f"--expected-bucket-owner {ACCOUNT}"
    assert f"aws s3 cp --only-show-errors {owner} s3://{BUCKET}/gpuplan/L1/{WHEEL} {sandbox['work']}/{WHEEL}" in calls
    assert f"aws s3 cp --only-show-errors {owner} {sandbox['work']}/bootstrap.log {log_uri}" in calls
    assert calls[-1] == "shutdown -h now"


def test_launch_runs_its_own_user_data_with_the_real_calibrate(sandbox, monkeypatch):
    """The whole product: `gpuplan launch` starts an (moto) instance; its user data runs here with bash, fetches
    through presigned URLs, installs nothing (fake pip), runs the real `gpuplan calibrate` on a tiny BERT shipped
    through S3, adds its phases, uploads the result. It ran on this CPU: the client refuses it as a measurement,
    says so and terminates the instance."""
    pytest.importorskip("gpuplan.cli.calibrate")
    model = sandbox["tmp"] / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(TINY))
    runs: list[subprocess.CompletedProcess] = []

    def boot(inst):
        runs.append(run_script(user_data(inst["InstanceId"]), sandbox["env"], sandbox["tmp"]))

    fake = FakeInstances(boot)
    fake.start()
    monkeypatch.chdir(sandbox["tmp"])
    result = CliRunner().invoke(app, [
        "launch", "--instance", "g4dn.xlarge", "--yes", "--format", "json", "--model", str(model),
        "--batch-size", "2", "--seq-len", "16", "--precision", "fp32", "--steps", "2",
        "--calibrate-arg=--warmup-steps=1", "--dataset", str(Path(__file__).parent / "data" / "reviews.csv"),
        "--text-column", "review", "--label-column", "sentiment",
        "--max-minutes", "20", "--save", "results"], obj=replace(FAST, poll_seconds=0.05))
    fake.join()
    assert fake.error is None
    (done,) = runs
    log = (sandbox["work"] / "bootstrap.log").read_text()
    assert done.returncode == 0, log[-3000:]
    assert result.exit_code == 1, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and "the calibration ran on the CPU" in errors[0]
    assert "no GPU visible on the instance (driver/AMI)" in errors[0] and "not used as a measurement" in errors[0]
    assert "min, ~$" in errors[0] and "spent" in errors[0]

    calls = sandbox["calls"].read_text().splitlines()
    # From this source checkout the client built its own wheel; the instance installs that, never an index's.
    wheel = f"gpuplan-{gpuplan.__version__}-py3-none-any.whl"
    assert calls == ["shutdown -h +20", "systemctl daemon-reload", "systemctl enable --now gpuplan-watchdog.timer",
                     "pip install --upgrade pip", f"pip install {sandbox['work']}/{wheel} tensorflow[and-cuda]==2.21.*",
                     "shutdown -h now"]
    assert (sandbox["work"] / wheel).read_bytes()[:2] == b"PK"  # the real wheel, fetched from S3 by its URL
    (inst,) = gpuplan_instances()
    lid = tags(inst)["gpuplan:launch-id"]
    bucket = gpuplan_bucket()
    body = s3().get_object(Bucket=bucket, Key=f"gpuplan/{lid}/result.json")["Body"].read()
    uploaded = CalibrationResult.model_validate_json(body)
    assert uploaded.workload.arch.hidden_size == 64 and uploaded.workload.batch_size == 2
    assert uploaded.device.kind == "cpu"
    (run,) = uploaded.runs
    assert run.measured and run.steps == 2 and run.seq_len == 16
    # The phases the start-up model uses, each timed on the "instance".
    assert {"boot", "driver", "install", "model_download", "trace", "run_fp32", "calibrate"} <= set(uploaded.phases)
    assert 0 <= uploaded.phases["boot"] < 600 and uploaded.phases["trace"] > 0
    # The dataset travelled through S3 and the instance tokenized it: its statistics came back.
    assert uploaded.dataset is not None and uploaded.dataset.num_examples == 96
    log = s3().get_object(Bucket=bucket, Key=f"gpuplan/{lid}/bootstrap.log")["Body"].read().decode()
    assert "step: fetch the dataset shipped by the client" in log and "step: upload the result" in log
    assert not list((sandbox["tmp"] / "results").glob("*.json"))  # a refused result is not saved as a measurement
    assert inst["State"]["Name"] in ("shutting-down", "terminated")
