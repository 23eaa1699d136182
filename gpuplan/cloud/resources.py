"""What a launch needs in the account: an AMI, a results bucket, a security group (and a --instance-profile's check).

`find_*` functions only read (the plan and --dry-run use them); `ensure_*` functions create what is missing and
reuse what exists, so a second launch creates nothing new.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from gpuplan.cloud.aws import Clients, aws_errors, error_code
from gpuplan.errors import GpuplanError

RESULTS_PREFIX = "gpuplan/"
RESULT_EXPIRY_DAYS = 30
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
# The OSS DLAMIs load NVIDIA's open kernel modules, which need Turing or newer (G4dn, G5, G6, P4d, P5...). Volta (P3,
# P3dn) and Maxwell (G3) need the proprietary driver, whose R580 branch is the last to support them (NVIDIA's Unix
# deprecation schedule, 2025). Checked 2026-11: the "Deep Learning Base Proprietary Nvidia Driver AMI (Amazon Linux 2)"
# ships driver 570.x and its release notes (Version 71.6, 2026-01-02) list P3 and P3dn. No SSM parameter is
# documented for it, so it is found by name.
PROPRIETARY_DRIVER_FAMILIES = ("p3", "p3dn", "g3", "g3s")
PROPRIETARY_AMI_NAME_PATTERNS = (
    "Deep Learning Base Proprietary Nvidia Driver AMI (Amazon Linux 2) Version *",
    "Deep Learning Base Proprietary Nvidia Driver GPU AMI (Ubuntu 22.04) *",
)
# Kepler (P2) needs the R470 driver, which no current AMI ships.
NO_AMI_FAMILIES = ("p2",)


class Ami(BaseModel):
    image_id: str
    name: str = ""
    source: str = ""
    root_device: str = "/dev/sda1"
    root_gib: int = 0


def needs_proprietary_driver(instance_type: str) -> bool:
    return instance_type.split(".")[0] in PROPRIETARY_DRIVER_FAMILIES


def ami_warning(instance_type: str) -> str | None:
    if instance_type.split(".")[0] in NO_AMI_FAMILIES:
        return (f"{instance_type} (Kepler) needs NVIDIA's R470 driver, which no current Deep Learning AMI ships; pass "
                "--ami-id with an AMI that has it")
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


def bucket_prefix(account: str, region: str) -> str:
    return f"gpuplan-{account}-{region}-"


def new_bucket_name(account: str, region: str) -> str:
    """Not guessable: a name someone else could create first would receive this account's uploads."""
    return bucket_prefix(account, region) + secrets.token_hex(4)


def find_own_bucket(clients: Clients, account: str) -> str | None:
    """This account's gpuplan bucket of the region from an earlier launch (ListBuckets lists only one's own)."""
    prefix = bucket_prefix(account, clients.region)
    try:
        buckets = clients.s3.list_buckets()["Buckets"]
    except Exception as e:
        if error_code(e) in ("AccessDenied", "403"):
            return None  # without s3:ListAllMyBuckets each launch makes a new bucket; results still come back
        with aws_errors("list your buckets (s3:ListAllMyBuckets)", region=clients.region):
            raise
    names = sorted(b["Name"] for b in buckets if b["Name"].startswith(prefix))
    return names[0] if names else None


def bucket_exists(clients: Clients, bucket: str, owner: str) -> bool:
    """Whether the bucket exists and is the caller's account's (ExpectedBucketOwner); someone else's is an error."""
    try:
        clients.s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
        return True
    except Exception as e:
        code = error_code(e)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            raise GpuplanError(
                f"bucket {bucket} exists but is not your account's {owner} (or you lack s3:ListBucket on it); "
                "pass another with --bucket"
            ) from None
        with aws_errors(f"check bucket {bucket}", region=clients.region):
            raise


def ensure_bucket(clients: Clients, bucket: str, owner: str) -> bool:
    """Create the bucket private, encrypted, expiring old results; an existing bucket is used as it is.

    Returns True when it was created. A user's own bucket is never reconfigured: replacing its lifecycle rules
    would delete theirs.
    """
    if bucket_exists(clients, bucket, owner):
        return False
    s3 = clients.s3
    mine = {"ExpectedBucketOwner": owner}
    with aws_errors(f"create bucket {bucket} (s3:CreateBucket)", region=clients.region):
        kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if clients.region != "us-east-1":  # S3's original region takes no LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": clients.region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(Bucket=bucket, **mine, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        })
        s3.put_bucket_encryption(Bucket=bucket, **mine, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}],
        })
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, **mine, LifecycleConfiguration={"Rules": [{
            "ID": "gpuplan-expire-results", "Filter": {"Prefix": RESULTS_PREFIX}, "Status": "Enabled",
            "Expiration": {"Days": RESULT_EXPIRY_DAYS},
        }]})
    return True


def role_policy(bucket: str) -> dict[str, Any]:
    """What the role of a --instance-profile needs: read what the client shipped, write results and logs."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "GpuplanResults", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
        "Resource": f"arn:aws:s3:::{bucket}/{RESULTS_PREFIX}*",
    }]}


def check_instance_profile(clients: Clients, name: str) -> None:
    """A --instance-profile must exist before anything is created or started (iam:GetInstanceProfile)."""
    try:
        clients.iam.get_instance_profile(InstanceProfileName=name)
    except Exception as e:
        if error_code(e) == "NoSuchEntity":
            raise GpuplanError(f"instance profile {name} does not exist; create it (its role needs "
                               "s3:GetObject and s3:PutObject on the bucket's gpuplan/*) or leave out "
                               "--instance-profile: the default needs no IAM at all") from None
        with aws_errors(f"look up instance profile {name} (iam:GetInstanceProfile)"):
            raise


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
