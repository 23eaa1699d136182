"""`gpuplan launch` and `gpuplan instances` end to end: real boto3 against the moto server, with a stand-in for
the instance's side (a thread that uploads the result, or ends the instance, or presses Ctrl-C).

Every test ends by checking that no instance is left pending or running.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from cloud_helpers import (ENDPOINT, FAST, FakeInstances, ec2, fail_operation, gpuplan_bucket, gpuplan_instances,
                           live_instances, make_result, patch_response, s3, tags, upload_result, user_data)
from typer.testing import CliRunner

import gpuplan
from gpuplan.cli import app
from gpuplan.cloud import aws as aws_mod
from gpuplan.cloud import resources

runner = CliRunner()
ACCOUNT = "123456789012"  # moto's


@pytest.fixture
def cloud(aws, monkeypatch):
    """moto and the leak check after the test (fast polling and moto's AMI come with every `invoke`: FAST)."""
    ENDPOINT[:] = [aws]
    yield aws
    assert live_instances() == [], "an instance was left pending or running"
    ENDPOINT.clear()


@pytest.fixture
def on_clients(monkeypatch):
    """Hooks run on the clients of the next command(s): `on_clients.append(lambda clients: ...)`."""
    hooks: list = []
    real = aws_mod.make_clients

    def make(region=None):
        clients = real(region)
        for hook in hooks:
            hook(clients)
        return clients

    monkeypatch.setattr(aws_mod, "make_clients", make)
    return hooks


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input, obj=FAST)


def failed(result, *fragments: str, code: int | None = None) -> str:
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def launch(*extra: str, instances=("g4dn.xlarge",), input=None):
    args = ["launch", "--yes", "--format", "json", "--steps", "20"]
    for t in instances:
        args += ["--instance", t]
    return invoke(*args, *extra, input=input)


def test_launch_measures_terminates_and_prints_the_measured_estimate(cloud, on_clients):
    sent: list[dict] = []
    on_clients.append(lambda c: c.ec2.meta.events.register(
        "provide-client-params.ec2.RunInstances", lambda params, **kw: sent.append(dict(params))))
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch()
    fake.join()
    assert fake.error is None
    assert result.exit_code == 0, result.output
    est = json.loads(result.stdout)
    mine = [p for p in est["plans"] if p["instance"] == "g4dn.xlarge"]
    assert {p["precision"] for p in mine} == {"fp32", "mixed"}
    assert all(p["source"] == "measured" for p in mine)
    assert {p["source"] for p in est["plans"] if p["gpu"] != "t4"} == {"model"}

    # The plan, with its cost, and the progress went to stderr.
    assert "Expected cost of the calibration: ~$" in result.stderr
    assert "g4dn.xlarge: $0.526/h on-demand" in result.stderr
    bucket = gpuplan_bucket()
    assert "created bucket s3://" + bucket in result.stderr
    assert "terminated" in result.stderr

    (inst,) = gpuplan_instances()
    assert inst["State"]["Name"] in ("shutting-down", "terminated")
    t = tags(inst)
    assert t["gpuplan:result-uri"] == f"s3://{bucket}/gpuplan/{t['gpuplan:launch-id']}/result.json"
    assert t["Name"] == f"gpuplan-calibration-{t['gpuplan:launch-id']}"
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    (params,) = sent  # what EC2 was asked for (moto forgets the profile and volume details on termination)
    assert "IamInstanceProfile" not in params  # no IAM: the instance gets presigned URLs
    (root,) = params["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True and root["Ebs"]["DeleteOnTermination"] is True
    assert "InstanceMarketOptions" not in params
    (group,) = inst["SecurityGroups"]
    sg = ec2().describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0]
    assert sg["GroupName"] == "gpuplan-calibration" and sg["IpPermissions"] == []
    attr = ec2().describe_instance_attribute(InstanceId=inst["InstanceId"],
                                             Attribute="instanceInitiatedShutdownBehavior")
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    script = user_data(inst["InstanceId"])
    assert script.startswith("#!/bin/bash") and "set -euo pipefail" in script
    assert "shutdown -h \"+$MAX_MINUTES\"" in script and "MAX_MINUTES=45" in script
    assert "CALIBRATE_ARGS=(--model bert-base-uncased" in script and "--steps 20" in script
    assert "X-Amz-Signature=" in script and "X-Amz-Credential=testing" in script  # presigned URLs, their key id
    assert "X-Amz-Credential=testing%2F" in script and "AWS_SECRET" not in script  # no secret, only signatures
    assert f"BUCKET_OWNER={ACCOUNT}" in script


