"""Prepare the account for a launch: create what the plan said is missing, ship the wheel and local files to S3, and
sign the URLs each instance gets (GET for the inputs, PUT for its result and log: that launch's keys only).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from gpuplan.cloud import resources as res
from gpuplan.cloud.aws import Clients, aws_errors
from gpuplan.cloud.launchplan import LaunchPlan, TargetPlan
from gpuplan.cloud.wait import split_uri
from gpuplan.cloud.wheel import ship_wheel


class Transfers(BaseModel):
    """What one instance reads and writes: presigned https URLs, or s3:// URIs when it has a role
    (--instance-profile). Empty: nothing to fetch."""

    result: str
    log: str
    wheel: str = ""
    model: str = ""
    dataset: str = ""


class Prepared(BaseModel):
    security_group_id: str
    wheel_name: str = ""
    dataset_name: str = ""
    transfers: dict[str, Transfers] = {}  # by launch id
    created: list[str] = []


def presign(clients: Clients, method: str, uri: str, owner: str, minutes: float) -> str:
    """A URL that allows one GET or PUT of one key until it expires; the bucket must belong to `owner`."""
    bucket, key = split_uri(uri)
    return clients.presigner.generate_presigned_url(
        method, Params={"Bucket": bucket, "Key": key, "ExpectedBucketOwner": owner}, ExpiresIn=int(minutes * 60))


def input_uris(plan: LaunchPlan, wheel_name: str) -> dict[str, str]:
    """Where the shared inputs go: under the first launch's prefix."""
    shared = f"s3://{plan.bucket}/{res.RESULTS_PREFIX}{plan.targets[0].launch_id}"
    uris = {"wheel": f"{shared}/{wheel_name}"}
    if plan.model_file is not None:
        uris["model"] = f"{shared}/model/config.json"
    if plan.dataset_file is not None:
        uris["dataset"] = f"{shared}/data/{plan.dataset_file.name}"
    return uris


def transfers(plan: LaunchPlan, target: TargetPlan, inputs: dict[str, str], clients: Clients | None) -> Transfers:
    """s3:// URIs with a role; otherwise presigned URLs (placeholders when there are no clients: a dry run)."""
    if plan.instance_profile:
        return Transfers(result=target.result_uri, log=target.log_uri, **inputs)

    def url(method: str, uri: str) -> str:
        if clients is None or plan.account is None:
            return f"https://{split_uri(uri)[0]}.s3.amazonaws.com/{split_uri(uri)[1]}?<presigned at launch>"
        return presign(clients, method, uri, plan.account, plan.url_minutes)

    return Transfers(result=url("put_object", target.result_uri), log=url("put_object", target.log_uri),
                     **{k: url("get_object", v) for k, v in inputs.items()})


def prepare(plan: LaunchPlan, clients: Clients, created: list[str] | None = None) -> Prepared:
    """Create what the plan said is missing; ship this gpuplan's wheel and the local files; sign the URLs.

    `created` is filled as things are made, so that a caller interrupted half-way can say what exists."""
    assert plan.account is not None, "a plan made without credentials cannot be launched"
    created = [] if created is None else created
    if res.ensure_bucket(clients, plan.bucket, plan.account):
        created.append(f"bucket s3://{plan.bucket}")
    group, group_created = res.ensure_security_group(clients, plan.vpc_id)
    if group_created:
        created.append(f"security group {res.SECURITY_GROUP_NAME} ({group})")
    wheel = ship_wheel(plan.wheel)
    inputs = input_uris(plan, wheel.name)
    files = {"wheel": wheel, "model": plan.model_file, "dataset": plan.dataset_file}
    with aws_errors(f"upload to s3://{plan.bucket}/{res.RESULTS_PREFIX} (s3:PutObject)", region=clients.region):
        for name, uri in inputs.items():
            bucket, key = split_uri(uri)
            clients.s3.upload_file(str(files[name]), bucket, key, ExtraArgs={"ExpectedBucketOwner": plan.account})
    return Prepared(
        security_group_id=group, wheel_name=wheel.name,
        dataset_name=plan.dataset_file.name if plan.dataset_file else "", created=created,
        transfers={t.launch_id: transfers(plan, t, inputs, clients) for t in plan.targets},
    )


def dry_prepared(plan: LaunchPlan, clients: Clients | None) -> Prepared:
    """What `prepare` would hand the instances, without creating or uploading anything (for --dry-run)."""
    from gpuplan import __version__

    name = Path(plan.wheel).name if plan.wheel else f"gpuplan-{__version__}-py3-none-any.whl"
    inputs = input_uris(plan, name)
    return Prepared(security_group_id=plan.security_group_id or "", wheel_name=name,
                    dataset_name=plan.dataset_file.name if plan.dataset_file else "",
                    transfers={t.launch_id: transfers(plan, t, inputs, clients) for t in plan.targets})
