"""boto3 clients for one region, and the translation of AWS faults into one-line errors that say how to fix them."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from gpuplan.errors import GpuplanError, one_line

DEFAULT_REGION = "us-east-1"
QUOTAS_URL = "https://console.aws.amazon.com/servicequotas/"
PERMISSIONS_HINT = "see the IAM permissions gpuplan needs in the README (Launch: IAM permissions)"


class Clients:
    """One client per service, made on first use (a command that only lists instances never pays for IAM's).

    boto3 clients are thread-safe, so launch threads share them; sessions are not, hence the lock.
    """

    SERVICES = ("ec2", "s3", "iam", "ssm", "sts")

    def __init__(self, region: str, session: Any, config: Any):
        self.region, self._session, self._config = region, session, config
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        with self._lock:
            if name not in self._made:
                self._made[name] = self._session.client(name, region_name=self.region, config=self._config)
            return self._made[name]

    ec2 = property(lambda self: self.client("ec2"))
    s3 = property(lambda self: self.client("s3"))
    iam = property(lambda self: self.client("iam"))
    ssm = property(lambda self: self.client("ssm"))
    sts = property(lambda self: self.client("sts"))


def resolve_region(region: str | None) -> str:
    """--region, else the AWS profile's region (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config), else us-east-1."""
    if region:
        return region
    import boto3

    return boto3.session.Session().region_name or DEFAULT_REGION


def make_clients(region: str | None = None) -> Clients:
    import boto3
    from botocore.config import Config

    region = resolve_region(region)
    # Standard retries ride out throttling; AWS_MAX_ATTEMPTS still overrides (tests set 1 to fail fast).
    config = Config(retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", 5))},
                    connect_timeout=10, read_timeout=60)
    return Clients(region, boto3.session.Session(region_name=region), config)


def error_code(err: BaseException) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(err: BaseException) -> str:
    response = getattr(err, "response", None) or {}
    return one_line(Exception(response.get("Error", {}).get("Message", "")))


# vCPU quotas are per instance family group; the quota's name is what a user searches for in Service Quotas.
def _quota_name(instance_type: str | None, spot: bool) -> str:
    family = (instance_type or "p")[:1].lower()
    group = {"p": "P", "g": "G and VT", "v": "G and VT"}.get(family, "Standard (A, C, D, H, I, M, R, T, Z)")
    return f"All {group} Spot Instance Requests" if spot else f"Running On-Demand {group} instances"


def translate(err: BaseException, action: str, *, instance_type: str | None = None, region: str | None = None,
              spot: bool = False) -> GpuplanError | None:
    """The GpuplanError for an AWS fault, or None when it is not one (a bug, which should keep its traceback)."""
    from botocore import exceptions as bx

    where = f" in {region}" if region else ""
    what = instance_type or "the instance"
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return GpuplanError(
            "no AWS credentials found; run `aws configure` (or `aws sso login`), or set AWS_PROFILE, "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(err, (bx.ProfileNotFound, bx.NoRegionError)):
        return GpuplanError(f"AWS configuration: {one_line(err)}; fix ~/.aws/config or pass --region")
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                        bx.ConnectionClosedError)):
        url = getattr(err, "kwargs", {}).get("endpoint_url", "")
        return GpuplanError(
            f"cannot reach AWS{f' at {url}' if url else ''} while trying to {action}; check your network or proxy, "
            "the region (--region) and AWS_ENDPOINT_URL if you set it"
        )
    if not isinstance(err, bx.ClientError):
        if isinstance(err, bx.BotoCoreError):
            return GpuplanError(f"AWS error while trying to {action}: {one_line(err)}")
        return None
    code, msg = error_code(err), error_message(err)
    if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "UnauthorizedAccess",
                "Forbidden", "403"):
        return GpuplanError(
            f"AWS denied permission to {action} ({code}); ask your administrator for it ({PERMISSIONS_HINT})"
        )
    if code in ("AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
                "ExpiredTokenException", "RequestExpired", "InvalidAccessKeyId", "UnrecognizedClientException"):
        return GpuplanError(f"AWS rejected your credentials ({code}); refresh them (`aws sso login` or "
                            "`aws configure`) and check the clock of this machine")
    if code == "InvalidInstanceType" or (code in ("InvalidParameterValue", "Unsupported") and "instance type" in
                                          msg.lower()):
        return GpuplanError(
            f"instance type {what} is not offered{where}; pick another with --instance or --region "
            "(see `gpuplan gpus`)"
        )
    if code == "VcpuLimitExceeded":
        return GpuplanError(
            f"your vCPU quota is too low to start {what}{where}; request more for "
            f"\"{_quota_name(instance_type, spot)}\" at {QUOTAS_URL} (new accounts start at 0 for GPU instances)"
        )
    if code in ("InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity"):
        return GpuplanError(
            f"AWS has no {what} capacity{where} right now; retry in a few minutes, or try another --instance or "
            "--region" + ("" if spot else ", or --spot")
        )
    if code in ("SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded", "InsufficientSpotCapacity",
                "SpotCapacityNotAvailable"):
        return GpuplanError(
            f"no spot capacity for {what}{where} ({code}); retry without --spot (on-demand), later, or in another "
            "--region"
        )
    if code.startswith("InvalidAMIID"):
        return GpuplanError(f"the AMI was not found{where} ({code}); pass an AMI of this region with --ami-id")
    if code == "OptInRequired":
        return GpuplanError(f"your account is not enabled for this service or region{where}; {msg}")
    if code in ("VPCIdNotSpecified", "MissingInput") or "default vpc" in msg.lower():
        return GpuplanError(
            f"there is no default VPC{where}; create one with `aws ec2 create-default-vpc --region {region}`"
        )
    return GpuplanError(f"AWS error while trying to {action}: {code}: {msg}".rstrip(": "))


@contextlib.contextmanager
def aws_errors(action: str, **context: Any) -> Iterator[None]:
    """Turn AWS faults raised inside into GpuplanError; let everything else (bugs) through unchanged."""
    try:
        yield
    except GpuplanError:
        raise
    except Exception as e:
        mapped = translate(e, action, **context)
        if mapped is None:
            raise
        raise mapped from e
