"""Prepare the account for a launch: create what the plan said is missing, ship the wheel and local files to S3."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from gpuplan.cloud import resources as res
from gpuplan.cloud.aws import Clients, aws_errors
from gpuplan.cloud.launchplan import LaunchPlan
from gpuplan.cloud.wheel import build_wheel


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
    wheel = plan.wheel or (build_wheel(plan.build_from) if plan.build_from else None)
    with aws_errors(f"upload to s3://{plan.bucket}/{shared}/ (s3:PutObject)", region=clients.region):
        if wheel is not None:
            prepared.wheel_uri = _upload(clients, Path(wheel), plan.bucket, f"{shared}/{Path(wheel).name}")
        if plan.dataset_file is not None:
            prepared.dataset_uri = _upload(clients, plan.dataset_file, plan.bucket,
                                           f"{shared}/data/{plan.dataset_file.name}")
        if plan.model_file is not None:
            prepared.model_uri = _upload(clients, plan.model_file, plan.bucket, f"{shared}/model/config.json")
    return prepared


def _upload(clients: Clients, path: Path, bucket: str, key: str) -> str:
    clients.s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"