def test_launch_creates_a_private_encrypted_expiring_bucket_and_no_iam_at_all(cloud, tmp_path, monkeypatch,
                                                                             on_clients):
    made = []
    on_clients.append(made.append)
    monkeypatch.chdir(tmp_path)
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch("--save", "saved")
    fake.join()
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "saved").glob("*-g4dn.xlarge.json"))) == 1
    bucket = gpuplan_bucket()
    enc = s3().get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3().get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    (rule,) = s3().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Filter"]["Prefix"] == "gpuplan/" and rule["Expiration"]["Days"] == 30
    import boto3

    # No IAM in the default path: no client for it was even made, and no role or instance profile exists.
    assert all("iam" not in c.used for c in made)
    iam = boto3.client("iam")
    assert iam.list_roles()["Roles"] == [] and iam.list_instance_profiles()["InstanceProfiles"] == []

    # A second launch reuses the bucket (found by its prefix) and creates nothing.
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    again = launch()
    fake.join()
    assert again.exit_code == 0, again.output
    assert "created" not in again.stderr
    assert gpuplan_bucket() == bucket


def test_several_instance_types_run_in_parallel(cloud):
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")), count=2)
    fake.start()
    result = launch(instances=("g4dn.xlarge", "g5.xlarge"))
    fake.join()
    assert result.exit_code == 0, result.output
    assert {i["InstanceType"] for i in gpuplan_instances()} == {"g4dn.xlarge", "g5.xlarge"}
    assert len({tags(i)["gpuplan:launch-id"] for i in gpuplan_instances()}) == 2


def test_a_result_without_gpu_key_gets_it_from_the_catalog(cloud):
    fake = FakeInstances(upload_result(make_result(gpu_key=None, gpu_name="NVIDIA A10G")))
    fake.start()
    result = launch(instances=("g5.xlarge",))
    fake.join()
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)["plans"]
    assert {p["source"] for p in plans if p["instance"] == "g5.xlarge"} == {"measured"}


def test_partial_failure_prints_the_estimate_and_fails(cloud, on_clients):
    on_clients.append(lambda c: fail_operation(c.ec2, "RunInstances", "VcpuLimitExceeded",
                                               when=lambda p: p.get("InstanceType") == "g5.xlarge"))
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch(instances=("g4dn.xlarge", "g5.xlarge"))
    fake.join()
    failed(result, "1 of 2 launches gave no result")
    assert "g5.xlarge: your vCPU quota is too low" in result.stderr
    assert any(p["source"] == "measured" for p in json.loads(result.stdout)["plans"])


def test_timeout_terminates_and_shows_the_log_tail(cloud):
    def log_only(inst):
        bucket, key = tags(inst)["gpuplan:result-uri"][5:].split("/", 1)
        log = "\n".join(f"line {i}" for i in range(40)) + "\npip: still downloading tensorflow\n"
        s3().put_object(Bucket=bucket, Key=key.replace("result.json", "bootstrap.log"), Body=log.encode())

    fake = FakeInstances(log_only)
    fake.start()
    result = launch("--timeout", "0.01")
    fake.join()
    line = failed(result, "no result from g4dn.xlarge", "after 0.01 min", "Raise --timeout")
    assert "bootstrap.log" in line
    assert "pip: still downloading tensorflow" in result.stderr
    assert "line 39" in result.stderr and "line 2\n" not in result.stderr  # only the tail
    assert gpuplan_instances()[0]["State"]["Name"] in ("shutting-down", "terminated")


def test_an_instance_that_ends_without_a_result_shows_its_log(cloud):
    def crash(inst):
        bucket, key = tags(inst)["gpuplan:result-uri"][5:].split("/", 1)
        s3().put_object(Bucket=bucket, Key=key.replace("result.json", "bootstrap.log"),
                        Body=b"gpuplan: step: install\nERROR: No matching distribution found for gpuplan==0.1.0\n")
        ec2().terminate_instances(InstanceIds=[inst["InstanceId"]])  # what the bootstrap's shutdown leads to

    fake = FakeInstances(crash)
    fake.start()
    result = launch()
    fake.join()
    failed(result, "g4dn.xlarge", "ended", "without a result", "bootstrap.log")
    assert "No matching distribution found for gpuplan==0.1.0" in result.stderr


