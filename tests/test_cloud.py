"""gpuplan.cloud pieces on their own: fault translation, AMI lookup, bucket, role, costs, and the faults moto can't
produce, through botocore's Stubber. Each test ends with no instance pending or running."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from cloud_helpers import ENDPOINT, FAST, MOTO_AMI, live_instances, s3

from gpuplan.cloud import resources as res
from gpuplan.cloud import s3cp
from gpuplan.cloud.aws import make_clients, translate
from gpuplan.cloud.launchplan import plan_launch
from gpuplan.cloud.request import LaunchRequest
from gpuplan.cloud.start import start_instance
from gpuplan.cloud.uploads import dry_prepared
from gpuplan.cloud.wait import LaunchFailed, wait_for_result
from gpuplan.errors import GpuplanError
from gpuplan.workload import build_workload
from pricing.catalog import bundled_catalog


@pytest.fixture
def clients(aws):
    ENDPOINT[:] = [aws]
    yield make_clients("us-east-1")
    assert live_instances() == [], "an instance was left pending or running"
    ENDPOINT.clear()


def client_error(code: str, message: str = "", op: str = "RunInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}}, op)


@pytest.mark.parametrize("err, fragments", [
    (NoCredentialsError(), ["no AWS credentials found", "aws configure"]),
    (EndpointConnectionError(endpoint_url="https://ec2.mars-1.amazonaws.com"),
     ["cannot reach AWS at https://ec2.mars-1.amazonaws.com", "--region"]),
    (client_error("UnauthorizedOperation"), ["AWS denied permission to launch", "IAM permissions"]),
    (client_error("AccessDenied"), ["AWS denied permission"]),
    (client_error("AuthFailure"), ["AWS rejected your credentials", "aws sso login"]),
    (client_error("InvalidInstanceType"), ["instance type g5.xlarge is not offered in eu-west-1"]),
    (client_error("InvalidParameterValue", "Invalid value 'x.large' for instance type"), ["is not offered"]),
    (client_error("VcpuLimitExceeded"), ["vCPU quota is too low", "https://console.aws.amazon.com/servicequotas/",
                                         "Running On-Demand G and VT instances"]),
    (client_error("InsufficientInstanceCapacity"), ["AWS has no g5.xlarge capacity in eu-west-1", "--spot"]),
    (client_error("SpotMaxPriceTooLow"), ["no spot capacity", "without --spot"]),
    (client_error("MaxSpotInstanceCountExceeded"), ["no spot capacity", "without --spot"]),
    (client_error("InvalidAMIID.NotFound"), ["AMI was not found in eu-west-1", "--ami-id"]),
    (client_error("VPCIdNotSpecified"), ["no default VPC", "create-default-vpc --region eu-west-1"]),
    (client_error("SomethingNew", "a new failure"), ["AWS error while trying to launch: SomethingNew: a new failure"]),
])
def test_translate(err, fragments):
    mapped = translate(err, "launch", instance_type="g5.xlarge", region="eu-west-1")
    assert isinstance(mapped, GpuplanError)
    assert "\n" not in str(mapped)
    for f in fragments:
        assert f in str(mapped)


def test_translate_names_the_right_quota():
    assert "Running On-Demand P instances" in str(translate(client_error("VcpuLimitExceeded"), "x",
                                                            instance_type="p4d.24xlarge"))
    assert "All G and VT Spot Instance Requests" in str(translate(client_error("VcpuLimitExceeded"), "x",
                                                                  instance_type="g5.xlarge", spot=True))
    assert translate(ValueError("a bug"), "x") is None  # bugs keep their traceback


def test_find_ami_from_ssm_then_describe_images_then_the_flag(clients):
    amazon = boto3.client("ec2", endpoint_url=ENDPOINT[0]).describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["Deep Learning AMI Ubuntu*"]}])["Images"][0]
    found = res.find_ami(clients, name_patterns=MOTO_AMI)
    assert (found.image_id, found.source) == (amazon["ImageId"], "describe_images 'Deep Learning AMI Ubuntu*'")
    # /aws/service/... names are reserved in moto too, so the test's parameter lives elsewhere.
    clients.ssm.put_parameter(Name="/test/dlami/ami-id", Value=amazon["ImageId"], Type="String")
    ssm = ["/test/missing", "/test/dlami/ami-id"]
    assert res.find_ami(clients, parameters=ssm, name_patterns=MOTO_AMI).source == "SSM /test/dlami/ami-id"
    assert res.find_ami(clients, amazon["ImageId"]).source == "--ami-id"
    with pytest.raises(GpuplanError, match="AMI ami-12345678 was not found in us-east-1"):
        res.find_ami(clients, "ami-12345678")
    with pytest.raises(GpuplanError, match="found no Deep Learning Base AMI in us-east-1; pass one with --ami-id"):
        res.find_ami(clients, parameters=[], name_patterns=["No Such AMI *"])


def test_an_existing_bucket_is_used_as_it_is(clients):
    s3().create_bucket(Bucket="users-own-bucket")
    s3().put_bucket_lifecycle_configuration(Bucket="users-own-bucket", LifecycleConfiguration={"Rules": [
        {"ID": "theirs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 7}}]})
    assert res.ensure_bucket(clients, "users-own-bucket", "123456789012") is False
    (rule,) = s3().get_bucket_lifecycle_configuration(Bucket="users-own-bucket")["Rules"]
    assert rule["ID"] == "theirs"


def test_a_bucket_outside_us_east_1_names_its_region(aws, monkeypatch):
    ENDPOINT[:] = [aws]
    eu = make_clients("eu-west-1")
    assert res.ensure_bucket(eu, "gpuplan-123456789012-eu-west-1", "123456789012") is True
    assert s3().get_bucket_location(Bucket="gpuplan-123456789012-eu-west-1")["LocationConstraint"] == "eu-west-1"


def test_an_instance_profile_must_exist(clients):
    with pytest.raises(GpuplanError, match="instance profile mine does not exist.*needs no IAM at all"):
        res.check_instance_profile(clients, "mine")
    clients.iam.create_instance_profile(InstanceProfileName="mine")
    res.check_instance_profile(clients, "mine")


def test_the_default_bucket_is_not_guessable_and_found_again(clients):
    name = res.new_bucket_name("123456789012", "us-east-1")
    assert re.fullmatch(r"gpuplan-123456789012-us-east-1-[0-9a-f]{8}", name) and len(name) <= 63
    assert name != res.new_bucket_name("123456789012", "us-east-1")
    assert res.find_own_bucket(clients, "123456789012") is None
    res.ensure_bucket(clients, name, "123456789012")
    s3().create_bucket(Bucket="gpuplan-123456789012-us-east-1")  # the old, guessable name is not picked
    assert res.find_own_bucket(clients, "123456789012") == name


def test_security_group_has_no_inbound_rule_and_is_reused(clients):
    vpc = res.default_vpc(clients)
    group, created = res.ensure_security_group(clients, vpc)
    assert created and res.ensure_security_group(clients, vpc) == (group, False)
    (sg,) = clients.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert sg["IpPermissions"] == []


def request(**kw) -> LaunchRequest:
    return LaunchRequest(workload=build_workload(), instance_types=["g4dn.xlarge"], **kw)


def test_plan_costs_are_price_times_minutes(clients):
    plan = plan_launch(request(max_minutes=60, steps=10), bundled_catalog(), clients, FAST)
    (t,) = plan.targets
    assert t.usd_per_hour == 0.526 and t.price_basis == "on-demand"
    # boot (the catalog's startup_seconds) + install + 2 precisions
    assert t.expected_minutes == pytest.approx((300 + 300 + 2 * 120) / 60)
    assert t.expected_usd == pytest.approx(0.526 * t.expected_minutes / 60)
    assert t.max_usd == pytest.approx(0.526)
    assert plan.timeout_minutes == 65 and plan.bucket.startswith("gpuplan-123456789012-us-east-1-")
    assert plan.url_minutes == 75 and plan.instance_profile is None
    spot = plan_launch(request(spot=True), bundled_catalog(), clients, FAST).targets[0]
    bundled = next(o for o in bundled_catalog().offers if o.key == ("g4dn.xlarge", "us-east-1")).price("spot")
    assert (spot.usd_per_hour, spot.price_basis) == (bundled, "typical spot")
    with pytest.raises(GpuplanError, match="given twice"):
        plan_launch(LaunchRequest(workload=build_workload(), instance_types=["g4dn.xlarge"] * 2), bundled_catalog(),
                    clients, FAST)
    with pytest.raises(GpuplanError, match="wheel nope.whl does not exist"):
        plan_launch(request(wheel="nope.whl"), bundled_catalog(), clients, FAST)


@pytest.mark.parametrize("code, fragment", [
    ("VcpuLimitExceeded", "https://console.aws.amazon.com/servicequotas/"),
    ("InsufficientInstanceCapacity", "AWS has no g4dn.xlarge capacity in us-east-1"),
    ("UnauthorizedOperation", "AWS denied permission to launch g4dn.xlarge"),
])
def test_start_instance_faults_with_stubber(clients, code, fragment):
    plan = plan_launch(request(), bundled_catalog(), clients, FAST)
    with Stubber(clients.ec2) as stub:
        stub.add_client_error("run_instances", service_error_code=code, service_message=code, http_status_code=400)
        with pytest.raises(GpuplanError, match=fragment.replace(".", r"\.")):
            start_instance(plan, dry_prepared(plan, None), plan.targets[0], clients)
        stub.assert_no_pending_responses()


def test_spot_capacity_with_stubber(clients):
    plan = plan_launch(request(spot=True), bundled_catalog(), clients, FAST)
    with Stubber(clients.ec2) as stub:
        stub.add_client_error("run_instances", service_error_code="InsufficientInstanceCapacity",
                              http_status_code=500)
        with pytest.raises(GpuplanError, match="retry in a few minutes") as e:
            start_instance(plan, dry_prepared(plan, None), plan.targets[0], clients)
        assert "or --spot" not in str(e.value)


def test_spot_interruption_with_stubber(clients):
    plan = plan_launch(request(spot=True), bundled_catalog(), clients, FAST)
    s3().create_bucket(Bucket=plan.bucket)  # empty: no result ever arrives
    ended = {"Reservations": [{"Instances": [{
        "InstanceId": "i-0123456789abcdef0", "State": {"Code": 48, "Name": "terminated"},
        "StateReason": {"Code": "Server.SpotInstanceTermination", "Message": "Spot instance termination"},
    }]}]}
    reports = []
    with Stubber(clients.ec2) as stub:
        stub.add_response("describe_instances", ended, {"InstanceIds": ["i-0123456789abcdef0"]})
        with pytest.raises(LaunchFailed, match="AWS interrupted the g4dn.xlarge spot instance"):
            wait_for_result(plan, plan.targets[0], "i-0123456789abcdef0", clients, cancel=threading.Event(),
                            report=lambda state, elapsed: reports.append(state), poll_seconds=0)
    assert reports == ["terminated"]


def test_wait_gives_up_at_the_timeout_without_sleeping_for_real(clients):
    plan = plan_launch(request(timeout_minutes=30), bundled_catalog(), clients, FAST)
    s3().create_bucket(Bucket=plan.bucket)
    running = {"Reservations": [{"Instances": [{"InstanceId": "i-0123456789abcdef0",
                                                "State": {"Code": 16, "Name": "running"}}]}]}
    now = [0.0]

    def clock():  # each poll is ten minutes later
        now[0] += 600
        return now[0]

    with Stubber(clients.ec2) as stub:
        for _ in range(4):
            stub.add_response("describe_instances", running)
        with pytest.raises(LaunchFailed, match="no result from g4dn.xlarge .* after 30 min"):
            wait_for_result(plan, plan.targets[0], "i-0123456789abcdef0", clients, cancel=threading.Event(),
                            report=lambda *a: None, poll_seconds=0, clock=clock)


def test_s3cp_copies_both_ways_and_fails_in_one_line(aws, tmp_path, capsys):
    s3().create_bucket(Bucket="copies")
    src = tmp_path / "a.txt"
    src.write_text("hello")
    assert s3cp.main([str(src), "s3://copies/x/a.txt"]) == 0
    assert s3cp.main(["s3://copies/x/a.txt", str(tmp_path / "b.txt")]) == 0
    assert (tmp_path / "b.txt").read_text() == "hello"
    assert s3cp.main(["s3://copies/missing", str(tmp_path / "c.txt")]) == 1
    assert s3cp.main(["only-one"]) == 2
    assert s3cp.main([str(src), str(tmp_path / "d.txt")]) == 1
    err = capsys.readouterr().err
    assert "s3cp: s3://copies/missing" in err and "one of SRC and DST must be an s3:// URI" in err


def test_instances_age_and_cost(aws):
    from gpuplan.cloud.instances import list_instances

    ENDPOINT[:] = [aws]
    c = make_clients("us-east-1")
    dl = [{"Name": "name", "Values": ["Deep Learning AMI Ubuntu*"]}]
    image = c.ec2.describe_images(Owners=["amazon"], Filters=dl)
    iid = c.ec2.run_instances(ImageId=image["Images"][0]["ImageId"], InstanceType="g4dn.xlarge", MinCount=1,
                              MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "gpuplan:launch-id", "Value": "L"}]}])["Instances"][0]["InstanceId"]
    try:
        (row,) = list_instances(c, bundled_catalog())
        later = row.launched_at + dt.timedelta(hours=2)
        (row,) = list_instances(c, bundled_catalog(), now=later)
        assert row.age_seconds == pytest.approx(7200) and row.usd_so_far == pytest.approx(2 * 0.526)
        assert json.loads(row.model_dump_json())["state"] == "running"
    finally:
        c.ec2.terminate_instances(InstanceIds=[iid])
    assert live_instances() == []
    ENDPOINT.clear()


@pytest.mark.parametrize("max_minutes, timeout, fragment", [
    (241, None, "--max-minutes: input should be less than or equal to 240"),
    (45, float("nan"), "--timeout: input should be a finite number"),
    (45, float("inf"), "--timeout: input should be a finite number"),
    (45, 301.0, "--timeout: input should be less than or equal to 300"),
    (-1, None, "--max-minutes: input should be greater than 0"),
])
def test_watchdog_and_timeout_bounds(max_minutes, timeout, fragment):
    from gpuplan.cloud.request import new_request

    with pytest.raises(GpuplanError, match=fragment):
        new_request(workload=build_workload(), instance_types=["g4dn.xlarge"], max_minutes=max_minutes,
                    timeout_minutes=timeout)


def test_credentials_expiry_against_the_url_lifetime():
    from types import SimpleNamespace

    from gpuplan.cloud.launchplan import check_credentials

    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    soon = SimpleNamespace(_expiry_time=now + dt.timedelta(minutes=30), token="t")
    with pytest.raises(GpuplanError, match="expire in 30 min, but the instance's presigned URLs must work for 60 min"):
        check_credentials(soon, 60, now)
    later = SimpleNamespace(_expiry_time=now + dt.timedelta(hours=3), token="t")
    assert "expire in 180 min" in check_credentials(later, 60, now)
    assert "expiry gpuplan cannot see" in check_credentials(SimpleNamespace(token="t"), 60, now)
    assert "long-term keys" in check_credentials(SimpleNamespace(token=None), 60, now)


def test_phases_from_stamps_and_the_result():
    from gpuplan.cloud.phases import compute, read_stamps

    stamps = read_stamps("start 1000.0\nuptime 31.5\ndriver 1004.0\ninstall 1250.0\ncalibrated 1400.0\n")
    result = {"runs": [
        {"precision": "fp32", "warmup_steps": 2, "warmup_seconds": 22.0, "step_seconds": 2.0, "train_seconds": 80.0},
        {"precision": "mixed", "warmup_steps": 2, "warmup_seconds": 12.0, "step_seconds": 1.0, "train_seconds": 40.0},
    ]}
    phases = compute(stamps, result, launched_at=955.0)
    assert phases == {"boot": 45.0, "driver": 4.0, "install": 246.0, "calibrate": 150.0, "run_fp32": 80.0,
                      "run_mixed": 40.0, "model_download": 30.0, "trace": 20.0}
    assert compute(stamps, result, launched_at=0.0)["boot"] == 31.5  # no client clock: the kernel's uptime


def test_presigned_urls_cover_one_key_each_and_expire(clients):
    from urllib.parse import parse_qs, urlparse

    from gpuplan.cloud.uploads import presign

    url = presign(clients, "put_object", "s3://bkt-x/gpuplan/L1/result.json", "123456789012", 60)
    parts = urlparse(url)
    query = parse_qs(parts.query)
    assert parts.path == "/bkt-x/gpuplan/L1/result.json"
    assert query["X-Amz-Expires"] == ["3600"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "x-amz-expected-bucket-owner" in query["X-Amz-SignedHeaders"][0]  # the instance must send the owner
