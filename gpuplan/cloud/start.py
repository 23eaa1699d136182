"""Start one calibration instance (or ask EC2 whether it would start, with DryRun)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gpuplan.cloud import resources as res
from gpuplan.cloud.aws import Clients, aws_errors, error_code, error_message
from gpuplan.cloud.bootstrap import USER_DATA_LIMIT, BootstrapParams, encode_user_data, render_user_data
from gpuplan.cloud.launchplan import LaunchPlan, TargetPlan
from gpuplan.cloud.settings import PROFILE_RETRIES, PROFILE_RETRY_SECONDS
from gpuplan.cloud.uploads import Prepared


def run_instances_params(plan: LaunchPlan, target: TargetPlan, user_data: bytes, *,
                         security_group: str | None = None) -> dict[str, Any]:
    tags = [
        {"Key": "Name", "Value": f"gpuplan-calibration-{target.launch_id}"},
        {"Key": res.TAG_LAUNCH_ID, "Value": target.launch_id},
        {"Key": res.TAG_RESULT_URI, "Value": target.result_uri},
    ]
    params: dict[str, Any] = {
        "ImageId": target.ami.image_id, "InstanceType": target.instance_type, "MinCount": 1, "MaxCount": 1,
        "UserData": user_data,
        # The bootstrap's final `shutdown` (and the watchdog's) then ends the bill instead of stopping the instance.
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": target.ami.root_device, "Ebs": {
            "VolumeSize": target.root_gib, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True,
        }}],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    }
    if plan.instance_profile:  # by default none: the instance reaches S3 through presigned URLs
        params["IamInstanceProfile"] = {"Name": plan.instance_profile}
    if security_group:
        params["SecurityGroupIds"] = [security_group]
    if plan.spot:
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate",
        }}
    return params


def dry_run(plan: LaunchPlan, prepared: Prepared, clients: Clients) -> list[str]:
    """Ask EC2 whether each launch, with its real user data, would be allowed (DryRun), without starting anything."""
    lines = []
    for target in plan.targets:
        data = encode_user_data(user_data(plan, prepared, target))
        params = run_instances_params(plan, target, data, security_group=plan.security_group_id)
        try:
            clients.ec2.run_instances(DryRun=True, **params)
        except Exception as e:
            if error_code(e) != "DryRunOperation":
                with aws_errors(f"launch {target.instance_type} (ec2:RunInstances, DryRun)", region=clients.region,
                                instance_type=target.instance_type, spot=plan.spot):
                    raise
        packed = " gzipped" if data[:2] == b"\x1f\x8b" else ""
        lines.append(f"{target.instance_type}: EC2 would accept the launch (DryRun), user data {len(data)} bytes"
                     f"{packed} of {USER_DATA_LIMIT}")
    return lines


def user_data(plan: LaunchPlan, prepared: Prepared, target: TargetPlan, launched_at: float = 0.0) -> str:
    t = prepared.transfers[target.launch_id]
    params = BootstrapParams(
        launch_id=target.launch_id, region=plan.region, bucket_owner=plan.account or "ACCOUNT",
        launched_at=launched_at, result_url=t.result, log_url=t.log, max_minutes=plan.max_minutes,
        wheel_url=t.wheel, wheel_name=prepared.wheel_name, model_url=t.model, dataset_url=t.dataset,
        dataset_name=prepared.dataset_name, calibrate_args=plan.calibrate_args,
    )
    return render_user_data(params)


def start_instance(plan: LaunchPlan, prepared: Prepared, target: TargetPlan, clients: Clients, *,
                   retry_seconds: float = PROFILE_RETRY_SECONDS, retries: int = PROFILE_RETRIES,
                   sleep: Callable[[float], Any] = time.sleep) -> str:
    """The new instance's id. A --instance-profile made seconds ago is retried: IAM is eventually consistent, so EC2
    calls it "invalid" for a little while."""
    data = encode_user_data(user_data(plan, prepared, target, launched_at=time.time()))
    params = run_instances_params(plan, target, data, security_group=prepared.security_group_id)
    context = {"region": clients.region, "instance_type": target.instance_type, "spot": plan.spot}
    attempt = 0
    while True:
        try:
            return clients.ec2.run_instances(**params)["Instances"][0]["InstanceId"]
        except Exception as e:
            new_profile = error_code(e) == "InvalidParameterValue" and "iaminstanceprofile" in error_message(e).lower()
            if not (new_profile and attempt < retries):
                with aws_errors(f"launch {target.instance_type} (ec2:RunInstances)", **context):
                    raise
        sleep(retry_seconds)
        attempt += 1
