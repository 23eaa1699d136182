"""Helpers for the launch tests: a stand-in "instance" that uploads a result, fault injection, leak checks.

Everything talks to the moto server of the `aws` fixture through real boto3 clients.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from gpuplan.cloud.settings import LaunchSettings
from gpuplan.measurement import CalibrationResult, DeviceInfo, RunResult
from gpuplan.workload import build_workload

LIVE_STATES = ["pending", "running"]
# moto has no Deep Learning Base AMI parameters (and /aws/ names are reserved): launches use its DL image by name.
MOTO_AMI = ("Deep Learning AMI Ubuntu*",)
# Fast polling and retries, moto's AMI: what the tests hand to `gpuplan launch` (CliRunner.invoke(..., obj=FAST)).
FAST = LaunchSettings(poll_seconds=0.02, profile_retry_seconds=0.0, terminate_retry_seconds=0.0,
                      ami_name_patterns=MOTO_AMI, proprietary_ami_name_patterns=MOTO_AMI)
ACCOUNT = "123456789012"  # moto's
BUCKET_PREFIX = f"gpuplan-{ACCOUNT}-us-east-1-"

ENDPOINT: list[str] = []  # the moto server's URL, set by the test fixture; tests may point AWS_ENDPOINT_URL elsewhere


def ec2():
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=ENDPOINT[0] if ENDPOINT else None)


def s3():
    return boto3.client("s3", region_name="us-east-1", endpoint_url=ENDPOINT[0] if ENDPOINT else None)


def gpuplan_bucket() -> str | None:
    """The bucket a default launch made (its name ends in a random suffix)."""
    names = [b["Name"] for b in s3().list_buckets()["Buckets"] if b["Name"].startswith(BUCKET_PREFIX)]
    assert len(names) <= 1, names
    return names[0] if names else None


def user_data(instance_id: str) -> str:
    """The script EC2 holds for the instance (gzipped when it would not fit EC2's limit otherwise)."""
    import base64
    import gzip

    data = ec2().describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    raw = base64.b64decode(data["UserData"]["Value"])
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def gpuplan_instances(states: list[str] | None = None) -> list[dict[str, Any]]:
    filters = [{"Name": "tag-key", "Values": ["gpuplan:launch-id"]}]
    if states:
        filters.append({"Name": "instance-state-name", "Values": states})
    reservations = ec2().describe_instances(Filters=filters)["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def live_instances() -> list[str]:
    """Every instance (gpuplan's or not) that is pending or running: each test must end with none."""
    reservations = ec2().describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": LIVE_STATES}])["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def make_result(gpu_key: str = "t4", gpu_name: str = "Tesla T4", step_seconds: float = 0.05,
                **workload: Any) -> CalibrationResult:
    wl = build_workload(**workload)
    runs = [
        RunResult(precision=p, dtype="float32" if p == "fp32" else "mixed_float16", steps=20,
                  batch_size=wl.batch_size, seq_len=wl.seq_len, warmup_seconds=4.0,
                  step_seconds=step_seconds * (1.0 if p == "fp32" else 0.4),
                  step_seconds_p90=step_seconds * 1.1, samples_per_second=wl.batch_size / step_seconds,
                  train_seconds=20 * step_seconds + 4.0)
        for p in wl.precisions
    ]
    return CalibrationResult(
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), gpuplan_version="0.1.0",
        device=DeviceInfo(kind="gpu", name=gpu_name, gpu_key=gpu_key, count=1, compute_capability=7.5),
        workload=wl, runs=runs,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


class FakeInstances(threading.Thread):
    """Plays the instances' side: for each launched gpuplan instance, `act(instance)` once it is running."""

    def __init__(self, act: Callable[[dict[str, Any]], None], count: int = 1, timeout: float = 30.0):
        super().__init__(daemon=True, name="fake-instances")
        self.act, self.count, self.timeout = act, count, timeout
        self.seen: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while len(self.seen) < self.count and time.monotonic() < deadline:
                for inst in gpuplan_instances(["running"]):
                    if inst["InstanceId"] not in self.seen:
                        self.seen.append(inst["InstanceId"])
                        self.act(inst)
                time.sleep(0.02)
        except BaseException as e:  # surfaced by the test through .error
            self.error = e


GPU_OF = {"g4dn": ("t4", "Tesla T4"), "g5": ("a10g", "NVIDIA A10G"), "p3": ("v100", "Tesla V100-SXM2-16GB")}


def upload_result(result: CalibrationResult) -> Callable[[dict[str, Any]], None]:
    """Upload the result as each instance's own: a GPU result gets the GPU of the instance's type."""
    def act(inst: dict[str, Any]) -> None:
        bucket, key = tags(inst)["gpuplan:result-uri"][5:].split("/", 1)
        mine = result.model_copy(deep=True)
        family = inst["InstanceType"].split(".")[0]
        if mine.device.kind == "gpu" and mine.device.gpu_key is not None and family in GPU_OF:
            mine.device.gpu_key, mine.device.name = GPU_OF[family]
        s3().put_object(Bucket=bucket, Key=key, Body=mine.model_dump_json().encode())

    return act


def fail_operation(client: Any, operation: str, code: str, message: str = "", status: int = 400,
                   when: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """Make one operation of one client answer with an AWS error, the way botocore's Stubber does it (a
    before-call handler that returns the response), while every other call still reaches moto.
    `when(api_params)` picks which calls fail."""
    from botocore.awsrequest import AWSResponse

    service = client.meta.service_model.service_id.hyphenize()

    def remember(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["test_api_params"] = dict(params)

    def handler(context: dict[str, Any], **kwargs: Any) -> Any:
        if when is not None and not when(context.get("test_api_params", {})):
            return None
        parsed = {"Error": {"Code": code, "Message": message or code},
                  "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse("https://stub", status, {}, None), parsed

    client.meta.events.register(f"provide-client-params.{service}.{operation}", remember)
    client.meta.events.register(f"before-call.{service}.{operation}", handler)


def patch_response(client: Any, operation: str, patch: Callable[[dict[str, Any]], None]) -> None:
    """Let moto answer, then edit the parsed response (e.g. a state reason moto never produces)."""
    service = client.meta.service_model.service_id.hyphenize()

    def handler(parsed: dict[str, Any], **kwargs: Any) -> None:
        patch(parsed)

    client.meta.events.register(f"after-call.{service}.{operation}", handler)
