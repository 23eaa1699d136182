"""Wait for one instance's result: poll S3 for it and EC2 for the instance's state, until one of them ends the wait."""

from __future__ import annotations

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


def read_object(clients: Clients, uri: str) -> bytes | None:
    bucket, key = split_uri(uri)
    try:
        return clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as e:
        if error_code(e) in ("NoSuchKey", "404", "NotFound"):
            return None
        with aws_errors(f"read {uri} (s3:GetObject)", region=clients.region):
            raise
    return None


def fetch_result(clients: Clients, target: TargetPlan) -> CalibrationResult | None:
    body = read_object(clients, target.result_uri)
    if body is None:
        return None
    try:
        result = CalibrationResult.model_validate_json(body)
    except (ValidationError, ValueError) as e:
        raise LaunchFailed(f"{target.result_uri} is not a calibration result ({one_line(e)[:160]}); the instance "
                           "may run another gpuplan version: ship yours with --wheel") from None
    if result.device.instance_type is None:
        result.device.instance_type = target.instance_type
    return result


def log_tail(clients: Clients, target: TargetPlan, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        body = read_object(clients, target.log_uri)
    except GpuplanError:
        return []
    return body.decode(errors="replace").splitlines()[-lines:] if body else []


def _hint(tail: list[str]) -> str:
    """The fix for the failures a log makes obvious."""
    text = "\n".join(tail)
    if "No matching distribution found for gpuplan" in text:
        return ("this gpuplan version is not on PyPI: build a wheel (`python -m build --wheel`) and pass "
                "--wheel dist/gpuplan-*.whl; ")
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
            result = fetch_result(clients, target)
            if result is not None:
                return result
            instance = describe(clients, instance_id)
        state = instance["State"]["Name"] if instance else "pending"
        elapsed = clock() - started
        report(state, elapsed)
        if state in ENDED_STATES:
            with aws_errors(f"check on {target.instance_type} ({instance_id})", **context):
                result = fetch_result(clients, target)  # it may have uploaded just before shutting down
            if result is not None:
                return result
            reason = (instance or {}).get("StateReason", {}).get("Code", "")
            if reason == "Server.SpotInstanceTermination":
                raise LaunchFailed(f"AWS interrupted the {target.instance_type} spot instance ({instance_id}) before "
                                   "the result was ready; retry without --spot, or later")
            tail = log_tail(clients, target)
            raise LaunchFailed(
                f"{target.instance_type} ({instance_id}) ended ({state}{f', {reason}' if reason else ''}) without a "
                f"result; {_hint(tail)}see its log at {target.log_uri}", tail, target.log_uri)
        if elapsed >= plan.timeout_minutes * 60:
            raise LaunchFailed(
                f"no result from {target.instance_type} ({instance_id}) after {plan.timeout_minutes:g} min; it was "
                f"terminated. Raise --timeout, or look at its log at {target.log_uri}",
                log_tail(clients, target), target.log_uri)
        cancel.wait(poll_seconds)
