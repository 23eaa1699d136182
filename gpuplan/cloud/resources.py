"""What a launch needs in the account: an AMI, a results bucket, an instance profile, a security group.

`find_*` functions only read (the plan and --dry-run use them); `ensure_*` functions create what is missing and
reuse what exists, so a second launch creates nothing new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from gpuplan.cloud.aws import Clients, aws_errors, error_code
from gpuplan.errors import GpuplanError

RESULTS_PREFIX = "gpuplan/"
RESULT_EXPIRY_DAYS = 30
PROFILE_NAME = "gpuplan-calibration"
SECURITY_GROUP_NAME = "gpuplan-calibration"
TAG_LAUNCH_ID = "gpuplan:launch-id"
TAG_RESULT_URI = "gpuplan:result-uri"

# The Deep Learning Base AMIs' public parameters, newest OS first: gpuplan needs Python >= 3.11, which Ubuntu 24.04
# ships; the others work too (the bootstrap installs a newer Python when the system one is too old).
AMI_PARAMETERS = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id",
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
)
# When SSM is denied or has no parameter (some regions, some partitions): search Amazon's images by name.
AMI_NAME_PATTERNS = (
    "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *",
    "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
    "Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) *",
)
# The open-source NVIDIA kernel modules of current DLAMIs need Turing or newer: their release notes list G4dn, G5,
# G6, P4d, P5... but no longer P3 (V100, Volta).
NO_DLAMI_FAMILIES = ("p3", "p3dn", "p2", "g3")


class Ami(BaseModel):
    image_id: str
    name: str = ""
    source: str = ""
    root_device: str = "/dev/sda1"
    root_gib: int = 0


def ami_warning(instance_type: str) -> str | None:
    if instance_type.split(".")[0] in NO_DLAMI_FAMILIES:
        return (f"current Deep Learning AMIs no longer list {instance_type.split('.')[0].upper()} (their open NVIDIA "
                "driver needs Turing or newer); pass --ami-id with an AMI whose NVIDIA driver supports it")
    return None


def find_ami(clients: Clients, ami_id: str | None = None, *, parameters: Sequence[str] = AMI_PARAMETERS,
             name_patterns: Sequence[str] = AMI_NAME_PATTERNS) -> Ami:
    """--ami-id as given, else the newest Deep Learning Base AMI from SSM `parameters`, else by `name_patterns`."""
    if ami_id:
        return _describe_ami(clients, ami_id, "--ami-id")
    for name in parameters:
        try:
            value = clients.ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception:  # not found, denied, or SSM unreachable: the next way may still work
            continue
        return _describe_ami(clients, value, f"SSM {name}")
    with aws_errors("search Amazon's Deep Learning AMIs (ec2:DescribeImages)", region=clients.region):
        for pattern in name_patterns:
            images = clients.ec2.describe_images(
                Owners=["amazon"], Filters=[{"Name": "name", "Values": [pattern]}, {"Name": "state",
                                                                                   "Values": ["available"]}]
            )["Images"]
            if images:
                newest = max(images, key=lambda i: i.get("CreationDate", ""))
                return _ami(newest, f"describe_images {pattern!r}")
    raise GpuplanError(
        f"found no Deep Learning Base AMI in {clients.region}; pass one with --ami-id (an x86_64 Linux AMI with an "
        "NVIDIA driver and Python 3)"
    )


def _describe_ami(clients: Clients, image_id: str, source: str) -> Ami:
    try:
        images = clients.ec2.describe_images(ImageIds=[image_id])["Images"]
    except Exception as e:
        if not error_code(e).startswith("InvalidAMIID"):
            with aws_errors(f"look up AMI {image_id} (ec2:DescribeImages)", region=clients.region):
                raise
        images = []
    if not images:
        raise GpuplanError(
            f"AMI {image_id} was not found in {clients.region}; pass an AMI of this region with --ami-id")
    return _ami(images[0], source)


def _ami(image: dict[str, Any], source: str) -> Ami:
    root = image.get("RootDeviceName") or "/dev/sda1"
    size = 0
    for bdm in image.get("BlockDeviceMappings", []):
        if bdm.get("DeviceName") == root:
            size = int(bdm.get("Ebs", {}).get("VolumeSize") or 0)
    return Ami(image_id=image["ImageId"], name=image.get("Name", ""), source=source, root_device=root, root_gib=size)


def check_instance_type(clients: Clients, instance_type: str) -> None:
    """Fail early when the region does not offer the type; a denied describe is not a reason to stop."""
    try:
        clients.ec2.describe_instance_types(InstanceTypes=[instance_type])
    except Exception as e:
        if error_code(e) in ("InvalidInstanceType", "InvalidParameterValue"):
            raise GpuplanError(
                f"instance type {instance_type} is not offered in {clients.region}; pick another with --instance or "
                "--region (see `gpuplan gpus`)"
            ) from None
        if error_code(e) in ("UnauthorizedOperation", "AccessDenied"):
            return
        with aws_errors(f"check instance type {instance_type}", region=clients.region):
            raise


def account_id(clients: Clients) -> str:
    with aws_errors("identify your AWS account (sts:GetCallerIdentity)", region=clients.region):
        return clients.sts.get_caller_identity()["Account"]


def default_bucket(account: str, region: str) -> str:
    return f"gpuplan-{account}-{region}"


def bucket_exists(clients: Clients, bucket: str) -> bool:
    try:
        clients.s3.head_bucket(Bucket=bucket)
        return True
    except Exception as e:
        code = error_code(e)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            raise GpuplanError(
                f"bucket {bucket} exists but you cannot use it (someone else's, or no s3 permission); "
                "pass another with --bucket"
            ) from None
        with aws_errors(f"check bucket {bucket}", region=clients.region):
            raise


def ensure_bucket(clients: Clients, bucket: str) -> bool:
    """Create the bucket private, encrypted, expiring old results; an existing bucket is used as it is.

    Returns True when it was created. A user's own bucket is never reconfigured: replacing its lifecycle rules
    would delete theirs.
    """
    if bucket_exists(clients, bucket):
        return False
    s3 = clients.s3
    with aws_errors(f"create bucket {bucket} (s3:CreateBucket)", region=clients.region):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if clients.region != "us-east-1":  # S3's original region takes no LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": clients.region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        })
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}],
        })
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [{
            "ID": "gpuplan-expire-results", "Filter": {"Prefix": RESULTS_PREFIX}, "Status": "Enabled",
            "Expiration": {"Days": RESULT_EXPIRY_DAYS},
        }]})
    return True


def role_policy(bucket: str) -> dict[str, Any]:
    """The instance may write results and logs, and read what the client shipped, under gpuplan/ only."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "GpuplanResults", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
        "Resource": f"arn:aws:s3:::{bucket}/{RESULTS_PREFIX}*",
    }]}


