"""Plan a launch: what would be created and used in the account, and what each calibration should cost.

Read-only: planning creates nothing (`uploads.prepare` and `start.start_instance` do).
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from pydantic import BaseModel, Field

from gpuplan.cloud import resources as res
from gpuplan.cloud.aws import Clients
from gpuplan.cloud.bootstrap import calibrate_args
from gpuplan.cloud.request import LaunchRequest
from gpuplan.cloud.settings import LaunchSettings
from gpuplan.cloud.wheel import source_checkout
from gpuplan.errors import GpuplanError
from pricing.models import DEFAULT_STARTUP_SECONDS, Catalog, InstanceOffer

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
    usd_per_hour: float | None = None
    price_basis: str = ""
    startup_seconds: float = DEFAULT_STARTUP_SECONDS
    expected_minutes: float
    expected_usd: float | None = None
    max_usd: float | None = None
    warning: str | None = None


class LaunchPlan(BaseModel):
    region: str
    account: str
    bucket: str
    bucket_exists: bool
    ami: res.Ami
    instance_profile: str
    instance_profile_exists: bool
    vpc_id: str
    security_group_id: str | None
    spot: bool
    max_minutes: int
    timeout_minutes: float
    wheel: Path | None = None
    build_from: Path | None = Field(None, description="a source checkout to build this gpuplan's wheel from")
    model_file: Path | None = Field(None, description="a local config.json to ship to the instance")
    dataset_file: Path | None = Field(None, description="a local dataset file to ship to the instance")
    calibrate_args: list[str]
    targets: list[TargetPlan]

    @property
    def expected_usd(self) -> float | None:
        costs = [t.expected_usd for t in self.targets]
        return None if any(c is None for c in costs) else sum(costs)  # type: ignore[misc]

    @property
    def max_usd(self) -> float | None:
        costs = [t.max_usd for t in self.targets]
        return None if any(c is None for c in costs) else sum(costs)  # type: ignore[misc]

    @property
    def root_gib(self) -> int:
        return max(self.ami.root_gib + ROOT_EXTRA_GIB, 100)


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


def plan_target(catalog: Catalog, instance_type: str, region: str, request: LaunchRequest, bucket: str) -> TargetPlan:
    launch_id = new_launch_id()
    offer = find_offer(catalog, instance_type, region)
    price, basis = hourly_price(offer, region, request.spot)
    startup = offer.startup_seconds if offer else DEFAULT_STARTUP_SECONDS
    seconds = startup + INSTALL_SECONDS + PER_PRECISION_SECONDS * len(request.workload.precisions)
    minutes = min(seconds / 60, request.max_minutes)
    prefix = f"s3://{bucket}/{res.RESULTS_PREFIX}{launch_id}"
    return TargetPlan(
        instance_type=instance_type, launch_id=launch_id, result_uri=f"{prefix}/result.json",
        log_uri=f"{prefix}/bootstrap.log", usd_per_hour=price, price_basis=basis, startup_seconds=startup,
        expected_minutes=minutes, expected_usd=None if price is None else price * minutes / 60,
        max_usd=None if price is None else price * request.max_minutes / 60,
        warning=res.ami_warning(instance_type) if not request.ami_id else None,
    )


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


def plan_launch(request: LaunchRequest, catalog: Catalog, clients: Clients,
                settings: LaunchSettings = LaunchSettings()) -> LaunchPlan:
    """Read-only: what would be created and used, and what it should cost. Creates nothing."""
    if len(set(request.instance_types)) != len(request.instance_types):
        raise GpuplanError("an instance type is given twice; each --instance launches one instance")
    if request.wheel is not None and not Path(request.wheel).is_file():
        raise GpuplanError(f"wheel {request.wheel} does not exist; build one with `python -m build --wheel`")
    dataset_file, data_args = check_dataset(request)  # before any AWS call: data mistakes cost nothing
    account = res.account_id(clients)
    for instance_type in request.instance_types:
        res.check_instance_type(clients, instance_type)
    bucket = request.bucket or res.default_bucket(account, clients.region)
    ami = res.find_ami(clients, request.ami_id, parameters=settings.ami_parameters,
                       name_patterns=settings.ami_name_patterns)
    profile = request.instance_profile or res.PROFILE_NAME
    vpc = res.default_vpc(clients)
    arch = request.workload.arch
    model_file = Path(arch.path) if arch.source == "file" and arch.path else None
    return LaunchPlan(
        region=clients.region, account=account, bucket=bucket, bucket_exists=res.bucket_exists(clients, bucket),
        ami=ami, instance_profile=profile, instance_profile_exists=res.instance_profile_exists(clients, profile),
        vpc_id=vpc, security_group_id=res.find_security_group(clients, vpc), spot=request.spot,
        max_minutes=request.max_minutes, timeout_minutes=request.timeout_minutes or request.max_minutes + 5,
        wheel=request.wheel, build_from=None if request.wheel else source_checkout(), model_file=model_file,
        dataset_file=dataset_file,
        calibrate_args=calibrate_args(request.workload, steps=request.steps, ship_model=model_file is not None,
                                      extra=data_args + request.extra_calibrate_args),
        targets=[plan_target(catalog, t, clients.region, request, bucket) for t in request.instance_types],
    )
