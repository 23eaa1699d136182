"""Plan a launch, prepare the account, start one calibration instance.

`wait.py` waits for its result; `fleet.py` runs several launches in parallel, terminates them and owns Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from gpuplan.measurement import CalibrationResult
from gpuplan.cloud import resources as res
from gpuplan.cloud.aws import Clients, aws_errors, error_code, error_message
from gpuplan.cloud.bootstrap import BootstrapParams, calibrate_args, render_user_data
from gpuplan.errors import GpuplanError
from gpuplan.workload import Workload
from pricing.models import Catalog, InstanceOffer

PROFILE_RETRY_SECONDS = 5.0  # a new instance profile takes a few seconds to be usable by EC2
PROFILE_RETRIES = 12
# What the calibration costs besides its timed steps: boot, then pip installing TensorFlow with CUDA (~3 GB),
# then per precision the graph tracing and warm-up. Rough, stated in the plan; the watchdog bounds the worst case.
INSTALL_SECONDS = 300.0
PER_PRECISION_SECONDS = 120.0
ROOT_EXTRA_GIB = 30  # TensorFlow, CUDA wheels and pip's cache on top of the AMI


class LaunchRequest(BaseModel):
    workload: Workload
    instance_types: list[str] = Field(min_length=1)
    region: str | None = None
    spot: bool = False
    bucket: str | None = None
    ami_id: str | None = None
    instance_profile: str | None = None
    wheel: Path | None = None
    timeout_minutes: float | None = Field(None, gt=0, description="None: the watchdog's minutes plus 5")
    max_minutes: int = Field(45, gt=0)
    steps: int | None = Field(None, gt=0)
    extra_calibrate_args: list[str] = []
    dataset: str | None = Field(None, description="a CSV/JSON Lines file (shipped through S3) or a Hub dataset name")
    text_column: str = "text"
    label_column: str = "label"


FLAG_OF = {"timeout_minutes": "--timeout", "max_minutes": "--max-minutes", "steps": "--steps",
           "instance_types": "--instance"}


def new_request(**fields: Any) -> LaunchRequest:
    """A LaunchRequest, with a bad value reported by the flag that set it."""
    try:
        return LaunchRequest(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        raise GpuplanError(f"{FLAG_OF.get(name, name)}: {err['msg'].lower()}, got {err.get('input')!r}") from None


class TargetPlan(BaseModel):
    instance_type: str
    launch_id: str
    result_uri: str
    log_uri: str
    usd_per_hour: float | None = None
    price_basis: str = ""
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
    if spot and offer.spot_usd_per_hour:
        return offer.spot_usd_per_hour, f"typical spot{where}"
    if spot:
        return offer.on_demand_usd_per_hour, f"on-demand as a spot ceiling{where}"
    return offer.on_demand_usd_per_hour, f"on-demand{where}"


def plan_target(catalog: Catalog, instance_type: str, region: str, request: LaunchRequest, bucket: str) -> TargetPlan:
    launch_id = new_launch_id()
    offer = find_offer(catalog, instance_type, region)
    price, basis = hourly_price(offer, region, request.spot)
    startup = offer.startup_seconds if offer else 300.0
    seconds = startup + INSTALL_SECONDS + PER_PRECISION_SECONDS * len(request.workload.precisions)
    minutes = min(seconds / 60, request.max_minutes)
    prefix = f"s3://{bucket}/{res.RESULTS_PREFIX}{launch_id}"
    return TargetPlan(
        instance_type=instance_type, launch_id=launch_id, result_uri=f"{prefix}/result.json",
        log_uri=f"{prefix}/bootstrap.log", usd_per_hour=price, price_basis=basis, expected_minutes=minutes,
        expected_usd=None if price is None else price * minutes / 60,
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


def plan_launch(request: LaunchRequest, catalog: Catalog, clients: Clients) -> LaunchPlan:
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
    ami = res.find_ami(clients, request.ami_id)
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


def run_instances_params(plan: LaunchPlan, target: TargetPlan, user_data: str, *, profile: bool = True,
                         security_group: str | None = None) -> dict[str, Any]:
    tags = [
        {"Key": "Name", "Value": f"gpuplan-calibration-{target.launch_id}"},
        {"Key": res.TAG_LAUNCH_ID, "Value": target.launch_id},
        {"Key": res.TAG_RESULT_URI, "Value": target.result_uri},
    ]
    params: dict[str, Any] = {
        "ImageId": plan.ami.image_id, "InstanceType": target.instance_type, "MinCount": 1, "MaxCount": 1,
        "UserData": user_data,
        # The bootstrap's final `shutdown` (and the watchdog's) then ends the bill instead of stopping the instance.
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": plan.ami.root_device, "Ebs": {
            "VolumeSize": max(plan.ami.root_gib + ROOT_EXTRA_GIB, 100), "VolumeType": "gp3", "Encrypted": True,
            "DeleteOnTermination": True,
        }}],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    }
    if profile:
        params["IamInstanceProfile"] = {"Name": plan.instance_profile}
    if security_group:
        params["SecurityGroupIds"] = [security_group]
    if plan.spot:
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate",
        }}
    return params


def dry_run(plan: LaunchPlan, clients: Clients) -> list[str]:
    """Ask EC2 whether each launch would be allowed (DryRun), without starting anything."""
    lines = []
    for target in plan.targets:
        params = run_instances_params(plan, target, "#!/bin/bash\n", profile=plan.instance_profile_exists,
                                      security_group=plan.security_group_id)
        try:
            clients.ec2.run_instances(DryRun=True, **params)
        except Exception as e:
            if error_code(e) != "DryRunOperation":
                with aws_errors(f"launch {target.instance_type} (ec2:RunInstances, DryRun)", region=clients.region,
                                instance_type=target.instance_type, spot=plan.spot):
                    raise
        unchecked = "" if plan.instance_profile_exists else \
            " (iam:PassRole not checked: the profile does not exist yet)"
        lines.append(f"{target.instance_type}: EC2 would accept the launch (DryRun){unchecked}")
    return lines


def source_checkout() -> Path | None:
    """The project folder when this gpuplan runs from a source checkout (an editable install), else None.

    The instance must run the client's own code; a checkout may differ from every release on PyPI.
    """
    import gpuplan

    root = Path(gpuplan.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "gpuplan" / "cli").is_dir() else None


@functools.cache
def build_wheel(source: Path) -> Path:
    """Build the checkout's wheel once per process (seconds), without its dependencies."""
    import subprocess
    import sys
    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    out = Path(tempfile.mkdtemp(prefix="gpuplan-wheel-"))
    # Without build isolation when a recent enough setuptools is here (pyproject's build-system asks for 77+):
    # no download. Otherwise pip fetches the build backend, as any source install does.
    try:
        recent = int(version("setuptools").split(".")[0]) >= 77
    except (PackageNotFoundError, ValueError):
        recent = False
    isolation = ["--no-build-isolation"] if recent else []
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out),
                           str(source)], capture_output=True, text=True)
    wheels = sorted(out.glob("gpuplan-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise GpuplanError(f"could not build this gpuplan's wheel from {source} ({last}); build one with "
                           "`python -m pip wheel --no-deps -w dist .` and pass --wheel dist/gpuplan-*.whl")
    return wheels[-1]


class Prepared(BaseModel):
    security_group_id: str
    wheel_uri: str = ""
    model_uri: str = ""
    dataset_uri: str = ""
    created: list[str] = []
    profile_created: bool = False


def prepare(plan: LaunchPlan, clients: Clients) -> Prepared:
    """Create what the plan said is missing; ship the wheel and a local model config to the bucket."""
    created = []
    if res.ensure_bucket(clients, plan.bucket):
        created.append(f"bucket s3://{plan.bucket}")
    profile, profile_created = res.ensure_instance_profile(
        clients, plan.bucket, plan.instance_profile if plan.instance_profile != res.PROFILE_NAME else None)
    if profile_created:
        created.append(f"IAM role and instance profile {profile}")
    group, group_created = res.ensure_security_group(clients, plan.vpc_id)
    if group_created:
        created.append(f"security group {res.SECURITY_GROUP_NAME} ({group})")
    prepared = Prepared(security_group_id=group, created=created, profile_created=profile_created)
    shared = f"{res.RESULTS_PREFIX}{plan.targets[0].launch_id}"
    with aws_errors(f"upload to s3://{plan.bucket}/{shared}/ (s3:PutObject)", region=clients.region):
        wheel = plan.wheel or (build_wheel(plan.build_from) if plan.build_from else None)
        if wheel is not None:
            key = f"{shared}/{Path(wheel).name}"
            clients.s3.upload_file(str(wheel), plan.bucket, key)
            prepared.wheel_uri = f"s3://{plan.bucket}/{key}"
        if plan.dataset_file is not None:
            key = f"{shared}/data/{plan.dataset_file.name}"
            clients.s3.upload_file(str(plan.dataset_file), plan.bucket, key)
            prepared.dataset_uri = f"s3://{plan.bucket}/{key}"
        if plan.model_file is not None:
            key = f"{shared}/model/config.json"
            clients.s3.upload_file(str(plan.model_file), plan.bucket, key)
            prepared.model_uri = f"s3://{plan.bucket}/{key}"
    return prepared


def user_data(plan: LaunchPlan, prepared: Prepared, target: TargetPlan) -> str:
    params = BootstrapParams(
        launch_id=target.launch_id, region=plan.region, result_uri=target.result_uri, log_uri=target.log_uri,
        max_minutes=plan.max_minutes, wheel_uri=prepared.wheel_uri, model_uri=prepared.model_uri,
        dataset_uri=prepared.dataset_uri,
        calibrate_args=plan.calibrate_args,
    )
    return render_user_data(params)


def start_instance(plan: LaunchPlan, prepared: Prepared, target: TargetPlan, clients: Clients,
                   sleep: Callable[[float], Any] = time.sleep) -> str:
    params = run_instances_params(plan, target, user_data(plan, prepared, target),
                                  security_group=prepared.security_group_id)
    context = {"region": clients.region, "instance_type": target.instance_type, "spot": plan.spot}
    for attempt in range(PROFILE_RETRIES + 1):
        try:
            return clients.ec2.run_instances(**params)["Instances"][0]["InstanceId"]
        except Exception as e:
            # IAM is eventually consistent: a profile made seconds ago is "invalid" to EC2 for a little while.
            new_profile = error_code(e) == "InvalidParameterValue" and "iaminstanceprofile" in error_message(e).lower()
            if not (new_profile and attempt < PROFILE_RETRIES):
                with aws_errors(f"launch {target.instance_type} (ec2:RunInstances)", **context):
                    raise
            sleep(PROFILE_RETRY_SECONDS)
    raise AssertionError("unreachable")


def complete_device(result: CalibrationResult, catalog: Catalog, instance_type: str) -> CalibrationResult:
    """Name the instance and, when the instance's calibrate did not recognise its GPU, the catalog's GPU key."""
    result = result.model_copy(deep=True)
    result.device.instance_type = result.device.instance_type or instance_type
    offer = next((o for o in catalog.offers if o.instance_type == instance_type), None)
    if result.device.kind == "gpu" and result.device.gpu_key is None and offer is not None:
        result.device.gpu_key = offer.gpu
        result.notes.append(f"gpu_key {offer.gpu} set by `gpuplan launch` from the catalog entry of {instance_type}")
    return result


def _money(v: float | None) -> str:
    from gpuplan.render import usd

    return "price unknown (not in the catalog)" if v is None else usd(v)


def describe_plan(plan: LaunchPlan) -> list[str]:
    """The plan as the person about to pay for it should read it."""
    made = "exists, used as it is"
    root = max(plan.ami.root_gib + ROOT_EXTRA_GIB, 100)
    install = f"the wheel {Path(plan.wheel).name} (shipped via S3)" if plan.wheel else \
        f"this gpuplan, built as a wheel from {plan.build_from} (shipped via S3)" if plan.build_from else \
        BootstrapParams.model_fields["install_spec"].default + " from PyPI"
    new_bucket = (f"to create: private, encrypted, results under {res.RESULTS_PREFIX} expire after "
                  f"{res.RESULT_EXPIRY_DAYS} days")
    new_profile = f"to create: may only read and write s3://{plan.bucket}/{res.RESULTS_PREFIX}*"
    lines = [f"Plan: {len(plan.targets)} {'spot' if plan.spot else 'on-demand'} instance(s) in {plan.region} "
             f"(account {plan.account})"]
    for t in plan.targets:
        price = f"{_money(t.usd_per_hour)}/h {t.price_basis}" if t.usd_per_hour else _money(None)
        lines.append(f"  {t.instance_type}: {price}; about {t.expected_minutes:.0f} min, ~{_money(t.expected_usd)}; "
                     f"at most {_money(t.max_usd)}")
        lines.append(f"    result: {t.result_uri}")
    lines += [
        f"  AMI: {plan.ami.image_id} {plan.ami.name} ({plan.ami.source})".rstrip(),
        f"  bucket: s3://{plan.bucket} ({made if plan.bucket_exists else new_bucket})",
        f"  instance profile: {plan.instance_profile} ({made if plan.instance_profile_exists else new_profile})",
        f"  security group: {res.SECURITY_GROUP_NAME} in {plan.vpc_id}, no inbound rule "
        f"({'exists' if plan.security_group_id else 'to create'})",
        f"  instance: IMDSv2 only, encrypted {root} GiB gp3 root volume, terminates on shutdown; watchdog powers it "
        f"off after {plan.max_minutes} min; gpuplan waits {plan.timeout_minutes:g} min, then terminates it",
        f"  installs {install} and {BootstrapParams.model_fields['tf_spec'].default}",
        f"  runs: gpuplan calibrate {' '.join(plan.calibrate_args)}"
        + (f" --model <your {plan.model_file.name}, shipped via S3>" if plan.model_file else "")
        + (f" --dataset <your {plan.dataset_file.name}, shipped via S3>" if plan.dataset_file else ""),
        f"Expected cost of the calibration: ~{_money(plan.expected_usd)} (boot ~5 min, install ~5 min, "
        f"~2 min per precision); at most {_money(plan.max_usd)} if every watchdog fires.",
    ]
    lines += [f"warning: {t.instance_type}: {t.warning}" for t in plan.targets if t.warning]
    return lines