def test_spot_interruption(cloud, on_clients):
    def interrupted(parsed):
        for r in parsed.get("Reservations", []):
            for i in r["Instances"]:
                if i["State"]["Name"] in ("shutting-down", "terminated"):
                    i["StateReason"] = {"Code": "Server.SpotInstanceTermination",
                                        "Message": "Server.SpotInstanceTermination: Spot instance termination"}

    on_clients.append(lambda c: patch_response(c.ec2, "DescribeInstances", interrupted))
    fake = FakeInstances(lambda inst: ec2().terminate_instances(InstanceIds=[inst["InstanceId"]]))
    fake.start()
    result = launch("--spot")
    fake.join()
    failed(result, "AWS interrupted the g4dn.xlarge spot instance", "retry without --spot")
    assert gpuplan_instances()[0]["InstanceLifecycle"] == "spot"


def test_a_result_that_is_not_one(cloud):
    def garbage(inst):
        bucket, key = tags(inst)["gpuplan:result-uri"][5:].split("/", 1)
        s3().put_object(Bucket=bucket, Key=key, Body=b'{"hello": 1}')

    fake = FakeInstances(garbage)
    fake.start()
    result = launch()
    fake.join()
    failed(result, "is not a calibration result", "--wheel")


def test_ctrl_c_during_the_wait_terminates(cloud):
    fake = FakeInstances(lambda inst: os.kill(os.getpid(), signal.SIGINT))
    fake.start()
    result = launch()
    fake.join()
    line = failed(result, "interrupted; terminated i-", code=130)
    assert fake.seen[0] in line
    assert "Interrupted: terminating the instances" in result.stderr


def test_a_second_ctrl_c_still_terminates(cloud, on_clients):
    pressed = []

    def press_again(params, **kwargs):
        # The second Ctrl-C lands while the instances are being terminated.
        if not pressed:
            pressed.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    on_clients.append(lambda c: c.ec2.meta.events.register("before-call.ec2.TerminateInstances", press_again))
    fake = FakeInstances(lambda inst: os.kill(os.getpid(), signal.SIGINT))
    fake.start()
    result = launch(instances=("g4dn.xlarge", "g5.xlarge"))
    fake.join()
    failed(result, "interrupted; terminated i-", code=130)
    assert pressed and "Still terminating the instances" in result.stderr


def test_sigterm_during_the_wait_terminates(cloud):
    fake = FakeInstances(lambda inst: os.kill(os.getpid(), signal.SIGTERM))
    fake.start()
    result = launch()
    fake.join()
    failed(result, "interrupted; terminated i-", code=130)


def test_new_instance_profile_is_retried_until_ec2_sees_it(cloud, on_clients):
    import boto3

    boto3.client("iam").create_instance_profile(InstanceProfileName="gpuplan-calibration")
    calls = []

    def first_two(params):
        calls.append(1)
        return len(calls) <= 2

    on_clients.append(lambda c: fail_operation(
        c.ec2, "RunInstances", "InvalidParameterValue",
        "Value (gpuplan-calibration) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name",
        when=first_two))
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch("--instance-profile", "gpuplan-calibration")
    fake.join()
    assert result.exit_code == 0, result.output
    assert len(calls) == 3
    assert "access: instance profile gpuplan-calibration" in result.stderr
    script = user_data(gpuplan_instances()[0]["InstanceId"])
    assert "RESULT_URL=s3://" in script and "X-Amz-Signature" not in script  # the role's credentials, no URLs


def test_a_failed_termination_is_loud_and_instances_terminate_recovers(cloud, on_clients):
    on_clients.append(lambda c: fail_operation(c.ec2, "TerminateInstances", "InternalError", status=500))
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch()
    fake.join()
    failed(result, "could not terminate i-", "gpuplan instances terminate --all")
    assert "WARNING: could not terminate" in result.stderr
    on_clients.clear()
    listed = invoke("instances", "--format", "json")
    assert [r["state"] for r in json.loads(listed.stdout)] == ["running"]
    ended = invoke("instances", "terminate", "--all")
    assert ended.exit_code == 0, ended.output
    assert "terminating i-" in ended.stderr


