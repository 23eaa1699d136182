"""Plan a launch: what would be created and used in the account, and what each calibration should cost.

Read-only: planning creates nothing (`uploads.prepare` and `start.start_instance` do).
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gpuplan.cloud import resources as res
from gpuplan.cloud.aws import Clients, check_region
from gpuplan.cloud.bootstrap import calibrate_args
from gpuplan.cloud.request import LaunchRequest
from gpuplan.cloud.settings import LaunchSettings
from gpuplan.cloud.wheel import describe_source
from gpuplan.errors import GpuplanError
from pricing.models import DEFAULT_REGION, DEFAULT_STARTUP_SECONDS, Catalog, InstanceOffer

# What the calibration costs besides its timed steps: boot, then pip installing TensorFlow with CUDA (~3 GB),
# then per precision the graph tracing and warm-up. Rough, stated in the plan; the watchdog bounds the worst case.
INSTALL_SECONDS = 300.0
PER_PRECISION_SECONDS = 120.0
ROOT_EXTRA_GIB = 30  # TensorFlow, CUDA wheels and pip's cache on top of the AMI


class TargetPlan(BaseModel):
    instance_type: str
    launch_id: str
    result_uri: str
    log_uri: str
    ami: res.Ami
    gpu_key: str | None = Field(None, description="the catalog's GPU of the instance type: a result must match it")
    usd_per_hour: float | None = None
    price_basis: str = ""
    startup_seconds: float = DEFAULT_STARTUP_SECONDS
    expected_minutes: float
    expected_usd: float | None = None
    max_usd: float | None = None
    warning: str | None = None

    @property
    def root_gib(self) -> int:
        return max(self.ami.root_gib + ROOT_EXTRA_GIB, 100)


class LaunchPlan(BaseModel):
    region: str
    account: str | None = Field(description="None: planned without credentials (a dry run), nothing checked")
    bucket: str
    bucket_exists: bool
    instance_profile: str | None = Field(None, description="--instance-profile; None: presigned URLs, no IAM")
    vpc_id: str
    security_group_id: str | None
    spot: bool
    max_minutes: int
    timeout_minutes: float
    url_minutes: float = Field(description="how long the presigned URLs work: the watchdog plus a margin for boot")
    wheel: Path | None = None
    code_source: str = Field("", description="where the shipped gpuplan wheel comes from, in words")
    model_file: Path | None = Field(None, description="a local config.json to ship to the instance")
    dataset_file: Path | None = Field(None, description="a local dataset file to ship to the instance")
    calibrate_args: list[str]
    targets: list[TargetPlan]
    notes: list[str] = Field(default_factory=list, description="what the checks found, e.g. the credentials' expiry")

    @property
    def offline(self) -> bool:
        return self.account is None

    @property
    def expected_usd(self) -> float | None:
        costs = [t.expected_usd for t in self.targets]
        return None if any(c is None for c in costs) else sum(costs)  # type: ignore[misc]

    @property
    def max_usd(self) -> float | None:
        costs = [t.max_usd for t in self.targets]
        return None if any(c is None for c in costs) else sum(costs)  # type: ignore[misc]


def new_launch_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def find_offer(catalog: Catalog, instance_type: str, region: str) -> InstanceOffer | None:
    """The offer in the region, else the same type's offer elsewhere (a price is better than none)."""
    same = [o for o in catalog.offers if o.instance_type == instance_type]
    return next((o for o in same if o.region == region), same[0] if same else None)


def hourly_price(offer: InstanceOffer | None, region: str, spot: bool) -> tuple[float | None, str]:
    if offer is None:
        return None, "not in the catalog"
    where = "" if offer.region == region else f", {offer.region} price"
    if spot and offer.price("spot"):
        return offer.price("spot"), f"typical spot{where}"
    if spot:
        return offer.price("on-demand"), f"on-demand as a spot ceiling{where}"
    return offer.price("on-demand"), f"on-demand{where}"