TRUST_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
}]}


def instance_profile_exists(clients: Clients, name: str) -> bool:
    try:
        clients.iam.get_instance_profile(InstanceProfileName=name)
        return True
    except Exception as e:
        if error_code(e) == "NoSuchEntity":
            return False
        with aws_errors(f"look up instance profile {name} (iam:GetInstanceProfile)"):
            raise


def ensure_instance_profile(clients: Clients, bucket: str, name: str | None = None) -> tuple[str, bool]:
    """(profile name, created now). A --instance-profile of the user's is used untouched; ours gets this bucket."""
    if name:
        if not instance_profile_exists(clients, name):
            raise GpuplanError(f"instance profile {name} does not exist; create it or leave out --instance-profile")
        return name, False
    iam = clients.iam
    created = False
    with aws_errors(f"create or update the IAM role and instance profile {PROFILE_NAME} (iam:CreateRole, "
                    "iam:PutRolePolicy, iam:CreateInstanceProfile, iam:AddRoleToInstanceProfile)"):
        try:
            iam.get_role(RoleName=PROFILE_NAME)
        except Exception as e:
            if error_code(e) != "NoSuchEntity":
                raise
            iam.create_role(RoleName=PROFILE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                            Description="gpuplan calibration instances: write results under gpuplan/ only",
                            Tags=[{"Key": "gpuplan", "Value": "calibration"}])
            created = True
        # One inline policy per bucket, so reusing the role with another bucket adds to it instead of moving it.
        iam.put_role_policy(RoleName=PROFILE_NAME, PolicyName=f"gpuplan-results-{bucket}"[:128],
                            PolicyDocument=json.dumps(role_policy(bucket)))
        if not instance_profile_exists(clients, PROFILE_NAME):
            iam.create_instance_profile(InstanceProfileName=PROFILE_NAME)
            created = True
        roles = iam.get_instance_profile(InstanceProfileName=PROFILE_NAME)["InstanceProfile"]["Roles"]
        if not any(r["RoleName"] == PROFILE_NAME for r in roles):
            iam.add_role_to_instance_profile(InstanceProfileName=PROFILE_NAME, RoleName=PROFILE_NAME)
            created = True
    return PROFILE_NAME, created


def default_vpc(clients: Clients) -> str:
    with aws_errors("find the default VPC (ec2:DescribeVpcs)", region=clients.region):
        vpcs = clients.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise GpuplanError(f"there is no default VPC in {clients.region}; create one with "
                           f"`aws ec2 create-default-vpc --region {clients.region}`")
    return vpcs[0]["VpcId"]


def find_security_group(clients: Clients, vpc_id: str) -> str | None:
    with aws_errors("look up the security group (ec2:DescribeSecurityGroups)", region=clients.region):
        groups = clients.ec2.describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [SECURITY_GROUP_NAME]}, {"Name": "vpc-id", "Values": [vpc_id]},
        ])["SecurityGroups"]
    return groups[0]["GroupId"] if groups else None


def ensure_security_group(clients: Clients, vpc_id: str) -> tuple[str, bool]:
    """A group with no inbound rule: nothing can connect to the instance; outbound stays open for pip and S3."""
    existing = find_security_group(clients, vpc_id)
    if existing:
        return existing, False
    with aws_errors("create the security group (ec2:CreateSecurityGroup)", region=clients.region):
        group = clients.ec2.create_security_group(
            GroupName=SECURITY_GROUP_NAME, VpcId=vpc_id,
            Description="gpuplan calibration instances: no inbound access",
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": [{"Key": "gpuplan", "Value": "calibration"}]}],
        )
    return group["GroupId"], True