# --- the plan, confirmation and dry run ---------------------------------------------------------------------------

def test_dry_run_checks_permissions_and_creates_nothing(cloud):
    result = invoke("launch", "--instance", "g4dn.xlarge", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "g4dn.xlarge: EC2 would accept the launch (DryRun)" in result.stderr
    assert "bucket: s3://gpuplan-123456789012-us-east-1-" in result.stderr
    assert "(to create: private, encrypted" in result.stderr
    assert "Dry run: nothing was created or started." in result.stderr
    assert result.stdout.startswith("#!/bin/bash") and "?<presigned at launch>" in result.stdout
    assert '"ec2:RunInstances"' in result.stderr and "iam:" not in result.stderr
    assert gpuplan_instances() == []
    assert gpuplan_bucket() is None


def test_dry_run_reports_denied_permission(cloud, on_clients):
    on_clients.append(lambda c: fail_operation(c.ec2, "RunInstances", "UnauthorizedOperation",
                                               "You are not authorized to perform this operation. Encoded ..."))
    result = invoke("launch", "--instance", "g4dn.xlarge", "--dry-run")
    failed(result, "AWS denied permission to launch g4dn.xlarge", "IAM permissions")


def test_declining_the_prompt_launches_nothing(cloud):
    result = invoke("launch", "--instance", "g4dn.xlarge", input="n\n")
    assert result.exit_code == 1
    assert "Launch?" in result.stderr and "Nothing was launched." in result.stderr
    assert gpuplan_instances() == []


def test_accepting_the_prompt_launches(cloud):
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = invoke("launch", "--instance", "g4dn.xlarge", input="y\n")
    fake.join()
    assert result.exit_code == 0, result.output
    assert "measured" in result.stdout


def test_p3_gets_an_image_with_the_proprietary_driver(cloud, monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(resources, "check_instance_type", lambda clients, t: None)  # moto lists no p3
    # moto's two DL images stand in for the proprietary-driver one (Amazon Linux) and the open-driver one (Ubuntu).
    settings = replace(FAST, proprietary_ami_name_patterns=("Deep Learning AMI Amazon Linux*",))
    result = runner.invoke(app, ["launch", "--instance", "p3.2xlarge", "--instance", "g4dn.xlarge", "--dry-run"],
                           obj=settings)
    assert result.exit_code == 0, result.output
    amis = [ln for ln in result.stderr.splitlines() if ln.strip().startswith("AMI: ")]
    assert len(amis) == 2 and amis[0] != amis[1]
    assert "Deep Learning AMI Amazon Linux" in amis[0] and "Ubuntu" in amis[1] and "--ami-id" not in result.stderr


def test_a_local_model_and_a_wheel_are_shipped_through_s3(cloud, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": 500, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128, "max_position_embeddings": 64}))
    wheel = tmp_path / "gpuplan-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK fake wheel")
    fake = FakeInstances(upload_result(make_result(gpu_key="t4", model=str(folder), seq_len=16)))
    fake.start()
    result = launch("--model", str(folder), "--seq-len", "16", "--wheel", str(wheel),
                    "--calibrate-arg=--warmup-steps=1")
    fake.join()
    assert result.exit_code == 0, result.output
    (inst,) = gpuplan_instances()
    lid = tags(inst)["gpuplan:launch-id"]
    bucket = gpuplan_bucket()
    keys = {o["Key"] for o in s3().list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"gpuplan/{lid}/model/config.json", f"gpuplan/{lid}/{wheel.name}"} <= keys
    script = user_data(inst["InstanceId"])
    assert f"MODEL_URL='{cloud}/{bucket}/gpuplan/{lid}/model/config.json?X-Amz-Algorithm" in script
    assert f"WHEEL_URL='{cloud}/{bucket}/gpuplan/{lid}/{wheel.name}?X-Amz-Algorithm" in script
    assert "CALIBRATE_ARGS=(--num-examples" in script and "--warmup-steps=1)" in script


# --- faults --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, fragments", [
    ("VcpuLimitExceeded", ["vCPU quota is too low to start g4dn.xlarge in us-east-1",
                           "Running On-Demand G and VT instances", "https://console.aws.amazon.com/servicequotas/"]),
    ("InsufficientInstanceCapacity", ["AWS has no g4dn.xlarge capacity in us-east-1", "or --spot"]),
    ("UnauthorizedOperation", ["AWS denied permission to launch g4dn.xlarge"]),
])
def test_launch_faults(cloud, on_clients, code, fragments):
    on_clients.append(lambda c: fail_operation(c.ec2, "RunInstances", code))
    failed(launch(), *fragments)
    assert gpuplan_instances() == []


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded"])
def test_spot_capacity_faults(cloud, on_clients, code):
    on_clients.append(lambda c: fail_operation(c.ec2, "RunInstances", code))
    line = failed(launch("--spot"))
    assert "without --spot" in line or "capacity" in line
    assert "or --spot" not in line