def plan_target(catalog: Catalog, instance_type: str, region: str, request: LaunchRequest, bucket: str,
                ami: res.Ami) -> TargetPlan:
    launch_id = new_launch_id()
    offer = find_offer(catalog, instance_type, region)
    price, basis = hourly_price(offer, region, request.spot)
    startup = offer.startup_seconds if offer else DEFAULT_STARTUP_SECONDS
    seconds = startup + INSTALL_SECONDS + PER_PRECISION_SECONDS * len(request.workload.precisions)
    minutes = min(seconds / 60, request.max_minutes)
    prefix = f"s3://{bucket}/{res.RESULTS_PREFIX}{launch_id}"
    return TargetPlan(
        instance_type=instance_type, launch_id=launch_id, result_uri=f"{prefix}/result.json",
        log_uri=f"{prefix}/bootstrap.log", ami=ami, gpu_key=offer.gpu if offer else None, usd_per_hour=price,
        price_basis=basis, startup_seconds=startup,
        expected_minutes=minutes, expected_usd=None if price is None else price * minutes / 60,
        max_usd=None if price is None else price * request.max_minutes / 60,
        warning=res.ami_warning(instance_type) if not request.ami_id else None,
    )


def check_credentials(credentials: Any, url_minutes: float, now: dt.datetime | None = None) -> str:
    """The line the plan prints about the credentials that sign the instance's URLs; an error when they expire
    before the URLs must stop working (a presigned URL dies with the temporary credentials that signed it)."""
    need = f"the instance's presigned URLs must work for {url_minutes:.0f} min"
    expiry = getattr(credentials, "_expiry_time", None)
    token = getattr(credentials, "token", None)
    if expiry is None:
        if token:
            return (f"credentials: temporary (a session token) with an expiry gpuplan cannot see; {need}, and stop "
                    "working when the credentials do")
        return f"credentials: long-term keys; {need}"
    now = now or dt.datetime.now(dt.timezone.utc)
    left = (expiry - now).total_seconds() / 60
    if left < url_minutes:
        raise GpuplanError(f"your AWS credentials expire in {max(left, 0):.0f} min, but {need} (--max-minutes plus "
                           "the boot); refresh them first (e.g. `aws sso login`), lower --max-minutes, or pass "
                           "--instance-profile (the instance then uses its role)")
    return f"credentials: expire in {left:.0f} min; {need}: fine"


def find_amis(clients: Clients, request: LaunchRequest, settings: LaunchSettings) -> dict[str, res.Ami]:
    """instance type -> AMI: --ami-id for all, else an image whose NVIDIA driver supports the type's GPU."""
    found: dict[bool, res.Ami] = {}
    amis = {}
    for t in request.instance_types:
        proprietary = res.needs_proprietary_driver(t) and not request.ami_id
        if proprietary not in found:
            found[proprietary] = res.find_ami(
                clients, request.ami_id, parameters=() if proprietary else settings.ami_parameters,
                name_patterns=settings.proprietary_ami_name_patterns if proprietary else settings.ami_name_patterns)
        amis[t] = found[proprietary]
    return amis


def offline_ami(instance_type: str, request: LaunchRequest, settings: LaunchSettings) -> res.Ami:
    if request.ami_id:
        return res.Ami(image_id=request.ami_id, source="--ami-id, not checked")
    if res.needs_proprietary_driver(instance_type):
        return res.Ami(image_id="(found at launch)", source=f"newest of {settings.proprietary_ami_name_patterns[0]!r}")
    return res.Ami(image_id="(found at launch)", source=f"SSM {settings.ami_parameters[0]}"
                   if settings.ami_parameters else f"newest of {settings.ami_name_patterns[0]!r}")


def check_dataset(request: LaunchRequest) -> tuple[Path | None, list[str]]:
    """Read a local dataset here first, so that a misspelt column fails before anything is paid for.

    Returns the file to ship and the calibrate flags for it. A Hub dataset name is passed on as it is.
    """
    if request.dataset is None:
        return None, []
    from gpuplan.dataset import is_dataset_file_name, load_labeled_file

    columns = ["--text-column", request.text_column, "--label-column", request.label_column]
    path = Path(request.dataset).expanduser()
    if path.is_dir():
        raise GpuplanError(f"--dataset {request.dataset} is a folder; launch ships one file: save the data as CSV or "
                           "JSON Lines")
    if path.is_file() or is_dataset_file_name(path):
        # Raises the one-line error for a missing file, an unknown column or labels that aren't classes.
        load_labeled_file(path, request.text_column, request.label_column)
        return path, columns
    return None, ["--dataset", request.dataset, *columns]


