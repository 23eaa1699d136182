"""boto3 clients for one region, and the translation of AWS faults into one-line errors that say how to fix them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from gpuplan.errors import GpuplanError
from pricing import awsclient
from pricing.awsclient import error_code, error_message

__all__ = ["Clients", "aws_errors", "error_code", "error_message", "make_clients", "resolve_region", "translate"]

QUOTAS_URL = "https://console.aws.amazon.com/servicequotas/"
PERMISSIONS_HINT = "the IAM permissions `gpuplan launch --dry-run` prints (README: Launch, IAM permissions)"


class Clients:
    """One client per service, made on first use (a command that only lists instances never pays for IAM's).

    boto3 clients are thread-safe, so launch threads share them; sessions are not, hence the lock.
    """

    SERVICES = ("ec2", "s3", "iam", "ssm", "sts")

    def __init__(self, region: str, session: Any):
        self.region, self._session = region, session
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        with self._lock:
            if name not in self._made:
                self._made[name] = awsclient.make_client(name, self.region, self._session)
            return self._made[name]

    @property
    def presigner(self) -> Any:
        """An S3 client that signs URLs with SigV4 (what every region accepts); signing is local, no call."""
        with self._lock:
            if "presigner" not in self._made:
                from botocore.config import Config

                self._made["presigner"] = self._session.client("s3", region_name=self.region,
                                                               config=Config(signature_version="s3v4"))
            return self._made["presigner"]

    def credentials(self) -> Any:
        """botocore's credentials, or None when there are none (resolving them makes no AWS call for keys and
        profiles; SSO and assume-role profiles may call their service)."""
        return self._session.get_credentials()

    @property
    def used(self) -> list[str]:
        """The services a client was made for, so far (a default launch never makes an IAM one)."""
        return sorted(self._made)

    ec2 = property(lambda self: self.client("ec2"))
    s3 = property(lambda self: self.client("s3"))
    iam = property(lambda self: self.client("iam"))
    ssm = property(lambda self: self.client("ssm"))
    sts = property(lambda self: self.client("sts"))


def resolve_region(region: str | None) -> str:
    """--region, else the AWS profile's region (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config), else the default."""
    return region or awsclient.default_region()


def check_region(region: str) -> None:
    """A region EC2 has (botocore's own list, no call), else a one-line error with the nearest names."""
    import difflib

    import boto3

    known = boto3.session.Session().get_available_regions("ec2")
    if known and region not in known:
        near = difflib.get_close_matches(region, known, n=3)
        raise GpuplanError(f"region {region} is not an EC2 region" + (f"; did you mean: {', '.join(near)}" if near
                                                                       else "") + " (see --region)")


def make_clients(region: str | None = None) -> Clients:
    import boto3

    region = resolve_region(region)
    return Clients(region, boto3.session.Session(region_name=region))


# vCPU quotas are per instance family group; the quota's name is what a user searches for in Service Quotas.
def _quota_name(instance_type: str | None, spot: bool) -> str:
    family = (instance_type or "p")[:1].lower()
    group = {"p": "P", "g": "G and VT", "v": "G and VT"}.get(family, "Standard (A, C, D, H, I, M, R, T, Z)")
    return f"All {group} Spot Instance Requests" if spot else f"Running On-Demand {group} instances"


def translate(err: BaseException, action: str, *, instance_type: str | None = None, region: str | None = None,
              spot: bool = False) -> GpuplanError | None:
    """The GpuplanError for an AWS fault, or None when it is not one (a bug, which should keep its traceback).

    The faults only a launch meets (capacity, quotas, AMIs, VPCs) are explained here; the rest by pricing's one
    translator, which every AWS call of gpuplan shares.
    """
    message = _launch_fault(err, action, instance_type, region, spot)
    if message is not None:
        return GpuplanError(message)
    return awsclient.translate(err, action, region=region, error=GpuplanError,  # type: ignore[return-value]
                               needs=f"ask your administrator for it ({PERMISSIONS_HINT})")


def _launch_fault(err: BaseException, action: str, instance_type: str | None, region: str | None,
                  spot: bool) -> str | None:
    code, msg = error_code(err), error_message(err)
    where = f" in {region}" if region else ""
    what = instance_type or "the instance"
    if code == "InvalidInstanceType" or (code in ("InvalidParameterValue", "Unsupported") and "instance type" in
                                          msg.lower()):
        return f"instance type {what} is not offered{where}; pick another with --instance or --region (see `gpuplan gpus`)"
    if code == "VcpuLimitExceeded":
        return (f"your vCPU quota is too low to start {what}{where}; request more for "
                f"\"{_quota_name(instance_type, spot)}\" at {QUOTAS_URL} (new accounts start at 0 for GPU instances)")
    if code in ("InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity"):
        return (f"AWS has no {what} capacity{where} right now; retry in a few minutes, or try another --instance or "
                "--region" + ("" if spot else ", or --spot"))
    if code in ("SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded", "InsufficientSpotCapacity",
                "SpotCapacityNotAvailable"):
        return f"no spot capacity for {what}{where} ({code}); retry without --spot (on-demand), later, or in another --region"
    if code.startswith("InvalidAMIID"):
        return f"the AMI was not found{where} ({code}); pass an AMI of this region with --ami-id"
    if code in ("VPCIdNotSpecified", "MissingInput") or (code and "default vpc" in msg.lower()):
        return f"there is no default VPC{where}; create one with `aws ec2 create-default-vpc --region {region}`"
    return None


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