def test_unknown_instance_type_in_the_catalog(cloud):
    failed(invoke("launch", "--instance", "g4dn.xlarg", "--yes"), "unknown instance type 'g4dn.xlarg'",
           "Did you mean: g4dn.xlarge")


def test_instance_type_the_region_does_not_offer(cloud):
    failed(invoke("launch", "--instance", "p3.2xlarge", "--yes"),
           "instance type p3.2xlarge is not offered in us-east-1")


def test_no_credentials(cloud, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    failed(invoke("launch", "--instance", "g4dn.xlarge", "--yes"), "no AWS credentials found", "aws configure")


def test_unreachable_endpoint(cloud, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    failed(invoke("launch", "--instance", "g4dn.xlarge", "--yes"), "cannot reach AWS", "network")


def test_access_denied_creating_the_bucket(cloud, on_clients):
    on_clients.append(lambda c: fail_operation(c.s3, "CreateBucket", "AccessDenied", status=403))
    failed(launch(), "AWS denied permission to create bucket", "s3:CreateBucket")


def test_a_bucket_owned_by_someone_else(cloud, on_clients):
    on_clients.append(lambda c: fail_operation(c.s3, "HeadBucket", "403", status=403))
    failed(launch("--bucket", "somebody-elses-bucket"), "somebody-elses-bucket exists but is not your account's")


# --- gpuplan instances ---------------------------------------------------------------------------------------------

def _start(instance_type: str, tagged: bool = True, spot: bool = False) -> str:
    dl = [{"Name": "name", "Values": ["Deep Learning AMI Ubuntu*"]}]
    image = ec2().describe_images(Owners=["amazon"], Filters=dl)["Images"][0]["ImageId"]
    kwargs = {}
    if tagged:
        kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [
            {"Key": "gpuplan:launch-id", "Value": "20260101-000000-abcdef"},
            {"Key": "gpuplan:result-uri", "Value": "s3://b/gpuplan/20260101-000000-abcdef/result.json"}]}]
    if spot:
        kwargs["InstanceMarketOptions"] = {"MarketType": "spot"}
    return ec2().run_instances(ImageId=image, InstanceType=instance_type, MinCount=1, MaxCount=1,
                               **kwargs)["Instances"][0]["InstanceId"]


def test_instances_lists_and_terminates_only_gpuplan_instances(cloud):
    ours = _start("g4dn.xlarge")
    spot = _start("g4dn.2xlarge", spot=True)
    theirs = _start("g4dn.xlarge", tagged=False)
    try:
        rows = json.loads(invoke("instances", "--format", "json").stdout)
        assert {r["instance_id"] for r in rows} == {ours, spot}
        by_id = {r["instance_id"]: r for r in rows}
        assert by_id[ours]["usd_per_hour"] == 0.526 and by_id[ours]["usd_so_far"] >= 0
        from pricing.catalog import bundled_catalog

        bundled_spot = next(o.spot_usd_per_hour for o in bundled_catalog().offers
                            if o.key == ("g4dn.2xlarge", "us-east-1"))
        assert by_id[spot]["market"] == "spot" and by_id[spot]["usd_per_hour"] == bundled_spot
        table = invoke("instances")
        assert ours in table.stdout and "cost so far" in table.stdout
        failed(invoke("instances", "terminate", theirs), f"{theirs} is not a gpuplan instance")
        failed(invoke("instances", "terminate"), "give instance ids or --all")
        assert invoke("instances", "terminate", ours).exit_code == 0
        assert invoke("instances", "terminate", "--all").exit_code == 0
        assert {i for i in live_instances()} == {theirs}
        assert "No gpuplan instances running." in invoke("instances").stderr
        ended = json.loads(invoke("instances", "--ended", "--format", "json").stdout)
        assert {r["instance_id"] for r in ended} == {ours, spot}
        assert all(r["usd_so_far"] is None for r in ended)
    finally:
        ec2().terminate_instances(InstanceIds=[theirs])