OFFLINE_SKIPPED = ("your account and credentials' expiry (sts:GetCallerIdentity)", "the instance types offered in the "
                   "region (ec2:DescribeInstanceTypes)", "the AMI (ssm:GetParameter, ec2:DescribeImages)",
                   "the bucket and its owner (s3:ListAllMyBuckets, s3:ListBucket)", "the default VPC and security group "
                   "(ec2:DescribeVpcs, ec2:DescribeSecurityGroups)", "the instance profile (iam:GetInstanceProfile)",
                   "EC2's own check of the launch (ec2:RunInstances with DryRun)")


def plan_launch(request: LaunchRequest, catalog: Catalog, clients: Clients | None,
                settings: LaunchSettings = LaunchSettings(), wheel_source: str = "") -> LaunchPlan:
    """Read-only: what would be created and used, and what it should cost. Creates nothing.

    `clients` None plans without AWS (a dry run without credentials): placeholders where AWS would answer."""
    if len(set(request.instance_types)) != len(request.instance_types):
        raise GpuplanError("an instance type is given twice; each --instance launches one instance")
    if request.wheel is not None and Path(request.wheel).is_dir():
        raise GpuplanError(f"--wheel {request.wheel} is a folder; give the .whl file itself")
    if request.wheel is not None and not Path(request.wheel).is_file():
        raise GpuplanError(f"wheel {request.wheel} does not exist; build one with `python -m build --wheel`")
    dataset_file, data_args = check_dataset(request)  # before any AWS call: data mistakes cost nothing
    url_minutes = request.max_minutes + settings.url_margin_minutes
    notes: list[str] = []
    check_region(clients.region if clients is not None else request.region or DEFAULT_REGION)
    if clients is None:
        region = request.region or DEFAULT_REGION
        account = None
        bucket = request.bucket or res.bucket_prefix("ACCOUNT", region) + "RANDOM"
        bucket_exists, vpc, group = False, "the default VPC", None
        amis = {t: offline_ami(t, request, settings) for t in request.instance_types}
    else:
        region = clients.region
        account = res.account_id(clients)
        if request.instance_profile:
            res.check_instance_profile(clients, request.instance_profile)
        else:  # the URLs the instance gets are signed by these credentials
            notes.append(check_credentials(clients.credentials(), url_minutes))
        for instance_type in request.instance_types:
            res.check_instance_type(clients, instance_type)
        bucket = request.bucket or res.find_own_bucket(clients, account) or res.new_bucket_name(account, region)
        bucket_exists = res.bucket_exists(clients, bucket, account)
        amis = find_amis(clients, request, settings)
        vpc = res.default_vpc(clients)
        group = res.find_security_group(clients, vpc)
    arch = request.workload.arch
    model_file = Path(arch.path) if arch.source == "file" and arch.path else None
    return LaunchPlan(
        region=region, account=account, bucket=bucket, bucket_exists=bucket_exists,
        instance_profile=request.instance_profile, vpc_id=vpc, security_group_id=group, spot=request.spot,
        max_minutes=request.max_minutes, timeout_minutes=request.timeout_minutes or request.max_minutes + 5,
        url_minutes=url_minutes, wheel=request.wheel,
        code_source=f"your wheel {request.wheel}" if request.wheel else (wheel_source or describe_source()),
        model_file=model_file, dataset_file=dataset_file,
        calibrate_args=calibrate_args(request.workload, steps=request.steps, ship_model=model_file is not None,
                                      extra=data_args + request.extra_calibrate_args),
        targets=[plan_target(catalog, t, region, request, bucket, amis[t]) for t in request.instance_types],
        notes=notes,
    )
