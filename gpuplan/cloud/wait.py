"""Wait for one instance's result: poll S3 for it and EC2 for the instance's state, until one of them ends the wait."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from gpuplan.measurement import CalibrationResult
from gpuplan.cloud.aws import Clients, aws_errors, error_code
from gpuplan.cloud.launchplan import LaunchPlan, TargetPlan
from gpuplan.cloud.settings import POLL_SECONDS
from gpuplan.errors import GpuplanError, one_line

ENDED_STATES = ("shutting-down", "terminated", "stopping", "stopped")
LOG_TAIL_LINES = 25


class LaunchFailed(GpuplanError):
    """A launch that ended without a result; carries the tail of the instance's log when there is one."""

    def __init__(self, message: str, log_tail: list[str] | None = None, log_uri: str = ""):
        super().__init__(message)
        self.log_tail = log_tail or []
        self.log_uri = log_uri


class Cancelled(Exception):
    """The wait was abandoned (Ctrl-C); the instance is terminated by the caller's finally."""


def split_uri(uri: str) -> tuple[str, str]:
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def read_object(clients: Clients, uri: str, owner: str | None = None) -> bytes | None:
    bucket, key = split_uri(uri)
    mine = {"ExpectedBucketOwner": owner} if owner else {}
    try:
        return clients.s3.get_object(Bucket=bucket, Key=key, **mine)["Body"].read()
    except Exception as e:
        if error_code(e) in ("NoSuchKey", "404", "NotFound"):
            return None
        with aws_errors(f"read {uri} (s3:GetObject)", region=clients.region):
            raise
    return None


NO_GPU = "no GPU visible on the instance (driver/AMI)"


def spent(target: TargetPlan, seconds: float) -> str:
    cost = "" if target.usd_per_hour is None else f", ~${target.usd_per_hour * seconds / 3600:.2f}"
    return f"{seconds / 60:.1f} min{cost} spent"


def check_device(result: CalibrationResult, target: TargetPlan) -> str | None:
    """Why the result is not a measurement of the launched instance's GPU, or None when it is."""
    device = result.device
    if device.kind != "gpu":
        return f"the calibration ran on the CPU ({device.name}), not on the {target.instance_type}'s GPU: {NO_GPU}"
    if device.gpu_key and target.gpu_key and device.gpu_key != target.gpu_key:
        return (f"the calibration ran on a {device.gpu_key} ({device.name}), but a {target.instance_type} has a "
                f"{target.gpu_key}")
    return None


def fetch_result(clients: Clients, target: TargetPlan, elapsed: float = 0.0, owner: str | None = None,
                 ) -> CalibrationResult | None:
    """The instance's result, None while there is none; a LaunchFailed for an error result (no GPU) and for a
    result that is not a measurement of this instance's GPU: those are never used."""
    body = read_object(clients, target.result_uri, owner)
    if body is None:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "gpuplan_error" in doc:
        what = NO_GPU if doc["gpuplan_error"] == "no_gpu" else f"the instance failed ({doc['gpuplan_error']})"
        raise LaunchFailed(f"{what}: {str(doc.get('message', ''))[:300]}; {target.instance_type} "
                           f"({target.ami.image_id}): {spent(target, elapsed)}; try another --ami-id",
                           log_uri=target.log_uri)
    try:
        result = CalibrationResult.model_validate_json(body)
    except (ValidationError, ValueError) as e:
        raise LaunchFailed(f"{target.result_uri} is not a calibration result ({one_line(e)[:160]}); the instance "
                           "may run another gpuplan version: ship yours with --wheel") from None
    if (wrong := check_device(result, target)) is not None:
        raise LaunchFailed(f"{wrong}; not used as a measurement; {spent(target, elapsed)}",
                           log_uri=target.log_uri)
    if result.device.instance_type is None:
        result.device.instance_type = target.instance_type
    return result


def log_tail(clients: Clients, target: TargetPlan, lines: int = LOG_TAIL_LINES, owner: str | None = None,
             ) -> list[str]:
    try:
        body = read_object(clients, target.log_uri, owner)
    except GpuplanError:
        return []
    return body.decode(errors="replace").splitlines()[-lines:] if body else []


def _hint(tail: list[str]) -> str:
    """The fix for the failures a log makes obvious."""
    text = "\n".join(tail)
    if "out of memory" in text.lower() or "OOM" in text:
        return "the calibration ran out of memory: lower --batch-size or --seq-len; "
    return ""


def describe(clients: Clients, instance_id: str) -> dict[str, Any] | None:
    try:
        reservations = clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except Exception as e:
        if error_code(e) == "InvalidInstanceID.NotFound":  # EC2 is eventually consistent just after launch
            return None
        raise
    return reservations[0]["Instances"][0] if reservations else None


def wait_for_result(plan: LaunchPlan, target: TargetPlan, instance_id: str, clients: Clients, *,
                    cancel: threading.Event, report: Callable[[str, float], None],
                    poll_seconds: float = POLL_SECONDS, clock: Callable[[], float] = time.monotonic,
                    ) -> CalibrationResult:
    """Poll S3 for the result and EC2 for the instance's state until one ends the wait."""
    started = clock()
    context = {"region": clients.region, "instance_type": target.instance_type, "spot": plan.spot}
    while True:
        if cancel.is_set():
            raise Cancelled()
        with aws_errors(f"check on {target.instance_type} ({instance_id})", **context):
            result = fetch_result(clients, target, clock() - started, plan.account)
            if result is not None:
                return result
            instance = describe(clients, instance_id)
        state = instance["State"]["Name"] if instance else "pending"
        elapsed = clock() - started
        report(state, elapsed)
        if state in ENDED_STATES:
            with aws_errors(f"check on {target.instance_type} ({instance_id})", **context):
                # it may have uploaded just before shutting down
                result = fetch_result(clients, target, elapsed, plan.account)
            if result is not None:
                return result
            reason = (instance or {}).get("StateReason", {}).get("Code", "")
            if reason == "Server.SpotInstanceTermination":
                raise LaunchFailed(f"AWS interrupted the {target.instance_type} spot instance ({instance_id}) before "
                                   "the result was ready; retry without --spot, or later")
            tail = log_tail(clients, target, owner=plan.account)
            raise LaunchFailed(
                f"{target.instance_type} ({instance_id}) ended ({state}{f', {reason}' if reason else ''}) without a "
                f"result; {_hint(tail)}see its log at {target.log_uri}", tail, target.log_uri)
        if elapsed >= plan.timeout_minutes * 60:
            raise LaunchFailed(
                f"no result from {target.instance_type} ({instance_id}) after {plan.timeout_minutes:g} min; it was "
                f"terminated. Raise --timeout, or look at its log at {target.log_uri}",
                log_tail(clients, target, owner=plan.account), target.log_uri)
        cancel.wait(poll_seconds)