@pytest.mark.parametrize("args, fragment", [
    (["--timeout", "-1"], "--timeout: input should be greater than 0"),
    (["--max-minutes", "0"], "--max-minutes: input should be greater than 0"),
    (["--max-minutes", "1000"], "--max-minutes: input should be less than or equal to 240"),
    (["--timeout", "nan"], "--timeout: input should be a finite number"),
    (["--timeout", "inf"], "--timeout: input should be a finite number"),
    (["--steps", "0"], "'--steps': Input should be greater than or equal to 1"),
    (["--format", "yaml"], "unknown format 'yaml'"),
    (["--wheel", "missing.whl"], "wheel missing.whl does not exist"),
    (["--instance", "g4dn.xlarge"], "given twice"),
])
def test_bad_flags(cloud, args, fragment):
    failed(invoke("launch", "--instance", "g4dn.xlarge", "--yes", *args), fragment)
    assert gpuplan_instances() == []


def test_no_answer_to_the_prompt_asks_for_yes(cloud):
    failed(invoke("launch", "--instance", "g4dn.xlarge", input=""), "pass --yes to launch without asking")
    assert gpuplan_instances() == []


def test_from_a_source_checkout_the_instance_gets_this_very_gpuplan(cloud):
    # The checkout may differ from every PyPI release, so the client builds its own wheel and ships it.
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch()
    fake.join()
    assert result.exit_code == 0, result.output
    assert "installs this gpuplan (built as a wheel from the checkout" in result.stderr
    (inst,) = gpuplan_instances()
    lid = tags(inst)["gpuplan:launch-id"]
    keys = {o["Key"] for o in s3().list_objects_v2(Bucket=gpuplan_bucket())["Contents"]}
    assert f"gpuplan/{lid}/gpuplan-{gpuplan.__version__}-py3-none-any.whl" in keys
    script = user_data(inst["InstanceId"])
    assert f"WHEEL_NAME=gpuplan-{gpuplan.__version__}-py3-none-any.whl" in script
    assert f"/gpuplan/{lid}/gpuplan-{gpuplan.__version__}-py3-none-any.whl?X-Amz-" in script


def test_a_local_dataset_is_checked_here_and_shipped_through_s3(cloud, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("review,stars\nGreat film,1\nDull film,0\nLovely,1\nAwful,0\n")
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch("--dataset", str(data), "--text-column", "review", "--label-column", "stars")
    fake.join()
    assert result.exit_code == 0, result.output
    assert "--dataset <your reviews.csv, shipped via S3>" in result.stderr
    (inst,) = gpuplan_instances()
    lid = tags(inst)["gpuplan:launch-id"]
    bucket = gpuplan_bucket()
    assert s3().get_object(Bucket=bucket, Key=f"gpuplan/{lid}/data/reviews.csv")["Body"].read() == data.read_bytes()
    script = user_data(inst["InstanceId"])
    assert f"/{bucket}/gpuplan/{lid}/data/reviews.csv?X-Amz-" in script and "DATASET_NAME=reviews.csv" in script
    assert "--text-column review --label-column stars" in script


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "missing.csv"], "dataset file missing.csv does not exist"),
    (["--dataset", "{data}", "--text-column", "body"], "has no column 'body'"),
])
def test_a_bad_dataset_fails_before_anything_is_created(cloud, tmp_path, args, message):
    data = tmp_path / "reviews.csv"
    data.write_text("review,label\nGreat film,1\nDull film,0\n")
    result = launch(*[a.format(data=data) for a in args])
    failed(result, message)
    assert gpuplan_instances() == []
    assert gpuplan_bucket() is None  # nothing was created


# --- the GPU, the phases, the policy, the dry run without credentials (issue 10) ----------------------------------

