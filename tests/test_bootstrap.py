"""The bootstrap script executed for real with bash, in a sandbox: stand-ins only for `shutdown` and the package
install (GPUPLAN_PIP); S3 is the moto server; in the end-to-end test the real `gpuplan calibrate` trains a tiny BERT
on this CPU, launched by the real `gpuplan launch` from the user data EC2 (moto) stored."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cloud_helpers import ENDPOINT, FAST, FakeInstances, ec2, gpuplan_instances, live_instances, s3, tags
from typer.testing import CliRunner

import gpuplan
from gpuplan.measurement import CalibrationResult
from gpuplan.cli import app
from gpuplan.cloud.bootstrap import BootstrapParams, render_user_data

BUCKET = "gpuplan-test-bucket"
TINY = {"model_type": "bert", "vocab_size": 500, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128, "max_position_embeddings": 64}


@pytest.fixture
def sandbox(aws, tmp_path, monkeypatch):
    """A folder with fake `shutdown` and `pip` first on PATH (both record their arguments), and the env that
    points the script at them instead of the machine."""
    ENDPOINT[:] = [aws]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    for name, rc in (("shutdown", 0), ("pip", 0), ("failing-pip", 1)):
        script = bin_dir / name
        script.write_text(f'#!/bin/bash\necho "{name.replace("failing-", "")} $*" >> {calls}\n'
                          + ('[ "$1 $2" = "install --upgrade" ] && exit 0\n' if rc else "") + f"exit {rc}\n")
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GPUPLAN_WORKDIR": str(tmp_path / "work"),
           "GPUPLAN_PYTHON": sys.executable, "GPUPLAN_PIP": str(bin_dir / "pip"), "CUDA_VISIBLE_DEVICES": ""}
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


def params(**kw) -> BootstrapParams:
    base = dict(launch_id="L1", region="us-east-1", result_uri=f"s3://{BUCKET}/gpuplan/L1/result.json",
                log_uri=f"s3://{BUCKET}/gpuplan/L1/bootstrap.log", max_minutes=30)
    return BootstrapParams(**{**base, **kw})


def test_the_script_is_valid_bash_and_carries_no_credentials(aws):
    script = render_user_data(params(calibrate_args=["--model", "it's quoted; rm -rf /"]))
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "CALIBRATE_ARGS=(--model 'it'\"'\"'s quoted; rm -rf /')" in script
    assert "testing" not in script and "AWS_SECRET" not in script and "AWS_SESSION_TOKEN" not in script
    assert script.index('shutdown -h "+$MAX_MINUTES"') < script.index("pip_install --upgrade pip")
    if shutil.which("shellcheck"):
        assert subprocess.run(["shellcheck", "-s", "bash", "-"], input=script, text=True).returncode == 0


def test_a_failed_install_still_uploads_the_log_and_shuts_down(sandbox):
    wheel = sandbox["tmp"] / "gpuplan-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK not really a wheel")
    s3().upload_file(str(wheel), BUCKET, "gpuplan/L1/gpuplan-0.1.0-py3-none-any.whl")
    s3().put_object(Bucket=BUCKET, Key="gpuplan/L1/model/config.json", Body=json.dumps(TINY).encode())
    env = {**sandbox["env"], "GPUPLAN_PIP": str(sandbox["bin"] / "failing-pip")}
    script = render_user_data(params(wheel_uri=f"s3://{BUCKET}/gpuplan/L1/{wheel.name}",
                                     model_uri=f"s3://{BUCKET}/gpuplan/L1/model/config.json"))
    done = run_script(script, env, sandbox["tmp"], timeout=120)
    assert done.returncode == 1, done.stderr
    calls = sandbox["calls"].read_text().splitlines()
    # The watchdog first, then the install (of the shipped wheel), then the immediate shutdown of the trap.
    assert calls == ["shutdown -h +30", "pip install --upgrade pip",
                     f"pip install {sandbox['work']}/{wheel.name} tensorflow[and-cuda]==2.21.*", "shutdown -h now"]
    assert (sandbox["work"] / wheel.name).read_bytes() == b"PK not really a wheel"
    assert json.loads((sandbox["work"] / "model" / "config.json").read_text()) == TINY
    log = get("gpuplan/L1/bootstrap.log")
    assert log is not None
    assert "step: watchdog: power off in 30 minutes" in log
    assert "FAILED (exit 1) during: install" in log
    assert get("gpuplan/L1/result.json") is None


def test_without_boto3_the_script_falls_back_to_the_aws_cli(sandbox):
    # A system python without boto3 (before the venv exists): the AMI's AWS CLI moves the files.
    fake_aws = sandbox["bin"] / "aws"
    fake_aws.write_text(f'#!/bin/bash\necho "aws $*" >> {sandbox["calls"]}\n')
    fake_aws.chmod(0o755)
    no_boto = sandbox["bin"] / "python-no-boto3"
    no_boto.write_text(f'#!/bin/bash\nexec {sys.executable} -S "$@"\n')  # -S: no site-packages, so no boto3
    no_boto.chmod(0o755)
    env = {**sandbox["env"], "GPUPLAN_PYTHON": str(no_boto), "GPUPLAN_PIP": str(sandbox["bin"] / "failing-pip")}
    done = run_script(render_user_data(params()), env, sandbox["tmp"], timeout=60)
    assert done.returncode == 1
    calls = sandbox["calls"].read_text().splitlines()
    log_uri = f"s3://{BUCKET}/gpuplan/L1/bootstrap.log"
    assert f"aws s3 cp --only-show-errors {sandbox['work']}/bootstrap.log {log_uri}" in calls
    assert calls[-1] == "shutdown -h now"


def test_launch_runs_its_own_user_data_with_the_real_calibrate(sandbox, monkeypatch):
    """The whole product: `gpuplan launch` starts an (moto) instance; its user data runs here with bash, installs
    nothing (fake pip), runs the real `gpuplan calibrate` on a tiny BERT shipped through S3, uploads the result;
    the client picks it up, terminates the instance and prints the estimate."""
    pytest.importorskip("gpuplan.cli.calibrate")
    model = sandbox["tmp"] / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(TINY))
    runs: list[subprocess.CompletedProcess] = []

    def boot(inst):
        data = ec2().describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
        runs.append(run_script(base64.b64decode(data["UserData"]["Value"]).decode(), sandbox["env"], sandbox["tmp"]))

    fake = FakeInstances(boot)
    fake.start()
    monkeypatch.chdir(sandbox["tmp"])
    result = CliRunner().invoke(app, [
        "launch", "--instance", "g4dn.xlarge", "--yes", "--bucket", BUCKET, "--format", "json", "--model", str(model),
        "--batch-size", "2", "--seq-len", "16", "--precision", "fp32", "--steps", "2",
        "--calibrate-arg=--warmup-steps=1", "--dataset", str(Path(__file__).parent / "data" / "reviews.csv"),
        "--text-column", "review", "--label-column", "sentiment",
        "--max-minutes", "20", "--save", "results"], obj=replace(FAST, poll_seconds=0.05))
    fake.join()
    assert fake.error is None
    (done,) = runs
    log = (sandbox["work"] / "bootstrap.log").read_text()
    assert done.returncode == 0, log[-3000:]
    assert result.exit_code == 0, result.output

    calls = sandbox["calls"].read_text().splitlines()
    # From this source checkout the client built its own wheel; the instance installs that, not a PyPI release.
    wheel = f"gpuplan-{gpuplan.__version__}-py3-none-any.whl"
    assert calls == ["shutdown -h +20", "pip install --upgrade pip",
                     f"pip install {sandbox['work']}/{wheel} tensorflow[and-cuda]==2.21.*", "shutdown -h now"]
    assert (sandbox["work"] / wheel).read_bytes()[:2] == b"PK"  # the real wheel, fetched from S3
    (inst,) = gpuplan_instances()
    lid = tags(inst)["gpuplan:launch-id"]
    uploaded = CalibrationResult.model_validate_json(get(f"gpuplan/{lid}/result.json"))
    assert uploaded.workload.arch.hidden_size == 64 and uploaded.workload.batch_size == 2
    (run,) = uploaded.runs
    assert run.measured and run.steps == 2 and run.seq_len == 16
    # The dataset travelled through S3 and the instance tokenized it: its statistics came back.
    assert uploaded.dataset is not None and uploaded.dataset.num_examples == 96
    assert "step: fetch the dataset shipped by the client" in get(f"gpuplan/{lid}/bootstrap.log")
    assert "step: upload the result" in get(f"gpuplan/{lid}/bootstrap.log")
    (saved,) = (sandbox["tmp"] / "results").glob("*.json")
    assert CalibrationResult.model_validate_json(saved.read_text()).device.instance_type == "g4dn.xlarge"
    assert json.loads(result.stdout)["plans"]
    assert inst["State"]["Name"] in ("shutting-down", "terminated")