def test_a_cpu_result_is_refused_and_the_instance_is_gone(cloud):
    cpu = make_result(precision="fp32")
    cpu.device = cpu.device.model_copy(update={"kind": "cpu", "name": "Intel Xeon", "gpu_key": None})
    fake = FakeInstances(upload_result(cpu))
    fake.start()
    result = launch()
    fake.join()
    line = failed(result, "the calibration ran on the CPU (Intel Xeon), not on the g4dn.xlarge's GPU",
                  "no GPU visible on the instance (driver/AMI)", "not used as a measurement", "spent")
    assert "~$" in line
    assert gpuplan_instances()[0]["State"]["Name"] in ("shutting-down", "terminated")
    assert result.stdout == ""  # no estimate from a refused result


def test_the_instance_reporting_no_gpu_fails_the_launch_with_its_cost(cloud):
    def no_gpu(inst):
        bucket, key = tags(inst)["gpuplan:result-uri"][5:].split("/", 1)
        s3().put_object(Bucket=bucket, Key=key, Body=json.dumps({
            "gpuplan_error": "no_gpu", "message": "nvidia-smi is not installed: the AMI has no NVIDIA driver",
            "launch_id": "x"}).encode())

    fake = FakeInstances(no_gpu)
    fake.start()
    result = launch()
    fake.join()
    failed(result, "no GPU visible on the instance (driver/AMI): nvidia-smi is not installed", "g4dn.xlarge (ami-",
           "min, ~$0.00 spent", "try another --ami-id")
    assert live_instances() == []


def test_measured_phases_are_printed_and_kept_for_the_startup_model(cloud, isolated_cache):
    from gpuplan.startup_cache import measured_phases

    measured = make_result(gpu_key="t4")
    measured.phases = {"boot": 48.0, "driver": 3.0, "install": 250.0, "model_download": 12.0, "trace": 20.0,
                       "run_fp32": 30.0, "run_mixed": 18.0, "calibrate": 60.0}
    fake = FakeInstances(upload_result(measured))
    fake.start()
    result = launch()
    fake.join()
    assert result.exit_code == 0, result.output
    assert ("g4dn.xlarge phases (measured): boot 48s, driver 3s, install 4.2 min, model download 12s, "
            "trace (first step) 20s, fp32 30s, mixed 18s, calibrate in all 60s") in result.stderr
    assert measured_phases()["g4dn"] == {"boot": 48.0, "driver": 3.0, "install": 250.0, "model_download": 12.0,
                                         "trace": 20.0}


# S3 and EC2 operations -> the IAM action that allows them (where the names differ).
ACTION_OF = {"s3:HeadBucket": "s3:ListBucket", "s3:ListBuckets": "s3:ListAllMyBuckets",
             "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
             "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
             "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration", "s3:HeadObject": "s3:GetObject"}


def readme_policy() -> dict:
    import pathlib

    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("### IAM permissions gpuplan launch needs"):]
    block = section[section.index("```json") + len("```json"):]
    return json.loads(block[:block.index("```")])


def test_the_readme_policy_allows_every_call_of_a_default_launch_and_nothing_of_iam(cloud, on_clients):
    from gpuplan.cloud.policy import launch_policy

    policy = readme_policy()
    assert policy == launch_policy()  # the README prints the policy the code documents
    import boto3

    iam = boto3.client("iam")  # moto checks the document's grammar when it is attached to a user
    iam.create_user(UserName="launcher")
    iam.put_user_policy(UserName="launcher", PolicyName="gpuplan-launch", PolicyDocument=json.dumps(policy))
    allowed = {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str)
                                                          else st["Action"])}
    assert not any(a.startswith("iam:") for a in allowed)
    called: set[str] = set()

    def record(clients):
        for name in ("ec2", "s3", "ssm", "sts"):
            client = clients.client(name)
            prefix = client.meta.service_model.signing_name if name != "s3" else "s3"
            client.meta.events.register("before-call", lambda model, p=prefix, **kw: called.add(f"{p}:{model.name}"))

    on_clients.append(record)
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    result = launch()
    fake.join()
    assert result.exit_code == 0, result.output
    needed = {ACTION_OF.get(c, c) for c in called if c != "sts:GetCallerIdentity"}  # STS needs no permission
    assert needed - allowed == set(), f"the policy misses {needed - allowed}"
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "s3:PutObject", "s3:CreateBucket"} <= needed


def test_dry_run_without_credentials_prints_plan_user_data_and_policy(cloud, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    try:
        result = invoke("launch", "--instance", "g4dn.xlarge", "--instance", "p3.2xlarge", "--dry-run")
    finally:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.setenv(var, "testing")  # for the leak check after the test
    assert result.exit_code == 0, result.output
    assert "(without AWS credentials: nothing in AWS checked)" in result.stderr
    assert "Skipped without AWS credentials: your account" in result.stderr and "DryRun" in result.stderr
    assert "Expected cost of the calibration: ~$" in result.stderr
    amis = [ln.strip() for ln in result.stderr.splitlines() if ln.strip().startswith("AMI: (found at launch)")]
    assert len(amis) == 2 and "(SSM /aws/service/deeplearning/" in amis[0]
    assert "newest of" in amis[1]  # p3's AMI is found by the proprietary-driver names
    script = result.stdout
    assert script.startswith("#!/bin/bash") and "MAX_MINUTES=45" in script and "BUCKET_OWNER=ACCOUNT" in script
    assert "s3.amazonaws.com/gpuplan/" in script and "?<presigned at launch>" in script
    policy = result.stderr[result.stderr.index('{"Version"'):result.stderr.index("Dry run: nothing")]
    assert json.loads(policy)["Statement"]
    assert gpuplan_instances() == []


def test_dry_run_with_credentials_checks_what_the_launch_checks(cloud):
    failed(invoke("launch", "--instance", "g4dn.xlarge", "--dry-run", "--instance-profile", "nope"),
           "instance profile nope does not exist")
    failed(invoke("launch", "--instance", "g4dn.xlarge", "--dry-run", "--region", "mars-1"), "mars-1")
    ok = invoke("launch", "--instance", "g4dn.xlarge", "--dry-run")
    assert "user data" in ok.stderr and "bytes" in ok.stderr and "of 16384" in ok.stderr
    assert "credentials: temporary (a session token)" in ok.stderr
    assert gpuplan_instances() == [] and gpuplan_bucket() is None


def test_user_data_over_the_limit_is_gzipped_and_still_refused_when_too_big():
    import gzip

    from gpuplan.cloud.bootstrap import USER_DATA_LIMIT, encode_user_data
    from gpuplan.errors import GpuplanError

    token = "IQoJb3JpZ2luX2VjE" * 60  # a session token repeated in each URL compresses well
    script = "#!/bin/bash\n" + "\n".join(f"URL{i}='https://b.s3.amazonaws.com/k{i}?X-Amz-Security-Token={token}'"
                                         for i in range(20))
    assert len(script.encode()) > USER_DATA_LIMIT
    packed = encode_user_data(script)
    assert len(packed) <= USER_DATA_LIMIT and gzip.decompress(packed).decode() == script
    assert encode_user_data("#!/bin/bash\n") == b"#!/bin/bash\n"
    import os as _os

    with pytest.raises(GpuplanError, match="over EC2's 16384-byte user data limit"):
        encode_user_data("#!/bin/bash\n" + _os.urandom(20000).hex())


def test_ctrl_c_during_set_up_starts_nothing_and_says_what_exists(cloud, on_clients):
    pressed = []

    def press(**kwargs):
        if not pressed:  # while the wheel is being uploaded, after the bucket was made
            pressed.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    on_clients.append(lambda c: c.s3.meta.events.register("before-call.s3.PutObject", press))
    line = failed(launch(), "interrupted during set-up; no instance was started", "created bucket s3://gpuplan-",
                  code=130)
    assert pressed and "could NOT" not in line
    assert gpuplan_instances() == []


@pytest.mark.parametrize(("extra", "says"), [
    (["--instance-profile", "bad name!"], "is not an instance profile name"),
    (["--calibrate-arg=--steps=0"], "--steps=0: calibrate takes 1 to 10,000"),
    (["--calibrate-arg", "--warmup-steps", "--calibrate-arg", "x"], "--warmup-steps=x"),
])
def test_launch_input_calibrate_would_refuse_is_refused_before_any_aws_call(cloud, on_clients, extra, says):
    calls = []
    on_clients.append(lambda c: c.ec2.meta.events.register("before-call", lambda **kw: calls.append(kw)))
    failed(launch(*extra), says)
    assert calls == []


def test_save_into_a_file_or_a_folder_as_wheel_is_refused(cloud, tmp_path):
    afile = tmp_path / "results.json"
    afile.write_text("{}")
    failed(launch("--save", str(afile)), f"--save {afile} is a file")
    failed(launch("--wheel", str(tmp_path)), "is a folder; give the .whl file itself")
